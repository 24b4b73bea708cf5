//! The one task that owns the socket. Everything else talks to it through
//! the [`crate::Engine`] handle's command channel.
//!
//! - `mod.rs`: the actor's state and its phases between connections
//!   (idle, backoff, needs login, stopped) and what follows a connection.
//! - `dialing.rs`: one attempt, from DNS to the upgrade.
//! - `open.rs`: an open connection: reading, writing, timers, the probe.
//! - `inbound.rs`: applying what the wire decoded (events, acks, errors).
//! - `commands.rs`: what the handle asks for.
//! - `report.rs`: state, history and observer events.

mod commands;
mod dialing;
mod inbound;
mod open;
mod report;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;
use tracing::warn;

use crate::backoff::Backoff;
use crate::cause::{Cause, Trigger};
use crate::config::EngineConfig;
use crate::delivery::{Delivery, Receipt};
use crate::error::EngineError;
use crate::events::*;
use crate::liveness::Liveness;
use crate::outbox::{AckSender, Outbox};
use crate::policy::{Reaction, reaction_to, token_was_refused};
use crate::secret::Token;
use crate::sequencer::{FeedSequencer, StartFrom};
use crate::store::{CursorStore, OutboxEntry};
use crate::wire::{Out, Wire};

/// Malformed frames recorded one by one per connection; beyond that they
/// are only counted, so a hostile server cannot flood the history.
const MALFORMED_RECORDED_PER_CONNECTION: u32 = 50;
/// Frames handled per wake-up before timers and commands get a look in.
pub(crate) const FRAMES_PER_TURN: usize = 2048;

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
    SetTokenSource(Option<Arc<dyn crate::token_source::TokenSource>>),
    Snapshot(oneshot::Sender<Snapshot>),
    Shutdown(oneshot::Sender<()>),
}

enum Phase {
    Idle,
    /// An attempt is under way: DNS, TCP, TLS, the upgrade.
    Dialing,
    /// A connection is open (the wire may still be logging in).
    Open,
    Backoff {
        until: Instant,
    },
    NeedsLogin,
    Stopped,
    Exit,
}

/// What is known about the current connection.
struct Session {
    id: Option<String>,
    /// The wire said the connection may subscribe and publish.
    ready: bool,
    max_frame_bytes: Option<u64>,
    opened_at: Instant,
    malformed_recorded: u32,
    /// Login frames the wire sent on this connection.
    logins_sent: u32,
    liveness: Liveness,
}

pub(crate) struct Actor {
    config: EngineConfig,
    wire: Box<dyn Wire>,
    /// What the last call into the wire produced.
    wire_out: Out,
    commands: mpsc::Receiver<Command>,
    /// What the consumer committed that the wire must acknowledge.
    receipts: mpsc::UnboundedReceiver<Receipt>,
    deliveries: mpsc::Sender<Vec<Delivery>>,
    /// Deliveries of the current turn, sent to the consumer as one batch.
    outgoing: Vec<Delivery>,
    events: tokio::sync::broadcast::Sender<EngineEvent>,
    state: watch::Sender<ConnectionState>,
    cursors: Arc<dyn CursorStore>,
    outbox: Outbox,
    feeds: BTreeMap<Arc<str>, FeedSequencer>,
    /// `*` is subscribed on a wire that delivers every feed: where feeds
    /// first seen start, and which feeds were adopted that way.
    every_feed: Option<StartFrom>,
    adopted: HashSet<Arc<str>>,
    backoff: Backoff,
    phase: Phase,
    want_connected: bool,
    reconnect_now: bool,
    probe_requested: Option<Trigger>,
    session: Option<Session>,
    /// Connections that became ready in this engine's life.
    ready_connections: u64,
    heartbeat: Duration,
    rtt: Option<Duration>,
    malformed_total: u64,
    /// Events for feeds nobody subscribed to, counted and dropped.
    unrouted: u64,
    writes: Vec<Message>,
    /// Publishes of a wire without acks: done once these writes are out.
    settle_when_written: Vec<String>,
    clock_origin: Instant,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// Our client certificate as the TLS configuration holds it.
    identity: Option<crate::client_certificate::IdentityFacts>,
    shutdown_reply: Option<oneshot::Sender<()>>,
    /// The next attempt asks the token source for a new token.
    force_token_refresh: bool,
    /// A refresh was forced since a connection last became ready: a second
    /// refusal means the login itself is gone.
    token_refresh_forced: bool,
    token_expires_at_ms: Option<i64>,
    token_refreshed_at_ms: Option<i64>,
}

pub(crate) struct Channels {
    pub commands: mpsc::Receiver<Command>,
    pub receipts: mpsc::UnboundedReceiver<Receipt>,
    pub deliveries: mpsc::Sender<Vec<Delivery>>,
    pub events: tokio::sync::broadcast::Sender<EngineEvent>,
    pub state: watch::Sender<ConnectionState>,
}

impl Actor {
    pub fn new(
        config: EngineConfig,
        wire: Box<dyn Wire>,
        channels: Channels,
        cursors: Arc<dyn CursorStore>,
        outbox: Outbox,
    ) -> Self {
        let heartbeat = config.heartbeat;
        let backoff = Backoff::new(config.backoff);
        Actor {
            config,
            wire,
            wire_out: Out::default(),
            commands: channels.commands,
            receipts: channels.receipts,
            deliveries: channels.deliveries,
            outgoing: Vec::new(),
            events: channels.events,
            state: channels.state,
            cursors,
            outbox,
            feeds: BTreeMap::new(),
            every_feed: None,
            adopted: HashSet::new(),
            backoff,
            phase: Phase::Idle,
            want_connected: false,
            reconnect_now: false,
            probe_requested: None,
            session: None,
            ready_connections: 0,
            heartbeat,
            rtt: None,
            malformed_total: 0,
            unrouted: 0,
            writes: Vec::new(),
            settle_when_written: Vec::new(),
            clock_origin: Instant::now(),
            tls: None,
            identity: None,
            shutdown_reply: None,
            force_token_refresh: false,
            token_refresh_forced: false,
            token_expires_at_ms: None,
            token_refreshed_at_ms: None,
        }
    }

    pub async fn run(mut self) {
        loop {
            match self.phase {
                Phase::Idle | Phase::NeedsLogin | Phase::Stopped => self.wait_dormant().await,
                Phase::Backoff { until } => self.wait_backoff(until).await,
                Phase::Dialing | Phase::Open => self.attempt().await,
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
            self.phase = Phase::Dialing;
        }
    }

    async fn wait_backoff(&mut self, until: Instant) {
        tokio::select! {
            () = sleep_until(until) => self.phase = Phase::Dialing,
            command = self.commands.recv() => {
                if !self.accept_command(command) {
                    return;
                }
                if !self.want_connected {
                    self.go_idle();
                } else if std::mem::take(&mut self.reconnect_now) {
                    self.phase = Phase::Dialing;
                }
            }
        }
    }

    fn after_disconnect(&mut self, cause: Cause) {
        let session = self.session.take();
        self.writes.clear();
        self.settle_when_written.clear();
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
        let wire = &self.wire;
        let close_rule = |code| wire.close_rule(code);
        let reaction = reaction_to(&cause, &close_rule);
        if reaction == Reaction::NeedsLogin
            && self.config.token_source.is_some()
            && !self.token_refresh_forced
            && token_was_refused(&cause, &close_rule)
        {
            return self.retry_with_refreshed_token(cause);
        }
        let delay = match reaction {
            Reaction::Idle => return self.go_idle(),
            Reaction::NeedsLogin => {
                self.want_connected = false;
                self.phase = Phase::NeedsLogin;
                let reason = match &cause {
                    Cause::Connect {
                        error: crate::cause::ConnectError::ProxyAuth { .. },
                    } => format!("the proxy needs other credentials ({cause})"),
                    _ => format!("the server needs a new login ({cause})"),
                };
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
            reason: cause.to_string(),
            cause,
        });
    }

    /// The server refused a token a source gave: ask the source for a new
    /// one and try again at once, one time until a connection is ready.
    fn retry_with_refreshed_token(&mut self, cause: Cause) {
        self.token_refresh_forced = true;
        self.force_token_refresh = true;
        self.record(
            HistoryKind::Login,
            Level::Info,
            format!("the server refused the token ({cause}); refreshing it and retrying"),
            json!({ "cause": cause }),
        );
        self.phase = Phase::Backoff {
            until: Instant::now(),
        };
        let attempt = self.backoff.failures();
        self.set_state(ConnectionState::Backoff {
            attempt,
            delay_ms: 0,
            retry_at_ms: now_ms(),
            reason: cause.to_string(),
            cause,
        });
    }

    fn go_idle(&mut self) {
        self.phase = Phase::Idle;
        self.set_state(ConnectionState::Idle);
    }
}
