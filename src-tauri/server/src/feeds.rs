//! The feeds this node serves (protocol section 5): the subscribers of
//! each, the fan-out of its events in `seq` order, and the subscribe
//! answer (replay and `gap`). Where the events live is the log's business.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use holdline_protocol::GapRange;
use serde_json::value::RawValue;
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::log::{Appending, Log, LogError, PublishKey};

/// A client's outgoing queue, as seen by the feeds that fan out to it.
pub struct Subscriber {
    pub client_id: u64,
    pub queue: mpsc::Sender<Utf8Bytes>,
    /// Told when the queue overflowed: the client is a slow consumer.
    pub overflowed: Arc<Notify>,
    /// Told when the log lost a feed's numbering under this subscriber
    /// (a Redis that came back empty): the client must subscribe again.
    pub log_restarted: Arc<Notify>,
}

/// A feed with subscribers on this node.
struct LocalFeed {
    /// The epoch its subscribers were told.
    epoch: Arc<str>,
    /// The last `seq` fanned out here; a subscriber registered now gets
    /// everything after it live.
    head: u64,
    subscribers: Vec<Subscriber>,
}

/// The subscribers of every feed on this node.
#[derive(Default)]
pub struct FeedHub {
    feeds: Mutex<HashMap<Arc<str>, Arc<Mutex<LocalFeed>>>>,
    /// Told when a feed gains its first subscriber or loses its last, for
    /// a log that follows the feeds with subscribers.
    pub followed_changed: Notify,
}

impl FeedHub {
    /// Adds `subscriber` to the feed, which starts at `log_head` if this
    /// node had no subscribers for it; returns the head it joined at.
    /// The log calls this where no event can be stored unseen in between.
    pub fn register(&self, feed: &str, epoch: &str, log_head: u64, subscriber: Subscriber) -> u64 {
        // The map stays locked until the subscriber is in, so a last
        // unsubscribe cannot remove the feed in between.
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        let stale = feeds
            .get(feed)
            .is_some_and(|local| *local.lock().unwrap_or_else(|p| p.into_inner()).epoch != *epoch);
        if stale {
            // The log started the feed again: what this node fanned out
            // belongs to an epoch that is gone.
            if let Some(old) = feeds.remove(feed) {
                restart(&old);
            }
        }
        let created = !feeds.contains_key(feed);
        let local = feeds
            .entry(Arc::from(feed))
            .or_insert_with(|| {
                Arc::new(Mutex::new(LocalFeed {
                    epoch: Arc::from(epoch),
                    head: log_head,
                    subscribers: Vec::new(),
                }))
            })
            .clone();
        let mut local = local.lock().unwrap_or_else(|p| p.into_inner());
        drop(feeds);
        local
            .subscribers
            .retain(|s| s.client_id != subscriber.client_id);
        local.subscribers.push(subscriber);
        let head = local.head;
        drop(local);
        if created {
            self.followed_changed.notify_one();
        }
        head
    }

    /// Fans out a stored event to this node's subscribers. Called in `seq`
    /// order per feed; what was already fanned out here is skipped.
    pub fn deliver(&self, feed: &str, seq: u64, frame: &Utf8Bytes) {
        let local = {
            let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
            match feeds.get(feed) {
                Some(local) => local.clone(),
                None => return,
            }
        };
        let mut local = local.lock().unwrap_or_else(|p| p.into_inner());
        if seq <= local.head {
            return;
        }
        local.head = seq;
        local
            .subscribers
            .retain(|sub| match sub.queue.try_send(frame.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    sub.overflowed.notify_one();
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
    }

    /// Removes the client from the feed; false when it was not subscribed.
    pub fn unsubscribe(&self, feed: &str, client_id: u64) -> bool {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        let Some(local) = feeds.get(feed).cloned() else {
            return false;
        };
        let mut local = local.lock().unwrap_or_else(|p| p.into_inner());
        let before = local.subscribers.len();
        local.subscribers.retain(|s| s.client_id != client_id);
        let removed = local.subscribers.len() != before;
        if local.subscribers.is_empty() {
            feeds.remove(feed);
            drop(local);
            drop(feeds);
            self.followed_changed.notify_one();
        }
        removed
    }

    /// The feeds with subscribers here: name, epoch, last `seq` fanned out.
    pub fn followed(&self) -> Vec<(Arc<str>, Arc<str>, u64)> {
        let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds
            .iter()
            .map(|(name, local)| {
                let local = local.lock().unwrap_or_else(|p| p.into_inner());
                (name.clone(), local.epoch.clone(), local.head)
            })
            .collect()
    }

    /// The log no longer has the feed's epoch: every subscriber here is
    /// told to subscribe again (and hears of the new epoch then).
    pub fn restart_feed(&self, feed: &str) {
        let removed = self
            .feeds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(feed);
        if let Some(local) = removed {
            restart(&local);
            self.followed_changed.notify_one();
        }
    }
}

fn restart(local: &Mutex<LocalFeed>) {
    let local = local.lock().unwrap_or_else(|p| p.into_inner());
    for subscriber in &local.subscribers {
        subscriber.log_restarted.notify_one();
    }
}

/// What a subscribe resolves to: the answer's fields and the replay.
pub struct Subscription {
    pub epoch: String,
    pub head: u64,
    pub replay_from: Option<u64>,
    pub gap: Option<GapRange>,
    pub replay: Vec<Utf8Bytes>,
}

/// The hub and the log together: what a connection asks of its feeds.
pub struct Feeds {
    pub hub: Arc<FeedHub>,
    pub log: Log,
}

impl Feeds {
    pub fn publish(&self, feed: &str, data: &RawValue, key: Option<PublishKey>) -> Appending {
        self.log.append(feed, data, key)
    }

    /// Registers `subscriber` and computes the replay; events stored after
    /// the replay's end reach the subscriber's queue live.
    pub async fn subscribe(
        &self,
        feed: &str,
        since: Option<u64>,
        epoch: Option<&str>,
        subscriber: Subscriber,
    ) -> Result<Subscription, LogError> {
        let client_id = subscriber.client_id;
        let registered = self.log.register(feed, subscriber).await?;
        let head = registered.head;
        // The first seq the client wants: all of a new epoch, or after its
        // cursor, or nothing before the head (live only).
        let other_epoch = epoch.is_some_and(|e| e != registered.epoch);
        let wanted = match since {
            _ if other_epoch => Some(1),
            Some(since) => Some(since + 1),
            None => None,
        };
        let mut subscription = Subscription {
            epoch: registered.epoch,
            head,
            replay_from: None,
            gap: None,
            replay: Vec::new(),
        };
        let Some(wanted) = wanted.filter(|w| *w <= head) else {
            return Ok(subscription);
        };
        let events = match self.log.read(feed, wanted, head).await {
            Ok(events) => events,
            Err(err) => {
                self.hub.unsubscribe(feed, client_id);
                return Err(err);
            }
        };
        let first = events.first().map_or(head + 1, |e| e.seq);
        if wanted < first {
            subscription.gap = Some(GapRange {
                from: wanted,
                to: first - 1,
            });
        }
        subscription.replay_from = events.first().map(|e| e.seq);
        subscription.replay = events.into_iter().map(|e| e.frame).collect();
        Ok(subscription)
    }

    pub fn unsubscribe(&self, feed: &str, client_id: u64) -> bool {
        self.hub.unsubscribe(feed, client_id)
    }
}
