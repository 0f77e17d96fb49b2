//! `audit verify | export`: the review API's access log.
//!
//! - `verify` checks the whole hash chain and the head (`review::recorder::verify_stored`):
//!   exit 0 and the number of entries checked, then `head: <id>:<hash>` when intact, exit 1
//!   naming the FIRST broken entry and why (edited, deleted, cut short at the end, head changed).
//!   Verifying appends nothing. Whoever can write the database can rewrite and rehash the whole
//!   log, so keep that head line elsewhere (a ticket, a WORM store) and give it back later as
//!   `--expect-head <id>:<hash>` (repeatable): that entry must still have that hash
//!   (`review::access_log::Anchor`). `--file <export.jsonl>` verifies an export instead, offline
//!   (no configuration, no database: `review::access_log_file`), naming the broken line.
//! - `export` writes every entry, every field (hashes included), as JSON Lines to `--out` (created
//!   with the process's 0600 umask) or standard output; the export itself is appended to the log
//!   first (`export_access_log`, by `cli:<os user>`).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;

use super::{with_store_of, CliError};
use crate::config::Config;
use crate::review::access_log::{Anchor, Intact};
use crate::review::access_log_file::{self, FileError};
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
    /// Check the access log's hash chain: exit 0 intact (last line `head: <id>:<hash>`, to keep
    /// elsewhere), 1 naming the first broken entry.
    Verify {
        /// A head printed by an earlier verify (`<id>:<hash>`): entry <id> must still have that
        /// hash, else the log was rewritten. Repeatable.
        #[arg(long = "expect-head", value_name = "ID:HASH")]
        expect_head: Vec<Anchor>,
        /// Verify this `audit export` file instead of the database (offline).
        #[arg(long, value_name = "EXPORT.JSONL")]
        file: Option<PathBuf>,
    },
    /// Write every access-log entry as JSON Lines.
    Export {
        /// The file to write (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs an `audit` subcommand.
pub fn run(args: &AuditArgs) -> Result<(), CliError> {
    if let AuditCommand::Verify { file: Some(file), expect_head } = &args.command {
        return verify_file(file, expect_head);
    }
    let cfg = Config::load(args.config.as_deref())?;
    match &args.command {
        AuditCommand::Verify { expect_head, .. } => with_store_of(&cfg, |store| async move {
            match recorder::verify_stored_anchored(store.as_ref(), expect_head).await {
                Ok(ok) => {
                    intact("access log", &ok);
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

/// Prints what an intact verify found, the head line last.
fn intact(what: &str, ok: &Intact) {
    println!("{what} intact: {} entries checked", ok.checked);
    println!("head: {}:{}", ok.last_id, ok.head_hash);
}

/// `audit verify --file`: an export, without configuration or database.
fn verify_file(path: &Path, anchors: &[Anchor]) -> Result<(), CliError> {
    let file = std::fs::File::open(path).map_err(|e| CliError::config(format!("cannot open {}", path.display()), e))?;
    match access_log_file::verify(std::io::BufReader::new(file), anchors) {
        Ok(ok) => {
            intact(&format!("export {}", path.display()), &ok);
            Ok(())
        }
        Err(FileError::Broken { line, reason }) => Err(CliError::Runtime(format!(
            "export {} broken at entry {} ({}): {reason}",
            path.display(),
            reason.id(),
            if line == 0 { "end of file".to_string() } else { format!("line {line}") }
        ))),
        Err(e) => Err(CliError::runtime(format!("verifying {}", path.display()), e)),
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
