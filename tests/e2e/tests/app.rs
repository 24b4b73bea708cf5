//! The real desktop app, driven through its UI: tauri-driver in front of
//! WebKitWebDriver, the app in Xvfb, the real Secret Service (the suite runs
//! inside `dbus-run-session` with gnome-keyring; see `scripts/test`).
//!
//! Needs `target/debug/holdline` built, `tauri-driver`, `WebKitWebDriver`
//! and `Xvfb`. Without them the test says so and passes, unless
//! HOLDLINE_REQUIRE_E2E=1 (CI), where a missing piece fails it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use holdline_server::{RunningServer, ServerConfig};
use holdline_testkit::within;
use serde_json::value::RawValue;

const TOKEN: &str = "e2e-token-4d1f9b2c";
const WAIT: Duration = Duration::from_secs(60);

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn app_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("debug/holdline")
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

/// What is missing to run the test, if anything.
fn missing() -> Option<String> {
    if !app_binary().is_file() {
        return Some(format!(
            "{} (cargo build -p holdline)",
            app_binary().display()
        ));
    }
    for program in ["tauri-driver", "WebKitWebDriver", "Xvfb"] {
        if which(program).is_none() {
            return Some(program.into());
        }
    }
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
        return Some("a D-Bus session with a Secret Service".into());
    }
    None
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// Xvfb on a display it picks itself (`-displayfd`).
fn start_xvfb() -> (Killed, String) {
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1400x900x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("Xvfb names its display");
    (Killed(child), format!(":{}", line.trim()))
}

async fn start_server(listen: SocketAddr) -> RunningServer {
    holdline_server::start(ServerConfig {
        listen,
        tokens: vec![TOKEN.into()],
        heartbeat: Duration::from_millis(500),
        ..ServerConfig::default()
    })
    .await
    .expect("reference server starts")
}

async fn css(client: &Client, selector: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
}

/// Waits until the element's text satisfies `pred`; returns the text.
async fn text_until(
    client: &Client,
    selector: &str,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> String {
    within(WAIT, what, async {
        loop {
            if let Ok(element) = client.find(Locator::Css(selector)).await
                && let Ok(text) = element.text().await
                && pred(&text)
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}

async fn count(client: &Client, selector: &str) -> usize {
    client
        .find_all(Locator::Css(selector))
        .await
        .map(|v| v.len())
        .unwrap_or(0)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(files_under(&path));
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_subscribe_survive_a_server_restart_and_keep_the_token_in_the_keyring() {
    if let Some(what) = missing() {
        assert!(
            std::env::var("HOLDLINE_REQUIRE_E2E").is_err(),
            "e2e test cannot run: missing {what}"
        );
        eprintln!("skipping the desktop end-to-end test: missing {what}");
        return;
    }
    // fantoccini's HTTP client takes rustls's process-wide provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let home = tempfile::tempdir().unwrap();
    let (_xvfb, display) = start_xvfb();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = start_server(listen).await;
    let url = format!("ws://{listen}/feeds");

    let driver_port = free_port();
    let native_port = free_port();
    let _driver = Killed(
        Command::new("tauri-driver")
            .args([
                "--port",
                &driver_port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            .env("DISPLAY", &display)
            .env("HOME", home.path())
            .env("XDG_DATA_HOME", home.path().join("data"))
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_CACHE_HOME", home.path().join("cache"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tauri-driver starts"),
    );
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "tauri:options".into(),
        serde_json::json!({ "application": app_binary() }),
    );
    capabilities.insert("browserName".into(), "wry".into());
    let client = within(WAIT, "a WebDriver session", async {
        loop {
            match ClientBuilder::rustls()
                .expect("rustls client")
                .capabilities(capabilities.clone())
                .connect(&format!("http://127.0.0.1:{driver_port}"))
                .await
            {
                Ok(client) => return client,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
    .await;

    // First launch: the Local demo is there and connects by itself.
    text_until(
        &client,
        "[data-testid=state]",
        "the Local demo to open",
        |t| t == "open",
    )
    .await;

    // Log in to the test's server through the add-server form.
    css(&client, "[data-testid=server-add]")
        .await
        .click()
        .await
        .unwrap();
    css(&client, "[data-testid=server-url]")
        .await
        .send_keys(&url)
        .await
        .unwrap();
    css(&client, "[data-testid=server-token]")
        .await
        .send_keys(TOKEN)
        .await
        .unwrap();
    css(&client, "[data-testid=login-submit]")
        .await
        .click()
        .await
        .unwrap();
    within(WAIT, "the connection to the test server", async {
        while server.stats().connections == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    text_until(&client, "[data-testid=state]", "state open", |t| {
        t == "open"
    })
    .await;

    // Subscribe and see events.
    css(&client, "[data-testid=feed-name]")
        .await
        .send_keys("e2e.feed")
        .await
        .unwrap();
    css(&client, "[data-testid=feed-subscribe]")
        .await
        .click()
        .await
        .unwrap();
    within(WAIT, "the subscription", async {
        while server.head("e2e.feed").is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for n in 1..=3 {
        let data = RawValue::from_string(format!("{{\"n\":{n}}}")).unwrap();
        server.publish("e2e.feed", &data).unwrap();
    }
    css(
        &client,
        "[data-testid=event-row][data-feed='e2e.feed'][data-seq='3']",
    )
    .await;
    assert_eq!(
        count(&client, "[data-testid=event-row][data-feed='e2e.feed']").await,
        3
    );

    // Stop and restart the server: the app reconnects and its log says why.
    server.shutdown().await;
    text_until(&client, "[data-testid=state]", "the reconnect loop", |t| {
        t == "backoff" || t == "connecting"
    })
    .await;
    let server = start_server(listen).await;
    text_until(&client, "[data-testid=state]", "state open again", |t| {
        t == "open"
    })
    .await;
    let data = RawValue::from_string("{\"after\":\"restart\"}".into()).unwrap();
    server.publish("e2e.feed", &data).unwrap();
    // A restarted in-memory server is a new epoch: a reset marker, then seq 1.
    css(&client, "[data-testid=reset-row][data-feed='e2e.feed']").await;
    css(&client, "[data-testid=tab-log]")
        .await
        .click()
        .await
        .unwrap();
    let why = text_until(
        &client,
        "[data-testid=log-row][data-kind=disconnected]",
        "the disconnect in the log",
        |t| t.contains("1001"),
    )
    .await;
    assert!(why.contains("server shutting down"), "{why}");
    assert!(count(&client, "[data-testid=log-row][data-kind=attempt]").await >= 2);

    // Reload the window: it rebuilds from the snapshot and misses nothing.
    client.refresh().await.unwrap();
    text_until(&client, "[data-testid=state]", "state after reload", |t| {
        t == "open"
    })
    .await;
    css(
        &client,
        "[data-testid=event-row][data-feed='e2e.feed'][data-seq='3']",
    )
    .await;

    let _ = client.close().await;

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
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(TOKEN),
            "the token leaked into {}",
            file.display()
        );
    }
    let _ = holdline_credentials::delete(&feed_url);
    server.shutdown().await;
}
