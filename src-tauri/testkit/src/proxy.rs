//! A TCP proxy between a client and a server that fails on command: it cuts
//! connections without a close frame, stalls them (half-open), delays them,
//! refuses new ones, or points them at another upstream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

struct Controls {
    upstream: Mutex<SocketAddr>,
    /// Bumped to cut every connection alive at that moment.
    cut: watch::Sender<u64>,
    stall_up: watch::Sender<bool>,
    stall_down: watch::Sender<bool>,
    delay: Mutex<Duration>,
    refuse: AtomicBool,
    accepted: AtomicU64,
}

/// A running proxy; dropping it stops accepting.
pub struct FaultProxy {
    addr: SocketAddr,
    controls: Arc<Controls>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut_all();
    }
}

impl FaultProxy {
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy on loopback");
        let addr = listener.local_addr().expect("proxy address");
        let controls = Arc::new(Controls {
            upstream: Mutex::new(upstream),
            cut: watch::channel(0).0,
            stall_up: watch::channel(false).0,
            stall_down: watch::channel(false).0,
            delay: Mutex::new(Duration::ZERO),
            refuse: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, controls.clone()));
        FaultProxy {
            addr,
            controls,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Drops every live connection: the peers see the TCP stream end with
    /// no WebSocket close frame.
    pub fn cut_all(&self) {
        self.controls.cut.send_modify(|n| *n += 1);
    }

    /// Stops forwarding in both directions; connections stay open.
    pub fn stall(&self, stalled: bool) {
        self.controls.stall_up.send_replace(stalled);
        self.controls.stall_down.send_replace(stalled);
    }

    /// Stops forwarding from the server to the client only.
    pub fn stall_downstream(&self, stalled: bool) {
        self.controls.stall_down.send_replace(stalled);
    }

    /// Holds every chunk this long before passing it on.
    pub fn set_delay(&self, delay: Duration) {
        *self
            .controls
            .delay
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = delay;
    }

    /// New connections are closed at once, before any byte is read.
    pub fn refuse(&self, refuse: bool) {
        self.controls.refuse.store(refuse, Ordering::SeqCst);
    }

    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self
            .controls
            .upstream
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = upstream;
    }

    /// Connections accepted so far, refused ones included.
    pub fn accepted(&self) -> u64 {
        self.controls.accepted.load(Ordering::SeqCst)
    }
}

async fn accept_loop(listener: TcpListener, controls: Arc<Controls>) {
    while let Ok((client, _)) = listener.accept().await {
        controls.accepted.fetch_add(1, Ordering::SeqCst);
        if controls.refuse.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let upstream = *controls.upstream.lock().unwrap_or_else(|p| p.into_inner());
        let controls = controls.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let mut cut = controls.cut.subscribe();
            cut.borrow_and_update();
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            let up = pump(
                client_read,
                server_write,
                controls.stall_up.subscribe(),
                controls.clone(),
            );
            let down = pump(
                server_read,
                client_write,
                controls.stall_down.subscribe(),
                controls.clone(),
            );
            // Either direction ending, or a cut, drops all four halves.
            tokio::select! {
                _ = cut.changed() => {}
                _ = up => {}
                _ = down => {}
            }
        });
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
    controls: Arc<Controls>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let delay = *controls.delay.lock().unwrap_or_else(|p| p.into_inner());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}
