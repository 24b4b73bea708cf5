//! Who may upgrade (protocol section 1): bearer token and Origin allow-list.

use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::handshake::server::Request;
use tokio_tungstenite::tungstenite::http::header;

use crate::jwt::JwtVerifier;

/// Who a connection acts for; publish ids are remembered per principal.
/// A token is known by a digest, the same on every node and across
/// restarts, so a durable log can keep publish ids without the token.
/// A provider's token is known by its issuer and subject instead, so the
/// ids hold across the refreshed tokens of one login.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    Token(Arc<str>),
    Anonymous,
}

fn digest(text: &str) -> Arc<str> {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    Arc::from(hex)
}

impl Principal {
    pub fn for_token(token: &str) -> Principal {
        Principal::Token(digest(token))
    }

    pub fn for_subject(issuer: &str, subject: &str) -> Principal {
        Principal::Token(digest(&format!("oidc\0{issuer}\0{subject}")))
    }

    /// The principal as a log stores it.
    pub fn as_key(&self) -> &str {
        match self {
            Principal::Token(digest) => digest,
            Principal::Anonymous => "anonymous",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unauthorized,
    ForbiddenOrigin(String),
}

/// Who was let in, and until when their token holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub principal: Principal,
    pub expires_at: Option<SystemTime>,
}

impl From<Principal> for Admission {
    fn from(principal: Principal) -> Self {
        Admission {
            principal,
            expires_at: None,
        }
    }
}

pub struct Gate {
    tokens: Vec<String>,
    allow_unauthenticated: bool,
    allow_origins: Vec<String>,
    provider: Option<Arc<JwtVerifier>>,
}

impl Gate {
    pub fn new(
        tokens: Vec<String>,
        allow_unauthenticated: bool,
        allow_origins: Vec<String>,
    ) -> Self {
        Gate {
            tokens,
            allow_unauthenticated,
            allow_origins,
            provider: None,
        }
    }

    /// Also admits the access tokens `provider` issued.
    pub fn with_provider(mut self, provider: Option<Arc<JwtVerifier>>) -> Self {
        self.provider = provider;
        self
    }

    pub fn check(&self, request: &Request) -> Result<Admission, Refusal> {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or_default();
            if !self.allow_origins.is_empty() && !self.allow_origins.iter().any(|o| o == origin) {
                return Err(Refusal::ForbiddenOrigin(origin.chars().take(100).collect()));
            }
        }
        let presented = bearer(request).or_else(|| query_token(request));
        if let Some(token) = presented.as_deref() {
            if self.tokens.iter().any(|t| constant_time_eq(t, token)) {
                return Ok(Principal::for_token(token).into());
            }
            if let Some(provider) = &self.provider
                && let Some(verified) = provider.verify(token)
            {
                return Ok(Admission {
                    principal: Principal::for_subject(provider.issuer(), &verified.subject),
                    expires_at: Some(verified.expires_at),
                });
            }
        }
        if self.allow_unauthenticated && presented.is_none() {
            return Ok(Principal::Anonymous.into());
        }
        if self.allow_unauthenticated && self.tokens.is_empty() && self.provider.is_none() {
            return Ok(Principal::Anonymous.into());
        }
        Err(Refusal::Unauthorized)
    }
}

fn bearer(request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

fn query_token(request: &Request) -> Option<String> {
    let query = request.uri().query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// Compares without an early exit, so response timing says nothing about
/// how much of a guessed token was right.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// Whether the client offered `holdline.v1` among its subprotocols.
pub fn offers_subprotocol(request: &Request) -> bool {
    request
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == holdline_protocol::SUBPROTOCOL)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(auth: Option<&str>, uri: &str, origin: Option<&str>) -> Request {
        let mut builder = Request::builder().uri(uri);
        if let Some(auth) = auth {
            builder = builder.header(header::AUTHORIZATION, auth);
        }
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn header_or_query_token_is_accepted() {
        let gate = Gate::new(vec!["a".into(), "bb".into()], false, vec![]);
        assert_eq!(
            gate.check(&request(Some("Bearer bb"), "/", None)),
            Ok(Principal::for_token("bb").into())
        );
        assert_eq!(
            gate.check(&request(None, "/?x=1&token=a", None)),
            Ok(Principal::for_token("a").into())
        );
        assert_eq!(
            gate.check(&request(Some("Bearer b"), "/", None)),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            gate.check(&request(None, "/", None)),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            gate.check(&request(Some("Basic a"), "/", None)),
            Err(Refusal::Unauthorized)
        );
    }

    #[test]
    fn the_origin_allow_list_applies_only_to_requests_with_an_origin() {
        let gate = Gate::new(vec!["t".into()], false, vec!["https://ok.example".into()]);
        assert_eq!(
            gate.check(&request(
                Some("Bearer t"),
                "/",
                Some("https://evil.example")
            )),
            Err(Refusal::ForbiddenOrigin("https://evil.example".into()))
        );
        assert!(
            gate.check(&request(Some("Bearer t"), "/", Some("https://ok.example")))
                .is_ok()
        );
        assert!(gate.check(&request(Some("Bearer t"), "/", None)).is_ok());
        let open = Gate::new(vec!["t".into()], false, vec![]);
        assert!(
            open.check(&request(Some("Bearer t"), "/", Some("https://any")))
                .is_ok()
        );
    }

    #[test]
    fn unauthenticated_mode_admits_anonymous_clients() {
        let gate = Gate::new(vec![], true, vec![]);
        assert_eq!(
            gate.check(&request(None, "/", None)),
            Ok(Principal::Anonymous.into())
        );
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
        assert!(!constant_time_eq("", "a"));
    }
}
