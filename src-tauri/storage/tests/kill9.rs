//! `kill -9` of a client that keeps its state the way the app does (SQLite
//! cursors, outbox and history in one database), at random points while it
//! delivers two growing feeds and publishes. After every kill the database
//! passes `PRAGMA integrity_check`; across all runs no event is skipped; in
//! the end every publish that reached the outbox is on the server exactly
//! once, and a publish acked before a kill is never published again as new;
//! the record of delivered events ends exactly at the cursor, each event in
//! it once.
//!
//! The client is this test binary run again in the `client` role, so it can
//! be killed without killing the test.
#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use holdline_engine::{
    BackoffConfig, ConnectionState, Delivery, Engine, EngineConfig, EngineEvent, FeedUrl,
    MemoryCursorStore, PublishStatus, StartFrom, Stores, Token,
};
use holdline_server::{RunningServer, ServerConfig};
use holdline_storage::{Database, SqliteCursorStore, SqliteOutboxStore};
use holdline_testkit::within;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, BufReader};

const TOKEN: &str = "kill9-token";
const ROLE: &str = "HOLDLINE_KILL9_DB";
const WAIT: Duration = Duration::from_secs(60);

// ---- the client ---------------------------------------------------------

/// Does nothing in a normal test run; it is the client when `ROLE` is set.
#[test]
fn client() {
    let Ok(db_path) = std::env::var(ROLE) else {
        return;
    };
    let url = std::env::var("HOLDLINE_KILL9_URL").expect("url");
    let first_publish: Option<u64> = std::env::var("HOLDLINE_KILL9_PUBLISH_FROM")
        .ok()
        .and_then(|v| v.parse().ok());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(run_client(&db_path, &url, first_publish));
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "@@ {line}");
    let _ = out.flush();
}

/// Wires the stores exactly as the app's hub does; `publish_from` None
/// means: publish nothing, exit once the outbox is empty.
async fn run_client(db_path: &str, url: &str, publish_from: Option<u64>) {
    let (db, _) = Database::open(db_path).expect("database");
    let db = Arc::new(db);
    let (url, _) = FeedUrl::parse(url).expect("url");
    let server_key = url.server_key().to_owned();
    let cursors = Arc::new(SqliteCursorStore::new(db.clone()));
    let stores = Stores {
        cursors: cursors.clone(),
        outbox: Arc::new(SqliteOutboxStore::new(db.clone(), server_key.clone())),
    };
    let mut config = EngineConfig::new(url, Some(Token::new(TOKEN)));
    config.backoff = BackoffConfig {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        ..BackoffConfig::default()
    };
    let (engine, mut deliveries) = Engine::start(config, stores).expect("engine");
    tokio::spawn(holdline_storage::record_history(
        db.clone(),
        server_key.clone(),
        engine.events(),
    ));
    let mut events = engine.events();
    for feed in ["a", "b"] {
        engine
            .subscribe(feed, StartFrom::Beginning)
            .await
            .expect("subscribe");
    }
    let _ = engine.connect().await;
    tokio::spawn(async move {
        // Record, hand on, then commit: what the app's UI pump does.
        while let Some(delivery) = deliveries.recv().await {
            if let Delivery::Event(event) = &delivery {
                let seq = event.seq.unwrap_or_default();
                say(&format!("event {} {seq}", event.feed));
            }
            let _ = cursors.record(&server_key, &delivery);
            let _ = deliveries.commit(&delivery);
        }
    });
    if let Some(first) = publish_from {
        let publisher = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(2));
            for k in first.. {
                tick.tick().await;
                let data = RawValue::from_string(format!("{{\"k\":{k}}}")).expect("json");
                if publisher
                    .publish("out", data, Some(format!("pub-{k}")))
                    .await
                    .is_ok()
                {
                    say(&format!("queued pub-{k}"));
                }
            }
        });
    }
    loop {
        match events.recv().await {
            Ok(EngineEvent::Publish(update)) => {
                if let PublishStatus::Acked { seq: Some(seq) } = update.status {
                    say(&format!("acked {} {seq}", update.id));
                }
            }
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
        if publish_from.is_none()
            && let Ok(snapshot) = engine.snapshot().await
            && snapshot.outbox.is_empty()
            && matches!(snapshot.state, ConnectionState::Open { .. })
        {
            say("drained");
            break;
        }
    }
    engine.shutdown().await;
}

// ---- the test -----------------------------------------------------------

#[derive(Default)]
struct Seen {
    /// Per feed, the event seqs each run delivered, in order.
    runs: BTreeMap<String, Vec<Vec<u64>>>,
    queued: BTreeSet<String>,
    acked: BTreeMap<String, u64>,
    drained: bool,
}

impl Seen {
    fn take_run(&mut self, lines: &[String]) {
        let mut this_run: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for line in lines {
            // libtest may have started the line ("test client ... ").
            let Some(at) = line.find("@@ ") else { continue };
            let words: Vec<&str> = line[at..].split(' ').collect();
            match words.as_slice() {
                ["@@", "event", feed, seq] => this_run
                    .entry((*feed).to_owned())
                    .or_default()
                    .push(seq.parse().expect("seq")),
                ["@@", "queued", id] => {
                    self.queued.insert((*id).to_owned());
                }
                ["@@", "acked", id, seq] => {
                    let seq: u64 = seq.parse().expect("seq");
                    let before = self.acked.insert((*id).to_owned(), seq);
                    // Acked again after a restart: the server must answer
                    // with the first seq, never publish it anew.
                    assert!(
                        before.is_none_or(|s| s == seq),
                        "{id} acked as {before:?} and {seq}"
                    );
                }
                ["@@", "drained"] => self.drained = true,
                _ => {}
            }
        }
        for (feed, seqs) in this_run {
            self.runs.entry(feed).or_default().push(seqs);
        }
    }
}

/// The record and the cursors agree: each feed's recorded events are its
/// seqs from 1, each once, up to exactly the cursor.
fn record_agrees_with_cursors(db: &Path) -> Result<(), String> {
    let connection = rusqlite::Connection::open(db).expect("open");
    for feed in ["a", "b"] {
        let cursor: Option<i64> = connection
            .query_row("SELECT seq FROM cursors WHERE feed = ?1", [feed], |row| {
                row.get(0)
            })
            .ok();
        let mut statement = connection
            .prepare("SELECT seq FROM record WHERE feed = ?1 AND kind = 'event' ORDER BY id")
            .expect("prepare");
        let seqs: Vec<i64> = statement
            .query_map([feed], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .expect("read the record");
        let expected: Vec<i64> = (1..=cursor.unwrap_or(0)).collect();
        if seqs != expected {
            let shown = |v: &[i64]| {
                format!(
                    "{} items ending {:?}",
                    v.len(),
                    v.iter().rev().take(3).collect::<Vec<_>>()
                )
            };
            return Err(format!(
                "feed {feed}: the cursor is at {cursor:?} but the record holds {}",
                shown(&seqs)
            ));
        }
    }
    Ok(())
}

fn integrity(db: &Path) -> String {
    let connection = rusqlite::Connection::open(db).expect("open");
    connection
        .query_row("PRAGMA integrity_check", [], |row| row.get::<_, String>(0))
        .expect("integrity_check")
}

async fn spawn_client(db: &Path, url: &str, publish_from: Option<u64>) -> tokio::process::Child {
    let mut command = tokio::process::Command::new(std::env::current_exe().expect("exe"));
    command
        .args(["--exact", "client", "--nocapture", "--test-threads=1"])
        .env(ROLE, db)
        .env("HOLDLINE_KILL9_URL", url)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        // A panic in the client shows up in the test's output.
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(first) = publish_from {
        command.env("HOLDLINE_KILL9_PUBLISH_FROM", first.to_string());
    }
    command.spawn().expect("spawn the client")
}

async fn read_lines(child: &mut tokio::process::Child) -> tokio::task::JoinHandle<Vec<String>> {
    let stdout = child.stdout.take().expect("stdout");
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push(line);
        }
        all
    })
}

/// Everything the server holds in `feed`, read by a plain engine.
async fn server_feed(server: &RunningServer, feed: &str) -> Vec<String> {
    let Some((_, head)) = server.head(feed).await.expect("head") else {
        return Vec::new();
    };
    let (url, _) = FeedUrl::parse(&server.url()).expect("url");
    let stores = Stores {
        cursors: Arc::new(MemoryCursorStore::default()),
        ..Stores::default()
    };
    let (engine, mut deliveries) =
        Engine::start(EngineConfig::new(url, Some(Token::new(TOKEN))), stores).expect("engine");
    engine
        .subscribe(feed, StartFrom::Beginning)
        .await
        .expect("subscribe");
    let _ = engine.connect().await;
    let mut data = Vec::new();
    within(WAIT, "the whole feed", async {
        while let Some(delivery) = deliveries.recv().await {
            if let Delivery::Event(event) = delivery {
                data.push(event.data.get().to_owned());
                if event.seq == Some(head) {
                    break;
                }
            }
        }
    })
    .await;
    engine.shutdown().await;
    data
}

#[tokio::test]
async fn kill_9_while_delivering_and_publishing_loses_and_repeats_nothing_the_app_would_store() {
    if std::env::var_os(ROLE).is_some() {
        return; // the client runs `client` only
    }
    let seed: u64 = std::env::var("HOLDLINE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("HOLDLINE_KILL_SEED={seed}");
    let mut kill_points = fastrand::Rng::with_seed(seed);

    let server = Arc::new(
        holdline_server::start(ServerConfig {
            tokens: vec![TOKEN.into()],
            retain: 1_000_000,
            heartbeat: Duration::from_millis(500),
            ..ServerConfig::default()
        })
        .await
        .expect("server"),
    );
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let feeder = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            for n in 1u64.. {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stopped => break,
                }
                let data = RawValue::from_string(format!("{{\"n\":{n}}}")).expect("json");
                for feed in ["a", "b"] {
                    server.publish(feed, &data).await.expect("publish");
                }
            }
        })
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("holdline.db");
    let mut seen = Seen::default();
    let rounds = 10u64;
    for round in 0..rounds {
        let mut child = spawn_client(&db, &server.url(), Some(round * 1_000_000)).await;
        let lines = read_lines(&mut child).await;
        let kill_after = kill_points.u64(80..680);
        // The kill point: a chaos schedule, not a wait for readiness.
        tokio::time::sleep(Duration::from_millis(kill_after)).await;
        child.start_kill().expect("kill -9");
        child.wait().await.expect("reaped");
        let lines = lines.await.expect("lines");
        seen.take_run(&lines);
        assert_eq!(integrity(&db), "ok", "after kill {round} (seed {seed})");
        if let Err(disagreement) = record_agrees_with_cursors(&db) {
            panic!("after kill {round} (seed {seed}): {disagreement}");
        }
        println!(
            "kill {round} after {kill_after} ms: {} lines, {} queued so far",
            lines.len(),
            seen.queued.len()
        );
    }
    stop.send(()).expect("stop feeding");
    feeder.await.expect("feeder");

    let mut last = spawn_client(&db, &server.url(), None).await;
    let lines = read_lines(&mut last).await;
    let status = within(WAIT, "the outbox to drain", last.wait())
        .await
        .expect("status");
    let lines = lines.await.expect("lines");
    let output = lines.join("\n");
    seen.take_run(&lines);
    assert!(
        status.success() && seen.drained,
        "the last run did not drain its outbox: {status}, its output:\n{} (seed {seed})",
        output
    );
    assert_eq!(integrity(&db), "ok");
    record_agrees_with_cursors(&db).expect("the record and the cursors agree at the end");

    // No event skipped: each run starts at or before the event after the
    // furthest one delivered before it, and counts up by one.
    let mut most_repeated = 0u64;
    for (feed, runs) in &seen.runs {
        let mut furthest = 0u64;
        for seqs in runs {
            if let Some(&first) = seqs.first() {
                most_repeated = most_repeated.max((furthest + 1).saturating_sub(first));
                assert!(
                    first <= furthest + 1,
                    "feed {feed}: skipped {}..{first} (seed {seed})",
                    furthest + 1
                );
                let expected: Vec<u64> = (first..first + seqs.len() as u64).collect();
                assert_eq!(seqs, &expected, "feed {feed} (seed {seed})");
                furthest = furthest.max(*seqs.last().unwrap_or(&0));
            }
        }
    }
    // Every publish that reached the outbox is on the server exactly once.
    let published = server_feed(&server, "out").await;
    let mut on_server = BTreeSet::new();
    for data in &published {
        let value: serde_json::Value = serde_json::from_str(data).expect("json");
        let k = value["k"].as_u64().expect("k");
        assert!(
            on_server.insert(format!("pub-{k}")),
            "pub-{k} published twice"
        );
    }
    for id in seen.queued.iter().chain(seen.acked.keys()) {
        assert!(
            on_server.contains(id),
            "{id} was queued but never published"
        );
    }
    println!(
        "{rounds} kills (seed {seed}): {} publishes queued, {} on the server once each; \
         at most {most_repeated} events repeated after a restart; database ok after every kill",
        seen.queued.len(),
        on_server.len()
    );
}
