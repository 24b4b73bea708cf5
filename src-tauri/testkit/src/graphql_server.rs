//! The real `graphql-ws` server from npm (`servers/graphql-ws.mjs`): a
//! schema whose `ticks(feed, since)` replays a log from `since`, a `chat`
//! without sequence numbers, a `fails` that always errors, a `finite` the
//! server completes, and a `post` mutation that dedupes by id.

use serde_json::{Value, json};

use crate::node_server::NodeServer;

pub struct GraphqlServer {
    node: NodeServer,
}

impl GraphqlServer {
    /// `token`: what `connection_init` must carry; `None` lets everyone in.
    pub async fn start(token: Option<&str>) -> GraphqlServer {
        GraphqlServer {
            node: NodeServer::start("graphql-ws.mjs", json!({ "token": token })).await,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/graphql", self.node.addr())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.node.addr()
    }

    /// Appends `value` to `feed`'s log (its next seq) and sends it live.
    pub async fn tick(&mut self, feed: &str, value: f64) {
        self.node
            .command(json!({"cmd": "tick", "feed": feed, "value": value}))
            .await;
    }

    pub async fn chat(&mut self, text: &str) {
        self.node
            .command(json!({"cmd": "chat", "text": text}))
            .await;
    }

    /// Sends a protocol `ping` to every client.
    pub async fn ping(&mut self) {
        self.node.command(json!({"cmd": "ping"})).await;
    }

    /// Completes every `finite` subscription.
    pub async fn finish(&mut self) {
        self.node.command(json!({"cmd": "finish"})).await;
    }

    /// Lines of one `type`: `connect`, `refused`, `subscribe`, `mutation`,
    /// `pong`.
    pub fn seen(&self, kind: &str) -> Vec<Value> {
        self.node.seen(kind)
    }

    pub async fn wait_for_count(&self, kind: &str, count: usize) -> Vec<Value> {
        self.node.wait_for_count(kind, count).await
    }

    pub async fn kill(&mut self) {
        self.node.kill().await;
    }
}
