use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use holdline_server::{LogSpec, OidcSpec, ServerConfig, start};
use tracing_subscriber::EnvFilter;

/// The engine hands each event from its socket thread to the consumer's;
/// mimalloc frees across threads without contending on one arena lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The reference holdline.v1 feed server.
#[derive(Parser, Debug)]
#[command(name = "holdline-server", version, about)]
struct Args {
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:9876")]
    listen: String,
    /// A bearer token that may connect (repeatable).
    #[arg(long = "token", value_name = "T")]
    tokens: Vec<String>,
    /// An Origin allowed to connect (repeatable); none given allows any.
    #[arg(long = "allow-origin", value_name = "O")]
    allow_origins: Vec<String>,
    /// Where feeds' events live: `memory` (lost at exit), `sqlite:PATH`
    /// (one node, durable) or `redis://HOST:PORT/` (durable, shared by
    /// every node that names it).
    #[arg(long, default_value = "memory", value_name = "LOG")]
    log: LogSpec,
    /// Events retained per feed for replay.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    retain: usize,
    /// WebSocket Ping period, also announced in `welcome`.
    #[arg(long, default_value_t = 15_000, value_name = "MS")]
    heartbeat_ms: u64,
    /// Largest client frame accepted.
    #[arg(long, default_value_t = 1 << 20, value_name = "B")]
    max_frame_bytes: usize,
    /// Frames queued per client before it is closed as a slow consumer (4008).
    #[arg(long, default_value_t = 8192, value_name = "N")]
    send_queue: usize,
    /// Add token `demo` and live demo feeds (demo.clock, demo.ticker, demo.chat).
    #[arg(long)]
    demo: bool,
    /// Also admit access tokens (JWTs) this OpenID provider issues; the
    /// connection closes with 4001 when its token expires.
    #[arg(long, value_name = "ISSUER", requires = "oidc_audience")]
    oidc_issuer: Option<String>,
    /// The audience (`aud`) those tokens must be issued for.
    #[arg(long, value_name = "AUD", requires = "oidc_issuer")]
    oidc_audience: Option<String>,
    /// Run with no authentication at all (anyone may subscribe and publish).
    #[arg(long, alias = "no-auth")]
    allow_unauthenticated: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let listen = match tokio::net::lookup_host(&args.listen)
        .await
        .map(|mut a| a.next())
    {
        Ok(Some(addr)) => addr,
        _ => {
            eprintln!(
                "holdline-server: --listen {:?} is not an address (try 127.0.0.1:0)",
                args.listen
            );
            return ExitCode::from(2);
        }
    };
    let config = ServerConfig {
        listen,
        tokens: args.tokens,
        allow_unauthenticated: args.allow_unauthenticated,
        oidc: args
            .oidc_issuer
            .zip(args.oidc_audience)
            .map(|(issuer, audience)| OidcSpec { issuer, audience }),
        allow_origins: args.allow_origins,
        log: args.log,
        retain: args.retain,
        heartbeat: Duration::from_millis(args.heartbeat_ms.max(1)),
        max_frame_bytes: args.max_frame_bytes.max(1),
        send_queue: args.send_queue.max(1),
        demo: args.demo,
        ..ServerConfig::default()
    };
    let server = match start(config).await {
        Ok(server) => server,
        Err(err) => {
            eprintln!("holdline-server: {err}");
            return ExitCode::from(1);
        }
    };
    let mut signals = match Signals::register() {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("holdline-server: cannot handle signals: {err}");
            return ExitCode::from(1);
        }
    };
    let addr: SocketAddr = server.local_addr();
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening ws://{addr}");
    let _ = stdout.flush();
    signals.recv().await;
    tracing::info!("signal received: closing every client with 1001");
    server.shutdown().await;
    ExitCode::SUCCESS
}

/// Signal handlers are registered before the address is announced, so a
/// supervisor that signals right after reading it is never too early.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => {}
                _ = self.interrupt.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
