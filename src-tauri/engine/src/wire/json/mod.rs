//! `json` (profiles §3): any JSON-over-WebSocket API, described by the
//! profile's templates, pointers and matchers. Each frame is read once
//! (`super::message`); every rule reads what that one pass found.

use std::collections::HashSet;
use std::sync::Arc;

use holdline_protocol::{MAX_SEQ, MalformedFrame};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::time::Instant;

use super::message::{Message, ReadError};
use super::{
    FeedRule, Frame, Heartbeat, HoleRule, Inbound, Numbering, Out, Position, Ready, RequestIds,
    Upgrade, Wire, WireEvent,
};
use crate::cause::Cause;
use crate::error::EngineError;
use crate::policy::{CloseRule, protocol_close_rule};
use crate::profile::{JsonProfile, Placeholder, Profile, REDACTED, Sequence, Template, Vars};
use crate::secret::Token;
use crate::store::OutboxEntry;

pub(crate) struct JsonWire {
    profile: Profile,
    rules: JsonProfile,
    token: Option<Token>,
    /// `subscribe` uses `{since}`: the server can replay a hole.
    replays: bool,
    ids: RequestIds,
    ready: bool,
    ready_deadline: Option<Instant>,
    keepalive_at: Option<Instant>,
    /// Ids of publishes sent and not yet acknowledged.
    awaiting_ack: HashSet<String>,
}

impl JsonWire {
    pub fn new(profile: &Profile, rules: &JsonProfile, token: Option<Token>) -> Self {
        JsonWire {
            profile: profile.clone(),
            replays: rules
                .subscribe
                .as_ref()
                .is_some_and(|t| t.uses(&Placeholder::Since)),
            rules: rules.clone(),
            token,
            ids: RequestIds::new(),
            ready: false,
            ready_deadline: None,
            keepalive_at: None,
            awaiting_ack: HashSet::new(),
        }
    }

    /// Sends `template` rendered with the token. A frame the history
    /// shows (`recorded_as`: login, subscribe, unsubscribe) is rendered a
    /// second time for the record, the token redacted, when it holds one.
    fn send(
        &self,
        recorded_as: Option<&'static str>,
        template: &Template,
        vars: Vars<'_>,
        out: &mut Out,
    ) {
        let token = self.token.as_ref().map(Token::expose);
        let text = template.render_text(&Vars { token, ..vars });
        if let Some(what) = recorded_as {
            let frame = if token.is_some() && template.uses(&Placeholder::Token) {
                template.render_text(&Vars {
                    token: Some(REDACTED),
                    ..vars
                })
            } else {
                text.clone()
            };
            out.item(Inbound::Sent {
                what,
                feed: vars.feed.map(str::to_owned),
                frame,
            });
        }
        out.send_text(text);
    }

    fn on_message(&mut self, text: &str, out: &mut Out) {
        let message = match Message::read(text) {
            Ok(message) => message,
            Err(ReadError::NotJson(e)) => {
                return out.item(Inbound::Malformed(MalformedFrame::of_text(
                    text,
                    format!("not JSON: {e}"),
                )));
            }
            Err(ReadError::NotObject) => {
                return out.item(Inbound::Malformed(MalformedFrame::of_text(
                    text,
                    "not a JSON object",
                )));
            }
        };
        if self
            .rules
            .refused
            .as_ref()
            .is_some_and(|m| message.matches(m))
        {
            return out.item(Inbound::End(Cause::LoginRefused {
                detail: holdline_protocol::excerpt(text).to_owned(),
            }));
        }
        if !self.ready
            && let Some(ready) = &self.rules.ready
            && message.matches(ready)
        {
            return self.become_ready(out);
        }
        if self.take_ack(&message, out) {
            return;
        }
        if let Some((_, send)) = self.rules.answer.iter().find(|(m, _)| message.matches(m)) {
            let send = send.clone();
            let answering = message.to_value();
            let vars = Vars {
                answering: Some(&answering),
                ..Vars::default()
            };
            return self.send(None, &send, vars, out);
        }
        if self.rules.ignore.iter().any(|m| message.matches(m)) {
            return;
        }
        if !message.matches(&self.rules.event.matcher) {
            return out.item(Inbound::Malformed(MalformedFrame::of_text(
                text,
                "matches no rule of the profile (event, ack, answer, ignore)",
            )));
        }
        match self.event(&message) {
            Ok(event) => out.item(Inbound::Event(event)),
            Err(reason) => out.item(Inbound::Malformed(MalformedFrame::of_text(text, reason))),
        }
    }

    /// An `ack` that settles a waiting publish; true when the message was
    /// one (an ack rule with its own `match` also takes stale acks).
    fn take_ack(&mut self, message: &Message<'_>, out: &mut Out) -> bool {
        let Some(rule) = &self.rules.ack else {
            return false;
        };
        if !message.matches(&rule.matcher) {
            return false;
        }
        let id = message.find(&rule.id).and_then(|found| found.as_label());
        match id {
            Some(id) if self.awaiting_ack.remove(id.as_ref()) => {
                let seq = rule
                    .seq
                    .as_ref()
                    .and_then(|p| message.find(p))
                    .and_then(|found| found.as_u64());
                out.item(Inbound::Ack {
                    id: id.into_owned(),
                    seq,
                });
                true
            }
            _ => !rule.matcher.is_empty(),
        }
    }

    fn event(&self, message: &Message<'_>) -> Result<WireEvent, String> {
        let rule = &self.rules.event;
        let feed = match &rule.feed {
            None => None,
            Some(pointer) => match message.find(pointer).and_then(|f| f.as_str()) {
                Some(feed) if !feed.is_empty() => Some(feed.into_owned()),
                _ => {
                    return Err(format!(
                        "event.feed {}: missing or not a non-empty string",
                        pointer.as_str()
                    ));
                }
            },
        };
        let seq = match &rule.seq {
            None => None,
            Some(pointer) => match message.find(pointer).and_then(|f| f.as_u64()) {
                Some(seq) if seq <= MAX_SEQ => Some(seq),
                _ => {
                    return Err(format!(
                        "event.seq {}: missing or not an integer from 0 to 2^53-1",
                        pointer.as_str()
                    ));
                }
            },
        };
        let epoch = match rule.epoch.as_ref().and_then(|p| message.find(p)) {
            None => None,
            Some(found) if found.is_null() => None,
            Some(found) => match found.as_label() {
                Some(label) => Some(Arc::from(label.as_ref())),
                None => return Err("event.epoch: not a string or a number".into()),
            },
        };
        let data = match &rule.data {
            // The whole message: its own text, checked once more by serde
            // but never re-serialised.
            None => RawValue::from_string(message.text().trim().to_owned())
                .map_err(|e| e.to_string())?,
            // A slice of the frame where the pointer names a top-level key.
            Some(pointer) => match message.find(pointer) {
                Some(found) => found.to_raw().map_err(|e| e.to_string())?,
                None => return Err(format!("event.data {}: missing", pointer.as_str())),
            },
        };
        Ok(WireEvent {
            feed,
            seq,
            epoch,
            ts: None,
            data,
            meta: None,
            session: None,
            receipt: None,
        })
    }

    fn become_ready(&mut self, out: &mut Out) {
        self.ready = true;
        self.ready_deadline = None;
        out.item(Inbound::Ready(Ready {
            heartbeat: self.profile.common.heartbeat.map(Heartbeat::ClientPings),
            ..Ready::default()
        }));
    }
}

impl Wire for JsonWire {
    fn upgrade(&self) -> Upgrade {
        Upgrade::from_profile(&self.profile)
    }

    fn on_open(&mut self, _selected: Option<&str>, now: Instant, out: &mut Out) {
        self.ready = false;
        self.keepalive_at = self.rules.keepalive.as_ref().map(|k| now + k.every);
        for template in self.rules.on_open.clone() {
            self.send(Some("login"), &template, Vars::default(), out);
        }
        if self.rules.ready.is_some() {
            self.ready_deadline = Some(now + self.rules.ready_timeout);
        } else {
            self.become_ready(out);
        }
    }

    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Out) {
        match frame {
            Frame::Text(text) => self.on_message(text, out),
            Frame::Binary(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => self.on_message(text, out),
                Err(_) => out.item(Inbound::Malformed(MalformedFrame::binary(bytes))),
            },
        }
    }

    fn subscribe(&mut self, feed: &str, position: &Position, out: &mut Out) {
        let Some(template) = self.rules.subscribe.clone() else {
            return;
        };
        let id = self.ids.next("sub");
        let vars = Vars {
            feed: Some(feed),
            since: position.since,
            epoch: position.epoch.as_deref(),
            id: Some(&id),
            ..Vars::default()
        };
        self.send(Some("subscribe"), &template, vars, out);
    }

    fn unsubscribe(&mut self, feed: &str, out: &mut Out) {
        let Some(template) = self.rules.unsubscribe.clone() else {
            return;
        };
        let id = self.ids.next("unsub");
        let vars = Vars {
            feed: Some(feed),
            id: Some(&id),
            ..Vars::default()
        };
        self.send(Some("unsubscribe"), &template, vars, out);
    }

    fn check_publish(&self, entry: &OutboxEntry) -> Result<(), EngineError> {
        super::check_profile_publish(entry, self.rules.publish.is_some(), "template")
    }

    fn publish(&mut self, entry: &OutboxEntry, out: &mut Out) {
        let Some(template) = self.rules.publish.clone() else {
            return;
        };
        let data: Value = serde_json::from_str(entry.data.get()).unwrap_or(Value::Null);
        let vars = Vars {
            feed: Some(&entry.feed),
            id: Some(&entry.id),
            data: Some(&data),
            ..Vars::default()
        };
        if self.rules.ack.is_some() {
            self.awaiting_ack.insert(entry.id.clone());
        }
        self.send(None, &template, vars, out);
    }

    fn acks_publishes(&self) -> bool {
        self.rules.ack.is_some()
    }

    fn deadline(&self) -> Option<Instant> {
        match (self.ready_deadline, self.keepalive_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Out) {
        if self.ready_deadline.is_some_and(|d| d <= now) {
            self.ready_deadline = None;
            out.item(Inbound::End(Cause::NotReady {
                waiting_for: "a message matching the profile's `ready`".into(),
                waited_ms: self.rules.ready_timeout.as_millis() as u64,
            }));
            return;
        }
        if let Some(keepalive) = self.rules.keepalive.clone()
            && self.keepalive_at.is_some_and(|at| at <= now)
        {
            self.keepalive_at = Some(now + keepalive.every);
            self.send(None, &keepalive.send, Vars::default(), out);
        }
    }

    fn close_rule(&self, code: u16) -> CloseRule {
        super::profile_close_rule(&self.profile, code).unwrap_or_else(|| protocol_close_rule(code))
    }

    fn check_feed(&self, feed: &str, subscribed: &[Arc<str>]) -> Result<(), String> {
        super::check_feed_name(feed)?;
        if self.rules.event.feed.is_none()
            && let Some(other) = subscribed.iter().find(|f| ***f != *feed)
        {
            return Err(format!(
                "this profile has no event.feed, so every event belongs to the one feed subscribed ({other}); unsubscribe it first"
            ));
        }
        Ok(())
    }

    fn feed_rule(&self, _feed: &str) -> FeedRule {
        let numbering = match (&self.rules.event.seq, self.rules.sequence) {
            (None, _) => Numbering::Unnumbered,
            (Some(_), Sequence::Contiguous) => Numbering::Contiguous,
            (Some(_), Sequence::Increasing) => Numbering::Increasing,
        };
        FeedRule {
            numbering,
            holes: HoleRule::Infer {
                replay: self.replays,
            },
        }
    }

    fn takes_every_feed(&self) -> bool {
        self.rules.subscribe.is_none()
    }

    fn set_token(&mut self, token: Option<Token>) {
        self.token = token;
    }
}
