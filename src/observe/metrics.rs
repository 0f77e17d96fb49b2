//! A [`Report`] as Prometheus text (exposition format 0.0.4), following Prometheus' naming
//! conventions:
//!
//! - the standard `process_*` families of Prometheus' process collector, unprefixed
//!   (`process_cpu_seconds_total`, `process_open_fds`, `process_max_fds`,
//!   `process_start_time_seconds`, `process_resident_memory_bytes`,
//!   `process_virtual_memory_bytes`), and `wework_msgaudit_build_info{version}`;
//! - everything else prefixed `wework_msgaudit_`; times are `_timestamp_seconds` gauges (seconds
//!   since the epoch: a query computes `time() - x`, and a snapshot's age cannot skew them);
//!   latencies are histograms (`pull_duration_seconds`, `batch_write_duration_seconds`);
//! - label values never contain whitespace (`caught up` is `caught_up`) and are escaped; the lease
//!   holder label is the instance's stable name ([`stable_holder`]), so that a restart does not
//!   start new series.
//!
//! - the alerts (`crate::alerts`): `alerts_sent_total`, `alerts_failed_total`,
//!   `alerts_given_up_total`, `alerts_rate_limited_total` by channel, and from the database
//!   `alert_outbox_rows{channel,status}` and `alert_outbox_oldest_pending_seconds{channel}`.
//!
//! Every family is written once with its `# HELP` and `# TYPE`, then all its samples. Counters
//! are per process (they start at 0 when the daemon starts); the gauges `last_seq` and
//! `media_items` come from the database.

use std::fmt::Write as _;

use super::histogram::HistogramSnapshot;
use super::Report;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metric name prefix.
pub const PREFIX: &str = "wework_msgaudit_";

struct Family<'a> {
    out: &'a mut String,
    name: String,
}

impl Family<'_> {
    /// A family named `PREFIX + name`.
    fn start<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        Family::named(out, format!("{PREFIX}{name}"), kind, help)
    }

    /// A family named exactly `name` (the standard `process_*` families).
    fn named<'a>(out: &'a mut String, name: String, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        Family { out, name }
    }

    fn sample(&mut self, labels: &[(&str, &str)], value: f64) {
        self.sample_suffixed("", labels, value);
    }

    fn sample_suffixed(&mut self, suffix: &str, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.out, "{}{suffix}", self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", label_value(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn histogram(&mut self, h: &HistogramSnapshot) {
        self.histogram_with(&[], h);
    }

    /// A histogram whose samples carry `labels` besides `le`.
    fn histogram_with(&mut self, labels: &[(&str, &str)], h: &HistogramSnapshot) {
        fn with_le<'a>(labels: &[(&'a str, &'a str)], le: &'a str) -> Vec<(&'a str, &'a str)> {
            labels.iter().copied().chain([("le", le)]).collect()
        }
        for (le, count) in &h.buckets {
            let le = le.to_string();
            self.sample_suffixed("_bucket", &with_le(labels, &le), *count as f64);
        }
        self.sample_suffixed("_bucket", &with_le(labels, "+Inf"), h.count as f64);
        self.sample_suffixed("_sum", labels, h.sum);
        self.sample_suffixed("_count", labels, h.count as f64);
    }
}

/// Escapes a label value (`\`, `"`, newline).
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A label value as written: whitespace becomes `_`, then [`escape`].
pub fn label_value(v: &str) -> String {
    escape(&v.replace(char::is_whitespace, "_"))
}

/// The stable part of a lease holder id: the daemon's generated ids are `<host>-<pid>-<4 hex>`
/// (new at every start), shown as `<host>`; a configured `[cluster] instance_id` is shown as is.
pub fn stable_holder(holder: &str) -> &str {
    let mut parts = holder.rsplitn(3, '-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(random), Some(pid), Some(host))
            if random.len() == 4
                && random.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                && !pid.is_empty()
                && pid.bytes().all(|b| b.is_ascii_digit())
                && !host.is_empty() =>
        {
            host
        }
        _ => holder,
    }
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The standard `process_*` families.
fn process(out: &mut String, report: &Report) {
    let p = &report.process;
    let families: [(&str, &str, &str, Option<f64>); 6] = [
        ("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", p.cpu_seconds),
        ("process_open_fds", "gauge", "Number of open file descriptors.", p.open_fds.map(|n| n as f64)),
        ("process_max_fds", "gauge", "Maximum number of open file descriptors.", p.max_fds.map(|n| n as f64)),
        (
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            p.start_time_seconds,
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            p.resident_memory_bytes.map(|n| n as f64),
        ),
        (
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size in bytes.",
            p.virtual_memory_bytes.map(|n| n as f64),
        ),
    ];
    for (name, kind, help, value) in families {
        if let Some(v) = value {
            Family::named(out, name.to_string(), kind, help).sample(&[], v);
        }
    }
}

/// Renders `report`.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(2048 + report.corps.len() * 1024);
    process(&mut out, report);
    Family::start(&mut out, "build_info", "gauge", "Always 1; the daemon's version as a label.")
        .sample(&[("version", &report.version)], 1.0);
    Family::start(&mut out, "healthy", "gauge", "1 when the database answers and no corp is failing.")
        .sample(&[], flag(report.healthy));
    Family::start(&mut out, "database_up", "gauge", "1 when the database answered the last check.")
        .sample(&[], flag(report.database_ok));
    Family::start(&mut out, "corps", "gauge", "Corps known to the daemon.").sample(&[], report.corps.len() as f64);
    Family::start(
        &mut out,
        "report_builds_total",
        "counter",
        "Reports built for the endpoints (at most one a second).",
    )
    .sample(&[], report.builds as f64);
    Family::start(&mut out, "report_timestamp_seconds", "gauge", "When the served report was built.")
        .sample(&[], report.generated_at_ms as f64 / 1000.0);
    if let Some(h) = &report.pull_seconds {
        Family::start(
            &mut out,
            "pull_duration_seconds",
            "histogram",
            "GetChatData latency as the corps see it (waiting for an SDK thread included), failed calls too.",
        )
        .histogram(h);
    }
    if let Some(h) = &report.write_seconds {
        Family::start(
            &mut out,
            "batch_write_duration_seconds",
            "histogram",
            "From handing a page to the database writer to its commit (or failure).",
        )
        .histogram(h);
    }

    if !report.media_stage_seconds.is_empty() {
        let mut fam = Family::start(
            &mut out,
            "media_stage_seconds",
            "histogram",
            "Time of each stage of a media item: claim (per claim statement), first_byte (first GetMediaData), \
             download (every chunk), verify (size and MD5), fsync (the file), rename, dir_fsync (per settled \
             batch), row_update (per settled batch), transcode.",
        );
        for (stage, h) in &report.media_stage_seconds {
            fam.histogram_with(&[("stage", stage)], h);
        }
    }

    type Get = fn(&super::CorpReport) -> Option<f64>;
    let per_corp: [(&str, &str, &str, Get); 9] = [
        ("corp_last_seq", "gauge", "The highest stored seq (the database's cursor).", |c| Some(c.last_seq as f64)),
        ("corp_records_stored_total", "counter", "Records stored by this process.", |c| Some(c.stored as f64)),
        (
            "corp_decrypt_failures_total",
            "counter",
            "Records stored undecryptable (ciphertext kept) by this process.",
            |c| Some(c.decrypt_failures as f64),
        ),
        (
            "corp_newest_record_timestamp_seconds",
            "gauge",
            "The msgtime of the newest record stored by this process (absent until one is stored).",
            |c| c.newest_msgtime_at,
        ),
        (
            "corp_last_pull_timestamp_seconds",
            "gauge",
            "When GetChatData last succeeded, or when this process started the corp if it has not yet \
             (WeCom keeps records about 5 days).",
            |c| c.last_pull_at,
        ),
        ("corp_failing", "gauge", "1 when the corp is failing (permanent error, repeated failures, wrong key).", |c| {
            Some(flag(c.failing))
        }),
        ("corp_consecutive_failures", "gauge", "Failures in a row since the last stored page.", |c| {
            Some(f64::from(c.consecutive_failures))
        }),
        ("corp_restarts_total", "counter", "Restarts of the corp's actor after failures.", |c| Some(c.restarts as f64)),
        ("corp_generation", "gauge", "The generation of the corp's actor (increases on each start).", |c| {
            Some(c.generation as f64)
        }),
    ];
    for (name, kind, help, get) in per_corp {
        let mut fam = Family::start(&mut out, name, kind, help);
        for c in &report.corps {
            if let Some(v) = get(c) {
                fam.sample(&[("corpid", &c.corpid)], v);
            }
        }
    }
    let mut fam = Family::start(&mut out, "corp_state", "gauge", "1 for the corp's current state.");
    for c in &report.corps {
        fam.sample(&[("corpid", &c.corpid), ("state", &c.state)], 1.0);
    }
    let mut fam = Family::start(
        &mut out,
        "corp_lease",
        "gauge",
        "1 for the instance holding the corp's lease (its configured instance_id, else its host name).",
    );
    for c in &report.corps {
        if let Some(holder) = &c.lease_holder {
            fam.sample(&[("corpid", &c.corpid), ("holder", stable_holder(holder))], 1.0);
        }
    }
    let mut fam = Family::start(&mut out, "corp_sdk_errors_total", "counter", "SDK errors by return code or errcode.");
    for c in &report.corps {
        for (code, n) in &c.sdk_errors {
            fam.sample(&[("corpid", &c.corpid), ("code", code)], *n as f64);
        }
    }
    let mut fam = Family::start(
        &mut out,
        "corp_undecryptable_recent_ratio",
        "gauge",
        "Share of the recent records (up to 100) of a publickey_ver that its configured key cannot decrypt; \
         above 0.5 the corp is failing.",
    );
    for c in &report.corps {
        for k in &c.keys {
            let ratio = if k.records == 0 { 0.0 } else { f64::from(k.undecryptable) / f64::from(k.records) };
            fam.sample(&[("corpid", &c.corpid), ("publickey_ver", &k.publickey_ver.to_string())], ratio);
        }
    }
    let mut fam = Family::start(
        &mut out,
        "corp_undecryptable_recent",
        "gauge",
        "Recent records (up to 100) of a publickey_ver that its configured key cannot decrypt.",
    );
    for c in &report.corps {
        for k in &c.keys {
            fam.sample(
                &[("corpid", &c.corpid), ("publickey_ver", &k.publickey_ver.to_string())],
                f64::from(k.undecryptable),
            );
        }
    }
    let mut fam = Family::start(&mut out, "media_items", "gauge", "Media items in the database by kind and status.");
    for c in &report.corps {
        for m in &c.media {
            fam.sample(&[("corpid", &c.corpid), ("kind", &m.kind), ("status", &m.status)], m.count as f64);
        }
    }
    let mut fam = Family::start(
        &mut out,
        "rule_hits_total",
        "counter",
        "Rule hits stored with the records, by rule (this process).",
    );
    for (rule, n) in &report.rule_hits {
        fam.sample(&[("rule", rule)], *n as f64);
    }
    if let Some(m) = &report.media {
        let mut fam = Family::start(&mut out, "media_downloads_total", "counter", "Media download outcomes.");
        for (result, n) in [("done", m.done), ("retried", m.retried), ("failed", m.failed)] {
            fam.sample(&[("result", result)], n as f64);
        }
        let mut fam = Family::start(&mut out, "transcodes_total", "counter", "Voice transcodes to MP3.");
        for (result, n) in [("ok", m.transcoded), ("failed", m.transcode_failed)] {
            fam.sample(&[("result", result)], n as f64);
        }
    }
    if let Some(cb) = &report.callback {
        callback(&mut out, cb);
    }
    if let Some(c) = &report.completeness {
        completeness(&mut out, c);
    }
    alerts(&mut out, report);
    out
}

/// The alerts' families (`crate::alerts::metrics`), when there are channels.
fn alerts(out: &mut String, report: &Report) {
    if report.alerts.is_empty() {
        return;
    }
    type Counter = fn(&crate::alerts::metrics::ChannelCounters) -> u64;
    let counters: [(&str, &str, Counter); 4] = [
        ("alerts_sent_total", "Rule hits delivered, by channel (this process).", |c| c.sent),
        ("alerts_failed_total", "Alert send attempts that failed, by channel (this process).", |c| c.failed),
        ("alerts_given_up_total", "Rule hits given up after failures, by channel (this process).", |c| c.given_up),
        ("alerts_rate_limited_total", "Waits for a channel's rate limit (this process).", |c| c.rate_limited),
    ];
    for (name, help, get) in counters {
        let mut fam = Family::start(out, name, "counter", help);
        for a in &report.alerts {
            fam.sample(&[("channel", &a.channel)], get(&a.counters) as f64);
        }
    }
    let mut fam = Family::start(out, "alert_outbox_rows", "gauge", "Alert outbox rows by channel and status.");
    for a in &report.alerts {
        for (status, n) in
            [("pending", a.pending), ("sending", a.sending), ("sent", a.sent_rows), ("failed", a.failed_rows)]
        {
            fam.sample(&[("channel", &a.channel), ("status", status)], n as f64);
        }
    }
    let mut fam = Family::start(
        out,
        "alert_outbox_oldest_pending_seconds",
        "gauge",
        "Age of the oldest alert waiting to be sent, by channel (0: none).",
    );
    for a in &report.alerts {
        fam.sample(&[("channel", &a.channel)], a.oldest_pending_seconds);
    }
}

/// The callback families (`crate::callback::counters`).
fn callback(out: &mut String, cb: &crate::callback::counters::CallbackTotals) {
    let mut fam = Family::start(
        out,
        "callback_requests_total",
        "counter",
        "Callback requests by outcome (verified, accepted, bad_signature, stale, replay, busy, wrong_receive_id, \
         malformed, too_large, unknown_corp, not_configured); corpid is empty for unknown corps.",
    );
    for c in &cb.requests {
        fam.sample(&[("corpid", &c.corpid), ("outcome", &c.label)], c.count as f64);
    }
    let mut fam = Family::start(
        out,
        "callback_events_total",
        "counter",
        "Accepted callback events by kind (msgaudit_notify, msg_audit_approved, other).",
    );
    for c in &cb.events {
        fam.sample(&[("corpid", &c.corpid), ("event", &c.label)], c.count as f64);
    }
}

/// The last completeness check: one gauge per finding kind and corp (zeros included, so that a
/// fixed finding goes back to 0), whether the corp needs attention, and when the check ran.
fn completeness(out: &mut String, r: &super::completeness::CompletenessReport) {
    use super::completeness::Kind;
    let mut fam = Family::start(
        out,
        "completeness_findings",
        "gauge",
        "Completeness findings of the last check by kind: missing seqs (gap_never_served, gap_not_yet_pulled), \
         people (member_unseen, person_not_archived), conversations (consent_missing), media items (media_failed), \
         records (undecryptable, quarantined), 1 when stale (pull_stale).",
    );
    for c in r.corps.iter().filter(|c| c.error.is_none()) {
        for k in Kind::ALL {
            fam.sample(&[("corpid", &c.corpid), ("kind", k.name())], c.count(k) as f64);
        }
    }
    let mut fam = Family::start(
        out,
        "completeness_attention",
        "gauge",
        "1 when the last completeness check found something that needs attention (or could not check the corp).",
    );
    for c in &r.corps {
        fam.sample(&[("corpid", &c.corpid)], flag(c.needs_attention()));
    }
    Family::start(out, "completeness_timestamp_seconds", "gauge", "When the last completeness check ran.")
        .sample(&[], r.generated_at as f64);
}

#[cfg(test)]
mod tests {
    use super::super::histogram::Histogram;
    use super::super::{CorpReport, KeyReport, MediaStatusCount, MediaTotals};
    use super::*;

    #[test]
    fn renders_every_family_once_with_escaped_labels() {
        let h = Histogram::default();
        h.observe(std::time::Duration::from_millis(20));
        let report = Report {
            healthy: false,
            database_ok: true,
            version: "1.2.3".into(),
            process: super::super::process::ProcessStats::read(),
            pull_seconds: Some(h.snapshot()),
            media: Some(MediaTotals { done: 3, transcoded: 1, ..MediaTotals::default() }),
            media_stage_seconds: vec![("fsync".into(), h.snapshot())],
            corps: vec![
                CorpReport {
                    corpid: "ww1".into(),
                    state: "caught up".into(),
                    last_seq: 7,
                    stored: 7,
                    media: vec![MediaStatusCount { kind: "a\"b".into(), status: "done".into(), count: 2 }],
                    lease_holder: Some("host-a-1234-0f9e".into()),
                    ..CorpReport::default()
                },
                CorpReport {
                    corpid: "ww2".into(),
                    state: "failing".into(),
                    failing: true,
                    sdk_errors: [("10001".to_string(), 4)].into(),
                    keys: vec![KeyReport {
                        publickey_ver: 3,
                        records: 4,
                        undecryptable: 3,
                        failing: true,
                        error: None,
                    }],
                    lease_holder: Some("inst-2".into()),
                    ..CorpReport::default()
                },
            ],
            rule_hits: [("私下转账 \"x\"".to_string(), 3)].into(),
            ..Report::default()
        };
        let text = render(&report);
        assert!(text.contains("wework_msgaudit_rule_hits_total{rule=\"私下转账_\\\"x\\\"\"} 3\n"), "{text}");
        assert!(text.contains("wework_msgaudit_corp_last_seq{corpid=\"ww1\"} 7\n"), "{text}");
        assert!(text.contains("wework_msgaudit_corp_failing{corpid=\"ww2\"} 1\n"), "{text}");
        assert!(text.contains("wework_msgaudit_corp_sdk_errors_total{corpid=\"ww2\",code=\"10001\"} 4\n"));
        assert!(text.contains("kind=\"a\\\"b\""), "{text}");
        assert!(text.contains("wework_msgaudit_healthy 0\n"));
        assert!(
            text.contains("wework_msgaudit_media_stage_seconds_bucket{stage=\"fsync\",le=\"0.025\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("wework_msgaudit_media_stage_seconds_count{stage=\"fsync\"} 1\n"), "{text}");
        assert!(text.contains("wework_msgaudit_corp_state{corpid=\"ww1\",state=\"caught_up\"} 1\n"), "{text}");
        assert!(text.contains("wework_msgaudit_corp_lease{corpid=\"ww1\",holder=\"host-a\"} 1\n"), "{text}");
        assert!(text.contains("wework_msgaudit_corp_lease{corpid=\"ww2\",holder=\"inst-2\"} 1\n"), "{text}");
        assert!(
            text.contains("wework_msgaudit_corp_undecryptable_recent_ratio{corpid=\"ww2\",publickey_ver=\"3\"} 0.75\n")
        );
        assert!(text.contains("wework_msgaudit_build_info{version=\"1.2.3\"} 1\n"));
        assert!(text.contains("wework_msgaudit_pull_duration_seconds_bucket{le=\"0.025\"} 1\n"), "{text}");
        assert!(text.contains("wework_msgaudit_pull_duration_seconds_bucket{le=\"0.01\"} 0\n"), "{text}");
        assert!(text.contains("wework_msgaudit_pull_duration_seconds_bucket{le=\"+Inf\"} 1\n"), "{text}");
        assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
        assert!(!text.contains("corp_newest_record_timestamp_seconds{"), "no sample without a stored record");
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            assert_eq!(text.matches(&format!("{line}\n")).count(), 1, "{line} repeated");
        }
    }

    #[test]
    fn only_generated_holder_ids_are_shortened() {
        assert_eq!(stable_holder("db-host.example-4711-a0f3"), "db-host.example");
        for kept in ["inst-1", "node-12-ab3", "x-y-zzzz", "-1-abcd", "plain"] {
            assert_eq!(stable_holder(kept), kept);
        }
    }
}
