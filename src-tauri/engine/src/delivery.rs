//! What the engine hands to its consumer.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One item of a feed's ordered stream, or a raw-mode frame.
#[derive(Debug, Clone)]
pub enum Delivery {
    Event(FeedEvent),
    /// Events `from..=to` of `feed` are lost for good: the server said so,
    /// or (`inferred`) the client concluded so after asking what it could.
    Gap {
        feed: Arc<str>,
        epoch: Option<Arc<str>>,
        from: u64,
        to: u64,
        inferred: bool,
    },
    /// The feed's numbering restarted in a new epoch; the old cursor is gone.
    Reset {
        feed: Arc<str>,
        epoch: Arc<str>,
    },
    /// Continuity was lost and nobody can say what was missed.
    Discontinuity {
        feed: Arc<str>,
        reason: DiscontinuityReason,
    },
    /// A frame shown as it came (raw mode).
    Raw(RawFrame),
}

/// Why a feed's continuity was lost (profiles §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscontinuityReason {
    /// The protocol has no resume and the connection was made again.
    Reconnected,
    /// The server did not recover the session (Socket.IO).
    NotRecovered,
    /// The broker no longer had the session (MQTT).
    SessionLost,
}

impl DiscontinuityReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DiscontinuityReason::Reconnected => "reconnected",
            DiscontinuityReason::NotRecovered => "not_recovered",
            DiscontinuityReason::SessionLost => "session_lost",
        }
    }
}

#[derive(Debug, Clone)]
pub struct FeedEvent {
    pub feed: Arc<str>,
    /// `None` where the wire has no epoch.
    pub epoch: Option<Arc<str>>,
    /// `None` where the wire has no sequence number.
    pub seq: Option<u64>,
    /// Server time, ms since the Unix epoch, where the wire carries it.
    pub ts: Option<i64>,
    pub data: Box<RawValue>,
    /// Protocol facts beside the data (MQTT topic, Socket.IO event name).
    pub meta: Option<Box<RawValue>>,
    /// Where the connection's session resumes once this event is handled,
    /// on a wire that resumes whole sessions (Socket.IO's recovery).
    pub session: Option<Arc<SessionMark>>,
    /// Handed back to the engine when the consumer commits this event.
    pub receipt: Option<Receipt>,
}

/// An acknowledgement the wire owes the server once the consumer has
/// committed an event (MQTT's PUBACK): the connection the event came on
/// and the protocol's id for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub connection: u64,
    pub id: u16,
}

/// A resume point for a whole connection rather than one feed: Socket.IO's
/// private session id and the offset of the last event handled, or MQTT's
/// client id (the broker keeps the position; `offset` is empty). It is kept
/// with the cursors, so a restart presents what the consumer last
/// committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMark {
    /// Shared by every event of the session.
    pub session: Arc<str>,
    pub offset: String,
}

/// What handling one delivery moves forward.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub cursor: Option<(Arc<str>, Cursor)>,
    pub session: Option<Arc<SessionMark>>,
    pub receipt: Option<Receipt>,
}

impl Progress {
    pub fn is_empty(&self) -> bool {
        self.cursor.is_none() && self.session.is_none() && self.receipt.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawFrame {
    Text(String),
    Binary(Vec<u8>),
}

/// Where a consumer stands in one feed: the last delivery it handled. A
/// feed whose wire has no epoch keeps the empty string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub epoch: String,
    pub seq: u64,
}

impl Cursor {
    pub fn new(epoch: Option<&str>, seq: u64) -> Self {
        Cursor {
            epoch: epoch.unwrap_or_default().to_owned(),
            seq,
        }
    }

    /// The epoch, `None` for a wire without one.
    pub fn epoch(&self) -> Option<&str> {
        Some(self.epoch.as_str()).filter(|e| !e.is_empty())
    }
}

impl Delivery {
    /// The feed and the cursor a consumer reaches by handling this delivery;
    /// `None` for deliveries that move no cursor (unnumbered events,
    /// discontinuity markers, raw frames).
    pub fn cursor(&self) -> Option<(&str, Cursor)> {
        self.reached().map(|(feed, cursor)| (&**feed, cursor))
    }

    fn reached(&self) -> Option<(&Arc<str>, Cursor)> {
        match self {
            Delivery::Event(e) => e
                .seq
                .map(|seq| (&e.feed, Cursor::new(e.epoch.as_deref(), seq))),
            Delivery::Gap {
                feed, epoch, to, ..
            } => Some((feed, Cursor::new(epoch.as_deref(), *to))),
            Delivery::Reset { feed, epoch } => Some((feed, Cursor::new(Some(epoch), 0))),
            Delivery::Discontinuity { .. } | Delivery::Raw(_) => None,
        }
    }

    /// Everything handling this delivery moves: the cursor above and the
    /// session's resume point, for a consumer that commits after handing
    /// the delivery on.
    pub fn progress(&self) -> Progress {
        let cursor = self.reached().map(|(feed, cursor)| (feed.clone(), cursor));
        let (session, receipt) = match self {
            Delivery::Event(e) => (e.session.clone(), e.receipt),
            _ => (None, None),
        };
        Progress {
            cursor,
            session,
            receipt,
        }
    }

    /// The feed this delivery belongs to, if any.
    pub fn feed(&self) -> Option<&str> {
        match self {
            Delivery::Event(e) => Some(&e.feed),
            Delivery::Gap { feed, .. }
            | Delivery::Reset { feed, .. }
            | Delivery::Discontinuity { feed, .. } => Some(feed),
            Delivery::Raw(_) => None,
        }
    }
}
