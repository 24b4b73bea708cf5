//! The ways to log in: each ends with a [`Grant`] holding an access token
//! and, where the provider gives one, a refresh token.

use std::time::Duration;

use holdline_engine::events::now_ms;
use oauth2::basic::{BasicClient, BasicTokenResponse};
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, DeviceAuthorizationUrl,
    PkceCodeChallenge, RedirectUrl, RefreshToken, Scope, StandardDeviceAuthorizationResponse,
    TokenResponse, TokenUrl,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use url::Url;

use crate::discovery::Endpoints;
use crate::error::{LoginError, from_token_request};
use crate::grant::{Grant, LoginMethod, OidcLogin};

/// How long a person has to finish a browser login.
const BROWSER_LOGIN_TIMEOUT: Duration = Duration::from_secs(300);

/// What the person must do to finish a device login.
#[derive(Debug, Clone)]
pub struct DeviceCode {
    pub verification_uri: String,
    /// The same page with the code filled in, where the provider offers it.
    pub verification_uri_complete: Option<String>,
    pub user_code: String,
    pub expires_in: Duration,
}

fn token_url(endpoints: &Endpoints) -> Result<TokenUrl, LoginError> {
    TokenUrl::new(endpoints.token_endpoint.to_string())
        .map_err(|e| LoginError::invalid(format!("the token endpoint is not a URL: {e}")))
}

fn scopes(scope: Option<&str>) -> impl Iterator<Item = Scope> + '_ {
    scope
        .unwrap_or_default()
        .split_whitespace()
        .map(|s| Scope::new(s.to_owned()))
}

/// Interactive logins ask for `openid` and `offline_access` beside the
/// scopes given: without `offline_access` most providers issue no refresh
/// token, and the login would end with the first access token.
fn interactive_scope(scope: Option<&str>) -> String {
    let mut wanted: Vec<&str> = scope.unwrap_or_default().split_whitespace().collect();
    for needed in ["openid", "offline_access"] {
        if !wanted.contains(&needed) {
            wanted.push(needed);
        }
    }
    wanted.join(" ")
}

/// Takes what a token response gives into `grant`. A response without a
/// refresh token keeps the one the grant has (providers that do not
/// rotate them say nothing).
pub(crate) fn take_tokens(grant: &mut Grant, response: &BasicTokenResponse) {
    grant.access_token = Some(response.access_token().secret().clone());
    let lifetime = response
        .expires_in()
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    grant.lifetime_ms = lifetime;
    grant.expires_at_ms = lifetime.map(|l| now_ms().saturating_add(l));
    if let Some(refresh) = response.refresh_token() {
        grant.refresh_token = Some(refresh.secret().clone());
    }
}

/// A service account: the client's own credentials.
pub async fn client_credentials_login(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    login: OidcLogin,
    client_secret: String,
) -> Result<Grant, LoginError> {
    let mut grant = Grant::new(OidcLogin {
        method: LoginMethod::ClientCredentials,
        ..login
    });
    grant.client_secret = Some(client_secret);
    refresh(http, endpoints, &mut grant).await?;
    Ok(grant)
}

/// Gets a new access token for `grant`: the client credentials again, or
/// the refresh token.
pub(crate) async fn refresh(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    grant: &mut Grant,
) -> Result<(), LoginError> {
    let client = BasicClient::new(ClientId::new(grant.login.client_id.clone()))
        .set_token_uri(token_url(endpoints)?);
    let response = match grant.login.method {
        LoginMethod::ClientCredentials => {
            let secret = grant
                .client_secret
                .clone()
                .ok_or_else(|| LoginError::Refused {
                    reason: "no client secret is stored for this service account".into(),
                })?;
            client
                .set_client_secret(ClientSecret::new(secret))
                .exchange_client_credentials()
                .add_scopes(scopes(grant.login.scope.as_deref()))
                .request_async(http)
                .await
                .map_err(from_token_request)?
        }
        LoginMethod::Browser | LoginMethod::Device => {
            let refresh = grant
                .refresh_token
                .clone()
                .ok_or_else(|| LoginError::Refused {
                    reason: "the provider gave this login no refresh token".into(),
                })?;
            client
                .exchange_refresh_token(&RefreshToken::new(refresh))
                .request_async(http)
                .await
                .map_err(from_token_request)?
        }
    };
    take_tokens(grant, &response);
    Ok(())
}

/// The device authorization grant (RFC 8628): `show` tells the person
/// where to go and what to type; this polls until they did, refused, or
/// the code expired.
pub async fn device_login(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    login: OidcLogin,
    show: impl FnOnce(&DeviceCode),
) -> Result<Grant, LoginError> {
    let device_endpoint = endpoints
        .device_authorization_endpoint
        .as_ref()
        .ok_or_else(|| {
            LoginError::invalid(format!(
                "{} offers no device authorization endpoint: log in with the browser instead",
                endpoints.issuer
            ))
        })?;
    let device_url = DeviceAuthorizationUrl::new(device_endpoint.to_string())
        .map_err(|e| LoginError::invalid(format!("the device endpoint is not a URL: {e}")))?;
    let client = BasicClient::new(ClientId::new(login.client_id.clone()))
        .set_token_uri(token_url(endpoints)?)
        .set_device_authorization_url(device_url);
    let scope = interactive_scope(login.scope.as_deref());
    let details: StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .add_scopes(scopes(Some(&scope)))
        .request_async(http)
        .await
        .map_err(from_token_request)?;
    show(&DeviceCode {
        verification_uri: details.verification_uri().to_string(),
        verification_uri_complete: details
            .verification_uri_complete()
            .map(|uri| uri.secret().clone()),
        user_code: details.user_code().secret().clone(),
        expires_in: details.expires_in(),
    });
    let response = client
        .exchange_device_access_token(&details)
        .request_async(http, tokio::time::sleep, None)
        .await
        .map_err(from_token_request)?;
    let mut grant = Grant::new(OidcLogin {
        method: LoginMethod::Device,
        ..login
    });
    take_tokens(&mut grant, &response);
    Ok(grant)
}

/// Authorization code with PKCE in the system browser, back through a
/// redirect to a port of our own on loopback (RFC 8252 §7.3). `open`
/// shows the person the authorization URL.
pub async fn browser_login(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    login: OidcLogin,
    open: impl FnOnce(&Url),
) -> Result<Grant, LoginError> {
    let authorize = endpoints.authorization_endpoint.as_ref().ok_or_else(|| {
        LoginError::invalid(format!(
            "{} offers no authorization endpoint: use the device login instead",
            endpoints.issuer
        ))
    })?;
    let listener = TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| LoginError::invalid(format!("cannot listen on loopback: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| LoginError::invalid(format!("cannot listen on loopback: {e}")))?
        .port();
    let redirect = RedirectUrl::new(format!("http://127.0.0.1:{port}/callback"))
        .map_err(|e| LoginError::invalid(e.to_string()))?;
    let client = BasicClient::new(ClientId::new(login.client_id.clone()))
        .set_auth_uri(
            AuthUrl::new(authorize.to_string())
                .map_err(|e| LoginError::invalid(format!("the authorization endpoint: {e}")))?,
        )
        .set_token_uri(token_url(endpoints)?)
        .set_redirect_uri(redirect);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let scope = interactive_scope(login.scope.as_deref());
    let (address, state) = client
        .authorize_url(CsrfToken::new_random)
        .add_scopes(scopes(Some(&scope)))
        .set_pkce_challenge(challenge)
        .url();
    open(&address);
    let code = tokio::time::timeout(BROWSER_LOGIN_TIMEOUT, wait_for_code(&listener, &state))
        .await
        .map_err(|_| LoginError::Refused {
            reason: format!(
                "nobody finished the login in the browser within {} s",
                BROWSER_LOGIN_TIMEOUT.as_secs()
            ),
        })??;
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .set_pkce_verifier(verifier)
        .request_async(http)
        .await
        .map_err(from_token_request)?;
    let mut grant = Grant::new(OidcLogin {
        method: LoginMethod::Browser,
        ..login
    });
    take_tokens(&mut grant, &response);
    Ok(grant)
}

/// Answers requests on the loopback port until one is the redirect with
/// our `state`: its code, or the error the provider sent instead.
async fn wait_for_code(listener: &TcpListener, state: &CsrfToken) -> Result<String, LoginError> {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors and the like: wait, do not spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        match read_redirect(stream, state).await {
            Some(outcome) => return outcome,
            None => continue,
        }
    }
}

/// One request on the loopback port; `None` for anything that is not
/// the redirect (a favicon, a stray connection, a forged `state`).
async fn read_redirect(
    mut stream: TcpStream,
    state: &CsrfToken,
) -> Option<Result<String, LoginError>> {
    let mut reader = BufReader::new(&mut stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).await.ok()?;
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header).await {
            Ok(0) | Err(_) => break,
            Ok(_) if header.trim().is_empty() => break,
            Ok(_) => {}
        }
    }
    let target = request_line.split_whitespace().nth(1)?;
    let url = Url::parse(&format!("http://127.0.0.1{target}")).ok()?;
    let param = |name: &str| {
        url.query_pairs()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    };
    let ours = url.path() == "/callback" && param("state").as_deref() == Some(state.secret());
    let (status, page) = if ours {
        ("200 OK", "Holdline is logged in. You can close this tab.")
    } else {
        ("404 Not Found", "Not a Holdline login.")
    };
    let body = format!("<!doctype html><title>Holdline</title><p>{page}</p>");
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    if !ours {
        return None;
    }
    Some(match (param("code"), param("error")) {
        (Some(code), None) => Ok(code),
        (_, Some(error)) => Err(LoginError::Refused {
            reason: match param("error_description") {
                Some(description) => format!("{error}: {description}"),
                None => error,
            },
        }),
        (None, None) => Err(LoginError::Refused {
            reason: "the provider came back without a code".into(),
        }),
    })
}
