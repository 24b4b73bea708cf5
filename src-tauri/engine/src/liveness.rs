//! Heartbeat bookkeeping (protocol section 6), apart from any socket so the
//! deadlines can be tested with a paused clock.

use std::time::Duration;

use holdline_protocol::{MAX_HEARTBEAT_MS, MIN_HEARTBEAT_MS};
use tokio::time::Instant;

/// A server's `heartbeat_ms`, clamped to what section 6 says a client honours.
pub fn clamp_heartbeat(ms: u64) -> Duration {
    Duration::from_millis(ms.clamp(MIN_HEARTBEAT_MS, MAX_HEARTBEAT_MS))
}

#[derive(Debug, Clone)]
pub struct Liveness {
    period: Duration,
    /// Whether the client sends Pings; where the server pings (Engine.IO)
    /// the client only listens.
    client_pings: bool,
    last_frame: Instant,
    last_ping: Instant,
}

impl Liveness {
    pub fn new(period: Duration, now: Instant) -> Self {
        Liveness {
            period,
            client_pings: true,
            last_frame: now,
            last_ping: now,
        }
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    pub fn set_period(&mut self, period: Duration) {
        self.period = period;
    }

    /// The server pings and the client answers: no Pings of the client's
    /// own, and silence longer than `limit` is death.
    pub fn follow_server_pings(&mut self, limit: Duration) {
        self.client_pings = false;
        self.period = limit / 2;
    }

    /// Any frame at all, data or control, proves the peer alive.
    pub fn on_frame(&mut self, now: Instant) {
        self.last_frame = now;
    }

    pub fn on_ping_sent(&mut self, now: Instant) {
        self.last_ping = now;
    }

    /// When the client sends its next Ping; `None` where it sends none.
    pub fn next_ping_at(&self) -> Option<Instant> {
        self.client_pings.then(|| self.last_ping + self.period)
    }

    /// When the connection is declared dead if nothing arrives before.
    pub fn dead_at(&self) -> Instant {
        self.last_frame + self.period * 2
    }

    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_is_clamped_to_the_protocol_range() {
        assert_eq!(clamp_heartbeat(10), Duration::from_millis(250));
        assert_eq!(clamp_heartbeat(15_000), Duration::from_secs(15));
        assert_eq!(clamp_heartbeat(u64::MAX), Duration::from_secs(300));
    }

    #[tokio::test(start_paused = true)]
    async fn silence_for_twice_the_period_is_death_and_any_frame_postpones_it() {
        let start = Instant::now();
        let mut live = Liveness::new(Duration::from_secs(15), start);
        assert_eq!(live.next_ping_at(), Some(start + Duration::from_secs(15)));
        assert_eq!(live.dead_at(), start + Duration::from_secs(30));

        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(Instant::now() < live.dead_at());
        live.on_frame(Instant::now());
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(
            Instant::now() < live.dead_at(),
            "a frame must postpone the deadline"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(Instant::now() >= live.dead_at());
        assert_eq!(live.silent_for(Instant::now()), Duration::from_secs(31));
    }

    #[tokio::test(start_paused = true)]
    async fn pings_go_out_once_per_period() {
        let start = Instant::now();
        let mut live = Liveness::new(Duration::from_millis(250), start);
        tokio::time::sleep_until(live.next_ping_at().unwrap()).await;
        live.on_ping_sent(Instant::now());
        assert_eq!(
            live.next_ping_at(),
            Some(start + Duration::from_millis(500))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn following_server_pings_sends_none_and_dies_after_the_limit() {
        let start = Instant::now();
        let mut live = Liveness::new(Duration::from_secs(15), start);
        live.follow_server_pings(Duration::from_millis(700));
        assert_eq!(live.next_ping_at(), None);
        assert_eq!(live.dead_at(), start + Duration::from_millis(700));
    }
}
