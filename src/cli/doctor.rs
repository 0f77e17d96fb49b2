//! `doctor [--config FILE] [--online] [--fix]`: checks an installation, one line per check.
//!
//! Without `--fix` doctor changes nothing: it does not create the SQLite file or the media root,
//! runs no migration (on a Java database: no `ALTER TABLE corplist`) and writes no probe file;
//! it says what `run` (or `doctor --fix`) would do instead. `--fix` creates, migrates and probes.
//!
//! Each line starts with `ok`, `warn`, `FAIL` or `skip` (a check that cannot run because one it
//! depends on failed), then `subject: details`; a summary line ends the report. The checks, in
//! order, each independent of the others as far as possible:
//!
//! 1. **config**: [`Config::load`] of `--config` (or defaults) plus the environment overrides, as
//!    `run` loads it. When it fails, only the FFmpeg check can still run; the exit code is 2.
//! 2. **sdk**: `[sdk] library` is loaded and its 17 functions resolved ([`VendorSdk::load`], the
//!    code `run` uses); `emulator` is the in-process emulator ([`load_sdk`]). When the configured
//!    file does not exist, [`default_sdk_paths`] are tried and a loadable one is named (still a
//!    FAIL: `run` uses the configured path).
//! 3. **database**: without `--fix`, [`store::inspect`] (does the file exist, which migrations are
//!    pending) and a read-only connection; with `--fix`, [`store::connect`] + `migrate()`, showing the backend and the URL with its
//!    password redacted ([`crate::config::DatabaseConfig::redacted_url`]). For MySQL one direct
//!    connection comes first, so that a refused connection or a wrong password is named at once.
//! 4. **corps**: the sources `run` reads ([`sources_from_config`]: the `corplist` tables through the
//!    database of 3, the corps file), read one by one with [`corps::from_table`] /
//!    [`corps::from_file`] and merged by [`corps::merge`] as [`corps::load`] does, so that one
//!    unreadable source does not hide the other. One line per corp with the key versions that
//!    parsed; one FAIL per corp left out ([`corps::Desired::errors`]); no corp at all is a warning.
//! 5. **ffmpeg**: the linked libavcodec has the codecs [`transcode`] needs
//!    ([`transcode::missing_codecs`]); a FAIL only when transcoding is on.
//! 6. **media**: when `[media] enabled`, without `--fix` the root (or the directory it would be
//!    created in) must be a writable directory; with `--fix` the root is created if missing and a
//!    probe file is written, fsynced, read back and removed under `<root>/.tmp/`; the free space is shown
//!    ([`crate::sdk::os::free_space`]), a warning under 1 GiB.
//!    **permissions**: a line only when the SQLite file (or its -wal/-shm) or the media root is
//!    open to group/others (a warning; `--fix` sets 0600 / 0700).
//! 7. **online** (`--online` only): per corp, `NewSdk` + `Init` and one
//!    `GetChatData(seq 0, limit 100)` with the configured proxy and the corp's timeout, then every
//!    record fetched is decrypted with the corp's configured keys: one line per `publickey_ver`
//!    seen, `ok` when its key decrypts every record of that version, `FAIL` naming the version and
//!    how many of how many records its key (wrong or missing) cannot decrypt. A failed call names
//!    the return code or JSON `errcode` in words ([`explain`]). With the real SDK a failed token request shows only as
//!    rc 10001 plus a line the SDK prints on stdout (ARCHITECTURE.md decision 11), so fd 1 is captured
//!    around each call ([`crate::sdk::os::capture_stdout`]) and an `errcode` found there is named;
//!    the printed text itself is never shown. The calls run one after the other (fd 1 is
//!    process-wide), each bounded by the corp's SDK timeout.
//!
//! No secret is ever printed: every line goes through a scrubber that knows the database password,
//! the proxy password and every corp secret and key text it could find, and replaces them by `***`.
//! The exit status is 0 when no check failed, 1 when one did, 2 when the configuration itself
//! does not load.

use std::fmt::Display;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::run::{load_sdk, sources_from_config};
use super::{default_sdk_paths, CliError};
use crate::config::{Config, ENV_PREFIX};
use crate::corps::{self, CorpSpec, Defaults};
use crate::media::transcode;
use crate::sdk::dynlib::{VendorSdk, SYMBOLS};
use crate::sdk::{explain, FinanceSdk, NetOptions, SdkError, SdkTimeout, MAX_LIMIT};
use crate::secret::redact_url;
use crate::security::{self, AtRest};
use crate::store::{self, Store};

/// Longest wait for a database connection.
const DB_CONNECT_TIMEOUT: Duration = Duration::from_secs(40);
/// Longest wait for the migrations.
const DB_MIGRATE_TIMEOUT: Duration = Duration::from_secs(300);
/// Records fetched by the online check (and decrypted to check the keys).
const ONLINE_LIMIT: u32 = 100;
/// Less free space than this under the media root is a warning.
const LOW_SPACE: u64 = 1 << 30;
/// Secrets shorter than this are not scrubbed (they would mangle ordinary words).
const MIN_SCRUB_LEN: usize = 4;
/// Vendor SDK builds known by their sha256 (ARCHITECTURE.md decision 15).
const KNOWN_SDK_BUILDS: [(&str, &str); 1] =
    [("79ced4de6b18d5e96a21cd06f325794dc8957f8925120538d56d4ce827d3dfd0", "pyweworkfinance 1.1.0 x86-64 build")];

/// Arguments of `doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The configuration file (as for `run`); without it, defaults and environment.
    #[arg(long)]
    pub config: Option<PathBuf>,

    /// Also call GetChatData once per corp (seq 0, limit 100) and decrypt what it returns: proves
    /// the secret, the IP whitelist, the network path (proxy) and the key of every version seen.
    #[arg(long)]
    pub online: bool,

    /// Create what is missing (the SQLite file, the media root) and apply the migrations; without
    /// it doctor changes nothing and reports what would be needed.
    #[arg(long)]
    pub fix: bool,
}

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// Prints the lines, counts the verdicts and scrubs every known secret from the output.
#[derive(Default)]
pub(super) struct Report {
    counts: [usize; 4],
    secrets: Vec<String>,
}

impl Report {
    /// Remembers a value that must never be printed.
    pub(super) fn secret(&mut self, value: &str) {
        let value = value.trim();
        if value.chars().count() >= MIN_SCRUB_LEN && !self.secrets.iter().any(|s| s == value) {
            self.secrets.push(value.to_string());
            // Longest first, so that a secret containing another is replaced whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Remembers every line of a PEM (or other key text) that is long enough to be identifying.
    pub(super) fn key_text(&mut self, text: &str) {
        for line in text.lines().map(str::trim).filter(|l| l.len() >= 16 && !l.starts_with("-----")) {
            self.secret(line);
        }
    }

    fn scrub(&self, text: &str) -> String {
        let mut out: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    fn line(&mut self, status: Status, subject: &str, details: impl Display) {
        self.counts[status as usize] += 1;
        let line = self.scrub(&format!("{:<6}{subject}: {details}", status.label()));
        let mut out = std::io::stdout().lock();
        // A closed stdout (`doctor | head -1`) must not abort the remaining checks.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    pub(super) fn ok(&mut self, subject: &str, details: impl Display) {
        self.line(Status::Ok, subject, details);
    }

    pub(super) fn warn(&mut self, subject: &str, details: impl Display) {
        self.line(Status::Warn, subject, details);
    }

    pub(super) fn fail(&mut self, subject: &str, details: impl Display) {
        self.line(Status::Fail, subject, details);
    }

    pub(super) fn skip(&mut self, subject: &str, details: impl Display) {
        self.line(Status::Skip, subject, details);
    }

    pub(super) fn failed(&self) -> usize {
        self.counts[Status::Fail as usize]
    }

    pub(super) fn summary(&self) {
        let [ok, warn, fail, skip] = self.counts;
        let mut text = format!("summary: {ok} ok, {warn} warn, {fail} FAIL");
        if skip > 0 {
            text.push_str(&format!(", {skip} skipped"));
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// Runs every check; `Err` when one failed (exit 1) or the configuration does not load (exit 2).
pub fn run(args: &DoctorArgs) -> Result<(), CliError> {
    let mut r = Report::default();
    let cfg = match Config::load(args.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            r.fail("config", &e);
            check_ffmpeg(&mut r, None);
            r.summary();
            return Err(e.into());
        }
    };
    remember_config_secrets(&mut r, &cfg);
    r.ok("config", describe_config(args.config.as_deref()));

    let sdk = check_sdk(&mut r, &cfg);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::runtime("cannot start the async runtime", e))?;
    let store = rt.block_on(check_database(&mut r, &cfg, args.fix));
    let corps = rt.block_on(check_corps(&mut r, &cfg, store.as_ref()));
    check_ffmpeg(&mut r, Some(&cfg));
    check_media(&mut r, &cfg, args.fix);
    check_object_store(&mut r, &cfg);
    check_permissions(&mut r, &cfg, args.fix);
    if args.online {
        check_online(&mut r, &cfg, sdk.as_deref(), &corps);
    }
    r.summary();
    drop(store);
    drop(rt);
    match r.failed() {
        0 => Ok(()),
        1 => Err(CliError::Runtime("1 check failed".into())),
        n => Err(CliError::Runtime(format!("{n} checks failed"))),
    }
}

/// The passwords of the configuration, for the scrubber.
pub(super) fn remember_config_secrets(r: &mut Report, cfg: &Config) {
    for password in url_passwords(cfg.database.url.expose()) {
        r.secret(&percent_decode(&password));
        r.secret(&password);
    }
    r.secret(cfg.sdk.proxy_password.expose());
    r.secret(cfg.media.s3_secret_access_key.expose());
}

fn describe_config(path: Option<&Path>) -> String {
    let overrides = std::env::vars_os().filter(|(k, _)| k.to_string_lossy().starts_with(ENV_PREFIX)).count();
    let source = match path {
        Some(p) => p.display().to_string(),
        None => "no file (defaults)".into(),
    };
    match overrides {
        0 => source,
        n => format!("{source} + {n} {ENV_PREFIX}* environment override(s)"),
    }
}

/// The passwords inside a database URL (userinfo and `password=`/`pass=` parameters).
fn url_passwords(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(scheme_end) = url.find("://") {
        let auth_start = scheme_end + 3;
        let auth_end = url[auth_start..].find(['/', '?', '#']).map_or(url.len(), |i| auth_start + i);
        if let Some(at) = url[auth_start..auth_end].rfind('@') {
            if let Some((_, password)) = url[auth_start..auth_start + at].split_once(':') {
                out.push(password.to_string());
            }
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
            if k.to_ascii_lowercase().contains("pass") {
                out.push(v.to_string());
            }
        }
    }
    out
}

/// `%XX` sequences decoded (a URL password as the driver sees it); invalid ones are kept.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Check 2: the SDK loads and its symbols resolve.
fn check_sdk(r: &mut Report, cfg: &Config) -> Option<Arc<dyn FinanceSdk>> {
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
fn fingerprint(path: &Path) -> String {
    let Ok(bytes) = std::fs::read(path) else { return "unreadable".into() };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    match KNOWN_SDK_BUILDS.iter().find(|(h, _)| *h == hex) {
        Some((_, name)) => format!("sha256 {}…, the {name}", &hex[..12]),
        None => format!("sha256 {}…", &hex[..12]),
    }
}

/// Check 3: connect and migrate (`fix`), or look without changing anything.
pub(super) async fn check_database(r: &mut Report, cfg: &Config, fix: bool) -> Option<Arc<dyn Store>> {
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
    let store = connect(r, &shown, store::connect(url, cfg.database.max_connections)).await?;
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
async fn probe_mysql(url: &str) -> Result<(), String> {
    use sqlx::Connection as _;
    let url = url.strip_prefix("mariadb://").map_or_else(|| url.to_string(), |rest| format!("mysql://{rest}"));
    let conn = sqlx::MySqlConnection::connect(&url).await.map_err(|e| e.to_string())?;
    let _ = conn.close().await;
    Ok(())
}

/// Check 4: every corp of every configured source, with its keys.
pub(super) async fn check_corps(r: &mut Report, cfg: &Config, store: Option<&Arc<dyn Store>>) -> Vec<CorpSpec> {
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

/// Secrets and keys of every `corplist`/`corp_keys` row, also of corps that will be left out.
async fn remember_table_secrets(r: &mut Report, store: &dyn Store, at_rest: &AtRest) {
    if let Ok(rows) = store.list_corps().await {
        for row in rows {
            r.secret(row.secret.expose());
            r.key_text(row.prikey.expose());
            if let Ok(plain) = at_rest.reveal(&security::secret_place(&row.corpid), &row.secret) {
                r.secret(plain.expose());
            }
            if let Ok(plain) = at_rest.reveal(&security::prikey_place(&row.corpid), &row.prikey) {
                r.key_text(plain.expose());
            }
        }
    }
    if let Ok(keys) = store.list_corp_keys().await {
        for (corpid, ver, pem) in keys {
            r.key_text(pem.expose());
            if let Ok(plain) = at_rest.reveal(&security::key_place(&corpid, ver), &pem) {
                r.key_text(plain.expose());
            }
        }
    }
}

/// Secrets and inline keys of every `[[corp]]` of a corps file, also of corps that will be left
/// out (their error messages could quote a value).
fn remember_file_secrets(r: &mut Report, path: &Path) {
    let Some(table) = std::fs::read_to_string(path).ok().and_then(|t| t.parse::<toml::Table>().ok()) else { return };
    let Some(corps) = table.get("corp").and_then(toml::Value::as_array) else { return };
    for corp in corps {
        if let Some(secret) = corp.get("secret").and_then(toml::Value::as_str) {
            r.secret(secret);
        }
        for key in corp.get("key").and_then(toml::Value::as_array).into_iter().flatten() {
            if let Some(pem) = key.get("pem").and_then(toml::Value::as_str) {
                r.key_text(pem);
            }
        }
    }
}

fn corp_subject(spec: &CorpSpec) -> String {
    if spec.name.is_empty() {
        format!("corp {}", spec.corpid)
    } else {
        format!("corp {} ({})", spec.corpid, spec.name)
    }
}

fn describe_keys(spec: &CorpSpec) -> String {
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
fn check_ffmpeg(r: &mut Report, cfg: Option<&Config>) {
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
fn check_permissions(r: &mut Report, cfg: &Config, fix: bool) {
    use std::os::unix::fs::PermissionsExt as _;
    const SUBJECT: &str = "permissions";
    let mut wide: Vec<(PathBuf, u32, u32)> = Vec::new();
    let url = cfg.database.url.expose();
    if let Some(db) = sqlite_file(url) {
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

/// The file of a `sqlite://` URL (not `:memory:`).
fn sqlite_file(url: &str) -> Option<PathBuf> {
    use std::str::FromStr as _;
    if !url.starts_with("sqlite:") || url.contains(":memory:") {
        return None;
    }
    sqlx::sqlite::SqliteConnectOptions::from_str(url).ok().map(|o| o.get_filename().to_path_buf())
}

/// `[media] backend = "s3"`: put, get and delete a probe object.
fn check_object_store(r: &mut Report, cfg: &Config) {
    const SUBJECT: &str = "object store";
    if !cfg.media.enabled || cfg.media.backend != crate::config::MediaBackend::S3 {
        return;
    }
    let Some(settings) = super::run::media_settings(cfg).object_store else { return };
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
fn look_at_media_root(root: &Path) -> Result<Option<PathBuf>, String> {
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
fn probe_media_root(root: &Path) -> Result<(), String> {
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

fn human(bytes: u64) -> String {
    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}

/// Check 7: one GetChatData per corp.
fn check_online(r: &mut Report, cfg: &Config, sdk: Option<&dyn FinanceSdk>, corps: &[CorpSpec]) {
    const SUBJECT: &str = "online";
    let Some(sdk) = sdk else {
        r.skip(SUBJECT, "no GetChatData call: the SDK did not load");
        return;
    };
    if corps.is_empty() {
        r.skip(SUBJECT, "no GetChatData call: no corp");
        return;
    }
    let proxy = (!cfg.sdk.proxy.is_empty()).then(|| cfg.sdk.proxy.clone());
    let via = proxy.as_deref().map(|p| format!(" via proxy {}", redact_url(p))).unwrap_or_default();
    for spec in corps {
        let net = NetOptions {
            proxy: proxy.clone(),
            proxy_password: (!cfg.sdk.proxy_password.is_empty()).then(|| cfg.sdk.proxy_password.clone()),
            timeout: spec.timeout,
        };
        let call = || -> Result<Vec<crate::sdk::EncryptedRecord>, SdkError> {
            let mut session = sdk.open(spec.corpid.as_str(), &spec.secret)?;
            Ok(session.get_chat_data(0, ONLINE_LIMIT, &net)?.records)
        };
        let (result, printed) = crate::sdk::os::capture_stdout(call);
        let subject = corp_subject(spec);
        match result {
            Ok(records) => {
                r.ok(
                    &subject,
                    format!(
                        "online{via}, {} record(s) returned by GetChatData(seq 0, limit {ONLINE_LIMIT})",
                        records.len()
                    ),
                );
                check_keys(r, &subject, spec, &records);
            }
            Err(e) => {
                let mut text = format!("online check{via} failed: {}", describe_sdk_error(&e));
                match &printed {
                    Ok(bytes) => text.push_str(&describe_printed(bytes)),
                    Err(err) => text.push_str(&format!(" (the SDK's stdout could not be captured: {err})")),
                }
                r.fail(&subject, text);
            }
        }
    }
}

/// Per `publickey_ver` of `records`: does the corp's configured key decrypt them?
fn check_keys(r: &mut Report, subject: &str, spec: &CorpSpec, records: &[crate::sdk::EncryptedRecord]) {
    use crate::decode::KeyOutcome;
    #[derive(Default)]
    struct Tally {
        decrypted: usize,
        failed: usize,
        corrupt: usize,
        error: Option<String>,
    }
    if records.is_empty() {
        r.warn(subject, "no record on the server yet: the keys could not be checked");
        return;
    }
    let mut by_ver: std::collections::BTreeMap<u32, Tally> = std::collections::BTreeMap::new();
    for rec in records {
        let t = by_ver.entry(rec.publickey_ver).or_default();
        match crate::crypto::decrypt_record(
            &spec.keyring,
            rec.publickey_ver,
            &rec.encrypt_random_key,
            &rec.encrypt_chat_msg,
        ) {
            Ok(_) => t.decrypted += 1,
            Err(e) => match crate::decode::key_outcome(&e) {
                KeyOutcome::Decrypted => t.decrypted += 1,
                KeyOutcome::KeyFailed(why) => {
                    t.failed += 1;
                    t.error = Some(why);
                }
                KeyOutcome::Unknown => t.corrupt += 1,
            },
        }
    }
    for (ver, t) in by_ver {
        let checked = t.decrypted + t.failed;
        let corrupt = match t.corrupt {
            0 => String::new(),
            n => format!(" ({n} corrupt record(s) not counted)"),
        };
        if t.failed == 0 {
            r.ok(
                subject,
                format!("publickey_ver {ver}: the configured key decrypts {checked} of {checked} record(s){corrupt}"),
            );
        } else {
            r.fail(
                subject,
                format!(
                    "publickey_ver {ver}: the configured key fails for {} of {checked} record(s){corrupt}: {}; set the \
                     right private key for this version (corps file or `corp set-key`), then `redecrypt`",
                    t.failed,
                    t.error.as_deref().unwrap_or("wrong key")
                ),
            );
        }
    }
}

/// An SDK failure with its code in words.
fn describe_sdk_error(e: &SdkError) -> String {
    match e {
        SdkError::Code { call, code } => {
            format!("{call} returned {}: {}", code.raw(), explain(i64::from(code.raw())))
        }
        SdkError::Api { call, errcode, errmsg } => {
            format!("{call}: the server answered errcode {errcode}: {} (errmsg: {errmsg})", explain(*errcode))
        }
        other => other.to_string(),
    }
}

/// What the SDK printed on stdout during a failed call, as far as it helps: the `errcode` of
/// the token request (never the text itself).
fn describe_printed(printed: &[u8]) -> String {
    if printed.is_empty() {
        return String::new();
    }
    match printed_errcode(printed) {
        Some((code, errmsg)) => {
            let msg = errmsg.map(|m| format!(" (errmsg: {m})")).unwrap_or_default();
            format!("; the SDK printed a token response with errcode {code}: {}{msg}", explain(code))
        }
        None => format!("; the SDK printed {} byte(s) on stdout, without an errcode", printed.len()),
    }
}

/// The first non-zero `"errcode": N` in `printed`, with the `"errmsg"` after it (printable ASCII,
/// at most 160 characters).
fn printed_errcode(printed: &[u8]) -> Option<(i64, Option<String>)> {
    let text = String::from_utf8_lossy(printed);
    let mut rest = text.as_ref();
    while let Some(at) = rest.find("\"errcode\"") {
        rest = &rest[at + "\"errcode\"".len()..];
        let Some(value) = rest.trim_start().strip_prefix(':').map(str::trim_start) else { continue };
        let end = value
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
            .map_or(value.len(), |(i, _)| i);
        let Ok(code) = value[..end].parse::<i64>() else { continue };
        if code == 0 {
            continue;
        }
        let errmsg = value.find("\"errmsg\"").and_then(|at| {
            let v = value[at + "\"errmsg\"".len()..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
            let msg: String =
                v[..v.find('"')?].chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).take(160).collect();
            Some(msg)
        });
        return Some((code, errmsg));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gettoken_line_names_its_errcode() {
        let printed = b"get token error: {\"errcode\":40001,\"errmsg\":\"invalid secret, hint: [x]\"}\n";
        assert_eq!(printed_errcode(printed), Some((40001, Some("invalid secret, hint: [x]".into()))));
        assert_eq!(printed_errcode(b"{\"errcode\": -1}"), Some((-1, None)));
        assert_eq!(printed_errcode(b"{\"errcode\":0,\"errmsg\":\"ok\"}"), None);
        assert_eq!(printed_errcode(b"\xb4\xed\xce\xf3 curl: timeout"), None);
        let said = describe_printed(printed);
        assert!(said.contains("40001") && said.contains("secret"), "{said}");
        assert_eq!(describe_printed(b""), "");
    }

    #[test]
    fn the_scrubber_hides_secrets_and_key_lines() {
        let mut r = Report::default();
        r.secret("pw-12345");
        r.secret("x");
        r.key_text("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n");
        assert_eq!(r.scrub("a pw-12345 b\nx"), "a *** b x");
        assert_eq!(r.scrub("key MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"), "key ***");
    }

    #[test]
    fn url_passwords_finds_every_form() {
        assert_eq!(url_passwords("mysql://u:p%40ss@h:3306/db?password=two&x=1"), ["p%40ss", "two"]);
        assert!(url_passwords("sqlite:///var/lib/x.db").is_empty());
        assert_eq!(percent_decode("p%40ss%zz%4"), "p@ss%zz%4");
    }
}
