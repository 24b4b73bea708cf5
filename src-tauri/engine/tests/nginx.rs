//! Behind a real reverse proxy: nginx on loopback in front of the reference
//! server, with `proxy_read_timeout` cut to one second.
//!
//! - heartbeat below the proxy's timeout: an idle subscription stays open
//!   across many timeouts;
//! - heartbeat above it: nginx cuts the idle connection again and again, and
//!   the client reconnects and resumes with nothing lost;
//! - `wss://` through nginx's TLS termination, trusting the test CA;
//! - mutual TLS: the right client certificate connects, and none, a wrong
//!   one and an expired one are told apart.
//!
//! nginx comes from `testkit::nginx` (Linux only, Debian's paths).
#![cfg(target_os = "linux")]

mod support;

use std::time::Duration;

use holdline_engine::{
    ClientCertificate, EngineConfig, EngineEvent, HistoryKind, StartFrom, Token,
};
use holdline_testkit::nginx::{Nginx, NginxTls, nginx_available, start_nginx};
use support::*;

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
    server.publish("idle", &data(1)).await.unwrap();
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
            server.publish("cut", &data(published)).await.unwrap();
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
    server.publish("secure", &data(1)).await.unwrap();
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
        self.write_pem(name, client_leaf_pem(ca, expired))
    }

    fn write_pem(&self, name: &str, (cert, key): (String, String)) -> ClientCertificate {
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
async fn mutual_tls_an_rsa_key_made_by_openssl_connects() {
    let Some(mtls) = mutual_tls().await else {
        return;
    };
    let certificate = mtls.write_pem("rsa", client_rsa_leaf_pem(&mtls.client_ca));
    let (engine, _deliveries) = open_engine(mtls.config(Some(certificate)));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    wait_state(&mut events, "open with an RSA client certificate", is_open).await;
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
