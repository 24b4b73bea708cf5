//! Sleep and wake from systemd-logind: `PrepareForSleep(true)` before the
//! machine sleeps, `PrepareForSleep(false)` after it wakes.

use futures_util::StreamExt;
use tokio::sync::mpsc;
use zbus::{MatchRule, MessageStream, message::Type};

use crate::SystemTrigger;

pub const PATH: &str = "/org/freedesktop/login1";
pub const INTERFACE: &str = "org.freedesktop.login1.Manager";
pub const MEMBER: &str = "PrepareForSleep";

/// Listens on `connection` (the system bus in the app; any bus in tests)
/// until the bus or the receiver goes away.
pub async fn watch(
    connection: zbus::Connection,
    triggers: mpsc::Sender<SystemTrigger>,
) -> zbus::Result<()> {
    let rule = MatchRule::builder()
        .msg_type(Type::Signal)
        .path(PATH)?
        .interface(INTERFACE)?
        .member(MEMBER)?
        .build();
    let mut stream = MessageStream::for_match_rule(rule, &connection, Some(16)).await?;
    while let Some(message) = stream.next().await {
        let Ok(message) = message else { continue };
        let Ok(going_to_sleep) = message.body().deserialize::<bool>() else {
            tracing::warn!("PrepareForSleep without a boolean ignored");
            continue;
        };
        let trigger = if going_to_sleep {
            SystemTrigger::Sleeping {
                source: "logind".into(),
            }
        } else {
            SystemTrigger::Wake {
                source: "logind".into(),
                detail: "logind reported the end of a sleep".into(),
            }
        };
        if triggers.send(trigger).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Connects to the system bus and watches it.
pub async fn watch_system(triggers: mpsc::Sender<SystemTrigger>) -> zbus::Result<()> {
    let connection = zbus::Connection::system().await?;
    watch(connection, triggers).await
}
