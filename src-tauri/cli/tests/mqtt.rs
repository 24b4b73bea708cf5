//! `holdline-cli` on the `mqtt` wire against a real broker from npm: the
//! lines it prints, the persistent session across runs, `publish` under a
//! client id of its own, and `kill -9` between printing and committing.
#![cfg(unix)]

mod support;

use std::path::Path;
use std::process::Stdio;

use holdline_testkit::{MqttBroker, MqttBrokerConfig, within};
use serde_json::{Value, json};
use support::{WAIT, cli_with_token, json_lines, run, tail_with_profile, write_profile};
use tokio::io::{AsyncBufReadExt, BufReader};

const PASSWORD: &str = "cli-mqtt-secret-6a";

fn tail(url: &str, profile: &Path, state: &Path, feed: &str) -> tokio::process::Command {
    let mut command = tail_with_profile(PASSWORD, url, profile, state);
    command.args([
        "--feed",
        feed,
        "--backoff-initial-ms",
        "20",
        "--backoff-max-ms",
        "100",
    ]);
    command
}

async fn broker() -> MqttBroker {
    MqttBroker::start(MqttBrokerConfig {
        password: Some(PASSWORD.into()),
        username: None,
    })
    .await
}

#[tokio::test]
async fn tail_prints_topic_lines_and_a_second_run_gets_what_came_in_between() {
    let mut broker = broker().await;
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path(), &json!({"protocol": "mqtt"}));
    let first = tail(&broker.url(), &profile, dir.path(), "home/+/temp")
        .args(["--max-events", "1"])
        .spawn()
        .unwrap();
    broker.wait_for_count("subscribe", 1).await;
    broker.publish("home/kitchen/temp", "21.5", 1).await;
    let output = within(WAIT, "the first run", first.wait_with_output())
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let line: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        line,
        json!({"kind": "event", "feed": "home/+/temp", "seq": null, "epoch": null, "data": 21.5,
               "meta": {"topic": "home/kitchen/temp", "qos": 1, "retain": false}})
    );
    broker.wait_for_count("disconnect", 1).await;
    broker.publish("home/hall/temp", "not json", 1).await;

    let second =
        run(tail(&broker.url(), &profile, dir.path(), "home/+/temp").args(["--max-events", "1"]))
            .await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.stdout[0]["data"], json!({"text": "not json"}));
    let connects = broker.seen("connect");
    assert_eq!(
        connects[0]["client_id"], connects[1]["client_id"],
        "the saved id"
    );

    // A publish takes the saved id with `-pub`, never the tail's session.
    let published = run(cli_with_token(PASSWORD)
        .arg("publish")
        .arg(broker.url())
        .arg("--profile")
        .arg(&profile)
        .arg("--state-dir")
        .arg(dir.path())
        .args([
            "--feed",
            "home/cmd",
            "--data",
            r#"{"on":true}"#,
            "--id",
            "cmd-1",
        ]))
    .await;
    assert_eq!(published.code, 0, "{}", published.stderr);
    assert_eq!(
        published.stdout,
        [json!({"kind": "ack", "feed": "home/cmd", "seq": null, "id": "cmd-1"})]
    );
    let connects = broker.seen("connect");
    assert_eq!(
        connects[2]["client_id"],
        format!("{}-pub", connects[0]["client_id"].as_str().unwrap())
    );
    let state = std::fs::read_to_string(dir.path().join("cursors.json")).unwrap();
    assert!(!state.contains(PASSWORD));
}

#[tokio::test]
async fn a_kill_9_between_printing_and_committing_loses_nothing() {
    let mut broker = broker().await;
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path(), &json!({"protocol": "mqtt", "event_seq": "/n"}));
    let mut first = tail(&broker.url(), &profile, dir.path(), "px")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
    broker.wait_for_count("subscribe", 1).await;
    // The stream still flows when the kill lands, so lines are printed
    // whose commit (and so PUBACK) never happened.
    let publishing = tokio::spawn(async move {
        for n in 1..=TOTAL {
            broker
                .publish("px", &json!({ "n": n }).to_string(), 1)
                .await;
        }
        broker
    });
    let mut printed = Vec::new();
    while printed.len() < 37 {
        let line = within(WAIT, "a line", lines.next_line())
            .await
            .unwrap()
            .expect("a line before the kill");
        let line: Value = serde_json::from_str(&line).unwrap();
        printed.push(line["seq"].as_u64().unwrap());
    }
    // SIGKILL while lines still come: whatever it had not yet
    // committed was never acknowledged, and the broker has it still.
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    // What it printed before dying is still in the pipe: printed is
    // printed, read now or later.
    while let Ok(Some(line)) = lines.next_line().await {
        let line: Value = serde_json::from_str(&line).unwrap();
        printed.push(line["seq"].as_u64().unwrap());
    }

    let broker = publishing.await.unwrap();
    let acked_before_restart = broker.seen("ack").len();
    let mut second = tail(&broker.url(), &profile, dir.path(), "px")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(second.stdout.take().unwrap()).lines();
    while !(1..=TOTAL).all(|n| printed.contains(&n)) {
        let line = within(WAIT, "the rest", lines.next_line())
            .await
            .unwrap()
            .expect("a line");
        let line: Value = serde_json::from_str(&line).unwrap();
        printed.push(line["seq"].as_u64().unwrap());
    }
    second.start_kill().unwrap();
    let mut sorted = printed.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted,
        (1..=TOTAL).collect::<Vec<_>>(),
        "printed: {printed:?}"
    );
    assert!(
        acked_before_restart < TOTAL as usize,
        "the kill landed mid-stream ({acked_before_restart} acknowledged)"
    );
}

const TOTAL: u64 = 200;

#[tokio::test]
async fn a_wrong_password_exits_3() {
    let broker = broker().await;
    let refused = run(cli_with_token("wrong").args([
        "tail",
        &broker.url(),
        "--protocol",
        "mqtt",
        "--feed",
        "a",
    ]))
    .await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("bad user name or password"),
        "{}",
        refused.stderr
    );
}

/// `--decode msgpack`: a MessagePack payload made by npm's
/// `@msgpack/msgpack` is printed as JSON; one that is not MessagePack
/// stays hex with the reason; an unknown format is refused (exit 2).
/// `--decode auto` tells a CBOR payload (npm's `cborg`) from MessagePack.
#[tokio::test]
async fn tail_decodes_binary_payloads_and_keeps_the_undecodable_as_hex() {
    let mut broker = broker().await;
    let dir = tempfile::tempdir().unwrap();
    let profile = write_profile(dir.path(), &json!({"protocol": "mqtt"}));
    let refused =
        run(tail(&broker.url(), &profile, dir.path(), "bin/#").args(["--decode", "avro"])).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("--decode") && refused.stderr.contains("msgpack"),
        "{}",
        refused.stderr
    );

    let value = json!({"sym": "HOLD", "px": 101.25, "levels": [1, 2, 3]});
    let payload = holdline_testkit::npm_encoders::encode_with_npm(&[
        json!({"format": "msgpack", "value": value}),
    ])
    .remove(0);
    let child = tail(&broker.url(), &profile, dir.path(), "bin/#")
        .args(["--decode", "msgpack", "--max-events", "2"])
        .spawn()
        .unwrap();
    broker.wait_for_count("subscribe", 1).await;
    broker.publish_bytes("bin/packed", &payload, 1).await;
    broker
        .publish_bytes("bin/other", &[0xc1, 0x00, 0xff], 1)
        .await;
    let output = within(WAIT, "the decoding run", child.wait_with_output())
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = json_lines(&output.stdout);
    assert_eq!(lines[0]["data"], value, "{}", lines[0]);
    assert_eq!(lines[0]["meta"]["decoded"], "msgpack");
    assert_eq!(lines[0]["meta"]["topic"], "bin/packed");
    assert_eq!(lines[1]["data"], json!({"hex": "c100ff"}), "{}", lines[1]);
    assert!(
        lines[1]["meta"]["decode_error"]
            .as_str()
            .unwrap()
            .starts_with("not MessagePack"),
        "{}",
        lines[1]
    );

    let cbor = holdline_testkit::npm_encoders::encode_with_npm(&[
        json!({"format": "cbor", "value": value}),
    ])
    .remove(0);
    let child = tail(&broker.url(), &profile, dir.path(), "bin/#")
        .args(["--decode", "auto", "--max-events", "2"])
        .spawn()
        .unwrap();
    broker.wait_for_count("subscribe", 2).await;
    broker.publish_bytes("bin/cbor", &cbor, 1).await;
    broker.publish_bytes("bin/packed", &payload, 1).await;
    let output = within(WAIT, "the detecting run", child.wait_with_output())
        .await
        .unwrap();
    let lines = json_lines(&output.stdout);
    assert_eq!(
        lines.len(),
        2,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for (line, format) in lines.iter().zip(["cbor", "msgpack"]) {
        assert_eq!(line["data"], value, "{line}");
        assert_eq!(line["meta"]["decoded"], format, "{line}");
    }
}
