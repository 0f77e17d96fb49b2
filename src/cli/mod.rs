//! The command line: `clap` definitions and one module per subcommand.
//!
//! `main.rs` parses [`Cli`], sets up logging and calls [`run`]; each subcommand lives in its own
//! module and returns a [`CliError`] whose [`CliError::exit_code`] tells configuration mistakes
//! (exit 2) from runtime failures (exit 1). A `CliError` keeps the error that caused it as its
//! `source`; `main.rs` prints the whole chain ([`report`]).

pub mod alerts;
pub mod audit;
pub mod completeness;
pub mod corp;
pub mod demo;
pub mod doctor;
pub mod media;
pub mod redecrypt;
pub mod reply_time;
pub mod rule;
pub mod run;
pub mod sdk_worker;
pub mod search;
pub mod status;
pub mod user;
pub mod validate;
pub mod wecom;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Archives WeCom 会话内容存档 chat records for many corps.
#[derive(Debug, Parser)]
#[command(name = "wework-msgaudit", version, about)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info` or `wework_msgaudit=debug`; overrides
    /// `[log] level` of the configuration. Default: the configuration's, else `info`.
    #[arg(long, global = true, env = "WEWORK_MSGAUDIT_LOG")]
    pub log: Option<String>,

    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: pull every enabled corp into the database until SIGINT/SIGTERM.
    Run(run::RunArgs),
    /// The built-in demo corp of the emulator through the full pipeline into a SQLite file.
    Demo(demo::DemoArgs),
    /// Manage the corps of the `corplist` / `corp_keys` tables (add, list, enable, disable, set-key).
    Corp(corp::CorpArgs),
    /// Retry a corp's undecryptable rows with its current keys (e.g. after `corp set-key`).
    Redecrypt(redecrypt::RedecryptArgs),
    /// Media items: re-queue failed ones, counts by status.
    Media(media::MediaArgs),
    /// Check an installation, one line per check: configuration, SDK, database, corps and their
    /// keys, FFmpeg codecs, media root; `--online` also calls GetChatData once per corp. Changes
    /// nothing unless `--fix` (then creates the database and media root, applies migrations).
    Doctor(doctor::DoctorArgs),
    /// Check the configuration, master key, corps and keys without creating or writing anything;
    /// exit 0 valid, 2 invalid, 1 the database could not be read.
    Validate(validate::ValidateArgs),
    /// The per-corp picture (state, last seq, lag, failures, media) from the running daemon's
    /// `/status`, or from the database when the daemon does not answer; exit 0 healthy, 1
    /// unhealthy, 2 configuration error, 3 no daemon running.
    Status(status::StatusArgs),
    /// What is missing from the archive, per corp: seq gaps never served, archived members never
    /// seen, people not archived, external conversations without consent, media failed for good,
    /// undecryptable records by key version, lag; exit 0 nothing needs attention, 4 something
    /// does, 2 configuration error, 1 the database could not be read.
    Completeness(completeness::CompletenessArgs),
    /// Full-text search over the stored messages: `reindex` rebuilds the index, `query` searches.
    Search(search::SearchArgs),
    /// The alert outbox: `status`, `test-channel NAME` (send a test message), `retry`.
    Alerts(alerts::AlertsArgs),
    /// The review API's users: add, passwd, disable, enable, grant, revoke, list.
    User(user::UserArgs),
    /// Reply-time checks (质检): `run` evaluates the `[[reply_time]]` rules over a corp's stored
    /// messages (`--since` backfills), `stats` prints the daily statistics per employee.
    ReplyTime(reply_time::ReplyTimeArgs),
    /// The review API's access log: verify its hash chain, export it.
    Audit(audit::AuditArgs),
    /// Content rules: add, list, remove the rules of the `rule_def` table; test a rule over the
    /// stored records (count, samples, `--write` the hits).
    Rule(rule::RuleArgs),
    /// WeCom's archive APIs (group names, archived members, consent): `refresh` runs one pass now.
    Wecom(wecom::WecomArgs),
    /// One child process of the daemon that runs the vendor SDK (started by `run`, not by hand).
    #[command(hide = true)]
    SdkWorker(sdk_worker::SdkWorkerArgs),
}

/// The cause kept under a [`CliError`], whole, so that [`report`] can print its chain.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a subcommand failed. A variant with a `source` says what was being done; the cause and
/// its own sources follow in [`report`] (never a secret: configuration errors name keys, not
/// values, and database URLs are redacted).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The user asked for something impossible (bad flag value, missing file, bad key).
    #[error("configuration error: {0}")]
    Config(String),
    /// The same, caused by `source`.
    #[error("configuration error: {what}")]
    ConfigCaused {
        /// What was wrong or being done.
        what: String,
        /// Why.
        #[source]
        source: Cause,
    },
    /// The configuration does not load (file, TOML, a key's value, the environment).
    #[error("configuration error")]
    LoadConfig(#[from] crate::config::ConfigError),
    /// The database failed while `doing`; a bad URL or corpid is a configuration error.
    #[error("{}{doing}", if store_is_config(.source) { "configuration error: " } else { "" })]
    Store {
        /// What was being done, e.g. `reading corplist`.
        doing: String,
        /// The storage error.
        #[source]
        source: crate::store::StoreError,
    },
    /// Something failed while running.
    #[error("{0}")]
    Runtime(String),
    /// The same, caused by `source`.
    #[error("{what}")]
    RuntimeCaused {
        /// What failed.
        what: String,
        /// Why.
        #[source]
        source: Cause,
    },
    /// `status`: no daemon answered (exit 3).
    #[error("{0}")]
    NotRunning(String),
    /// `completeness`: something needs attention (exit 4).
    #[error("{0}")]
    Attention(String),
}

impl CliError {
    /// The process exit code: 2 for configuration errors, 1 for runtime failures, 3 when
    /// `status` finds no daemon running, 4 when `completeness` finds something that needs
    /// attention.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config(_) | Self::ConfigCaused { .. } | Self::LoadConfig(_) => 2,
            Self::Store { source, .. } if store_is_config(source) => 2,
            Self::Store { .. } | Self::Runtime(_) | Self::RuntimeCaused { .. } => 1,
            Self::NotRunning(_) => 3,
            Self::Attention(_) => 4,
        }
    }

    /// A configuration error: `what`, caused by `source`.
    pub fn config(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        Self::ConfigCaused { what: what.into(), source: source.into() }
    }

    /// A runtime failure: `what`, caused by `source`.
    pub fn runtime(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        Self::RuntimeCaused { what: what.into(), source: source.into() }
    }

    /// `map_err(CliError::store("reading corplist"))`: a storage error with what was being done.
    pub fn store(doing: impl Into<String>) -> impl FnOnce(crate::store::StoreError) -> Self {
        let doing = doing.into();
        move |source| Self::Store { doing, source }
    }
}

/// A bad URL or corpid: the user's mistake, not the database's.
fn store_is_config(e: &crate::store::StoreError) -> bool {
    use crate::store::StoreError;
    matches!(e, StoreError::UnsupportedUrl(_) | StoreError::InvalidCorpId(_))
}

/// `e` and its sources, `: `-separated: what `main` prints. A source whose text its error
/// already shows (`#[error("database error: {0}")]`) is not repeated.
pub fn report(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The log filter and format to start with: `--log` if given, else the configuration's `[log]`
/// section for `run` (a configuration that does not load is reported by `run` itself; logging then
/// starts with the defaults), else `info` in human format.
pub fn log_settings(cli: &Cli) -> (String, crate::config::LogFormat) {
    let log = match &cli.command {
        Command::Run(args) => crate::config::Config::load(args.config.as_deref()).map(|c| c.log).unwrap_or_default(),
        _ => crate::config::LogConfig::default(),
    };
    (cli.log.clone().unwrap_or(log.level), log.format)
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let log_overridden = cli.log.is_some();
    match cli.command {
        Command::Run(args) => run::run(&args, log_overridden),
        Command::Demo(args) => demo::run(&args),
        Command::Corp(args) => corp::run(&args),
        Command::Redecrypt(args) => redecrypt::run(&args),
        Command::Media(args) => media::run(&args),
        Command::Doctor(args) => doctor::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Completeness(args) => completeness::run(&args),
        Command::Search(args) => search::run(&args),
        Command::Alerts(args) => alerts::run(&args),
        Command::User(args) => user::run(&args),
        Command::ReplyTime(args) => reply_time::run(&args),
        Command::Audit(args) => audit::run(&args),
        Command::Rule(args) => rule::run(&args),
        Command::Wecom(args) => wecom::run(&args),
        Command::SdkWorker(args) => sdk_worker::run(&args),
    }
}

/// Loads the configuration (`config`, defaults, environment overrides, as `run` does), connects
/// to and migrates its database, and runs `f` on it in a single-threaded runtime.
pub fn with_store<F, Fut>(config: Option<&std::path::Path>, f: F) -> Result<(), CliError>
where
    F: FnOnce(std::sync::Arc<dyn crate::store::Store>) -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    let cfg = crate::config::Config::load(config)?;
    with_store_of(&cfg, f)
}

/// Connects to and migrates the database of `cfg`, and runs `f` on it in a single-threaded
/// runtime.
pub fn with_store_of<T, F, Fut>(cfg: &crate::config::Config, f: F) -> Result<T, CliError>
where
    F: FnOnce(std::sync::Arc<dyn crate::store::Store>) -> Fut,
    Fut: std::future::Future<Output = Result<T, CliError>>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::runtime("cannot start the async runtime", e))?;
    rt.block_on(async move {
        let store = crate::store::connect(cfg.database.url.expose(), cfg.database.pool_size())
            .await
            .map_err(CliError::store(format!("opening the database {}", cfg.database.redacted_url())))?;
        store.migrate().await.map_err(CliError::store("migrating the database"))?;
        // `redecrypt` inserts media rows too: held, like the daemon's, when media is off.
        store.hold_new_media(!cfg.media.enabled);
        f(store).await
    })
}

/// Where the vendor library is looked for when no path is configured: `lib/` beside the working
/// directory, then `lib/` beside the executable.
pub fn default_sdk_paths() -> Vec<PathBuf> {
    const NAME: &str = "libWeWorkFinanceSdk_C.so";
    let mut paths = vec![PathBuf::from("lib").join(NAME)];
    if let Some(dir) = std::env::current_exe().ok().and_then(|p| p.parent().map(PathBuf::from)) {
        paths.push(dir.join("lib").join(NAME));
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    /// An error whose text does not show its source (as sqlx's and many others' do not).
    #[derive(Debug, thiserror::Error)]
    #[error("the corps file is unusable")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_report_shows_every_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = CliError::runtime("reading the corp sources", Outer(io));
        assert_eq!(report(&e), "reading the corp sources: the corps file is unusable: no such file");
        assert_eq!(e.exit_code(), 1);
        // A cause whose text its error already shows is not repeated.
        let db = StoreError::Db(sqlx::Error::Io(std::io::Error::other("connection reset")));
        let e = CliError::store("reading corplist")(db);
        assert_eq!(report(&e), "reading corplist: database error: error communicating with database: connection reset");
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn exit_codes_follow_the_kind_of_cause() {
        let e = CliError::store("opening the database")(StoreError::UnsupportedUrl("postgres://x".into()));
        assert_eq!(e.exit_code(), 2);
        assert!(report(&e).starts_with("configuration error: opening the database: unsupported database URL"));
        let e = CliError::from(crate::config::Config::from_parts("[pull]\nlimt = 1\n", None, []).unwrap_err());
        assert_eq!(e.exit_code(), 2);
        assert!(report(&e).starts_with("configuration error: invalid configuration: "), "{}", report(&e));
        assert_eq!(CliError::config("--corp", std::io::Error::other("x")).exit_code(), 2);
        assert_eq!(CliError::NotRunning("no daemon".into()).exit_code(), 3);
    }
}
