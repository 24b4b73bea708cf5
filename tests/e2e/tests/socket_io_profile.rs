//! The real app with a Socket.IO server: added through the UI's Socket.IO
//! form (the room-per-feed preset), its token in the CONNECT payload, the
//! room joined per feed, events shown under their event name, and a
//! `not_recovered` marker when the server restarted (see `app.rs` for what
//! the test needs).

use holdline_e2e::{DrivenApp, assert_no_file_holds, can_drive};
use holdline_testkit::{FaultProxy, SocketIoConfig, SocketIoServer};
use serde_json::json;

const TOKEN: &str = "e2e-sio-41d";

async fn sio_server() -> SocketIoServer {
    SocketIoServer::start(SocketIoConfig {
        token: Some(TOKEN.into()),
        ..SocketIoConfig::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_io_server_added_through_the_ui_delivers_and_marks_a_lost_session() {
    if !can_drive("the Socket.IO end-to-end test") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let mut first = sio_server().await;
    let proxy = FaultProxy::start(first.addr()).await;
    let app = DrivenApp::launch(home.path(), &[]).await;
    app.text_until("[data-testid=state]", "the Local demo to open", |t| {
        t == "open"
    })
    .await;

    app.click("[data-testid=server-add]").await;
    app.type_into("[data-testid=server-url]", &proxy.url())
        .await;
    app.type_into("[data-testid=server-token]", TOKEN).await;
    app.css("[data-testid=server-protocol] option[value='socket.io']")
        .await
        .click()
        .await
        .expect("choose socket.io");
    // The Socket.IO form: the token goes in the payload by default.
    app.text_until(
        "#profile-fields [data-key=auth] option:checked",
        "the payload choice",
        |t| t == "payload",
    )
    .await;
    app.click("[data-testid=login-submit]").await;
    app.css("#login-form[hidden]").await;
    app.text_until("[data-testid=state]", "state open", |t| t == "open")
        .await;
    let connection = first.wait_for_connections(1).await.remove(0);
    assert_eq!(connection["auth_token"], TOKEN);

    app.type_into("[data-testid=feed-name]", "tick").await;
    app.click("[data-testid=feed-subscribe]").await;
    let join = first.wait_for_received(1).await.remove(0);
    assert_eq!(
        join["args"],
        json!(["tick"]),
        "the preset joins a room per feed"
    );
    first
        .emit(Some("tick"), "tick", vec![json!({"px": 101.5})])
        .await;
    app.css("[data-testid=event-row][data-feed=tick][data-origin=tick]")
        .await;

    // The server restarts: its sessions are gone, and the view says so.
    first.kill().await;
    let mut second = sio_server().await;
    proxy.set_upstream(second.addr());
    proxy.cut_all();
    second.wait_for_received(1).await;
    second
        .emit(Some("tick"), "tick", vec![json!({"px": 102.0})])
        .await;
    app.css("[data-testid=discontinuity-row][data-feed=tick][data-reason=not_recovered]")
        .await;
    app.at_least("[data-testid=event-row][data-feed=tick]", 2)
        .await;
    if let Ok(dir) = std::env::var("HOLDLINE_SCREENSHOT_DIR") {
        let png = app.client.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join("socket-io-live.png"), png).unwrap();
    }
    assert_no_file_holds(home.path(), TOKEN);
    let _ = app.client.clone().close().await;
}
