//! [`Histogram`]: a fixed-bucket latency histogram, updated without locks by the pipeline (pull
//! and batch-write latency, the media stages) and rendered as a Prometheus histogram from its [`HistogramSnapshot`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Upper bounds (seconds) of the latency buckets: 100 µs (a media file's rename or verification)
/// to 2 min (a GetChatData call is bounded by the corp's timeout, 10 s by default, plus the hang
/// grace).
pub const LATENCY_BUCKETS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0,
];

/// Observations counted per bucket, with their sum.
#[derive(Debug)]
pub struct Histogram {
    /// One counter per bound of [`LATENCY_BUCKETS`] plus one for `+Inf` (not cumulative).
    counts: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// Sum of the observations, microseconds.
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self { counts: std::array::from_fn(|_| AtomicU64::new(0)), sum_micros: AtomicU64::new(0) }
    }
}

impl Histogram {
    /// Counts one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = LATENCY_BUCKETS.iter().position(|&le| secs <= le).unwrap_or(LATENCY_BUCKETS.len());
        self.counts[i].fetch_add(1, Relaxed);
        self.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
    }

    /// The cumulative counts as Prometheus wants them.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut buckets = Vec::with_capacity(LATENCY_BUCKETS.len());
        for (le, count) in LATENCY_BUCKETS.iter().zip(&self.counts) {
            running += count.load(Relaxed);
            buckets.push((*le, running));
        }
        running += self.counts[LATENCY_BUCKETS.len()].load(Relaxed);
        HistogramSnapshot { buckets, count: running, sum: self.sum_micros.load(Relaxed) as f64 / 1e6 }
    }
}

/// A histogram at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations ≤ it)`, cumulative, without `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    /// Their sum, seconds.
    pub sum: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_sum_adds_up() {
        let h = Histogram::default();
        for ms in [1, 7, 7, 300, 200_000] {
            h.observe(Duration::from_millis(ms));
        }
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        assert!((s.sum - 200.315).abs() < 1e-6, "{}", s.sum);
        let at = |le: f64| s.buckets.iter().find(|b| b.0 == le).unwrap().1;
        assert_eq!((at(0.005), at(0.01), at(0.25), at(0.5), at(120.0)), (1, 3, 3, 4, 4));
    }
}
