//! Frames of protocol sections 3 and 4, as Rust types.
//!
//! `data` stays raw JSON text ([`RawValue`]) end to end: neither side needs to
//! look inside it, and not building a tree for it is most of the hot path.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A frame the server sends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Welcome(Welcome),
    Subscribed(Subscribed),
    Unsubscribed(Unsubscribed),
    Event(Event),
    Ack(Ack),
    Pong(Pong),
    Error(ErrorFrame),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Welcome {
    pub session: String,
    pub heartbeat_ms: u64,
    pub max_frame_bytes: u64,
    pub server: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscribed {
    pub id: String,
    pub feed: String,
    pub epoch: String,
    pub head: u64,
    pub replay_from: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<GapRange>,
}

/// Events `from..=to` that the server no longer has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapRange {
    pub from: u64,
    pub to: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unsubscribed {
    pub id: String,
    pub feed: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub feed: String,
    pub seq: u64,
    pub data: Box<RawValue>,
    pub ts: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack {
    pub id: String,
    pub feed: String,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pong {
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorFrame {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub code: String,
    pub message: String,
}

/// The error codes of section 3.
pub mod error_code {
    pub const BAD_REQUEST: &str = "bad_request";
    pub const INVALID_FEED: &str = "invalid_feed";
    pub const NOT_SUBSCRIBED: &str = "not_subscribed";
    pub const FORBIDDEN: &str = "forbidden";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const TOO_LARGE: &str = "too_large";
    pub const INTERNAL: &str = "internal";
}

/// A frame the client sends.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe),
    Publish(Publish),
    Ping(Ping),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscribe {
    pub id: String,
    pub feed: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unsubscribe {
    pub id: String,
    pub feed: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Publish {
    pub id: String,
    pub feed: String,
    pub data: Box<RawValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ping {
    pub id: String,
}

impl ServerFrame {
    /// The frame as the JSON text of one WebSocket text frame.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every key is a string and
        // `data` is already valid JSON.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

impl ClientFrame {
    pub fn id(&self) -> &str {
        match self {
            ClientFrame::Subscribe(f) => &f.id,
            ClientFrame::Unsubscribe(f) => &f.id,
            ClientFrame::Publish(f) => &f.id,
            ClientFrame::Ping(f) => &f.id,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}
