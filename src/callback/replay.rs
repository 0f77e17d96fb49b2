//! Freshness of signed callbacks: a timestamp too far from the clock is refused, and a
//! `(corpid, timestamp, nonce)` already seen within the window is a replay.
//!
//! Only requests whose signature was valid are remembered (a forger cannot fill the table), and
//! entries older than the window are dropped as new ones arrive. The table is bounded
//! ([`ReplayGuard::new`]'s `capacity`): when full of live entries, new requests are refused as
//! `Full` rather than forgetting one that could then be replayed.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a request's freshness was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// First sight, within the window: remembered.
    Fresh,
    /// `timestamp` is not a number, or further than the window from now.
    Stale,
    /// Seen before within the window.
    Replay,
    /// The table is full of live entries (a flood of valid requests).
    Full,
}

/// Remembers recent `(corpid, timestamp, nonce)`s.
#[derive(Debug)]
pub struct ReplayGuard {
    window: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashMap<(String, String, String), Instant>,
    order: VecDeque<(Instant, (String, String, String))>,
}

impl ReplayGuard {
    /// A guard with this window (also the allowed clock difference) and at most `capacity` live
    /// entries.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self { window, capacity: capacity.max(1), inner: Mutex::new(Inner::default()) }
    }

    /// `timestamp` (seconds since the epoch) is a number within the window of `now_unix`.
    pub fn timely(&self, timestamp: &str, now_unix: u64) -> bool {
        timestamp.trim().parse::<u64>().is_ok_and(|ts| ts.abs_diff(now_unix) <= self.window.as_secs())
    }

    /// Judges a request whose signature is valid; `now_unix` is the clock in seconds since the
    /// epoch, `now` the monotonic one.
    pub fn check(&self, corpid: &str, timestamp: &str, nonce: &str, now_unix: u64, now: Instant) -> Freshness {
        if !self.timely(timestamp, now_unix) {
            return Freshness::Stale;
        }
        let Ok(mut inner) = self.inner.lock() else { return Freshness::Full };
        while let Some((at, _)) = inner.order.front() {
            if now.saturating_duration_since(*at) <= self.window {
                break;
            }
            if let Some((at, key)) = inner.order.pop_front() {
                if inner.seen.get(&key) == Some(&at) {
                    inner.seen.remove(&key);
                }
            }
        }
        let key = (corpid.to_string(), timestamp.trim().to_string(), nonce.to_string());
        if inner.seen.contains_key(&key) {
            return Freshness::Replay;
        }
        if inner.seen.len() >= self.capacity {
            return Freshness::Full;
        }
        inner.seen.insert(key.clone(), now);
        inner.order.push_back((now, key));
        Freshness::Fresh
    }

    /// Live entries (for tests).
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.seen.len()).unwrap_or(0)
    }

    /// No live entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_stale_and_full() {
        let g = ReplayGuard::new(Duration::from_secs(300), 3);
        let t0 = Instant::now();
        let now = 1_800_000_000;
        assert_eq!(g.check("ww1", "1800000000", "n1", now, t0), Freshness::Fresh);
        assert_eq!(g.check("ww1", "1800000000", "n1", now + 10, t0), Freshness::Replay);
        assert_eq!(g.check("ww2", "1800000000", "n1", now, t0), Freshness::Fresh, "another corp");
        assert_eq!(g.check("ww1", "1800000001", "n1", now, t0), Freshness::Fresh, "another timestamp");
        assert_eq!(g.check("ww1", "1800000000", "n2", now, t0), Freshness::Full);
        assert_eq!(g.check("ww1", "1799999000", "n3", now, t0), Freshness::Stale, "too old");
        assert_eq!(g.check("ww1", "1800000400", "n3", now, t0), Freshness::Stale, "too far ahead");
        assert_eq!(g.check("ww1", "soon", "n3", now, t0), Freshness::Stale);
        // After the window the entries are gone: the same request is too old by then anyway.
        let later = t0 + Duration::from_secs(301);
        assert_eq!(g.check("ww1", "1800000200", "n9", now + 301, later), Freshness::Fresh);
        assert_eq!(g.len(), 1);
    }
}
