//! A real OpenID Provider (npm `oidc-provider`, `servers/oidc-provider.mjs`)
//! issuing JWT access tokens that live a few seconds, which also plays the
//! user's browser: it logs in and consents at once.

use serde_json::json;

use crate::NodeServer;

/// The public client: browser and device logins, refresh tokens.
pub const PUBLIC_CLIENT: &str = "holdline-cli";
/// The confidential client: client credentials.
pub const SERVICE_CLIENT: &str = "holdline-service";
/// The audience of every access token it issues.
pub const AUDIENCE: &str = "urn:holdline:feeds";

pub struct OidcProvider {
    server: NodeServer,
    issuer: String,
    client_secret: String,
}

impl OidcProvider {
    /// A provider whose access tokens live `access_token_ttl_s` seconds.
    pub async fn start(access_token_ttl_s: u64) -> OidcProvider {
        // Distinctive, so a test can look for it where it must not be.
        let client_secret = format!("svc-secret-{}", std::process::id());
        let server = NodeServer::start(
            "oidc-provider.mjs",
            json!({ "access_token_ttl_s": access_token_ttl_s, "client_secret": client_secret }),
        )
        .await;
        let issuer = format!("http://127.0.0.1:{}", server.port());
        OidcProvider {
            server,
            issuer,
            client_secret,
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The service client's secret.
    pub fn client_secret(&self) -> &str {
        &self.client_secret
    }

    /// Opens `url` as the user's browser would and approves whatever it
    /// asks; a loopback redirect at the end is requested. Returns whether
    /// the last page was a success, and what it said.
    pub async fn browse(&mut self, url: &str) -> (bool, String) {
        let done = self
            .server
            .command_answer(json!({ "cmd": "browse", "url": url }))
            .await;
        (
            done["ok"] == true,
            done["detail"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Revokes a refresh token (RFC 7009), as the public client.
    pub async fn revoke(&mut self, token: &str) {
        let done = self
            .server
            .command_answer(json!({ "cmd": "revoke", "token": token }))
            .await;
        assert_eq!(done["ok"], true, "revocation failed: {done}");
    }

    /// How many tokens it issued with this grant type.
    pub fn tokens_issued(&self, grant_type: &str) -> usize {
        self.server
            .seen("token")
            .iter()
            .filter(|line| line["grant_type"] == grant_type)
            .count()
    }
}
