//! A scripted JSON-over-WebSocket feed server, the kind of company API the
//! `json` wire is for: a login message, a subscribe message per channel
//! with an optional `since`, a sequence number and run id in every event
//! body, application-level pings the client must answer, acks by id.
//!
//! Client to server: `{"op":"login","token":T}`, `{"op":"sub","ch":F,
//! "since":N|null,"id":I}`, `{"op":"unsub","ch":F}`, `{"op":"pub","ch":F,
//! "id":I,"d":D}`, `{"op":"pong","ts":X}`, `{"op":"hb"}`.
//! Server to client: `{"op":"welcome"}` on connect, `{"op":"ready"}` or
//! `{"op":"denied","reason":R}`, `{"op":"ev","ch":F,"n":N,"run":E,"d":D}`
//! (`n` and `run` only when numbered), `{"op":"ok","id":I,"n":N}`,
//! `{"op":"ping","ts":X}`.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// What one upgrade request carried.
#[derive(Debug, Clone)]
pub struct UpgradeSeen {
    /// Path and query.
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

impl UpgradeSeen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct JsonServerConfig {
    /// The token `login` must carry; `None`: no login, ready at once.
    pub token: Option<String>,
    /// Honour `since` by replaying what the log holds after it.
    pub replay: bool,
    /// Events carry `n` and `run`.
    pub numbered: bool,
    /// Every connection gets every event without subscribing.
    pub push_all: bool,
    /// Send `ping` this often and close (4000) a client that has not
    /// answered the previous one by the next.
    pub ping_every: Option<Duration>,
}

impl Default for JsonServerConfig {
    fn default() -> Self {
        JsonServerConfig {
            token: None,
            replay: true,
            numbered: true,
            push_all: false,
            ping_every: None,
        }
    }
}

struct FeedLog {
    run: String,
    events: Vec<(u64, Value)>,
}

struct Client {
    tx: mpsc::UnboundedSender<Message>,
    feeds: BTreeSet<String>,
    ready: bool,
}

#[derive(Default)]
struct State {
    feeds: HashMap<String, FeedLog>,
    clients: HashMap<u64, Client>,
    next_client: u64,
    acked: HashMap<String, u64>,
    received: Vec<Value>,
    upgrades: Vec<UpgradeSeen>,
    connections: u64,
    runs: u64,
}

pub struct JsonServer {
    addr: SocketAddr,
    config: JsonServerConfig,
    state: Arc<Mutex<State>>,
    stop: watch::Sender<bool>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl State {
    fn feed(&mut self, name: &str) -> &mut FeedLog {
        if !self.feeds.contains_key(name) {
            self.runs += 1;
            let run = format!("run-{}", self.runs);
            self.feeds.insert(
                name.to_owned(),
                FeedLog {
                    run,
                    events: Vec::new(),
                },
            );
        }
        self.feeds.get_mut(name).expect("inserted above")
    }

    fn event_frame(&mut self, numbered: bool, feed: &str, seq: u64, data: &Value) -> String {
        let run = self.feed(feed).run.clone();
        if numbered {
            json!({"op": "ev", "ch": feed, "n": seq, "run": run, "d": data}).to_string()
        } else {
            json!({"op": "ev", "ch": feed, "d": data}).to_string()
        }
    }
}

impl JsonServer {
    /// The `json` profile a user would write for this server; `numbered`
    /// reads the seq and run id (for a server started with `numbered`).
    pub fn profile(numbered: bool) -> Value {
        let mut event = json!({"match": {"/op": "ev"}, "feed": "/ch", "data": "/d"});
        if numbered {
            event["seq"] = json!("/n");
            event["epoch"] = json!("/run");
        }
        json!({
            "protocol": "json",
            "auth": "payload",
            "on_open": [{"op": "login", "token": "{token}"}],
            "ready": {"/op": "ready"},
            "refused": {"/op": "denied"},
            "subscribe": {"op": "sub", "ch": "{feed}", "since": "{since}", "id": "{id}"},
            "unsubscribe": {"op": "unsub", "ch": "{feed}"},
            "event": event,
            "publish": {"op": "pub", "ch": "{feed}", "id": "{id}", "d": "{data}"},
            "ack": {"match": {"/op": "ok"}, "id": "/id", "seq": "/n"},
            "answer": [{"match": {"/op": "ping"}, "send": {"op": "pong", "ts": "{in:/ts}"}}],
            "ignore": [{"/op": "welcome"}, {"/op": "subscribed"}]
        })
    }

    pub async fn start(config: JsonServerConfig) -> JsonServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, stopped) = watch::channel(false);
        let shared = state.clone();
        let settings = config.clone();
        tokio::spawn(async move {
            loop {
                let mut stopped = stopped.clone();
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        tokio::spawn(serve(stream, shared.clone(), settings.clone(), stopped));
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        JsonServer {
            addr,
            config,
            state,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Appends an event and sends it to its subscribers; returns its seq.
    pub fn publish(&self, feed: &str, data: Value) -> u64 {
        self.publish_to(feed, data, true)
    }

    /// Appends an event to the log without sending it live: a hole only a
    /// replay can fill.
    pub fn publish_hidden(&self, feed: &str, data: Value) -> u64 {
        self.publish_to(feed, data, false)
    }

    fn publish_to(&self, feed: &str, data: Value, live: bool) -> u64 {
        let mut state = lock(&self.state);
        append(&mut state, &self.config, feed, data, live)
    }

    /// Forgets a feed's log and starts a new run: numbering restarts at 1.
    pub fn restart_feed(&self, feed: &str) {
        let mut state = lock(&self.state);
        state.feeds.remove(feed);
        state.feed(feed);
    }

    pub fn run_of(&self, feed: &str) -> String {
        lock(&self.state).feed(feed).run.clone()
    }

    /// Sends `text` as is to every connection.
    pub fn send_raw(&self, text: &str) {
        for client in lock(&self.state).clients.values() {
            let _ = client.tx.send(Message::text(text.to_owned()));
        }
    }

    /// Closes every connection with `code`.
    pub fn close_all(&self, code: u16, reason: &str) {
        for client in lock(&self.state).clients.values() {
            let _ = client.tx.send(Message::Close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.to_owned().into(),
            })));
        }
    }

    /// Every frame clients sent, parsed, in arrival order.
    pub fn received(&self) -> Vec<Value> {
        lock(&self.state).received.clone()
    }

    /// The upgrade requests, in order.
    pub fn upgrades(&self) -> Vec<UpgradeSeen> {
        lock(&self.state).upgrades.clone()
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> u64 {
        lock(&self.state).connections
    }

    /// How many events a feed's log holds, and under which run.
    pub fn head(&self, feed: &str) -> u64 {
        lock(&self.state)
            .feed(feed)
            .events
            .last()
            .map_or(0, |e| e.0)
    }

    pub fn shutdown(&self) {
        let _ = self.stop.send(true);
        for client in lock(&self.state).clients.values() {
            let _ = client.tx.send(Message::Close(Some(CloseFrame {
                code: CloseCode::Away,
                reason: "server shutting down".into(),
            })));
        }
    }
}

fn append(
    state: &mut State,
    config: &JsonServerConfig,
    feed: &str,
    data: Value,
    live: bool,
) -> u64 {
    let log = state.feed(feed);
    let seq = log.events.last().map_or(0, |e| e.0) + 1;
    log.events.push((seq, data.clone()));
    if live {
        let frame = state.event_frame(config.numbered, feed, seq, &data);
        for client in state.clients.values() {
            if client.ready && (config.push_all || client.feeds.contains(feed)) {
                let _ = client.tx.send(Message::text(frame.clone()));
            }
        }
    }
    seq
}

async fn serve(
    stream: TcpStream,
    state: Arc<Mutex<State>>,
    config: JsonServerConfig,
    mut stopped: watch::Receiver<bool>,
) {
    let seen = state.clone();
    #[allow(clippy::result_large_err)] // the callback's type is tungstenite's
    let record = move |request: &tokio_tungstenite::tungstenite::handshake::server::Request,
                       response| {
        let headers = request
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        lock(&seen).upgrades.push(UpgradeSeen {
            uri: request.uri().to_string(),
            headers,
        });
        Ok(response)
    };
    let Ok(socket) = tokio_tungstenite::accept_hdr_async(stream, record).await else {
        return;
    };
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let id = {
        let mut state = lock(&state);
        state.connections += 1;
        state.next_client += 1;
        let id = state.next_client;
        state.clients.insert(
            id,
            Client {
                tx: tx.clone(),
                feeds: BTreeSet::new(),
                ready: config.token.is_none(),
            },
        );
        id
    };
    let _ = tx.send(Message::text(json!({"op": "welcome"}).to_string()));
    if config.token.is_none() {
        let _ = tx.send(Message::text(json!({"op": "ready"}).to_string()));
    }
    let writer = tokio::spawn(async move {
        while let Some(message) = rx.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
    });
    let mut pings = config.ping_every.map(tokio::time::interval);
    let mut unanswered: Option<i64> = None;
    let mut next_ts = 1000i64;
    loop {
        let ping_due = async {
            match pings.as_mut() {
                Some(interval) => {
                    interval.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            message = stream.next() => {
                let Some(Ok(message)) = message else { break };
                let Message::Text(text) = message else { continue };
                let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                if frame["op"] == "pong" && frame["ts"].as_i64() == unanswered {
                    unanswered = None;
                }
                handle(&state, &config, id, &tx, frame);
            }
            () = ping_due => {
                if let Some(ts) = unanswered {
                    let _ = tx.send(Message::Close(Some(CloseFrame {
                        code: CloseCode::from(4000),
                        reason: format!("no pong for ping {ts}").into(),
                    })));
                    break;
                }
                next_ts += 1;
                unanswered = Some(next_ts);
                let _ = tx.send(Message::text(json!({"op": "ping", "ts": next_ts}).to_string()));
            }
            _ = stopped.changed() => break,
        }
    }
    lock(&state).clients.remove(&id);
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
}

fn handle(
    state: &Mutex<State>,
    config: &JsonServerConfig,
    id: u64,
    tx: &mpsc::UnboundedSender<Message>,
    frame: Value,
) {
    let mut state = lock(state);
    state.received.push(frame.clone());
    let send = |value: Value| {
        let _ = tx.send(Message::text(value.to_string()));
    };
    match frame["op"].as_str() {
        Some("login") => {
            if config.token.as_deref() == frame["token"].as_str() {
                if let Some(client) = state.clients.get_mut(&id) {
                    client.ready = true;
                }
                send(json!({"op": "ready"}));
            } else {
                send(json!({"op": "denied", "reason": "bad token"}));
            }
        }
        Some("sub") => {
            let Some(feed) = frame["ch"].as_str().map(str::to_owned) else {
                return;
            };
            // Replay and registration under one lock: nothing falls between.
            let since = frame["since"].as_u64();
            let replay: Vec<(u64, Value)> = match since {
                Some(since) if config.replay => state
                    .feed(&feed)
                    .events
                    .iter()
                    .filter(|(seq, _)| *seq > since)
                    .cloned()
                    .collect(),
                _ => Vec::new(),
            };
            for (seq, data) in replay {
                let text = state.event_frame(config.numbered, &feed, seq, &data);
                let _ = tx.send(Message::text(text));
            }
            if let Some(client) = state.clients.get_mut(&id) {
                client.feeds.insert(feed.clone());
            }
            send(json!({"op": "subscribed", "ch": feed, "id": frame["id"]}));
        }
        Some("unsub") => {
            if let (Some(feed), Some(client)) = (frame["ch"].as_str(), state.clients.get_mut(&id)) {
                client.feeds.remove(feed);
            }
        }
        Some("pub") => {
            let (Some(feed), Some(pub_id)) = (frame["ch"].as_str(), frame["id"].as_str()) else {
                return;
            };
            let seq = match state.acked.get(pub_id) {
                Some(seq) => *seq,
                None => {
                    let seq = append(&mut state, config, feed, frame["d"].clone(), true);
                    state.acked.insert(pub_id.to_owned(), seq);
                    seq
                }
            };
            send(json!({"op": "ok", "id": pub_id, "n": seq}));
        }
        _ => {}
    }
}
