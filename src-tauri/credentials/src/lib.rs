//! Tokens in the OS keyring (Secret Service on Linux, Keychain on macOS,
//! Credential Manager on Windows): one entry per server, under service
//! `holdline` and the server's key (its URL without credentials). The CLI
//! and the desktop app share this scheme, so a login in one serves both.

use holdline_engine::{FeedUrl, Token};
use serde::Serialize;
use thiserror::Error;

pub const KEYRING_SERVICE: &str = "holdline";

#[derive(Debug, Clone, Error, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum CredentialError {
    /// No keyring could be reached: nothing to store in or read from.
    #[error(
        "no OS keyring is available ({detail}). On Linux, run a Secret Service such as gnome-keyring-daemon (it needs a D-Bus session), or pass the token in HOLDLINE_TOKEN instead"
    )]
    Unavailable { detail: String },
    #[error("the OS keyring refused: {detail}")]
    Refused { detail: String },
}

fn entry(url: &FeedUrl) -> Result<keyring::Entry, CredentialError> {
    keyring::Entry::new(KEYRING_SERVICE, url.server_key()).map_err(map_error)
}

fn map_error(err: keyring::Error) -> CredentialError {
    match err {
        keyring::Error::PlatformFailure(e) | keyring::Error::NoStorageAccess(e) => {
            CredentialError::Unavailable {
                detail: e.to_string(),
            }
        }
        other => CredentialError::Refused {
            detail: other.to_string(),
        },
    }
}

/// Runs a keyring call on its own OS thread: the Secret Service client
/// blocks on D-Bus and must not do so on an async runtime's thread.
fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match scope.spawn(work).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The stored token for `url`; `Ok(None)` when there is none.
pub fn load(url: &FeedUrl) -> Result<Option<Token>, CredentialError> {
    off_runtime(|| match entry(url)?.get_password() {
        Ok(secret) => Ok(Some(Token::new(secret))),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(err) => Err(map_error(err)),
    })
}

pub fn store(url: &FeedUrl, token: &Token) -> Result<(), CredentialError> {
    off_runtime(|| entry(url)?.set_password(token.expose()).map_err(map_error))
}

/// Deletes the stored token; true when there was one.
pub fn delete(url: &FeedUrl) -> Result<bool, CredentialError> {
    off_runtime(|| match entry(url)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(err) => Err(map_error(err)),
    })
}
