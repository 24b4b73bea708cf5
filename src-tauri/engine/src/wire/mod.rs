//! The seam between what every wire shares and what each one speaks.
//!
//! The actor owns the socket, the clock, backoff, liveness, triggers, the
//! sequencers, the outbox, cursors and history. A [`Wire`] owns one
//! protocol's framing and nothing else: frames and the time go in; frames
//! to send and neutral [`Inbound`] items come out (the shape of
//! `quinn-proto`). A new protocol is one more module here.

mod graphql_ws;
mod holdline;
mod json;
mod message;
mod mqtt;
mod raw;
mod socket_io;

use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::cause::Cause;
use crate::config::EngineConfig;
use crate::delivery::{DiscontinuityReason, RawFrame, Receipt, SessionMark};
use crate::error::EngineError;
use crate::policy::CloseRule;
use crate::profile::{Auth, Profile, Template, WireProfile};
use crate::secret::Token;
use crate::store::OutboxEntry;
use holdline_protocol::MalformedFrame;

/// What the upgrade request carries for this wire.
#[derive(Debug, Clone)]
pub(crate) struct Upgrade {
    pub subprotocols: Vec<String>,
    /// When the server selects none of them: dial again without the offer
    /// (tungstenite refuses such a reply) and tell the wire.
    pub retry_without_subprotocol: bool,
    pub auth: Auth,
    pub headers: Vec<(String, Template)>,
    /// The path dialed instead of the URL's (Socket.IO's engine path).
    pub path: Option<String>,
    /// Query parameters added to the URL's.
    pub query: Vec<(String, String)>,
}

impl Upgrade {
    /// What the profile's common keys ask of the upgrade, for a wire that
    /// offers the profile's own subprotocols.
    pub fn from_profile(profile: &Profile) -> Upgrade {
        Upgrade {
            subprotocols: profile.common.subprotocols.clone(),
            retry_without_subprotocol: true,
            auth: profile.common.auth.clone(),
            headers: profile.common.headers.clone(),
            path: None,
            query: Vec::new(),
        }
    }

    /// A wire with a subprotocol of its own (or none): offered alone, and
    /// a server that selects nothing is refused, not dialed again.
    pub fn offering_only(profile: &Profile, subprotocol: Option<&str>) -> Upgrade {
        Upgrade {
            subprotocols: subprotocol.into_iter().map(str::to_owned).collect(),
            retry_without_subprotocol: false,
            ..Upgrade::from_profile(profile)
        }
    }
}

/// A WebSocket data frame as the wire sees it.
pub(crate) enum Frame<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

/// Where a feed stands, for a (re-)subscribe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// The last delivered seq, `0` for "from the start", `None` for live.
    pub since: Option<u64>,
    pub epoch: Option<String>,
}

/// How one feed's events are numbered and how a hole is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedRule {
    pub numbering: Numbering,
    pub holes: HoleRule,
}

impl FeedRule {
    /// A feed whose holes the client settles itself (every wire but
    /// `holdline.v1`): contiguous when its events carry a seq, else
    /// unnumbered; `replay` when a re-subscribe can fill a hole.
    pub fn inferred(numbered: bool, replay: bool) -> FeedRule {
        FeedRule {
            numbering: if numbered {
                Numbering::Contiguous
            } else {
                Numbering::Unnumbered
            },
            holes: HoleRule::Infer { replay },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Numbering {
    /// seq goes up by one; a hole is missing events.
    Contiguous,
    /// seq only grows; late and repeated ones are dropped.
    Increasing,
    /// No seq: arrival order, a discontinuity marker after a reconnect.
    Unnumbered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoleRule {
    /// Re-subscribe from the cursor; only the server declares a gap
    /// (`holdline.v1`). Events before the server's answer are not placed.
    AskServer,
    /// Ask the server once (when it can replay), then infer the gap. A
    /// feed without a cursor starts at the first event it receives.
    Infer { replay: bool },
}

/// What the connection knows once it may subscribe.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ready {
    pub session: Option<String>,
    /// How liveness is kept; `None` keeps the configured heartbeat.
    pub heartbeat: Option<Heartbeat>,
    pub max_frame_bytes: Option<u64>,
    pub continuity: Continuity,
}

/// Who keeps the connection's liveness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Heartbeat {
    /// The client sends WebSocket Pings on this period; twice the period
    /// with no frame of any kind is death.
    ClientPings(Duration),
    /// The protocol keeps liveness itself (Engine.IO's pings, MQTT's
    /// PINGREQ): the client sends no WebSocket Pings, and silence longer
    /// than this is death.
    InProtocol(Duration),
}

/// What became of the previous connection's stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Continuity {
    /// Each feed keeps what its numbering keeps: numbered feeds resume from
    /// their cursors, unnumbered ones get a `reconnected` marker.
    #[default]
    ByFeed,
    /// The protocol recovered the session: nothing was lost.
    Resumed,
    /// The protocol says the session is gone: every feed gets a marker.
    Lost(DiscontinuityReason),
}

/// One event, before ordering.
#[derive(Debug, Clone)]
pub struct WireEvent {
    /// `None`: the one feed subscribed (a profile without `event.feed`).
    pub feed: Option<String>,
    pub seq: Option<u64>,
    pub epoch: Option<Arc<str>>,
    pub ts: Option<i64>,
    pub data: Box<RawValue>,
    pub meta: Option<Box<RawValue>>,
    /// The session's resume point once this event is handled.
    pub session: Option<Arc<SessionMark>>,
    /// What the wire wants back once the consumer committed this event.
    pub receipt: Option<Receipt>,
}

/// A neutral item decoded from the wire, for the actor to apply.
#[derive(Debug)]
pub(crate) enum Inbound {
    Ready(Ready),
    Event(WireEvent),
    /// The server's answer to a subscribe (`holdline.v1`'s resume model).
    Subscribed {
        feed: String,
        epoch: String,
        head: u64,
        replay_from: Option<u64>,
        gap: Option<(u64, u64)>,
    },
    Ack {
        id: String,
        seq: Option<u64>,
    },
    PublishRefused {
        id: String,
        code: String,
        message: String,
    },
    SubscribeRefused {
        feed: String,
        code: String,
        message: String,
        /// Asking again on the next connection would only repeat it.
        permanent: bool,
    },
    ServerError {
        id: Option<String>,
        code: String,
        message: String,
    },
    Malformed(MalformedFrame),
    Raw(RawFrame),
    /// A frame the wire sent that the history should show (login,
    /// subscriptions), with the token already redacted.
    Sent {
        what: &'static str,
        feed: Option<String>,
        frame: String,
    },
    /// The connection's session, to keep with the cursors now (MQTT's
    /// client id once the broker holds a session for it).
    SaveSession(SessionMark),
    /// The server ended one feed for good (a GraphQL `complete`).
    FeedEnded {
        feed: String,
        reason: String,
    },
    /// Something the history should say that is not an error.
    Notice {
        message: String,
        details: serde_json::Value,
    },
    /// The connection must end, for this reason.
    End(Cause),
}

/// Frames to send and items to apply, filled by one call into a wire.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub frames: Vec<Message>,
    pub items: Vec<Inbound>,
}

impl Out {
    pub fn send_text(&mut self, text: String) {
        self.frames.push(Message::text(text));
    }

    pub fn item(&mut self, item: Inbound) {
        self.items.push(item);
    }
}

/// One protocol's framing, without I/O.
pub(crate) trait Wire: Send {
    fn upgrade(&self) -> Upgrade;

    /// The upgrade succeeded; `selected` is the subprotocol the server chose.
    fn on_open(&mut self, selected: Option<&str>, now: Instant, out: &mut Out);

    fn on_frame(&mut self, frame: Frame<'_>, out: &mut Out);

    fn subscribe(&mut self, feed: &str, position: &Position, out: &mut Out);

    fn unsubscribe(&mut self, feed: &str, out: &mut Out);

    /// The consumer committed an event that carried `receipt` (MQTT's
    /// PUBACK for a QoS 1 message is sent only now).
    fn on_committed(&mut self, _receipt: Receipt, _out: &mut Out) {}

    /// Refuses a publish this wire cannot carry, before it is queued.
    fn check_publish(&self, entry: &OutboxEntry) -> Result<(), EngineError>;

    fn publish(&mut self, entry: &OutboxEntry, out: &mut Out);

    /// Whether the server acknowledges publishes; without acks a publish is
    /// done once written and the outbox does not send it again.
    fn acks_publishes(&self) -> bool;

    /// The wire's own timer (login wait, application keepalive), if armed.
    fn deadline(&self) -> Option<Instant>;

    fn on_deadline(&mut self, now: Instant, out: &mut Out);

    /// What a close code means on this wire.
    fn close_rule(&self, code: u16) -> CloseRule;

    /// Refuses a feed name this wire cannot subscribe to.
    fn check_feed(&self, feed: &str, subscribed: &[Arc<str>]) -> Result<(), String>;

    fn feed_rule(&self, feed: &str) -> FeedRule;

    /// Whether subscribing `*` takes every event under its own feed name.
    fn takes_every_feed(&self) -> bool {
        false
    }

    fn set_token(&mut self, token: Option<Token>);

    /// Whether the connection runs in raw mode (frames shown as they come).
    fn is_raw(&self) -> bool {
        false
    }
}

/// The wire a profile names; the profile was judged when it was loaded.
/// `saved_session` is the resume point the consumer last committed, for
/// a wire that resumes whole sessions.
pub(crate) fn for_profile(
    config: &EngineConfig,
    saved_session: Option<SessionMark>,
) -> Box<dyn Wire> {
    let profile: &Profile = &config.profile;
    let token = config.token.clone();
    match &profile.wire {
        WireProfile::Holdline => Box::new(holdline::HoldlineWire::new(config)),
        WireProfile::Raw => Box::new(raw::RawWire::new(profile)),
        WireProfile::Json(json) => Box::new(json::JsonWire::new(profile, json, token)),
        WireProfile::SocketIo(rules) => {
            Box::new(socket_io::SocketIoWire::new(config, rules, saved_session))
        }
        WireProfile::Mqtt(rules) => Box::new(mqtt::MqttWire::new(config, rules, saved_session)),
        WireProfile::GraphqlWs(rules) => Box::new(graphql_ws::GraphqlWire::new(config, rules)),
    }
}

/// What the MQTT framer and decoder make of `pieces` arriving one after
/// another: each packet's bytes and its decoding (for the fuzz target).
#[doc(hidden)]
pub fn mqtt_packets(version5: bool, pieces: &[&[u8]]) -> Vec<(Vec<u8>, String)> {
    mqtt::decode_pieces(version5, pieces)
}

/// The longest feed name a profile's wire takes.
const MAX_FEED_CHARS: usize = 256;

/// A feed name for the wires that name feeds freely (any characters but
/// controls): event names, topics, operation names.
pub(crate) fn check_feed_name(feed: &str) -> Result<(), String> {
    if feed.is_empty() || feed.chars().count() > MAX_FEED_CHARS {
        return Err(format!("a feed name is 1 to {MAX_FEED_CHARS} characters"));
    }
    if feed.chars().any(char::is_control) {
        return Err("a feed name has no control characters".into());
    }
    Ok(())
}

/// A publish's feed as `check_feed_name` takes it, and the profile's
/// publish rule (`what` names it in the refusal) present.
pub(crate) fn check_profile_publish(
    entry: &OutboxEntry,
    has_publish: bool,
    what: &str,
) -> Result<(), EngineError> {
    check_feed_name(&entry.feed).map_err(|message| EngineError::InvalidFeed {
        feed: entry.feed.chars().take(140).collect(),
        message,
    })?;
    if !has_publish {
        return Err(EngineError::InvalidProfile {
            key: "publish".into(),
            message: format!("this profile has no publish {what}"),
        });
    }
    Ok(())
}

/// Close codes a profile adds (`close.login`, `close.stop`) before the
/// wire's own table.
pub(crate) fn profile_close_rule(profile: &Profile, code: u16) -> Option<CloseRule> {
    if profile.common.close_login.contains(&code) {
        Some(CloseRule::NeedsLogin)
    } else if profile.common.close_stop.contains(&code) {
        Some(CloseRule::Stop)
    } else {
        None
    }
}

/// Request ids unique within one engine: a random prefix per engine and a
/// counter, valid under `holdline.v1`'s id rule.
#[derive(Debug)]
pub(crate) struct RequestIds {
    prefix: String,
    counter: u64,
}

impl RequestIds {
    pub fn new() -> Self {
        RequestIds {
            prefix: format!("{:08x}", fastrand::u32(..)),
            counter: 0,
        }
    }

    pub fn next(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("{kind}-{}-{}", self.prefix, self.counter)
    }
}
