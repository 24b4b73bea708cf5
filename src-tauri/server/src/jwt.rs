//! Access tokens from an OpenID provider: JWTs signed with a key the
//! issuer publishes (its JWKS), for our audience. The keys are fetched at
//! start, again every few minutes, and soon after a token names a key we
//! do not have (the provider rotated its keys).

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use tokio::sync::Notify;
use tracing::{debug, warn};

/// Which provider's tokens are accepted, and for whom they must be meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSpec {
    pub issuer: String,
    pub audience: String,
}

const KEYS_REFETCHED_EVERY: Duration = Duration::from_secs(300);
/// However often unknown keys are seen, the JWKS is asked no more often.
const KEYS_REFETCHED_AT_MOST_EVERY: Duration = Duration::from_secs(10);
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// A token that passed: whose it is and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub subject: String,
    pub expires_at: SystemTime,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

pub struct JwtVerifier {
    spec: OidcSpec,
    keys: RwLock<Arc<JwkSet>>,
    unknown_key: Notify,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.spec.issuer)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

async fn fetch_keys(http: &reqwest::Client, spec: &OidcSpec) -> Result<(JwkSet, String), String> {
    let wanted = spec.issuer.trim_end_matches('/');
    let address = format!("{wanted}/.well-known/openid-configuration");
    let get = |address: String| async move {
        let response = http
            .get(&address)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| format!("{address}: {e}"))?;
        response
            .bytes()
            .await
            .map_err(|e| format!("{address}: {e}"))
    };
    let discovery: Discovery = serde_json::from_slice(&get(address.clone()).await?)
        .map_err(|e| format!("{address} is not OpenID metadata: {e}"))?;
    if discovery.issuer.trim_end_matches('/') != wanted {
        return Err(format!(
            "{address} names another issuer, {}",
            discovery.issuer
        ));
    }
    let keys: JwkSet = serde_json::from_slice(&get(discovery.jwks_uri.clone()).await?)
        .map_err(|e| format!("{} is not a JWK set: {e}", discovery.jwks_uri))?;
    Ok((keys, discovery.jwks_uri))
}

impl JwtVerifier {
    /// Fetches the issuer's keys, and keeps them current from a task of
    /// its own for as long as the verifier lives.
    pub async fn start(spec: OidcSpec) -> Result<Arc<JwtVerifier>, String> {
        let http = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let (keys, _) = fetch_keys(&http, &spec)
            .await
            .map_err(|e| format!("cannot fetch the keys of {}: {e}", spec.issuer))?;
        let verifier = Arc::new(JwtVerifier {
            spec,
            keys: RwLock::new(Arc::new(keys)),
            unknown_key: Notify::new(),
        });
        let weak = Arc::downgrade(&verifier);
        tokio::spawn(async move {
            loop {
                let Some(verifier) = weak.upgrade() else {
                    return;
                };
                let asked = verifier.unknown_key.notified();
                let _ = tokio::time::timeout(KEYS_REFETCHED_EVERY, asked).await;
                match fetch_keys(&http, &verifier.spec).await {
                    Ok((keys, from)) => {
                        debug!(%from, "provider keys refetched");
                        *verifier.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
                    }
                    Err(err) => warn!(%err, "provider keys could not be refetched"),
                }
                drop(verifier);
                tokio::time::sleep(KEYS_REFETCHED_AT_MOST_EVERY).await;
            }
        });
        Ok(verifier)
    }

    /// Checks signature, issuer, audience and expiry, with no leeway: the
    /// connection is closed at the very `exp` the token carries.
    pub fn verify(&self, token: &str) -> Option<Verified> {
        let header = decode_header(token).ok()?;
        // Only keys the issuer publishes sign: a shared-secret algorithm
        // would let a public key serve as the secret.
        use jsonwebtoken::Algorithm::*;
        if !matches!(
            header.alg,
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384 | EdDSA
        ) {
            return None;
        }
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(jwk) = header.kid.as_deref().and_then(|kid| keys.find(kid)) else {
            self.unknown_key.notify_one();
            return None;
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.set_issuer(&[&self.spec.issuer]);
        validation.set_audience(&[&self.spec.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let claims = decode::<Claims>(token, &key, &validation).ok()?.claims;
        let expires_at = UNIX_EPOCH + Duration::from_secs(claims.exp);
        (expires_at > SystemTime::now()).then_some(Verified {
            subject: claims.sub,
            expires_at,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.spec.issuer
    }
}
