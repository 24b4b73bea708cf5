//! The token goes into the upgrade request and nowhere else: not into
//! history, state, snapshots, tracing output or error messages.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use holdline_engine::{FeedUrl, HistoryKind, StartFrom};
use holdline_testkit::FaultProxy;
use support::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_token_appears_in_no_output() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = server(100, 250).await;
    let proxy = FaultProxy::start(server.local_addr()).await;
    // The token comes in the URL, as a user might paste it.
    let (url, token) = FeedUrl::parse(&format!("{}/feeds?token={TOKEN}", proxy.url())).unwrap();
    let mut config = fast_config(url.as_str(), "unused");
    config.token = token;
    let config_debug = format!("{config:?}");
    let (engine, mut deliveries) = open_engine(config);
    let mut observed = Vec::new();
    let mut events = engine.events();
    let mut everything = engine.events();
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    server.publish("f", &data(1)).await.unwrap();
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 1).await;
    proxy.cut_all();
    wait_history(&mut events, HistoryKind::Disconnected).await;
    wait_state(&mut events, "reopen", is_open).await;
    engine
        .publish("f", data(2), None)
        .await
        .unwrap()
        .await
        .unwrap();
    let snapshot = engine.snapshot().await.unwrap();
    observed.push(serde_json::to_string(&snapshot).unwrap());
    engine.shutdown().await;
    while let Ok(event) = everything.try_recv() {
        observed.push(serde_json::to_string(&event).unwrap());
    }

    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("connecting to"),
        "tracing output was not captured"
    );
    assert!(observed.iter().any(|e| e.contains("\"connected\"")));
    for (what, text) in [
        ("logs", &logs),
        ("config", &config_debug),
        ("events", &observed.join("\n")),
    ] {
        assert!(!text.contains(TOKEN), "the token leaked into {what}");
    }
}
