//! Through real forward proxies from Debian on loopback: tinyproxy (HTTP
//! `CONNECT` with Basic credentials) and microsocks (SOCKS5 with
//! username/password). The feed server sits behind a fault proxy, so the
//! connection through the tunnel is cut mid-stream: the engine comes back
//! through the proxy and resumes with nothing lost. Wrong credentials stop
//! with `needs_login`; each kind of failure is told apart.
#![cfg(target_os = "linux")]

mod support;

use holdline_engine::{
    ConnectError, EngineConfig, EngineEvent, HistoryKind, Proxy, ProxySetting, StartFrom,
};
use holdline_testkit::{FaultProxy, ForwardProxy};
use support::*;

const USER: &str = "feeduser";
const PASSWORD: &str = "proxy-pass-5c1e";

/// `config` through the proxy at `proxy_url`, credentials and all.
fn through(mut config: EngineConfig, proxy_url: &str) -> EngineConfig {
    config.proxy = ProxySetting::Url(Proxy::parse(proxy_url).expect("a proxy URL"));
    config
}

/// Publishes 3 × 40 events, cutting every connection at the fault proxy
/// after each batch, and checks they all arrive exactly once, in order;
/// every attempt said which proxy it used, without its password.
async fn survives_cuts_through(proxy: &ForwardProxy, scheme: &str, host: &str) {
    let server = server(10_000, 250).await;
    let faults = FaultProxy::start(server.local_addr()).await;
    let url = format!("ws://{host}:{}/", faults.addr().port());
    let config = through(
        fast_config(&url, TOKEN),
        &proxy.url(scheme, Some((USER, PASSWORD))),
    );
    let (engine, mut deliveries) = open_engine(config);
    let mut events = engine.events();
    let mut log = engine.events();
    engine
        .subscribe("through.proxy", StartFrom::Beginning)
        .await
        .unwrap();
    engine.connect().await.unwrap();
    let attempt = wait_history(&mut events, HistoryKind::Attempt).await;
    let shown = format!("{scheme}://{USER}@{}", proxy.addr());
    assert_eq!(attempt.details["proxy"], shown.as_str(), "{attempt:?}");
    assert!(attempt.message.contains(&shown), "{}", attempt.message);
    wait_open(&mut events).await;

    let mut seen = Seen::default();
    let mut published = 0;
    for _ in 0..3 {
        for _ in 0..40 {
            published += 1;
            server
                .publish("through.proxy", &data(published))
                .await
                .unwrap();
        }
        collect_until(&mut deliveries, &mut seen, published as usize).await;
        faults.cut_all();
        wait_history(&mut events, HistoryKind::Disconnected).await;
        wait_open(&mut events).await;
    }
    assert_eq!(seen.feed("through.proxy"), seqs(1..=published));
    let mut history = Vec::new();
    loop {
        match log.try_recv() {
            Ok(EngineEvent::History(entry)) => history.push(entry),
            Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => break,
        }
    }
    assert!(
        history
            .iter()
            .filter(|entry| entry.kind == HistoryKind::Attempt)
            .count()
            >= 4,
        "a first attempt and one after each cut"
    );
    let all = serde_json::to_string(&history).unwrap();
    assert!(
        !all.contains(PASSWORD),
        "the proxy password is in the history"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn through_an_http_proxy_events_survive_cuts_exactly_once() {
    let Some(proxy) = ForwardProxy::tinyproxy(Some((USER, PASSWORD))).await else {
        return;
    };
    survives_cuts_through(&proxy, "http", "127.0.0.1").await;
}

#[tokio::test]
async fn through_socks5h_the_proxy_resolves_the_name_and_events_survive_cuts() {
    let Some(proxy) = ForwardProxy::microsocks(Some((USER, PASSWORD))).await else {
        return;
    };
    survives_cuts_through(&proxy, "socks5h", "localhost").await;
}

#[tokio::test]
async fn through_socks5_the_name_is_resolved_here_and_events_survive_cuts() {
    let Some(proxy) = ForwardProxy::microsocks(Some((USER, PASSWORD))).await else {
        return;
    };
    survives_cuts_through(&proxy, "socks5", "localhost").await;
}

#[tokio::test]
async fn wss_runs_end_to_end_through_an_http_tunnel() {
    let Some(proxy) = ForwardProxy::tinyproxy(None).await else {
        return;
    };
    let pki = pki();
    let (cert, key) = leaf(&pki, false);
    let addr = tls_server(cert, key).await;
    let (dir, ca_file) = pki.ca_file();
    let mut config = fast_config(&format!("wss://localhost:{}/", addr.port()), TOKEN);
    config.extra_ca_file = Some(ca_file);
    let (engine, _deliveries) = open_engine(through(config, &proxy.url("http", None)));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    // The session the TLS server names proves the upgrade ran inside TLS,
    // inside the tunnel.
    let open = wait_state(&mut events, "open over TLS through the proxy", is_open).await;
    assert_eq!(
        open,
        holdline_engine::ConnectionState::Open {
            session: Some("tls".into()),
            raw: false
        }
    );
    engine.shutdown().await;
    drop(dir);
}

#[tokio::test]
async fn wss_runs_end_to_end_through_a_socks_tunnel() {
    let Some(proxy) = ForwardProxy::microsocks(None).await else {
        return;
    };
    let pki = pki();
    let (cert, key) = leaf(&pki, false);
    let addr = tls_server(cert, key).await;
    let (_dir, ca_file) = pki.ca_file();
    let mut config = fast_config(&format!("wss://localhost:{}/", addr.port()), TOKEN);
    config.extra_ca_file = Some(ca_file);
    let (engine, _deliveries) = open_engine(through(config, &proxy.url("socks5h", None)));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    wait_state(&mut events, "open over TLS through SOCKS", is_open).await;
    engine.shutdown().await;
}

/// Wrong credentials: `needs_login` naming the proxy, and no second
/// attempt (the proxy would refuse them again).
async fn refused_credentials_stop_asking(proxy: &ForwardProxy, scheme: &str, expect: &str) {
    let server = server(100, 250).await;
    let url = format!("ws://127.0.0.1:{}/", server.local_addr().port());
    let config = through(
        fast_config(&url, TOKEN),
        &proxy.url(scheme, Some((USER, "not-the-password"))),
    );
    let (engine, _deliveries) = open_engine(config);
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let reason = wait_needs_login(&mut events).await;
    assert!(
        reason.contains("proxy") && reason.contains(expect),
        "{reason}"
    );
    assert!(!reason.contains("not-the-password"), "{reason}");
    assert_no_new_attempt(&mut events, "refused proxy credentials").await;
    assert_eq!(server.stats().handshakes, 0, "nothing reached the server");
    engine.shutdown().await;
}

/// tinyproxy answers wrong credentials with 401 (and missing ones with
/// 407, below); either is the proxy's, since only the proxy sees CONNECT.
#[tokio::test]
async fn wrong_http_proxy_credentials_need_a_login() {
    let Some(proxy) = ForwardProxy::tinyproxy(Some((USER, PASSWORD))).await else {
        return;
    };
    refused_credentials_stop_asking(&proxy, "http", "refused the credentials (HTTP 401").await;
}

#[tokio::test]
async fn wrong_socks_credentials_are_an_auth_failure_and_need_a_login() {
    let Some(proxy) = ForwardProxy::microsocks(Some((USER, PASSWORD))).await else {
        return;
    };
    refused_credentials_stop_asking(&proxy, "socks5", "refused the credentials").await;
}

#[tokio::test]
async fn a_proxy_that_wants_credentials_says_so() {
    let Some(proxy) = ForwardProxy::tinyproxy(Some((USER, PASSWORD))).await else {
        return;
    };
    let server = server(100, 250).await;
    let url = format!("ws://127.0.0.1:{}/", server.local_addr().port());
    let (engine, _deliveries) =
        open_engine(through(fast_config(&url, TOKEN), &proxy.url("http", None)));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let reason = wait_needs_login(&mut events).await;
    assert!(reason.contains("wants credentials (HTTP 407"), "{reason}");
    engine.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_proxy_is_told_apart_from_the_server() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let server = server(100, 250).await;
    let url = format!("ws://127.0.0.1:{}/", server.local_addr().port());
    let config = through(
        fast_config(&url, TOKEN),
        &format!("http://127.0.0.1:{port}"),
    );
    let error = first_connect_error(config).await;
    assert!(
        matches!(&error, ConnectError::ProxyUnreachable { proxy, detail }
            if proxy == &format!("http://127.0.0.1:{port}") && detail.contains("refused")),
        "{error:?}"
    );
}

/// A server port nothing listens on, behind the proxy.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_server_the_socks_proxy_cannot_reach_is_its_reply_5() {
    let Some(proxy) = ForwardProxy::microsocks(None).await else {
        return;
    };
    let url = format!("ws://127.0.0.1:{}/", closed_port());
    let error = first_connect_error(through(
        fast_config(&url, TOKEN),
        &proxy.url("socks5", None),
    ))
    .await;
    assert!(
        matches!(
            error,
            ConnectError::ProxyTargetFailed {
                socks_reply: Some(5),
                ..
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_server_the_http_proxy_cannot_reach_is_told_apart_from_the_proxy() {
    let Some(proxy) = ForwardProxy::tinyproxy(None).await else {
        return;
    };
    let url = format!("ws://127.0.0.1:{}/", closed_port());
    let error =
        first_connect_error(through(fast_config(&url, TOKEN), &proxy.url("http", None))).await;
    assert!(
        matches!(
            error,
            ConnectError::ProxyTargetFailed {
                status: Some(_),
                ..
            }
        ),
        "{error:?}"
    );
}
