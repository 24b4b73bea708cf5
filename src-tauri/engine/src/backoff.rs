//! Reconnect delays (protocol section 7): exponential, capped, jittered.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
    /// Each delay is drawn uniformly from `[base × (1 − jitter), base]`, so a
    /// crowd cut off together comes back spread over half of each step.
    pub jitter: f64,
    /// A connection that stayed open this long resets the attempt count.
    pub healthy_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
            jitter: 0.5,
            healthy_after: Duration::from_secs(10),
        }
    }
}

impl BackoffConfig {
    /// The defaults with a user's first and longest delay, in ms where
    /// given: the first at least 1 ms, the longest never below the first.
    pub fn with_limits_ms(initial_ms: Option<u64>, max_ms: Option<u64>) -> BackoffConfig {
        let defaults = BackoffConfig::default();
        let initial = initial_ms
            .map(|ms| Duration::from_millis(ms.max(1)))
            .unwrap_or(defaults.initial);
        let max = max_ms
            .map(Duration::from_millis)
            .unwrap_or(defaults.max)
            .max(initial);
        BackoffConfig {
            initial,
            max,
            ..defaults
        }
    }
}

/// The attempt counter and the delay it implies.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        Backoff::with_rng(config, fastrand::Rng::new())
    }

    pub fn with_rng(config: BackoffConfig, rng: fastrand::Rng) -> Self {
        Backoff {
            config,
            failures: 0,
            rng,
        }
    }

    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// How many delays have been handed out since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// The un-jittered delay for the next failure: initial × 2^failures, capped.
    pub fn base_delay(&self) -> Duration {
        let factor = 2f64.powi(self.failures.min(62) as i32);
        let base = self.config.initial.as_secs_f64() * factor;
        Duration::from_secs_f64(base.min(self.config.max.as_secs_f64()))
    }

    /// The delay before the next attempt; counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.base_delay();
        self.failures = self.failures.saturating_add(1);
        let jitter = self.config.jitter.clamp(0.0, 1.0);
        let scale = 1.0 - jitter * self.rng.f64();
        base.mul_f64(scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_limits_keep_the_first_delay_positive_and_the_cap_above_it() {
        let defaults = BackoffConfig::default();
        assert_eq!(BackoffConfig::with_limits_ms(None, None), defaults);
        let set = BackoffConfig::with_limits_ms(Some(0), Some(5));
        assert_eq!(set.initial, Duration::from_millis(1));
        assert_eq!(set.max, Duration::from_millis(5));
        let crossed = BackoffConfig::with_limits_ms(Some(2000), Some(500));
        assert_eq!(crossed.max, Duration::from_millis(2000));
        assert_eq!(crossed.jitter, defaults.jitter);
    }

    fn secs(n: f64) -> Duration {
        Duration::from_secs_f64(n)
    }

    #[test]
    fn delays_double_from_one_second_up_to_the_cap() {
        let mut backoff = Backoff::with_rng(
            BackoffConfig {
                jitter: 0.0,
                ..BackoffConfig::default()
            },
            fastrand::Rng::with_seed(1),
        );
        let delays: Vec<u64> = (0..8).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), secs(1.0));
    }

    #[test]
    fn jitter_stays_within_half_a_step_and_spreads() {
        let mut seen = Vec::new();
        for seed in 0..500 {
            let mut backoff =
                Backoff::with_rng(BackoffConfig::default(), fastrand::Rng::with_seed(seed));
            for step in 0..7 {
                let base = backoff.base_delay();
                let delay = backoff.next_delay();
                assert!(
                    delay <= base && delay >= base / 2,
                    "step {step}: {delay:?} vs {base:?}"
                );
                if step == 0 {
                    seen.push(delay);
                }
            }
        }
        let min = seen.iter().min().copied().unwrap_or_default();
        let max = seen.iter().max().copied().unwrap_or_default();
        assert!(
            max - min > secs(0.4),
            "first delays barely spread: {min:?}..{max:?}"
        );
    }

    #[test]
    fn a_long_run_of_failures_cannot_overflow() {
        let mut backoff = Backoff::new(BackoffConfig::default());
        for _ in 0..10_000 {
            assert!(backoff.next_delay() <= secs(30.0));
        }
    }
}
