//! `socket.io` (profiles §4): Socket.IO v4 over Engine.IO v4's WebSocket
//! transport, with the server's connection state recovery.
//!
//! Feeds are event names. The server pings and the wire answers; the
//! actor only watches the silence (`Heartbeat::InProtocol`). Recovery is
//! the client's half of what `socket.io` implements: the private session
//! id and the offset the server appends to each stored event are kept,
//! handed to the consumer with each event (`SessionMark`, committed with
//! the cursors) and presented in the next CONNECT.

mod packet;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use holdline_protocol::{MAX_SEQ, MalformedFrame};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tokio::time::Instant;

use self::packet::{EnginePacket, EventArgs, Handshake, Kind, Packet};
use super::message::Message;
use super::{
    Continuity, FeedRule, Frame, Heartbeat, Inbound, Out, Position, Ready, Upgrade, Wire, WireEvent,
};
use crate::cause::Cause;
use crate::config::EngineConfig;
use crate::delivery::{DiscontinuityReason, SessionMark};
use crate::error::EngineError;
use crate::policy::CloseRule;
use crate::profile::{Profile, REDACTED, SocketIoProfile, Vars};
use crate::secret::Token;
use crate::store::OutboxEntry;

/// The feed that takes every event under its own name.
const EVERY_EVENT: &str = "*";

/// Binary attachments one packet may announce: each is held in memory
/// until the last arrives, so a count with no bound would be a way to
/// exhaust it.
const MAX_ATTACHMENTS: usize = 256;

pub(crate) struct SocketIoWire {
    profile: Profile,
    rules: SocketIoProfile,
    namespace: String,
    token: Option<Token>,
    connect_within: Duration,
    stage: Stage,
    /// `pingInterval + pingTimeout`: the silence that is death.
    ping_limit: Option<Duration>,
    max_payload: Option<u64>,
    recovery: Recovery,
    /// This connection's CONNECT presented a private session id.
    presented_session: bool,
    /// Events sent before the CONNECT answer: a recovered session's missed
    /// events, placed after the answer as socket.io-client does.
    early: Vec<WireEvent>,
    binary: Option<PartialBinary>,
    /// Ack ids of emitted publishes, to the outbox ids they settle.
    awaiting_ack: HashMap<u64, String>,
    next_ack_id: u64,
    /// The last event name (as JSON) and its `meta`.
    last_meta: Option<(Box<str>, Box<RawValue>)>,
}

#[derive(Debug, Clone, Copy)]
enum Stage {
    /// Waiting for Engine.IO's open packet.
    Opening {
        deadline: Instant,
    },
    /// CONNECT sent, waiting for the answer.
    Connecting {
        deadline: Instant,
    },
    Connected,
}

/// The private session id and the resume point of the last event, when
/// the server offers recovery.
#[derive(Debug, Clone, Default)]
struct Recovery {
    session: Option<Arc<str>>,
    last: Option<Arc<SessionMark>>,
}

impl Recovery {
    fn offset(&self) -> Option<&str> {
        self.last.as_ref().map(|mark| mark.offset.as_str())
    }
}

/// A binary packet waiting for its attachments.
struct PartialBinary {
    kind: Kind,
    id: Option<u64>,
    data: String,
    expected: usize,
    attachments: Vec<Vec<u8>>,
}

/// The CONNECT answer.
#[derive(Deserialize)]
struct Connected {
    sid: String,
    #[serde(default)]
    pid: Option<String>,
}

/// A CONNECT_ERROR's payload.
#[derive(Deserialize)]
struct ConnectRefused {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    data: Option<Value>,
}

impl SocketIoWire {
    pub fn new(config: &EngineConfig, rules: &SocketIoProfile, saved: Option<SessionMark>) -> Self {
        // As socket.io-client does, a URL path names the namespace when the
        // profile names none; the engine path is always the profile's.
        let url_path = url::Url::parse(config.url.as_str())
            .map(|u| u.path().to_owned())
            .unwrap_or_default();
        let namespace = if rules.namespace == "/" && url_path.len() > 1 {
            url_path.trim_end_matches('/').to_owned()
        } else {
            rules.namespace.clone()
        };
        SocketIoWire {
            profile: config.profile.clone(),
            rules: rules.clone(),
            namespace,
            token: config.token.clone(),
            connect_within: config.connect_timeout,
            stage: Stage::Connected,
            ping_limit: None,
            max_payload: None,
            recovery: saved.map_or_else(Recovery::default, |mark| Recovery {
                session: Some(mark.session.clone()),
                last: Some(Arc::new(mark)),
            }),
            presented_session: false,
            early: Vec::new(),
            binary: None,
            awaiting_ack: HashMap::new(),
            next_ack_id: 0,
            last_meta: None,
        }
    }

    fn on_text(&mut self, text: &str, out: &mut Out) {
        let engine = match packet::engine_packet(text) {
            Ok(engine) => engine,
            Err(reason) => return malformed(text, reason, out),
        };
        match engine {
            EnginePacket::Open(json) => self.on_handshake(text, json, out),
            EnginePacket::Ping(payload) => out.send_text(format!("3{payload}")),
            EnginePacket::Message(inner) => match packet::socket_packet(inner) {
                Ok(packet) => self.on_packet(text, packet, out),
                Err(reason) => malformed(text, reason, out),
            },
            EnginePacket::Close => out.item(Inbound::End(Cause::ConnectionLost {
                detail: "the server closed the Engine.IO session".into(),
            })),
            EnginePacket::Pong | EnginePacket::Upgrade | EnginePacket::Noop => {}
        }
    }

    fn on_handshake(&mut self, text: &str, json: &str, out: &mut Out) {
        let handshake: Handshake = match serde_json::from_str(json) {
            Ok(handshake) => handshake,
            Err(e) => {
                return out.item(Inbound::End(Cause::Protocol {
                    detail: format!(
                        "an Engine.IO open packet that cannot be read ({e}): {}",
                        holdline_protocol::excerpt(text)
                    ),
                }));
            }
        };
        self.max_payload = handshake.max_payload;
        self.ping_limit = Some(Duration::from_millis(
            handshake
                .ping_interval
                .saturating_add(handshake.ping_timeout),
        ));
        self.send_connect(out);
    }

    /// CONNECT with the auth payload, the private session id and offset
    /// merged in first (the payload's own keys win, as in
    /// socket.io-client). The history gets a copy with the token and the
    /// private session id redacted.
    fn send_connect(&mut self, out: &mut Out) {
        let token = self
            .token
            .as_ref()
            .map(Token::expose)
            .filter(|t| !t.is_empty());
        let sent = self.connect_payload(token, self.recovery.session.as_deref());
        let shown = self.connect_payload(
            token.map(|_| REDACTED),
            self.recovery.session.as_ref().map(|_| REDACTED),
        );
        self.presented_session = self.recovery.session.is_some();
        let text_of = |payload: Option<Value>| payload.map(|p| p.to_string()).unwrap_or_default();
        out.item(Inbound::Sent {
            what: "login",
            feed: None,
            frame: packet::encode(Kind::Connect, &self.namespace, None, &text_of(shown)),
        });
        out.send_text(packet::encode(
            Kind::Connect,
            &self.namespace,
            None,
            &text_of(sent),
        ));
        if let Stage::Opening { deadline } = self.stage {
            self.stage = Stage::Connecting { deadline };
        }
    }

    fn connect_payload(&self, token: Option<&str>, session: Option<&str>) -> Option<Value> {
        let auth = match (&self.rules.connect, token) {
            (Some(template), _) => Some(template.render(&Vars {
                token,
                ..Vars::default()
            })),
            (None, Some(token)) => Some(serde_json::json!({ "token": token })),
            (None, None) => None,
        };
        let Some(session) = session else {
            return auth;
        };
        let mut merged = Map::new();
        merged.insert("pid".into(), session.into());
        if let Some(offset) = self.recovery.offset() {
            merged.insert("offset".into(), offset.into());
        }
        if let Some(Value::Object(auth)) = auth {
            merged.extend(auth);
        }
        Some(Value::Object(merged))
    }

    fn on_packet(&mut self, text: &str, packet: Packet<'_>, out: &mut Out) {
        if packet.namespace != self.namespace {
            // Another namespace's packets share the connection only when
            // another client multiplexes it; this one never does.
            return;
        }
        if packet.attachments > MAX_ATTACHMENTS {
            return malformed(
                text,
                format!(
                    "{} binary attachments; at most {MAX_ATTACHMENTS} are taken",
                    packet.attachments
                ),
                out,
            );
        }
        if packet.attachments > 0 {
            self.binary = Some(PartialBinary {
                kind: packet.kind,
                id: packet.id,
                data: packet.data.to_owned(),
                expected: packet.attachments,
                attachments: Vec::new(),
            });
            return;
        }
        match packet.kind {
            Kind::Connect => self.on_connected(text, packet.data, out),
            Kind::ConnectError => {
                let refused: Option<ConnectRefused> = serde_json::from_str(packet.data).ok();
                let detail = match refused {
                    Some(ConnectRefused {
                        message: Some(message),
                        data,
                    }) => match data {
                        Some(data) if !data.is_null() => format!("{message} ({data})"),
                        _ => message,
                    },
                    _ => holdline_protocol::excerpt(packet.data).to_owned(),
                };
                out.item(Inbound::End(Cause::LoginRefused {
                    detail: format!("CONNECT_ERROR: {detail}"),
                }));
            }
            Kind::Disconnect => {
                // The server ended the session on purpose: it keeps nothing
                // to recover, and socket.io-client does not reconnect.
                self.recovery = Recovery::default();
                out.item(Inbound::End(Cause::SessionEnded {
                    detail: "DISCONNECT from the server (io server disconnect)".into(),
                }));
            }
            Kind::Event | Kind::BinaryEvent => self.on_event(text, packet.id, packet.data, out),
            Kind::Ack | Kind::BinaryAck => self.on_ack(packet.id, out),
        }
    }

    fn on_binary(&mut self, bytes: &[u8], out: &mut Out) {
        let Some(partial) = &mut self.binary else {
            return out.item(Inbound::Malformed(MalformedFrame::binary(bytes)));
        };
        partial.attachments.push(bytes.to_vec());
        if partial.attachments.len() < partial.expected {
            return;
        }
        let Some(partial) = self.binary.take() else {
            return;
        };
        let data = match packet::fill_placeholders(&partial.data, &partial.attachments) {
            Ok(data) => data,
            Err(reason) => return malformed(&partial.data, reason, out),
        };
        match partial.kind {
            Kind::BinaryAck | Kind::Ack => self.on_ack(partial.id, out),
            _ => self.on_event(&data, partial.id, &data, out),
        }
    }

    fn on_connected(&mut self, text: &str, data: &str, out: &mut Out) {
        let answer: Connected = match serde_json::from_str(data) {
            Ok(answer) => answer,
            Err(e) => {
                return out.item(Inbound::End(Cause::Protocol {
                    detail: format!(
                        "a CONNECT answer that cannot be read ({e}): {}",
                        holdline_protocol::excerpt(text)
                    ),
                }));
            }
        };
        let recovered = self.presented_session
            && answer.pid.is_some()
            && answer.pid.as_deref() == self.recovery.session.as_deref();
        let continuity = if recovered {
            Continuity::Resumed
        } else if self.presented_session {
            Continuity::Lost(DiscontinuityReason::NotRecovered)
        } else {
            Continuity::ByFeed
        };
        if !recovered {
            self.recovery = Recovery {
                session: answer.pid.map(Arc::from),
                last: None,
            };
        }
        self.stage = Stage::Connected;
        out.item(Inbound::Ready(Ready {
            session: Some(answer.sid),
            heartbeat: self.ping_limit.map(Heartbeat::InProtocol),
            max_frame_bytes: self.max_payload,
            continuity,
        }));
        for event in self.early.drain(..) {
            out.item(Inbound::Event(event));
        }
    }

    fn on_event(&mut self, text: &str, ack_id: Option<u64>, data: &str, out: &mut Out) {
        let EventArgs {
            name,
            name_json,
            mut args,
        } = match packet::event_args(data) {
            Ok(args) => args,
            Err(reason) => return malformed(text, reason, out),
        };
        // The server appends the offset to each event it stores for
        // recovery (never to one that asks for an ack); socket.io-client
        // takes a trailing string as the offset whenever recovery is on.
        if let Some(session) = &self.recovery.session
            && ack_id.is_none()
            && let Some(offset) = args.last().and_then(|a| packet::as_string(a))
        {
            args.pop();
            self.recovery.last = Some(Arc::new(SessionMark {
                session: session.clone(),
                offset,
            }));
        }
        if let Some(id) = ack_id {
            // The server asked for an acknowledgement: it is given on
            // receipt, with no arguments.
            out.send_text(packet::encode(Kind::Ack, &self.namespace, Some(id), "[]"));
        }
        let event = match self.event(name, name_json, &args) {
            Ok(event) => event,
            Err(reason) => return malformed(text, reason, out),
        };
        match self.stage {
            Stage::Connected => out.item(Inbound::Event(event)),
            _ => self.early.push(event),
        }
    }

    /// `{"event": NAME}`, made once for a run of events of one name.
    fn meta_for(&mut self, name_json: &RawValue) -> Result<Box<RawValue>, String> {
        if let Some((name, meta)) = &self.last_meta
            && **name == *name_json.get()
        {
            return Ok(meta.clone());
        }
        let meta = RawValue::from_string(format!("{{\"event\":{}}}", name_json.get()))
            .map_err(|e| e.to_string())?;
        self.last_meta = Some((name_json.get().into(), meta.clone()));
        Ok(meta)
    }

    fn event(
        &mut self,
        name: String,
        name_json: &RawValue,
        args: &[&RawValue],
    ) -> Result<WireEvent, String> {
        let seq = match &self.rules.event_seq {
            None => None,
            Some(pointer) => {
                let seq = args
                    .first()
                    .and_then(|first| Message::read(first.get()).ok())
                    .and_then(|message| message.find(pointer).and_then(|f| f.as_u64()));
                match seq {
                    Some(seq) if seq <= MAX_SEQ => Some(seq),
                    _ => {
                        return Err(format!(
                            "event_seq {} in the first argument: missing or not an integer from 0 to 2^53-1",
                            pointer.as_str()
                        ));
                    }
                }
            }
        };
        // The arguments are slices of a frame serde already checked: they
        // are copied, never parsed again.
        let data = match args {
            [] => RawValue::NULL.to_owned(),
            [one] => (*one).to_owned(),
            many => serde_json::value::to_raw_value(many).map_err(|e| e.to_string())?,
        };
        let meta = self.meta_for(name_json)?;
        let session = self.recovery.last.clone();
        Ok(WireEvent {
            feed: Some(name),
            seq,
            epoch: None,
            ts: None,
            data,
            meta: Some(meta),
            session,
            receipt: None,
        })
    }

    fn on_ack(&mut self, id: Option<u64>, out: &mut Out) {
        if let Some(outbox_id) = id.and_then(|id| self.awaiting_ack.remove(&id)) {
            out.item(Inbound::Ack {
                id: outbox_id,
                seq: None,
            });
        }
    }

    /// `[name, args…]` rendered from an array template, as an EVENT.
    fn emit(&self, id: Option<u64>, name: Value, args: Value) -> String {
        let mut items = vec![name];
        if let Value::Array(args) = args {
            items.extend(args);
        }
        packet::encode(
            Kind::Event,
            &self.namespace,
            id,
            &Value::Array(items).to_string(),
        )
    }
}

impl Wire for SocketIoWire {
    fn upgrade(&self) -> Upgrade {
        Upgrade {
            path: Some(self.rules.path.clone()),
            query: vec![
                ("EIO".into(), "4".into()),
                ("transport".into(), "websocket".into()),
            ],
            ..Upgrade::offering_only(&self.profile, None)
        }
    }

    fn on_open(&mut self, _selected: Option<&str>, now: Instant, _out: &mut Out) {
        self.stage = Stage::Opening {
            deadline: now + self.connect_within,
        };
        self.presented_session = false;
        self.early.clear();
        self.binary = None;
        // Publishes not acknowledged are emitted again with fresh ack ids.
        self.awaiting_ack.clear();
    }

    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Out) {
        match frame {
            Frame::Text(text) => self.on_text(text, out),
            Frame::Binary(bytes) => self.on_binary(bytes, out),
        }
    }

    fn subscribe(&mut self, feed: &str, position: &Position, out: &mut Out) {
        let Some(template) = &self.rules.subscribe else {
            return;
        };
        if feed == EVERY_EVENT {
            return;
        }
        let token = self.token.as_ref().map(Token::expose);
        let vars = Vars {
            feed: Some(feed),
            since: position.since,
            epoch: position.epoch.as_deref(),
            ..Vars::default()
        };
        let render = |token: Option<&str>| match template.render(&Vars { token, ..vars }) {
            Value::Array(mut items) if !items.is_empty() => {
                let name = items.remove(0);
                self.emit(None, name, Value::Array(items))
            }
            other => self.emit(None, other, Value::Array(Vec::new())),
        };
        let text = render(token);
        let frame = if token.is_some() && template.uses(&crate::profile::Placeholder::Token) {
            render(Some(REDACTED))
        } else {
            text.clone()
        };
        out.item(Inbound::Sent {
            what: "subscribe",
            feed: Some(feed.to_owned()),
            frame,
        });
        out.send_text(text);
    }

    fn unsubscribe(&mut self, _feed: &str, _out: &mut Out) {
        // Socket.IO has no unsubscribe of its own; the feed's events are
        // no longer routed.
    }

    fn check_publish(&self, entry: &OutboxEntry) -> Result<(), EngineError> {
        let invalid = |message: String| EngineError::InvalidFeed {
            feed: entry.feed.chars().take(140).collect(),
            message,
        };
        super::check_feed_name(&entry.feed).map_err(invalid)?;
        if entry.feed == EVERY_EVENT {
            return Err(invalid(
                "* stands for every event received; publish to one event name".into(),
            ));
        }
        Ok(())
    }

    fn publish(&mut self, entry: &OutboxEntry, out: &mut Out) {
        let data: Value = serde_json::from_str(entry.data.get()).unwrap_or(Value::Null);
        let token = self.token.as_ref().map(Token::expose);
        let vars = Vars {
            token,
            feed: Some(&entry.feed),
            id: Some(&entry.id),
            data: Some(&data),
            ..Vars::default()
        };
        let ack_id = self.next_ack_id + 1;
        let text = self.emit(
            Some(ack_id),
            self.rules.publish_event.render(&vars),
            self.rules.publish_args.render(&vars),
        );
        if let Some(limit) = self.max_payload
            && text.len() as u64 > limit
        {
            return out.item(Inbound::PublishRefused {
                id: entry.id.clone(),
                code: "too_large".into(),
                message: format!(
                    "the packet is {} bytes; the server's maxPayload is {limit}",
                    text.len()
                ),
            });
        }
        self.next_ack_id = ack_id;
        self.awaiting_ack.insert(ack_id, entry.id.clone());
        out.send_text(text);
    }

    fn acks_publishes(&self) -> bool {
        true
    }

    fn deadline(&self) -> Option<Instant> {
        match self.stage {
            Stage::Opening { deadline } | Stage::Connecting { deadline } => Some(deadline),
            Stage::Connected => None,
        }
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Out) {
        let waiting_for = match self.stage {
            Stage::Opening { deadline } if deadline <= now => "Engine.IO open packet",
            Stage::Connecting { deadline } if deadline <= now => "Socket.IO CONNECT answer",
            _ => return,
        };
        self.stage = Stage::Connected;
        out.item(Inbound::End(Cause::NotReady {
            waiting_for: waiting_for.into(),
            waited_ms: self.connect_within.as_millis() as u64,
        }));
    }

    fn close_rule(&self, code: u16) -> CloseRule {
        // Socket.IO gives close codes no meaning of its own: its refusals
        // travel as packets. Only the profile's own codes count.
        super::profile_close_rule(&self.profile, code).unwrap_or(CloseRule::Backoff)
    }

    fn check_feed(&self, feed: &str, _subscribed: &[Arc<str>]) -> Result<(), String> {
        super::check_feed_name(feed)
    }

    fn feed_rule(&self, _feed: &str) -> FeedRule {
        // Socket.IO replays a session, never a feed by its seq.
        FeedRule::inferred(self.rules.event_seq.is_some(), false)
    }

    fn takes_every_feed(&self) -> bool {
        true
    }

    fn set_token(&mut self, token: Option<Token>) {
        self.token = token;
    }
}

fn malformed(text: &str, reason: impl Into<String>, out: &mut Out) {
    out.item(Inbound::Malformed(MalformedFrame::of_text(text, reason)));
}

#[cfg(test)]
mod tests;
