//! Settings across releases, with real files on Tauri's mock runtime: the
//! last release's `settings.json` loads unchanged, one unreadable server
//! entry costs only itself (kept, reported, never dropped by a save), and a
//! refused profile saves nothing.

use serde_json::{Value, json};

mod support;
use support::{call, isolate, start_app};

/// `settings.json` as the release before profiles wrote it, plus one entry
/// a hand edit broke.
fn last_release_file() -> Value {
    json!({
        "servers": [
            {"id": "srv-1", "name": "Prod", "url": "wss://feeds.example.com/ws", "builtin": false},
            {"id": 42, "name": ["broken"], "url": null},
            {"id": "srv-2", "name": "Staging", "url": "ws://127.0.0.1:9/", "builtin": false}
        ],
        "feeds": {"srv-1": ["prices", "news"]},
        "active_server": "local-demo",
        "preferences": {"theme": "dark", "heartbeat_ms": null, "backoff_initial_ms": null,
                        "backoff_max_ms": null, "extra_ca_file": null, "start_at_login": false,
                        "alert_after_s": 60}
    })
}

#[test]
fn last_releases_settings_load_unchanged_and_an_unreadable_entry_is_kept() {
    let home = tempfile::tempdir().unwrap();
    // One test in this binary, before any thread starts.
    isolate(home.path());
    let mut file = std::path::PathBuf::new();
    let (_app, webview) = start_app(home.path(), |data_dir| {
        file = data_dir.join("settings.json");
        std::fs::write(
            &file,
            serde_json::to_vec_pretty(&last_release_file()).unwrap(),
        )
        .unwrap();
    });

    let servers = call(&webview, "servers_list", json!({})).unwrap();
    let names: Vec<&str> = servers
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Local demo", "Prod", "Staging"]);
    assert!(
        servers[1].get("profile").is_none(),
        "no profile: holdline.v1"
    );
    let snapshot = call(&webview, "snapshot", json!({})).unwrap();
    assert_eq!(snapshot["preferences"]["theme"], "dark");
    let unreadable = &snapshot["unreadable_servers"];
    assert_eq!(unreadable.as_array().unwrap().len(), 1, "{unreadable}");
    assert_eq!(unreadable[0]["index"], 1);
    let history = call(
        &webview,
        "history_query",
        json!({"query": {"kinds": ["storage"]}}),
    )
    .unwrap();
    assert!(
        history["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["message"].as_str().unwrap().contains("saved server #2")),
        "{history}"
    );

    // A refused profile: the loader's words with the key, nothing saved.
    let before = std::fs::read(&file).unwrap();
    let refused = call(
        &webview,
        "login",
        json!({"url": "ws://127.0.0.1:9/api", "token": "t", "remember": false,
               "profile": "{\"protocol\": \"json\", \"event\": {\"seq\": \"n\"}}"}),
    )
    .unwrap_err();
    assert_eq!(refused["code"], "invalid_profile");
    assert_eq!(refused["key"], "event.seq");
    assert!(refused["message"].as_str().unwrap().contains("event.seq"));
    assert_eq!(std::fs::read(&file).unwrap(), before, "nothing saved");

    // A save keeps the old entries as they were and the broken one too.
    let saved = call(
        &webview,
        "server_save",
        json!({"server": {"url": "ws://127.0.0.1:9/json", "name": "Mine",
               "profile": "{\"protocol\": \"json\", \"event\": {\"seq\": \"/n\"}}"}}),
    )
    .unwrap();
    assert_eq!(saved["profile"]["protocol"], "json");
    let written: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let entries = written["servers"].as_array().unwrap();
    let old = last_release_file();
    assert!(entries.contains(&old["servers"][0]), "{written}");
    assert!(
        entries.contains(&old["servers"][1]),
        "the broken entry is kept: {written}"
    );
    assert!(entries.contains(&old["servers"][2]), "{written}");
    assert_eq!(entries.len(), 4);
    assert_eq!(written["feeds"]["srv-1"], old["feeds"]["srv-1"]);
    // And it reads back: the new server keeps its profile.
    let servers = call(&webview, "servers_list", json!({})).unwrap();
    let mine = servers
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "Mine")
        .unwrap();
    assert_eq!(
        mine["profile"],
        json!({"protocol": "json", "event": {"seq": "/n"}})
    );
}
