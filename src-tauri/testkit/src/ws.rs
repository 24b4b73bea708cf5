//! Raw WebSocket ends for tests and benches that script one side of the
//! conversation by hand: an accept that answers with (or without) the
//! `holdline.v1` subprotocol, and a client request that offers it.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::handshake::server::{Request as Upgrade, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

pub use holdline_protocol::SUBPROTOCOL;

/// Completes the upgrade on `stream`, selecting `holdline.v1` when
/// `select_subprotocol` (a server that does not is a raw-mode peer).
pub async fn accept<S>(
    stream: S,
    select_subprotocol: bool,
) -> Result<WebSocketStream<S>, tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    accept_selecting(stream, select_subprotocol.then_some(SUBPROTOCOL)).await
}

/// Completes the upgrade on `stream`, selecting `subprotocol` if given.
pub async fn accept_selecting<S>(
    stream: S,
    subprotocol: Option<&'static str>,
) -> Result<WebSocketStream<S>, tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    #[allow(clippy::result_large_err)] // the callback's type is tungstenite's
    let callback = move |_: &Upgrade, mut response: Response| {
        if let Some(name) = subprotocol {
            response
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(name));
        }
        Ok(response)
    };
    tokio_tungstenite::accept_hdr_async(stream, callback).await
}

/// A client upgrade request for `url` that offers `holdline.v1`.
pub fn request(url: &str) -> Result<Request, tungstenite::Error> {
    let mut request = url.into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(request)
}
