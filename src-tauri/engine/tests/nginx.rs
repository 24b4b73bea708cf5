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

use holdline_engine::{
    ClientCertificate, EngineConfig, EngineEvent, HistoryKind, StartFrom, Token,
};
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
/// nginx's TLS: its certificate and key (PEM) and, for mutual TLS, the CA
/// (PEM) a client's certificate must be signed by (`ssl_verify_client on`).
struct NginxTls {
    cert: String,
    key: String,
    client_ca: Option<String>,
}

async fn start_nginx(upstream: SocketAddr, tls: Option<NginxTls>) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let (listen, ssl) = match &tls {
        Some(tls) => {
            std::fs::write(dir.path().join("cert.pem"), &tls.cert).unwrap();
            std::fs::write(dir.path().join("key.pem"), &tls.key).unwrap();
            let mut ssl = format!(
                "ssl_certificate {}; ssl_certificate_key {};",
                path("cert.pem"),
                path("key.pem")
            );
            if let Some(client_ca) = &tls.client_ca {
                std::fs::write(dir.path().join("client-ca.pem"), client_ca).unwrap();
                ssl.push_str(&format!(
                    " ssl_client_certificate {}; ssl_verify_client on;",
                    path("client-ca.pem")
                ));
            }
            (format!("127.0.0.1:{port} ssl"), ssl)
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
    let tls = NginxTls {
        cert: cert_pem,
        key: key_pem,
        client_ca: None,
    };
    let nginx = start_nginx(server.local_addr(), Some(tls)).await;
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

/// Mutual TLS against nginx (`ssl_verify_client on`, a test client CA):
/// the right certificate connects, as PEM files or as a PKCS#12 file made
/// by `openssl pkcs12`; none, one from another CA, and an expired one each
/// get their own error and need a person (`needs_login`).
struct MutualTls {
    _server: holdline_server::RunningServer,
    nginx: Nginx,
    server_ca: Pki,
    client_ca: Pki,
    dir: tempfile::TempDir,
}

async fn mutual_tls() -> Option<MutualTls> {
    if !nginx_available() {
        return None;
    }
    let server_ca = pki();
    let client_ca = pki();
    let (cert, key) = leaf_pem(&server_ca);
    let server = server(1000, 300).await;
    let tls = NginxTls {
        cert,
        key,
        client_ca: Some(client_ca.ca_pem.clone()),
    };
    let nginx = start_nginx(server.local_addr(), Some(tls)).await;
    Some(MutualTls {
        _server: server,
        nginx,
        server_ca,
        client_ca,
        dir: tempfile::tempdir().unwrap(),
    })
}

impl MutualTls {
    fn config(&self, client_certificate: Option<ClientCertificate>) -> EngineConfig {
        let (ca_dir, ca_file) = self.server_ca.ca_file();
        let kept = self.dir.path().join("server-ca.pem");
        std::fs::copy(&ca_file, &kept).unwrap();
        drop(ca_dir);
        let mut config = fast_config(
            &format!("wss://localhost:{}/", self.nginx.addr.port()),
            TOKEN,
        );
        config.extra_ca_file = Some(kept);
        config.client_certificate = client_certificate;
        config
    }

    /// A client certificate signed by `ca` as PEM files in the scratch
    /// directory, named after `name`.
    fn pem_files(&self, ca: &Pki, name: &str, expired: bool) -> ClientCertificate {
        let (cert, key) = client_leaf_pem(ca, expired);
        let certificate = self.dir.path().join(format!("{name}.crt"));
        let key_path = self.dir.path().join(format!("{name}.key"));
        std::fs::write(&certificate, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        ClientCertificate::Pem {
            certificate,
            key: key_path,
        }
    }
}

async fn needs_login_for(config: EngineConfig) -> (String, Vec<holdline_engine::HistoryEntry>) {
    let (engine, _deliveries) = open_engine(config);
    let mut events = engine.events();
    let mut log = engine.events();
    engine.connect().await.unwrap();
    let reason = wait_needs_login(&mut events).await;
    engine.shutdown().await;
    let mut history = Vec::new();
    while let Ok(event) = log.try_recv() {
        if let EngineEvent::History(entry) = event {
            history.push(entry);
        }
    }
    (reason, history)
}

fn failed_error(history: &[holdline_engine::HistoryEntry]) -> serde_json::Value {
    history
        .iter()
        .find(|entry| entry.kind == HistoryKind::AttemptFailed)
        .map(|entry| entry.details["error"].clone())
        .expect("a failed attempt")
}

#[tokio::test]
async fn mutual_tls_the_right_pem_certificate_connects() {
    let Some(mtls) = mutual_tls().await else {
        return;
    };
    let certificate = mtls.pem_files(&mtls.client_ca, "right", false);
    let (engine, _deliveries) = open_engine(mtls.config(Some(certificate)));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    wait_state(&mut events, "open with a client certificate", is_open).await;
    engine.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_a_pkcs12_file_from_openssl_connects_and_a_wrong_passphrase_is_told() {
    let Some(mtls) = mutual_tls().await else {
        return;
    };
    let ClientCertificate::Pem { certificate, key } = mtls.pem_files(&mtls.client_ca, "p12", false)
    else {
        unreachable!()
    };
    let p12 = mtls.dir.path().join("client.p12");
    let made = std::process::Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:p12-pass-9f2"])
        .arg("-in")
        .arg(&certificate)
        .arg("-inkey")
        .arg(&key)
        .arg("-out")
        .arg(&p12)
        .status()
        .expect("openssl runs");
    assert!(made.success(), "openssl pkcs12 -export");
    let pkcs12 = |passphrase: &str| ClientCertificate::Pkcs12 {
        file: p12.clone(),
        passphrase: Token::new(passphrase),
    };
    let (engine, _deliveries) = open_engine(mtls.config(Some(pkcs12("p12-pass-9f2"))));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    wait_state(&mut events, "open with a PKCS#12 identity", is_open).await;
    engine.shutdown().await;

    let (engine, _deliveries) = open_engine(mtls.config(Some(pkcs12("wrong"))));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let reason = wait_stopped(&mut events).await;
    assert!(
        reason.contains("client certificate cannot be used") && reason.contains("passphrase"),
        "{reason}"
    );
    assert!(!reason.contains("p12-pass-9f2"));
    engine.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_without_a_certificate_says_the_server_demands_one() {
    let Some(mtls) = mutual_tls().await else {
        return;
    };
    let (reason, history) = needs_login_for(mtls.config(None)).await;
    assert!(reason.contains("demands a client certificate"), "{reason}");
    assert_eq!(
        failed_error(&history)["kind"],
        "client_certificate_required"
    );
}

#[tokio::test]
async fn mutual_tls_a_certificate_from_another_ca_is_rejected() {
    let Some(mtls) = mutual_tls().await else {
        return;
    };
    let stranger = pki();
    let certificate = mtls.pem_files(&stranger, "wrong", false);
    let (reason, history) = needs_login_for(mtls.config(Some(certificate))).await;
    assert!(
        reason.contains("rejected the client certificate"),
        "{reason}"
    );
    assert_eq!(
        failed_error(&history)["kind"],
        "client_certificate_rejected"
    );
}

#[tokio::test]
async fn mutual_tls_an_expired_certificate_says_it_expired() {
    let Some(mtls) = mutual_tls().await else {
        return;
    };
    let certificate = mtls.pem_files(&mtls.client_ca, "expired", true);
    let (reason, history) = needs_login_for(mtls.config(Some(certificate))).await;
    assert!(reason.contains("expired at"), "{reason}");
    assert_eq!(failed_error(&history)["kind"], "client_certificate_expired");
}
