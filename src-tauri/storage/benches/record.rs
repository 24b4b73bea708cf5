//! The record against bare SQLite, in one run.
//!
//!   cargo bench -p holdline-storage --bench record
//!
//! - writing: 200,000 events recorded and committed the way the app's pump
//!   does (`SqliteCursorStore::record`, then the cursor, a transaction per
//!   write interval) against a bare loop of prepared INSERTs into the same
//!   table in transactions of the same size;
//! - searching 1,000,000 stored events (newest first, the app's budget of
//!   one frame per answer): the time to the first page of 50 hits for a
//!   common and a rare match, per kind of condition, and how many rows a
//!   whole scan reads per second, against a bare `SELECT data` scan.

use std::sync::Arc;
use std::time::{Duration, Instant};

use holdline_engine::{Cursor, CursorStore, Delivery, FeedEvent};
use holdline_storage::{Database, Search, SearchQuery, SqliteCursorStore};
use serde_json::value::RawValue;

const SERVER: &str = "ws://bench/";
const WRITTEN: u64 = 200_000;
const STORED: u64 = 1_000_000;
/// What the app gives a search per answer: one frame at 60 Hz.
const FRAME: Duration = Duration::from_millis(16);

fn data(n: u64) -> String {
    let sym = ["HOLD", "ACME", "INIT", "ZETA"][(n % 4) as usize];
    format!(
        r#"{{"sym":"{sym}","px":{},"qty":{},"note":"tick {n}"}}"#,
        100 + n % 997,
        n % 50
    )
}

fn event(n: u64) -> Delivery {
    Delivery::Event(FeedEvent {
        feed: "ticks".into(),
        epoch: Some("e".into()),
        seq: Some(n),
        ts: Some(n as i64),
        data: RawValue::from_string(data(n)).expect("JSON"),
        meta: None,
        session: None,
        receipt: None,
    })
}

fn recorded_with_cursors(db: &Arc<Database>, range: std::ops::RangeInclusive<u64>) {
    let store = SqliteCursorStore::new(db.clone());
    for n in range {
        let delivery = event(n);
        store.record(SERVER, &delivery).expect("record");
        store
            .save(
                SERVER,
                "ticks",
                &Cursor {
                    epoch: "e".into(),
                    seq: n,
                },
            )
            .expect("cursor");
    }
    store.flush().expect("flush");
}

fn bare_inserts(path: &std::path::Path, count: u64, per_transaction: u64) {
    let mut conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        .expect("pragma");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS record (id INTEGER PRIMARY KEY AUTOINCREMENT, server TEXT NOT NULL,
         feed TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER, epoch TEXT, at_ms INTEGER NOT NULL,
         data TEXT NOT NULL, meta TEXT, bytes INTEGER NOT NULL);
         CREATE INDEX IF NOT EXISTS record_server_feed ON record (server, feed, id);
         CREATE INDEX IF NOT EXISTS record_server ON record (server, id);
         CREATE INDEX IF NOT EXISTS record_time ON record (at_ms);",
    )
    .expect("schema");
    let mut n = 0;
    while n < count {
        let tx = conn.transaction().expect("tx");
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO record (server, feed, kind, seq, epoch, at_ms, data, meta, bytes)
                     VALUES (?1, 'ticks', 'event', ?2, 'e', ?2, ?3, NULL, ?4)",
                )
                .expect("prepare");
            for _ in 0..per_transaction.min(count - n) {
                n += 1;
                let data = data(n);
                insert
                    .execute(rusqlite::params![SERVER, n as i64, data, data.len() as i64])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
}

fn search(text: Option<&str>, regex: Option<&str>, conditions: &[&str]) -> Search {
    Search::parse(&SearchQuery {
        feed: None,
        text: text.map(Into::into),
        regex: regex.map(Into::into),
        conditions: conditions.iter().map(|c| c.to_string()).collect(),
    })
    .expect("a valid search")
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");

    // Writing.
    let path = dir.path().join("write.db");
    let db = Arc::new(Database::open(&path).expect("db").0);
    let started = Instant::now();
    recorded_with_cursors(&db, 1..=WRITTEN);
    let recorded = started.elapsed();
    // The pump writes once per 200 ms interval; the bare loop gets the
    // same number of events per transaction the pump managed.
    let per_transaction = (WRITTEN as f64 / (recorded.as_secs_f64() / 0.2).max(1.0)).ceil() as u64;
    let bare_path = dir.path().join("bare.db");
    let started = Instant::now();
    bare_inserts(&bare_path, WRITTEN, per_transaction);
    let bare = started.elapsed();
    println!(
        "write {WRITTEN} events: record+cursor {:.0} events/s, bare INSERT loop ({per_transaction}/transaction) {:.0} events/s ({:.2}x)",
        WRITTEN as f64 / recorded.as_secs_f64(),
        WRITTEN as f64 / bare.as_secs_f64(),
        bare.as_secs_f64() / recorded.as_secs_f64()
    );
    drop(db);

    // Searching a million.
    let path = dir.path().join("search.db");
    let db = Arc::new(Database::open(&path).expect("db").0);
    recorded_with_cursors(&db, 1..=STORED);
    let cases = [
        ("text, common (1 in 4)", search(Some("hold"), None, &[])),
        (
            "text, rare (1 in 1M)",
            search(Some("TICK 123456\""), None, &[]),
        ),
        ("regex, common", search(None, Some(r#""px":1\d\d,"#), &[])),
        ("regex, rare", search(None, Some(r"tick 99999\d\b"), &[])),
        ("pointer, common", search(None, None, &["/px > 900"])),
        (
            "pointer, rare",
            search(None, None, &["/px = 1096", "/qty = 0", "/sym = \"HOLD\""]),
        ),
        ("nothing matches", search(None, None, &["/px < 0"])),
    ];
    for (name, query) in &cases {
        let started = Instant::now();
        let first = db
            .search_record(SERVER, query, None, 50, FRAME, |_| {})
            .expect("search");
        let first_answer = started.elapsed();
        let mut hits = first.hits.len();
        let mut scanned = first.scanned;
        let mut before = first.next_before_id;
        let mut answers = 1;
        while hits < 50 {
            let Some(next) = before else { break };
            let page = db
                .search_record(SERVER, query, Some(next), 50 - hits, FRAME, |_| {})
                .expect("search");
            hits += page.hits.len();
            scanned += page.scanned;
            before = page.next_before_id;
            answers += 1;
        }
        let to_page = started.elapsed();
        println!(
            "search {name}: first answer {:.1} ms ({} hits), first page of {hits} after {answers} answers in {:.1} ms, {} rows read ({:.0} rows/s)",
            first_answer.as_secs_f64() * 1e3,
            first.hits.len(),
            to_page.as_secs_f64() * 1e3,
            scanned,
            scanned as f64 / to_page.as_secs_f64()
        );
    }
    let conn = rusqlite::Connection::open(&path).expect("open");
    let started = Instant::now();
    let mut statement = conn
        .prepare("SELECT data FROM record WHERE server = ?1 ORDER BY id DESC")
        .expect("prepare");
    let mut rows = statement.query([SERVER]).expect("query");
    let mut bytes = 0usize;
    let mut count = 0u64;
    while let Some(row) = rows.next().expect("row") {
        let data: String = row.get(0).expect("data");
        bytes += data.len();
        count += 1;
    }
    let bare = started.elapsed();
    println!(
        "bare scan: {count} rows ({} MB) in {:.0} ms, {:.0} rows/s",
        bytes >> 20,
        bare.as_secs_f64() * 1e3,
        count as f64 / bare.as_secs_f64()
    );
}
