//! The persisted connection history and the log view's queries.

use std::io::Write;
use std::path::Path;

use holdline_engine::HistoryEntry;
use rusqlite::{ToSql, params};
use serde::{Deserialize, Serialize};

use crate::{Database, StorageError};

/// How much history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age_ms: i64,
    pub max_rows: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age_ms: 30 * 24 * 3600 * 1000,
            max_rows: 200_000,
        }
    }
}

/// A filter over the history, newest first, paged by `before_id`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HistoryQuery {
    pub server: Option<String>,
    pub kinds: Vec<String>,
    pub levels: Vec<String>,
    /// Case-insensitive substring of the message or details.
    pub text: Option<String>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Only entries older than this id (the last id of the previous page).
    pub before_id: Option<i64>,
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryRow {
    pub id: i64,
    pub server: String,
    pub at_ms: i64,
    pub kind: String,
    pub level: String,
    pub message: String,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryPage {
    pub rows: Vec<HistoryRow>,
    /// Pass as `before_id` for the next page; none when this was the last.
    pub next_before_id: Option<i64>,
}

pub const MAX_PAGE: u32 = 500;

fn label<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

impl Database {
    /// Appends entries in one transaction, then applies retention.
    pub fn append_history(
        &self,
        server: &str,
        entries: &[HistoryEntry],
    ) -> Result<(), StorageError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO history (server, at_ms, kind, level, message, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(|e| self.err(e))?;
            for entry in entries {
                insert
                    .execute(params![
                        server,
                        entry.at_ms,
                        label(&entry.kind),
                        label(&entry.level),
                        entry.message,
                        entry.details.to_string(),
                    ])
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        drop(conn);
        self.apply_retention(holdline_engine::events::now_ms())?;
        Ok(())
    }

    /// Deletes entries past the age limit and beyond the row limit.
    pub fn apply_retention(&self, now_ms: i64) -> Result<u64, StorageError> {
        let conn = self.conn();
        let old = conn
            .execute(
                "DELETE FROM history WHERE at_ms < ?1",
                params![now_ms - self.retention.max_age_ms],
            )
            .map_err(|e| self.err(e))?;
        let excess = conn
            .execute(
                "DELETE FROM history WHERE id <= (SELECT id FROM history ORDER BY id DESC LIMIT 1 OFFSET ?1)",
                params![self.retention.max_rows],
            )
            .map_err(|e| self.err(e))?;
        Ok((old + excess) as u64)
    }

    pub fn query_history(&self, query: &HistoryQuery) -> Result<HistoryPage, StorageError> {
        let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
        let (sql, args) = build_query(query, Some(limit + 1));
        let conn = self.conn();
        let mut statement = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let refs: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref()).collect();
        let mut rows: Vec<HistoryRow> = statement
            .query_map(refs.as_slice(), read_row)
            .map_err(|e| self.err(e))?
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_before_id = if more {
            rows.last().map(|r| r.id)
        } else {
            None
        };
        Ok(HistoryPage {
            rows,
            next_before_id,
        })
    }

    /// Writes every entry matching `query` (all pages, newest first) to
    /// `path` as JSON lines; returns how many.
    pub fn export_history(&self, query: &HistoryQuery, path: &Path) -> Result<u64, StorageError> {
        let (sql, args) = build_query(query, None);
        let file = std::fs::File::create(path).map_err(|e| crate::error(path, e))?;
        let mut out = std::io::BufWriter::new(file);
        let conn = self.conn();
        let mut statement = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let refs: Vec<&dyn ToSql> = args.iter().map(|a| a.as_ref()).collect();
        let mut count = 0;
        for row in statement
            .query_map(refs.as_slice(), read_row)
            .map_err(|e| self.err(e))?
        {
            let row = row.map_err(|e| self.err(e))?;
            serde_json::to_writer(&mut out, &row).map_err(|e| crate::error(path, e))?;
            out.write_all(b"\n").map_err(|e| crate::error(path, e))?;
            count += 1;
        }
        out.flush().map_err(|e| crate::error(path, e))?;
        Ok(count)
    }
}

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<HistoryRow> {
    let details: String = row.get(6)?;
    Ok(HistoryRow {
        id: row.get(0)?,
        server: row.get(1)?,
        at_ms: row.get(2)?,
        kind: row.get(3)?,
        level: row.get(4)?,
        message: row.get(5)?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
    })
}

fn build_query(query: &HistoryQuery, limit: Option<u32>) -> (String, Vec<Box<dyn ToSql>>) {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    if let Some(server) = &query.server {
        args.push(Box::new(server.clone()));
        clauses.push(format!("server = ?{}", args.len()));
    }
    for (column, values) in [("kind", &query.kinds), ("level", &query.levels)] {
        if !values.is_empty() {
            let mut marks = Vec::new();
            for value in values.iter().take(32) {
                args.push(Box::new(value.clone()));
                marks.push(format!("?{}", args.len()));
            }
            clauses.push(format!("{column} IN ({})", marks.join(", ")));
        }
    }
    if let Some(text) = query.text.as_deref().filter(|t| !t.is_empty()) {
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        args.push(Box::new(format!("%{escaped}%")));
        let n = args.len();
        clauses.push(format!(
            "(message LIKE ?{n} ESCAPE '\\' OR details LIKE ?{n} ESCAPE '\\')"
        ));
    }
    if let Some(from) = query.from_ms {
        args.push(Box::new(from));
        clauses.push(format!("at_ms >= ?{}", args.len()));
    }
    if let Some(to) = query.to_ms {
        args.push(Box::new(to));
        clauses.push(format!("at_ms <= ?{}", args.len()));
    }
    if let Some(before) = query.before_id {
        args.push(Box::new(before));
        clauses.push(format!("id < ?{}", args.len()));
    }
    let mut sql =
        String::from("SELECT id, server, at_ms, kind, level, message, details FROM history");
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(" ORDER BY id DESC");
    if let Some(limit) = limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    (sql, args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdline_engine::{HistoryKind, Level};
    use serde_json::json;

    fn entry(at_ms: i64, kind: HistoryKind, level: Level, message: &str) -> HistoryEntry {
        HistoryEntry {
            at_ms,
            kind,
            level,
            message: message.into(),
            details: json!({ "note": message }),
        }
    }

    fn seeded() -> Database {
        let db = Database::open_in_memory().unwrap();
        let now = holdline_engine::events::now_ms();
        let entries: Vec<_> = (0..10)
            .map(|i| {
                let (kind, level) = if i % 2 == 0 {
                    (HistoryKind::Attempt, Level::Info)
                } else {
                    (HistoryKind::Disconnected, Level::Warn)
                };
                entry(
                    now - 10_000 + i * 1000,
                    kind,
                    level,
                    &format!("entry {i} 100%_done"),
                )
            })
            .collect();
        db.append_history("ws://a/", &entries).unwrap();
        db.append_history(
            "ws://b/",
            &[entry(now, HistoryKind::Gap, Level::Warn, "other server")],
        )
        .unwrap();
        db
    }

    #[test]
    fn pages_run_newest_first_without_overlap() {
        let db = seeded();
        let query = HistoryQuery {
            server: Some("ws://a/".into()),
            limit: Some(4),
            ..Default::default()
        };
        let first = db.query_history(&query).unwrap();
        assert_eq!(
            first
                .rows
                .iter()
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>()[0],
            "entry 9 100%_done"
        );
        assert_eq!(first.rows.len(), 4);
        let second = db
            .query_history(&HistoryQuery {
                before_id: first.next_before_id,
                ..query.clone()
            })
            .unwrap();
        let third = db
            .query_history(&HistoryQuery {
                before_id: second.next_before_id,
                ..query.clone()
            })
            .unwrap();
        assert_eq!(third.rows.len(), 2);
        assert_eq!(third.next_before_id, None);
        assert!(first.rows.last().unwrap().id > second.rows[0].id);
    }

    #[test]
    fn filters_by_kind_level_text_and_time() {
        let db = seeded();
        let by_kind = db
            .query_history(&HistoryQuery {
                kinds: vec!["disconnected".into()],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(by_kind.rows.len(), 5);
        assert!(by_kind.rows.iter().all(|r| r.kind == "disconnected"));
        let by_level = db
            .query_history(&HistoryQuery {
                levels: vec!["warn".into()],
                ..Default::default()
            })
            .unwrap();
        assert_eq!(by_level.rows.len(), 6);
        let by_text = db
            .query_history(&HistoryQuery {
                text: Some("ENTRY 3".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(by_text.rows.len(), 1);
        // LIKE wildcards in the search text are literal.
        let literal = db
            .query_history(&HistoryQuery {
                text: Some("0%_d".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(literal.rows.len(), 10);
        let none = db
            .query_history(&HistoryQuery {
                text: Some("1_0".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(none.rows.len(), 0);
        let newest = by_kind.rows[0].at_ms;
        let window = db
            .query_history(&HistoryQuery {
                from_ms: Some(newest),
                to_ms: Some(newest),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(window.rows.len(), 1);
        assert_eq!(window.rows[0].details["note"], window.rows[0].message);
    }

    #[test]
    fn retention_drops_old_and_excess_rows() {
        let db = Database::open_in_memory()
            .unwrap()
            .with_retention(Retention {
                max_age_ms: 5_000,
                max_rows: 3,
            });
        let now = holdline_engine::events::now_ms();
        let entries: Vec<_> = (0..10)
            .map(|i| {
                entry(
                    now - 9_000 + i * 1000,
                    HistoryKind::State,
                    Level::Info,
                    &format!("{i}"),
                )
            })
            .collect();
        db.append_history("s", &entries).unwrap();
        let left = db.query_history(&HistoryQuery::default()).unwrap();
        assert_eq!(
            left.rows
                .iter()
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>(),
            ["9", "8", "7"]
        );
    }

    #[test]
    fn export_writes_json_lines() {
        let db = seeded();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let n = db
            .export_history(
                &HistoryQuery {
                    server: Some("ws://a/".into()),
                    ..Default::default()
                },
                &path,
            )
            .unwrap();
        assert_eq!(n, 10);
        let text = std::fs::read_to_string(&path).unwrap();
        let rows: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[0]["kind"], "disconnected");
    }
}
