//! The handlers of the review API and what they share: [`ReviewState`], [`ApiError`] (every
//! refusal as JSON), the scope checks and the access-log step.
//!
//! Every handler takes the [`Principal`] the session layer put into the request (401 without),
//! reads only with `principal.reader_scope()` (403 for admins and auditors), treats everything
//! outside the scope as absent (404: a corp not granted, a conversation or message of a userid
//! not granted, a search filter naming them), applies the scope inside the store query or the
//! search query (never by filtering a page afterwards), and appends its [`AccessEvent`] BEFORE it
//! answers: when the access log cannot be written, the read answers 503 and serves nothing.
//!
//! - [`browse`]: corps, people, conversations, timelines, one message;
//! - [`find`]: full-text search over the index;
//! - [`files`]: media bytes (Range) and the exports;
//! - [`stats`]: the reply-time statistics per employee and day (`crate::quality`).

pub mod browse;
pub mod files;
pub mod find;
pub mod stats;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use super::media::{MediaError, MediaSource};
use super::{AccessEvent, AccessRecorder, Principal, Scope};
use crate::search::{SearchError, SearchIndex};
use crate::store::{CorpId, Store, StoreError};

/// What the handlers share.
#[derive(Clone)]
pub struct ReviewState {
    /// The archive.
    pub store: Arc<dyn Store>,
    /// The search index the daemon keeps (`None`: search answers 503).
    pub search: Option<Arc<SearchIndex>>,
    /// Where media files are.
    pub media: MediaSource,
    /// `[review] export_max_rows`.
    pub export_max_rows: u64,
    /// The access log.
    pub recorder: Arc<dyn AccessRecorder>,
}

impl std::fmt::Debug for ReviewState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReviewState")
            .field("store", &self.store)
            .field("search", &self.search.is_some())
            .field("media", &self.media)
            .field("export_max_rows", &self.export_max_rows)
            .finish_non_exhaustive()
    }
}

/// Why a request is refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Absent, or outside the scope (the two are never told apart).
    #[error("not found")]
    NotFound,
    /// The user reads no messages (admins, auditors).
    #[error("this account reads no messages")]
    Forbidden,
    /// A parameter is malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The access-log entry could not be written: nothing is served.
    #[error("the access log cannot be written; nothing is served")]
    NotRecorded(String),
    /// No search index.
    #[error("search is not available")]
    SearchOff,
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The index failed.
    #[error("search: {0}")]
    Search(#[from] SearchError),
    /// A media file could not be read.
    #[error("media: {0}")]
    Media(#[from] MediaError),
}

impl ApiError {
    /// Whether the same request may succeed later (503s).
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::NotRecorded(_) | ApiError::SearchOff | ApiError::Store(_) | ApiError::Search(_))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound | ApiError::Media(MediaError::Missing) => StatusCode::NOT_FOUND,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotRecorded(_) | ApiError::SearchOff | ApiError::Store(_) | ApiError::Search(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Media(MediaError::Io(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // Details of internal failures go to the log, not to the client.
        let message = match self {
            ApiError::Store(e) => {
                tracing::error!(error = %e, "review API: database error");
                "database error".to_string()
            }
            ApiError::Search(e) => {
                tracing::error!(error = %e, "review API: search error");
                "search error".to_string()
            }
            ApiError::Media(MediaError::Io(e)) => {
                tracing::error!(error = %e, "review API: media file error");
                "media file error".to_string()
            }
            ApiError::NotRecorded(e) => {
                tracing::error!(error = %e, "review API: access log not written; read refused");
                self.to_string()
            }
            other => other.to_string(),
        };
        HttpResponse::build(self.status_code()).json(serde_json::json!({ "error": message }))
    }
}

/// The scope of a reader (403 for anyone else).
pub fn reader(p: &Principal) -> Result<&Scope, ApiError> {
    p.reader_scope().ok_or(ApiError::Forbidden)
}

/// A granted corp: its id and the userids it is limited to (`None`: all). 404 when the corpid
/// is not granted (or not a corpid).
pub fn granted(scope: &Scope, corpid: &str) -> Result<(CorpId, Option<Vec<String>>), ApiError> {
    if !scope.allows_corp(corpid) {
        return Err(ApiError::NotFound);
    }
    let corp = CorpId::new(corpid).map_err(|_| ApiError::NotFound)?;
    Ok((corp, scope.userids(corpid).map(|u| u.iter().cloned().collect())))
}

/// Whether a row of a corp limited to `who` may be read (sender or a receiver granted).
pub fn row_allowed(who: Option<&[String]>, row: &crate::store::Row) -> bool {
    match who {
        None => true,
        Some(ids) => std::iter::once(row.msgfrom.as_str())
            .chain(row.tolist.split(','))
            .any(|p| !p.is_empty() && ids.iter().any(|i| i == p)),
    }
}

/// Appends the access-log entry; [`ApiError::NotRecorded`] when it cannot be written.
pub async fn record(
    state: &ReviewState,
    who: &Principal,
    action: &str,
    corpid: Option<&str>,
    target: impl Into<String>,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    let event =
        AccessEvent { action: action.to_string(), corpid: corpid.map(str::to_string), target: target.into(), detail };
    state.recorder.record(Some(who), event).await.map_err(ApiError::NotRecorded)
}

/// A page size from `limit` (default `default`, at most `max`, at least 1).
pub fn page_size(limit: Option<u32>, default: u32, max: u32) -> u32 {
    limit.unwrap_or(default).clamp(1, max)
}

/// The kind of a person's id: `external` (wo/wm: external contacts, other corps), `bot` (wb),
/// else `internal`.
pub fn person_kind(id: &str) -> &'static str {
    if id.starts_with("wo") || id.starts_with("wm") {
        "external"
    } else if id.starts_with("wb") {
        "bot"
    } else {
        "internal"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_rows_in_scope() {
        assert_eq!(person_kind("wmABC"), "external");
        assert_eq!(person_kind("woX"), "external");
        assert_eq!(person_kind("wbBot"), "bot");
        assert_eq!(person_kind("zhangsan"), "internal");
        let row = crate::store::Row { msgfrom: "a".into(), tolist: "b,c".into(), ..Default::default() };
        assert!(row_allowed(None, &row));
        assert!(row_allowed(Some(&["c".to_string()]), &row));
        assert!(!row_allowed(Some(&["d".to_string()]), &row));
        assert!(!row_allowed(Some(&[]), &row));
        assert_eq!(page_size(None, 50, 500), 50);
        assert_eq!(page_size(Some(0), 50, 500), 1);
        assert_eq!(page_size(Some(10_000), 50, 500), 500);
    }

    #[test]
    fn refusals_map_to_statuses() {
        assert_eq!(ApiError::NotFound.status_code(), StatusCode::NOT_FOUND);
        assert_eq!(ApiError::Forbidden.status_code(), StatusCode::FORBIDDEN);
        assert_eq!(ApiError::NotRecorded("x".into()).status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(ApiError::NotRecorded("x".into()).is_retryable());
        assert!(!ApiError::NotFound.is_retryable());
    }
}
