//! The one error type of the shell's commands. It serializes as
//! `{"code": …, "message": …}`: the UI branches on `code`, shows `message`.

use holdline_credentials::CredentialError;
use holdline_engine::{EngineError, PublishError, UrlError};
use holdline_storage::StorageError;
use serde::ser::SerializeStruct;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The engine's own text, shown as is (URL errors name ws:// and wss://).
    #[error("{0}")]
    InvalidUrl(#[from] UrlError),
    #[error("{0}")]
    Engine(#[from] EngineError),
    #[error("{message}")]
    InvalidInput { message: String },
    /// A profile the loader refused; `key` names the offending key.
    #[error("{0}")]
    Profile(#[from] holdline_engine::ProfileError),
    #[error("no server with id {id:?}")]
    UnknownServer { id: String },
    #[error("no server is active; log in to one first")]
    NoActiveServer,
    #[error("{0}")]
    Keyring(CredentialError),
    #[error("{0}")]
    Publish(#[from] PublishError),
    #[error("{0}")]
    Storage(#[from] StorageError),
    #[error("settings could not be saved: {message}")]
    Settings { message: String },
    #[error("{message}")]
    Export { message: String },
    /// The desktop refused something (start at login, notifications).
    #[error("{message}")]
    Desktop { message: String },
    /// An OpenID Connect login failed: refused, unreachable, or set up in
    /// a way that cannot work.
    #[error("{0}")]
    Login(#[from] holdline_login::LoginError),
}

impl AppError {
    pub fn invalid(message: impl Into<String>) -> Self {
        AppError::InvalidInput {
            message: message.into(),
        }
    }

    /// Stable identifiers the UI may branch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::InvalidUrl(_) => "invalid_url",
            AppError::Engine(e) => e.code(),
            AppError::InvalidInput { .. } => "invalid_input",
            AppError::Profile(_) => "invalid_profile",
            AppError::Desktop { .. } => "desktop",
            AppError::UnknownServer { .. } => "unknown_server",
            AppError::NoActiveServer => "no_active_server",
            AppError::Keyring(CredentialError::Unavailable { .. }) => "keyring_unavailable",
            AppError::Keyring(CredentialError::Refused { .. }) => "keyring_refused",
            AppError::Publish(PublishError::Rejected { .. }) => "publish_rejected",
            AppError::Publish(PublishError::Stopped) => "engine_stopped",
            AppError::Storage(_) => "storage",
            AppError::Settings { .. } => "settings",
            AppError::Export { .. } => "export",
            AppError::Login(holdline_login::LoginError::Refused { .. }) => "login_refused",
            AppError::Login(holdline_login::LoginError::Unreachable { .. }) => "login_unreachable",
            AppError::Login(holdline_login::LoginError::Invalid { .. }) => "invalid_input",
        }
    }
}

impl From<CredentialError> for AppError {
    fn from(err: CredentialError) -> Self {
        AppError::Keyring(err)
    }
}

impl serde::Serialize for AppError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut state = serializer.serialize_struct("AppError", 3)?;
        state.serialize_field("code", self.code())?;
        state.serialize_field("message", &self.to_string())?;
        // Where the UI shows a profile error: at the key it names.
        let key = match self {
            AppError::Profile(err) => Some(err.key.as_str()),
            AppError::Engine(EngineError::InvalidProfile { key, .. }) => Some(key.as_str()),
            _ => None,
        };
        state.serialize_field("key", &key)?;
        state.end()
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_serialize_with_a_code_and_the_message() {
        let err = AppError::from(holdline_engine::FeedUrl::parse("http://x").unwrap_err());
        let json = serde_json::to_value(&err).unwrap();
        assert_eq!(json["code"], "invalid_url");
        assert!(json["message"].as_str().unwrap().contains("ws://"));
        let full = AppError::from(EngineError::OutboxFull { capacity: 3 });
        assert_eq!(serde_json::to_value(&full).unwrap()["code"], "outbox_full");
    }
}
