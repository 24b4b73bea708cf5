//! The token of a `socket.io` server travels in the CONNECT payload only:
//! not in the upgrade's URL or headers, and in no setting, history row,
//! exported history or file the app wrote. The shell on Tauri's mock
//! runtime, commands over IPC, against the real server from npm.

use holdline_testkit::{SocketIoConfig, SocketIoServer};
use serde_json::json;

mod support;
use support::{assert_no_file_holds, call, isolate, start_app, wait_for};

const TOKEN: &str = "sio-shell-token-8c";

#[test]
fn the_token_is_sent_in_connect_and_recorded_nowhere() {
    let home = tempfile::tempdir().unwrap();
    // One test in this binary, before any thread starts.
    isolate(home.path());
    let mut server = tauri::async_runtime::block_on(SocketIoServer::start(SocketIoConfig {
        token: Some(TOKEN.into()),
        ..SocketIoConfig::default()
    }));
    let export_path = home.path().join("export.jsonl");
    let (_app, webview) = start_app(home.path(), |_| {});

    call(
        &webview,
        "login",
        json!({"url": server.url(), "token": TOKEN, "remember": false,
               "profile": json!({"protocol": "socket.io"}).to_string()}),
    )
    .unwrap();
    call(&webview, "subscribe", json!({"feed": "tick"})).unwrap();
    wait_for("the CONNECT", || !server.connections().is_empty());
    let connection = &server.connections()[0];
    assert_eq!(connection["auth_token"], TOKEN);
    assert!(connection["headers"].get("authorization").is_none());
    assert!(!connection["url"].as_str().unwrap().contains(TOKEN));
    // An event, so a session resume point is committed to the database.
    tauri::async_runtime::block_on(server.emit(None, "tick", vec![json!({"n": 1})]));
    wait_for("the recorded login", || {
        let page = call(
            &webview,
            "history_query",
            json!({"query": {"kinds": ["sent"]}}),
        )
        .unwrap();
        page["rows"].as_array().is_some_and(|rows| {
            rows.iter()
                .any(|r| r["details"]["frame"] == r#"40{"token":"<redacted>"}"#)
        })
    });

    let exported = call(&webview, "history_export", json!({"query": {}})).unwrap();
    assert!(exported["count"].as_u64().unwrap() > 0);
    let export = std::fs::read_to_string(&export_path).unwrap();
    assert!(export.contains("<redacted>"), "the login is in the export");
    assert_no_file_holds(home.path(), TOKEN);
}
