//! The password of an MQTT broker travels in CONNECT only and is written
//! nowhere: no setting, history row, export or file the app wrote. The
//! shell on Tauri's mock runtime, commands over IPC, against a real broker
//! from npm.

use holdline_testkit::{MqttBroker, MqttBrokerConfig};
use serde_json::json;

mod support;
use support::{assert_no_file_holds, call, isolate, start_app, wait_for};

const PASSWORD: &str = "mqtt-shell-password-3d";

#[test]
fn the_password_is_sent_in_connect_and_recorded_nowhere() {
    let home = tempfile::tempdir().unwrap();
    // One test in this binary, before any thread starts.
    isolate(home.path());
    let mut broker = tauri::async_runtime::block_on(MqttBroker::start(MqttBrokerConfig {
        password: Some(PASSWORD.into()),
        username: Some("meter".into()),
    }));
    let export_path = home.path().join("export.jsonl");
    let (_app, webview) = start_app(home.path(), |_| {});

    let profile = json!({"protocol": "mqtt", "username": "meter"});
    call(
        &webview,
        "login",
        json!({"url": broker.url(), "token": PASSWORD, "remember": false,
               "profile": profile.to_string()}),
    )
    .unwrap();
    call(&webview, "subscribe", json!({"feed": "meters/#"})).unwrap();
    wait_for("the subscription at the broker", || {
        !broker.seen("subscribe").is_empty()
    });
    let connect = &broker.seen("connect")[0];
    assert_eq!(connect["username"], "meter");
    assert_eq!(connect["has_password"], true);
    // A message, so the session and a receipt go through the database.
    tauri::async_runtime::block_on(broker.publish("meters/a", "42", 1));
    tauri::async_runtime::block_on(broker.wait_for_count("ack", 1));
    wait_for("the recorded login", || {
        let page = call(
            &webview,
            "history_query",
            json!({"query": {"kinds": ["sent"]}}),
        )
        .unwrap();
        page["rows"].as_array().is_some_and(|rows| {
            rows.iter().any(|r| {
                r["details"]["frame"]
                    .as_str()
                    .is_some_and(|f| f.contains("password=<redacted>"))
            })
        })
    });
    let exported = call(&webview, "history_export", json!({"query": {}})).unwrap();
    assert!(exported["count"].as_u64().unwrap() > 0);
    assert!(
        std::fs::read_to_string(&export_path)
            .unwrap()
            .contains("<redacted>")
    );
    assert_no_file_holds(home.path(), PASSWORD);
}
