//! The `mqtt` wire speaking MQTT 5 to a second real broker, `rumqttd`
//! (crates.io), through a WebSocket front on loopback: CONNECT with clean
//! start off and CONNACK's session present, SUBSCRIBE and SUBACK, PUBLISH
//! and PUBACK both ways, and `session_lost` when the broker lost its
//! state.

mod support;

use std::sync::Arc;

use holdline_engine::{
    Delivery, Engine, EngineConfig, EngineEvent, HistoryKind, MemoryCursorStore, MemoryOutboxStore,
    Profile, StartFrom, Stores,
};
use holdline_testkit::{Rumqttd, WsTcpBridge, within};
use serde_json::{Value, json};
use support::*;

fn profile() -> Profile {
    Profile::load(&json!({"protocol": "mqtt", "version": "5", "client_id": "holdline-v5"}))
        .expect("the test profile is valid")
}

fn config(url: &str) -> EngineConfig {
    fast_config(url, "unused").with_profile(profile())
}

/// An engine on its own that only publishes (`holdline-v5-pub`).
async fn publish(url: &str, topic: &str, n: u64) {
    let mut config = config(url);
    config.publisher = true;
    let (engine, _deliveries) = Engine::start(config, Stores::default()).unwrap();
    engine.connect().await.unwrap();
    let pending = engine
        .publish(topic, data(n), Some(format!("p-{n}")))
        .await
        .unwrap();
    let ack = within(WAIT, "PUBACK", pending).await.expect("acknowledged");
    assert_eq!(ack.seq, None);
    engine.shutdown().await;
}

async fn ready(events: &mut tokio::sync::broadcast::Receiver<EngineEvent>) -> Value {
    wait_history(events, HistoryKind::Ready).await.details
}

#[tokio::test]
async fn an_mqtt_5_session_outlives_the_client_and_a_broker_restart_loses_it() {
    let mut broker = Rumqttd::start().await;
    let bridge = WsTcpBridge::start(broker.addr()).await;
    let url = bridge.url();
    let cursors = Arc::new(MemoryCursorStore::default());
    let start = || {
        let stores = Stores {
            cursors: cursors.clone(),
            outbox: Arc::new(MemoryOutboxStore),
        };
        Engine::start(config(&url), stores).expect("engine starts")
    };

    let (engine, mut deliveries) = start();
    let mut events = engine.events();
    engine.subscribe("t/#", StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    ready(&mut events).await;
    let suback = wait_history(&mut events, HistoryKind::Protocol).await;
    assert_eq!(suback.details["granted_qos"], 1, "{suback:?}");
    publish(&url, "t/a", 1).await;
    let mut seen = Seen::default();
    let mut first = Vec::new();
    collect_whole(&mut deliveries, &mut seen, &mut first, "the first", |s| {
        s.events >= 1
    })
    .await;
    let Delivery::Event(event) = &first[0] else {
        panic!("not an event")
    };
    let meta: Value = serde_json::from_str(event.meta.as_ref().unwrap().get()).unwrap();
    assert_eq!(meta["topic"], "t/a");
    engine.shutdown().await;
    drop(deliveries);

    // Away and back: the broker kept the session (rumqttd 0.20 says so,
    // but delivers nothing more to a resumed session; the queue across an
    // absence is tested against aedes in `mqtt.rs`).
    let (engine, mut deliveries) = start();
    let mut events = engine.events();
    engine.subscribe("t/#", StartFrom::Live).await.unwrap();
    engine.connect().await.unwrap();
    let held = ready(&mut events).await;
    assert_eq!(
        held["continuity_lost"],
        json!([]),
        "session present: {held}"
    );
    // The broker restarts without its state: the session is lost.
    broker.kill().await;
    let second = Rumqttd::start().await;
    bridge.set_upstream(second.addr());
    let lost = ready(&mut events).await;
    assert_eq!(lost["continuity_lost"], json!(["t/#"]), "{lost}");
    wait_history(&mut events, HistoryKind::Protocol).await;
    publish(&url, "t/c", 2).await;
    collect_seen(&mut deliveries, &mut seen, "after the restart", |s| {
        s.events >= 2
    })
    .await;
    assert_eq!(
        seen.feed("t/#"),
        [
            Item::Unnumbered(r#"{"n":1}"#.into()),
            Item::Discontinuity("session_lost".into()),
            Item::Unnumbered(r#"{"n":2}"#.into()),
        ]
    );
    engine.shutdown().await;
}
