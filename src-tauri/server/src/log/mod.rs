//! Where a feed's events live: its epoch, its numbering, what is retained
//! and which publish ids were accepted (protocol sections 5 and 6).
//!
//! The feed hub (`crate::feeds`) fans out and answers subscribes; a log
//! stores. Every log gives the same answers: `seq` without holes within an
//! epoch, replay and `gap` as if exactly `retain` events were kept, a
//! repeated publish id answered with its stored `seq`. What differs is how
//! long that lasts: `memory` until the process ends, `sqlite:` and
//! `redis://` across restarts (and, for Redis, across nodes).

#[cfg(test)]
mod conformance;
mod memory;
mod publish_ids;
mod redis;
mod sqlite;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use holdline_protocol::{Event, ServerFrame};
use serde_json::value::RawValue;
use thiserror::Error;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::auth::Principal;
use crate::feeds::{FeedHub, Subscriber};

pub use self::memory::MemoryLog;
pub use self::redis::RedisLog;
pub use self::sqlite::SqliteLog;

/// The `--log` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSpec {
    Memory,
    Sqlite(PathBuf),
    Redis(String),
}

impl FromStr for LogSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "memory" {
            return Ok(LogSpec::Memory);
        }
        if let Some(path) = text.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err(
                    "sqlite: needs a file path, as in sqlite:/var/lib/holdline/log.db".into(),
                );
            }
            return Ok(LogSpec::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("redis://") || text.starts_with("rediss://") {
            let url =
                url::Url::parse(text).map_err(|err| format!("{text:?} is not a URL: {err}"))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!("{text:?} names no Redis host"));
            }
            return Ok(LogSpec::Redis(text.to_owned()));
        }
        Err(format!(
            "unknown log {text:?}: use memory, sqlite:PATH or redis://HOST:PORT/"
        ))
    }
}

impl fmt::Display for LogSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogSpec::Memory => f.write_str("memory"),
            LogSpec::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            // A password in the URL stays out of every message.
            LogSpec::Redis(url) => match url::Url::parse(url) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("***"));
                    }
                    write!(f, "{url}")
                }
                Err(_) => f.write_str("redis://?"),
            },
        }
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum LogError {
    /// The store did not answer, or failed: nothing was stored.
    #[error("the feed log is unavailable: {0}")]
    Unavailable(String),
}

impl LogError {
    /// The server is stopping: its log takes nothing more.
    pub fn closed() -> LogError {
        LogError::Unavailable("the log is closed".into())
    }
}

/// How long a log may take before a publish or subscribe is answered
/// `internal`; a durable log's store is on the other side of a socket or a
/// disk that may hang.
pub const LOG_TIMEOUT: Duration = Duration::from_secs(3);

/// A repeated publish is recognised by who sent it and its id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PublishKey {
    pub principal: Principal,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub feed: String,
    pub seq: u64,
}

/// One stored event, as the frame subscribers get.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: u64,
    pub frame: Utf8Bytes,
}

/// A subscriber registered with the hub, and the log's answer for it.
pub struct Registered {
    pub epoch: String,
    /// The last `seq` before the live stream: replay ends here.
    pub head: u64,
}

/// The event frame for `data` at `seq`, built in one place for every log.
pub fn event_frame(feed: &str, seq: u64, data: Box<RawValue>, ts: i64) -> Utf8Bytes {
    Utf8Bytes::from(
        ServerFrame::Event(Event {
            feed: feed.to_owned(),
            seq,
            data,
            ts,
        })
        .to_json(),
    )
}

/// A fresh epoch: random, so a new log never repeats an old one.
pub fn new_epoch() -> String {
    format!(
        "{:012x}-{:04x}",
        fastrand::u64(..) & 0xffff_ffff_ffff,
        fastrand::u16(..)
    )
}

/// A publish on its way into the log. Created in the order the publishes
/// arrive, so one connection's publishes are stored in the order it sent
/// them; it resolves when the log has stored (or refused) it.
pub enum Appending {
    Done(Option<Result<Accepted, LogError>>),
    Waiting(oneshot::Receiver<Result<Accepted, LogError>>),
}

impl Future for Appending {
    type Output = Result<Accepted, LogError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Appending::Done(outcome) => Poll::Ready(
                outcome
                    .take()
                    .unwrap_or_else(|| Err(LogError::Unavailable("polled twice".into()))),
            ),
            Appending::Waiting(answer) => Pin::new(answer).poll(cx).map(|answer| {
                answer.unwrap_or_else(|_| Err(LogError::Unavailable("the log stopped".into())))
            }),
        }
    }
}

/// The log this server runs on.
pub enum Log {
    Memory(MemoryLog),
    Sqlite(SqliteLog),
    Redis(RedisLog),
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub retain: usize,
    pub publish_id_ttl: Duration,
}

impl Log {
    pub async fn open(
        spec: &LogSpec,
        settings: LogSettings,
        hub: Arc<FeedHub>,
    ) -> Result<Log, String> {
        Ok(match spec {
            LogSpec::Memory => Log::Memory(MemoryLog::new(settings, hub)),
            LogSpec::Sqlite(path) => Log::Sqlite(SqliteLog::open(path, settings, hub).await?),
            LogSpec::Redis(url) => Log::Redis(RedisLog::open(url, settings, hub).await?),
        })
    }

    /// Stores `data` as the feed's next event and fans it out, or answers
    /// a repeated `key` with its stored outcome.
    pub fn append(&self, feed: &str, data: &RawValue, key: Option<PublishKey>) -> Appending {
        match self {
            Log::Memory(log) => Appending::Done(Some(Ok(log.append(feed, data, key)))),
            Log::Sqlite(log) => log.append(feed, data, key),
            Log::Redis(log) => log.append(feed, data, key),
        }
    }

    /// Registers `subscriber` with the hub at the feed's current head (the
    /// feed is created if new), so nothing falls between replay and live.
    pub async fn register(
        &self,
        feed: &str,
        subscriber: Subscriber,
    ) -> Result<Registered, LogError> {
        match self {
            Log::Memory(log) => Ok(log.register(feed, subscriber)),
            Log::Sqlite(log) => log.register(feed, subscriber).await,
            Log::Redis(log) => log.register(feed, subscriber).await,
        }
    }

    /// The retained events from `from` to `to`, in order.
    pub async fn read(&self, feed: &str, from: u64, to: u64) -> Result<Vec<StoredEvent>, LogError> {
        if from > to {
            return Ok(Vec::new());
        }
        match self {
            Log::Memory(log) => Ok(log.read(feed, from, to)),
            Log::Sqlite(log) => log.read(feed, from, to).await,
            Log::Redis(log) => log.read(feed, from, to).await,
        }
    }

    /// The feed's epoch and head, if it has one.
    pub async fn head(&self, feed: &str) -> Result<Option<(String, u64)>, LogError> {
        match self {
            Log::Memory(log) => Ok(log.head(feed)),
            Log::Sqlite(log) => Ok(log.head(feed)),
            Log::Redis(log) => log.head(feed).await,
        }
    }

    /// Stops background work; what was acknowledged is already stored.
    pub async fn close(&self) {
        match self {
            Log::Memory(_) => {}
            Log::Sqlite(log) => log.close().await,
            Log::Redis(log) => log.close(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_settings_parse_and_name_their_mistakes() {
        assert_eq!("memory".parse(), Ok(LogSpec::Memory));
        assert_eq!(
            "sqlite:/tmp/x.db".parse(),
            Ok(LogSpec::Sqlite(PathBuf::from("/tmp/x.db")))
        );
        assert_eq!(
            "redis://127.0.0.1:6379/".parse(),
            Ok(LogSpec::Redis("redis://127.0.0.1:6379/".into()))
        );
        assert!(
            "sqlite:"
                .parse::<LogSpec>()
                .unwrap_err()
                .contains("file path")
        );
        assert!("redis://".parse::<LogSpec>().unwrap_err().contains("host"));
        assert!(
            "postgres://x"
                .parse::<LogSpec>()
                .unwrap_err()
                .contains("unknown log")
        );
    }

    #[test]
    fn a_redis_password_is_never_shown() {
        let spec: LogSpec = "redis://:hunter2@127.0.0.1:6379/".parse().unwrap();
        let shown = spec.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("127.0.0.1:6379"));
    }
}
