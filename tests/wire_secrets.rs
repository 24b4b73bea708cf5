//! Each wire's secret goes where its protocol says and nowhere else: the
//! Socket.IO token in the CONNECT payload, the MQTT password in CONNECT,
//! the GraphQL token in `connection_init`. None is in the upgrade's URL
//! or headers, and none is in a setting, a history row, an export or any
//! file the app wrote. The shell on Tauri's mock runtime, commands over
//! IPC, against the real servers from npm.

use holdline_testkit::{
    GraphqlServer, MqttBroker, MqttBrokerConfig, SocketIoConfig, SocketIoServer,
};
use serde_json::{Value, json};
use tauri::async_runtime::block_on;

mod support;
use support::{assert_no_file_holds, call, isolate, start_app, wait_for};

const SIO_TOKEN: &str = "sio-shell-token-8c";
const MQTT_PASSWORD: &str = "mqtt-shell-password-3d";
const GQL_TOKEN: &str = "gql-shell-token-5a";

/// Logs in to `url` with `profile`, subscribes `feed`, and waits until the
/// history holds the login frame that `recorded` accepts.
fn log_in(
    webview: &tauri::WebviewWindow<tauri::test::MockRuntime>,
    url: &str,
    token: &str,
    profile: Value,
    feed: &str,
    recorded: impl Fn(&str) -> bool,
) {
    call(
        webview,
        "login",
        json!({"url": url, "token": token, "remember": false, "profile": profile.to_string()}),
    )
    .unwrap();
    call(webview, "subscribe", json!({"feed": feed})).unwrap();
    wait_for("the recorded login", || {
        let page = call(
            webview,
            "history_query",
            json!({"query": {"kinds": ["sent"]}}),
        )
        .unwrap();
        page["rows"].as_array().is_some_and(|rows| {
            rows.iter()
                .any(|r| r["details"]["frame"].as_str().is_some_and(&recorded))
        })
    });
}

#[test]
fn every_wire_sends_its_secret_where_the_protocol_says_and_records_it_nowhere() {
    let home = tempfile::tempdir().unwrap();
    // One test in this binary, before any thread starts.
    isolate(home.path());
    let export_path = home.path().join("export.jsonl");
    let (_app, webview) = start_app(home.path(), |_| {});

    // Socket.IO: the token in the CONNECT payload.
    let mut sio = block_on(SocketIoServer::start(SocketIoConfig {
        token: Some(SIO_TOKEN.into()),
        ..SocketIoConfig::default()
    }));
    log_in(
        &webview,
        &sio.url(),
        SIO_TOKEN,
        json!({"protocol": "socket.io"}),
        "tick",
        |f| f == r#"40{"token":"<redacted>"}"#,
    );
    wait_for("the CONNECT", || !sio.connections().is_empty());
    let connection = &sio.connections()[0];
    assert_eq!(connection["auth_token"], SIO_TOKEN);
    assert!(connection["headers"].get("authorization").is_none());
    assert!(!connection["url"].as_str().unwrap().contains(SIO_TOKEN));
    // An event, so a session resume point goes through the database.
    block_on(sio.emit(None, "tick", vec![json!({"n": 1})]));

    // MQTT: the password in CONNECT, with the profile's username.
    let mut broker = block_on(MqttBroker::start(MqttBrokerConfig {
        password: Some(MQTT_PASSWORD.into()),
        username: Some("meter".into()),
    }));
    let profile = json!({"protocol": "mqtt", "username": "meter"});
    log_in(
        &webview,
        &broker.url(),
        MQTT_PASSWORD,
        profile,
        "meters/#",
        |f| f.contains("password=<redacted>"),
    );
    wait_for("the subscription at the broker", || {
        !broker.seen("subscribe").is_empty()
    });
    let connect = &broker.seen("connect")[0];
    assert_eq!(connect["username"], "meter");
    assert_eq!(connect["has_password"], true);
    // A message, so the session and a receipt go through the database.
    block_on(broker.publish("meters/a", "42", 1));
    block_on(broker.wait_for_count("ack", 1));

    // GraphQL: the token in connection_init.
    let gql = block_on(GraphqlServer::start(Some(GQL_TOKEN)));
    let profile = json!({"protocol": "graphql-ws",
                         "feeds": {"chat": {"query": "subscription { chat }"}}});
    log_in(&webview, &gql.url(), GQL_TOKEN, profile, "chat", |f| {
        f.contains(r#""payload":{"token":"<redacted>"}"#)
    });
    wait_for("the connection_init", || !gql.seen("connect").is_empty());
    let connect = &gql.seen("connect")[0];
    assert_eq!(connect["token"], GQL_TOKEN);
    assert!(connect["headers"].get("authorization").is_none());

    let exported = call(&webview, "history_export", json!({"query": {}})).unwrap();
    assert!(exported["count"].as_u64().unwrap() > 0);
    assert!(
        std::fs::read_to_string(&export_path)
            .unwrap()
            .contains("<redacted>")
    );
    for secret in [SIO_TOKEN, MQTT_PASSWORD, GQL_TOKEN] {
        assert_no_file_holds(home.path(), secret);
    }
}
