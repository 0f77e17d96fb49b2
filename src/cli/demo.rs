//! `demo`: the emulator's demo corp through the full pipeline into a SQLite file, no setup.
//!
//! It (re)creates the SQLite database given by `--db`, starts the same pipeline as `run`
//! (supervisor, corp actor, SDK pool, decrypt pool, DB writer) over the built-in demo corp of the
//! in-process emulator (DEMO-ONLY keys, made-up records, 2 new records per second) — or any
//! drop-in `libWeWorkFinanceSdk_C.so` given with `--sdk` — prints a live summary line every
//! second, and stops after `--duration` or Ctrl-C. At the end it waits briefly until the
//! database holds everything the emulator had by then, and says where the data went.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use super::CliError;
use crate::actors::media::MediaSettings;
use crate::actors::{Pipeline, PipelineConfig, PullSettings, Stats};
use crate::corps::{CorpSpec, Sources};
use crate::crypto::{self, keyring::Keyring};
use crate::sdk::{dynlib::VendorSdk, emulated::EmulatedSdk, FinanceSdk, SdkTimeout};
use crate::secret::Secret;
use crate::store::{self, CorpId};

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Stop after this long (e.g. `10s`, `2m`); Ctrl-C stops earlier.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The SQLite database file. It belongs to the demo: it is deleted and recreated on each run.
    #[arg(long, default_value = "demo-data/demo.db")]
    pub db: PathBuf,
    /// Load this drop-in SDK library (e.g. the emulator's `.so`) instead of the in-process emulator.
    #[arg(long)]
    pub sdk: Option<PathBuf>,
    /// Records per GetChatData call (1..=1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// Serve the review console (and API) here while the demo runs, with a demo reviewer whose
    /// password is printed; port 0 = a free port; `off` = no console.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub console: String,
}

/// Runs `demo`.
pub fn run(args: &DemoArgs) -> Result<(), CliError> {
    let (sdk, emu): (Arc<dyn FinanceSdk>, Option<Arc<emulator::Emulator>>) = match &args.sdk {
        Some(path) => (Arc::new(VendorSdk::load(path).map_err(|e| CliError::config("--sdk", e))?), None),
        None => {
            let emu = Arc::new(emulator::Emulator::demo());
            (Arc::new(EmulatedSdk::new(Arc::clone(&emu))), Some(emu))
        }
    };
    let corpid = CorpId::new(emulator::DEMO_CORPID).map_err(|e| CliError::runtime("the demo corpid", e))?;
    let spec = CorpSpec::new(
        corpid.clone(),
        "demo corp",
        Secret::new(emulator::DEMO_SECRET),
        args.limit,
        SdkTimeout::from_secs(5),
        demo_keyring()?,
    );
    fresh_database(&args.db)?;
    let media_root = args.db.parent().unwrap_or(Path::new(".")).join("msgfile");
    fresh_media_root(&media_root)?;
    let console_addr = match args.console.as_str() {
        "off" | "" => None,
        a => Some(a.parse::<std::net::SocketAddr>().map_err(|e| CliError::config("--console", e))?),
    };
    let search_dir = {
        let mut name = args.db.as_os_str().to_owned();
        name.push(".search");
        PathBuf::from(name)
    };
    fresh_media_root(&search_dir)?;
    let url = format!("sqlite://{}", args.db.display());
    println!("demo corp {} through {} into {}", corpid, sdk.describe(), args.db.display());
    println!("keyring: publickey_ver {:?} (DEMO-ONLY keys, see lib/emulator/keys/README.md)", spec.keyring.versions());
    let config = PipelineConfig {
        sdk_threads: 2,
        decrypt_threads: 0,
        pull: PullSettings {
            poll_interval: Duration::from_millis(500),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            ..PullSettings::default()
        },
        reload_interval: Duration::from_secs(3600),
        media: Some(MediaSettings {
            root: media_root.clone(),
            owner: "demo".into(),
            workers: 2,
            per_corp: 2,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(5),
            sweep_interval: Duration::from_secs(1),
            ..MediaSettings::default()
        }),
        ..PipelineConfig::default()
    };
    let duration = args.duration;
    let table = corpid.message_table();
    let media_table = corpid.media_table();
    let media_dir = media_root.join(corpid.as_str());
    let system = actix_rt::System::new();
    let available = system.block_on(async move {
        let store = store::connect(&url, crate::config::DatabaseConfig::default().pool_size())
            .await
            .map_err(CliError::store(format!("opening the demo database {url}")))?;
        store.migrate().await.map_err(CliError::store("migrating the demo database"))?;
        let sources = Sources { fixed: vec![spec], ..Sources::default() };
        let console = match console_addr {
            Some(addr) => Some(start_console(addr, &store, &sources, &corpid, &media_root, &search_dir).await?),
            None => None,
        };
        let pipeline =
            Pipeline::start(store, sdk, sources, &config).map_err(|e| CliError::runtime("starting the pipeline", e))?;
        let started = Instant::now();
        let until = started + duration;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        let interrupted = loop {
            tokio::select! {
                _ = tick.tick() => print_line(&pipeline, &corpid, started),
                _ = &mut ctrl_c => break true,
            }
            if Instant::now() >= until {
                break false;
            }
        };
        // Catch up with what the emulator has now, so that the database is complete.
        let available = emu.as_ref().map(|e| e.truth(emulator::DEMO_CORPID).len() as u64);
        if let (Some(available), false) = (available, interrupted) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while cursor(&pipeline.stats, &corpid) < available && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        print_line(&pipeline, &corpid, started);
        pipeline.shutdown().await;
        if let Some((server, search)) = console {
            server.stop(true).await;
            if let Some(search) = search {
                search.stop().await;
            }
        }
        Ok::<_, CliError>(available.filter(|_| !interrupted))
    });
    // As in `run`: what is still pending is dropped inside the runtime.
    crate::actors::shutdown::close_system(system);
    let available = available?;
    println!("-- where the data went --");
    if let Some(n) = available {
        println!("the emulator had {n} records of {} at the end", emulator::DEMO_CORPID);
    }
    println!("sqlite3 {} 'select msgtype, count(*) from {table} group by 1'", args.db.display());
    println!("sqlite3 {} 'select seq, updated from corp_cursor'", args.db.display());
    println!("sqlite3 {} 'select kind, status, count(*) from {} group by 1, 2'", args.db.display(), media_table);
    println!("media files (originals and MP3s of voice): {}/<yyyy>/<mm>/<dd>/", media_dir.display());
    Ok(())
}

/// The review console over the demo database while the demo runs: the search index kept in
/// `search_dir`, a reviewer `demo` of the demo corp with a fresh random password, the review
/// server on `addr`; prints the URL and the login. Returns the server (to stop) and the indexer.
async fn start_console(
    addr: std::net::SocketAddr,
    store: &Arc<dyn store::Store>,
    sources: &Sources,
    corpid: &CorpId,
    media_root: &Path,
    search_dir: &Path,
) -> Result<(actix_web::dev::ServerHandle, Option<crate::search::indexer::Task>), CliError> {
    use crate::review::{accounts, api::ReviewState, media::MediaSource, Role};
    use crate::store::ReviewGrant;
    let mut cfg = crate::config::Config::default();
    cfg.search.enabled = true;
    cfg.search.dir = search_dir.to_path_buf();
    cfg.search.poll_interval = Duration::from_millis(500);
    let search = crate::search::indexer::start(&cfg, Arc::clone(store), sources.clone());
    // A password of 22 random characters (the demo's database is thrown away with it).
    let password: String = crate::review::session::new_token().expose().chars().take(22).collect();
    let grant = ReviewGrant { corpid: corpid.as_str().to_string(), userids: None };
    accounts::add(
        store.as_ref(),
        &accounts::Actor::cli(),
        "demo",
        Role::Reviewer,
        &Secret::new(password.clone()),
        vec![grant],
    )
    .await
    .map_err(|e| CliError::runtime("adding the demo reviewer", e))?;
    let auth =
        crate::review::auth::auth_state(Arc::clone(store), &cfg.review).map_err(|e| CliError::config("[review]", e))?;
    let state = ReviewState {
        store: Arc::clone(store),
        search: search.as_ref().map(crate::search::indexer::Task::index),
        media: MediaSource { root: media_root.to_path_buf(), object_store: None },
        export_max_rows: cfg.review.export_max_rows,
        recorder: auth.recorder(),
    };
    let listener = std::net::TcpListener::bind(addr).map_err(|e| CliError::config("--console: cannot listen", e))?;
    let bound = listener.local_addr().map_err(|e| CliError::config("--console", e))?;
    let server = crate::review::server::serve_on(listener, state, auth)
        .map_err(|e| CliError::config("--console: cannot serve", e))?;
    let handle = server.handle();
    actix_rt::spawn(server);
    println!("review console: http://{bound}/  (user demo, password {password}; until the demo stops)");
    Ok((handle, search))
}

fn cursor(stats: &Stats, corpid: &CorpId) -> u64 {
    stats.snapshot().get(corpid).map_or(0, |s| s.cursor)
}

fn print_line(pipeline: &Pipeline, corpid: &CorpId, started: Instant) {
    let snapshot = pipeline.stats.snapshot();
    let Some(s) = snapshot.get(corpid) else {
        println!("[{:>4.0?}] {corpid}: starting", started.elapsed());
        return;
    };
    let media = pipeline.media_counters.as_ref().map_or_else(String::new, |m| {
        format!(
            "  media {:>4} (mp3 {:>3}, retried {:>3}, failed {:>3})",
            m.done.load(Ordering::Relaxed),
            m.transcoded.load(Ordering::Relaxed),
            m.retried.load(Ordering::Relaxed),
            m.failed.load(Ordering::Relaxed)
        )
    });
    println!(
        "[{:>5.1}s] {corpid}  stored {:>5}  cursor {:>5}  undecryptable {:>3}  msgtypes {:>2}{media}  {}{}",
        started.elapsed().as_secs_f64(),
        s.stored,
        s.cursor,
        s.undecryptable,
        s.msgtypes.len(),
        s.state,
        s.last_error.as_deref().map(|e| format!(" (last error: {e})")).unwrap_or_default()
    );
}

/// Deletes the demo's media directory (it belongs to the demo).
fn fresh_media_root(root: &Path) -> Result<(), CliError> {
    match std::fs::remove_dir_all(root) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CliError::config(format!("cannot clear {}", root.display()), e)),
    }
}

/// Deletes the demo database (and its WAL files) and makes sure its directory exists.
fn fresh_database(db: &Path) -> Result<(), CliError> {
    if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| CliError::config(format!("cannot create {}", dir.display()), e))?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut p = db.as_os_str().to_owned();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CliError::config(format!("cannot remove {}", Path::new(&p).display()), e)),
        }
    }
    Ok(())
}

fn demo_keyring() -> Result<Keyring, CliError> {
    let mut keyring = Keyring::default();
    for ver in 1..=3 {
        let pem = emulator::demo_private_key_pem(ver)
            .ok_or_else(|| CliError::Runtime(format!("the emulator has no demo key {ver}")))?;
        let key = crypto::keys::parse_private_key(pem.as_bytes())
            .map_err(|e| CliError::runtime(format!("demo key {ver}"), e))?;
        keyring.insert(ver, key);
    }
    Ok(keyring)
}
