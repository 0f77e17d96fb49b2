//! [`LeaseKeeper`]: which corps this instance may pull, when several instances share a database.
//!
//! Every `renew_every` (a third of the TTL) it announces the instance (`lease_instance`), renews
//! the leases it holds, gives back those over its fair share (⌈corps ÷ live instances⌉) or no
//! longer wanted, claims free or expired ones up to the share, and tells the supervisor the set
//! it holds ([`Leases`]); the supervisor runs exactly those corps, each spec carrying its
//! [`Fence`]. A lease that cannot be renewed (taken over, or not renewed within the TTL because
//! the database did not answer or the process was paused) is dropped at once: the supervisor
//! stops its corp, and the batch commit's fencing check refuses any write still in flight.
//! [`LeaseLeave`] (graceful shutdown) releases everything so that others take over immediately.
//!
//! Reads are kept apart too, not only writes: the keeper publishes each lease's term by this
//! process's clock in [`LeaseTerms`] (the time the renewing statement was *sent*, plus the TTL:
//! never later than the database's own expiry), and a corp actor starts a `GetChatData` only
//! while at least `renew_every` of its term is left. A keeper that falls behind (a slow or
//! unreachable database, a starved process) pauses its corps' pulls before any other instance
//! may claim them, instead of pulling on until its next round notices.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use rand::seq::SliceRandom;

use crate::store::{CorpId, Fence, Store};

/// Lease settings (`[cluster]`).
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// This instance's id (the `holder`).
    pub holder: String,
    /// How long a lease lasts without renewal.
    pub ttl: Duration,
}

impl LeaseSettings {
    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// How often leases are renewed and claimed.
    pub fn renew_every(&self) -> Duration {
        (self.ttl / 3).max(Duration::from_millis(100))
    }
}

/// Each held lease's term by this process's clock, written by the keeper after every round and
/// read by the corp actors before each call (see the module docs). Without leases it stays empty
/// and is never asked.
#[derive(Debug, Clone, Default)]
pub struct LeaseTerms {
    terms: Arc<Mutex<HashMap<CorpId, (u64, Instant)>>>,
    /// How long a lease lasts from its renewal.
    ttl: Duration,
    /// The part of a term that must be left to start a call.
    margin: Duration,
}

impl LeaseTerms {
    /// Terms for `settings` (a call starts only while `renew_every` is left).
    pub fn new(settings: &LeaseSettings) -> Self {
        Self { terms: Arc::default(), ttl: settings.ttl, margin: settings.renew_every() }
    }

    /// Replaces every term: `leases` maps a corp to (token, renewal sent at).
    fn publish<'a>(&self, leases: impl Iterator<Item = (&'a CorpId, &'a (Fence, Instant))>) {
        let fresh: HashMap<CorpId, (u64, Instant)> =
            leases.map(|(c, (f, at))| (c.clone(), (f.token, *at + self.ttl))).collect();
        if let Ok(mut terms) = self.terms.lock() {
            *terms = fresh;
        }
    }

    /// True when the lease `token` of `corpid` is ours for at least the margin still.
    pub fn may_call(&self, corpid: &CorpId, token: u64) -> bool {
        let Ok(terms) = self.terms.lock() else { return false };
        terms.get(corpid).is_some_and(|(t, until)| {
            *t == token && until.checked_duration_since(Instant::now()).is_some_and(|left| left >= self.margin)
        })
    }
}

/// The corps the sources want (from the supervisor after each reload).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Wanted(pub BTreeSet<CorpId>);

/// The leases held now (to the supervisor).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Leases(pub BTreeMap<CorpId, Fence>);

/// A corp's actor has stopped (from the supervisor): a lease being given back can now be
/// released without two instances ever pulling the corp at once.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CorpStopped(pub CorpId);

/// Release every lease and leave (graceful shutdown); answers when done.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct LeaseLeave;

/// The lease keeper actor.
pub struct LeaseKeeper {
    store: Arc<dyn Store>,
    settings: LeaseSettings,
    supervisor: Recipient<Leases>,
    terms: LeaseTerms,
    wanted: BTreeSet<CorpId>,
    /// Held leases and when each was last renewed (by our clock).
    held: BTreeMap<CorpId, (Fence, Instant)>,
    /// Leases being given back: still renewed, no longer reported, released once the corp's
    /// actor has stopped ([`CorpStopped`]) or after a TTL.
    releasing: BTreeMap<CorpId, (Fence, Instant)>,
    /// Rounds done (the first only announces the instance, so that instances started together
    /// see each other before claiming).
    rounds: u64,
    busy: bool,
    leaving: bool,
}

impl std::fmt::Debug for LeaseKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseKeeper").field("holder", &self.settings.holder).field("held", &self.held.len()).finish()
    }
}

impl LeaseKeeper {
    /// A keeper for `settings`, reporting to `supervisor` and publishing to `terms`.
    pub fn new(
        store: Arc<dyn Store>,
        settings: LeaseSettings,
        supervisor: Recipient<Leases>,
        terms: LeaseTerms,
    ) -> Self {
        Self {
            store,
            settings,
            supervisor,
            terms,
            wanted: BTreeSet::new(),
            held: BTreeMap::new(),
            releasing: BTreeMap::new(),
            rounds: 0,
            busy: false,
            leaving: false,
        }
    }

    fn report(&self) {
        self.supervisor.do_send(Leases(self.held.iter().map(|(c, (f, _))| (c.clone(), f.clone())).collect()));
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.leaving {
            return;
        }
        self.busy = true;
        let store = Arc::clone(&self.store);
        let settings = self.settings.clone();
        let held = self.held.clone();
        let releasing = std::mem::take(&mut self.releasing);
        let wanted = self.wanted.clone();
        let claim = self.rounds > 0;
        self.rounds += 1;
        ctx.spawn(
            async move { round(&*store, &settings, held, releasing, &wanted, claim).await }.into_actor(self).map(
                |(held, releasing), act, _| {
                    act.busy = false;
                    act.held = held;
                    act.releasing.extend(releasing);
                    // Those being given back keep their term: their actors may still be
                    // finishing the call in flight.
                    act.terms.publish(act.held.iter().chain(act.releasing.iter()));
                    if !act.leaving {
                        act.report();
                    }
                },
            ),
        );
    }
}

type Held = BTreeMap<CorpId, (Fence, Instant)>;

/// Renews `leases` (one statement); returns those still ours.
async fn renew(store: &dyn Store, s: &LeaseSettings, leases: Held) -> Held {
    if leases.is_empty() {
        return leases;
    }
    // A pause (SIGSTOP, a stall) past the TTL: the lease may be someone else's by now even if the
    // token still matches; drop it (it is claimed again if it is free).
    let (fresh, stale): (Held, Held) = leases.into_iter().partition(|(_, (_, at))| at.elapsed() < s.ttl);
    for corpid in stale.keys() {
        tracing::warn!(corpid = %corpid, "lease expired before it could be renewed; stopping the corp");
    }
    let wanted: Vec<(CorpId, u64)> = fresh.iter().map(|(c, (f, _))| (c.clone(), f.token)).collect();
    // The term runs from the moment the statement is sent: the database's expiry (its clock when
    // the statement runs, plus the TTL) is never earlier than that.
    let sent = Instant::now();
    match store.lease_renew_all(&s.holder, &wanted, s.ttl_ms()).await {
        Ok(held) => {
            let held: HashMap<String, u64> = held.into_iter().collect();
            fresh
                .into_iter()
                .filter_map(|(corpid, (fence, _))| {
                    if held.get(corpid.as_str()) == Some(&fence.token) {
                        Some((corpid, (fence, sent)))
                    } else {
                        tracing::warn!(corpid = %corpid, token = fence.token, "lease taken over; stopping the corp");
                        None
                    }
                })
                .collect()
        }
        Err(e) => {
            tracing::warn!(error = %e, "renewing the leases failed; will retry");
            fresh
                .into_iter()
                .filter(|(corpid, (_, at))| {
                    let ok = at.elapsed() < s.ttl - s.renew_every();
                    if !ok {
                        tracing::error!(corpid = %corpid, "lease not renewed in time; stopping the corp");
                    }
                    ok
                })
                .collect()
        }
    }
}

/// One round: heartbeat, renew, give back (to `releasing`), claim (when `claim`). Returns the
/// leases held and those being given back.
async fn round(
    store: &dyn Store,
    s: &LeaseSettings,
    mut held: Held,
    releasing: Held,
    wanted: &BTreeSet<CorpId>,
    claim: bool,
) -> (Held, Held) {
    let ttl = s.ttl_ms();
    let live = match store.lease_heartbeat(&s.holder, ttl).await {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "lease heartbeat failed");
            // Without the database nothing can be renewed: keep what is still valid by our
            // clock (a third of the TTL is left as margin), drop the rest.
            held.retain(|corpid, (_, at)| {
                let ok = at.elapsed() < s.ttl - s.renew_every();
                if !ok {
                    tracing::error!(corpid = %corpid, "lease not renewed in time; stopping the corp");
                }
                ok
            });
            return (held, BTreeMap::new());
        }
    };
    let mut kept = renew(store, s, held).await;
    // A lease given back whose corp did not report stopping within a TTL is released anyway (its
    // actor is gone or fenced).
    let mut giving = BTreeMap::new();
    for (corpid, (fence, since)) in renew(store, s, releasing).await {
        if since.elapsed() >= s.ttl {
            release(store, &corpid, &fence).await;
        } else {
            giving.insert(corpid, (fence, since));
        }
    }
    let share = wanted.len().div_ceil(live.max(1) as usize);
    // Give back what is no longer wanted, then what is over the share.
    let mut give_back: Vec<CorpId> = kept.keys().filter(|c| !wanted.contains(*c)).cloned().collect();
    let over = kept.len().saturating_sub(give_back.len()).saturating_sub(share);
    give_back.extend(kept.keys().filter(|c| wanted.contains(*c)).rev().take(over).cloned());
    for corpid in give_back {
        if let Some((fence, _)) = kept.remove(&corpid) {
            tracing::info!(corpid = %corpid, share, live, "giving the lease back once the corp has stopped");
            giving.insert(corpid, (fence, Instant::now()));
        }
    }
    if claim && kept.len() < share {
        let mut free: Vec<&CorpId> =
            wanted.iter().filter(|c| !kept.contains_key(*c) && !giving.contains_key(*c)).collect();
        free.shuffle(&mut rand::thread_rng());
        for corpid in free {
            if kept.len() >= share {
                break;
            }
            let sent = Instant::now();
            match store.lease_claim(corpid, &s.holder, ttl).await {
                Ok(Some(token)) => {
                    tracing::info!(corpid = %corpid, token, share, live, "lease claimed");
                    kept.insert(corpid.clone(), (Fence { holder: s.holder.clone(), token }, sent));
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(corpid = %corpid, error = %e, "claiming a lease failed"),
            }
        }
    }
    (kept, giving)
}

async fn release(store: &dyn Store, corpid: &CorpId, fence: &Fence) {
    match store.lease_release(corpid, fence).await {
        Ok(()) => tracing::info!(corpid = %corpid, token = fence.token, "lease released"),
        Err(e) => tracing::warn!(corpid = %corpid, error = %e, "releasing a lease failed; it will expire"),
    }
}

impl Actor for LeaseKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.settings.renew_every(), |act, ctx| act.tick(ctx));
    }
}

impl Handler<Wanted> for LeaseKeeper {
    type Result = ();

    fn handle(&mut self, msg: Wanted, ctx: &mut Self::Context) {
        let changed = msg.0 != self.wanted;
        self.wanted = msg.0;
        if changed {
            self.tick(ctx);
        }
    }
}

impl Handler<CorpStopped> for LeaseKeeper {
    type Result = ();

    fn handle(&mut self, msg: CorpStopped, ctx: &mut Self::Context) {
        if let Some((fence, _)) = self.releasing.remove(&msg.0) {
            let store = Arc::clone(&self.store);
            ctx.spawn(async move { release(&*store, &msg.0, &fence).await }.into_actor(self));
        }
    }
}

impl Handler<LeaseLeave> for LeaseKeeper {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: LeaseLeave, _ctx: &mut Self::Context) -> Self::Result {
        self.leaving = true;
        self.terms.publish(std::iter::empty());
        let mut all = std::mem::take(&mut self.held);
        all.extend(std::mem::take(&mut self.releasing));
        let held: Vec<(CorpId, Fence)> = all.into_iter().map(|(c, (f, _))| (c, f)).collect();
        let store = Arc::clone(&self.store);
        let holder = self.settings.holder.clone();
        Box::pin(async move {
            for (corpid, fence) in held {
                release(&*store, &corpid, &fence).await;
            }
            if let Err(e) = store.lease_leave(&holder).await {
                tracing::warn!(error = %e, "leaving the instance table failed; the entry will expire");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ttl_ms: u64) -> LeaseSettings {
        LeaseSettings { holder: "me".into(), ttl: Duration::from_millis(ttl_ms) }
    }

    #[test]
    fn a_call_may_start_only_with_a_third_of_the_term_left_and_the_same_token() {
        let s = settings(3000);
        let terms = LeaseTerms::new(&s);
        let corp = CorpId::new("wwterms").unwrap();
        let other = CorpId::new("wwother").unwrap();
        let fence = Fence { holder: "me".into(), token: 7 };
        assert!(!terms.may_call(&corp, 7), "no term published yet");
        let now = Instant::now();
        let held: Held = [(corp.clone(), (fence.clone(), now))].into_iter().collect();
        terms.publish(held.iter());
        assert!(terms.may_call(&corp, 7));
        assert!(!terms.may_call(&corp, 8), "another claim's token");
        assert!(!terms.may_call(&other, 7), "another corp");
        // Renewed (sent) 2.1 s ago: 0.9 s left of 3 s, under the 1 s margin.
        let old: Held = [(corp.clone(), (fence.clone(), now - Duration::from_millis(2100)))].into_iter().collect();
        terms.publish(old.iter());
        assert!(!terms.may_call(&corp, 7));
        // 1.9 s ago: 1.1 s left.
        let recent: Held = [(corp.clone(), (fence, now - Duration::from_millis(1900)))].into_iter().collect();
        terms.publish(recent.iter());
        assert!(terms.may_call(&corp, 7));
        terms.publish(std::iter::empty());
        assert!(!terms.may_call(&corp, 7), "dropped");
    }
}
