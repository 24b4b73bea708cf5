//! Errors the engine's handle returns, each with a stable `code`.

use serde::Serialize;
use thiserror::Error;

use crate::feed_url::UrlError;
use crate::store::StoreError;

#[derive(Debug, Clone, Error, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum EngineError {
    #[error("{message}")]
    InvalidUrl { message: String },
    #[error("invalid feed name {feed:?}: {message}")]
    InvalidFeed { feed: String, message: String },
    #[error("invalid publish id {id:?}: {message}")]
    InvalidId { id: String, message: String },
    #[error("the outbox is full ({capacity} publishes waiting); wait for acks or raise the limit")]
    OutboxFull { capacity: usize },
    #[error("the publish is {bytes} bytes; the server accepts at most {limit}")]
    TooLarge { bytes: usize, limit: u64 },
    #[error("publishing needs a holdline.v1 server; this one speaks raw WebSocket")]
    RawMode,
    #[error("profile key `{key}`: {message}")]
    InvalidProfile { key: String, message: String },
    #[error("storage failed: {message}")]
    Storage { message: String },
    #[error("the engine has stopped")]
    #[serde(rename = "engine_stopped")]
    Stopped,
}

impl EngineError {
    /// The stable code a UI branches on: the same text as the `code` tag
    /// this error serializes with (a test keeps the two equal).
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::InvalidUrl { .. } => "invalid_url",
            EngineError::InvalidFeed { .. } => "invalid_feed",
            EngineError::InvalidId { .. } => "invalid_id",
            EngineError::OutboxFull { .. } => "outbox_full",
            EngineError::TooLarge { .. } => "too_large",
            EngineError::RawMode => "raw_mode",
            EngineError::InvalidProfile { .. } => "invalid_profile",
            EngineError::Storage { .. } => "storage",
            EngineError::Stopped => "engine_stopped",
        }
    }
}

impl From<UrlError> for EngineError {
    fn from(err: UrlError) -> Self {
        EngineError::InvalidUrl {
            message: err.to_string(),
        }
    }
}

impl From<crate::profile::ProfileError> for EngineError {
    fn from(err: crate::profile::ProfileError) -> Self {
        EngineError::InvalidProfile {
            key: err.key,
            message: err.message,
        }
    }
}

impl From<StoreError> for EngineError {
    fn from(err: StoreError) -> Self {
        EngineError::Storage {
            message: err.to_string(),
        }
    }
}

/// The server's acknowledgement of a publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishAck {
    pub id: String,
    pub feed: String,
    /// `None` where the wire's ack carries no sequence number.
    pub seq: Option<u64>,
}

#[derive(Debug, Clone, Error, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum PublishError {
    /// The server answered with an `error` frame.
    #[error("server refused the publish ({server_code}): {message}")]
    Rejected {
        server_code: String,
        message: String,
    },
    #[error("the engine stopped before the publish was acknowledged")]
    Stopped,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_the_serialized_tag() {
        let all = [
            EngineError::InvalidUrl {
                message: String::new(),
            },
            EngineError::InvalidFeed {
                feed: String::new(),
                message: String::new(),
            },
            EngineError::InvalidId {
                id: String::new(),
                message: String::new(),
            },
            EngineError::OutboxFull { capacity: 1 },
            EngineError::TooLarge { bytes: 2, limit: 1 },
            EngineError::RawMode,
            EngineError::InvalidProfile {
                key: String::new(),
                message: String::new(),
            },
            EngineError::Storage {
                message: String::new(),
            },
            EngineError::Stopped,
        ];
        for err in all {
            let tagged = serde_json::to_value(&err).unwrap();
            assert_eq!(tagged["code"], err.code(), "{err:?}");
        }
    }
}
