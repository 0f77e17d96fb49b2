//! `run --config FILE`: the daemon.
//!
//! Loads the configuration (exit 2 when it is wrong), loads the SDK (`[sdk] library`, or
//! `emulator` for the in-process emulator driven by `WWF_EMULATOR_SCENARIO`), connects to and
//! migrates the database, starts the pipeline ([`crate::actors::Pipeline`]) and runs until
//! SIGINT or SIGTERM. The stop is graceful: no new fetch starts and in-flight writes finish,
//! within `[daemon] shutdown_grace` (exit 0), else exit 1.
//!
//! A database that cannot be reached at start is retried ([`connect_store`]): every attempt is
//! logged with the target (password redacted) and the driver's own error, the delay doubles from
//! 1 s to 30 s, and SIGTERM meanwhile exits 0. Only a malformed URL is a configuration error.
//!
//! While running: the rules file and `rule_def` are reloaded by [`crate::rules::spawn_reloader`]
//! (SIGHUP too); the [`Reloader`] applies edits of the configuration and corps files
//! ([`crate::reload`]), and SIGHUP does the same whether or not the watcher saw an edit; the [`Observer`] logs retention alerts and, with `[http] listen`, answers
//! `/healthz`, `/metrics` and `/status` ([`crate::observe`]); a supervisor that died (panic)
//! ends the process with exit 1 so that supervisord/systemd restarts it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use clap::Args;
use tokio::sync::mpsc;

use super::CliError;
use crate::actors::lease::LeaseSettings;
use crate::actors::media::MediaSettings;
use crate::actors::shutdown::{close_system, Stopped};
use crate::actors::supervisor::{Reload, SetSources, Supervisor};
use crate::actors::{Pipeline, PipelineConfig, PullSettings};
use crate::config::Config;
use crate::corps::{self, Defaults, Proxy, SourceError, Sources};
use crate::media::object_store::ObjectStore;
use crate::observe::{self, observer::Observer};
use crate::reload::{self, Changed, FileWatch};
use crate::review::api::ReviewState;
use crate::review::media::MediaSource;
use crate::sdk::process::{ProcessOptions, ProcessSdk};
use crate::sdk::{dynlib::VendorSdk, emulated::EmulatedSdk, FinanceSdk, SdkTimeout, MAX_LIMIT};
use crate::store;

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (see config/example.toml); without it, defaults and environment.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs the daemon until SIGINT/SIGTERM.
/// `log_overridden`: the log filter came from `--log`/`WEWORK_MSGAUDIT_LOG` (then `[log] level`
/// edits are not applied).
pub fn run(args: &RunArgs, log_overridden: bool) -> Result<(), CliError> {
    let cfg = Config::load(args.config.as_deref())?;
    let http = match cfg.http.listen.as_str() {
        "" => None,
        listen => Some(listen.parse::<SocketAddr>().map_err(|e| CliError::config("http.listen", e))?),
    };
    let token = observe::http::read_token(&cfg.http.token_file).map_err(CliError::Config)?;
    let review = review_listen(&cfg)?;
    let sdk = load_daemon_sdk(&cfg.sdk.library, cfg.sdk.isolate)?;
    // A master key that is configured but unusable is a configuration error at start-up (later
    // reloads keep running and leave out only the corps whose sealed values need it).
    crate::security::AtRest::load(&cfg.security.master_key_file).map_err(|e| CliError::config("the master key", e))?;
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        // First of all: from here on SIGHUP reloads instead of ending the process.
        let mut signals = Signals::install()?;
        let Some(store) = connect_store(&cfg, &mut signals).await? else {
            tracing::info!("stopped before the database was reached");
            return Ok(());
        };
        // Media off: the media rows of new records are kept but held, not queued (MEDIA_HELD).
        store.hold_new_media(!cfg.media.enabled);
        tracing::info!(database = %cfg.database.redacted_url(), sdk = %sdk.describe(), "starting");
        let sources = sources_from_config(&cfg, Some(Arc::clone(&store)));
        // A missing or invalid corps file at start-up is a configuration error; later reloads
        // keep the previous corps instead.
        match corps::load(&sources).await {
            Ok(desired) => {
                // Corps left out are logged by the supervisor (once per change).
                if desired.corps.is_empty() {
                    tracing::warn!("no enabled corp yet; the sources are re-read every reload_interval");
                }
            }
            Err(e @ SourceError::File { .. }) => return Err(CliError::config("the corps file", e)),
            Err(e) => return Err(CliError::runtime("reading the corp sources", e)),
        }
        // search: the full-text index is kept by its own background task (src/search/indexer.rs).
        let search = crate::search::indexer::start(&cfg, Arc::clone(&store), sources.clone());
        // reply-time checks: their own background task over the stored rows (src/quality).
        let reply_time = crate::quality::task::start(&cfg, args.config.as_deref(), Arc::clone(&store), sources.clone());
        // rules: evaluated on every record (src/rules); an invalid rules file at start-up is a
        // configuration error, later edits keep the rules in force.
        let rules_src = rules_sources(&cfg, args.config.as_deref(), &store);
        let rules = match crate::rules::load(&rules_src).await {
            Ok(loaded) => {
                for problem in &loaded.skipped {
                    tracing::error!(%problem, "a rule was left out");
                }
                tracing::info!(rules = loaded.set.len(), "rules loaded");
                crate::rules::Live::new(loaded.set)
            }
            Err(e) if e.is_retryable() => return Err(CliError::runtime("reading the rules", e)),
            Err(e) => return Err(CliError::config("the rules", e)),
        };
        let pipeline_cfg = PipelineConfig { rules: rules.clone(), ..pipeline_config(&cfg) };
        // wecom: names and scope from WeCom's archive APIs, for the corps this instance holds
        // (src/wecom/refresh.rs).
        let holder = pipeline_cfg.lease.as_ref().map(|l| l.holder.clone());
        let wecom_sources = sources.clone();
        let pipeline = Pipeline::start(Arc::clone(&store), sdk, sources, &pipeline_cfg)
            .map_err(|e| CliError::runtime("starting the pipeline", e))?;
        // alerts: rule hits to the configured channels, by their own background tasks (src/alerts).
        let alerts = crate::alerts::start(&cfg, Arc::clone(&store), instance_id(&cfg), &pipeline.stop_token());
        let (rules_kick, kicks) = mpsc::unbounded_channel();
        let _rules_reloader =
            crate::rules::spawn_reloader(rules_src, rules, cfg.rules.reload_interval, kicks, pipeline.stop_token());
        let wecom = crate::wecom::refresh::start(
            &cfg,
            Arc::clone(&store),
            wecom_sources,
            Some(Arc::clone(&pipeline.stats)),
            holder,
        );
        let observer = Observer::new(
            observe::Sources {
                stats: Some(Arc::clone(&pipeline.stats)),
                store: Arc::clone(&store),
                corps: Vec::new(),
                media: pipeline.media_counters.clone(),
                failing_after: cfg.daemon.failing_after,
                alerts: alerts.as_ref().map(|a| Arc::clone(&a.counters)),
            },
            observe::snapshot::EVERY,
            cfg.daemon.alert_after,
            (cfg.daemon.alert_after / 10).clamp(Duration::from_secs(1), Duration::from_secs(60)),
        )
        .with_completeness(if http.is_some() { cfg.http.completeness_interval } else { Duration::ZERO })
        .start();
        let server = match http {
            Some(addr) => {
                let server = observe::http::serve(addr, observer, token)
                    .map_err(|e| CliError::config("http.listen: cannot listen", e))?;
                tracing::info!(%addr, "serving /healthz, /metrics and /status");
                let handle = server.handle();
                actix_rt::spawn(server);
                Some(handle)
            }
            None => None,
        };
        if let Some(addr) = review {
            let auth = crate::review::auth::auth_state(Arc::clone(&store), &cfg.review)
                .map_err(|e| CliError::config("[review]", e))?;
            let state = ReviewState {
                store: Arc::clone(&store),
                search: search.as_ref().map(crate::search::indexer::Task::index),
                media: MediaSource {
                    root: cfg.media.root.clone(),
                    object_store: match MediaSettings::from_config(&cfg.media, String::new()).object_store {
                        Some(s) => Some(Arc::new(
                            ObjectStore::new(&s).map_err(|e| CliError::config("media (for the review API)", e))?,
                        )),
                        None => None,
                    },
                },
                export_max_rows: cfg.review.export_max_rows,
                // Every read is appended to the hash-chained access log before it is answered.
                recorder: auth.recorder(),
            };
            let server = crate::review::server::serve(addr, state, auth)
                .map_err(|e| CliError::config("review.listen: cannot listen", e))?;
            tracing::info!(%addr, "serving the review API");
            let handle = server.handle();
            actix_rt::spawn(server);
            // Stops with the pipeline (requests in flight get the server's shutdown timeout).
            let stop = pipeline.stop_token();
            actix_rt::spawn(async move {
                stop.cancelled().await;
                handle.stop(true).await;
            });
        }
        // callback: WeCom's msgaudit_notify → pull now (src/callback).
        if let Some(addr) =
            crate::callback::server::start(&cfg.callback, &pipeline, wecom.as_ref().map(|t| t.service()))
                .map_err(|e| CliError::config("callback.listen: cannot listen", e))?
        {
            tracing::info!(%addr, "serving WeCom callbacks on /callback/<corpid>");
        }
        let mut reloader = Reloader::new(args.config.clone(), cfg, store, pipeline.supervisor.clone(), log_overridden);
        let grace = reloader.cfg.daemon.shutdown_grace;
        let fatal = {
            let fatal = pipeline.fatal();
            tokio::pin!(fatal);
            let mut check = tokio::time::interval(Duration::from_secs(1));
            // Memory freed after a burst goes back to the system (sdk::os::release_free_memory).
            let mut trim = tokio::time::interval_at(tokio::time::Instant::now() + TRIM_EVERY, TRIM_EVERY);
            loop {
                tokio::select! {
                    signal = signals.next() => match signal {
                        Signal::Stop => break None,
                        Signal::Reload => {
                            reloader.reload_all();
                            let _ = rules_kick.send(());
                        }
                    },
                    reason = &mut fatal => break Some(reason),
                    Some(changed) = reloader.changes.recv() => reloader.apply(changed),
                    _ = trim.tick() => {
                        drop(tokio::task::spawn_blocking(crate::sdk::os::release_free_memory));
                    }
                    _ = check.tick() => {
                        // A panic in state shared by all corps ends the process (decision 1).
                        if let Some(why) = pipeline.broken() {
                            break Some(why.to_string());
                        }
                    }
                }
            }
        };
        drop(reloader);
        tracing::info!(?grace, "stopping: no new fetches; waiting for in-flight writes");
        // Bounded by `[daemon] shutdown_grace` (PipelineConfig::shutdown_grace).
        let stopped = pipeline.shutdown().await;
        // search: its last commit, within the same grace (a cut-off one costs nothing: the next
        // start catches up from the cursors of its last commit).
        if let Some(search) = search {
            let left = match &stopped {
                Stopped::InTime(elapsed) => grace.saturating_sub(*elapsed),
                Stopped::Overran(_) => std::time::Duration::ZERO,
            };
            let _ = tokio::time::timeout(left, search.stop()).await;
        }
        if let Some(wecom) = wecom {
            wecom.stop().await;
        }
        // reply-time: stops after its current batch (each batch is one transaction).
        if let Some(task) = reply_time {
            task.stop().await;
        }
        // alerts: a send in flight finishes and is recorded, within what is left of the grace
        // (one cut off is sent again after a restart, with the same idempotency key).
        if let Some(alerts) = alerts {
            let left = match &stopped {
                Stopped::InTime(elapsed) => grace.saturating_sub(*elapsed),
                Stopped::Overran(_) => std::time::Duration::ZERO,
            };
            let _ = tokio::time::timeout(left, alerts.stop()).await;
        }
        if let Some(server) = server {
            server.stop(true).await;
        }
        match (stopped, fatal) {
            (Stopped::Overran(grace), _) => {
                Err(CliError::Runtime(format!("shutdown took longer than shutdown_grace ({grace:?})")))
            }
            (Stopped::InTime(_), Some(reason)) => Err(CliError::Runtime(reason)),
            (Stopped::InTime(elapsed), None) => {
                tracing::info!(?elapsed, "stopped");
                Ok(())
            }
        }
    });
    // What is still pending (a report, a reload) is dropped inside the runtime.
    close_system(system);
    result
}

/// The review API's address (`None`: off). The API searches the index, so `[review] listen`
/// requires `[search] enabled = true` (a configuration error otherwise, rather than turning the
/// indexer on behind the operator's back: it costs a writer thread and memory).
fn review_listen(cfg: &Config) -> Result<Option<SocketAddr>, CliError> {
    match cfg.review.listen.as_str() {
        "" => Ok(None),
        listen => {
            let addr = listen.parse::<SocketAddr>().map_err(|e| CliError::config("review.listen", e))?;
            if !cfg.search.enabled {
                return Err(CliError::Config(
                    "review.listen is set but [search] enabled = false: the review API needs the search index".into(),
                ));
            }
            Ok(Some(addr))
        }
    }
}

/// Applies changes of the configuration and corps files while the daemon runs ([`crate::reload`]).
struct Reloader {
    path: Option<PathBuf>,
    cfg: Config,
    table: toml::Table,
    store: Arc<dyn store::Store>,
    supervisor: Addr<Supervisor>,
    changes: mpsc::UnboundedReceiver<Changed>,
    tx: mpsc::UnboundedSender<Changed>,
    watch: Option<FileWatch>,
    log_overridden: bool,
}

impl Reloader {
    fn new(
        path: Option<PathBuf>,
        cfg: Config,
        store: Arc<dyn store::Store>,
        supervisor: Addr<Supervisor>,
        log_overridden: bool,
    ) -> Self {
        let table = path.as_deref().and_then(read_table).unwrap_or_default();
        let (tx, changes) = mpsc::unbounded_channel();
        let mut r = Self { path, cfg, table, store, supervisor, changes, tx, watch: None, log_overridden };
        r.rewatch();
        r
    }

    fn corps_file(&self) -> Option<PathBuf> {
        (!self.cfg.corps.file.as_os_str().is_empty()).then(|| self.cfg.corps.file.clone())
    }

    fn rewatch(&mut self) {
        self.watch = None;
        let corps = self.corps_file();
        match FileWatch::start(self.path.as_deref(), corps.as_deref(), Duration::from_millis(300), self.tx.clone()) {
            Ok(w) => self.watch = Some(w),
            Err(e) => tracing::warn!(error = %e, "cannot watch the files; changes are picked up by polling only"),
        }
    }

    /// SIGHUP: what an edit of both files does, whether or not the watcher saw one.
    fn reload_all(&mut self) {
        tracing::info!("SIGHUP: re-reading the configuration and the corps");
        self.supervisor.do_send(Reload);
        self.apply(Changed { config: true, corps: false });
    }

    fn apply(&mut self, changed: Changed) {
        if changed.corps {
            tracing::info!("the corps file changed; reloading the corps");
            self.supervisor.do_send(Reload);
        }
        if !changed.config {
            return;
        }
        let Some(path) = self.path.clone() else { return };
        let new = match Config::load(Some(&path)) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "the changed configuration is invalid; keeping the previous one");
                return;
            }
        };
        let table = read_table(&path).unwrap_or_default();
        let keys = reload::classify(reload::changed_keys(&self.table, &table));
        if keys.hot.is_empty() && keys.cold.is_empty() {
            return;
        }
        let old_corps_file = self.corps_file();
        self.cfg = Config { log: new.log.clone(), corps: new.corps.clone(), ..self.cfg.clone() };
        self.cfg.pull.limit = new.pull.limit;
        self.cfg.sdk.timeout = new.sdk.timeout;
        self.cfg.sdk.proxy.clone_from(&new.sdk.proxy);
        self.cfg.sdk.proxy_password = new.sdk.proxy_password.clone();
        self.table = table;
        if keys.hot_in("corps") || keys.hot_in("pull") || keys.hot_in("sdk") {
            tracing::info!(keys = ?keys.hot, "configuration changed: reloading the corps with the new settings");
            self.supervisor.do_send(SetSources(sources_from_config(&self.cfg, Some(Arc::clone(&self.store)))));
        }
        if keys.hot.iter().any(|k| k == "log.level") {
            if self.log_overridden {
                tracing::info!("[log] level changed but the log filter is set by --log/WEWORK_MSGAUDIT_LOG; kept");
            } else {
                match crate::logging::set_level(&self.cfg.log.level) {
                    Ok(()) => tracing::info!(level = %self.cfg.log.level, "log level changed"),
                    Err(e) => tracing::error!(error = %e, "keeping the previous log level"),
                }
            }
        }
        if !keys.cold.is_empty() {
            tracing::warn!(keys = ?keys.cold, "these settings changed but take effect only after a restart");
        }
        if self.corps_file() != old_corps_file {
            self.rewatch();
        }
    }
}

/// The configuration file as a TOML table (for diffing), if it reads and parses.
fn read_table(path: &Path) -> Option<toml::Table> {
    std::fs::read_to_string(path).ok()?.parse().ok()
}

/// `emulator` → the in-process emulator (`WWF_EMULATOR_SCENARIO`), anything else a library path.
pub fn load_sdk(library: &Path) -> Result<Arc<dyn FinanceSdk>, CliError> {
    if library.as_os_str() == "emulator" {
        let emu = emulator::Emulator::from_env().map_err(|e| CliError::config("emulator scenario", e))?;
        return Ok(Arc::new(EmulatedSdk::new(Arc::new(emu))));
    }
    Ok(Arc::new(VendorSdk::load(library).map_err(|e| CliError::config("sdk.library", e))?))
}

/// The daemon's SDK: [`load_sdk`], except that a vendor library runs in `sdk-worker` child
/// processes when `isolate` ([`ProcessSdk`]).
pub fn load_daemon_sdk(library: &Path, isolate: bool) -> Result<Arc<dyn FinanceSdk>, CliError> {
    if !isolate || library.as_os_str() == "emulator" {
        return load_sdk(library);
    }
    let sdk = ProcessSdk::start(library, ProcessOptions::for_daemon()).map_err(|e| match e {
        e @ crate::sdk::SdkError::Load { .. } => CliError::config("sdk.library", e),
        e => CliError::runtime("starting the sdk-worker processes", e),
    })?;
    Ok(Arc::new(sdk))
}

/// The corp sources named by the configuration.
pub fn sources_from_config(cfg: &Config, store: Option<Arc<dyn store::Store>>) -> Sources {
    Sources {
        table: if cfg.corps.table { store } else { None },
        file: (!cfg.corps.file.as_os_str().is_empty()).then(|| cfg.corps.file.clone()),
        fixed: Vec::new(),
        defaults: Some(Defaults {
            limit: cfg.pull.limit.clamp(1, MAX_LIMIT),
            timeout: SdkTimeout::from_secs(cfg.sdk.timeout.as_secs()),
        }),
        proxy: Proxy {
            url: (!cfg.sdk.proxy.is_empty()).then(|| cfg.sdk.proxy.clone()),
            password: (!cfg.sdk.proxy_password.is_empty()).then(|| cfg.sdk.proxy_password.clone()),
        },
        at_rest: crate::security::AtRest::load_or_broken(&cfg.security.master_key_file),
    }
}

/// Where the rules come from: `[rules] file` (else rules.toml beside the configuration file)
/// and, with `[rules] table`, `rule_def`.
pub fn rules_sources(cfg: &Config, config_file: Option<&Path>, store: &Arc<dyn store::Store>) -> crate::rules::Sources {
    crate::rules::Sources {
        file: crate::rules::file_of(&cfg.rules, config_file),
        store: cfg.rules.table.then(|| Arc::clone(store)),
        regex_size_limit: cfg.rules.regex_size_limit,
    }
}

/// The pipeline settings of the configuration.
pub fn pipeline_config(cfg: &Config) -> PipelineConfig {
    let holder = instance_id(cfg);
    let mut media = cfg.media.enabled.then(|| media_settings(cfg));
    if let Some(m) = media.as_mut().filter(|_| cfg.cluster.leases && cfg.media.instance_id.is_empty()) {
        // Several instances may run on one host: media claims need the instance's own id.
        m.owner.clone_from(&holder);
    }
    PipelineConfig {
        sdk_threads: cfg.sdk.threads,
        decrypt_threads: cfg.pull.decrypt_threads,
        pull: PullSettings {
            poll_interval: cfg.pull.poll_interval,
            backoff_initial: cfg.pull.backoff_initial,
            backoff_max: cfg.pull.backoff_max,
            progress_interval: cfg.daemon.progress_interval,
            write_attempts: cfg.daemon.failing_after,
            callback_poll_interval: (!cfg.callback.listen.is_empty()).then_some(cfg.callback.poll_interval),
            fetch_ahead: cfg.pull.fetch_ahead,
        },
        reload_interval: cfg.corps.reload_interval.max(Duration::from_secs(1)),
        hang_grace: Duration::from_secs(10),
        max_hung_threads: cfg.sdk.max_hung_threads,
        media,
        lease: cfg.cluster.leases.then_some(LeaseSettings { holder, ttl: cfg.cluster.lease_ttl }),
        shutdown_grace: cfg.daemon.shutdown_grace,
        rules: crate::rules::Live::default(),
    }
}

/// The media settings of the configuration (the owner in claims: `[media] instance_id`, else
/// the host name).
pub fn media_settings(cfg: &Config) -> MediaSettings {
    let m = &cfg.media;
    MediaSettings::from_config(m, if m.instance_id.is_empty() { host_name() } else { m.instance_id.clone() })
}

/// This instance's lease holder id: `[cluster] instance_id`, else `<host>-<pid>-<random>`.
pub fn instance_id(cfg: &Config) -> String {
    if !cfg.cluster.instance_id.is_empty() {
        return cfg.cluster.instance_id.clone();
    }
    format!("{}-{}-{:04x}", host_name(), std::process::id(), rand::random::<u16>())
}

/// The host name (`/proc/sys/kernel/hostname`; `/etc/hostname` where /proc shows processes only,
/// e.g. systemd's `ProcSubset=pid`), or `default`.
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_string())
        .find(|h| !h.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// What a signal asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// SIGTERM or SIGINT: stop gracefully.
    Stop,
    /// SIGHUP: reload the configuration and the corps (`systemctl reload`).
    Reload,
}

/// The daemon's signal handlers, installed before it connects to anything: SIGHUP's default
/// action would end the process (exit 129).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, CliError> {
        use tokio::signal::unix::{signal, SignalKind};
        let handler =
            |kind: SignalKind, name: &str| signal(kind).map_err(|e| CliError::runtime(format!("{name} handler"), e));
        Ok(Self {
            term: handler(SignalKind::terminate(), "SIGTERM")?,
            int: handler(SignalKind::interrupt(), "SIGINT")?,
            hup: handler(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// The next signal (logged).
    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => { tracing::info!("SIGTERM"); Signal::Stop }
            _ = self.int.recv() => { tracing::info!("SIGINT"); Signal::Stop }
            _ = self.hup.recv() => Signal::Reload,
        }
    }

    /// Waits for SIGTERM or SIGINT; a SIGHUP meanwhile has nothing to reload yet.
    async fn stop(&mut self) {
        while self.next().await != Signal::Stop {
            tracing::info!("SIGHUP before start-up completed: nothing to reload yet");
        }
    }
}

/// Why one attempt to reach the database failed.
#[derive(Debug, thiserror::Error)]
enum DbAttempt {
    /// The driver's own connection attempt (it names the cause, where the pool only says
    /// "pool timed out").
    #[error("{}", super::report(.0))]
    Connect(sqlx::Error),
    /// No answer within [`DB_CONNECT_TIMEOUT`].
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Opening the pool or migrating.
    #[error("{}", super::report(.0))]
    Store(store::StoreError),
}

impl DbAttempt {
    /// Worth another attempt: anything but a malformed URL and non-transient migration errors.
    fn is_retryable(&self) -> bool {
        use store::StoreError;
        match self {
            DbAttempt::Connect(e) => !matches!(e, sqlx::Error::Configuration(_)),
            DbAttempt::Timeout(_) => true,
            DbAttempt::Store(StoreError::Db(e)) => !matches!(e, sqlx::Error::Configuration(_)),
            DbAttempt::Store(e) => e.is_retryable(),
        }
    }

    /// A mistake in `[database] url` (exit 2) rather than a failure (exit 1).
    fn is_config(&self) -> bool {
        use store::StoreError;
        matches!(
            self,
            DbAttempt::Connect(sqlx::Error::Configuration(_))
                | DbAttempt::Store(StoreError::UnsupportedUrl(_) | StoreError::Db(sqlx::Error::Configuration(_)))
        )
    }
}

/// How often the memory the allocator holds free goes back to the system: a call costs
/// milliseconds, and a catch-up burst leaves hundreds of MB behind otherwise.
const TRIM_EVERY: Duration = Duration::from_secs(20);

/// One connection attempt's time limit (a host that drops packets would otherwise hang it).
const DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// First and longest wait between attempts to reach the database at start-up.
const DB_RETRY_INITIAL: Duration = Duration::from_secs(1);
const DB_RETRY_MAX: Duration = Duration::from_secs(30);

/// One attempt: a direct driver connection first (MySQL/MariaDB), then the store's pool and the
/// migrations.
async fn try_store(url: &str, max_connections: u32) -> Result<Arc<dyn store::Store>, DbAttempt> {
    let mysql = url.strip_prefix("mariadb://").map(|rest| format!("mysql://{rest}"));
    let mysql = mysql.as_deref().unwrap_or(url);
    if mysql.starts_with("mysql://") {
        use sqlx::{ConnectOptions as _, Connection as _};
        let opts: sqlx::mysql::MySqlConnectOptions = mysql.parse().map_err(DbAttempt::Connect)?;
        let conn = tokio::time::timeout(DB_CONNECT_TIMEOUT, opts.connect())
            .await
            .map_err(|_| DbAttempt::Timeout(DB_CONNECT_TIMEOUT))?
            .map_err(DbAttempt::Connect)?;
        let _ = conn.close().await;
    }
    let store = store::connect(url, max_connections).await.map_err(DbAttempt::Store)?;
    store.migrate().await.map_err(DbAttempt::Store)?;
    Ok(store)
}

/// Connects to and migrates the database, retrying with a doubling delay (1 s up to 30 s) while
/// it cannot be reached: every attempt is logged with the target (password redacted) and the
/// driver's error. `None`: SIGTERM/SIGINT came first. A malformed URL is a configuration error.
async fn connect_store(cfg: &Config, signals: &mut Signals) -> Result<Option<Arc<dyn store::Store>>, CliError> {
    let target = cfg.database.redacted_url();
    let mut delay = DB_RETRY_INITIAL;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = tokio::select! {
            r = try_store(cfg.database.url.expose(), cfg.database.pool_size()) => r,
            () = signals.stop() => return Ok(None),
        };
        let error = match result {
            Ok(store) => {
                if attempt > 1 {
                    tracing::info!(database = %target, attempt, "database reached");
                }
                return Ok(Some(store));
            }
            Err(e) if e.is_config() => return Err(CliError::config("database.url", e)),
            Err(e) if !e.is_retryable() => return Err(CliError::runtime(format!("database {target}"), e)),
            Err(e) => e,
        };
        tracing::warn!(database = %target, attempt, retry_in = ?delay, %error, "cannot reach the database; retrying");
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = signals.stop() => return Ok(None),
        }
        delay = (delay * 2).min(DB_RETRY_MAX);
    }
}

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() -> Result<(), CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| CliError::runtime("SIGTERM handler", e))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| CliError::runtime("SIGINT handler", e))?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_review_api_needs_search() {
        let mut cfg = Config::default();
        assert!(matches!(review_listen(&cfg), Ok(None)), "off by default");
        cfg.review.listen = "127.0.0.1:8080".into();
        match review_listen(&cfg) {
            Err(CliError::Config(m)) => assert!(m.contains("[search] enabled"), "{m}"),
            other => panic!("a configuration error, not {other:?}"),
        }
        cfg.search.enabled = true;
        assert_eq!(review_listen(&cfg).unwrap(), Some("127.0.0.1:8080".parse().unwrap()));
        cfg.review.listen = "nowhere".into();
        assert!(review_listen(&cfg).is_err());
    }
}
