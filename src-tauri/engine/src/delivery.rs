//! What the engine hands to its consumer.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One item of a feed's ordered stream, or a raw-mode frame.
#[derive(Debug, Clone)]
pub enum Delivery {
    Event(FeedEvent),
    /// Events `from..=to` of `feed` are lost for good: the server said so.
    Gap {
        feed: Arc<str>,
        epoch: Arc<str>,
        from: u64,
        to: u64,
    },
    /// The feed's numbering restarted in a new epoch; the old cursor is gone.
    Reset {
        feed: Arc<str>,
        epoch: Arc<str>,
    },
    /// A frame from a server that did not select `holdline.v1`.
    Raw(RawFrame),
}

#[derive(Debug, Clone)]
pub struct FeedEvent {
    pub feed: Arc<str>,
    pub epoch: Arc<str>,
    pub seq: u64,
    /// Server time, ms since the Unix epoch.
    pub ts: i64,
    pub data: Box<RawValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawFrame {
    Text(String),
    Binary(Vec<u8>),
}

/// Where a consumer stands in one feed: the last delivery it handled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub epoch: String,
    pub seq: u64,
}

impl Delivery {
    /// The feed and the cursor a consumer reaches by handling this delivery.
    pub fn cursor(&self) -> Option<(&str, Cursor)> {
        match self {
            Delivery::Event(e) => Some((
                &e.feed,
                Cursor {
                    epoch: e.epoch.to_string(),
                    seq: e.seq,
                },
            )),
            Delivery::Gap {
                feed, epoch, to, ..
            } => Some((
                feed,
                Cursor {
                    epoch: epoch.to_string(),
                    seq: *to,
                },
            )),
            Delivery::Reset { feed, epoch } => Some((
                feed,
                Cursor {
                    epoch: epoch.to_string(),
                    seq: 0,
                },
            )),
            Delivery::Raw(_) => None,
        }
    }
}
