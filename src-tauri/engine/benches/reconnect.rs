//! Reconnect: how long from the server being back to every feed resumed,
//! for one client and for a storm of 1,000 cut off at once, on the default
//! backoff (1 s initial, jittered to [0.5 s, 1 s] for the first retry).
//!
//!   cargo bench -p holdline-engine --bench reconnect
//!
//! For each client: the delay its backoff chose, when its feed resumed (the
//! server's `subscribed` answered its re-subscribe), and the overshoot
//! past the moment its retry was due. The spread of the retries is what
//! keeps a thousand clients from coming back in one instant.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use holdline_engine::{
    ConnectionState, Engine, EngineConfig, EngineEvent, FeedUrl, HistoryKind, StartFrom, Stores,
    Token,
};
use holdline_server::{RunningServer, ServerConfig};
use tokio::sync::broadcast::error::RecvError;

#[cfg(feature = "bench-mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn server(listen: SocketAddr) -> RunningServer {
    holdline_server::start(ServerConfig {
        listen,
        tokens: vec!["t".into()],
        ..ServerConfig::default()
    })
    .await
    .expect("server starts")
}

struct Outcome {
    /// The backoff delay chosen after the cut.
    delay: Duration,
    /// From the server being back up to the feed resumed.
    resumed_after_up: Duration,
    /// How far past its due retry time the feed resumed.
    overshoot: Duration,
}

/// Follows one engine from the cut to its feed's resumption.
async fn follow(
    mut events: tokio::sync::broadcast::Receiver<EngineEvent>,
    up: tokio::sync::watch::Receiver<Option<Instant>>,
) -> Outcome {
    let mut delay = None;
    let mut due = None;
    loop {
        match events.recv().await {
            Ok(EngineEvent::State(ConnectionState::Backoff { delay_ms, .. }))
                if delay.is_none() =>
            {
                delay = Some(Duration::from_millis(delay_ms));
                due = Some(Instant::now() + Duration::from_millis(delay_ms));
            }
            Ok(EngineEvent::History(h)) if h.kind == HistoryKind::Subscribed && delay.is_some() => {
                let now = Instant::now();
                let up_at = up.borrow().expect("resumed before the server was up?");
                let due = due.unwrap_or(now);
                return Outcome {
                    delay: delay.unwrap_or_default(),
                    resumed_after_up: now.saturating_duration_since(up_at),
                    overshoot: now.saturating_duration_since(due.max(up_at)),
                };
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => panic!("engine stopped"),
        }
    }
}

fn stats(label: &str, mut values: Vec<Duration>) -> String {
    values.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| ms(values[((values.len() as f64 - 1.0) * q).round() as usize]);
    format!(
        "| {label} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
        ms(values[0]),
        p(0.5),
        p(0.99),
        ms(*values.last().unwrap_or(&Duration::ZERO)),
        ms(values[values.len() - 1]) - ms(values[0])
    )
}

async fn run(clients: usize) {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = probe.local_addr().unwrap();
    drop(probe);
    let first = server(listen).await;
    let (url, _) = FeedUrl::parse(&format!("ws://{listen}")).unwrap();
    let mut engines = Vec::new();
    let mut opened = Vec::new();
    for _ in 0..clients {
        let config = EngineConfig::new(url.clone(), Some(Token::new("t")));
        let (engine, deliveries) = Engine::start(config, Stores::default()).unwrap();
        engine.subscribe("storm", StartFrom::Live).await.unwrap();
        let mut state = engine.state();
        engine.connect().await.unwrap();
        opened.push(tokio::spawn(async move {
            let _ = state
                .wait_for(|s| matches!(s, ConnectionState::Open { .. }))
                .await;
        }));
        engines.push((engine, deliveries));
    }
    for task in opened {
        task.await.unwrap();
    }
    let (up_tx, up_rx) = tokio::sync::watch::channel(None);
    let followers: Vec<_> = engines
        .iter()
        .map(|(engine, _)| tokio::spawn(follow(engine.events(), up_rx.clone())))
        .collect();
    // Cut everyone off at once (1001), then bring the server back on the
    // same port right away.
    let cut = Instant::now();
    first.shutdown().await;
    let second = server(listen).await;
    let up = Instant::now();
    up_tx.send_replace(Some(up));
    let mut outcomes = Vec::new();
    for follower in followers {
        outcomes.push(follower.await.unwrap());
    }
    let all_back = outcomes
        .iter()
        .map(|o| o.resumed_after_up)
        .max()
        .unwrap_or_default();
    println!();
    println!(
        "## {clients} client(s): server down for {:.0} ms; every feed resumed {:.0} ms after it was back",
        up.duration_since(cut).as_secs_f64() * 1000.0,
        all_back.as_secs_f64() * 1000.0
    );
    println!("| ms | min | p50 | p99 | max | spread (max − min) |");
    println!("|---|---|---|---|---|---|");
    println!(
        "{}",
        stats(
            "backoff delay chosen",
            outcomes.iter().map(|o| o.delay).collect()
        )
    );
    println!(
        "{}",
        stats(
            "resumed after server up",
            outcomes.iter().map(|o| o.resumed_after_up).collect()
        )
    );
    println!(
        "{}",
        stats(
            "past the due retry",
            outcomes.iter().map(|o| o.overshoot).collect()
        )
    );
    for (engine, _) in &engines {
        engine.shutdown().await;
    }
    second.shutdown().await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    run(1).await;
    run(1000).await;
}
