//! The CLI's client certificates against nginx with `ssl_verify_client on`
//! and a test client CA: PEM files, a PKCS#12 file made by `openssl` with
//! its passphrase from HOLDLINE_CLIENT_KEY_PASSWORD (in no output), exit 3
//! without a certificate, and a usage error for a PEM certificate with no
//! key.
#![cfg(target_os = "linux")]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use holdline_server::{RunningServer, ServerConfig};
use holdline_testkit::nginx::{Nginx, NginxTls, nginx_available, start_nginx};
use holdline_testkit::pki::{Pki, client_leaf_pem, leaf_pem, pki};
use serde_json::value::RawValue;
use support::{cli_with_token, run};
use tokio::process::Command;

const TOKEN: &str = "cli-mtls-token-6a0c";
const PASSPHRASE: &str = "cli-p12-pass-31d7";

struct Setup {
    _server: RunningServer,
    nginx: Nginx,
    dir: tempfile::TempDir,
    server_ca: PathBuf,
    client_ca: Pki,
}

async fn setup() -> Option<Setup> {
    if !nginx_available() {
        return None;
    }
    let server = holdline_server::start(ServerConfig {
        tokens: vec![TOKEN.into()],
        heartbeat: Duration::from_millis(500),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let data = RawValue::from_string("{\"n\":1}".into()).unwrap();
    server.publish("secure", &data).await.unwrap();
    let server_pki = pki();
    let client_ca = pki();
    let (cert, key) = leaf_pem(&server_pki);
    let tls = NginxTls {
        cert,
        key,
        client_ca: Some(client_ca.ca_pem.clone()),
    };
    let nginx = start_nginx(server.local_addr(), Some(tls)).await;
    let dir = tempfile::tempdir().unwrap();
    let server_ca = dir.path().join("server-ca.pem");
    std::fs::write(&server_ca, &server_pki.ca_pem).unwrap();
    Some(Setup {
        _server: server,
        nginx,
        dir,
        server_ca,
        client_ca,
    })
}

impl Setup {
    /// `tail` of one event over wss:// through nginx, trusting its CA.
    fn tail(&self) -> Command {
        let mut command = cli_with_token(TOKEN);
        command
            .arg("tail")
            .arg(format!("wss://localhost:{}/", self.nginx.addr.port()))
            .args(["--feed", "secure", "--from-start", "--max-events", "1"])
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .arg("--ca-file")
            .arg(&self.server_ca)
            .args(["--backoff-initial-ms", "20", "--backoff-max-ms", "200"]);
        command
    }

    fn client_pem(&self) -> (PathBuf, PathBuf) {
        let (cert, key) = client_leaf_pem(&self.client_ca, false);
        let cert_path = self.dir.path().join("client.crt");
        let key_path = self.dir.path().join("client.key");
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        (cert_path, key_path)
    }
}

fn pkcs12(cert: &Path, key: &Path, out: &Path) {
    let made = std::process::Command::new("openssl")
        .args(["pkcs12", "-export", "-passout"])
        .arg(format!("pass:{PASSPHRASE}"))
        .arg("-in")
        .arg(cert)
        .arg("-inkey")
        .arg(key)
        .arg("-out")
        .arg(out)
        .status()
        .expect("openssl runs");
    assert!(made.success(), "openssl pkcs12 -export");
}

#[tokio::test]
async fn pem_files_connect() {
    let Some(setup) = setup().await else { return };
    let (cert, key) = setup.client_pem();
    let run = run(setup
        .tail()
        .arg("--client-cert")
        .arg(&cert)
        .arg("--client-key")
        .arg(&key))
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.len(), 1);
}

#[tokio::test]
async fn a_pkcs12_file_connects_with_its_passphrase_from_the_environment() {
    let Some(setup) = setup().await else { return };
    let (cert, key) = setup.client_pem();
    let p12 = setup.dir.path().join("client.p12");
    pkcs12(&cert, &key, &p12);
    let run = run(setup
        .tail()
        .arg("--client-cert")
        .arg(&p12)
        .env("HOLDLINE_CLIENT_KEY_PASSWORD", PASSPHRASE))
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains(PASSPHRASE));
}

#[tokio::test]
async fn without_a_certificate_the_cli_exits_3_and_says_why() {
    let Some(setup) = setup().await else { return };
    let run = run(&mut setup.tail()).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("demands a client certificate"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_pem_certificate_without_its_key_is_a_usage_error() {
    let Some(setup) = setup().await else { return };
    let (cert, _) = setup.client_pem();
    let run = run(setup.tail().arg("--client-cert").arg(&cert)).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--client-key"), "{}", run.stderr);
}
