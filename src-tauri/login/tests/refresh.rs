//! The engine kept connected by a login that refreshes: a real OpenID
//! provider issuing access tokens that live a couple of seconds, and our
//! feed server admitting them and closing with 4001 at their expiry.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use holdline_engine::{
    BackoffConfig, ConnectionState, Delivery, Engine, EngineConfig, EngineEvent, FeedUrl,
    HistoryKind, StartFrom, Stores,
};
use holdline_login::{Grant, GrantKeeper, OidcSession, http_client};
use holdline_server::{OidcSpec, RunningServer, ServerConfig};
use holdline_testkit::oidc_provider::AUDIENCE;
use holdline_testkit::{OidcProvider, within};
use serde_json::value::RawValue;
use support::*;

async fn feed_server(provider: &OidcProvider) -> RunningServer {
    holdline_server::start(ServerConfig {
        oidc: Some(OidcSpec {
            issuer: provider.issuer().to_owned(),
            audience: AUDIENCE.to_owned(),
        }),
        heartbeat: Duration::from_millis(250),
        ..ServerConfig::default()
    })
    .await
    .expect("the server starts with the provider's keys")
}

/// Everything the engine told its observers, kept for the assertions.
#[derive(Clone, Default)]
struct Observed(Arc<Mutex<Vec<EngineEvent>>>);

impl Observed {
    fn follow(engine: &Engine) -> Observed {
        let observed = Observed::default();
        let kept = observed.0.clone();
        let mut events = engine.events();
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                kept.lock().unwrap().push(event);
            }
        });
        observed
    }

    fn history(&self, kind: HistoryKind) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|event| match event {
                EngineEvent::History(entry) if entry.kind == kind => Some(entry.message.clone()),
                _ => None,
            })
            .collect()
    }

    fn states(&self) -> Vec<ConnectionState> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|event| match event {
                EngineEvent::State(state) => Some(state.clone()),
                _ => None,
            })
            .collect()
    }

    fn as_json(&self) -> String {
        serde_json::to_string(&*self.0.lock().unwrap()).unwrap()
    }
}

/// An engine on `server` whose token comes from `grant`, kept in `kept`.
fn engine_with(
    server: &RunningServer,
    grant: Grant,
    kept: Arc<Kept>,
) -> (Engine, holdline_engine::Deliveries) {
    kept.keep(&grant).unwrap();
    let (url, _) = FeedUrl::parse(&server.url()).unwrap();
    let mut config = EngineConfig::new(url, None);
    config.token_source = Some(Arc::new(OidcSession::new(
        grant,
        kept,
        http_client().unwrap(),
    )));
    config.backoff = BackoffConfig {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        jitter: 0.5,
        healthy_after: Duration::from_secs(10),
    };
    config.heartbeat = Duration::from_millis(250);
    Engine::start(config, Stores::default()).expect("engine starts")
}

fn data(n: u64) -> Box<RawValue> {
    RawValue::from_string(format!("{{\"n\":{n}}}")).unwrap()
}

/// Receives deliveries until `count` events arrived; returns their seqs,
/// and fails on any marker (a gap or a reset means something was lost).
async fn receive_events(deliveries: &mut holdline_engine::Deliveries, count: usize) -> Vec<u64> {
    let mut seqs = Vec::new();
    within(WAIT, &format!("{count} events"), async {
        while seqs.len() < count {
            let delivery = deliveries.recv().await.expect("engine running");
            deliveries.commit(&delivery).unwrap();
            match delivery {
                Delivery::Event(event) => seqs.push(event.seq.expect("holdline.v1 numbers")),
                other => panic!("continuity lost: {other:?}"),
            }
        }
    })
    .await;
    seqs
}

#[tokio::test]
async fn a_feed_stays_open_across_many_expiries_with_nothing_lost() {
    let mut provider = OidcProvider::start(2).await;
    let server = feed_server(&provider).await;
    let grant = device_grant(&mut provider).await;
    let kept = Arc::new(Kept::default());
    let (engine, mut deliveries) = engine_with(&server, grant, kept.clone());
    let observed = Observed::follow(&engine);
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    // The server publishes steadily and the client publishes too, across
    // at least four token lifetimes.
    const EVENTS: u64 = 160;
    let publishing = async {
        for n in 0..EVENTS {
            if n % 2 == 0 {
                server.publish("f", &data(n)).await.unwrap();
            } else {
                let ack = engine
                    .publish("f", data(n), Some(format!("p{n}")))
                    .await
                    .unwrap();
                ack.await.expect("every publish is acknowledged");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (_, seqs) = tokio::join!(publishing, receive_events(&mut deliveries, EVENTS as usize));
    assert_eq!(
        seqs,
        (1..=EVENTS).collect::<Vec<_>>(),
        "every event once, in order"
    );
    let expired = observed
        .history(HistoryKind::Disconnected)
        .into_iter()
        .filter(|m| m.contains("4001"))
        .count();
    assert!(expired >= 3, "the server closed at expiry {expired} times");
    let refreshed = observed
        .history(HistoryKind::Login)
        .into_iter()
        .filter(|m| m.starts_with("token refreshed"))
        .count();
    assert!(
        refreshed >= expired,
        "{refreshed} refreshes for {expired} expiries"
    );
    assert!(
        !observed.states().iter().any(|s| matches!(
            s,
            ConnectionState::NeedsLogin { .. } | ConnectionState::Stopped { .. }
        )),
        "the engine never waited for a person"
    );
    let snapshot = engine.snapshot().await.unwrap();
    assert!(snapshot.token_refreshed_at_ms.is_some());
    assert!(snapshot.token_expires_at_ms.is_some());
    // No token of the login reached the observers.
    let stored = kept.load().unwrap().unwrap();
    let shown = observed.as_json() + &serde_json::to_string(&snapshot).unwrap();
    for secret in [stored.access_token, stored.refresh_token]
        .into_iter()
        .flatten()
    {
        assert!(
            !shown.contains(&secret),
            "a token reached the history or the snapshot"
        );
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn a_token_refused_at_the_upgrade_is_refreshed_once_and_the_feed_resumes() {
    let mut provider = OidcProvider::start(1).await;
    let server = feed_server(&provider).await;
    let mut grant = device_grant(&mut provider).await;
    // The token has expired, but the login believes it good for an hour:
    // only the server's 401 can tell.
    let expired_at = grant.expires_at_ms.expect("an expiry");
    let until =
        Duration::from_millis((expired_at - holdline_engine::events::now_ms()).max(0) as u64);
    tokio::time::sleep(until + Duration::from_millis(100)).await;
    grant.expires_at_ms = Some(expired_at + 3_600_000);
    grant.lifetime_ms = Some(3_600_000);
    server.publish("f", &data(1)).await.unwrap();
    let (engine, mut deliveries) = engine_with(&server, grant, Arc::new(Kept::default()));
    let observed = Observed::follow(&engine);
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    assert_eq!(receive_events(&mut deliveries, 1).await, vec![1]);
    let failed = observed.history(HistoryKind::AttemptFailed);
    assert!(failed[0].contains("401"), "{failed:?}");
    let login = observed.history(HistoryKind::Login);
    assert!(
        login[0].starts_with("the server refused the token"),
        "{login:?}"
    );
    assert!(login[1].starts_with("token refreshed"), "{login:?}");
    assert_eq!(
        provider.tokens_issued("refresh_token"),
        1,
        "one refresh, no more"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_revoked_refresh_token_ends_in_needs_login_with_the_providers_reason() {
    let mut provider = OidcProvider::start(2).await;
    let server = feed_server(&provider).await;
    let grant = device_grant(&mut provider).await;
    let kept = Arc::new(Kept::default());
    let (engine, _deliveries) = engine_with(&server, grant, kept.clone());
    let mut events = engine.events();
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    let open = within(WAIT, "open", async {
        loop {
            if let Ok(EngineEvent::State(ConnectionState::Open { .. })) = events.recv().await {
                return;
            }
        }
    });
    open.await;
    let current = kept.load().unwrap().unwrap().refresh_token.unwrap();
    provider.revoke(&current).await;
    let reason = within(WAIT, "needs_login", async {
        loop {
            if let Ok(EngineEvent::State(ConnectionState::NeedsLogin { reason })) =
                events.recv().await
            {
                return reason;
            }
        }
    })
    .await;
    assert!(reason.contains("invalid_grant"), "{reason}");
    assert!(!reason.contains(&current), "the reason shows no token");
    engine.shutdown().await;
}

#[tokio::test]
async fn a_service_account_stays_connected_across_expiries() {
    let provider = OidcProvider::start(1).await;
    let server = feed_server(&provider).await;
    let grant = service_grant(&provider).await;
    let (engine, mut deliveries) = engine_with(&server, grant, Arc::new(Kept::default()));
    let observed = Observed::follow(&engine);
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    const EVENTS: u64 = 40;
    let publishing = async {
        for n in 0..EVENTS {
            server.publish("f", &data(n)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let (_, seqs) = tokio::join!(publishing, receive_events(&mut deliveries, EVENTS as usize));
    assert_eq!(seqs, (1..=EVENTS).collect::<Vec<_>>());
    assert!(provider.tokens_issued("client_credentials") >= 3);
    assert!(
        !observed
            .states()
            .iter()
            .any(|s| matches!(s, ConnectionState::NeedsLogin { .. })),
    );
    engine.shutdown().await;
}
