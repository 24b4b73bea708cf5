//! The shell's commands over IPC on Tauri's mock runtime, as the UI
//! invokes them.
#![allow(dead_code)]

use serde_json::Value;
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{INVOKE_KEY, get_ipc_response};
use tauri::webview::InvokeRequest;

pub fn call(
    webview: &tauri::WebviewWindow<tauri::test::MockRuntime>,
    cmd: &str,
    args: Value,
) -> Result<Value, Value> {
    get_ipc_response(
        webview,
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().unwrap(),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        },
    )
    .map(|body| body.deserialize::<Value>().unwrap())
}

/// Runs `body` with HOME and the XDG directories at a fresh directory of
/// its own. The app finds its files through the environment, which a test
/// process with threads must not change, so the test binary runs itself
/// for this one test (`name`, run alone) with the environment set from
/// outside, and the parent passes when the child did.
pub fn in_fresh_home(name: &str, body: impl FnOnce(&std::path::Path)) {
    const CHILD_HOME: &str = "HOLDLINE_TEST_OWN_HOME";
    if let Some(home) = std::env::var_os(CHILD_HOME) {
        return body(std::path::Path::new(&home));
    }
    let home = tempfile::tempdir().expect("a scratch home");
    let binary = std::env::current_exe().expect("the test binary's path");
    let output = std::process::Command::new(binary)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_HOME, home.path())
        .env("HOME", home.path())
        .env("XDG_DATA_HOME", home.path().join("data"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        // The system browser, for a test that lays it down.
        .env("BROWSER", home.path().join("browser"))
        .output()
        .expect("the test binary runs itself");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // "1 passed" also proves the name matched a test.
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name}, run in its own home:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Points HOME and the XDG directories at `home`. Only sound before any
/// thread starts: each test binary using it has one test (or use
/// `in_fresh_home`).
pub fn isolate(home: &std::path::Path) {
    unsafe {
        std::env::set_var("HOME", home);
        std::env::set_var("XDG_DATA_HOME", home.join("data"));
        std::env::set_var("XDG_CONFIG_HOME", home.join("config"));
    }
}

pub type MockApp = tauri::App<tauri::test::MockRuntime>;
pub type MockWebview = tauri::WebviewWindow<tauri::test::MockRuntime>;

/// The app on the mock runtime with `home` as its world, history exports
/// going to `home/export.jsonl`. `before_setup` gets the app's data
/// directory before setup reads it (to lay down a settings file); setup
/// (database, Local demo, hub) then runs in one loop iteration.
pub fn start_app(
    home: &std::path::Path,
    before_setup: impl FnOnce(&std::path::Path),
) -> (MockApp, MockWebview) {
    use tauri::Manager;
    use tauri::test::{mock_builder, mock_context, noop_assets};
    let mut app = holdline_app::build_exporting_to(mock_builder(), home.join("export.jsonl"))
        .build(mock_context(noop_assets()))
        .expect("the app builds on the mock runtime");
    let data_dir = app.path().app_data_dir().expect("a data directory");
    std::fs::create_dir_all(&data_dir).expect("the data directory is made");
    before_setup(&data_dir);
    // One iteration, not a loop, so the busy-loop warning does not apply.
    #[allow(deprecated)]
    app.run_iteration(|_, _| {});
    let webview = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("a window");
    (app, webview)
}

/// Polls `check` until it holds, failing the test after 20 s.
pub fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Every file under `dir`.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Fails the test when any file under `dir` holds `secret`.
pub fn assert_no_file_holds(dir: &std::path::Path, secret: &str) {
    for file in files_under(dir) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).into_owned();
        assert!(
            !text.contains(secret),
            "the secret is in {}",
            file.display()
        );
    }
}
