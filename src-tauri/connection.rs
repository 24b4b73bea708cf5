//! How a saved server is reached: its proxy (the system's unless chosen)
//! and its client certificate. The settings hold paths and a proxy URL
//! without its password; the proxy password and a PKCS#12 passphrase live
//! in the keyring beside the token (`holdline_credentials::Secret`).

use holdline_credentials::Secret;
use holdline_engine::proxy::ProxyCredentials;
use holdline_engine::{ClientCertificate, FeedUrl, ProxySetting, Token};
use serde::{Deserialize, Serialize};

use crate::error::{AppError, AppResult};

/// What `settings.json` keeps of a server's connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectionEntry {
    /// `none`, a proxy URL without its password, or unset for the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// A PEM certificate (with `client_key`) or a PKCS#12 file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
}

impl ConnectionEntry {
    pub fn is_default(&self) -> bool {
        *self == ConnectionEntry::default()
    }
}

/// What the server editor sends: the entry's fields and the secrets that
/// go to the keyring.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConnectionInput {
    /// `system`, `none` or a proxy URL (a password in it goes to the
    /// keyring, never to the settings).
    pub proxy: Option<String>,
    pub proxy_password: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub client_key_passphrase: Option<String>,
}

/// A checked connection: the entry to save and the secrets to keep (which
/// `Token` keeps out of any `Debug`).
#[derive(Debug)]
pub struct Prepared {
    pub entry: ConnectionEntry,
    pub secrets: Vec<(Secret, Token)>,
}

fn text(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Checks `input` as the engine will use it (the proxy URL parses, the
/// certificate and key load) so a mistake is refused when saved, not at
/// the first attempt.
pub fn prepare(input: &ConnectionInput) -> AppResult<Prepared> {
    let mut secrets = Vec::new();
    let proxy = match text(&input.proxy).as_deref() {
        None | Some("system") => None,
        Some(given) => match ProxySetting::parse(given)
            .map_err(|e| AppError::invalid(format!("proxy: {e}")))?
        {
            ProxySetting::Url(proxy) => {
                let password = proxy
                    .credentials
                    .as_ref()
                    .map(|c| c.password.clone())
                    .filter(|p| !p.is_empty());
                if let Some(password) =
                    password.or_else(|| text(&input.proxy_password).map(Token::new))
                {
                    secrets.push((Secret::ProxyPassword, password));
                }
                // What is stored and shown: no password.
                Some(proxy.shown())
            }
            ProxySetting::None => Some("none".to_owned()),
            ProxySetting::System => None,
        },
    };
    let entry = ConnectionEntry {
        proxy,
        client_cert: text(&input.client_cert),
        client_key: text(&input.client_key),
    };
    let passphrase = text(&input.client_key_passphrase).map(Token::new);
    if let Some(certificate) = client_certificate(&entry, passphrase.clone())? {
        certificate
            .load()
            .map_err(|e| AppError::invalid(e.to_string()))?;
    }
    if let Some(passphrase) = passphrase {
        secrets.push((Secret::ClientKeyPassphrase, passphrase));
    }
    Ok(Prepared { entry, secrets })
}

fn client_certificate(
    entry: &ConnectionEntry,
    passphrase: Option<Token>,
) -> AppResult<Option<ClientCertificate>> {
    let Some(certificate) = entry.client_cert.clone() else {
        if entry.client_key.is_some() {
            return Err(AppError::invalid(
                "a client key needs its client certificate",
            ));
        }
        return Ok(None);
    };
    if let Some(key) = entry.client_key.clone() {
        return Ok(Some(ClientCertificate::Pem {
            certificate: certificate.into(),
            key: key.into(),
        }));
    }
    let lower = certificate.to_ascii_lowercase();
    if !(lower.ends_with(".p12") || lower.ends_with(".pfx")) {
        return Err(AppError::invalid(
            "a client certificate is a PKCS#12 file (.p12, .pfx), or a PEM certificate with its key",
        ));
    }
    Ok(Some(ClientCertificate::Pkcs12 {
        file: certificate.into(),
        passphrase: passphrase.unwrap_or_else(|| Token::new("")),
    }))
}

/// The engine's proxy and client certificate for a saved server, its
/// secrets read from the keyring. A secret the keyring cannot give is
/// left empty: the proxy or the server then says what is missing.
pub fn engine_settings(
    entry: &ConnectionEntry,
    url: &FeedUrl,
    secret: impl Fn(&FeedUrl, Secret) -> Option<Token>,
) -> (ProxySetting, Option<ClientCertificate>) {
    let proxy = match entry.proxy.as_deref() {
        None => ProxySetting::System,
        Some(given) => match ProxySetting::parse(given) {
            Ok(ProxySetting::Url(proxy)) => {
                let credentials = proxy.credentials.clone().map(|c| ProxyCredentials {
                    username: c.username,
                    password: secret(url, Secret::ProxyPassword).unwrap_or_else(|| Token::new("")),
                });
                ProxySetting::Url(proxy.with_credentials(credentials))
            }
            Ok(other) => other,
            // Checked when saved; a hand-edited file that breaks it goes
            // direct rather than through a proxy nobody chose.
            Err(_) => ProxySetting::None,
        },
    };
    let passphrase = secret(url, Secret::ClientKeyPassphrase);
    let certificate = client_certificate(entry, passphrase).ok().flatten();
    (proxy, certificate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(proxy: &str) -> ConnectionInput {
        ConnectionInput {
            proxy: Some(proxy.into()),
            ..ConnectionInput::default()
        }
    }

    #[test]
    fn a_password_in_the_proxy_url_goes_to_the_keyring_not_the_settings() {
        let prepared = prepare(&input("http://ann:s3cret@proxy.corp:3128")).unwrap();
        assert_eq!(
            prepared.entry.proxy.as_deref(),
            Some("http://ann@proxy.corp:3128")
        );
        let stored = serde_json::to_string(&prepared.entry).unwrap();
        assert!(!stored.contains("s3cret"), "{stored}");
        assert_eq!(prepared.secrets.len(), 1);
        assert_eq!(prepared.secrets[0].0, Secret::ProxyPassword);
        assert_eq!(prepared.secrets[0].1.expose(), "s3cret");
    }

    #[test]
    fn system_is_the_default_and_none_is_kept() {
        assert_eq!(prepare(&input("system")).unwrap().entry.proxy, None);
        assert_eq!(
            prepare(&ConnectionInput::default()).unwrap().entry.proxy,
            None
        );
        assert_eq!(
            prepare(&input("none")).unwrap().entry.proxy.as_deref(),
            Some("none")
        );
    }

    #[test]
    fn a_bad_proxy_or_certificate_is_refused_when_saved() {
        let bad = prepare(&input("ftp://x:y@proxy")).unwrap_err();
        assert_eq!(bad.code(), "invalid_input");
        assert!(!bad.to_string().contains(":y@"), "{bad}");
        let pem_without_key = prepare(&ConnectionInput {
            client_cert: Some("/nowhere/client.pem".into()),
            ..ConnectionInput::default()
        })
        .unwrap_err();
        assert!(
            pem_without_key.to_string().contains("PKCS#12"),
            "{pem_without_key}"
        );
        let missing = prepare(&ConnectionInput {
            client_cert: Some("/nowhere/client.pem".into()),
            client_key: Some("/nowhere/client.key".into()),
            ..ConnectionInput::default()
        })
        .unwrap_err();
        assert!(
            missing.to_string().contains("/nowhere/client.pem"),
            "{missing}"
        );
    }

    #[test]
    fn the_engine_gets_the_stored_proxy_password() {
        let entry = ConnectionEntry {
            proxy: Some("socks5h://ann@gw:1080".into()),
            ..ConnectionEntry::default()
        };
        let (url, _) = FeedUrl::parse("wss://feeds.example/").unwrap();
        let (proxy, certificate) = engine_settings(&entry, &url, |_, secret| {
            (secret == Secret::ProxyPassword).then(|| Token::new("kept"))
        });
        let ProxySetting::Url(proxy) = proxy else {
            panic!("{proxy:?}")
        };
        assert_eq!(proxy.credentials.unwrap().password.expose(), "kept");
        assert!(certificate.is_none());
        let (system, _) = engine_settings(&ConnectionEntry::default(), &url, |_, _| None);
        assert_eq!(system, ProxySetting::System);
    }
}
