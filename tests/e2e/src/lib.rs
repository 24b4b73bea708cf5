//! Driving the real desktop app: Xvfb, tauri-driver (in front of
//! WebKitWebDriver) and a WebDriver session on the app's window.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use holdline_testkit::within;

pub const WAIT: Duration = Duration::from_secs(60);

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The workspace's cargo target directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

pub fn app_binary() -> PathBuf {
    target_dir().join("debug/holdline")
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

/// What is missing to drive the app here, if anything.
pub fn missing() -> Option<String> {
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

/// Whether the app can be driven here. When it cannot, says why and
/// returns false, so the test passes as skipped, unless
/// HOLDLINE_REQUIRE_E2E is set (CI), where a missing piece fails it.
pub fn can_drive(test: &str) -> bool {
    let Some(what) = missing() else {
        return true;
    };
    assert!(
        std::env::var("HOLDLINE_REQUIRE_E2E").is_err(),
        "{test} cannot run: missing {what}"
    );
    eprintln!("skipping {test}: missing {what}");
    false
}

/// The reference server on `listen`, accepting `token`, with a short
/// heartbeat so a cut is noticed quickly. Restarting a test's server on the
/// same address is how the tests make an outage.
pub async fn reference_server(
    listen: std::net::SocketAddr,
    token: &str,
) -> holdline_server::RunningServer {
    holdline_server::start(holdline_server::ServerConfig {
        listen,
        tokens: vec![token.into()],
        heartbeat: Duration::from_millis(500),
        ..holdline_server::ServerConfig::default()
    })
    .await
    .expect("reference server starts")
}

pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// The app under Xvfb behind tauri-driver, with `home` as its whole world
/// (HOME and the XDG directories), and a WebDriver session on its window.
pub struct DrivenApp {
    pub client: Client,
    /// The X display the app runs on.
    pub display: String,
    home: PathBuf,
    _driver: Killed,
    _xvfb: Killed,
}

/// HOME and the XDG directories, all inside `home`.
fn world(home: &Path) -> [(&'static str, PathBuf); 4] {
    [
        ("HOME", home.to_owned()),
        ("XDG_DATA_HOME", home.join("data")),
        ("XDG_CONFIG_HOME", home.join("config")),
        ("XDG_CACHE_HOME", home.join("cache")),
    ]
}

impl DrivenApp {
    pub async fn launch(home: &Path, extra_env: &[(&str, &str)]) -> DrivenApp {
        Self::launch_binary(&app_binary(), home, extra_env).await
    }

    /// Like `launch`, for another build of the app (e.g. one installed
    /// from a bundle).
    pub async fn launch_binary(
        binary: &Path,
        home: &Path,
        extra_env: &[(&str, &str)],
    ) -> DrivenApp {
        // fantoccini's HTTP client takes rustls's process-wide provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut xvfb = Command::new("Xvfb")
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
        BufReader::new(xvfb.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("Xvfb names its display");
        let xvfb = Killed(xvfb);
        let display = format!(":{}", line.trim());
        let driver_port = free_port();
        let native_port = free_port();
        let mut driver = Command::new("tauri-driver");
        driver
            .args([
                "--port",
                &driver_port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            .env("DISPLAY", &display)
            .envs(world(home))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (key, value) in extra_env {
            driver.env(key, value);
        }
        let driver = Killed(driver.spawn().expect("tauri-driver starts"));
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "tauri:options".into(),
            serde_json::json!({ "application": binary }),
        );
        capabilities.insert("browserName".into(), "wry".into());
        let client = within(WAIT, "a WebDriver session", async {
            loop {
                let builder = ClientBuilder::rustls().expect("rustls client");
                match builder
                    .clone()
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
        DrivenApp {
            client,
            display,
            home: home.to_owned(),
            _driver: driver,
            _xvfb: xvfb,
        }
    }

    /// A command that starts `binary` in this app's world (display, HOME,
    /// XDG directories), as a user launching it a second time would.
    pub fn same_world(&self, binary: &Path) -> Command {
        let mut command = Command::new(binary);
        command
            .env("DISPLAY", &self.display)
            .envs(world(&self.home))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    /// Logs in to `server` at `url` through the add-server form (the token
    /// kept in the keyring when `remember`, else for the session) and waits
    /// until the app is connected to it.
    pub async fn log_in(
        &self,
        server: &holdline_server::RunningServer,
        url: &str,
        token: &str,
        remember: bool,
    ) {
        let before = server.stats().connections;
        self.click("[data-testid=server-add]").await;
        self.type_into("[data-testid=server-url]", url).await;
        self.type_into("[data-testid=server-token]", token).await;
        if !remember {
            self.click("#server-remember").await;
        }
        self.click("[data-testid=login-submit]").await;
        // The state may still say "open" for the previous server: wait for
        // this one to see the connection first.
        within(WAIT, "the connection to the test server", async {
            while server.stats().connections <= before {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        self.text_until("[data-testid=state]", "state open", |t| t == "open")
            .await;
    }

    pub async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
    }

    /// Clicks the element, brought to the middle of its scrolling box
    /// first: WebKitWebDriver refuses a click on an element at the edge
    /// of a scrolled panel (the sidebar's long server form).
    pub async fn click(&self, selector: &str) {
        let element = self.css(selector).await;
        if let Ok(handle) = serde_json::to_value(&element) {
            let _ = self
                .client
                .execute(
                    "arguments[0].scrollIntoView({block: 'center'});",
                    vec![handle],
                )
                .await;
        }
        element
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {selector}: {e}"));
    }

    pub async fn type_into(&self, selector: &str, text: &str) {
        self.css(selector)
            .await
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {selector}: {e}"));
    }

    /// Waits until the element's text satisfies `pred`; returns the text.
    pub async fn text_until(
        &self,
        selector: &str,
        what: &str,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        within(WAIT, what, async {
            loop {
                if let Ok(element) = self.client.find(Locator::Css(selector)).await
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

    pub async fn count(&self, selector: &str) -> usize {
        self.client
            .find_all(Locator::Css(selector))
            .await
            .map(|v| v.len())
            .unwrap_or(0)
    }

    /// Waits until at least `n` elements match.
    pub async fn at_least(&self, selector: &str, n: usize) {
        within(WAIT, selector, async {
            while self.count(selector).await < n {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
    }
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
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

/// Fails the test when any file under `dir` holds `secret`.
pub fn assert_no_file_holds(dir: &Path, secret: &str) {
    for file in files_under(dir) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(secret),
            "the secret leaked into {}",
            file.display()
        );
    }
}
