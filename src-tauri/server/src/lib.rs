//! The reference `holdline.v1` feed server, as a library: the binary wraps
//! it, the desktop app embeds it for the Local demo, tests start it on
//! `127.0.0.1:0` in-process.

mod auth;
mod config;
mod connection;
pub mod demo;
mod feeds;
mod jwt;
mod log;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::value::RawValue;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

pub use crate::config::ServerConfig;
pub use crate::connection::Control;
use crate::jwt::JwtVerifier;
pub use crate::jwt::OidcSpec;
pub use crate::log::{LogError, LogSpec};

use crate::auth::Gate;
use crate::feeds::{FeedHub, Feeds};
use crate::log::{Log, LogSettings};

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(
        "refusing to start without a token: pass --token T (repeatable) or --oidc-issuer, or --allow-unauthenticated to let anyone in"
    )]
    NoToken,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("invalid feed name: {0}")]
    InvalidFeed(#[from] holdline_protocol::NameError),
    #[error("{0}")]
    OpenLog(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("{0}")]
    Provider(String),
}

/// A handshake answer forced by the embedder (tests of 429/503 handling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub retry_after_s: Option<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub handshakes: AtomicU64,
    pub refused: AtomicU64,
    pub connections: AtomicU64,
    pub slow_consumers: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerStats {
    /// TCP connections that reached the upgrade, refused ones included.
    pub handshakes: u64,
    /// Upgrades refused (401, 403, forced rejections) or failed.
    pub refused: u64,
    /// Clients connected now.
    pub connections: u64,
    /// Clients closed with 4008 because their send queue overflowed.
    pub slow_consumers: u64,
}

pub(crate) struct Shared {
    pub config: ServerConfig,
    pub gate: Gate,
    pub feeds: Feeds,
    pub read_only_feeds: HashSet<&'static str>,
    pub stats: Stats,
    pub next_client: AtomicU64,
    rejection: Mutex<Option<Rejection>>,
}

impl Shared {
    pub fn rejection(&self) -> Option<Rejection> {
        *self.rejection.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A server accepting connections until [`RunningServer::shutdown`].
pub struct RunningServer {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    control: broadcast::Sender<Control>,
    accept: tokio::task::JoinHandle<()>,
}

/// Binds and starts serving on the current Tokio runtime.
pub async fn start(mut config: ServerConfig) -> Result<RunningServer, ServerError> {
    if config.demo && !config.tokens.iter().any(|t| t == demo::TOKEN) {
        config.tokens.push(demo::TOKEN.to_owned());
    }
    if config.tokens.is_empty() && config.oidc.is_none() && !config.allow_unauthenticated {
        return Err(ServerError::NoToken);
    }
    if config.allow_unauthenticated {
        warn!("authentication is OFF: anyone who can reach this port may subscribe and publish");
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.listen,
        source,
    })?;
    let provider = match &config.oidc {
        Some(spec) => Some(
            JwtVerifier::start(spec.clone())
                .await
                .map_err(ServerError::Provider)?,
        ),
        None => None,
    };
    let hub = Arc::new(FeedHub::default());
    let settings = LogSettings {
        retain: config.retain,
        publish_id_ttl: config.publish_id_ttl,
    };
    let log = Log::open(&config.log, settings, hub.clone())
        .await
        .map_err(ServerError::OpenLog)?;
    let read_only_feeds = if config.demo {
        demo::READ_ONLY.into_iter().collect()
    } else {
        HashSet::new()
    };
    let shared = Arc::new(Shared {
        gate: Gate::new(
            config.tokens.clone(),
            config.allow_unauthenticated,
            config.allow_origins.clone(),
        )
        .with_provider(provider),
        feeds: Feeds { hub, log },
        read_only_feeds,
        stats: Stats::default(),
        next_client: AtomicU64::new(1),
        rejection: Mutex::new(None),
        config,
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (control, _) = broadcast::channel(16);
    if shared.config.demo {
        demo::spawn(shared.clone(), shutdown_rx.clone());
    }
    let accept = tokio::spawn(accept_loop(
        listener,
        shared.clone(),
        shutdown_rx,
        control.clone(),
    ));
    info!(%local_addr, "listening");
    Ok(RunningServer {
        local_addr,
        shared,
        shutdown,
        control,
        accept,
    })
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    control: broadcast::Sender<Control>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let span = tracing::info_span!("client", %peer);
                    connections.spawn(tracing::Instrument::instrument(
                        connection::serve(
                            stream,
                            peer,
                            shared.clone(),
                            shutdown.clone(),
                            control.subscribe(),
                        ),
                        span,
                    ));
                }
                Err(err) => {
                    // Out of descriptors and the like: wait, do not spin.
                    warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    // Every connection saw the shutdown and is sending its 1001 close.
    while connections.join_next().await.is_some() {}
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `ws://HOST:PORT`
    pub fn url(&self) -> String {
        format!("ws://{}", self.local_addr)
    }

    /// Publishes as the server itself; returns the event's `seq`.
    pub async fn publish(&self, feed: &str, data: &RawValue) -> Result<u64, ServerError> {
        holdline_protocol::validate_feed_name(feed)?;
        Ok(self.shared.feeds.publish(feed, data, None).await?.seq)
    }

    /// The feed's epoch and head, if the feed exists.
    pub async fn head(&self, feed: &str) -> Result<Option<(String, u64)>, ServerError> {
        Ok(self.shared.feeds.log.head(feed).await?)
    }

    /// Closes every client connection with this code and reason.
    pub fn close_all(&self, code: u16, reason: &str) {
        let _ = self.control.send(Control::CloseAll {
            code,
            reason: reason.to_owned(),
        });
    }

    /// Answers every upgrade with this status until cleared with `None`.
    pub fn reject_handshakes(&self, rejection: Option<Rejection>) {
        *self
            .shared
            .rejection
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = rejection;
    }

    pub fn stats(&self) -> ServerStats {
        let stats = &self.shared.stats;
        ServerStats {
            handshakes: stats.handshakes.load(Ordering::Relaxed),
            refused: stats.refused.load(Ordering::Relaxed),
            connections: stats.connections.load(Ordering::Relaxed),
            slow_consumers: stats.slow_consumers.load(Ordering::Relaxed),
        }
    }

    /// Closes every client with 1001 and waits until all are gone.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.accept.await;
        self.shared.feeds.log.close().await;
        info!("server stopped");
    }
}
