//! The real app with a company's own JSON API: a server added through the
//! UI with its profile, events put in order, a refused profile shown at its
//! field, and a discontinuity marker after a reconnect where the API has
//! no sequence numbers (see `app.rs` for what the test needs).

use std::time::Duration;

use holdline_e2e::{DrivenApp, WAIT, assert_no_file_holds, can_drive, files_under};
use holdline_testkit::{JsonServer, JsonServerConfig, within};
use serde_json::json;

const TOKEN: &str = "e2e-json-7c21";

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    within(WAIT, what, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// Fills the add-server form for a `json` server with `profile` (typed
/// into the profile box as a user would paste it) and submits it.
async fn add_json_server(app: &DrivenApp, url: &str, profile: &str) {
    app.click("[data-testid=server-add]").await;
    app.type_into("[data-testid=server-url]", url).await;
    app.type_into("[data-testid=server-token]", TOKEN).await;
    app.css("[data-testid=server-protocol] option[value=json]")
        .await
        .click()
        .await
        .expect("choose json");
    let box_ = app.css("[data-testid=server-profile]").await;
    box_.clear().await.expect("clear the profile box");
    box_.send_keys(profile).await.expect("type the profile");
    app.click("[data-testid=login-submit]").await;
}

/// Waits until the app shows `server` as the active server with the form
/// closed: the layout no longer moves under the next click, and the state
/// shown is this server's, not the previous one's.
async fn wait_active(app: &DrivenApp, server: &JsonServer) {
    app.css("#login-form[hidden]").await;
    app.css(&format!(".server.active .name[title='{}']", server.url()))
        .await;
    app.text_until("[data-testid=state]", "state open", |t| t == "open")
        .await;
}

async fn subscribe(app: &DrivenApp, server: &JsonServer, feed: &str) {
    let before = subs(server);
    app.type_into("[data-testid=feed-name]", feed).await;
    app.click("[data-testid=feed-subscribe]").await;
    wait_until("the subscribe on the server", || subs(server) > before).await;
}

fn subs(server: &JsonServer) -> usize {
    server
        .received()
        .iter()
        .filter(|f| f["op"] == "sub")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_server_added_through_the_ui_delivers_in_order_and_marks_discontinuities() {
    if !can_drive("the JSON profile end-to-end test") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let numbered = JsonServer::start(JsonServerConfig {
        token: Some(TOKEN.into()),
        ..JsonServerConfig::default()
    })
    .await;
    let app = DrivenApp::launch(home.path(), &[]).await;
    app.text_until("[data-testid=state]", "the Local demo to open", |t| {
        t == "open"
    })
    .await;

    // A profile the loader refuses: its message at the form, nothing dialed.
    let mut bad = JsonServer::profile(true);
    bad["event"]["seq"] = json!("n");
    add_json_server(&app, &numbered.url(), &bad.to_string()).await;
    app.text_until("[data-testid=profile-error]", "the profile error", |t| {
        t.contains("event.seq")
    })
    .await;
    assert_eq!(numbered.connections(), 0, "a refused profile dials nothing");

    // The good profile: logs in, subscribes, puts events in order.
    let box_ = app.css("[data-testid=server-profile]").await;
    box_.clear().await.unwrap();
    box_.send_keys(&JsonServer::profile(true).to_string())
        .await
        .unwrap();
    app.click("[data-testid=login-submit]").await;
    wait_until("the login", || {
        numbered.received().iter().any(|f| f["op"] == "login")
    })
    .await;
    wait_active(&app, &numbered).await;
    subscribe(&app, &numbered, "px").await;
    let run = numbered.run_of("px");
    // Live, no cursor: the feed starts at the first event it receives (1);
    // 3 waits for 2, the repeated 3 is dropped.
    for n in [1, 3, 2, 3] {
        numbered.send_raw(
            &json!({"op": "ev", "ch": "px", "n": n, "run": run, "d": {"n": n}}).to_string(),
        );
    }
    app.css("[data-testid=event-row][data-feed=px][data-seq='3']")
        .await;
    let shown = app
        .client
        .execute(
            "return [...document.querySelectorAll('[data-testid=event-row][data-feed=px]')].map(n => n.dataset.seq)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        shown,
        json!(["3", "2", "1"]),
        "in order, once each, newest first"
    );

    // An API without sequence numbers: a reconnect is a discontinuity.
    let plain = JsonServer::start(JsonServerConfig {
        token: Some(TOKEN.into()),
        numbered: false,
        ..JsonServerConfig::default()
    })
    .await;
    add_json_server(&app, &plain.url(), &JsonServer::profile(false).to_string()).await;
    wait_until("the login", || {
        plain.received().iter().any(|f| f["op"] == "login")
    })
    .await;
    wait_active(&app, &plain).await;
    subscribe(&app, &plain, "chat").await;
    plain.publish("chat", json!("before"));
    app.css("[data-testid=event-row][data-feed=chat]").await;
    let before = subs(&plain);
    plain.close_all(1012, "restarting");
    wait_until("the re-subscribe", || subs(&plain) > before).await;
    plain.publish("chat", json!("after"));
    app.css("[data-testid=discontinuity-row][data-feed=chat][data-reason=reconnected]")
        .await;
    app.at_least("[data-testid=event-row][data-feed=chat]", 2)
        .await;
    let order = app
        .client
        .execute(
            "return [...document.querySelectorAll('#live-list .row[data-feed=chat]')].map(n => n.dataset.testid + ':' + (n.dataset.seq ?? ''))",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        order,
        json!(["event-row:", "discontinuity-row:", "event-row:"]),
        "the marker stands between the two connections' events"
    );
    // The log view says what was re-sent and that continuity was lost.
    app.click("#tab-log").await;
    app.text_until("#log-list", "the reconnect entry", |t| {
        t.contains("continuity lost for chat")
    })
    .await;

    // The login frame went out with the token and was recorded without it:
    // the settings hold `{token}`, the history `<redacted>`, no file the
    // app wrote holds the token itself.
    assert_eq!(plain.received()[0]["token"], TOKEN);
    let files = files_under(home.path());
    let settings = files
        .iter()
        .find(|f| f.ends_with("settings.json"))
        .expect("settings written");
    assert!(
        std::fs::read_to_string(settings)
            .unwrap()
            .contains("{token}")
    );
    assert_no_file_holds(home.path(), TOKEN);
}
