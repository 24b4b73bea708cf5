//! Helpers for the engine's integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use holdline_engine::{
    BackoffConfig, Cause, ConnectError, ConnectionState, Delivery, Engine, EngineConfig,
    EngineEvent, FeedUrl, HistoryEntry, HistoryKind, Token,
};
use holdline_server::{RunningServer, ServerConfig};
use holdline_testkit::within;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::value::RawValue;
use tokio::sync::broadcast;

pub const TOKEN: &str = "test-token-7f3a9c";
pub const WAIT: Duration = Duration::from_secs(20);

pub async fn server(retain: usize, heartbeat_ms: u64) -> RunningServer {
    holdline_server::start(ServerConfig {
        tokens: vec![TOKEN.to_owned()],
        retain,
        heartbeat: Duration::from_millis(heartbeat_ms),
        ..ServerConfig::default()
    })
    .await
    .expect("server starts on 127.0.0.1:0")
}

/// Short timings so faults resolve in milliseconds.
pub fn fast_config(url: &str, token: &str) -> EngineConfig {
    let (url, _) = FeedUrl::parse(url).expect("test URL is valid");
    let mut config = EngineConfig::new(url, Some(Token::new(token)));
    config.backoff = BackoffConfig {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        jitter: 0.5,
        healthy_after: Duration::from_secs(10),
    };
    config.heartbeat = Duration::from_millis(250);
    config.connect_timeout = Duration::from_secs(2);
    config.probe_timeout = Duration::from_millis(300);
    config.gap_timeout = Duration::from_millis(200);
    config
}

pub fn data(n: u64) -> Box<RawValue> {
    RawValue::from_string(format!("{{\"n\":{n}}}")).expect("valid JSON")
}

/// Waits for the next observer event matching `pred`.
pub async fn wait_event(
    events: &mut broadcast::Receiver<EngineEvent>,
    what: &str,
    mut pred: impl FnMut(&EngineEvent) -> bool,
) -> EngineEvent {
    within(WAIT, what, async {
        loop {
            match events.recv().await {
                Ok(event) if pred(&event) => return event,
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => panic!("observer lagged by {n}"),
                Err(broadcast::error::RecvError::Closed) => {
                    panic!("engine stopped while waiting for {what}")
                }
            }
        }
    })
    .await
}

pub async fn wait_state(
    events: &mut broadcast::Receiver<EngineEvent>,
    what: &str,
    mut pred: impl FnMut(&ConnectionState) -> bool,
) -> ConnectionState {
    match wait_event(
        events,
        what,
        |e| matches!(e, EngineEvent::State(s) if pred(s)),
    )
    .await
    {
        EngineEvent::State(state) => state,
        _ => unreachable!(),
    }
}

/// Waits for `needs_login` and returns its reason.
pub async fn wait_needs_login(events: &mut broadcast::Receiver<EngineEvent>) -> String {
    match wait_state(events, "needs_login", |s| {
        matches!(s, ConnectionState::NeedsLogin { .. })
    })
    .await
    {
        ConnectionState::NeedsLogin { reason } => reason,
        _ => unreachable!(),
    }
}

/// Waits for `stopped` and returns its reason.
pub async fn wait_stopped(events: &mut broadcast::Receiver<EngineEvent>) -> String {
    match wait_state(events, "stopped", |s| {
        matches!(s, ConnectionState::Stopped { .. })
    })
    .await
    {
        ConnectionState::Stopped { reason } => reason,
        _ => unreachable!(),
    }
}

/// Fails the test if the engine starts another attempt within 600 ms:
/// with the tests' 20 ms backoff a retry would come well within that.
pub async fn assert_no_new_attempt(events: &mut broadcast::Receiver<EngineEvent>, after: &str) {
    let retry = tokio::time::timeout(Duration::from_millis(600), async {
        loop {
            if let Ok(EngineEvent::History(h)) = events.recv().await
                && h.kind == HistoryKind::Attempt
            {
                return;
            }
        }
    })
    .await;
    assert!(retry.is_err(), "the engine tried again after {after}");
}

pub fn is_open(state: &ConnectionState) -> bool {
    matches!(state, ConnectionState::Open { .. })
}

pub async fn wait_history(
    events: &mut broadcast::Receiver<EngineEvent>,
    kind: HistoryKind,
) -> HistoryEntry {
    match wait_event(
        events,
        &format!("history {kind:?}"),
        |e| matches!(e, EngineEvent::History(h) if h.kind == kind),
    )
    .await
    {
        EngineEvent::History(entry) => entry,
        _ => unreachable!(),
    }
}

/// What a consumer saw, per feed, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Seen {
    pub items: BTreeMap<String, Vec<Item>>,
    pub events: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Event(u64),
    /// An event without a seq, by its data.
    Unnumbered(String),
    Gap(u64, u64),
    InferredGap(u64, u64),
    Reset(String),
    Discontinuity(String),
}

impl Seen {
    pub fn push(&mut self, delivery: &Delivery) {
        match delivery {
            Delivery::Event(e) => {
                self.events += 1;
                self.items
                    .entry(e.feed.to_string())
                    .or_default()
                    .push(match e.seq {
                        Some(seq) => Item::Event(seq),
                        None => Item::Unnumbered(e.data.get().to_owned()),
                    });
            }
            Delivery::Gap {
                feed,
                from,
                to,
                inferred,
                ..
            } => self
                .items
                .entry(feed.to_string())
                .or_default()
                .push(if *inferred {
                    Item::InferredGap(*from, *to)
                } else {
                    Item::Gap(*from, *to)
                }),
            Delivery::Discontinuity { feed, reason } => self
                .items
                .entry(feed.to_string())
                .or_default()
                .push(Item::Discontinuity(reason.as_str().to_owned())),
            Delivery::Reset { feed, epoch } => self
                .items
                .entry(feed.to_string())
                .or_default()
                .push(Item::Reset(epoch.to_string())),
            Delivery::Raw(_) => {}
        }
    }

    pub fn feed(&self, feed: &str) -> Vec<Item> {
        self.items.get(feed).cloned().unwrap_or_default()
    }
}

pub fn seqs(range: std::ops::RangeInclusive<u64>) -> Vec<Item> {
    range.map(Item::Event).collect()
}

/// Receives deliveries until `seen.events` reaches `count`, committing each.
pub async fn collect_until(
    deliveries: &mut holdline_engine::Deliveries,
    seen: &mut Seen,
    count: usize,
) {
    within(
        WAIT,
        &format!("{count} events (have {})", seen.events),
        async {
            while seen.events < count {
                let Some(delivery) = deliveries.recv().await else {
                    panic!("engine stopped")
                };
                deliveries.commit(&delivery).expect("commit");
                seen.push(&delivery);
            }
        },
    )
    .await
}

/// Receives deliveries, committing each and keeping each whole in
/// `whole`, until `done` holds for what was seen.
pub async fn collect_whole(
    deliveries: &mut holdline_engine::Deliveries,
    seen: &mut Seen,
    whole: &mut Vec<Delivery>,
    what: &str,
    done: impl Fn(&Seen) -> bool,
) {
    within(WAIT, what, async {
        while !done(seen) {
            let Some(delivery) = deliveries.recv().await else {
                panic!("engine stopped")
            };
            deliveries.commit(&delivery).expect("commit");
            seen.push(&delivery);
            whole.push(delivery);
        }
    })
    .await;
}

/// Receives deliveries, committing each, until `done` holds.
pub async fn collect_seen(
    deliveries: &mut holdline_engine::Deliveries,
    seen: &mut Seen,
    what: &str,
    done: impl Fn(&Seen) -> bool,
) {
    collect_whole(deliveries, seen, &mut Vec::new(), what, done).await;
}

pub async fn wait_open(events: &mut broadcast::Receiver<EngineEvent>) {
    wait_state(events, "open", is_open).await;
}

/// `base` with the keys of `extra` added (a `null` removes the key), as a
/// loaded profile.
pub fn profile_with(base: serde_json::Value, extra: serde_json::Value) -> holdline_engine::Profile {
    let mut profile = base;
    if let (serde_json::Value::Object(base), serde_json::Value::Object(extra)) =
        (&mut profile, extra)
    {
        for (key, value) in extra {
            if value.is_null() {
                base.remove(&key);
            } else {
                base.insert(key, value);
            }
        }
    }
    holdline_engine::Profile::load(&profile).expect("the test profile is valid")
}

pub fn open_engine(config: EngineConfig) -> (Engine, holdline_engine::Deliveries) {
    Engine::start(config, holdline_engine::Stores::default()).expect("engine starts")
}

// The TLS tests' certificates; the other test binaries leave them unused.
#[allow(unused_imports)]
pub use holdline_testkit::pki::*;

/// The error of the first failed attempt, from the backoff it led to.
pub async fn first_connect_error(config: EngineConfig) -> ConnectError {
    let (engine, _deliveries) = open_engine(config);
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let state = wait_state(&mut events, "backoff after the failed attempt", |s| {
        s.name() == "backoff"
    })
    .await;
    engine.shutdown().await;
    match state {
        ConnectionState::Backoff {
            cause: Cause::Connect { error },
            ..
        } => error,
        other => panic!("unexpected {other:?}"),
    }
}

/// A `wss://` server on loopback with `cert`: it upgrades, says welcome
/// (session `tls`) and reads until the client goes.
pub async fn tls_server(cert: CertificateDer<'static>, key: PrivateKeyDer<'static>) -> SocketAddr {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut ws) = holdline_testkit::ws::accept(tls, true).await else {
                    return;
                };
                let welcome = r#"{"type":"welcome","session":"tls","heartbeat_ms":15000,"max_frame_bytes":65536,"server":"tls-test"}"#;
                let _ = ws.send(Message::text(welcome)).await;
                while let Some(Ok(_)) = ws.next().await {}
            });
        }
    });
    addr
}

/// A forward proxy and the scheme to reach it with (`http`, `socks5`,
/// `socks5h`): a test's connections then tunnel through it.
pub type Tunnel<'a> = Option<(&'a holdline_testkit::ForwardProxy, &'a str)>;

/// `config`, tunnelled through `tunnel` when there is one.
pub fn via(mut config: EngineConfig, tunnel: Tunnel<'_>) -> EngineConfig {
    if let Some((proxy, scheme)) = tunnel {
        let proxy = holdline_engine::Proxy::parse(&proxy.url(scheme, None)).expect("a proxy URL");
        config.proxy = holdline_engine::ProxySetting::Url(proxy);
    }
    config
}
