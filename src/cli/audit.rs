//! `audit verify | export`: the review API's access log.
//!
//! - `verify` checks the whole hash chain and the head (`review::recorder::verify_stored`):
//!   exit 0 and the number of entries checked and the head hash when intact (keep that hash
//!   elsewhere: a later verify that starts from the same entries must reach it), exit 1 naming
//!   the FIRST broken entry and why (edited, deleted, cut short at the end, head changed).
//!   Verifying appends nothing.
//! - `export` writes every entry, every field (hashes included), as JSON Lines to `--out` (created
//!   with the process's 0600 umask) or standard output; the export itself is appended to the log
//!   first (`export_access_log`, by `cli:<os user>`).

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{with_store_of, CliError};
use crate::config::Config;
use crate::review::accounts::Actor;
use crate::review::recorder::{self, VerifyError};
use crate::review::AccessEvent;
use crate::store::StoreError;

/// Arguments of `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The configuration file (the database URL comes from it; environment overrides apply).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,

    /// The audit subcommand.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// The `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the access log's hash chain: exit 0 intact, 1 naming the first broken entry.
    Verify,
    /// Write every access-log entry as JSON Lines.
    Export {
        /// The file to write (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs an `audit` subcommand.
pub fn run(args: &AuditArgs) -> Result<(), CliError> {
    let cfg = Config::load(args.config.as_deref())?;
    match &args.command {
        AuditCommand::Verify => with_store_of(&cfg, |store| async move {
            match recorder::verify_stored(store.as_ref()).await {
                Ok(ok) => {
                    println!("access log intact: {} entries checked, head {}", ok.checked, ok.head_hash);
                    Ok(())
                }
                Err(VerifyError::Broken(b)) => {
                    Err(CliError::Runtime(format!("access log broken at entry {}: {b}", b.id())))
                }
                Err(e @ VerifyError::Store(_)) => Err(CliError::runtime("verifying the access log", e)),
            }
        }),
        AuditCommand::Export { out } => with_store_of(&cfg, |store| async move {
            let actor = Actor::cli();
            let target = out.as_ref().map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
            let event = AccessEvent {
                action: "export_access_log".into(),
                corpid: None,
                target,
                detail: json!({ "format": "jsonl" }),
            };
            recorder::append(store.as_ref(), &actor.username, &actor.role, event)
                .await
                .map_err(CliError::store("appending the export to the access log"))?;
            let mut sink: Box<dyn std::io::Write> = match out {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .map_err(|e| CliError::config(format!("cannot create {}", p.display()), e))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let n = recorder::export(store.as_ref(), |e| {
                serde_json::to_writer(&mut sink, e)
                    .map_err(std::io::Error::from)
                    .and_then(|()| sink.write_all(b"\n"))
                    .map_err(ExportError::Write)
            })
            .await
            .map_err(|e| CliError::runtime("exporting the access log", e))?;
            sink.flush().map_err(|e| CliError::runtime("writing the export", e))?;
            if out.is_some() {
                eprintln!("{n} entries exported");
            }
            Ok(())
        }),
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    /// Reading the log.
    #[error("reading the access log")]
    Store(#[from] StoreError),
    /// Writing the output.
    #[error("writing the export")]
    Write(#[source] std::io::Error),
}
