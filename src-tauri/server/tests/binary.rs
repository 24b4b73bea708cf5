//! The `holdline-server` binary against a bare WebSocket client that speaks
//! JSON by hand, as an independent implementation would.

use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use holdline_testkit::within;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const TOKEN: &str = "bin-token";
const WAIT: Duration = Duration::from_secs(20);

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn spawn_server(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_holdline-server"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = within(WAIT, "the listening line", lines.next_line())
        .await
        .unwrap()
        .unwrap();
    let url = first
        .strip_prefix("listening ")
        .expect("first line is `listening ws://…`")
        .to_owned();
    assert!(url.starts_with("ws://127.0.0.1:"), "{first}");
    (child, url)
}

async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<(Client, Option<String>), WsError> {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        let name =
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    let (client, response) = tokio_tungstenite::connect_async(request).await?;
    let protocol = response
        .headers()
        .get("sec-websocket-protocol")
        .map(|v| v.to_str().unwrap().to_owned());
    Ok((client, protocol))
}

fn authorized() -> Vec<(&'static str, &'static str)> {
    vec![
        ("authorization", "Bearer bin-token"),
        ("sec-websocket-protocol", "holdline.v1"),
    ]
}

/// The next text frame as JSON, skipping control frames.
async fn next_json(client: &mut Client) -> Value {
    within(WAIT, "a text frame", async {
        loop {
            match client.next().await {
                Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
                Some(Ok(Message::Close(frame))) => panic!("closed: {frame:?}"),
                Some(Ok(_)) => {}
                other => panic!("stream ended: {other:?}"),
            }
        }
    })
    .await
}

async fn send(client: &mut Client, value: Value) {
    client.send(Message::text(value.to_string())).await.unwrap();
}

fn status_of(result: Result<(Client, Option<String>), WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Ok(_) => 101,
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn upgrade_rules_auth_origin_and_welcome() {
    let (_server, url) = spawn_server(&[
        "--token",
        TOKEN,
        "--heartbeat-ms",
        "300",
        "--max-frame-bytes",
        "1024",
        "--allow-origin",
        "https://ok.example",
    ])
    .await;
    assert_eq!(status_of(connect(&url, &[]).await), 401);
    assert_eq!(
        status_of(connect(&url, &[("authorization", "Bearer nope")]).await),
        401
    );
    let mut evil = authorized();
    evil.push(("origin", "https://evil.example"));
    assert_eq!(status_of(connect(&url, &evil).await), 403);
    let mut good = authorized();
    good.push(("origin", "https://ok.example"));
    let (mut client, protocol) = connect(&url, &good).await.unwrap();
    assert_eq!(protocol.as_deref(), Some("holdline.v1"));
    let welcome = next_json(&mut client).await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["heartbeat_ms"], 300);
    assert_eq!(welcome["max_frame_bytes"], 1024);
    assert!(welcome["session"].is_string() && welcome["server"].is_string());
    // The query-string token works for browser peers.
    let query_url = format!("{url}/?token={TOKEN}");
    let (mut browser, _) = connect(&query_url, &[("sec-websocket-protocol", "holdline.v1")])
        .await
        .unwrap();
    assert_eq!(next_json(&mut browser).await["type"], "welcome");
    // The server pings on its heartbeat.
    let ping = within(WAIT, "a server Ping", async {
        loop {
            if let Some(Ok(Message::Ping(_))) = client.next().await {
                return true;
            }
        }
    })
    .await;
    assert!(ping);
}

#[tokio::test]
async fn requests_errors_replay_and_dedupe() {
    let (_server, url) = spawn_server(&[
        "--token",
        TOKEN,
        "--retain",
        "3",
        "--max-frame-bytes",
        "1024",
    ])
    .await;
    let (mut client, _) = connect(&url, &authorized()).await.unwrap();
    assert_eq!(next_json(&mut client).await["type"], "welcome");

    send(&mut client, json!({"type":"ping","id":"p1"})).await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"type":"pong","id":"p1"})
    );

    client.send(Message::text("{oops")).await.unwrap();
    let error = next_json(&mut client).await;
    assert_eq!(
        (error["type"].as_str(), error["code"].as_str()),
        (Some("error"), Some("bad_request"))
    );
    client.send(Message::binary(vec![1u8, 2])).await.unwrap();
    assert_eq!(next_json(&mut client).await["code"], "bad_request");
    send(&mut client, json!({"type":"publish","id":"x1","feed":"f"})).await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"type":"error","id":"x1","code":"bad_request","message":"missing field `data`"})
    );
    send(
        &mut client,
        json!({"type":"subscribe","id":"s0","feed":"bad feed"}),
    )
    .await;
    let invalid = next_json(&mut client).await;
    assert_eq!(
        (invalid["id"].as_str(), invalid["code"].as_str()),
        (Some("s0"), Some("invalid_feed"))
    );
    send(
        &mut client,
        json!({"type":"unsubscribe","id":"u0","feed":"f"}),
    )
    .await;
    assert_eq!(next_json(&mut client).await["code"], "not_subscribed");

    for n in 1..=5 {
        send(
            &mut client,
            json!({"type":"publish","id":format!("pub-{n}"),"feed":"f","data":{"n":n}}),
        )
        .await;
        assert_eq!(
            next_json(&mut client).await,
            json!({"type":"ack","id":format!("pub-{n}"),"feed":"f","seq":n})
        );
    }
    send(
        &mut client,
        json!({"type":"publish","id":"pub-2","feed":"f","data":"again"}),
    )
    .await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"type":"ack","id":"pub-2","feed":"f","seq":2})
    );

    send(
        &mut client,
        json!({"type":"subscribe","id":"s1","feed":"f","since":0}),
    )
    .await;
    let subscribed = next_json(&mut client).await;
    assert_eq!(subscribed["type"], "subscribed");
    assert_eq!(
        subscribed["head"], 5,
        "the repeated id must not have published"
    );
    assert_eq!(subscribed["replay_from"], 3);
    assert_eq!(subscribed["gap"], json!({"from":1,"to":2}));
    let epoch = subscribed["epoch"].as_str().unwrap().to_owned();
    for seq in 3..=5 {
        let event = next_json(&mut client).await;
        assert_eq!(
            (event["type"].as_str(), event["seq"].as_u64()),
            (Some("event"), Some(seq))
        );
        assert_eq!(event["data"], json!({"n": seq}));
        assert!(event["ts"].as_i64().unwrap() > 1_600_000_000_000);
    }
    // Live-only: nothing replayed; another epoch: replay from the start.
    send(
        &mut client,
        json!({"type":"subscribe","id":"s2","feed":"g"}),
    )
    .await;
    assert_eq!(next_json(&mut client).await["replay_from"], Value::Null);
    send(
        &mut client,
        json!({"type":"subscribe","id":"s3","feed":"f","since":4,"epoch":"elsewhere"}),
    )
    .await;
    let other_epoch = next_json(&mut client).await;
    assert_eq!(
        (
            other_epoch["epoch"].as_str(),
            other_epoch["replay_from"].as_u64()
        ),
        (Some(epoch.as_str()), Some(3))
    );
    assert_eq!(other_epoch["gap"], json!({"from":1,"to":2}));
    for _ in 3..=5 {
        next_json(&mut client).await;
    }
    send(
        &mut client,
        json!({"type":"unsubscribe","id":"u1","feed":"f"}),
    )
    .await;
    assert_eq!(
        next_json(&mut client).await,
        json!({"type":"unsubscribed","id":"u1","feed":"f"})
    );

    // Over max_frame_bytes: an error, and the connection stays open.
    let big = json!({"type":"publish","id":"big","feed":"f","data":"y".repeat(2000)});
    send(&mut client, big).await;
    let too_large = next_json(&mut client).await;
    assert_eq!(
        (too_large["id"].as_str(), too_large["code"].as_str()),
        (Some("big"), Some("too_large"))
    );
    send(&mut client, json!({"type":"ping","id":"still-open"})).await;
    assert_eq!(next_json(&mut client).await["id"], "still-open");
    // Over the hard limit: close 1009.
    client
        .send(Message::text("z".repeat(70_000)))
        .await
        .unwrap();
    let close = within(WAIT, "close 1009", async {
        loop {
            match client.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Size));
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_closes_clients_with_1001_and_exits_0() {
    let (server, url) = spawn_server(&["--token", TOKEN]).await;
    let (mut client, _) = connect(&url, &authorized()).await.unwrap();
    next_json(&mut client).await;
    let pid = server.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let close = within(WAIT, "close 1001", async {
        loop {
            match client.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(close.map(|f| f.code), Some(CloseCode::Away));
    let mut server = server;
    let status = within(WAIT, "exit", server.wait()).await.unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn no_token_refuses_to_start_unless_told_so() {
    let output = Command::new(env!("CARGO_BIN_EXE_holdline-server"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--allow-unauthenticated"));
    let (_server, url) = spawn_server(&["--allow-unauthenticated"]).await;
    let (mut client, _) = connect(&url, &[("sec-websocket-protocol", "holdline.v1")])
        .await
        .unwrap();
    assert_eq!(next_json(&mut client).await["type"], "welcome");
}

#[tokio::test]
async fn a_bad_log_setting_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let text_file = dir.path().join("notes.txt");
    std::fs::write(&text_file, "not a database").unwrap();
    let unused_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        ("postgres://db/feeds".to_owned(), 2, "unknown log"),
        (
            format!("sqlite:{}", text_file.display()),
            1,
            "not a usable SQLite log",
        ),
        (
            format!("redis://127.0.0.1:{unused_port}/"),
            1,
            "cannot reach Redis",
        ),
    ];
    for (log, code, says) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_holdline-server"))
            .args(["--listen", "127.0.0.1:0", "--token", TOKEN, "--log", &log])
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{log}: {stderr}");
        assert!(stderr.contains(says), "{log}: {stderr}");
    }
    assert_eq!(
        std::fs::read_to_string(&text_file).unwrap(),
        "not a database",
        "the file is left alone"
    );
}

/// SIGKILL in the middle of a stream of publishes: every publish that was
/// acknowledged is in the log after the restart, once, in the same epoch.
#[tokio::test]
async fn a_sqlite_log_keeps_every_acknowledged_publish_across_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let log = format!("sqlite:{}", dir.path().join("feeds.db").display());
    let args = ["--token", TOKEN, "--log", &log];
    let (mut server, url) = spawn_server(&args).await;
    let (mut client, _) = connect(&url, &authorized()).await.unwrap();
    assert_eq!(next_json(&mut client).await["type"], "welcome");
    let subscribe = json!({"type": "subscribe", "id": "s", "feed": "f"});
    client
        .send(Message::text(subscribe.to_string()))
        .await
        .unwrap();
    let epoch = next_json(&mut client).await["epoch"].clone();
    for n in 1..=400 {
        let publish =
            json!({"type": "publish", "id": format!("k-{n}"), "feed": "f", "data": {"n": n}});
        client
            .send(Message::text(publish.to_string()))
            .await
            .unwrap();
    }
    let mut acked = Vec::new();
    while acked.len() < 100 {
        let frame = next_json(&mut client).await;
        if frame["type"] == "event" {
            continue;
        }
        assert_eq!(frame["type"], "ack", "{frame}");
        acked.push((
            frame["id"].as_str().unwrap().to_owned(),
            frame["seq"].as_u64().unwrap(),
        ));
    }
    // Publishes are still arriving and being stored: kill now.
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    while let Some(Ok(Message::Text(text))) = client.next().await {
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame["type"] == "ack" {
            acked.push((
                frame["id"].as_str().unwrap().to_owned(),
                frame["seq"].as_u64().unwrap(),
            ));
        }
    }

    let (_server, url) = spawn_server(&args).await;
    let (mut client, _) = connect(&url, &authorized()).await.unwrap();
    assert_eq!(next_json(&mut client).await["type"], "welcome");
    client
        .send(Message::text(
            json!({"type": "subscribe", "id": "s", "feed": "f", "since": 0}).to_string(),
        ))
        .await
        .unwrap();
    let subscribed = next_json(&mut client).await;
    assert_eq!(subscribed["epoch"], epoch, "the epoch outlives the process");
    let head = subscribed["head"].as_u64().unwrap();
    assert!(
        head >= acked.len() as u64,
        "{subscribed}: {} acked",
        acked.len()
    );
    let mut stored = Vec::new();
    while (stored.len() as u64) < head {
        let event = next_json(&mut client).await;
        assert_eq!(event["seq"], stored.len() as u64 + 1, "{event}");
        stored.push(event["data"]["n"].as_u64().unwrap());
    }
    assert_eq!(
        stored,
        (1..=head).collect::<Vec<_>>(),
        "stored in the order sent, once"
    );
    for (id, seq) in &acked {
        let n: u64 = id.trim_start_matches("k-").parse().unwrap();
        assert_eq!(
            stored.get(*seq as usize - 1),
            Some(&n),
            "acked {id} as seq {seq}"
        );
    }
}
