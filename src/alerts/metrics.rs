//! What the alerts report to `/metrics` and `/status` (`crate::observe`): per channel, the
//! process's counters (hits sent, failed attempts, hits given up, waits on the rate limit) and,
//! from the database, the outbox (rows pending, being sent, failed; the age of the oldest
//! pending one).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::store::{OutboxCount, OUTBOX_FAILED, OUTBOX_PENDING, OUTBOX_SENDING, OUTBOX_SENT};

/// The counters of one channel (since the process started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelCounters {
    /// Hits delivered.
    pub sent: u64,
    /// Messages delivered.
    pub messages: u64,
    /// Send attempts that failed.
    pub failed: u64,
    /// Hits given up.
    pub given_up: u64,
    /// Times the sender waited for the rate limit.
    pub rate_limited: u64,
}

/// The process's alert counters, by channel.
#[derive(Debug, Default)]
pub struct Counters(Mutex<BTreeMap<String, ChannelCounters>>);

impl Counters {
    fn with(&self, channel: &str, f: impl FnOnce(&mut ChannelCounters)) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(m.entry(channel.to_string()).or_default());
    }

    /// `channel` is configured (it shows with zeros).
    pub fn register(&self, channel: &str) {
        self.with(channel, |_| {});
    }

    /// A message of `hits` hits was delivered.
    pub fn sent(&self, channel: &str, hits: usize) {
        self.with(channel, |c| {
            c.sent += hits as u64;
            c.messages += 1;
        });
    }

    /// An attempt failed.
    pub fn failed(&self, channel: &str) {
        self.with(channel, |c| c.failed += 1);
    }

    /// `hits` hits were given up.
    pub fn given_up(&self, channel: &str, hits: usize) {
        self.with(channel, |c| c.given_up += hits as u64);
    }

    /// The sender waited for the rate limit.
    pub fn rate_limited(&self, channel: &str) {
        self.with(channel, |c| c.rate_limited += 1);
    }

    /// A copy of every channel's counters.
    pub fn snapshot(&self) -> BTreeMap<String, ChannelCounters> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// One channel in a report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelReport {
    /// The channel.
    pub channel: String,
    /// This process's counters.
    pub counters: ChannelCounters,
    /// Outbox rows waiting.
    pub pending: u64,
    /// Outbox rows being sent.
    pub sending: u64,
    /// Outbox rows delivered.
    pub sent_rows: u64,
    /// Outbox rows given up.
    pub failed_rows: u64,
    /// Seconds since the oldest waiting row was created (0: none waiting).
    pub oldest_pending_seconds: f64,
    /// The newest error recorded on a waiting or failed row.
    pub last_error: Option<String>,
}

/// The report of every channel: `counters` (configured channels) joined with the outbox
/// `counts` (channels of the database too, e.g. removed from the configuration with rows left),
/// ages taken at `now_ms`.
pub fn report(counters: &BTreeMap<String, ChannelCounters>, counts: &[OutboxCount], now_ms: i64) -> Vec<ChannelReport> {
    let mut out: BTreeMap<String, ChannelReport> = counters
        .iter()
        .map(|(k, c)| (k.clone(), ChannelReport { channel: k.clone(), counters: *c, ..ChannelReport::default() }))
        .collect();
    for c in counts {
        let r = out
            .entry(c.channel.clone())
            .or_insert_with(|| ChannelReport { channel: c.channel.clone(), ..ChannelReport::default() });
        match c.status {
            OUTBOX_PENDING => {
                r.pending += c.count;
                r.oldest_pending_seconds = ((now_ms - c.oldest_ms).max(0) as f64) / 1000.0;
            }
            OUTBOX_SENDING => r.sending += c.count,
            OUTBOX_SENT => r.sent_rows += c.count,
            OUTBOX_FAILED => r.failed_rows += c.count,
            _ => {}
        }
        if c.status != OUTBOX_SENT && c.last_error.is_some() {
            r.last_error.clone_from(&c.last_error);
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_counters_are_joined() {
        let c = Counters::default();
        c.register("a");
        c.sent("a", 3);
        c.failed("a");
        c.given_up("a", 2);
        let counts = vec![
            OutboxCount { channel: "a".into(), status: 0, count: 4, oldest_ms: 1_000, last_error: Some("503".into()) },
            OutboxCount { channel: "a".into(), status: 2, count: 3, oldest_ms: 0, last_error: None },
            OutboxCount { channel: "gone".into(), status: 3, count: 1, oldest_ms: 0, last_error: None },
        ];
        let r = report(&c.snapshot(), &counts, 11_000);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].counters.sent, r[0].counters.messages, r[0].counters.failed, r[0].counters.given_up),
            (3, 1, 1, 2)
        );
        assert_eq!((r[0].pending, r[0].sent_rows, r[0].oldest_pending_seconds), (4, 3, 10.0));
        assert_eq!(r[0].last_error.as_deref(), Some("503"));
        assert_eq!((r[1].channel.as_str(), r[1].failed_rows), ("gone", 1));
    }
}
