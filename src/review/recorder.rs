//! The access log over the store: [`StoreRecorder`] (the [`AccessRecorder`] every handler
//! appends through), [`append`] (the same for callers that are not a signed-in user: the command
//! line), [`verify_stored`] (the whole chain, page by page, through
//! [`access_log::Verifier`]; [`verify_stored_anchored`] also checks anchors kept elsewhere) and
//! [`export`] (whose file `access_log_file` verifies offline).
//!
//! The chain itself (encoding, hash, what counts as broken) is `access_log`'s; the append's
//! transaction and its serialisation across instances are the store's
//! ([`AccessLogRepo`](crate::store::AccessLogRepo)).

use std::sync::Arc;

use async_trait::async_trait;

use super::access_log::{self, Anchor, Break, Intact};
use super::{AccessEvent, AccessRecorder, Principal};
use crate::store::{AccessEntry, NewAccessEntry, Store, StoreError};

/// Entries read per page while verifying or exporting.
const PAGE: u32 = 1_000;

/// Appends `event` as `username` with `role` (e.g. `cli:root`, `cli`).
pub async fn append(
    store: &dyn Store,
    username: &str,
    role: &str,
    event: AccessEvent,
) -> Result<AccessEntry, StoreError> {
    let entry = NewAccessEntry {
        username: username.to_string(),
        role: role.to_string(),
        action: event.action,
        corpid: event.corpid,
        target: event.target,
        detail: event.detail.to_string(),
    };
    store.access_log_append(&entry, access_log::seal).await
}

/// The [`AccessRecorder`] of the database's access log.
#[derive(Debug, Clone)]
pub struct StoreRecorder {
    store: Arc<dyn Store>,
}

impl StoreRecorder {
    /// Appends to `store`'s access log.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl AccessRecorder for StoreRecorder {
    async fn record(&self, who: Option<&Principal>, event: AccessEvent) -> Result<(), String> {
        let (username, role) = who.map_or(("", ""), |p| (p.username.as_str(), p.role.as_str()));
        append(self.store.as_ref(), username, role, event).await.map(|_| ()).map_err(|e| {
            tracing::error!(error = %e, "appending to the access log failed");
            format!("the access log could not be written: {e}")
        })
    }
}

/// How verifying the stored log ended.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The chain is broken; the first broken entry is named.
    #[error("the access log is broken: {0}")]
    Broken(Break),
    /// The log could not be read.
    #[error("reading the access log failed")]
    Store(#[from] StoreError),
}

impl VerifyError {
    /// Worth trying again (the database was busy or unreachable; the log may be fine).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_retryable())
    }
}

/// Verifies the whole stored chain and the head. The head is read first: entries appended while
/// verifying lie beyond it and are not checked; an entry beyond the head as read again at the
/// end was inserted without moving the head ([`Break::Extra`]).
pub async fn verify_stored(store: &dyn Store) -> Result<Intact, VerifyError> {
    verify_stored_anchored(store, &[]).await
}

/// [`verify_stored`], and each anchored entry must still have its anchored hash
/// ([`Break::Anchor`]): catches a log rewritten and rehashed whole.
pub async fn verify_stored_anchored(store: &dyn Store, anchors: &[Anchor]) -> Result<Intact, VerifyError> {
    let head = store.access_log_head().await?;
    let mut v = access_log::Verifier::anchored(anchors);
    let mut after = 0u64;
    let mut beyond = None;
    'pages: loop {
        let page = store.access_log_after(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for e in &page {
            if e.id > head.n {
                beyond = Some(e.id);
                break 'pages;
            }
            v.push(e).map_err(VerifyError::Broken)?;
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    let intact = v.finish(&head).map_err(VerifyError::Broken)?;
    if let Some(id) = beyond {
        if id > store.access_log_head().await?.n {
            return Err(VerifyError::Broken(Break::Extra { id }));
        }
    }
    Ok(intact)
}

/// Calls `each` with every stored entry, by id; returns how many.
pub async fn export<E>(store: &dyn Store, mut each: impl FnMut(&AccessEntry) -> Result<(), E>) -> Result<u64, E>
where
    E: From<StoreError>,
{
    let mut after = 0u64;
    let mut n = 0u64;
    loop {
        let page = store.access_log_after(after, PAGE).await?;
        for e in &page {
            each(e)?;
            n += 1;
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = last.id,
            _ => return Ok(n),
        }
    }
}
