//! Logins that refresh: OpenID Connect discovery and the OAuth 2.0 flows a
//! feed server's identity provider offers, and [`OidcSession`], the token
//! source the engine asks before every attempt. Nothing here stores a
//! secret: a [`GrantKeeper`] given by the caller (the keyring, in the CLI
//! and the app) keeps the [`Grant`].

mod discovery;
mod error;
mod flows;
mod grant;
mod session;

use std::time::Duration;

pub use crate::discovery::Endpoints;
pub use crate::error::LoginError;
pub use crate::flows::{DeviceCode, browser_login, client_credentials_login, device_login};
pub use crate::grant::{Grant, LoginMethod, OidcLogin};
pub use crate::session::{GrantKeeper, OidcSession};

/// How long one request to the identity provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(15);

/// The HTTP client every request to a provider goes through. It follows
/// no redirect: a token endpoint that redirects is misconfigured, and
/// following would hand the request body (a code, a secret) elsewhere.
pub fn http_client() -> Result<reqwest::Client, LoginError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PROVIDER_TIMEOUT)
        .build()
        .map_err(|error| LoginError::Unreachable {
            reason: format!("cannot set up an HTTP client: {error}"),
        })
}
