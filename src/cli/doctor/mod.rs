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
//! 2. **sdk**: `[sdk] library` is loaded and its 17 functions resolved ([`VendorSdk::load`](crate::sdk::dynlib::VendorSdk::load), the
//!    code `run` uses); `emulator` is the in-process emulator ([`load_sdk`](crate::cli::run::load_sdk)). When the configured
//!    file does not exist, [`default_sdk_paths`](crate::cli::default_sdk_paths) are tried and a loadable one is named (still a
//!    FAIL: `run` uses the configured path).
//! 3. **database**: without `--fix`, [`store::inspect`](crate::store::inspect) (does the file exist, which migrations are
//!    pending) and a read-only connection; with `--fix`, [`store::connect`](crate::store::connect) + `migrate()`, showing the backend and the URL with its
//!    password redacted ([`crate::config::DatabaseConfig::redacted_url`]). For MySQL one direct
//!    connection comes first, so that a refused connection or a wrong password is named at once.
//! 4. **corps**: the sources `run` reads ([`sources_from_config`](crate::cli::run::sources_from_config): the `corplist` tables through the
//!    database of 3, the corps file), read one by one with [`corps::from_table`](crate::corps::from_table) /
//!    [`corps::from_file`](crate::corps::from_file) and merged by [`corps::merge`](crate::corps::merge) as [`corps::load`](crate::corps::load) does, so that one
//!    unreadable source does not hide the other. One line per corp with the key versions that
//!    parsed; one FAIL per corp left out ([`corps::Desired::errors`](crate::corps::Desired::errors)); no corp at all is a warning.
//! 5. **ffmpeg**: the linked libavcodec has the codecs [`transcode`](crate::media::transcode) needs
//!    ([`transcode::missing_codecs`](crate::media::transcode::missing_codecs)); a FAIL only when transcoding is on.
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
//!    the return code or JSON `errcode` in words ([`explain`](crate::sdk::explain)). With the real SDK a failed token request shows only as
//!    rc 10001 plus a line the SDK prints on stdout (ARCHITECTURE.md decision 11), so fd 1 is captured
//!    around each call ([`crate::sdk::os::capture_stdout`]) and an `errcode` found there is named;
//!    the printed text itself is never shown. The calls run one after the other (fd 1 is
//!    process-wide), each bounded by the corp's SDK timeout.
//!
//! No secret is ever printed: every line goes through a scrubber that knows the database password,
//! the proxy password and every corp secret and key text it could find, and replaces them by `***`.
//! The exit status is 0 when no check failed, 1 when one did, 2 when the configuration itself
//! does not load.

use std::path::{Path, PathBuf};

use clap::Args;

use super::CliError;
use crate::config::{Config, ENV_PREFIX};

mod install;
mod online;
mod report;

pub(super) use install::{check_corps, check_database};
use install::{check_ffmpeg, check_media, check_object_store, check_permissions, check_sdk};
use online::check_online;
pub(super) use report::{remember_config_secrets, Report};

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
