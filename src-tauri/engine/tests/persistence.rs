//! Cursors and the outbox outlive the engine: a restarted client resumes
//! exactly where its consumer stopped, and resends what was never acked.

mod support;

use std::sync::{Arc, Mutex};

use holdline_engine::{
    Engine, EngineEvent, FileCursorStore, OutboxEntry, OutboxStore, PublishStatus, StartFrom,
    StoreError, Stores,
};
use holdline_testkit::FaultProxy;
use support::*;

#[tokio::test]
async fn a_restarted_engine_resumes_from_the_last_committed_event() {
    let server = server(1000, 250).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cursors.json");
    for n in 1..=10 {
        server.publish("f", &data(n)).await.unwrap();
    }
    {
        let (cursors, _) = FileCursorStore::open(&path).unwrap();
        let stores = Stores {
            cursors: Arc::new(cursors),
            ..Stores::default()
        };
        let (engine, mut deliveries) =
            Engine::start(fast_config(&server.url(), TOKEN), stores).unwrap();
        engine.subscribe("f", StartFrom::Beginning).await.unwrap();
        engine.connect().await.unwrap();
        let mut seen = Seen::default();
        // The consumer handles four events, then the process "stops".
        collect_until(&mut deliveries, &mut seen, 4).await;
        assert_eq!(seen.feed("f"), seqs(1..=4));
        engine.shutdown().await;
    }
    let (cursors, recovery) = FileCursorStore::open(&path).unwrap();
    assert_eq!(recovery, None);
    let stores = Stores {
        cursors: Arc::new(cursors),
        ..Stores::default()
    };
    let (engine, mut deliveries) =
        Engine::start(fast_config(&server.url(), TOKEN), stores).unwrap();
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    for n in 11..=12 {
        server.publish("f", &data(n)).await.unwrap();
    }
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 8).await;
    assert_eq!(seen.feed("f"), seqs(5..=12));
    engine.shutdown().await;
}

/// An outbox kept by the embedder (the app keeps it in SQLite).
#[derive(Default, Clone)]
struct SharedOutbox(Arc<Mutex<Vec<OutboxEntry>>>);

impl OutboxStore for SharedOutbox {
    fn load(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(self.0.lock().unwrap().clone())
    }
    fn put(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        self.0.lock().unwrap().push(entry.clone());
        Ok(())
    }
    fn remove(&self, id: &str) -> Result<(), StoreError> {
        self.0.lock().unwrap().retain(|e| e.id != id);
        Ok(())
    }
}

#[tokio::test]
async fn an_outbox_store_carries_unacked_publishes_across_a_restart() {
    let server = server(1000, 250).await;
    let proxy = FaultProxy::start(server.local_addr()).await;
    proxy.refuse(true);
    let outbox = SharedOutbox::default();
    {
        let stores = Stores {
            outbox: Arc::new(outbox.clone()),
            ..Stores::default()
        };
        let (engine, _deliveries) =
            Engine::start(fast_config(&proxy.url(), TOKEN), stores).unwrap();
        engine.connect().await.unwrap();
        for n in 1..=3 {
            let _pending = engine
                .publish("later", data(n), Some(format!("keep-{n}")))
                .await
                .unwrap();
        }
        engine.shutdown().await;
    }
    assert_eq!(outbox.0.lock().unwrap().len(), 3);
    proxy.refuse(false);
    let stores = Stores {
        outbox: Arc::new(outbox.clone()),
        ..Stores::default()
    };
    let (engine, _deliveries) = Engine::start(fast_config(&proxy.url(), TOKEN), stores).unwrap();
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let mut acked = Vec::new();
    while acked.len() < 3 {
        let event = wait_event(&mut events, "publish acked", |e| {
            matches!(e, EngineEvent::Publish(u) if matches!(u.status, PublishStatus::Acked { .. }))
        })
        .await;
        if let EngineEvent::Publish(update) = event {
            acked.push(update.id);
        }
    }
    assert_eq!(acked, ["keep-1", "keep-2", "keep-3"]);
    assert!(outbox.0.lock().unwrap().is_empty());
    assert_eq!(server.head("later").await.unwrap().unwrap().1, 3);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_full_outbox_refuses_at_once_and_loses_nothing_queued() {
    let server = server(1000, 250).await;
    let proxy = FaultProxy::start(server.local_addr()).await;
    proxy.refuse(true);
    let mut config = fast_config(&proxy.url(), TOKEN);
    config.outbox_capacity = 2;
    let (engine, _deliveries) = open_engine(config);
    engine.connect().await.unwrap();
    let first = engine.publish("f", data(1), None).await.unwrap();
    let second = engine.publish("f", data(2), None).await.unwrap();
    let full = engine.publish("f", data(3), None).await.unwrap_err();
    assert_eq!(
        full,
        holdline_engine::EngineError::OutboxFull { capacity: 2 }
    );
    assert!(full.to_string().contains("outbox is full"));
    proxy.refuse(false);
    assert_eq!(first.await.unwrap().seq, Some(1));
    assert_eq!(second.await.unwrap().seq, Some(2));
    engine.shutdown().await;
}
