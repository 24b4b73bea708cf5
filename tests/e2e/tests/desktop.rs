//! The desktop niceties of the real app (Linux): a second launch hands
//! over to the first and exits; start at login writes and removes the
//! autostart entry; an outage longer than the threshold raises a desktop
//! notification (received here by a stand-in notification service on the
//! test's D-Bus session), and so does the recovery; the window's size
//! survives a restart.
//!
//! One test, because the app is single-instance per D-Bus session: two
//! tests launching it at once would hand over to each other.
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use holdline_e2e::{
    DrivenApp, WAIT, app_binary, can_drive, files_under, free_port, reference_server,
};
use holdline_testkit::within;
use tokio::sync::mpsc;

const TOKEN: &str = "desktop-e2e-token";

/// Stands in for the desktop's notification daemon: records what the app
/// asks it to show.
struct StandInNotifications {
    shown: mpsc::UnboundedSender<(String, String)>,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl StandInNotifications {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        _app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        _actions: Vec<String>,
        _hints: HashMap<String, zbus::zvariant::OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        let _ = self.shown.send((summary, body));
        1
    }

    fn get_capabilities(&self) -> Vec<String> {
        vec!["body".into()]
    }

    fn get_server_information(&self) -> (String, String, String, String) {
        (
            "stand-in".into(),
            "holdline-tests".into(),
            "1".into(),
            "1.2".into(),
        )
    }

    fn close_notification(&self, _id: u32) {}
}

async fn stand_in_notifications() -> (zbus::Connection, mpsc::UnboundedReceiver<(String, String)>) {
    let (shown, received) = mpsc::unbounded_channel();
    let connection = zbus::connection::Builder::session()
        .expect("session bus")
        .name("org.freedesktop.Notifications")
        .expect("name")
        .serve_at(
            "/org/freedesktop/Notifications",
            StandInNotifications { shown },
        )
        .expect("object")
        .build()
        .await
        .expect("the notification service name is free on the test's bus");
    (connection, received)
}

fn autostart_entries(home: &Path) -> Vec<PathBuf> {
    files_under(&home.join(".config/autostart"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "desktop"))
        .collect()
}

async fn save_settings(app: &DrivenApp) {
    app.click("[data-testid=settings-save]").await;
    let outcome = app
        .text_until(
            "#settings-saved, #settings-error:not([hidden])",
            "settings saved",
            |t| !t.is_empty(),
        )
        .await;
    assert_eq!(outcome, "Saved.");
}

async fn notification(
    received: &mut mpsc::UnboundedReceiver<(String, String)>,
    what: &str,
) -> (String, String) {
    within(WAIT, what, received.recv())
        .await
        .expect("the stand-in service is alive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_start_at_login_outage_notifications_and_window_size() {
    if !can_drive("the desktop test") {
        return;
    }
    let (_bus, mut notifications) = stand_in_notifications().await;
    let home = tempfile::tempdir().unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = reference_server(listen, TOKEN).await;
    let app = DrivenApp::launch(home.path(), &[]).await;
    app.text_until("[data-testid=state]", "the Local demo to open", |t| {
        t == "open"
    })
    .await;

    // A second launch hands over to the first and exits.
    let mut second = app.same_world(&app_binary());
    let status = within(
        WAIT,
        "the second launch to exit",
        tokio::task::spawn_blocking(move || second.status()),
    )
    .await
    .unwrap()
    .expect("the second launch runs");
    assert!(status.success(), "second launch: {status}");
    app.text_until("[data-testid=state]", "the first still running", |t| {
        t == "open"
    })
    .await;

    // Start at login: off by default; on writes the autostart entry, off
    // removes it.
    assert!(autostart_entries(home.path()).is_empty());
    app.click("[data-testid=tab-settings]").await;
    app.click("[data-testid=settings-start-at-login]").await;
    save_settings(&app).await;
    let entries = autostart_entries(home.path());
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = std::fs::read_to_string(&entries[0]).unwrap();
    assert!(
        entry.contains("Exec=") && entry.contains("holdline"),
        "{entry}"
    );
    app.click("[data-testid=settings-start-at-login]").await;
    save_settings(&app).await;
    assert!(autostart_entries(home.path()).is_empty());

    // Outage notifications after 5 s (the shortest threshold).
    let after = app.css("[data-testid=settings-alert-after]").await;
    after.clear().await.unwrap();
    after.send_keys("5").await.unwrap();
    save_settings(&app).await;
    app.click("[data-testid=tab-live]").await;
    app.log_in(&server, &format!("ws://{listen}/"), TOKEN, true)
        .await;
    server.shutdown().await;
    let (summary, body) = notification(&mut notifications, "the outage notification").await;
    assert_eq!(summary, "127.0.0.1 is unreachable");
    assert!(body.starts_with("Disconnected for 5 s."), "{body}");
    let server = reference_server(listen, TOKEN).await;
    let (summary, body) = notification(&mut notifications, "the recovery notification").await;
    assert_eq!(summary, "127.0.0.1 is back");
    assert!(body.contains("feeds resumed"), "{body}");
    app.click("[data-testid=tab-log]").await;
    app.text_until("#log-list", "the notification in the log", |t| {
        t.contains("notified: 127.0.0.1 is unreachable")
    })
    .await;
    drop(server);

    // The window's size is remembered across a restart.
    app.client
        .set_window_rect(20, 10, 1000, 700)
        .await
        .expect("resize");
    let (_, _, width, height) = app.client.get_window_rect().await.expect("rect");
    let state_file = home
        .path()
        .join("config/dev.holdline.desktop/.window-state.json");
    // Written shortly after the resize, not only at a clean exit.
    within(WAIT, "the window state to be saved", async {
        loop {
            let saved: serde_json::Value = std::fs::read(&state_file)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_default();
            if saved["main"]["width"].as_u64() == Some(width) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let _ = app.client.clone().close().await;
    drop(app);
    let again = DrivenApp::launch(home.path(), &[]).await;
    again
        // It reopens the last server, which is gone by now: any state will do.
        .text_until("[data-testid=state]", "the relaunched UI", |t| {
            !t.is_empty()
        })
        .await;
    let (x, y, restored_width, restored_height) =
        again.client.get_window_rect().await.expect("rect");
    assert_eq!(
        (restored_width, restored_height),
        (width, height),
        "saved: {}",
        std::fs::read_to_string(&state_file).unwrap_or_default()
    );
    println!("window restored at {x},{y} size {restored_width}x{restored_height}");
    let _ = again.client.clone().close().await;
}
