//! What the handle asks for: connect, subscribe, publish, triggers,
//! snapshots, shutdown.

use std::sync::Arc;

use serde_json::json;

use super::{Actor, Command, Phase};
use crate::cause::Trigger;
use crate::error::EngineError;
use crate::events::*;
use crate::outbox::{AckSender, Enqueued};
use crate::sequencer::StartFrom;
use crate::store::OutboxEntry;

impl Actor {
    pub(super) fn handle_command(&mut self, command: Command) {
        match command {
            Command::Connect => {
                if !self.want_connected {
                    self.backoff.reset();
                }
                self.want_connected = true;
            }
            Command::Disconnect => self.want_connected = false,
            Command::ReconnectNow => {
                self.backoff.reset();
                self.reconnect_now = true;
            }
            Command::Subscribe { feed, start, reply } => {
                let _ = reply.send(self.subscribe(feed, start));
            }
            Command::Unsubscribe { feed } => self.unsubscribe(&feed),
            Command::Publish {
                entry,
                waiter,
                reply,
            } => {
                let _ = reply.send(self.publish(entry, waiter));
            }
            Command::Trigger(trigger) => self.on_trigger(trigger),
            Command::SetToken(token) => {
                self.wire.set_token(token.clone());
                self.config.token = token;
            }
            Command::SetTokenSource(source) => {
                self.config.token_source = source;
                self.token_expires_at_ms = None;
            }
            Command::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
            Command::Shutdown(reply) => {
                self.shutdown_reply = Some(reply);
                self.want_connected = false;
                self.phase = Phase::Exit;
            }
        }
    }

    fn subscribe(&mut self, feed: Arc<str>, start: StartFrom) -> Result<(), EngineError> {
        if self.feeds.contains_key(&feed) {
            return Ok(());
        }
        let mut subscribed: Vec<Arc<str>> = self.feeds.keys().cloned().collect();
        if self.every_feed.is_some() {
            subscribed.push(Arc::from("*"));
        }
        self.wire
            .check_feed(&feed, &subscribed)
            .map_err(|message| EngineError::InvalidFeed {
                feed: feed.chars().take(140).collect(),
                message,
            })?;
        if &*feed == "*" && self.wire.takes_every_feed() {
            self.every_feed = Some(start);
            return Ok(());
        }
        self.add_feed(feed.clone(), start)?;
        self.adopted.remove(&feed);
        if self.can_send() {
            self.send_subscribe(&feed);
        }
        Ok(())
    }

    fn unsubscribe(&mut self, feed: &Arc<str>) {
        if &**feed == "*" && self.every_feed.take().is_some() {
            for adopted in std::mem::take(&mut self.adopted) {
                self.feeds.remove(&adopted);
            }
            return;
        }
        if self.feeds.remove(feed).is_some() && self.can_send() {
            self.wire.unsubscribe(feed, &mut self.wire_out);
            let _ = self.apply_wire_output();
        }
    }

    fn publish(&mut self, entry: OutboxEntry, waiter: AckSender) -> Result<(), EngineError> {
        self.wire.check_publish(&entry)?;
        if self.outbox.is_full() && !self.outbox.contains(&entry.id) {
            return Err(EngineError::OutboxFull {
                capacity: self.outbox.capacity(),
            });
        }
        let (id, feed) = (entry.id.clone(), entry.feed.clone());
        match self.outbox.enqueue(entry, waiter) {
            Err((err, _waiter)) => Err(err.into()),
            Ok(Enqueued::Joined) => Ok(()),
            Ok(Enqueued::New) => {
                self.emit(EngineEvent::Publish(PublishUpdate {
                    id,
                    feed,
                    status: PublishStatus::Queued,
                }));
                if self.can_send() {
                    self.send_outbox();
                }
                Ok(())
            }
        }
    }

    fn on_trigger(&mut self, trigger: Trigger) {
        let kind = match trigger {
            Trigger::Wake => HistoryKind::Wake,
            Trigger::NetworkChange => HistoryKind::NetworkChange,
        };
        self.backoff.reset();
        let action = match self.phase {
            Phase::Backoff { .. } => {
                self.reconnect_now = true;
                "reconnecting now"
            }
            Phase::Open => {
                self.probe_requested = Some(trigger);
                "probing the connection"
            }
            Phase::Dialing => "attempt under way; backoff reset",
            _ => "not connected; nothing to do",
        };
        self.record(
            kind,
            Level::Info,
            format!("{trigger}: {action}"),
            json!({ "trigger": trigger, "action": action }),
        );
    }

    fn snapshot(&self) -> Snapshot {
        let session = self.session.as_ref();
        Snapshot {
            url: self.config.url.to_string(),
            protocol: self.config.profile.protocol().to_owned(),
            state: self.state.borrow().clone(),
            session: session.and_then(|s| s.id.clone()),
            raw: session.is_some() && self.wire.is_raw(),
            heartbeat_ms: self.heartbeat.as_millis() as u64,
            rtt_ms: self.rtt.map(|d| d.as_secs_f64() * 1000.0),
            max_frame_bytes: session.and_then(|s| s.max_frame_bytes),
            feeds: self
                .feeds
                .values()
                .map(|f| FeedSnapshot {
                    feed: f.feed().to_string(),
                    epoch: f.epoch().map(str::to_owned),
                    last_seq: f.last_delivered(),
                    buffered: f.buffered(),
                    stats: f.stats(),
                })
                .collect(),
            outbox: self
                .outbox
                .items()
                .map(|(entry, sent)| OutboxItem {
                    id: entry.id.clone(),
                    feed: entry.feed.clone(),
                    sent,
                    queued_at_ms: entry.queued_at_ms,
                })
                .collect(),
            malformed_frames: self.malformed_total,
            unrouted_events: self.unrouted,
            token_expires_at_ms: self.token_expires_at_ms,
            token_refreshed_at_ms: self.token_refreshed_at_ms,
        }
    }
}
