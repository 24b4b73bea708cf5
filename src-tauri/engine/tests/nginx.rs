//! Behind a real reverse proxy: nginx on loopback in front of the reference
//! server, with `proxy_read_timeout` cut to one second.
//!
//! - heartbeat below the proxy's timeout: an idle subscription stays open
//!   across many timeouts;
//! - heartbeat above it: nginx cuts the idle connection again and again, and
//!   the client reconnects and resumes with nothing lost;
//! - `wss://` through nginx's TLS termination, trusting the test CA.
//!
//! Needs `nginx` (scripts/setup installs it). Without it the tests say so
//! and pass, unless HOLDLINE_REQUIRE_NGINX=1 (CI). Linux only: the nginx
//! setup (users, paths) is Debian's.
#![cfg(target_os = "linux")]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use holdline_engine::{EngineEvent, HistoryKind, StartFrom};
use holdline_testkit::within;
use support::*;

struct Nginx {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    /// SIGTERM, not SIGKILL: the master stops its workers before it exits,
    /// where a killed master leaves them running as orphans.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_available() -> bool {
    let found = Command::new("nginx")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var("HOLDLINE_REQUIRE_NGINX").is_err(),
            "nginx is required but missing"
        );
        eprintln!("skipping: nginx is not installed");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx proxying WebSockets to `upstream`, idle timeout one second;
/// `tls` = (certificate PEM, key PEM) makes it terminate TLS.
async fn start_nginx(upstream: SocketAddr, tls: Option<(String, String)>) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let (listen, ssl) = match &tls {
        Some((cert, key)) => {
            std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
            std::fs::write(dir.path().join("key.pem"), key).unwrap();
            (
                format!("127.0.0.1:{port} ssl"),
                format!(
                    "ssl_certificate {}; ssl_certificate_key {};",
                    path("cert.pem"),
                    path("key.pem")
                ),
            )
        }
        None => (format!("127.0.0.1:{port}"), String::new()),
    };
    let tmp = path("tmp");
    let conf = format!(
        r#"
worker_processes 1;
daemon off;
pid {pid};
error_log {err} warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{
    listen {listen};
    {ssl}
    location / {{
      proxy_pass http://{upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1s;
      proxy_send_timeout 1s;
    }}
  }}
}}
"#,
        pid = path("nginx.pid"),
        err = path("error.log"),
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut command = Command::new("nginx");
    command
        .args([
            "-p",
            &dir.path().display().to_string(),
            "-c",
            &conf_path.display().to_string(),
            "-e",
            &path("error.log"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // nginx run as root hands its workers to `nobody`, who cannot enter a
    // private temporary directory; the workers keep root's rights here.
    if unsafe_is_root() {
        let conf = std::fs::read_to_string(&conf_path).unwrap();
        std::fs::write(&conf_path, format!("user root;\n{conf}")).unwrap();
    }
    let child = command.spawn().expect("nginx starts");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    within(WAIT, "nginx to listen", async {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    Nginx {
        child,
        addr,
        _dir: dir,
    }
}

fn unsafe_is_root() -> bool {
    Path::new("/proc/self/status")
        .exists()
        .then(|| std::fs::read_to_string("/proc/self/status").unwrap_or_default())
        .is_some_and(|status| {
            status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
}

#[tokio::test]
async fn a_heartbeat_below_the_proxy_timeout_keeps_an_idle_subscription_open() {
    if !nginx_available() {
        return;
    }
    let server = server(1000, 300).await;
    let nginx = start_nginx(server.local_addr(), None).await;
    let (engine, mut deliveries) = open_engine(fast_config(&format!("ws://{}", nginx.addr), TOKEN));
    let mut events = engine.events();
    engine
        .subscribe("idle", StartFrom::Beginning)
        .await
        .unwrap();
    engine.connect().await.unwrap();
    wait_state(&mut events, "open through nginx", is_open).await;
    // Idle for four proxy timeouts: the time passing is what is tested.
    tokio::time::sleep(Duration::from_secs(4)).await;
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, EngineEvent::History(ref h) if h.kind == HistoryKind::Disconnected),
            "nginx cut a connection the heartbeat should have kept: {event:?}"
        );
    }
    server.publish("idle", &data(1)).unwrap();
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 1).await;
    assert_eq!(seen.feed("idle"), seqs(1..=1));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_heartbeat_above_the_proxy_timeout_is_cut_and_resumes_without_loss() {
    if !nginx_available() {
        return;
    }
    let server = server(100_000, 3000).await;
    let nginx = start_nginx(server.local_addr(), None).await;
    let mut config = fast_config(&format!("ws://{}", nginx.addr), TOKEN);
    config.heartbeat = Duration::from_secs(3);
    let (engine, mut deliveries) = open_engine(config);
    let mut events = engine.events();
    engine.subscribe("cut", StartFrom::Beginning).await.unwrap();
    engine.connect().await.unwrap();
    wait_state(&mut events, "open through nginx", is_open).await;
    let mut published = 0;
    for _ in 0..3 {
        // nginx closes the idle connection after a second; events published
        // meanwhile must come by replay after the reconnect.
        let lost = wait_history(&mut events, HistoryKind::Disconnected).await;
        assert!(
            lost.message.contains("connection lost") || lost.message.contains("closed"),
            "{}",
            lost.message
        );
        for _ in 0..10 {
            published += 1;
            server.publish("cut", &data(published)).unwrap();
        }
        wait_state(&mut events, "reopen after nginx's cut", is_open).await;
    }
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, published as usize).await;
    assert_eq!(seen.feed("cut"), seqs(1..=published));
    engine.shutdown().await;
}

#[tokio::test]
async fn wss_through_nginx_tls_termination_with_the_test_ca() {
    if !nginx_available() {
        return;
    }
    let pki = pki();
    let (cert_pem, key_pem) = leaf_pem(&pki);
    let server = server(1000, 300).await;
    let nginx = start_nginx(server.local_addr(), Some((cert_pem, key_pem))).await;
    let (_ca_dir, ca_file) = pki.ca_file();
    let mut config = fast_config(&format!("wss://localhost:{}/", nginx.addr.port()), TOKEN);
    config.extra_ca_file = Some(ca_file);
    let (engine, mut deliveries) = open_engine(config);
    let mut events = engine.events();
    engine
        .subscribe("secure", StartFrom::Beginning)
        .await
        .unwrap();
    engine.connect().await.unwrap();
    wait_state(&mut events, "open over TLS through nginx", is_open).await;
    server.publish("secure", &data(1)).unwrap();
    let mut seen = Seen::default();
    collect_until(&mut deliveries, &mut seen, 1).await;
    assert_eq!(seen.feed("secure"), seqs(1..=1));
    engine.shutdown().await;
}
