//! Server settings, shared by the binary's flags and the embedding API.

use std::net::SocketAddr;
use std::time::Duration;

use holdline_protocol::DEFAULT_HEARTBEAT_MS;

use crate::jwt::OidcSpec;
use crate::log::LogSpec;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Bearer tokens that may connect. Empty means nobody may, unless
    /// `allow_unauthenticated` is set.
    pub tokens: Vec<String>,
    pub allow_unauthenticated: bool,
    /// Also admit access tokens this OpenID provider issued for us.
    pub oidc: Option<OidcSpec>,
    /// Origins allowed to connect; empty allows any. Requests without an
    /// `Origin` header (non-browser clients) are not affected.
    pub allow_origins: Vec<String>,
    /// Where the feeds' events live.
    pub log: LogSpec,
    /// Events kept per feed for replay.
    pub retain: usize,
    pub heartbeat: Duration,
    /// The largest client frame accepted; larger ones get `too_large`.
    pub max_frame_bytes: usize,
    /// Frames queued for one client before it counts as a slow consumer.
    pub send_queue: usize,
    /// How long accepted publish ids are remembered per token.
    pub publish_id_ttl: Duration,
    pub demo: bool,
    /// How long the upgrade may take.
    pub handshake_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tokens: Vec::new(),
            allow_unauthenticated: false,
            oidc: None,
            allow_origins: Vec::new(),
            log: LogSpec::Memory,
            retain: 10_000,
            heartbeat: Duration::from_millis(DEFAULT_HEARTBEAT_MS),
            max_frame_bytes: 1 << 20,
            send_queue: 8192,
            publish_id_ttl: Duration::from_secs(600),
            demo: false,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    /// Frames beyond this are not even read: the connection closes with 1009.
    /// Between `max_frame_bytes` and this, the client gets `too_large` and
    /// the connection stays open.
    pub fn hard_frame_limit(&self) -> usize {
        self.max_frame_bytes
            .saturating_mul(4)
            .max(self.max_frame_bytes.saturating_add(64 << 10))
    }
}
