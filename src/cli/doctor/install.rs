//! The checks of the installation itself (1–6 of the module docs): the SDK library, the
//! database, the corp sources, FFmpeg, the media root and the object store, file permissions.

use std::fmt::Display;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::report::{remember_file_secrets, remember_table_secrets, Report};
use crate::cli::default_sdk_paths;
use crate::cli::run::{load_sdk, sources_from_config};
use crate::config::Config;
use crate::corps::{self, CorpSpec, Defaults};
use crate::media::transcode;
use crate::sdk::dynlib::{VendorSdk, SYMBOLS};
use crate::sdk::{FinanceSdk, SdkTimeout, MAX_LIMIT};
use crate::store::{self, Store};

/// Vendor SDK builds known by their sha256 (ARCHITECTURE.md decision 15).
pub(super) const KNOWN_SDK_BUILDS: [(&str, &str); 1] =
    [("79ced4de6b18d5e96a21cd06f325794dc8957f8925120538d56d4ce827d3dfd0", "pyweworkfinance 1.1.0 x86-64 build")];

/// Longest wait for a database connection.
pub(super) const DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(40);

/// Longest wait for the migrations.
pub(super) const DB_MIGRATE_TIMEOUT: Duration = Duration::from_secs(300);

/// Less free space than this under the media root is a warning.
pub(super) const LOW_SPACE: u64 = 1 << 30;

/// Check 2: the SDK loads and its symbols resolve.
pub(super) fn check_sdk(r: &mut Report, cfg: &Config) -> Option<Arc<dyn FinanceSdk>> {
    const SUBJECT: &str = "sdk";
    let lib = &cfg.sdk.library;
    if lib.as_os_str() == "emulator" {
        let scenario = std::env::var_os("WWF_EMULATOR_SCENARIO")
            .filter(|s| !s.is_empty())
            .map_or_else(|| "the built-in demo scenario".to_string(), |s| format!("scenario {}", s.to_string_lossy()));
        return match load_sdk(lib) {
            Ok(sdk) => {
                r.ok(SUBJECT, format!("{} with {scenario} (not the vendor SDK: for tests and demos)", sdk.describe()));
                Some(sdk)
            }
            Err(e) => {
                r.fail(SUBJECT, e);
                None
            }
        };
    }
    if !lib.exists() {
        let tried: Vec<PathBuf> = default_sdk_paths().into_iter().filter(|p| p != lib).collect();
        for alt in &tried {
            if let Ok(sdk) = VendorSdk::load(alt) {
                r.fail(
                    SUBJECT,
                    format!(
                        "[sdk] library {} does not exist, so `run` would not start; {} loads ({}): set [sdk] \
                         library to it",
                        lib.display(),
                        alt.display(),
                        fingerprint(alt)
                    ),
                );
                return Some(Arc::new(sdk));
            }
        }
        let also: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
        r.fail(
            SUBJECT,
            format!(
                "cannot load {}: no such file (not in {} either); put libWeWorkFinanceSdk_C.so there or set [sdk] library",
                lib.display(),
                also.join(", ")
            ),
        );
        return None;
    }
    match VendorSdk::load(lib) {
        Ok(sdk) => {
            r.ok(
                SUBJECT,
                format!("{} loaded, all {} functions resolved ({})", lib.display(), SYMBOLS.len(), fingerprint(lib)),
            );
            Some(Arc::new(sdk))
        }
        Err(e) => {
            r.fail(SUBJECT, e);
            None
        }
    }
}

/// `sha256 1234abcd5678…`, naming the build when it is a known vendor one.
pub(super) fn fingerprint(path: &Path) -> String {
    let Ok(bytes) = std::fs::read(path) else { return "unreadable".into() };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    match KNOWN_SDK_BUILDS.iter().find(|(h, _)| *h == hex) {
        Some((_, name)) => format!("sha256 {}…, the {name}", &hex[..12]),
        None => format!("sha256 {}…", &hex[..12]),
    }
}

/// Check 3: connect and migrate (`fix`), or look without changing anything.
pub(in crate::cli) async fn check_database(r: &mut Report, cfg: &Config, fix: bool) -> Option<Arc<dyn Store>> {
    const SUBJECT: &str = "database";
    let url = cfg.database.url.expose();
    let backend = if url.starts_with("sqlite:") {
        "sqlite"
    } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
        "mysql"
    } else {
        "unknown backend"
    };
    let shown = format!("{backend} {}", cfg.database.redacted_url());
    // A bounded connection step: `None` after its FAIL line.
    async fn connect<T, E: Display>(
        r: &mut Report,
        shown: &str,
        step: impl std::future::Future<Output = Result<T, E>>,
    ) -> Option<T> {
        match tokio::time::timeout(DB_CONNECT_TIMEOUT, step).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                r.fail(SUBJECT, format!("{shown}: cannot connect: {e}"));
                None
            }
            Err(_) => {
                r.fail(SUBJECT, format!("{shown}: no connection within {} s", DB_CONNECT_TIMEOUT.as_secs()));
                None
            }
        }
    }
    if backend == "mysql" {
        connect(r, &shown, probe_mysql(url)).await?;
    }
    if !fix {
        let seen = connect(r, &shown, store::inspect(url)).await?;
        if !seen.exists {
            r.warn(
                SUBJECT,
                format!("{shown}: the database file does not exist yet; `run` or `doctor --fix` creates it"),
            );
            return None;
        }
        if !seen.pending.is_empty() {
            r.warn(
                SUBJECT,
                format!(
                    "{shown}: the schema needs migration ({}); `run` or `doctor --fix` applies it (back up a Java database first)",
                    seen.pending.join("; ")
                ),
            );
            return None;
        }
        let store = connect(r, &shown, store::connect_read_only(url)).await?;
        r.ok(SUBJECT, format!("{shown}: connected, schema up to date"));
        return Some(store);
    }
    let store = connect(r, &shown, store::connect(url, cfg.database.pool_size())).await?;
    match tokio::time::timeout(DB_MIGRATE_TIMEOUT, store.migrate()).await {
        Ok(Ok(())) => {
            r.ok(SUBJECT, format!("{shown}: connected, migrations applied"));
            Some(store)
        }
        Ok(Err(e)) => {
            r.fail(SUBJECT, format!("{shown}: connected, but the migrations failed: {e}"));
            None
        }
        Err(_) => {
            r.fail(
                SUBJECT,
                format!("{shown}: the migrations did not finish within {} s", DB_MIGRATE_TIMEOUT.as_secs()),
            );
            None
        }
    }
}

/// One direct connection: the pool of [`store::connect`] retries a refused connection until its
/// acquire timeout and then says only "pool timed out", hiding the cause.
pub(super) async fn probe_mysql(url: &str) -> Result<(), String> {
    use sqlx::Connection as _;
    let url = url.strip_prefix("mariadb://").map_or_else(|| url.to_string(), |rest| format!("mysql://{rest}"));
    let conn = sqlx::MySqlConnection::connect(&url).await.map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(())
}

/// Check 4: every corp of every configured source, with its keys.
pub(in crate::cli) async fn check_corps(r: &mut Report, cfg: &Config, store: Option<&Arc<dyn Store>>) -> Vec<CorpSpec> {
    const SUBJECT: &str = "corps";
    let sources = sources_from_config(cfg, store.cloned());
    let defaults = sources.defaults.unwrap_or(Defaults { limit: MAX_LIMIT, timeout: SdkTimeout::default() });
    let mut parts = Vec::new();
    let mut names = Vec::new();
    if cfg.corps.table {
        match store {
            None => r.skip(SUBJECT, "the corplist table is not read: the database is not ready (see above)"),
            Some(store) => {
                remember_table_secrets(r, store.as_ref(), &sources.at_rest).await;
                match corps::from_table(store.as_ref(), defaults, &sources.at_rest).await {
                    Ok(candidates) => {
                        names.push("the corplist table".to_string());
                        parts.push(candidates);
                    }
                    Err(e) => r.fail(SUBJECT, e),
                }
            }
        }
    }
    if let Some(path) = &sources.file {
        remember_file_secrets(r, path);
        match corps::from_file(path, defaults) {
            Ok(candidates) => {
                names.push(path.display().to_string());
                parts.push(candidates);
            }
            Err(e) => r.fail(SUBJECT, e),
        }
    }
    let desired = corps::merge(parts);
    for spec in desired.corps.values() {
        r.secret(spec.secret.expose());
    }
    for spec in desired.corps.values() {
        r.ok(&corp_subject(spec), describe_keys(spec));
    }
    for (corpid, why) in &desired.errors {
        r.fail(&format!("corp {corpid}"), format!("left out: {why}"));
    }
    if desired.corps.is_empty() && desired.errors.is_empty() {
        let from = if names.is_empty() { "no readable source".to_string() } else { names.join(" and ") };
        r.warn(SUBJECT, format!("no enabled corp ({from}); add one with `corp add` or [corps] file"));
    }
    desired.corps.into_values().collect()
}

pub(super) fn corp_subject(spec: &CorpSpec) -> String {
    if spec.name.is_empty() {
        format!("corp {}", spec.corpid)
    } else {
        format!("corp {} ({})", spec.corpid, spec.name)
    }
}

pub(super) fn describe_keys(spec: &CorpSpec) -> String {
    let versions: Vec<String> = spec.keyring.versions().iter().map(u32::to_string).collect();
    let mut keys = match versions.len() {
        0 => String::new(),
        1 => format!("key for version {}", versions[0]),
        _ => format!("keys for versions {}", versions.join(", ")),
    };
    if spec.keyring.has_fallback() {
        keys = if keys.is_empty() {
            "only the fallback key (corplist.prikey), used for every version".into()
        } else {
            format!("{keys}, and the fallback key (corplist.prikey)")
        };
    }
    format!("{keys}; limit {}, timeout {} s", spec.limit, spec.timeout.secs())
}

/// Check 5: the codecs of the transcoder.
pub(super) fn check_ffmpeg(r: &mut Report, cfg: Option<&Config>) {
    const SUBJECT: &str = "ffmpeg";
    let version = transcode::libavcodec_version();
    let missing = transcode::missing_codecs();
    let needed = cfg.is_none_or(|c| c.media.enabled && c.media.transcode);
    if missing.is_empty() {
        r.ok(
            SUBJECT,
            format!(
                "libavcodec {version} has the MP3 encoder (libmp3lame) and the AMR-NB decoder; SILK via silk-codec"
            ),
        );
    } else if needed {
        r.fail(
            SUBJECT,
            format!("libavcodec {version} lacks {}: voice cannot be transcoded to MP3", missing.join(" and ")),
        );
    } else {
        r.warn(SUBJECT, format!("libavcodec {version} lacks {} (transcoding is off)", missing.join(" and ")));
    }
}

/// Check 6: the media root is writable (created and probed with `fix`).
pub(super) fn check_media(r: &mut Report, cfg: &Config, fix: bool) {
    const SUBJECT: &str = "media";
    if !cfg.media.enabled {
        r.ok(SUBJECT, "downloads are off ([media] enabled = false)");
        return;
    }
    let root = &cfg.media.root;
    if !fix {
        match look_at_media_root(root) {
            Err(e) => r.fail(SUBJECT, format!("{}: {e}", root.display())),
            Ok(None) => r.ok(SUBJECT, format!("{}: writable", root.display())),
            Ok(Some(parent)) => r.warn(
                SUBJECT,
                format!(
                    "{}: does not exist yet; `run` or `doctor --fix` creates it (in {}, writable)",
                    root.display(),
                    parent.display()
                ),
            ),
        }
        return;
    }
    if let Err(e) = probe_media_root(root) {
        r.fail(SUBJECT, format!("{}: {e}", root.display()));
        return;
    }
    match crate::sdk::os::free_space(root) {
        Ok(free) if free < LOW_SPACE => {
            r.warn(SUBJECT, format!("{}: writable, but only {} free", root.display(), human(free)))
        }
        Ok(free) => r.ok(SUBJECT, format!("{}: writable, {} free", root.display(), human(free))),
        Err(e) => r.ok(SUBJECT, format!("{}: writable (free space unknown: {e})", root.display())),
    }
}

/// Check 6b: the SQLite file (and its -wal/-shm) and the media root allow nothing to group and
/// others (files created by an older version, or by hand, may). A line only when one does;
/// `fix` sets 0600 / 0700 (the root's mode alone closes everything below it).
pub(super) fn check_permissions(r: &mut Report, cfg: &Config, fix: bool) {
    use std::os::unix::fs::PermissionsExt as _;
    const SUBJECT: &str = "permissions";
    let mut wide: Vec<(PathBuf, u32, u32)> = Vec::new();
    let url = cfg.database.url.expose();
    if let Some(db) = store::sqlite_file(url) {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = db.clone().into_os_string();
            name.push(suffix);
            wide.push((PathBuf::from(name), 0o600, 0));
        }
    }
    if cfg.media.enabled {
        wide.push((cfg.media.root.clone(), 0o700, 0));
    }
    wide.retain_mut(|(path, _, mode)| match std::fs::metadata(&*path) {
        Ok(m) => {
            *mode = m.permissions().mode() & 0o7777;
            *mode & 0o077 != 0
        }
        Err(_) => false,
    });
    if wide.is_empty() {
        return;
    }
    let shown: Vec<String> = wide.iter().map(|(p, _, mode)| format!("{} ({mode:04o})", p.display())).collect();
    if !fix {
        r.warn(
            SUBJECT,
            format!("{} open to group/others (chat content, secrets): `doctor --fix` sets 0600/0700", shown.join(", ")),
        );
        return;
    }
    let mut failed = Vec::new();
    for (path, want, _) in &wide {
        if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(*want)) {
            failed.push(format!("{}: {e}", path.display()));
        }
    }
    if failed.is_empty() {
        r.ok(SUBJECT, format!("{}: set owner-only (0600 files, 0700 media root)", shown.join(", ")));
    } else {
        r.fail(SUBJECT, format!("cannot tighten {}", failed.join("; ")));
    }
}

/// `[media] backend = "s3"`: put, get and delete a probe object.
pub(super) fn check_object_store(r: &mut Report, cfg: &Config) {
    const SUBJECT: &str = "object store";
    if !cfg.media.enabled || cfg.media.backend != crate::config::MediaBackend::S3 {
        return;
    }
    let Some(settings) = crate::cli::run::media_settings(cfg).object_store else { return };
    let place = format!("bucket {} at {}", settings.bucket, crate::secret::redact_url(&settings.endpoint));
    let probed = crate::media::object_store::ObjectStore::new(&settings)
        .and_then(|store| store.probe(&format!("doctor-{}", std::process::id())));
    match probed {
        Ok(()) => r.ok(SUBJECT, format!("{place}: put, get and delete of a probe object work")),
        Err(e) => r.fail(SUBJECT, format!("{place}: {e}")),
    }
}

/// Without changing anything: `Ok(None)` when the root is a writable directory, `Ok(Some(dir))`
/// when it does not exist and its nearest existing ancestor `dir` is a writable directory.
pub(super) fn look_at_media_root(root: &Path) -> Result<Option<PathBuf>, String> {
    let absolute = std::path::absolute(root).map_err(|e| e.to_string())?;
    let mut at = absolute.as_path();
    loop {
        match std::fs::metadata(at) {
            Ok(m) if m.is_dir() => {
                if !crate::sdk::os::writable(at) {
                    return Err(format!("cannot create or write under {}: not writable", at.display()));
                }
                return Ok((at != absolute.as_path()).then(|| at.to_path_buf()));
            }
            Ok(_) => return Err(format!("cannot create {}: {} is not a directory", root.display(), at.display())),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                at = at.parent().ok_or_else(|| format!("cannot create {}: no existing parent", root.display()))?;
            }
            Err(e) => return Err(format!("cannot look at {}: {e}", at.display())),
        }
    }
}

/// Creates the root if missing, then writes, fsyncs, reads back and removes a probe file under
/// `<root>/.tmp/` (where downloads write their temp files).
pub(super) fn probe_media_root(root: &Path) -> Result<(), String> {
    let tmp = root.join(".tmp");
    std::fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let probe = tmp.join(format!("doctor-{}.probe", std::process::id()));
    let content = format!("wework-msgaudit doctor probe {}\n", std::process::id());
    let written = (|| {
        let mut file = std::fs::File::create(&probe)?;
        file.write_all(content.as_bytes())?;
        file.sync_all()?;
        std::fs::read(&probe)
    })();
    let cleanup = std::fs::remove_file(&probe);
    match written {
        Err(e) => Err(format!("cannot write {}: {e}", probe.display())),
        Ok(back) if back != content.as_bytes() => Err(format!("{} reads back different bytes", probe.display())),
        Ok(_) => cleanup.map_err(|e| format!("cannot remove {}: {e}", probe.display())),
    }
}

pub(super) fn human(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}
