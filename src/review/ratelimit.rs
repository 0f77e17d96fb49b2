//! The sign-in rate limit: at most `[review] login_max_failures` failed sign-ins per user name
//! and per client address within `[review] login_window`; beyond, sign-in answers 429 with
//! `Retry-After` until the oldest counted failure leaves the window. `0` failures = no limit.
//!
//! The counts live in memory, per daemon instance: several instances behind one balancer each
//! count their own (an attacker spread over `k` instances gets `k` times the attempts), and a
//! restart forgets them. A refused attempt is not a failure (the password is not even checked),
//! so a lock ends when the window has passed. A successful sign-in clears its user name's count,
//! not its address's (one good account must not reset the guessing budget of an address).
//!
//! Keys are whatever the caller passes (`auth::login` uses `user:<name>` and
//! `addr:<client address>`); the map is pruned of keys without a failure in the window when it
//! grows.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys kept before the map is pruned of expired ones.
const PRUNE_ABOVE: usize = 10_000;

/// Failed sign-ins per key.
#[derive(Debug)]
pub struct LoginLimiter {
    max: usize,
    window: Duration,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    /// At most `max_failures` within `window` per key (`0`: no limit).
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self { max: max_failures as usize, window, failures: Mutex::new(HashMap::new()) }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(retry after)` when any of `keys` has used up its failures at `now`.
    pub fn check(&self, keys: &[&str], now: Instant) -> Result<(), Duration> {
        if self.max == 0 {
            return Ok(());
        }
        let map = self.map();
        let wait = keys
            .iter()
            .filter_map(|k| map.get(*k))
            .filter_map(|times| {
                let live: Vec<&Instant> = times.iter().filter(|t| now.duration_since(**t) < self.window).collect();
                // The failure whose leaving the window frees one attempt.
                (live.len() >= self.max).then(|| self.window - now.duration_since(*live[live.len() - self.max]))
            })
            .max();
        match wait {
            Some(w) => Err(w.max(Duration::from_secs(1))),
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in against each of `keys`.
    pub fn failed(&self, keys: &[&str], now: Instant) {
        if self.max == 0 {
            return;
        }
        let mut map = self.map();
        if map.len() > PRUNE_ABOVE {
            map.retain(|_, times| times.back().is_some_and(|t| now.duration_since(*t) < self.window));
        }
        for k in keys {
            let times = map.entry((*k).to_string()).or_default();
            while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
                times.pop_front();
            }
            times.push_back(now);
            // Only the newest `max` matter.
            while times.len() > self.max {
                times.pop_front();
            }
        }
    }

    /// Forgets the failures of `key` (a successful sign-in of that user name).
    pub fn succeeded(&self, key: &str) {
        self.map().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn the_limit_trips_after_max_failures_and_ends_with_the_window() {
        let l = LoginLimiter::new(3, 10 * MIN);
        let t0 = Instant::now();
        let keys = ["user:alice", "addr:10.0.0.1"];
        for i in 0..3 {
            assert_eq!(l.check(&keys, t0 + MIN * i), Ok(()), "attempt {i}");
            l.failed(&keys, t0 + MIN * i);
        }
        // The 4th attempt at t0+3min: the oldest failure (t0) leaves the window at t0+10min.
        assert_eq!(l.check(&keys, t0 + 3 * MIN), Err(7 * MIN));
        assert_eq!(l.check(&keys, t0 + 10 * MIN), Ok(()));
    }

    #[test]
    fn user_names_and_addresses_count_separately() {
        let l = LoginLimiter::new(2, MIN);
        let t = Instant::now();
        // One address guessing two names: the address trips, the names each have one failure.
        l.failed(&["user:a", "addr:x"], t);
        l.failed(&["user:b", "addr:x"], t);
        assert!(l.check(&["user:c", "addr:x"], t).is_err(), "the address is limited");
        assert!(l.check(&["user:a", "addr:y"], t).is_ok(), "name a from elsewhere is not");
        // Two addresses guessing one name: the name trips.
        l.failed(&["user:d", "addr:p"], t);
        l.failed(&["user:d", "addr:q"], t);
        assert!(l.check(&["user:d", "addr:r"], t).is_err(), "the name is limited");
    }

    #[test]
    fn success_clears_the_name_not_the_address_and_zero_means_off() {
        let l = LoginLimiter::new(1, MIN);
        let t = Instant::now();
        l.failed(&["user:a", "addr:x"], t);
        l.succeeded("user:a");
        assert!(l.check(&["user:a"], t).is_ok());
        assert!(l.check(&["addr:x"], t).is_err());
        let off = LoginLimiter::new(0, MIN);
        for _ in 0..100 {
            off.failed(&["user:a"], t);
        }
        assert!(off.check(&["user:a"], t).is_ok());
    }

    #[test]
    fn retry_after_is_at_least_a_second() {
        let l = LoginLimiter::new(1, Duration::from_millis(1500));
        let t = Instant::now();
        l.failed(&["k"], t);
        assert_eq!(l.check(&["k"], t + Duration::from_millis(1400)), Err(Duration::from_secs(1)));
    }

    #[test]
    fn the_map_is_pruned_when_it_grows() {
        let l = LoginLimiter::new(5, MIN);
        let t = Instant::now();
        for i in 0..=PRUNE_ABOVE {
            l.failed(&[&format!("addr:{i}")], t);
        }
        l.failed(&["addr:late"], t + 2 * MIN);
        assert_eq!(l.map().len(), 1, "every key but the newest had left the window");
    }
}
