//! Full-text search over the archived messages: derived data, kept by the daemon beside the
//! database (never in it), so it behaves the same on SQLite and MariaDB.
//!
//! - [`tokenizer`]: CJK unigrams + bigrams, Latin words lowercased, digits, emoji (registered with
//!   tantivy as [`tokenizer::TOKENIZER_NAME`]);
//! - [`extract`]: the text of a stored record, for every msgtype that has text, nested
//!   `chatrecord`/`mixed` items included;
//! - [`index`]: the tantivy schema, adding/deleting rows and the per-corp cursors, which live in
//!   the commit payload (the index never claims rows it did not commit);
//! - [`query`]: query string + filters → hits with highlighted snippets;
//! - [`indexer`]: the incremental indexer: reads each corp's rows after its cursor
//!   (`Store::messages_after`), removes rows and corps that are gone, re-reads rows that were
//!   undecryptable when indexed. The daemon runs it as a background task (`[search]`), `search
//!   reindex` runs it once from scratch.
//!
//! Plain functions over tantivy; no actix. Several instances sharing one database each keep
//! their own complete index (no lease needed for derived data).

pub mod extract;
pub mod index;
pub mod indexer;
pub mod query;
pub mod tokenizer;

use std::path::PathBuf;

pub use index::{SearchIndex, WriterSettings};
pub use query::{search, Conversation, Hit, SearchRequest, SearchResults, SortOrder};

/// What search can fail with.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// tantivy's error.
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// A file of the index directory.
    #[error("search index {0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// Another process (a running daemon) writes this index.
    #[error("search index {0} is being written by another process (the daemon?)")]
    Locked(PathBuf),
    /// No index in this directory yet.
    #[error("no search index in {0} (is [search] enabled in the daemon, or run `search reindex`)")]
    Missing(PathBuf),
    /// The index was built with another schema (run `search reindex`).
    #[error("search index {0} was built by another version: run `search reindex`")]
    SchemaChanged(PathBuf),
    /// The index was opened for reading only.
    #[error("search index opened read-only")]
    ReadOnly,
    /// The commit payload could not be written.
    #[error("search index payload: {0}")]
    Payload(String),
    /// Reading rows from the database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A background indexing step panicked or was cancelled.
    #[error("search indexing task failed: {0}")]
    Task(String),
}

/// The index directory of `cfg`: `[search] dir`, else `<file>.search` beside a SQLite database
/// file; `None` for an in-memory or non-SQLite database without `dir`.
pub fn index_dir(cfg: &crate::config::Config) -> Option<std::path::PathBuf> {
    let search = &cfg.search;
    if !search.dir.as_os_str().is_empty() {
        return Some(search.dir.clone());
    }
    let file = crate::store::sqlite_file(cfg.database.url.expose())?;
    let mut name = file.file_name()?.to_os_string();
    name.push(".search");
    Some(file.with_file_name(name))
}
