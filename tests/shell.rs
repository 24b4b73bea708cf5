//! The desktop shell with `tauri::test`'s mock runtime: commands invoked
//! over IPC exactly as the UI invokes them, against a real reference server.

use serde_json::json;

mod support;
use support::{assert_no_file_holds, call, isolate, start_app, wait_for};

#[test]
fn commands_validate_input_and_drive_the_engine() {
    let home = tempfile::tempdir().unwrap();
    // One test in this binary, before any thread starts.
    isolate(home.path());
    let server =
        tauri::async_runtime::block_on(holdline_server::start(holdline_server::ServerConfig {
            tokens: vec!["shell-token".into()],
            ..Default::default()
        }))
        .unwrap();
    let export_path = home.path().join("export.jsonl");
    let (_app, webview) = start_app(home.path(), |_| {});

    // Out of the box: the Local demo, first and active.
    let servers = call(&webview, "servers_list", json!({})).unwrap();
    assert_eq!(servers[0]["name"], "Local demo");
    assert_eq!(servers[0]["builtin"], true);
    assert_eq!(servers[0]["active"], true);

    // Bad input: clear errors with stable codes, the engine's text as is.
    let bad_url = call(
        &webview,
        "login",
        json!({"url": "https://x", "token": "t", "remember": false}),
    )
    .unwrap_err();
    assert_eq!(bad_url["code"], "invalid_url");
    assert!(
        bad_url["message"].as_str().unwrap().contains("ws://"),
        "{bad_url}"
    );
    let empty = call(
        &webview,
        "login",
        json!({"url": server.url(), "token": "  ", "remember": false}),
    )
    .unwrap_err();
    assert_eq!(empty["code"], "invalid_input");
    let theme = call(
        &webview,
        "settings_save",
        json!({"preferences": {"theme": "neon"}}),
    )
    .unwrap_err();
    assert_eq!(theme["code"], "invalid_input");
    let range = call(
        &webview,
        "settings_save",
        json!({"preferences": {"theme": "dark", "heartbeat_ms": 5}}),
    )
    .unwrap_err();
    assert!(
        range["message"].as_str().unwrap().contains("heartbeat_ms"),
        "{range}"
    );
    let alerts = call(
        &webview,
        "settings_save",
        json!({"preferences": {"theme": "dark", "alert_after_s": 2}}),
    )
    .unwrap_err();
    assert!(
        alerts["message"].as_str().unwrap().contains("5..=86400"),
        "{alerts}"
    );
    // Without the desktop plugins (the mock runtime) start at login is
    // refused with its own code rather than silently stored.
    let login_start = call(
        &webview,
        "settings_save",
        json!({"preferences": {"theme": "dark", "start_at_login": true}}),
    )
    .unwrap_err();
    assert_eq!(login_start["code"], "desktop", "{login_start}");

    // Log in (session-only token) to the test server; it becomes active.
    let info = call(
        &webview,
        "login",
        json!({"url": server.url(), "token": "shell-token", "remember": false, "name": "Test"}),
    )
    .unwrap();
    assert_eq!(
        (info["active"].as_bool(), info["session_only"].as_bool()),
        (Some(true), Some(true))
    );
    wait_for("state open", || {
        let snapshot = call(&webview, "snapshot", json!({})).unwrap();
        snapshot["engine"]["state"]["state"] == "open" && snapshot["active_server"] == info["id"]
    });

    let bad_feed = call(&webview, "subscribe", json!({"feed": "has space"})).unwrap_err();
    assert_eq!(bad_feed["code"], "invalid_feed");
    call(
        &webview,
        "subscribe",
        json!({"feed": "shell.feed", "fromStart": true}),
    )
    .unwrap();
    let not_json = call(
        &webview,
        "publish",
        json!({"feed": "shell.feed", "data": "{nope"}),
    )
    .unwrap_err();
    assert_eq!(not_json["code"], "invalid_input");
    let ack = call(
        &webview,
        "publish",
        json!({"feed": "shell.feed", "data": "{\"n\":1}", "id": "shell-1"}),
    )
    .unwrap();
    assert_eq!(
        ack,
        json!({"id": "shell-1", "feed": "shell.feed", "seq": 1})
    );
    assert_eq!(server.head("shell.feed").unwrap().1, 1);

    // The subscription is saved and the history is queryable, filtered.
    let snapshot = call(&webview, "snapshot", json!({})).unwrap();
    assert_eq!(snapshot["subscribed"], json!(["shell.feed"]));
    let page = call(
        &webview,
        "history_query",
        json!({"query": {"kinds": ["connected"], "limit": 5}}),
    )
    .unwrap();
    wait_for("recorded history", || {
        let page = call(
            &webview,
            "history_query",
            json!({"query": {"kinds": ["connected"]}}),
        )
        .unwrap();
        page["rows"].as_array().is_some_and(|rows| !rows.is_empty())
    });
    assert!(
        page["rows"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["kind"] == "connected")
    );
    // The export goes where the save dialog says (here: the path the test
    // built the app with); a path the webview passes is not one.
    let elsewhere = home.path().join("chosen-by-the-webview.jsonl");
    let exported = call(
        &webview,
        "history_export",
        json!({"query": {}, "path": elsewhere}),
    )
    .unwrap();
    assert!(exported["count"].as_u64().unwrap() > 0);
    assert_eq!(exported["path"], export_path.display().to_string());
    assert!(export_path.exists());
    assert!(!elsewhere.exists());

    // Unknown servers and removing the demo are refused.
    let unknown = call(&webview, "connect", json!({"id": "nope"})).unwrap_err();
    assert_eq!(unknown["code"], "unknown_server");
    let demo = call(&webview, "server_remove", json!({"id": "local-demo"})).unwrap_err();
    assert_eq!(demo["code"], "invalid_input");

    // The token is in no file the app wrote.
    assert_no_file_holds(home.path(), "shell-token");
}
