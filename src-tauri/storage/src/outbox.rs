//! One server's outbox in SQLite: every put and remove commits at once, so
//! a queued publish survives a crash and an acked one is never resent as new.

use std::sync::Arc;

use holdline_engine::{OutboxEntry, OutboxStore, StoreError};
use rusqlite::params;
use serde_json::value::RawValue;

use crate::Database;

pub struct SqliteOutboxStore {
    db: Arc<Database>,
    server: String,
}

impl SqliteOutboxStore {
    pub fn new(db: Arc<Database>, server: impl Into<String>) -> Self {
        SqliteOutboxStore {
            db,
            server: server.into(),
        }
    }

    fn error(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            what: "outbox in".into(),
            path: self.db.path().display().to_string(),
            detail: e.to_string(),
        }
    }
}

impl OutboxStore for SqliteOutboxStore {
    fn load(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let conn = self.db.conn();
        let mut statement = conn
            .prepare("SELECT id, feed, data, queued_at_ms FROM outbox WHERE server = ?1 ORDER BY position")
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![self.server], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get(3)?,
                ))
            })
            .map_err(|e| self.error(e))?;
        let mut entries = Vec::new();
        for row in rows {
            let (id, feed, data, queued_at_ms) = row.map_err(|e| self.error(e))?;
            // A row whose data no longer parses is skipped, not fatal.
            match RawValue::from_string(data) {
                Ok(data) => entries.push(OutboxEntry {
                    id,
                    feed,
                    data,
                    queued_at_ms,
                }),
                Err(err) => tracing::warn!(%id, %err, "unreadable outbox entry skipped"),
            }
        }
        Ok(entries)
    }

    fn put(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        self.db
            .conn()
            .execute(
                "INSERT OR IGNORE INTO outbox (server, id, feed, data, queued_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![self.server, entry.id, entry.feed, entry.data.get(), entry.queued_at_ms],
            )
            .map(|_| ())
            .map_err(|e| self.error(e))
    }

    fn remove(&self, id: &str) -> Result<(), StoreError> {
        self.db
            .conn()
            .execute(
                "DELETE FROM outbox WHERE server = ?1 AND id = ?2",
                params![self.server, id],
            )
            .map(|_| ())
            .map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> OutboxEntry {
        OutboxEntry {
            id: id.into(),
            feed: "f".into(),
            data: RawValue::from_string(format!("{{\"id\":\"{id}\"}}")).unwrap(),
            queued_at_ms: 1,
        }
    }

    #[test]
    fn entries_keep_their_order_per_server_and_go_on_remove() {
        let db = Arc::new(Database::open_in_memory().unwrap());
        let a = SqliteOutboxStore::new(db.clone(), "ws://a/");
        let b = SqliteOutboxStore::new(db.clone(), "ws://b/");
        for id in ["3", "1", "2"] {
            a.put(&entry(id)).unwrap();
        }
        a.put(&entry("1")).unwrap();
        b.put(&entry("x")).unwrap();
        let ids: Vec<_> = a.load().unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["3", "1", "2"]);
        a.remove("1").unwrap();
        let ids: Vec<_> = a.load().unwrap().into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["3", "2"]);
        assert_eq!(b.load().unwrap().len(), 1);
        assert_eq!(a.load().unwrap()[0].data.get(), "{\"id\":\"3\"}");
    }
}
