//! [`Service`]: the per-corp work of `crate::wecom` (see the module docs of `crate::wecom`), and
//! [`start`], the daemon's background task that runs it every `[wecom_api] interval`.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tracing::Instrument as _;

use super::client::{Client, ClientSettings};
use super::WecomError;
use crate::actors::Stats;
use crate::config::WecomApiConfig;
use crate::corps::{CorpSpec, Sources};
use crate::store::{ConsentCheck, CorpId, Row, Store};

/// How the work is paced.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Wait between passes.
    pub interval: Duration,
    /// Rooms, consents and the archived members are asked again when older than this (daily).
    pub refresh: Duration,
    /// Messages read per scan query.
    pub scan_batch: u32,
    /// Scan queries per corp and pass (the rest waits for the next pass).
    pub scan_pages: u32,
    /// Rooms fetched per corp and pass.
    pub rooms_per_pass: u32,
    /// Consents re-checked per corp and pass.
    pub consents_per_pass: u32,
    /// A corp's pass is abandoned after this long (the next pass continues from the cursors).
    pub corp_timeout: Duration,
    /// The HTTP client's settings.
    pub client: ClientSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            refresh: Duration::from_secs(24 * 3600),
            scan_batch: 500,
            scan_pages: 20,
            rooms_per_pass: 500,
            consents_per_pass: 2_000,
            corp_timeout: Duration::from_secs(300),
            client: ClientSettings::default(),
        }
    }
}

impl Settings {
    /// The settings of `[wecom_api]` (the extra CA file read here).
    pub fn from_config(c: &WecomApiConfig) -> Result<Self, WecomError> {
        let extra_ca_pem = if c.extra_ca_file.as_os_str().is_empty() {
            None
        } else {
            Some(
                std::fs::read(&c.extra_ca_file)
                    .map_err(|e| WecomError::Config(format!("extra_ca_file {}: {e}", c.extra_ca_file.display())))?,
            )
        };
        Ok(Self {
            interval: c.interval.max(Duration::from_secs(1)),
            refresh: c.refresh.max(Duration::from_secs(60)),
            scan_batch: c.scan_batch.clamp(1, 5_000),
            corp_timeout: c.corp_timeout.max(Duration::from_secs(1)),
            client: ClientSettings {
                timeout: c.timeout.max(Duration::from_secs(1)),
                extra_ca_pem,
                ..ClientSettings::default()
            },
            ..Self::default()
        })
    }
}

/// What one corp's pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorpProgress {
    /// Messages scanned.
    pub scanned: u64,
    /// Roomids seen for the first time.
    pub new_rooms: u64,
    /// Rooms fetched.
    pub rooms_fetched: u64,
    /// Rooms WeCom answered an error about (stored in `fetch_error`).
    pub room_errors: u64,
    /// Consents asked.
    pub consents_checked: u64,
    /// Consents new or changed (history rows).
    pub consent_changes: u64,
    /// Archived members listed, when the list was refreshed.
    pub permit_users: Option<u64>,
}

/// An external contact's id (`wo…` a WeChat user, `wm…` a customer of the corp).
pub fn is_external(id: &str) -> bool {
    id.starts_with("wo") || id.starts_with("wm")
}

/// An employee's userid: not external, not a robot (`wb…`), not empty.
pub fn is_internal(id: &str) -> bool {
    !id.is_empty() && !is_external(id) && !id.starts_with("wb")
}

/// What a page of messages asks about: roomids, 1:1 pairs (employee, external) and externals in
/// rooms (roomid, external).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Roomids.
    pub rooms: BTreeSet<String>,
    /// (userid, external userid) of 1:1 conversations.
    pub pairs: BTreeSet<(String, String)>,
    /// (roomid, external userid).
    pub room_externals: BTreeSet<(String, String)>,
}

/// Reads the participants of stored rows (unreadable rows and `switch` records are skipped).
pub fn seen_in(rows: &[Row]) -> Seen {
    let mut seen = Seen::default();
    for r in rows {
        if r.msgtype.is_empty() || r.msgtype == "switch" || r.msgfrom.is_empty() {
            continue;
        }
        let to: Vec<&str> = r.tolist.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if r.roomid.is_empty() {
            if is_external(&r.msgfrom) {
                for u in to.iter().filter(|u| is_internal(u)) {
                    seen.pairs.insert(((*u).to_string(), r.msgfrom.clone()));
                }
            } else if is_internal(&r.msgfrom) {
                for e in to.iter().filter(|e| is_external(e)) {
                    seen.pairs.insert((r.msgfrom.clone(), (*e).to_string()));
                }
            }
        } else {
            seen.rooms.insert(r.roomid.clone());
            for id in std::iter::once(r.msgfrom.as_str()).chain(to.iter().copied()).filter(|i| is_external(i)) {
                seen.room_externals.insert((r.roomid.clone(), id.to_string()));
            }
        }
    }
    seen
}

/// The work of `crate::wecom` for the corps this instance handles.
pub struct Service {
    store: Arc<dyn Store>,
    stats: Option<Arc<Stats>>,
    settings: Settings,
    /// Per corp: the spec's fingerprint, the spec and its client.
    corps: Mutex<HashMap<CorpId, (String, Arc<Client>)>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Service {
    /// A service writing to `store`; with `stats`, errcode 301052 marks the corp failing there.
    pub fn new(store: Arc<dyn Store>, stats: Option<Arc<Stats>>, settings: Settings) -> Arc<Self> {
        Arc::new(Self { store, stats, settings, corps: Mutex::new(HashMap::new()) })
    }

    /// The corp's client (a new one when its secret or proxy changed).
    fn client(&self, spec: &CorpSpec) -> Result<Arc<Client>, WecomError> {
        let fp = spec.fingerprint();
        let mut corps = self.corps.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((f, c)) = corps.get(&spec.corpid) {
            if *f == fp {
                return Ok(Arc::clone(c));
            }
        }
        let c =
            Arc::new(Client::new(spec.corpid.clone(), spec.secret.clone(), &spec.proxy, self.settings.client.clone())?);
        corps.insert(spec.corpid.clone(), (fp, Arc::clone(&c)));
        Ok(c)
    }

    /// Only `specs` are handled from now on (their clients made or kept).
    pub fn set_corps(&self, specs: &[CorpSpec]) {
        let keep: BTreeSet<&CorpId> = specs.iter().map(|s| &s.corpid).collect();
        self.corps.lock().unwrap_or_else(PoisonError::into_inner).retain(|c, _| keep.contains(c));
        for spec in specs {
            if let Err(e) = self.client(spec) {
                tracing::warn!(corpid = %spec.corpid, error = %e, "WeCom API client not available");
            }
        }
    }

    /// Marks the corp failing (`Some(reason)`) or not in the live status.
    fn mark(&self, corpid: &CorpId, reason: Option<String>) {
        let Some(stats) = &self.stats else { return };
        let mut changed = false;
        stats.update(corpid, |s| {
            changed = s.wecom_api_error != reason;
            s.wecom_api_error.clone_from(&reason);
        });
        match (changed, reason) {
            (true, Some(r)) => tracing::warn!(corpid = %corpid, reason = %r, "corp failing: WeCom archive API"),
            (true, None) => tracing::info!(corpid = %corpid, "WeCom archive API works again"),
            _ => {}
        }
    }

    /// Asks WeCom for the consent of one 1:1 pair now and stores it (with history on change):
    /// what the callback's `msg_audit_approved` event calls. The corp must be one this instance
    /// handles ([`WecomError::UnknownCorp`] otherwise: the instance that holds it re-checks the
    /// pair at its next daily refresh, or when the pair appears in a new message).
    pub async fn refresh_consent(
        &self,
        corpid: &CorpId,
        userid: &str,
        external_userid: &str,
    ) -> Result<Vec<ConsentCheck>, WecomError> {
        let client = self
            .corps
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(corpid)
            .map(|(_, c)| Arc::clone(c))
            .ok_or_else(|| WecomError::UnknownCorp(corpid.to_string()))?;
        let result = async {
            let checks = client.check_single_agree(&[(userid.to_string(), external_userid.to_string())]).await?;
            self.store.wecom_consent_put(corpid, &checks).await?;
            Ok(checks)
        }
        .instrument(tracing::info_span!("wecom_consent", corpid = %corpid))
        .await;
        if matches!(result, Err(WecomError::ArchiveExpired)) {
            self.mark(corpid, Some(WecomError::ArchiveExpired.to_string()));
        }
        result
    }

    /// One pass over one corp: scan, rooms, archived members, due consents.
    pub async fn refresh_corp(&self, spec: &CorpSpec) -> Result<CorpProgress, WecomError> {
        let span = tracing::info_span!("wecom", corpid = %spec.corpid);
        let result = async {
            let client = self.client(spec)?;
            let mut p = CorpProgress::default();
            self.scan(&client, &mut p).await?;
            self.rooms(&client, &mut p).await?;
            self.permit(&client, &mut p).await?;
            self.consents_due(&client, &mut p).await?;
            Ok(p)
        }
        .instrument(span)
        .await;
        match &result {
            Ok(_) => self.mark(&spec.corpid, None),
            Err(e @ WecomError::ArchiveExpired) => self.mark(&spec.corpid, Some(e.to_string())),
            Err(_) => {}
        }
        result
    }

    async fn put(&self, corpid: &CorpId, checks: &[ConsentCheck], p: &mut CorpProgress) -> Result<(), WecomError> {
        p.consents_checked += checks.len() as u64;
        p.consent_changes += self.store.wecom_consent_put(corpid, checks).await?;
        Ok(())
    }

    /// New messages → new rooms, consents of new pairs and of externals new in a room. The
    /// cursor moves only after a page's questions were answered.
    async fn scan(&self, client: &Client, p: &mut CorpProgress) -> Result<(), WecomError> {
        let corpid = client.corpid();
        let mut cursor = self.store.wecom_scan_cursor(corpid).await?;
        for _ in 0..self.settings.scan_pages.max(1) {
            let Some(rows) = self.store.messages_after(corpid, cursor, self.settings.scan_batch, true).await? else {
                return Ok(());
            };
            let Some(last) = rows.last().map(|r| r.seq) else { return Ok(()) };
            let seen = seen_in(&rows);
            let rooms: Vec<String> = seen.rooms.into_iter().collect();
            p.new_rooms += self.store.wecom_rooms_seen(corpid, &rooms).await?;
            let mut ask = Vec::new();
            for (u, e) in seen.pairs {
                if !self.store.wecom_consent_known(corpid, "", &u, &e).await? {
                    ask.push((u, e));
                }
            }
            if !ask.is_empty() {
                let checks = client.check_single_agree(&ask).await?;
                self.put(corpid, &checks, p).await?;
            }
            let mut rooms_ask = BTreeSet::new();
            for (room, e) in seen.room_externals {
                if !self.store.wecom_consent_known(corpid, &room, "", &e).await? {
                    rooms_ask.insert(room);
                }
            }
            for room in rooms_ask {
                match client.check_room_agree(&room).await {
                    Ok(checks) => self.put(corpid, &checks, p).await?,
                    Err(e) if e.is_about_the_object() => {
                        tracing::info!(roomid = %room, error = %e, "check_room_agree refused for this room");
                    }
                    Err(e) => return Err(e),
                }
            }
            self.store.wecom_scan_advance(corpid, last).await?;
            p.scanned += rows.len() as u64;
            cursor = last;
            if rows.len() < self.settings.scan_batch as usize {
                break;
            }
        }
        Ok(())
    }

    /// Rooms never fetched, then those older than `refresh`: name, members, room consent.
    async fn rooms(&self, client: &Client, p: &mut CorpProgress) -> Result<(), WecomError> {
        let corpid = client.corpid();
        let due = self.store.wecom_rooms_due(corpid, ms(self.settings.refresh), self.settings.rooms_per_pass).await?;
        for roomid in due {
            match client.group_chat(&roomid).await {
                Ok(info) => {
                    self.store.wecom_room_fetched(corpid, &roomid, &info).await?;
                    p.rooms_fetched += 1;
                }
                Err(e) if e.is_about_the_object() => {
                    tracing::info!(roomid = %roomid, error = %e, "groupchat/get refused for this room");
                    self.store.wecom_room_failed(corpid, &roomid, &e.to_string()).await?;
                    p.room_errors += 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
            match client.check_room_agree(&roomid).await {
                Ok(checks) => self.put(corpid, &checks, p).await?,
                Err(e) if e.is_about_the_object() => {
                    tracing::info!(roomid = %roomid, error = %e, "check_room_agree refused for this room");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The archived members, once per `refresh`: every type's list and the list without type.
    async fn permit(&self, client: &Client, p: &mut CorpProgress) -> Result<(), WecomError> {
        let corpid = client.corpid();
        if self.store.wecom_permit_fresh(corpid, ms(self.settings.refresh)).await? {
            return Ok(());
        }
        let mut users: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
        for id in client.permit_users(None).await? {
            users.entry(id).or_insert(0);
        }
        for (kind, bit) in [(1u8, 1i64), (2, 2), (3, 4)] {
            for id in client.permit_users(Some(kind)).await? {
                *users.entry(id).or_insert(0) |= bit;
            }
        }
        let list: Vec<(String, i64)> = users.into_iter().collect();
        self.store.wecom_permit_replace(corpid, &list).await?;
        p.permit_users = Some(list.len() as u64);
        Ok(())
    }

    /// 1:1 consents older than `refresh`.
    async fn consents_due(&self, client: &Client, p: &mut CorpProgress) -> Result<(), WecomError> {
        let corpid = client.corpid();
        let due =
            self.store.wecom_consent_due(corpid, ms(self.settings.refresh), self.settings.consents_per_pass).await?;
        if due.is_empty() {
            return Ok(());
        }
        let checks = client.check_single_agree(&due).await?;
        self.put(corpid, &checks, p).await
    }

    /// One pass over `specs`, each corp on its own task within `corp_timeout`; the outcome per
    /// corp (errors are logged here too).
    pub async fn pass(self: &Arc<Self>, specs: &[CorpSpec]) -> Vec<(CorpId, Result<CorpProgress, WecomError>)> {
        self.set_corps(specs);
        let mut tasks = tokio::task::JoinSet::new();
        for spec in specs.iter().cloned() {
            let me = Arc::clone(self);
            let limit = self.settings.corp_timeout;
            tasks.spawn(async move {
                let r = match tokio::time::timeout(limit, me.refresh_corp(&spec)).await {
                    Ok(r) => r,
                    Err(_) => Err(WecomError::Transport(format!("the corp's pass took longer than {limit:?}"))),
                };
                (spec.corpid, r)
            });
        }
        let mut out = Vec::with_capacity(specs.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((corpid, r)) => {
                    match &r {
                        Ok(p) if *p != CorpProgress::default() => {
                            tracing::debug!(corpid = %corpid, progress = ?p, "WeCom metadata refreshed");
                        }
                        Ok(_) => {}
                        // Logged when the corp starts failing (`mark`), not at every pass.
                        Err(e @ WecomError::ArchiveExpired) => {
                            tracing::debug!(corpid = %corpid, error = %e, "WeCom metadata refresh failed");
                        }
                        Err(e) => tracing::warn!(corpid = %corpid, error = %e, "WeCom metadata refresh failed"),
                    }
                    out.push((corpid, r));
                }
                Err(e) => tracing::error!(error = %e, "a WeCom metadata task ended abnormally"),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The enabled corps of the sources, and with leases (`holder`) only those this instance holds.
pub async fn held_corps(store: &Arc<dyn Store>, sources: &Sources, holder: Option<&str>) -> Vec<CorpSpec> {
    let desired = match crate::corps::load(sources).await {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(error = %e, "wecom: corp sources not readable");
            return Vec::new();
        }
    };
    let Some(holder) = holder else { return desired.corps.into_values().collect() };
    let held: BTreeSet<String> = match store.lease_list().await {
        Ok(l) => l.into_iter().filter(|l| l.holder == holder && l.expires_in_ms > 0).map(|l| l.corpid).collect(),
        Err(e) => {
            tracing::debug!(error = %e, "wecom: leases not readable");
            return Vec::new();
        }
    };
    desired.corps.into_values().filter(|c| held.contains(c.corpid.as_str())).collect()
}

/// The daemon's running task ([`start`]).
#[derive(Debug)]
pub struct Task {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<()>,
    service: Arc<Service>,
}

impl Task {
    /// The service (for [`Service::refresh_consent`]).
    pub fn service(&self) -> Arc<Service> {
        Arc::clone(&self.service)
    }

    /// Stops after the current pass step.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.handle.abort();
        let _ = self.handle.await;
    }
}

/// Starts the task when `[wecom_api] enabled`: a pass every `interval` over the corps this
/// instance handles (`holder`: the lease holder id when `[cluster] leases`). `None` when off or
/// when the settings are unusable (logged; archiving runs on either way).
pub fn start(
    cfg: &crate::config::Config,
    store: Arc<dyn Store>,
    sources: Sources,
    stats: Option<Arc<Stats>>,
    holder: Option<String>,
) -> Option<Task> {
    if !cfg.wecom_api.enabled {
        return None;
    }
    let settings = match Settings::from_config(&cfg.wecom_api) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "[wecom_api] not usable; WeCom metadata is not refreshed");
            return None;
        }
    };
    let interval = settings.interval;
    let service = Service::new(Arc::clone(&store), stats, settings);
    let (stop, mut rx) = tokio::sync::watch::channel(false);
    let svc = Arc::clone(&service);
    let handle = tokio::spawn(async move {
        while !*rx.borrow() {
            let corps = held_corps(&store, &sources, holder.as_deref()).await;
            svc.pass(&corps).await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = rx.changed() => {}
            }
        }
    });
    tracing::info!(?interval, "WeCom metadata (rooms, archived members, consent) kept up to date");
    Some(Task { stop, handle, service })
}
