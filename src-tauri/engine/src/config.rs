//! Engine settings. Defaults follow the protocol; tests shrink them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use holdline_protocol::DEFAULT_HEARTBEAT_MS;

use crate::backoff::BackoffConfig;
use crate::client_certificate::ClientCertificate;
use crate::feed_url::FeedUrl;
use crate::profile::Profile;
use crate::proxy::ProxySetting;
use crate::secret::Token;
use crate::token_source::TokenSource;

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub url: FeedUrl,
    pub token: Option<Token>,
    /// A login that refreshes its token; when set, `token` is not used.
    pub token_source: Option<Arc<dyn TokenSource>>,
    pub backoff: BackoffConfig,
    /// Used until the server's `welcome` says otherwise, and in raw mode.
    pub heartbeat: Duration,
    /// DNS, TCP, TLS and the upgrade, each.
    pub connect_timeout: Duration,
    /// How long a wake or network-change probe waits for any frame.
    pub probe_timeout: Duration,
    /// How far ahead of the next expected `seq` an event may be buffered.
    pub reorder_window: usize,
    /// How long a hole may stay open before re-subscribing from the cursor.
    pub gap_timeout: Duration,
    pub outbox_capacity: usize,
    /// Deliveries that may wait for a slow consumer before the engine
    /// stops reading the socket. They wait in whole read turns (up to
    /// `FRAMES_PER_TURN` each), so the bound is this rounded down to whole
    /// turns, and never below two turns; `docs/benchmarks.md` gives the memory
    /// it can take.
    pub delivery_buffer: usize,
    /// The largest frame accepted from the server.
    pub max_incoming_frame_bytes: usize,
    /// Extra PEM certificates to trust beside the platform's roots.
    pub extra_ca_file: Option<PathBuf>,
    /// Our own certificate for servers that ask for one.
    pub client_certificate: Option<ClientCertificate>,
    /// How the server is reached: direct unless set (the CLI and the app
    /// choose the system's proxy by default).
    pub proxy: ProxySetting,
    /// How to speak to the server; `holdline.v1` by default.
    pub profile: Profile,
    /// A short-lived engine that only publishes (the CLI's `publish`): a
    /// wire with client sessions (MQTT) uses a client id of its own and
    /// keeps no session, so it never takes over a running consumer's.
    pub publisher: bool,
}

impl EngineConfig {
    pub fn new(url: FeedUrl, token: Option<Token>) -> Self {
        EngineConfig {
            url,
            token,
            token_source: None,
            backoff: BackoffConfig::default(),
            heartbeat: Duration::from_millis(DEFAULT_HEARTBEAT_MS),
            connect_timeout: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(3),
            reorder_window: 1024,
            gap_timeout: Duration::from_secs(2),
            outbox_capacity: 1000,
            // Sixteen read turns: what the throughput figures were taken with.
            delivery_buffer: 16 * crate::actor::FRAMES_PER_TURN,
            max_incoming_frame_bytes: 16 << 20,
            extra_ca_file: None,
            client_certificate: None,
            proxy: ProxySetting::None,
            profile: Profile::holdline(),
            publisher: false,
        }
    }

    /// Takes `profile`, and its `heartbeat_ms` where it sets one.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        if let Some(heartbeat) = profile.common.heartbeat {
            self.heartbeat = heartbeat;
        }
        self.profile = profile;
        self
    }
}
