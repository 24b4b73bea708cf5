//! What the engine tells observers: its state, its history, publish progress.

use serde::Serialize;
use serde_json::Value;

use crate::cause::Cause;
use crate::sequencer::FeedStats;

/// The connection's state, as data (the UI renders it, tests wait on it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    Idle,
    Connecting {
        attempt: u32,
    },
    Open {
        session: Option<String>,
        raw: bool,
    },
    Backoff {
        attempt: u32,
        delay_ms: u64,
        /// Wall-clock time of the next attempt, ms since the Unix epoch.
        retry_at_ms: i64,
        cause: Cause,
        /// The cause in words, as the history says it: a UI shows this and
        /// branches only on `cause.kind`.
        reason: String,
    },
    NeedsLogin {
        reason: String,
    },
    Stopped {
        reason: String,
    },
}

impl ConnectionState {
    pub fn name(&self) -> &'static str {
        match self {
            ConnectionState::Idle => "idle",
            ConnectionState::Connecting { .. } => "connecting",
            ConnectionState::Open { .. } => "open",
            ConnectionState::Backoff { .. } => "backoff",
            ConnectionState::NeedsLogin { .. } => "needs_login",
            ConnectionState::Stopped { .. } => "stopped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryKind {
    Attempt,
    Connected,
    AttemptFailed,
    Disconnected,
    Backoff,
    State,
    Subscribed,
    SubscribeFailed,
    Gap,
    Reset,
    Malformed,
    Wake,
    NetworkChange,
    Publish,
    Storage,
    Protocol,
    /// The connection may subscribe: what was re-sent and whether
    /// continuity held.
    Ready,
    /// A frame the client sent (login, subscriptions), token redacted.
    Sent,
    Discontinuity,
    /// A token source refreshed the token, or could not keep what it got.
    Login,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// One line of the connection history: what happened, and why.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    /// Wall-clock time, ms since the Unix epoch.
    pub at_ms: i64,
    pub kind: HistoryKind,
    pub level: Level,
    pub message: String,
    /// Structured particulars: cause, close code, timings, attempt, bytes.
    pub details: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PublishStatus {
    Queued,
    Sent,
    /// `seq` is `None` where the wire's ack carries none.
    Acked {
        seq: Option<u64>,
    },
    Failed {
        code: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishUpdate {
    pub id: String,
    pub feed: String,
    #[serde(flatten)]
    pub status: PublishStatus,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EngineEvent {
    State(ConnectionState),
    History(HistoryEntry),
    Publish(PublishUpdate),
}

/// Everything an observer needs to rebuild its view.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub url: String,
    /// The profile's protocol (`holdline.v1`, `json`, …).
    pub protocol: String,
    pub state: ConnectionState,
    pub session: Option<String>,
    pub raw: bool,
    pub heartbeat_ms: u64,
    pub rtt_ms: Option<f64>,
    pub max_frame_bytes: Option<u64>,
    pub feeds: Vec<FeedSnapshot>,
    pub outbox: Vec<OutboxItem>,
    pub malformed_frames: u64,
    /// Events for feeds not subscribed to, counted and dropped.
    pub unrouted_events: u64,
    /// When the token from a token source expires, ms since the Unix epoch.
    pub token_expires_at_ms: Option<i64>,
    /// When a token source last refreshed the token.
    pub token_refreshed_at_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedSnapshot {
    pub feed: String,
    pub epoch: Option<String>,
    /// `None` until the feed has a position (or for a feed without seq).
    pub last_seq: Option<u64>,
    pub buffered: usize,
    #[serde(flatten)]
    pub stats: FeedStats,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxItem {
    pub id: String,
    pub feed: String,
    pub sent: bool,
    pub queued_at_ms: i64,
}

pub use holdline_protocol::now_ms;
