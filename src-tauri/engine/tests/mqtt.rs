//! The `mqtt` wire (profiles §5) against a real broker from npm (aedes,
//! MQTT 3.1.1) behind a WebSocket listener on loopback.

mod support;

use std::sync::Arc;
use std::time::Duration;

use holdline_engine::{
    Delivery, Engine, EngineConfig, HistoryKind, MemoryCursorStore, MemoryOutboxStore, Profile,
    StartFrom, Stores,
};
use holdline_testkit::{FaultProxy, ForwardProxy, MqttBroker, MqttBrokerConfig, within};
use serde_json::{Value, json};
use support::*;

const PASSWORD: &str = "mqtt-secret-2f8";

fn profile(extra: Value) -> Profile {
    profile_with(
        json!({"protocol": "mqtt", "client_id": "holdline-test", "keepalive_s": 2}),
        extra,
    )
}

fn config(url: &str, profile: Profile) -> EngineConfig {
    fast_config(url, PASSWORD).with_profile(profile)
}

async fn broker() -> MqttBroker {
    MqttBroker::start(MqttBrokerConfig {
        password: Some(PASSWORD.into()),
        username: None,
    })
    .await
}

fn n(i: u64) -> String {
    json!({ "n": i }).to_string()
}

#[tokio::test]
async fn wildcards_route_by_filter_payloads_keep_their_form_and_acks_follow_commits() {
    let mut broker = broker().await;
    let (engine, mut deliveries) = open_engine(config(&broker.url(), profile(json!({}))));
    let mut events = engine.events();
    for feed in ["sensors/+/temp", "alerts/#"] {
        engine.subscribe(feed, StartFrom::Live).await.unwrap();
    }
    engine.connect().await.unwrap();
    let login = wait_history(&mut events, HistoryKind::Sent).await;
    assert!(
        login.details["frame"]
            .as_str()
            .unwrap()
            .contains("password=<redacted>"),
        "{login:?}"
    );
    wait_open(&mut events).await;
    broker.wait_for_count("subscribe", 2).await;

    broker.publish("sensors/a/temp", r#"{"v":21.5}"#, 1).await;
    broker.publish("alerts/x/y", "plain words", 1).await;
    broker
        .publish_bytes("alerts/raw", &[0xff, 0x00, 0x10], 1)
        .await;
    broker.publish("alerts/empty", "", 0).await;
    broker.publish("other/topic", "nobody's", 1).await;
    let (mut seen, mut whole) = (Seen::default(), Vec::new());
    collect_whole(&mut deliveries, &mut seen, &mut whole, "4 messages", |s| {
        s.events >= 4
    })
    .await;
    assert_eq!(
        seen.feed("sensors/+/temp"),
        [Item::Unnumbered(r#"{"v":21.5}"#.into())]
    );
    assert_eq!(
        seen.feed("alerts/#"),
        [
            Item::Unnumbered(r#"{"text":"plain words"}"#.into()),
            Item::Unnumbered(r#"{"hex":"ff0010"}"#.into()),
            Item::Unnumbered(r#"{"text":""}"#.into()),
        ]
    );
    let Delivery::Event(first) = &whole[0] else {
        panic!("not an event")
    };
    let meta: Value = serde_json::from_str(first.meta.as_ref().unwrap().get()).unwrap();
    assert_eq!(
        meta,
        json!({"topic": "sensors/a/temp", "qos": 1, "retain": false})
    );
    // Every QoS 1 message committed was acknowledged.
    broker.wait_for_count("ack", 3).await;
    let connect = &broker.seen("connect")[0];
    assert_eq!(connect["client_id"], "holdline-test");
    assert_eq!(connect["clean"], false, "a persistent session");
    assert_eq!(connect["has_password"], true);
    assert_eq!(
        connect["username"], "",
        "the password travels with an empty username"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn what_is_published_while_the_client_is_away_arrives_when_it_returns() {
    let mut broker = broker().await;
    let cursors = Arc::new(MemoryCursorStore::default());
    let url = broker.url();
    // No client id in the profile: one is made and kept with the cursors.
    let start = || {
        let stores = Stores {
            cursors: cursors.clone(),
            outbox: Arc::new(MemoryOutboxStore),
        };
        let profile = Profile::load(&json!({"protocol": "mqtt"})).unwrap();
        Engine::start(config(&url, profile), stores).expect("engine starts")
    };
    let (engine, mut deliveries) = start();
    let mut events = engine.events();
    engine.subscribe("news/#", StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    wait_open(&mut events).await;
    broker.wait_for_count("subscribe", 1).await;
    broker.publish("news/a", &n(1), 1).await;
    let (mut seen, mut whole) = (Seen::default(), Vec::new());
    collect_whole(&mut deliveries, &mut seen, &mut whole, "the first", |s| {
        s.events >= 1
    })
    .await;
    engine.shutdown().await;
    drop(deliveries);
    broker.wait_for_count("disconnect", 1).await;
    for i in 2..=4 {
        broker.publish("news/a", &n(i), 1).await;
    }

    let (engine, mut deliveries) = start();
    let mut events = engine.events();
    engine.subscribe("news/#", StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    let ready = wait_history(&mut events, HistoryKind::Ready).await;
    assert_eq!(ready.details["continuity_lost"], json!([]), "{ready:?}");
    collect_whole(
        &mut deliveries,
        &mut seen,
        &mut whole,
        "the three queued",
        |s| s.events >= 4,
    )
    .await;
    assert_eq!(
        seen.feed("news/#"),
        (1..=4).map(|i| Item::Unnumbered(n(i))).collect::<Vec<_>>()
    );
    let connects = broker.seen("connect");
    assert_eq!(connects[0]["client_id"], connects[1]["client_id"]);
    assert!(
        connects[0]["client_id"]
            .as_str()
            .unwrap()
            .starts_with("holdline"),
        "{connects:?}"
    );
    engine.shutdown().await;
}

async fn tcp_cut_loses_nothing(tunnel: Tunnel<'_>) {
    let mut broker = broker().await;
    let proxy = FaultProxy::start(broker.addr()).await;
    let profile = profile(json!({"event_seq": "/n"}));
    let (engine, mut deliveries) = open_engine(via(config(&proxy.url(), profile), tunnel));
    let mut events = engine.events();
    engine.subscribe("px", StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    wait_open(&mut events).await;
    broker.wait_for_count("subscribe", 1).await;
    for i in 1..=5 {
        broker.publish("px", &n(i), 1).await;
    }
    let (mut seen, mut whole) = (Seen::default(), Vec::new());
    collect_whole(&mut deliveries, &mut seen, &mut whole, "5", |s| {
        s.events >= 5
    })
    .await;
    proxy.refuse(true);
    proxy.cut_all();
    broker.wait_for_count("disconnect", 1).await;
    for i in 6..=10 {
        broker.publish("px", &n(i), 1).await;
    }
    proxy.refuse(false);
    collect_whole(&mut deliveries, &mut seen, &mut whole, "10", |s| {
        s.events >= 10
    })
    .await;
    assert_eq!(seen.feed("px"), seqs(1..=10), "no marker: the session held");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_tcp_cut_loses_nothing_and_numbered_messages_come_once_in_order() {
    tcp_cut_loses_nothing(None).await;
}

#[tokio::test]
async fn through_a_socks5h_proxy_a_tcp_cut_loses_nothing() {
    if let Some(proxy) = ForwardProxy::microsocks(None).await {
        tcp_cut_loses_nothing(Some((&proxy, "socks5h"))).await;
    }
}

#[tokio::test]
async fn a_broker_restarted_without_its_state_marks_every_feed_session_lost() {
    let mut first = broker().await;
    let proxy = FaultProxy::start(first.addr()).await;
    let (engine, mut deliveries) = open_engine(config(&proxy.url(), profile(json!({}))));
    let mut events = engine.events();
    for feed in ["a/#", "b"] {
        engine.subscribe(feed, StartFrom::Live).await.unwrap();
    }
    engine.connect().await.unwrap();
    wait_open(&mut events).await;
    first.wait_for_count("subscribe", 2).await;
    first.publish("a/x", &n(1), 1).await;
    let (mut seen, mut whole) = (Seen::default(), Vec::new());
    collect_whole(&mut deliveries, &mut seen, &mut whole, "1", |s| {
        s.events >= 1
    })
    .await;

    first.kill().await;
    let mut second = broker().await;
    proxy.set_upstream(second.addr());
    proxy.cut_all();
    second.wait_for_count("subscribe", 2).await;
    second.publish("a/x", &n(2), 1).await;
    collect_whole(&mut deliveries, &mut seen, &mut whole, "the next", |s| {
        s.events >= 2
    })
    .await;
    let lost = Item::Discontinuity("session_lost".into());
    assert_eq!(
        seen.feed("a/#"),
        [Item::Unnumbered(n(1)), lost.clone(), Item::Unnumbered(n(2))]
    );
    assert_eq!(seen.feed("b"), [lost], "every feed is marked");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_publish_is_acknowledged_by_puback_and_sent_again_after_a_reconnect() {
    let broker = broker().await;
    let proxy = FaultProxy::start(broker.addr()).await;
    let (engine, _deliveries) = open_engine(config(&proxy.url(), profile(json!({}))));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    wait_open(&mut events).await;
    let pending = engine
        .publish("out/orders", data(1), Some("order-1".into()))
        .await
        .unwrap();
    let ack = within(WAIT, "PUBACK", pending).await.expect("acknowledged");
    assert_eq!(ack.seq, None);
    let published = broker.wait_for_count("publish", 1).await;
    assert_eq!(published[0]["topic"], "out/orders");
    assert_eq!(published[0]["payload"], r#"{"n":1}"#);
    assert_eq!(published[0]["qos"], 1);

    proxy.stall(true);
    let pending = engine
        .publish("out/orders", data(2), Some("order-2".into()))
        .await
        .unwrap();
    proxy.cut_all();
    proxy.stall(false);
    within(WAIT, "PUBACK after the reconnect", pending)
        .await
        .expect("acknowledged");
    let published = broker.wait_for_count("publish", 2).await;
    assert_eq!(published[1]["payload"], r#"{"n":2}"#);
    assert!(
        engine.publish("out/+", data(3), None).await.is_err(),
        "no wildcards in a topic"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_wrong_password_stops_with_needs_login() {
    let broker = broker().await;
    let (engine, _deliveries) = open_engine(
        fast_config(&broker.url(), "not-the-password").with_profile(profile(json!({}))),
    );
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let reason = wait_needs_login(&mut events).await;
    assert!(reason.contains("bad user name or password"), "{reason}");
    assert_eq!(broker.seen("refused").len(), 1, "asked once, not again");
    engine.shutdown().await;
}

#[tokio::test]
async fn keepalive_holds_an_idle_link_and_a_stalled_one_is_declared_dead_and_reconnected() {
    let broker = broker().await;
    let proxy = FaultProxy::start(broker.addr()).await;
    let mut config = config(&proxy.url(), profile(json!({"keepalive_s": 1})));
    config.heartbeat = Duration::from_secs(30);
    let (engine, _deliveries) = open_engine(config);
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let ready = wait_history(&mut events, HistoryKind::Ready).await;
    assert_eq!(
        ready.details["heartbeat_ms"],
        json!(750),
        "half of 1.5 × keepalive"
    );
    // Idle past two keepalives: PINGREQ keeps it (the broker would drop a
    // client silent for 1.5 × keepalive).
    let quiet = tokio::time::timeout(
        Duration::from_millis(2500),
        wait_history(&mut events, HistoryKind::Disconnected),
    )
    .await;
    assert!(quiet.is_err(), "dropped while idle: {quiet:?}");
    let stalled_at = tokio::time::Instant::now();
    proxy.stall(true);
    let dropped = wait_history(&mut events, HistoryKind::Disconnected).await;
    assert_eq!(
        dropped.details["cause"]["kind"], "heartbeat_timeout",
        "{dropped:?}"
    );
    assert!(
        stalled_at.elapsed() <= Duration::from_millis(1500 + 300),
        "declared dead after {:?}",
        stalled_at.elapsed()
    );
    proxy.stall(false);
    wait_open(&mut events).await;
    engine.shutdown().await;
}
