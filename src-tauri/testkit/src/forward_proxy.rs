//! Real forward proxies from Debian, started on loopback for a test:
//! tinyproxy (HTTP `CONNECT`, Basic credentials) and microsocks (SOCKS5,
//! username/password). Each runs in the foreground as a child of the test
//! and is killed and reaped when dropped, on failure too.
//!
//! Missing from the machine, a test using them says so and passes, unless
//! `HOLDLINE_REQUIRE_PROXIES=1` (scripts/test), which makes it fail.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::within;

pub struct ForwardProxy {
    child: Child,
    addr: SocketAddr,
    name: &'static str,
    _dir: tempfile::TempDir,
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `program` runs here; when it does not and proxies are required,
/// the test fails.
fn available(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        assert!(
            std::env::var("HOLDLINE_REQUIRE_PROXIES").is_err(),
            "{program} is required but missing (scripts/setup installs it)"
        );
        eprintln!("skipping: {program} is not installed");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

impl ForwardProxy {
    /// tinyproxy on loopback; with `credentials` it demands them (407).
    /// `None` when tinyproxy is not installed.
    pub async fn tinyproxy(credentials: Option<(&str, &str)>) -> Option<ForwardProxy> {
        if !available("tinyproxy") {
            return None;
        }
        let dir = tempfile::tempdir().expect("a scratch directory");
        let port = free_port();
        // No ConnectPort line: CONNECT to every port, as the tests' servers
        // listen on any.
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 200\nLogLevel Critical\n"
        );
        if let Some((user, password)) = credentials {
            conf.push_str(&format!("BasicAuth {user} {password}\n"));
        }
        let conf_path = dir.path().join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).expect("the tinyproxy configuration is written");
        let mut command = Command::new("tinyproxy");
        command.arg("-d").arg("-c").arg(&conf_path);
        Some(Self::spawn("tinyproxy", command, port, dir).await)
    }

    /// microsocks on loopback; with `credentials` it demands them.
    /// `None` when microsocks is not installed.
    pub async fn microsocks(credentials: Option<(&str, &str)>) -> Option<ForwardProxy> {
        if !available("microsocks") {
            return None;
        }
        let dir = tempfile::tempdir().expect("a scratch directory");
        let port = free_port();
        let mut command = Command::new("microsocks");
        command.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((user, password)) = credentials {
            command.args(["-u", user, "-P", password]);
        }
        Some(Self::spawn("microsocks", command, port, dir).await)
    }

    async fn spawn(
        name: &'static str,
        mut command: Command,
        port: u16,
        dir: tempfile::TempDir,
    ) -> ForwardProxy {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let proxy = ForwardProxy {
            child,
            addr,
            name,
            _dir: dir,
        };
        within(
            Duration::from_secs(10),
            &format!("{name} to listen"),
            async {
                while tokio::net::TcpStream::connect(addr).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        )
        .await;
        proxy
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The proxy's URL with `scheme` (`http`, `socks5`, `socks5h`) and,
    /// when given, credentials in it as curl takes them.
    pub fn url(&self, scheme: &str, credentials: Option<(&str, &str)>) -> String {
        match credentials {
            Some((user, password)) => format!("{scheme}://{user}:{password}@{}", self.addr),
            None => format!("{scheme}://{}", self.addr),
        }
    }
}
