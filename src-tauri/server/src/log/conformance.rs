//! The same answers from every log: each test runs on memory, on SQLite
//! and on a real Redis.

use std::sync::Arc;
use std::time::Duration;

use holdline_protocol::GapRange;
use holdline_testkit::{RedisServer, within};
use serde_json::value::RawValue;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{Log, LogSettings, LogSpec, PublishKey};
use crate::auth::Principal;
use crate::feeds::{FeedHub, Feeds, Subscriber};

const WAIT: Duration = Duration::from_secs(10);

/// Where one test's log lives; reopening it is a server restart.
struct Place {
    spec: LogSpec,
    retain: usize,
    _dir: tempfile::TempDir,
    _redis: Option<RedisServer>,
}

impl Place {
    async fn open(&self) -> Feeds {
        let hub = Arc::new(FeedHub::default());
        let settings = LogSettings {
            retain: self.retain,
            publish_id_ttl: Duration::from_secs(600),
        };
        let log = Log::open(&self.spec, settings, hub.clone())
            .await
            .expect("the log opens");
        Feeds { hub, log }
    }
}

/// Memory, SQLite and (when installed) Redis, each keeping `retain`.
async fn places(retain: usize) -> Vec<Place> {
    let mut places = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    places.push(Place {
        spec: LogSpec::Memory,
        retain,
        _dir: dir,
        _redis: None,
    });
    let dir = tempfile::tempdir().unwrap();
    places.push(Place {
        spec: LogSpec::Sqlite(dir.path().join("log.db")),
        retain,
        _dir: dir,
        _redis: None,
    });
    if let Some(redis) = RedisServer::start().await {
        places.push(Place {
            spec: LogSpec::Redis(redis.url()),
            retain,
            _dir: tempfile::tempdir().unwrap(),
            _redis: Some(redis),
        });
    }
    places
}

fn data(n: u64) -> Box<RawValue> {
    RawValue::from_string(n.to_string()).unwrap()
}

fn subscriber(id: u64, capacity: usize) -> (Subscriber, mpsc::Receiver<Utf8Bytes>, Arc<Notify>) {
    let (queue, rx) = mpsc::channel(capacity);
    let overflowed = Arc::new(Notify::new());
    (
        Subscriber {
            client_id: id,
            queue,
            overflowed: overflowed.clone(),
            log_restarted: Arc::new(Notify::new()),
        },
        rx,
        overflowed,
    )
}

async fn publish(feeds: &Feeds, feed: &str, n: u64) -> u64 {
    feeds.publish(feed, &data(n), None).await.unwrap().seq
}

async fn next_seq(rx: &mut mpsc::Receiver<Utf8Bytes>) -> u64 {
    let frame = within(WAIT, "a live event", rx.recv()).await.unwrap();
    let value: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
    value["seq"].as_u64().unwrap()
}

#[tokio::test]
async fn replay_starts_after_since_and_marks_what_retention_dropped() {
    for place in places(3).await {
        let feeds = place.open().await;
        for n in 1..=10 {
            assert_eq!(publish(&feeds, "f", n).await, n, "{}", place.spec);
        }
        let (epoch, head) = feeds.log.head("f").await.unwrap().unwrap();
        assert_eq!(head, 10);
        let (sub, _rx, _) = subscriber(1, 16);
        let s = feeds
            .subscribe("f", Some(4), Some(&epoch), sub)
            .await
            .unwrap();
        assert_eq!(s.gap, Some(GapRange { from: 5, to: 7 }), "{}", place.spec);
        assert_eq!(
            (s.replay_from, s.replay.len()),
            (Some(8), 3),
            "{}",
            place.spec
        );
        let (sub, _rx, _) = subscriber(2, 16);
        let s = feeds
            .subscribe("f", Some(8), Some(&epoch), sub)
            .await
            .unwrap();
        assert_eq!((s.gap, s.replay_from, s.replay.len()), (None, Some(9), 2));
        let (sub, _rx, _) = subscriber(3, 16);
        let s = feeds
            .subscribe("f", Some(10), Some(&epoch), sub)
            .await
            .unwrap();
        assert_eq!((s.gap, s.replay_from, s.replay.len()), (None, None, 0));
        feeds.log.close().await;
    }
}

#[tokio::test]
async fn nothing_retained_means_every_missed_event_is_a_gap() {
    for place in places(0).await {
        let feeds = place.open().await;
        for n in 1..=4 {
            publish(&feeds, "f", n).await;
        }
        let (epoch, _) = feeds.log.head("f").await.unwrap().unwrap();
        let (sub, _rx, _) = subscriber(1, 16);
        let s = feeds
            .subscribe("f", Some(1), Some(&epoch), sub)
            .await
            .unwrap();
        assert_eq!(s.gap, Some(GapRange { from: 2, to: 4 }), "{}", place.spec);
        assert!(s.replay.is_empty(), "{}", place.spec);
        feeds.log.close().await;
    }
}

#[tokio::test]
async fn another_epoch_replays_the_current_one_from_its_start() {
    for place in places(100).await {
        let feeds = place.open().await;
        for n in 1..=3 {
            publish(&feeds, "f", n).await;
        }
        let (sub, _rx, _) = subscriber(1, 16);
        let s = feeds
            .subscribe("f", Some(50), Some("old-epoch"), sub)
            .await
            .unwrap();
        assert_eq!(
            (s.gap, s.replay_from, s.replay.len()),
            (None, Some(1), 3),
            "{}",
            place.spec
        );
        feeds.log.close().await;
    }
}

#[tokio::test]
async fn live_subscribers_get_every_later_event_in_order() {
    for place in places(100).await {
        let feeds = place.open().await;
        publish(&feeds, "f", 1).await;
        let (sub, mut rx, _) = subscriber(1, 64);
        let s = feeds.subscribe("f", None, None, sub).await.unwrap();
        assert_eq!((s.head, s.replay.len()), (1, 0), "{}", place.spec);
        for n in 2..=20 {
            publish(&feeds, "f", n).await;
        }
        for n in 2..=20 {
            assert_eq!(next_seq(&mut rx).await, n, "{}", place.spec);
        }
        assert!(feeds.unsubscribe("f", 1));
        assert!(!feeds.unsubscribe("f", 1));
        feeds.log.close().await;
    }
}

#[tokio::test]
async fn an_overflowing_subscriber_is_dropped_and_told() {
    for place in places(0).await {
        let feeds = place.open().await;
        let (sub, _rx, overflowed) = subscriber(1, 1);
        feeds.subscribe("f", None, None, sub).await.unwrap();
        let told = overflowed.notified();
        publish(&feeds, "f", 1).await;
        publish(&feeds, "f", 2).await;
        within(WAIT, "the overflow", told).await;
        assert!(!feeds.unsubscribe("f", 1), "{}", place.spec);
        feeds.log.close().await;
    }
}

#[tokio::test]
async fn a_repeated_publish_id_gets_its_stored_seq_and_is_stored_once() {
    for place in places(100).await {
        let feeds = place.open().await;
        let key = |token: &str| PublishKey {
            principal: Principal::for_token(token),
            id: "p-1".into(),
        };
        let first = feeds.publish("f", &data(1), Some(key("me"))).await.unwrap();
        let again = feeds.publish("g", &data(9), Some(key("me"))).await.unwrap();
        assert_eq!(again, first, "{}", place.spec);
        let other = feeds
            .publish("f", &data(2), Some(key("you")))
            .await
            .unwrap();
        assert_eq!(other.seq, 2, "ids are per token ({})", place.spec);
        assert_eq!(feeds.log.head("g").await.unwrap(), None, "{}", place.spec);
        feeds.log.close().await;
    }
}

#[tokio::test]
async fn a_durable_log_keeps_epoch_numbering_and_publish_ids_across_a_restart() {
    for place in places(100).await {
        let feeds = place.open().await;
        let key = PublishKey {
            principal: Principal::for_token("me"),
            id: "kept".into(),
        };
        for n in 1..=5 {
            publish(&feeds, "f", n).await;
        }
        let acked = feeds
            .publish("f", &data(6), Some(key.clone()))
            .await
            .unwrap();
        let before = feeds.log.head("f").await.unwrap().unwrap();
        feeds.log.close().await;
        drop(feeds);

        let feeds = place.open().await;
        let after = feeds.log.head("f").await.unwrap();
        if place.spec == LogSpec::Memory {
            assert_eq!(after, None, "memory forgets");
            continue;
        }
        assert_eq!(after, Some(before.clone()), "{}", place.spec);
        let again = feeds.publish("f", &data(6), Some(key)).await.unwrap();
        assert_eq!(again, acked, "{}", place.spec);
        let (sub, _rx, _) = subscriber(1, 16);
        let s = feeds
            .subscribe("f", Some(2), Some(&before.0), sub)
            .await
            .unwrap();
        assert_eq!(
            (s.epoch, s.gap, s.replay_from, s.replay.len()),
            (before.0, None, Some(3), 4)
        );
        assert_eq!(publish(&feeds, "f", 7).await, 7, "{}", place.spec);
        feeds.log.close().await;
    }
}

#[tokio::test]
async fn an_unusable_sqlite_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    std::fs::write(&path, b"this is not a database, it is a text file").unwrap();
    let settings = LogSettings {
        retain: 10,
        publish_id_ttl: Duration::from_secs(600),
    };
    let err = Log::open(
        &LogSpec::Sqlite(path.clone()),
        settings,
        Arc::new(FeedHub::default()),
    )
    .await
    .err()
    .expect("a text file is not a log");
    assert!(
        err.contains("log.db") && err.contains("not a usable SQLite log"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"this is not a database, it is a text file",
        "the file is left as it was"
    );
}

#[tokio::test]
async fn an_unreachable_redis_is_named() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let settings = LogSettings {
        retain: 10,
        publish_id_ttl: Duration::from_secs(600),
    };
    let spec = LogSpec::Redis(format!("redis://:secret@127.0.0.1:{port}/"));
    let err = Log::open(&spec, settings, Arc::new(FeedHub::default()))
        .await
        .err()
        .expect("nothing listens there");
    assert!(
        err.contains("cannot reach Redis") && err.contains(&port.to_string()),
        "{err}"
    );
    assert!(!err.contains("secret"), "{err}");
}

/// Two nodes on one Redis: a publish through either reaches subscribers
/// of both in order, and a publish id accepted by one is known to the other.
#[tokio::test]
async fn nodes_sharing_a_redis_share_numbering_fan_out_and_publish_ids() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let place = Place {
        spec: LogSpec::Redis(redis.url()),
        retain: 100,
        _dir: tempfile::tempdir().unwrap(),
        _redis: None,
    };
    let (first, second) = (place.open().await, place.open().await);
    let (sub, mut on_first, _) = subscriber(1, 64);
    first.subscribe("f", None, None, sub).await.unwrap();
    let (sub, mut on_second, _) = subscriber(2, 64);
    second.subscribe("f", None, None, sub).await.unwrap();
    let key = PublishKey {
        principal: Principal::for_token("me"),
        id: "once".into(),
    };
    let accepted = first
        .publish("f", &data(1), Some(key.clone()))
        .await
        .unwrap();
    assert_eq!(
        second.publish("f", &data(1), Some(key)).await.unwrap(),
        accepted,
        "the other node knows the id"
    );
    assert_eq!(publish(&second, "f", 2).await, 2);
    assert_eq!(publish(&first, "f", 3).await, 3);
    for rx in [&mut on_first, &mut on_second] {
        for n in 1..=3 {
            assert_eq!(next_seq(rx).await, n);
        }
    }
    first.log.close().await;
    second.log.close().await;
}
