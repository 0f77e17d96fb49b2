//! Retention alerts: WeCom keeps chat records for about 5 days, so a corp that has not pulled
//! successfully for `[daemon] alert_after` is heading for data loss. [`Alerts::check`] says which
//! corps to warn about now; the caller logs them (WARN, `alert = "retention"`, with the corpid).
//! A corp is warned about again at most every [`Alerts::repeat`] while the silence lasts.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::CorpReport;

/// WeCom's retention of chat records on its server.
pub const RETENTION: Duration = Duration::from_secs(5 * 24 * 3600);

/// One alert to log.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The corp.
    pub corpid: String,
    /// How long it has gone without a successful pull.
    pub silent_for: Duration,
    /// What is left of the retention window, if anything.
    pub retention_left: Duration,
    /// The last error.
    pub last_error: Option<String>,
}

/// The alert state: when each corp was last warned about.
#[derive(Debug)]
pub struct Alerts {
    after: Duration,
    /// Minimum time between two alerts of one corp.
    pub repeat: Duration,
    last: HashMap<String, SystemTime>,
}

impl Alerts {
    /// Alerts after `after` of silence, repeated hourly.
    pub fn new(after: Duration) -> Self {
        Self { after, repeat: Duration::from_secs(3600), last: HashMap::new() }
    }

    /// The corps of `corps` to warn about at `now`.
    pub fn check(&mut self, corps: &[CorpReport], now: SystemTime) -> Vec<Alert> {
        let mut out = Vec::new();
        for c in corps {
            let Some(silent) = c.since_last_pull_seconds.map(Duration::from_secs_f64) else { continue };
            if silent < self.after {
                self.last.remove(&c.corpid);
                continue;
            }
            let due =
                self.last.get(&c.corpid).is_none_or(|t| now.duration_since(*t).unwrap_or_default() >= self.repeat);
            if due {
                self.last.insert(c.corpid.clone(), now);
                out.push(Alert {
                    corpid: c.corpid.clone(),
                    silent_for: silent,
                    retention_left: RETENTION.saturating_sub(silent),
                    last_error: c.last_error.clone(),
                });
            }
        }
        self.last.retain(|id, _| corps.iter().any(|c| &c.corpid == id));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corp(id: &str, silent: Option<f64>) -> CorpReport {
        CorpReport { corpid: id.into(), since_last_pull_seconds: silent, ..CorpReport::default() }
    }

    #[test]
    fn alerts_after_the_threshold_then_hourly_and_clears_on_recovery() {
        let mut a = Alerts::new(Duration::from_secs(86_400));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000_000);
        let corps = [corp("ok", Some(5.0)), corp("silent", Some(90_000.0)), corp("new", None)];
        let first = a.check(&corps, t0);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].corpid, "silent");
        assert_eq!(first[0].retention_left, RETENTION - Duration::from_secs(90_000));
        assert!(a.check(&corps, t0 + Duration::from_secs(60)).is_empty(), "not again within the hour");
        assert_eq!(a.check(&corps, t0 + Duration::from_secs(3600)).len(), 1, "again after an hour");
        // Recovery resets: the next silence alerts at once.
        let _ = a.check(&[corp("silent", Some(1.0))], t0 + Duration::from_secs(3700));
        assert_eq!(a.check(&[corp("silent", Some(90_000.0))], t0 + Duration::from_secs(3800)).len(), 1);
    }
}
