//! Starts the system trigger sources and hands their triggers to the hub.

use std::sync::Arc;
use std::time::Duration;

use holdline_engine::{HistoryKind, Level};
use holdline_triggers::{SystemTrigger, clock_jump, network};
use serde_json::json;
use tokio::sync::mpsc;

use crate::hub::Hub;

pub fn start(hub: Arc<Hub>) {
    let (tx, mut rx) = mpsc::channel::<SystemTrigger>(32);
    tokio::spawn(clock_jump::watch(
        clock_jump::SystemClocks::default(),
        Duration::from_secs(5),
        Duration::from_secs(10),
        tx.clone(),
    ));
    let network_tx = tx.clone();
    let network_hub = hub.clone();
    tokio::spawn(async move {
        if let Err(err) = network::watch(
            Duration::from_secs(2),
            Duration::from_millis(500),
            network_tx,
        )
        .await
        {
            network_hub.record(
                HistoryKind::NetworkChange,
                Level::Warn,
                format!("network changes cannot be watched here: {err}"),
                json!({ "error": err.to_string() }),
            );
        }
    });
    #[cfg(target_os = "linux")]
    {
        let logind_tx = tx.clone();
        let logind_hub = hub.clone();
        tokio::spawn(async move {
            if let Err(err) = holdline_triggers::logind::watch_system(logind_tx).await {
                logind_hub.record(
                    HistoryKind::Wake,
                    Level::Info,
                    format!("logind is not reachable ({err}); wakes are detected from clock jumps"),
                    json!({ "error": err.to_string() }),
                );
            }
        });
    }
    #[cfg(target_os = "macos")]
    holdline_triggers::macos_power::watch(tx.clone());
    #[cfg(windows)]
    let windows_power = match holdline_triggers::windows_power::watch(tx.clone()) {
        Ok(registration) => Some(registration),
        Err(err) => {
            hub.record(
                HistoryKind::Wake,
                Level::Info,
                format!("Windows power notifications are not available ({err}); wakes are detected from clock jumps"),
                json!({ "error": err.to_string() }),
            );
            None
        }
    };
    drop(tx);
    tokio::spawn(async move {
        // The OS calls into the registration for as long as triggers flow.
        #[cfg(windows)]
        let _windows_power = windows_power;
        while let Some(trigger) = rx.recv().await {
            hub.on_trigger(trigger).await;
        }
    });
}
