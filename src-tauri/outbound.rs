//! Pushing to the UI: items queue here and a flusher sends them over every
//! attached `tauri::ipc::Channel` at most ~60 times a second, in messages
//! well under 8 KiB. The UI never polls.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::value::RawValue;
use tauri::ipc::Channel;

use crate::dto::{UiBatch, UiItem};

pub const FLUSH_EVERY: Duration = Duration::from_millis(16);
/// Serialized size a message aims to stay under.
pub const MESSAGE_BUDGET: usize = 7 * 1024;
/// Items waiting for the UI before the oldest are dropped (and counted).
pub const PENDING_LIMIT: usize = 100_000;
/// Deliveries kept for a window that attaches (or reloads) later.
pub const RECENT_LIMIT: usize = 500;

#[derive(Default)]
struct State {
    pending: VecDeque<Box<RawValue>>,
    recent: VecDeque<Box<RawValue>>,
    dropped: u64,
    channels: Vec<Channel<UiBatch>>,
}

#[derive(Default)]
pub struct Outbound {
    state: Mutex<State>,
}

impl Outbound {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(&self, item: UiItem) {
        let keep = item.is_delivery();
        let Ok(json) = serde_json::value::to_raw_value(&item) else {
            return;
        };
        let mut state = self.lock();
        if keep {
            if state.recent.len() >= RECENT_LIMIT {
                state.recent.pop_front();
            }
            state.recent.push_back(json.clone());
        }
        if state.channels.is_empty() {
            return;
        }
        if state.pending.len() >= PENDING_LIMIT {
            state.pending.pop_front();
            state.dropped += 1;
        }
        state.pending.push_back(json);
    }

    pub fn attach(&self, channel: Channel<UiBatch>) {
        self.lock().channels.push(channel);
    }

    pub fn recent(&self) -> Vec<Box<RawValue>> {
        self.lock().recent.iter().cloned().collect()
    }

    pub fn clear_recent(&self) {
        self.lock().recent.clear();
    }

    /// Sends what is pending; drops channels whose window is gone. The
    /// sending happens outside the lock, so the delivery pump that pushes
    /// meanwhile never waits on IPC.
    pub fn flush(&self) {
        let (items, dropped, channels) = {
            let mut state = self.lock();
            if state.pending.is_empty() {
                return;
            }
            let items: Vec<Box<RawValue>> = state.pending.drain(..).collect();
            let dropped = std::mem::take(&mut state.dropped);
            (items, dropped, state.channels.clone())
        };
        let batches = split(items, dropped);
        let gone: Vec<u32> = channels
            .iter()
            .filter(|channel| {
                !batches
                    .iter()
                    .all(|batch| channel.send(batch.clone()).is_ok())
            })
            .map(|channel| channel.id())
            .collect();
        if !gone.is_empty() {
            self.lock()
                .channels
                .retain(|channel| !gone.contains(&channel.id()));
        }
    }

    pub async fn run_flusher(self: std::sync::Arc<Self>) {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            self.flush();
        }
    }
}

/// Cuts items into messages of at most `MESSAGE_BUDGET` bytes each (a single
/// larger item travels alone).
pub fn split(items: Vec<Box<RawValue>>, dropped: u64) -> Vec<UiBatch> {
    let mut batches = Vec::new();
    let mut current = Vec::new();
    let mut size = 32;
    for item in items {
        let len = item.get().len() + 1;
        if !current.is_empty() && size + len > MESSAGE_BUDGET {
            batches.push(UiBatch {
                items: std::mem::take(&mut current),
                dropped: 0,
            });
            size = 32;
        }
        size += len;
        current.push(item);
    }
    if !current.is_empty() {
        batches.push(UiBatch {
            items: current,
            dropped: 0,
        });
    }
    if let Some(first) = batches.first_mut() {
        first.dropped = dropped;
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_stay_under_the_budget_and_keep_order() {
        let items: Vec<Box<RawValue>> = (0..2000)
            .map(|n| {
                RawValue::from_string(format!("{{\"n\":{n},\"pad\":\"{}\"}}", "x".repeat(80)))
                    .unwrap()
            })
            .collect();
        let batches = split(items, 3);
        assert!(batches.len() > 10);
        assert_eq!(batches[0].dropped, 3);
        let mut next = 0;
        for batch in &batches {
            let size = serde_json::to_string(batch).unwrap().len();
            assert!(size <= MESSAGE_BUDGET + 64, "{size}");
            for item in &batch.items {
                let value: serde_json::Value = serde_json::from_str(item.get()).unwrap();
                assert_eq!(value["n"], next);
                next += 1;
            }
        }
        assert_eq!(next, 2000);
    }
}
