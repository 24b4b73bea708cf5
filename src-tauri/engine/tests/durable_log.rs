//! The engine against servers on a durable log: SQLite, and Redis from
//! Debian started on loopback.
//!
//! - a server restart keeps each feed's epoch: the client resumes with no
//!   reset marker and no gap, and publish ids survive;
//! - three nodes on one Redis behind nginx: publishes through any node
//!   reach subscribers on every node in order, and a node killed with
//!   SIGKILL mid-stream moves its clients to the others with nothing lost
//!   or repeated;
//! - a Redis that comes back empty: its subscribers are told to subscribe
//!   again and deliver a reset marker, never a silent stall;
//! - Redis killed and started again under load: no acknowledgement for an
//!   event that was not stored, no acknowledged event lost, subscribers
//!   stay connected.
#![cfg(target_os = "linux")]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use holdline_engine::{Delivery, HistoryKind, PublishError, StartFrom};
use holdline_server::{LogSpec, RunningServer, ServerConfig};
use holdline_testkit::nginx::{nginx_available, start_nginx_balancing};
use holdline_testkit::{RedisServer, within};
use serde_json::value::RawValue;
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

async fn server_on(log: &LogSpec, listen: SocketAddr) -> RunningServer {
    holdline_server::start(ServerConfig {
        listen,
        tokens: vec![TOKEN.to_owned()],
        log: log.clone(),
        retain: 100_000,
        heartbeat: Duration::from_millis(250),
        ..ServerConfig::default()
    })
    .await
    .expect("the server starts on its log")
}

fn tagged(publisher: &str, n: u64) -> Box<RawValue> {
    RawValue::from_string(format!("{{\"by\":\"{publisher}\",\"n\":{n}}}")).expect("valid JSON")
}

/// An engine subscribed to `f` from its start, open on `url`; its
/// observer events are returned still unread past the opening.
async fn subscribed_to_f(
    url: &str,
) -> (
    holdline_engine::Engine,
    holdline_engine::Deliveries,
    tokio::sync::broadcast::Receiver<holdline_engine::EngineEvent>,
) {
    let (engine, deliveries) = open_engine(fast_config(url, TOKEN));
    let mut events = engine.events();
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    wait_open(&mut events).await;
    (engine, deliveries, events)
}

/// The data of every event delivered, by feed, in delivery order.
fn event_data(whole: &[Delivery], feed: &str) -> Vec<String> {
    whole
        .iter()
        .filter_map(|delivery| match delivery {
            Delivery::Event(event) if &*event.feed == feed => Some(event.data.get().to_owned()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_restart_on_a_durable_log_resumes_with_no_reset_marker() {
    let dir = tempfile::tempdir().unwrap();
    let mut logs = vec![LogSpec::Sqlite(dir.path().join("feeds.db"))];
    let redis = RedisServer::start().await;
    if let Some(redis) = &redis {
        logs.push(LogSpec::Redis(redis.url()));
    }
    for log in logs {
        let first = server_on(&log, "127.0.0.1:0".parse().unwrap()).await;
        let listen = first.local_addr();
        let (engine, mut deliveries, mut events) = subscribed_to_f(&first.url()).await;
        for n in 1..=5 {
            first.publish("f", &data(n)).await.unwrap();
        }
        let acked = engine
            .publish("out", data(1), Some("kept-1".into()))
            .await
            .unwrap()
            .await
            .unwrap();
        let mut seen = Seen::default();
        collect_until(&mut deliveries, &mut seen, 5).await;
        let before = first.head("f").await.unwrap().unwrap();
        first.shutdown().await;
        wait_history(&mut events, HistoryKind::Disconnected).await;

        let second = server_on(&log, listen).await;
        assert_eq!(second.head("f").await.unwrap(), Some(before), "{log}");
        for n in 6..=10 {
            second.publish("f", &data(n)).await.unwrap();
        }
        collect_until(&mut deliveries, &mut seen, 10).await;
        assert_eq!(seen.feed("f"), seqs(1..=10), "no reset, no gap on {log}");
        // The same publish id after the restart: its stored seq, once.
        let again = engine
            .publish("out", data(1), Some("kept-1".into()))
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(again.seq, acked.seq, "{log}");
        assert_eq!(second.head("out").await.unwrap().map(|h| h.1), Some(1));
        engine.shutdown().await;
        second.shutdown().await;
    }
}

/// Not a test: the body of a server node that the tests below start as a
/// child process, so SIGKILL takes down that node alone. Without
/// `HOLDLINE_TEST_NODE_LOG` it does nothing.
#[test]
fn serve_as_a_node_when_asked() {
    let Ok(log) = std::env::var("HOLDLINE_TEST_NODE_LOG") else {
        return;
    };
    let log: LogSpec = log.parse().expect("a log");
    tracing_subscriber::fmt()
        .with_writer(std::io::stdout)
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let server = server_on(&log, "127.0.0.1:0".parse().unwrap()).await;
        println!("node listening {}", server.local_addr());
        std::future::pending::<()>().await;
    });
}

/// A server node in a child process, counting the clients it accepted.
struct Node {
    child: tokio::process::Child,
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Node {
    async fn start(log: &LogSpec) -> Node {
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["serve_as_a_node_when_asked", "--exact", "--nocapture"])
            .env("HOLDLINE_TEST_NODE_LOG", log.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the node starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = within(WAIT, "the node to listen", async {
            loop {
                let line = lines.next_line().await.unwrap().expect("the node's output");
                if let Some(addr) = line.strip_prefix("node listening ") {
                    return addr.parse().unwrap();
                }
            }
        })
        .await;
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.contains("client connected") {
                    counted.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Node {
            child,
            addr,
            connections,
        }
    }

    async fn kill(&mut self) {
        self.child.start_kill().unwrap();
        self.child.wait().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_one_redis_lose_nothing_when_one_is_killed() {
    if !nginx_available() {
        return;
    }
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let log = LogSpec::Redis(redis.url());
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(Node::start(&log).await);
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|node| node.addr).collect();
    let nginx = start_nginx_balancing(&addrs, None).await;
    let url = format!("ws://{}", nginx.addr);

    let mut subscribers = Vec::new();
    for _ in 0..3 {
        let (engine, deliveries, _) = subscribed_to_f(&url).await;
        subscribers.push((engine, deliveries));
    }
    let publishers: Vec<_> = ["p1", "p2", "p3"]
        .into_iter()
        .map(|name| (name, open_engine(fast_config(&url, TOKEN)).0))
        .collect();
    for (_, engine) in &publishers {
        engine.connect().await.unwrap();
    }
    let per_publisher = 150u64;
    let total = per_publisher as usize * publishers.len();
    let mut pending = Vec::new();
    for n in 1..=per_publisher {
        if n == per_publisher / 2 {
            // Mid-stream: the first node dies without a word.
            nodes[0].kill().await;
        }
        for (name, engine) in &publishers {
            let id = format!("{name}-{n}");
            pending.push(
                engine
                    .publish("f", tagged(name, n), Some(id))
                    .await
                    .unwrap(),
            );
        }
        if n % 10 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let mut seqs_acked = BTreeSet::new();
    for publish in pending {
        let ack = within(WAIT, "every publish acknowledged", publish)
            .await
            .expect("acknowledged despite the killed node");
        let seq = ack.seq.expect("holdline.v1 acks carry the seq");
        assert!(seqs_acked.insert(seq), "two publishes acked as {seq}");
    }
    assert_eq!(
        seqs_acked,
        (1..=total as u64).collect(),
        "acks are the seqs 1..={total}"
    );

    for (index, (engine, mut deliveries)) in subscribers.into_iter().enumerate() {
        let mut seen = Seen::default();
        let mut whole = Vec::new();
        collect_whole(
            &mut deliveries,
            &mut seen,
            &mut whole,
            "every event",
            |seen| seen.events >= total,
        )
        .await;
        assert_eq!(seen.feed("f"), seqs(1..=total as u64), "subscriber {index}");
        let mut per_publisher_seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for data in event_data(&whole, "f") {
            let value: serde_json::Value = serde_json::from_str(&data).unwrap();
            per_publisher_seen
                .entry(value["by"].as_str().unwrap().to_owned())
                .or_default()
                .push(value["n"].as_u64().unwrap());
        }
        for (name, _) in &publishers {
            assert_eq!(
                per_publisher_seen.get(*name),
                Some(&(1..=per_publisher).collect::<Vec<_>>()),
                "subscriber {index}: every publish of {name} once, in the order sent"
            );
        }
        engine.shutdown().await;
    }
    let served: Vec<usize> = nodes
        .iter()
        .map(|node| node.connections.load(Ordering::Relaxed))
        .collect();
    assert!(
        served.iter().all(|&count| count > 0),
        "nginx spread the clients over every node: {served:?}"
    );
    for (_, engine) in publishers {
        engine.shutdown().await;
    }
}

/// Publishes `range` with ids `r-N` and waits for every answer.
async fn publish_all(
    publisher: &holdline_engine::Engine,
    range: std::ops::RangeInclusive<u64>,
) -> Vec<(u64, Result<holdline_engine::PublishAck, PublishError>)> {
    let mut pending = Vec::new();
    for n in range {
        let id = Some(format!("r-{n}"));
        pending.push((n, publisher.publish("f", data(n), id).await.unwrap()));
    }
    let mut answers = Vec::new();
    for (n, publish) in pending {
        answers.push((n, within(WAIT, "an answer to every publish", publish).await));
    }
    answers
}

/// Which publishes were acknowledged (and as which seq) and which were
/// answered `internal`; any other answer fails the test.
#[derive(Default)]
struct Outcomes {
    acked: BTreeMap<u64, u64>,
    refused: BTreeSet<u64>,
}

impl Outcomes {
    fn record(&mut self, n: u64, answer: Result<holdline_engine::PublishAck, PublishError>) {
        match answer {
            Ok(ack) => {
                self.acked.insert(n, ack.seq.expect("a seq"));
            }
            Err(PublishError::Rejected { server_code, .. }) => {
                assert_eq!(server_code, "internal", "publish {n}");
                self.refused.insert(n);
            }
            Err(other) => panic!("publish {n}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_acks_only_what_it_stored_and_loses_none_of_it() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let server = server_on(&LogSpec::Redis(redis.url()), "127.0.0.1:0".parse().unwrap()).await;
    let (subscriber, mut deliveries, mut subscriber_events) = subscribed_to_f(&server.url()).await;
    let (publisher, _) = open_engine(fast_config(&server.url(), TOKEN));
    publisher.connect().await.unwrap();

    let mut outcomes = Outcomes::default();
    for (n, answer) in publish_all(&publisher, 1..=100).await {
        outcomes.record(n, answer);
    }
    assert_eq!(outcomes.acked.len(), 100, "Redis up: every publish acked");
    // Redis dies while publishes are in flight, and stays away a while.
    let in_flight = tokio::spawn({
        let publisher = publisher.clone();
        async move { publish_all(&publisher, 101..=300).await }
    });
    redis.kill();
    for (n, answer) in in_flight.await.unwrap() {
        outcomes.record(n, answer);
    }
    let Outcomes { mut acked, refused } = outcomes;
    assert!(!refused.is_empty(), "some publishes met Redis away");
    redis.resume().await;
    let mut after = Outcomes::default();
    for (n, answer) in publish_all(&publisher, 301..=400).await {
        after.record(n, answer);
    }
    acked.extend(after.acked);
    assert!(
        (301..=400).all(|n| acked.contains_key(&n)),
        "Redis back: publishes acked again"
    );

    let head = server.head("f").await.unwrap().unwrap().1;
    let mut seen = Seen::default();
    let mut whole = Vec::new();
    collect_whole(
        &mut deliveries,
        &mut seen,
        &mut whole,
        "every stored event",
        |seen| seen.events >= head as usize,
    )
    .await;
    assert_eq!(seen.feed("f"), seqs(1..=head), "in order, once, no marker");
    let stored: Vec<u64> = event_data(&whole, "f")
        .iter()
        .map(|data| {
            serde_json::from_str::<serde_json::Value>(data).unwrap()["n"]
                .as_u64()
                .unwrap()
        })
        .collect();
    for (n, seq) in &acked {
        assert_eq!(
            stored.get(*seq as usize - 1),
            Some(n),
            "acked publish {n} stored as seq {seq}"
        );
    }
    let first_after_resume = acked[&301];
    for n in &refused {
        if let Some(index) = stored.iter().position(|stored| stored == n) {
            assert!(
                (index as u64) + 1 < first_after_resume,
                "publish {n} was answered internal and stored later"
            );
        }
    }
    let unique: BTreeSet<&u64> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "nothing stored twice");
    assert!(
        !std::iter::from_fn(|| subscriber_events.try_recv().ok()).any(|event| matches!(
            event,
            holdline_engine::EngineEvent::History(ref h) if h.kind == HistoryKind::Disconnected
        )),
        "the subscriber stayed connected through the outage"
    );
    publisher.shutdown().await;
    subscriber.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_redis_that_comes_back_empty_yields_a_reset_marker() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let server = server_on(&LogSpec::Redis(redis.url()), "127.0.0.1:0".parse().unwrap()).await;
    let (engine, mut deliveries, mut events) = subscribed_to_f(&server.url()).await;
    for n in 1..=3 {
        server.publish("f", &data(n)).await.unwrap();
    }
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 3).await;
    let (old_epoch, _) = server.head("f").await.unwrap().unwrap();

    redis.kill();
    redis.forget_data();
    redis.resume().await;
    let closed = wait_history(&mut events, HistoryKind::Disconnected).await;
    assert_eq!(closed.details["close_code"], 1012, "{closed:?}");
    for n in 1..=2 {
        server.publish("f", &data(n)).await.unwrap();
    }
    collect_until(&mut deliveries, &mut seen, 5).await;
    let (new_epoch, _) = server.head("f").await.unwrap().unwrap();
    assert_ne!(new_epoch, old_epoch);
    let mut expected = seqs(1..=3);
    expected.push(Item::Reset(new_epoch));
    expected.extend(seqs(1..=2));
    assert_eq!(seen.feed("f"), expected);
    engine.shutdown().await;
    server.shutdown().await;
}
