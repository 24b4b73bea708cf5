//! The CLI through real forward proxies on loopback (tinyproxy, microsocks):
//! `--proxy URL` with credentials in it, the environment as curl reads it
//! (and `no_proxy`, and `--proxy none` ignoring it), exit 3 for refused
//! proxy credentials, and the proxy password in no output and no file.
#![cfg(target_os = "linux")]

mod support;

use std::path::Path;
use std::time::Duration;

use holdline_server::{RunningServer, ServerConfig};
use holdline_testkit::ForwardProxy;
use serde_json::value::RawValue;
use support::{Run, cli_with_token, run, walk};
use tokio::process::Command;

const TOKEN: &str = "cli-proxy-token-2b9e";
const USER: &str = "cliuser";
const PASSWORD: &str = "cli-proxy-pass-77d1";
const FEED: &str = "proxied";

async fn server_with_events(count: u64) -> RunningServer {
    let server = holdline_server::start(ServerConfig {
        tokens: vec![TOKEN.into()],
        heartbeat: Duration::from_millis(500),
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    for n in 1..=count {
        let data = RawValue::from_string(format!("{{\"n\":{n}}}")).unwrap();
        server.publish(FEED, &data).await.unwrap();
    }
    server
}

/// `tail --from-start --max-events 3` against `server`; the caller adds
/// the proxy arguments or variables.
fn tail_three(server: &RunningServer, state: &Path) -> Command {
    let mut command = cli_with_token(TOKEN);
    command
        .arg("tail")
        .arg(server.url())
        .args([
            "--feed",
            FEED,
            "--from-start",
            "--max-events",
            "3",
            "--state-dir",
        ])
        .arg(state)
        .args(["--backoff-initial-ms", "20", "--backoff-max-ms", "200"]);
    command
}

fn assert_delivered_three(run: &Run) {
    assert_eq!(run.code, 0, "{}", run.stderr);
    let seqs: Vec<_> = run
        .stdout
        .iter()
        .filter_map(|l| l["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
}

fn assert_no_password_in(run: &Run, state: &Path) {
    assert!(!run.stderr.contains(PASSWORD), "{}", run.stderr);
    let stdout = serde_json::to_string(&run.stdout).unwrap();
    assert!(!stdout.contains(PASSWORD));
    for entry in walk(state) {
        let text = String::from_utf8_lossy(&std::fs::read(&entry).unwrap()).into_owned();
        assert!(!text.contains(PASSWORD), "in {}", entry.display());
    }
}

#[tokio::test]
async fn tail_through_an_http_proxy_with_credentials_in_the_url() {
    let Some(proxy) = ForwardProxy::tinyproxy(Some((USER, PASSWORD))).await else {
        return;
    };
    let server = server_with_events(3).await;
    let state = tempfile::tempdir().unwrap();
    let run = run(tail_three(&server, state.path())
        .arg("--proxy")
        .arg(proxy.url("http", Some((USER, PASSWORD)))))
    .await;
    assert_delivered_three(&run);
    assert!(
        run.stderr
            .contains(&format!("through proxy http://{USER}@{}", proxy.addr())),
        "{}",
        run.stderr
    );
    assert_no_password_in(&run, state.path());
}

#[tokio::test]
async fn publish_through_a_socks5h_proxy() {
    let Some(proxy) = ForwardProxy::microsocks(Some((USER, PASSWORD))).await else {
        return;
    };
    let server = server_with_events(0).await;
    let state = tempfile::tempdir().unwrap();
    let run = run(cli_with_token(TOKEN)
        .arg("publish")
        .arg(server.url().replace("127.0.0.1", "localhost"))
        .args([
            "--feed",
            FEED,
            "--data",
            "{\"via\":\"socks\"}",
            "--state-dir",
        ])
        .arg(state.path())
        .arg("--proxy")
        .arg(proxy.url("socks5h", Some((USER, PASSWORD)))))
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(server.head(FEED).await.unwrap().map(|head| head.1), Some(1));
    assert_no_password_in(&run, state.path());
}

#[tokio::test]
async fn refused_proxy_credentials_exit_3() {
    let Some(proxy) = ForwardProxy::microsocks(Some((USER, PASSWORD))).await else {
        return;
    };
    let server = server_with_events(3).await;
    let state = tempfile::tempdir().unwrap();
    let run = run(tail_three(&server, state.path())
        .arg("--proxy")
        .arg(proxy.url("socks5", Some((USER, "wrong-pass-0000")))))
    .await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("proxy"), "{}", run.stderr);
    assert!(!run.stderr.contains("wrong-pass-0000"), "{}", run.stderr);
}

/// Refused credentials from the environment make the proxy's use
/// visible: exit 3. `no_proxy` and `--proxy none` then go direct.
#[tokio::test]
async fn the_environment_names_the_proxy_and_no_proxy_or_none_bypass_it() {
    let Some(proxy) = ForwardProxy::tinyproxy(Some((USER, PASSWORD))).await else {
        return;
    };
    let server = server_with_events(3).await;
    let refusing = proxy.url("http", Some((USER, "wrong-pass-1111")));

    let state = tempfile::tempdir().unwrap();
    let through_env = run(tail_three(&server, state.path()).env("http_proxy", &refusing)).await;
    assert_eq!(through_env.code, 3, "{}", through_env.stderr);

    let state = tempfile::tempdir().unwrap();
    let bypassed = run(tail_three(&server, state.path())
        .env("HTTP_PROXY", &refusing)
        .env("NO_PROXY", "localhost,127.0.0.0/8"))
    .await;
    assert_delivered_three(&bypassed);

    let state = tempfile::tempdir().unwrap();
    let ignored = run(tail_three(&server, state.path())
        .env("http_proxy", &refusing)
        .args(["--proxy", "none"]))
    .await;
    assert_delivered_three(&ignored);
}

#[tokio::test]
async fn a_bad_proxy_url_is_a_usage_error_that_does_not_echo_it() {
    let server = server_with_events(0).await;
    let state = tempfile::tempdir().unwrap();
    let run =
        run(tail_three(&server, state.path())
            .args(["--proxy", "ftp://someone:very-secret@proxy:21"]))
        .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--proxy"), "{}", run.stderr);
    assert!(!run.stderr.contains("very-secret"), "{}", run.stderr);
}

/// GNOME's proxy setting, in a keyfile backend of the test's own: used when
/// the environment names no proxy (refused credentials: exit 3), and its
/// ignore-hosts go direct.
#[tokio::test]
async fn gnomes_proxy_setting_is_used_when_the_environment_names_none() {
    let Some(proxy) = ForwardProxy::tinyproxy(Some((USER, PASSWORD))).await else {
        return;
    };
    let server = server_with_events(3).await;
    let config = tempfile::tempdir().unwrap();
    let gsettings = |args: &[&str]| {
        let done = std::process::Command::new("gsettings")
            .env("GSETTINGS_BACKEND", "keyfile")
            .env("XDG_CONFIG_HOME", config.path())
            .args(["set"])
            .args(args)
            .status()
            .expect("gsettings runs");
        assert!(done.success(), "gsettings set {args:?}");
    };
    gsettings(&["org.gnome.system.proxy", "mode", "manual"]);
    gsettings(&["org.gnome.system.proxy", "ignore-hosts", "[]"]);
    gsettings(&["org.gnome.system.proxy.http", "host", "127.0.0.1"]);
    let port = proxy.addr().port().to_string();
    gsettings(&["org.gnome.system.proxy.http", "port", &port]);
    gsettings(&["org.gnome.system.proxy.http", "use-authentication", "true"]);
    gsettings(&["org.gnome.system.proxy.http", "authentication-user", USER]);
    gsettings(&[
        "org.gnome.system.proxy.http",
        "authentication-password",
        "wrong-gnome-pass",
    ]);
    let with_gnome = |command: &mut Command| {
        command
            .env("GSETTINGS_BACKEND", "keyfile")
            .env("XDG_CONFIG_HOME", config.path());
    };

    let state = tempfile::tempdir().unwrap();
    let mut through = tail_three(&server, state.path());
    with_gnome(&mut through);
    let run_through = run(&mut through).await;
    assert_eq!(run_through.code, 3, "{}", run_through.stderr);
    assert!(!run_through.stderr.contains("wrong-gnome-pass"));

    gsettings(&["org.gnome.system.proxy", "ignore-hosts", "['127.0.0.0/8']"]);
    let state = tempfile::tempdir().unwrap();
    let mut direct = tail_three(&server, state.path());
    with_gnome(&mut direct);
    assert_delivered_three(&run(&mut direct).await);
}
