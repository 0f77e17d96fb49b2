//! `wecom refresh [--corp X]`: one pass of `crate::wecom` now (scan the new messages, fetch new
//! and stale rooms, list the archived members when stale, re-check stale consents), for
//! operators: after fixing a corp's archive service, or to fill the tables before the daemon's
//! first pass. Uses `[wecom_api]` (timeouts, extra CA) whether or not `enabled`; without leases
//! (it works on every enabled corp it is asked about). Exit 1 when a corp failed.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::{with_store_of, CliError};
use crate::config::Config;
use crate::store::CorpId;
use crate::wecom::refresh::{held_corps, Service, Settings};

/// Arguments of `wecom`.
#[derive(Debug, Args)]
pub struct WecomArgs {
    /// The configuration file (database, `[sdk] proxy`, `[wecom_api]`).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: WecomCommand,
}

/// `wecom` subcommands.
#[derive(Debug, Subcommand)]
pub enum WecomCommand {
    /// One refresh pass now, every enabled corp or one.
    Refresh {
        /// Only this corp.
        #[arg(long)]
        corp: Option<String>,
    },
}

/// Runs `wecom …`.
pub fn run(args: &WecomArgs) -> Result<(), CliError> {
    let cfg = Config::load(args.config.as_deref())?;
    let settings = Settings::from_config(&cfg.wecom_api).map_err(|e| CliError::config("[wecom_api]", e))?;
    let WecomCommand::Refresh { corp } = &args.command;
    let only = corp.as_deref().map(CorpId::new).transpose().map_err(|e| CliError::config("--corp", e))?;
    let sources_cfg = cfg.clone();
    with_store_of(&cfg, |store| async move {
        let sources = super::run::sources_from_config(&sources_cfg, Some(Arc::clone(&store)));
        let mut corps = held_corps(&store, &sources, None).await;
        if let Some(only) = &only {
            corps.retain(|c| &c.corpid == only);
            if corps.is_empty() {
                return Err(CliError::Config(format!("corp {only} is not an enabled corp of the sources")));
            }
        }
        let service = Service::new(store, None, settings);
        let mut failed = 0;
        for (corpid, result) in service.pass(&corps).await {
            match result {
                Ok(p) => println!(
                    "{corpid}: ok: {} messages scanned, {} new rooms, {} rooms fetched ({} refused), {} consents \
                     checked ({} new or changed){}",
                    p.scanned,
                    p.new_rooms,
                    p.rooms_fetched,
                    p.room_errors,
                    p.consents_checked,
                    p.consent_changes,
                    p.permit_users.map(|n| format!(", {n} archived members")).unwrap_or_default()
                ),
                Err(e) => {
                    failed += 1;
                    println!("{corpid}: FAILED: {e}");
                }
            }
        }
        if failed > 0 {
            return Err(CliError::Runtime(format!("{failed} corp(s) failed")));
        }
        Ok(())
    })
}
