//! A token bucket per corp and API, so that this process never calls an archive API of one corp
//! more often than WeCom allows ([`Api::per_minute`](super::Api::per_minute)).
//!
//! The bucket holds at most a tenth of the minute's allowance and refills at nine tenths of it
//! per minute: whatever the pattern of calls, no window of 60 s sees more than the allowance
//! (burst + refill = 1/10 + 9/10). Time is tokio's, so tests run it with a paused clock.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// One bucket.
#[derive(Debug)]
pub struct RateLimiter {
    capacity: f64,
    per_sec: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A limiter that allows at most `per_minute` acquisitions in any 60 s.
    pub fn per_minute(per_minute: u32) -> Self {
        let n = f64::from(per_minute.max(1));
        let capacity = (n / 10.0).max(1.0);
        let per_sec = (n - capacity).max(0.5) / 60.0;
        Self { capacity, per_sec, state: Mutex::new((capacity, Instant::now())) }
    }

    /// Takes one token now, or says how long to wait for one.
    fn try_take(&self) -> Result<(), Duration> {
        self.try_take_at(Instant::now())
    }

    /// [`Self::try_take`] at `now` (tests drive the clock).
    fn try_take_at(&self, now: Instant) -> Result<(), Duration> {
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, last) = *s;
        let tokens = (tokens + now.saturating_duration_since(last).as_secs_f64() * self.per_sec).min(self.capacity);
        if tokens >= 1.0 {
            *s = (tokens - 1.0, now);
            Ok(())
        } else {
            *s = (tokens, now);
            // At least 1 µs: a wait rounded down to 0 would never refill the missing fraction.
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_sec).max(Duration::from_micros(1)))
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        while let Err(wait) = self.try_take() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Acquires `n` tokens on a simulated clock; the offsets of the acquisitions from the start.
    fn run(limiter: &RateLimiter, start: Instant, n: usize) -> Vec<Duration> {
        let mut now = start;
        let mut times = Vec::with_capacity(n);
        while times.len() < n {
            match limiter.try_take_at(now) {
                Ok(()) => times.push(now - start),
                Err(wait) => now += wait,
            }
        }
        times
    }

    /// No 60 s window holds more than the allowance, and the allowance is used (not far below).
    #[test]
    fn no_minute_exceeds_the_allowance() {
        let per_minute = 2_000;
        let limiter = RateLimiter::per_minute(per_minute);
        let start = limiter.state.lock().unwrap().1;
        let times = run(&limiter, start, 5_000);
        let mut max_in_window = 0;
        let mut lo = 0;
        for hi in 0..times.len() {
            while times[hi] - times[lo] >= Duration::from_secs(60) {
                lo += 1;
            }
            max_in_window = max_in_window.max(hi - lo + 1);
        }
        assert!(max_in_window <= per_minute as usize, "{max_in_window} calls within 60 s");
        assert!(max_in_window >= per_minute as usize * 95 / 100, "only {max_in_window} calls within 60 s");
        // 5,000 calls at 1,800/min after a burst of 200: 160 s.
        let total = times.last().copied().unwrap_or_default();
        assert!(total > Duration::from_secs(155) && total < Duration::from_secs(165), "{total:?}");
    }

    #[test]
    fn a_burst_is_served_at_once_then_paced() {
        let limiter = RateLimiter::per_minute(600);
        let start = limiter.state.lock().unwrap().1;
        let times = run(&limiter, start, 61);
        assert!(times[..60].iter().all(|t| t.is_zero()), "a tenth of the minute's allowance is a burst");
        // 540 per minute refill: one token every 1/9 s.
        let waited = times[60];
        assert!(waited >= Duration::from_millis(110) && waited <= Duration::from_millis(112), "{waited:?}");
    }
}
