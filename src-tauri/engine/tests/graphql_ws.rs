//! The `graphql-ws` wire (profiles §6) against the real `graphql-ws`
//! server from npm (with `graphql` and `ws`), on loopback, whose schema
//! replays a feed's log from `since`.

mod support;

use holdline_engine::{
    ConnectionState, EngineConfig, EngineEvent, HistoryKind, Profile, StartFrom,
};
use holdline_testkit::{FaultProxy, ForwardProxy, GraphqlServer, within};
use serde_json::{Value, json};
use support::*;

const SECRET: &str = "gql-secret-71c";

fn profile() -> Profile {
    Profile::load(&json!({
        "protocol": "graphql-ws",
        "feeds": {
            "px": {
                "query": "subscription Px($since: Int) { ticks(feed: \"px\", since: $since) { seq value } }",
                "variables": {"since": "{since}"},
                "data": "/data/ticks",
                "seq": "/data/ticks/seq"
            },
            "chat": {"query": "subscription { chat }", "data": "/data/chat"},
            "fails": {"query": "subscription { fails }"},
            "bogus": {"query": "subscription { nothere }"},
            "finite": {"query": "subscription { finite }", "data": "/data/finite"}
        },
        "publish": {
            "query": "mutation Post($feed: String, $text: String, $id: String) { post(feed: $feed, text: $text, id: $id) { id seq } }",
            "variables": {"feed": "{feed}", "text": "{data}", "id": "{id}"},
            "seq": "/data/post/seq"
        }
    }))
    .expect("the test profile is valid")
}

fn config(url: &str) -> EngineConfig {
    fast_config(url, SECRET).with_profile(profile())
}

async fn server() -> GraphqlServer {
    GraphqlServer::start(Some(SECRET)).await
}

fn chat(text: &str) -> Item {
    Item::Unnumbered(Value::from(text).to_string())
}

async fn replay_across_cuts(tunnel: Tunnel<'_>) {
    let mut server = server().await;
    let proxy = FaultProxy::start(server.addr()).await;
    let url = format!("ws://{}/graphql", proxy.addr());
    let (engine, mut deliveries) = open_engine(via(config(&url), tunnel));
    let mut events = engine.events();
    engine.subscribe("px", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    let login = wait_history(&mut events, HistoryKind::Sent).await;
    assert_eq!(
        login.details["frame"],
        r#"{"payload":{"token":"<redacted>"},"type":"connection_init"}"#
    );
    wait_open(&mut events).await;
    server.wait_for_count("subscribe", 1).await;
    for v in 1..=5 {
        server.tick("px", f64::from(v)).await;
    }
    let mut seen = Seen::default();
    collect_seen(&mut deliveries, &mut seen, "5 ticks", |s| s.events >= 5).await;
    for round in 0..2 {
        proxy.refuse(true);
        proxy.cut_all();
        for v in 0..5 {
            server.tick("px", f64::from(10 * round + v)).await;
        }
        proxy.refuse(false);
        let wanted = 10 + 5 * round as usize;
        collect_seen(&mut deliveries, &mut seen, "the replayed ticks", |s| {
            s.events >= wanted
        })
        .await;
    }
    assert_eq!(
        seen.feed("px"),
        seqs(1..=15),
        "once each, in order, no marker"
    );
    let subscribes = server.seen("subscribe");
    let sinces: Vec<&Value> = subscribes.iter().map(|s| &s["args"]["since"]).collect();
    assert_eq!(sinces, [&json!(0), &json!(5), &json!(10)]);
    let connect = &server.seen("connect")[0];
    assert_eq!(connect["token"], SECRET);
    assert!(
        connect["headers"].get("authorization").is_none(),
        "{connect}"
    );
    assert!(!connect["url"].as_str().unwrap().contains(SECRET));
    engine.shutdown().await;
}

#[tokio::test]
async fn numbered_feeds_replay_from_since_once_in_order_across_cuts_and_the_token_stays_in_init() {
    replay_across_cuts(None).await;
}

#[tokio::test]
async fn through_an_http_proxy_numbered_feeds_replay_once_in_order_across_cuts() {
    if let Some(proxy) = ForwardProxy::tinyproxy(None).await {
        replay_across_cuts(Some((&proxy, "http"))).await;
    }
}

#[tokio::test]
async fn a_feed_without_seq_gets_a_reconnected_marker_and_server_pings_are_answered() {
    let mut server = server().await;
    let proxy = FaultProxy::start(server.addr()).await;
    let url = format!("ws://{}/graphql", proxy.addr());
    let (engine, mut deliveries) = open_engine(config(&url));
    let mut events = engine.events();
    engine.subscribe("chat", StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    wait_open(&mut events).await;
    server.wait_for_count("subscribe", 1).await;
    server.ping().await;
    server.wait_for_count("pong", 1).await;
    server.chat("before").await;
    let mut seen = Seen::default();
    collect_seen(&mut deliveries, &mut seen, "the first", |s| s.events >= 1).await;
    proxy.cut_all();
    server.wait_for_count("subscribe", 2).await;
    server.chat("after").await;
    collect_seen(&mut deliveries, &mut seen, "the second", |s| s.events >= 2).await;
    assert_eq!(
        seen.feed("chat"),
        [
            chat("before"),
            Item::Discontinuity("reconnected".into()),
            chat("after")
        ]
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_refused_init_stops_with_the_mapped_state() {
    let server = server().await;
    let (engine, _deliveries) =
        open_engine(fast_config(&server.url(), "wrong").with_profile(profile()));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let state = wait_state(&mut events, "stopped", |s| {
        matches!(
            s,
            ConnectionState::Stopped { .. } | ConnectionState::NeedsLogin { .. }
        )
    })
    .await;
    assert!(
        matches!(&state, ConnectionState::Stopped { reason } if reason.contains("4403")),
        "4403 Forbidden stops: {state:?}"
    );
    assert_eq!(server.seen("refused").len(), 1, "asked once");
    engine.shutdown().await;
}

#[tokio::test]
async fn an_error_stops_only_its_feed_and_a_server_complete_ends_its_feed() {
    let mut server = server().await;
    let (engine, mut deliveries) = open_engine(config(&server.url()));
    let mut events = engine.events();
    for feed in ["fails", "bogus", "chat", "finite"] {
        engine.subscribe(feed, StartFrom::Live).await.unwrap();
    }
    engine.connect().await.unwrap();
    // Each failure is recorded for its feed, whichever comes first: an
    // execution error (the server completes the operation after it) and a
    // query its validation refuses (an `error` message).
    let mut failures = std::collections::BTreeMap::new();
    while failures.len() < 2 {
        let event = wait_event(
            &mut events,
            "both failures recorded",
            |e| matches!(e, EngineEvent::History(h) if h.kind == HistoryKind::SubscribeFailed),
        )
        .await;
        if let EngineEvent::History(h) = event {
            failures.insert(
                h.details["feed"].as_str().unwrap_or_default().to_owned(),
                h.message,
            );
        }
    }
    assert!(
        failures["fails"].contains("this subscription always fails"),
        "{failures:?}"
    );
    assert!(failures["bogus"].contains("nothere"), "{failures:?}");
    server.wait_for_count("subscribe", 3).await;
    server.chat("still here").await;
    server.finish().await;
    let mut seen = Seen::default();
    collect_seen(
        &mut deliveries,
        &mut seen,
        "chat and the last finite",
        |s| s.events >= 2,
    )
    .await;
    assert_eq!(seen.feed("chat"), [chat("still here")]);
    assert_eq!(seen.feed("finite"), [chat("last")]);
    let ended = wait_event(
        &mut events,
        "the complete recorded",
        |e| matches!(e, EngineEvent::History(h) if h.details["feed"] == "finite"),
    )
    .await;
    let EngineEvent::History(ended) = ended else {
        unreachable!()
    };
    assert_eq!(ended.kind, HistoryKind::SubscribeFailed);
    assert_eq!(
        ended.message,
        "finite ended: the server completed the subscription"
    );
    assert_eq!(ended.details["dropped"], true);
    let snapshot = engine.snapshot().await.unwrap();
    let feeds: Vec<String> = snapshot.feeds.iter().map(|f| f.feed.to_string()).collect();
    assert_eq!(
        feeds,
        ["chat"],
        "the failed and the completed feed are gone"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_publish_is_a_mutation_acknowledged_once_across_a_cut() {
    let server = server().await;
    let proxy = FaultProxy::start(server.addr()).await;
    let url = format!("ws://{}/graphql", proxy.addr());
    let (engine, _deliveries) = open_engine(config(&url));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    wait_open(&mut events).await;
    let text = |v: &str| serde_json::value::RawValue::from_string(format!("\"{v}\"")).unwrap();
    let pending = engine
        .publish("px", text("41"), Some("post-1".into()))
        .await
        .unwrap();
    let ack = within(WAIT, "the mutation's result", pending)
        .await
        .expect("acknowledged");
    assert_eq!(ack.seq, Some(1), "the seq pointer into the result");

    proxy.stall(true);
    let pending = engine
        .publish("px", text("42"), Some("post-2".into()))
        .await
        .unwrap();
    proxy.cut_all();
    proxy.stall(false);
    let ack = within(WAIT, "the result after the reconnect", pending)
        .await
        .expect("acknowledged");
    assert_eq!(ack.seq, Some(2));
    let mutations = server.seen("mutation");
    assert_eq!(mutations.len(), 2, "{mutations:?}");
    assert_eq!(mutations[1]["id"], "post-2");
    assert!(
        engine.subscribe("nope", StartFrom::Live).await.is_err(),
        "a feed the profile does not name is refused"
    );
    engine.shutdown().await;
}
