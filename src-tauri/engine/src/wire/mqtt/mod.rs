//! `mqtt` (profiles §5): MQTT 3.1.1 and 5 over WebSocket, with a
//! persistent session.
//!
//! Feeds are topic filters. The broker keeps the session (subscriptions
//! and QoS 1 messages queued while the client is away) under a client id
//! that is kept with the cursors. A QoS 1 message is acknowledged only
//! when the consumer committed it (`Receipt` → `on_committed`), so a crash
//! before that makes the broker send it again. Framing and both versions'
//! packets are in `codec.rs`.

mod codec;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use holdline_protocol::{MAX_SEQ, MalformedFrame};
use serde_json::json;
use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use self::codec::{Framer, Incoming, Login, Message, QoS2Step, Version};
use super::message::Message as JsonMessage;
use super::{
    Continuity, FeedRule, Frame, Heartbeat, Inbound, Out, Position, Ready, Upgrade, Wire, WireEvent,
};
use crate::cause::Cause;
use crate::config::EngineConfig;
use crate::delivery::{DiscontinuityReason, Receipt, SessionMark};
use crate::error::EngineError;
use crate::policy::CloseRule;
use crate::profile::{MqttProfile, Profile, REDACTED};
use crate::secret::Token;
use crate::store::OutboxEntry;

const SUBPROTOCOL: &str = "mqtt";

pub(crate) struct MqttWire {
    profile: Profile,
    rules: MqttProfile,
    version: Version,
    token: Option<Token>,
    client_id: String,
    /// Publishes only (the CLI's `publish`): keeps no session of its own.
    publisher: bool,
    /// The broker held a session for this client id before: in this
    /// process, or in a run before it on the same state.
    had_session: bool,
    session_saved: bool,
    connect_within: Duration,
    keepalive: Duration,
    stage: Stage,
    /// Counts connections, so a receipt from an earlier one is not
    /// acknowledged on this one (the broker sends that message again).
    connection: u64,
    framer: Framer,
    /// Subscribed topic filters in the order they were subscribed: an
    /// event's feed is the first that matches its topic.
    filters: Vec<String>,
    next_packet_id: u16,
    subscribing: HashMap<u16, String>,
    /// Packet ids of publishes in flight, to their outbox ids.
    publishing: HashMap<u16, String>,
    /// Publishes sent on an earlier connection: sent again with DUP and
    /// their packet id.
    sent_before: HashMap<String, u16>,
    max_packet_bytes: Option<u32>,
    last_meta: Option<LastMeta>,
}

/// The last message's topic, QoS and retain flag, and the `meta` made for
/// them.
struct LastMeta {
    topic: Arc<str>,
    qos: u8,
    retain: bool,
    meta: Box<RawValue>,
}

#[derive(Debug, Clone, Copy)]
enum Stage {
    AwaitingConnack { deadline: Instant },
    Connected { ping_at: Instant },
    Closed,
}

impl MqttWire {
    pub fn new(config: &EngineConfig, rules: &MqttProfile, saved: Option<SessionMark>) -> Self {
        let saved_id = saved.map(|mark| mark.session.to_string());
        let (base_id, had_session) = match (&rules.client_id, saved_id) {
            (Some(chosen), saved) => (chosen.clone(), saved.as_deref() == Some(chosen.as_str())),
            (None, Some(saved)) => (saved, true),
            (None, None) => (generated_client_id(), false),
        };
        let client_id = if config.publisher {
            format!("{base_id}-pub")
        } else {
            base_id
        };
        MqttWire {
            profile: config.profile.clone(),
            version: if rules.version == "5" {
                Version::V5
            } else {
                Version::V311
            },
            rules: rules.clone(),
            token: config.token.clone(),
            client_id,
            publisher: config.publisher,
            had_session: had_session && !config.publisher,
            session_saved: had_session,
            connect_within: config.connect_timeout,
            keepalive: Duration::from_secs(rules.keepalive_s.max(1)),
            stage: Stage::Closed,
            connection: 0,
            framer: Framer::new(config.max_incoming_frame_bytes),
            filters: Vec::new(),
            next_packet_id: 0,
            subscribing: HashMap::new(),
            publishing: HashMap::new(),
            sent_before: HashMap::new(),
            max_packet_bytes: None,
            last_meta: None,
        }
    }

    fn send(&self, packet: Result<Vec<u8>, String>, out: &mut Out) -> Result<(), String> {
        out.frames.push(WsMessage::binary(packet?));
        Ok(())
    }

    /// A packet id none of this client's packets in flight uses.
    fn packet_id(&mut self) -> u16 {
        loop {
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            let id = self.next_packet_id;
            let in_use = self.subscribing.contains_key(&id)
                || self.publishing.contains_key(&id)
                || self.sent_before.values().any(|&sent| sent == id);
            if !in_use {
                return id;
            }
        }
    }

    fn login_record(&self) -> String {
        format!(
            "CONNECT version={} client_id={} username={:?} password={} clean_session=false keepalive={}s{}",
            self.rules.version,
            self.client_id,
            self.rules.username.as_deref().unwrap_or(""),
            if self.password().is_some() {
                REDACTED
            } else {
                "(none)"
            },
            self.keepalive.as_secs(),
            match self.version {
                Version::V5 => format!(" session_expiry={}s", self.rules.session_expiry_s),
                Version::V311 => String::new(),
            }
        )
    }

    fn password(&self) -> Option<&str> {
        self.token
            .as_ref()
            .map(Token::expose)
            .filter(|t| !t.is_empty())
    }

    fn on_bytes(&mut self, bytes: &[u8], out: &mut Out) {
        let mut packets = Vec::new();
        let framed = self.framer.feed(bytes, |packet| {
            packets.push(codec::decode(self.version, packet).map_err(|reason| {
                let mut malformed = MalformedFrame::binary(packet);
                malformed.reason = format!("an MQTT packet that cannot be read: {reason}");
                malformed
            }));
        });
        for packet in packets {
            match packet {
                Ok(incoming) => self.on_packet(incoming, out),
                Err(malformed) => out.item(Inbound::Malformed(malformed)),
            }
        }
        if let Err(detail) = framed {
            self.framer.clear();
            out.item(Inbound::End(Cause::Protocol {
                detail: format!("MQTT framing: {detail}"),
            }));
        }
    }

    fn on_packet(&mut self, incoming: Incoming, out: &mut Out) {
        match incoming {
            Incoming::Connack {
                session_present,
                code,
                reason,
                max_packet_bytes,
            } => self.on_connack(session_present, code, reason, max_packet_bytes, out),
            Incoming::Publish(message) => self.on_publish(message, out),
            Incoming::Puback { pid, code, reason } => {
                let Some(id) = self.publishing.remove(&pid) else {
                    return;
                };
                self.sent_before.remove(&id);
                if code < 0x80 {
                    out.item(Inbound::Ack { id, seq: None });
                } else {
                    out.item(Inbound::PublishRefused {
                        id,
                        code: format!("{code:#04x}"),
                        message: reason.unwrap_or_else(|| reason_name(code).into()),
                    });
                }
            }
            Incoming::Suback { pid, granted } => {
                let Some(feed) = self.subscribing.remove(&pid) else {
                    return;
                };
                match granted.first() {
                    Some(Err(code)) => out.item(Inbound::SubscribeRefused {
                        feed,
                        code: format!("{code:#04x}"),
                        message: reason_name(*code).into(),
                        // Not authorised or not a valid filter: asking
                        // again would only repeat it.
                        permanent: matches!(code, 0x87 | 0x8f),
                    }),
                    Some(Ok(level)) => out.item(Inbound::Notice {
                        message: if *level < self.rules.qos {
                            format!(
                                "the broker granted QoS {level} for {feed} (asked for {})",
                                self.rules.qos
                            )
                        } else {
                            format!("the broker confirmed {feed} at QoS {level}")
                        },
                        details: json!({ "feed": feed, "granted_qos": level, "asked_qos": self.rules.qos }),
                    }),
                    _ => {}
                }
            }
            Incoming::QoS2Step { step, pid } => {
                // This client subscribes and publishes at QoS 0 or 1 only;
                // a broker that goes on at QoS 2 anyway is answered so it
                // does not hold the message for ever.
                let answer = match step {
                    QoS2Step::Pubrel => Some(codec::pubcomp(pid)),
                    QoS2Step::Pubrec => Some(codec::pubrel(pid)),
                    QoS2Step::Pubcomp => None,
                };
                if let Some(answer) = answer {
                    out.frames.push(WsMessage::binary(answer));
                }
            }
            Incoming::Unsuback | Incoming::Pingresp => {}
            Incoming::Disconnect { code, reason } => {
                let detail = format!(
                    "DISCONNECT {code:#04x} {}{}",
                    reason_name(code),
                    reason.map(|r| format!(": {r}")).unwrap_or_default()
                );
                self.stage = Stage::Closed;
                out.item(Inbound::End(match code {
                    // Another client took this client id: taking it back
                    // would only start a tug of war.
                    0x8e => Cause::SessionEnded { detail },
                    0x86 | 0x87 => Cause::LoginRefused { detail },
                    _ => Cause::Refused { detail },
                }));
            }
            Incoming::Unexpected(kind) => out.item(Inbound::Malformed(MalformedFrame {
                reason: format!("a {kind} packet, which a broker never sends a client"),
                excerpt: String::new(),
                binary: true,
                id: None,
            })),
        }
    }

    fn on_connack(
        &mut self,
        session_present: bool,
        code: u8,
        reason: Option<String>,
        max_packet_bytes: Option<u32>,
        out: &mut Out,
    ) {
        if code != 0 {
            let detail = format!(
                "CONNACK {code:#04x} {}{}",
                connack_name(self.version, code),
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            );
            let login = match self.version {
                Version::V311 => matches!(code, 4 | 5),
                Version::V5 => matches!(code, 0x86 | 0x87),
            };
            self.stage = Stage::Closed;
            return out.item(Inbound::End(if login {
                Cause::LoginRefused { detail }
            } else {
                Cause::Refused { detail }
            }));
        }
        let continuity = if session_present {
            Continuity::Resumed
        } else if self.had_session {
            Continuity::Lost(DiscontinuityReason::SessionLost)
        } else {
            Continuity::ByFeed
        };
        self.max_packet_bytes = max_packet_bytes;
        self.stage = Stage::Connected {
            ping_at: Instant::now() + self.keepalive,
        };
        if !self.publisher {
            self.had_session = true;
            if !self.session_saved {
                self.session_saved = true;
                out.item(Inbound::SaveSession(SessionMark {
                    session: Arc::from(self.client_id.as_str()),
                    offset: String::new(),
                }));
            }
        }
        out.item(Inbound::Ready(Ready {
            session: Some(self.client_id.clone()),
            heartbeat: Some(Heartbeat::InProtocol(self.keepalive * 3 / 2)),
            max_frame_bytes: max_packet_bytes.map(u64::from),
            continuity,
        }));
    }

    fn on_publish(&mut self, message: Message, out: &mut Out) {
        let receipt = message.pid.filter(|_| message.qos >= 1).map(|id| Receipt {
            connection: self.connection,
            id,
        });
        if message.qos == 2
            && let Some(pid) = message.pid
        {
            // Received (PUBREC) at once: see `QoS2Step`.
            out.frames.push(WsMessage::binary(codec::pubrec(pid)));
        }
        let Some(feed) = self
            .filters
            .iter()
            .find(|filter| codec::topic_matches(filter, &message.topic))
            .cloned()
        else {
            // A subscription the broker kept from an earlier session that
            // is no feed now: acknowledged, so it is not sent again.
            if let Some(receipt) = receipt {
                self.acknowledge(receipt, out);
            }
            return;
        };
        match self.event(feed, &message) {
            Ok(mut event) => {
                if message.qos == 1 {
                    event.receipt = receipt;
                }
                out.item(Inbound::Event(event));
            }
            Err(reason) => {
                let mut malformed = MalformedFrame::binary(&message.payload);
                if let Ok(text) = std::str::from_utf8(&message.payload) {
                    malformed = MalformedFrame::of_text(text, reason.clone());
                }
                malformed.reason = format!("topic {}: {reason}", message.topic);
                out.item(Inbound::Malformed(malformed));
                // Read once or a thousand times, it stays unreadable.
                if let Some(receipt) = receipt {
                    self.acknowledge(receipt, out);
                }
            }
        }
    }

    /// `{"topic": T, "qos": Q, "retain": R}`, made once for a run of
    /// messages alike.
    fn meta_for(&mut self, message: &Message) -> Result<Box<RawValue>, String> {
        if let Some(last) = &self.last_meta
            && last.topic == message.topic
            && (last.qos, last.retain) == (message.qos, message.retain)
        {
            return Ok(last.meta.clone());
        }
        let meta = serde_json::value::to_raw_value(&json!({
            "topic": &*message.topic,
            "qos": message.qos,
            "retain": message.retain,
        }))
        .map_err(|e| e.to_string())?;
        self.last_meta = Some(LastMeta {
            topic: message.topic.clone(),
            qos: message.qos,
            retain: message.retain,
            meta: meta.clone(),
        });
        Ok(meta)
    }

    fn event(&mut self, feed: String, message: &Message) -> Result<WireEvent, String> {
        let text = std::str::from_utf8(&message.payload).ok();
        let json = text.and_then(|t| serde_json::from_str::<&RawValue>(t).ok());
        let seq = match &self.rules.event_seq {
            None => None,
            Some(pointer) => {
                let seq = json
                    .and_then(|raw| JsonMessage::read(raw.get()).ok())
                    .and_then(|m| m.find(pointer).and_then(|f| f.as_u64()));
                match seq {
                    Some(seq) if seq <= MAX_SEQ => Some(seq),
                    _ => {
                        return Err(format!(
                            "event_seq {}: the payload has no integer from 0 to 2^53-1 there",
                            pointer.as_str()
                        ));
                    }
                }
            }
        };
        let data = match (json, text) {
            (Some(raw), _) => raw.to_owned(),
            (None, Some(text)) => serde_json::value::to_raw_value(&json!({ "text": text }))
                .map_err(|e| e.to_string())?,
            (None, None) => {
                serde_json::value::to_raw_value(&json!({ "hex": hex::encode(&message.payload) }))
                    .map_err(|e| e.to_string())?
            }
        };
        let meta = self.meta_for(message)?;
        Ok(WireEvent {
            feed: Some(feed),
            seq,
            epoch: None,
            ts: None,
            data,
            meta: Some(meta),
            session: None,
            receipt: None,
        })
    }

    fn acknowledge(&self, receipt: Receipt, out: &mut Out) {
        if receipt.connection != self.connection || !matches!(self.stage, Stage::Connected { .. }) {
            // That connection is gone: the broker sends the message again.
            return;
        }
        if let Err(err) = self.send(codec::puback(self.version, receipt.id), out) {
            tracing::warn!(%err, "PUBACK not encoded");
        }
    }
}

/// Every packet found in `pieces` fed in order, with its decoding or the
/// error, ending at the first framing error.
pub(crate) fn decode_pieces(version5: bool, pieces: &[&[u8]]) -> Vec<(Vec<u8>, String)> {
    let version = if version5 { Version::V5 } else { Version::V311 };
    let mut framer = Framer::new(1 << 20);
    let mut found = Vec::new();
    for piece in pieces {
        let framed = framer.feed(piece, |packet| {
            let decoded = format!("{:?}", codec::decode(version, packet));
            found.push((packet.to_vec(), decoded));
        });
        if let Err(error) = framed {
            found.push((Vec::new(), error));
            return found;
        }
    }
    found
}

/// 22 characters from the set MQTT 3.1.1 says every broker accepts.
fn generated_client_id() -> String {
    format!("holdline{:014x}", fastrand::u64(..) >> 8)
}

fn connack_name(version: Version, code: u8) -> &'static str {
    match (version, code) {
        (Version::V311, 1) => "unacceptable protocol version",
        (Version::V311, 2) => "identifier rejected",
        (Version::V311, 3) => "server unavailable",
        (Version::V311, 4) => "bad user name or password",
        (Version::V311, 5) => "not authorized",
        (Version::V311, _) => "refused",
        (Version::V5, code) => reason_name(code),
    }
}

/// MQTT 5's reason codes (2.4), as the history shows them.
fn reason_name(code: u8) -> &'static str {
    match code {
        0x00 => "success",
        0x04 => "disconnect with will message",
        0x10 => "no matching subscribers",
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x83 => "implementation specific error",
        0x84 => "unsupported protocol version",
        0x85 => "client identifier not valid",
        0x86 => "bad user name or password",
        0x87 => "not authorized",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8a => "banned",
        0x8b => "server shutting down",
        0x8c => "bad authentication method",
        0x8d => "keep alive timeout",
        0x8e => "session taken over",
        0x8f => "topic filter invalid",
        0x90 => "topic name invalid",
        0x91 => "packet identifier in use",
        0x93 => "receive maximum exceeded",
        0x94 => "topic alias invalid",
        0x95 => "packet too large",
        0x96 => "message rate too high",
        0x97 => "quota exceeded",
        0x98 => "administrative action",
        0x99 => "payload format invalid",
        0x9a => "retain not supported",
        0x9b => "QoS not supported",
        0x9c => "use another server",
        0x9d => "server moved",
        0x9e => "shared subscriptions not supported",
        0x9f => "connection rate exceeded",
        0xa0 => "maximum connect time",
        0xa1 => "subscription identifiers not supported",
        0xa2 => "wildcard subscriptions not supported",
        _ => "unknown reason",
    }
}

impl Wire for MqttWire {
    fn upgrade(&self) -> Upgrade {
        Upgrade::offering_only(&self.profile, Some(SUBPROTOCOL))
    }

    fn on_open(&mut self, _selected: Option<&str>, now: Instant, out: &mut Out) {
        self.connection += 1;
        self.framer.clear();
        self.filters.clear();
        self.subscribing.clear();
        // What was in flight goes again with DUP and the same packet id.
        for (pid, id) in self.publishing.drain() {
            self.sent_before.insert(id, pid);
        }
        self.stage = Stage::AwaitingConnack {
            deadline: now + self.connect_within,
        };
        let login = Login {
            client_id: &self.client_id,
            username: self.rules.username.as_deref().unwrap_or(""),
            password: self.password(),
            keepalive_s: u16::try_from(self.keepalive.as_secs()).unwrap_or(u16::MAX),
            session_expiry_s: u32::try_from(self.rules.session_expiry_s).unwrap_or(u32::MAX),
        };
        out.item(Inbound::Sent {
            what: "login",
            feed: None,
            frame: self.login_record(),
        });
        if let Err(detail) = self.send(codec::connect(self.version, &login), out) {
            out.item(Inbound::End(Cause::Protocol {
                detail: format!("CONNECT not encoded: {detail}"),
            }));
        }
    }

    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Out) {
        match frame {
            Frame::Binary(bytes) => self.on_bytes(bytes, out),
            Frame::Text(text) => out.item(Inbound::Malformed(MalformedFrame::of_text(
                text,
                "a text frame; MQTT travels in binary frames",
            ))),
        }
    }

    fn on_committed(&mut self, receipt: Receipt, out: &mut Out) {
        self.acknowledge(receipt, out);
    }

    fn subscribe(&mut self, feed: &str, _position: &Position, out: &mut Out) {
        if !self.filters.iter().any(|f| f == feed) {
            self.filters.push(feed.to_owned());
        }
        let id = self.packet_id();
        self.subscribing.insert(id, feed.to_owned());
        let sent = self.send(
            codec::subscribe(self.version, id, feed, self.rules.qos),
            out,
        );
        match sent {
            Ok(()) => out.item(Inbound::Sent {
                what: "subscribe",
                feed: Some(feed.to_owned()),
                frame: format!("SUBSCRIBE {feed} qos={}", self.rules.qos),
            }),
            Err(message) => out.item(Inbound::SubscribeRefused {
                feed: feed.to_owned(),
                code: "invalid_filter".into(),
                message,
                permanent: true,
            }),
        }
    }

    fn unsubscribe(&mut self, feed: &str, out: &mut Out) {
        self.filters.retain(|f| f != feed);
        let id = self.packet_id();
        if self
            .send(codec::unsubscribe(self.version, id, feed), out)
            .is_ok()
        {
            out.item(Inbound::Sent {
                what: "unsubscribe",
                feed: Some(feed.to_owned()),
                frame: format!("UNSUBSCRIBE {feed}"),
            });
        }
    }

    fn check_publish(&self, entry: &OutboxEntry) -> Result<(), EngineError> {
        codec::check_topic_name(&entry.feed).map_err(|message| EngineError::InvalidFeed {
            feed: entry.feed.chars().take(140).collect(),
            message,
        })
    }

    fn publish(&mut self, entry: &OutboxEntry, out: &mut Out) {
        let (id, dup) = match self.sent_before.get(&entry.id) {
            Some(&id) => (id, true),
            None => (self.packet_id(), false),
        };
        let packet = codec::publish(
            self.version,
            id,
            &entry.feed,
            entry.data.get().as_bytes(),
            dup,
        );
        match packet {
            Ok(packet)
                if self
                    .max_packet_bytes
                    .is_some_and(|max| packet.len() as u64 > u64::from(max)) =>
            {
                out.item(Inbound::PublishRefused {
                    id: entry.id.clone(),
                    code: "too_large".into(),
                    message: format!(
                        "the PUBLISH is {} bytes; the broker's maximum packet size is {}",
                        packet.len(),
                        self.max_packet_bytes.unwrap_or_default()
                    ),
                });
            }
            Ok(packet) => {
                self.publishing.insert(id, entry.id.clone());
                out.frames.push(WsMessage::binary(packet));
            }
            Err(message) => out.item(Inbound::PublishRefused {
                id: entry.id.clone(),
                code: "invalid_input".into(),
                message,
            }),
        }
    }

    fn acks_publishes(&self) -> bool {
        true
    }

    fn deadline(&self) -> Option<Instant> {
        match self.stage {
            Stage::AwaitingConnack { deadline } => Some(deadline),
            Stage::Connected { ping_at } => Some(ping_at),
            Stage::Closed => None,
        }
    }

    fn on_deadline(&mut self, now: Instant, out: &mut Out) {
        match self.stage {
            Stage::AwaitingConnack { deadline } if deadline <= now => {
                self.stage = Stage::Closed;
                out.item(Inbound::End(Cause::NotReady {
                    waiting_for: "CONNACK".into(),
                    waited_ms: self.connect_within.as_millis() as u64,
                }));
            }
            Stage::Connected { ping_at } if ping_at <= now => {
                self.stage = Stage::Connected {
                    ping_at: now + self.keepalive,
                };
                out.frames.push(WsMessage::binary(codec::pingreq()));
            }
            _ => {}
        }
    }

    fn close_rule(&self, code: u16) -> CloseRule {
        // MQTT's refusals travel as CONNACK and DISCONNECT; close codes say
        // nothing beyond the profile's own table.
        super::profile_close_rule(&self.profile, code).unwrap_or(CloseRule::Backoff)
    }

    fn check_feed(&self, feed: &str, _subscribed: &[Arc<str>]) -> Result<(), String> {
        codec::check_topic_filter(feed)
    }

    fn feed_rule(&self, _feed: &str) -> FeedRule {
        // A broker keeps no log to replay from.
        FeedRule::inferred(self.rules.event_seq.is_some(), false)
    }

    fn set_token(&mut self, token: Option<Token>) {
        self.token = token;
    }
}
