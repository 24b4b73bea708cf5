//! Running the `holdline-cli` binary in the CLI's end-to-end tests.
#![allow(dead_code)]

use std::process::Stdio;
use std::time::Duration;

use holdline_testkit::within;
use serde_json::Value;
use tokio::process::Command;

pub const WAIT: Duration = Duration::from_secs(30);

/// The proxy variables the CLI reads by default (`--proxy system`).
pub const PROXY_VARIABLES: [&str; 8] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// The binary with `token` in `HOLDLINE_TOKEN`, no `RUST_LOG`, no proxy
/// from the machine running the tests (variables or desktop), pipes.
pub fn cli_with_token(token: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_holdline-cli"));
    for variable in PROXY_VARIABLES {
        command.env_remove(variable);
    }
    // GNOME's proxy setting at its defaults (no proxy), whatever the
    // desktop running the tests has.
    command
        .env("GSETTINGS_BACKEND", "memory")
        .env("HOLDLINE_TOKEN", token)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Writes `profile` to `dir/profile.json` for `--profile`.
pub fn write_profile(dir: &std::path::Path, profile: &Value) -> std::path::PathBuf {
    let path = dir.join("profile.json");
    std::fs::write(&path, profile.to_string()).unwrap();
    path
}

/// `tail URL --profile P --state-dir S` with `token`; callers add the rest.
pub fn tail_with_profile(
    token: &str,
    url: &str,
    profile: &std::path::Path,
    state: &std::path::Path,
) -> Command {
    let mut command = cli_with_token(token);
    command
        .arg("tail")
        .arg(url)
        .arg("--profile")
        .arg(profile)
        .arg("--state-dir")
        .arg(state);
    command
}

pub struct Run {
    pub code: i32,
    pub stdout: Vec<Value>,
    pub stderr: String,
}

/// Runs `command` to its end; stdout is parsed as JSON lines.
pub async fn run(command: &mut Command) -> Run {
    let output = within(WAIT, "holdline-cli to exit", command.output())
        .await
        .unwrap();
    Run::from(output)
}

/// Runs `command` to its end with `input` (then end of file) on stdin.
pub async fn run_with_stdin(command: &mut Command, input: &str) -> Run {
    use tokio::io::AsyncWriteExt;
    let mut child = command.stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let output = within(WAIT, "holdline-cli to exit", child.wait_with_output())
        .await
        .unwrap();
    Run::from(output)
}

impl From<std::process::Output> for Run {
    fn from(output: std::process::Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: json_lines(&output.stdout),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

/// Output of the CLI, one JSON value per line.
pub fn json_lines(output: &[u8]) -> Vec<Value> {
    String::from_utf8(output.to_vec())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

/// Every file under `dir`.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Whether a Secret Service answers; CI sets HOLDLINE_REQUIRE_KEYRING=1 so
/// that a missing one fails instead of skipping.
pub async fn keyring_available() -> bool {
    let probe = run(cli_with_token("unused").args(["logout", "ws://keyring-probe.invalid/"])).await;
    if probe.code == 0 {
        return true;
    }
    assert!(
        std::env::var("HOLDLINE_REQUIRE_KEYRING").is_err(),
        "HOLDLINE_REQUIRE_KEYRING is set but the keyring is unusable: {}",
        probe.stderr
    );
    eprintln!("skipping: no Secret Service here ({})", probe.stderr.trim());
    false
}
