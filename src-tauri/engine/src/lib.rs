//! Holdline's connection engine.
//!
//! One task (the actor in `actor/`) owns the WebSocket; what each protocol
//! speaks is a [`wire`] behind one seam, chosen by the server's
//! [`Profile`]. An [`Engine`] is a cheap, cloneable handle that sends the
//! actor commands; [`Deliveries`] is the ordered stream of events and
//! gap, reset and discontinuity markers for the consumer;
//! [`Engine::events`] and [`Engine::state`] tell observers what happens and
//! why. Nothing here knows about Tauri or any UI.

mod actor;
pub mod backoff;
pub mod cause;
pub mod client_certificate;
pub mod config;
pub mod delivery;
mod dial;
pub mod error;
pub mod events;
pub mod feed_url;
#[doc(hidden)]
pub mod fuzzing;
pub mod liveness;
pub mod logging;
mod outbox;
pub mod policy;
pub mod profile;
pub mod proxy;
pub mod secret;
pub mod sequencer;
pub mod store;
pub mod token_source;
pub mod wire;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde_json::value::RawValue;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use crate::backoff::BackoffConfig;
pub use crate::cause::{Cause, ConnectError, Trigger};
pub use crate::client_certificate::ClientCertificate;
pub use crate::config::EngineConfig;
pub use crate::delivery::{
    Cursor, Delivery, DiscontinuityReason, FeedEvent, Progress, RawFrame, Receipt, SessionMark,
};
pub use crate::error::{EngineError, PublishAck, PublishError};
pub use crate::events::{
    ConnectionState, EngineEvent, HistoryEntry, HistoryKind, Level, PublishStatus, PublishUpdate,
    Snapshot,
};
pub use crate::feed_url::{FeedUrl, UrlError};
pub use crate::profile::{Profile, ProfileError};
pub use crate::proxy::{Proxy, ProxySetting};
pub use crate::secret::Token;
pub use crate::sequencer::StartFrom;
pub use crate::store::{
    CursorStore, FileCursorStore, FileRecovery, MemoryCursorStore, MemoryOutboxStore, OutboxEntry,
    OutboxStore, StoreError, aside_path, write_atomically,
};
pub use crate::token_source::{FreshToken, TokenError, TokenFuture, TokenSource};
pub use holdline_protocol::validate_feed_name;

use crate::actor::{Actor, Channels, Command};
use crate::outbox::Outbox;

/// How many observer events are kept for a lagging observer before the
/// oldest are dropped (the observer is told how many it missed).
const EVENT_CAPACITY: usize = 4096;

/// The stores an engine reads and writes.
pub struct Stores {
    pub cursors: Arc<dyn CursorStore>,
    pub outbox: Arc<dyn OutboxStore>,
}

impl Default for Stores {
    fn default() -> Self {
        Stores {
            cursors: Arc::new(MemoryCursorStore::default()),
            outbox: Arc::new(MemoryOutboxStore),
        }
    }
}

/// A handle on a running engine. Clones share the engine; the engine stops
/// when every handle is dropped or [`Engine::shutdown`] is called.
#[derive(Clone)]
pub struct Engine {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<EngineEvent>,
    state: watch::Receiver<ConnectionState>,
    server_key: Arc<str>,
}

impl Engine {
    /// Starts the engine's task on the current Tokio runtime. It stays idle
    /// until [`Engine::connect`].
    pub fn start(
        config: EngineConfig,
        stores: Stores,
    ) -> Result<(Engine, Deliveries), EngineError> {
        let (command_tx, command_rx) = mpsc::channel(256);
        // Unbounded: a commit never waits, and what it holds is bounded by
        // the messages the server lets be unacknowledged at once.
        let (receipt_tx, receipt_rx) = mpsc::unbounded_channel();
        // Deliveries travel in batches of up to one read turn; the channel
        // holds as many whole turns as `delivery_buffer` covers.
        let batches = (config.delivery_buffer / actor::FRAMES_PER_TURN).max(2);
        let (delivery_tx, delivery_rx) = mpsc::channel(batches);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (state_tx, state_rx) = watch::channel(ConnectionState::Idle);
        let server_key: Arc<str> = Arc::from(config.url.server_key());
        // An unreadable resume point only costs the recovery: the server
        // then says the session is lost, and the markers say so.
        let saved_session = stores
            .cursors
            .load_session(&server_key)
            .unwrap_or_else(|err| {
                tracing::warn!(%err, "session resume point not read");
                None
            });
        let wire = wire::for_profile(&config, saved_session);
        let outbox = Outbox::new(config.outbox_capacity, stores.outbox)?;
        let actor = Actor::new(
            config,
            wire,
            Channels {
                commands: command_rx,
                receipts: receipt_rx,
                deliveries: delivery_tx,
                events: events.clone(),
                state: state_tx,
            },
            stores.cursors.clone(),
            outbox,
        );
        let span = tracing::info_span!("engine", server = %server_key);
        tokio::spawn(tracing::Instrument::instrument(actor.run(), span));
        let engine = Engine {
            commands: command_tx,
            events,
            state: state_rx,
            server_key: server_key.clone(),
        };
        let deliveries = Deliveries {
            receipts: receipt_tx,
            rx: delivery_rx,
            ready: std::collections::VecDeque::new(),
            cursors: stores.cursors,
            server_key,
        };
        Ok((engine, deliveries))
    }

    async fn send(&self, command: Command) -> Result<(), EngineError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| EngineError::Stopped)
    }

    pub async fn connect(&self) -> Result<(), EngineError> {
        self.send(Command::Connect).await
    }

    pub async fn disconnect(&self) -> Result<(), EngineError> {
        self.send(Command::Disconnect).await
    }

    /// Skips the rest of a backoff delay, or drops the current connection and
    /// connects again.
    pub async fn reconnect_now(&self) -> Result<(), EngineError> {
        self.send(Command::ReconnectNow).await
    }

    /// Adds a feed to the subscription set; it is (re-)subscribed on every
    /// connection from its saved cursor, else as `start` says. The wire
    /// decides which names are feeds (`*` takes every feed where the
    /// profile lets the server push everything).
    pub async fn subscribe(&self, feed: &str, start: StartFrom) -> Result<(), EngineError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Subscribe {
            feed: Arc::from(feed),
            start,
            reply,
        })
        .await?;
        answer.await.map_err(|_| EngineError::Stopped)?
    }

    pub async fn unsubscribe(&self, feed: &str) -> Result<(), EngineError> {
        self.send(Command::Unsubscribe {
            feed: Arc::from(feed),
        })
        .await
    }

    /// Queues a publish. Errors at once when the input is bad, the wire
    /// cannot carry it or the outbox is full; otherwise the returned future
    /// resolves on the server's `ack` (on a wire without acks, once written),
    /// however many reconnects that takes. A missing `id` gets a fresh UUID.
    pub async fn publish(
        &self,
        feed: &str,
        data: Box<RawValue>,
        id: Option<String>,
    ) -> Result<PendingPublish, EngineError> {
        let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        holdline_protocol::validate_request_id(&id).map_err(|e| EngineError::InvalidId {
            id: id.chars().take(80).collect(),
            message: e.to_string(),
        })?;
        let entry = OutboxEntry {
            id: id.clone(),
            feed: feed.to_owned(),
            data,
            queued_at_ms: events::now_ms(),
        };
        let (waiter, ack) = oneshot::channel();
        let (reply, answer) = oneshot::channel();
        self.send(Command::Publish {
            entry,
            waiter,
            reply,
        })
        .await?;
        answer.await.map_err(|_| EngineError::Stopped)??;
        Ok(PendingPublish { id, ack })
    }

    /// The system woke from sleep.
    pub async fn wake(&self) -> Result<(), EngineError> {
        self.send(Command::Trigger(Trigger::Wake)).await
    }

    /// The network changed (interface up or down, new address, new route).
    pub async fn network_changed(&self) -> Result<(), EngineError> {
        self.send(Command::Trigger(Trigger::NetworkChange)).await
    }

    /// Replaces the token used from the next attempt on.
    pub async fn set_token(&self, token: Option<Token>) -> Result<(), EngineError> {
        self.send(Command::SetToken(token)).await
    }

    /// Replaces the login that refreshes (which, when set, is asked for the
    /// token instead of the one `set_token` gave) from the next attempt on.
    pub async fn set_token_source(
        &self,
        source: Option<Arc<dyn TokenSource>>,
    ) -> Result<(), EngineError> {
        self.send(Command::SetTokenSource(source)).await
    }

    pub async fn snapshot(&self) -> Result<Snapshot, EngineError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Snapshot(reply)).await?;
        answer.await.map_err(|_| EngineError::Stopped)
    }

    /// History entries, state changes and publish progress, from now on.
    pub fn events(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    pub fn server_key(&self) -> &str {
        &self.server_key
    }

    /// Closes the connection cleanly, saves cursors and ends the task.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.send(Command::Shutdown(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
}

/// Resolves when the server acknowledges the publish.
#[derive(Debug)]
pub struct PendingPublish {
    id: String,
    ack: oneshot::Receiver<Result<PublishAck, PublishError>>,
}

impl PendingPublish {
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Future for PendingPublish {
    type Output = Result<PublishAck, PublishError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.ack)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(PublishError::Stopped)))
    }
}

/// The consumer's end: every feed's deliveries in order, exactly once.
///
/// A cursor moves only when the consumer says it has handled a delivery
/// ([`Deliveries::commit`]), so a consumer that stops after N deliveries
/// resumes with `since = N`, never beyond.
pub struct Deliveries {
    receipts: mpsc::UnboundedSender<delivery::Receipt>,
    rx: mpsc::Receiver<Vec<Delivery>>,
    ready: std::collections::VecDeque<Delivery>,
    cursors: Arc<dyn CursorStore>,
    server_key: Arc<str>,
}

impl Deliveries {
    /// The next delivery; `None` once the engine has stopped.
    pub async fn recv(&mut self) -> Option<Delivery> {
        loop {
            if let Some(delivery) = self.ready.pop_front() {
                return Some(delivery);
            }
            self.ready = self.rx.recv().await?.into();
        }
    }

    /// Records that `delivery` has been handled.
    pub fn commit(&self, delivery: &Delivery) -> Result<(), StoreError> {
        self.commit_progress(&delivery.progress())
    }

    /// Records that a delivery reaching `progress` has been handled, for a
    /// consumer that hands the delivery on before committing (so a crash in
    /// between repeats it rather than skipping it).
    pub fn commit_progress(&self, progress: &Progress) -> Result<(), StoreError> {
        if let Some((feed, cursor)) = &progress.cursor {
            self.cursors.save(&self.server_key, feed, cursor)?;
        }
        if let Some(mark) = &progress.session {
            self.cursors.save_session(&self.server_key, mark)?;
        }
        if let Some(receipt) = progress.receipt {
            // The engine gone, nothing is owed any more.
            let _ = self.receipts.send(receipt);
        }
        Ok(())
    }

    /// Makes every committed cursor durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.cursors.flush()
    }
}
