//! The real desktop app, driven through its UI: tauri-driver in front of
//! WebKitWebDriver, the app in Xvfb, the real Secret Service (the suite runs
//! inside `dbus-run-session` with gnome-keyring; see `scripts/test`).
//!
//! Needs `target/debug/holdline` built, `tauri-driver`, `WebKitWebDriver`
//! and `Xvfb`. Without them the test says so and passes, unless
//! HOLDLINE_REQUIRE_E2E=1 (CI), where a missing piece fails it.

use std::net::SocketAddr;
use std::time::Duration;

use holdline_e2e::{
    DrivenApp, WAIT, assert_no_file_holds, can_drive, files_under, free_port, reference_server,
};
use holdline_testkit::within;
use serde_json::value::RawValue;

const TOKEN: &str = "e2e-token-4d1f9b2c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_subscribe_survive_a_server_restart_and_an_app_restart_and_keep_the_token_in_the_keyring()
 {
    if !can_drive("the desktop end-to-end test") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = reference_server(listen, TOKEN).await;
    let url = format!("ws://{listen}/feeds");
    let app = DrivenApp::launch(home.path(), &[]).await;

    // First launch: the Local demo is there and connects by itself.
    app.text_until("[data-testid=state]", "the Local demo to open", |t| {
        t == "open"
    })
    .await;

    // Log in to the test's server through the add-server form.
    app.log_in(&server, &url, TOKEN, true).await;

    // Subscribe and see events.
    app.type_into("[data-testid=feed-name]", "e2e.feed").await;
    app.click("[data-testid=feed-subscribe]").await;
    within(WAIT, "the subscription", async {
        while server.head("e2e.feed").await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for n in 1..=3 {
        let data = RawValue::from_string(format!("{{\"n\":{n}}}")).unwrap();
        server.publish("e2e.feed", &data).await.unwrap();
    }
    app.css("[data-testid=event-row][data-feed='e2e.feed'][data-seq='3']")
        .await;
    assert_eq!(
        app.count("[data-testid=event-row][data-feed='e2e.feed']")
            .await,
        3
    );

    // Stop and restart the server: the app reconnects and its log says why.
    server.shutdown().await;
    app.text_until("[data-testid=state]", "the reconnect loop", |t| {
        t == "backoff" || t == "connecting"
    })
    .await;
    let server = reference_server(listen, TOKEN).await;
    app.text_until("[data-testid=state]", "state open again", |t| t == "open")
        .await;
    let data = RawValue::from_string("{\"after\":\"restart\"}".into()).unwrap();
    server.publish("e2e.feed", &data).await.unwrap();
    // A restarted in-memory server is a new epoch: a reset marker, then seq 1.
    app.css("[data-testid=reset-row][data-feed='e2e.feed']")
        .await;
    app.click("[data-testid=tab-log]").await;
    let why = app
        .text_until(
            "[data-testid=log-row][data-kind=disconnected]",
            "the disconnect in the log",
            |t| t.contains("1001"),
        )
        .await;
    assert!(why.contains("server shutting down"), "{why}");
    assert!(app.count("[data-testid=log-row][data-kind=attempt]").await >= 2);

    // Reload the window: it rebuilds from the snapshot and misses nothing.
    app.client.refresh().await.unwrap();
    app.text_until("[data-testid=state]", "state after reload", |t| t == "open")
        .await;
    app.css("[data-testid=event-row][data-feed='e2e.feed'][data-seq='3']")
        .await;
    let _ = app.client.clone().close().await;
    drop(app);

    // Quit and start again: the record kept what was delivered, and the
    // Record tab pages back through it and searches it.
    let app = DrivenApp::launch(home.path(), &[]).await;
    app.text_until("[data-testid=state]", "the relaunched app open", |t| {
        t == "open"
    })
    .await;
    app.click("[data-testid=tab-record]").await;
    app.text_until(
        "[data-testid=record-status]",
        "the record after a restart",
        |t| t.contains("recorded deliveries"),
    )
    .await;
    let rows = app.count("[data-testid=record-row][data-kind=event]").await;
    assert_eq!(rows, 4, "three events before the server restart, one after");
    assert_eq!(
        app.count("[data-testid=record-row][data-kind=reset]").await,
        1
    );
    app.type_into("[data-testid=record-conditions]", "/n >= 2")
        .await;
    app.click("[data-testid=record-go]").await;
    app.text_until(
        "[data-testid=record-status]",
        "the search in the record",
        |t| t.contains("2 matches"),
    )
    .await;
    let _ = app.client.clone().close().await;

    // The token is in the keyring, and in no file the app wrote.
    let (feed_url, _) = holdline_engine::FeedUrl::parse(&url).unwrap();
    let stored = holdline_credentials::load(&feed_url).expect("keyring readable");
    assert_eq!(
        stored.map(|t| t.expose().to_owned()).as_deref(),
        Some(TOKEN)
    );
    let files = files_under(home.path());
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "db")),
        "no database written: {files:?}"
    );
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("settings.json")),
        "no settings written: {files:?}"
    );
    assert_no_file_holds(home.path(), TOKEN);
    let _ = holdline_credentials::delete(&feed_url);
    server.shutdown().await;
}
