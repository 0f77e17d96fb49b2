//! Catch-up progress of one corp, for the log ([`Progress`]).
//!
//! While a corp's pages come back full it is behind; once that has lasted `interval`, an INFO
//! line at most every `interval` says how many records were stored since the previous line, at
//! what rate, the cursor, the lag (now − msgtime of the newest stored record) and, when it can
//! be estimated, the time left. A short page then ends the catch-up with one "caught up" line. A
//! catch-up shorter than `interval` logs nothing (a busy corp that fills one page per poll is not
//! behind in any useful sense), and neither do the polls of an idle corp.
//!
//! The time left is estimated from how fast the stored records' msgtime advances: a corp that
//! gets through `r` seconds of chat per second closes a lag `L` in `L / (r − 1)`; no estimate
//! while `r ≤ 1` (it is not catching up) or before a record with a msgtime was stored.

use std::time::{Duration, Instant};

/// The catch-up state of one corp.
#[derive(Debug, Clone)]
pub struct Progress {
    interval: Duration,
    seq: u64,
    newest_msgtime_ms: Option<u64>,
    episode: Option<Episode>,
}

/// One catch-up: from the first full page to the next short one.
#[derive(Debug, Clone)]
struct Episode {
    started: Instant,
    records: u64,
    reported: bool,
    window_start: Instant,
    window_records: u64,
    window_msgtime_ms: Option<u64>,
}

/// What to log after a page.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// Still behind.
    Progress {
        /// Records stored since the previous line (or the start of the catch-up).
        records: u64,
        /// Records stored per second over that time.
        per_sec: f64,
        /// The committed cursor.
        seq: u64,
        /// Now − msgtime of the newest stored record.
        lag: Option<Duration>,
        /// Time left, when it can be estimated.
        eta: Option<Duration>,
    },
    /// A short page ended a catch-up that was reported.
    CaughtUp {
        /// Records stored during the whole catch-up.
        records: u64,
        /// How long the catch-up took.
        took: Duration,
        /// The committed cursor.
        seq: u64,
        /// Now − msgtime of the newest stored record.
        lag: Option<Duration>,
    },
}

impl Progress {
    /// Lines at most every `interval`; `Duration::ZERO` turns them off.
    pub fn new(interval: Duration) -> Self {
        Self { interval, seq: 0, newest_msgtime_ms: None, episode: None }
    }

    /// A batch was committed: `rows` rows inserted, the cursor at `seq`, the newest msgtime of
    /// the batch (ms; `None` or 0 when no record had one).
    pub fn stored(&mut self, rows: u64, seq: u64, newest_msgtime_ms: Option<u64>) {
        self.seq = self.seq.max(seq);
        if let Some(t) = newest_msgtime_ms.filter(|&t| t > 0) {
            self.newest_msgtime_ms = Some(self.newest_msgtime_ms.map_or(t, |n| n.max(t)));
        }
        if let Some(e) = &mut self.episode {
            e.records += rows;
            e.window_records += rows;
        }
    }

    /// A page came back (`full`: it held the limit) at `now`, wall clock `now_ms` (unix ms);
    /// the line to log, if any.
    pub fn page(&mut self, full: bool, now: Instant, now_ms: u64) -> Option<Line> {
        if self.interval.is_zero() {
            return None;
        }
        let lag = self.newest_msgtime_ms.map(|t| Duration::from_millis(now_ms.saturating_sub(t)));
        if !full {
            let e = self.episode.take()?;
            return e.reported.then(|| Line::CaughtUp {
                records: e.records,
                took: now.saturating_duration_since(e.started),
                seq: self.seq,
                lag,
            });
        }
        let newest = self.newest_msgtime_ms;
        let e = self.episode.get_or_insert(Episode {
            started: now,
            records: 0,
            reported: false,
            window_start: now,
            window_records: 0,
            window_msgtime_ms: newest,
        });
        let elapsed = now.saturating_duration_since(e.window_start);
        if elapsed < self.interval || elapsed.is_zero() {
            return None;
        }
        let eta = match (lag, e.window_msgtime_ms, newest) {
            (Some(lag), Some(from), Some(to)) => {
                // Seconds of chat stored per second of wall time.
                let r = to.saturating_sub(from) as f64 / elapsed.as_millis().max(1) as f64;
                (r > 1.0).then(|| Duration::from_secs_f64((lag.as_secs_f64() / (r - 1.0)).min(1e9)))
            }
            _ => None,
        };
        let line = Line::Progress {
            records: e.window_records,
            per_sec: e.window_records as f64 / elapsed.as_secs_f64(),
            seq: self.seq,
            lag,
            eta,
        };
        e.window_start = now;
        e.window_records = 0;
        e.window_msgtime_ms = newest;
        e.reported = true;
        Some(line)
    }
}

/// A duration for a log line, to the second: `3d 4h 5m 6s`, `42s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    let parts = [(s / 86_400, "d"), (s / 3600 % 24, "h"), (s / 60 % 60, "m"), (s % 60, "s")];
    let out: Vec<String> = parts.iter().filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n}{unit}")).collect();
    if out.is_empty() {
        "0s".into()
    } else {
        out.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: u64 = 86_400_000;

    #[test]
    fn a_long_catch_up_reports_every_interval_then_once_caught_up() {
        let t0 = Instant::now();
        let wall = 10 * DAY_MS;
        let mut p = Progress::new(Duration::from_secs(10));
        // Before the first full page: nothing.
        assert_eq!(p.page(false, t0, wall), None);
        assert_eq!(p.page(true, t0, wall), None);
        // 5 s in: 500 records of one day of chat; not yet an interval.
        p.stored(500, 500, Some(DAY_MS));
        assert_eq!(p.page(true, t0 + Duration::from_secs(5), wall), None);
        // 10 s in: 1,000 records, msgtime 2 days: the first line.
        p.stored(500, 1000, Some(2 * DAY_MS));
        let Some(Line::Progress { records, per_sec, seq, lag, eta }) = p.page(true, t0 + Duration::from_secs(10), wall)
        else {
            panic!("no progress line after the interval")
        };
        assert_eq!((records, seq), (1000, 1000));
        assert!((per_sec - 100.0).abs() < 1e-9, "{per_sec}");
        assert_eq!(lag, Some(Duration::from_millis(8 * DAY_MS)));
        // No msgtime at the window start: no estimate yet.
        assert_eq!(eta, None);
        // 20 s in: one more day of chat in 10 s: r = 8640, lag 7 days → ETA = 7 d / 8639.
        p.stored(1000, 2000, Some(3 * DAY_MS));
        let Some(Line::Progress { records, eta, .. }) = p.page(true, t0 + Duration::from_secs(20), wall) else {
            panic!("no second progress line")
        };
        assert_eq!(records, 1000, "records since the previous line");
        let want = 7.0 * 86_400.0 / (8640.0 - 1.0);
        assert!((eta.unwrap().as_secs_f64() - want).abs() < 0.01, "{eta:?} vs {want}");
        // Inside the interval: nothing; a short page: caught up, once.
        p.stored(10, 2010, Some(wall - 1000));
        assert_eq!(p.page(true, t0 + Duration::from_secs(25), wall), None);
        let Some(Line::CaughtUp { records, took, seq, lag }) = p.page(false, t0 + Duration::from_secs(26), wall) else {
            panic!("no caught-up line")
        };
        assert_eq!((records, took, seq, lag), (2010, Duration::from_secs(26), 2010, Some(Duration::from_secs(1))));
        for i in 0..5 {
            assert_eq!(p.page(false, t0 + Duration::from_secs(30 + i), wall), None, "an idle poll logs nothing");
        }
    }

    #[test]
    fn a_short_catch_up_or_a_slow_one_says_only_what_it_knows() {
        let t0 = Instant::now();
        let mut p = Progress::new(Duration::from_secs(10));
        // Behind for less than the interval: neither progress nor caught up.
        assert_eq!(p.page(true, t0, DAY_MS), None);
        p.stored(100, 100, Some(1000));
        assert_eq!(p.page(false, t0 + Duration::from_secs(3), DAY_MS), None);
        // Falling behind (chat advances slower than wall time): no ETA.
        assert_eq!(p.page(true, t0 + Duration::from_secs(4), DAY_MS), None);
        p.stored(10, 110, Some(2000));
        let line = p.page(true, t0 + Duration::from_secs(14), DAY_MS);
        assert!(matches!(line, Some(Line::Progress { eta: None, records: 10, .. })), "{line:?}");
        // Off.
        let mut off = Progress::new(Duration::ZERO);
        assert_eq!(off.page(true, t0, DAY_MS), None);
        assert_eq!(off.page(true, t0 + Duration::from_secs(100), DAY_MS), None);
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::ZERO), "0s");
        assert_eq!(human(Duration::from_secs(42)), "42s");
        assert_eq!(human(Duration::from_secs(3600)), "1h");
        assert_eq!(human(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5 * 60 + 6)), "3d 4h 5m 6s");
    }
}
