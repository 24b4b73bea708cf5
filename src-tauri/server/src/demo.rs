//! Demo feeds, so the app has something live to show with no network.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use serde_json::value::to_raw_value;
use tokio::sync::watch;
use tokio::time::{MissedTickBehavior, interval};

use serde_json::value::RawValue;

use crate::Shared;

pub const CLOCK: &str = "demo.clock";
pub const TICKER: &str = "demo.ticker";
pub const CHAT: &str = "demo.chat";
pub const TOKEN: &str = "demo";

/// Feeds only the server writes.
pub const READ_ONLY: [&str; 2] = [CLOCK, TICKER];

pub(crate) fn spawn(shared: Arc<Shared>, shutdown: watch::Receiver<bool>) {
    tokio::spawn(clock(shared.clone(), shutdown.clone()));
    tokio::spawn(ticker(shared.clone(), shutdown.clone()));
    tokio::spawn(async move {
        if let Ok(hello) = to_raw_value(&json!({
            "from": "holdline",
            "text": "Welcome to the demo chat. Anything published here reaches every subscriber."
        })) {
            publish(&shared, CHAT, &hello).await;
        }
    });
}

async fn publish(shared: &Shared, feed: &str, data: &RawValue) {
    if let Err(err) = shared.feeds.publish(feed, data, None).await {
        tracing::warn!(%err, feed, "a demo event was not stored");
    }
}

async fn clock(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                let now = holdline_protocol::now_ms();
                if let Ok(data) = to_raw_value(&json!({ "unix_ms": now })) {
                    publish(&shared, CLOCK, &data).await;
                }
            }
        }
    }
}

/// A random walk at about 20 events a second.
async fn ticker(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = interval(Duration::from_millis(50));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let symbols = ["HOLD", "LINE", "FEED"];
    let mut prices = [100.0f64, 42.0, 7.5];
    let mut turn = 0usize;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {
                let i = turn % symbols.len();
                turn += 1;
                let change = (fastrand::f64() - 0.5) * prices[i] * 0.004;
                prices[i] = (prices[i] + change).max(0.01);
                let data = json!({
                    "symbol": symbols[i],
                    "price": (prices[i] * 100.0).round() / 100.0,
                    "change": (change * 1000.0).round() / 1000.0,
                });
                if let Ok(data) = to_raw_value(&data) {
                    publish(&shared, TICKER, &data).await;
                }
            }
        }
    }
}
