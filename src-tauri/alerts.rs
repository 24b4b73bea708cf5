//! Desktop notifications about outages: one when the active server has been
//! unreachable for longer than the user's threshold, one when it is back.
//! Short blips stay in the log; only outages worth a glance interrupt.

use std::time::Duration;

use holdline_engine::ConnectionState;
use tokio::sync::watch;
use tokio::time::Instant;

/// What the tray and the alerts watch: the active server and its state.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveStatus {
    /// The server's display name; `None` when no server is active.
    pub server: Option<String>,
    pub state: ConnectionState,
}

impl Default for ActiveStatus {
    fn default() -> Self {
        ActiveStatus {
            server: None,
            state: ConnectionState::Idle,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    Down {
        server: String,
        after: Duration,
        detail: String,
    },
    Back {
        server: String,
        after: Duration,
    },
}

impl Alert {
    pub fn title(&self) -> String {
        match self {
            Alert::Down { server, .. } => format!("{server} is unreachable"),
            Alert::Back { server, .. } => format!("{server} is back"),
        }
    }

    pub fn body(&self) -> String {
        match self {
            Alert::Down { after, detail, .. } => {
                format!("Disconnected for {}. {detail}", spoken(*after))
            }
            Alert::Back { after, .. } => format!(
                "Reconnected after {}; feeds resumed where they stopped.",
                spoken(*after)
            ),
        }
    }
}

fn spoken(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

/// Anything but open, or idle on purpose, keeps the feeds from the user.
fn is_outage(status: &ActiveStatus) -> bool {
    status.server.is_some()
        && !matches!(
            status.state,
            ConnectionState::Open { .. } | ConnectionState::Idle
        )
}

fn what_is_happening(state: &ConnectionState) -> String {
    match state {
        ConnectionState::Backoff { attempt, cause, .. } => {
            format!("Retrying (attempt {attempt}) after: {cause}.")
        }
        ConnectionState::Connecting { attempt } => format!("Connecting (attempt {attempt})."),
        ConnectionState::NeedsLogin { reason } => format!("Log in again: {reason}."),
        ConnectionState::Stopped { reason } => format!("Stopped: {reason}."),
        ConnectionState::Open { .. } | ConnectionState::Idle => String::new(),
    }
}

/// Watches `status` until its sender is gone, calling `alert` once per
/// outage longer than `threshold()` (read as each outage starts; `None`
/// turns alerts off) and once when that outage ends with the same server
/// open again.
pub async fn watch_outages(
    mut status: watch::Receiver<ActiveStatus>,
    threshold: impl Fn() -> Option<Duration>,
    alert: impl Fn(Alert),
) {
    loop {
        let Ok(down) = status.wait_for(is_outage).await.map(|s| s.clone()) else {
            return;
        };
        let began = Instant::now();
        let server = down.server.clone().unwrap_or_default();
        let same_outage = |s: &ActiveStatus| is_outage(s) && s.server == down.server;
        let Some(limit) = threshold() else {
            if status.wait_for(|s| !same_outage(s)).await.is_err() {
                return;
            }
            continue;
        };
        tokio::select! {
            ended = status.wait_for(|s| !same_outage(s)) => {
                if ended.is_err() { return }
                continue;
            }
            () = tokio::time::sleep_until(began + limit) => {}
        }
        let detail = what_is_happening(&status.borrow().state);
        alert(Alert::Down {
            server: server.clone(),
            after: began.elapsed(),
            detail,
        });
        let Ok(ended) = status
            .wait_for(|s| !same_outage(s))
            .await
            .map(|s| s.clone())
        else {
            return;
        };
        if ended.server == down.server && matches!(ended.state, ConnectionState::Open { .. }) {
            alert(Alert::Back {
                server,
                after: began.elapsed(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use holdline_engine::Cause;

    use super::*;

    fn status(state: ConnectionState) -> ActiveStatus {
        ActiveStatus {
            server: Some("Prices".into()),
            state,
        }
    }

    fn open() -> ConnectionState {
        ConnectionState::Open {
            session: None,
            raw: false,
        }
    }

    fn backoff(attempt: u32) -> ConnectionState {
        ConnectionState::Backoff {
            attempt,
            delay_ms: 1000,
            retry_at_ms: 0,
            cause: Cause::ConnectionLost {
                detail: "no close frame".into(),
            },
            reason: "connection lost (1006): no close frame".into(),
        }
    }

    struct Watched {
        tx: watch::Sender<ActiveStatus>,
        alerts: Arc<Mutex<Vec<Alert>>>,
    }

    fn watched(threshold: Option<Duration>) -> Watched {
        let (tx, rx) = watch::channel(status(open()));
        let alerts = Arc::new(Mutex::new(Vec::new()));
        let sink = alerts.clone();
        tokio::spawn(watch_outages(
            rx,
            move || threshold,
            move |alert| sink.lock().unwrap().push(alert),
        ));
        Watched { tx, alerts }
    }

    async fn settle() {
        // Paused time: lets the watcher run up to its next wait.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_blip_shorter_than_the_threshold_says_nothing() {
        let w = watched(Some(Duration::from_secs(30)));
        w.tx.send_replace(status(backoff(1)));
        settle().await;
        tokio::time::advance(Duration::from_secs(29)).await;
        w.tx.send_replace(status(open()));
        settle().await;
        tokio::time::advance(Duration::from_secs(60)).await;
        settle().await;
        assert!(w.alerts.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_outage_alerts_once_and_its_end_once() {
        let w = watched(Some(Duration::from_secs(30)));
        w.tx.send_replace(status(backoff(1)));
        settle().await;
        tokio::time::advance(Duration::from_secs(10)).await;
        w.tx.send_replace(status(ConnectionState::Connecting { attempt: 2 }));
        settle().await;
        w.tx.send_replace(status(backoff(2)));
        settle().await;
        tokio::time::advance(Duration::from_secs(20)).await;
        settle().await;
        tokio::time::advance(Duration::from_secs(60)).await;
        settle().await;
        w.tx.send_replace(status(open()));
        settle().await;
        let alerts = w.alerts.lock().unwrap().clone();
        assert_eq!(alerts.len(), 2, "{alerts:?}");
        let Alert::Down { after, detail, .. } = &alerts[0] else {
            panic!("{alerts:?}")
        };
        assert_eq!(after.as_secs(), 30);
        assert!(detail.contains("attempt 2"), "{detail}");
        assert_eq!(
            alerts[1],
            Alert::Back {
                server: "Prices".into(),
                after: Duration::from_secs(90)
            }
        );
        assert_eq!(
            alerts[1].body(),
            "Reconnected after 1 min 30 s; feeds resumed where they stopped."
        );
    }

    #[tokio::test(start_paused = true)]
    async fn off_means_silent_and_a_deliberate_disconnect_is_no_outage() {
        let silent = watched(None);
        silent.tx.send_replace(status(backoff(1)));
        settle().await;
        tokio::time::advance(Duration::from_secs(3600)).await;
        settle().await;
        assert!(silent.alerts.lock().unwrap().is_empty());

        let w = watched(Some(Duration::from_secs(5)));
        w.tx.send_replace(status(ConnectionState::Idle));
        settle().await;
        tokio::time::advance(Duration::from_secs(60)).await;
        settle().await;
        assert!(w.alerts.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn switching_servers_mid_outage_ends_it_without_a_back_alert() {
        let w = watched(Some(Duration::from_secs(5)));
        w.tx.send_replace(status(backoff(1)));
        settle().await;
        tokio::time::advance(Duration::from_secs(6)).await;
        settle().await;
        w.tx.send_replace(ActiveStatus {
            server: Some("Other".into()),
            state: open(),
        });
        settle().await;
        let alerts = w.alerts.lock().unwrap().clone();
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(matches!(alerts[0], Alert::Down { .. }));
    }
}
