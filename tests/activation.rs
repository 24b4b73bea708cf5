//! Activating a server on Tauri's mock runtime, with real settings files:
//! a saved feed the wire refuses is left out (and said so) without failing
//! the activation, and an activation that fails leaves the previous server
//! running and starts nothing; a system trigger reaches the active engine
//! and the history.

use serde_json::{Value, json};

mod support;
use support::{call, isolate, start_app, wait_for};

#[test]
fn refused_saved_feeds_are_left_out_and_a_failed_activation_starts_nothing() {
    let home = tempfile::tempdir().unwrap();
    // One test in this binary, before any thread starts.
    isolate(home.path());
    let server =
        tauri::async_runtime::block_on(holdline_server::start(holdline_server::ServerConfig {
            tokens: vec!["activation-token".into()],
            ..Default::default()
        }))
        .unwrap();
    let settings = json!({
        "servers": [
            {"id": "srv-ref", "name": "Reference", "url": format!("{}/", server.url())},
            {"id": "srv-later", "name": "Later", "url": "ws://127.0.0.1:9/",
             "profile": {"protocol": "graphql-ws", "feeds": {"a": {"query": "subscription {"}}}}
        ],
        "feeds": {"srv-ref": ["ok.feed", "bad name!"]},
        "active_server": "srv-ref"
    });
    let (app, webview) = start_app(home.path(), |data_dir| {
        std::fs::write(data_dir.join("settings.json"), settings.to_string()).unwrap();
    });

    // The saved server is reopened; the refused name is left out, said so.
    let snapshot = call(&webview, "snapshot", json!({})).unwrap();
    assert_eq!(snapshot["active_server"], "srv-ref", "{snapshot}");
    let feeds: Vec<&Value> = snapshot["engine"]["feeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["feed"])
        .collect();
    assert_eq!(feeds, [&json!("ok.feed")]);
    wait_for("the left-out feed in the history", || {
        let page = call(
            &webview,
            "history_query",
            json!({"query": {"kinds": ["subscribe_failed"]}}),
        )
        .unwrap();
        page["rows"].as_array().is_some_and(|rows| {
            rows.iter()
                .any(|r| r["message"].as_str().unwrap().contains("\"bad name!\""))
        })
    });

    // A server whose saved profile does not load (a query that does not
    // parse): refused with the reason, and the previous server goes on as
    // it was.
    let refused = call(&webview, "connect", json!({"id": "srv-later"})).unwrap_err();
    assert_eq!(refused["code"], "invalid_profile", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("feeds.a.query"),
        "{refused}"
    );
    let after = call(&webview, "snapshot", json!({})).unwrap();
    assert_eq!(after["active_server"], "srv-ref");
    assert_eq!(after["engine"]["feeds"][0]["feed"], "ok.feed");
    assert_eq!(after["engine"]["url"], snapshot["engine"]["url"]);

    // A wake goes to the active engine (which probes its connection) and
    // is recorded as the OS said it.
    use tauri::Manager;
    let hub = app
        .state::<std::sync::Arc<holdline_app::Hub>>()
        .inner()
        .clone();
    tauri::async_runtime::block_on(hub.on_trigger(holdline_triggers::SystemTrigger::Wake {
        source: "test".into(),
        detail: "woke after 42 s".into(),
    }));
    wait_for("both wake entries", || {
        let page = call(
            &webview,
            "history_query",
            json!({"query": {"kinds": ["wake"]}}),
        )
        .unwrap();
        let messages: Vec<String> = page["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["message"].as_str().unwrap().to_owned())
            .collect();
        messages
            .iter()
            .any(|m| m == "system wake from test: woke after 42 s")
            && messages.iter().any(|m| m.starts_with("system wake: "))
    });
}
