//! A real `redis-server` from Debian, started on loopback for a test, with
//! its data in a scratch directory and every write fsynced to its append
//! log (so stopping it with SIGKILL loses nothing it acknowledged). It can
//! be stopped and started again on the same port and data, and is killed
//! with its children (an append-log rewrite forks) when dropped.
//!
//! Missing from the machine, a test using it says so and passes, unless
//! `HOLDLINE_REQUIRE_REDIS=1` (scripts/test), which makes it fail.

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::within;

pub struct RedisServer {
    child: Option<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// Whether redis-server runs here; when it does not and Redis is
/// required, the test fails.
pub fn redis_available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            std::env::var("HOLDLINE_REQUIRE_REDIS").is_err(),
            "redis-server is required but missing (scripts/setup installs it)"
        );
        eprintln!("skipping: redis-server is not installed");
    }
    found
}

impl RedisServer {
    /// Starts Redis on a free loopback port; `None` when it is not
    /// installed.
    pub async fn start() -> Option<RedisServer> {
        if !redis_available() {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free loopback port");
        let mut server = RedisServer {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir: tempfile::tempdir().expect("a scratch directory"),
        };
        server.resume().await;
        Some(server)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Starts it again after [`RedisServer::kill`], on the same port and
    /// data; returns once it says it accepts connections.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "Redis is already running");
        let mut command = Command::new("redis-server");
        command
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.addr.port().to_string(),
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args([
                "--daemonize",
                "no",
                "--logfile",
                "",
                "--protected-mode",
                "no",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // Its own process group, so a kill reaches a forked rewrite too.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().expect("redis-server starts");
        let stdout = child.stdout.take().expect("redis-server's output");
        self.child = Some(child);
        let (ready, is_ready) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut ready = Some(ready);
            // Read to the end, so Redis never blocks on a full pipe.
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("Ready to accept connections")
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(());
                }
            }
        });
        within(
            Duration::from_secs(20),
            "redis-server to be ready",
            is_ready,
        )
        .await
        .expect("redis-server said it is ready before it exited");
    }

    /// Deletes everything Redis stored (it must be stopped): the next
    /// [`RedisServer::resume`] starts empty, as a Redis without
    /// persistence does after a restart.
    pub fn forget_data(&mut self) {
        assert!(
            self.child.is_none(),
            "stop Redis before forgetting its data"
        );
        for entry in std::fs::read_dir(self.dir.path()).expect("Redis's directory") {
            let path = entry.expect("an entry").path();
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }

    /// SIGKILL to Redis and its children; waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
