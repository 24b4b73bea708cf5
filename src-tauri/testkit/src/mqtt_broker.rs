//! A real MQTT broker from npm (aedes, MQTT 3.1.1, `servers/mqtt-broker.mjs`)
//! behind a WebSocket listener, with its sessions in memory.

use serde_json::{Value, json};

use crate::node_server::NodeServer;

#[derive(Debug, Clone, Default)]
pub struct MqttBrokerConfig {
    /// The password a CONNECT must carry; `None` lets everyone in.
    pub password: Option<String>,
    pub username: Option<String>,
}

pub struct MqttBroker {
    node: NodeServer,
}

impl MqttBroker {
    pub async fn start(config: MqttBrokerConfig) -> MqttBroker {
        let options = json!({"password": config.password, "username": config.username});
        MqttBroker {
            node: NodeServer::start("mqtt-broker.mjs", options).await,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.node.addr())
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.node.addr()
    }

    /// Publishes `payload` (text) to `topic` at `qos`, from the broker.
    pub async fn publish(&mut self, topic: &str, payload: &str, qos: u8) {
        self.node
            .command(json!({"cmd": "publish", "topic": topic, "payload": payload, "qos": qos}))
            .await;
    }

    /// Publishes raw bytes.
    pub async fn publish_bytes(&mut self, topic: &str, payload: &[u8], qos: u8) {
        let hex: String = payload.iter().map(|b| format!("{b:02x}")).collect();
        self.node
            .command(json!({"cmd": "publish", "topic": topic, "hex": hex, "qos": qos}))
            .await;
    }

    /// Every line of one `type` (`connect`, `refused`, `subscribe`,
    /// `publish`, `ack`, `disconnect`).
    pub fn seen(&self, kind: &str) -> Vec<Value> {
        self.node.seen(kind)
    }

    pub async fn wait_for_count(&self, kind: &str, count: usize) -> Vec<Value> {
        self.node.wait_for_count(kind, count).await
    }

    pub async fn wait_for(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        self.node.wait_for(what, matches).await
    }

    pub async fn kill(&mut self) {
        self.node.kill().await;
    }
}
