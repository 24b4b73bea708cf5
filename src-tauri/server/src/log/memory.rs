//! The log in this process's memory: fast, and gone with the process (a
//! restart starts every feed in a new epoch).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::value::RawValue;

use super::publish_ids::PublishIds;
use super::{Accepted, LogSettings, PublishKey, Registered, StoredEvent, event_frame, new_epoch};
use crate::feeds::{FeedHub, Subscriber};

struct MemoryFeed {
    epoch: Arc<str>,
    head: u64,
    retained: VecDeque<StoredEvent>,
}

pub struct MemoryLog {
    feeds: Mutex<HashMap<Arc<str>, Arc<Mutex<MemoryFeed>>>>,
    publish_ids: PublishIds,
    retain: usize,
    hub: Arc<FeedHub>,
}

impl MemoryLog {
    pub fn new(settings: LogSettings, hub: Arc<FeedHub>) -> Self {
        MemoryLog {
            feeds: Mutex::new(HashMap::new()),
            publish_ids: PublishIds::new(settings.publish_id_ttl),
            retain: settings.retain,
            hub,
        }
    }

    fn feed(&self, name: &str) -> Arc<Mutex<MemoryFeed>> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds
            .entry(Arc::from(name))
            .or_insert_with(|| {
                Arc::new(Mutex::new(MemoryFeed {
                    epoch: Arc::from(new_epoch()),
                    head: 0,
                    retained: VecDeque::new(),
                }))
            })
            .clone()
    }

    pub fn append(&self, name: &str, data: &RawValue, key: Option<PublishKey>) -> Accepted {
        let store = || {
            let feed = self.feed(name);
            let mut feed = feed.lock().unwrap_or_else(|p| p.into_inner());
            feed.head += 1;
            let seq = feed.head;
            let frame = event_frame(name, seq, data.to_owned(), holdline_protocol::now_ms());
            if self.retain > 0 {
                feed.retained.push_back(StoredEvent {
                    seq,
                    frame: frame.clone(),
                });
                while feed.retained.len() > self.retain {
                    feed.retained.pop_front();
                }
            }
            // Still under the feed's lock: fan-out order is `seq` order.
            self.hub.deliver(name, seq, &frame);
            Accepted {
                feed: name.to_owned(),
                seq,
            }
        };
        match key {
            Some(key) => self.publish_ids.once(&key, Instant::now(), store).0,
            None => store(),
        }
    }

    pub fn register(&self, name: &str, subscriber: Subscriber) -> Registered {
        let feed = self.feed(name);
        let feed = feed.lock().unwrap_or_else(|p| p.into_inner());
        let head = self.hub.register(name, &feed.epoch, feed.head, subscriber);
        Registered {
            epoch: feed.epoch.to_string(),
            head,
        }
    }

    pub fn read(&self, name: &str, from: u64, to: u64) -> Vec<StoredEvent> {
        let feed = self.feed(name);
        let feed = feed.lock().unwrap_or_else(|p| p.into_inner());
        feed.retained
            .iter()
            .skip_while(|e| e.seq < from)
            .take_while(|e| e.seq <= to)
            .cloned()
            .collect()
    }

    pub fn head(&self, name: &str) -> Option<(String, u64)> {
        let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        let feed = feeds.get(name)?;
        let feed = feed.lock().unwrap_or_else(|p| p.into_inner());
        Some((feed.epoch.to_string(), feed.head))
    }
}
