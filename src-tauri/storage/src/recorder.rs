//! Copies an engine's history entries into the database, in batches.

use std::sync::Arc;
use std::time::Duration;

use holdline_engine::{EngineEvent, HistoryEntry};
use tokio::sync::broadcast;

use crate::Database;

const BATCH: usize = 256;
const LINGER: Duration = Duration::from_millis(100);

/// Runs until the engine's event channel closes. Entries are written in one
/// transaction per batch (at most `LINGER` late), off the async threads.
pub async fn record_history(
    db: Arc<Database>,
    server: String,
    mut events: broadcast::Receiver<EngineEvent>,
) {
    let mut batch: Vec<HistoryEntry> = Vec::new();
    loop {
        let event = if batch.is_empty() {
            events.recv().await
        } else {
            match tokio::time::timeout(LINGER, events.recv()).await {
                Ok(event) => event,
                Err(_) => {
                    write(&db, &server, &mut batch).await;
                    continue;
                }
            }
        };
        match event {
            Ok(EngineEvent::History(entry)) => {
                batch.push(entry);
                if batch.len() >= BATCH {
                    write(&db, &server, &mut batch).await;
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                batch.push(HistoryEntry {
                    at_ms: holdline_engine::events::now_ms(),
                    kind: holdline_engine::HistoryKind::Storage,
                    level: holdline_engine::Level::Warn,
                    message: format!(
                        "{missed} history entries were not recorded (the writer fell behind)"
                    ),
                    details: serde_json::json!({ "missed": missed }),
                });
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    write(&db, &server, &mut batch).await;
}

async fn write(db: &Arc<Database>, server: &str, batch: &mut Vec<HistoryEntry>) {
    let entries = std::mem::take(batch);
    let db = db.clone();
    let server = server.to_owned();
    let result = tokio::task::spawn_blocking(move || db.append_history(&server, &entries)).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::error!(%err, "history not written"),
        Err(err) => tracing::error!(%err, "history writer failed"),
    }
}
