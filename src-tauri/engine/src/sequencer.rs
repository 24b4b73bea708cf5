//! One feed's ordering, for every wire: dedupe, a bounded reorder buffer,
//! and gap, reset and discontinuity markers exactly where continuity was
//! lost. How holes are settled is the feed's [`FeedRule`]: `holdline.v1`
//! asks the server (protocol §5), other wires ask once when they can replay
//! and then infer the gap (profiles §3).
//!
//! Plain data: no socket, no clock of its own (the caller passes `now`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::delivery::{Cursor, Delivery, DiscontinuityReason, FeedEvent};
use crate::wire::{FeedRule, HoleRule, Numbering, Position, WireEvent};

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

/// What to do about a hole that outlived the gap timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoleAction {
    /// Subscribe again from the cursor and wait another gap timeout.
    Resubscribe,
    /// The gap was inferred and delivered; nothing to ask.
    Settled,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FeedStats {
    pub delivered: u64,
    pub duplicates: u64,
    pub gaps: u64,
    pub resets: u64,
    pub resubscribes: u64,
    pub discontinuities: u64,
}

#[derive(Debug)]
pub struct FeedSequencer {
    feed: Arc<str>,
    rule: FeedRule,
    epoch: Option<Arc<str>>,
    /// The last delivered seq; `None` until the feed has a position.
    last: Option<u64>,
    pending: BTreeMap<u64, WireEvent>,
    window: u64,
    hole_since: Option<Instant>,
    /// The current hole was already asked for once (inferred holes).
    hole_asked: bool,
    asked_since: Option<u64>,
    stats: FeedStats,
}

impl FeedSequencer {
    pub fn new(
        feed: Arc<str>,
        cursor: Option<Cursor>,
        start: StartFrom,
        window: usize,
        rule: FeedRule,
    ) -> Self {
        let (epoch, last) = match &cursor {
            Some(c) => (c.epoch().map(Arc::from), Some(c.seq)),
            None if start == StartFrom::Beginning => (None, Some(0)),
            None => (None, None),
        };
        FeedSequencer {
            feed,
            rule,
            epoch,
            last,
            pending: BTreeMap::new(),
            window: window.max(1) as u64,
            hole_since: None,
            hole_asked: false,
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

    pub fn last_delivered(&self) -> Option<u64> {
        self.last
    }

    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    pub fn stats(&self) -> FeedStats {
        self.stats
    }

    pub fn is_numbered(&self) -> bool {
        self.rule.numbering != Numbering::Unnumbered
    }

    /// `since` and `epoch` for the next subscribe: the cursor when there is
    /// one, `0` from the start, else nothing (live).
    pub fn subscribe_position(&mut self) -> Position {
        self.asked_since = self.last;
        Position {
            since: self.last,
            epoch: self.epoch.as_deref().map(str::to_owned),
        }
    }

    /// Re-subscribing for a hole: restart the hole's clock.
    pub fn on_resubscribe(&mut self, now: Instant) {
        self.stats.resubscribes += 1;
        if self.hole_since.is_some() {
            self.hole_since = Some(now);
        }
    }

    /// The connection was made again and continuity is lost (`reason`), or
    /// this feed has no numbering to resume by: a discontinuity marker,
    /// before the new connection's events.
    pub fn on_discontinuity(&mut self, reason: DiscontinuityReason, out: &mut Vec<Delivery>) {
        self.stats.discontinuities += 1;
        // A numbered feed's next events come from a session nobody can
        // relate to the lost one (a restarted server may count from 1
        // again): it starts at the first one, as a feed without a cursor.
        if self.is_numbered() {
            self.last = None;
        }
        self.pending.clear();
        self.hole_since = None;
        self.hole_asked = false;
        out.push(Delivery::Discontinuity {
            feed: self.feed.clone(),
            reason,
        });
    }

    /// Applies the server's answer to a subscribe (`holdline.v1`): reset
    /// marker on a new epoch, gap marker where events are lost, then
    /// whatever buffered events that makes deliverable.
    pub fn on_subscribed(
        &mut self,
        epoch: &str,
        head: u64,
        gap: Option<(u64, u64)>,
        out: &mut Vec<Delivery>,
    ) {
        let new_epoch: Arc<str> = match &self.epoch {
            Some(known) if **known == *epoch => known.clone(),
            Some(_) => {
                let epoch: Arc<str> = Arc::from(epoch);
                self.reset(epoch.clone(), out);
                epoch
            }
            None => {
                // A first subscription adopts the epoch silently; asked
                // live-only, the stream starts after the server's head.
                if self.asked_since.is_none() {
                    self.last = Some(head);
                }
                Arc::from(epoch)
            }
        };
        self.epoch = Some(new_epoch.clone());
        let last = self.last.unwrap_or(0);
        if let Some((_, to)) = gap
            && to > last
        {
            // A correct server's gap starts right after the cursor. One that
            // starts later leaves events nobody will send: the marker covers
            // them too rather than skip them silently.
            self.mark_gap(last + 1, to, false, out);
        }
        self.release(out);
        if self.pending.is_empty() {
            self.hole_since = None;
        }
    }

    pub fn on_event(
        &mut self,
        event: WireEvent,
        now: Instant,
        out: &mut Vec<Delivery>,
    ) -> Accepted {
        let Some(seq) = event.seq.filter(|_| self.is_numbered()) else {
            self.deliver(event, out);
            return Accepted::Delivered { released: 0 };
        };
        if let Some(epoch) = &event.epoch {
            match &self.epoch {
                Some(known) if known == epoch => {}
                Some(_) => self.reset(epoch.clone(), out),
                None => self.epoch = Some(epoch.clone()),
            }
        }
        let last = match self.last {
            Some(last) => last,
            // No position yet: `holdline.v1` waits for `subscribed`; other
            // wires start at the first event they receive.
            None if self.rule.holes == HoleRule::AskServer => {
                self.stats.duplicates += 1;
                return Accepted::Duplicate;
            }
            None => seq.saturating_sub(1),
        };
        if seq <= last {
            self.stats.duplicates += 1;
            return Accepted::Duplicate;
        }
        if self.rule.numbering == Numbering::Increasing || seq == last + 1 {
            self.deliver(event, out);
            let released = self.release(out);
            if self.pending.is_empty() {
                self.hole_since = None;
                self.hole_asked = false;
            } else {
                // Progress restarts the clock; the hole was already asked
                // for if it was, however much of it the answer filled.
                self.hole_since = Some(now);
            }
            return Accepted::Delivered { released };
        }
        if seq - last > self.window {
            return self.too_far_ahead(event, now, out);
        }
        if self.pending.contains_key(&seq) {
            self.stats.duplicates += 1;
            return Accepted::Duplicate;
        }
        self.pending.insert(seq, event);
        self.hole_since.get_or_insert(now);
        Accepted::Buffered
    }

    /// An event past the reorder window: ask the server when the rule lets
    /// us, else declare the hole now and take the event.
    fn too_far_ahead(
        &mut self,
        event: WireEvent,
        now: Instant,
        out: &mut Vec<Delivery>,
    ) -> Accepted {
        match self.rule.holes {
            HoleRule::AskServer => Accepted::TooFarAhead,
            HoleRule::Infer { replay: true } if !self.hole_asked => {
                self.hole_asked = true;
                self.hole_since = Some(now);
                Accepted::TooFarAhead
            }
            HoleRule::Infer { .. } => {
                while !self.pending.is_empty() {
                    self.infer_gap(out);
                }
                let seq = event.seq.unwrap_or_default();
                let last = self.last.unwrap_or(0);
                if seq > last + 1 {
                    self.mark_gap(last + 1, seq - 1, true, out);
                }
                self.on_event(event, now, out)
            }
        }
    }

    /// When the current hole has waited long enough to act on it.
    pub fn hole_deadline(&self, gap_timeout: Duration) -> Option<Instant> {
        self.hole_since.map(|since| since + gap_timeout)
    }

    /// The hole outlived the gap timeout: ask the server (once, for
    /// inferred holes), or deliver an inferred gap for exactly the missing
    /// range and go on.
    pub fn on_hole_timeout(&mut self, now: Instant, out: &mut Vec<Delivery>) -> HoleAction {
        match self.rule.holes {
            HoleRule::AskServer => HoleAction::Resubscribe,
            HoleRule::Infer { replay: true } if !self.hole_asked => {
                self.hole_asked = true;
                self.hole_since = Some(now);
                HoleAction::Resubscribe
            }
            HoleRule::Infer { .. } => {
                self.infer_gap(out);
                self.hole_since = (!self.pending.is_empty()).then_some(now);
                HoleAction::Settled
            }
        }
    }

    /// Marks the missing range before the first buffered event as lost and
    /// releases what follows it.
    fn infer_gap(&mut self, out: &mut Vec<Delivery>) {
        let last = self.last.unwrap_or(0);
        if let Some(&first) = self.pending.keys().next()
            && first > last + 1
        {
            self.mark_gap(last + 1, first - 1, true, out);
        }
        self.release(out);
    }

    fn mark_gap(&mut self, from: u64, to: u64, inferred: bool, out: &mut Vec<Delivery>) {
        self.stats.gaps += 1;
        self.hole_asked = false;
        out.push(Delivery::Gap {
            feed: self.feed.clone(),
            epoch: self.epoch.clone(),
            from,
            to,
            inferred,
        });
        self.last = Some(to);
        self.pending = self.pending.split_off(&(to + 1));
    }

    fn reset(&mut self, epoch: Arc<str>, out: &mut Vec<Delivery>) {
        self.stats.resets += 1;
        self.last = Some(0);
        self.pending.clear();
        self.hole_since = None;
        self.hole_asked = false;
        self.epoch = Some(epoch.clone());
        out.push(Delivery::Reset {
            feed: self.feed.clone(),
            epoch,
        });
    }

    fn deliver(&mut self, event: WireEvent, out: &mut Vec<Delivery>) {
        let seq = event.seq.filter(|_| self.is_numbered());
        if let Some(seq) = seq {
            self.last = Some(seq);
        }
        self.stats.delivered += 1;
        out.push(Delivery::Event(FeedEvent {
            feed: self.feed.clone(),
            epoch: if seq.is_some() {
                self.epoch.clone()
            } else {
                event.epoch
            },
            seq,
            ts: event.ts,
            data: event.data,
            meta: event.meta,
            session: event.session,
            receipt: event.receipt,
        }));
    }

    fn release(&mut self, out: &mut Vec<Delivery>) -> usize {
        let mut released = 0;
        // The common case, nothing buffered, touches no reference count.
        while let Some(entry) = self.pending.first_entry() {
            let last = self.last.unwrap_or(0);
            if *entry.key() <= last {
                entry.remove();
                self.stats.duplicates += 1;
            } else if *entry.key() == last + 1 {
                let event = entry.remove();
                self.deliver(event, out);
                released += 1;
            } else {
                break;
            }
        }
        released
    }
}

#[cfg(test)]
mod tests;
