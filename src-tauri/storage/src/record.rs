//! The record: what the app delivered, per server and feed, kept beside the
//! cursors. Rows are written in the cursors' transaction (see
//! `SqliteCursorStore::record`), so after a crash the record ends exactly
//! where the cursor does: what was lost from both is delivered again.

use std::io::Write;
use std::time::Duration;

use holdline_engine::{Delivery, RawFrame};
use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::{Database, StorageError};

/// One delivery as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    pub server: String,
    pub feed: String,
    /// `event`, `gap`, `reset`, `discontinuity` or `raw`.
    pub kind: &'static str,
    pub seq: Option<u64>,
    pub epoch: Option<String>,
    pub at_ms: i64,
    /// The event's data; for a marker, its particulars; always JSON.
    pub data: String,
    pub meta: Option<String>,
}

impl RecordRow {
    pub fn from_delivery(server: &str, delivery: &Delivery, at_ms: i64) -> RecordRow {
        let row = |feed: &str, kind, seq, epoch: Option<&str>, data: String| RecordRow {
            server: server.to_owned(),
            feed: feed.to_owned(),
            kind,
            seq,
            epoch: epoch.map(str::to_owned),
            at_ms,
            data,
            meta: None,
        };
        match delivery {
            Delivery::Event(event) => RecordRow {
                meta: event.meta.as_ref().map(|m| m.get().to_owned()),
                at_ms: event.ts.unwrap_or(at_ms),
                ..row(
                    &event.feed,
                    "event",
                    event.seq,
                    event.epoch.as_deref(),
                    event.data.get().to_owned(),
                )
            },
            Delivery::Gap {
                feed,
                epoch,
                from,
                to,
                inferred,
            } => row(
                feed,
                "gap",
                None,
                epoch.as_deref(),
                serde_json::json!({ "from": from, "to": to, "inferred": inferred }).to_string(),
            ),
            Delivery::Reset { feed, epoch } => {
                row(feed, "reset", None, Some(epoch), "{}".to_owned())
            }
            Delivery::Discontinuity { feed, reason } => row(
                feed,
                "discontinuity",
                None,
                None,
                serde_json::json!({ "reason": reason.as_str() }).to_string(),
            ),
            Delivery::Raw(frame) => {
                let data = match frame {
                    RawFrame::Text(text) => serde_json::json!({ "text": text }),
                    RawFrame::Binary(bytes) => serde_json::json!({ "hex": hex::encode(bytes) }),
                };
                row("", "raw", None, None, data.to_string())
            }
        }
    }

    fn bytes(&self) -> i64 {
        (self.data.len() + self.meta.as_ref().map_or(0, String::len) + self.feed.len()) as i64
    }
}

pub(crate) fn insert(tx: &Transaction<'_>, rows: &[RecordRow]) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO record (server, feed, kind, seq, epoch, at_ms, data, meta, bytes)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for row in rows {
        insert.execute(params![
            row.server,
            row.feed,
            row.kind,
            row.seq.map(|s| s as i64),
            row.epoch,
            row.at_ms,
            row.data,
            row.meta,
            row.bytes(),
        ])?;
    }
    Ok(())
}

/// A recorded delivery, as the UI and the exports show it.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedItem {
    pub id: i64,
    pub feed: String,
    pub kind: String,
    pub seq: Option<u64>,
    pub epoch: Option<String>,
    pub at_ms: i64,
    pub data: Box<RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Box<RawValue>>,
}

impl RecordedItem {
    pub(crate) const COLUMNS: &'static str = "id, feed, kind, seq, epoch, at_ms, data, meta";

    pub(crate) fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<RecordedItem> {
        let json = |text: String| {
            RawValue::from_string(text).unwrap_or_else(|_| {
                // Only JSON is written; a row edited by hand is shown as null.
                RawValue::from_string("null".into()).expect("null is JSON")
            })
        };
        Ok(RecordedItem {
            id: row.get(0)?,
            feed: row.get(1)?,
            kind: row.get(2)?,
            seq: row.get::<_, Option<i64>>(3)?.map(|s| s as u64),
            epoch: row.get(4)?,
            at_ms: row.get(5)?,
            data: json(row.get(6)?),
            meta: row.get::<_, Option<String>>(7)?.map(json),
        })
    }
}

/// A page of the record, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct RecordPage {
    pub items: Vec<RecordedItem>,
    /// Pass as `before_id` for the page after this one; `None` at the start.
    pub next_before_id: Option<i64>,
}

/// How much the record keeps: it is trimmed to both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRetention {
    pub max_age: Duration,
    pub max_bytes: u64,
}

impl Default for RecordRetention {
    /// A week, and a modest share of a disk.
    fn default() -> Self {
        RecordRetention {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 256 << 20,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RecordUsage {
    pub items: u64,
    /// The payload bytes kept (data, meta and feed names).
    pub bytes: u64,
    /// The database file as a whole, history and all.
    pub file_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    JsonLines,
    Csv,
}

/// Rows are exported in batches of this many, oldest first.
const EXPORT_BATCH: i64 = 2048;

impl Database {
    /// The record of `server` (one feed, or all), newest first, before
    /// `before_id`.
    pub fn record_page(
        &self,
        server: &str,
        feed: Option<&str>,
        before_id: Option<i64>,
        limit: usize,
    ) -> Result<RecordPage, StorageError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {} FROM record WHERE server = ?1 AND (?2 IS NULL OR feed = ?2) AND id < ?3
             ORDER BY id DESC LIMIT ?4",
            RecordedItem::COLUMNS
        );
        let mut statement = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let items = statement
            .query_map(
                params![server, feed, before_id.unwrap_or(i64::MAX), limit as i64],
                RecordedItem::from_row,
            )
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))?;
        let next_before_id = (items.len() == limit)
            .then(|| items.last().map(|item| item.id))
            .flatten();
        Ok(RecordPage {
            items,
            next_before_id,
        })
    }

    pub fn record_usage(&self) -> Result<RecordUsage, StorageError> {
        let conn = self.conn();
        let (items, bytes): (i64, i64) = conn
            .query_row(
                "SELECT count(*), coalesce(sum(bytes), 0) FROM record",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .map_err(|e| self.err(e))?;
        let page = |pragma: &str| -> Result<i64, StorageError> {
            conn.query_row(&format!("PRAGMA {pragma}"), [], |row| row.get(0))
                .map_err(|e| self.err(e))
        };
        let file_bytes = page("page_count")? * page("page_size")?;
        Ok(RecordUsage {
            items: items as u64,
            bytes: bytes as u64,
            file_bytes: file_bytes as u64,
        })
    }

    /// Deletes what is older than `max_age`, then the oldest rows until the
    /// record holds at most `max_bytes`. Returns how many rows went.
    pub fn trim_record(
        &self,
        retention: RecordRetention,
        now_ms: i64,
    ) -> Result<u64, StorageError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let oldest_kept = now_ms - retention.max_age.as_millis() as i64;
        let mut deleted = tx
            .execute("DELETE FROM record WHERE at_ms < ?1", params![oldest_kept])
            .map_err(|e| self.err(e))? as u64;
        let total: i64 = tx
            .query_row("SELECT coalesce(sum(bytes), 0) FROM record", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))?;
        let excess = total.saturating_sub(i64::try_from(retention.max_bytes).unwrap_or(i64::MAX));
        if excess > 0 {
            // The newest row whose running total (oldest first) reaches the
            // excess: it and everything older go.
            let cut: Option<i64> = tx
                .query_row(
                    "SELECT id FROM (SELECT id, sum(bytes) OVER (ORDER BY id) AS running FROM record)
                     WHERE running >= ?1 ORDER BY id LIMIT 1",
                    params![excess],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            if let Some(cut) = cut {
                deleted += tx
                    .execute("DELETE FROM record WHERE id <= ?1", params![cut])
                    .map_err(|e| self.err(e))? as u64;
            }
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(deleted)
    }

    /// Writes `server`'s record (one feed, or all) between two times,
    /// oldest first, as JSON lines or CSV; returns how many rows.
    pub fn export_record(
        &self,
        server: &str,
        feed: Option<&str>,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        format: ExportFormat,
        out: &mut dyn Write,
    ) -> Result<u64, StorageError> {
        let range = (from_ms, to_ms);
        match format {
            ExportFormat::Csv => {
                let mut writer = csv::Writer::from_writer(out);
                writer
                    .write_record([
                        "id", "at_ms", "feed", "kind", "seq", "epoch", "data", "meta",
                    ])
                    .map_err(|e| self.err(e))?;
                let count = self.each_exported(server, feed, range, |item| {
                    writer
                        .write_record([
                            item.id.to_string(),
                            item.at_ms.to_string(),
                            item.feed,
                            item.kind,
                            item.seq.map(|s| s.to_string()).unwrap_or_default(),
                            item.epoch.unwrap_or_default(),
                            item.data.get().to_owned(),
                            item.meta.map(|m| m.get().to_owned()).unwrap_or_default(),
                        ])
                        .map_err(|e| self.err(e))
                })?;
                writer.flush().map_err(|e| self.err(e))?;
                Ok(count)
            }
            ExportFormat::JsonLines => {
                let count = self.each_exported(server, feed, range, |item| {
                    serde_json::to_writer(&mut *out, &item).map_err(|e| self.err(e))?;
                    out.write_all(b"\n").map_err(|e| self.err(e))
                })?;
                out.flush().map_err(|e| self.err(e))?;
                Ok(count)
            }
        }
    }

    /// Hands every exported row to `write`, oldest first, a batch at a time
    /// (the database is not held while `write` runs).
    fn each_exported(
        &self,
        server: &str,
        feed: Option<&str>,
        range: (Option<i64>, Option<i64>),
        mut write: impl FnMut(RecordedItem) -> Result<(), StorageError>,
    ) -> Result<u64, StorageError> {
        let mut after = 0i64;
        let mut count = 0u64;
        loop {
            let batch = self.export_batch(server, feed, range, after)?;
            let Some(last) = batch.last() else {
                return Ok(count);
            };
            after = last.id;
            for item in batch {
                write(item)?;
                count += 1;
            }
        }
    }

    fn export_batch(
        &self,
        server: &str,
        feed: Option<&str>,
        (from_ms, to_ms): (Option<i64>, Option<i64>),
        after: i64,
    ) -> Result<Vec<RecordedItem>, StorageError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {} FROM record WHERE server = ?1 AND (?2 IS NULL OR feed = ?2)
             AND at_ms >= ?3 AND at_ms <= ?4 AND id > ?5 ORDER BY id LIMIT ?6",
            RecordedItem::COLUMNS
        );
        let mut statement = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        statement
            .query_map(
                params![
                    server,
                    feed,
                    from_ms.unwrap_or(i64::MIN),
                    to_ms.unwrap_or(i64::MAX),
                    after,
                    EXPORT_BATCH
                ],
                RecordedItem::from_row,
            )
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.err(e))
    }
}
