//! Protocol section 7 end to end: the real server closes with each code and
//! the engine does what the table says.

mod support;

use holdline_engine::{Cause, ConnectError, ConnectionState};
use holdline_server::Rejection;
use support::*;

async fn state_after_close(code: u16, reason: &str) -> ConnectionState {
    let server = server(10, 250).await;
    let (engine, _deliveries) = open_engine(fast_config(&server.url(), TOKEN));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    wait_state(&mut events, "open", is_open).await;
    server.close_all(code, reason);
    let state = wait_state(&mut events, "the reaction", |s| {
        matches!(s.name(), "backoff" | "needs_login" | "stopped")
    })
    .await;
    engine.shutdown().await;
    server.shutdown().await;
    state
}

fn backoff_delay(state: &ConnectionState) -> u64 {
    match state {
        ConnectionState::Backoff { delay_ms, .. } => *delay_ms,
        other => panic!("expected backoff, got {other:?}"),
    }
}

#[tokio::test]
async fn terminal_codes_stop_and_show_the_reason() {
    for code in [1008, 4003, 4500, 4999] {
        let state = state_after_close(code, "go away for good").await;
        let ConnectionState::Stopped { reason } = state else {
            panic!("{code}: {state:?}")
        };
        assert!(
            reason.contains(&code.to_string()) && reason.contains("go away for good"),
            "{reason}"
        );
    }
}

#[tokio::test]
async fn token_expired_needs_a_new_login() {
    let state = state_after_close(4001, "token revoked").await;
    assert_eq!(state.name(), "needs_login", "{state:?}");
}

#[tokio::test]
async fn transient_codes_back_off_within_the_cap() {
    for code in [1000, 1001, 1009, 1011, 1012, 4000, 4499] {
        let state = state_after_close(code, "").await;
        assert!(backoff_delay(&state) <= 200, "{code}: {state:?}");
        let ConnectionState::Backoff { cause, .. } = state else {
            unreachable!()
        };
        assert_eq!(
            cause,
            Cause::Closed {
                code,
                reason: String::new()
            }
        );
    }
}

#[tokio::test]
async fn try_again_later_waits_at_least_five_seconds() {
    let state = state_after_close(1013, "busy").await;
    assert!(backoff_delay(&state) >= 5000, "{state:?}");
}

#[tokio::test]
async fn slow_consumer_reconnects_at_once() {
    let state = state_after_close(4008, "slow consumer").await;
    assert_eq!(backoff_delay(&state), 0);
}

#[tokio::test]
async fn rate_limited_waits_the_given_time_even_past_the_cap() {
    let state = state_after_close(4029, "retry_after_ms=45000").await;
    assert_eq!(backoff_delay(&state), 45_000);
    let state = state_after_close(4029, "no hint").await;
    assert!(backoff_delay(&state) <= 200);
}

#[tokio::test]
async fn retry_after_on_503_is_honoured_and_403_stops() {
    let server = server(10, 250).await;
    server.reject_handshakes(Some(Rejection {
        status: 503,
        retry_after_s: Some(7),
    }));
    let (engine, _deliveries) = open_engine(fast_config(&server.url(), TOKEN));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let state = wait_state(&mut events, "backoff", |s| s.name() == "backoff").await;
    let ConnectionState::Backoff {
        delay_ms, cause, ..
    } = &state
    else {
        unreachable!()
    };
    assert!(*delay_ms >= 7000, "{state:?}");
    assert_eq!(
        *cause,
        Cause::Connect {
            error: ConnectError::HttpStatus {
                status: 503,
                retry_after_s: Some(7),
                body: "try again later".into()
            }
        }
    );
    server.reject_handshakes(Some(Rejection {
        status: 403,
        retry_after_s: None,
    }));
    engine.reconnect_now().await.unwrap();
    let state = wait_state(&mut events, "stopped", |s| s.name() == "stopped").await;
    assert!(
        matches!(state, ConnectionState::Stopped { ref reason } if reason.contains("403")),
        "{state:?}"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn a_refused_port_is_named_as_such() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let (engine, _deliveries) = open_engine(fast_config(&format!("ws://{addr}"), TOKEN));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let state = wait_state(&mut events, "backoff", |s| s.name() == "backoff").await;
    let ConnectionState::Backoff { cause, attempt, .. } = state else {
        unreachable!()
    };
    assert_eq!(attempt, 1);
    assert_eq!(
        cause,
        Cause::Connect {
            error: ConnectError::Refused {
                addr: addr.to_string()
            }
        }
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn an_unresolvable_host_is_a_dns_error() {
    let (engine, _deliveries) = open_engine(fast_config("ws://no-such-host.invalid:9/", TOKEN));
    let mut events = engine.events();
    engine.connect().await.unwrap();
    let state = wait_state(&mut events, "backoff", |s| s.name() == "backoff").await;
    let ConnectionState::Backoff { cause, .. } = state else {
        unreachable!()
    };
    assert!(
        matches!(cause, Cause::Connect { error: ConnectError::Dns { ref host, .. } } if host == "no-such-host.invalid"),
        "{cause:?}"
    );
    engine.shutdown().await;
}
