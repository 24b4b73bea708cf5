//! The real `socket.io` server from npm (`servers/socket-io.mjs`), with
//! connection state recovery on and an auth middleware.

use serde_json::{Value, json};

use crate::node_server::NodeServer;

#[derive(Debug, Clone)]
pub struct SocketIoConfig {
    /// The token the auth middleware wants in the CONNECT payload; `None`
    /// lets everyone in.
    pub token: Option<String>,
    pub ping_interval_ms: u64,
    pub ping_timeout_ms: u64,
    pub max_payload: u64,
    pub namespace: String,
}

impl Default for SocketIoConfig {
    fn default() -> Self {
        SocketIoConfig {
            token: None,
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            max_payload: 1_000_000,
            namespace: "/".into(),
        }
    }
}

pub struct SocketIoServer {
    node: NodeServer,
}

impl SocketIoServer {
    pub async fn start(config: SocketIoConfig) -> SocketIoServer {
        let options = json!({
            "token": config.token,
            "pingInterval": config.ping_interval_ms,
            "pingTimeout": config.ping_timeout_ms,
            "maxPayload": config.max_payload,
            "namespace": config.namespace,
        });
        SocketIoServer {
            node: NodeServer::start("socket-io.mjs", options).await,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.node.addr())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.node.addr()
    }

    /// Emits `event` with `args` to `room` (every client when `None`), as
    /// a broadcast the server stores for recovery.
    pub async fn emit(&mut self, room: Option<&str>, event: &str, args: Vec<Value>) {
        self.node
            .command(json!({"cmd": "emit", "room": room, "event": event, "args": args}))
            .await;
    }

    /// Emits `event` with `args` followed by binary attachments.
    pub async fn emit_binary(&mut self, event: &str, args: Vec<Value>, binary: &[&[u8]]) {
        let binary: Vec<String> = binary.iter().map(|b| hex(b)).collect();
        self.node
            .command(json!({"cmd": "emit", "room": null, "event": event, "args": args, "binary": binary}))
            .await;
    }

    /// Ends every client's session with a DISCONNECT packet.
    pub async fn disconnect_all(&mut self) {
        self.node.command(json!({"cmd": "disconnect_all"})).await;
    }

    /// Every CONNECT the server accepted: `recovered`, `auth_keys`,
    /// `auth_token`, `has_pid`, `headers`, `query`, `url`.
    pub fn connections(&self) -> Vec<Value> {
        self.node.seen("connection")
    }

    pub async fn wait_for_connections(&self, count: usize) -> Vec<Value> {
        self.node.wait_for_count("connection", count).await
    }

    /// Events clients emitted: `event`, `args`, `acked`.
    pub fn received(&self) -> Vec<Value> {
        self.node.seen("received")
    }

    pub async fn wait_for_received(&self, count: usize) -> Vec<Value> {
        self.node.wait_for_count("received", count).await
    }

    pub async fn wait_for(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        self.node.wait_for(what, matches).await
    }

    /// Every line the server printed.
    pub fn lines(&self) -> Vec<Value> {
        self.node.lines()
    }

    pub async fn kill(&mut self) {
        self.node.kill().await;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
