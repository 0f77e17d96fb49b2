//! `user add | passwd | disable | enable | grant | revoke | list`: the review API's users, through
//! `review::accounts` (the same checks and access-log entries as the admin API; the actor is
//! `cli:<os user>(uid N)`).
//!
//! A password never comes from the command line (it would show in `ps`): `--password-file`,
//! typed twice without echo when standard input is a terminal, or one line of a pipe. Everything
//! that can be checked without the database (name, role, grants, the password's rules) is checked
//! before it is opened. `user list` never shows a hash.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::{with_store_of, CliError};
use crate::config::Config;
use crate::review::accounts::{self, AccountError, Actor, Change, UserView};
use crate::review::{password, Role};
use crate::secret::Secret;
use crate::store::{ReviewGrant, Store};

/// Arguments of `user`.
#[derive(Debug, Args)]
pub struct UserArgs {
    /// The configuration file (the database URL comes from it; environment overrides apply).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,

    /// The user subcommand.
    #[command(subcommand)]
    pub command: UserCommand,
}

/// The `user` subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (enabled).
    Add {
        /// The login name (a-z 0-9 . _ @ -; stored lowercased).
        name: String,
        /// admin (manages users), reviewer (reads the corps granted) or auditor (reads the
        /// access log).
        #[arg(long)]
        role: Role,
        /// A corp the user may read whole (`wwX`), or only the conversations of some userids
        /// (`wwX:userid1,userid2`). Repeatable.
        #[arg(long = "corp")]
        corps: Vec<String>,
        /// A file holding the password (else typed twice without echo on a terminal, or one line
        /// read from a piped standard input).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Set a user's password (ends its sessions).
    Passwd {
        /// The login name.
        name: String,
        /// A file holding the password (else typed twice without echo on a terminal, or one line
        /// read from a piped standard input).
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
    /// Disable a user: it cannot sign in, and its sessions end.
    Disable {
        /// The login name.
        name: String,
    },
    /// Enable a user again.
    Enable {
        /// The login name.
        name: String,
    },
    /// Grant corps (`wwX`) or some userids' conversations (`wwX:u1,u2`); replaces the grant of
    /// each corp named.
    Grant {
        /// The login name.
        name: String,
        /// The grant. Repeatable.
        #[arg(long = "corp", required = true)]
        corps: Vec<String>,
    },
    /// Remove the grants of corps.
    Revoke {
        /// The login name.
        name: String,
        /// The corpid. Repeatable.
        #[arg(long = "corp", required = true)]
        corps: Vec<String>,
    },
    /// List the users: name, role, disabled, grants, last sign-in (never a hash).
    List,
}

/// Runs a `user` subcommand.
pub fn run(args: &UserArgs) -> Result<(), CliError> {
    let cfg = Config::load(args.config.as_deref())?;
    let name = |n: &str| accounts::username(n).map_err(|e| CliError::config("the user name", e));
    let grants = |gs: &[String]| {
        gs.iter()
            .map(|g| accounts::parse_grant(g))
            .collect::<Result<Vec<ReviewGrant>, _>>()
            .map_err(|e| CliError::config("--corp", e))
    };
    match &args.command {
        UserCommand::Add { name: n, role, corps, password_file } => {
            let (n, grants) = (name(n)?, grants(corps)?);
            let pw = read_password(password_file.as_deref())?;
            with_store_of(&cfg, |store| async move {
                let view = accounts::add(store.as_ref(), &Actor::cli(), &n, *role, &pw, grants).await.map_err(fail)?;
                println!("added {} ({})", view.username, view.role);
                Ok(())
            })
        }
        UserCommand::Passwd { name: n, password_file } => {
            let n = name(n)?;
            let pw = read_password(password_file.as_deref())?;
            change(&cfg, n, Change { password: Some(pw), ..Change::default() }, "password set; its sessions ended")
        }
        UserCommand::Disable { name: n } => {
            change(&cfg, name(n)?, Change { disabled: Some(true), ..Change::default() }, "disabled")
        }
        UserCommand::Enable { name: n } => {
            change(&cfg, name(n)?, Change { disabled: Some(false), ..Change::default() }, "enabled")
        }
        UserCommand::Grant { name: n, corps } => {
            change(&cfg, name(n)?, Change { grant: grants(corps)?, ..Change::default() }, "granted")
        }
        UserCommand::Revoke { name: n, corps } => {
            for c in corps {
                crate::store::CorpId::new(c).map_err(|e| CliError::config("--corp", e))?;
            }
            change(&cfg, name(n)?, Change { revoke: corps.clone(), ..Change::default() }, "revoked")
        }
        UserCommand::List => with_store_of(&cfg, list),
    }
}

/// A failed account operation: the user's mistake (exit 2) or a runtime failure (exit 1).
fn fail(e: AccountError) -> CliError {
    if e.is_client_error() {
        CliError::Config(e.to_string())
    } else {
        CliError::runtime("changing the user failed", e)
    }
}

fn change(cfg: &Config, name: String, c: Change, done: &'static str) -> Result<(), CliError> {
    with_store_of(cfg, |store| async move {
        let view = accounts::change(store.as_ref(), &Actor::cli(), &name, c).await.map_err(fail)?;
        println!("{}: {done}", view.username);
        Ok(())
    })
}

async fn list(store: Arc<dyn Store>) -> Result<(), CliError> {
    let users = accounts::list(store.as_ref()).await.map_err(fail)?;
    println!("{:<24} {:<9} {:<9} {:<20} GRANTS", "NAME", "ROLE", "DISABLED", "LAST SIGN-IN");
    for u in &users {
        println!(
            "{:<24} {:<9} {:<9} {:<20} {}",
            u.username,
            u.role,
            if u.disabled { "yes" } else { "no" },
            u.last_login_ms.map_or_else(|| "never".to_string(), when),
            grants_text(u)
        );
    }
    Ok(())
}

/// `wwA, wwB:u1,u2`, or `-`.
fn grants_text(u: &UserView) -> String {
    if u.grants.is_empty() {
        return "-".into();
    }
    let one = |g: &ReviewGrant| match &g.userids {
        None => g.corpid.clone(),
        Some(ids) => format!("{}:{}", g.corpid, ids.join(",")),
    };
    u.grants.iter().map(one).collect::<Vec<_>>().join(" ")
}

/// Ms since the epoch as UTC to the second.
fn when(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The password from `file`; else, from a terminal, typed twice without echo; else one line of
/// standard input (a pipe). Without its line end, checked against the rules.
fn read_password(file: Option<&Path>) -> Result<Secret, CliError> {
    let mut raw = match file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| CliError::config(format!("cannot read the password file {}", f.display()), e))?,
        None if std::io::stdin().is_terminal() => typed_twice()?,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(|e| CliError::config("cannot read the password", e))?;
            line
        }
    };
    let end = raw.trim_end_matches(['\n', '\r']).len();
    raw.truncate(end);
    let pw = Secret::new(std::mem::take(&mut raw));
    password::check_rules(&pw).map_err(|e| CliError::config("the password", e))?;
    Ok(pw)
}

/// The password typed on the terminal without echo (`rpassword`: prompts on and reads from
/// `/dev/tty`), then again to confirm; the two must match.
fn typed_twice() -> Result<String, CliError> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt).map(Secret::new).map_err(|e| CliError::config("cannot read the password", e))
    };
    let first = ask("password: ")?;
    password::check_rules(&first).map_err(|e| CliError::config("the password", e))?;
    let again = ask("password again: ")?;
    if first.expose() != again.expose() {
        return Err(CliError::Config("the two passwords typed differ: nothing was changed".into()));
    }
    Ok(first.expose().to_string())
}
