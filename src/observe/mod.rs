//! What the operator sees: the per-corp [`Report`], Prometheus metrics, health, retention alerts.
//!
//! - [`Report`] is the one picture of the daemon: per corp the live state kept by the pipeline
//!   ([`crate::actors::Stats`]) joined with what the database says (cursor, media items by
//!   status), plus the process ([`process::ProcessStats`]) and the pipeline's latency histograms
//!   ([`histogram::Histogram`]). [`gather`] builds it; everything below renders it, so
//!   `/metrics`, `/healthz`, `/status` and the `status` command can never disagree;
//! - [`snapshot::Snapshots`] builds it at most once a second, however many ask: the endpoints
//!   serve that shared snapshot;
//! - [`metrics::render`] turns a report into Prometheus text;
//! - [`completeness::check`] finds what is missing from the archive (seq gaps, people, consent,
//!   failed media, undecryptable records, lag); the observer runs it on its own slower timer and
//!   the snapshot carries the last result as [`Report::completeness`];
//! - [`alert::Alerts`] decides when a corp's silence approaches WeCom's 5-day retention;
//! - [`observer::Observer`] is the actor on the pipeline's event loop that owns the snapshots (the
//!   database pool lives on that loop) and logs alerts; [`http::serve`] is the actix-web endpoint
//!   that asks it.
//!
//! Plain functions except the actor and the server: testable without either.

pub mod alert;
pub mod completeness;
pub mod histogram;
pub mod http;
pub mod metrics;
pub mod observer;
pub mod process;
pub mod snapshot;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::actors::{CorpStatus, Stats};
use crate::store::{CorpId, Store};
use histogram::HistogramSnapshot;
use process::ProcessStats;

/// How long one database question of a report may take before the report says "unknown".
pub const DB_TIMEOUT: Duration = Duration::from_secs(5);

/// The whole picture.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Seconds since the epoch when the report was made.
    pub generated_at: u64,
    /// The same in milliseconds.
    #[serde(default)]
    pub generated_at_ms: u64,
    /// Reports built by this process so far (this one included): the endpoints share one
    /// snapshot a second, so this grows by at most one a second whatever the request rate.
    #[serde(default)]
    pub builds: u64,
    /// The daemon's version.
    #[serde(default)]
    pub version: String,
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
    /// The process (CPU, file descriptors, memory, start time).
    #[serde(default)]
    pub process: ProcessStats,
    /// GetChatData latency (live reports only).
    #[serde(default)]
    pub pull_seconds: Option<HistogramSnapshot>,
    /// Batch-write latency (live reports only).
    #[serde(default)]
    pub write_seconds: Option<HistogramSnapshot>,
    /// Process-wide media counters (when media is on).
    pub media: Option<MediaTotals>,
    /// Callback requests and events (live reports, once a callback arrived).
    #[serde(default)]
    pub callback: Option<crate::callback::counters::CallbackTotals>,
    /// Latency of each media stage by its name (live reports with media on; see
    /// [`crate::actors::media::MediaStages`]).
    pub media_stage_seconds: Vec<(String, HistogramSnapshot)>,
    /// One entry per corp, by corpid.
    pub corps: Vec<CorpReport>,
    /// One entry per alert channel (configured, or with rows in the outbox).
    #[serde(default)]
    pub alerts: Vec<crate::alerts::metrics::ChannelReport>,
    /// The last completeness check (`[http] completeness_interval`; `None` before the first or
    /// when off).
    #[serde(default)]
    pub completeness: Option<completeness::CompletenessReport>,
    /// Rule hits of committed batches by rule, this process (live reports only).
    #[serde(default)]
    pub rule_hits: std::collections::BTreeMap<String, u64>,
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
    /// When GetChatData last succeeded (or, before the first success, when this process
    /// started the corp), seconds since the epoch.
    #[serde(default)]
    pub last_pull_at: Option<f64>,
    /// The newest stored msgtime, seconds since the epoch.
    #[serde(default)]
    pub newest_msgtime_at: Option<f64>,
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
    /// Recent decryption per `publickey_ver` (live reports only).
    #[serde(default)]
    pub keys: Vec<KeyReport>,
    /// Why WeCom's archive APIs refuse the corp (errcode 301052), live reports only.
    #[serde(default)]
    pub wecom_api_error: Option<String>,
}

/// The recent records of one key version of a corp.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KeyReport {
    /// The `publickey_ver`.
    pub publickey_ver: u32,
    /// Recent records of this version (at most [`crate::actors::KEY_WINDOW`]).
    pub records: u32,
    /// Of those, undecryptable with the configured key.
    pub undecryptable: u32,
    /// More than half undecryptable: the corp is failing.
    pub failing: bool,
    /// The last key error (no key material).
    pub error: Option<String>,
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

impl CorpReport {
    /// The key versions whose recent records are mostly undecryptable.
    pub fn failing_keys(&self) -> impl Iterator<Item = &KeyReport> {
        self.keys.iter().filter(|k| k.failing)
    }

    /// Why the corp is failing, in one line: each failing key version, else the last error or
    /// the state.
    pub fn failing_reason(&self) -> String {
        let keys: Vec<String> = self
            .failing_keys()
            .map(|k| {
                format!(
                    "publickey_ver {}: {} of the last {} records undecryptable ({})",
                    k.publickey_ver,
                    k.undecryptable,
                    k.records,
                    k.error.as_deref().unwrap_or("wrong or missing key")
                )
            })
            .collect();
        if let Some(why) = &self.wecom_api_error {
            why.clone()
        } else if keys.is_empty() {
            self.last_error.clone().unwrap_or_else(|| self.state.clone())
        } else {
            keys.join("; ")
        }
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
    /// The alerts' counters (`crate::alerts`); with them the report also reads the outbox.
    pub alerts: Option<Arc<crate::alerts::metrics::Counters>>,
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
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let alerts = match &src.alerts {
        Some(counters) => {
            let counts = match database_error {
                None => tokio::time::timeout(DB_TIMEOUT, src.store.alert_counts()).await.ok().and_then(Result::ok),
                Some(_) => None,
            };
            let now_ms = i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX);
            crate::alerts::metrics::report(&counters.snapshot(), &counts.unwrap_or_default(), now_ms)
        }
        None => Vec::new(),
    };
    Report {
        generated_at: since_epoch.as_secs(),
        generated_at_ms: u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX),
        builds: 0,
        version: env!("CARGO_PKG_VERSION").to_string(),
        healthy: database_ok && !corps.iter().any(|c| c.failing),
        database_ok,
        database_error,
        failing_after: src.failing_after,
        live: src.stats.is_some(),
        process: ProcessStats::read(),
        pull_seconds: src.stats.as_ref().map(|s| s.pull_seconds.snapshot()),
        write_seconds: src.stats.as_ref().map(|s| s.write_seconds.snapshot()),
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
        callback: src.stats.as_ref().and_then(|s| s.callback.snapshot()),
        media_stage_seconds: src.media.as_ref().map(|m| m.stages.snapshot()).unwrap_or_default(),
        corps,
        alerts,
        completeness: None,
        rule_hits: src.stats.as_ref().map(|s| s.rule_hits.snapshot()).unwrap_or_default(),
    }
}

/// Logs the key versions of a corp that started (WARN) or stopped (INFO) failing; called in the
/// corp's span, so every line carries its `corpid`. Only the version, the counts and the error
/// text are logged (the error texts name no key material).
pub fn log_key_changes(changes: &[crate::actors::KeyChange]) {
    for k in changes {
        if k.failing {
            tracing::warn!(
                publickey_ver = k.ver,
                undecryptable = k.undecryptable,
                of = k.records,
                error = k.error.as_deref().unwrap_or(""),
                "recent records of this publickey_ver are undecryptable: the private key configured for it is \
                 wrong or missing (records are stored with their ciphertext; fix the key, then `redecrypt`)"
            );
        } else {
            tracing::info!(
                publickey_ver = k.ver,
                undecryptable = k.undecryptable,
                of = k.records,
                "records of this publickey_ver decrypt again"
            );
        }
    }
}

/// One corp's live part of the report.
pub fn corp_report(corpid: &CorpId, s: &CorpStatus, failing_after: u32, now: SystemTime) -> CorpReport {
    let lag = s.newest_msgtime_ms.map(|ms| {
        let newest = UNIX_EPOCH + Duration::from_millis(ms);
        now.duration_since(newest).map(|d| d.as_secs_f64()).unwrap_or(0.0)
    });
    let epoch_secs = |t: SystemTime| t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs_f64());
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
        last_pull_at: s.last_success.or(s.since).and_then(epoch_secs),
        newest_msgtime_at: s.newest_msgtime_ms.map(|ms| ms as f64 / 1000.0),
        consecutive_failures: s.consecutive_failures,
        restarts: s.restarts,
        generation: s.generation,
        last_error: s.last_error.clone(),
        lease_holder: None,
        wecom_api_error: s.wecom_api_error.clone(),
        media: Vec::new(),
        keys: s
            .keys
            .iter()
            .filter(|(_, k)| k.records() > 0)
            .map(|(ver, k)| KeyReport {
                publickey_ver: *ver,
                records: k.records(),
                undecryptable: k.undecryptable(),
                failing: k.failing(),
                error: k.last_error.clone(),
            })
            .collect(),
    }
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
        assert_eq!((r.last_pull_at, r.newest_msgtime_at), (Some(999_970.0), Some(999_000.0)));
        let never = CorpStatus { last_success: None, ..s };
        assert_eq!(corp_report(&id, &never, 3, now).since_last_pull_seconds, Some(3600.0));
        assert_eq!(corp_report(&id, &never, 3, now).last_pull_at, Some(996_400.0), "the corp's start");
    }

    #[test]
    fn a_failing_key_version_fails_the_corp_and_names_the_version() {
        let id = CorpId::new("ww1").unwrap();
        let mut s = status();
        let bad = crate::actors::KeyOutcome::KeyFailed("wrong key for this record".into());
        for _ in 0..3 {
            s.keys.entry(1).or_default().push(&bad);
            s.keys.entry(2).or_default().push(&crate::actors::KeyOutcome::Decrypted);
        }
        let r = corp_report(&id, &s, 3, SystemTime::now());
        assert!(r.failing);
        assert_eq!(r.keys.len(), 2);
        assert_eq!(r.failing_keys().map(|k| k.publickey_ver).collect::<Vec<_>>(), [1]);
        let why = r.failing_reason();
        assert!(why.contains("publickey_ver 1: 3 of the last 3") && why.contains("wrong key"), "{why}");
    }

    #[test]
    fn an_expired_archive_service_fails_the_corp_with_its_reason() {
        let id = CorpId::new("ww1").unwrap();
        let why = crate::wecom::WecomError::ArchiveExpired.to_string();
        let s = CorpStatus { wecom_api_error: Some(why.clone()), ..status() };
        let r = corp_report(&id, &s, 3, SystemTime::now());
        assert!(r.failing);
        assert_eq!(r.failing_reason(), why);
        assert!(why.contains("301052"), "{why}");
        assert!(!corp_report(&id, &status(), 3, SystemTime::now()).failing);
    }
}
