//! The desktop shell with `tauri::test`'s mock runtime: each command
//! invoked over IPC exactly as the UI invokes it, against a real reference
//! server. One test per behaviour, each in a fresh home of its own
//! (`in_fresh_home`), so a failure names what broke.

use holdline_server::{RunningServer, ServerConfig};
use serde_json::{Value, json};

mod support;
use support::{
    MockApp, MockWebview, assert_no_file_holds, call, in_fresh_home, start_app, wait_for,
};

const TOKEN: &str = "shell-token";
const FEED: &str = "shell.feed";

fn reference_server() -> RunningServer {
    tauri::async_runtime::block_on(holdline_server::start(ServerConfig {
        tokens: vec![TOKEN.into()],
        ..Default::default()
    }))
    .expect("the reference server starts")
}

fn engine_state(webview: &MockWebview) -> Value {
    let snapshot = call(webview, "snapshot", json!({})).expect("a snapshot");
    snapshot["engine"]["state"]["state"].clone()
}

/// The app logged in (session-only token) to a reference server, open.
struct LoggedIn {
    server: RunningServer,
    _app: MockApp,
    webview: MockWebview,
    info: Value,
}

fn logged_in(home: &std::path::Path) -> LoggedIn {
    let server = reference_server();
    let (app, webview) = start_app(home, |_| {});
    let info = call(
        &webview,
        "login",
        json!({"url": server.url(), "token": TOKEN, "remember": false, "name": "Test"}),
    )
    .expect("the login is taken");
    wait_for("the engine open on the new server", || {
        let snapshot = call(&webview, "snapshot", json!({})).unwrap();
        snapshot["engine"]["state"]["state"] == "open" && snapshot["active_server"] == info["id"]
    });
    LoggedIn {
        server,
        _app: app,
        webview,
        info,
    }
}

fn subscribed(webview: &MockWebview) -> Value {
    call(webview, "snapshot", json!({})).unwrap()["subscribed"].clone()
}

#[test]
fn servers_list_starts_with_the_local_demo_active() {
    in_fresh_home("servers_list_starts_with_the_local_demo_active", |home| {
        let (_app, webview) = start_app(home, |_| {});
        let servers = call(&webview, "servers_list", json!({})).unwrap();
        assert_eq!(servers[0]["name"], "Local demo");
        assert_eq!(servers[0]["builtin"], true);
        assert_eq!(servers[0]["active"], true);
    });
}

#[test]
fn login_refuses_a_url_that_is_not_a_websocket_one() {
    in_fresh_home("login_refuses_a_url_that_is_not_a_websocket_one", |home| {
        let (_app, webview) = start_app(home, |_| {});
        let bad_url = call(
            &webview,
            "login",
            json!({"url": "https://x", "token": "t", "remember": false}),
        )
        .unwrap_err();
        assert_eq!(bad_url["code"], "invalid_url");
        // The engine's own words, as they are.
        assert!(
            bad_url["message"].as_str().unwrap().contains("ws://"),
            "{bad_url}"
        );
        let servers = call(&webview, "servers_list", json!({})).unwrap();
        assert_eq!(servers.as_array().map(Vec::len), Some(1), "nothing saved");
    });
}

#[test]
fn login_refuses_an_empty_token() {
    in_fresh_home("login_refuses_an_empty_token", |home| {
        let server = reference_server();
        let (_app, webview) = start_app(home, |_| {});
        let empty = call(
            &webview,
            "login",
            json!({"url": server.url(), "token": "  ", "remember": false}),
        )
        .unwrap_err();
        assert_eq!(empty["code"], "invalid_input");
    });
}

#[test]
fn login_saves_the_server_makes_it_active_and_connects() {
    in_fresh_home(
        "login_saves_the_server_makes_it_active_and_connects",
        |home| {
            let session = logged_in(home);
            assert_eq!(session.info["active"], true);
            assert_eq!(session.info["session_only"], true);
            let servers = call(&session.webview, "servers_list", json!({})).unwrap();
            let names: Vec<_> = servers
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["name"].clone())
                .collect();
            assert_eq!(names, [json!("Local demo"), json!("Test")]);
        },
    );
}

#[test]
fn settings_save_refuses_an_unknown_theme_and_numbers_out_of_range() {
    in_fresh_home(
        "settings_save_refuses_an_unknown_theme_and_numbers_out_of_range",
        |home| {
            let (_app, webview) = start_app(home, |_| {});
            let save = |preferences: Value| {
                call(
                    &webview,
                    "settings_save",
                    json!({ "preferences": preferences }),
                )
                .unwrap_err()
            };
            let theme = save(json!({"theme": "neon"}));
            assert_eq!(theme["code"], "invalid_input");
            let heartbeat = save(json!({"theme": "dark", "heartbeat_ms": 5}));
            assert!(
                heartbeat["message"]
                    .as_str()
                    .unwrap()
                    .contains("heartbeat_ms"),
                "{heartbeat}"
            );
            let alerts = save(json!({"theme": "dark", "alert_after_s": 2}));
            assert!(
                alerts["message"].as_str().unwrap().contains("5..=86400"),
                "{alerts}"
            );
            // Nothing of the refused saves was kept.
            let kept = call(&webview, "settings_get", json!({})).unwrap();
            assert_ne!(kept["theme"], "dark");
        },
    );
}

#[test]
fn settings_save_refuses_start_at_login_without_the_desktop() {
    in_fresh_home(
        "settings_save_refuses_start_at_login_without_the_desktop",
        |home| {
            // The mock runtime has no autostart plugin: refused with its own
            // code rather than silently stored.
            let (_app, webview) = start_app(home, |_| {});
            let refused = call(
                &webview,
                "settings_save",
                json!({"preferences": {"theme": "dark", "start_at_login": true}}),
            )
            .unwrap_err();
            assert_eq!(refused["code"], "desktop", "{refused}");
        },
    );
}

#[test]
fn settings_get_returns_what_settings_save_kept() {
    in_fresh_home("settings_get_returns_what_settings_save_kept", |home| {
        let (_app, webview) = start_app(home, |_| {});
        let preferences = json!({"theme": "dark", "heartbeat_ms": 20000, "alert_after_s": 60});
        let saved = call(
            &webview,
            "settings_save",
            json!({ "preferences": preferences }),
        )
        .unwrap();
        let got = call(&webview, "settings_get", json!({})).unwrap();
        assert_eq!(saved, got);
        assert_eq!(
            (&got["theme"], &got["heartbeat_ms"], &got["alert_after_s"]),
            (&json!("dark"), &json!(20000), &json!(60))
        );
    });
}

#[test]
fn server_save_adds_a_server_and_server_remove_removes_it() {
    in_fresh_home(
        "server_save_adds_a_server_and_server_remove_removes_it",
        |home| {
            let (_app, webview) = start_app(home, |_| {});
            let saved = call(
                &webview,
                "server_save",
                json!({"server": {"name": "Saved", "url": "ws://127.0.0.1:9/feed"}}),
            )
            .unwrap();
            assert_eq!(saved["name"], "Saved");
            assert_eq!(saved["active"], false, "saving does not switch servers");
            let count = || {
                call(&webview, "servers_list", json!({}))
                    .unwrap()
                    .as_array()
                    .map(Vec::len)
            };
            assert_eq!(count(), Some(2));
            call(&webview, "server_remove", json!({"id": saved["id"]})).unwrap();
            assert_eq!(count(), Some(1));
        },
    );
}

#[test]
fn server_remove_refuses_the_local_demo() {
    in_fresh_home("server_remove_refuses_the_local_demo", |home| {
        let (_app, webview) = start_app(home, |_| {});
        let demo = call(&webview, "server_remove", json!({"id": "local-demo"})).unwrap_err();
        assert_eq!(demo["code"], "invalid_input");
    });
}

#[test]
fn connect_refuses_an_unknown_server() {
    in_fresh_home("connect_refuses_an_unknown_server", |home| {
        let (_app, webview) = start_app(home, |_| {});
        let unknown = call(&webview, "connect", json!({"id": "nope"})).unwrap_err();
        assert_eq!(unknown["code"], "unknown_server");
    });
}

#[test]
fn disconnect_stops_the_connection_and_connect_brings_it_back() {
    in_fresh_home(
        "disconnect_stops_the_connection_and_connect_brings_it_back",
        |home| {
            let session = logged_in(home);
            call(&session.webview, "disconnect", json!({})).unwrap();
            wait_for("the engine idle", || {
                engine_state(&session.webview) == "idle"
            });
            call(&session.webview, "connect", json!({})).unwrap();
            wait_for("the engine open again", || {
                engine_state(&session.webview) == "open"
            });
        },
    );
}

#[test]
fn reconnect_now_makes_a_new_connection() {
    in_fresh_home("reconnect_now_makes_a_new_connection", |home| {
        let session = logged_in(home);
        // This server's connections: the Local demo's are in the history too.
        let connections = || {
            call(
                &session.webview,
                "history_query",
                json!({"query": {"kinds": ["connected"], "server": session.info["url"]}}),
            )
            .unwrap()["rows"]
                .as_array()
                .map_or(0, Vec::len)
        };
        wait_for("the first connection recorded", || connections() == 1);
        call(&session.webview, "reconnect_now", json!({})).unwrap();
        wait_for("a second connection recorded", || connections() == 2);
    });
}

#[test]
fn logout_disconnects_and_forgets_the_token() {
    in_fresh_home("logout_disconnects_and_forgets_the_token", |home| {
        let session = logged_in(home);
        call(
            &session.webview,
            "logout",
            json!({"id": session.info["id"]}),
        )
        .unwrap();
        wait_for("the engine idle", || {
            engine_state(&session.webview) == "idle"
        });
        // Without its token the server cannot be connected again.
        call(&session.webview, "connect", json!({})).unwrap();
        wait_for("a login asked for", || {
            engine_state(&session.webview) == "needs_login"
        });
    });
}

#[test]
fn subscribe_refuses_a_feed_name_the_wire_cannot_carry() {
    in_fresh_home(
        "subscribe_refuses_a_feed_name_the_wire_cannot_carry",
        |home| {
            let session = logged_in(home);
            let bad =
                call(&session.webview, "subscribe", json!({"feed": "has space"})).unwrap_err();
            assert_eq!(bad["code"], "invalid_feed");
            assert_eq!(subscribed(&session.webview), json!([]));
        },
    );
}

#[test]
fn subscribe_saves_the_feed_and_unsubscribe_forgets_it() {
    in_fresh_home(
        "subscribe_saves_the_feed_and_unsubscribe_forgets_it",
        |home| {
            let session = logged_in(home);
            call(
                &session.webview,
                "subscribe",
                json!({"feed": FEED, "fromStart": true}),
            )
            .unwrap();
            assert_eq!(subscribed(&session.webview), json!([FEED]));
            call(&session.webview, "unsubscribe", json!({"feed": FEED})).unwrap();
            assert_eq!(subscribed(&session.webview), json!([]));
        },
    );
}

#[test]
fn publish_refuses_data_that_is_not_json() {
    in_fresh_home("publish_refuses_data_that_is_not_json", |home| {
        let session = logged_in(home);
        let not_json = call(
            &session.webview,
            "publish",
            json!({"feed": FEED, "data": "{nope"}),
        )
        .unwrap_err();
        assert_eq!(not_json["code"], "invalid_input");
        let head = tauri::async_runtime::block_on(session.server.head(FEED));
        assert_eq!(head.unwrap(), None, "nothing published");
    });
}

#[test]
fn publish_resolves_with_the_servers_ack() {
    in_fresh_home("publish_resolves_with_the_servers_ack", |home| {
        let session = logged_in(home);
        let ack = call(
            &session.webview,
            "publish",
            json!({"feed": FEED, "data": "{\"n\":1}", "id": "shell-1"}),
        )
        .unwrap();
        assert_eq!(ack, json!({"id": "shell-1", "feed": FEED, "seq": 1}));
        let head = tauri::async_runtime::block_on(session.server.head(FEED));
        assert_eq!(head.unwrap().map(|head| head.1), Some(1));
    });
}

#[test]
fn history_query_returns_only_the_kinds_asked_for() {
    in_fresh_home("history_query_returns_only_the_kinds_asked_for", |home| {
        let session = logged_in(home);
        let query = |kinds: Value| {
            call(
                &session.webview,
                "history_query",
                json!({"query": {"kinds": kinds}}),
            )
            .unwrap()["rows"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        };
        wait_for("a connection recorded", || {
            !query(json!(["connected"])).is_empty()
        });
        let rows = query(json!(["connected"]));
        assert!(
            rows.iter().all(|row| row["kind"] == "connected"),
            "{rows:?}"
        );
        let all = query(json!([]));
        assert!(all.len() > rows.len(), "other kinds were recorded too");
    });
}

#[test]
fn history_export_writes_where_the_save_dialog_says() {
    in_fresh_home("history_export_writes_where_the_save_dialog_says", |home| {
        let _session = logged_in(home);
        // Here the save dialog's answer is the path the test built the app
        // with; a path the webview passes is not one.
        let export_path = home.join("export.jsonl");
        let elsewhere = home.join("chosen-by-the-webview.jsonl");
        let exported = call(
            &_session.webview,
            "history_export",
            json!({"query": {}, "path": elsewhere}),
        )
        .unwrap();
        assert!(exported["count"].as_u64().unwrap() > 0);
        assert_eq!(exported["path"], export_path.display().to_string());
        let lines = std::fs::read_to_string(&export_path).unwrap();
        assert_eq!(
            lines.lines().count() as u64,
            exported["count"].as_u64().unwrap()
        );
        assert!(!elsewhere.exists());
    });
}

#[test]
fn a_session_only_token_is_in_no_file() {
    in_fresh_home("a_session_only_token_is_in_no_file", |home| {
        let session = logged_in(home);
        call(
            &session.webview,
            "publish",
            json!({"feed": FEED, "data": "{\"n\":1}"}),
        )
        .unwrap();
        call(&session.webview, "history_export", json!({"query": {}})).unwrap();
        assert_no_file_holds(home, TOKEN);
    });
}

#[test]
fn login_through_a_proxy_keeps_its_password_out_of_every_file() {
    in_fresh_home(
        "login_through_a_proxy_keeps_its_password_out_of_every_file",
        |home| {
            const PASSWORD: &str = "shell-proxy-pass-4e8b";
            let Some(proxy) = tauri::async_runtime::block_on(
                holdline_testkit::ForwardProxy::tinyproxy(Some(("shelluser", PASSWORD))),
            ) else {
                return;
            };
            let server = reference_server();
            let (_app, webview) = start_app(home, |_| {});
            let proxy_url = proxy.url("http", Some(("shelluser", PASSWORD)));
            let info = call(
                &webview,
                "login",
                json!({"url": server.url(), "token": TOKEN, "remember": false,
                       "connection": {"proxy": proxy_url}}),
            )
            .expect("the login is taken");
            let shown = format!("http://shelluser@{}", proxy.addr());
            assert_eq!(info["connection"]["proxy"], shown.as_str());
            // The attempt says which proxy it went through; the connection
            // opened.
            wait_for("a connection through the proxy recorded", || {
                let recorded = |kind: &str| {
                    call(
                        &webview,
                        "history_query",
                        json!({"query": {"kinds": [kind], "server": info["url"]}}),
                    )
                    .unwrap()["rows"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                };
                let attempts = recorded("attempt");
                !recorded("connected").is_empty()
                    && attempts
                        .iter()
                        .all(|row| row["details"]["proxy"] == shown.as_str())
            });
            call(&webview, "history_export", json!({"query": {}})).unwrap();
            assert_no_file_holds(home, PASSWORD);
            // Removing the server forgets the password with the token.
            call(&webview, "server_remove", json!({"id": info["id"]})).unwrap();
        },
    );
}

/// Our feed server, taking the provider's access tokens.
fn server_behind(provider: &holdline_testkit::OidcProvider) -> RunningServer {
    tauri::async_runtime::block_on(holdline_server::start(ServerConfig {
        oidc: Some(holdline_server::OidcSpec {
            issuer: provider.issuer().to_owned(),
            audience: holdline_testkit::oidc_provider::AUDIENCE.to_owned(),
        }),
        ..Default::default()
    }))
    .expect("the reference server starts")
}

// The system browser the test lays down is a shell script.
#[cfg(unix)]
#[test]
fn login_oidc_in_the_browser_comes_back_to_the_app() {
    in_fresh_home("login_oidc_in_the_browser_comes_back_to_the_app", |home| {
        use holdline_testkit::OidcProvider;
        use holdline_testkit::oidc_provider::PUBLIC_CLIENT;
        let mut provider = tauri::async_runtime::block_on(OidcProvider::start(60));
        let server = server_behind(&provider);
        // The system browser ($BROWSER): writes down where it was sent.
        let opened = home.join("browser-opened");
        let browser = home.join("browser");
        std::fs::write(
            &browser,
            format!(
                "#!/bin/sh\nprintf %s \"$1\" > '{0}.part' && mv '{0}.part' '{0}'\n",
                opened.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &browser,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let (_app, webview) = start_app(home, |_| {});
        let login = std::thread::spawn({
            let webview = webview.clone();
            let args = json!({"url": server.url(), "name": "OIDC",
                              "oidc": {"issuer": provider.issuer(), "client_id": PUBLIC_CLIENT,
                                       "method": "browser"},
                              "onCode": "__CHANNEL__:7"});
            move || call(&webview, "login_oidc", args)
        });
        wait_for("the system browser sent to the provider", || {
            opened.exists()
        });
        let address = std::fs::read_to_string(&opened).unwrap();
        assert!(address.starts_with(provider.issuer()), "{address}");
        assert!(address.contains("code_challenge_method=S256"), "{address}");
        // The person logs in; the provider's redirect comes back to the app.
        let (approved, detail) = tauri::async_runtime::block_on(provider.browse(&address));
        assert!(approved, "the provider's page ended in {detail}");
        let info = login
            .join()
            .expect("the login call returns")
            .expect("the login is taken");
        assert_eq!(info["login"]["method"], "browser", "{info}");
        assert_eq!(provider.tokens_issued("authorization_code"), 1);
        wait_for("the engine open with the browser's token", || {
            engine_state(&webview) == "open"
        });
        let (url, _) = holdline_engine::FeedUrl::parse(&server.url()).unwrap();
        let stored = holdline_credentials::load_login(&url)
            .unwrap()
            .expect("the login is in the keyring");
        call(&webview, "history_export", json!({"query": {}})).unwrap();
        for secret in [&stored.access_token, &stored.refresh_token]
            .into_iter()
            .flatten()
        {
            assert_no_file_holds(home, secret);
        }
        call(&webview, "server_remove", json!({"id": info["id"]})).unwrap();
    });
}

#[test]
fn login_oidc_with_client_credentials_stays_open_across_expiries() {
    in_fresh_home(
        "login_oidc_with_client_credentials_stays_open_across_expiries",
        |home| {
            use holdline_testkit::OidcProvider;
            use holdline_testkit::oidc_provider::SERVICE_CLIENT;
            let provider = tauri::async_runtime::block_on(OidcProvider::start(2));
            let server = server_behind(&provider);
            let (_app, webview) = start_app(home, |_| {});
            let login = |secret: &str| {
                call(
                    &webview,
                    "login_oidc",
                    json!({"url": server.url(), "name": "OIDC",
                           "oidc": {"issuer": provider.issuer(), "client_id": SERVICE_CLIENT,
                                    "method": "client_credentials", "client_secret": secret},
                           "onCode": "__CHANNEL__:7"}),
                )
            };
            let refused = login("not-the-secret").expect_err("a wrong secret is refused");
            assert_eq!(refused["code"], "login_refused", "{refused}");
            assert!(
                refused["message"]
                    .as_str()
                    .unwrap()
                    .contains("invalid_client")
            );
            let info = login(provider.client_secret()).expect("the login is taken");
            assert_eq!(info["login"]["method"], "client_credentials");
            assert_eq!(info["login"]["issuer"], provider.issuer());
            assert_eq!(info["has_token"], true);
            // Tokens live two seconds (one would expire while a loaded CI machine
            // connects): staying open through three of them
            // takes a refresh at each.
            wait_for("three tokens issued and the engine open", || {
                provider.tokens_issued("client_credentials") >= 4
                    && engine_state(&webview) == "open"
            });
            let snapshot = call(&webview, "snapshot", json!({})).unwrap();
            assert!(
                snapshot["engine"]["token_refreshed_at_ms"].is_i64(),
                "{snapshot}"
            );
            call(&webview, "history_export", json!({"query": {}})).unwrap();
            assert_no_file_holds(home, provider.client_secret());
            let (url, _) = holdline_engine::FeedUrl::parse(&server.url()).unwrap();
            let stored = holdline_credentials::load_login(&url)
                .unwrap()
                .expect("the login is in the keyring");
            assert_no_file_holds(home, stored.access_token.as_deref().unwrap());
            call(&webview, "server_remove", json!({"id": info["id"]})).unwrap();
        },
    );
}

#[test]
fn the_record_keeps_what_was_delivered_to_page_search_and_export() {
    in_fresh_home(
        "the_record_keeps_what_was_delivered_to_page_search_and_export",
        |home| {
            let session = logged_in(home);
            call(
                &session.webview,
                "subscribe",
                json!({"feed": FEED, "fromStart": true}),
            )
            .unwrap();
            for n in 1..=30 {
                let sym = if n % 10 == 0 { "HOLD" } else { "ACME" };
                let data = serde_json::value::RawValue::from_string(format!(
                    r#"{{"n":{n},"sym":"{sym}"}}"#
                ))
                .unwrap();
                tauri::async_runtime::block_on(session.server.publish(FEED, &data)).unwrap();
            }
            // Recorded with the cursor: all thirty, newest first.
            wait_for("thirty events in the record", || {
                let page = call(&session.webview, "record_page", json!({"feed": FEED})).unwrap();
                page["items"]
                    .as_array()
                    .is_some_and(|items| items.len() == 30)
            });
            let page = call(
                &session.webview,
                "record_page",
                json!({"feed": FEED, "limit": 10}),
            )
            .unwrap();
            assert_eq!(page["items"][0]["data"]["n"], 30);
            let older = call(
                &session.webview,
                "record_page",
                json!({"feed": FEED, "limit": 10, "beforeId": page["next_before_id"]}),
            )
            .unwrap();
            assert_eq!(older["items"][0]["data"]["n"], 20);
            // Searched by a pointer condition and by text.
            let hold = call(
                &session.webview,
                "record_search",
                json!({"query": {"conditions": ["/sym = \"HOLD\"", "/n > 10"]}}),
            )
            .unwrap();
            let found: Vec<u64> = hold["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["data"]["n"].as_u64().unwrap())
                .collect();
            assert_eq!(found, [30, 20]);
            let refused = call(
                &session.webview,
                "record_search",
                json!({"query": {"regex": "(unclosed"}}),
            )
            .unwrap_err();
            assert_eq!(refused["code"], "invalid_input");
            assert!(
                refused["message"]
                    .as_str()
                    .unwrap()
                    .contains("regular expression")
            );
            // Exported where the save dialog says, as CSV.
            let exported = call(
                &session.webview,
                "record_export",
                json!({"feed": FEED, "format": "csv"}),
            )
            .unwrap();
            assert_eq!(exported["count"], 30);
            let csv = std::fs::read_to_string(home.join("export.jsonl")).unwrap();
            assert_eq!(csv.lines().count(), 31, "a header and thirty rows");
            // A binary payload is kept as it came, shown and searched as the
            // live view reads it: MessagePack's {"n":31,"sym":"BIN"}.
            let msgpack = serde_json::value::RawValue::from_string(
                r#"{"hex":"82a16e1fa373796da342494e"}"#.into(),
            )
            .unwrap();
            tauri::async_runtime::block_on(session.server.publish(FEED, &msgpack)).unwrap();
            wait_for("the binary event in the record", || {
                let page = call(
                    &session.webview,
                    "record_page",
                    json!({"feed": FEED, "limit": 1}),
                )
                .unwrap();
                page["items"][0]["seq"] == 31
            });
            let page = call(
                &session.webview,
                "record_page",
                json!({"feed": FEED, "limit": 1}),
            )
            .unwrap();
            assert_eq!(
                page["items"][0]["data"],
                json!({"n": 31, "sym": "BIN"}),
                "{page}"
            );
            assert_eq!(page["items"][0]["meta"]["decoded"], "msgpack", "{page}");
            let binary = call(
                &session.webview,
                "record_search",
                json!({"query": {"conditions": ["/sym = \"BIN\""], "text": "bin"}}),
            )
            .unwrap();
            assert_eq!(binary["hits"].as_array().map(Vec::len), Some(1), "{binary}");
            assert_eq!(
                binary["hits"][0]["highlights"],
                json!([[15, 18]]),
                "{binary}"
            );
            // The whole database: the Local demo, active first, may have
            // recorded some of its own.
            let usage = call(&session.webview, "record_usage", json!({})).unwrap();
            assert!(usage["items"].as_u64().unwrap() >= 30, "{usage}");
            assert!(usage["file_bytes"].as_u64().unwrap() > 0, "{usage}");
        },
    );
}

#[test]
fn saved_messages_are_kept_sent_with_their_placeholders_exported_and_imported() {
    in_fresh_home(
        "saved_messages_are_kept_sent_with_their_placeholders_exported_and_imported",
        |home| {
            let session = logged_in(home);
            let webview = &session.webview;
            let refused = call(
                webview,
                "saved_save",
                json!({"message": {"name": "leak", "feed": FEED, "data": "{\"t\":\"{token}\"}"}}),
            )
            .unwrap_err();
            assert!(
                refused["message"]
                    .as_str()
                    .unwrap()
                    .contains("{feed} and {id} only")
            );
            let list = call(
                webview,
                "saved_save",
                json!({"message": {"name": " hello ", "feed": FEED,
                                   "data": "{\"text\":\"hi\",\"on\":\"{feed}\",\"ref\":\"{id}\"}"}}),
            )
            .unwrap();
            assert_eq!(list[0]["name"], "hello");
            // Sent: the server stores it with the feed and the publish's id.
            let ack = call(webview, "saved_send", json!({"name": "hello"})).unwrap();
            let seq = ack["seq"].as_u64().expect("acked with a seq");
            call(
                webview,
                "subscribe",
                json!({"feed": FEED, "fromStart": true}),
            )
            .unwrap();
            wait_for("the sent message in the record", || {
                let page = call(webview, "record_page", json!({"feed": FEED})).unwrap();
                page["items"].as_array().is_some_and(|items| {
                    items.iter().any(|item| {
                        item["seq"] == seq
                            && item["data"]["on"] == FEED
                            && item["data"]["ref"] == ack["id"]
                            && item["data"]["text"] == "hi"
                    })
                })
            });
            // Exported to a file, forgotten, imported back; a broken file
            // imports nothing and says which message is broken.
            let exported = call(webview, "saved_export", json!({})).unwrap();
            assert_eq!(exported["count"], 1);
            call(webview, "saved_remove", json!({"name": "hello"})).unwrap();
            assert_eq!(call(webview, "saved_list", json!({})).unwrap(), json!([]));
            let imported = call(webview, "saved_import", json!({})).unwrap();
            assert_eq!(imported[0]["name"], "hello");
            let file = home.join("export.jsonl");
            let mut broken: Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            broken["messages"][0]["data"] = json!("{nope");
            std::fs::write(&file, broken.to_string()).unwrap();
            let refused = call(webview, "saved_import", json!({})).unwrap_err();
            assert!(
                refused["message"].as_str().unwrap().contains("hello"),
                "{refused}"
            );
            assert_eq!(
                call(webview, "saved_list", json!({}))
                    .unwrap()
                    .as_array()
                    .unwrap()
                    .len(),
                1
            );
        },
    );
}
