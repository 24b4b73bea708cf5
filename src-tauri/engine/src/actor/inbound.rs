//! Applying what the wire decoded: the connection becoming ready, events
//! through their feeds' sequencers, acks and refusals through the outbox,
//! malformed frames into the history. Every wire lands here the same way.

use std::sync::Arc;

use holdline_protocol::MalformedFrame;
use serde_json::json;
use tokio::time::Instant;
use tracing::debug;

use super::{Actor, MALFORMED_RECORDED_PER_CONNECTION};
use crate::cause::Cause;
use crate::delivery::{Delivery, DiscontinuityReason, Receipt};
use crate::error::{PublishAck, PublishError};
use crate::events::*;
use crate::sequencer::{Accepted, FeedSequencer, HoleAction, StartFrom};
use crate::wire::{Continuity, Heartbeat, Inbound, Ready, WireEvent};

impl Actor {
    /// Takes the wire's frames to send and applies its items; the cause
    /// when an item ends the connection.
    pub(super) fn apply_wire_output(&mut self) -> Option<Cause> {
        self.writes.append(&mut self.wire_out.frames);
        if self.wire_out.items.is_empty() {
            return None;
        }
        let mut items = std::mem::take(&mut self.wire_out.items);
        let mut ended = None;
        for item in items.drain(..) {
            if let Some(cause) = self.apply(item) {
                ended = Some(cause);
                break;
            }
        }
        items.clear();
        self.wire_out.items = items;
        self.writes.append(&mut self.wire_out.frames);
        ended
    }

    fn apply(&mut self, item: Inbound) -> Option<Cause> {
        match item {
            Inbound::Event(event) => self.route_event(event),
            Inbound::Ready(ready) => self.on_ready(ready),
            Inbound::Subscribed {
                feed,
                epoch,
                head,
                replay_from,
                gap,
            } => self.on_subscribed(&feed, &epoch, head, replay_from, gap),
            Inbound::Ack { id, seq } => self.on_ack(id, seq),
            Inbound::PublishRefused { id, code, message } => {
                self.on_publish_refused(id, code, message)
            }
            Inbound::SubscribeRefused {
                feed,
                code,
                message,
                permanent,
            } => {
                // A feed the server refuses for good is dropped: asking
                // again on every reconnect would only repeat the refusal.
                if permanent {
                    self.feeds.remove(feed.as_str());
                }
                self.record(
                    HistoryKind::SubscribeFailed,
                    Level::Error,
                    format!("subscribing to {feed} failed: {message} ({code})"),
                    json!({ "feed": feed, "code": code, "message": message, "dropped": permanent }),
                );
            }
            Inbound::ServerError { id, code, message } => self.record(
                HistoryKind::Protocol,
                Level::Warn,
                format!("server error {code}: {message}"),
                json!({ "id": id, "code": code, "message": message }),
            ),
            Inbound::Malformed(malformed) => self.on_malformed(malformed),
            Inbound::Raw(frame) => self.outgoing.push(Delivery::Raw(frame)),
            Inbound::Sent { what, feed, frame } => {
                if what == "login"
                    && let Some(session) = &mut self.session
                {
                    session.logins_sent += 1;
                }
                self.record(
                    HistoryKind::Sent,
                    Level::Debug,
                    match &feed {
                        Some(feed) => format!("sent {what} for {feed}"),
                        None => format!("sent {what}"),
                    },
                    json!({ "what": what, "feed": feed, "frame": frame }),
                );
            }
            Inbound::SaveSession(mark) => {
                let saved = self
                    .cursors
                    .save_session(self.config.url.server_key(), &mark)
                    .and_then(|()| self.cursors.flush());
                if let Err(err) = saved {
                    self.record_storage_error(&err);
                }
            }
            Inbound::FeedEnded { feed, reason } => {
                self.feeds.remove(feed.as_str());
                self.record(
                    HistoryKind::SubscribeFailed,
                    Level::Warn,
                    format!("{feed} ended: {reason}"),
                    json!({ "feed": feed, "reason": reason, "dropped": true }),
                );
            }
            Inbound::Notice { message, details } => {
                self.record(HistoryKind::Protocol, Level::Info, message, details)
            }
            Inbound::End(cause) => return Some(cause),
        }
        None
    }

    fn on_ready(&mut self, ready: Ready) {
        let Ready {
            session: session_id,
            heartbeat,
            max_frame_bytes,
            continuity,
        } = ready;
        let Some(session) = &mut self.session else {
            return;
        };
        match heartbeat {
            Some(Heartbeat::ClientPings(period)) => {
                self.heartbeat = period;
                session.liveness.set_period(period);
            }
            Some(Heartbeat::InProtocol(limit)) => {
                self.heartbeat = limit / 2;
                session.liveness.follow_server_pings(limit);
            }
            None => session.liveness.set_period(self.heartbeat),
        }
        session.ready = true;
        self.token_refresh_forced = false;
        session.id = session_id.clone();
        session.max_frame_bytes = max_frame_bytes;
        let reconnect = self.ready_connections > 0;
        let logins = session.logins_sent;
        self.ready_connections += 1;
        let raw = self.wire.is_raw();
        self.set_state(ConnectionState::Open {
            session: session_id.clone(),
            raw,
        });
        let marked = self.outgoing.len();
        let lost: Vec<Arc<str>> = self
            .feeds
            .values()
            .filter(|feed| match continuity {
                // The wire says so only where an earlier session existed,
                // in this process or one before it.
                Continuity::Lost(_) => true,
                Continuity::Resumed => false,
                Continuity::ByFeed => reconnect && !feed.is_numbered(),
            })
            .map(|feed| feed.feed().clone())
            .collect();
        let reason = match continuity {
            Continuity::Lost(reason) => reason,
            _ => DiscontinuityReason::Reconnected,
        };
        for feed in &lost {
            if let Some(sequencer) = self.feeds.get_mut(feed) {
                sequencer.on_discontinuity(reason, &mut self.outgoing);
            }
        }
        self.record_markers(marked);
        let resumed: Vec<&str> = self
            .feeds
            .keys()
            .filter(|f| !lost.contains(f))
            .map(|f| &**f)
            .collect();
        self.record(
            HistoryKind::Ready,
            Level::Info,
            ready_summary(reconnect, logins, self.feeds.len(), &lost, &resumed),
            json!({ "session": session_id, "heartbeat_ms": self.heartbeat.as_millis() as u64,
                    "reconnect": reconnect, "login_frames": logins, "feeds": self.feeds.len(),
                    "continuity_lost": lost.iter().map(|f| &**f).collect::<Vec<_>>(),
                    "continuity_held": resumed, "raw": raw }),
        );
        self.subscribe_all();
        self.send_outbox();
    }

    /// Hands an event to its feed's sequencer: the feed it names, else the
    /// one feed subscribed (or `*`). One map lookup on the hot path; a feed
    /// first seen under `*` is adopted.
    fn route_event(&mut self, event: WireEvent) {
        let marked = self.outgoing.len();
        let sequencer = match event.feed.as_deref() {
            Some(name) => self.feeds.get_mut(name),
            None if self.every_feed.is_some() => self.feeds.get_mut("*"),
            None if self.feeds.len() == 1 => self.feeds.values_mut().next(),
            None => None,
        };
        let receipt = event.receipt;
        if let Some(sequencer) = sequencer {
            match sequencer.on_event(event, Instant::now(), &mut self.outgoing) {
                Accepted::TooFarAhead => {
                    let feed = sequencer.feed().clone();
                    self.resubscribe(&feed, "event too far ahead of the reorder window");
                    self.release(receipt);
                }
                Accepted::Duplicate => self.release(receipt),
                Accepted::Delivered { .. } if self.outgoing.len() == marked + 1 => {}
                _ => self.record_markers(marked),
            }
            return;
        }
        let name: Arc<str> = match (&event.feed, self.every_feed) {
            (Some(name), Some(_)) => Arc::from(name.as_str()),
            (None, Some(_)) => Arc::from("*"),
            (name, None) => {
                self.unrouted += 1;
                debug!(feed = ?name, "event for a feed we are not subscribed to");
                return self.release(receipt);
            }
        };
        let start = self.every_feed.unwrap_or_default();
        if let Err(err) = self.add_feed(name.clone(), start) {
            return self.record_storage_error(&err);
        }
        self.adopted.insert(name);
        self.route_event(event);
    }

    /// An event the consumer will never see (a repeat, a feed nobody
    /// subscribed) still owes the server its acknowledgement, or the
    /// server would send it again for ever.
    fn release(&mut self, receipt: Option<Receipt>) {
        if let Some(receipt) = receipt {
            self.wire.on_committed(receipt, &mut self.wire_out);
        }
    }

    /// Starts ordering a feed from its saved cursor (else `start`).
    pub(super) fn add_feed(
        &mut self,
        feed: Arc<str>,
        start: StartFrom,
    ) -> Result<(), crate::store::StoreError> {
        let cursor = self.cursors.load(self.config.url.server_key(), &feed)?;
        let rule = self.wire.feed_rule(&feed);
        let sequencer = FeedSequencer::new(
            feed.clone(),
            cursor,
            start,
            self.config.reorder_window,
            rule,
        );
        self.feeds.insert(feed, sequencer);
        Ok(())
    }

    fn on_subscribed(
        &mut self,
        feed: &str,
        epoch: &str,
        head: u64,
        replay_from: Option<u64>,
        gap: Option<(u64, u64)>,
    ) {
        let marked = self.outgoing.len();
        let Some(sequencer) = self.feeds.get_mut(feed) else {
            return;
        };
        sequencer.on_subscribed(epoch, head, gap, &mut self.outgoing);
        let cursor = sequencer.last_delivered();
        self.record(
            HistoryKind::Subscribed,
            Level::Debug,
            format!("subscribed to {feed} (epoch {epoch}, head {head})"),
            json!({ "feed": feed, "epoch": epoch, "head": head, "replay_from": replay_from,
                    "gap": gap.map(|(from, to)| json!({ "from": from, "to": to })),
                    "cursor": cursor }),
        );
        self.record_markers(marked);
    }

    pub(super) fn on_ack(&mut self, id: String, seq: Option<u64>) {
        let feed = self
            .outbox
            .items()
            .find(|(entry, _)| entry.id == id)
            .map(|(entry, _)| entry.feed.clone());
        let Some(feed) = feed else {
            debug!(%id, "ack for a publish no longer waiting");
            return;
        };
        let outcome = Ok(PublishAck {
            id: id.clone(),
            feed: feed.clone(),
            seq,
        });
        let (_, stored) = self.outbox.settle(&id, outcome);
        if let Err(err) = stored {
            self.record_storage_error(&err);
        }
        self.emit(EngineEvent::Publish(PublishUpdate {
            id,
            feed,
            status: PublishStatus::Acked { seq },
        }));
    }

    fn on_publish_refused(&mut self, id: String, code: String, message: String) {
        if !self.outbox.contains(&id) {
            return self.record(
                HistoryKind::Protocol,
                Level::Warn,
                format!("server error {code}: {message}"),
                json!({ "id": id, "code": code, "message": message }),
            );
        }
        let outcome = Err(PublishError::Rejected {
            server_code: code.clone(),
            message: message.clone(),
        });
        let (entry, stored) = self.outbox.settle(&id, outcome);
        if let Err(err) = stored {
            self.record_storage_error(&err);
        }
        let feed = entry.map(|e| e.feed).unwrap_or_default();
        self.record(
            HistoryKind::Publish,
            Level::Warn,
            format!("publish {id} to {feed} refused: {message} ({code})"),
            json!({ "id": id, "feed": feed, "code": code, "message": message }),
        );
        self.emit(EngineEvent::Publish(PublishUpdate {
            id,
            feed,
            status: PublishStatus::Failed { code, message },
        }));
    }

    fn on_malformed(&mut self, malformed: MalformedFrame) {
        self.malformed_total += 1;
        let Some(session) = &mut self.session else {
            return;
        };
        session.malformed_recorded += 1;
        let recorded = session.malformed_recorded;
        if recorded > MALFORMED_RECORDED_PER_CONNECTION {
            return;
        }
        let suffix = if recorded == MALFORMED_RECORDED_PER_CONNECTION {
            "; further malformed frames on this connection are only counted"
        } else {
            ""
        };
        self.record(
            HistoryKind::Malformed,
            Level::Warn,
            format!("malformed frame quarantined: {}{suffix}", malformed.reason),
            json!({ "reason": malformed.reason, "excerpt": malformed.excerpt,
                    "binary": malformed.binary, "total": self.malformed_total }),
        );
    }

    pub(super) fn can_send(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.ready)
    }

    fn subscribe_all(&mut self) {
        let feeds: Vec<Arc<str>> = self.feeds.keys().cloned().collect();
        for feed in feeds {
            self.send_subscribe(&feed);
        }
    }

    pub(super) fn send_subscribe(&mut self, feed: &Arc<str>) {
        let Some(sequencer) = self.feeds.get_mut(feed) else {
            return;
        };
        let position = sequencer.subscribe_position();
        self.wire.subscribe(feed, &position, &mut self.wire_out);
        // A subscribe produces frames and records, never an end.
        let _ = self.apply_wire_output();
    }

    fn resubscribe(&mut self, feed: &Arc<str>, why: &str) {
        if let Some(sequencer) = self.feeds.get_mut(feed) {
            sequencer.on_resubscribe(Instant::now());
            debug!(%feed, cursor = sequencer.last_delivered(), why, "re-subscribing");
        }
        self.send_subscribe(feed);
    }

    pub(super) fn next_hole_deadline(&self) -> Option<Instant> {
        self.feeds
            .values()
            .filter_map(|f| f.hole_deadline(self.config.gap_timeout))
            .min()
    }

    /// Holes that outlived the gap timeout: ask again or infer the gap.
    pub(super) fn settle_holes(&mut self, now: Instant) {
        let due: Vec<Arc<str>> = self
            .feeds
            .values()
            .filter(|f| {
                f.hole_deadline(self.config.gap_timeout)
                    .is_some_and(|d| d <= now)
            })
            .map(|f| f.feed().clone())
            .collect();
        for feed in due {
            let marked = self.outgoing.len();
            let Some(sequencer) = self.feeds.get_mut(&feed) else {
                continue;
            };
            match sequencer.on_hole_timeout(now, &mut self.outgoing) {
                HoleAction::Resubscribe => {
                    self.resubscribe(&feed, "a hole outlived the gap timeout")
                }
                HoleAction::Settled => self.record_markers(marked),
            }
        }
    }

    pub(super) fn send_outbox(&mut self) {
        let acks = self.wire.acks_publishes();
        for entry in self.outbox.take_unsent() {
            self.emit(EngineEvent::Publish(PublishUpdate {
                id: entry.id.clone(),
                feed: entry.feed.clone(),
                status: PublishStatus::Sent,
            }));
            self.wire.publish(&entry, &mut self.wire_out);
            if !acks {
                self.settle_when_written.push(entry.id);
            }
        }
        let _ = self.apply_wire_output();
    }
}

fn ready_summary(
    reconnect: bool,
    logins: u32,
    feeds: usize,
    lost: &[Arc<str>],
    held: &[&str],
) -> String {
    let mut text = String::from(if reconnect {
        "reconnected"
    } else {
        "connected"
    });
    if logins > 0 {
        text.push_str(if reconnect {
            "; login sent again"
        } else {
            "; login sent"
        });
    }
    if feeds == 0 {
        text.push_str("; no feeds to subscribe");
        return text;
    }
    text.push_str(&format!("; subscribing {feeds} feed(s) from their cursors"));
    if reconnect {
        if !held.is_empty() {
            text.push_str(&format!("; continuity held for {}", held.join(", ")));
        }
        if !lost.is_empty() {
            let lost: Vec<&str> = lost.iter().map(|f| &**f).collect();
            text.push_str(&format!("; continuity lost for {}", lost.join(", ")));
        }
    }
    text
}
