//! The app's embedded database (SQLite, bundled): connection history with
//! retention and the indexes the log view filters on, per-feed cursors and
//! the outbox, all durable under `kill -9` (WAL, `synchronous=FULL`).
//! Tauri-free; the shell only calls it.

mod cursors;
mod history;
mod outbox;
mod record;
mod recorder;
mod search;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::Connection;
use serde::Serialize;
use thiserror::Error;

pub use cursors::SqliteCursorStore;
pub use history::{HistoryPage, HistoryQuery, HistoryRow, Retention};
pub use outbox::SqliteOutboxStore;
pub use record::{ExportFormat, RecordPage, RecordRetention, RecordRow, RecordUsage, RecordedItem};
pub use recorder::record_history;
pub use search::{Search, SearchError, SearchHit, SearchPage, SearchQuery};

#[derive(Debug, Clone, Error, Serialize)]
#[error("database {path}: {detail}")]
pub struct StorageError {
    pub path: String,
    pub detail: String,
}

/// What opening the database had to repair, for the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The file was not a usable database; it was moved here and a new one
    /// started.
    MovedAside { to: PathBuf, reason: String },
}

pub struct Database {
    path: PathBuf,
    conn: Mutex<Connection>,
    retention: Retention,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS history (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    server   TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    level    TEXT NOT NULL,
    message  TEXT NOT NULL,
    details  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS history_server_time ON history (server, at_ms);
CREATE INDEX IF NOT EXISTS history_time ON history (at_ms);
CREATE INDEX IF NOT EXISTS history_kind ON history (kind, at_ms);
CREATE INDEX IF NOT EXISTS history_level ON history (level, at_ms);

CREATE TABLE IF NOT EXISTS cursors (
    server  TEXT NOT NULL,
    feed    TEXT NOT NULL,
    epoch   TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    PRIMARY KEY (server, feed)
);

CREATE TABLE IF NOT EXISTS sessions (
    server   TEXT PRIMARY KEY,
    session  TEXT NOT NULL,
    "offset" TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS record (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    server  TEXT NOT NULL,
    feed    TEXT NOT NULL,
    kind    TEXT NOT NULL,
    seq     INTEGER,
    epoch   TEXT,
    at_ms   INTEGER NOT NULL,
    data    TEXT NOT NULL,
    meta    TEXT,
    bytes   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS record_server_feed ON record (server, feed, id);
CREATE INDEX IF NOT EXISTS record_server ON record (server, id);
CREATE INDEX IF NOT EXISTS record_time ON record (at_ms);

CREATE TABLE IF NOT EXISTS outbox (
    server        TEXT NOT NULL,
    id            TEXT NOT NULL,
    feed          TEXT NOT NULL,
    data          TEXT NOT NULL,
    queued_at_ms  INTEGER NOT NULL,
    position      INTEGER PRIMARY KEY AUTOINCREMENT,
    UNIQUE (server, id)
);
"#;

impl Database {
    /// Opens (or creates) the database. A file that is not a usable database
    /// is moved aside and a fresh one started: history is worth less than a
    /// client that starts.
    pub fn open(path: impl AsRef<Path>) -> Result<(Database, Option<Recovery>), StorageError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| error(&path, e))?;
        }
        match Self::open_checked(&path) {
            Ok(db) => Ok((db, None)),
            Err(reason) => {
                let to = holdline_engine::store::aside_path(&path);
                std::fs::rename(&path, &to).map_err(|e| error(&path, e))?;
                for suffix in ["-wal", "-shm"] {
                    let mut side = path.as_os_str().to_os_string();
                    side.push(suffix);
                    let _ = std::fs::remove_file(side);
                }
                let db = Self::open_checked(&path).map_err(|detail| StorageError {
                    path: path.display().to_string(),
                    detail,
                })?;
                Ok((db, Some(Recovery::MovedAside { to, reason })))
            }
        }
    }

    pub fn open_in_memory() -> Result<Database, StorageError> {
        let conn = Connection::open_in_memory().map_err(|e| error(Path::new(":memory:"), e))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| error(Path::new(":memory:"), e))?;
        Ok(Database {
            path: PathBuf::from(":memory:"),
            conn: Mutex::new(conn),
            retention: Retention::default(),
        })
    }

    fn open_checked(path: &Path) -> Result<Database, String> {
        let conn = Connection::open(path).map_err(|e| e.to_string())?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        let check: String = conn
            .query_row("PRAGMA quick_check", [], |row| row.get(0))
            .map_err(|e| format!("not a usable database: {e}"))?;
        if check != "ok" {
            return Err(format!("integrity check failed: {check}"));
        }
        // WAL keeps readers off the writer's back; FULL makes every commit
        // durable before it returns, so kill -9 loses nothing committed.
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
            .map_err(|e| e.to_string())?;
        conn.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
        Ok(Database {
            path: path.to_path_buf(),
            conn: Mutex::new(conn),
            retention: Retention::default(),
        })
    }

    pub fn with_retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, e: impl std::fmt::Display) -> StorageError {
        error(&self.path, e)
    }
}

fn error(path: &Path, e: impl std::fmt::Display) -> StorageError {
    StorageError {
        path: path.display().to_string(),
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_database_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("holdline.db");
        std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
        let (db, recovery) = Database::open(&path).unwrap();
        let Some(Recovery::MovedAside { to, reason }) = recovery else {
            panic!("corruption not reported")
        };
        assert!(reason.contains("database"), "{reason}");
        assert_eq!(std::fs::read(&to).unwrap(), vec![0x42u8; 8192]);
        db.query_history(&HistoryQuery::default()).unwrap();
        drop(db);
        let (_, again) = Database::open(&path).unwrap();
        assert_eq!(again, None);
    }
}
