//! GNOME's proxy setting (`org.gnome.system.proxy` and its `http`,
//! `https` and `socks` children), read through `gsettings`, for machines
//! whose environment names no proxy. Only the manual mode is followed: an
//! automatic (PAC) setting is not evaluated, and the attempt goes direct.

use super::{NoProxy, Proxy, ProxyCredentials, ProxyKind};
use crate::feed_url::FeedUrl;
use crate::secret::Token;

/// One of the setting's proxies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    fn is_set(&self) -> bool {
        !self.host.is_empty() && self.port != 0
    }
}

/// What `gsettings list-recursively org.gnome.system.proxy` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GnomeProxy {
    pub mode: String,
    pub ignore_hosts: Vec<String>,
    pub http: Endpoint,
    pub https: Endpoint,
    pub socks: Endpoint,
    /// The HTTP proxy's credentials, when `use-authentication` is on.
    pub http_user: Option<String>,
    pub http_password: Option<String>,
}

/// A GVariant string (`'text'`, with `\'` and `\\` escapes), a number, a
/// boolean, or an array of strings, as `gsettings` prints them.
fn unquote(value: &str) -> String {
    let inner = value
        .trim()
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .unwrap_or(value.trim());
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn strings(value: &str) -> Vec<String> {
    let inner = value
        .trim()
        .trim_start_matches("@as ")
        .trim_start_matches('[')
        .trim_end_matches(']');
    inner
        .split(',')
        .map(unquote)
        .filter(|item| !item.is_empty())
        .collect()
}

impl GnomeProxy {
    pub fn parse(listing: &str) -> GnomeProxy {
        let mut settings = GnomeProxy::default();
        let mut use_authentication = false;
        let (mut user, mut password) = (String::new(), String::new());
        for line in listing.lines() {
            let mut parts = line.splitn(3, ' ');
            let (Some(schema), Some(key), Some(value)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let endpoint = match schema {
                "org.gnome.system.proxy.http" => Some(&mut settings.http),
                "org.gnome.system.proxy.https" => Some(&mut settings.https),
                "org.gnome.system.proxy.socks" => Some(&mut settings.socks),
                _ => None,
            };
            match (schema, key, endpoint) {
                ("org.gnome.system.proxy", "mode", _) => settings.mode = unquote(value),
                ("org.gnome.system.proxy", "ignore-hosts", _) => {
                    settings.ignore_hosts = strings(value)
                }
                (_, "host", Some(endpoint)) => endpoint.host = unquote(value),
                (_, "port", Some(endpoint)) => {
                    endpoint.port = value.trim().parse().unwrap_or_default()
                }
                ("org.gnome.system.proxy.http", "use-authentication", _) => {
                    use_authentication = value.trim() == "true"
                }
                ("org.gnome.system.proxy.http", "authentication-user", _) => user = unquote(value),
                ("org.gnome.system.proxy.http", "authentication-password", _) => {
                    password = unquote(value)
                }
                _ => {}
            }
        }
        if use_authentication && !user.is_empty() {
            settings.http_user = Some(user);
            settings.http_password = Some(password);
        }
        settings
    }

    /// The proxy this setting gives `target`, as GIO's GNOME resolver
    /// chooses: for `wss://` the HTTPS proxy, for `ws://` the HTTP proxy
    /// (with its credentials), else the SOCKS proxy (which resolves names);
    /// none when the mode is not manual or `ignore-hosts` covers the host.
    pub fn proxy_for(&self, target: &FeedUrl) -> Option<Proxy> {
        if self.mode != "manual" {
            return None;
        }
        if NoProxy::parse(&self.ignore_hosts.join(",")).covers(target.host()) {
            return None;
        }
        let (endpoint, credentials) = if target.is_tls() {
            (&self.https, None)
        } else {
            let credentials = self.http_user.clone().map(|username| ProxyCredentials {
                username,
                password: Token::new(self.http_password.clone().unwrap_or_default()),
            });
            (&self.http, credentials)
        };
        if endpoint.is_set() {
            return Some(Proxy {
                kind: ProxyKind::Http,
                host: endpoint.host.clone(),
                port: endpoint.port,
                credentials,
            });
        }
        self.socks.is_set().then(|| Proxy {
            kind: ProxyKind::Socks5 { remote_dns: true },
            host: self.socks.host.clone(),
            port: self.socks.port,
            credentials: None,
        })
    }
}

/// GNOME's setting now, or `None` where `gsettings` or the schema is
/// missing (another desktop, a server).
pub async fn read() -> Option<GnomeProxy> {
    let output = tokio::process::Command::new("gsettings")
        .args(["list-recursively", "org.gnome.system.proxy"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    output
        .status
        .success()
        .then(|| GnomeProxy::parse(&String::from_utf8_lossy(&output.stdout)))
}
