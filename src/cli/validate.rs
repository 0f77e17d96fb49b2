//! `validate [--config FILE]`: checks the configuration, the master key, the corps and their keys
//! without creating or writing anything, e.g. before a deployment or a reload.
//!
//! The lines are `doctor`'s (`ok`/`warn`/`FAIL`/`skip`, every known secret scrubbed). Checks:
//! the configuration as `run` loads it; the master key (`[security]`); the database, looked at
//! only ([`crate::store::inspect`]: a SQLite file that does not exist is not created, no
//! migration runs) and, when its schema is current, its `corplist`/`corp_keys` read through a
//! read-only connection; the corps file; every corp's keys; the rules file; whether the media
//! root exists.
//! Unlike `doctor` it loads no SDK, calls nothing online and writes no probe file.
//!
//! Exit status: 0 when nothing failed (warnings allowed), 2 when the configuration, the master
//! key, the corps file, a corp's entry or the rules file is invalid, 1 when only the database
//! could not be read.

use std::path::PathBuf;

use clap::Args;

use super::doctor::{self, Report};
use super::CliError;
use crate::config::Config;
use crate::security::AtRest;

/// Arguments of `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The configuration file (as for `run`); without it, defaults and environment.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs the checks; see the module documentation for the exit status.
pub fn run(args: &ValidateArgs) -> Result<(), CliError> {
    let mut r = Report::default();
    let cfg = match Config::load(args.config.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => {
            r.fail("config", &e);
            r.summary();
            return Err(e.into());
        }
    };
    doctor::remember_config_secrets(&mut r, &cfg);
    r.ok(
        "config",
        args.config.as_deref().map_or_else(|| "no file (defaults)".to_string(), |p| p.display().to_string()),
    );
    let mut invalid = 0;
    match AtRest::load(&cfg.security.master_key_file) {
        Ok(at_rest) => match at_rest.key_id() {
            Some(id) => r.ok("security", format!("master key {id}: stored secrets and keys are sealed")),
            None => r.ok("security", "no master key: stored secrets and keys are plaintext"),
        },
        Err(e) => {
            r.fail("security", e);
            invalid += 1;
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::runtime("cannot start the async runtime", e))?;
    let store = if cfg.corps.table { rt.block_on(doctor::check_database(&mut r, &cfg, false)) } else { None };
    let database_failed = r.failed() - invalid;
    rt.block_on(doctor::check_corps(&mut r, &cfg, store.as_ref()));
    invalid = r.failed() - database_failed;
    if !check_rules_file(&mut r, &cfg, args.config.as_deref()) {
        invalid += 1;
    }
    check_media_root(&mut r, &cfg);
    r.summary();
    drop(store);
    drop(rt);
    match (invalid, r.failed()) {
        (0, 0) => Ok(()),
        (0, n) => Err(CliError::Runtime(format!("{n} check(s) failed"))),
        (n, _) => Err(CliError::Config(format!("{n} invalid setting(s) or corp(s)"))),
    }
}

/// Checks the rules file (`[rules] file`, else rules.toml beside the configuration): it parses
/// and its rules compile. False when it is invalid.
fn check_rules_file(r: &mut Report, cfg: &Config, config_file: Option<&std::path::Path>) -> bool {
    let Some(path) = crate::rules::file_of(&cfg.rules, config_file).filter(|p| p.exists()) else {
        r.ok("rules", "no rules file");
        return true;
    };
    let limit = if cfg.rules.regex_size_limit == 0 {
        crate::rules::DEFAULT_REGEX_SIZE_LIMIT
    } else {
        cfg.rules.regex_size_limit
    };
    let compiled = crate::rules::read_file(&path).and_then(|f| crate::rules::RuleSet::compile(&f.rules, limit));
    match compiled {
        Ok(set) => {
            r.ok("rules", format!("{}: {} rules", path.display(), set.len()));
            true
        }
        Err(e) => {
            r.fail("rules", e);
            false
        }
    }
}

/// Says whether the media root exists (never creates it).
fn check_media_root(r: &mut Report, cfg: &Config) {
    if !cfg.media.enabled {
        r.ok("media", "downloads are off ([media] enabled = false)");
    } else if cfg.media.root.is_dir() {
        r.ok("media", format!("{} exists", cfg.media.root.display()));
    } else {
        r.warn("media", format!("{} does not exist yet; `run` creates it", cfg.media.root.display()));
    }
}
