//! The engine against a scripted server that breaks the rules on purpose:
//! malformed frames, out-of-order and duplicate events, holes, raw mode.

mod support;

use std::future::Future;
use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use holdline_engine::{ConnectionState, Delivery, HistoryKind, RawFrame, StartFrom};
use holdline_testkit::within;
use serde_json::{Value, json};
use support::*;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

type Peer = WebSocketStream<TcpStream>;

/// Serves every connection with `script`; selects `holdline.v1` if asked to.
async fn scripted<F, Fut>(select_subprotocol: bool, script: F) -> SocketAddr
where
    F: Fn(Peer) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            if let Ok(peer) = holdline_testkit::ws::accept(stream, select_subprotocol).await {
                tokio::spawn(script(peer));
            }
        }
    });
    addr
}

async fn send(peer: &mut Peer, value: Value) {
    peer.send(Message::text(value.to_string())).await.unwrap();
}

async fn next_request(peer: &mut Peer) -> Value {
    loop {
        match peer.next().await {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(_)) => continue,
            _ => return Value::Null,
        }
    }
}

fn welcome() -> Value {
    json!({"type":"welcome","session":"s1","heartbeat_ms":5000,"max_frame_bytes":65536,"server":"script"})
}

fn event(seq: u64) -> Value {
    json!({"type":"event","feed":"f","seq":seq,"data":{"n":seq},"ts":1})
}

fn subscribed(id: &Value, gap: Option<(u64, u64)>) -> Value {
    let mut frame =
        json!({"type":"subscribed","id":id,"feed":"f","epoch":"e","head":4,"replay_from":1});
    if let Some((from, to)) = gap {
        frame["gap"] = json!({"from":from,"to":to});
    }
    frame
}

async fn hold_open(mut peer: Peer) {
    while let Some(Ok(_)) = peer.next().await {}
}

#[tokio::test]
async fn malformed_frames_are_quarantined_and_delivery_goes_on() {
    let addr = scripted(true, |mut peer| async move {
        send(&mut peer, welcome()).await;
        let subscribe = next_request(&mut peer).await;
        send(&mut peer, subscribed(&subscribe["id"], None)).await;
        send(&mut peer, event(1)).await;
        peer.send(Message::text("this is not json")).await.unwrap();
        peer.send(Message::binary(vec![0u8, 1, 2])).await.unwrap();
        send(
            &mut peer,
            json!({"type":"event","feed":"f","seq":"two","data":1,"ts":1}),
        )
        .await;
        peer.send(Message::text("[1,2,3]")).await.unwrap();
        send(&mut peer, json!({"type":"surprise"})).await;
        send(&mut peer, event(3)).await;
        send(&mut peer, event(2)).await;
        send(&mut peer, event(2)).await;
        send(&mut peer, event(4)).await;
        hold_open(peer).await;
    })
    .await;
    let (engine, mut deliveries) = open_engine(fast_config(&format!("ws://{addr}"), TOKEN));
    let mut events = engine.events();
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 4).await;
    assert_eq!(seen.feed("f"), seqs(1..=4));

    let mut reasons = Vec::new();
    for _ in 0..5 {
        let entry = wait_history(&mut events, HistoryKind::Malformed).await;
        reasons.push(
            entry.details["reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        assert!(entry.details["excerpt"].is_string());
    }
    assert!(reasons[0].starts_with("invalid JSON"), "{reasons:?}");
    assert!(reasons[1].contains("binary"), "{reasons:?}");
    assert!(reasons[2].contains("seq"), "{reasons:?}");
    assert!(reasons[3].contains("not a JSON object"), "{reasons:?}");
    assert!(reasons[4].contains("unknown type"), "{reasons:?}");
    let snapshot = engine.snapshot().await.unwrap();
    assert_eq!(snapshot.malformed_frames, 5);
    assert_eq!(snapshot.feeds[0].stats.duplicates, 1);
    assert_eq!(
        snapshot.state.name(),
        "open",
        "malformed frames must not close the connection"
    );
    engine.shutdown().await;
}

/// A hole that outlives the gap timeout makes the engine re-subscribe from
/// its cursor; the replay fills it.
#[tokio::test]
async fn a_hole_is_filled_by_resubscribing_from_the_cursor() {
    let addr = scripted(true, |mut peer| async move {
        send(&mut peer, welcome()).await;
        let first = next_request(&mut peer).await;
        send(&mut peer, subscribed(&first["id"], None)).await;
        send(&mut peer, event(1)).await;
        send(&mut peer, event(3)).await;
        let again = next_request(&mut peer).await;
        assert_eq!(again["type"], "subscribe");
        assert_eq!(
            (again["since"].as_u64(), again["epoch"].as_str()),
            (Some(1), Some("e"))
        );
        send(&mut peer, subscribed(&again["id"], None)).await;
        send(&mut peer, event(2)).await;
        send(&mut peer, event(3)).await;
        hold_open(peer).await;
    })
    .await;
    let (engine, mut deliveries) = open_engine(fast_config(&format!("ws://{addr}"), TOKEN));
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 3).await;
    assert_eq!(seen.feed("f"), seqs(1..=3));
    let snapshot = engine.snapshot().await.unwrap();
    assert_eq!(snapshot.feeds[0].stats.resubscribes, 1);
    assert_eq!(snapshot.feeds[0].stats.gaps, 0);
    engine.shutdown().await;
}

/// When the server answers the re-subscribe with `gap`, the engine marks
/// exactly that range and releases what it had buffered behind it.
#[tokio::test]
async fn a_hole_the_server_says_is_lost_becomes_a_gap_marker() {
    let addr = scripted(true, |mut peer| async move {
        send(&mut peer, welcome()).await;
        let first = next_request(&mut peer).await;
        send(&mut peer, subscribed(&first["id"], None)).await;
        send(&mut peer, event(1)).await;
        send(&mut peer, event(4)).await;
        let again = next_request(&mut peer).await;
        send(&mut peer, subscribed(&again["id"], Some((2, 3)))).await;
        send(&mut peer, event(4)).await;
        hold_open(peer).await;
    })
    .await;
    let (engine, mut deliveries) = open_engine(fast_config(&format!("ws://{addr}"), TOKEN));
    engine.subscribe("f", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 2).await;
    assert_eq!(
        seen.feed("f"),
        vec![Item::Event(1), Item::Gap(2, 3), Item::Event(4)]
    );
    engine.shutdown().await;
}

/// A server that selects no subprotocol is shown frame by frame, raw.
#[tokio::test]
async fn a_server_without_holdline_v1_runs_in_raw_mode() {
    let addr = scripted(false, |mut peer| async move {
        peer.send(Message::text("hello raw")).await.unwrap();
        peer.send(Message::binary(vec![0xca, 0xfe])).await.unwrap();
        hold_open(peer).await;
    })
    .await;
    let (engine, mut deliveries) = open_engine(fast_config(&format!("ws://{addr}"), TOKEN));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let state = wait_state(&mut events, "raw open", is_open).await;
    assert_eq!(
        state,
        ConnectionState::Open {
            session: None,
            raw: true
        }
    );
    let first = within(WAIT, "raw text", deliveries.recv()).await.unwrap();
    let second = within(WAIT, "raw binary", deliveries.recv()).await.unwrap();
    assert!(
        matches!(first, Delivery::Raw(RawFrame::Text(ref t)) if t == "hello raw"),
        "{first:?}"
    );
    assert!(
        matches!(second, Delivery::Raw(RawFrame::Binary(ref b)) if b == &[0xca, 0xfe]),
        "{second:?}"
    );
    let err = engine.publish("f", data(1), None).await.unwrap_err();
    assert_eq!(err, holdline_engine::EngineError::RawMode);
    engine.shutdown().await;
}

/// Publishes waiting in the outbox are not sent to a server that turned out
/// to speak raw WebSocket: they wait for a `holdline.v1` connection.
#[tokio::test]
async fn the_outbox_is_not_sent_to_a_raw_server() {
    let (first_tx, mut first_rx) = tokio::sync::mpsc::unbounded_channel();
    let addr = scripted(false, move |mut peer| {
        let first_tx = first_tx.clone();
        async move {
            peer.send(Message::text("hello raw")).await.unwrap();
            // What the client sends first after that, on each connection
            // (the first one, which offered holdline.v1, the client drops).
            let first = peer.next().await;
            let _ = first_tx.send(format!("{first:?}"));
        }
    })
    .await;
    let (engine, mut deliveries) = open_engine(fast_config(&format!("ws://{addr}"), TOKEN));
    let _pending = engine
        .publish("f", data(1), Some("queued-1".into()))
        .await
        .unwrap();
    engine.connect().await.unwrap();
    let hello = within(WAIT, "raw text", deliveries.recv()).await.unwrap();
    assert!(
        matches!(hello, Delivery::Raw(RawFrame::Text(_))),
        "{hello:?}"
    );
    engine.shutdown().await;
    let mut firsts = Vec::new();
    within(WAIT, "both connections' first reads", async {
        while firsts.len() < 2 {
            firsts.push(first_rx.recv().await.unwrap());
        }
    })
    .await;
    assert!(
        firsts.iter().any(|f| f.contains("Close")),
        "the raw connection closes cleanly: {firsts:?}"
    );
    assert!(
        !firsts.iter().any(|f| f.contains("Text")),
        "nothing was published to the raw server: {firsts:?}"
    );
}
