//! Engine benchmarks, each against a baseline measured in the same run.
//!
//!   cargo bench -p holdline-engine --bench engine
//!
//! - throughput: one loopback connection, ~100-byte events, parse + order +
//!   deliver to a consumer, versus a bare tokio-tungstenite read loop that
//!   only parses the same JSON (fully, `data` into a `serde_json::Value`);
//!   also with 8 feeds interleaved and with 5% of events out of order; and
//!   the `json` wire on a company-style API (`{"op":"ev","ch":…,"n":…,
//!   "d":…}`, seq at `/n`), with `data` at a pointer and as the whole
//!   message, versus a bare loop that parses each frame into a
//!   `serde_json::Value` and reads the seq at its pointer; and the
//!   `socket.io` wire (`42["bench.f0",{"seq":…,…},"<offset>"]`, seq at
//!   `/seq` of the first argument), versus a bare loop that strips the
//!   packet type, parses the array into a `serde_json::Value` and reads
//!   the seq there; and the `mqtt` wire (QoS 0 PUBLISH packets in binary
//!   frames, a JSON payload with its seq at `/n`), versus a bare loop that
//!   only decodes the same packets with `mqtt-proto`.
//! - latency: send time to delivery, p50/p99/p999, at 1k, 10k and 50k
//!   events/s.
//!
//! Results and their reading are in docs/benchmarks.md.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use holdline_engine::{Delivery, Engine, EngineConfig, FeedUrl, StartFrom, Stores, Token};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Events per throughput run; HOLDLINE_BENCH_EVENTS overrides (profiling).
fn events() -> u64 {
    std::env::var("HOLDLINE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}
const ROUNDS: usize = 3;

/// `--features bench-mimalloc`: the allocator holdline-cli, holdline-server
/// and the app use; without it, the system allocator.
#[cfg(feature = "bench-mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How the blast server orders and spreads its events.
#[derive(Clone, Copy, Debug)]
enum Shape {
    OneFeed,
    EightFeeds,
    OutOfOrder5,
    /// The `json` wire, `data` at `/d`.
    JsonDataPointer,
    /// The `json` wire, the whole message as `data`.
    JsonWholeMessage,
    /// The `socket.io` wire, recovery on, seq in the first argument.
    SocketIo,
    /// The `mqtt` wire, QoS 0, a JSON payload with its seq; the baseline
    /// only decodes the packets.
    Mqtt,
    /// The same, against a baseline that also reads the payload's seq as a
    /// hand-written client would (`serde_json::Value`, `/n`).
    MqttSeqRead,
    /// The `graphql-ws` wire: `next` results of one subscription, data at
    /// `/data/ticks`, seq at `/data/ticks/seq`.
    GraphqlWs,
}

/// The Engine.IO handshake and the CONNECT answer the blast server sends.
const EIO_OPEN: &str = r#"0{"sid":"bench","upgrades":[],"pingInterval":60000,"pingTimeout":60000,"maxPayload":1000000}"#;
const SIO_CONNECTED: &str = r#"40{"sid":"s-bench","pid":"p-bench"}"#;

impl Shape {
    fn is_json(self) -> bool {
        matches!(self, Shape::JsonDataPointer | Shape::JsonWholeMessage)
    }

    /// Speaks a protocol other than `holdline.v1`.
    fn is_foreign(self) -> bool {
        self.is_json() || matches!(self, Shape::SocketIo | Shape::GraphqlWs) || self.is_mqtt()
    }

    fn is_mqtt(self) -> bool {
        matches!(self, Shape::Mqtt | Shape::MqttSeqRead)
    }

    fn feeds(self) -> usize {
        if matches!(self, Shape::EightFeeds) {
            8
        } else {
            1
        }
    }
}

/// The profile a user would write for the benchmark's JSON API or
/// Socket.IO server.
fn foreign_profile(shape: Shape) -> holdline_engine::Profile {
    if matches!(shape, Shape::SocketIo) {
        return holdline_engine::Profile::load(
            &serde_json::json!({"protocol": "socket.io", "event_seq": "/seq"}),
        )
        .unwrap();
    }
    if matches!(shape, Shape::GraphqlWs) {
        return holdline_engine::Profile::load(&serde_json::json!({
            "protocol": "graphql-ws",
            "feeds": {"bench.f0": {
                "query": "subscription Ticks($since: Int) { ticks(since: $since) { seq px sym q } }",
                "variables": {"since": "{since}"},
                "data": "/data/ticks",
                "seq": "/data/ticks/seq"
            }}
        }))
        .unwrap();
    }
    if shape.is_mqtt() {
        return holdline_engine::Profile::load(
            &serde_json::json!({"protocol": "mqtt", "event_seq": "/n", "client_id": "bench"}),
        )
        .unwrap();
    }
    let mut event = serde_json::json!({"match": {"/op": "ev"}, "feed": "/ch", "seq": "/n"});
    if matches!(shape, Shape::JsonDataPointer) {
        event["data"] = serde_json::json!("/d");
    }
    holdline_engine::Profile::load(&serde_json::json!({
        "protocol": "json",
        "subscribe": {"op": "sub", "ch": "{feed}", "since": "{since}"},
        "event": event,
    }))
    .unwrap()
}

fn feed_of(shape: Shape, i: u64) -> usize {
    match shape {
        Shape::EightFeeds => (i % 8) as usize,
        _ => 0,
    }
}

/// The events, pre-serialized (~100 bytes each), in the shape's order.
fn frames(shape: Shape, n: u64) -> Vec<Utf8Bytes> {
    let mut next_seq = vec![0u64; shape.feeds()];
    let mut out: Vec<Utf8Bytes> = (0..n)
        .map(|i| {
            let feed = feed_of(shape, i);
            next_seq[feed] += 1;
            if matches!(shape, Shape::SocketIo) {
                return format!(
                    r#"42["bench.f{feed}",{{"seq":{},"px":{}.25,"sym":"HOLD","q":{}}},"MzUPkW0{}"]"#,
                    next_seq[feed],
                    100 + i % 900,
                    i % 1000,
                    i % 10
                )
                .into();
            }
            if shape.is_json() {
                return format!(
                    r#"{{"op":"ev","ch":"bench.f{feed}","n":{},"d":{{"px":{}.25,"sym":"HOLD","q":{}}},"at":1764000000000}}"#,
                    next_seq[feed],
                    100 + i % 900,
                    i % 1000
                )
                .into();
            }
            format!(
                r#"{{"type":"event","feed":"bench.f{feed}","seq":{},"data":{{"px":{}.25,"sym":"HOLD","q":{}}},"ts":1764000000000}}"#,
                next_seq[feed],
                100 + i % 900,
                i % 1000
            )
            .into()
        })
        .collect();
    if matches!(shape, Shape::OutOfOrder5) {
        // Swap one adjacent pair in every 40 events: 5% arrive out of order.
        let mut i = 0;
        while i + 1 < out.len() {
            out.swap(i, i + 1);
            i += 40;
        }
    }
    out
}

/// The MQTT PUBLISH packets (QoS 0, ~100 bytes), each framed as its own
/// binary WebSocket frame, ready to write.
fn mqtt_wire_bytes(n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let payload = format!(
            r#"{{"n":{},"px":{}.25,"sym":"HOLD","q":{}}}"#,
            i + 1,
            100 + i % 900,
            i % 1000
        );
        let topic = "bench.f0";
        let remaining = 2 + topic.len() + payload.len();
        let mut packet = vec![0x30, remaining as u8];
        packet.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        packet.extend_from_slice(topic.as_bytes());
        packet.extend_from_slice(payload.as_bytes());
        out.push(0x82); // FIN + binary
        out.push(packet.len() as u8);
        out.extend_from_slice(&packet);
    }
    out
}

/// `next` results (~130 bytes) of the operation `id`.
fn graphql_frames(id: &str, n: u64) -> Vec<Utf8Bytes> {
    (0..n)
        .map(|i| {
            format!(
                r#"{{"id":"{id}","type":"next","payload":{{"data":{{"ticks":{{"seq":{},"px":{}.25,"sym":"HOLD","q":{}}}}}}}}}"#,
                i + 1,
                100 + i % 900,
                i % 1000
            )
            .into()
        })
        .collect()
}

/// The frames as bytes on the wire: unmasked text frames, ready to write.
/// Framing them up front leaves the sender a bare `write_all`, so on a
/// two-core machine the server steals as little CPU as possible from the
/// client being measured.
fn wire_bytes(frames: &[Utf8Bytes]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frames.iter().map(|f| f.len() + 4).sum());
    for frame in frames {
        out.push(0x81); // FIN + text
        let len = frame.len();
        if len < 126 {
            out.push(len as u8);
        } else {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        out.extend_from_slice(frame.as_bytes());
    }
    out
}

/// A server that answers the holdline.v1 handshake and subscribes (or,
/// for the JSON API, takes the subscribes), then sends `frames` as fast as
/// the socket takes them.
async fn blast_server(frames: Vec<Utf8Bytes>, shape: Shape) -> SocketAddr {
    let feeds = shape.feeds();
    let json = shape.is_foreign();
    let socket_io = matches!(shape, Shape::SocketIo);
    let graphql = matches!(shape, Shape::GraphqlWs);
    let mqtt = shape.is_mqtt();
    let count = frames.len() as u64;
    let wire = if mqtt {
        mqtt_wire_bytes(frames.len() as u64)
    } else {
        wire_bytes(&frames)
    };
    drop(frames);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let subprotocol = if mqtt {
            Some("mqtt")
        } else if graphql {
            Some("graphql-transport-ws")
        } else {
            (!json).then_some(holdline_testkit::ws::SUBPROTOCOL)
        };
        let mut ws = holdline_testkit::ws::accept_selecting(stream, subprotocol)
            .await
            .unwrap();
        if !json {
            ws.send(Message::text(
                r#"{"type":"welcome","session":"b","heartbeat_ms":60000,"max_frame_bytes":1048576,"server":"bench"}"#,
            ))
            .await
            .unwrap();
        }
        if socket_io {
            ws.send(Message::text(EIO_OPEN)).await.unwrap();
            let Some(Ok(Message::Text(_connect))) = ws.next().await else {
                return;
            };
            ws.send(Message::text(SIO_CONNECTED)).await.unwrap();
        }
        if mqtt {
            // CONNECT, then CONNACK (no session), then the SUBSCRIBE.
            let Some(Ok(Message::Binary(_connect))) = ws.next().await else {
                return;
            };
            ws.send(Message::binary(vec![0x20, 0x02, 0x00, 0x00]))
                .await
                .unwrap();
        }
        let mut wire = wire;
        if graphql {
            // connection_init, then connection_ack; the subscribe's id is
            // what every result carries.
            let _init = ws.next().await;
            ws.send(Message::text(r#"{"type":"connection_ack"}"#))
                .await
                .unwrap();
            let Some(Ok(Message::Text(subscribe))) = ws.next().await else {
                return;
            };
            let request: serde_json::Value = serde_json::from_str(&subscribe).unwrap();
            let id = request["id"].as_str().unwrap_or("s0").to_owned();
            wire = wire_bytes(&graphql_frames(&id, count));
        }
        let mut subscribed = if socket_io || graphql { feeds } else { 0 };
        while subscribed < feeds {
            let text = match ws.next().await {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Binary(_))) => Default::default(),
                _ => return,
            };
            if !json {
                let request: serde_json::Value = serde_json::from_str(&text).unwrap();
                let answer = serde_json::json!({"type":"subscribed","id":request["id"],"feed":request["feed"],"epoch":"bench","head":0,"replay_from":1});
                ws.send(Message::text(answer.to_string())).await.unwrap();
            }
            subscribed += 1;
        }
        if ws.flush().await.is_err() {
            return;
        }
        if tokio::io::AsyncWriteExt::write_all(ws.get_mut(), &wire)
            .await
            .is_err()
        {
            return;
        }
        while let Some(Ok(_)) = ws.next().await {}
    });
    addr
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct BaselineEvent {
    #[serde(rename = "type")]
    kind: String,
    feed: String,
    seq: u64,
    data: serde_json::Value,
    ts: i64,
}

/// The bare loop: read frames, parse each fully, count. For the JSON API:
/// parse into a `serde_json::Value` and read the seq at its pointer.
async fn baseline(shape: Shape) -> f64 {
    let feeds = shape.feeds();
    let total = events();
    let addr = blast_server(frames(shape, total), shape).await;
    let url = format!("ws://{addr}");
    let (mut ws, _) = if matches!(shape, Shape::GraphqlWs) {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                .unwrap();
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        tokio_tungstenite::connect_async(request).await.unwrap()
    } else if shape.is_mqtt() {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                .unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "mqtt".parse().unwrap());
        tokio_tungstenite::connect_async(request).await.unwrap()
    } else if shape.is_foreign() {
        tokio_tungstenite::connect_async(url).await.unwrap()
    } else {
        let request = holdline_testkit::ws::request(&url).unwrap();
        tokio_tungstenite::connect_async(request).await.unwrap()
    };
    if matches!(shape, Shape::SocketIo) {
        let _open = ws.next().await;
        ws.send(Message::text("40")).await.unwrap();
        let _connected = ws.next().await;
    } else if matches!(shape, Shape::GraphqlWs) {
        ws.send(Message::text(r#"{"type":"connection_init"}"#))
            .await
            .unwrap();
        let _ack = ws.next().await;
        ws.send(Message::text(
            r#"{"id":"s0","type":"subscribe","payload":{"query":"subscription { ticks { seq } }"}}"#,
        ))
        .await
        .unwrap();
    } else if shape.is_mqtt() {
        ws.send(Message::binary(vec![0x10, 0x00])).await.unwrap();
        let _connack = ws.next().await;
        ws.send(Message::binary(vec![0x82, 0x00])).await.unwrap();
    } else {
        for feed in 0..feeds {
            ws.send(Message::text(format!(
                r#"{{"type":"subscribe","id":"s{feed}","feed":"bench.f{feed}","since":0}}"#
            )))
            .await
            .unwrap();
        }
    }
    let mut count = 0u64;
    let mut started = None;
    while count < total {
        let Some(Ok(message)) = ws.next().await else {
            panic!("baseline stream ended")
        };
        if let Message::Binary(bytes) = &message {
            let decoded = mqtt_proto::v3::Packet::decode(bytes);
            if let Ok(Some(mqtt_proto::v3::Packet::Publish(publish))) = decoded {
                let counted = !matches!(shape, Shape::MqttSeqRead)
                    || serde_json::from_slice::<serde_json::Value>(&publish.payload).is_ok_and(
                        |v| {
                            v.pointer("/n")
                                .and_then(serde_json::Value::as_u64)
                                .is_some()
                        },
                    );
                if counted {
                    started.get_or_insert_with(Instant::now);
                    count += 1;
                }
            }
            continue;
        }
        let Message::Text(text) = message else {
            continue;
        };
        let is_event = if matches!(shape, Shape::GraphqlWs) {
            serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| {
                v.pointer("/payload/data/ticks/seq")
                    .and_then(serde_json::Value::as_u64)
                    .is_some()
            })
        } else if matches!(shape, Shape::SocketIo) {
            text.strip_prefix("42").is_some_and(|array| {
                serde_json::from_str::<serde_json::Value>(array).is_ok_and(|v| {
                    v.pointer("/1/seq")
                        .and_then(serde_json::Value::as_u64)
                        .is_some()
                })
            })
        } else if shape.is_json() {
            serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| {
                v.pointer("/n")
                    .and_then(serde_json::Value::as_u64)
                    .is_some()
            })
        } else {
            serde_json::from_str::<BaselineEvent>(&text).is_ok_and(|e| e.kind == "event")
        };
        if is_event {
            started.get_or_insert_with(Instant::now);
            count += 1;
        }
    }
    let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
    total as f64 / elapsed.as_secs_f64()
}

/// The engine: the same frames through dial, decode, sequencer, delivery.
async fn engine(shape: Shape) -> f64 {
    let feeds = shape.feeds();
    let total = events();
    let addr = blast_server(frames(shape, total), shape).await;
    let (url, _) = FeedUrl::parse(&format!("ws://{addr}")).unwrap();
    let mut config = EngineConfig::new(url, Some(Token::new("bench")));
    if shape.is_foreign() {
        config = config.with_profile(foreign_profile(shape));
    }
    config.heartbeat = Duration::from_secs(60);
    let (engine, mut deliveries) = Engine::start(config, Stores::default()).unwrap();
    for feed in 0..feeds {
        engine
            .subscribe(&format!("bench.f{feed}"), StartFrom::Beginning)
            .await
            .unwrap();
    }
    engine.connect().await.unwrap();
    let mut count = 0u64;
    let mut started = None;
    let mut last_seq = vec![0u64; feeds];
    while count < total {
        let Some(delivery) = deliveries.recv().await else {
            panic!("engine stopped")
        };
        if let Delivery::Event(event) = delivery {
            started.get_or_insert_with(Instant::now);
            let feed: usize = event.feed[7..].parse().unwrap();
            let seq = event.seq.unwrap_or_default();
            assert_eq!(seq, last_seq[feed] + 1, "out of order delivery");
            last_seq[feed] = seq;
            count += 1;
        }
    }
    let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
    engine.shutdown().await;
    total as f64 / elapsed.as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

async fn throughput() {
    println!(
        "## throughput ({} allocator): {} events of ~100 bytes, one loopback connection, median of {ROUNDS} rounds",
        if cfg!(feature = "bench-mimalloc") {
            "mimalloc"
        } else {
            "system"
        },
        events()
    );
    println!("| shape | baseline (events/s) | engine (events/s) | engine / baseline |");
    println!("|---|---|---|---|");
    let only = std::env::var("HOLDLINE_BENCH_SHAPE").ok();
    for shape in [
        Shape::OneFeed,
        Shape::EightFeeds,
        Shape::OutOfOrder5,
        Shape::JsonDataPointer,
        Shape::JsonWholeMessage,
        Shape::SocketIo,
        Shape::Mqtt,
        Shape::MqttSeqRead,
        Shape::GraphqlWs,
    ] {
        if only.as_deref().is_some_and(|o| o != format!("{shape:?}")) {
            continue;
        }
        let mut base = Vec::new();
        let mut eng = Vec::new();
        for _ in 0..ROUNDS {
            // Alternate, so drift on the machine hits both alike.
            base.push(baseline(shape).await);
            eng.push(engine(shape).await);
        }
        let (b, e) = (median(base), median(eng));
        println!("| {shape:?} | {b:.0} | {e:.0} | {:.2} |", e / b);
    }
}

/// A server that sends `rate` events/s for `seconds`, each carrying its
/// send time in µs since the Unix epoch.
async fn paced_server(rate: u64, seconds: u64) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        stream.set_nodelay(true).unwrap();
        let mut ws = holdline_testkit::ws::accept(stream, true).await.unwrap();
        ws.send(Message::text(r#"{"type":"welcome","session":"b","heartbeat_ms":60000,"max_frame_bytes":1048576,"server":"bench"}"#)).await.unwrap();
        let Some(Ok(Message::Text(text))) = ws.next().await else {
            return;
        };
        let request: serde_json::Value = serde_json::from_str(&text).unwrap();
        ws.send(Message::text(serde_json::json!({"type":"subscribed","id":request["id"],"feed":"lat","epoch":"bench","head":0}).to_string())).await.unwrap();
        // Send in 1 ms ticks, as a server batching its writes would.
        let per_tick = (rate / 1000).max(1);
        let tick_every = Duration::from_micros(1_000_000 * per_tick / rate);
        let mut tick = tokio::time::interval(tick_every);
        let mut seq = 0u64;
        let total = rate * seconds;
        while seq < total {
            tick.tick().await;
            for _ in 0..per_tick {
                seq += 1;
                let frame = format!(
                    r#"{{"type":"event","feed":"lat","seq":{seq},"data":{{"sent_us":{}}},"ts":0}}"#,
                    now_us()
                );
                if ws.feed(Message::text(frame)).await.is_err() {
                    return;
                }
            }
            if ws.flush().await.is_err() {
                return;
            }
        }
        while let Some(Ok(_)) = ws.next().await {}
    });
    addr
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn latency() {
    println!();
    println!("## latency: send to delivery through the engine, loopback (µs)");
    println!("| rate (events/s) | events | p50 | p99 | p99.9 | max |");
    println!("|---|---|---|---|---|---|");
    for rate in [1_000u64, 10_000, 50_000] {
        let seconds = 3;
        let addr = paced_server(rate, seconds).await;
        let (url, _) = FeedUrl::parse(&format!("ws://{addr}")).unwrap();
        let mut config = EngineConfig::new(url, None);
        config.heartbeat = Duration::from_secs(60);
        let (engine, mut deliveries) = Engine::start(config, Stores::default()).unwrap();
        engine.subscribe("lat", StartFrom::Live).await.unwrap();
        engine.connect().await.unwrap();
        let total = rate * seconds;
        let mut samples = Vec::with_capacity(total as usize);
        while (samples.len() as u64) < total {
            let Some(Delivery::Event(event)) = deliveries.recv().await else {
                continue;
            };
            let value: serde_json::Value = serde_json::from_str(event.data.get()).unwrap();
            let sent = value["sent_us"].as_u64().unwrap();
            samples.push(now_us().saturating_sub(sent));
        }
        samples.sort_unstable();
        println!(
            "| {rate} | {total} | {} | {} | {} | {} |",
            percentile(&samples, 0.5),
            percentile(&samples, 0.99),
            percentile(&samples, 0.999),
            samples.last().copied().unwrap_or_default()
        );
        engine.shutdown().await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    if filter.as_deref().is_none_or(|f| "throughput".contains(f)) {
        throughput().await;
    }
    if filter.as_deref().is_none_or(|f| "latency".contains(f)) {
        latency().await;
    }
}
