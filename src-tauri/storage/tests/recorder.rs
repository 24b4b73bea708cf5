//! An engine's history reaches the database and survives reopening it.

use std::sync::Arc;
use std::time::Duration;

use holdline_engine::{ConnectionState, Engine, EngineConfig, EngineEvent, FeedUrl, Stores, Token};
use holdline_storage::{Database, HistoryQuery, record_history};
use holdline_testkit::within;

#[tokio::test]
async fn history_is_recorded_and_survives_a_restart() {
    let server = holdline_server::start(holdline_server::ServerConfig {
        tokens: vec!["t".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("holdline.db");
    let (db, _) = Database::open(&path).unwrap();
    let db = Arc::new(db);
    let (url, _) = FeedUrl::parse(&server.url()).unwrap();
    let (engine, _deliveries) = Engine::start(
        EngineConfig::new(url, Some(Token::new("t"))),
        Stores::default(),
    )
    .unwrap();
    let recorder = tokio::spawn(record_history(
        db.clone(),
        engine.server_key().to_owned(),
        engine.events(),
    ));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    within(Duration::from_secs(10), "open", async {
        loop {
            if let Ok(EngineEvent::State(ConnectionState::Open { .. })) = events.recv().await {
                return;
            }
        }
    })
    .await;
    engine.shutdown().await;
    drop(engine);
    within(Duration::from_secs(10), "the recorder to finish", recorder)
        .await
        .unwrap();
    drop(db);

    let (db, recovery) = Database::open(&path).unwrap();
    assert_eq!(recovery, None);
    let page = db.query_history(&HistoryQuery::default()).unwrap();
    let kinds: Vec<&str> = page.rows.iter().rev().map(|r| r.kind.as_str()).collect();
    assert_eq!(&kinds[..2], ["attempt", "connected"], "{kinds:?}");
    assert!(kinds.contains(&"disconnected"));
    assert!(
        page.rows
            .iter()
            .all(|r| r.server == format!("{}/", server.url()))
    );
}
