//! `GET /api/search`: the full-text index ([`crate::search`]) with the reviewer's scope inside
//! the query ([`SearchRequest::scope`]): totals, pages and snippets count only what the scope
//! covers. A filter naming a corp or conversation outside the scope answers 404.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{granted, page_size, reader, record, ApiError, ReviewState};
use crate::review::cursor::{self, ConvKey};
use crate::review::render::message_url;
use crate::review::{Principal, Scope};
use crate::search::query::parse_time;
use crate::search::{search, Conversation, SearchRequest, SortOrder};

/// The query parameters of a search (and of a search export).
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
pub struct SearchQuery {
    /// The query string (words AND, `"phrases"`, `-excluded`); empty: every message.
    #[serde(default)]
    pub q: String,
    /// Only this corp.
    pub corp: Option<String>,
    /// msgtime ≥ this: ms, an RFC 3339 time or a date (UTC).
    pub from: Option<String>,
    /// msgtime < this: ms, an RFC 3339 time or a date (UTC).
    pub to: Option<String>,
    /// Only these msgtypes (comma-separated).
    pub msgtype: Option<String>,
    /// Only this sender.
    pub sender: Option<String>,
    /// Only this conversation (a conversation key of this API; needs `corp`).
    pub conversation: Option<String>,
    /// Only with (`true`) or without (`false`) external contacts.
    pub external: Option<bool>,
    /// `newest` (default) or `relevance`.
    pub sort: Option<String>,
    /// Page size (default 20, at most 100).
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
    /// Exports: `csv` (default) or `jsonl`.
    pub format: Option<String>,
}

/// The index request of `q` within `scope` (no paging yet).
pub fn request(scope: &Scope, q: &SearchQuery) -> Result<SearchRequest, ApiError> {
    let time = |t: &Option<String>| t.as_deref().map(parse_time).transpose().map_err(ApiError::BadRequest);
    let mut req =
        SearchRequest { q: q.q.clone(), from_ms: time(&q.from)?, to_ms: time(&q.to)?, ..SearchRequest::default() };
    if let Some(corp) = &q.corp {
        granted(scope, corp)?;
        req.corp = Some(corp.clone());
    }
    if let Some(t) = &q.msgtype {
        req.msgtypes = t.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect();
    }
    req.sender = q.sender.clone().filter(|s| !s.is_empty());
    req.external = q.external;
    req.order = match q.sort.as_deref() {
        None | Some("newest") => SortOrder::Newest,
        Some("relevance") => SortOrder::Relevance,
        Some(other) => return Err(ApiError::BadRequest(format!("sort {other:?}: newest or relevance"))),
    };
    if let Some(token) = &q.conversation {
        if q.corp.is_none() {
            return Err(ApiError::BadRequest("conversation needs corp".into()));
        }
        req.conversation = Some(match ConvKey::from_token(token).ok_or(ApiError::NotFound)? {
            ConvKey::Room(r) => Conversation::Room(r),
            ConvKey::Pair(p) if p.len() == 2 => Conversation::Pair(p[0].clone(), p[1].clone()),
            ConvKey::Pair(p) if p.len() == 1 => Conversation::Pair(p[0].clone(), p[0].clone()),
            _ => return Err(ApiError::BadRequest("this conversation cannot be searched".into())),
        });
    }
    req.scope = Some(
        scope
            .corps
            .iter()
            .map(|(corp, ids)| (corp.clone(), ids.as_ref().map(|s| s.iter().cloned().collect())))
            .collect(),
    );
    Ok(req)
}

/// Runs `req` on the blocking pool.
pub async fn run(state: &ReviewState, req: SearchRequest) -> Result<crate::search::SearchResults, ApiError> {
    let index = state.search.clone().ok_or(ApiError::SearchOff)?;
    web::block(move || search(&index, &req))
        .await
        .map_err(|e| ApiError::Search(crate::search::SearchError::Task(e.to_string())))?
        .map_err(ApiError::from)
}

/// A hit as the API shows it.
pub fn hit_json(h: &crate::search::Hit) -> Value {
    let conversation = ConvKey::from_raw(&h.conversation).map(|k| k.token());
    json!({
        "corp": h.corp,
        "msgid": h.msgid,
        "seq": h.seq,
        "time": h.msgtime,
        "msgtype": h.msgtype,
        "sender": h.sender,
        "conversation": conversation,
        "external": h.external,
        "score": h.score,
        "snippet": h.snippet,
        "url": message_url(&h.corp, &h.msgid),
    })
}

/// `GET /api/search`.
pub async fn search_messages(
    p: Principal,
    state: web::Data<ReviewState>,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = reader(&p)?;
    let mut req = request(scope, &q)?;
    let offset: usize = match &q.cursor {
        Some(c) => cursor::decode(c).ok_or_else(|| ApiError::BadRequest("cursor".into()))?,
        None => 0,
    };
    let limit = page_size(q.limit, 20, 100) as usize;
    req.offset = offset;
    req.limit = limit;
    let results = run(&state, req).await?;
    let hits: Vec<Value> = results.hits.iter().map(hit_json).collect();
    let next =
        (offset + hits.len() < results.total && !hits.is_empty()).then(|| cursor::encode(&(offset + hits.len())));
    let detail = json!({ "filters": &*q, "total": results.total, "offset": offset, "hits": hits.len() });
    record(&state, &p, "search", q.corp.as_deref(), q.q.clone(), detail).await?;
    Ok(HttpResponse::Ok().json(json!({ "total": results.total, "hits": hits, "next": next })))
}
