//! The tray icon: the active server's state at a glance, a way back to the
//! window, reconnect and quit.

use std::sync::Arc;

use holdline_engine::ConnectionState;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};

use crate::alerts::ActiveStatus;
use crate::hub::Hub;

/// One line for the tray menu and tooltip.
pub fn label(status: &ActiveStatus) -> String {
    let Some(server) = &status.server else {
        return "No server selected".into();
    };
    let state = match &status.state {
        ConnectionState::Idle => "disconnected".to_owned(),
        ConnectionState::Connecting { attempt } if *attempt <= 1 => "connecting".to_owned(),
        ConnectionState::Connecting { attempt } => format!("connecting (attempt {attempt})"),
        ConnectionState::Open { raw: true, .. } => "connected (raw)".to_owned(),
        ConnectionState::Open { .. } => "connected".to_owned(),
        ConnectionState::Backoff { attempt, .. } => format!("reconnecting (attempt {attempt})"),
        ConnectionState::NeedsLogin { .. } => "needs login".to_owned(),
        ConnectionState::Stopped { .. } => "stopped".to_owned(),
    };
    format!("{server}: {state}")
}

/// Shows, unminimizes and focuses the main window.
pub fn bring_to_front<R: Runtime>(app: &AppHandle<R>) {
    if let Some(window) = app.get_webview_window("main") {
        let _ = window.unminimize();
        let _ = window.show();
        let _ = window.set_focus();
    }
}

pub fn install<R: Runtime>(app: &AppHandle<R>, hub: Arc<Hub>) -> tauri::Result<()> {
    let mut status = hub.status();
    let first = label(&status.borrow_and_update());
    let state_line = MenuItem::with_id(app, "state", &first, false, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &state_line,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, "show", "Show Holdline", true, None::<&str>)?,
            &MenuItem::with_id(app, "reconnect", "Reconnect now", true, None::<&str>)?,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, "quit", "Quit Holdline", true, None::<&str>)?,
        ],
    )?;
    let mut builder = TrayIconBuilder::with_id("holdline")
        .menu(&menu)
        .tooltip(format!("Holdline: {first}"))
        .on_menu_event(move |app, event| match event.id.as_ref() {
            "show" => bring_to_front(app),
            "reconnect" => {
                let hub = hub.clone();
                tauri::async_runtime::spawn(async move {
                    let _ = hub.reconnect_now().await;
                });
            }
            "quit" => app.exit(0),
            _ => {}
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    let tray = builder.build(app)?;
    tauri::async_runtime::spawn(async move {
        while status.changed().await.is_ok() {
            let text = label(&status.borrow_and_update());
            let _ = state_line.set_text(&text);
            let _ = tray.set_tooltip(Some(format!("Holdline: {text}")));
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use holdline_engine::Cause;

    use super::*;

    fn on(state: ConnectionState) -> String {
        label(&ActiveStatus {
            server: Some("Local demo".into()),
            state,
        })
    }

    #[test]
    fn the_label_names_the_server_and_what_it_is_doing() {
        assert_eq!(label(&ActiveStatus::default()), "No server selected");
        assert_eq!(
            on(ConnectionState::Open {
                session: None,
                raw: false
            }),
            "Local demo: connected"
        );
        assert_eq!(
            on(ConnectionState::Backoff {
                attempt: 3,
                delay_ms: 4000,
                retry_at_ms: 0,
                cause: Cause::ConnectionLost {
                    detail: String::new()
                },
                reason: String::new(),
            }),
            "Local demo: reconnecting (attempt 3)"
        );
        assert_eq!(
            on(ConnectionState::NeedsLogin {
                reason: "401".into()
            }),
            "Local demo: needs login"
        );
    }
}
