//! Where the engine gets its token when it does not hold a fixed one: a
//! login that can be refreshed (OpenID Connect, OAuth 2.0). The engine asks
//! before every attempt and, once, after the server turned a token down;
//! how a token is obtained is the source's business.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use thiserror::Error;

use crate::secret::Token;

/// A token to send on the next attempt.
#[derive(Debug, Clone)]
pub struct FreshToken {
    pub token: Token,
    /// When the token stops being accepted, ms since the Unix epoch.
    pub expires_at_ms: Option<i64>,
    /// True when the source went to its provider for it (a history entry).
    pub refreshed: bool,
    /// Something the user should know that did not stop the refresh, such
    /// as a rotated refresh token that could not be kept.
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Error, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum TokenError {
    /// The provider said no (a revoked or expired refresh token, a wrong
    /// client secret): only a new login helps.
    #[error("the identity provider refused to refresh the token: {reason}")]
    Refused { reason: String },
    /// The provider could not be asked, or answered nonsense: worth
    /// retrying with backoff.
    #[error("the identity provider could not be reached: {reason}")]
    Unreachable { reason: String },
}

pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<FreshToken, TokenError>> + Send + 'a>>;

pub trait TokenSource: fmt::Debug + Send + Sync {
    /// The token to connect with: the current one while it is not near
    /// expiry, else a refreshed one. `force` refreshes whatever the
    /// expiry says (the server refused the current token).
    fn token(&self, force: bool) -> TokenFuture<'_>;
}
