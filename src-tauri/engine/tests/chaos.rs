//! A seeded chaos soak through the fault proxy and the real server.
//!
//! Faults, chosen by the seed: cut without close frame, half-open stall,
//! stall of the server→client direction only, slow link then cut, server
//! closes with transient codes, slow-consumer 4008, rate-limited 4029 with
//! `retry_after_ms`. Events are published on three feeds throughout and
//! the engine publishes to a fourth. Checked at the end: every feed
//! delivered exactly once in strictly increasing seq with no gap or reset
//! (nothing was lost), every publish acked exactly once and published once,
//! buffers within their bounds after every fault.
//!
//! The suite runs a short soak; the long one is
//!   HOLDLINE_CHAOS_FAULTS=1000 cargo test -p holdline-engine --release --test chaos -- --nocapture
//! and HOLDLINE_CHAOS_SEED=N replays a seed.

mod support;

use std::time::{Duration, Instant};

use holdline_engine::{EngineEvent, HistoryKind, StartFrom};
use holdline_testkit::{FaultProxy, within};
use support::*;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Cut,
    Stall,
    StallDownstream,
    SlowThenCut,
    Close(u16),
    RateLimited,
}

fn pick(rng: &mut fastrand::Rng) -> Fault {
    match rng.u32(0..8) {
        0 | 1 => Fault::Cut,
        2 => Fault::Stall,
        3 => Fault::StallDownstream,
        4 => Fault::SlowThenCut,
        5 => Fault::Close([1001, 1011, 1012, 4000][rng.usize(0..4)]),
        6 => Fault::Close(4008),
        _ => Fault::RateLimited,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak_loses_nothing_and_duplicates_nothing() {
    let seed = env_u64("HOLDLINE_CHAOS_SEED").unwrap_or_else(|| fastrand::u64(..));
    let faults = env_u64("HOLDLINE_CHAOS_FAULTS").unwrap_or(40);
    println!("chaos: seed {seed}, {faults} faults (replay with HOLDLINE_CHAOS_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);

    let server = server(10_000_000, 250).await;
    let proxy = FaultProxy::start(server.local_addr()).await;
    let config = fast_config(&proxy.url(), TOKEN);
    let window = config.reorder_window;
    let outbox_capacity = config.outbox_capacity;
    let (engine, mut deliveries) = open_engine(config);
    let mut events = engine.events();
    let feeds = ["chaos.a", "chaos.b", "chaos.c"];
    for feed in feeds {
        engine.subscribe(feed, StartFrom::Beginning).await.unwrap();
    }
    engine.connect().await.unwrap();
    wait_state(&mut events, "first open", is_open).await;

    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    let (target_tx, mut target_rx) = tokio::sync::watch::channel(usize::MAX);
    tokio::spawn(async move {
        let mut seen = Seen::default();
        loop {
            let target = *target_rx.borrow_and_update();
            if seen.events >= target {
                break;
            }
            tokio::select! {
                delivery = deliveries.recv() => {
                    let Some(delivery) = delivery else { break };
                    seen.push(&delivery);
                }
                _ = target_rx.changed() => {}
            }
        }
        let _ = seen_tx.send(seen);
    });

    let mut published = 0u64;
    let mut pending = Vec::new();
    let mut client_publishes = 0u64;
    let started = Instant::now();
    let mut counts = std::collections::BTreeMap::<String, u32>::new();
    for round in 0..faults {
        let burst = rng.u64(1..20);
        for _ in 0..burst {
            published += 1;
            for feed in feeds {
                server.publish(feed, &data(published)).await.unwrap();
            }
        }
        let fault = pick(&mut rng);
        *counts.entry(format!("{fault:?}")).or_default() += 1;
        match fault {
            Fault::Cut => proxy.cut_all(),
            Fault::Stall => proxy.stall(true),
            Fault::StallDownstream => proxy.stall_downstream(true),
            Fault::SlowThenCut => {
                proxy.set_delay(Duration::from_millis(rng.u64(5..40)));
                proxy.cut_all();
            }
            Fault::Close(code) => server.close_all(code, "chaos"),
            Fault::RateLimited => server.close_all(4029, "retry_after_ms=30"),
        }
        // Publishes made around the outage, by the server and the client.
        for _ in 0..rng.u64(0..10) {
            published += 1;
            for feed in feeds {
                server.publish(feed, &data(published)).await.unwrap();
            }
        }
        for _ in 0..rng.u64(0..3) {
            client_publishes += 1;
            let id = format!("chaos-{seed}-{client_publishes}");
            pending.push(
                engine
                    .publish("chaos.chat", data(client_publishes), Some(id))
                    .await
                    .unwrap(),
            );
        }
        wait_history(&mut events, HistoryKind::Disconnected).await;
        proxy.stall(false);
        proxy.set_delay(Duration::ZERO);
        wait_state(
            &mut events,
            &format!("reopen after fault {round} ({fault:?}), seed {seed}"),
            is_open,
        )
        .await;
        let snapshot = engine.snapshot().await.unwrap();
        for feed in &snapshot.feeds {
            assert!(
                feed.buffered <= window,
                "seed {seed}: {} buffered {}",
                feed.feed,
                feed.buffered
            );
        }
        assert!(
            snapshot.outbox.len() <= outbox_capacity,
            "seed {seed}: outbox {}",
            snapshot.outbox.len()
        );
    }
    target_tx.send_replace(feeds.len() * published as usize);
    let seen = within(
        Duration::from_secs(60),
        &format!("every delivery, seed {seed}"),
        seen_rx,
    )
    .await
    .unwrap();
    for feed in feeds {
        assert_eq!(
            seen.feed(feed),
            seqs(1..=published),
            "feed {feed}, seed {seed}"
        );
    }
    let mut acked = Vec::new();
    for publish in pending {
        acked.push(
            within(WAIT, &format!("ack, seed {seed}"), publish)
                .await
                .unwrap()
                .seq
                .expect("holdline acks carry a seq"),
        );
    }
    acked.sort_unstable();
    assert_eq!(
        acked,
        (1..=client_publishes).collect::<Vec<_>>(),
        "seed {seed}: acks"
    );
    assert_eq!(
        server
            .head("chaos.chat")
            .await
            .unwrap()
            .map(|h| h.1)
            .unwrap_or(0),
        client_publishes,
        "seed {seed}: a resent publish was published twice"
    );
    let disconnects = {
        let mut n = 0;
        while let Ok(event) = events.try_recv() {
            if matches!(event, EngineEvent::History(ref h) if h.kind == HistoryKind::Disconnected) {
                n += 1;
            }
        }
        n
    };
    println!(
        "chaos: seed {seed}: {faults} faults {counts:?} survived in {:.1} s; {} events on each of {} feeds and {client_publishes} publishes, exactly once ({disconnects} extra disconnects)",
        started.elapsed().as_secs_f64(),
        published,
        feeds.len()
    );
    engine.shutdown().await;
}
