//! OpenID Connect discovery: the issuer's `/.well-known/openid-configuration`.

use serde::Deserialize;
use url::Url;

use crate::error::{LoginError, chain};

/// The endpoints a login uses, as the issuer publishes them.
#[derive(Debug, Clone, Deserialize)]
pub struct Endpoints {
    pub issuer: String,
    pub token_endpoint: Url,
    pub authorization_endpoint: Option<Url>,
    pub device_authorization_endpoint: Option<Url>,
    pub revocation_endpoint: Option<Url>,
}

impl Endpoints {
    /// Fetches the issuer's metadata. The `issuer` it names must be the
    /// one asked for (OpenID Connect Discovery §4.3): anything else is a
    /// provider impersonating another.
    pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Endpoints, LoginError> {
        let base = Url::parse(issuer)
            .map_err(|e| LoginError::invalid(format!("the issuer {issuer} is not a URL: {e}")))?;
        if !matches!(base.scheme(), "https" | "http") {
            return Err(LoginError::invalid(format!(
                "the issuer {issuer} is not an http(s) URL"
            )));
        }
        let wanted = issuer.trim_end_matches('/');
        let address = format!("{wanted}/.well-known/openid-configuration");
        let response = http.get(&address).send().await.map_err(|error| {
            LoginError::unreachable(format!("discovery at {address} failed: {}", chain(&error)))
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(LoginError::unreachable(format!(
                "discovery at {address} answered HTTP {status}"
            )));
        }
        let endpoints: Endpoints = response.json().await.map_err(|error| {
            LoginError::unreachable(format!(
                "discovery at {address} did not answer OpenID metadata: {}",
                chain(&error)
            ))
        })?;
        if endpoints.issuer.trim_end_matches('/') != wanted {
            return Err(LoginError::invalid(format!(
                "discovery at {address} names another issuer, {}",
                endpoints.issuer
            )));
        }
        Ok(endpoints)
    }
}
