//! Real servers from npm (`servers/package.json`, installed by
//! `scripts/setup`), each a Node script driven by JSON lines on stdin that
//! reports everything it sees as JSON lines on stdout. The process dies
//! with its handle.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Notify;

use crate::within;

/// How long a server gets to start or to answer a command.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Seen {
    lines: Mutex<Vec<Value>>,
    changed: Notify,
}

pub struct NodeServer {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    seen: Arc<Seen>,
    next_id: u64,
}

impl NodeServer {
    /// Starts `servers/SCRIPT` with `options` as its one argument and
    /// waits until it listens.
    pub async fn start(script: &str, options: Value) -> NodeServer {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("servers");
        assert!(
            dir.join("node_modules").is_dir(),
            "{} has no node_modules: run scripts/setup (npm ci there)",
            dir.display()
        );
        let mut child = Command::new("node")
            .arg(dir.join(script))
            .arg(options.to_string())
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting node {script}: {e} (run scripts/setup)"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let seen = Arc::new(Seen::default());
        let reader = seen.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let value = serde_json::from_str(&line).unwrap_or_else(|_| json!({ "text": line }));
                reader
                    .lines
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(value);
                reader.changed.notify_waiters();
            }
        });
        let mut server = NodeServer {
            child,
            stdin,
            port: 0,
            seen,
            next_id: 0,
        };
        let listening = server
            .wait_for(&format!("{script} to listen"), |l| l["type"] == "listening")
            .await;
        server.port = listening["port"].as_u64().expect("port") as u16;
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Every line the server printed so far.
    pub fn lines(&self) -> Vec<Value> {
        self.seen
            .lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The lines of one `type`.
    pub fn seen(&self, kind: &str) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|l| l["type"] == kind)
            .collect()
    }

    /// Waits for the first line `matches` accepts, among those printed
    /// so far and those to come.
    pub async fn wait_for(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        within(ANSWER_WITHIN, what, async {
            loop {
                let changed = self.seen.changed.notified();
                if let Some(line) = self.lines().into_iter().find(&matches) {
                    return line;
                }
                changed.await;
            }
        })
        .await
    }

    /// Waits until `count` lines of `kind` have been printed.
    pub async fn wait_for_count(&self, kind: &str, count: usize) -> Vec<Value> {
        within(ANSWER_WITHIN, &format!("{count} {kind} lines"), async {
            loop {
                let changed = self.seen.changed.notified();
                let lines = self.seen(kind);
                if lines.len() >= count {
                    return lines;
                }
                changed.await;
            }
        })
        .await
    }

    /// Sends one command and waits until the server has carried it out.
    pub async fn command(&mut self, command: Value) {
        self.command_answer(command).await;
    }

    /// Sends one command and returns the server's `done` line for it.
    pub async fn command_answer(&mut self, mut command: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        command["id"] = json!(id);
        let stdin = self.stdin.as_mut().expect("server stdin");
        stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .expect("writing a command to the server");
        stdin.flush().await.expect("flushing the command");
        self.wait_for(&format!("command {command}"), |l| {
            l["type"] == "done" && l["id"] == id
        })
        .await
    }

    /// Kills the server at once, as a crash or a restart would.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}
