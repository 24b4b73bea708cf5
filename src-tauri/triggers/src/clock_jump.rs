//! Wake detection that works everywhere, from two signs of a machine that
//! was away. Where the monotonic clock stops during sleep (Linux, macOS) the
//! wall clock runs far ahead of it. Where it keeps counting (Windows, whose
//! performance counter runs through sleep) the periodic check itself comes
//! back far later than it was due. Either way the connection may be dead.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::SystemTrigger;

/// Where time comes from; tests inject their own.
pub trait Clocks: Send {
    /// Wall-clock time, ms since the Unix epoch.
    fn wall_ms(&self) -> i64;
    /// A monotonic reading that does not advance during sleep.
    fn monotonic(&self) -> Duration;
}

pub struct SystemClocks {
    origin: std::time::Instant,
}

impl Default for SystemClocks {
    fn default() -> Self {
        SystemClocks {
            origin: std::time::Instant::now(),
        }
    }
}

impl Clocks for SystemClocks {
    fn wall_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default()
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }
}

pub struct ClockJumpDetector<C: Clocks> {
    clocks: C,
    /// How often `check` is meant to run.
    period: Duration,
    threshold: Duration,
    last_wall_ms: i64,
    last_monotonic: Duration,
}

impl<C: Clocks> ClockJumpDetector<C> {
    pub fn new(clocks: C, period: Duration, threshold: Duration) -> Self {
        let last_wall_ms = clocks.wall_ms();
        let last_monotonic = clocks.monotonic();
        ClockJumpDetector {
            clocks,
            period,
            threshold,
            last_wall_ms,
            last_monotonic,
        }
    }

    /// How long the machine seems to have been away since the last check,
    /// when that exceeds the threshold: the wall clock's lead over the
    /// monotonic clock, or how late this check is. A wall clock set back
    /// (NTP, the user) is not a wake.
    pub fn check(&mut self) -> Option<Duration> {
        let wall_ms = self.clocks.wall_ms();
        let monotonic = self.clocks.monotonic();
        let wall_step = wall_ms - self.last_wall_ms;
        let mono_step = monotonic.saturating_sub(self.last_monotonic);
        self.last_wall_ms = wall_ms;
        self.last_monotonic = monotonic;
        let ahead = wall_step - mono_step.as_millis() as i64;
        let late = mono_step.saturating_sub(self.period).as_millis() as i64;
        let away = ahead.max(late);
        (away > self.threshold.as_millis() as i64).then(|| Duration::from_millis(away as u64))
    }
}

/// Checks every `period`; sends a wake when the clocks part by more than
/// `threshold`. Ends when the receiver is gone.
pub async fn watch<C: Clocks + 'static>(
    clocks: C,
    period: Duration,
    threshold: Duration,
    triggers: mpsc::Sender<SystemTrigger>,
) {
    let mut detector = ClockJumpDetector::new(clocks, period, threshold);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(ahead) = detector.check() {
            let trigger = SystemTrigger::Wake {
                source: "clock_jump".into(),
                detail: format!(
                    "about {} s unaccounted for between two clock checks",
                    ahead.as_secs()
                ),
            };
            if triggers.send(trigger).await.is_err() {
                return;
            }
        } else if triggers.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct FakeClocks(Arc<Mutex<(i64, Duration)>>);

    impl FakeClocks {
        fn advance(&self, wall_ms: i64, monotonic_ms: u64) {
            let mut t = self.0.lock().unwrap();
            t.0 += wall_ms;
            t.1 += Duration::from_millis(monotonic_ms);
        }
    }

    impl Clocks for FakeClocks {
        fn wall_ms(&self) -> i64 {
            self.0.lock().unwrap().0
        }
        fn monotonic(&self) -> Duration {
            self.0.lock().unwrap().1
        }
    }

    #[test]
    fn a_suspend_shows_as_the_wall_clock_running_ahead() {
        let clocks = FakeClocks::default();
        let mut detector = ClockJumpDetector::new(
            clocks.clone(),
            Duration::from_secs(5),
            Duration::from_secs(10),
        );
        clocks.advance(5_000, 5_000);
        assert_eq!(detector.check(), None);
        // Asleep for an hour: the monotonic clock saw 5 s of it.
        clocks.advance(3_605_000, 5_000);
        assert_eq!(detector.check(), Some(Duration::from_secs(3600)));
        clocks.advance(5_000, 5_000);
        assert_eq!(detector.check(), None);
    }

    #[test]
    fn a_suspend_with_a_clock_that_keeps_counting_shows_as_a_late_check() {
        let clocks = FakeClocks::default();
        let mut detector = ClockJumpDetector::new(
            clocks.clone(),
            Duration::from_secs(5),
            Duration::from_secs(10),
        );
        // Windows: both clocks ran through the hour; the 5 s check came late.
        clocks.advance(3_605_000, 3_605_000);
        assert_eq!(detector.check(), Some(Duration::from_secs(3600)));
        // A check a few seconds late (a busy machine) is no wake.
        clocks.advance(12_000, 12_000);
        assert_eq!(detector.check(), None);
    }

    #[test]
    fn small_drift_and_a_clock_set_back_are_not_wakes() {
        let clocks = FakeClocks::default();
        let mut detector = ClockJumpDetector::new(
            clocks.clone(),
            Duration::from_secs(5),
            Duration::from_secs(10),
        );
        clocks.advance(14_000, 5_000);
        assert_eq!(detector.check(), None, "9 s ahead is under the threshold");
        clocks.advance(-3_600_000, 5_000);
        assert_eq!(detector.check(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_watcher_sends_a_wake_for_a_jump() {
        let clocks = FakeClocks::default();
        let (tx, mut rx) = mpsc::channel(4);
        tokio::spawn(watch(
            clocks.clone(),
            Duration::from_secs(5),
            Duration::from_secs(10),
            tx,
        ));
        tokio::task::yield_now().await;
        clocks.advance(120_000, 5_000);
        let trigger = holdline_testkit::within(Duration::from_secs(30), "a wake", rx.recv()).await;
        assert!(
            matches!(trigger, Some(SystemTrigger::Wake { ref source, .. }) if source == "clock_jump"),
            "{trigger:?}"
        );
    }
}
