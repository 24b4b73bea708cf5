//! `holdline-cli` on the `graphql-ws` wire against the real server from
//! npm: event lines, a second run that replays from its cursor, publish
//! as a mutation, and a refused init's exit code.
#![cfg(unix)]

mod support;

use std::path::{Path, PathBuf};

use holdline_testkit::GraphqlServer;
use serde_json::{Value, json};
use support::{cli_with_token, run, tail_with_profile, write_profile};

const SECRET: &str = "cli-gql-secret-0e";

fn graphql_profile(dir: &Path) -> PathBuf {
    let profile = json!({
        "protocol": "graphql-ws",
        "feeds": {"px": {
            "query": "subscription Px($since: Int) { ticks(feed: \"px\", since: $since) { seq value } }",
            "variables": {"since": "{since}"},
            "data": "/data/ticks",
            "seq": "/data/ticks/seq"
        }},
        "publish": {
            "query": "mutation Post($feed: String, $text: String, $id: String) { post(feed: $feed, text: $text, id: $id) { seq } }",
            "variables": {"feed": "{feed}", "text": "{data}", "id": "{id}"},
            "seq": "/data/post/seq"
        }
    });
    write_profile(dir, &profile)
}

fn tail(url: &str, profile: &Path, state: &Path, events: u64) -> tokio::process::Command {
    let mut command = tail_with_profile(SECRET, url, profile, state);
    command.args([
        "--feed",
        "px",
        "--from-start",
        "--max-events",
        &events.to_string(),
    ]);
    command
}

fn tick(seq: u64, value: u64) -> Value {
    json!({"kind": "event", "feed": "px", "seq": seq, "epoch": null,
           "data": {"seq": seq, "value": value}})
}

#[tokio::test]
async fn tail_prints_results_resumes_from_its_cursor_and_publish_is_a_mutation() {
    let mut server = GraphqlServer::start(Some(SECRET)).await;
    let dir = tempfile::tempdir().unwrap();
    let profile = graphql_profile(dir.path());
    for v in 1..=3 {
        server.tick("px", f64::from(v)).await;
    }
    let first = run(&mut tail(&server.url(), &profile, dir.path(), 3)).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.stdout, [tick(1, 1), tick(2, 2), tick(3, 3)]);

    let published = run(cli_with_token(SECRET)
        .arg("publish")
        .arg(server.url())
        .arg("--profile")
        .arg(&profile)
        .args(["--feed", "px", "--data", "\"7\"", "--id", "post-1"]))
    .await;
    assert_eq!(published.code, 0, "{}", published.stderr);
    assert_eq!(
        published.stdout,
        [json!({"kind": "ack", "feed": "px", "seq": 4, "id": "post-1"})]
    );
    let second = run(&mut tail(&server.url(), &profile, dir.path(), 1)).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.stdout, [tick(4, 7)], "from the cursor: since 3");
    let sinces: Vec<Value> = server
        .seen("subscribe")
        .iter()
        .map(|s| s["args"]["since"].clone())
        .collect();
    assert_eq!(sinces, [json!(0), json!(3)]);
}

#[tokio::test]
async fn a_refused_init_exits_4_and_an_unknown_feed_exits_2() {
    let server = GraphqlServer::start(Some(SECRET)).await;
    let dir = tempfile::tempdir().unwrap();
    let profile = graphql_profile(dir.path());
    let refused = run(cli_with_token("wrong")
        .arg("tail")
        .arg(server.url())
        .arg("--profile")
        .arg(&profile)
        .args(["--feed", "px"]))
    .await;
    assert_eq!(refused.code, 4, "4403 stops: {}", refused.stderr);
    assert!(refused.stderr.contains("4403"), "{}", refused.stderr);
    let unknown = run(cli_with_token(SECRET)
        .arg("tail")
        .arg(server.url())
        .arg("--profile")
        .arg(&profile)
        .args(["--feed", "nope"]))
    .await;
    assert_ne!(unknown.code, 0);
    assert!(
        unknown.stderr.contains("not a feed of this profile"),
        "{}",
        unknown.stderr
    );
}
