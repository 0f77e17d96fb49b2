//! [`Supervisor`]: the desired set of corps → one running [`CorpActor`] per corp.
//!
//! One code path for start-up and reload: [`Reload`] reads the sources ([`crate::corps::load`])
//! and hands the result to [`Reconcile`], which diffs it against the running actors: a new corp
//! is started, a corp whose [`CorpSpec::fingerprint`] changed is stopped and started again once
//! its old actor has finished (so two actors of one corp never write at once), a removed or
//! disabled corp is stopped, and every other corp keeps its actor. The sources are re-read every
//! `reload_interval`; when a source cannot be read the previous desired set is kept.
//!
//! An actor that ends with an error ([`CorpExited`]) is restarted after a capped exponential
//! backoff. Each corp actor listens to a child of the pipeline's [`Shutdown`] (its own [`Stop`]
//! cancels only that child). When the pipeline's stop is signalled every corp stops with it; once
//! all have finished their in-flight writes the supervisor gives the leases back, closes the SDK
//! pool and waits for its threads to leave the vendor library, and only then lets go of its own
//! hold on the pipeline's end.
//!
//! The callback endpoint (`crate::callback`) asks it for a corp's callback keys
//! ([`CallbackKeysOf`], from every corp the sources give, leased here or not) and forwards
//! `msgaudit_notify` to the corp's actor ([`PullNow`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::corp::{CorpActor, CorpError, CorpExited, Stop};
use super::lease::{CorpStopped, LeaseKeeper, LeaseLeave, LeaseSettings, Leases, Wanted};
use super::shutdown::Shutdown;
use super::Shared;
use crate::backoff::Backoff;
use crate::corps::{self, CorpSpec, Desired, Sources};
use crate::store::{CorpId, Fence};

/// Re-read the sources and reconcile.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Reload;

/// Read the corps from these sources from now on (the main configuration changed), and
/// reload at once.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct SetSources(pub Sources);

/// Make `desired` the running set.
#[derive(Debug, Message)]
#[rtype(result = "ReconcileReport")]
pub struct Reconcile(pub Desired);

/// What a [`Reconcile`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Corps started.
    pub started: Vec<CorpId>,
    /// Corps whose settings changed (restarted once the old actor finished).
    pub restarted: Vec<CorpId>,
    /// Corps stopped (removed or disabled).
    pub stopped: Vec<CorpId>,
    /// Corps left out of the desired set, with why.
    pub errors: Vec<(String, String)>,
}

/// A callback said `0` has new records: tell its actor ([`super::corp::PullNow`], coalesced
/// there). Answers whether an actor of the corp runs here.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct PullNow(pub CorpId);

/// The callback keys of a corp the sources give: `None` when no source gives it, `Some(None)`
/// when it has no callback settings.
#[derive(Debug, Message)]
#[rtype(result = "Option<Option<crate::callback::CallbackKeys>>")]
pub struct CallbackKeysOf(pub CorpId);

/// The corps currently running (for tests and `status`).
#[derive(Debug, Message)]
#[rtype(result = "Vec<CorpId>")]
pub struct Running;

struct Entry {
    addr: Addr<CorpActor>,
    fingerprint: String,
    generation: u64,
    started: Instant,
    stopping: bool,
}

/// The supervisor actor.
pub struct Supervisor {
    shared: Arc<Shared>,
    sources: Sources,
    reload_interval: Duration,
    /// The corps running (or to run): `loaded`, filtered by the leases when they are on.
    desired: BTreeMap<CorpId, CorpSpec>,
    /// The corps the sources gave at the last load.
    loaded: BTreeMap<CorpId, CorpSpec>,
    /// Lease settings; the keeper is started with the supervisor.
    lease_settings: Option<LeaseSettings>,
    keeper: Option<Addr<LeaseKeeper>>,
    /// The leases held, once the keeper reported.
    leases: Option<BTreeMap<CorpId, Fence>>,
    running: HashMap<CorpId, Entry>,
    /// Consecutive failures per corp (for the restart backoff).
    failures: HashMap<CorpId, u32>,
    next_generation: u64,
    /// Corps whose `corplist.update` flag was acted on: `None` while it is being reset, then
    /// the number of loads started when the reset committed (a load started before that may
    /// still see the old flag and must not restart the corp again).
    clearing_update: HashMap<CorpId, Option<u64>>,
    /// Source loads started so far.
    loads_started: u64,
    shutting_down: bool,
    /// The pipeline's stop signal and this actor's hold on its end (let go once the corps have
    /// stopped, the leases are given back and the SDK threads have ended).
    shutdown: Option<Shutdown>,
    /// Logs corps left out once per change, not at every reload.
    left_out: crate::corps::LeftOutLog,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor").field("running", &self.running.len()).finish_non_exhaustive()
    }
}

impl Supervisor {
    /// A supervisor reading `sources` every `reload_interval`, until `shutdown`.
    pub fn new(shared: Arc<Shared>, sources: Sources, reload_interval: Duration, shutdown: Shutdown) -> Self {
        Self {
            shared,
            sources,
            reload_interval,
            desired: BTreeMap::new(),
            loaded: BTreeMap::new(),
            lease_settings: None,
            keeper: None,
            leases: None,
            running: HashMap::new(),
            failures: HashMap::new(),
            next_generation: 1,
            clearing_update: HashMap::new(),
            loads_started: 0,
            shutting_down: false,
            shutdown: Some(shutdown),
            left_out: crate::corps::LeftOutLog::default(),
        }
    }

    /// With leases: run only the corps this instance holds a lease for ([`LeaseKeeper`]).
    #[must_use]
    pub fn with_leases(mut self, settings: Option<LeaseSettings>) -> Self {
        self.lease_settings = settings;
        self
    }

    fn start_corp(&mut self, spec: CorpSpec, ctx: &mut Context<Self>) {
        let Some(stop) = self.shutdown.as_ref().filter(|s| !s.is_shutdown()).map(Shutdown::child) else { return };
        let generation = self.next_generation;
        self.next_generation += 1;
        let corpid = spec.corpid.clone();
        let fingerprint = spec.fingerprint();
        tracing::info!(corpid = %corpid, generation, "starting corp");
        let addr = CorpActor::new(spec, generation, Arc::clone(&self.shared), ctx.address().recipient(), stop).start();
        self.running.insert(corpid, Entry { addr, fingerprint, generation, started: Instant::now(), stopping: false });
    }

    /// True when `corpid`'s update flag, as read by load number `load`, asks for a restart
    /// that has not been made yet.
    fn update_pending(&mut self, corpid: &CorpId, load: u64) -> bool {
        match self.clearing_update.get(corpid) {
            None => true,
            Some(None) => false,
            Some(Some(cleared_at)) if load <= *cleared_at => false,
            Some(Some(_)) => {
                self.clearing_update.remove(corpid);
                true
            }
        }
    }

    /// The corps to run: every loaded one, or with leases on only those leased to this instance
    /// (none until the keeper's first report), each carrying its fence.
    fn effective(&self) -> BTreeMap<CorpId, CorpSpec> {
        match (&self.keeper, &self.leases) {
            (None, _) => self.loaded.clone(),
            (Some(_), None) => BTreeMap::new(),
            (Some(_), Some(leases)) => self
                .loaded
                .iter()
                .filter_map(|(c, spec)| leases.get(c).map(|f| (c.clone(), spec.clone().with_fence(f.clone()))))
                .collect(),
        }
    }

    fn reconcile(&mut self, desired: Desired, load: u64, ctx: &mut Context<Self>) -> ReconcileReport {
        let mut report = ReconcileReport { errors: desired.errors, ..ReconcileReport::default() };
        self.left_out.report(&report.errors);
        if self.shutting_down {
            return report;
        }
        self.loaded = desired.corps;
        if let Some(keeper) = &self.keeper {
            keeper.do_send(Wanted(self.loaded.keys().cloned().collect()));
        }
        let desired = self.effective();
        let update: std::collections::HashSet<CorpId> = desired
            .values()
            .filter(|spec| spec.update_requested)
            .map(|spec| spec.corpid.clone())
            .collect::<Vec<_>>()
            .into_iter()
            .filter(|corpid| self.update_pending(corpid, load))
            .collect();
        for (corpid, entry) in &mut self.running {
            match desired.get(corpid) {
                None if !entry.stopping => {
                    tracing::info!(corpid = %corpid, "stopping corp (removed or disabled)");
                    entry.stopping = true;
                    entry.addr.do_send(Stop);
                    report.stopped.push(corpid.clone());
                }
                Some(spec) if spec.fingerprint() != entry.fingerprint && !entry.stopping => {
                    tracing::info!(corpid = %corpid, "restarting corp (settings changed)");
                    entry.stopping = true;
                    entry.addr.do_send(Stop);
                    report.restarted.push(corpid.clone());
                }
                Some(_) if update.contains(corpid) && !entry.stopping => {
                    tracing::info!(corpid = %corpid, "restarting corp (corplist.update = 1)");
                    entry.stopping = true;
                    entry.addr.do_send(Stop);
                    report.restarted.push(corpid.clone());
                }
                _ => {}
            }
        }
        for (corpid, spec) in &desired {
            if !self.running.contains_key(corpid) {
                if self.desired.get(corpid).is_none_or(|old| old != spec) {
                    self.failures.remove(corpid);
                }
                report.started.push(corpid.clone());
                self.start_corp(spec.clone(), ctx);
            }
        }
        for corpid in update {
            self.clearing_update.insert(corpid.clone(), None);
            let store = Arc::clone(&self.shared.store);
            ctx.spawn(async move { (store.clear_update_flag(&corpid).await, corpid) }.into_actor(self).map(
                |(result, corpid), act, _| match result {
                    Ok(()) => {
                        act.clearing_update.insert(corpid, Some(act.loads_started));
                    }
                    Err(e) => {
                        tracing::warn!(corpid = %corpid, error = %e, "resetting corplist.update failed; will retry");
                        act.clearing_update.remove(&corpid);
                    }
                },
            ));
        }
        for corpid in self.desired.keys() {
            if !desired.contains_key(corpid) && !self.running.contains_key(corpid) {
                self.shared.stats.remove(corpid);
            }
        }
        self.desired = desired;
        if let Some(media) = &self.shared.media {
            media.do_send(super::media::MediaCorps(self.desired.values().cloned().collect()));
        }
        report
    }

    fn restart_delay(&mut self, corpid: &CorpId, ran_for: Duration) -> Duration {
        let pull = &self.shared.pull;
        let n = self.failures.entry(corpid.clone()).or_default();
        if ran_for > pull.backoff_max {
            *n = 0;
        }
        *n = n.saturating_add(1);
        let mut b = Backoff::new(pull.backoff_initial, pull.backoff_max);
        let mut d = b.next_delay();
        for _ in 1..(*n).min(32) {
            d = b.next_delay();
        }
        d
    }

    /// The pipeline's stop was signalled: the corps stop with it (their tokens are children).
    fn begin_shutdown(&mut self, ctx: &mut Context<Self>) {
        self.shutting_down = true;
        for entry in self.running.values_mut() {
            entry.stopping = true;
        }
        self.finish_if_idle(ctx);
    }

    /// Once every corp has stopped: the leases are given back so that others take over at once,
    /// and the SDK threads drop their handles (DestroySdk) before the hold on the pipeline's end
    /// goes — a process that exits while a thread is still inside the vendor library may crash in
    /// the library's exit handlers.
    fn finish_if_idle(&mut self, ctx: &mut Context<Self>) {
        if !self.shutting_down || !self.running.is_empty() {
            return;
        }
        let Some(hold) = self.shutdown.take() else { return };
        let keeper = self.keeper.clone();
        let pool = Arc::clone(&self.shared.pool);
        ctx.spawn(
            async move {
                if let Some(keeper) = keeper {
                    let _ = keeper.send(LeaseLeave).await;
                }
                pool.close();
                pool.stopped().await;
                drop(hold);
            }
            .into_actor(self),
        );
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(settings) = self.lease_settings.clone() {
            let keeper = LeaseKeeper::new(
                Arc::clone(&self.shared.store),
                settings,
                ctx.address().recipient(),
                self.shared.lease_terms.clone(),
            );
            self.keeper = Some(keeper.start());
        }
        ctx.notify(Reload);
        ctx.run_interval(self.reload_interval.max(Duration::from_millis(100)), |_, ctx| ctx.notify(Reload));
        if let Some(shutdown) = &self.shutdown {
            let stop = shutdown.token().clone();
            ctx.spawn(
                async move { stop.cancelled().await }.into_actor(self).map(|(), act, ctx| act.begin_shutdown(ctx)),
            );
        }
    }
}

impl Handler<Reload> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Reload, ctx: &mut Self::Context) {
        if self.shutting_down {
            return;
        }
        let sources = self.sources.clone();
        let store = Arc::clone(&self.shared.store);
        self.loads_started += 1;
        let load = self.loads_started;
        let load_and_prepare = async move {
            let loaded = corps::load(&sources).await;
            if let Ok(desired) = &loaded {
                // The new corps' tables in a few transactions, not one each (SQLite).
                let ids: Vec<CorpId> = desired.corps.keys().cloned().collect();
                let started = std::time::Instant::now();
                if let Err(e) = store.prepare_corp_tables(&ids).await {
                    tracing::warn!(error = %e, corps = ids.len(), "creating the corps' tables together failed; each corp makes its own");
                } else if started.elapsed() > std::time::Duration::from_secs(1) {
                    tracing::info!(corps = ids.len(), took = ?started.elapsed(), "corp tables ready");
                }
            }
            loaded
        };
        ctx.spawn(load_and_prepare.into_actor(self).map(move |loaded, act, ctx| match loaded {
            Ok(desired) => {
                let report = act.reconcile(desired, load, ctx);
                if !(report.started.is_empty() && report.restarted.is_empty() && report.stopped.is_empty()) {
                    tracing::info!(
                        started = report.started.len(),
                        restarted = report.restarted.len(),
                        stopped = report.stopped.len(),
                        running = act.running.len(),
                        "corps reconciled"
                    );
                }
            }
            Err(e) => tracing::error!(error = %e, "reading the corp sources failed; keeping the current corps"),
        }));
    }
}

impl Handler<Leases> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Leases, ctx: &mut Self::Context) {
        if self.leases.as_ref() == Some(&msg.0) {
            return;
        }
        self.leases = Some(msg.0);
        let desired = Desired { corps: self.loaded.clone(), ..Desired::default() };
        let report = self.reconcile(desired, self.loads_started, ctx);
        if !(report.started.is_empty() && report.restarted.is_empty() && report.stopped.is_empty()) {
            tracing::info!(
                started = report.started.len(),
                restarted = report.restarted.len(),
                stopped = report.stopped.len(),
                "corps reconciled with the leases"
            );
        }
    }
}

impl Handler<SetSources> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: SetSources, ctx: &mut Self::Context) {
        self.sources = msg.0;
        ctx.notify(Reload);
    }
}

impl Handler<Reconcile> for Supervisor {
    type Result = MessageResult<Reconcile>;

    fn handle(&mut self, msg: Reconcile, ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.reconcile(msg.0, u64::MAX, ctx))
    }
}

impl Handler<Running> for Supervisor {
    type Result = MessageResult<Running>;

    fn handle(&mut self, _: Running, _ctx: &mut Self::Context) -> Self::Result {
        let mut ids: Vec<CorpId> = self.running.iter().filter(|(_, e)| !e.stopping).map(|(c, _)| c.clone()).collect();
        ids.sort();
        MessageResult(ids)
    }
}

impl Handler<PullNow> for Supervisor {
    type Result = bool;

    fn handle(&mut self, msg: PullNow, _ctx: &mut Self::Context) -> bool {
        match self.running.get(&msg.0).filter(|e| !e.stopping) {
            Some(entry) => {
                entry.addr.do_send(super::corp::PullNow);
                true
            }
            None => false,
        }
    }
}

impl Handler<CallbackKeysOf> for Supervisor {
    type Result = MessageResult<CallbackKeysOf>;

    fn handle(&mut self, msg: CallbackKeysOf, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.loaded.get(&msg.0).map(|spec| spec.callback.clone()))
    }
}

impl Handler<CorpExited> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: CorpExited, ctx: &mut Self::Context) {
        let Some(entry) = self.running.get(&msg.corpid) else { return };
        if entry.generation != msg.generation {
            return; // an older actor of this corp
        }
        let ran_for = entry.started.elapsed();
        let was_stopping = entry.stopping;
        let ran_with = entry.fingerprint.clone();
        self.running.remove(&msg.corpid);
        // A corp can see the pipeline's token cancelled and exit before this actor's own watch
        // of the token has run: its exit is part of the shutdown, not a crash to restart.
        if self.shutting_down || self.shutdown.as_ref().is_some_and(|s| s.token().is_cancelled()) {
            self.begin_shutdown(ctx);
            return;
        }
        let Some(spec) = self.desired.get(&msg.corpid).cloned() else {
            self.shared.stats.remove(&msg.corpid);
            if let Some(keeper) = &self.keeper {
                keeper.do_send(CorpStopped(msg.corpid.clone()));
            }
            return;
        };
        if let Err(CorpError::LeaseLost(why)) = &msg.result {
            tracing::warn!(corpid = %msg.corpid, %why, "corp stopped: its lease was lost");
            self.shared.stats.update(&msg.corpid, |s| s.state = "lease lost".into());
            // The keeper's report already holds the corp under another fence (it dropped the
            // lease and claimed it back, and this actor's write in flight met the new token):
            // that report has come and will not come again, so the corp starts with it now.
            // With the same fence, the keeper's next report says whether the lease is still ours.
            if spec.fingerprint() != ran_with {
                tracing::info!(corpid = %msg.corpid, "the corp's lease is held again under a new token: starting it");
                self.start_corp(spec, ctx);
            }
            return;
        }
        if let Err(CorpError::Fatal(reason)) = &msg.result {
            tracing::error!(corpid = %msg.corpid, %reason, "fatal error; the process must restart");
            self.shared.fatal.send_replace(Some(reason.clone()));
            return;
        }
        match msg.result {
            Ok(()) if was_stopping => self.start_corp(spec, ctx),
            result => {
                let error = result.err().map_or_else(|| "stopped unexpectedly".to_string(), |e| e.to_string());
                let delay = self.restart_delay(&msg.corpid, ran_for);
                tracing::error!(corpid = %msg.corpid, %error, ?delay, "corp actor ended; restarting after backoff");
                self.shared.stats.update(&msg.corpid, |s| {
                    s.state = "restarting".into();
                    s.last_error = Some(error);
                    s.consecutive_failures = s.consecutive_failures.saturating_add(1);
                    s.restarts += 1;
                });
                let corpid = msg.corpid.clone();
                ctx.run_later(delay, move |act, ctx| {
                    if act.shutting_down || act.running.contains_key(&corpid) {
                        return;
                    }
                    if let Some(spec) = act.desired.get(&corpid).cloned() {
                        act.start_corp(spec, ctx);
                    }
                });
            }
        }
    }
}
