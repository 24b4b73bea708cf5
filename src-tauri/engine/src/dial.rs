//! One connection attempt: DNS, TCP, TLS, upgrade, and where the token
//! goes on the upgrade, for every wire. Each stage is done and timed
//! separately so a failure names its stage precisely.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::{TcpStream, lookup_host};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError, SubProtocolError};
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::cause::ConnectError;
use crate::client_certificate::{Identity, IdentityFacts};
use crate::feed_url::FeedUrl;
use crate::profile::{Auth, Placeholder, REDACTED, Vars};
use crate::proxy::Proxy;
use crate::secret::Token;
use crate::wire::Upgrade;

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Dialed {
    pub socket: Socket,
    /// The subprotocol the server selected, if any.
    pub subprotocol: Option<String>,
}

pub struct DialOptions {
    pub timeout: Duration,
    pub max_frame_bytes: usize,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Our client certificate, when the TLS configuration presents one.
    pub identity: Option<IdentityFacts>,
    /// The proxy this attempt tunnels through; `None` dials direct.
    pub proxy: Option<Proxy>,
}

/// The rustls configuration: the platform's roots, plus an extra CA file,
/// and our client certificate when there is one. Verification is always
/// on; there is deliberately no way to turn it off.
pub fn tls_config(
    extra_ca_file: Option<&Path>,
    identity: Option<Identity>,
) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
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
        .with_root_certificates(roots);
    let config = match identity {
        None => config.with_no_client_auth(),
        Some(identity) => config
            .with_client_auth_cert(identity.chain, identity.key)
            .map_err(|e| ConnectError::ClientCertificate {
                detail: format!(
                    "the key does not fit the certificate, or is of a kind TLS cannot use: {e}"
                ),
            })?,
    };
    Ok(Arc::new(config))
}

pub async fn dial(
    url: &FeedUrl,
    upgrade: &Upgrade,
    token: Option<&Token>,
    options: &DialOptions,
) -> Result<Dialed, ConnectError> {
    let offer = !upgrade.subprotocols.is_empty();
    match attempt_upgrade(url, upgrade, token, options, offer).await {
        Err(UpgradeError::NoSubprotocol) if upgrade.retry_without_subprotocol => {
            // tungstenite refuses a reply without an offered subprotocol.
            // Such a server speaks something else (holdline.v1: raw mode):
            // ask again without the offer.
            match attempt_upgrade(url, upgrade, token, options, false).await {
                Ok(dialed) => Ok(dialed),
                Err(UpgradeError::NoSubprotocol) => Err(ConnectError::Handshake {
                    detail: "subprotocol negotiation failed".into(),
                }),
                Err(UpgradeError::Connect(e)) => Err(e),
            }
        }
        Err(UpgradeError::NoSubprotocol) => Err(ConnectError::Handshake {
            detail: format!(
                "the server selected none of the offered subprotocols ({})",
                upgrade.subprotocols.join(", ")
            ),
        }),
        Err(UpgradeError::Connect(e)) => Err(e),
        Ok(dialed) => Ok(dialed),
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

fn header_error(detail: String) -> ConnectError {
    ConnectError::Handshake { detail }
}

/// The upgrade request: the URL (plus the token as a query parameter when
/// the profile puts it there), the offered subprotocols, the token where
/// the profile says, and the profile's extra headers. Values that carry
/// the token are marked sensitive so no dump prints them.
fn request(
    url: &FeedUrl,
    upgrade: &Upgrade,
    token: Option<&Token>,
    offer_subprotocol: bool,
) -> Result<Request, ConnectError> {
    let token = token.filter(|t| !t.is_empty());
    let mut target = url::Url::parse(url.as_str()).map_err(|e| header_error(e.to_string()))?;
    if let Some(path) = &upgrade.path {
        target.set_path(path);
    }
    if !upgrade.query.is_empty() {
        target.query_pairs_mut().extend_pairs(&upgrade.query);
    }
    if let (Auth::Query(name), Some(token)) = (&upgrade.auth, token) {
        target.query_pairs_mut().append_pair(name, token.expose());
    }
    let mut request = target
        .as_str()
        .into_client_request()
        .map_err(|e| header_error(e.to_string()))?;
    let headers = request.headers_mut();
    if offer_subprotocol {
        let offered = HeaderValue::from_str(&upgrade.subprotocols.join(", "))
            .map_err(|_| header_error("a subprotocol name an HTTP header cannot carry".into()))?;
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, offered);
    }
    let secret = |value: String| {
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            header_error("the token contains characters an HTTP header cannot carry".into())
        })?;
        value.set_sensitive(true);
        Ok::<_, ConnectError>(value)
    };
    match (&upgrade.auth, token) {
        (Auth::Bearer, Some(token)) => {
            headers.insert(
                header::AUTHORIZATION,
                secret(format!("Bearer {}", token.expose()))?,
            );
        }
        (Auth::Header(name), Some(token)) => {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| header_error(format!("{name:?} is not a header name")))?;
            headers.insert(name, secret(token.expose().to_owned())?);
        }
        _ => {}
    }
    for (name, template) in &upgrade.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| header_error(format!("{name:?} is not a header name")))?;
        let vars = Vars {
            token: token.map(Token::expose),
            ..Vars::default()
        };
        let text = template.render_text(&vars);
        let value = if token.is_some() && template.uses(&Placeholder::Token) {
            secret(text)?
        } else {
            HeaderValue::from_str(&text).map_err(|_| {
                let shown = template.render_text(&Vars {
                    token: Some(REDACTED),
                    ..Vars::default()
                });
                header_error(format!(
                    "header {name}: {shown:?} is not a valid header value"
                ))
            })?
        };
        headers.insert(name, value);
    }
    Ok(request)
}

async fn attempt_upgrade(
    url: &FeedUrl,
    upgrade: &Upgrade,
    token: Option<&Token>,
    options: &DialOptions,
    offer_subprotocol: bool,
) -> Result<Dialed, UpgradeError> {
    let request = request(url, upgrade, token, offer_subprotocol)?;
    let tcp = match &options.proxy {
        Some(proxy) => proxy.tunnel(url, options.timeout).await?,
        None => connect_tcp(url.host(), url.port(), options.timeout).await?,
    };
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
        Ok(Ok((socket, response))) => {
            let subprotocol = response
                .headers()
                .get(header::SEC_WEBSOCKET_PROTOCOL)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_owned());
            Ok(Dialed {
                socket,
                subprotocol,
            })
        }
        Ok(Err(WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(
            SubProtocolError::NoSubProtocol,
        )))) => Err(UpgradeError::NoSubprotocol),
        Ok(Err(err)) => Err(classify(err, options.identity.as_ref()).into()),
    }
}

/// A TCP connection to `host` (a name or an address) and `port`: every
/// address the name resolves to is tried in turn.
pub(crate) async fn connect_tcp(
    host: &str,
    port: u16,
    limit: Duration,
) -> Result<TcpStream, ConnectError> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
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

fn classify(err: WsError, identity: Option<&IdentityFacts>) -> ConnectError {
    if let Some(error) = client_certificate_error(&err, identity) {
        return error;
    }
    match err {
        WsError::Http(response) => {
            let retry_after_s = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            ConnectError::HttpStatus {
                status: response.status().as_u16(),
                retry_after_s,
                body: body_start(&response),
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

fn body_start(response: &tokio_tungstenite::tungstenite::handshake::client::Response) -> String {
    response
        .body()
        .as_deref()
        .map(|b| {
            String::from_utf8_lossy(&b[..b.len().min(200)])
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// The rustls error inside a failed handshake, wherever tungstenite put it.
fn rustls_error(err: &WsError) -> Option<&rustls::Error> {
    match err {
        WsError::Tls(tokio_tungstenite::tungstenite::error::TlsError::Rustls(e)) => Some(e),
        WsError::Io(e) => e.get_ref()?.downcast_ref::<rustls::Error>(),
        _ => None,
    }
}

/// What a server said about our client certificate, if that is what
/// failed. Servers say it two ways: a TLS alert (`certificate_required`,
/// `bad_certificate`, `certificate_expired`, …), or, like nginx with
/// `ssl_verify_client on`, a finished handshake and then HTTP 400 (or its
/// own 495/496) naming the certificate. A rejected certificate of ours
/// whose notAfter has passed is told as expired.
fn client_certificate_error(
    err: &WsError,
    identity: Option<&IdentityFacts>,
) -> Option<ConnectError> {
    use rustls::AlertDescription as Alert;
    enum Verdict {
        Required,
        Rejected,
    }
    let (verdict, detail) = match err {
        WsError::Http(response) => {
            let status = response.status().as_u16();
            let body = body_start(response);
            let detail = format!("HTTP {status}: {body}");
            if status == 496 || (status == 400 && body.contains("No required SSL certificate")) {
                (Verdict::Required, detail)
            } else if status == 495 || (status == 400 && body.contains("SSL certificate error")) {
                (Verdict::Rejected, detail)
            } else {
                return None;
            }
        }
        _ => match rustls_error(err)? {
            rustls::Error::AlertReceived(Alert::CertificateRequired) => {
                (Verdict::Required, "TLS alert certificate_required".into())
            }
            rustls::Error::AlertReceived(
                alert @ (Alert::BadCertificate
                | Alert::UnsupportedCertificate
                | Alert::CertificateRevoked
                | Alert::CertificateExpired
                | Alert::CertificateUnknown
                | Alert::UnknownCA
                | Alert::AccessDenied),
            ) if identity.is_some() => (Verdict::Rejected, format!("TLS alert {alert:?}")),
            _ => return None,
        },
    };
    Some(match (verdict, identity) {
        (Verdict::Required, None) | (Verdict::Rejected, None) => {
            ConnectError::ClientCertificateRequired { detail }
        }
        // A server that says "none sent" although one was offered did not
        // take ours: for it, ours is as good as none.
        (Verdict::Required | Verdict::Rejected, Some(facts)) => {
            let now_s = crate::events::now_ms() / 1000;
            if facts.expired_at(now_s) {
                ConnectError::ClientCertificateExpired {
                    subject: facts.subject.clone(),
                    not_after: facts.not_after(),
                    detail,
                }
            } else {
                ConnectError::ClientCertificateRejected {
                    subject: facts.subject.clone(),
                    detail,
                }
            }
        }
    })
}
