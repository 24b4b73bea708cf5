//! Feeds: epoch, numbering, retained log, subscribers (protocol section 5).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use holdline_protocol::{Event, GapRange, ServerFrame};
use serde_json::value::RawValue;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// A client's outgoing queue, as seen by the feeds that fan out to it.
pub struct Subscriber {
    pub client_id: u64,
    pub queue: mpsc::Sender<Utf8Bytes>,
    /// Told when the queue overflowed: the client is a slow consumer.
    pub overflowed: Arc<Notify>,
}

struct FeedLog {
    head: u64,
    retained: VecDeque<(u64, Utf8Bytes)>,
    subscribers: Vec<Subscriber>,
}

pub struct Feed {
    pub epoch: Arc<str>,
    log: Mutex<FeedLog>,
}

/// What a subscribe resolves to: the answer's fields and the replay.
pub struct Subscription {
    pub epoch: String,
    pub head: u64,
    pub replay_from: Option<u64>,
    pub gap: Option<GapRange>,
    pub replay: Vec<Utf8Bytes>,
}

pub struct FeedHub {
    feeds: Mutex<HashMap<Arc<str>, Arc<Feed>>>,
    retain: usize,
    run_id: String,
}

impl FeedHub {
    pub fn new(retain: usize) -> Self {
        FeedHub {
            feeds: Mutex::new(HashMap::new()),
            retain,
            // Epochs are new on every start: this server keeps its log in
            // memory, so a restart loses the numbering (section 5).
            run_id: format!("{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff),
        }
    }

    fn feed(&self, name: &str) -> Arc<Feed> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(feed) = feeds.get(name) {
            return feed.clone();
        }
        let feed = Arc::new(Feed {
            epoch: Arc::from(format!("{}-{}", self.run_id, feeds.len() + 1)),
            log: Mutex::new(FeedLog {
                head: 0,
                retained: VecDeque::new(),
                subscribers: Vec::new(),
            }),
        });
        feeds.insert(Arc::from(name), feed.clone());
        feed
    }

    /// The feed's epoch and head, if it exists.
    pub fn head(&self, name: &str) -> Option<(String, u64)> {
        let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        let feed = feeds.get(name)?;
        let log = feed.log.lock().unwrap_or_else(|p| p.into_inner());
        Some((feed.epoch.to_string(), log.head))
    }

    /// Appends an event and fans it out; returns its `seq`.
    pub fn publish(&self, name: &str, data: &RawValue) -> u64 {
        let feed = self.feed(name);
        let mut log = feed.log.lock().unwrap_or_else(|p| p.into_inner());
        log.head += 1;
        let seq = log.head;
        let frame = ServerFrame::Event(Event {
            feed: name.to_owned(),
            seq,
            data: data.to_owned(),
            ts: holdline_protocol::now_ms(),
        });
        let bytes = Utf8Bytes::from(frame.to_json());
        if self.retain > 0 {
            log.retained.push_back((seq, bytes.clone()));
            while log.retained.len() > self.retain {
                log.retained.pop_front();
            }
        }
        log.subscribers
            .retain(|sub| match sub.queue.try_send(bytes.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.overflowed.notify_one();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        seq
    }

    /// Registers `subscriber` and computes the replay, atomically, so no
    /// event falls between the replay and the live stream.
    pub fn subscribe(
        &self,
        name: &str,
        since: Option<u64>,
        epoch: Option<&str>,
        subscriber: Subscriber,
    ) -> Subscription {
        let feed = self.feed(name);
        let mut log = feed.log.lock().unwrap_or_else(|p| p.into_inner());
        let head = log.head;
        // The first seq the client wants: all of a new epoch, or after its
        // cursor, or nothing before the head (live only).
        let wanted = match (since, epoch) {
            (Some(_), Some(e)) if e != &*feed.epoch => Some(1),
            (None, Some(e)) if e != &*feed.epoch => Some(1),
            (Some(since), _) => Some(since + 1),
            (None, _) => None,
        };
        let mut gap = None;
        let mut replay = Vec::new();
        let mut replay_from = None;
        if let Some(wanted) = wanted.filter(|w| *w <= head) {
            let first_retained = log.retained.front().map_or(head + 1, |(seq, _)| *seq);
            if wanted < first_retained {
                gap = Some(GapRange {
                    from: wanted,
                    to: first_retained - 1,
                });
            }
            let start = wanted.max(first_retained);
            for (seq, bytes) in log.retained.iter().skip_while(|(seq, _)| *seq < start) {
                replay_from.get_or_insert(*seq);
                replay.push(bytes.clone());
            }
        }
        log.subscribers
            .retain(|s| s.client_id != subscriber.client_id);
        log.subscribers.push(subscriber);
        Subscription {
            epoch: feed.epoch.to_string(),
            head,
            replay_from,
            gap,
            replay,
        }
    }

    /// Removes the client from the feed; false when it was not subscribed.
    pub fn unsubscribe(&self, name: &str, client_id: u64) -> bool {
        let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        let Some(feed) = feeds.get(name) else {
            return false;
        };
        let mut log = feed.log.lock().unwrap_or_else(|p| p.into_inner());
        let before = log.subscribers.len();
        log.subscribers.retain(|s| s.client_id != client_id);
        log.subscribers.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: u64) -> Box<RawValue> {
        RawValue::from_string(n.to_string()).unwrap()
    }

    fn subscriber(id: u64) -> (Subscriber, mpsc::Receiver<Utf8Bytes>) {
        let (queue, rx) = mpsc::channel(16);
        (
            Subscriber {
                client_id: id,
                queue,
                overflowed: Arc::new(Notify::new()),
            },
            rx,
        )
    }

    #[test]
    fn replay_starts_after_since_and_marks_what_retention_dropped() {
        let hub = FeedHub::new(3);
        for n in 1..=10 {
            assert_eq!(hub.publish("f", &data(n)), n);
        }
        let (epoch, head) = hub.head("f").unwrap();
        assert_eq!(head, 10);
        let (sub, _rx) = subscriber(1);
        let s = hub.subscribe("f", Some(4), Some(&epoch), sub);
        assert_eq!(s.gap, Some(GapRange { from: 5, to: 7 }));
        assert_eq!(s.replay_from, Some(8));
        assert_eq!(s.replay.len(), 3);
        let (sub, _rx) = subscriber(2);
        let s = hub.subscribe("f", Some(8), Some(&epoch), sub);
        assert_eq!((s.gap, s.replay_from, s.replay.len()), (None, Some(9), 2));
        let (sub, _rx) = subscriber(3);
        let s = hub.subscribe("f", Some(10), Some(&epoch), sub);
        assert_eq!((s.gap, s.replay_from, s.replay.len()), (None, None, 0));
    }

    #[test]
    fn another_epoch_replays_the_current_one_from_its_start() {
        let hub = FeedHub::new(100);
        for n in 1..=3 {
            hub.publish("f", &data(n));
        }
        let (sub, _rx) = subscriber(1);
        let s = hub.subscribe("f", Some(50), Some("old-epoch"), sub);
        assert_eq!((s.gap, s.replay_from, s.replay.len()), (None, Some(1), 3));
    }

    #[test]
    fn live_only_subscribers_get_only_new_events() {
        let hub = FeedHub::new(100);
        hub.publish("f", &data(1));
        let (sub, mut rx) = subscriber(1);
        let s = hub.subscribe("f", None, None, sub);
        assert_eq!((s.head, s.replay.len()), (1, 0));
        hub.publish("f", &data(2));
        assert!(rx.try_recv().unwrap().as_str().contains("\"seq\":2"));
        assert!(hub.unsubscribe("f", 1));
        assert!(!hub.unsubscribe("f", 1));
    }

    #[test]
    fn an_overflowing_subscriber_is_dropped_and_told() {
        let hub = FeedHub::new(0);
        let (queue, _rx) = mpsc::channel(1);
        let overflowed = Arc::new(Notify::new());
        hub.subscribe(
            "f",
            None,
            None,
            Subscriber {
                client_id: 1,
                queue,
                overflowed: overflowed.clone(),
            },
        );
        hub.publish("f", &data(1));
        hub.publish("f", &data(2));
        assert!(overflowed.notified().now_or_never_ready());
        assert!(!hub.unsubscribe("f", 1));
    }

    trait ReadyNow {
        fn now_or_never_ready(self) -> bool;
    }
    impl<F: std::future::Future> ReadyNow for F {
        fn now_or_never_ready(self) -> bool {
            let waker = std::task::Waker::noop();
            let mut cx = std::task::Context::from_waker(waker);
            let mut fut = std::pin::pin!(self);
            fut.as_mut().poll(&mut cx).is_ready()
        }
    }
}
