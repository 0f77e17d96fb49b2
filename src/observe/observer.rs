//! [`Observer`]: the actor on the pipeline's event loop (where the database pool lives) that owns
//! the [`Snapshots`] the HTTP endpoint serves, and logs retention alerts on a timer.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use actix::prelude::*;

use super::alert::Alerts;
use super::snapshot::Snapshots;
use super::{Report, Sources};

/// Ask for the current snapshot (at most [`Snapshots::every`] old).
#[derive(Debug, Message)]
#[rtype(result = "Arc<Report>")]
pub struct GetReport;

/// The observer actor.
#[derive(Debug)]
pub struct Observer {
    snapshots: Arc<Snapshots>,
    alerts: Alerts,
    check_every: Duration,
    /// `pull_stale` threshold of the completeness report (the retention alert's).
    alert_after: Duration,
    /// How often the completeness report is made (`None`: never).
    completeness_every: Option<Duration>,
    /// A completeness check is running.
    completeness_running: bool,
}

impl Observer {
    /// An observer of `sources` that serves snapshots at most `every` old, checks for retention
    /// alerts every `check_every`, alerting after `alert_after` without a successful pull.
    pub fn new(sources: Sources, every: Duration, alert_after: Duration, check_every: Duration) -> Self {
        Self {
            snapshots: Arc::new(Snapshots::new(sources, every)),
            alerts: Alerts::new(alert_after),
            check_every: check_every.max(Duration::from_millis(100)),
            alert_after,
            completeness_every: None,
            completeness_running: false,
        }
    }

    /// Also makes the completeness report ([`super::completeness`]) of every corp of the
    /// reports, first right after start, then every `every` (`0s`: never), one check at a time;
    /// corps whose last pull is older than the retention alert's threshold are `pull_stale`.
    pub fn with_completeness(mut self, every: Duration) -> Self {
        self.completeness_every = (!every.is_zero()).then_some(every);
        self
    }

    fn check_completeness(&mut self, ctx: &mut Context<Self>) {
        if self.completeness_running {
            return;
        }
        self.completeness_running = true;
        let snapshots = Arc::clone(&self.snapshots);
        let opts = super::completeness::Options { stale_after: self.alert_after, ..Default::default() };
        ctx.spawn(
            async move {
                let report = snapshots.get().await;
                let corps: Vec<crate::store::CorpId> =
                    report.corps.iter().filter_map(|c| crate::store::CorpId::new(&c.corpid).ok()).collect();
                let pulled: std::collections::HashMap<String, f64> = report
                    .corps
                    .iter()
                    .filter_map(|c| c.since_last_pull_seconds.map(|s| (c.corpid.clone(), s)))
                    .collect();
                let store = Arc::clone(&snapshots.sources().store);
                let c = super::completeness::check(store.as_ref(), &corps, &pulled, &opts, SystemTime::now()).await;
                if c.attention {
                    tracing::warn!(
                        totals = ?c.totals.iter().filter(|(_, n)| **n > 0).map(|(k, n)| (k.name(), *n)).collect::<Vec<_>>(),
                        "the archive is incomplete: see `wework-msgaudit completeness` or /status"
                    );
                }
                snapshots.set_completeness(c);
            }
            .into_actor(self)
            .map(|(), act, _| act.completeness_running = false),
        );
    }
}

impl Actor for Observer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(every) = self.completeness_every {
            self.check_completeness(ctx);
            ctx.run_interval(every, |act, ctx| act.check_completeness(ctx));
        }
        ctx.run_interval(self.check_every, |act, ctx| {
            let snapshots = Arc::clone(&act.snapshots);
            ctx.spawn(async move { snapshots.get().await }.into_actor(act).map(|report, act, _| {
                for a in act.alerts.check(&report.corps, SystemTime::now()) {
                    tracing::warn!(
                        corpid = %a.corpid,
                        alert = "retention",
                        silent_for = %humantime::format_duration(Duration::from_secs(a.silent_for.as_secs())),
                        retention_left = %humantime::format_duration(Duration::from_secs(a.retention_left.as_secs())),
                        last_error = a.last_error.as_deref().unwrap_or(""),
                        "no successful pull for a long time: WeCom keeps records about 5 days, \
                         what is not pulled by then is lost"
                    );
                }
                if !report.database_ok {
                    tracing::warn!(
                        error = report.database_error.as_deref().unwrap_or(""),
                        "the database does not answer"
                    );
                }
            }));
        });
    }
}

impl Handler<GetReport> for Observer {
    type Result = ResponseFuture<Arc<Report>>;

    fn handle(&mut self, _: GetReport, _ctx: &mut Self::Context) -> Self::Result {
        let snapshots = Arc::clone(&self.snapshots);
        Box::pin(async move { snapshots.get().await })
    }
}
