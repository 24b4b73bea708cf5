//! The HTTP `CONNECT` tunnel (RFC 9110 §9.3.6): one request, one response
//! head, then the stream is the server's. Written here rather than taken
//! from a crate because the ones that exist either hide the proxy's status
//! (hyper-util's `Tunnel` says only "unsuccessful") or are unmaintained;
//! the response head is parsed by `httparse`.

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Proxy;
use crate::cause::ConnectError;
use crate::feed_url::FeedUrl;

/// A proxy's answer head beyond this is not a proxy's answer.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// The request, with Basic credentials when the proxy has some.
pub(super) fn request(proxy: &Proxy, target: &FeedUrl) -> String {
    let authority = authority(target);
    let mut request = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nProxy-Connection: keep-alive\r\n"
    );
    if let Some(credentials) = &proxy.credentials {
        let pair = format!("{}:{}", credentials.username, credentials.password.expose());
        let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
        request.push_str(&format!("Proxy-Authorization: Basic {encoded}\r\n"));
    }
    request.push_str("\r\n");
    request
}

fn authority(target: &FeedUrl) -> String {
    let host = target.host();
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{}", target.port())
    } else {
        format!("{host}:{}", target.port())
    }
}

pub(super) async fn tunnel(
    proxy: &Proxy,
    mut stream: TcpStream,
    target: &FeedUrl,
) -> Result<TcpStream, ConnectError> {
    let lost = |error: std::io::Error| ConnectError::ProxyUnreachable {
        proxy: proxy.shown(),
        detail: format!("the connection to the proxy failed during CONNECT: {error}"),
    };
    stream
        .write_all(request(proxy, target).as_bytes())
        .await
        .map_err(lost)?;
    // Read byte by byte up to the blank line: whatever follows belongs to
    // the tunnel (the server's first bytes) and must stay in the stream.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_RESPONSE_HEAD {
            return Err(refused(
                proxy,
                None,
                "its answer to CONNECT is too long".into(),
            ));
        }
        let read = stream.read(&mut byte).await.map_err(lost)?;
        if read == 0 {
            return Err(ConnectError::ProxyUnreachable {
                proxy: proxy.shown(),
                detail: "the proxy closed the connection before answering CONNECT".into(),
            });
        }
        head.push(byte[0]);
    }
    let (status, reason) = parse_status(&head).map_err(|detail| refused(proxy, None, detail))?;
    judge(proxy, status, &reason)?;
    Ok(stream)
}

/// The status and reason of a response head.
pub(super) fn parse_status(head: &[u8]) -> Result<(u16, String), String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => Ok((
            response.code.unwrap_or_default(),
            response.reason.unwrap_or_default().to_owned(),
        )),
        Ok(httparse::Status::Partial) => Err("its answer to CONNECT was cut short".into()),
        Err(error) => Err(format!("its answer to CONNECT is not HTTP ({error})")),
    }
}

/// What the proxy's status means: 2xx is a tunnel; 407 wants credentials
/// (and so does 401: a CONNECT is addressed to the proxy alone, and
/// tinyproxy answers wrong credentials with it); 5xx is the proxy failing
/// to open the tunnel, mostly because it could not reach the server
/// (tinyproxy says 500 "Unable to connect", squid 503); anything else is
/// the proxy refusing.
pub(super) fn judge(proxy: &Proxy, status: u16, reason: &str) -> Result<(), ConnectError> {
    let detail = format!("HTTP {status} {reason}").trim_end().to_owned();
    match status {
        200..=299 => Ok(()),
        401 | 407 => Err(ConnectError::ProxyAuth {
            proxy: proxy.shown(),
            detail: if proxy.credentials.is_some() {
                format!("it refused the credentials ({detail})")
            } else {
                format!("it wants credentials ({detail})")
            },
        }),
        500..=599 => Err(ConnectError::ProxyTargetFailed {
            proxy: proxy.shown(),
            status: Some(status),
            socks_reply: None,
            detail,
        }),
        _ => Err(refused(proxy, Some(status), detail)),
    }
}

fn refused(proxy: &Proxy, status: Option<u16>, detail: String) -> ConnectError {
    ConnectError::ProxyRefused {
        proxy: proxy.shown(),
        status,
        socks_reply: None,
        detail,
    }
}
