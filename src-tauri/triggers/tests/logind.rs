//! The logind path against a real D-Bus session bus, where the test emits
//! `PrepareForSleep` itself. Needs a session bus (`scripts/test` runs the
//! suite inside `dbus-run-session`); set HOLDLINE_REQUIRE_DBUS=1 to make a
//! missing bus a failure rather than a skip.
#![cfg(target_os = "linux")]

use std::time::Duration;

use holdline_testkit::within;
use holdline_triggers::{SystemTrigger, logind};
use tokio::sync::mpsc;

#[tokio::test]
async fn prepare_for_sleep_false_is_a_wake() {
    let listener = match zbus::Connection::session().await {
        Ok(connection) => connection,
        Err(err) => {
            assert!(
                std::env::var("HOLDLINE_REQUIRE_DBUS").is_err(),
                "no session bus: {err}"
            );
            eprintln!("skipping: no D-Bus session bus ({err})");
            return;
        }
    };
    let emitter = zbus::Connection::session().await.unwrap();
    let (tx, mut rx) = mpsc::channel(4);
    tokio::spawn(logind::watch(listener, tx));
    // The match rule is registered asynchronously: emit until it is heard.
    let heard = within(Duration::from_secs(10), "PrepareForSleep(true)", async {
        loop {
            emitter
                .emit_signal(
                    None::<&str>,
                    logind::PATH,
                    logind::INTERFACE,
                    logind::MEMBER,
                    &(true,),
                )
                .await
                .unwrap();
            if let Ok(Some(trigger)) =
                tokio::time::timeout(Duration::from_millis(100), rx.recv()).await
            {
                return trigger;
            }
        }
    })
    .await;
    assert!(matches!(heard, SystemTrigger::Sleeping { .. }), "{heard:?}");
    emitter
        .emit_signal(
            None::<&str>,
            logind::PATH,
            logind::INTERFACE,
            logind::MEMBER,
            &(false,),
        )
        .await
        .unwrap();
    let wake = within(Duration::from_secs(10), "the wake", async {
        loop {
            match rx.recv().await {
                Some(SystemTrigger::Wake { source, .. }) => return source,
                Some(_) => {}
                None => panic!("watcher ended"),
            }
        }
    })
    .await;
    assert_eq!(wake, "logind");
}
