//! Helpers for the login tests: a keyring stand-in, logins approved by
//! the provider's own browser.
#![allow(dead_code)]

use std::sync::Mutex;
use std::time::Duration;

use holdline_login::{
    Endpoints, Grant, GrantKeeper, LoginMethod, OidcLogin, client_credentials_login, device_login,
    http_client,
};
use holdline_testkit::oidc_provider::{PUBLIC_CLIENT, SERVICE_CLIENT};
use holdline_testkit::{OidcProvider, within};
use tokio::sync::oneshot;

pub const WAIT: Duration = Duration::from_secs(30);

/// A keyring stand-in: the grant as last kept.
#[derive(Default)]
pub struct Kept(pub Mutex<Option<Grant>>);

impl GrantKeeper for Kept {
    fn load(&self) -> Result<Option<Grant>, String> {
        Ok(self.0.lock().unwrap().clone())
    }
    fn keep(&self, grant: &Grant) -> Result<(), String> {
        *self.0.lock().unwrap() = Some(grant.clone());
        Ok(())
    }
}

pub fn login(provider: &OidcProvider, client_id: &str, method: LoginMethod) -> OidcLogin {
    OidcLogin {
        issuer: provider.issuer().to_owned(),
        client_id: client_id.to_owned(),
        scope: None,
        method,
    }
}

pub async fn endpoints(provider: &OidcProvider) -> Endpoints {
    Endpoints::discover(&http_client().unwrap(), provider.issuer())
        .await
        .expect("discovery")
}

/// A device login, approved by the provider's browser as soon as the code
/// is shown.
pub async fn device_grant(provider: &mut OidcProvider) -> Grant {
    let endpoints = endpoints(provider).await;
    let http = http_client().unwrap();
    let (shown, code) = oneshot::channel();
    let logging_in = device_login(
        &http,
        &endpoints,
        login(provider, PUBLIC_CLIENT, LoginMethod::Device),
        |code| {
            let _ = shown.send(code.clone());
        },
    );
    let approving = async {
        let code = code.await.expect("a device code is shown");
        let page = code
            .verification_uri_complete
            .expect("oidc-provider gives the complete URI");
        provider.browse(&page).await
    };
    let (grant, (approved, page)) = within(WAIT, "the device login", async {
        tokio::join!(logging_in, approving)
    })
    .await;
    assert!(approved, "the device page did not end in success: {page}");
    grant.expect("the device login succeeds")
}

/// A service account's login with the provider's client secret.
pub async fn service_grant(provider: &OidcProvider) -> Grant {
    client_credentials_login(
        &http_client().unwrap(),
        &endpoints(provider).await,
        login(provider, SERVICE_CLIENT, LoginMethod::ClientCredentials),
        provider.client_secret().to_owned(),
    )
    .await
    .expect("the service account logs in")
}
