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
}

impl Observer {
    /// An observer of `sources` that serves snapshots at most `every` old, checks for retention
    /// alerts every `check_every`, alerting after `alert_after` without a successful pull.
    pub fn new(sources: Sources, every: Duration, alert_after: Duration, check_every: Duration) -> Self {
        Self {
            snapshots: Arc::new(Snapshots::new(sources, every)),
            alerts: Alerts::new(alert_after),
            check_every: check_every.max(Duration::from_millis(100)),
        }
    }
}

impl Actor for Observer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
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
