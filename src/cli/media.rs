//! `media retry --corp ID [--status 4]` puts failed (or other) items back to pending with a fresh
//! attempt counter; `media stats [--corp ID]` prints item counts by kind and status per corp.
//!
//! Both work on the database named by the configuration; the running daemon picks requeued
//! items up at its next sweep (`media.sweep_interval`).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::{store_error, with_store, CliError};
use crate::store::{CorpId, Store};

/// Arguments of `media`.
#[derive(Debug, Args)]
pub struct MediaArgs {
    /// The configuration file (the database URL comes from it; environment overrides apply).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: MediaCommand,
}

/// `media` subcommands.
#[derive(Debug, Subcommand)]
pub enum MediaCommand {
    /// Re-queue the items of a corp that are in a status (default 4, failed).
    Retry {
        /// The corpid.
        #[arg(long)]
        corp: String,
        /// The status to re-queue: 4 failed, 2 stuck downloading (only when no daemon runs).
        #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(2..=4))]
        status: u8,
    },
    /// Item counts by kind and status (1 pending, 2 downloading, 3 done, 4 failed, 0 held: stored
    /// while media was off, queued when the daemon starts with media on).
    Stats {
        /// One corp; default: every corp of the `corplist` table.
        #[arg(long)]
        corp: Option<String>,
    },
}

/// Runs `media`.
pub fn run(args: &MediaArgs) -> Result<(), CliError> {
    match &args.command {
        MediaCommand::Retry { corp, status } => {
            let corpid = CorpId::new(corp).map_err(|e| CliError::Config(e.to_string()))?;
            let status = *status;
            with_store(args.config.as_deref(), move |store| async move {
                let n = store.requeue_media(&corpid, status).await.map_err(store_error)?;
                println!("{corpid}: {n} media items in status {status} re-queued");
                Ok(())
            })
        }
        MediaCommand::Stats { corp } => {
            let only = corp.as_deref().map(CorpId::new).transpose().map_err(|e| CliError::Config(e.to_string()))?;
            with_store(args.config.as_deref(), move |store| async move { stats(store, only).await })
        }
    }
}

async fn stats(store: Arc<dyn Store>, only: Option<CorpId>) -> Result<(), CliError> {
    let corps = match only {
        Some(c) => vec![c],
        None => store
            .list_corps()
            .await
            .map_err(store_error)?
            .into_iter()
            .filter_map(|r| CorpId::new(&r.corpid).ok())
            .collect(),
    };
    println!(
        "{:<24} {:<20} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "corpid", "kind", "pending", "running", "done", "failed", "held"
    );
    for corpid in corps {
        let counts = store.media_stats(&corpid).await.map_err(store_error)?;
        let mut kinds: Vec<&str> = counts.iter().map(|c| c.kind.as_str()).collect();
        kinds.dedup();
        for kind in kinds {
            let n = |status: u8| {
                counts.iter().filter(|c| c.kind == kind && c.status == status).map(|c| c.count).sum::<u64>()
            };
            println!(
                "{:<24} {:<20} {:>8} {:>8} {:>8} {:>8} {:>8}",
                corpid.as_str(),
                kind,
                n(1),
                n(2),
                n(3),
                n(4),
                n(crate::store::MEDIA_HELD)
            );
        }
    }
    Ok(())
}
