//! What the operator sees: the per-corp [`Report`], Prometheus metrics, health, retention alerts.
//!
//! - [`Report`] is the one picture of the daemon: per corp the live state kept by the pipeline
//!   ([`crate::actors::Stats`]) joined with what the database says (cursor, media items by
//!   status). [`gather`] builds it; everything below renders it, so `/metrics`, `/healthz`,
//!   `/status` and the `status` command can never disagree;
//! - [`metrics::render`] turns a report into Prometheus text;
//! - [`alert::Alerts`] decides when a corp's silence approaches WeCom's 5-day retention;
//! - [`observer::Observer`] is the actor on the pipeline's event loop that gathers reports (the
//!   database pool lives on that loop) and logs alerts; [`http::serve`] is the actix-web endpoint
//!   that asks it.
//!
//! Plain functions except the actor and the server: testable without either.

pub mod alert;
pub mod http;
pub mod metrics;
pub mod observer;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::actors::{CorpStatus, Stats};
use crate::store::{CorpId, Store};

/// How long one database question of a report may take before the report says "unknown".
pub const DB_TIMEOUT: Duration = Duration::from_secs(5);

/// The whole picture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Seconds since the epoch when the report was made.
    pub generated_at: u64,
    /// Whether the database answered.
    pub database_ok: bool,
    /// Why it did not.
    pub database_error: Option<String>,
    /// `database_ok` and no corp failing (what `/healthz` answers).
    pub healthy: bool,
    /// The failing threshold in effect (`[daemon] failing_after`).
    pub failing_after: u32,
    /// Whether the numbers come from a running daemon (`false`: database only).
    pub live: bool,
    /// Process resident memory, bytes.
    pub rss_bytes: Option<u64>,
    /// Process-wide media counters (when media is on).
    pub media: Option<MediaTotals>,
    /// One entry per corp, by corpid.
    pub corps: Vec<CorpReport>,
}

/// Process-wide media counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaTotals {
    /// Items downloaded and verified.
    pub done: u64,
    /// Attempts that will be retried.
    pub retried: u64,
    /// Items failed for good.
    pub failed: u64,
    /// Voice files transcoded.
    pub transcoded: u64,
    /// Transcodes that failed.
    pub transcode_failed: u64,
}

/// One corp.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CorpReport {
    /// The corp.
    pub corpid: String,
    /// `running`, `caught up`, `backoff`, `failing`, `restarting`, … or `unknown` (no daemon).
    pub state: String,
    /// See [`CorpStatus::is_failing`].
    pub failing: bool,
    /// The highest stored seq (the database's cursor when it answered).
    pub last_seq: u64,
    /// Records stored by this process.
    pub stored: u64,
    /// Records stored undecryptable by this process.
    pub decrypt_failures: u64,
    /// SDK errors by code.
    pub sdk_errors: BTreeMap<String, u64>,
    /// Now − the newest stored msgtime, seconds (unknown until a record is stored).
    pub lag_seconds: Option<f64>,
    /// Seconds since the last successful GetChatData (or since start when none yet).
    pub since_last_pull_seconds: Option<f64>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Restarts after failures.
    pub restarts: u64,
    /// The actor generation.
    pub generation: u64,
    /// The last error.
    pub last_error: Option<String>,
    /// The instance holding the corp's lease (`[cluster] leases`), from `corp_lease`.
    pub lease_holder: Option<String>,
    /// Media items by `(kind, status)` from the database (status 0 held, 1 pending … 4 failed).
    pub media: Vec<MediaStatusCount>,
}

/// Media items of one kind in one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaStatusCount {
    /// Media kind (`image`, `voice`, …).
    pub kind: String,
    /// `held`, `pending`, `downloading`, `done`, `failed`.
    pub status: String,
    /// Items.
    pub count: u64,
}

/// The name of a media status number.
pub fn media_status_name(status: u8) -> &'static str {
    match status {
        0 => "held",
        1 => "pending",
        2 => "downloading",
        3 => "done",
        4 => "failed",
        _ => "unknown",
    }
}

impl Report {
    /// The corps that are failing.
    pub fn failing(&self) -> impl Iterator<Item = &CorpReport> {
        self.corps.iter().filter(|c| c.failing)
    }
}

/// What [`gather`] reads.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Live state (`None` for a database-only report).
    pub stats: Option<Arc<Stats>>,
    /// The database.
    pub store: Arc<dyn Store>,
    /// Corps to report besides those in `stats` (database-only reports).
    pub corps: Vec<CorpId>,
    /// Media counters.
    pub media: Option<Arc<crate::actors::media::MediaCounters>>,
    /// `[daemon] failing_after`.
    pub failing_after: u32,
}

/// Builds the report at `now`: the live state joined with the database's cursor and media
/// counts. A database that does not answer within [`DB_TIMEOUT`] makes the report unhealthy
/// and its numbers the live ones.
pub async fn gather(src: &Sources, now: SystemTime) -> Report {
    let ping = tokio::time::timeout(DB_TIMEOUT, src.store.ping()).await;
    let database_error = match ping {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {DB_TIMEOUT:?}")),
    };
    let mut live: BTreeMap<CorpId, CorpStatus> = src.stats.as_ref().map(|s| s.snapshot()).unwrap_or_default();
    for corpid in &src.corps {
        live.entry(corpid.clone()).or_insert_with(|| CorpStatus { state: "unknown".into(), ..CorpStatus::default() });
    }
    let mut holders: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    if database_error.is_none() {
        if let Ok(Ok(leases)) = tokio::time::timeout(DB_TIMEOUT, src.store.lease_list()).await {
            holders.extend(leases.into_iter().filter(|l| !l.holder.is_empty()).map(|l| (l.corpid, l.holder)));
        }
    }
    let mut corps = Vec::with_capacity(live.len());
    for (corpid, status) in live {
        let mut report = corp_report(&corpid, &status, src.failing_after, now);
        report.lease_holder = holders.get(corpid.as_str()).cloned();
        if database_error.is_none() {
            use tracing::Instrument;
            let span = tracing::info_span!("report", corpid = %corpid);
            let cursor = tokio::time::timeout(DB_TIMEOUT, src.store.cursor(&corpid)).instrument(span.clone()).await;
            if let Ok(Ok(cursor)) = cursor {
                report.last_seq = cursor;
            }
            let media = tokio::time::timeout(DB_TIMEOUT, src.store.media_stats(&corpid)).instrument(span).await;
            if let Ok(Ok(counts)) = media {
                report.media = counts
                    .into_iter()
                    .map(|c| MediaStatusCount {
                        kind: c.kind,
                        status: media_status_name(c.status).to_string(),
                        count: c.count,
                    })
                    .collect();
            }
        }
        corps.push(report);
    }
    let database_ok = database_error.is_none();
    Report {
        generated_at: now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default(),
        healthy: database_ok && !corps.iter().any(|c| c.failing),
        database_ok,
        database_error,
        failing_after: src.failing_after,
        live: src.stats.is_some(),
        rss_bytes: rss_bytes(),
        media: src.media.as_ref().map(|m| {
            use std::sync::atomic::Ordering::Relaxed;
            MediaTotals {
                done: m.done.load(Relaxed),
                retried: m.retried.load(Relaxed),
                failed: m.failed.load(Relaxed),
                transcoded: m.transcoded.load(Relaxed),
                transcode_failed: m.transcode_failed.load(Relaxed),
            }
        }),
        corps,
    }
}

/// One corp's live part of the report.
pub fn corp_report(corpid: &CorpId, s: &CorpStatus, failing_after: u32, now: SystemTime) -> CorpReport {
    let lag = s.newest_msgtime_ms.map(|ms| {
        let newest = UNIX_EPOCH + Duration::from_millis(ms);
        now.duration_since(newest).map(|d| d.as_secs_f64()).unwrap_or(0.0)
    });
    CorpReport {
        corpid: corpid.to_string(),
        state: if s.state.is_empty() { "starting".into() } else { s.state.clone() },
        failing: s.is_failing(failing_after),
        last_seq: s.cursor,
        stored: s.stored,
        decrypt_failures: s.undecryptable,
        sdk_errors: s.sdk_errors.clone(),
        lag_seconds: lag,
        since_last_pull_seconds: s.since_last_pull(now).map(|d| d.as_secs_f64()),
        consecutive_failures: s.consecutive_failures,
        restarts: s.restarts,
        generation: s.generation,
        last_error: s.last_error.clone(),
        lease_holder: None,
        media: Vec::new(),
    }
}

/// Resident set size of this process (`/proc/self/statm`), bytes.
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> CorpStatus {
        CorpStatus { state: "caught up".into(), cursor: 42, stored: 40, undecryptable: 2, ..CorpStatus::default() }
    }

    #[test]
    fn failing_is_a_permanent_state_or_a_streak() {
        let id = CorpId::new("ww1").unwrap();
        let now = SystemTime::now();
        assert!(!corp_report(&id, &status(), 3, now).failing);
        let streak = CorpStatus { consecutive_failures: 3, state: "backoff".into(), ..status() };
        assert!(corp_report(&id, &streak, 3, now).failing);
        assert!(!corp_report(&id, &streak, 4, now).failing);
        let permanent = CorpStatus { state: "failing".into(), ..status() };
        assert!(corp_report(&id, &permanent, 3, now).failing);
    }

    #[test]
    fn lag_and_silence_are_measured_from_now() {
        let id = CorpId::new("ww1").unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = CorpStatus {
            newest_msgtime_ms: Some(999_000_000),
            last_success: Some(now - Duration::from_secs(30)),
            since: Some(now - Duration::from_secs(3600)),
            ..status()
        };
        let r = corp_report(&id, &s, 3, now);
        assert_eq!(r.lag_seconds, Some(1000.0));
        assert_eq!(r.since_last_pull_seconds, Some(30.0));
        let never = CorpStatus { last_success: None, ..s };
        assert_eq!(corp_report(&id, &never, 3, now).since_last_pull_seconds, Some(3600.0));
    }

    #[test]
    fn rss_is_read() {
        assert!(rss_bytes().is_some_and(|b| b > 1 << 20));
    }
}
