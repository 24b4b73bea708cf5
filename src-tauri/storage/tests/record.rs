//! The record on a real database file: written with the cursors, paged
//! newest first, trimmed by age and size, exported, searched.

use std::sync::Arc;
use std::time::Duration;

use holdline_engine::{Cursor, CursorStore, Delivery, FeedEvent};
use holdline_storage::{
    Database, ExportFormat, RecordRetention, Search, SearchQuery, SqliteCursorStore,
};
use serde_json::value::RawValue;

const SERVER: &str = "ws://feeds.example/";

fn event(feed: &str, seq: u64, data: &str, ts: i64) -> Delivery {
    Delivery::Event(FeedEvent {
        feed: feed.into(),
        epoch: Some("e1".into()),
        seq: Some(seq),
        ts: Some(ts),
        data: RawValue::from_string(data.to_owned()).unwrap(),
        meta: None,
        session: None,
        receipt: None,
    })
}

/// Records and commits `deliveries` as the app's pump does, then flushes.
fn delivered(db: &Arc<Database>, deliveries: &[Delivery]) {
    let store = SqliteCursorStore::new(db.clone());
    for delivery in deliveries {
        store.record(SERVER, delivery).unwrap();
        if let Delivery::Event(e) = delivery {
            store
                .save(
                    SERVER,
                    &e.feed,
                    &Cursor {
                        epoch: "e1".into(),
                        seq: e.seq.unwrap(),
                    },
                )
                .unwrap();
        }
    }
    store.flush().unwrap();
}

fn open(dir: &tempfile::TempDir) -> Arc<Database> {
    Arc::new(Database::open(dir.path().join("holdline.db")).unwrap().0)
}

#[test]
fn the_record_survives_a_reopen_and_pages_back_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = open(&dir);
        let mut deliveries: Vec<Delivery> = (1..=5)
            .map(|n| event("a", n, &format!("{{\"n\":{n}}}"), 1000 + n as i64))
            .collect();
        deliveries.push(Delivery::Gap {
            feed: "a".into(),
            epoch: Some("e1".into()),
            from: 6,
            to: 7,
            inferred: false,
        });
        deliveries.push(event("b", 1, r#"{"n":"b1"}"#, 2000));
        delivered(&db, &deliveries);
    }
    let db = open(&dir);
    let first = db.record_page(SERVER, Some("a"), None, 4).unwrap();
    let shown: Vec<(String, Option<u64>)> = first
        .items
        .iter()
        .map(|i| (i.kind.clone(), i.seq))
        .collect();
    assert_eq!(
        shown,
        [
            ("gap".into(), None),
            ("event".into(), Some(5)),
            ("event".into(), Some(4)),
            ("event".into(), Some(3))
        ]
    );
    assert_eq!(
        first.items[0].data.get(),
        r#"{"from":6,"inferred":false,"to":7}"#
    );
    let second = db
        .record_page(SERVER, Some("a"), first.next_before_id, 4)
        .unwrap();
    assert_eq!(
        second.items.iter().map(|i| i.seq).collect::<Vec<_>>(),
        [Some(2), Some(1)]
    );
    assert_eq!(second.next_before_id, None);
    let everything = db.record_page(SERVER, None, None, 100).unwrap();
    assert_eq!(everything.items.len(), 7);
    assert_eq!(everything.items[0].feed, "b");
    assert!(
        db.record_page("ws://other/", None, None, 10)
            .unwrap()
            .items
            .is_empty()
    );
}

#[test]
fn retention_trims_by_age_then_by_size_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let day = 24 * 3600 * 1000;
    let now = 10 * day;
    // Ten events of 10 bytes of data each (+1 byte of feed name): 110.
    let deliveries: Vec<Delivery> = (0..10)
        .map(|n| {
            event(
                "a",
                n + 1,
                &format!("{{\"n\":\"{:02}\"}}", n),
                now - (9 - n as i64) * day,
            )
        })
        .collect();
    delivered(&db, &deliveries);
    assert_eq!(db.record_usage().unwrap().items, 10);
    assert_eq!(db.record_usage().unwrap().bytes, 110);
    // A week: the two events older than seven days go.
    let week = RecordRetention {
        max_age: Duration::from_secs(7 * 24 * 3600),
        max_bytes: u64::MAX,
    };
    assert_eq!(db.trim_record(week, now).unwrap(), 2);
    let seqs = |db: &Database| {
        db.record_page(SERVER, None, None, 100)
            .unwrap()
            .items
            .iter()
            .rev()
            .map(|i| i.seq.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(&db), [3, 4, 5, 6, 7, 8, 9, 10]);
    // 50 bytes: the oldest go until at most 50 are left (four events, 44).
    let small = RecordRetention {
        max_age: Duration::from_secs(365 * 24 * 3600),
        max_bytes: 50,
    };
    assert_eq!(db.trim_record(small, now).unwrap(), 4);
    assert_eq!(seqs(&db), [7, 8, 9, 10]);
    assert_eq!(db.record_usage().unwrap().bytes, 44);
    assert_eq!(
        db.trim_record(small, now).unwrap(),
        0,
        "nothing more to trim"
    );
}

#[test]
fn export_writes_json_lines_and_csv_a_feed_and_a_time_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    delivered(
        &db,
        &[
            event("a", 1, r#"{"text":"a, \"quoted\" one"}"#, 100),
            event("b", 1, r#"{"n":1}"#, 150),
            event("a", 2, r#"{"n":2}"#, 200),
            event("a", 3, r#"{"n":3}"#, 300),
        ],
    );
    let mut jsonl = Vec::new();
    let count = db
        .export_record(
            SERVER,
            Some("a"),
            Some(100),
            Some(200),
            ExportFormat::JsonLines,
            &mut jsonl,
        )
        .unwrap();
    assert_eq!(count, 2);
    let lines: Vec<serde_json::Value> = String::from_utf8(jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["data"]["text"], "a, \"quoted\" one");
    assert_eq!(lines[1]["seq"], 2);
    assert_eq!(lines[1]["at_ms"], 200);

    let mut csv_bytes = Vec::new();
    let count = db
        .export_record(SERVER, None, None, None, ExportFormat::Csv, &mut csv_bytes)
        .unwrap();
    assert_eq!(count, 4);
    let mut reader = csv::Reader::from_reader(csv_bytes.as_slice());
    assert_eq!(
        reader.headers().unwrap(),
        vec![
            "id", "at_ms", "feed", "kind", "seq", "epoch", "data", "meta"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4);
    assert_eq!(&rows[0][2], "a");
    assert_eq!(
        &rows[0][6], r#"{"text":"a, \"quoted\" one"}"#,
        "CSV quoting keeps the JSON whole"
    );
    assert_eq!(&rows[1][2], "b");
}

fn parse(
    text: Option<&str>,
    regex: Option<&str>,
    conditions: &[&str],
    feed: Option<&str>,
) -> Search {
    Search::parse(&SearchQuery {
        feed: feed.map(Into::into),
        text: text.map(Into::into),
        regex: regex.map(Into::into),
        conditions: conditions.iter().map(|c| c.to_string()).collect(),
    })
    .unwrap()
}

#[test]
fn search_finds_each_kind_of_condition_newest_first_and_goes_on_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let deliveries: Vec<Delivery> = (1..=5000u64)
        .map(|n| {
            let sym = if n % 1000 == 0 { "HOLD" } else { "OTHR" };
            event(
                if n % 2 == 0 { "even" } else { "odd" },
                n,
                &format!(r#"{{"sym":"{sym}","px":{n},"note":"tick {n}"}}"#),
                n as i64,
            )
        })
        .collect();
    delivered(&db, &deliveries);
    let ask = |search: &Search, before: Option<i64>, limit: usize| {
        db.search_record(
            SERVER,
            search,
            before,
            limit,
            Duration::from_secs(10),
            |_| {},
        )
        .unwrap()
    };
    let px = |page: &holdline_storage::SearchPage| {
        page.hits
            .iter()
            .map(|h| {
                serde_json::from_str::<serde_json::Value>(h.item.data.get()).unwrap()["px"]
                    .as_u64()
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    // Free text, any case, highlighted.
    let hold = ask(&parse(Some("hold"), None, &[], None), None, 10);
    assert_eq!(px(&hold), [5000, 4000, 3000, 2000, 1000]);
    assert_eq!(hold.next_before_id, None, "the whole record was scanned");
    assert_eq!(hold.hits[0].highlights, vec![[8, 12]]);
    // A regex.
    let nines = ask(&parse(None, Some(r"tick 9\d9\b"), &[], None), None, 100);
    assert_eq!(
        px(&nines),
        [999, 989, 979, 969, 959, 949, 939, 929, 919, 909]
    );
    // Pointer conditions, on one feed.
    let high = ask(
        &parse(
            None,
            None,
            &["/px >= 4990", "/sym != \"HOLD\""],
            Some("odd"),
        ),
        None,
        100,
    );
    assert_eq!(px(&high), [4999, 4997, 4995, 4993, 4991]);
    // A page at a time: the second goes on where the first stopped.
    let all_hold = parse(None, None, &["/sym = \"HOLD\""], None);
    let first = ask(&all_hold, None, 2);
    assert_eq!(px(&first), [5000, 4000]);
    let second = ask(&all_hold, first.next_before_id, 10);
    assert_eq!(px(&second), [3000, 2000, 1000]);
    // Out of budget: what was found so far, and where to go on.
    let mut found = Vec::new();
    let mut before = None;
    let mut steps = 0;
    loop {
        let page = db
            .search_record(SERVER, &all_hold, before, 100, Duration::ZERO, |_| {})
            .unwrap();
        found.extend(px(&page));
        steps += 1;
        match page.next_before_id {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(found, [5000, 4000, 3000, 2000, 1000]);
    assert!(steps > 1, "a zero budget answers after one chunk");
}
