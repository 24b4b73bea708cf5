//! Test support shared by the engine, server and CLI tests.

pub mod forward_proxy;
pub mod graphql_server;
pub mod json_server;
pub mod mqtt_broker;
#[cfg(target_os = "linux")]
pub mod nginx;
pub mod node_server;
pub mod npm_encoders;
pub mod oidc_provider;
pub mod pki;
mod proxy;
pub mod redis_server;
pub mod rumqttd;
pub mod socket_io_server;
pub mod ws;

pub use forward_proxy::ForwardProxy;
pub use graphql_server::GraphqlServer;
pub use json_server::{JsonServer, JsonServerConfig, UpgradeSeen};
pub use mqtt_broker::{MqttBroker, MqttBrokerConfig};
pub use node_server::NodeServer;
pub use oidc_provider::OidcProvider;
pub use proxy::FaultProxy;
pub use redis_server::RedisServer;
pub use rumqttd::{Rumqttd, WsTcpBridge};
pub use socket_io_server::{SocketIoConfig, SocketIoServer};

use std::future::Future;
use std::time::Duration;

/// Awaits `future`, failing the test with `what` if it takes longer than
/// `limit`. Tests wait on the event they need, never on a fixed sleep.
pub async fn within<T>(limit: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {limit:?} waiting for {what}"),
    }
}
