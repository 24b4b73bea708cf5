//! The feed logs against each other and against bare Redis, in one run.
//!
//!   cargo bench -p holdline-server --bench durable_log
//!
//! Needs `redis-server` (scripts/setup installs it). For each log (memory,
//! SQLite, Redis), one server, 10 subscribers on one feed and publishers
//! that send `publish` frames with ids (the path a client's outbox takes):
//!
//! - latency: 500 publishes/s for 4 s, publish to each subscriber's read,
//!   p50/p99;
//! - rate: 4 publishers flat out for 3 s, each with up to 256 publishes
//!   waiting for their ack: acked publishes/s and deliveries/s.
//!
//! The Redis baseline is the least a Redis-backed feed can do: pipelined
//! `XADD`s and one `XREAD BLOCK` reader, no numbering, no dedupe, no
//! WebSocket. Last, the Redis log on one, two and three nodes in this
//! process (publishers and subscribers spread over them): on two cores the
//! nodes share the same CPUs, so this shows the cost of more nodes, not the
//! gain of more machines.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use holdline_server::{LogSpec, RunningServer, ServerConfig};
use holdline_testkit::RedisServer;
use redis::AsyncCommands;
use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::http::HeaderValue;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "bench";
const SUBSCRIBERS: usize = 10;
const PUBLISHERS: usize = 4;
const IN_FLIGHT: u64 = 256;

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

fn sent_us(text: &str) -> Option<u64> {
    let at = text.find(r#""sent_us":"#)?;
    text[at + 10..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .ok()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn node(log: &LogSpec) -> RunningServer {
    holdline_server::start(ServerConfig {
        tokens: vec![TOKEN.into()],
        log: log.clone(),
        retain: 10_000,
        ..ServerConfig::default()
    })
    .await
    .expect("the bench server starts")
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Socket {
    let mut request = holdline_testkit::ws::request(url).unwrap();
    request.headers_mut().insert(
        "Authorization",
        HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    );
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// Subscribers spread over `urls`, each recording its latencies; returns
/// once all are subscribed.
async fn subscribers(
    urls: &[String],
    feed: &str,
    delivered: Arc<AtomicU64>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<Vec<u64>>> {
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(SUBSCRIBERS);
    let mut tasks = Vec::new();
    for i in 0..SUBSCRIBERS {
        let url = urls[i % urls.len()].clone();
        let ready = ready_tx.clone();
        let delivered = delivered.clone();
        let feed = feed.to_owned();
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut ws = connect(&url).await;
            ws.send(Message::text(format!(
                r#"{{"type":"subscribe","id":"s{i}","feed":"{feed}"}}"#
            )))
            .await
            .unwrap();
            let mut samples = Vec::new();
            loop {
                let message = tokio::select! {
                    _ = stop.changed() => break,
                    message = ws.next() => message,
                };
                let Some(Ok(message)) = message else { break };
                let Message::Text(text) = message else {
                    continue;
                };
                if text.contains(r#""type":"subscribed""#) {
                    let _ = ready.send(()).await;
                } else if let Some(sent) = sent_us(&text) {
                    samples.push(now_us().saturating_sub(sent));
                    delivered.fetch_add(1, Ordering::Relaxed);
                }
            }
            samples
        }));
    }
    drop(ready_tx);
    for _ in 0..SUBSCRIBERS {
        ready_rx.recv().await.expect("every subscriber subscribed");
    }
    tasks
}

/// One publisher: sends publishes with ids, at most `IN_FLIGHT` unacked,
/// at `per_second` (or flat out) until `until`; returns the acks.
async fn publisher(
    url: String,
    feed: String,
    name: usize,
    per_second: Option<u64>,
    until: Instant,
) -> u64 {
    let (mut write, mut read) = connect(&url).await.split();
    let acked = Arc::new(AtomicU64::new(0));
    let reader_acked = acked.clone();
    let (progress_tx, mut progress) = tokio::sync::watch::channel(0u64);
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = read.next().await {
            if let Message::Text(text) = message
                && text.contains(r#""type":"ack""#)
            {
                let total = reader_acked.fetch_add(1, Ordering::Relaxed) + 1;
                let _ = progress_tx.send(total);
            }
        }
    });
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    while Instant::now() < until {
        let batch = match per_second {
            Some(rate) => {
                tick.tick().await;
                (rate / 100).max(1)
            }
            None => {
                // Flat out: wait until fewer than IN_FLIGHT are unacked.
                let limit = sent.saturating_sub(IN_FLIGHT);
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    progress.wait_for(|acked| *acked >= limit),
                )
                .await;
                IN_FLIGHT / 4
            }
        };
        for _ in 0..batch {
            sent += 1;
            let frame = format!(
                r#"{{"type":"publish","id":"{feed}-p{name}-{sent}","feed":"{feed}","data":{{"sent_us":{},"pad":"0123456789abcdef0123456789abcdef"}}}}"#,
                now_us()
            );
            if write.feed(Message::text(frame)).await.is_err() {
                break;
            }
        }
        let _ = write.flush().await;
    }
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        progress.wait_for(|acked| *acked >= sent),
    )
    .await;
    reader.abort();
    acked.load(Ordering::Relaxed)
}

struct Outcome {
    acked_per_s: f64,
    delivered_per_s: f64,
    latencies: Vec<u64>,
}

async fn run(urls: &[String], feed: &str, per_second: Option<u64>, seconds: u64) -> Outcome {
    let delivered = Arc::new(AtomicU64::new(0));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = subscribers(urls, feed, delivered.clone(), stopped).await;
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let publishers = if per_second.is_some() { 1 } else { PUBLISHERS };
    let mut sending = Vec::new();
    for p in 0..publishers {
        sending.push(tokio::spawn(publisher(
            urls[p % urls.len()].clone(),
            feed.to_owned(),
            p,
            per_second,
            until,
        )));
    }
    let mut acked = 0;
    for publisher in sending {
        acked += publisher.await.unwrap();
    }
    // Every acked event reaches every subscriber before the clock stops
    // (bounded): a log whose fan-out lags pays for it here.
    let expected = acked * SUBSCRIBERS as u64;
    let drain_until = Instant::now() + Duration::from_secs(20);
    while delivered.load(Ordering::Relaxed) < expected && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let count = delivered.load(Ordering::Relaxed);
    if count < expected {
        println!(
            "({} of {expected} deliveries missing after 20 s)",
            expected - count
        );
    }
    let _ = stop.send(true);
    let mut latencies = Vec::new();
    for task in tasks {
        if let Ok(samples) = task.await {
            latencies.extend(samples);
        }
    }
    latencies.sort_unstable();
    Outcome {
        acked_per_s: acked as f64 / elapsed,
        delivered_per_s: count as f64 / elapsed,
        latencies,
    }
}

/// Pipelined XADD and one XREAD BLOCK reader, for `seconds`.
async fn bare_redis(url: &str, seconds: u64) -> Outcome {
    let client = redis::Client::open(url).unwrap();
    let mut writer = client.get_multiplexed_async_connection().await.unwrap();
    let blocking = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut reader = client
        .get_multiplexed_async_connection_with_config(&blocking)
        .await
        .unwrap();
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let read = tokio::spawn(async move {
        let mut last = "0-0".to_owned();
        let mut latencies = Vec::new();
        let options = StreamReadOptions::default().block(500).count(1024);
        while Instant::now() < until + Duration::from_millis(500) {
            let reply: Option<StreamReadReply> = reader
                .xread_options(&["bare"], &[&last], &options)
                .await
                .unwrap();
            let Some(reply) = reply else { break };
            for stream in reply.keys {
                for entry in stream.ids {
                    if let Some(data) = entry.get::<String>("d")
                        && let Some(sent) = sent_us(&data)
                    {
                        latencies.push(now_us().saturating_sub(sent));
                    }
                    last = entry.id;
                }
            }
        }
        latencies
    });
    let mut written = 0u64;
    while Instant::now() < until {
        let mut pipe = redis::pipe();
        for _ in 0..IN_FLIGHT {
            let data = format!(
                r#"{{"sent_us":{},"pad":"0123456789abcdef0123456789abcdef"}}"#,
                now_us()
            );
            pipe.cmd("XADD")
                .arg("bare")
                .arg("MAXLEN")
                .arg("~")
                .arg(10_000)
                .arg("*")
                .arg("d")
                .arg(data)
                .ignore();
        }
        let () = pipe.query_async(&mut writer).await.unwrap();
        written += IN_FLIGHT;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = read.await.unwrap();
    latencies.sort_unstable();
    Outcome {
        acked_per_s: written as f64 / elapsed,
        delivered_per_s: latencies.len() as f64 / elapsed,
        latencies,
    }
}

fn row(name: &str, outcome: &Outcome) {
    println!(
        "| {name} | {:.0} | {:.0} | {} | {} |",
        outcome.acked_per_s,
        outcome.delivered_per_s,
        percentile(&outcome.latencies, 0.5),
        percentile(&outcome.latencies, 0.99),
    );
}

/// `-- NAME…` runs only the parts named (latency, rate, bare, nodes) and,
/// in the first two, only the logs named (memory, sqlite, redis).
struct Only(Vec<String>);

impl Only {
    fn part(&self, part: &str) -> bool {
        let parts = ["latency", "rate", "bare", "nodes"];
        !self.0.iter().any(|o| parts.contains(&o.as_str())) || self.0.iter().any(|o| o == part)
    }

    fn log(&self, log: &str) -> bool {
        let logs = ["memory", "sqlite", "redis"];
        !self.0.iter().any(|o| logs.contains(&o.as_str())) || self.0.iter().any(|o| o == log)
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let only = Only(
        std::env::args()
            .skip(1)
            .filter(|arg| !arg.starts_with('-'))
            .collect(),
    );
    let Some(redis) = RedisServer::start().await else {
        eprintln!("redis-server is missing: run scripts/setup");
        std::process::exit(2);
    };
    let dir = tempfile::tempdir().unwrap();
    let logs: Vec<_> = [
        ("memory", LogSpec::Memory),
        ("sqlite", LogSpec::Sqlite(dir.path().join("bench.db"))),
        ("redis", LogSpec::Redis(redis.url())),
    ]
    .into_iter()
    .filter(|(name, _)| only.log(name))
    .collect();

    if only.part("latency") {
        println!(
            "## latency: 500 publishes/s for 4 s, {SUBSCRIBERS} subscribers (µs, publish to read)"
        );
        println!("| log | acked/s | delivered/s | p50 | p99 |");
        println!("|---|---|---|---|---|");
        for (name, log) in &logs {
            let server = node(log).await;
            row(name, &run(&[server.url()], "latency", Some(500), 4).await);
            server.shutdown().await;
        }
        println!();
    }
    if only.part("rate") || only.part("bare") {
        println!(
            "## rate: {PUBLISHERS} publishers flat out for 3 s ({IN_FLIGHT} unacked each), {SUBSCRIBERS} subscribers"
        );
        println!("| log | acked/s | delivered/s | p50 (µs) | p99 (µs) |");
        println!("|---|---|---|---|---|");
    }
    if only.part("rate") {
        for (name, log) in &logs {
            let server = node(log).await;
            row(name, &run(&[server.url()], "rate", None, 3).await);
            let dropped = server.stats().slow_consumers;
            if dropped > 0 {
                println!("({dropped} subscribers closed as slow consumers)");
            }
            server.shutdown().await;
        }
    }
    if only.part("bare") {
        row(
            "bare XADD/XREAD (1 reader)",
            &bare_redis(&redis.url(), 3).await,
        );
    }
    if only.part("nodes") {
        println!();
        println!("## the Redis log on 1, 2 and 3 nodes in this process, flat out for 3 s");
        println!("| nodes | acked/s | delivered/s | p50 (µs) | p99 (µs) |");
        println!("|---|---|---|---|---|");
        for count in 1..=3 {
            let mut nodes = Vec::new();
            for _ in 0..count {
                nodes.push(node(&LogSpec::Redis(redis.url())).await);
            }
            let urls: Vec<String> = nodes.iter().map(RunningServer::url).collect();
            let feed = format!("nodes{count}");
            row(&count.to_string(), &run(&urls, &feed, None, 3).await);
            let dropped: u64 = nodes.iter().map(|node| node.stats().slow_consumers).sum();
            if dropped > 0 {
                println!("({dropped} subscribers closed as slow consumers)");
            }
            for node in nodes {
                node.shutdown().await;
            }
        }
    }
}
