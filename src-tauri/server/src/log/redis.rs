//! The log on Redis Streams: one stream per feed whose entry ids are the
//! events' `seq`, the epoch and head in a hash beside it, publish ids as
//! expiring keys. Several nodes share one Redis: each stores through Lua
//! scripts (atomic numbering and dedupe) and fans out what it reads from
//! the streams its subscribers follow, so every node delivers in `seq`
//! order whichever node stored the event.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig, Client, RedisResult, Script};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::{
    Accepted, Appending, LOG_TIMEOUT, LogError, LogSettings, PublishKey, Registered, StoredEvent,
    event_frame, new_epoch,
};
use crate::feeds::{FeedHub, Subscriber};

/// Events a stream keeps at least, whatever `--retain` says: a node whose
/// reading lags behind by fewer than this loses nothing to trimming.
const KEPT_FOR_FOLLOWERS: usize = 4096;
/// Publishes sent to Redis in one pipeline.
const APPEND_BATCH: usize = 512;
/// Entries read per stream per `XREAD`.
const READ_BATCH: usize = 1024;
/// How long one `XREAD` blocks; a change of followed feeds cuts it short.
const FOLLOW_BLOCK: Duration = Duration::from_secs(5);

fn meta_key(feed: &str) -> String {
    format!("holdline:feed:{feed}:meta")
}

fn stream_key(feed: &str) -> String {
    format!("holdline:feed:{feed}:events")
}

fn publish_key(key: &PublishKey) -> String {
    format!("holdline:publish:{}:{}", key.principal.as_key(), key.id)
}

struct Scripts {
    append: Script,
    open: Script,
    read: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            append: Script::new(include_str!("redis/append.lua")),
            open: Script::new(include_str!("redis/open.lua")),
            read: Script::new(include_str!("redis/read.lua")),
        }
    }
}

struct AppendRequest {
    feed: String,
    data: String,
    key: Option<PublishKey>,
    deadline_ms: i64,
    answer: oneshot::Sender<Result<Accepted, LogError>>,
}

pub struct RedisLog {
    connection: ConnectionManager,
    scripts: Arc<Scripts>,
    appends: mpsc::UnboundedSender<AppendRequest>,
    hub: Arc<FeedHub>,
    retain: usize,
    tasks: Vec<JoinHandle<()>>,
}

fn unavailable(err: impl std::fmt::Display) -> LogError {
    LogError::Unavailable(format!("Redis: {err}"))
}

async fn bounded<T>(work: impl Future<Output = RedisResult<T>>) -> Result<T, LogError> {
    match tokio::time::timeout(LOG_TIMEOUT, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(unavailable(err)),
        Err(_) => Err(unavailable("no answer in time")),
    }
}

impl RedisLog {
    pub async fn open(url: &str, settings: LogSettings, hub: Arc<FeedHub>) -> Result<Self, String> {
        let shown = super::LogSpec::Redis(url.to_owned()).to_string();
        let client = Client::open(url).map_err(|err| format!("{shown}: {err}"))?;
        // One plain connection first: the manager below would keep
        // retrying a Redis that refuses, where starting should say so.
        let probe = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(LOG_TIMEOUT))
            .set_response_timeout(Some(LOG_TIMEOUT));
        client
            .get_multiplexed_async_connection_with_config(&probe)
            .await
            .map_err(|err| format!("cannot reach Redis at {shown}: {err}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(LOG_TIMEOUT))
            .set_response_timeout(Some(LOG_TIMEOUT))
            .set_max_delay(Duration::from_secs(2));
        let mut connection = tokio::time::timeout(
            LOG_TIMEOUT * 2,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| format!("cannot reach Redis at {shown}: no answer in time"))?
        .map_err(|err| format!("cannot reach Redis at {shown}: {err}"))?;
        let version: String = redis::cmd("INFO")
            .arg("server")
            .query_async(&mut connection)
            .await
            .map_err(|err| format!("Redis at {shown} does not answer INFO: {err}"))?;
        check_version(&version).map_err(|err| format!("Redis at {shown}: {err}"))?;
        let scripts = Arc::new(Scripts::new());
        for script in [&scripts.append, &scripts.open, &scripts.read] {
            script
                .prepare_invoke()
                .load_async(&mut connection)
                .await
                .map_err(|err| format!("Redis at {shown} refuses the log's scripts: {err}"))?;
        }
        let (appends, requests) = mpsc::unbounded_channel();
        let keep = settings.retain.max(KEPT_FOR_FOLLOWERS);
        let ttl_ms = settings.publish_id_ttl.as_millis() as u64;
        let appender = tokio::spawn(append_loop(
            connection.clone(),
            scripts.clone(),
            requests,
            keep,
            ttl_ms,
        ));
        let follower = tokio::spawn(follow_loop(client, connection.clone(), hub.clone()));
        Ok(RedisLog {
            connection,
            scripts,
            appends,
            hub,
            retain: settings.retain,
            tasks: vec![appender, follower],
        })
    }

    pub fn append(&self, feed: &str, data: &RawValue, key: Option<PublishKey>) -> Appending {
        let (answer, waiting) = oneshot::channel();
        let request = AppendRequest {
            feed: feed.to_owned(),
            data: data.get().to_owned(),
            key,
            deadline_ms: holdline_protocol::now_ms() + LOG_TIMEOUT.as_millis() as i64,
            answer,
        };
        if let Err(refused) = self.appends.send(request) {
            let _ = refused.0.answer.send(Err(LogError::closed()));
        }
        Appending::Waiting(waiting)
    }

    pub async fn register(
        &self,
        feed: &str,
        subscriber: Subscriber,
    ) -> Result<Registered, LogError> {
        let mut connection = self.connection.clone();
        let (epoch, log_head): (String, u64) = bounded(
            self.scripts
                .open
                .key(meta_key(feed))
                .arg(new_epoch())
                .invoke_async(&mut connection),
        )
        .await?;
        // From here the follower reads what comes after the head this
        // node joined at, so nothing stored in between is missed.
        let head = self.hub.register(feed, &epoch, log_head, subscriber);
        Ok(Registered { epoch, head })
    }

    pub async fn read(&self, feed: &str, from: u64, to: u64) -> Result<Vec<StoredEvent>, LogError> {
        let mut connection = self.connection.clone();
        let entries: Vec<(String, Vec<(String, String)>)> = bounded(
            self.scripts
                .read
                .key(meta_key(feed))
                .key(stream_key(feed))
                .arg(from)
                .arg(to)
                .arg(self.retain)
                .invoke_async(&mut connection),
        )
        .await?;
        entries
            .into_iter()
            .map(|(id, fields)| stored_event(feed, &id, fields.into_iter()))
            .collect()
    }

    pub async fn head(&self, feed: &str) -> Result<Option<(String, u64)>, LogError> {
        let mut connection = self.connection.clone();
        let (epoch, head): (Option<String>, Option<u64>) = bounded(
            redis::cmd("HMGET")
                .arg(meta_key(feed))
                .arg("epoch")
                .arg("head")
                .query_async(&mut connection),
        )
        .await?;
        Ok(epoch.map(|epoch| (epoch, head.unwrap_or(0))))
    }

    pub fn close(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for RedisLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// MINID trimming needs Redis 6.2.
fn check_version(info: &str) -> Result<(), String> {
    let version = info
        .lines()
        .find_map(|line| line.strip_prefix("redis_version:"))
        .map(str::trim)
        .unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) >= (6, 2) {
        Ok(())
    } else {
        Err(format!(
            "version {version:?} is too old: Redis Streams with MINID need 6.2 or later"
        ))
    }
}

/// An entry `<seq>-0` with fields `d` (the data) and `t` (the time).
fn stored_event(
    feed: &str,
    id: &str,
    fields: impl Iterator<Item = (String, String)>,
) -> Result<StoredEvent, LogError> {
    let corrupt = |what: &str| LogError::Unavailable(format!("Redis entry {id} of {feed}: {what}"));
    let seq = id
        .split_once('-')
        .and_then(|(seq, _)| seq.parse::<u64>().ok())
        .ok_or_else(|| corrupt("not a holdline seq"))?;
    let (mut data, mut ts) = (None, 0i64);
    for (name, value) in fields {
        match name.as_str() {
            "d" => data = Some(value),
            "t" => ts = value.parse().unwrap_or(0),
            _ => {}
        }
    }
    let data = data.ok_or_else(|| corrupt("no data"))?;
    let data = RawValue::from_string(data).map_err(|_| corrupt("data is not JSON"))?;
    Ok(StoredEvent {
        seq,
        frame: event_frame(feed, seq, data, ts),
    })
}

/// Sends publishes to Redis in arrival order, many per round trip.
async fn append_loop(
    mut connection: ConnectionManager,
    scripts: Arc<Scripts>,
    mut requests: mpsc::UnboundedReceiver<AppendRequest>,
    keep: usize,
    ttl_ms: u64,
) {
    let mut batch = Vec::with_capacity(APPEND_BATCH);
    while requests.recv_many(&mut batch, APPEND_BATCH).await > 0 {
        let outcomes = append_batch(&mut connection, &scripts, &batch, keep, ttl_ms).await;
        for (request, outcome) in batch.drain(..).zip(outcomes) {
            let _ = request.answer.send(outcome);
        }
    }
}

async fn append_batch(
    connection: &mut ConnectionManager,
    scripts: &Scripts,
    batch: &[AppendRequest],
    keep: usize,
    ttl_ms: u64,
) -> Vec<Result<Accepted, LogError>> {
    let ts = holdline_protocol::now_ms();
    let invocation = |request: &AppendRequest| {
        let mut invocation = scripts.append.prepare_invoke();
        invocation
            .key(meta_key(&request.feed))
            .key(stream_key(&request.feed));
        if let Some(key) = &request.key {
            invocation.key(publish_key(key));
        }
        invocation
            .arg(new_epoch())
            .arg(&request.data)
            .arg(ts)
            .arg(keep)
            .arg(ttl_ms)
            .arg(request.deadline_ms)
            .arg(&request.feed);
        invocation
    };
    let invocations: Vec<_> = batch.iter().map(invocation).collect();
    let mut outcomes = run_pipeline(connection, &invocations, batch).await;
    // A Redis that restarted has forgotten the script: nothing that got
    // NOSCRIPT ran, so those publishes can be sent again once it is loaded.
    let forgotten: Vec<usize> = (0..outcomes.len())
        .filter(|&i| matches!(&outcomes[i], Err(Failure::NoScript)))
        .collect();
    if !forgotten.is_empty() {
        match bounded(scripts.append.prepare_invoke().load_async(connection)).await {
            Ok(_) => {
                let again: Vec<_> = forgotten.iter().map(|&i| invocation(&batch[i])).collect();
                let retried = run_pipeline(connection, &again, batch).await;
                for (i, outcome) in forgotten.into_iter().zip(retried) {
                    outcomes[i] = outcome;
                }
            }
            Err(err) => {
                for i in forgotten {
                    outcomes[i] = Err(Failure::Other(err.clone()));
                }
            }
        }
    }
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.map_err(|failure| match failure {
                Failure::NoScript => unavailable("the append script is not loaded"),
                Failure::Other(err) => err,
            })
        })
        .collect()
}

enum Failure {
    NoScript,
    Other(LogError),
}

/// Runs the invocations in one pipeline, each with its own outcome; none
/// is answered after the earliest deadline in `batch`.
async fn run_pipeline(
    connection: &mut ConnectionManager,
    invocations: &[redis::ScriptInvocation<'_>],
    batch: &[AppendRequest],
) -> Vec<Result<Accepted, Failure>> {
    let failed = |err: LogError| {
        invocations
            .iter()
            .map(|_| Err(Failure::Other(err.clone())))
            .collect()
    };
    let mut pipeline = redis::pipe();
    pipeline.ignore_errors();
    for invocation in invocations {
        pipeline.invoke_script(invocation);
    }
    let deadline = batch.iter().map(|r| r.deadline_ms).min().unwrap_or(0);
    let remaining = (deadline - holdline_protocol::now_ms()).max(0) as u64;
    let answered = tokio::time::timeout(
        Duration::from_millis(remaining),
        pipeline.query_async::<Vec<RedisResult<(String, u64)>>>(connection),
    )
    .await;
    match answered {
        Ok(Ok(results)) => results
            .into_iter()
            .map(|result| match result {
                Ok((feed, seq)) => Ok(Accepted { feed, seq }),
                Err(err)
                    if err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    Err(Failure::NoScript)
                }
                Err(err) => Err(Failure::Other(unavailable(err))),
            })
            .collect(),
        Ok(Err(err)) => failed(unavailable(err)),
        Err(_) => failed(unavailable("no answer before the publish's deadline")),
    }
}

/// Reads the streams of the feeds with subscribers on this node and fans
/// their events out, in `seq` order; retries while Redis is away.
async fn follow_loop(client: Client, mut control: ConnectionManager, hub: Arc<FeedHub>) {
    let mut retry = Duration::from_millis(100);
    loop {
        match follow(&client, &mut control, &hub).await {
            Ok(()) => return,
            Err(err) => {
                warn!(%err, "reading the Redis streams failed; retrying");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn follow(
    client: &Client,
    control: &mut ConnectionManager,
    hub: &FeedHub,
) -> RedisResult<()> {
    // A connection of its own: a blocked XREAD holds up whatever else is
    // sent on the connection it uses.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(LOG_TIMEOUT))
        .set_response_timeout(Some(FOLLOW_BLOCK + LOG_TIMEOUT));
    let mut reader: MultiplexedConnection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let reader_id: i64 = redis::cmd("CLIENT")
        .arg("ID")
        .query_async(&mut reader)
        .await?;
    debug!(reader_id, "following the Redis streams");
    // On every (re)connection and whenever the streams were quiet for a
    // whole block: a Redis that came back without its data, or was
    // flushed, numbers the feeds afresh, and a follower waiting past the
    // old head would wait for ever.
    let mut check_epochs = true;
    loop {
        let followed = hub.followed();
        if followed.is_empty() {
            hub.followed_changed.notified().await;
            continue;
        }
        if check_epochs {
            check_epochs = false;
            restart_lost_feeds(control, hub, &followed).await?;
            continue;
        }
        let keys: Vec<String> = followed
            .iter()
            .map(|(feed, _, _)| stream_key(feed))
            .collect();
        let ids: Vec<String> = followed
            .iter()
            .map(|(_, _, head)| format!("{head}-0"))
            .collect();
        let names: HashMap<&str, &str> = keys
            .iter()
            .zip(&followed)
            .map(|(key, (feed, _, _))| (key.as_str(), &**feed))
            .collect();
        let options = StreamReadOptions::default()
            .block(FOLLOW_BLOCK.as_millis() as usize)
            .count(READ_BATCH);
        let reading = reader.xread_options::<_, _, Option<StreamReadReply>>(&keys, &ids, &options);
        tokio::pin!(reading);
        let reply = tokio::select! {
            reply = &mut reading => reply?,
            () = hub.followed_changed.notified() => {
                // Cut the blocked read short; its (empty) answer follows.
                let _: RedisResult<i64> = redis::cmd("CLIENT")
                    .arg("UNBLOCK")
                    .arg(reader_id)
                    .query_async(control)
                    .await;
                reading.await?
            }
        };
        let Some(reply) = reply else {
            check_epochs = true;
            continue;
        };
        for stream in reply.keys {
            let Some(feed) = names.get(stream.key.as_str()) else {
                continue;
            };
            for entry in stream.ids {
                let fields = entry.map.iter().filter_map(|(name, value)| {
                    redis::from_redis_value_ref::<String>(value)
                        .ok()
                        .map(|value| (name.clone(), value))
                });
                match stored_event(feed, &entry.id, fields) {
                    Ok(event) => hub.deliver(feed, event.seq, &event.frame),
                    Err(err) => warn!(%err, "skipping a stream entry"),
                }
            }
        }
    }
}

/// Tells the subscribers of every followed feed whose epoch Redis no
/// longer has to subscribe again.
async fn restart_lost_feeds(
    control: &mut ConnectionManager,
    hub: &FeedHub,
    followed: &[(Arc<str>, Arc<str>, u64)],
) -> RedisResult<()> {
    let mut pipeline = redis::pipe();
    for (feed, _, _) in followed {
        pipeline.hget(meta_key(feed), "epoch");
    }
    let epochs: Vec<Option<String>> = pipeline.query_async(control).await?;
    for ((feed, epoch, _), now) in followed.iter().zip(epochs) {
        if now.as_deref() != Some(&**epoch) {
            warn!(%feed, "Redis lost the feed's epoch: its subscribers subscribe again");
            hub.restart_feed(feed);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_redis_versions_are_named() {
        assert!(check_version("# Server\r\nredis_version:7.0.15\r\n").is_ok());
        assert!(check_version("redis_version:6.2.0").is_ok());
        let err = check_version("redis_version:5.0.7").unwrap_err();
        assert!(err.contains("6.2"), "{err}");
    }

    #[test]
    fn entries_become_event_frames() {
        let event = stored_event(
            "f",
            "7-0",
            [
                ("d".to_owned(), "{\"a\":1}".to_owned()),
                ("t".to_owned(), "5".to_owned()),
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(event.seq, 7);
        assert!(event.frame.as_str().contains("\"seq\":7"));
        assert!(stored_event("f", "x-0", std::iter::empty()).is_err());
        assert!(stored_event("f", "1-0", [("d".to_owned(), "{".to_owned())].into_iter()).is_err());
    }
}
