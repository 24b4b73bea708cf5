//! The engine against the real server, through the fault proxy.

mod support;

use std::time::Duration;

use holdline_engine::{Cause, ConnectionState, HistoryKind, StartFrom};
use holdline_testkit::{FaultProxy, within};
use support::*;

/// Hundreds of events on three feeds, with dozens of faults of three kinds
/// in between (cut without close frame, half-open stall, slow link), all
/// arrive exactly once and in order, with no gap or reset marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_exactly_once_in_order_across_dozens_of_faults() {
    let server = server(100_000, 250).await;
    let proxy = FaultProxy::start(server.local_addr()).await;
    let (engine, mut deliveries) = open_engine(fast_config(&proxy.url(), TOKEN));
    let mut events = engine.events();
    let feeds = ["alpha", "beta", "gamma"];
    for feed in feeds {
        engine.subscribe(feed, StartFrom::Beginning).await.unwrap();
    }
    engine.connect().await.unwrap();
    wait_state(&mut events, "first open", is_open).await;

    let consumer = tokio::spawn(async move {
        let mut seen = Seen::default();
        collect_until(&mut deliveries, &mut seen, 3 * 30 * 15).await;
        seen
    });

    let mut published = 0u64;
    let mut faults = 0;
    for round in 0..30 {
        for _ in 0..10 {
            published += 1;
            for feed in feeds {
                server.publish(feed, &data(published)).await.unwrap();
            }
        }
        match round % 3 {
            0 => proxy.cut_all(),
            1 => proxy.stall(true),
            _ => {
                proxy.set_delay(Duration::from_millis(30));
                proxy.cut_all();
            }
        }
        faults += 1;
        // Events published while the client is cut off must come by replay.
        for _ in 0..5 {
            published += 1;
            for feed in feeds {
                server.publish(feed, &data(published)).await.unwrap();
            }
        }
        wait_history(&mut events, HistoryKind::Disconnected).await;
        proxy.stall(false);
        wait_state(&mut events, "reopen after a fault", is_open).await;
        proxy.set_delay(Duration::ZERO);
    }
    let seen = within(WAIT, "consumer", consumer).await.unwrap();
    assert_eq!(faults, 30);
    for feed in feeds {
        assert_eq!(seen.feed(feed), seqs(1..=published), "feed {feed}");
    }
    let snapshot = engine.snapshot().await.unwrap();
    for feed in &snapshot.feeds {
        assert_eq!(feed.last_seq, Some(published));
        assert_eq!(feed.stats.gaps, 0);
        assert_eq!(feed.stats.resets, 0);
    }
    engine.shutdown().await;
}

/// A server restart with an in-memory log starts a new epoch: the client
/// delivers a reset marker and resumes in the new epoch from its start.
#[tokio::test]
async fn a_server_restart_yields_a_reset_marker() {
    let first = server(1000, 250).await;
    let proxy = FaultProxy::start(first.local_addr()).await;
    let (engine, mut deliveries) = open_engine(fast_config(&proxy.url(), TOKEN));
    let mut events = engine.events();
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    for n in 1..=5 {
        first.publish("f", &data(n)).await.unwrap();
    }
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 5).await;
    let (old_epoch, _) = first.head("f").await.unwrap().unwrap();

    first.shutdown().await;
    let disconnected = wait_history(&mut events, HistoryKind::Disconnected).await;
    assert_eq!(disconnected.details["close_code"], 1001, "{disconnected:?}");

    let second = server(1000, 250).await;
    for n in 1..=3 {
        second.publish("f", &data(n)).await.unwrap();
    }
    let (new_epoch, _) = second.head("f").await.unwrap().unwrap();
    assert_ne!(old_epoch, new_epoch);
    proxy.set_upstream(second.local_addr());
    collect_until(&mut deliveries, &mut seen, 8).await;

    let mut expected = seqs(1..=5);
    expected.push(Item::Reset(new_epoch));
    expected.extend(seqs(1..=3));
    assert_eq!(seen.feed("f"), expected);
    engine.shutdown().await;
}

/// Events that fell out of the server's retention while the client was away
/// become one gap marker for exactly those events.
#[tokio::test]
async fn retention_exceeded_yields_a_true_gap_marker() {
    let server = server(10, 250).await;
    let (engine, mut deliveries) = open_engine(fast_config(&server.url(), TOKEN));
    let mut events = engine.events();
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    for n in 1..=5 {
        server.publish("f", &data(n)).await.unwrap();
    }
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 5).await;

    engine.disconnect().await.unwrap();
    wait_state(&mut events, "idle", |s| *s == ConnectionState::Idle).await;
    for n in 6..=55 {
        server.publish("f", &data(n)).await.unwrap();
    }
    engine.connect().await.unwrap();
    collect_until(&mut deliveries, &mut seen, 15).await;

    let mut expected = seqs(1..=5);
    expected.push(Item::Gap(6, 45));
    expected.extend(seqs(46..=55));
    assert_eq!(seen.feed("f"), expected);
    let gap = wait_history(&mut events, HistoryKind::Gap).await;
    assert_eq!(
        (gap.details["from"].as_u64(), gap.details["to"].as_u64()),
        (Some(6), Some(45))
    );
    engine.shutdown().await;
}

/// A 401 at the upgrade stops at once with needs_login: one attempt only.
#[tokio::test]
async fn unauthorized_stops_with_needs_login_after_one_attempt() {
    let server = server(10, 250).await;
    let (engine, _deliveries) = open_engine(fast_config(&server.url(), "wrong-token"));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let reason = wait_needs_login(&mut events).await;
    assert!(reason.contains("401"), "{reason}");
    assert_no_new_attempt(&mut events, "a 401").await;
    assert_eq!(server.stats().handshakes, 1);
    assert_eq!(server.stats().refused, 1);
    assert_eq!(engine.snapshot().await.unwrap().state.name(), "needs_login");
    engine.shutdown().await;
}

/// Publishes made while the server is unreachable wait in the outbox and
/// are acknowledged once each after the reconnect.
#[tokio::test]
async fn publishes_made_while_down_are_acked_once_each_after_reconnect() {
    let server = server(1000, 250).await;
    let proxy = FaultProxy::start(server.local_addr()).await;
    let (engine, _deliveries) = open_engine(fast_config(&proxy.url(), TOKEN));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    wait_state(&mut events, "open", is_open).await;
    proxy.refuse(true);
    proxy.cut_all();
    wait_history(&mut events, HistoryKind::AttemptFailed).await;

    let mut pending = Vec::new();
    for n in 1..=20 {
        pending.push(engine.publish("out", data(n), None).await.unwrap());
    }
    let snapshot = engine.snapshot().await.unwrap();
    assert_eq!(snapshot.outbox.len(), 20);
    assert!(snapshot.outbox.iter().all(|item| !item.sent));

    proxy.refuse(false);
    let mut seqs = Vec::new();
    for publish in pending {
        let ack = within(WAIT, "ack", publish).await.unwrap();
        seqs.push(ack.seq.expect("holdline acks carry a seq"));
    }
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
    assert_eq!(server.head("out").await.unwrap().unwrap().1, 20);
    assert!(engine.snapshot().await.unwrap().outbox.is_empty());
    engine.shutdown().await;
}

/// When the connection dies after the server accepted a publish but before
/// the ack arrived, the resend with the same id is acknowledged with the
/// original seq and not published twice.
#[tokio::test]
async fn a_lost_ack_is_resent_with_the_same_id_and_not_published_twice() {
    let server = server(1000, 250).await;
    let proxy = FaultProxy::start(server.local_addr()).await;
    let (engine, _deliveries) = open_engine(fast_config(&proxy.url(), TOKEN));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    wait_state(&mut events, "open", is_open).await;

    proxy.stall_downstream(true);
    let mut pending = Vec::new();
    for n in 1..=5 {
        pending.push(
            engine
                .publish("once", data(n), Some(format!("pub-{n}")))
                .await
                .unwrap(),
        );
    }
    within(WAIT, "server to take the publishes", async {
        while server.head("once").await.unwrap().map(|h| h.1) != Some(5) {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let lost = wait_history(&mut events, HistoryKind::Disconnected).await;
    assert_eq!(
        lost.details["cause"]["kind"], "heartbeat_timeout",
        "{lost:?}"
    );
    proxy.stall_downstream(false);
    for (n, publish) in pending.into_iter().enumerate() {
        let ack = within(WAIT, "ack", publish).await.unwrap();
        assert_eq!(
            (ack.id, ack.seq),
            (format!("pub-{}", n + 1), Some(n as u64 + 1))
        );
    }
    assert_eq!(
        server.head("once").await.unwrap().unwrap().1,
        5,
        "a resend was published again"
    );
    engine.shutdown().await;
}

/// A wake while a half-open connection looks open probes it, finds it dead
/// long before the heartbeat would, and reconnects at once.
#[tokio::test]
async fn wake_probes_a_half_open_connection_and_reconnects() {
    let server = server(1000, 5_000).await;
    let proxy = FaultProxy::start(server.local_addr()).await;
    let (engine, _deliveries) = open_engine(fast_config(&proxy.url(), TOKEN));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    wait_state(&mut events, "open", is_open).await;
    proxy.stall(true);
    engine.wake().await.unwrap();
    let wake = wait_history(&mut events, HistoryKind::Wake).await;
    assert!(wake.message.contains("probing"), "{}", wake.message);
    let lost = wait_history(&mut events, HistoryKind::Disconnected).await;
    assert_eq!(lost.details["cause"]["kind"], "probe_failed", "{lost:?}");
    proxy.stall(false);
    let backoff = wait_state(&mut events, "backoff", |s| s.name() == "backoff").await;
    let ConnectionState::Backoff { delay_ms, .. } = backoff else {
        unreachable!()
    };
    assert_eq!(delay_ms, 0);
    wait_state(&mut events, "reopen", is_open).await;
    engine.shutdown().await;
}

/// A wake during a long backoff skips the rest of it.
#[tokio::test]
async fn wake_during_backoff_reconnects_at_once() {
    let server = server(1000, 250).await;
    let proxy = FaultProxy::start(server.local_addr()).await;
    let mut config = fast_config(&proxy.url(), TOKEN);
    config.backoff.initial = Duration::from_secs(600);
    config.backoff.max = Duration::from_secs(600);
    let (engine, _deliveries) = open_engine(config);
    let mut events = engine.events();
    proxy.refuse(true);
    engine.connect().await.unwrap();
    let state = wait_state(&mut events, "backoff", |s| s.name() == "backoff").await;
    let ConnectionState::Backoff {
        delay_ms, cause, ..
    } = state
    else {
        unreachable!()
    };
    assert!(delay_ms >= 300_000);
    assert!(matches!(cause, Cause::Connect { .. }), "{cause:?}");
    proxy.refuse(false);
    engine.network_changed().await.unwrap();
    let entry = wait_history(&mut events, HistoryKind::NetworkChange).await;
    assert!(
        entry.message.contains("reconnecting now"),
        "{}",
        entry.message
    );
    wait_state(&mut events, "open right after the trigger", is_open).await;
    engine.shutdown().await;
}

/// A consumer that stops reading makes the engine stop reading, the server's
/// queue for it overflow and the server drop it (4008); once the consumer
/// reads again, the engine resumes from its cursor and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_dropped_by_the_server_and_resumes_without_loss() {
    let server = holdline_server::start(holdline_server::ServerConfig {
        tokens: vec![TOKEN.to_owned()],
        retain: 100_000,
        heartbeat: Duration::from_millis(250),
        send_queue: 8,
        ..holdline_server::ServerConfig::default()
    })
    .await
    .unwrap();
    let mut config = fast_config(&server.url(), TOKEN);
    config.delivery_buffer = 1;
    let (engine, mut deliveries) = open_engine(config);
    let mut events = engine.events();
    engine
        .subscribe("bulk", StartFrom::Beginning)
        .await
        .unwrap();
    engine.connect().await.unwrap();
    wait_state(&mut events, "open", is_open).await;
    let payload = "x".repeat(1000);
    let total = 20_000u64;
    for n in 1..=total {
        let data = serde_json::value::RawValue::from_string(format!(
            "{{\"n\":{n},\"pad\":\"{payload}\"}}"
        ))
        .unwrap();
        server.publish("bulk", &data).await.unwrap();
    }
    within(WAIT, "the server to drop the slow consumer", async {
        while server.stats().slow_consumers == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, total as usize).await;
    assert_eq!(seen.feed("bulk"), seqs(1..=total));
    let snapshot = engine.snapshot().await.unwrap();
    assert_eq!(snapshot.feeds[0].stats.gaps, 0);
    engine.shutdown().await;
}
