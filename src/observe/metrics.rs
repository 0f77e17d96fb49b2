//! A [`Report`] as Prometheus text (exposition format 0.0.4).
//!
//! Every family is written once with its `# HELP` and `# TYPE`, then all its samples; label
//! values are escaped. Counters are per process (they start at 0 when the daemon starts); the
//! gauges `last_seq` and `media_items` come from the database.

use std::fmt::Write as _;

use super::Report;

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metric name prefix.
pub const PREFIX: &str = "wework_msgaudit_";

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn start<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
        let _ = writeln!(out, "# HELP {PREFIX}{name} {help}");
        let _ = writeln!(out, "# TYPE {PREFIX}{name} {kind}");
        Family { out }
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let _ = write!(self.out, "{PREFIX}{name}");
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

/// Escapes a label value (`\`, `"`, newline).
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Renders `report`.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(512 + report.corps.len() * 1024);
    Family::start(&mut out, "healthy", "gauge", "1 when the database answers and no corp is failing.").sample(
        "healthy",
        &[],
        flag(report.healthy),
    );
    Family::start(&mut out, "database_up", "gauge", "1 when the database answered the last check.").sample(
        "database_up",
        &[],
        flag(report.database_ok),
    );
    if let Some(rss) = report.rss_bytes {
        Family::start(&mut out, "process_resident_memory_bytes", "gauge", "Resident memory of the daemon.").sample(
            "process_resident_memory_bytes",
            &[],
            rss as f64,
        );
    }
    Family::start(&mut out, "corps", "gauge", "Corps known to the daemon.").sample(
        "corps",
        &[],
        report.corps.len() as f64,
    );

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
        ("corp_lag_seconds", "gauge", "Now minus the newest stored msgtime (absent until a record is stored).", |c| {
            c.lag_seconds
        }),
        (
            "corp_seconds_since_last_pull",
            "gauge",
            "Seconds since GetChatData last succeeded (WeCom keeps records about 5 days).",
            |c| c.since_last_pull_seconds,
        ),
        ("corp_failing", "gauge", "1 when the corp is failing (permanent error or repeated failures).", |c| {
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
                fam.sample(name, &[("corpid", &c.corpid)], v);
            }
        }
    }
    let mut fam = Family::start(&mut out, "corp_state", "gauge", "1 for the corp's current state.");
    for c in &report.corps {
        fam.sample("corp_state", &[("corpid", &c.corpid), ("state", &c.state)], 1.0);
    }
    let mut fam = Family::start(&mut out, "corp_lease", "gauge", "1 for the instance holding the corp's lease.");
    for c in &report.corps {
        if let Some(holder) = &c.lease_holder {
            fam.sample("corp_lease", &[("corpid", &c.corpid), ("holder", holder)], 1.0);
        }
    }
    let mut fam = Family::start(&mut out, "corp_sdk_errors_total", "counter", "SDK errors by return code or errcode.");
    for c in &report.corps {
        for (code, n) in &c.sdk_errors {
            fam.sample("corp_sdk_errors_total", &[("corpid", &c.corpid), ("code", code)], *n as f64);
        }
    }
    let mut fam = Family::start(&mut out, "media_items", "gauge", "Media items in the database by kind and status.");
    for c in &report.corps {
        for m in &c.media {
            fam.sample(
                "media_items",
                &[("corpid", &c.corpid), ("kind", &m.kind), ("status", &m.status)],
                m.count as f64,
            );
        }
    }
    if let Some(m) = &report.media {
        let mut fam = Family::start(&mut out, "media_downloads_total", "counter", "Media download outcomes.");
        for (result, n) in [("done", m.done), ("retried", m.retried), ("failed", m.failed)] {
            fam.sample("media_downloads_total", &[("result", result)], n as f64);
        }
        let mut fam = Family::start(&mut out, "transcodes_total", "counter", "Voice transcodes to MP3.");
        for (result, n) in [("ok", m.transcoded), ("failed", m.transcode_failed)] {
            fam.sample("transcodes_total", &[("result", result)], n as f64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{CorpReport, MediaStatusCount, MediaTotals};
    use super::*;

    #[test]
    fn renders_every_family_once_with_escaped_labels() {
        let report = Report {
            healthy: false,
            database_ok: true,
            rss_bytes: Some(1 << 20),
            media: Some(MediaTotals { done: 3, transcoded: 1, ..MediaTotals::default() }),
            corps: vec![
                CorpReport {
                    corpid: "ww1".into(),
                    state: "caught up".into(),
                    last_seq: 7,
                    stored: 7,
                    media: vec![MediaStatusCount { kind: "a\"b".into(), status: "done".into(), count: 2 }],
                    ..CorpReport::default()
                },
                CorpReport {
                    corpid: "ww2".into(),
                    state: "failing".into(),
                    failing: true,
                    sdk_errors: [("10001".to_string(), 4)].into(),
                    ..CorpReport::default()
                },
            ],
            ..Report::default()
        };
        let text = render(&report);
        assert!(text.contains("wework_msgaudit_corp_last_seq{corpid=\"ww1\"} 7\n"), "{text}");
        assert!(text.contains("wework_msgaudit_corp_failing{corpid=\"ww2\"} 1\n"), "{text}");
        assert!(text.contains("wework_msgaudit_corp_sdk_errors_total{corpid=\"ww2\",code=\"10001\"} 4\n"));
        assert!(text.contains("kind=\"a\\\"b\""), "{text}");
        assert!(text.contains("wework_msgaudit_healthy 0\n"));
        assert!(!text.contains("corp_lag_seconds{"), "no lag sample without a stored record");
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            assert_eq!(text.matches(&format!("{line}\n")).count(), 1, "{line} repeated");
        }
    }
}
