//! The real app under Xvfb, fed by an in-process reference server at
//! rising rates (after a baseline with nothing flowing): per rate, the
//! time between animation frames and the main thread's stalls (a 16 ms
//! timer's lateness) in the webview, how the Channel batched (messages
//! and items per second, items per message, items dropped because the UI was
//! behind), what the UI counted and the app process's CPU (one core is
//! 100%). Then memory: the app's RSS (its own
//! process and WebKit's) idle, and sampled through a soak at 5,000 events/s.
//!
//! ```sh
//! cargo build --release -p holdline
//! dbus-run-session -- cargo bench -p holdline-e2e --bench app_ui
//! ```
//! Env: HOLDLINE_APP_BINARY (default: target/release/holdline if built,
//! else target/debug/holdline), HOLDLINE_BENCH_RATES (comma list, default
//! 0,1000,2000,5000,10000,20000,50000; 0 is the baseline), HOLDLINE_BENCH_SECS per rate (5),
//! HOLDLINE_BENCH_SOAK_SECS (600; 0 skips the soak), HOLDLINE_BENCH_PAUSED
//! (set: the live view is paused, to tell drawing from delivery costs),
//! HOLDLINE_BENCH_RECORD (`off`: the record is turned off in Settings
//! first, to tell what keeping the record costs).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use holdline_e2e::{DrivenApp, app_binary, free_port, target_dir};
use holdline_server::{RunningServer, ServerConfig};
use serde_json::Value;
use serde_json::value::RawValue;

const TOKEN: &str = "bench-token";
const FEED: &str = "bench.load";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("HOLDLINE_APP_BINARY") {
        return PathBuf::from(path);
    }
    let release = target_dir().join("release/holdline");
    if release.is_file() {
        release
    } else {
        app_binary()
    }
}

/// Publishes `rate` events/s of ~100 bytes until `stop` is set; returns how
/// many it published.
fn feed_at(
    server: Arc<RunningServer>,
    rate: u64,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let due = (started.elapsed().as_secs_f64() * rate as f64) as u64;
            while sent < due {
                sent += 1;
                let data = RawValue::from_string(format!(
                    "{{\"n\":{sent},\"symbol\":\"HOLD\",\"price\":{}.{:02},\"note\":\"steady load for the live view\"}}",
                    100 + sent % 7,
                    sent % 100
                ))
                .expect("json");
                // The memory log answers at once: nothing waits here.
                let _ = futures_util::FutureExt::now_or_never(server.publish(FEED, &data));
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        sent
    })
}

/// CPU seconds the process has used (all its threads, user and system),
/// from `/proc/PID/stat` in clock ticks.
fn cpu_seconds(pid: u32) -> f64 {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command's closing parenthesis: utime and
            // stime are the 12th and 13th.
            let rest: Vec<u64> = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse().ok())
                .collect();
            Some(rest.iter().sum::<u64>())
        })
        .unwrap_or(0);
    // The kernel's USER_HZ, 100 on every Linux this runs on.
    ticks as f64 / 100.0
}

/// RSS and peak RSS (KiB) of the app's process and of every process below
/// it (WebKit's web and network processes).
fn memory_of(root_pid: u32) -> (u64, u64, u64, u64) {
    let field = |pid: u32, name: &str| -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|l| l.starts_with(name))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    };
    let mut children = Vec::new();
    let mut queue = vec![root_pid];
    while let Some(pid) = queue.pop() {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            break;
        };
        for entry in entries.flatten() {
            let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let parent = std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    stat.rsplit(')')
                        .next()
                        .and_then(|rest| rest.split_whitespace().nth(1))
                        .and_then(|p| p.parse::<u32>().ok())
                });
            if parent == Some(pid) {
                children.push(child);
                queue.push(child);
            }
        }
    }
    let app_rss = field(root_pid, "VmRSS:");
    let app_peak = field(root_pid, "VmHWM:");
    let web_rss = children.iter().map(|&p| field(p, "VmRSS:")).sum();
    let web_peak = children.iter().map(|&p| field(p, "VmHWM:")).sum();
    (app_rss, app_peak, web_rss, web_peak)
}

fn find_app_pid(binary: &Path) -> Option<u32> {
    let wanted = std::fs::canonicalize(binary).ok()?;
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_string_lossy().parse().ok()?;
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            (exe == wanted).then_some(pid)
        })
}

/// Two probes in the webview: the time between animation frames, and how
/// late a 16 ms timer fires (the main thread's stalls: while it is busy, no
/// frame can be made, whatever the compositor's pace).
const FRAME_PROBE: &str = r#"
    const b = { deltas: [], lags: [], last: performance.now() };
    globalThis.__bench = b;
    const tick = (t) => { b.deltas.push(t - b.last); b.last = t; requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
    let due = performance.now() + 16;
    const beat = () => { const now = performance.now(); b.lags.push(Math.max(0, now - due)); due = now + 16; setTimeout(beat, 16); };
    setTimeout(beat, 16);
"#;

const TAKE: &str = r#"
    const b = globalThis.__bench;
    const deltas = b.deltas; b.deltas = [];
    const lags = b.lags; b.lags = [];
    const s = globalThis.__holdlineChannelStats;
    return { deltas, lags, messages: s.messages, items: s.items, dropped: s.dropped };
"#;

fn sorted(values: &Value) -> Vec<f64> {
    let mut v: Vec<f64> = values
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    v.sort_by(f64::total_cmp);
    v
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let binary = binary();
    let rates: Vec<u64> = std::env::var("HOLDLINE_BENCH_RATES")
        .unwrap_or_else(|_| "0,1000,2000,5000,10000,20000,50000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let secs: u64 = env_or("HOLDLINE_BENCH_SECS", 5);
    let soak_secs: u64 = env_or("HOLDLINE_BENCH_SOAK_SECS", 600);
    println!("app: {}", binary.display());

    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = Arc::new(
        holdline_server::start(ServerConfig {
            listen,
            tokens: vec![TOKEN.into()],
            retain: 10_000,
            send_queue: 1 << 16,
            ..ServerConfig::default()
        })
        .await
        .expect("server"),
    );
    let home = tempfile::tempdir().expect("home");
    let app = DrivenApp::launch_binary(&binary, home.path(), &[]).await;
    app.text_until("[data-testid=state]", "the Local demo", |t| t == "open")
        .await;
    let recording = std::env::var("HOLDLINE_BENCH_RECORD").map_or(true, |v| v != "off");
    if !recording {
        // Before the login: a server's pump takes the setting when it starts.
        app.click("[data-testid=tab-settings]").await;
        app.click("[data-testid=settings-record]").await;
        app.click("[data-testid=settings-save]").await;
        app.text_until("[data-testid=settings-saved]", "the settings saved", |t| {
            !t.is_empty()
        })
        .await;
        app.click("[data-testid=tab-live]").await;
    }
    println!("record: {}", if recording { "on" } else { "off" });
    // Session only: no keyring needed.
    app.log_in(&server, &format!("ws://{listen}/"), TOKEN, false)
        .await;
    app.type_into("[data-testid=feed-name]", FEED).await;
    app.click("[data-testid=feed-subscribe]").await;
    while server.stats().connections == 0 || server.head(FEED).await.unwrap().is_none() {
        let data = RawValue::from_string("{\"warmup\":true}".into()).expect("json");
        let _ = server.publish(FEED, &data).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if std::env::var_os("HOLDLINE_BENCH_PAUSED").is_some() {
        // Deliveries still flow and are counted; the list is not redrawn.
        app.click("#live-pause").await;
    }
    let pid = find_app_pid(&binary).expect("the app's process");
    app.client
        .execute(FRAME_PROBE, vec![])
        .await
        .expect("probe");

    // Idle: connected, subscribed, nothing flowing.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (rss, peak, web_rss, web_peak) = memory_of(pid);
    println!(
        "idle: app RSS {} MiB (peak {}), WebKit processes {} MiB (peak {})",
        rss / 1024,
        peak / 1024,
        web_rss / 1024,
        web_peak / 1024
    );

    println!(
        "{:>7} | {:>9} {:>7} {:>7} | {:>9} {:>7} {:>6} | {:>8} {:>9} {:>8} {:>8} | {:>7}",
        "rate/s",
        "frame p50",
        "p99",
        "max ms",
        "stall p99",
        "max ms",
        ">50ms",
        "msgs/s",
        "items/s",
        "per msg",
        "dropped",
        "app cpu"
    );
    let mut best = None;
    for rate in rates {
        let before: Value = app.client.execute(TAKE, vec![]).await.expect("take");
        let cpu_before = cpu_seconds(pid);
        let stop = Arc::new(AtomicBool::new(false));
        let feeder = feed_at(server.clone(), rate, stop.clone());
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
        let published = feeder.join().expect("feeder");
        // Let the last of it arrive before counting.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after: Value = app.client.execute(TAKE, vec![]).await.expect("take");
        let cpu = cpu_seconds(pid) - cpu_before;
        let deltas = sorted(&after["deltas"]);
        let lags = sorted(&after["lags"]);
        let over = lags.iter().filter(|d| **d > 50.0).count();
        let delta =
            |key: &str| after[key].as_f64().unwrap_or(0.0) - before[key].as_f64().unwrap_or(0.0);
        let (messages, items, dropped) = (delta("messages"), delta("items"), delta("dropped"));
        let span = secs as f64 + 0.5;
        println!(
            "{rate:>7} | {:>9.1} {:>7.1} {:>7.1} | {:>9.1} {:>7.1} {over:>6} | {:>8.0} {:>9.0} {:>8.1} {:>8.0} | {:>6.0}%   (published {published})",
            percentile(&deltas, 0.5),
            percentile(&deltas, 0.99),
            deltas.last().copied().unwrap_or(0.0),
            percentile(&lags, 0.99),
            lags.last().copied().unwrap_or(0.0),
            messages / span,
            items / span,
            if messages > 0.0 {
                items / messages
            } else {
                0.0
            },
            dropped,
            cpu / span * 100.0,
        );
        if over == 0 && rate > 0 {
            best = Some(rate);
        }
    }
    match best {
        Some(rate) => {
            println!("highest rate with no main-thread stall over 50 ms: {rate} events/s")
        }
        None => println!("every rate had a main-thread stall over 50 ms"),
    }
    // What the record kept of it, as Settings shows it.
    app.click("[data-testid=tab-settings]").await;
    let usage = app
        .text_until(
            "[data-testid=settings-record-usage]",
            "the record's usage",
            |t| t.contains("holds"),
        )
        .await;
    println!("record after the rates: {usage}");
    app.click("[data-testid=tab-live]").await;

    if soak_secs > 0 {
        let stop = Arc::new(AtomicBool::new(false));
        let feeder = feed_at(server.clone(), 5_000, stop.clone());
        let started = Instant::now();
        println!("soak at 5000 events/s for {soak_secs} s:");
        let mut samples = Vec::new();
        while started.elapsed() < Duration::from_secs(soak_secs) {
            tokio::time::sleep(Duration::from_secs(30).min(Duration::from_secs(soak_secs))).await;
            let sample = memory_of(pid);
            println!(
                "  t={:>4} s: app RSS {} MiB (peak {}), WebKit {} MiB (peak {})",
                started.elapsed().as_secs(),
                sample.0 / 1024,
                sample.1 / 1024,
                sample.2 / 1024,
                sample.3 / 1024
            );
            samples.push(sample);
        }
        stop.store(true, Ordering::Relaxed);
        let published = feeder.join().expect("feeder");
        let counted = app
            .text_until("#live-count", "the live count", |t| !t.is_empty())
            .await;
        println!("soak published {published}; the live view says: {counted}");
        if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
            println!(
                "soak RSS: app {} → {} MiB, WebKit {} → {} MiB (first → last sample)",
                first.0 / 1024,
                last.0 / 1024,
                first.2 / 1024,
                last.2 / 1024
            );
        }
    }
    let _ = app.client.clone().close().await;
}
