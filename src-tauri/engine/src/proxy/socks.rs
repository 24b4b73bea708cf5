//! The SOCKS5 tunnel (RFC 1928, with RFC 1929 username/password), through
//! `tokio-socks`, the crate reqwest uses for its SOCKS proxies. What is
//! ours is where the name is resolved and what each failure means.

use tokio::net::{TcpStream, lookup_host};
use tokio_socks::tcp::Socks5Stream;
use tokio_socks::{Error as SocksError, TargetAddr};

use super::Proxy;
use crate::cause::ConnectError;
use crate::feed_url::FeedUrl;

pub(super) async fn tunnel(
    proxy: &Proxy,
    stream: TcpStream,
    target: &FeedUrl,
    remote_dns: bool,
    limit: std::time::Duration,
) -> Result<TcpStream, ConnectError> {
    let host = target.host().trim_start_matches('[').trim_end_matches(']');
    let port = target.port();
    let address = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => TargetAddr::Ip((ip, port).into()),
        Err(_) if remote_dns => TargetAddr::Domain(host.into(), port),
        Err(_) => TargetAddr::Ip(resolve_here(host, port, limit).await?),
    };
    let connected = match &proxy.credentials {
        Some(credentials) => {
            Socks5Stream::connect_with_password_and_socket(
                stream,
                address,
                &credentials.username,
                credentials.password.expose(),
            )
            .await
        }
        None => Socks5Stream::connect_with_socket(stream, address).await,
    };
    connected
        .map(Socks5Stream::into_inner)
        .map_err(|error| classify(proxy, error))
}

/// `socks5://`: the name is resolved here, as a direct attempt would.
async fn resolve_here(
    host: &str,
    port: u16,
    limit: std::time::Duration,
) -> Result<std::net::SocketAddr, ConnectError> {
    let resolved = tokio::time::timeout(limit, lookup_host((host, port)))
        .await
        .map_err(|_| ConnectError::Timeout {
            stage: format!("resolving {host}"),
            after_ms: limit.as_millis() as u64,
        })?;
    let dns = |detail: String| ConnectError::Dns {
        host: host.into(),
        detail,
    };
    resolved
        .map_err(|e| dns(e.to_string()))?
        .next()
        .ok_or_else(|| dns("no addresses".into()))
}

/// The reply code RFC 1928 gives a failure, when it is one.
pub(super) fn reply_code(error: &SocksError) -> Option<u8> {
    Some(match error {
        SocksError::GeneralSocksServerFailure => 1,
        SocksError::ConnectionNotAllowedByRuleset => 2,
        SocksError::NetworkUnreachable => 3,
        SocksError::HostUnreachable => 4,
        SocksError::ConnectionRefused => 5,
        SocksError::TtlExpired => 6,
        SocksError::CommandNotSupported => 7,
        SocksError::AddressTypeNotSupported => 8,
        _ => return None,
    })
}

/// Credentials refused or wanted: `ProxyAuth`. Replies 3 to 6 are the
/// proxy failing to reach the server; other replies are the proxy
/// refusing; anything else is the proxy connection failing.
pub(super) fn classify(proxy: &Proxy, error: SocksError) -> ConnectError {
    let shown = proxy.shown();
    let reply = reply_code(&error);
    let detail = match reply {
        Some(code) => format!("SOCKS reply {code}: {}", error.to_string().to_lowercase()),
        None => error.to_string(),
    };
    match (&error, reply) {
        (SocksError::PasswordAuthFailure(_), _) => ConnectError::ProxyAuth {
            proxy: shown,
            detail: format!("it refused the credentials ({detail})"),
        },
        (SocksError::NoAcceptableAuthMethods | SocksError::AuthorizationRequired, _) => {
            ConnectError::ProxyAuth {
                proxy: shown,
                detail: if proxy.credentials.is_some() {
                    format!("it accepts no way of logging in that we offer ({detail})")
                } else {
                    format!("it wants credentials ({detail})")
                },
            }
        }
        (_, Some(3..=6)) => ConnectError::ProxyTargetFailed {
            proxy: shown,
            status: None,
            socks_reply: reply,
            detail,
        },
        (_, Some(_)) => ConnectError::ProxyRefused {
            proxy: shown,
            status: None,
            socks_reply: reply,
            detail,
        },
        (SocksError::Io(e), None) => ConnectError::ProxyUnreachable {
            proxy: shown,
            detail: format!("the connection to the proxy failed during the SOCKS handshake: {e}"),
        },
        (_, None) => ConnectError::ProxyRefused {
            proxy: shown,
            status: None,
            socks_reply: None,
            detail: format!("its SOCKS answer cannot be used: {detail}"),
        },
    }
}
