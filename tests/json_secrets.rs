//! The token of a `json` server that logs in with a message (`auth:
//! "payload"`, `{token}` in `on_open`): sent to the server, and in no
//! setting, history row, exported history or file the app wrote. The shell
//! on Tauri's mock runtime, commands over IPC.

use holdline_testkit::{JsonServer, JsonServerConfig};
use serde_json::json;

mod support;
use support::{assert_no_file_holds, call, files_under, isolate, start_app, wait_for};

const TOKEN: &str = "json-shell-token-5e";

#[test]
fn a_payload_token_is_sent_and_recorded_nowhere() {
    let home = tempfile::tempdir().unwrap();
    // One test in this binary, before any thread starts.
    isolate(home.path());
    let server = tauri::async_runtime::block_on(JsonServer::start(JsonServerConfig {
        token: Some(TOKEN.into()),
        ..JsonServerConfig::default()
    }));
    let export_path = home.path().join("export.jsonl");
    let (_app, webview) = start_app(home.path(), |_| {});

    let mut profile = JsonServer::profile(true);
    profile["headers"] = json!({"X-Trace": "holdline"});
    call(
        &webview,
        "login",
        json!({"url": server.url(), "token": TOKEN, "remember": false,
               "profile": profile.to_string()}),
    )
    .unwrap();
    call(&webview, "subscribe", json!({"feed": "px"})).unwrap();
    wait_for("the login and the subscribe", || {
        let received = server.received();
        received.iter().any(|f| f["op"] == "sub")
    });
    assert_eq!(server.received()[0]["token"], TOKEN);
    wait_for("the recorded login", || {
        let page = call(
            &webview,
            "history_query",
            json!({"query": {"kinds": ["sent"]}}),
        )
        .unwrap();
        page["rows"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|r| r["details"]["what"] == "login"))
    });
    let sent = call(
        &webview,
        "history_query",
        json!({"query": {"kinds": ["sent"]}}),
    )
    .unwrap();
    let login = sent["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["details"]["what"] == "login")
        .unwrap()
        .clone();
    assert_eq!(
        login["details"]["frame"],
        r#"{"op":"login","token":"<redacted>"}"#
    );

    let exported = call(&webview, "history_export", json!({"query": {}})).unwrap();
    assert!(exported["count"].as_u64().unwrap() > 0);
    let export = std::fs::read_to_string(&export_path).unwrap();
    assert!(export.contains("<redacted>"), "the login is in the export");
    let settings = files_under(home.path())
        .into_iter()
        .find(|f| f.ends_with("settings.json"))
        .expect("settings written");
    assert!(
        std::fs::read_to_string(settings)
            .unwrap()
            .contains("{token}")
    );
    assert_no_file_holds(home.path(), TOKEN);
}
