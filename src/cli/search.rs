//! `search reindex [--corp X]` rebuilds the search index from the database; `search query "<q>"
//! [filters]` searches it (for operators and tests). See [`crate::search`].
//!
//! The index directory is `[search] dir` (default beside a SQLite database). `reindex` writes the
//! index itself when no daemon holds it, else leaves a request file that the daemon's indexer
//! carries out at its next pass. `query` only reads, beside a running daemon.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::{with_store_of, CliError};
use crate::config::Config;
use crate::search::indexer::{self, Indexer, IndexerSettings};
use crate::search::{self, Conversation, SearchError, SearchIndex, SearchRequest, SortOrder, WriterSettings};
use crate::store::CorpId;

/// Arguments of `search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// The configuration file (database URL, `[search] dir`; environment overrides apply).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: SearchCommand,
}

/// `search` subcommands.
#[derive(Debug, Subcommand)]
pub enum SearchCommand {
    /// Rebuild the index from the database (one corp, or all): run by the daemon at its next pass
    /// when it holds the index, else here.
    Reindex {
        /// Only this corp.
        #[arg(long)]
        corp: Option<String>,
    },
    /// Search: words must all match, "…" is a phrase, -word excludes; newest first.
    Query(QueryArgs),
}

/// Arguments of `search query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The query string.
    pub q: String,
    /// Only this corp.
    #[arg(long)]
    pub corp: Option<String>,
    /// From this time on (UTC: `2026-01-31`, `2026-01-31T08:00:00Z` or ms since the epoch).
    #[arg(long)]
    pub from: Option<String>,
    /// Before this time (same forms as --from).
    #[arg(long)]
    pub to: Option<String>,
    /// Only these msgtypes (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    pub msgtype: Vec<String>,
    /// Only this sender (userid or external id).
    #[arg(long)]
    pub sender: Option<String>,
    /// Only this group chat.
    #[arg(long, conflicts_with = "pair")]
    pub room: Option<String>,
    /// Only the one-to-one chat of these two (`a,b`).
    #[arg(long, value_delimiter = ',', num_args = 2)]
    pub pair: Vec<String>,
    /// Only conversations with external contacts.
    #[arg(long, conflicts_with = "internal")]
    pub external: bool,
    /// Only internal conversations.
    #[arg(long)]
    pub internal: bool,
    /// Best matches first instead of newest first.
    #[arg(long)]
    pub relevance: bool,
    /// Hits to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Hits to skip.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn dir_of(cfg: &Config) -> Result<PathBuf, CliError> {
    crate::search::index_dir(cfg).ok_or_else(|| {
        CliError::Config("no search index directory: set [search] dir (required with MySQL/MariaDB)".into())
    })
}

fn search_error(e: SearchError) -> CliError {
    match e {
        SearchError::Store(e) => CliError::store("the search index reading the database")(e),
        other => CliError::runtime("the search index", other),
    }
}

/// Runs `search`.
pub fn run(args: &SearchArgs) -> Result<(), CliError> {
    let cfg = Config::load(args.config.as_deref())?;
    let dir = dir_of(&cfg)?;
    match &args.command {
        SearchCommand::Reindex { corp } => {
            let corp = corp.as_deref().map(CorpId::new).transpose().map_err(|e| CliError::config("--corp", e))?;
            reindex(&cfg, dir, corp)
        }
        SearchCommand::Query(q) => query(&dir, q),
    }
}

fn reindex(cfg: &Config, dir: PathBuf, corp: Option<CorpId>) -> Result<(), CliError> {
    let settings = WriterSettings { threads: cfg.search.threads.max(1), memory_bytes: cfg.search.memory_mb << 20 };
    let index = match SearchIndex::open_writer(&dir, settings) {
        Ok(i) => Arc::new(i),
        Err(SearchError::Locked(_)) => {
            let path = indexer::request_reindex(&dir, corp.as_ref()).map_err(search_error)?;
            println!("the daemon holds the index: reindex requested ({}), done at its next pass", path.display());
            return Ok(());
        }
        Err(e) => return Err(search_error(e)),
    };
    with_store_of(cfg, |store| async move {
        let sources = super::run::sources_from_config(cfg, Some(Arc::clone(&store)));
        let corps =
            indexer::configured_corps(&sources).await.map_err(|e| CliError::runtime("reading the corp sources", e))?;
        let started = std::time::Instant::now();
        let mut ix = Indexer::new(Arc::clone(&index), store, IndexerSettings::default()).map_err(search_error)?;
        let p = ix.reindex(corp.as_ref(), &corps).await.map_err(search_error)?;
        println!(
            "indexed {} rows of {} corps in {:.1}s into {}",
            p.added,
            ix.cursors().len(),
            started.elapsed().as_secs_f64(),
            dir.display()
        );
        Ok(())
    })
}

/// A time argument as ms since the epoch (UTC).
fn parse_time(s: &str) -> Result<i64, CliError> {
    search::query::parse_time(s).map_err(CliError::Config)
}

fn query(dir: &std::path::Path, a: &QueryArgs) -> Result<(), CliError> {
    let index = SearchIndex::open_reader(dir).map_err(search_error)?;
    let conversation = match (&a.room, a.pair.as_slice()) {
        (Some(r), _) => Some(Conversation::Room(r.clone())),
        (None, [x, y]) => Some(Conversation::Pair(x.clone(), y.clone())),
        _ => None,
    };
    let req = SearchRequest {
        q: a.q.clone(),
        corp: a.corp.clone(),
        from_ms: a.from.as_deref().map(parse_time).transpose()?,
        to_ms: a.to.as_deref().map(parse_time).transpose()?,
        msgtypes: a.msgtype.clone(),
        sender: a.sender.clone(),
        conversation,
        external: if a.external {
            Some(true)
        } else if a.internal {
            Some(false)
        } else {
            None
        },
        order: if a.relevance { SortOrder::Relevance } else { SortOrder::Newest },
        limit: a.limit,
        offset: a.offset,
        // The operator's command line reads everything (the review API passes a reviewer's scope).
        scope: None,
        snippet_chars: 0,
    };
    let res = search::search(&index, &req).map_err(search_error)?;
    if a.json {
        let text = serde_json::to_string_pretty(&res).map_err(|e| CliError::runtime("writing the results", e))?;
        println!("{text}");
        return Ok(());
    }
    println!("{} messages", res.total);
    for h in res.hits {
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(h.msgtime).unwrap_or(0));
        println!(
            "{} {} seq={} {} {} {} {}| {}",
            humantime::format_rfc3339_seconds(when),
            h.corp,
            h.seq,
            h.msgtype,
            h.sender,
            h.conversation,
            if h.external { "external " } else { "" },
            h.snippet.replace('\n', " ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_arguments() {
        assert_eq!(parse_time("1700000000000").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000);
        assert_eq!(parse_time("1970-01-01T00:00:01Z").unwrap(), 1000);
        assert!(matches!(parse_time("yesterday"), Err(CliError::Config(_))));
    }
}
