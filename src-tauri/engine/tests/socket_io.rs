//! The `socket.io` wire (profiles §4) against the real `socket.io` server
//! from npm, on loopback, with connection state recovery on and an auth
//! middleware that wants the token in the CONNECT payload.

mod support;

use std::sync::Arc;
use std::time::Duration;

use holdline_engine::{
    Delivery, Engine, EngineConfig, HistoryKind, MemoryCursorStore, MemoryOutboxStore, Profile,
    StartFrom, Stores,
};
use holdline_testkit::{FaultProxy, ForwardProxy, SocketIoConfig, SocketIoServer, within};
use serde_json::{Value, json};
use support::*;

const SECRET: &str = "sio-secret-5d1e";

fn profile(extra: Value) -> Profile {
    profile_with(json!({"protocol": "socket.io"}), extra)
}

fn config(url: &str, profile: Profile) -> EngineConfig {
    fast_config(url, SECRET).with_profile(profile)
}

async fn sio_server(config: SocketIoConfig) -> SocketIoServer {
    SocketIoServer::start(SocketIoConfig {
        token: Some(SECRET.into()),
        ..config
    })
    .await
}

async fn emit_ticks(server: &mut SocketIoServer, range: std::ops::RangeInclusive<u64>) {
    for n in range {
        server.emit(None, "tick", vec![json!({ "n": n })]).await;
    }
}

fn ticks(range: std::ops::RangeInclusive<u64>) -> Vec<Item> {
    range
        .map(|n| Item::Unnumbered(format!("{{\"n\":{n}}}")))
        .collect()
}

#[tokio::test]
async fn events_arrive_in_order_under_their_names_and_the_token_travels_only_in_connect() {
    let mut server = sio_server(SocketIoConfig::default()).await;
    let (engine, mut deliveries) = open_engine(config(&server.url(), profile(json!({}))));
    let mut events = engine.events();
    engine.subscribe("tick", StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    let login = wait_history(&mut events, HistoryKind::Sent).await;
    assert_eq!(login.details["frame"], r#"40{"token":"<redacted>"}"#);
    wait_open(&mut events).await;

    emit_ticks(&mut server, 1..=40).await;
    server.emit(None, "other", vec![json!(1)]).await;
    let (mut seen, mut whole) = (Seen::default(), Vec::new());
    collect_whole(&mut deliveries, &mut seen, &mut whole, "40 ticks", |s| {
        s.events >= 40
    })
    .await;
    assert_eq!(
        seen.feed("tick"),
        ticks(1..=40),
        "in order, offsets stripped"
    );
    assert!(seen.feed("other").is_empty(), "an unsubscribed event name");
    let Delivery::Event(first) = &whole[0] else {
        panic!("not an event: {:?}", whole[0])
    };
    assert_eq!(
        first.meta.as_ref().map(|m| m.get()),
        Some(r#"{"event":"tick"}"#)
    );
    assert_eq!((first.seq, first.epoch.as_deref()), (None, None));
    assert!(first.session.is_some(), "recovery is on: a resume point");

    let connection = &server.connections()[0];
    assert_eq!(connection["auth_token"], SECRET);
    assert_eq!(connection["recovered"], false);
    assert!(
        connection["headers"].get("authorization").is_none(),
        "{connection}"
    );
    assert!(!connection["url"].as_str().unwrap().contains(SECRET));
    assert_eq!(connection["query"]["EIO"], "4");
    assert_eq!(connection["query"]["transport"], "websocket");
    engine.shutdown().await;
}

async fn tcp_cut_recovered(tunnel: Tunnel<'_>) {
    let mut server = sio_server(SocketIoConfig::default()).await;
    let proxy = FaultProxy::start(server.addr()).await;
    let (engine, mut deliveries) =
        open_engine(via(config(&proxy.url(), profile(json!({}))), tunnel));
    let mut events = engine.events();
    engine.subscribe("tick", StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    wait_open(&mut events).await;
    emit_ticks(&mut server, 1..=5).await;
    let (mut seen, mut whole) = (Seen::default(), Vec::new());
    collect_whole(&mut deliveries, &mut seen, &mut whole, "5 ticks", |s| {
        s.events >= 5
    })
    .await;

    // The link drops; what is emitted meanwhile waits in the server's
    // recovery buffer.
    proxy.refuse(true);
    proxy.cut_all();
    server
        .wait_for("the server to see the transport close", |l| {
            l["type"] == "disconnect" && l["reason"] == "transport close"
        })
        .await;
    emit_ticks(&mut server, 6..=10).await;
    proxy.refuse(false);
    let ready = wait_history(&mut events, HistoryKind::Ready).await;
    assert_eq!(ready.details["continuity_lost"], json!([]), "{ready:?}");
    emit_ticks(&mut server, 11..=15).await;
    collect_whole(&mut deliveries, &mut seen, &mut whole, "15 ticks", |s| {
        s.events >= 15
    })
    .await;
    assert_eq!(seen.feed("tick"), ticks(1..=15), "recovered: no marker");
    let connections = server.connections();
    assert_eq!(connections.len(), 2);
    assert_eq!(connections[1]["recovered"], true, "{connections:?}");
    assert_eq!(connections[1]["has_pid"], true);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_tcp_cut_is_recovered_with_nothing_lost_and_no_marker() {
    tcp_cut_recovered(None).await;
}

#[tokio::test]
async fn through_an_http_proxy_a_tcp_cut_is_recovered_with_nothing_lost() {
    if let Some(proxy) = ForwardProxy::tinyproxy(None).await {
        tcp_cut_recovered(Some((&proxy, "http"))).await;
    }
}

#[tokio::test]
async fn a_server_restart_is_not_recovered_marks_every_feed_and_events_go_on() {
    let mut first = sio_server(SocketIoConfig::default()).await;
    let proxy = FaultProxy::start(first.addr()).await;
    let (engine, mut deliveries) = open_engine(config(&proxy.url(), profile(json!({}))));
    let mut events = engine.events();
    for feed in ["tick", "*"] {
        engine.subscribe(feed, StartFrom::Live).await.unwrap();
    }
    engine.connect().await.unwrap();
    wait_open(&mut events).await;
    emit_ticks(&mut first, 1..=3).await;
    first.emit(None, "news", vec![json!("before")]).await;
    let (mut seen, mut whole) = (Seen::default(), Vec::new());
    collect_whole(
        &mut deliveries,
        &mut seen,
        &mut whole,
        "3 ticks and news",
        |s| s.events >= 4,
    )
    .await;

    first.kill().await;
    let mut second = sio_server(SocketIoConfig::default()).await;
    proxy.set_upstream(second.addr());
    proxy.cut_all();
    second.wait_for_connections(1).await;
    wait_open(&mut events).await;
    emit_ticks(&mut second, 4..=5).await;
    second.emit(None, "news", vec![json!("hello")]).await;
    collect_whole(
        &mut deliveries,
        &mut seen,
        &mut whole,
        "the events after",
        |s| s.events >= 7,
    )
    .await;
    let marker = Item::Discontinuity("not_recovered".into());
    let mut expected = ticks(1..=3);
    expected.push(marker.clone());
    expected.extend(ticks(4..=5));
    assert_eq!(seen.feed("tick"), expected);
    assert_eq!(
        seen.feed("news"),
        [
            Item::Unnumbered("\"before\"".into()),
            marker,
            Item::Unnumbered("\"hello\"".into())
        ],
        "a feed taken under * is marked too: {seen:?}"
    );
    assert_eq!(second.connections()[0]["has_pid"], true);
    assert_eq!(second.connections()[0]["recovered"], false);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_refused_connect_stops_with_needs_login_and_its_message() {
    let server = sio_server(SocketIoConfig::default()).await;
    let (engine, _deliveries) =
        open_engine(fast_config(&server.url(), "not-the-token").with_profile(profile(json!({}))));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let reason = wait_needs_login(&mut events).await;
    assert!(reason.contains("CONNECT_ERROR: unauthorized"), "{reason}");
    assert_eq!(
        server
            .lines()
            .iter()
            .filter(|l| l["type"] == "refused")
            .count(),
        1
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_stalled_link_is_declared_dead_within_ping_interval_plus_timeout_and_reconnects() {
    let (interval, timeout) = (300, 200);
    let server = sio_server(SocketIoConfig {
        ping_interval_ms: interval,
        ping_timeout_ms: timeout,
        ..SocketIoConfig::default()
    })
    .await;
    let proxy = FaultProxy::start(server.addr()).await;
    let mut config = config(&proxy.url(), profile(json!({})));
    // The configured heartbeat must not be what notices: the server's
    // pings set the limit.
    config.heartbeat = Duration::from_secs(30);
    let (engine, _deliveries) = open_engine(config);
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let ready = wait_history(&mut events, HistoryKind::Ready).await;
    assert_eq!(
        ready.details["heartbeat_ms"],
        json!((interval + timeout) / 2)
    );
    // Answered pings keep it open past several intervals (unanswered,
    // the server would close it after one interval and timeout).
    let quiet = tokio::time::timeout(
        Duration::from_millis(3 * interval),
        wait_history(&mut events, HistoryKind::Disconnected),
    )
    .await;
    assert!(
        quiet.is_err(),
        "dropped while pings were answered: {quiet:?}"
    );
    assert!(!server.lines().iter().any(|l| l["type"] == "disconnect"));
    let stalled_at = tokio::time::Instant::now();
    proxy.stall(true);
    let dropped = wait_history(&mut events, HistoryKind::Disconnected).await;
    let waited = stalled_at.elapsed();
    assert_eq!(
        dropped.details["cause"]["kind"], "heartbeat_timeout",
        "{dropped:?}"
    );
    assert!(
        waited <= Duration::from_millis(interval + timeout + 250),
        "declared dead after {waited:?}"
    );
    proxy.stall(false);
    wait_open(&mut events).await;
    engine.shutdown().await;
}

#[tokio::test]
async fn subscribe_emits_are_sent_after_every_reconnect_and_rooms_carry_the_feed() {
    let mut server = sio_server(SocketIoConfig::default()).await;
    let proxy = FaultProxy::start(server.addr()).await;
    let profile = profile(json!({"subscribe": ["join", "{feed}"]}));
    let (engine, mut deliveries) = open_engine(config(&proxy.url(), profile));
    let mut events = engine.events();
    engine.subscribe("tick", StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    server.wait_for_received(1).await;
    server
        .emit(Some("tick"), "tick", vec![json!({"n": 1})])
        .await;
    let (mut seen, mut whole) = (Seen::default(), Vec::new());
    collect_whole(
        &mut deliveries,
        &mut seen,
        &mut whole,
        "the room's tick",
        |s| s.events >= 1,
    )
    .await;
    for round in 2..=3 {
        proxy.cut_all();
        server.wait_for_connections(round).await;
        server.wait_for_received(round).await;
    }
    let joins = server.received();
    assert!(
        joins
            .iter()
            .all(|r| r["event"] == "join" && r["args"] == json!(["tick"])),
        "{joins:?}"
    );
    assert_eq!(joins.len(), 3, "one per connection, recovered or not");
    wait_open(&mut events).await;
    server
        .emit(Some("tick"), "tick", vec![json!({"n": 2})])
        .await;
    collect_whole(
        &mut deliveries,
        &mut seen,
        &mut whole,
        "the next tick",
        |s| s.events >= 2,
    )
    .await;
    assert_eq!(seen.feed("tick"), ticks(1..=2), "both cuts recovered");
    assert!(
        server.connections()[1..]
            .iter()
            .all(|c| c["recovered"] == true)
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_publish_is_acknowledged_and_an_unacknowledged_one_is_sent_again_after_a_reconnect() {
    let server = sio_server(SocketIoConfig::default()).await;
    let proxy = FaultProxy::start(server.addr()).await;
    let profile = profile(json!({"publish_args": [{"id": "{id}", "body": "{data}"}]}));
    let (engine, _deliveries) = open_engine(config(&proxy.url(), profile));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    wait_open(&mut events).await;

    let pending = engine
        .publish("chat", data(1), Some("pub-1".into()))
        .await
        .unwrap();
    let ack = within(WAIT, "the ack", pending)
        .await
        .expect("acknowledged");
    assert_eq!(ack.seq, None);
    let received = server.wait_for_received(1).await;
    assert_eq!(received[0]["event"], "chat");
    assert_eq!(
        received[0]["args"],
        json!([{"id": "pub-1", "body": {"n": 1}}])
    );
    assert_eq!(received[0]["acked"], true);

    // Written into a stalled link, never read: it goes again on the next
    // connection, with a fresh ack id.
    proxy.stall(true);
    let pending = engine
        .publish("chat", data(2), Some("pub-2".into()))
        .await
        .unwrap();
    proxy.cut_all();
    proxy.stall(false);
    let ack = within(WAIT, "the ack after the reconnect", pending)
        .await
        .expect("acknowledged");
    assert_eq!(ack.seq, None);
    let received = server.wait_for_received(2).await;
    assert_eq!(
        received[1]["args"],
        json!([{"id": "pub-2", "body": {"n": 2}}])
    );
    assert_eq!(server.connections().len(), 2);
    engine.shutdown().await;
}

#[tokio::test]
async fn binary_attachments_arrive_as_hex_and_every_event_reaches_the_star_feed() {
    let mut server = sio_server(SocketIoConfig::default()).await;
    let (engine, mut deliveries) = open_engine(config(&server.url(), profile(json!({}))));
    let mut events = engine.events();
    engine.subscribe("*", StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    wait_open(&mut events).await;
    server
        .emit_binary(
            "blob",
            vec![json!({"name": "x"})],
            &[&[0xde, 0xad, 0xbe, 0xef]],
        )
        .await;
    server.emit(None, "none", vec![]).await;
    server
        .emit(None, "pair", vec![json!(1), json!("two")])
        .await;
    let (mut seen, mut whole) = (Seen::default(), Vec::new());
    collect_whole(
        &mut deliveries,
        &mut seen,
        &mut whole,
        "three events",
        |s| s.events >= 3,
    )
    .await;
    assert_eq!(
        seen.feed("blob"),
        [Item::Unnumbered(
            r#"[{"name":"x"},{"hex":"deadbeef"}]"#.into()
        )]
    );
    assert_eq!(seen.feed("none"), [Item::Unnumbered("null".into())]);
    assert_eq!(seen.feed("pair"), [Item::Unnumbered(r#"[1,"two"]"#.into())]);
    let names: Vec<String> = whole
        .iter()
        .filter_map(|d| match d {
            Delivery::Event(e) => e.meta.as_ref().map(|m| m.get().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(
        names,
        [
            r#"{"event":"blob"}"#,
            r#"{"event":"none"}"#,
            r#"{"event":"pair"}"#
        ]
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_disconnect_from_the_server_stops_without_reconnecting() {
    let mut server = sio_server(SocketIoConfig::default()).await;
    let (engine, _deliveries) = open_engine(config(&server.url(), profile(json!({}))));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    wait_open(&mut events).await;
    server.disconnect_all().await;
    let reason = wait_stopped(&mut events).await;
    assert!(reason.contains("io server disconnect"), "{reason}");
    assert_eq!(server.connections().len(), 1, "no reconnect");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_new_engine_on_the_same_stores_recovers_what_was_emitted_while_it_was_gone() {
    let mut server = sio_server(SocketIoConfig::default()).await;
    let cursors = Arc::new(MemoryCursorStore::default());
    let url = server.url();
    let start = || {
        let stores = Stores {
            cursors: cursors.clone(),
            outbox: Arc::new(MemoryOutboxStore),
        };
        Engine::start(config(&url, profile(json!({}))), stores).expect("engine starts")
    };
    let (engine, mut deliveries) = start();
    let mut events = engine.events();
    engine.subscribe("tick", StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    wait_open(&mut events).await;
    emit_ticks(&mut server, 1..=4).await;
    let (mut seen, mut whole) = (Seen::default(), Vec::new());
    collect_whole(&mut deliveries, &mut seen, &mut whole, "4 ticks", |s| {
        s.events >= 4
    })
    .await;
    engine.shutdown().await;
    drop(deliveries);
    server
        .wait_for("the server to keep the session", |l| {
            l["type"] == "disconnect"
        })
        .await;
    emit_ticks(&mut server, 5..=7).await;

    let (engine, mut deliveries) = start();
    let mut events = engine.events();
    engine.subscribe("tick", StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    let ready = wait_history(&mut events, HistoryKind::Ready).await;
    assert_eq!(ready.details["continuity_lost"], json!([]), "{ready:?}");
    let mut after = Seen::default();
    collect_whole(
        &mut deliveries,
        &mut after,
        &mut whole,
        "the 3 missed ticks",
        |s| s.events >= 3,
    )
    .await;
    assert_eq!(after.feed("tick"), ticks(5..=7));
    assert_eq!(server.connections()[1]["recovered"], true);
    engine.shutdown().await;
}
