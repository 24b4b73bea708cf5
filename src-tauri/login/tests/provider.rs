//! The login flows against a real OpenID provider (npm `oidc-provider`)
//! on loopback, which plays the user's browser.

mod support;

use std::sync::Arc;

use holdline_engine::{TokenError, TokenSource};
use holdline_login::{
    Grant, GrantKeeper, LoginError, LoginMethod, OidcLogin, OidcSession, browser_login,
    client_credentials_login, http_client,
};
use holdline_testkit::oidc_provider::{PUBLIC_CLIENT, SERVICE_CLIENT};
use holdline_testkit::{OidcProvider, within};
use support::*;
use tokio::sync::oneshot;

#[tokio::test]
async fn device_login_gets_an_access_and_a_refresh_token() {
    let mut provider = OidcProvider::start(60).await;
    let grant = device_grant(&mut provider).await;
    assert_eq!(grant.login.method, LoginMethod::Device);
    assert!(grant.access_token.is_some());
    assert!(
        grant.refresh_token.is_some(),
        "offline_access was asked for"
    );
    assert_eq!(grant.lifetime_ms, Some(60_000));
    assert_eq!(
        provider.tokens_issued("urn:ietf:params:oauth:grant-type:device_code"),
        1
    );
}

#[tokio::test]
async fn browser_login_comes_back_through_the_loopback_redirect_with_pkce() {
    let mut provider = OidcProvider::start(60).await;
    let endpoints = endpoints(&provider).await;
    let http = http_client().unwrap();
    let (opened, address) = oneshot::channel();
    let logging_in = browser_login(
        &http,
        &endpoints,
        login(&provider, PUBLIC_CLIENT, LoginMethod::Browser),
        |url| {
            let _ = opened.send(url.clone());
        },
    );
    let user = async {
        let url = address.await.expect("the authorization URL is opened");
        let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let value = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(value("code_challenge_method").as_deref(), Some("S256"));
        assert!(value("state").is_some());
        let redirect = value("redirect_uri").expect("a redirect URI");
        assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
        provider.browse(url.as_str()).await
    };
    let (grant, (reached, page)) = within(WAIT, "the browser login", async {
        tokio::join!(logging_in, user)
    })
    .await;
    assert!(reached, "the redirect to the client failed: {page}");
    let grant = grant.expect("the browser login succeeds");
    assert_eq!(grant.login.method, LoginMethod::Browser);
    assert!(grant.refresh_token.is_some());
    assert_eq!(provider.tokens_issued("authorization_code"), 1);
}

#[tokio::test]
async fn client_credentials_log_in_and_a_wrong_secret_is_refused_with_the_reason() {
    let provider = OidcProvider::start(60).await;
    let endpoints = endpoints(&provider).await;
    let http = http_client().unwrap();
    let service = login(&provider, SERVICE_CLIENT, LoginMethod::ClientCredentials);
    let grant = client_credentials_login(
        &http,
        &endpoints,
        service.clone(),
        provider.client_secret().to_owned(),
    )
    .await
    .expect("the right secret logs in");
    assert!(grant.access_token.is_some());
    assert!(grant.refresh_token.is_none());
    let refused = client_credentials_login(&http, &endpoints, service, "wrong".into())
        .await
        .expect_err("a wrong secret is refused");
    let LoginError::Refused { reason } = refused else {
        panic!("not a refusal: {refused:?}")
    };
    assert!(reason.contains("invalid_client"), "{reason}");
}

#[tokio::test]
async fn a_session_refreshes_only_near_expiry_or_when_forced_and_keeps_the_rotated_token() {
    let mut provider = OidcProvider::start(60).await;
    let grant = device_grant(&mut provider).await;
    let first_refresh = grant.refresh_token.clone();
    let kept = Arc::new(Kept::default());
    let session = OidcSession::new(grant.clone(), kept.clone(), http_client().unwrap());
    let fresh = session.token(false).await.expect("a token");
    assert!(
        !fresh.refreshed,
        "a token with a minute left is used as it is"
    );
    assert_eq!(Some(fresh.token.expose()), grant.access_token.as_deref());
    let forced = session.token(true).await.expect("a forced refresh");
    assert!(forced.refreshed);
    assert_ne!(Some(forced.token.expose()), grant.access_token.as_deref());
    assert_eq!(provider.tokens_issued("refresh_token"), 1);
    let stored = kept.load().unwrap().expect("the refreshed grant is kept");
    assert_eq!(
        Some(stored.access_token.as_deref().unwrap()),
        Some(forced.token.expose())
    );
    assert!(stored.refresh_token.is_some());
    assert_ne!(
        stored.refresh_token, first_refresh,
        "oidc-provider rotates a public client's"
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_is_a_refusal_with_the_providers_reason() {
    let mut provider = OidcProvider::start(60).await;
    let grant = device_grant(&mut provider).await;
    provider
        .revoke(grant.refresh_token.as_deref().expect("a refresh token"))
        .await;
    let session = OidcSession::new(grant, Arc::new(Kept::default()), http_client().unwrap());
    let error = session.token(true).await.expect_err("a revoked grant");
    let TokenError::Refused { reason } = error else {
        panic!("not a refusal: {error:?}")
    };
    assert!(reason.contains("invalid_grant"), "{reason}");
}

#[tokio::test]
async fn an_unreachable_provider_is_not_a_refusal() {
    let mut grant = Grant::new(OidcLogin {
        issuer: "http://127.0.0.1:9".into(),
        client_id: PUBLIC_CLIENT.into(),
        scope: None,
        method: LoginMethod::Device,
    });
    grant.refresh_token = Some("r".into());
    let session = OidcSession::new(grant, Arc::new(Kept::default()), http_client().unwrap());
    let error = session
        .token(true)
        .await
        .expect_err("nobody listens on port 9");
    assert!(matches!(error, TokenError::Unreachable { .. }), "{error:?}");
}
