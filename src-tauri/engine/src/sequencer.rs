//! One feed's ordering (protocol section 5): dedupe, a bounded reorder
//! buffer, and gap and reset markers exactly where the server says so.
//!
//! Plain data: no socket, no clock of its own (the caller passes `now`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use holdline_protocol::{Event, Subscribed};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::delivery::{Cursor, Delivery, FeedEvent};

/// Where a feed with no saved cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    /// Only events after the server's head (no `since`).
    #[default]
    Live,
    /// Every retained event (`since: 0`).
    Beginning,
}

/// What became of one incoming event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Delivered, with this many buffered successors released behind it.
    Delivered { released: usize },
    /// At or below the last delivered `seq`, or already buffered: dropped.
    Duplicate,
    /// Ahead of the next expected `seq`: waiting for the hole to fill.
    Buffered,
    /// So far ahead that buffering it would break the window: dropped, and
    /// the feed must be re-subscribed from its cursor now.
    TooFarAhead,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FeedStats {
    pub delivered: u64,
    pub duplicates: u64,
    pub gaps: u64,
    pub resets: u64,
    pub resubscribes: u64,
}

#[derive(Debug)]
pub struct FeedSequencer {
    feed: Arc<str>,
    epoch: Option<Arc<str>>,
    last: u64,
    start: StartFrom,
    pending: BTreeMap<u64, Event>,
    window: u64,
    hole_since: Option<Instant>,
    asked_since: Option<u64>,
    stats: FeedStats,
}

impl FeedSequencer {
    pub fn new(feed: Arc<str>, cursor: Option<Cursor>, start: StartFrom, window: usize) -> Self {
        let (epoch, last) = match cursor {
            Some(c) => (Some(Arc::from(c.epoch)), c.seq),
            None => (None, 0),
        };
        FeedSequencer {
            feed,
            epoch,
            last,
            start,
            pending: BTreeMap::new(),
            window: window.max(1) as u64,
            hole_since: None,
            asked_since: None,
            stats: FeedStats::default(),
        }
    }

    pub fn feed(&self) -> &Arc<str> {
        &self.feed
    }

    pub fn epoch(&self) -> Option<&str> {
        self.epoch.as_deref()
    }

    pub fn last_delivered(&self) -> u64 {
        self.last
    }

    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    pub fn stats(&self) -> FeedStats {
        self.stats
    }

    /// `since` and `epoch` for the next `subscribe`: the cursor when there is
    /// one, else what `start` asks for.
    pub fn subscribe_position(&mut self) -> (Option<u64>, Option<String>) {
        let position = match &self.epoch {
            Some(epoch) => (Some(self.last), Some(epoch.to_string())),
            None => match self.start {
                StartFrom::Live => (None, None),
                StartFrom::Beginning => (Some(self.last), None),
            },
        };
        self.asked_since = position.0;
        position
    }

    /// Re-subscribing for a hole: restart the hole's clock.
    pub fn on_resubscribe(&mut self, now: Instant) {
        self.stats.resubscribes += 1;
        if self.hole_since.is_some() {
            self.hole_since = Some(now);
        }
    }

    /// Applies the server's answer to `subscribe`: reset marker on a new
    /// epoch, gap marker where events are lost, then whatever buffered
    /// events that makes deliverable.
    pub fn on_subscribed(&mut self, sub: &Subscribed, out: &mut Vec<Delivery>) {
        let new_epoch: Arc<str> = match &self.epoch {
            Some(known) if **known == *sub.epoch => known.clone(),
            Some(_) => {
                let epoch: Arc<str> = Arc::from(sub.epoch.as_str());
                self.stats.resets += 1;
                self.last = 0;
                self.pending.clear();
                self.hole_since = None;
                out.push(Delivery::Reset {
                    feed: self.feed.clone(),
                    epoch: epoch.clone(),
                });
                epoch
            }
            None => {
                // A first subscription adopts the epoch silently; asked
                // live-only, the stream starts after the server's head.
                if self.asked_since.is_none() {
                    self.last = sub.head;
                }
                Arc::from(sub.epoch.as_str())
            }
        };
        self.epoch = Some(new_epoch.clone());
        if let Some(gap) = sub.gap
            && gap.to > self.last
        {
            // A correct server's gap starts right after the cursor. One that
            // starts later leaves events nobody will send: the marker covers
            // them too rather than skip them silently.
            let from = self.last + 1;
            self.stats.gaps += 1;
            out.push(Delivery::Gap {
                feed: self.feed.clone(),
                epoch: new_epoch,
                from,
                to: gap.to,
            });
            self.last = gap.to;
            self.pending = self.pending.split_off(&(self.last + 1));
        }
        self.release(out);
        self.hole_since = if self.pending.is_empty() {
            None
        } else {
            self.hole_since
        };
    }

    pub fn on_event(&mut self, event: Event, now: Instant, out: &mut Vec<Delivery>) -> Accepted {
        let Some(epoch) = &self.epoch else {
            // No `subscribed` yet on this feed: nothing can be placed.
            self.stats.duplicates += 1;
            return Accepted::Duplicate;
        };
        let seq = event.seq;
        if seq <= self.last {
            self.stats.duplicates += 1;
            return Accepted::Duplicate;
        }
        if seq == self.last + 1 {
            let epoch = epoch.clone();
            self.deliver(event, epoch, out);
            let released = self.release(out);
            self.hole_since = if self.pending.is_empty() {
                None
            } else {
                Some(now)
            };
            return Accepted::Delivered { released };
        }
        if seq - self.last > self.window {
            return Accepted::TooFarAhead;
        }
        if self.pending.contains_key(&seq) {
            self.stats.duplicates += 1;
            return Accepted::Duplicate;
        }
        self.pending.insert(seq, event);
        self.hole_since.get_or_insert(now);
        Accepted::Buffered
    }

    /// When the current hole has waited long enough to ask the server.
    pub fn hole_deadline(&self, gap_timeout: Duration) -> Option<Instant> {
        self.hole_since.map(|since| since + gap_timeout)
    }

    fn deliver(&mut self, event: Event, epoch: Arc<str>, out: &mut Vec<Delivery>) {
        self.last = event.seq;
        self.stats.delivered += 1;
        out.push(Delivery::Event(FeedEvent {
            feed: self.feed.clone(),
            epoch,
            seq: event.seq,
            ts: event.ts,
            data: event.data,
        }));
    }

    fn release(&mut self, out: &mut Vec<Delivery>) -> usize {
        // The common case, nothing buffered, touches no reference count.
        if self.pending.is_empty() {
            return 0;
        }
        let Some(epoch) = self.epoch.clone() else {
            return 0;
        };
        let mut released = 0;
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() <= self.last {
                entry.remove();
                self.stats.duplicates += 1;
            } else if *entry.key() == self.last + 1 {
                let event = entry.remove();
                self.deliver(event, epoch.clone(), out);
                released += 1;
            } else {
                break;
            }
        }
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use holdline_protocol::GapRange;
    use proptest::prelude::*;
    use serde_json::value::RawValue;

    fn event(seq: u64) -> Event {
        Event {
            feed: "f".into(),
            seq,
            data: RawValue::from_string(seq.to_string()).unwrap(),
            ts: 0,
        }
    }

    fn subscribed(epoch: &str, head: u64, gap: Option<(u64, u64)>) -> Subscribed {
        Subscribed {
            id: "s".into(),
            feed: "f".into(),
            epoch: epoch.into(),
            head,
            replay_from: None,
            gap: gap.map(|(from, to)| GapRange { from, to }),
        }
    }

    fn seqs(out: &[Delivery]) -> Vec<u64> {
        out.iter()
            .filter_map(|d| match d {
                Delivery::Event(e) => Some(e.seq),
                _ => None,
            })
            .collect()
    }

    fn from_start(window: usize) -> FeedSequencer {
        let mut s = FeedSequencer::new("f".into(), None, StartFrom::Beginning, window);
        assert_eq!(s.subscribe_position(), (Some(0), None));
        let mut out = Vec::new();
        s.on_subscribed(&subscribed("e1", 0, None), &mut out);
        assert!(out.is_empty(), "a first subscription has no reset marker");
        s
    }

    #[test]
    fn in_order_events_flow_and_duplicates_drop() {
        let mut s = from_start(16);
        let mut out = Vec::new();
        let now = Instant::now();
        for seq in [1, 2, 2, 1, 3] {
            s.on_event(event(seq), now, &mut out);
        }
        assert_eq!(seqs(&out), [1, 2, 3]);
        assert_eq!(s.stats().duplicates, 2);
    }

    #[test]
    fn a_hole_holds_later_events_until_it_fills() {
        let mut s = from_start(16);
        let mut out = Vec::new();
        let now = Instant::now();
        assert_eq!(s.on_event(event(2), now, &mut out), Accepted::Buffered);
        assert_eq!(s.on_event(event(3), now, &mut out), Accepted::Buffered);
        assert!(out.is_empty());
        assert_eq!(
            s.hole_deadline(Duration::from_secs(1)),
            Some(now + Duration::from_secs(1))
        );
        assert_eq!(
            s.on_event(event(1), now, &mut out),
            Accepted::Delivered { released: 2 }
        );
        assert_eq!(seqs(&out), [1, 2, 3]);
        assert_eq!(s.hole_deadline(Duration::from_secs(1)), None);
    }

    #[test]
    fn an_event_past_the_window_asks_for_a_resubscribe() {
        let mut s = from_start(4);
        let mut out = Vec::new();
        assert_eq!(
            s.on_event(event(6), Instant::now(), &mut out),
            Accepted::TooFarAhead
        );
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn a_server_gap_becomes_one_marker_and_releases_what_follows() {
        let mut s = from_start(16);
        let mut out = Vec::new();
        let now = Instant::now();
        s.on_event(event(1), now, &mut out);
        s.on_event(event(7), now, &mut out);
        assert_eq!(s.subscribe_position(), (Some(1), Some("e1".into())));
        out.clear();
        s.on_subscribed(&subscribed("e1", 9, Some((2, 6))), &mut out);
        assert!(matches!(out[0], Delivery::Gap { from: 2, to: 6, .. }));
        assert_eq!(seqs(&out), [7]);
        assert_eq!(s.last_delivered(), 7);
    }

    #[test]
    fn a_new_epoch_resets_then_marks_the_gap() {
        let cursor = Cursor {
            epoch: "old".into(),
            seq: 40,
        };
        let mut s = FeedSequencer::new("f".into(), Some(cursor), StartFrom::Live, 16);
        assert_eq!(s.subscribe_position(), (Some(40), Some("old".into())));
        let mut out = Vec::new();
        s.on_subscribed(&subscribed("new", 10, Some((1, 4))), &mut out);
        assert!(matches!(&out[0], Delivery::Reset { epoch, .. } if &**epoch == "new"));
        assert!(matches!(out[1], Delivery::Gap { from: 1, to: 4, .. }));
        out.clear();
        s.on_event(event(5), Instant::now(), &mut out);
        assert_eq!(seqs(&out), [5]);
        assert_eq!(s.stats().resets, 1);
    }

    #[test]
    fn a_gap_that_starts_past_the_cursor_still_marks_from_the_cursor() {
        let mut s = from_start(16);
        let mut out = Vec::new();
        s.on_event(event(1), Instant::now(), &mut out);
        out.clear();
        s.subscribe_position();
        s.on_subscribed(&subscribed("e1", 9, Some((5, 7))), &mut out);
        assert!(
            matches!(out[0], Delivery::Gap { from: 2, to: 7, .. }),
            "{out:?}"
        );
    }

    #[test]
    fn live_only_starts_after_the_head() {
        let mut s = FeedSequencer::new("f".into(), None, StartFrom::Live, 16);
        assert_eq!(s.subscribe_position(), (None, None));
        let mut out = Vec::new();
        s.on_subscribed(&subscribed("e", 41, None), &mut out);
        assert!(out.is_empty());
        s.on_event(event(42), Instant::now(), &mut out);
        assert_eq!(seqs(&out), [42]);
    }

    proptest! {
        /// Any permutation of 1..=n, with duplicates sprinkled in, comes out
        /// as exactly 1..=n when the window covers the disorder.
        #[test]
        fn any_permutation_with_duplicates_comes_out_in_order(
            order in (1u64..200).prop_flat_map(|n| {
                let seqs: Vec<u64> = (1..=n).collect();
                (Just(n), Just(seqs).prop_shuffle(), proptest::collection::vec(1..=n, 0..50))
            })
        ) {
            let (n, shuffled, dups) = order;
            let mut input = shuffled;
            for (i, d) in dups.into_iter().enumerate() {
                let at = (i * 7) % (input.len() + 1);
                input.insert(at, d);
            }
            let mut s = from_start(n as usize);
            let mut out = Vec::new();
            let now = Instant::now();
            for seq in &input {
                s.on_event(event(*seq), now, &mut out);
            }
            prop_assert_eq!(seqs(&out), (1..=n).collect::<Vec<_>>());
            prop_assert_eq!(s.stats().duplicates, input.len() as u64 - n);
            prop_assert_eq!(s.buffered(), 0);
        }

        /// With a window smaller than the disorder, nothing is delivered out
        /// of order or twice, and whatever is missing is still ahead.
        #[test]
        fn a_small_window_never_breaks_order(
            input in proptest::collection::vec(1u64..60, 0..200),
            window in 1usize..8,
        ) {
            let mut s = from_start(window);
            let mut out = Vec::new();
            let now = Instant::now();
            for seq in input {
                s.on_event(event(seq), now, &mut out);
                prop_assert!(s.buffered() <= window);
            }
            let got = seqs(&out);
            prop_assert_eq!(got.clone(), (1..=got.len() as u64).collect::<Vec<_>>());
        }
    }
}
