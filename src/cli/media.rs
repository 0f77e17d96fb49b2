//! `media retry --corp ID [--status 4]` puts failed (or other) items back to pending with a fresh
//! attempt counter; `media stats [--corp ID]` prints item counts by kind and status per corp.
//!
//! Both work on the database named by the configuration; the running daemon picks requeued
//! items up at its next sweep (`media.sweep_interval`).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};

use std::collections::BTreeMap;

use super::{with_store, with_store_of, CliError};
use crate::config::Config;
use crate::corps::{self, SourceError};
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
        /// One corp; default: every configured corp (the `corplist` table and the corps file,
        /// enabled or not).
        #[arg(long)]
        corp: Option<String>,
    },
}

/// Runs `media`.
pub fn run(args: &MediaArgs) -> Result<(), CliError> {
    match &args.command {
        MediaCommand::Retry { corp, status } => {
            let corpid = CorpId::new(corp).map_err(|e| CliError::config("--corp", e))?;
            let status = *status;
            with_store(args.config.as_deref(), move |store| async move {
                let n = store
                    .requeue_media(&corpid, status)
                    .await
                    .map_err(CliError::store(format!("re-queueing media of {corpid}")))?;
                println!("{corpid}: {n} media items in status {status} re-queued");
                Ok(())
            })
        }
        MediaCommand::Stats { corp } => {
            let only = corp.as_deref().map(CorpId::new).transpose().map_err(|e| CliError::config("--corp", e))?;
            let cfg = Config::load(args.config.as_deref())?;
            with_store_of(&cfg, |store| async { stats(store, &cfg, only).await })
        }
    }
}

async fn stats(store: Arc<dyn Store>, cfg: &Config, only: Option<CorpId>) -> Result<(), CliError> {
    // Every corp of every configured source, with where it is defined.
    let sources = super::run::sources_from_config(cfg, Some(Arc::clone(&store)));
    let parts = corps::read(&sources).await.map_err(|e| match e {
        SourceError::Table(e) => CliError::store("reading corplist/corp_keys")(e),
        other => CliError::runtime("reading the corp sources", other),
    })?;
    let mut configured: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in parts.into_iter().flatten() {
        configured.entry(c.corpid).or_default().push(c.source.to_string());
    }
    let corps: Vec<(CorpId, String)> = match only {
        Some(c) => {
            let source = configured.get(c.as_str()).map_or_else(|| "-".to_string(), |s| s.join("+"));
            vec![(c, source)]
        }
        None => configured
            .into_iter()
            .filter_map(|(id, source)| CorpId::new(&id).ok().map(|c| (c, source.join("+"))))
            .collect(),
    };
    println!(
        "{:<24} {:<6} {:<20} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "corpid", "source", "kind", "pending", "running", "done", "failed", "held"
    );
    for (corpid, source) in corps {
        let counts =
            store.media_stats(&corpid).await.map_err(CliError::store(format!("counting media of {corpid}")))?;
        let mut kinds: Vec<&str> = counts.iter().map(|c| c.kind.as_str()).collect();
        kinds.dedup();
        if kinds.is_empty() {
            // A configured corp without media items still gets its line.
            kinds.push("-");
        }
        for kind in kinds {
            let n = |status: u8| {
                counts.iter().filter(|c| c.kind == kind && c.status == status).map(|c| c.count).sum::<u64>()
            };
            println!(
                "{:<24} {:<6} {:<20} {:>8} {:>8} {:>8} {:>8} {:>8}",
                corpid.as_str(),
                source,
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
