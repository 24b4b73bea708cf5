//! Where `tail` and `publish` get their token, and `login --oidc`: a login
//! that refreshes, kept in the keyring for the next run (and the app).

use std::io::{IsTerminal, Read};
use std::sync::Arc;

use clap::Args;
use holdline_credentials::StoredCredential;
use holdline_engine::{EngineConfig, FeedUrl, Token};
use holdline_login::{
    DeviceCode, Endpoints, LoginError, LoginMethod, OidcLogin, OidcSession, browser_login,
    client_credentials_login, device_login, http_client,
};

use crate::{complain, exit};

/// `login URL --oidc ISSUER --client-id ID`.
#[derive(Args)]
pub struct OidcArgs {
    /// Log in at this OpenID Connect issuer instead of storing a token:
    /// the device code flow (a code to enter on any device), or --browser,
    /// or --client-credentials. The tokens are refreshed by themselves.
    #[arg(long, value_name = "ISSUER")]
    pub oidc: Option<String>,
    /// The client id registered at the issuer.
    #[arg(long, value_name = "ID", requires = "oidc")]
    pub client_id: Option<String>,
    /// Scopes to ask for, space-separated (`openid offline_access` are
    /// added for the interactive flows, so a refresh token is issued).
    #[arg(long, value_name = "SCOPES", requires = "oidc")]
    pub scope: Option<String>,
    /// Log in in the system browser (authorization code with PKCE and a
    /// loopback redirect) instead of with a device code.
    #[arg(long, requires = "oidc", conflicts_with = "client_credentials")]
    pub browser: bool,
    /// A service account: the client secret is read from stdin.
    #[arg(long, requires = "oidc")]
    pub client_credentials: bool,
}

/// The token a run connects with.
pub enum Credential {
    Fixed(Option<Token>),
    Refreshing(Arc<OidcSession>),
}

impl Credential {
    /// `HOLDLINE_TOKEN`, else a `token` in the URL, else a login that
    /// refreshes from the keyring, else a token from the keyring.
    pub fn resolve(url: &FeedUrl, from_url: Option<Token>) -> Credential {
        if let Some(token) = std::env::var("HOLDLINE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
        {
            return Credential::Fixed(Some(Token::new(token)));
        }
        if from_url.is_some() {
            return Credential::Fixed(from_url);
        }
        match holdline_credentials::load_credential(url) {
            Ok(Some(StoredCredential::Login(session))) => Credential::Refreshing(session),
            Ok(Some(StoredCredential::Token(token))) => Credential::Fixed(Some(token)),
            Ok(None) => {
                complain(&format!(
                    "no token for {url}: connecting without one (run `holdline-cli login {url}` or set HOLDLINE_TOKEN)"
                ));
                Credential::Fixed(None)
            }
            Err(err) => {
                complain(&err.to_string());
                Credential::Fixed(None)
            }
        }
    }

    pub fn apply(self, config: &mut EngineConfig) {
        match self {
            Credential::Fixed(token) => config.token = token,
            Credential::Refreshing(session) => {
                config.token = None;
                config.token_source = Some(session);
            }
        }
    }
}

/// `login URL --oidc ISSUER …`: logs in, then keeps the login in the
/// keyring. Every message goes to stderr; nothing secret is printed.
pub async fn oidc_login(url: &FeedUrl, args: OidcArgs) -> u8 {
    let (Some(issuer), Some(client_id)) = (args.oidc, args.client_id) else {
        complain("--oidc needs --client-id, the client registered at the issuer");
        return exit::USAGE;
    };
    let method = if args.client_credentials {
        LoginMethod::ClientCredentials
    } else if args.browser {
        LoginMethod::Browser
    } else {
        LoginMethod::Device
    };
    let login = OidcLogin {
        issuer,
        client_id,
        scope: args.scope,
        method,
    };
    let secret = if method == LoginMethod::ClientCredentials {
        match client_secret_from_stdin() {
            Ok(secret) => Some(secret),
            Err(code) => return code,
        }
    } else {
        None
    };
    let logged_in = async {
        let http = http_client()?;
        let endpoints = Endpoints::discover(&http, &login.issuer).await?;
        match method {
            LoginMethod::ClientCredentials => {
                let secret = secret.unwrap_or_default();
                client_credentials_login(&http, &endpoints, login, secret).await
            }
            LoginMethod::Device => device_login(&http, &endpoints, login, show_device_code).await,
            LoginMethod::Browser => {
                browser_login(&http, &endpoints, login, |address| {
                    eprintln!("Log in in your browser: {address}");
                    if let Err(err) = webbrowser::open(address.as_str()) {
                        eprintln!(
                            "(the browser could not be opened: {err}; open the address above)"
                        );
                    }
                })
                .await
            }
        }
    };
    let grant = match logged_in.await {
        Ok(grant) => grant,
        Err(err) => {
            complain(&err.to_string());
            return match err {
                LoginError::Refused { .. } => exit::NEEDS_LOGIN,
                LoginError::Invalid { .. } => exit::USAGE,
                LoginError::Unreachable { .. } => exit::FAILED,
            };
        }
    };
    if let Err(err) = holdline_credentials::store_login(url, &grant) {
        complain(&err.to_string());
        return exit::FAILED;
    }
    let expiry = grant
        .lifetime_ms
        .map(|ms| format!("; the access token lasts {} s", ms / 1000))
        .unwrap_or_default();
    let refresh = match (method, grant.refresh_token.is_some()) {
        (LoginMethod::ClientCredentials, _) => " and is renewed with the client credentials",
        (_, true) => " and is refreshed by itself",
        (_, false) => ", but the provider gave no refresh token: log in again when it expires",
    };
    eprintln!(
        "logged in at {}{expiry}{refresh}; the login is stored in the OS keyring for {url}",
        grant.login.issuer
    );
    exit::DONE
}

fn show_device_code(code: &DeviceCode) {
    eprintln!(
        "To log in, open {} and enter the code {} (within {} s).",
        code.verification_uri,
        code.user_code,
        code.expires_in.as_secs()
    );
    if let Some(complete) = &code.verification_uri_complete {
        eprintln!("Or open {complete}");
    }
}

fn client_secret_from_stdin() -> Result<String, u8> {
    if std::io::stdin().is_terminal() {
        eprintln!("client secret (then Enter, Ctrl-D):");
    }
    let mut input = String::new();
    if let Err(err) = std::io::stdin().read_to_string(&mut input) {
        complain(&format!("cannot read the client secret from stdin: {err}"));
        return Err(exit::USAGE);
    }
    let secret = input.lines().next().unwrap_or_default().trim().to_owned();
    if secret.is_empty() {
        complain(
            "no client secret on stdin (e.g. `printf %s \"$SECRET\" | holdline-cli login URL --oidc … --client-credentials`)",
        );
        return Err(exit::USAGE);
    }
    Ok(secret)
}
