//! What an always-on desktop client owes its user beyond the window: one
//! instance (a second launch brings the first to the front), the window's
//! size and position remembered, start at login on request, the tray, and
//! a notification when the server has been unreachable for a while.
//!
//! Only the real app gets these; the IPC tests (mock runtime) have no
//! desktop to integrate with.

use std::sync::Arc;
use std::time::Duration;

use holdline_engine::{HistoryKind, Level};
use serde_json::json;
use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_notification::NotificationExt as _;

use crate::alerts::{self, Alert};
use crate::error::{AppError, AppResult};
use crate::hub::Hub;
use crate::tray;

/// The plugins behind the niceties. Single instance goes first so a second
/// launch exits before it builds anything.
pub fn plugins<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder
        .plugin(tauri_plugin_single_instance::init(|app, _args, _cwd| {
            tray::bring_to_front(app);
        }))
        .plugin(tauri_plugin_window_state::Builder::new().build())
        .plugin(tauri_plugin_autostart::Builder::new().build())
        .plugin(tauri_plugin_notification::init())
}

/// Tray and outage alerts, once the hub exists. A desktop without a tray
/// host (or a notification service) costs those features, not the app.
pub fn start<R: Runtime>(app: &AppHandle<R>, hub: Arc<Hub>) {
    if let Err(err) = tray::install(app, hub.clone()) {
        tracing::warn!(%err, "no tray icon");
    }
    save_window_state_as_it_changes(app);
    let notifier = app.clone();
    let settings = hub.clone();
    tauri::async_runtime::spawn(alerts::watch_outages(
        hub.status(),
        move || {
            settings
                .preferences()
                .alert_after_s
                .map(Duration::from_secs)
        },
        move |alert| notify(&notifier, &hub, &alert),
    ));
}

/// The window-state plugin writes its file only on a clean exit; a session
/// ending with SIGTERM, or a crash, would forget the window. So the state is
/// also written shortly after the window stops moving or resizing.
fn save_window_state_as_it_changes<R: Runtime>(app: &AppHandle<R>) {
    use tauri_plugin_window_state::{AppHandleExt as _, StateFlags};
    const QUIET: Duration = Duration::from_millis(500);
    let Some(window) = app.get_webview_window("main") else {
        return;
    };
    let changed = Arc::new(tokio::sync::Notify::new());
    let signal = changed.clone();
    window.on_window_event(move |event| {
        if matches!(
            event,
            tauri::WindowEvent::Moved(_) | tauri::WindowEvent::Resized(_)
        ) {
            signal.notify_one();
        }
    });
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        loop {
            changed.notified().await;
            // Wait for a pause: a drag produces a stream of events.
            while tokio::time::timeout(QUIET, changed.notified())
                .await
                .is_ok()
            {}
            if let Err(err) = app.save_window_state(StateFlags::all()) {
                tracing::warn!(%err, "window state not saved");
            }
        }
    });
}

fn notify<R: Runtime>(app: &AppHandle<R>, hub: &Hub, alert: &Alert) {
    let (title, body) = (alert.title(), alert.body());
    let shown = app
        .notification()
        .builder()
        .title(&title)
        .body(&body)
        .show();
    let level = match alert {
        Alert::Down { .. } => Level::Warn,
        Alert::Back { .. } => Level::Info,
    };
    let message = match &shown {
        Ok(()) => format!("notified: {title}"),
        Err(err) => format!("could not notify \"{title}\": {err}"),
    };
    hub.record(
        HistoryKind::State,
        level,
        message,
        json!({ "title": title, "body": body }),
    );
}

/// Turns launching at login on or off, where the platform allows it.
pub fn set_start_at_login<R: Runtime>(app: &AppHandle<R>, on: bool) -> AppResult<()> {
    if app
        .try_state::<tauri_plugin_autostart::AutoLaunchManager>()
        .is_none()
    {
        return Err(AppError::Desktop {
            message: "start at login is not available in this build".into(),
        });
    }
    // auto-launch creates only the last level of ~/.config/autostart.
    #[cfg(target_os = "linux")]
    if on && let Some(home) = std::env::home_dir() {
        let _ = std::fs::create_dir_all(home.join(".config").join("autostart"));
    }
    let manager = app.autolaunch();
    let result = if on {
        manager.enable()
    } else {
        manager.disable()
    };
    result.map_err(|err| AppError::Desktop {
        message: format!("could not change start at login: {err}"),
    })
}
