//! Per-feed cursors in SQLite. Saves land in memory and are written in one
//! transaction at most every `write_interval` (and on `flush`): at 50,000
//! events/s a commit per event would be the bottleneck, and progress lost
//! to a crash only replays events, never skips them. A session's resume
//! point (Socket.IO) is written in the same transaction as the cursors, and
//! so is the record of what was delivered (`record`): after a crash the
//! record and the cursors end at the same delivery.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use holdline_engine::{Cursor, CursorStore, Delivery, SessionMark, StoreError};
use rusqlite::params;

use crate::Database;
use crate::record::RecordRow;

pub struct SqliteCursorStore {
    db: Arc<Database>,
    write_interval: Duration,
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    cursors: HashMap<(String, String), Cursor>,
    sessions: HashMap<String, SessionMark>,
    records: Vec<RecordRow>,
    last_write: Option<Instant>,
}

fn store_error(db: &Database, e: impl std::fmt::Display) -> StoreError {
    StoreError {
        what: "cursors in".into(),
        path: db.path().display().to_string(),
        detail: e.to_string(),
    }
}

impl SqliteCursorStore {
    pub fn new(db: Arc<Database>) -> Self {
        SqliteCursorStore {
            db,
            write_interval: Duration::from_millis(200),
            pending: Mutex::new(Pending::default()),
        }
    }

    /// Writes what is pending now or, within `write_interval` of the last
    /// write, leaves it for the next save or `flush`.
    fn changed(&self, pending: &mut Pending) -> Result<(), StoreError> {
        let due = pending
            .last_write
            .is_none_or(|at| at.elapsed() >= self.write_interval);
        if due { self.write(pending) } else { Ok(()) }
    }

    fn write(&self, pending: &mut Pending) -> Result<(), StoreError> {
        if pending.cursors.is_empty() && pending.sessions.is_empty() && pending.records.is_empty() {
            return Ok(());
        }
        let mut conn = self.db.conn();
        let tx = conn.transaction().map_err(|e| store_error(&self.db, e))?;
        crate::record::insert(&tx, &pending.records).map_err(|e| store_error(&self.db, e))?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO cursors (server, feed, epoch, seq) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (server, feed) DO UPDATE SET epoch = excluded.epoch, seq = excluded.seq",
                )
                .map_err(|e| store_error(&self.db, e))?;
            for ((server, feed), cursor) in &pending.cursors {
                upsert
                    .execute(params![server, feed, cursor.epoch, cursor.seq as i64])
                    .map_err(|e| store_error(&self.db, e))?;
            }
            let mut upsert = tx
                .prepare_cached(
                    r#"INSERT INTO sessions (server, session, "offset") VALUES (?1, ?2, ?3)
                     ON CONFLICT (server) DO UPDATE SET session = excluded.session, "offset" = excluded."offset""#,
                )
                .map_err(|e| store_error(&self.db, e))?;
            for (server, mark) in &pending.sessions {
                upsert
                    .execute(params![server, &*mark.session, mark.offset])
                    .map_err(|e| store_error(&self.db, e))?;
            }
        }
        tx.commit().map_err(|e| store_error(&self.db, e))?;
        pending.cursors.clear();
        pending.sessions.clear();
        pending.records.clear();
        pending.last_write = Some(Instant::now());
        Ok(())
    }
}

impl SqliteCursorStore {
    /// Keeps `delivery` in the record. It is written with the cursors, in
    /// their transaction: call this just before the delivery's commit. A
    /// delivery that moves a cursor waits for that commit, so the record
    /// never holds an event the cursor has not reached (which a restart
    /// would deliver, and record, again).
    pub fn record(&self, server: &str, delivery: &Delivery) -> Result<(), StoreError> {
        let row = RecordRow::from_delivery(server, delivery, holdline_engine::events::now_ms());
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.records.push(row);
        if delivery.progress().cursor.is_some() {
            Ok(())
        } else {
            self.changed(&mut pending)
        }
    }
}

impl CursorStore for SqliteCursorStore {
    fn load(&self, server: &str, feed: &str) -> Result<Option<Cursor>, StoreError> {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cursor) = pending.cursors.get(&(server.to_owned(), feed.to_owned())) {
            return Ok(Some(cursor.clone()));
        }
        drop(pending);
        let conn = self.db.conn();
        let found = conn.query_row(
            "SELECT epoch, seq FROM cursors WHERE server = ?1 AND feed = ?2",
            params![server, feed],
            |row| {
                Ok(Cursor {
                    epoch: row.get(0)?,
                    seq: row.get::<_, i64>(1)? as u64,
                })
            },
        );
        match found {
            Ok(cursor) => Ok(Some(cursor)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(store_error(&self.db, e)),
        }
    }

    fn save(&self, server: &str, feed: &str, cursor: &Cursor) -> Result<(), StoreError> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .cursors
            .insert((server.to_owned(), feed.to_owned()), cursor.clone());
        self.changed(&mut pending)
    }

    fn load_session(&self, server: &str) -> Result<Option<SessionMark>, StoreError> {
        let pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mark) = pending.sessions.get(server) {
            return Ok(Some(mark.clone()));
        }
        drop(pending);
        let conn = self.db.conn();
        let found = conn.query_row(
            r#"SELECT session, "offset" FROM sessions WHERE server = ?1"#,
            params![server],
            |row| {
                Ok(SessionMark {
                    session: row.get::<_, String>(0)?.into(),
                    offset: row.get(1)?,
                })
            },
        );
        match found {
            Ok(mark) => Ok(Some(mark)),
            Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
            Err(e) => Err(store_error(&self.db, e)),
        }
    }

    fn save_session(&self, server: &str, mark: &SessionMark) -> Result<(), StoreError> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.sessions.insert(server.to_owned(), mark.clone());
        self.changed(&mut pending)
    }

    fn flush(&self) -> Result<(), StoreError> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        self.write(&mut pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        {
            let (db, _) = Database::open(&path).unwrap();
            let store = SqliteCursorStore::new(Arc::new(db));
            store
                .save(
                    "s",
                    "f",
                    &Cursor {
                        epoch: "e".into(),
                        seq: 1,
                    },
                )
                .unwrap();
            store
                .save(
                    "s",
                    "f",
                    &Cursor {
                        epoch: "e".into(),
                        seq: 2,
                    },
                )
                .unwrap();
            assert_eq!(store.load("s", "f").unwrap().unwrap().seq, 2);
            store.flush().unwrap();
        }
        let (db, _) = Database::open(&path).unwrap();
        let store = SqliteCursorStore::new(Arc::new(db));
        assert_eq!(
            store.load("s", "f").unwrap(),
            Some(Cursor {
                epoch: "e".into(),
                seq: 2
            })
        );
        assert_eq!(store.load("s", "g").unwrap(), None);
    }

    #[test]
    fn a_session_mark_survives_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        let mark = SessionMark {
            session: "pid".into(),
            offset: "o-2".into(),
        };
        {
            let (db, _) = Database::open(&path).unwrap();
            let store = SqliteCursorStore::new(Arc::new(db));
            store.save_session("s", &mark).unwrap();
            store.flush().unwrap();
        }
        let (db, _) = Database::open(&path).unwrap();
        let store = SqliteCursorStore::new(Arc::new(db));
        assert_eq!(store.load_session("s").unwrap(), Some(mark));
        assert_eq!(store.load_session("t").unwrap(), None);
    }
}
