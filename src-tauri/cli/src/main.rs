//! `holdline-cli`: the engine without a window. Deliveries go to stdout as
//! JSON lines; state and history go to stderr.

mod ledger;
mod login;
mod output;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use holdline_credentials::Secret;
use holdline_engine::{
    BackoffConfig, ClientCertificate, ConnectionState, CursorStore, Engine, EngineConfig,
    EngineEvent, FeedUrl, FileCursorStore, FileRecovery, MemoryCursorStore, Profile, ProxySetting,
    PublishError, StartFrom, Stores, Token, proxy::ProxyCredentials,
};
use serde_json::value::RawValue;
use tokio::sync::broadcast::error::RecvError;

use crate::ledger::{OutputLedger, Recovery};
use crate::login::Credential;
use crate::output::{Output, describe_event};
use holdline_decode::Decoder;

/// The engine hands each event from its socket thread to the consumer's;
/// mimalloc frees across threads without contending on one arena lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes other programs rely on.
mod exit {
    pub const DONE: u8 = 0;
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const NEEDS_LOGIN: u8 = 3;
    pub const TERMINAL: u8 = 4;
}

#[derive(Parser)]
#[command(
    name = "holdline-cli",
    version,
    about = "Headless Holdline client: holdline.v1 feed servers, and any other through a profile"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Follow feeds: one JSON line per event, gap or reset on stdout.
    Tail(TailArgs),
    /// Publish one message and wait for its ack (retrying across reconnects).
    Publish(PublishArgs),
    /// Store a secret for URL in the OS keyring, read from stdin: its
    /// token, or with --secret its proxy's password or its PKCS#12 client
    /// certificate's passphrase.
    /// With --oidc, log in at an OpenID Connect issuer instead: the login
    /// is kept and its tokens are refreshed by `tail` and `publish`.
    Login {
        url: String,
        #[arg(long, value_enum, default_value_t = SecretName::Token, conflicts_with = "oidc")]
        secret: SecretName,
        #[command(flatten)]
        oidc: login::OidcArgs,
    },
    /// Delete every secret stored for URL.
    Logout { url: String },
}

/// The secrets `login --secret` stores.
#[derive(Clone, Copy, ValueEnum)]
enum SecretName {
    Token,
    ProxyPassword,
    ClientKeyPassphrase,
}

impl SecretName {
    fn secret(self) -> Secret {
        match self {
            SecretName::Token => Secret::Token,
            SecretName::ProxyPassword => Secret::ProxyPassword,
            SecretName::ClientKeyPassphrase => Secret::ClientKeyPassphrase,
        }
    }
}

fn secret_words(secret: Secret) -> &'static str {
    match secret {
        Secret::Token => "token",
        Secret::ProxyPassword => "proxy password",
        Secret::ClientKeyPassphrase => "client certificate passphrase",
        Secret::Login => "OpenID login",
    }
}

#[derive(Args)]
struct Connection {
    /// Initial reconnect delay.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    backoff_initial_ms: u64,
    /// Longest reconnect delay.
    #[arg(long, default_value_t = 30_000, value_name = "MS")]
    backoff_max_ms: u64,
    /// Extra CA certificates (PEM) to trust for wss:// beside the system roots.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// How to speak to the server: a profile (JSON), see profiles.md.
    #[arg(long, value_name = "FILE", conflicts_with = "protocol")]
    profile: Option<PathBuf>,
    /// Short for a profile that holds only {"protocol": NAME}.
    #[arg(long, value_name = "NAME")]
    protocol: Option<String>,
    /// How to reach the server: a proxy URL (http://, socks5:// or
    /// socks5h://, credentials in it as curl takes them; never echoed),
    /// `none` (direct, whatever the environment says), or `system` (the
    /// default: https_proxy for wss://, http_proxy for ws://, all_proxy,
    /// no_proxy, as curl reads them).
    #[arg(long, value_name = "URL", default_value = "system")]
    proxy: String,
    /// A client certificate for wss:// servers that ask for one: a PEM
    /// chain (with --client-key), or a PKCS#12 file (.p12, .pfx) whose
    /// passphrase comes from HOLDLINE_CLIENT_KEY_PASSWORD or the keyring
    /// (`login URL --secret client-key-passphrase`).
    #[arg(long, value_name = "FILE")]
    client_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, RSA or EC) of --client-cert.
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    client_key: Option<PathBuf>,
}

#[derive(Args)]
struct TailArgs {
    url: String,
    /// A feed to follow (repeatable; `*` takes every feed where the profile
    /// has the server push everything). Not needed for `raw`.
    #[arg(long = "feed", value_name = "NAME")]
    feeds: Vec<String>,
    /// Feeds with no saved cursor start at the oldest retained event.
    #[arg(long)]
    from_start: bool,
    /// Where cursors are kept (default: the platform data directory).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Exit after this many event lines.
    #[arg(long, value_name = "N")]
    max_events: Option<u64>,
    /// Read binary payloads (`{"hex": …}`) as `msgpack`, `cbor`,
    /// `protobuf:FILE:MESSAGE` (FILE a `.proto` file or a descriptor set) or
    /// `auto` (MessagePack or CBOR, whichever reads it as one map or array);
    /// a payload that does not decode stays hex, with the reason in `meta`.
    #[arg(long, value_name = "FORMAT")]
    decode: Option<String>,
    /// Append the lines to FILE instead of stdout. FILE is then also the
    /// record of progress (cursors in FILE.holdline.json): a restart, even
    /// after `kill -9`, continues right after its last complete line, so
    /// every event is in FILE exactly once.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Args)]
struct PublishArgs {
    url: String,
    #[arg(long, value_name = "F")]
    feed: String,
    /// The message, as JSON.
    #[arg(long, value_name = "JSON")]
    data: String,
    /// Request id; a resend with the same id is never published twice.
    #[arg(long, value_name = "ID")]
    id: Option<String>,
    /// Where `tail` keeps its state (default: the platform data
    /// directory): an MQTT publish takes the client id saved there, with
    /// `-pub` appended.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    connection: Connection,
}

fn main() -> ExitCode {
    if std::env::var_os("RUST_LOG").is_some() {
        use tracing_subscriber::prelude::*;
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
                !holdline_engine::logging::carries_secrets(metadata)
            }));
        tracing_subscriber::registry().with(layer).init();
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(exit::FAILED, &format!("cannot start the runtime: {err}")),
    };
    let code = match cli.command {
        Command::Tail(args) => runtime.block_on(tail(args)),
        Command::Publish(args) => runtime.block_on(publish(args)),
        Command::Login { url, oidc, .. } if oidc.oidc.is_some() => match parse_url(&url) {
            Ok((url, _)) => runtime.block_on(login::oidc_login(&url, oidc)),
            Err(code) => code,
        },
        Command::Login { url, secret, .. } => login(&url, secret.secret()),
        Command::Logout { url } => logout(&url),
    };
    ExitCode::from(code)
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("holdline-cli: {message}");
    ExitCode::from(code)
}

fn complain(message: &str) {
    eprintln!("holdline-cli: {message}");
}

fn parse_url(input: &str) -> Result<(FeedUrl, Option<Token>), u8> {
    FeedUrl::parse(input).map_err(|err| {
        complain(&err.to_string());
        exit::USAGE
    })
}

/// The profile of `--profile FILE` or `--protocol NAME`; `holdline.v1`
/// without either. A refused profile is a usage error (exit 2).
fn load_profile(connection: &Connection) -> Result<Profile, u8> {
    let refused = |message: String| {
        complain(&message);
        exit::USAGE
    };
    match (&connection.profile, &connection.protocol) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| refused(format!("cannot read the profile {}: {e}", path.display())))?;
            Profile::parse(&text).map_err(|e| refused(format!("{}: {e}", path.display())))
        }
        (None, Some(name)) => Profile::for_protocol(name).map_err(|e| refused(e.to_string())),
        (None, None) => Ok(Profile::holdline()),
    }
}

fn engine_config(
    url: FeedUrl,
    credential: Credential,
    connection: &Connection,
    profile: Profile,
) -> Result<EngineConfig, u8> {
    let proxy = proxy_setting(&url, &connection.proxy)?;
    let client_certificate = client_certificate(&url, connection)?;
    let mut config = EngineConfig::new(url, None).with_profile(profile);
    credential.apply(&mut config);
    config.backoff = BackoffConfig::with_limits_ms(
        Some(connection.backoff_initial_ms),
        Some(connection.backoff_max_ms),
    );
    config.extra_ca_file = connection.ca_file.clone();
    config.proxy = proxy;
    config.client_certificate = client_certificate;
    Ok(config)
}

/// `--proxy`. A proxy URL with a user name and no password takes the
/// password stored for the server (`login URL --secret proxy-password`).
/// An error never repeats the URL it was given: it may hold a password.
fn proxy_setting(url: &FeedUrl, given: &str) -> Result<ProxySetting, u8> {
    let setting = ProxySetting::parse(given).map_err(|err| {
        complain(&format!("--proxy: {err}"));
        exit::USAGE
    })?;
    let ProxySetting::Url(proxy) = setting else {
        return Ok(setting);
    };
    let Some(credentials) = &proxy.credentials else {
        return Ok(ProxySetting::Url(proxy));
    };
    if !credentials.password.is_empty() {
        return Ok(ProxySetting::Url(proxy));
    }
    let password = match holdline_credentials::load_secret(url, Secret::ProxyPassword) {
        Ok(password) => password,
        Err(err) => {
            complain(&format!("the proxy password cannot be read: {err}"));
            None
        }
    };
    let credentials = ProxyCredentials {
        username: credentials.username.clone(),
        password: password.unwrap_or_else(|| Token::new("")),
    };
    Ok(ProxySetting::Url(proxy.with_credentials(Some(credentials))))
}

/// `--client-cert` (and `--client-key`): PEM files, or a PKCS#12 file and
/// its passphrase from HOLDLINE_CLIENT_KEY_PASSWORD or the keyring.
fn client_certificate(
    url: &FeedUrl,
    connection: &Connection,
) -> Result<Option<ClientCertificate>, u8> {
    let Some(certificate) = connection.client_cert.clone() else {
        return Ok(None);
    };
    if let Some(key) = connection.client_key.clone() {
        return Ok(Some(ClientCertificate::Pem { certificate, key }));
    }
    let is_pkcs12 = certificate
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("p12") || e.eq_ignore_ascii_case("pfx"));
    if !is_pkcs12 {
        complain(
            "--client-cert takes a PKCS#12 file (.p12, .pfx), or a PEM certificate with --client-key",
        );
        return Err(exit::USAGE);
    }
    let passphrase = match std::env::var("HOLDLINE_CLIENT_KEY_PASSWORD") {
        Ok(passphrase) => Some(Token::new(passphrase)),
        Err(_) => holdline_credentials::load_secret(url, Secret::ClientKeyPassphrase)
            .unwrap_or_else(|err| {
                complain(&format!(
                    "the client certificate passphrase cannot be read: {err}"
                ));
                None
            }),
    };
    Ok(Some(ClientCertificate::Pkcs12 {
        file: certificate,
        // A PKCS#12 file may have no passphrase at all.
        passphrase: passphrase.unwrap_or_else(|| Token::new("")),
    }))
}

fn default_state_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "holdline")
        .map(|dirs| dirs.data_dir().join("cli"))
        .unwrap_or_else(|| PathBuf::from(".holdline"))
}

/// What a terminal state means for the exit code.
fn exit_for_state(state: &ConnectionState) -> Option<(u8, String)> {
    match state {
        ConnectionState::NeedsLogin { reason } => Some((exit::NEEDS_LOGIN, reason.clone())),
        ConnectionState::Stopped { reason } => Some((exit::TERMINAL, reason.clone())),
        _ => None,
    }
}

async fn tail(args: TailArgs) -> u8 {
    let (url, url_token) = match parse_url(&args.url) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let profile = match load_profile(&args.connection) {
        Ok(profile) => profile,
        Err(code) => return code,
    };
    if args.feeds.is_empty() && profile.protocol() != holdline_engine::profile::protocol::RAW {
        complain("name at least one --feed to follow");
        return exit::USAGE;
    }
    let decoder = match args.decode.as_deref().map(Decoder::parse).transpose() {
        Ok(decoder) => decoder,
        Err(err) => {
            complain(&format!("--decode: {err}"));
            return exit::USAGE;
        }
    };
    let credential = Credential::resolve(&url, url_token);
    let (stores, output) = match open_progress(&args, url.server_key()) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let mut output = output.decoding(decoder);
    let config = match engine_config(url, credential, &args.connection, profile) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let (engine, mut deliveries) = match Engine::start(config, stores) {
        Ok(started) => started,
        Err(err) => {
            complain(&err.to_string());
            return exit::FAILED;
        }
    };
    let mut events = engine.events();
    let start = if args.from_start {
        StartFrom::Beginning
    } else {
        StartFrom::Live
    };
    for feed in &args.feeds {
        if let Err(err) = engine.subscribe(feed, start).await {
            complain(&err.to_string());
            return exit::USAGE;
        }
    }
    let _ = engine.connect().await;
    let mut printed = 0u64;
    let limit = args.max_events;
    let mut code = exit::DONE;
    let mut idle_flush = tokio::time::interval(Duration::from_millis(250));
    let signal = shutdown_signal();
    tokio::pin!(signal);
    if limit == Some(0) {
        engine.shutdown().await;
        return exit::DONE;
    }
    loop {
        tokio::select! {
            delivery = deliveries.recv() => {
                let Some(delivery) = delivery else { break };
                if let Err(err) = output.write_delivery(&delivery) {
                    // A closed pipe means the reader went away: nothing to
                    // say. A file that cannot be written is worth a word.
                    if err.kind() != std::io::ErrorKind::BrokenPipe {
                        complain(&format!("cannot write the output: {err}"));
                        code = exit::FAILED;
                    }
                    break;
                }
                if let Err(err) = deliveries.commit(&delivery) {
                    complain(&format!("cursor not saved: {err}"));
                }
                if matches!(delivery, holdline_engine::Delivery::Event(_)) {
                    printed += 1;
                    if limit.is_some_and(|n| printed >= n) {
                        break;
                    }
                }
            }
            event = events.recv() => match event {
                Ok(event) => {
                    describe_event(&event);
                    if let EngineEvent::State(state) = &event
                        && let Some((exit_code, _)) = exit_for_state(state)
                    {
                        code = exit_code;
                        break;
                    }
                }
                Err(RecvError::Lagged(n)) => complain(&format!("{n} history entries skipped (stderr too slow)")),
                Err(RecvError::Closed) => break,
            },
            _ = idle_flush.tick() => {
                if let Err(err) = deliveries.flush() {
                    complain(&format!("cursors not saved: {err}"));
                }
            }
            () = &mut signal => break,
        }
    }
    engine.shutdown().await;
    if let Err(err) = deliveries.flush() {
        complain(&format!("cursors not saved: {err}"));
    }
    code
}

/// Where `tail` keeps its cursors and writes its lines: a cursor file in
/// the state directory and stdout, or the `--output` file and its ledger.
fn open_progress(args: &TailArgs, server: &str) -> Result<(Stores, Output), u8> {
    if let Some(path) = &args.output {
        let (ledger, recovery) = match OutputLedger::open(path, server) {
            Ok(opened) => opened,
            Err(err @ ledger::OpenError::OtherServer { .. }) => {
                complain(&err.to_string());
                return Err(exit::USAGE);
            }
            Err(err) => {
                complain(&err.to_string());
                return Err(exit::FAILED);
            }
        };
        report_recovery(&ledger, &recovery);
        let ledger = Arc::new(ledger);
        let stores = Stores {
            cursors: ledger.clone(),
            ..Stores::default()
        };
        return Ok((stores, Output::ledger(ledger)));
    }
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    let (cursors, recovery) = match FileCursorStore::open(state_dir.join("cursors.json")) {
        Ok(opened) => opened,
        Err(err) => {
            complain(&format!("cannot open the cursor store: {err}"));
            return Err(exit::FAILED);
        }
    };
    if let Some(FileRecovery::MovedAside { to, reason }) = recovery {
        complain(&format!(
            "{reason}; moved to {} and starting without cursors",
            to.display()
        ));
    }
    let stores = Stores {
        cursors: Arc::new(cursors),
        ..Stores::default()
    };
    Ok((stores, Output::stdout()))
}

fn report_recovery(ledger: &OutputLedger, recovery: &Recovery) {
    let path = ledger.path().display();
    if let Some(to) = &recovery.moved_aside {
        complain(&format!(
            "the progress record of {path} was unreadable; moved to {} and reading {path} from its start",
            to.display()
        ));
    }
    if recovery.shorter_than_recorded {
        complain(&format!(
            "{path} is shorter than recorded (truncated or replaced?); continuing after the saved cursors"
        ));
    }
    if recovery.cut_bytes > 0 {
        complain(&format!(
            "cut an incomplete last line ({} bytes) an interrupted run left in {path}",
            recovery.cut_bytes
        ));
    }
    if recovery.foreign_lines > 0 {
        complain(&format!(
            "{} lines in {path} are not holdline-cli output; they were skipped",
            recovery.foreign_lines
        ));
    }
}

async fn publish(args: PublishArgs) -> u8 {
    let (url, url_token) = match parse_url(&args.url) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let data: Box<RawValue> = match serde_json::from_str(&args.data) {
        Ok(data) => data,
        Err(err) => {
            complain(&format!("--data is not valid JSON: {err}"));
            return exit::USAGE;
        }
    };
    let profile = match load_profile(&args.connection) {
        Ok(profile) => profile,
        Err(code) => return code,
    };
    let credential = Credential::resolve(&url, url_token);
    // The consumer's saved session, read and never written: the publish
    // connects under an id of its own derived from it.
    let cursors = MemoryCursorStore::default();
    let state_dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
    if let Some(mark) =
        FileCursorStore::read_session(&state_dir.join("cursors.json"), url.server_key())
        && let Err(err) = cursors.save_session(url.server_key(), &mark)
    {
        complain(&err.to_string());
    }
    let mut config = match engine_config(url, credential, &args.connection, profile) {
        Ok(config) => config,
        Err(code) => return code,
    };
    config.publisher = true;
    let stores = Stores {
        cursors: Arc::new(cursors),
        ..Stores::default()
    };
    let (engine, _deliveries) = match Engine::start(config, stores) {
        Ok(started) => started,
        Err(err) => {
            complain(&err.to_string());
            return exit::FAILED;
        }
    };
    let mut events = engine.events();
    let _ = engine.connect().await;
    let pending = match engine.publish(&args.feed, data, args.id.clone()).await {
        Ok(pending) => pending,
        Err(err) => {
            complain(&err.to_string());
            return exit::USAGE;
        }
    };
    let id = pending.id().to_owned();
    let signal = shutdown_signal();
    tokio::pin!(signal);
    tokio::pin!(pending);
    let code = loop {
        tokio::select! {
            outcome = &mut pending => break match outcome {
                Ok(ack) => {
                    let _ = Output::stdout().write_ack(&ack.feed, ack.seq, &ack.id);
                    exit::DONE
                }
                Err(PublishError::Rejected { server_code, message }) => {
                    complain(&format!("the server refused publish {id}: {message} ({server_code})"));
                    if server_code == "forbidden" { exit::TERMINAL } else { exit::FAILED }
                }
                Err(err) => {
                    complain(&err.to_string());
                    exit::FAILED
                }
            },
            event = events.recv() => match event {
                Ok(event) => {
                    describe_event(&event);
                    if let EngineEvent::State(state) = &event
                        && let Some((exit_code, _)) = exit_for_state(state)
                    {
                        break exit_code;
                    }
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => break exit::FAILED,
            },
            () = &mut signal => {
                complain(&format!("interrupted before publish {id} was acknowledged"));
                break exit::FAILED;
            }
        }
    };
    engine.shutdown().await;
    code
}

fn login(url: &str, secret: Secret) -> u8 {
    let (url, _) = match parse_url(url) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let what = secret_words(secret);
    let mut input = String::new();
    if let Err(err) = std::io::stdin().read_to_string(&mut input) {
        complain(&format!("cannot read the {what} from stdin: {err}"));
        return exit::USAGE;
    }
    let value = Token::new(input.lines().next().unwrap_or_default().trim());
    if value.is_empty() {
        complain(&format!(
            "no {what} on stdin (e.g. `printf %s \"$SECRET\" | holdline-cli login URL`)"
        ));
        return exit::USAGE;
    }
    match holdline_credentials::store_secret(&url, secret, &value) {
        Ok(()) => {
            eprintln!("{what} stored in the OS keyring for {url}");
            exit::DONE
        }
        Err(err) => {
            complain(&err.to_string());
            exit::FAILED
        }
    }
}

fn logout(url: &str) -> u8 {
    let (url, _) = match parse_url(url) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let mut deleted = Vec::new();
    for secret in Secret::ALL {
        match holdline_credentials::delete_secret(&url, secret) {
            Ok(true) => deleted.push(secret_words(secret)),
            Ok(false) => {}
            Err(err) => {
                complain(&err.to_string());
                return exit::FAILED;
            }
        }
    }
    if deleted.is_empty() {
        eprintln!("no token was stored for {url}");
    } else {
        eprintln!(
            "{} for {url} deleted from the OS keyring",
            deleted.join(", ")
        );
    }
    exit::DONE
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
