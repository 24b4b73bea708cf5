//! Network changes: interface addresses coming and going, from the OS.
//! A burst of changes (an interface flapping, DHCP renewing several
//! addresses) becomes one trigger once it has been quiet for a moment.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::SystemTrigger;

/// Collapses bursts of changes into one report.
#[derive(Debug)]
pub struct Debouncer {
    quiet: Duration,
    pending: Vec<String>,
    last_change: Option<Instant>,
}

impl Debouncer {
    pub fn new(quiet: Duration) -> Self {
        Debouncer {
            quiet,
            pending: Vec::new(),
            last_change: None,
        }
    }

    pub fn change(&mut self, what: String, now: Instant) {
        if self.pending.len() < 16 {
            self.pending.push(what);
        }
        self.last_change = Some(now);
    }

    pub fn due_at(&self) -> Option<Instant> {
        self.last_change.map(|at| at + self.quiet)
    }

    /// The burst's summary, once it has been quiet long enough.
    pub fn take_if_due(&mut self, now: Instant) -> Option<String> {
        let due = self.due_at()?;
        if now < due {
            return None;
        }
        self.last_change = None;
        Some(std::mem::take(&mut self.pending).join(", "))
    }
}

/// Watches interface addresses until the receiver is gone. The watcher
/// reports every existing address first; those within `settle` of the start
/// are the starting point, not changes.
pub async fn watch(
    settle: Duration,
    quiet: Duration,
    triggers: mpsc::Sender<SystemTrigger>,
) -> std::io::Result<()> {
    let mut watcher = if_watch::tokio::IfWatcher::new()?;
    let started = Instant::now();
    let mut debouncer = Debouncer::new(quiet);
    loop {
        let due = debouncer.due_at();
        tokio::select! {
            event = watcher.next() => {
                let Some(event) = event else { return Ok(()) };
                let what = match event {
                    Ok(if_watch::IfEvent::Up(net)) => format!("{net} up"),
                    Ok(if_watch::IfEvent::Down(net)) => format!("{net} down"),
                    Err(err) => {
                        tracing::warn!(%err, "network watcher error");
                        continue;
                    }
                };
                if started.elapsed() >= settle {
                    debouncer.change(what, Instant::now());
                }
            }
            () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                if let Some(detail) = debouncer.take_if_due(Instant::now())
                    && triggers.send(SystemTrigger::NetworkChange { detail }).await.is_err()
                {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_is_one_report_after_a_quiet_moment() {
        let mut debouncer = Debouncer::new(Duration::from_millis(300));
        let start = Instant::now();
        debouncer.change("10.0.0.2/24 down".into(), start);
        debouncer.change("10.0.0.3/24 up".into(), start + Duration::from_millis(200));
        assert_eq!(
            debouncer.take_if_due(start + Duration::from_millis(400)),
            None
        );
        assert_eq!(
            debouncer
                .take_if_due(start + Duration::from_millis(500))
                .as_deref(),
            Some("10.0.0.2/24 down, 10.0.0.3/24 up")
        );
        assert_eq!(debouncer.take_if_due(start + Duration::from_secs(5)), None);
    }
}
