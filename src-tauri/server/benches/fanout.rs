//! Server fan-out, against a baseline broadcast loop in the same run.
//!
//!   cargo bench -p holdline-server --bench fanout
//!
//! - 1,000 subscribers on one feed, 10 publishes/s for 10 s: delivery
//!   latency (publish to each subscriber's read) p50/p99/max.
//! - 100 subscribers, publishing as fast as the server takes it for 3 s:
//!   deliveries/s, and CPU time per 10,000 deliveries (the whole process:
//!   server and clients alike, so only the ratio between the two is fair).
//!
//! The baseline is the least a broadcast server can do: accept, upgrade,
//! and push one pre-serialized frame to every client's queue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use holdline_server::{RunningServer, ServerConfig};
use serde_json::value::RawValue;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "bench";

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// The process's CPU time (user and system) so far.
#[cfg(unix)]
fn cpu_ms() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we hand it.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// The process's CPU time (user and kernel) so far.
#[cfg(windows)]
fn cpu_ms() -> f64 {
    use windows::Win32::Foundation::FILETIME;
    use windows::Win32::System::Threading::{GetCurrentProcess, GetProcessTimes};
    let [mut created, mut exited, mut kernel, mut user] = [FILETIME::default(); 4];
    // SAFETY: GetProcessTimes writes into the four structs we hand it.
    let read = unsafe {
        GetProcessTimes(
            GetCurrentProcess(),
            &mut created,
            &mut exited,
            &mut kernel,
            &mut user,
        )
    };
    if read.is_err() {
        return f64::NAN;
    }
    // FILETIME counts 100 ns intervals.
    let ms = |t: FILETIME| {
        (((t.dwHighDateTime as u64) << 32) | t.dwLowDateTime as u64) as f64 / 10_000.0
    };
    ms(kernel) + ms(user)
}

/// What a bench target offers: a URL and a way to publish one event.
enum Target {
    Holdline(RunningServer),
    Baseline(Baseline),
}

impl Target {
    fn url(&self) -> String {
        match self {
            Target::Holdline(server) => server.url(),
            Target::Baseline(b) => format!("ws://{}", b.addr),
        }
    }

    async fn publish(&self, seq: u64) {
        let data = format!(
            r#"{{"sent_us":{},"pad":"0123456789abcdef0123456789abcdef"}}"#,
            now_us()
        );
        match self {
            Target::Holdline(server) => {
                let data = RawValue::from_string(data).unwrap();
                server.publish("fan", &data).await.unwrap();
            }
            Target::Baseline(b) => {
                let frame: Utf8Bytes =
                    format!(r#"{{"type":"event","feed":"fan","seq":{seq},"data":{data},"ts":0}}"#)
                        .into();
                let mut clients = b.clients.lock().await;
                clients.retain(|c| c.try_send(frame.clone()).is_ok());
            }
        }
    }
}

struct Baseline {
    addr: SocketAddr,
    clients: Arc<Mutex<Vec<mpsc::Sender<Utf8Bytes>>>>,
}

async fn baseline() -> Baseline {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let clients: Arc<Mutex<Vec<mpsc::Sender<Utf8Bytes>>>> = Arc::default();
    let registry = clients.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let registry = registry.clone();
            tokio::spawn(async move {
                stream.set_nodelay(true).unwrap();
                let Ok(mut ws) = holdline_testkit::ws::accept(stream, true).await else {
                    return;
                };
                let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(8192);
                registry.lock().await.push(tx);
                // Answer the client's subscribe so both targets look alike.
                if let Some(Ok(Message::Text(_))) = ws.next().await {
                    let _ = ws.send(Message::text(r#"{"type":"subscribed"}"#)).await;
                }
                while let Some(frame) = rx.recv().await {
                    if ws.feed(Message::Text(frame)).await.is_err() {
                        return;
                    }
                    while let Ok(more) = rx.try_recv() {
                        if ws.feed(Message::Text(more)).await.is_err() {
                            return;
                        }
                    }
                    if ws.flush().await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Baseline { addr, clients }
}

/// Connects `n` subscribers; each records the latency of every event.
async fn subscribers(
    url: &str,
    n: usize,
    delivered: Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<Vec<u64>>> {
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(n);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let mut request = holdline_testkit::ws::request(url).unwrap();
        request.headers_mut().insert(
            "Authorization",
            HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
        );
        let ready = ready_tx.clone();
        let delivered = delivered.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
            ws.send(Message::text(format!(
                r#"{{"type":"subscribe","id":"s{i}","feed":"fan"}}"#
            )))
            .await
            .unwrap();
            let mut samples = Vec::new();
            let mut told = false;
            while let Some(Ok(message)) = ws.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                if text.contains(r#""type":"subscribed""#) && !told {
                    told = true;
                    let _ = ready.send(()).await;
                    continue;
                }
                if let Some(at) = text.find(r#""sent_us":"#) {
                    let digits: String = text[at + 10..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    if let Ok(sent) = digits.parse::<u64>() {
                        samples.push(now_us().saturating_sub(sent));
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            samples
        }));
    }
    drop(ready_tx);
    for _ in 0..n {
        ready_rx
            .recv()
            .await
            .expect("every subscriber is subscribed");
    }
    tasks
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn holdline_target() -> Target {
    Target::Holdline(
        holdline_server::start(ServerConfig {
            tokens: vec![TOKEN.into()],
            retain: 1000,
            ..ServerConfig::default()
        })
        .await
        .unwrap(),
    )
}

async fn stop(target: Target, tasks: Vec<tokio::task::JoinHandle<Vec<u64>>>) -> Vec<u64> {
    match target {
        Target::Holdline(server) => server.shutdown().await,
        Target::Baseline(b) => b.clients.lock().await.clear(),
    }
    let mut all = Vec::new();
    for task in tasks {
        task.abort();
        if let Ok(samples) = task.await {
            all.extend(samples);
        }
    }
    all
}

async fn latency_run(target: Target) -> (u64, Vec<u64>) {
    let delivered = Arc::new(AtomicU64::new(0));
    let tasks = subscribers(&target.url(), 1000, delivered.clone()).await;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for seq in 1..=100 {
        tick.tick().await;
        target.publish(seq).await;
    }
    // Wait for the last publish to reach everyone (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    while delivered.load(Ordering::Relaxed) < 100_000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let count = delivered.load(Ordering::Relaxed);
    // The samples are gathered as the tasks end.
    let samples = collect(target, tasks).await;
    (count, samples)
}

async fn collect(target: Target, tasks: Vec<tokio::task::JoinHandle<Vec<u64>>>) -> Vec<u64> {
    // Close every connection so each task returns its samples.
    match &target {
        Target::Holdline(server) => server.close_all(1000, "bench over"),
        Target::Baseline(b) => b.clients.lock().await.clear(),
    }
    let mut all = Vec::new();
    for task in tasks {
        if let Ok(Ok(samples)) = tokio::time::timeout(Duration::from_secs(10), task).await {
            all.extend(samples);
        }
    }
    if let Target::Holdline(server) = target {
        server.shutdown().await;
    }
    all.sort_unstable();
    all
}

async fn rate_run(target: Target) -> (f64, f64) {
    let delivered = Arc::new(AtomicU64::new(0));
    let tasks = subscribers(&target.url(), 100, delivered.clone()).await;
    let cpu_before = cpu_ms();
    let started = Instant::now();
    let mut seq = 0;
    while started.elapsed() < Duration::from_secs(3) {
        for _ in 0..100 {
            seq += 1;
            target.publish(seq).await;
        }
        tokio::task::yield_now().await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let count = delivered.load(Ordering::Relaxed) as f64;
    let cpu = cpu_ms() - cpu_before;
    let _ = stop(target, tasks).await;
    (count / elapsed, cpu / (count / 10_000.0))
}

/// The baseline or the reference server, ready for subscribers.
async fn start_target(name: &str) -> Target {
    if name == "baseline" {
        Target::Baseline(baseline().await)
    } else {
        holdline_target().await
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("## fan-out latency: 1,000 subscribers, 10 publishes/s for 10 s (µs)");
    println!("| target | deliveries | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for name in ["baseline", "holdline-server"] {
        let (count, samples) = latency_run(start_target(name).await).await;
        println!(
            "| {name} | {count} | {} | {} | {} |",
            percentile(&samples, 0.5),
            percentile(&samples, 0.99),
            samples.last().copied().unwrap_or_default()
        );
    }
    println!();
    println!("## fan-out rate: 100 subscribers, publishing flat out for 3 s");
    println!("| target | deliveries/s | CPU ms per 10k deliveries |");
    println!("|---|---|---|");
    let mut results = Vec::new();
    for name in ["baseline", "holdline-server"] {
        let (rate, cpu) = rate_run(start_target(name).await).await;
        println!("| {name} | {rate:.0} | {cpu:.1} |");
        results.push((rate, cpu));
    }
    println!();
    println!(
        "holdline-server / baseline: deliveries/s {:.2}, CPU per delivery {:.2}",
        results[1].0 / results[0].0,
        results[1].1 / results[0].1
    );
}
