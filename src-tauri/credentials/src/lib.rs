//! Secrets in the OS keyring (Secret Service on Linux, Keychain on macOS,
//! Credential Manager on Windows), under service `holdline`: a server's
//! token under the server's key (its URL without credentials), and its
//! other secrets (a proxy password, a client key's passphrase, a login
//! that refreshes) under that key with the secret's name after a `#`. The
//! CLI and the desktop app share this scheme, so a login in one serves
//! both.

use holdline_engine::{FeedUrl, Token};
use std::sync::Arc;

use holdline_login::{Grant, GrantKeeper, OidcSession};
use serde::Serialize;
use thiserror::Error;

pub const KEYRING_SERVICE: &str = "holdline";

#[derive(Debug, Clone, Error, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum CredentialError {
    /// No keyring could be reached: nothing to store in or read from.
    #[error(
        "no OS keyring is available ({detail}). On Linux, run a Secret Service such as gnome-keyring-daemon (it needs a D-Bus session), or pass the token in HOLDLINE_TOKEN instead"
    )]
    Unavailable { detail: String },
    #[error("the OS keyring refused: {detail}")]
    Refused { detail: String },
}

/// Which of a server's secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// The server's token (what `load`, `store` and `delete` handle).
    Token,
    /// The password for the server's proxy.
    ProxyPassword,
    /// The passphrase of the server's PKCS#12 client certificate.
    ClientKeyPassphrase,
    /// A login that refreshes: its provider and client, and its access
    /// and refresh tokens or client secret (JSON, see `holdline-login`).
    Login,
}

impl Secret {
    pub const ALL: [Secret; 4] = [
        Secret::Token,
        Secret::ProxyPassword,
        Secret::ClientKeyPassphrase,
        Secret::Login,
    ];

    fn account(self, url: &FeedUrl) -> String {
        match self {
            Secret::Token => url.server_key().to_owned(),
            Secret::ProxyPassword => format!("{}#proxy-password", url.server_key()),
            Secret::ClientKeyPassphrase => {
                format!("{}#client-key-passphrase", url.server_key())
            }
            Secret::Login => format!("{}#login", url.server_key()),
        }
    }
}

fn entry(url: &FeedUrl, secret: Secret) -> Result<keyring::Entry, CredentialError> {
    keyring::Entry::new(KEYRING_SERVICE, &secret.account(url)).map_err(map_error)
}

fn map_error(err: keyring::Error) -> CredentialError {
    match err {
        keyring::Error::PlatformFailure(e) | keyring::Error::NoStorageAccess(e) => {
            CredentialError::Unavailable {
                detail: e.to_string(),
            }
        }
        other => CredentialError::Refused {
            detail: other.to_string(),
        },
    }
}

/// Runs a keyring call on its own OS thread: the Secret Service client
/// blocks on D-Bus and must not do so on an async runtime's thread.
fn off_runtime<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| match scope.spawn(work).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// The stored token for `url`; `Ok(None)` when there is none.
pub fn load(url: &FeedUrl) -> Result<Option<Token>, CredentialError> {
    load_secret(url, Secret::Token)
}

/// Stores the server's token, which replaces a login that refreshes.
pub fn store(url: &FeedUrl, token: &Token) -> Result<(), CredentialError> {
    store_secret(url, Secret::Token, token)?;
    delete_secret(url, Secret::Login).map(drop)
}

/// Deletes the stored token; true when there was one.
pub fn delete(url: &FeedUrl) -> Result<bool, CredentialError> {
    delete_secret(url, Secret::Token)
}

/// `url`'s stored `secret`; `Ok(None)` when there is none.
pub fn load_secret(url: &FeedUrl, secret: Secret) -> Result<Option<Token>, CredentialError> {
    off_runtime(|| match entry(url, secret)?.get_password() {
        Ok(value) => Ok(Some(Token::new(value))),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(err) => Err(map_error(err)),
    })
}

pub fn store_secret(url: &FeedUrl, secret: Secret, value: &Token) -> Result<(), CredentialError> {
    off_runtime(|| {
        entry(url, secret)?
            .set_password(value.expose())
            .map_err(map_error)
    })
}

/// Deletes `url`'s stored `secret`; true when there was one.
pub fn delete_secret(url: &FeedUrl, secret: Secret) -> Result<bool, CredentialError> {
    off_runtime(|| match entry(url, secret)?.delete_credential() {
        Ok(()) => Ok(true),
        Err(keyring::Error::NoEntry) => Ok(false),
        Err(err) => Err(map_error(err)),
    })
}

/// `url`'s stored login that refreshes, if any. A stored value that does
/// not read as one is an error that says to log in again.
pub fn load_login(url: &FeedUrl) -> Result<Option<Grant>, CredentialError> {
    let Some(stored) = load_secret(url, Secret::Login)? else {
        return Ok(None);
    };
    Grant::from_json(stored.expose())
        .map(Some)
        .map_err(|detail| CredentialError::Refused {
            detail: format!("{detail}; log in to {url} again"),
        })
}

/// Stores a login that refreshes, which replaces the server's token.
pub fn store_login(url: &FeedUrl, grant: &Grant) -> Result<(), CredentialError> {
    store_secret(url, Secret::Login, &Token::new(grant.to_json()))?;
    delete_secret(url, Secret::Token).map(drop)
}

/// What the keyring holds to connect to a server with.
pub enum StoredCredential {
    /// A login that refreshes, ready to hand the engine as its token source.
    Login(Arc<OidcSession>),
    Token(Token),
}

/// The server's stored credential: its login that refreshes, else its
/// token. (Storing either removes the other.)
pub fn load_credential(url: &FeedUrl) -> Result<Option<StoredCredential>, CredentialError> {
    if let Some(grant) = load_login(url)? {
        let http = holdline_login::http_client().map_err(|e| CredentialError::Refused {
            detail: e.to_string(),
        })?;
        let keeper = Arc::new(KeyringGrantKeeper::new(url.clone()));
        return Ok(Some(StoredCredential::Login(Arc::new(OidcSession::new(
            grant, keeper, http,
        )))));
    }
    Ok(load(url)?.map(StoredCredential::Token))
}

/// Keeps a login's refreshed tokens in the keyring, where the next run
/// (the CLI's or the app's) finds them.
pub struct KeyringGrantKeeper {
    url: FeedUrl,
}

impl KeyringGrantKeeper {
    pub fn new(url: FeedUrl) -> KeyringGrantKeeper {
        KeyringGrantKeeper { url }
    }
}

impl GrantKeeper for KeyringGrantKeeper {
    fn load(&self) -> Result<Option<Grant>, String> {
        load_login(&self.url).map_err(|e| e.to_string())
    }

    fn keep(&self, grant: &Grant) -> Result<(), String> {
        store_login(&self.url, grant).map_err(|e| e.to_string())
    }
}
