//! `login --oidc` against a real OpenID provider (npm `oidc-provider`, which
//! plays the user's browser), and `tail` and `publish` refreshing its short
//! tokens against our server, with the login in a real keyring.
#![cfg(unix)]

mod support;

use std::time::Duration;

use holdline_engine::FeedUrl;
use holdline_server::{OidcSpec, RunningServer, ServerConfig};
use holdline_testkit::oidc_provider::{AUDIENCE, PUBLIC_CLIENT, SERVICE_CLIENT};
use holdline_testkit::{OidcProvider, within};
use serde_json::value::RawValue;
use support::{Run, WAIT, cli_with_token, keyring_available, run, run_with_stdin, walk};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

async fn feed_server(provider: &OidcProvider) -> RunningServer {
    holdline_server::start(ServerConfig {
        oidc: Some(OidcSpec {
            issuer: provider.issuer().to_owned(),
            audience: AUDIENCE.to_owned(),
        }),
        heartbeat: Duration::from_millis(250),
        ..ServerConfig::default()
    })
    .await
    .unwrap()
}

/// The CLI with no token of its own: what it uses comes from the keyring.
fn cli() -> Command {
    let mut command = cli_with_token("");
    command.env_remove("HOLDLINE_TOKEN");
    command
}

fn login_command(server: &RunningServer, provider: &OidcProvider, client: &str) -> Command {
    let mut command = cli();
    command.args([
        "login",
        &server.url(),
        "--oidc",
        provider.issuer(),
        "--client-id",
        client,
    ]);
    command
}

/// Runs a `login` whose stderr names a page for the user; the provider's
/// browser opens it (`page` finds it in a line) while the CLI waits.
async fn interactive_login(
    mut command: Command,
    provider: &mut OidcProvider,
    page: impl Fn(&str) -> Option<String>,
) -> Run {
    let mut child = command.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut said = String::new();
    let address = within(WAIT, "the login page to be named", async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            said.push_str(&line);
            said.push('\n');
            if let Some(address) = page(&line) {
                return address;
            }
        }
        panic!("login ended without naming a page: {said}")
    })
    .await;
    let (approved, detail) = provider.browse(&address).await;
    assert!(approved, "the provider's page ended in {detail}");
    while let Some(line) = stderr.next_line().await.unwrap() {
        said.push_str(&line);
        said.push('\n');
    }
    let output = within(WAIT, "login to exit", child.wait_with_output())
        .await
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: support::json_lines(&output.stdout),
        stderr: said,
    }
}

async fn device_login(server: &RunningServer, provider: &mut OidcProvider) -> Run {
    let command = login_command(server, provider, PUBLIC_CLIENT);
    interactive_login(command, provider, |line| {
        line.strip_prefix("Or open ").map(str::to_owned)
    })
    .await
}

fn tail(server: &RunningServer, state: &std::path::Path, events: u64) -> Command {
    let mut command = cli();
    command
        .arg("tail")
        .arg(server.url())
        .args(["--feed", "f", "--from-start", "--state-dir"])
        .arg(state)
        .args(["--backoff-initial-ms", "20", "--backoff-max-ms", "200"])
        .args(["--max-events", &events.to_string()]);
    command
}

fn stored_login(server: &RunningServer) -> holdline_login::Grant {
    let (url, _) = FeedUrl::parse(&server.url()).unwrap();
    holdline_credentials::load_login(&url)
        .unwrap()
        .expect("the login is in the keyring")
}

/// Fails if any of `secrets` is in the runs' output or under `dir`.
fn assert_nowhere(secrets: &[String], runs: &[&Run], dir: &std::path::Path) {
    let mut shown = String::new();
    for run in runs {
        shown.push_str(&run.stderr);
        for line in &run.stdout {
            shown.push_str(&line.to_string());
        }
    }
    for secret in secrets {
        assert!(!shown.contains(secret.as_str()), "a secret was printed");
        for file in walk(dir) {
            let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
            assert!(
                !text.contains(secret.as_str()),
                "a secret is in {}",
                file.display()
            );
        }
    }
}

#[tokio::test]
async fn device_login_then_tail_refreshes_across_expiries_with_nothing_lost() {
    if !keyring_available().await {
        return;
    }
    let mut provider = OidcProvider::start(2).await;
    let server = feed_server(&provider).await;
    let login = device_login(&server, &mut provider).await;
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(login.stderr.contains("enter the code"), "{}", login.stderr);
    assert!(
        login.stderr.contains("refreshed by itself"),
        "{}",
        login.stderr
    );
    let first = stored_login(&server);
    let state = tempfile::tempdir().unwrap();
    const EVENTS: u64 = 70;
    let publishing = async {
        for n in 1..=EVENTS {
            let data = RawValue::from_string(format!("{{\"n\":{n}}}")).unwrap();
            server.publish("f", &data).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let mut tailing = tail(&server, state.path(), EVENTS);
    // Every library's trace logging on: none of them may print a token.
    tailing.env("RUST_LOG", "trace");
    let (_, tailed) = tokio::join!(publishing, run(&mut tailing));
    assert_eq!(tailed.code, 0, "{}", tailed.stderr);
    let seqs: Vec<u64> = tailed
        .stdout
        .iter()
        .filter_map(|l| l["seq"].as_u64())
        .collect();
    assert_eq!(seqs, (1..=EVENTS).collect::<Vec<_>>());
    assert!(
        tailed.stderr.contains("token refreshed"),
        "{}",
        tailed.stderr
    );
    assert!(tailed.stderr.contains("4001"), "{}", tailed.stderr);
    // The refreshed login replaced the first in the keyring.
    let last = stored_login(&server);
    assert_ne!(last.refresh_token, first.refresh_token);
    let secrets: Vec<String> = [
        first.access_token,
        first.refresh_token,
        last.access_token.clone(),
        last.refresh_token.clone(),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert_nowhere(&secrets, &[&login, &tailed], state.path());

    // A revoked login: tail stops with needs_login and the provider's reason.
    provider
        .revoke(last.refresh_token.as_deref().unwrap())
        .await;
    let mut expired = last.clone();
    expired.expires_at_ms = Some(0);
    let (url, _) = FeedUrl::parse(&server.url()).unwrap();
    holdline_credentials::store_login(&url, &expired).unwrap();
    let refused = run(&mut tail(&server, state.path(), 1)).await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("invalid_grant"),
        "{}",
        refused.stderr
    );
    let logout = run(cli().args(["logout", &server.url()])).await;
    assert!(logout.stderr.contains("OpenID login"), "{}", logout.stderr);
}

#[tokio::test]
async fn browser_login_comes_back_to_the_cli() {
    if !keyring_available().await {
        return;
    }
    let mut provider = OidcProvider::start(60).await;
    let server = feed_server(&provider).await;
    let mut command = login_command(&server, &provider, PUBLIC_CLIENT);
    // `true` stands in for the system browser; the provider's plays it.
    command.arg("--browser").env("BROWSER", "true");
    let login = interactive_login(command, &mut provider, |line| {
        line.strip_prefix("Log in in your browser: ")
            .map(str::to_owned)
    })
    .await;
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert_eq!(provider.tokens_issued("authorization_code"), 1);
    server
        .publish("f", &RawValue::from_string("{\"n\":1}".into()).unwrap())
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let tailed = run(&mut tail(&server, state.path(), 1)).await;
    assert_eq!(tailed.code, 0, "{}", tailed.stderr);
    let grant = stored_login(&server);
    let secrets: Vec<String> = [grant.access_token, grant.refresh_token]
        .into_iter()
        .flatten()
        .collect();
    assert_nowhere(&secrets, &[&login, &tailed], state.path());
    run(cli().args(["logout", &server.url()])).await;
}

async fn client_credentials_login(
    server: &RunningServer,
    provider: &OidcProvider,
    secret: &str,
) -> Run {
    let mut command = login_command(server, provider, SERVICE_CLIENT);
    command.arg("--client-credentials");
    run_with_stdin(&mut command, &format!("{secret}\n")).await
}

#[tokio::test]
async fn client_credentials_from_stdin_log_in_and_publish_renews_the_token() {
    if !keyring_available().await {
        return;
    }
    let provider = OidcProvider::start(1).await;
    let server = feed_server(&provider).await;
    let wrong = client_credentials_login(&server, &provider, "not-the-secret").await;
    assert_eq!(wrong.code, 3, "{}", wrong.stderr);
    assert!(wrong.stderr.contains("invalid_client"), "{}", wrong.stderr);
    let login = client_credentials_login(&server, &provider, provider.client_secret()).await;
    assert_eq!(login.code, 0, "{}", login.stderr);
    assert!(
        login.stderr.contains("client credentials"),
        "{}",
        login.stderr
    );
    // The first token has long expired by the time a publish needs one.
    let issued = provider.tokens_issued("client_credentials");
    let state = tempfile::tempdir().unwrap();
    let mut publishes = Vec::new();
    for n in 0..3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let mut publish = cli();
        publish
            .args(["publish", &server.url(), "--feed", "f", "--data"])
            .arg(format!("{{\"n\":{n}}}"))
            .arg("--state-dir")
            .arg(state.path());
        if n == 0 {
            publish.env("RUST_LOG", "trace");
        }
        let published = run(&mut publish).await;
        assert_eq!(published.code, 0, "{}", published.stderr);
        publishes.push(published);
    }
    assert!(provider.tokens_issued("client_credentials") > issued);
    assert_eq!(
        server.head("f").await.unwrap().map(|(_, head)| head),
        Some(3)
    );
    let mut runs = vec![&wrong, &login];
    runs.extend(publishes.iter());
    let stored = stored_login(&server);
    let secrets: Vec<String> = [
        Some(provider.client_secret().to_owned()),
        stored.access_token,
    ]
    .into_iter()
    .flatten()
    .collect();
    assert_nowhere(&secrets, &runs, state.path());
    run(cli().args(["logout", &server.url()])).await;
}
