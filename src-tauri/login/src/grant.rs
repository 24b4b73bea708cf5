//! What a login keeps between runs: how it was made and the tokens it got.

use std::fmt;

use serde::{Deserialize, Serialize};

/// How the user logs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginMethod {
    /// Authorization code with PKCE in the system browser (RFC 8252).
    Browser,
    /// The device authorization grant (RFC 8628).
    Device,
    /// A service account's client credentials.
    ClientCredentials,
}

/// A login's settings: nothing secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OidcLogin {
    pub issuer: String,
    pub client_id: String,
    /// Space-separated scopes; the provider's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub method: LoginMethod,
}

/// A login and its secrets, as the keyring holds it (JSON). `Debug` shows
/// the settings and which secrets are present, never their values.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(flatten)]
    pub login: OidcLogin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// When the access token expires, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<i64>,
    /// How long the access token was issued for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime_ms: Option<i64>,
}

/// The most a token is refreshed ahead of its expiry.
const REFRESH_AHEAD_MS: i64 = 60_000;

impl Grant {
    pub fn new(login: OidcLogin) -> Grant {
        Grant {
            login,
            client_secret: None,
            refresh_token: None,
            access_token: None,
            expires_at_ms: None,
            lifetime_ms: None,
        }
    }

    pub fn from_json(text: &str) -> Result<Grant, String> {
        serde_json::from_str(text).map_err(|e| format!("the stored login cannot be read: {e}"))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The access token, unless it expires within a quarter of its
    /// lifetime (at most a minute): a connection made with it should
    /// outlive the handshake.
    pub fn usable_access_token(&self, now_ms: i64) -> Option<&str> {
        let token = self.access_token.as_deref()?;
        let Some(expires_at) = self.expires_at_ms else {
            return Some(token);
        };
        let ahead = self
            .lifetime_ms
            .map(|lifetime| (lifetime / 4).min(REFRESH_AHEAD_MS))
            .unwrap_or(REFRESH_AHEAD_MS);
        (now_ms + ahead < expires_at).then_some(token)
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |present: bool| if present { "<redacted>" } else { "none" };
        f.debug_struct("Grant")
            .field("login", &self.login)
            .field("client_secret", &shown(self.client_secret.is_some()))
            .field("refresh_token", &shown(self.refresh_token.is_some()))
            .field("access_token", &shown(self.access_token.is_some()))
            .field("expires_at_ms", &self.expires_at_ms)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires_at_ms: Option<i64>, lifetime_ms: Option<i64>) -> Grant {
        let mut grant = Grant::new(OidcLogin {
            issuer: "https://id.example".into(),
            client_id: "app".into(),
            scope: None,
            method: LoginMethod::Device,
        });
        grant.access_token = Some("secret-access".into());
        grant.refresh_token = Some("secret-refresh".into());
        grant.expires_at_ms = expires_at_ms;
        grant.lifetime_ms = lifetime_ms;
        grant
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let text = format!("{:?}", grant(Some(1), Some(1)));
        assert!(!text.contains("secret-"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }

    #[test]
    fn a_token_near_its_expiry_is_not_used() {
        // Lives 4 s: refreshed within its last second.
        let short = grant(Some(10_000), Some(4_000));
        assert!(short.usable_access_token(8_900).is_some());
        assert!(short.usable_access_token(9_100).is_none());
        // Lives an hour: refreshed within its last minute.
        let long = grant(Some(3_600_000), Some(3_600_000));
        assert!(long.usable_access_token(3_539_000).is_some());
        assert!(long.usable_access_token(3_541_000).is_none());
        // No expiry given: used until the server refuses it.
        assert!(
            grant(None, None)
                .usable_access_token(i64::MAX - 1)
                .is_some()
        );
    }

    #[test]
    fn the_json_round_trips_and_leaves_out_what_is_absent() {
        let mut kept = grant(Some(5), Some(3));
        kept.refresh_token = None;
        let json = kept.to_json();
        assert!(!json.contains("refresh_token"), "{json}");
        assert_eq!(Grant::from_json(&json), Ok(kept));
        assert!(Grant::from_json("{").is_err());
    }
}
