//! The Holdline desktop app: the only code that knows Tauri. It wraps the
//! engine (`holdline-engine`) in commands, keeps settings, tokens and
//! history, and streams state to the UI in `ui/`.

include!("command_list.rs");

macro_rules! handlers {
    ($($name:ident),*) => {
        tauri::generate_handler![$(commands::$name),*]
    };
}

macro_rules! names {
    ($($name:ident),*) => {
        &[$(stringify!($name)),*]
    };
}

/// Every command the UI may invoke.
pub const COMMANDS: &[&str] = with_commands!(names);

mod alerts;
mod commands;
mod connection;
mod decoders;
mod desktop;
mod dto;
mod error;
mod hub;
mod logs;
mod outbound;
mod power;
mod saved;
mod settings;
mod tray;

use std::sync::Arc;

use holdline_engine::{HistoryKind, Level};
use holdline_storage::{Database, Recovery};
use serde_json::json;
use tauri::{Manager, Runtime};

pub use crate::dto::{AppSnapshot, ServerInfo, UiBatch};
pub use crate::error::AppError;
pub use crate::hub::Hub;

/// Where an exported history goes: the file the user picks in the native
/// save dialog, or (for tests, which have no one to pick) a fixed path.
pub enum ExportDestination {
    Dialog,
    Fixed(std::path::PathBuf),
}

/// The builder, for any runtime: tests pass `tauri::test::mock_builder()`.
/// `run` assembles it with the desktop integrations too (tray, single
/// instance, window state, start at login, notifications).
pub fn build<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    assemble(builder, false, ExportDestination::Dialog)
}

/// `build`, with history exports written to `path` instead of asking.
pub fn build_exporting_to<R: Runtime>(
    builder: tauri::Builder<R>,
    path: std::path::PathBuf,
) -> tauri::Builder<R> {
    assemble(builder, false, ExportDestination::Fixed(path))
}

fn assemble<R: Runtime>(
    builder: tauri::Builder<R>,
    desktop: bool,
    export: ExportDestination,
) -> tauri::Builder<R> {
    let builder = if desktop {
        desktop::plugins(builder)
    } else {
        builder
    };
    builder
        .manage(export)
        .plugin(tauri_plugin_store::Builder::new().build())
        .plugin(tauri_plugin_dialog::init())
        .invoke_handler(with_commands!(handlers))
        .setup(move |app| {
            let handle = app.handle().clone();
            tauri::async_runtime::block_on(setup(handle, desktop))?;
            Ok(())
        })
}

async fn setup<R: Runtime>(
    app: tauri::AppHandle<R>,
    desktop: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let data_dir = app.path().app_data_dir()?;
    let log_dir = app.path().app_log_dir()?;
    if let Some(guard) = logs::init(&log_dir) {
        app.manage(LogGuard(guard));
    }
    std::fs::create_dir_all(&data_dir)?;
    let settings_moved = settings::quarantine_if_corrupt(&data_dir.join(settings::FILE));
    let (db, recovery) = Database::open(data_dir.join("holdline.db"))?;
    let db = Arc::new(db);
    let demo = start_demo().await;
    let demo_url = demo.as_ref().map(|s| s.url());
    let hub = Arc::new(Hub::new(db, settings::Settings::open(&app)?, demo_url));
    if let Some(Recovery::MovedAside { to, reason }) = recovery {
        hub.record(
            HistoryKind::Storage,
            Level::Warn,
            format!(
                "the database was unreadable ({reason}); moved to {} and started afresh",
                to.display()
            ),
            json!({ "moved_to": to.display().to_string(), "reason": reason }),
        );
    }
    if let Some((to, reason)) = settings_moved {
        hub.record(
            HistoryKind::Storage,
            Level::Warn,
            format!(
                "settings.json was unreadable ({reason}); moved to {} and reset",
                to.display()
            ),
            json!({ "moved_to": to.display().to_string(), "reason": reason }),
        );
    }
    for unreadable in hub.unreadable_servers() {
        hub.record(
            HistoryKind::Storage,
            Level::Error,
            format!(
                "saved server #{} in settings.json could not be read ({}); it is kept as it is and left out until fixed",
                unreadable.index + 1,
                unreadable.error
            ),
            json!({ "index": unreadable.index, "error": unreadable.error, "excerpt": unreadable.excerpt }),
        );
    }
    if let Some(demo) = demo {
        app.manage(DemoServer(demo));
    }
    tokio::spawn(hub.outbound.clone().run_flusher());
    power::start(hub.clone());
    // Come back to the server the user had open, or the Local demo.
    let start_with = hub
        .remembered_active()
        .unwrap_or_else(|| hub::DEMO_ID.to_owned());
    if let Err(err) = hub.activate(&start_with).await {
        tracing::warn!(%err, "could not reopen the last server");
    }
    if desktop {
        desktop::start(&app, hub.clone());
    }
    app.manage(hub);
    Ok(())
}

/// The Local demo: the reference server in-process on a random loopback port.
async fn start_demo() -> Option<holdline_server::RunningServer> {
    let config = holdline_server::ServerConfig {
        listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        demo: true,
        ..holdline_server::ServerConfig::default()
    };
    match holdline_server::start(config).await {
        Ok(server) => Some(server),
        Err(err) => {
            tracing::error!(%err, "the Local demo server did not start");
            None
        }
    }
}

struct DemoServer(#[allow(dead_code)] holdline_server::RunningServer);
struct LogGuard(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

pub fn run() {
    let app = assemble(tauri::Builder::default(), true, ExportDestination::Dialog);
    if let Err(err) = app.run(tauri::generate_context!()) {
        eprintln!("holdline: {err}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    /// The capability grants exactly one permission per command, and
    /// `core:event:default`, nothing else.
    #[test]
    fn the_capability_grants_exactly_the_commands() {
        let conf: serde_json::Value =
            serde_json::from_str(include_str!("../tauri.conf.json")).expect("tauri.conf.json");
        let granted: Vec<&str> = conf["app"]["security"]["capabilities"][0]["permissions"]
            .as_array()
            .expect("a capability with permissions")
            .iter()
            .filter_map(|p| p.as_str())
            .collect();
        let mut expected = vec!["core:event:default".to_owned()];
        expected.extend(
            super::COMMANDS
                .iter()
                .map(|c| format!("allow-{}", c.replace('_', "-"))),
        );
        assert_eq!(granted, expected);
    }
}
