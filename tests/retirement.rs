//! Retiring a server's engine on Tauri's mock runtime: when another server
//! becomes active, the previous one's connection is closed and it makes
//! no attempt of its own afterwards; coming back to it starts exactly one
//! new connection.

use serde_json::json;

mod support;
use support::{call, isolate, start_app, wait_for};

const TOKEN: &str = "retirement-token";

#[test]
fn a_retired_engine_closes_its_connection_and_tries_no_more() {
    let home = tempfile::tempdir().unwrap();
    // One test in this binary, before any thread starts.
    isolate(home.path());
    let start = || {
        tauri::async_runtime::block_on(holdline_server::start(holdline_server::ServerConfig {
            tokens: vec![TOKEN.into()],
            ..Default::default()
        }))
        .unwrap()
    };
    let (first, second) = (start(), start());
    let (_app, webview) = start_app(home.path(), |_| {});
    let log_in = |url: String| {
        call(
            &webview,
            "login",
            json!({"url": format!("{url}/"), "token": TOKEN, "remember": false}),
        )
        .unwrap()
    };

    let first_entry = log_in(first.url());
    wait_for("the first server's connection", || {
        first.stats().connections == 1
    });
    log_in(second.url());
    wait_for("the second server's connection", || {
        second.stats().connections == 1
    });
    wait_for("the first connection closed", || {
        first.stats().connections == 0
    });
    let handshakes = first.stats().handshakes;

    // Back to the first: one new connection, so the retired engine made
    // none in between.
    let id = first_entry["id"]
        .as_str()
        .or_else(|| first_entry["server"]["id"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no server id in {first_entry}"));
    call(&webview, "connect", json!({"id": id})).unwrap();
    wait_for("the first server again", || first.stats().connections == 1);
    wait_for("the second connection closed", || {
        second.stats().connections == 0
    });
    assert_eq!(first.stats().handshakes, handshakes + 1);
    let snapshot = call(&webview, "snapshot", json!({})).unwrap();
    assert_eq!(snapshot["active_server"], id.as_str());
}
