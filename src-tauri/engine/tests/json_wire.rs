//! The `json` wire (profiles §3) against a scripted JSON server on
//! `127.0.0.1:0`, one test per rule, and a chaos run through the fault
//! proxy with the same invariants as the `holdline.v1` chaos test.

mod support;

use std::time::Duration;

use holdline_engine::{
    ConnectionState, EngineConfig, EngineEvent, HistoryKind, Profile, StartFrom,
};
use holdline_testkit::{FaultProxy, ForwardProxy, JsonServer, JsonServerConfig, within};
use serde_json::{Value, json};
use support::*;

const SECRET: &str = "json-secret-42";

/// The profile of the scripted server, as a user would write it.
fn profile(extra: Value) -> Profile {
    profile_with(JsonServer::profile(true), extra)
}

fn config(url: &str, profile: Profile) -> EngineConfig {
    fast_config(url, SECRET).with_profile(profile)
}

async fn json_server(config: JsonServerConfig) -> JsonServer {
    JsonServer::start(JsonServerConfig {
        token: Some(SECRET.into()),
        ..config
    })
    .await
}

fn data(n: u64) -> Value {
    json!({ "n": n })
}

/// The `since` of every `sub` the server received for `feed`.
fn subscribes(server: &JsonServer, feed: &str) -> Vec<Value> {
    server
        .received()
        .into_iter()
        .filter(|f| f["op"] == "sub" && f["ch"] == feed)
        .map(|f| f["since"].clone())
        .collect()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    within(WAIT, what, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn logs_in_waits_for_ready_then_subscribes_and_records_the_login_redacted() {
    let server = json_server(JsonServerConfig::default()).await;
    let (engine, mut deliveries) = open_engine(config(&server.url(), profile(json!({}))));
    let mut events = engine.events();
    engine
        .subscribe("prices", StartFrom::Beginning)
        .await
        .unwrap();
    engine.connect().await.unwrap();
    let sent = wait_history(&mut events, HistoryKind::Sent).await;
    assert_eq!(
        sent.details["frame"],
        r#"{"op":"login","token":"<redacted>"}"#
    );
    assert!(!sent.to_string_lossy().contains(SECRET));
    wait_state(&mut events, "open", is_open).await;
    wait_until("the subscribe", || {
        !subscribes(&server, "prices").is_empty()
    })
    .await;
    let received = server.received();
    assert_eq!(received[0]["op"], "login", "login goes first: {received:?}");
    assert_eq!(received[0]["token"], SECRET);
    assert_eq!(
        subscribes(&server, "prices"),
        [json!(0)],
        "from the start: since 0"
    );
    for n in 1..=3 {
        server.publish("prices", data(n));
    }
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 3).await;
    assert_eq!(seen.feed("prices"), seqs(1..=3));
    engine.shutdown().await;
}

trait Lossy {
    fn to_string_lossy(&self) -> String;
}

impl Lossy for holdline_engine::HistoryEntry {
    fn to_string_lossy(&self) -> String {
        format!("{} {}", self.message, self.details)
    }
}

#[tokio::test]
async fn a_refused_login_stops_with_needs_login() {
    let server = json_server(JsonServerConfig::default()).await;
    let mut config = config(&server.url(), profile(json!({})));
    config.token = Some(holdline_engine::Token::new("wrong"));
    let (engine, _deliveries) = open_engine(config);
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let state = wait_state(&mut events, "needs login", |s| {
        matches!(s, ConnectionState::NeedsLogin { .. })
    })
    .await;
    assert!(
        format!("{state:?}").contains("refused the login"),
        "{state:?}"
    );
    assert_eq!(server.connections(), 1, "no retry after a refusal");
    engine.shutdown().await;
}

#[tokio::test]
async fn no_ready_within_the_timeout_reconnects_with_backoff() {
    let server = json_server(JsonServerConfig::default()).await;
    let profile = profile(json!({"ready": {"/op": "never"}, "ready_timeout_ms": 100}));
    let (engine, _deliveries) = open_engine(config(&server.url(), profile));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let state = wait_state(&mut events, "backoff", |s| {
        matches!(s, ConnectionState::Backoff { .. })
    })
    .await;
    assert!(format!("{state:?}").contains("NotReady"), "{state:?}");
    engine.shutdown().await;
}

async fn logs_in_again_after_a_reconnect(tunnel: Tunnel<'_>) {
    let server = json_server(JsonServerConfig::default()).await;
    let proxy = FaultProxy::start(server.addr()).await;
    let (engine, mut deliveries) =
        open_engine(via(config(&proxy.url(), profile(json!({}))), tunnel));
    let mut events = engine.events();
    engine.subscribe("prices", StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    wait_until("the subscribe", || {
        !subscribes(&server, "prices").is_empty()
    })
    .await;
    for n in 1..=5 {
        server.publish("prices", data(n));
    }
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 5).await;
    proxy.refuse(true);
    proxy.cut_all();
    wait_state(&mut events, "backoff", |s| {
        matches!(s, ConnectionState::Backoff { .. })
    })
    .await;
    for n in 6..=8 {
        server.publish("prices", data(n));
    }
    proxy.refuse(false);
    collect_until(&mut deliveries, &mut seen, 8).await;
    assert_eq!(seen.feed("prices"), seqs(1..=8), "no loss, no duplicate");
    assert_eq!(subscribes(&server, "prices"), [json!(null), json!(5)]);
    let logins = server
        .received()
        .iter()
        .filter(|f| f["op"] == "login")
        .count();
    assert_eq!(logins, 2);
    let ready = wait_history(&mut events, HistoryKind::Ready).await;
    assert!(
        ready.message.contains("reconnected; login sent again")
            && ready.message.contains("continuity held for prices"),
        "{}",
        ready.message
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn after_a_reconnect_it_logs_in_again_and_resubscribes_from_the_cursor() {
    logs_in_again_after_a_reconnect(None).await;
}

#[tokio::test]
async fn through_a_socks5_proxy_it_logs_in_again_and_resubscribes_after_a_cut() {
    if let Some(proxy) = ForwardProxy::microsocks(None).await {
        logs_in_again_after_a_reconnect(Some((&proxy, "socks5"))).await;
    }
}

#[tokio::test]
async fn duplicates_are_dropped_and_out_of_order_events_are_reordered() {
    let server = json_server(JsonServerConfig::default()).await;
    let (engine, mut deliveries) = open_engine(config(&server.url(), profile(json!({}))));
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    wait_until("the subscribe", || !subscribes(&server, "f").is_empty()).await;
    let run = server.run_of("f");
    let ev = |n: u64| json!({"op": "ev", "ch": "f", "n": n, "run": run, "d": n}).to_string();
    for n in [1, 3, 2, 2, 1, 4, 3] {
        server.send_raw(&ev(n));
    }
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 4).await;
    assert_eq!(seen.feed("f"), seqs(1..=4));
    let snapshot = engine.snapshot().await.unwrap();
    assert_eq!(snapshot.feeds[0].stats.duplicates, 3);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_hole_gets_one_resubscribe_with_since_and_the_replay_fills_it() {
    let server = json_server(JsonServerConfig::default()).await;
    let (engine, mut deliveries) = open_engine(config(&server.url(), profile(json!({}))));
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    wait_until("the subscribe", || !subscribes(&server, "f").is_empty()).await;
    server.publish("f", data(1));
    server.publish_hidden("f", data(2));
    server.publish("f", data(3));
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 3).await;
    assert_eq!(seen.feed("f"), seqs(1..=3), "no gap: the replay filled it");
    assert_eq!(
        subscribes(&server, "f"),
        [json!(0), json!(1)],
        "exactly one re-subscribe"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_hole_no_replay_fills_becomes_an_inferred_gap_for_exactly_the_missing_range() {
    // The server replays, but the log never had 3..4: one re-subscribe,
    // then the inferred gap.
    let server = json_server(JsonServerConfig::default()).await;
    let (engine, mut deliveries) = open_engine(config(&server.url(), profile(json!({}))));
    let mut events = engine.events();
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    wait_until("the subscribe", || !subscribes(&server, "f").is_empty()).await;
    let run = server.run_of("f");
    for n in [1, 2, 5, 6] {
        server.send_raw(&json!({"op": "ev", "ch": "f", "n": n, "run": run, "d": n}).to_string());
    }
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 4).await;
    assert_eq!(
        seen.feed("f"),
        [
            Item::Event(1),
            Item::Event(2),
            Item::InferredGap(3, 4),
            Item::Event(5),
            Item::Event(6)
        ]
    );
    assert_eq!(subscribes(&server, "f"), [json!(0), json!(2)]);
    let gap = wait_history(&mut events, HistoryKind::Gap).await;
    assert_eq!(gap.details["inferred"], true);
    engine.shutdown().await;
}

#[tokio::test]
async fn without_since_in_the_template_a_hole_is_inferred_without_asking() {
    let server = json_server(JsonServerConfig::default()).await;
    let profile = profile(json!({"subscribe": {"op": "sub", "ch": "{feed}"}}));
    let (engine, mut deliveries) = open_engine(config(&server.url(), profile));
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    wait_until("the subscribe", || {
        server.received().iter().any(|f| f["op"] == "sub")
    })
    .await;
    server.publish("f", data(1));
    server.publish_hidden("f", data(2));
    server.publish("f", data(3));
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 2).await;
    assert_eq!(
        seen.feed("f"),
        [Item::Event(1), Item::InferredGap(2, 2), Item::Event(3)]
    );
    let subs = server
        .received()
        .iter()
        .filter(|f| f["op"] == "sub")
        .count();
    assert_eq!(subs, 1, "nothing to ask: no re-subscribe");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_new_run_id_is_a_reset_and_numbering_starts_again() {
    let server = json_server(JsonServerConfig::default()).await;
    let (engine, mut deliveries) = open_engine(config(&server.url(), profile(json!({}))));
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    wait_until("the subscribe", || !subscribes(&server, "f").is_empty()).await;
    server.publish("f", data(1));
    server.publish("f", data(2));
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 2).await;
    server.restart_feed("f");
    let new_run = server.run_of("f");
    server.publish("f", data(1));
    collect_until(&mut deliveries, &mut seen, 3).await;
    assert_eq!(
        seen.feed("f"),
        [
            Item::Event(1),
            Item::Event(2),
            Item::Reset(new_run),
            Item::Event(1)
        ]
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn server_pings_are_answered_so_the_connection_survives_its_checks() {
    let server = json_server(JsonServerConfig {
        ping_every: Some(Duration::from_millis(60)),
        ..JsonServerConfig::default()
    })
    .await;
    let (engine, _deliveries) = open_engine(config(&server.url(), profile(json!({}))));
    engine.connect().await.unwrap();
    wait_until("five pongs", || {
        server
            .received()
            .iter()
            .filter(|f| f["op"] == "pong")
            .count()
            >= 5
    })
    .await;
    assert_eq!(server.connections(), 1, "never cut for a missing pong");
    let pong = server
        .received()
        .into_iter()
        .find(|f| f["op"] == "pong")
        .unwrap();
    assert!(pong["ts"].as_i64().is_some(), "ts copied back: {pong}");
    engine.shutdown().await;
}

#[tokio::test]
async fn without_an_answer_rule_the_server_cuts_at_its_check() {
    let server = json_server(JsonServerConfig {
        ping_every: Some(Duration::from_millis(60)),
        ..JsonServerConfig::default()
    })
    .await;
    let profile = profile(json!({"answer": null, "ignore": [{"/op": "welcome"}, {"/op": "ping"}]}));
    let (engine, _deliveries) = open_engine(config(&server.url(), profile));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let closed = wait_history(&mut events, HistoryKind::Disconnected).await;
    assert_eq!(closed.details["close_code"], 4000, "{closed:?}");
    engine.shutdown().await;
}

#[tokio::test]
async fn keepalive_messages_go_out_on_their_period() {
    let server = json_server(JsonServerConfig::default()).await;
    let profile = profile(json!({"keepalive": {"every_ms": 100, "send": {"op": "hb"}}}));
    let (engine, _deliveries) = open_engine(config(&server.url(), profile));
    engine.connect().await.unwrap();
    wait_until("three keepalives", || {
        server.received().iter().filter(|f| f["op"] == "hb").count() >= 3
    })
    .await;
    engine.shutdown().await;
}

#[tokio::test]
async fn publishes_wait_in_the_outbox_across_cuts_and_are_acked_once_each() {
    let server = json_server(JsonServerConfig::default()).await;
    let proxy = FaultProxy::start(server.addr()).await;
    let (engine, _deliveries) = open_engine(config(&proxy.url(), profile(json!({}))));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    wait_state(&mut events, "open", is_open).await;
    proxy.refuse(true);
    proxy.cut_all();
    wait_state(&mut events, "backoff", |s| {
        matches!(s, ConnectionState::Backoff { .. })
    })
    .await;
    let mut pending = Vec::new();
    for n in 1..=5u64 {
        let payload = serde_json::value::to_raw_value(&data(n)).unwrap();
        pending.push(
            engine
                .publish("out", payload, Some(format!("p-{n}")))
                .await
                .unwrap(),
        );
    }
    assert_eq!(engine.snapshot().await.unwrap().outbox.len(), 5);
    proxy.refuse(false);
    for (n, publish) in pending.into_iter().enumerate() {
        let ack = within(WAIT, "ack", publish).await.unwrap();
        assert_eq!(
            (ack.id, ack.seq),
            (format!("p-{}", n + 1), Some(n as u64 + 1))
        );
    }
    assert_eq!(server.head("out"), 5);
    // The same id again: joined by the server's dedupe, not published twice.
    let again = serde_json::value::to_raw_value(&data(1)).unwrap();
    let ack = within(
        WAIT,
        "ack",
        engine
            .publish("out", again, Some("p-1".into()))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(ack.seq, Some(1));
    assert_eq!(server.head("out"), 5);
    engine.shutdown().await;
}

#[tokio::test]
async fn without_an_ack_rule_a_publish_is_done_once_written() {
    let server = json_server(JsonServerConfig::default()).await;
    let (engine, _deliveries) = open_engine(config(&server.url(), profile(json!({"ack": null}))));
    engine.connect().await.unwrap();
    let payload = serde_json::value::to_raw_value(&data(7)).unwrap();
    let ack = within(
        WAIT,
        "written",
        engine.publish("out", payload, None).await.unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(ack.seq, None);
    wait_until("the publish on the server", || server.head("out") == 1).await;
    assert!(engine.snapshot().await.unwrap().outbox.is_empty());
    engine.shutdown().await;
}

#[tokio::test]
async fn a_feed_without_seq_gets_a_discontinuity_marker_after_each_reconnect_only() {
    let server = json_server(JsonServerConfig {
        numbered: false,
        ..JsonServerConfig::default()
    })
    .await;
    let proxy = FaultProxy::start(server.addr()).await;
    let profile = profile(json!({"event": {"match": {"/op": "ev"}, "feed": "/ch", "data": "/d"}}));
    let (engine, mut deliveries) = open_engine(config(&proxy.url(), profile));
    let mut events = engine.events();
    engine.subscribe("chat", StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    wait_until("the subscribe", || !subscribes(&server, "chat").is_empty()).await;
    server.publish("chat", json!("a"));
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 1).await;
    proxy.cut_all();
    wait_until("the second subscribe", || {
        subscribes(&server, "chat").len() == 2
    })
    .await;
    server.publish("chat", json!("b"));
    collect_until(&mut deliveries, &mut seen, 2).await;
    assert_eq!(
        seen.feed("chat"),
        [
            Item::Unnumbered("\"a\"".into()),
            Item::Discontinuity("reconnected".into()),
            Item::Unnumbered("\"b\"".into()),
        ]
    );
    assert_eq!(subscribes(&server, "chat"), [json!(null), json!(null)]);
    let marker = wait_history(&mut events, HistoryKind::Discontinuity).await;
    assert_eq!(marker.details["reason"], "reconnected");
    engine.shutdown().await;
}

/// A server that pushes every event unasked, and an engine whose profile
/// has no subscribe template, subscribed to `feed` and open.
async fn push_all(
    feed: &str,
) -> (
    JsonServer,
    holdline_engine::Engine,
    holdline_engine::Deliveries,
) {
    let server = json_server(JsonServerConfig {
        push_all: true,
        ..JsonServerConfig::default()
    })
    .await;
    let profile = profile(json!({"subscribe": null, "unsubscribe": null}));
    let (engine, deliveries) = open_engine(config(&server.url(), profile));
    let mut events = engine.events();
    engine.subscribe(feed, StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    wait_state(&mut events, "open", is_open).await;
    (server, engine, deliveries)
}

#[tokio::test]
async fn the_feed_star_takes_every_event_under_its_own_feed_name() {
    let (server, engine, mut deliveries) = push_all("*").await;
    server.publish("a", data(1));
    server.publish("b", data(1));
    server.publish("a", data(2));
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 3).await;
    assert_eq!(seen.feed("a"), seqs(1..=2));
    assert_eq!(seen.feed("b"), seqs(1..=1));
    engine.shutdown().await;
}

#[tokio::test]
async fn without_a_subscribe_template_only_the_named_feeds_are_delivered() {
    let (server, engine, mut deliveries) = push_all("a").await;
    server.publish("b", data(1));
    server.publish("a", data(1));
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 1).await;
    assert_eq!(seen.feed("a"), seqs(1..=1));
    assert!(seen.feed("b").is_empty());
    assert_eq!(engine.snapshot().await.unwrap().unrouted_events, 1);
    engine.shutdown().await;
}

#[tokio::test]
async fn without_event_feed_a_second_feed_is_refused() {
    let server = json_server(JsonServerConfig::default()).await;
    let profile = profile(json!({"event": {"match": {"/op": "ev"}, "seq": "/n", "data": "/d"}}));
    let (engine, _deliveries) = open_engine(config(&server.url(), profile));
    engine.subscribe("only", StartFrom::Live).await.unwrap();
    let err = engine
        .subscribe("second", StartFrom::Live)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no event.feed"), "{err}");
    engine.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_are_recorded_and_delivery_goes_on() {
    let server = json_server(JsonServerConfig::default()).await;
    let (engine, mut deliveries) = open_engine(config(&server.url(), profile(json!({}))));
    let mut events = engine.events();
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    wait_until("the subscribe", || !subscribes(&server, "f").is_empty()).await;
    let run = server.run_of("f");
    for bad in [
        "not json".to_owned(),
        "[1, 2]".to_owned(),
        json!({"op": "ev", "ch": "f", "d": 1}).to_string(),
        json!({"op": "ev", "n": 1, "d": 1}).to_string(),
        json!({"op": "surprise"}).to_string(),
    ] {
        server.send_raw(&bad);
    }
    server.send_raw(&json!({"op": "ev", "ch": "f", "n": 1, "run": run, "d": 1}).to_string());
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 1).await;
    assert_eq!(seen.feed("f"), seqs(1..=1));
    let mut reasons = Vec::new();
    for _ in 0..5 {
        reasons.push(
            wait_history(&mut events, HistoryKind::Malformed)
                .await
                .details["reason"]
                .clone(),
        );
    }
    let text = format!("{reasons:?}");
    for expected in [
        "not JSON",
        "not a JSON object",
        "event.seq",
        "event.feed",
        "matches no rule",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    assert_eq!(engine.snapshot().await.unwrap().malformed_frames, 5);
    engine.shutdown().await;
}

/// Connects once with `auth` and `headers` and returns what the upgrade
/// carried, checking the history never shows the token.
async fn upgrade_with(auth: Value, headers: Value) -> holdline_testkit::UpgradeSeen {
    let server = json_server(JsonServerConfig::default()).await;
    let profile = profile(json!({"auth": auth, "headers": headers}));
    let (engine, _deliveries) = open_engine(config(&server.url(), profile));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let mut history = Vec::new();
    within(WAIT, "open", async {
        loop {
            match events.recv().await {
                Ok(EngineEvent::History(entry)) => history.push(entry.to_string_lossy()),
                Ok(EngineEvent::State(state)) if is_open(&state) => break,
                Ok(_) => {}
                Err(err) => panic!("{err}"),
            }
        }
    })
    .await;
    engine.shutdown().await;
    for line in history {
        assert!(!line.contains(SECRET), "{line}");
    }
    server.upgrades().remove(0)
}

#[tokio::test]
async fn the_token_goes_where_auth_says_and_header_templates_are_rendered() {
    let seen = upgrade_with(json!("bearer"), json!({"X-Client": "holdline/{feed}"})).await;
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {SECRET}").as_str())
    );
    assert_eq!(seen.header("x-client"), Some("holdline/"));
    let seen = upgrade_with(json!({"query": "key"}), json!({})).await;
    assert_eq!(seen.uri, format!("/?key={SECRET}"));
    assert_eq!(seen.header("authorization"), None);
    let seen = upgrade_with(
        json!({"header": "X-Api-Key"}),
        json!({"X-Sig": "t={token}"}),
    )
    .await;
    assert_eq!(seen.header("x-api-key"), Some(SECRET));
    assert_eq!(seen.header("x-sig"), Some(format!("t={SECRET}").as_str()));
    let seen = upgrade_with(json!("none"), json!({})).await;
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.uri, "/");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_on_the_json_wire_loses_nothing_and_duplicates_nothing() {
    let seed = std::env::var("HOLDLINE_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("json chaos: seed {seed} (replay with HOLDLINE_CHAOS_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let server = json_server(JsonServerConfig {
        ping_every: Some(Duration::from_millis(100)),
        ..JsonServerConfig::default()
    })
    .await;
    let proxy = FaultProxy::start(server.addr()).await;
    let (engine, mut deliveries) = open_engine(config(&proxy.url(), profile(json!({}))));
    let mut events = engine.events();
    let feeds = ["x", "y"];
    for feed in feeds {
        engine.subscribe(feed, StartFrom::Beginning).await.unwrap();
    }
    engine.connect().await.unwrap();
    wait_state(&mut events, "first open", is_open).await;
    let mut seen = Seen::default();
    let mut published = 0u64;
    let mut pending = Vec::new();
    for fault in 0..20 {
        for _ in 0..rng.u64(5..40) {
            published += 1;
            for feed in feeds {
                server.publish(feed, data(published));
            }
        }
        let payload = serde_json::value::to_raw_value(&data(fault)).unwrap();
        pending.push(
            engine
                .publish("out", payload, Some(format!("c-{fault}")))
                .await
                .unwrap(),
        );
        match rng.u32(0..4) {
            0 => proxy.cut_all(),
            1 => {
                proxy.stall(true);
                tokio::task::yield_now().await;
                proxy.stall(false);
                proxy.cut_all();
            }
            2 => server.close_all(1012, "restart"),
            _ => {
                proxy.set_delay(Duration::from_millis(20));
                proxy.cut_all();
                proxy.set_delay(Duration::ZERO);
            }
        }
        let target = published as usize * feeds.len();
        collect_seen(
            &mut deliveries,
            &mut seen,
            &format!("seed {seed}: {target} events"),
            |s| s.events >= target,
        )
        .await;
    }
    for feed in feeds {
        assert_eq!(
            seen.feed(feed),
            seqs(1..=published),
            "feed {feed}, seed {seed}"
        );
    }
    let mut acked = Vec::new();
    for publish in pending {
        let ack = within(WAIT, &format!("ack, seed {seed}"), publish)
            .await
            .unwrap();
        acked.push(ack.seq.expect("acks carry n"));
    }
    acked.sort_unstable();
    assert_eq!(
        acked,
        (1..=20).collect::<Vec<_>>(),
        "seed {seed}: each publish once"
    );
    assert_eq!(server.head("out"), 20, "seed {seed}");
    let snapshot = engine.snapshot().await.unwrap();
    assert!(
        snapshot
            .feeds
            .iter()
            .all(|f| f.buffered == 0 && f.stats.gaps == 0)
    );
    // Nothing left over: the history's events were all observed.
    while let Ok(event) = events.try_recv() {
        if let EngineEvent::History(entry) = event {
            assert_ne!(entry.kind, HistoryKind::Gap, "seed {seed}: {entry:?}");
        }
    }
    engine.shutdown().await;
}
