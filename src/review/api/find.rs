//! `GET /api/search`: the full-text index ([`crate::search`]) with the reviewer's scope inside
//! the query ([`SearchRequest::scope`]): totals, pages and snippets count only what the scope
//! covers. A filter naming a corp or conversation outside the scope answers 404.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{granted, page_size, reader, record, ApiError, ReviewState};
use crate::review::cursor::{self, ConvKey};
use crate::review::render::message_url;
use crate::review::{Principal, Scope};
use crate::search::query::parse_time;
use crate::search::{search, Conversation, SearchRequest, SortOrder};
use crate::store::CorpId;

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

/// The longest query string and filter value accepted (characters).
pub const MAX_QUERY_CHARS: usize = 1000;

/// The index request of `q` within `scope` (no paging yet).
pub fn request(scope: &Scope, q: &SearchQuery) -> Result<SearchRequest, ApiError> {
    let long = |s: &Option<String>| s.as_ref().is_some_and(|s| s.chars().count() > MAX_QUERY_CHARS);
    if q.q.chars().count() > MAX_QUERY_CHARS || long(&q.msgtype) || long(&q.sender) || long(&q.conversation) {
        return Err(ApiError::BadRequest(format!("a query or filter longer than {MAX_QUERY_CHARS} characters")));
    }
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
            ConvKey::Undecryptable => return Err(ApiError::BadRequest("this conversation cannot be searched".into())),
            key => Conversation::Key(key.raw()),
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

/// The names `wecom_room` knows of the groups of `hits`, by (corp, roomid).
async fn room_names(
    state: &ReviewState,
    hits: &[crate::search::Hit],
) -> Result<BTreeMap<(String, String), String>, ApiError> {
    let mut rooms: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for h in hits {
        if let Some(ConvKey::Room(r)) = ConvKey::from_raw(&h.conversation) {
            let list = rooms.entry(h.corp.clone()).or_default();
            if !list.contains(&r) {
                list.push(r);
            }
        }
    }
    let mut out = BTreeMap::new();
    for (corp, ids) in rooms {
        let Ok(c) = CorpId::new(&corp) else { continue };
        for (roomid, name) in state.store.review_room_names(&c, &ids).await? {
            out.insert((corp.clone(), roomid), name);
        }
    }
    Ok(out)
}

/// Where the next page of a search starts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SearchCursor {
    /// Newest first: hits older than `ms`, or at `ms` and not among `seen` (the hits at `ms`
    /// already given). Hits indexed meanwhile never shift a page: newer ones stay out, older
    /// ones come in their place. `total` is the first page's.
    Before {
        /// The msgtime of the last hit given.
        ms: i64,
        /// (corp, seq) of the hits given at `ms`.
        seen: Vec<(String, u64)>,
        /// The first page's total.
        total: usize,
    },
    /// By relevance: the hits given so far (scores move with the index anyway).
    Offset {
        /// Hits given.
        offset: usize,
        /// The first page's total.
        total: usize,
    },
}

/// One page of `req` from `cursor`: the hits, the total, and the next cursor (`None` at the end).
pub async fn page(
    state: &ReviewState,
    mut req: SearchRequest,
    cursor: Option<SearchCursor>,
    limit: usize,
) -> Result<(Vec<crate::search::Hit>, usize, Option<SearchCursor>), ApiError> {
    match (req.order, cursor) {
        (SortOrder::Relevance, c) => {
            let (offset, first_total) = match c {
                None => (0, None),
                Some(SearchCursor::Offset { offset, total }) => (offset, Some(total)),
                Some(SearchCursor::Before { .. }) => return Err(ApiError::BadRequest("cursor of another sort".into())),
            };
            req.offset = offset;
            req.limit = limit;
            let r = run(state, req).await?;
            let total = first_total.unwrap_or(r.total);
            let given = offset + r.hits.len();
            let next = (!r.hits.is_empty() && given < r.total).then_some(SearchCursor::Offset { offset: given, total });
            Ok((r.hits, total, next))
        }
        (SortOrder::Newest, c) => {
            let (prev_ms, seen, first_total) = match c {
                None => (None, Vec::new(), None),
                Some(SearchCursor::Before { ms, seen, total }) => {
                    let bound = ms.saturating_add(1);
                    req.to_ms = Some(req.to_ms.map_or(bound, |t| t.min(bound)));
                    (Some(ms), seen, Some(total))
                }
                Some(SearchCursor::Offset { .. }) => return Err(ApiError::BadRequest("cursor of another sort".into())),
            };
            req.offset = 0;
            req.limit = (limit + seen.len()).min(crate::search::query::MAX_LIMIT);
            let r = run(state, req).await?;
            let total = first_total.unwrap_or(r.total);
            let left = r.total.saturating_sub(seen.len());
            let hits: Vec<crate::search::Hit> = r
                .hits
                .into_iter()
                .filter(|h| !seen.iter().any(|(c, s)| *c == h.corp && *s == h.seq))
                .take(limit)
                .collect();
            let next = match hits.last() {
                Some(last) if hits.len() < left => {
                    let mut at: Vec<(String, u64)> =
                        hits.iter().filter(|h| h.msgtime == last.msgtime).map(|h| (h.corp.clone(), h.seq)).collect();
                    // Still at the cursor's msgtime: what was seen there stays seen.
                    if prev_ms == Some(last.msgtime) {
                        at.extend(seen);
                    }
                    Some(SearchCursor::Before { ms: last.msgtime, seen: at, total })
                }
                _ => None,
            };
            Ok((hits, total, next))
        }
    }
}

/// `GET /api/search`.
pub async fn search_messages(
    p: Principal,
    state: web::Data<ReviewState>,
    q: web::Query<SearchQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = reader(&p)?;
    let req = request(scope, &q)?;
    let from: Option<SearchCursor> = match &q.cursor {
        Some(c) => Some(cursor::decode(c).ok_or_else(|| ApiError::BadRequest("cursor".into()))?),
        None => None,
    };
    let limit = page_size(q.limit, 20, 100) as usize;
    let (hits, total, next) = page(&state, req, from, limit).await?;
    let names = room_names(&state, &hits).await?;
    let hits: Vec<Value> = hits
        .iter()
        .map(|h| {
            let mut v = hit_json(h);
            let room = match ConvKey::from_raw(&h.conversation) {
                Some(ConvKey::Room(r)) => Some(r),
                _ => None,
            };
            v["conversation_name"] = json!(room.as_ref().and_then(|r| names.get(&(h.corp.clone(), r.clone()))));
            v["roomid"] = json!(room);
            v
        })
        .collect();
    let detail = json!({ "filters": &*q, "total": total, "hits": hits.len() });
    record(&state, &p, "search", q.corp.as_deref(), q.q.clone(), detail).await?;
    Ok(HttpResponse::Ok().json(json!({ "total": total, "hits": hits, "next": next.map(|c| cursor::encode(&c)) })))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use super::*;
    use crate::review::media::MediaSource;
    use crate::review::MemoryRecorder;
    use crate::search::{SearchIndex, WriterSettings};
    use crate::store::{CorpId, Row};

    #[actix_web::test]
    async fn newest_first_pages_neither_repeat_nor_skip_ties_nor_shift() {
        let dir = tempfile::tempdir().unwrap();
        let index = Arc::new(SearchIndex::open_writer(dir.path(), WriterSettings::default()).unwrap());
        let corp = CorpId::new("wwtie").unwrap();
        let row = |seq: u64, msgtime: u64| Row {
            msgid: format!("m{seq}"),
            seq,
            msgtime,
            msgtype: "text".into(),
            msgfrom: "a".into(),
            tolist: "b".into(),
            msgdata: r#"{"msgtype":"text","text":{"content":"hi"}}"#.into(),
            ..Row::default()
        };
        // Ten messages in the same millisecond, five before.
        let rows: Vec<Row> = (1..=10).map(|s| row(s, 2000)).chain((11..=15).map(|s| row(s, 1000 + s))).collect();
        index.add(&corp, &rows).unwrap();
        index.commit(&BTreeMap::new()).unwrap();
        let store = crate::store::SqliteStore::connect("sqlite::memory:", 1).await.unwrap();
        let state = ReviewState {
            store: Arc::new(store),
            search: Some(Arc::clone(&index)),
            media: MediaSource { root: dir.path().to_path_buf(), object_store: None },
            export_max_rows: 10,
            recorder: Arc::new(MemoryRecorder::default()),
        };
        let req = SearchRequest { scope: Some(vec![("wwtie".into(), None)]), ..SearchRequest::default() };
        let (mut seen, mut at, mut pages) = (Vec::new(), None, 0);
        loop {
            let (hits, total, next) = page(&state, req.clone(), at.take(), 3).await.unwrap();
            assert_eq!(total, 15);
            seen.extend(hits.iter().map(|h| (h.msgtime, h.seq)));
            pages += 1;
            if pages == 2 {
                // Indexed meanwhile: a newer message stays out of the pages already begun.
                index.add(&corp, &[row(99, 5000)]).unwrap();
                index.commit(&BTreeMap::new()).unwrap();
            }
            match next {
                Some(n) => at = Some(cursor::decode(&cursor::encode(&n)).unwrap()),
                None => break,
            }
        }
        let distinct: BTreeSet<(i64, u64)> = seen.iter().copied().collect();
        assert_eq!(seen.len(), 15, "{seen:?}");
        assert_eq!(distinct.len(), 15);
        assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "newest first");
        assert_eq!(pages, 5);
    }
}
