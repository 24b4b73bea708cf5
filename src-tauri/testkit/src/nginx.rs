//! nginx from Debian on loopback, in front of a test's server: a reverse
//! proxy with `proxy_read_timeout` cut to one second, and TLS termination
//! (mutual TLS with a client CA) when asked for.
//!
//! Needs `nginx` (scripts/setup installs it). Without it the tests say so
//! and pass, unless HOLDLINE_REQUIRE_NGINX=1 (CI). Linux only: the nginx
//! setup (users, paths) is Debian's.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::within;

pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    /// SIGTERM, not SIGKILL: the master stops its workers before it exits,
    /// where a killed master leaves them running as orphans.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn nginx_available() -> bool {
    let found = Command::new("nginx")
        .arg("-v")
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var("HOLDLINE_REQUIRE_NGINX").is_err(),
            "nginx is required but missing"
        );
        eprintln!("skipping: nginx is not installed");
    }
    found
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// nginx proxying WebSockets to `upstream`, idle timeout one second;
/// `tls` = (certificate PEM, key PEM) makes it terminate TLS.
/// nginx's TLS: its certificate and key (PEM) and, for mutual TLS, the CA
/// (PEM) a client's certificate must be signed by (`ssl_verify_client on`).
pub struct NginxTls {
    pub cert: String,
    pub key: String,
    pub client_ca: Option<String>,
}

pub async fn start_nginx(upstream: SocketAddr, tls: Option<NginxTls>) -> Nginx {
    start_nginx_balancing(&[upstream], tls).await
}

/// nginx spreading connections over `upstreams` in turn; one that refuses
/// a connection is skipped for the next ten seconds (nginx's defaults).
pub async fn start_nginx_balancing(upstreams: &[SocketAddr], tls: Option<NginxTls>) -> Nginx {
    let servers: String = upstreams
        .iter()
        .map(|upstream| format!("server {upstream}; "))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    let (listen, ssl) = match &tls {
        Some(tls) => {
            std::fs::write(dir.path().join("cert.pem"), &tls.cert).unwrap();
            std::fs::write(dir.path().join("key.pem"), &tls.key).unwrap();
            let mut ssl = format!(
                "ssl_certificate {}; ssl_certificate_key {};",
                path("cert.pem"),
                path("key.pem")
            );
            if let Some(client_ca) = &tls.client_ca {
                std::fs::write(dir.path().join("client-ca.pem"), client_ca).unwrap();
                ssl.push_str(&format!(
                    " ssl_client_certificate {}; ssl_verify_client on;",
                    path("client-ca.pem")
                ));
            }
            (format!("127.0.0.1:{port} ssl"), ssl)
        }
        None => (format!("127.0.0.1:{port}"), String::new()),
    };
    let tmp = path("tmp");
    let conf = format!(
        r#"
worker_processes 1;
daemon off;
pid {pid};
error_log {err} warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp};
  uwsgi_temp_path {tmp}; scgi_temp_path {tmp};
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  upstream nodes {{ {servers} }}
  server {{
    listen {listen};
    {ssl}
    location / {{
      proxy_pass http://nodes;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1s;
      proxy_send_timeout 1s;
    }}
  }}
}}
"#,
        pid = path("nginx.pid"),
        err = path("error.log"),
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut command = Command::new("nginx");
    command
        .args([
            "-p",
            &dir.path().display().to_string(),
            "-c",
            &conf_path.display().to_string(),
            "-e",
            &path("error.log"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // nginx run as root hands its workers to `nobody`, who cannot enter a
    // private temporary directory; the workers keep root's rights here.
    if unsafe_is_root() {
        let conf = std::fs::read_to_string(&conf_path).unwrap();
        std::fs::write(&conf_path, format!("user root;\n{conf}")).unwrap();
    }
    let child = command.spawn().expect("nginx starts");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    within(Duration::from_secs(20), "nginx to listen", async {
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    Nginx {
        child,
        addr,
        _dir: dir,
    }
}

fn unsafe_is_root() -> bool {
    Path::new("/proc/self/status")
        .exists()
        .then(|| std::fs::read_to_string("/proc/self/status").unwrap_or_default())
        .is_some_and(|status| {
            status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
}
