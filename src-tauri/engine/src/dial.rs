//! One connection attempt: DNS, TCP, TLS, upgrade. Each stage is done and
//! timed separately so a failure names its stage precisely.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use holdline_protocol::SUBPROTOCOL;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::{TcpStream, lookup_host};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::cause::ConnectError;
use crate::feed_url::FeedUrl;
use crate::secret::Token;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Dialed {
    pub socket: Socket,
    /// The server selected `holdline.v1`; otherwise this is raw mode.
    pub holdline: bool,
}

pub struct DialOptions {
    pub timeout: Duration,
    pub max_frame_bytes: usize,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// The rustls configuration: the platform's roots, plus an extra CA file.
/// Verification is always on; there is deliberately no way to turn it off.
pub fn tls_config(extra_ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // One unusable platform certificate must not sink the others.
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_ca_file {
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| ConnectError::Tls {
            detail: format!("cannot read CA file {}: {e}", path.display()),
        })?;
        for cert in certs {
            let cert = cert.map_err(|e| ConnectError::Tls {
                detail: format!("bad certificate in {}: {e}", path.display()),
            })?;
            roots.add(cert).map_err(|e| ConnectError::Tls {
                detail: format!("unusable certificate in {}: {e}", path.display()),
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Tls {
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

pub async fn dial(
    url: &FeedUrl,
    token: Option<&Token>,
    options: &DialOptions,
) -> Result<Dialed, ConnectError> {
    match upgrade(url, token, options, true).await {
        Err(UpgradeError::NoSubprotocol) => {
            // tungstenite refuses a reply without the offered subprotocol.
            // Such a server speaks something else: ask again without the
            // offer and run in raw mode (protocol section 1).
            match upgrade(url, token, options, false).await {
                Ok(socket) => Ok(Dialed {
                    socket,
                    holdline: false,
                }),
                Err(UpgradeError::NoSubprotocol) => Err(ConnectError::Handshake {
                    detail: "subprotocol negotiation failed".into(),
                }),
                Err(UpgradeError::Connect(e)) => Err(e),
            }
        }
        Err(UpgradeError::Connect(e)) => Err(e),
        Ok(socket) => Ok(Dialed {
            socket,
            holdline: true,
        }),
    }
}

enum UpgradeError {
    NoSubprotocol,
    Connect(ConnectError),
}

impl From<ConnectError> for UpgradeError {
    fn from(e: ConnectError) -> Self {
        UpgradeError::Connect(e)
    }
}

async fn upgrade(
    url: &FeedUrl,
    token: Option<&Token>,
    options: &DialOptions,
    offer_subprotocol: bool,
) -> Result<Socket, UpgradeError> {
    let tcp = connect_tcp(url, options.timeout).await?;
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| ConnectError::Handshake {
            detail: e.to_string(),
        })?;
    if offer_subprotocol {
        request.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    if let Some(token) = token.filter(|t| !t.is_empty()) {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", token.expose())).map_err(|_| {
                ConnectError::Handshake {
                    detail: "the token contains characters an HTTP header cannot carry".into(),
                }
            })?;
        value.set_sensitive(true);
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    let connector = if url.is_tls() {
        let tls = options.tls.clone().ok_or_else(|| ConnectError::Tls {
            detail: "no TLS configuration".into(),
        })?;
        Connector::Rustls(tls)
    } else {
        Connector::Plain
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(options.max_frame_bytes))
        .max_frame_size(Some(options.max_frame_bytes));
    let handshake = tokio_tungstenite::client_async_tls_with_config(
        request,
        tcp,
        Some(config),
        Some(connector),
    );
    let stage = if url.is_tls() {
        "TLS handshake and upgrade"
    } else {
        "upgrade"
    };
    match timeout(options.timeout, handshake).await {
        Err(_) => Err(ConnectError::Timeout {
            stage: stage.into(),
            after_ms: options.timeout.as_millis() as u64,
        }
        .into()),
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(
            SubProtocolError::NoSubProtocol,
        )))) => Err(UpgradeError::NoSubprotocol),
        Ok(Err(err)) => Err(classify(err).into()),
    }
}

async fn connect_tcp(url: &FeedUrl, limit: Duration) -> Result<TcpStream, ConnectError> {
    let host = url.host().trim_start_matches('[').trim_end_matches(']');
    let port = url.port();
    // Resolved afresh on every attempt: a server that moved is found again.
    let addrs: Vec<_> = match timeout(limit, lookup_host((host, port))).await {
        Err(_) => {
            return Err(ConnectError::Timeout {
                stage: format!("resolving {host}"),
                after_ms: limit.as_millis() as u64,
            });
        }
        Ok(Err(e)) => {
            return Err(ConnectError::Dns {
                host: host.into(),
                detail: e.to_string(),
            });
        }
        Ok(Ok(addrs)) => addrs.collect(),
    };
    let mut last_error = ConnectError::Dns {
        host: host.into(),
        detail: "no addresses".into(),
    };
    for addr in addrs {
        match timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // Small frames (pings, acks) should not wait for Nagle.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                last_error = ConnectError::Refused {
                    addr: addr.to_string(),
                };
            }
            Ok(Err(e)) => {
                last_error = ConnectError::Io {
                    detail: format!("connecting to {addr}: {e}"),
                };
            }
            Err(_) => {
                last_error = ConnectError::Timeout {
                    stage: format!("connecting to {addr}"),
                    after_ms: limit.as_millis() as u64,
                };
            }
        }
    }
    Err(last_error)
}

/// rustls's words, plus what a person can do about the common ones.
fn explain_tls(detail: String) -> String {
    let hint = if detail.contains("UnknownIssuer") {
        "the server's certificate is not signed by an authority this system trusts; \
         if it uses a private CA, add that CA's certificate as an extra CA file"
    } else if detail.to_lowercase().contains("expired") {
        "the server's certificate has expired; the server must renew it"
    } else if detail.contains("NotValidForName") {
        "the server's certificate is for another host name than the URL's"
    } else {
        return detail;
    };
    format!("{hint} ({detail})")
}

fn classify(err: WsError) -> ConnectError {
    match err {
        WsError::Http(response) => {
            let retry_after_s = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            let body = response
                .body()
                .as_deref()
                .map(|b| {
                    String::from_utf8_lossy(&b[..b.len().min(200)])
                        .trim()
                        .to_owned()
                })
                .unwrap_or_default();
            ConnectError::HttpStatus {
                status: response.status().as_u16(),
                retry_after_s,
                body,
            }
        }
        WsError::Tls(e) => ConnectError::Tls {
            detail: explain_tls(e.to_string()),
        },
        WsError::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => ConnectError::Tls {
            detail: explain_tls(e.to_string()),
        },
        WsError::Io(e) => ConnectError::Io {
            detail: e.to_string(),
        },
        other => ConnectError::Handshake {
            detail: other.to_string(),
        },
    }
}
