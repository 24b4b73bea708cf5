//! The log in a SQLite file, for one node that must survive its restarts:
//! WAL, and one fsync per batch of publishes (`synchronous=FULL`). One
//! writer thread stores every publish in arrival order and fans it out
//! after its batch is committed, so nothing is acknowledged or delivered
//! that a crash could take back.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use super::{
    Accepted, Appending, LOG_TIMEOUT, LogError, LogSettings, PublishKey, Registered, StoredEvent,
    event_frame, new_epoch,
};
use crate::feeds::{FeedHub, Subscriber};

/// Requests stored per transaction.
const WRITE_BATCH: usize = 1024;
/// The schema this server writes, in `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS feeds (
    name TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    head INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    feed TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,
    ts INTEGER NOT NULL,
    PRIMARY KEY (feed, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS publish_ids (
    principal TEXT NOT NULL,
    id TEXT NOT NULL,
    feed TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (principal, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS publish_ids_by_age ON publish_ids (at_ms);
";

enum Request {
    Append {
        feed: String,
        data: Box<RawValue>,
        key: Option<PublishKey>,
        answer: oneshot::Sender<Result<Accepted, LogError>>,
    },
    Create {
        feed: String,
        answer: oneshot::Sender<Result<(), LogError>>,
    },
}

/// Each feed's epoch and head as committed, shared by the writer (which
/// fans out while holding it) and subscribes (which register under it).
type Heads = Arc<Mutex<HashMap<String, (Arc<str>, u64)>>>;

pub struct SqliteLog {
    requests: Mutex<Option<mpsc::UnboundedSender<Request>>>,
    heads: Heads,
    reader: Arc<Mutex<Connection>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    hub: Arc<FeedHub>,
}

fn open_connection(path: &Path) -> Result<Connection, String> {
    let shown = path.display();
    let connection =
        Connection::open(path).map_err(|err| format!("cannot open the log {shown}: {err}"))?;
    connection
        .busy_timeout(LOG_TIMEOUT)
        .and_then(|()| {
            connection.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
        })
        .map_err(|err| format!("{shown} is not a usable SQLite log: {err}"))?;
    Ok(connection)
}

fn unavailable(err: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(format!("SQLite: {err}"))
}

impl SqliteLog {
    pub async fn open(
        path: &Path,
        settings: LogSettings,
        hub: Arc<FeedHub>,
    ) -> Result<Self, String> {
        let shown = path.display().to_string();
        let writer_connection = open_connection(path)?;
        let version: i64 = writer_connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|err| format!("{shown} is not a usable SQLite log: {err}"))?;
        if version > SCHEMA_VERSION {
            return Err(format!(
                "{shown} was written by a newer holdline-server (schema {version}); this one reads schema {SCHEMA_VERSION}"
            ));
        }
        writer_connection
            .execute_batch(SCHEMA)
            .and_then(|()| {
                writer_connection.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            })
            .map_err(|err| format!("{shown} is not a usable SQLite log: {err}"))?;
        let heads = load_heads(&writer_connection)
            .map_err(|err| format!("{shown} is not a usable SQLite log: {err}"))?;
        let heads: Heads = Arc::new(Mutex::new(heads));
        let reader = open_connection(path)?;
        let (requests, receiver) = mpsc::unbounded_channel();
        let writer = Writer {
            connection: writer_connection,
            heads: heads.clone(),
            hub: hub.clone(),
            retain: settings.retain as u64,
            publish_id_ttl: settings.publish_id_ttl,
        };
        let writer = std::thread::Builder::new()
            .name("holdline-log-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(|err| format!("cannot start the log writer: {err}"))?;
        Ok(SqliteLog {
            requests: Mutex::new(Some(requests)),
            heads,
            reader: Arc::new(Mutex::new(reader)),
            writer: Mutex::new(Some(writer)),
            hub,
        })
    }

    fn send(&self, request: Request) -> Result<(), Request> {
        let requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        match requests.as_ref() {
            Some(requests) => requests.send(request).map_err(|refused| refused.0),
            None => Err(request),
        }
    }

    pub fn append(&self, feed: &str, data: &RawValue, key: Option<PublishKey>) -> Appending {
        let (answer, waiting) = oneshot::channel();
        let request = Request::Append {
            feed: feed.to_owned(),
            data: data.to_owned(),
            key,
            answer,
        };
        if let Err(Request::Append { answer, .. }) = self.send(request) {
            let _ = answer.send(Err(LogError::closed()));
        }
        Appending::Waiting(waiting)
    }

    pub async fn register(
        &self,
        feed: &str,
        subscriber: Subscriber,
    ) -> Result<Registered, LogError> {
        if !self.heads().contains_key(feed) {
            let (answer, created) = oneshot::channel();
            let request = Request::Create {
                feed: feed.to_owned(),
                answer,
            };
            if self.send(request).is_err() {
                return Err(LogError::closed());
            }
            match tokio::time::timeout(LOG_TIMEOUT, created).await {
                Ok(Ok(outcome)) => outcome?,
                Ok(Err(_)) => return Err(LogError::Unavailable("the log stopped".into())),
                Err(_) => return Err(unavailable("no answer in time")),
            }
        }
        let heads = self.heads();
        let Some((epoch, log_head)) = heads.get(feed).cloned() else {
            return Err(unavailable("the feed was not created"));
        };
        // Under the heads' lock the writer cannot fan out in between.
        let head = self.hub.register(feed, &epoch, log_head, subscriber);
        Ok(Registered {
            epoch: epoch.to_string(),
            head,
        })
    }

    fn heads(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<str>, u64)>> {
        self.heads.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn read(&self, feed: &str, from: u64, to: u64) -> Result<Vec<StoredEvent>, LogError> {
        let reader = self.reader.clone();
        let feed = feed.to_owned();
        let reading = tokio::task::spawn_blocking(move || {
            let connection = reader.lock().unwrap_or_else(|p| p.into_inner());
            read_events(&connection, &feed, from, to)
        });
        match tokio::time::timeout(LOG_TIMEOUT, reading).await {
            Ok(Ok(events)) => events.map_err(unavailable),
            Ok(Err(err)) => Err(unavailable(err)),
            Err(_) => Err(unavailable("no answer in time")),
        }
    }

    pub fn head(&self, feed: &str) -> Option<(String, u64)> {
        self.heads()
            .get(feed)
            .map(|(epoch, head)| (epoch.to_string(), *head))
    }

    /// Lets the writer finish what it was given and waits for it.
    pub async fn close(&self) {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
    }
}

fn load_heads(connection: &Connection) -> rusqlite::Result<HashMap<String, (Arc<str>, u64)>> {
    let mut statement = connection.prepare("SELECT name, epoch, head FROM feeds")?;
    let rows = statement.query_map([], |row| {
        let epoch: String = row.get(1)?;
        Ok((
            row.get::<_, String>(0)?,
            (Arc::from(epoch), row.get::<_, i64>(2)? as u64),
        ))
    })?;
    rows.collect()
}

fn read_events(
    connection: &Connection,
    feed: &str,
    from: u64,
    to: u64,
) -> rusqlite::Result<Vec<StoredEvent>> {
    let mut statement = connection.prepare_cached(
        "SELECT seq, data, ts FROM events WHERE feed = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq",
    )?;
    let rows = statement.query_map(params![feed, from as i64, to as i64], |row| {
        let seq = row.get::<_, i64>(0)? as u64;
        let data: String = row.get(1)?;
        let ts: i64 = row.get(2)?;
        Ok((seq, data, ts))
    })?;
    let mut events = Vec::new();
    for row in rows {
        let (seq, data, ts) = row?;
        let data = RawValue::from_string(data).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, Box::new(err))
        })?;
        events.push(StoredEvent {
            seq,
            frame: event_frame(feed, seq, data, ts),
        });
    }
    Ok(events)
}

struct Writer {
    connection: Connection,
    heads: Heads,
    hub: Arc<FeedHub>,
    retain: u64,
    publish_id_ttl: Duration,
}

/// What one batch stored, to fan out and answer once it is committed.
#[derive(Default)]
struct Batch {
    /// Heads as this batch leaves them (new feeds included).
    heads: HashMap<String, (Arc<str>, u64)>,
    stored: Vec<(String, u64, Box<RawValue>, i64)>,
    answers: Vec<Answer>,
    /// Publish ids accepted in this batch, seen before they are committed.
    accepted: HashMap<PublishKey, Accepted>,
}

enum Answer {
    Append(oneshot::Sender<Result<Accepted, LogError>>, Accepted),
    Create(oneshot::Sender<Result<(), LogError>>),
}

/// A feed's epoch and head as this batch has it so far.
fn head_of(heads: &Heads, batch: &Batch, feed: &str) -> Option<(Arc<str>, u64)> {
    batch.heads.get(feed).cloned().or_else(|| {
        heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(feed)
            .cloned()
    })
}

impl Writer {
    fn run(mut self, mut receiver: mpsc::UnboundedReceiver<Request>) {
        let mut requests = Vec::with_capacity(WRITE_BATCH);
        while receiver.blocking_recv_many(&mut requests, WRITE_BATCH) > 0 {
            let mut batch = Batch::default();
            let outcome = self.store(&mut requests, &mut batch);
            match outcome {
                Ok(()) => self.publish(batch),
                Err(err) => {
                    let err = unavailable(err);
                    tracing::error!(%err, "storing a batch of publishes failed");
                    for answer in batch.answers {
                        match answer {
                            Answer::Append(answer, _) => {
                                let _ = answer.send(Err(err.clone()));
                            }
                            Answer::Create(answer) => {
                                let _ = answer.send(Err(err.clone()));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Stores every request in one transaction. On failure nothing of it
    /// is stored and every answer in `batch` gets the error.
    fn store(&mut self, requests: &mut Vec<Request>, batch: &mut Batch) -> rusqlite::Result<()> {
        let now = holdline_protocol::now_ms();
        let oldest_id = now - self.publish_id_ttl.as_millis() as i64;
        let transaction = self.connection.transaction()?;
        let mut failure = None;
        for request in requests.drain(..) {
            if failure.is_some() {
                // Answered with the error below, with the rest.
                match request {
                    Request::Append { answer, feed, .. } => batch
                        .answers
                        .push(Answer::Append(answer, Accepted { feed, seq: 0 })),
                    Request::Create { answer, .. } => batch.answers.push(Answer::Create(answer)),
                }
                continue;
            }
            match request {
                Request::Create { feed, answer } => {
                    if head_of(&self.heads, batch, &feed).is_none() {
                        let epoch: Arc<str> = Arc::from(new_epoch());
                        if let Err(err) = transaction.execute(
                            "INSERT INTO feeds (name, epoch, head) VALUES (?1, ?2, 0)",
                            params![feed, &*epoch],
                        ) {
                            failure = Some(err);
                        }
                        batch.heads.insert(feed, (epoch, 0));
                    }
                    batch.answers.push(Answer::Create(answer));
                }
                Request::Append {
                    feed,
                    data,
                    key,
                    answer,
                } => {
                    if let Some(key) = &key {
                        if let Some(accepted) = batch.accepted.get(key) {
                            batch.answers.push(Answer::Append(answer, accepted.clone()));
                            continue;
                        }
                        let prior = transaction
                            .query_row(
                                "SELECT feed, seq FROM publish_ids WHERE principal = ?1 AND id = ?2 AND at_ms >= ?3",
                                params![key.principal.as_key(), key.id, oldest_id],
                                |row| {
                                    Ok(Accepted {
                                        feed: row.get(0)?,
                                        seq: row.get::<_, i64>(1)? as u64,
                                    })
                                },
                            )
                            .optional();
                        match prior {
                            Ok(Some(accepted)) => {
                                batch.answers.push(Answer::Append(answer, accepted));
                                continue;
                            }
                            Ok(None) => {}
                            Err(err) => {
                                failure = Some(err);
                                batch
                                    .answers
                                    .push(Answer::Append(answer, Accepted { feed, seq: 0 }));
                                continue;
                            }
                        }
                    }
                    let (epoch, head) = match head_of(&self.heads, batch, &feed) {
                        Some(known) => known,
                        None => {
                            let epoch: Arc<str> = Arc::from(new_epoch());
                            if let Err(err) = transaction.execute(
                                "INSERT INTO feeds (name, epoch, head) VALUES (?1, ?2, 0)",
                                params![feed, &*epoch],
                            ) {
                                failure = Some(err);
                            }
                            (epoch, 0)
                        }
                    };
                    let seq = head + 1;
                    let stored = transaction
                        .prepare_cached(
                            "INSERT INTO events (feed, seq, data, ts) VALUES (?1, ?2, ?3, ?4)",
                        )
                        .and_then(|mut insert| {
                            insert.execute(params![feed, seq as i64, data.get(), now])
                        })
                        .and_then(|_| match &key {
                            Some(key) => transaction
                                .prepare_cached(
                                    "INSERT OR REPLACE INTO publish_ids (principal, id, feed, seq, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                                )
                                .and_then(|mut insert| {
                                    insert.execute(params![
                                        key.principal.as_key(),
                                        key.id,
                                        feed,
                                        seq as i64,
                                        now
                                    ])
                                }),
                            None => Ok(0),
                        });
                    if let Err(err) = stored {
                        failure = Some(err);
                    }
                    let accepted = Accepted {
                        feed: feed.clone(),
                        seq,
                    };
                    if let Some(key) = key {
                        batch.accepted.insert(key, accepted.clone());
                    }
                    batch.heads.insert(feed.clone(), (epoch, seq));
                    batch.stored.push((feed, seq, data, now));
                    batch.answers.push(Answer::Append(answer, accepted));
                }
            }
        }
        if let Some(err) = failure {
            return Err(err);
        }
        for (feed, (_, head)) in &batch.heads {
            transaction.execute(
                "UPDATE feeds SET head = ?2 WHERE name = ?1",
                params![feed, *head as i64],
            )?;
            // Exactly `retain` kept: replay and `gap` need no arithmetic.
            transaction.execute(
                "DELETE FROM events WHERE feed = ?1 AND seq <= ?2",
                params![feed, head.saturating_sub(self.retain) as i64],
            )?;
        }
        transaction.execute(
            "DELETE FROM publish_ids WHERE at_ms < ?1",
            params![oldest_id],
        )?;
        transaction.commit()
    }

    /// Makes a committed batch visible: heads, fan-out, answers.
    fn publish(&self, batch: Batch) {
        {
            let mut heads = self.heads.lock().unwrap_or_else(|p| p.into_inner());
            for (feed, state) in batch.heads {
                heads.insert(feed, state);
            }
            // Still under the heads' lock: a subscriber registering now
            // joins either before an event (and gets it live) or after it
            // (and gets it in its replay).
            for (feed, seq, data, ts) in batch.stored {
                self.hub
                    .deliver(&feed, seq, &event_frame(&feed, seq, data, ts));
            }
        }
        for answer in batch.answers {
            match answer {
                Answer::Append(answer, accepted) => {
                    let _ = answer.send(Ok(accepted));
                }
                Answer::Create(answer) => {
                    let _ = answer.send(Ok(()));
                }
            }
        }
    }
}
