//! A sliding-window rate limiter: at most `limit` messages in any `window` (the WeCom group robot
//! allows 20 a minute, and counts exactly so: a token bucket refilling continuously would let a
//! 21st message through within the minute). One per channel, in memory, per process: instances
//! sharing a database each keep their own count (docs/alerts.md).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// See the module documentation. `limit` 0 = no limit.
#[derive(Debug, Clone)]
pub struct Limiter {
    limit: usize,
    window: Duration,
    sent: VecDeque<Instant>,
}

impl Limiter {
    /// At most `limit` per `window` (0: unlimited).
    pub fn new(limit: u32, window: Duration) -> Self {
        Self { limit: limit as usize, window, sent: VecDeque::new() }
    }

    /// How long to wait at `now` before the next message may go (zero: now).
    pub fn wait(&mut self, now: Instant) -> Duration {
        if self.limit == 0 {
            return Duration::ZERO;
        }
        while self.sent.front().is_some_and(|t| now.saturating_duration_since(*t) >= self.window) {
            self.sent.pop_front();
        }
        if self.sent.len() < self.limit {
            return Duration::ZERO;
        }
        // The oldest of the last `limit` leaves the window at `oldest + window`.
        self.sent.front().map_or(Duration::ZERO, |oldest| (*oldest + self.window).saturating_duration_since(now))
    }

    /// Records a message sent at `now` (call it for every attempt that reached the channel).
    pub fn record(&mut self, now: Instant) {
        if self.limit > 0 {
            self.sent.push_back(now);
            while self.sent.len() > self.limit {
                self.sent.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twenty_a_minute_exactly() {
        let t0 = Instant::now();
        let mut l = Limiter::new(20, Duration::from_secs(60));
        for i in 0..20 {
            let at = t0 + Duration::from_secs(i);
            assert_eq!(l.wait(at), Duration::ZERO, "message {i}");
            l.record(at);
        }
        // The 21st, at 20 s: must wait until the first leaves the window (60 s).
        assert_eq!(l.wait(t0 + Duration::from_secs(20)), Duration::from_secs(40));
        assert_eq!(l.wait(t0 + Duration::from_secs(59)), Duration::from_secs(1));
        assert_eq!(l.wait(t0 + Duration::from_secs(60)), Duration::ZERO);
        l.record(t0 + Duration::from_secs(60));
        // Now the second (sent at 1 s) is the oldest.
        assert_eq!(l.wait(t0 + Duration::from_secs(60)), Duration::from_secs(1));
    }

    #[test]
    fn zero_is_unlimited() {
        let t0 = Instant::now();
        let mut l = Limiter::new(0, Duration::from_secs(60));
        for _ in 0..1000 {
            l.record(t0);
        }
        assert_eq!(l.wait(t0), Duration::ZERO);
    }
}
