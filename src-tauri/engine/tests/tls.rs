//! `wss://` with certificate verification that cannot be turned off: an
//! unknown issuer fails with a clear certificate error, trusting an extra CA
//! file makes it work, and an expired certificate says so.

mod support;

use std::net::SocketAddr;

use holdline_engine::{ConnectError, ConnectionState, EngineConfig, HistoryKind};
use support::*;

fn wss_config(addr: SocketAddr) -> EngineConfig {
    // `localhost` so that the certificate's name is what is checked; the
    // dialer tries each address localhost resolves to.
    fast_config(&format!("wss://localhost:{}/", addr.port()), TOKEN)
}

/// A config for `addr` that trusts the test CA through a CA file (kept in
/// the returned directory).
fn trusting_the_test_ca(pki: &Pki, addr: SocketAddr) -> (EngineConfig, tempfile::TempDir) {
    let (dir, ca_file) = pki.ca_file();
    let mut config = wss_config(addr);
    config.extra_ca_file = Some(ca_file);
    (config, dir)
}

#[tokio::test]
async fn an_unknown_issuer_is_a_clear_certificate_error() {
    let pki = pki();
    let (cert, key) = leaf(&pki, false);
    let addr = tls_server(cert, key).await;
    let error = first_connect_error(wss_config(addr)).await;
    let ConnectError::Tls { detail } = &error else {
        panic!("{error:?}")
    };
    assert!(
        detail.contains("certificate") && detail.contains("UnknownIssuer"),
        "{detail}"
    );
}

#[tokio::test]
async fn trusting_the_ca_file_makes_it_work() {
    let pki = pki();
    let (cert, key) = leaf(&pki, false);
    let addr = tls_server(cert, key).await;
    let (config, _ca_dir) = trusting_the_test_ca(&pki, addr);
    let (engine, _deliveries) = open_engine(config);
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let state = wait_state(&mut events, "open over TLS", is_open).await;
    assert_eq!(
        state,
        ConnectionState::Open {
            session: Some("tls".into()),
            raw: false
        }
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn an_expired_certificate_says_it_expired() {
    let pki = pki();
    let (cert, key) = leaf(&pki, true);
    let addr = tls_server(cert, key).await;
    let (config, _ca_dir) = trusting_the_test_ca(&pki, addr);
    let error = first_connect_error(config).await;
    let ConnectError::Tls { detail } = &error else {
        panic!("{error:?}")
    };
    assert!(detail.to_lowercase().contains("expired"), "{detail}");
}

#[tokio::test]
async fn an_unreadable_ca_file_is_named_in_the_error() {
    let mut config = fast_config("wss://localhost:9/", TOKEN);
    config.extra_ca_file = Some("/nonexistent/holdline-ca.pem".into());
    let (engine, _deliveries) = open_engine(config);
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let failed = wait_history(&mut events, HistoryKind::AttemptFailed).await;
    assert!(
        failed.message.contains("/nonexistent/holdline-ca.pem"),
        "{}",
        failed.message
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn the_error_says_what_to_do() {
    let pki = pki();
    let (cert, key) = leaf(&pki, false);
    let addr = tls_server(cert, key).await;
    let error = first_connect_error(wss_config(addr)).await;
    assert!(
        error
            .to_string()
            .contains("add that CA's certificate as an extra CA file"),
        "{error}"
    );
}
