//! A second real MQTT broker, for MQTT 5: `rumqttd` (crates.io, installed
//! by `scripts/setup`), started on loopback with its v5 listener, and a
//! WebSocket front (`WsTcpBridge`) that carries the `mqtt` subprotocol's
//! binary frames to its TCP port as a broker's own WebSocket listener
//! would. Its sessions live in memory: a restart loses them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

use crate::within;

pub struct Rumqttd {
    child: Child,
    addr: SocketAddr,
    _config_dir: tempfile::TempDir,
}

/// Where `scripts/setup` installs the broker.
pub fn rumqttd_binary() -> PathBuf {
    if let Ok(path) = std::env::var("HOLDLINE_RUMQTTD") {
        return PathBuf::from(path);
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    home.join("bin").join("rumqttd")
}

async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address").port()
}

impl Rumqttd {
    /// Starts the broker and waits until its v5 port takes connections.
    pub async fn start() -> Rumqttd {
        let binary = rumqttd_binary();
        assert!(
            binary.exists(),
            "{} is missing: run scripts/setup",
            binary.display()
        );
        let port = free_port().await;
        let dir = tempfile::tempdir().expect("a scratch directory");
        let config = format!(
            r#"id = 0
[router]
id = 0
max_connections = 100
max_outgoing_packet_count = 200
max_segment_size = 1048576
max_segment_count = 10

[v5.1]
name = "v5-1"
listen = "127.0.0.1:{port}"
next_connection_delay_ms = 1
    [v5.1.connections]
    connection_timeout_ms = 60000
    max_payload_size = 1048576
    max_inflight_count = 100
"#
        );
        let path = dir.path().join("rumqttd.toml");
        std::fs::write(&path, config).expect("write the config");
        let child = Command::new(&binary)
            .arg("-q")
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        within(Duration::from_secs(20), "rumqttd to listen", async {
            while TcpStream::connect(addr).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        Rumqttd {
            child,
            addr,
            _config_dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

/// A WebSocket listener that speaks the `mqtt` subprotocol and carries
/// each connection's bytes to and from a broker's TCP port.
pub struct WsTcpBridge {
    addr: SocketAddr,
    upstream: std::sync::Arc<std::sync::Mutex<SocketAddr>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for WsTcpBridge {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl WsTcpBridge {
    pub async fn start(upstream: SocketAddr) -> WsTcpBridge {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let upstream = std::sync::Arc::new(std::sync::Mutex::new(upstream));
        let target = upstream.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let upstream = *target.lock().unwrap_or_else(|p| p.into_inner());
                tokio::spawn(async move {
                    let Ok(ws) = crate::ws::accept_selecting(stream, Some("mqtt")).await else {
                        return;
                    };
                    let Ok(tcp) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    carry(ws, tcp).await;
                });
            }
        });
        WsTcpBridge {
            addr,
            upstream,
            accept,
        }
    }

    /// Where new connections are carried from now on.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap_or_else(|p| p.into_inner()) = upstream;
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn carry(ws: tokio_tungstenite::WebSocketStream<TcpStream>, tcp: TcpStream) {
    let (mut ws_out, mut ws_in) = ws.split();
    let (mut tcp_in, mut tcp_out) = tcp.into_split();
    let up = async {
        while let Some(Ok(message)) = ws_in.next().await {
            match message {
                Message::Binary(bytes) if tcp_out.write_all(&bytes).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = tcp_out.shutdown().await;
    };
    let down = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match tcp_in.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if ws_out
                        .send(Message::binary(buffer[..n].to_vec()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = ws_out.close().await;
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
