//! One client's connection: upgrade, welcome, requests, fan-out, heartbeat.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use holdline_protocol::{
    Ack, ClientFrame, ErrorFrame, Pong, ServerFrame, Subscribed, Unsubscribed, Welcome,
    decode_client_frame, error_code, validate_feed_name,
};
use tokio::net::TcpStream;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tracing::{debug, info, warn};

use crate::Shared;
use crate::auth::{Admission, Principal, Refusal, offers_subprotocol};
use crate::feeds::Subscriber;
use crate::log::{Accepted, Appending, LOG_TIMEOUT, LogError, PublishKey};

/// Admin messages to every connection (tests and embedding use them).
#[derive(Debug, Clone)]
pub enum Control {
    CloseAll { code: u16, reason: String },
}

/// Queued frames written per wake-up before the socket is flushed.
const WRITE_BATCH: usize = 256;
/// Publishes of one client waiting for the log; beyond this the client's
/// frames wait in its socket (backpressure) instead of in memory here.
const PUBLISHES_IN_FLIGHT: usize = 1024;

/// A publish waiting for the log, answered in the order it came.
type PendingAck = std::pin::Pin<Box<dyn Future<Output = Message> + Send>>;

fn refusal(status: StatusCode, retry_after_s: Option<u64>, body: &str) -> ErrorResponse {
    let mut response = Response::builder().status(status);
    if let Some(secs) = retry_after_s {
        response = response.header(header::RETRY_AFTER, secs.to_string());
    }
    response
        .body(Some(body.to_owned()))
        .unwrap_or_else(|_| ErrorResponse::new(Some(body.to_owned())))
}

// tungstenite's handshake callback returns its own (large) error type.
#[allow(clippy::result_large_err)]
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    control: broadcast::Receiver<Control>,
) {
    shared.stats.handshakes.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay(true);
    let mut admission = None;
    let gate_shared = shared.clone();
    let callback = |request: &Request, mut response: Response| {
        if let Some(rejection) = gate_shared.rejection() {
            let status =
                StatusCode::from_u16(rejection.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            return Err(refusal(status, rejection.retry_after_s, "try again later"));
        }
        match gate_shared.gate.check(request) {
            Ok(admitted) => admission = Some(admitted),
            Err(Refusal::Unauthorized) => {
                return Err(refusal(
                    StatusCode::UNAUTHORIZED,
                    None,
                    "missing or invalid token",
                ));
            }
            Err(Refusal::ForbiddenOrigin(origin)) => {
                return Err(refusal(
                    StatusCode::FORBIDDEN,
                    None,
                    &format!("origin {origin} is not allowed"),
                ));
            }
        }
        if offers_subprotocol(request) {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(holdline_protocol::SUBPROTOCOL),
            );
        }
        Ok(response)
    };
    let hard_limit = shared.config.hard_frame_limit();
    let config = WebSocketConfig::default()
        .max_message_size(Some(hard_limit))
        .max_frame_size(Some(hard_limit));
    let upgrade = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let socket = match timeout(shared.config.handshake_timeout, upgrade).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(err)) => {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            debug!(%peer, %err, "upgrade refused or failed");
            return;
        }
        Err(_) => {
            debug!(%peer, "upgrade timed out");
            return;
        }
    };
    let Some(Admission {
        principal,
        expires_at,
    }) = admission
    else {
        return;
    };
    // When the token expires the connection ends with 4001: the client
    // needs a fresh token to go on (and resumes from its cursor).
    let token_expires = expires_at
        .map(|at| Instant::now() + at.duration_since(SystemTime::now()).unwrap_or_default());
    let client_id = shared.next_client.fetch_add(1, Ordering::Relaxed);
    let (queue_tx, queue_rx) = mpsc::channel(shared.config.send_queue.max(1));
    let mut connection = Connection {
        socket,
        shared: shared.clone(),
        client_id,
        principal,
        token_expires,
        subscriptions: HashSet::new(),
        queue_tx,
        queue_rx,
        overflowed: Arc::new(Notify::new()),
        log_restarted: Arc::new(Notify::new()),
        pending_acks: FuturesOrdered::new(),
    };
    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
    info!(%peer, client = client_id, "client connected");
    let ended = connection.run(shutdown, control).await;
    connection.leave_feeds();
    shared.stats.connections.fetch_sub(1, Ordering::Relaxed);
    info!(%peer, client = client_id, ended, "client disconnected");
}

struct Connection {
    socket: WebSocketStream<TcpStream>,
    shared: Arc<Shared>,
    client_id: u64,
    principal: Principal,
    token_expires: Option<Instant>,
    subscriptions: HashSet<String>,
    queue_tx: mpsc::Sender<Utf8Bytes>,
    queue_rx: mpsc::Receiver<Utf8Bytes>,
    overflowed: Arc<Notify>,
    log_restarted: Arc<Notify>,
    pending_acks: FuturesOrdered<PendingAck>,
}

type Ended = &'static str;

impl Connection {
    async fn run(
        &mut self,
        mut shutdown: watch::Receiver<bool>,
        mut control: broadcast::Receiver<Control>,
    ) -> Ended {
        let heartbeat = self.shared.config.heartbeat;
        let welcome = ServerFrame::Welcome(Welcome {
            session: format!("s{}-{:08x}", self.client_id, fastrand::u32(..)),
            heartbeat_ms: heartbeat.as_millis() as u64,
            max_frame_bytes: self.shared.config.max_frame_bytes as u64,
            server: format!("holdline-server/{}", env!("CARGO_PKG_VERSION")),
        });
        if self
            .send(vec![Message::text(welcome.to_json())])
            .await
            .is_err()
        {
            return "write failed";
        }
        let mut ping = interval(heartbeat);
        ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ping.tick().await;
        let mut last_heard = Instant::now();
        // The rare signals wait in futures made once, not once per frame:
        // every publish wakes every subscriber, and registering a waiter
        // takes a lock each time.
        let shutting_down = async move {
            let _ = shutdown.changed().await;
        };
        tokio::pin!(shutting_down);
        let control_message = async move {
            loop {
                match control.recv().await {
                    Ok(message) => return Some(message),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        };
        tokio::pin!(control_message);
        let overflowed = self.overflowed.clone();
        let overflow = overflowed.notified();
        tokio::pin!(overflow);
        let log_restarted = self.log_restarted.clone();
        let restarted = log_restarted.notified();
        tokio::pin!(restarted);
        let token_expires = self.token_expires;
        let token_expiry = async move {
            match token_expires {
                Some(at) => sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(token_expiry);
        loop {
            let outgoing = tokio::select! {
                biased;
                () = &mut shutting_down => {
                    self.close(CloseCode::Away, "server shutting down").await;
                    return "server shutdown";
                }
                message = &mut control_message => match message {
                    Some(Control::CloseAll { code, reason }) => {
                        self.close(CloseCode::from(code), &reason).await;
                        return "closed by the server";
                    }
                    None => {
                        self.close(CloseCode::Away, "server shutting down").await;
                        return "server gone";
                    }
                },
                () = &mut overflow => {
                    warn!(client = self.client_id, "slow consumer: closing with 4008");
                    self.shared.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
                    self.close(CloseCode::from(holdline_protocol::close::SLOW_CONSUMER),
                        "slow consumer: backlog dropped").await;
                    return "slow consumer";
                }
                () = &mut token_expiry => {
                    self.close(CloseCode::from(holdline_protocol::close::TOKEN_EXPIRED),
                        "token expired").await;
                    return "token expired";
                }
                () = &mut restarted => {
                    // The client resubscribes with its cursor and hears of
                    // the new epoch (a reset marker) from the answer.
                    self.close(CloseCode::Restart, "the feed log lost its data; subscribe again").await;
                    return "feed log restarted";
                }
                frame = self.queue_rx.recv() => {
                    let Some(first) = frame else { return "queue closed" };
                    let mut batch = vec![Message::Text(first)];
                    while batch.len() < WRITE_BATCH {
                        match self.queue_rx.try_recv() {
                            Ok(more) => batch.push(Message::Text(more)),
                            Err(_) => break,
                        }
                    }
                    batch
                }
                Some(ack) = self.pending_acks.next(), if !self.pending_acks.is_empty() => vec![ack],
                message = self.socket.next(), if self.pending_acks.len() < PUBLISHES_IN_FLIGHT => {
                    last_heard = Instant::now();
                    match message {
                        None => return "client went away",
                        Some(Err(WsError::Capacity(err))) => {
                            let reason = format!("frame too big: {err}");
                            self.close(CloseCode::Size, &reason).await;
                            return "frame over the hard limit";
                        }
                        Some(Err(_)) => return "read failed",
                        Some(Ok(Message::Close(_))) => return "client closed",
                        Some(Ok(message)) => self.on_message(message).await,
                    }
                }
                _ = ping.tick() => {
                    // A client is expected to answer pings and send its own;
                    // three silent periods mean it is gone.
                    if last_heard.elapsed() > heartbeat * 3 {
                        return "client silent";
                    }
                    vec![Message::Ping(Vec::new().into())]
                }
            };
            if !outgoing.is_empty() && self.send(outgoing).await.is_err() {
                return "write failed";
            }
        }
    }

    async fn send(&mut self, messages: Vec<Message>) -> Result<(), ()> {
        let limit = self.shared.config.heartbeat * 2;
        let socket = &mut self.socket;
        let writing = async {
            for message in messages {
                socket.feed(message).await?;
            }
            socket.flush().await
        };
        match timeout(limit, writing).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    async fn close(&mut self, code: CloseCode, reason: &str) {
        let frame = CloseFrame {
            code,
            reason: reason.chars().take(120).collect::<String>().into(),
        };
        let closing = async {
            self.socket.close(Some(frame)).await?;
            while let Some(Ok(_)) = self.socket.next().await {}
            Ok::<(), WsError>(())
        };
        let _ = timeout(Duration::from_secs(2), closing).await;
    }

    async fn on_message(&mut self, message: Message) -> Vec<Message> {
        match message {
            Message::Text(text) => {
                if text.len() > self.shared.config.max_frame_bytes {
                    let id = match decode_client_frame(&text) {
                        Ok(frame) => Some(frame.id().to_owned()),
                        Err(malformed) => malformed.id,
                    };
                    return vec![error(
                        id,
                        error_code::TOO_LARGE,
                        format!(
                            "frame of {} bytes exceeds max_frame_bytes {}",
                            text.len(),
                            self.shared.config.max_frame_bytes
                        ),
                    )];
                }
                match decode_client_frame(&text) {
                    Ok(frame) => self.on_frame(frame).await,
                    Err(malformed) => vec![error(
                        malformed.id,
                        error_code::BAD_REQUEST,
                        malformed.reason,
                    )],
                }
            }
            Message::Binary(_) => vec![error(
                None,
                error_code::BAD_REQUEST,
                "binary frames are not part of holdline.v1".into(),
            )],
            _ => Vec::new(),
        }
    }

    async fn on_frame(&mut self, frame: ClientFrame) -> Vec<Message> {
        match frame {
            ClientFrame::Ping(ping) => vec![text(ServerFrame::Pong(Pong { id: ping.id }))],
            ClientFrame::Subscribe(sub) => {
                if let Err(e) = validate_feed_name(&sub.feed) {
                    return vec![error(Some(sub.id), error_code::INVALID_FEED, e.to_string())];
                }
                let subscriber = Subscriber {
                    client_id: self.client_id,
                    queue: self.queue_tx.clone(),
                    overflowed: self.overflowed.clone(),
                    log_restarted: self.log_restarted.clone(),
                };
                let subscription = match self
                    .shared
                    .feeds
                    .subscribe(&sub.feed, sub.since, sub.epoch.as_deref(), subscriber)
                    .await
                {
                    Ok(subscription) => subscription,
                    Err(err) => return vec![log_error(Some(sub.id), &err)],
                };
                self.subscriptions.insert(sub.feed.clone());
                let mut out = Vec::with_capacity(subscription.replay.len() + 1);
                out.push(text(ServerFrame::Subscribed(Subscribed {
                    id: sub.id,
                    feed: sub.feed,
                    epoch: subscription.epoch,
                    head: subscription.head,
                    replay_from: subscription.replay_from,
                    gap: subscription.gap,
                })));
                out.extend(subscription.replay.into_iter().map(Message::Text));
                out
            }
            ClientFrame::Unsubscribe(unsub) => {
                if let Err(e) = validate_feed_name(&unsub.feed) {
                    return vec![error(
                        Some(unsub.id),
                        error_code::INVALID_FEED,
                        e.to_string(),
                    )];
                }
                if self.shared.feeds.unsubscribe(&unsub.feed, self.client_id) {
                    self.subscriptions.remove(&unsub.feed);
                    vec![text(ServerFrame::Unsubscribed(Unsubscribed {
                        id: unsub.id,
                        feed: unsub.feed,
                    }))]
                } else {
                    vec![error(
                        Some(unsub.id),
                        error_code::NOT_SUBSCRIBED,
                        format!("not subscribed to {}", unsub.feed),
                    )]
                }
            }
            ClientFrame::Publish(publish) => {
                if let Err(e) = validate_feed_name(&publish.feed) {
                    return vec![error(
                        Some(publish.id),
                        error_code::INVALID_FEED,
                        e.to_string(),
                    )];
                }
                if self.shared.read_only_feeds.contains(publish.feed.as_str()) {
                    return vec![error(
                        Some(publish.id),
                        error_code::FORBIDDEN,
                        format!("{} is written by the server only", publish.feed),
                    )];
                }
                let key = PublishKey {
                    principal: self.principal.clone(),
                    id: publish.id.clone(),
                };
                let appending = self
                    .shared
                    .feeds
                    .publish(&publish.feed, &publish.data, Some(key));
                let id = publish.id;
                if let Appending::Done(_) = appending
                    && self.pending_acks.is_empty()
                {
                    let outcome = appending
                        .now_or_never()
                        .unwrap_or_else(|| Err(LogError::Unavailable("no answer".into())));
                    return vec![ack_or_error(id, outcome)];
                }
                // A log that has not answered in time may never: the
                // client hears `internal` and sends the same id again.
                self.pending_acks.push_back(Box::pin(async move {
                    let outcome = tokio::time::timeout(LOG_TIMEOUT * 2, appending)
                        .await
                        .unwrap_or_else(|_| {
                            Err(LogError::Unavailable(
                                "no answer from the log in time".into(),
                            ))
                        });
                    ack_or_error(id, outcome)
                }));
                Vec::new()
            }
        }
    }

    fn leave_feeds(&mut self) {
        for feed in self.subscriptions.drain() {
            self.shared.feeds.unsubscribe(&feed, self.client_id);
        }
    }
}

fn text(frame: ServerFrame) -> Message {
    Message::text(frame.to_json())
}

fn ack_or_error(id: String, outcome: Result<Accepted, LogError>) -> Message {
    match outcome {
        Ok(accepted) => text(ServerFrame::Ack(Ack {
            id,
            feed: accepted.feed,
            seq: accepted.seq,
        })),
        Err(err) => log_error(Some(id), &err),
    }
}

/// The log failed: nothing was stored, and the client may try again.
fn log_error(id: Option<String>, err: &LogError) -> Message {
    warn!(%err, "answering internal");
    error(id, error_code::INTERNAL, err.to_string())
}

fn error(id: Option<String>, code: &str, message: String) -> Message {
    text(ServerFrame::Error(ErrorFrame {
        id,
        code: code.to_owned(),
        message,
    }))
}
