//! The one task that owns the socket. Everything else talks to it through
//! the [`crate::Engine`] handle's command channel.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use holdline_protocol::{
    ClientFrame, ErrorFrame, MalformedFrame, Publish, ServerFrame, Subscribe, Unsubscribe,
    decode_server_frame,
};
use serde_json::json;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::cause::{Cause, Trigger};
use crate::config::EngineConfig;
use crate::delivery::{Delivery, RawFrame};
use crate::dial::{DialOptions, Dialed, Socket, dial, tls_config};
use crate::error::{EngineError, PublishAck, PublishError};
use crate::events::*;
use crate::liveness::{Liveness, clamp_heartbeat};
use crate::outbox::{AckSender, Enqueued, Outbox};
use crate::policy::{Reaction, reaction_to};
use crate::secret::Token;
use crate::sequencer::{Accepted, FeedSequencer, StartFrom};
use crate::store::{CursorStore, OutboxEntry};

/// Malformed frames recorded one by one per connection; beyond that they
/// are only counted, so a hostile server cannot flood the history.
const MALFORMED_RECORDED_PER_CONNECTION: u32 = 50;
/// Frames handled per wake-up before timers and commands get a look in.
const FRAMES_PER_TURN: usize = 2048;

pub(crate) enum Command {
    Connect,
    Disconnect,
    ReconnectNow,
    Subscribe {
        feed: Arc<str>,
        start: StartFrom,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Unsubscribe {
        feed: Arc<str>,
    },
    Publish {
        entry: OutboxEntry,
        waiter: AckSender,
        reply: oneshot::Sender<Result<(), EngineError>>,
    },
    Trigger(Trigger),
    SetToken(Option<Token>),
    Snapshot(oneshot::Sender<Snapshot>),
    Shutdown(oneshot::Sender<()>),
}

enum Phase {
    Idle,
    Connecting,
    Backoff { until: Instant },
    NeedsLogin,
    Stopped,
    Exit,
}

enum Request {
    Subscribe(Arc<str>),
    Unsubscribe,
}

/// What is known about the current connection.
struct Session {
    raw: bool,
    id: Option<String>,
    welcomed: bool,
    max_frame_bytes: Option<u64>,
    opened_at: Instant,
    malformed_recorded: u32,
}

pub(crate) struct Actor {
    config: EngineConfig,
    commands: mpsc::Receiver<Command>,
    deliveries: mpsc::Sender<Vec<Delivery>>,
    /// Deliveries of the current turn, sent to the consumer as one batch.
    outgoing: Vec<Delivery>,
    events: broadcast::Sender<EngineEvent>,
    state: watch::Sender<ConnectionState>,
    cursors: Arc<dyn CursorStore>,
    outbox: Outbox,
    feeds: BTreeMap<Arc<str>, FeedSequencer>,
    requests: HashMap<String, Request>,
    backoff: Backoff,
    phase: Phase,
    want_connected: bool,
    reconnect_now: bool,
    probe_requested: Option<Trigger>,
    session: Option<Session>,
    heartbeat: Duration,
    rtt: Option<Duration>,
    malformed_total: u64,
    writes: Vec<Message>,
    request_prefix: String,
    request_counter: u64,
    clock_origin: Instant,
    tls: Option<Arc<rustls::ClientConfig>>,
    shutdown_reply: Option<oneshot::Sender<()>>,
}

pub(crate) struct Channels {
    pub commands: mpsc::Receiver<Command>,
    pub deliveries: mpsc::Sender<Vec<Delivery>>,
    pub events: broadcast::Sender<EngineEvent>,
    pub state: watch::Sender<ConnectionState>,
}

impl Actor {
    pub fn new(
        config: EngineConfig,
        channels: Channels,
        cursors: Arc<dyn CursorStore>,
        outbox: Outbox,
    ) -> Self {
        let heartbeat = config.heartbeat;
        let backoff = Backoff::new(config.backoff);
        Actor {
            config,
            commands: channels.commands,
            deliveries: channels.deliveries,
            outgoing: Vec::new(),
            events: channels.events,
            state: channels.state,
            cursors,
            outbox,
            feeds: BTreeMap::new(),
            requests: HashMap::new(),
            backoff,
            phase: Phase::Idle,
            want_connected: false,
            reconnect_now: false,
            probe_requested: None,
            session: None,
            heartbeat,
            rtt: None,
            malformed_total: 0,
            writes: Vec::new(),
            request_prefix: format!("{:08x}", fastrand::u32(..)),
            request_counter: 0,
            clock_origin: Instant::now(),
            tls: None,
            shutdown_reply: None,
        }
    }

    pub async fn run(mut self) {
        loop {
            match self.phase {
                Phase::Idle | Phase::NeedsLogin | Phase::Stopped => self.wait_dormant().await,
                Phase::Backoff { until } => self.wait_backoff(until).await,
                Phase::Connecting => self.attempt().await,
                Phase::Exit => break,
            }
        }
        if let Err(err) = self.cursors.flush() {
            warn!(%err, "cursor store flush at shutdown failed");
        }
        if let Some(reply) = self.shutdown_reply.take() {
            let _ = reply.send(());
        }
    }

    // ---- phases -------------------------------------------------------

    /// Handles a received command; false when the engine must exit (every
    /// handle dropped, or a shutdown asked for).
    fn accept_command(&mut self, command: Option<Command>) -> bool {
        let Some(command) = command else {
            self.phase = Phase::Exit;
            return false;
        };
        self.handle_command(command);
        !matches!(self.phase, Phase::Exit)
    }

    async fn wait_dormant(&mut self) {
        let command = self.commands.recv().await;
        if !self.accept_command(command) {
            return;
        }
        if self.want_connected {
            self.phase = Phase::Connecting;
        }
    }

    async fn wait_backoff(&mut self, until: Instant) {
        tokio::select! {
            () = sleep_until(until) => self.phase = Phase::Connecting,
            command = self.commands.recv() => {
                if !self.accept_command(command) {
                    return;
                }
                if !self.want_connected {
                    self.go_idle();
                } else if std::mem::take(&mut self.reconnect_now) {
                    self.phase = Phase::Connecting;
                }
            }
        }
    }

    async fn attempt(&mut self) {
        self.reconnect_now = false;
        let attempt = self.backoff.failures() + 1;
        self.set_state(ConnectionState::Connecting { attempt });
        self.record(
            HistoryKind::Attempt,
            Level::Info,
            format!("connecting to {} (attempt {attempt})", self.config.url),
            json!({ "attempt": attempt, "url": self.config.url.as_str() }),
        );
        if self.config.url.is_tls() && self.tls.is_none() {
            match tls_config(self.config.extra_ca_file.as_deref()) {
                Ok(tls) => self.tls = Some(tls),
                Err(error) => return self.after_attempt_failed(attempt, Instant::now(), error),
            }
        }
        let options = DialOptions {
            timeout: self.config.connect_timeout,
            max_frame_bytes: self.config.max_incoming_frame_bytes,
            tls: self.tls.clone(),
        };
        let url = self.config.url.clone();
        let token = self.config.token.clone();
        let started = Instant::now();
        let dialing = dial(&url, token.as_ref(), &options);
        tokio::pin!(dialing);
        let result = loop {
            tokio::select! {
                result = &mut dialing => break result,
                command = self.commands.recv() => {
                    if !self.accept_command(command) {
                        return;
                    }
                    if !self.want_connected {
                        self.record(HistoryKind::State, Level::Info,
                            "connection attempt cancelled".into(), json!({ "attempt": attempt }));
                        return self.go_idle();
                    }
                }
            }
        };
        match result {
            Err(error) => self.after_attempt_failed(attempt, started, error),
            Ok(dialed) => {
                let took = started.elapsed();
                let raw = !dialed.holdline;
                self.record(
                    HistoryKind::Connected,
                    Level::Info,
                    if raw {
                        format!(
                            "connected in {} ms; the server selected no holdline.v1, raw mode",
                            took.as_millis()
                        )
                    } else {
                        format!("connected in {} ms", took.as_millis())
                    },
                    json!({ "attempt": attempt, "took_ms": took.as_millis() as u64, "raw": raw }),
                );
                let cause = self.run_connection(dialed).await;
                self.after_disconnect(cause);
            }
        }
    }

    fn after_attempt_failed(
        &mut self,
        attempt: u32,
        started: Instant,
        error: crate::cause::ConnectError,
    ) {
        let took = started.elapsed();
        self.record(
            HistoryKind::AttemptFailed,
            Level::Warn,
            format!("attempt {attempt} failed: {error}"),
            json!({ "attempt": attempt, "took_ms": took.as_millis() as u64, "error": error }),
        );
        self.schedule(Cause::Connect { error });
    }

    // ---- an open connection -------------------------------------------

    async fn run_connection(&mut self, dialed: Dialed) -> Cause {
        let Dialed {
            mut socket,
            holdline,
        } = dialed;
        let now = Instant::now();
        self.heartbeat = self.config.heartbeat;
        self.session = Some(Session {
            raw: !holdline,
            id: None,
            welcomed: false,
            max_frame_bytes: None,
            opened_at: now,
            malformed_recorded: 0,
        });
        self.outbox.mark_all_unsent();
        let mut liveness = Liveness::new(self.heartbeat, now);
        let mut welcome_deadline = holdline.then(|| now + self.config.connect_timeout);
        if !holdline {
            self.set_state(ConnectionState::Open {
                session: None,
                raw: true,
            });
        }
        let mut probe: Option<(Trigger, Instant, Instant)> = None;
        loop {
            if let Err(cause) = self.flush_writes(&mut socket, liveness.period()).await {
                return cause;
            }
            if self.session.as_ref().is_some_and(|s| s.welcomed) {
                welcome_deadline = None;
            }
            let gap_deadline = self.next_hole_deadline();
            tokio::select! {
                biased;
                command = self.commands.recv() => {
                    let Some(command) = command else {
                        close_socket(&mut socket, "client shutting down").await;
                        self.phase = Phase::Exit;
                        return Cause::Shutdown;
                    };
                    self.handle_command(command);
                    if matches!(self.phase, Phase::Exit) {
                        close_socket(&mut socket, "client shutting down").await;
                        return Cause::Shutdown;
                    }
                    if !self.want_connected {
                        close_socket(&mut socket, "disconnect requested").await;
                        return Cause::UserDisconnect;
                    }
                    if std::mem::take(&mut self.reconnect_now) && self.probe_requested.is_none() {
                        close_socket(&mut socket, "reconnect requested").await;
                        return Cause::UserReconnect;
                    }
                    if let Some(trigger) = self.probe_requested.take() {
                        let sent = Instant::now();
                        self.writes.push(self.ping_message(sent));
                        probe = Some((trigger, sent, sent + self.config.probe_timeout));
                    }
                }
                message = socket.next() => {
                    let mut message = message;
                    let mut handled = 0;
                    let outcome = loop {
                        let now = Instant::now();
                        match message {
                            None => break Some(Cause::ConnectionLost {
                                detail: "the stream ended without a close frame".into(),
                            }),
                            Some(Err(err)) => break Some(cause_of_read_error(err)),
                            Some(Ok(frame)) => {
                                liveness.on_frame(now);
                                if probe.take().is_some() {
                                    debug!("probe answered");
                                }
                                if let Some(cause) = self.on_message(frame, &mut liveness) {
                                    break Some(cause);
                                }
                            }
                        }
                        handled += 1;
                        if handled >= FRAMES_PER_TURN {
                            break None;
                        }
                        match socket.next().now_or_never() {
                            Some(next) => message = next,
                            None => break None,
                        }
                    };
                    // Whatever this turn made deliverable goes out first,
                    // even when the connection just ended.
                    if let Some(cause) = self.flush_deliveries().await {
                        return cause;
                    }
                    if let Some(cause) = outcome {
                        return cause;
                    }
                }
                () = sleep_until(liveness.next_ping_at()) => {
                    let now = Instant::now();
                    self.writes.push(self.ping_message(now));
                    liveness.on_ping_sent(now);
                }
                () = sleep_until(liveness.dead_at()) => {
                    return Cause::HeartbeatTimeout {
                        silent_ms: liveness.silent_for(Instant::now()).as_millis() as u64,
                    };
                }
                () = sleep_until(probe.map_or_else(far_future, |p| p.2)), if probe.is_some() => {
                    let (trigger, sent, _) = probe.unwrap_or((Trigger::Wake, Instant::now(), Instant::now()));
                    return Cause::ProbeFailed { trigger, waited_ms: sent.elapsed().as_millis() as u64 };
                }
                () = sleep_until(welcome_deadline.unwrap_or_else(far_future)), if welcome_deadline.is_some() => {
                    return Cause::NoWelcome { waited_ms: self.config.connect_timeout.as_millis() as u64 };
                }
                () = sleep_until(gap_deadline.unwrap_or_else(far_future)), if gap_deadline.is_some() => {
                    self.resubscribe_holes(Instant::now());
                }
            }
        }
    }

    async fn flush_writes(&mut self, socket: &mut Socket, period: Duration) -> Result<(), Cause> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let writes = std::mem::take(&mut self.writes);
        let limit = period * 2;
        let sending = async {
            for message in writes {
                socket.feed(message).await?;
            }
            socket.flush().await
        };
        match timeout(limit, sending).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(cause_of_read_error(err)),
            Err(_) => Err(Cause::ConnectionLost {
                detail: format!("a write stalled for {} ms", limit.as_millis()),
            }),
        }
    }

    fn ping_message(&self, now: Instant) -> Message {
        let micros = now.duration_since(self.clock_origin).as_micros() as u64;
        Message::Ping(micros.to_be_bytes().to_vec().into())
    }

    fn on_message(&mut self, message: Message, liveness: &mut Liveness) -> Option<Cause> {
        let raw = self.session.as_ref().is_some_and(|s| s.raw);
        match message {
            Message::Text(text) if raw => {
                self.outgoing
                    .push(Delivery::Raw(RawFrame::Text(text.as_str().to_owned())));
                None
            }
            Message::Binary(bytes) if raw => {
                self.outgoing
                    .push(Delivery::Raw(RawFrame::Binary(bytes.to_vec())));
                None
            }
            Message::Text(text) => match decode_server_frame(text.as_str()) {
                Ok(frame) => self.on_frame(frame, liveness),
                Err(malformed) => {
                    self.on_malformed(malformed);
                    None
                }
            },
            Message::Binary(bytes) => {
                self.on_malformed(MalformedFrame::binary(&bytes));
                None
            }
            Message::Pong(payload) => {
                if let Ok(bytes) = <[u8; 8]>::try_from(payload.as_ref()) {
                    let sent = Duration::from_micros(u64::from_be_bytes(bytes));
                    let now = Instant::now().duration_since(self.clock_origin);
                    if let Some(rtt) = now.checked_sub(sent) {
                        self.rtt = Some(rtt);
                    }
                }
                None
            }
            // tungstenite queues the Pong itself and writes it on the next read.
            Message::Ping(_) => None,
            Message::Close(frame) => Some(match frame {
                Some(frame) => Cause::Closed {
                    code: u16::from(frame.code),
                    reason: frame.reason.as_str().to_owned(),
                },
                None => Cause::Closed {
                    code: 1005,
                    reason: "close frame without a code".into(),
                },
            }),
            Message::Frame(_) => None,
        }
    }

    fn on_frame(&mut self, frame: ServerFrame, liveness: &mut Liveness) -> Option<Cause> {
        match frame {
            ServerFrame::Event(event) => {
                let Some(feed) = self.feeds.get_mut(event.feed.as_str()) else {
                    debug!(feed = %event.feed, "event for a feed we are not subscribed to");
                    return None;
                };
                let accepted = feed.on_event(event, Instant::now(), &mut self.outgoing);
                if accepted == Accepted::TooFarAhead {
                    let feed = feed.feed().clone();
                    self.resubscribe(&feed, "event too far ahead of the reorder window");
                }
                None
            }
            ServerFrame::Welcome(welcome) => {
                let heartbeat = clamp_heartbeat(welcome.heartbeat_ms);
                self.heartbeat = heartbeat;
                liveness.set_period(heartbeat);
                let session_id = welcome.session.clone();
                if let Some(session) = &mut self.session {
                    if session.welcomed {
                        warn!("second welcome on one connection ignored");
                        return None;
                    }
                    session.welcomed = true;
                    session.id = Some(welcome.session.clone());
                    session.max_frame_bytes = Some(welcome.max_frame_bytes);
                }
                info!(session = %session_id, heartbeat_ms = heartbeat.as_millis() as u64, "welcome");
                self.set_state(ConnectionState::Open {
                    session: Some(session_id),
                    raw: false,
                });
                self.subscribe_all();
                self.send_outbox();
                None
            }
            ServerFrame::Subscribed(sub) => {
                if let Some(Request::Subscribe(feed)) = self.requests.remove(&sub.id)
                    && *feed != *sub.feed
                {
                    warn!(asked = %feed, answered = %sub.feed, "subscribed names another feed");
                }
                let feed = self.feeds.get_mut(sub.feed.as_str())?;
                let mut out = Vec::new();
                feed.on_subscribed(&sub, &mut out);
                let last = feed.last_delivered();
                self.record(
                    HistoryKind::Subscribed,
                    Level::Debug,
                    format!(
                        "subscribed to {} (epoch {}, head {})",
                        sub.feed, sub.epoch, sub.head
                    ),
                    json!({ "feed": sub.feed, "epoch": sub.epoch, "head": sub.head,
                            "replay_from": sub.replay_from, "gap": sub.gap, "cursor": last }),
                );
                for delivery in &out {
                    match delivery {
                        Delivery::Gap {
                            feed,
                            epoch,
                            from,
                            to,
                        } => self.record(
                            HistoryKind::Gap,
                            Level::Warn,
                            format!("{feed}: events {from}..{to} are lost (server retention)"),
                            json!({ "feed": &**feed, "epoch": &**epoch, "from": from, "to": to }),
                        ),
                        Delivery::Reset { feed, epoch } => self.record(
                            HistoryKind::Reset,
                            Level::Warn,
                            format!("{feed}: the server started a new epoch {epoch}; cursor reset"),
                            json!({ "feed": &**feed, "epoch": &**epoch }),
                        ),
                        _ => {}
                    }
                }
                self.outgoing.append(&mut out);
                None
            }
            ServerFrame::Unsubscribed(unsub) => {
                self.requests.remove(&unsub.id);
                None
            }
            ServerFrame::Ack(ack) => {
                let outcome = Ok(PublishAck {
                    id: ack.id.clone(),
                    feed: ack.feed.clone(),
                    seq: ack.seq,
                });
                let (entry, stored) = self.outbox.settle(&ack.id, outcome);
                if let Err(err) = stored {
                    self.record_storage_error(&err);
                }
                if entry.is_some() {
                    self.emit(EngineEvent::Publish(PublishUpdate {
                        id: ack.id,
                        feed: ack.feed,
                        status: PublishStatus::Acked { seq: ack.seq },
                    }));
                }
                None
            }
            ServerFrame::Pong(_) => None,
            ServerFrame::Error(error) => {
                self.on_error_frame(error);
                None
            }
        }
    }

    fn on_error_frame(&mut self, error: ErrorFrame) {
        let id = error.id.clone().unwrap_or_default();
        if self.outbox.contains(&id) {
            let outcome = Err(PublishError::Rejected {
                server_code: error.code.clone(),
                message: error.message.clone(),
            });
            let (entry, stored) = self.outbox.settle(&id, outcome);
            if let Err(err) = stored {
                self.record_storage_error(&err);
            }
            let feed = entry.map(|e| e.feed).unwrap_or_default();
            self.record(
                HistoryKind::Publish,
                Level::Warn,
                format!(
                    "publish {id} to {feed} refused: {} ({})",
                    error.message, error.code
                ),
                json!({ "id": id, "feed": feed, "code": error.code, "message": error.message }),
            );
            self.emit(EngineEvent::Publish(PublishUpdate {
                id,
                feed,
                status: PublishStatus::Failed {
                    code: error.code,
                    message: error.message,
                },
            }));
            return;
        }
        match self.requests.remove(&id) {
            Some(Request::Subscribe(feed)) => {
                // A feed the server refuses is dropped: asking again on every
                // reconnect would only repeat the refusal.
                let permanent = matches!(
                    error.code.as_str(),
                    holdline_protocol::error_code::INVALID_FEED
                        | holdline_protocol::error_code::FORBIDDEN
                );
                if permanent {
                    self.feeds.remove(&feed);
                }
                self.record(
                    HistoryKind::SubscribeFailed,
                    Level::Error,
                    format!("subscribing to {feed} failed: {} ({})", error.message, error.code),
                    json!({ "feed": &*feed, "code": error.code, "message": error.message, "dropped": permanent }),
                );
            }
            _ => self.record(
                HistoryKind::Protocol,
                Level::Warn,
                format!("server error {}: {}", error.code, error.message),
                json!({ "id": error.id, "code": error.code, "message": error.message }),
            ),
        }
    }

    fn on_malformed(&mut self, malformed: MalformedFrame) {
        self.malformed_total += 1;
        let Some(session) = &mut self.session else {
            return;
        };
        session.malformed_recorded += 1;
        let recorded = session.malformed_recorded;
        if recorded > MALFORMED_RECORDED_PER_CONNECTION {
            return;
        }
        let suffix = if recorded == MALFORMED_RECORDED_PER_CONNECTION {
            "; further malformed frames on this connection are only counted"
        } else {
            ""
        };
        self.record(
            HistoryKind::Malformed,
            Level::Warn,
            format!("malformed frame quarantined: {}{suffix}", malformed.reason),
            json!({ "reason": malformed.reason, "excerpt": malformed.excerpt,
                    "binary": malformed.binary, "total": self.malformed_total }),
        );
    }

    /// Hands this turn's deliveries to the consumer as one batch; waits
    /// while the consumer is behind (which slows reading the socket).
    async fn flush_deliveries(&mut self) -> Option<Cause> {
        if self.outgoing.is_empty() {
            return None;
        }
        let batch = std::mem::take(&mut self.outgoing);
        if self.deliveries.send(batch).await.is_err() {
            return self.consumer_gone();
        }
        None
    }

    fn consumer_gone(&mut self) -> Option<Cause> {
        // Nobody reads deliveries any more: running on would only lose them.
        self.phase = Phase::Exit;
        Some(Cause::Shutdown)
    }

    // ---- requests -----------------------------------------------------

    fn next_request_id(&mut self, kind: &str) -> String {
        self.request_counter += 1;
        format!("{kind}-{}-{}", self.request_prefix, self.request_counter)
    }

    fn can_send(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.welcomed && !s.raw)
    }

    fn subscribe_all(&mut self) {
        let feeds: Vec<Arc<str>> = self.feeds.keys().cloned().collect();
        for feed in feeds {
            self.send_subscribe(&feed);
        }
    }

    fn send_subscribe(&mut self, feed: &Arc<str>) {
        let id = self.next_request_id("sub");
        let Some(sequencer) = self.feeds.get_mut(feed) else {
            return;
        };
        let (since, epoch) = sequencer.subscribe_position();
        self.requests
            .insert(id.clone(), Request::Subscribe(feed.clone()));
        let frame = ClientFrame::Subscribe(Subscribe {
            id,
            feed: feed.to_string(),
            since,
            epoch,
        });
        self.writes.push(Message::text(frame.to_json()));
    }

    fn resubscribe(&mut self, feed: &Arc<str>, why: &str) {
        if let Some(sequencer) = self.feeds.get_mut(feed) {
            sequencer.on_resubscribe(Instant::now());
            debug!(%feed, cursor = sequencer.last_delivered(), why, "re-subscribing");
        }
        self.send_subscribe(feed);
    }

    fn next_hole_deadline(&self) -> Option<Instant> {
        self.feeds
            .values()
            .filter_map(|f| f.hole_deadline(self.config.gap_timeout))
            .min()
    }

    fn resubscribe_holes(&mut self, now: Instant) {
        let due: Vec<Arc<str>> = self
            .feeds
            .values()
            .filter(|f| {
                f.hole_deadline(self.config.gap_timeout)
                    .is_some_and(|d| d <= now)
            })
            .map(|f| f.feed().clone())
            .collect();
        for feed in due {
            self.resubscribe(&feed, "a hole outlived the gap timeout");
        }
    }

    fn send_outbox(&mut self) {
        for entry in self.outbox.take_unsent() {
            self.emit(EngineEvent::Publish(PublishUpdate {
                id: entry.id.clone(),
                feed: entry.feed.clone(),
                status: PublishStatus::Sent,
            }));
            let frame = ClientFrame::Publish(Publish {
                id: entry.id,
                feed: entry.feed,
                data: entry.data,
            });
            self.writes.push(Message::text(frame.to_json()));
        }
    }

    // ---- commands -----------------------------------------------------

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Connect => {
                if !self.want_connected {
                    self.backoff.reset();
                }
                self.want_connected = true;
            }
            Command::Disconnect => self.want_connected = false,
            Command::ReconnectNow => {
                self.backoff.reset();
                self.reconnect_now = true;
            }
            Command::Subscribe { feed, start, reply } => {
                let _ = reply.send(self.subscribe(feed, start));
            }
            Command::Unsubscribe { feed } => {
                if self.feeds.remove(&feed).is_some() && self.can_send() {
                    let id = self.next_request_id("unsub");
                    self.requests.insert(id.clone(), Request::Unsubscribe);
                    let frame = ClientFrame::Unsubscribe(Unsubscribe {
                        id,
                        feed: feed.to_string(),
                    });
                    self.writes.push(Message::text(frame.to_json()));
                }
            }
            Command::Publish {
                entry,
                waiter,
                reply,
            } => {
                let _ = reply.send(self.publish(entry, waiter));
            }
            Command::Trigger(trigger) => self.on_trigger(trigger),
            Command::SetToken(token) => self.config.token = token,
            Command::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
            Command::Shutdown(reply) => {
                self.shutdown_reply = Some(reply);
                self.want_connected = false;
                self.phase = Phase::Exit;
            }
        }
    }

    fn subscribe(&mut self, feed: Arc<str>, start: StartFrom) -> Result<(), EngineError> {
        if self.feeds.contains_key(&feed) {
            return Ok(());
        }
        let cursor = self.cursors.load(self.config.url.server_key(), &feed)?;
        let sequencer = FeedSequencer::new(feed.clone(), cursor, start, self.config.reorder_window);
        self.feeds.insert(feed.clone(), sequencer);
        if self.can_send() {
            self.send_subscribe(&feed);
        }
        Ok(())
    }

    fn publish(&mut self, entry: OutboxEntry, waiter: AckSender) -> Result<(), EngineError> {
        if self.session.as_ref().is_some_and(|s| s.raw) {
            return Err(EngineError::RawMode);
        }
        if let Some(limit) = self.session.as_ref().and_then(|s| s.max_frame_bytes) {
            let frame = ClientFrame::Publish(Publish {
                id: entry.id.clone(),
                feed: entry.feed.clone(),
                data: entry.data.clone(),
            });
            let bytes = frame.to_json().len();
            if bytes as u64 > limit {
                return Err(EngineError::TooLarge { bytes, limit });
            }
        }
        if self.outbox.is_full() && !self.outbox.contains(&entry.id) {
            return Err(EngineError::OutboxFull {
                capacity: self.outbox.capacity(),
            });
        }
        let (id, feed) = (entry.id.clone(), entry.feed.clone());
        match self.outbox.enqueue(entry, waiter) {
            Err((err, _waiter)) => Err(err.into()),
            Ok(Enqueued::Joined) => Ok(()),
            Ok(Enqueued::New) => {
                self.emit(EngineEvent::Publish(PublishUpdate {
                    id,
                    feed,
                    status: PublishStatus::Queued,
                }));
                if self.can_send() {
                    self.send_outbox();
                }
                Ok(())
            }
        }
    }

    fn on_trigger(&mut self, trigger: Trigger) {
        let kind = match trigger {
            Trigger::Wake => HistoryKind::Wake,
            Trigger::NetworkChange => HistoryKind::NetworkChange,
        };
        self.backoff.reset();
        let action = match self.phase {
            Phase::Backoff { .. } => {
                self.reconnect_now = true;
                "reconnecting now"
            }
            Phase::Connecting if self.session.is_some() => {
                self.probe_requested = Some(trigger);
                "probing the connection"
            }
            Phase::Connecting => "attempt under way; backoff reset",
            _ => "not connected; nothing to do",
        };
        self.record(
            kind,
            Level::Info,
            format!("{trigger}: {action}"),
            json!({ "trigger": trigger, "action": action }),
        );
    }

    fn snapshot(&self) -> Snapshot {
        let session = self.session.as_ref();
        Snapshot {
            url: self.config.url.to_string(),
            state: self.state.borrow().clone(),
            session: session.and_then(|s| s.id.clone()),
            raw: session.is_some_and(|s| s.raw),
            heartbeat_ms: self.heartbeat.as_millis() as u64,
            rtt_ms: self.rtt.map(|d| d.as_secs_f64() * 1000.0),
            max_frame_bytes: session.and_then(|s| s.max_frame_bytes),
            feeds: self
                .feeds
                .values()
                .map(|f| FeedSnapshot {
                    feed: f.feed().to_string(),
                    epoch: f.epoch().map(str::to_owned),
                    last_seq: f.last_delivered(),
                    buffered: f.buffered(),
                    stats: f.stats(),
                })
                .collect(),
            outbox: self
                .outbox
                .items()
                .map(|(entry, sent)| OutboxItem {
                    id: entry.id.clone(),
                    feed: entry.feed.clone(),
                    sent,
                    queued_at_ms: entry.queued_at_ms,
                })
                .collect(),
            malformed_frames: self.malformed_total,
        }
    }

    // ---- after a connection -------------------------------------------

    fn after_disconnect(&mut self, cause: Cause) {
        let session = self.session.take();
        self.requests.clear();
        self.writes.clear();
        self.probe_requested = None;
        let connected_for = session
            .as_ref()
            .map(|s| s.opened_at.elapsed())
            .unwrap_or_default();
        if connected_for >= self.config.backoff.healthy_after {
            self.backoff.reset();
        }
        let suppressed = session
            .as_ref()
            .map(|s| {
                s.malformed_recorded
                    .saturating_sub(MALFORMED_RECORDED_PER_CONNECTION)
            })
            .unwrap_or(0);
        let level = match cause {
            Cause::UserDisconnect | Cause::Shutdown | Cause::UserReconnect => Level::Info,
            _ => Level::Warn,
        };
        self.record(
            HistoryKind::Disconnected,
            level,
            format!(
                "disconnected after {} ms: {cause}",
                connected_for.as_millis()
            ),
            json!({ "cause": cause, "close_code": cause.close_code(),
                    "connected_ms": connected_for.as_millis() as u64,
                    "malformed_suppressed": suppressed }),
        );
        self.schedule(cause);
    }

    fn schedule(&mut self, cause: Cause) {
        if matches!(self.phase, Phase::Exit) {
            self.set_state(ConnectionState::Idle);
            return;
        }
        if !self.want_connected {
            return self.go_idle();
        }
        let reaction = reaction_to(&cause);
        let delay = match reaction {
            Reaction::Idle => return self.go_idle(),
            Reaction::NeedsLogin => {
                self.want_connected = false;
                self.phase = Phase::NeedsLogin;
                let reason = format!("the server needs a new login ({cause})");
                self.record(
                    HistoryKind::State,
                    Level::Error,
                    reason.clone(),
                    json!({ "cause": cause }),
                );
                self.set_state(ConnectionState::NeedsLogin { reason });
                return;
            }
            Reaction::Stop => {
                self.want_connected = false;
                self.phase = Phase::Stopped;
                let reason = cause.to_string();
                self.record(
                    HistoryKind::State,
                    Level::Error,
                    format!("stopped: {reason}"),
                    json!({ "cause": cause }),
                );
                self.set_state(ConnectionState::Stopped { reason });
                return;
            }
            Reaction::Backoff => self.backoff.next_delay(),
            Reaction::BackoffAtLeast { min } => self.backoff.next_delay().max(min),
            Reaction::After { delay } => {
                self.backoff.next_delay();
                delay
            }
            Reaction::Immediately => {
                self.backoff.next_delay();
                Duration::ZERO
            }
        };
        let attempt = self.backoff.failures();
        let retry_at_ms = now_ms() + delay.as_millis() as i64;
        self.record(
            HistoryKind::Backoff,
            Level::Info,
            format!("retrying in {} ms", delay.as_millis()),
            json!({ "attempt": attempt, "delay_ms": delay.as_millis() as u64, "reaction": reaction, "cause": cause }),
        );
        self.phase = Phase::Backoff {
            until: Instant::now() + delay,
        };
        self.set_state(ConnectionState::Backoff {
            attempt,
            delay_ms: delay.as_millis() as u64,
            retry_at_ms,
            cause,
        });
    }

    fn go_idle(&mut self) {
        self.phase = Phase::Idle;
        self.set_state(ConnectionState::Idle);
    }

    // ---- reporting ----------------------------------------------------

    fn set_state(&mut self, state: ConnectionState) {
        if *self.state.borrow() == state {
            return;
        }
        info!(state = state.name(), "state");
        self.state.send_replace(state.clone());
        self.emit(EngineEvent::State(state));
    }

    fn record(&self, kind: HistoryKind, level: Level, message: String, details: serde_json::Value) {
        match level {
            Level::Warn | Level::Error => warn!(?kind, "{message}"),
            _ => info!(?kind, "{message}"),
        }
        self.emit(EngineEvent::History(HistoryEntry {
            at_ms: now_ms(),
            kind,
            level,
            message,
            details,
        }));
    }

    fn record_storage_error(&self, err: &crate::store::StoreError) {
        self.record(
            HistoryKind::Storage,
            Level::Error,
            format!("storage failed: {err}"),
            json!({ "error": err }),
        );
    }

    fn emit(&self, event: EngineEvent) {
        // No observer is fine: history is a service, not a duty.
        let _ = self.events.send(event);
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

async fn close_socket(socket: &mut Socket, reason: &str) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: reason.into(),
    };
    let closing = async {
        socket.close(Some(frame)).await?;
        // Read until the server's close reply, so the close is clean.
        while let Some(Ok(_)) = socket.next().await {}
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    };
    let _ = timeout(Duration::from_secs(1), closing).await;
}

fn cause_of_read_error(err: tokio_tungstenite::tungstenite::Error) -> Cause {
    use tokio_tungstenite::tungstenite::Error as WsError;
    match err {
        WsError::ConnectionClosed | WsError::AlreadyClosed => Cause::ConnectionLost {
            detail: "connection closed".into(),
        },
        WsError::Io(e) => Cause::ConnectionLost {
            detail: e.to_string(),
        },
        // The TCP stream ended with no close frame: 1006, not a protocol fault.
        WsError::Protocol(
            tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        ) => Cause::ConnectionLost {
            detail: "the peer closed the TCP connection without a close frame".into(),
        },
        WsError::Capacity(e) => Cause::Protocol {
            detail: format!("frame over our limit: {e}"),
        },
        other => Cause::Protocol {
            detail: other.to_string(),
        },
    }
}
