//! `holdline-cli` on the `socket.io` wire against the real server from
//! npm: an app restart inside the server's recovery window recovers, which
//! the official client cannot do (its session lives in memory only).
#![cfg(unix)]

mod support;

use std::path::Path;

use holdline_testkit::{SocketIoConfig, SocketIoServer};
use serde_json::{Value, json};
use support::{cli_with_token, run, tail_with_profile, write_profile};

const SECRET: &str = "cli-sio-secret-3b";

fn tail(url: &str, profile: &Path, state: &Path, events: u64) -> tokio::process::Command {
    let mut command = tail_with_profile(SECRET, url, profile, state);
    command.args(["--feed", "tick", "--max-events", &events.to_string()]);
    command
}

fn tick(n: u64) -> Value {
    json!({"kind": "event", "feed": "tick", "seq": null, "epoch": null,
           "data": {"n": n}, "meta": {"event": "tick"}})
}

#[tokio::test]
async fn a_second_run_on_the_same_state_recovers_what_was_emitted_between_runs() {
    let mut server = SocketIoServer::start(SocketIoConfig {
        token: Some(SECRET.into()),
        ..SocketIoConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path(), &json!({"protocol": "socket.io"}));

    let first = tail(&server.url(), &profile, dir.path(), 3)
        .spawn()
        .unwrap();
    server.wait_for_connections(1).await;
    for n in 1..=3 {
        server.emit(None, "tick", vec![json!({"n": n})]).await;
    }
    let output = first.wait_with_output().await.unwrap();
    assert_eq!(output.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, (1..=3).map(tick).collect::<Vec<_>>());

    // Closing the transport without a DISCONNECT packet leaves the session
    // recoverable; what is emitted now waits for the next run.
    server
        .wait_for("the transport to close", |l| {
            l["type"] == "disconnect" && l["reason"] == "transport close"
        })
        .await;
    for n in 4..=6 {
        server.emit(None, "tick", vec![json!({"n": n})]).await;
    }
    let second = run(&mut tail(&server.url(), &profile, dir.path(), 3)).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        second.stdout,
        (4..=6).map(tick).collect::<Vec<_>>(),
        "recovered: the missed events, no marker"
    );
    let connections = server.connections();
    assert_eq!(connections[1]["recovered"], true, "{connections:?}");
    let state = std::fs::read_to_string(dir.path().join("cursors.json")).unwrap();
    assert!(state.contains("\"sessions\""), "{state}");
    assert!(!state.contains(SECRET));
}

#[tokio::test]
async fn publish_prints_the_ack_with_a_null_seq_and_a_bad_token_exits_3() {
    let server = SocketIoServer::start(SocketIoConfig {
        token: Some(SECRET.into()),
        ..SocketIoConfig::default()
    })
    .await;
    let acked = run(cli_with_token(SECRET).args([
        "publish",
        &server.url(),
        "--protocol",
        "socket.io",
        "--feed",
        "chat",
        "--data",
        r#"{"x":1}"#,
        "--id",
        "msg-1",
    ]))
    .await;
    assert_eq!(acked.code, 0, "{}", acked.stderr);
    assert_eq!(
        acked.stdout,
        [json!({"kind": "ack", "feed": "chat", "seq": null, "id": "msg-1"})]
    );
    let received = server.wait_for_received(1).await;
    assert_eq!(received[0]["args"], json!([{"x": 1}]));

    let refused = run(cli_with_token("wrong").args([
        "tail",
        &server.url(),
        "--protocol",
        "socket.io",
        "--feed",
        "tick",
    ]))
    .await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("unauthorized"),
        "{}",
        refused.stderr
    );
}
