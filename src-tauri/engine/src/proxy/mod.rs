//! Reaching a server through a proxy: which proxy an attempt uses (none, the
//! system's, or one given), and the tunnel through it (HTTP `CONNECT` or
//! SOCKS5). The tunnel ends in a plain TCP stream to the server, so TLS and
//! the upgrade run end to end through it exactly as they do direct.

mod environment;
#[cfg(target_os = "linux")]
pub mod gnome;
mod http_connect;
mod socks;

use std::fmt;

use thiserror::Error;
use tokio::net::TcpStream;
use url::Url;

use crate::cause::ConnectError;
use crate::feed_url::FeedUrl;
use crate::secret::Token;

pub use environment::{
    Environment, EnvironmentProxyError, NoProxy, ProcessEnvironment, from_environment,
    names_a_proxy,
};

/// What kind of tunnel the proxy makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// HTTP `CONNECT`.
    Http,
    /// SOCKS5. `remote_dns` (`socks5h://`, as curl spells it): the proxy
    /// resolves the server's name, so names only it can resolve work.
    /// Without it (`socks5://`) the name is resolved here.
    Socks5 { remote_dns: bool },
}

#[derive(Clone, PartialEq, Eq)]
pub struct ProxyCredentials {
    pub username: String,
    pub password: Token,
}

impl fmt::Debug for ProxyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}:<redacted>", self.username)
    }
}

/// One proxy. Its `Display` and `Debug` never show the password: what
/// history, logs and the UI show of a proxy is [`Proxy::shown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub kind: ProxyKind,
    pub host: String,
    pub port: u16,
    pub credentials: Option<ProxyCredentials>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProxyUrlError {
    #[error(
        "the proxy URL {0:?} cannot be read; use http://host:port, socks5://host:port or socks5h://host:port"
    )]
    Unparsable(String),
    #[error("proxy scheme {0:?} is not supported; use http://, socks5:// or socks5h://")]
    Scheme(String),
    #[error("the proxy URL has no host")]
    NoHost,
    #[error("the proxy URL has a path, query or fragment; a proxy is only scheme://host:port")]
    Path,
}

/// The port curl assumes for a proxy URL without one, whatever its scheme.
pub const DEFAULT_PROXY_PORT: u16 = 1080;

impl Proxy {
    /// Parses a proxy URL as curl takes it: `http://`, `socks5://` or
    /// `socks5h://` (no scheme means `http://`), credentials in the URL
    /// percent-encoded, port 1080 when none is given.
    pub fn parse(input: &str) -> Result<Proxy, ProxyUrlError> {
        let trimmed = input.trim();
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("http://{trimmed}")
        };
        let url =
            Url::parse(&with_scheme).map_err(|_| ProxyUrlError::Unparsable(redact(trimmed)))?;
        let kind = match url.scheme() {
            "http" => ProxyKind::Http,
            "socks5" => ProxyKind::Socks5 { remote_dns: false },
            "socks5h" => ProxyKind::Socks5 { remote_dns: true },
            other => return Err(ProxyUrlError::Scheme(other.to_owned())),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or(ProxyUrlError::NoHost)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
            return Err(ProxyUrlError::Path);
        }
        let decode = |text: &str| {
            percent_encoding::percent_decode_str(text)
                .decode_utf8_lossy()
                .into_owned()
        };
        let credentials = (!url.username().is_empty()).then(|| ProxyCredentials {
            username: decode(url.username()),
            password: Token::new(decode(url.password().unwrap_or_default())),
        });
        Ok(Proxy {
            kind,
            host,
            // `Url` knows http's port as 80; curl's proxies default to 1080.
            port: url.port().unwrap_or(DEFAULT_PROXY_PORT),
            credentials,
        })
    }

    /// The proxy as history, logs and the UI show it: scheme, host, port,
    /// and at most the user name.
    pub fn shown(&self) -> String {
        let scheme = match self.kind {
            ProxyKind::Http => "http",
            ProxyKind::Socks5 { remote_dns: false } => "socks5",
            ProxyKind::Socks5 { remote_dns: true } => "socks5h",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match &self.credentials {
            Some(credentials) => {
                format!("{scheme}://{}@{host}:{}", credentials.username, self.port)
            }
            None => format!("{scheme}://{host}:{}", self.port),
        }
    }

    /// The same proxy with `credentials` (from the keyring) in place of any
    /// it had.
    pub fn with_credentials(mut self, credentials: Option<ProxyCredentials>) -> Proxy {
        self.credentials = credentials;
        self
    }

    /// A TCP stream to `target`'s host and port, tunnelled through this
    /// proxy. Every failure names the proxy and says whose it was.
    pub async fn tunnel(
        &self,
        target: &FeedUrl,
        limit: std::time::Duration,
    ) -> Result<TcpStream, ConnectError> {
        let stream = crate::dial::connect_tcp(&self.host, self.port, limit)
            .await
            .map_err(|error| ConnectError::ProxyUnreachable {
                proxy: self.shown(),
                detail: error.to_string(),
            })?;
        let handshake = async {
            match self.kind {
                ProxyKind::Http => http_connect::tunnel(self, stream, target).await,
                ProxyKind::Socks5 { remote_dns } => {
                    socks::tunnel(self, stream, target, remote_dns, limit).await
                }
            }
        };
        match tokio::time::timeout(limit, handshake).await {
            Ok(result) => result,
            Err(_) => Err(ConnectError::Timeout {
                stage: format!("opening a tunnel through proxy {}", self.shown()),
                after_ms: limit.as_millis() as u64,
            }),
        }
    }
}

/// Where a proxy URL's password could be, it is replaced.
fn redact(input: &str) -> String {
    match (input.find("://"), input.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}<redacted>{}", &input[..scheme_end + 3], &input[at..])
        }
        (None, Some(at)) => format!("<redacted>{}", &input[at..]),
        _ => input.to_owned(),
    }
}

/// How a server is reached, as the user chose it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProxySetting {
    /// Always direct, whatever the environment says.
    None,
    /// As the system says: the environment as curl reads it, and the
    /// desktop's setting where there is one.
    #[default]
    System,
    /// This proxy for every attempt.
    Url(Proxy),
}

impl ProxySetting {
    /// `none`, `system`, or a proxy URL.
    pub fn parse(input: &str) -> Result<ProxySetting, ProxyUrlError> {
        match input.trim() {
            "none" => Ok(ProxySetting::None),
            "system" => Ok(ProxySetting::System),
            url => Proxy::parse(url).map(ProxySetting::Url),
        }
    }

    /// The proxy an attempt to `target` uses now, or `None` to go direct.
    /// The system's answer is read afresh for every attempt: a proxy
    /// setting that changed is taken at the next reconnect.
    pub fn for_target(
        &self,
        target: &FeedUrl,
        system: &dyn Environment,
    ) -> Result<Option<Proxy>, ConnectError> {
        match self {
            ProxySetting::None => Ok(None),
            ProxySetting::Url(proxy) => Ok(Some(proxy.clone())),
            ProxySetting::System => {
                from_environment(target, system).map_err(|error| ConnectError::ProxySetting {
                    detail: error.to_string(),
                })
            }
        }
    }

    /// As `for_target`, and where the system's proxy is asked for and the
    /// environment names none, the desktop's setting (GNOME's on Linux;
    /// elsewhere the environment only). Says where the answer came from.
    pub async fn resolve(
        &self,
        target: &FeedUrl,
        system: &dyn Environment,
    ) -> Result<(Option<Proxy>, ProxySource), ConnectError> {
        let source = match self {
            ProxySetting::None => ProxySource::Direct,
            ProxySetting::Url(_) => ProxySource::Setting,
            ProxySetting::System if names_a_proxy(target, system) => ProxySource::Environment,
            ProxySetting::System => return Ok(desktop_proxy(target).await),
        };
        self.for_target(target, system).map(|proxy| (proxy, source))
    }
}

/// Where an attempt's proxy came from, as the history says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxySource {
    Direct,
    Setting,
    Environment,
    Desktop,
}

impl ProxySource {
    pub fn name(self) -> &'static str {
        match self {
            ProxySource::Direct => "direct",
            ProxySource::Setting => "setting",
            ProxySource::Environment => "environment",
            ProxySource::Desktop => "desktop",
        }
    }
}

#[cfg(target_os = "linux")]
async fn desktop_proxy(target: &FeedUrl) -> (Option<Proxy>, ProxySource) {
    match gnome::read()
        .await
        .and_then(|settings| settings.proxy_for(target))
    {
        Some(proxy) => (Some(proxy), ProxySource::Desktop),
        None => (None, ProxySource::Direct),
    }
}

/// macOS and Windows keep their proxy settings in places no well-kept
/// crate reads for a raw TCP client (hyper-util's matcher reads them only
/// for its own HTTP client): the environment is their system proxy.
#[cfg(not(target_os = "linux"))]
async fn desktop_proxy(_target: &FeedUrl) -> (Option<Proxy>, ProxySource) {
    (None, ProxySource::Direct)
}

#[cfg(test)]
mod tests;
