//! The sign-in rate limit: at most `[review] login_max_failures` failed sign-ins per user name
//! and per client address within `[review] login_window`; beyond, sign-in answers 429 with
//! `Retry-After` until the oldest counted failure leaves the window. `0` failures = no limit.
//!
//! The counts live in memory, per daemon instance: several instances behind one balancer each
//! count their own (an attacker spread over `k` instances gets `k` times the attempts), and a
//! restart forgets them.
//!
//! An attempt is counted as a failure when it is let through ([`LoginLimiter::attempt`], one
//! lock for the check and the count), before its password is checked: a burst of parallel
//! guesses gets `max` through, not as many as arrive while the first hashes run. A successful
//! sign-in then takes its attempt back ([`LoginLimiter::succeeded`]): it clears its user name's
//! count, and removes only its own attempt from its address's (one good account must not reset
//! the guessing budget of an address). A refused attempt is not counted (the password is not
//! even checked), so a lock ends when the window has passed.
//!
//! Keys are whatever the caller passes (`auth::login` uses `user:<name>` and
//! `addr:<client address>`); the map is pruned of keys without a failure in the window when it
//! grows. The client address is the peer's, or, from one of `[review] trusted_proxies`, the
//! address that proxy appended to `X-Forwarded-For` (`auth::login::client_addr`): a client can
//! not pick a new address for every guess, neither directly nor through the proxy (the first
//! `X-Forwarded-For` entries are whatever the client sent).

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

    /// Lets an attempt through unless one of `keys` has used up its failures at `now`
    /// (`Err(retry after)`); a let-through attempt counts as a failure of each key until
    /// [`LoginLimiter::succeeded`] takes it back.
    pub fn attempt(&self, keys: &[&str], now: Instant) -> Result<(), Duration> {
        if self.max == 0 {
            return Ok(());
        }
        let mut map = self.map();
        let wait = keys
            .iter()
            .filter_map(|k| map.get(*k))
            .filter_map(|times| {
                let live: Vec<&Instant> = times.iter().filter(|t| now.duration_since(**t) < self.window).collect();
                // The failure whose leaving the window frees one attempt.
                (live.len() >= self.max).then(|| self.window - now.duration_since(*live[live.len() - self.max]))
            })
            .max();
        if let Some(w) = wait {
            return Err(w.max(Duration::from_secs(1)));
        }
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
        Ok(())
    }

    /// The attempt let through at `at` succeeded: `clear` (its user name) forgets every failure,
    /// each of `undo` (its address) only this attempt.
    pub fn succeeded(&self, clear: &str, undo: &[&str], at: Instant) {
        let mut map = self.map();
        map.remove(clear);
        for k in undo {
            if let Some(times) = map.get_mut(*k) {
                if let Some(i) = times.iter().rposition(|t| *t == at) {
                    times.remove(i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn the_limit_trips_after_max_attempts_and_ends_with_the_window() {
        let l = LoginLimiter::new(3, 10 * MIN);
        let t0 = Instant::now();
        let keys = ["user:alice", "addr:10.0.0.1"];
        for i in 0..3 {
            assert_eq!(l.attempt(&keys, t0 + MIN * i), Ok(()), "attempt {i}");
        }
        // The 4th attempt at t0+3min: the oldest failure (t0) leaves the window at t0+10min.
        assert_eq!(l.attempt(&keys, t0 + 3 * MIN), Err(7 * MIN));
        // A refused attempt does not count: the lock ends with the window.
        assert_eq!(l.attempt(&keys, t0 + 10 * MIN), Ok(()));
    }

    #[test]
    fn a_burst_gets_only_max_through() {
        // Parallel guesses: each is counted when let through, before any password is checked.
        let l = LoginLimiter::new(3, MIN);
        let t = Instant::now();
        let through = (0..50).filter(|_| l.attempt(&["user:alice", "addr:x"], t).is_ok()).count();
        assert_eq!(through, 3);
    }

    #[test]
    fn user_names_and_addresses_count_separately() {
        let l = LoginLimiter::new(2, MIN);
        let t = Instant::now();
        // One address guessing two names: the address trips, the names each have one failure.
        l.attempt(&["user:a", "addr:x"], t).unwrap();
        l.attempt(&["user:b", "addr:x"], t).unwrap();
        assert!(l.attempt(&["user:c", "addr:x"], t).is_err(), "the address is limited");
        assert!(l.attempt(&["user:a", "addr:y"], t).is_ok(), "name a from elsewhere is not");
        // Two addresses guessing one name: the name trips.
        l.attempt(&["user:d", "addr:p"], t).unwrap();
        l.attempt(&["user:d", "addr:q"], t).unwrap();
        assert!(l.attempt(&["user:d", "addr:r"], t).is_err(), "the name is limited");
    }

    #[test]
    fn success_clears_the_name_and_takes_back_only_its_own_attempt_of_the_address() {
        let l = LoginLimiter::new(2, MIN);
        let t = Instant::now();
        l.attempt(&["user:a", "addr:x"], t).unwrap();
        let ok = t + Duration::from_secs(1);
        l.attempt(&["user:a", "addr:x"], ok).unwrap();
        l.succeeded("user:a", &["addr:x"], ok);
        assert!(l.attempt(&["user:a", "addr:y"], ok).is_ok(), "the name's failures are gone");
        assert_eq!(l.map()["addr:x"].len(), 1, "the address keeps the failure before");
        let off = LoginLimiter::new(0, MIN);
        for _ in 0..100 {
            assert!(off.attempt(&["user:a"], t).is_ok());
        }
    }

    #[test]
    fn retry_after_is_at_least_a_second() {
        let l = LoginLimiter::new(1, Duration::from_millis(1500));
        let t = Instant::now();
        l.attempt(&["k"], t).unwrap();
        assert_eq!(l.attempt(&["k"], t + Duration::from_millis(1400)), Err(Duration::from_secs(1)));
    }

    #[test]
    fn the_map_is_pruned_when_it_grows() {
        let l = LoginLimiter::new(5, MIN);
        let t = Instant::now();
        for i in 0..=PRUNE_ABOVE {
            l.attempt(&[&format!("addr:{i}")], t).unwrap();
        }
        l.attempt(&["addr:late"], t + 2 * MIN).unwrap();
        assert_eq!(l.map().len(), 1, "every key but the newest had left the window");
    }
}
