//! The engine's token source for a login that refreshes.

use std::fmt;
use std::sync::Arc;

use holdline_engine::events::now_ms;
use holdline_engine::{FreshToken, Token, TokenError, TokenFuture, TokenSource};
use tokio::sync::{Mutex, OnceCell};

use crate::discovery::Endpoints;
use crate::error::LoginError;
use crate::flows::refresh;
use crate::grant::Grant;

/// Where a login's grant lives between runs (the OS keyring in the CLI
/// and the app). Both calls may block: they run off the async runtime.
pub trait GrantKeeper: Send + Sync {
    /// The grant as stored now: another process sharing the login may have
    /// refreshed it (and a provider that rotates refresh tokens has then
    /// retired the one this process holds).
    fn load(&self) -> Result<Option<Grant>, String>;
    fn keep(&self, grant: &Grant) -> Result<(), String>;
}

pub struct OidcSession {
    grant: Mutex<Grant>,
    keeper: Arc<dyn GrantKeeper>,
    http: reqwest::Client,
    endpoints: OnceCell<Endpoints>,
}

impl fmt::Debug for OidcSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcSession").finish_non_exhaustive()
    }
}

impl OidcSession {
    pub fn new(grant: Grant, keeper: Arc<dyn GrantKeeper>, http: reqwest::Client) -> OidcSession {
        OidcSession {
            grant: Mutex::new(grant),
            keeper,
            http,
            endpoints: OnceCell::new(),
        }
    }

    async fn endpoints(&self, issuer: &str) -> Result<&Endpoints, LoginError> {
        self.endpoints
            .get_or_try_init(|| Endpoints::discover(&self.http, issuer))
            .await
    }

    async fn fresh(&self, force: bool) -> Result<FreshToken, TokenError> {
        let mut grant = self.grant.lock().await;
        if let Ok(Ok(Some(stored))) = {
            let keeper = self.keeper.clone();
            tokio::task::spawn_blocking(move || keeper.load()).await
        } && stored.login == grant.login
        {
            *grant = stored;
        }
        let now = now_ms();
        if !force && let Some(token) = grant.usable_access_token(now) {
            return Ok(FreshToken {
                token: Token::new(token),
                expires_at_ms: grant.expires_at_ms,
                refreshed: false,
                warning: None,
            });
        }
        let issuer = grant.login.issuer.clone();
        let endpoints = self.endpoints(&issuer).await?;
        refresh(&self.http, endpoints, &mut grant).await?;
        let kept = {
            let keeper = self.keeper.clone();
            let copy = grant.clone();
            tokio::task::spawn_blocking(move || keeper.keep(&copy)).await
        };
        let warning = match kept {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some(format!(
                "the refreshed login could not be stored ({reason}); the next run may need a new login"
            )),
            Err(_) => Some("the refreshed login could not be stored".into()),
        };
        let token = grant
            .access_token
            .clone()
            .ok_or_else(|| TokenError::Unreachable {
                reason: "the token endpoint answered without an access token".into(),
            })?;
        Ok(FreshToken {
            token: Token::new(token),
            expires_at_ms: grant.expires_at_ms,
            refreshed: true,
            warning,
        })
    }
}

impl TokenSource for OidcSession {
    fn token(&self, force: bool) -> TokenFuture<'_> {
        Box::pin(self.fresh(force))
    }
}
