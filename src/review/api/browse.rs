//! Browsing: the granted corps, their people and conversations, a conversation's timeline, one
//! message.
//!
//! Conversations come from three groupings of the message table ([`ReviewReadRepo`]): rooms,
//! `(msgfrom, tolist)` outside rooms (merged into one-to-one chats by their conversation key,
//! both directions together) and `(roomid, msgfrom)` (a group's participants are its senders).
//! With userids granted, every grouping counts only their messages. The groupings read the whole
//! message table, so a list is kept for [`LIST_TTL`] per (corp, userids, person) in the
//! [`ConversationCache`]: paging through it costs one computation, and its pages come from one
//! snapshot (a new conversation shows up within the TTL; timelines are always read fresh).
//!
//! [`ReviewReadRepo`]: crate::store::ReviewReadRepo

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{granted, page_size, person_kind, reader, record, row_allowed, ApiError, ReviewState};
use crate::review::cursor::{self, ConvKey};
use crate::review::render::{render, summary_text};
use crate::review::Principal;
use crate::search::index::conversation_key;
use crate::store::{ConversationSel, CorpId, Direction, MessageGroup, Row, TimelinePos};

/// `GET /api/corps`: the granted corps with their names and message counts.
pub async fn corps(p: Principal, state: web::Data<ReviewState>) -> Result<HttpResponse, ApiError> {
    let scope = reader(&p)?;
    let names: BTreeMap<String, String> =
        state.store.list_corps().await?.into_iter().map(|c| (c.corpid, c.corpname)).collect();
    let mut out = Vec::new();
    for corpid in scope.corpids() {
        let (corp, who) = granted(scope, corpid)?;
        let messages = state.store.review_count(&corp, who.as_deref()).await?.unwrap_or(0);
        out.push(json!({
            "corpid": corpid,
            "name": names.get(corpid).cloned().unwrap_or_default(),
            "messages": messages,
            "limited_to": who,
        }));
    }
    record(&state, &p, "list_corps", None, "", json!({ "corps": out.len() })).await?;
    Ok(HttpResponse::Ok().json(json!({ "corps": out })))
}

/// Query of the people list.
#[derive(Debug, Deserialize)]
pub struct PeopleQuery {
    /// Page size (default 200, at most 1000).
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /api/corps/{corpid}/people`: everyone who sent or received a message in scope, with
/// the kind of id and the messages they sent; by id.
pub async fn people(
    p: Principal,
    state: web::Data<ReviewState>,
    path: web::Path<String>,
    q: web::Query<PeopleQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = reader(&p)?;
    let corpid = path.into_inner();
    let (corp, who) = granted(scope, &corpid)?;
    let after: Option<String> = match &q.cursor {
        Some(c) => Some(cursor::decode(c).ok_or_else(|| ApiError::BadRequest("cursor".into()))?),
        None => None,
    };
    let limit = page_size(q.limit, 200, 1000) as usize;
    // id → (sent, rooms they wrote in)
    let mut people: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for g in state.store.review_senders(&corp, who.as_deref()).await? {
        let e = people.entry(g.b).or_default();
        e.0 += g.messages;
        e.1 += u64::from(!g.a.is_empty());
    }
    for g in state.store.review_pairs(&corp, who.as_deref(), None).await? {
        for to in g.b.split(',').filter(|s| !s.is_empty()) {
            people.entry(to.to_string()).or_default();
        }
    }
    let rest: Vec<(&String, &(u64, u64))> =
        people.iter().filter(|(id, _)| after.as_ref().is_none_or(|a| *id > a)).collect();
    let page: Vec<Value> = rest
        .iter()
        .take(limit)
        .map(|(id, (sent, rooms))| json!({ "id": id, "kind": person_kind(id), "messages_sent": sent, "groups": rooms }))
        .collect();
    let next = (rest.len() > limit).then(|| rest.get(limit - 1).map(|(id, _)| cursor::encode(id))).flatten();
    record(&state, &p, "list_people", Some(&corpid), "", json!({ "count": page.len() })).await?;
    Ok(HttpResponse::Ok().json(json!({ "people": page, "next": next })))
}

/// Query of the conversation list.
#[derive(Debug, Deserialize)]
pub struct ConversationsQuery {
    /// Only conversations this id takes part in.
    pub person: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

/// One conversation of the list.
#[derive(Debug, Clone)]
pub struct Conv {
    key: ConvKey,
    token: String,
    participants: BTreeSet<String>,
    group: MessageGroup,
}

fn merge(into: &mut MessageGroup, g: &MessageGroup) {
    into.messages += g.messages;
    into.first_ms = into.first_ms.min(g.first_ms);
    into.last_ms = into.last_ms.max(g.last_ms);
    into.last_seq = into.last_seq.max(g.last_seq);
}

/// How long a computed conversation list is served from the [`ConversationCache`].
pub const LIST_TTL: Duration = Duration::from_secs(30);

/// Lists kept at most (beyond, the oldest go).
const LIST_CACHE_ENTRIES: usize = 64;

/// A list and when it was computed.
type Computed = (Instant, Arc<Vec<Conv>>);

/// Conversation lists computed within [`LIST_TTL`], by (corp, userids, person). Registered by
/// `server::configure` as app data.
#[derive(Debug, Default)]
pub struct ConversationCache {
    lists: Mutex<HashMap<String, Computed>>,
}

impl ConversationCache {
    fn get(&self, key: &str) -> Option<Arc<Vec<Conv>>> {
        let lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        lists.get(key).filter(|(at, _)| at.elapsed() < LIST_TTL).map(|(_, l)| Arc::clone(l))
    }

    fn put(&self, key: String, list: Arc<Vec<Conv>>) {
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        lists.retain(|_, (at, _)| at.elapsed() < LIST_TTL);
        while lists.len() >= LIST_CACHE_ENTRIES {
            let Some(oldest) = lists.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone()) else { break };
            lists.remove(&oldest);
        }
        lists.insert(key, (Instant::now(), list));
    }
}

/// Every conversation of `corp` with a message within `who`.
async fn conversations_of(
    state: &ReviewState,
    corp: &CorpId,
    who: Option<&[String]>,
) -> Result<BTreeMap<String, Conv>, ApiError> {
    let mut out: BTreeMap<String, Conv> = BTreeMap::new();
    for g in state.store.review_rooms(corp, who).await? {
        let key = ConvKey::Room(g.a.clone());
        let token = key.token();
        out.insert(token.clone(), Conv { key, token, participants: BTreeSet::new(), group: g });
    }
    for g in state.store.review_senders(corp, who).await? {
        if let Some(c) = out.get_mut(&ConvKey::Room(g.a.clone()).token()) {
            c.participants.insert(g.b.clone());
        }
    }
    for g in state.store.review_pairs(corp, who, None).await? {
        let Some(key) = ConvKey::from_raw(&conversation_key("", &g.a, &g.b)) else { continue };
        let token = key.token();
        match out.get_mut(&token) {
            Some(c) => merge(&mut c.group, &g),
            None => {
                let participants = match &key {
                    ConvKey::Pair(people) => people.iter().cloned().collect(),
                    _ => BTreeSet::new(),
                };
                out.insert(token.clone(), Conv { key, token, participants, group: g });
            }
        }
    }
    Ok(out)
}

/// The conversations of `corp` within `who` (and of `person`), latest first.
async fn list_conversations(
    state: &ReviewState,
    corp: &CorpId,
    who: Option<&[String]>,
    person: Option<&str>,
) -> Result<Vec<Conv>, ApiError> {
    let mut convs = match person {
        None => conversations_of(state, corp, who).await?,
        Some(person) => {
            let mine = conversations_of(state, corp, Some(&[person.to_string()])).await?;
            match &who {
                // Both: the person's conversations that the scope covers too.
                Some(_) => {
                    let allowed = conversations_of(state, corp, who).await?;
                    mine.into_iter().filter(|(k, _)| allowed.contains_key(k)).collect()
                }
                None => mine,
            }
        }
    };
    if who.is_none() && person.is_none() {
        let undecryptable = state
            .store
            .review_timeline(corp, &ConversationSel::Undecryptable, None, None, Direction::Before, 1)
            .await?;
        if let Some(last) = undecryptable.first() {
            let key = ConvKey::Undecryptable;
            let token = key.token();
            let group = MessageGroup {
                a: String::new(),
                b: String::new(),
                messages: 0,
                first_ms: last.msgtime,
                last_ms: last.msgtime,
                last_seq: last.seq,
            };
            convs.insert(token.clone(), Conv { key, token, participants: BTreeSet::new(), group });
        }
    }
    let mut list: Vec<Conv> = convs.into_values().collect();
    list.sort_by(|x, y| y.group.last_ms.cmp(&x.group.last_ms).then_with(|| x.token.cmp(&y.token)));
    Ok(list)
}

/// `GET /api/corps/{corpid}/conversations`: one-to-one chats and groups, latest first, each with
/// its participants, message count, first and last time and a summary of its last message.
pub async fn conversations(
    p: Principal,
    state: web::Data<ReviewState>,
    path: web::Path<String>,
    q: web::Query<ConversationsQuery>,
    cache: web::Data<ConversationCache>,
) -> Result<HttpResponse, ApiError> {
    let scope = reader(&p)?;
    let corpid = path.into_inner();
    let (corp, who) = granted(scope, &corpid)?;
    let after: Option<(u64, String)> = match &q.cursor {
        Some(c) => Some(cursor::decode(c).ok_or_else(|| ApiError::BadRequest("cursor".into()))?),
        None => None,
    };
    let limit = page_size(q.limit, 50, 500) as usize;
    let cache_key = format!("{corpid}\u{0}{who:?}\u{0}{:?}", q.person);
    let list = match cache.get(&cache_key) {
        Some(list) => list,
        None => {
            let list = Arc::new(list_conversations(&state, &corp, who.as_deref(), q.person.as_deref()).await?);
            cache.put(cache_key, Arc::clone(&list));
            list
        }
    };
    let rest: Vec<&Conv> = list
        .iter()
        .filter(|c| match &after {
            None => true,
            Some((ms, tok)) => c.group.last_ms < *ms || (c.group.last_ms == *ms && c.token > *tok),
        })
        .collect();
    let rooms: Vec<String> = rest
        .iter()
        .take(limit)
        .filter_map(|c| match &c.key {
            ConvKey::Room(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    let names: BTreeMap<String, String> = state.store.review_room_names(&corp, &rooms).await?.into_iter().collect();
    let mut page = Vec::new();
    for c in rest.iter().take(limit) {
        let last = state.store.read_message(&corp, c.group.last_seq).await?;
        let last =
            last.filter(|r| row_allowed(who.as_deref(), r) || matches!(c.key, ConvKey::Undecryptable)).map(|r| {
                let (kind, _) = crate::review::render::kind_and_content(corp.as_str(), &r);
                json!({ "msgid": r.msgid, "time": r.msgtime, "sender": r.msgfrom, "kind": kind,
                    "text": summary_text(corp.as_str(), &r) })
            });
        page.push(json!({
            "key": c.token,
            "kind": c.key.kind(),
            "roomid": match &c.key { ConvKey::Room(r) => Some(r.as_str()), _ => None },
            "name": match &c.key { ConvKey::Room(r) => names.get(r), _ => None },
            "participants": c.participants,
            "messages": (!matches!(c.key, ConvKey::Undecryptable)).then_some(c.group.messages),
            "first_time": c.group.first_ms,
            "last_time": c.group.last_ms,
            "last_message": last,
        }));
    }
    let next = if rest.len() > limit {
        rest.get(limit - 1).map(|c| cursor::encode(&(c.group.last_ms, c.token.clone())))
    } else {
        None
    };
    let detail = json!({ "person": q.person, "count": page.len() });
    record(&state, &p, "list_conversations", Some(&corpid), "", detail).await?;
    Ok(HttpResponse::Ok().json(json!({ "conversations": page, "next": next })))
}

/// The store's selection of a conversation within `who`; 404 when it is outside or has no
/// message.
pub async fn select(
    state: &ReviewState,
    corp: &CorpId,
    who: Option<&[String]>,
    key: &ConvKey,
) -> Result<ConversationSel, ApiError> {
    match key {
        ConvKey::Room(r) => Ok(ConversationSel::Room(r.clone())),
        ConvKey::Undecryptable if who.is_none() => Ok(ConversationSel::Undecryptable),
        ConvKey::Undecryptable => Err(ApiError::NotFound),
        ConvKey::Pair(people) => {
            if let Some(ids) = who {
                if !people.iter().any(|p| ids.contains(p)) {
                    return Err(ApiError::NotFound);
                }
            }
            let raw = key.raw();
            let pairs: Vec<(String, String)> = state
                .store
                .review_pairs(corp, who, Some(people))
                .await?
                .into_iter()
                .filter(|g| conversation_key("", &g.a, &g.b) == raw)
                .map(|g| (g.a, g.b))
                .collect();
            if pairs.is_empty() {
                return Err(ApiError::NotFound);
            }
            Ok(ConversationSel::Pairs(pairs))
        }
    }
}

/// Query of a timeline.
#[derive(Debug, Deserialize)]
pub struct TimelineQuery {
    /// Messages older than this cursor.
    pub before: Option<String>,
    /// Messages newer than this cursor.
    pub after: Option<String>,
    /// The page around this time (ms): the first message at or after it (`anchor`) with a few
    /// before it; instead of a cursor.
    pub at: Option<u64>,
    /// Page size (default 50, at most [`MAX_TIMELINE_PAGE`]).
    pub limit: Option<u32>,
}

/// The most messages of one timeline page.
pub const MAX_TIMELINE_PAGE: u32 = 200;

/// A page around `at` (ms): up to `limit` rows, oldest first, of which about a fifth before `at`
/// (more when the conversation ends sooner); whether there are older and newer rows beyond.
async fn page_at(
    state: &ReviewState,
    corp: &CorpId,
    sel: &ConversationSel,
    who: Option<&[String]>,
    at: u64,
    limit: u32,
) -> Result<(Vec<Row>, bool, bool), ApiError> {
    const MAX: u64 = i64::MAX as u64;
    let at = at.min(MAX);
    let context = limit / 5;
    let want_after = limit - context;
    // At or after `at`: after (at - 1, the largest seq); from the start for 0.
    let start = at.checked_sub(1).map(|t| TimelinePos { msgtime: t, seq: MAX });
    let mut after = state.store.review_timeline(corp, sel, who, start, Direction::After, want_after + 1).await?;
    let has_newer = after.len() > want_after as usize;
    after.truncate(want_after as usize);
    let want_before = limit - after.len() as u32;
    let mut before = if want_before == 0 {
        Vec::new()
    } else {
        let end = TimelinePos { msgtime: at, seq: 0 };
        state.store.review_timeline(corp, sel, who, Some(end), Direction::Before, want_before + 1).await?
    };
    let has_older = before.len() > want_before as usize;
    before.truncate(want_before as usize);
    before.reverse();
    before.extend(after);
    Ok((before, has_older, has_newer))
}

/// `GET /api/corps/{corpid}/conversations/{key}/messages`: a page of the timeline, oldest
/// first; without a cursor the newest messages, with `at` the messages around a time (`anchor`:
/// the first at or after it). `older`/`newer` are the cursors to page on. A group's first page
/// (no cursor) carries its name and members where the database knows them.
pub async fn timeline(
    p: Principal,
    state: web::Data<ReviewState>,
    path: web::Path<(String, String)>,
    q: web::Query<TimelineQuery>,
) -> Result<HttpResponse, ApiError> {
    let scope = reader(&p)?;
    let (corpid, token) = path.into_inner();
    let (corp, who) = granted(scope, &corpid)?;
    let key = ConvKey::from_token(&token).ok_or(ApiError::NotFound)?;
    let pos = |c: &str| cursor::timeline_pos(c).ok_or_else(|| ApiError::BadRequest("cursor".into()));
    let (from, direction) = match (&q.before, &q.after, q.at) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            return Err(ApiError::BadRequest("give one of before, after and at".into()))
        }
        (Some(b), None, None) => (Some(pos(b)?), Direction::Before),
        (None, Some(a), None) => (Some(pos(a)?), Direction::After),
        (None, None, _) => (None, Direction::Before),
    };
    let limit = page_size(q.limit, 50, MAX_TIMELINE_PAGE);
    let sel = select(&state, &corp, who.as_deref(), &key).await?;
    let (mut rows, has_older, has_newer) = match q.at {
        Some(at) => page_at(&state, &corp, &sel, who.as_deref(), at, limit).await?,
        None => {
            let mut rows = state.store.review_timeline(&corp, &sel, who.as_deref(), from, direction, limit + 1).await?;
            let more = rows.len() > limit as usize;
            rows.truncate(limit as usize);
            if direction == Direction::Before {
                rows.reverse();
            }
            match direction {
                Direction::Before => (rows, more, from.is_some()),
                Direction::After => (rows, true, more),
            }
        }
    };
    if rows.is_empty() && from.is_none() {
        return Err(ApiError::NotFound);
    }
    // The query applied the scope; this keeps it so whatever the query did.
    rows.retain(|r| row_allowed(who.as_deref(), r) || matches!(key, ConvKey::Undecryptable));
    let messages = render_rows(&state, &corp, &token, &rows).await?;
    let pos_of = |r: &Row| cursor::timeline(TimelinePos { msgtime: r.msgtime, seq: r.seq });
    let anchor = q.at.map(|at| rows.iter().find(|r| r.msgtime >= at).or(rows.last()).map(|r| r.msgid.clone()));
    let (name, members) = match (&key, from) {
        (ConvKey::Room(roomid), None) => {
            let names = state.store.review_room_names(&corp, std::slice::from_ref(roomid)).await?;
            let members = state.store.review_room_members(&corp, roomid).await?;
            (names.into_iter().next().map(|(_, n)| n), Some(members))
        }
        _ => (None, None),
    };
    let detail = json!({ "before": q.before, "after": q.after, "at": q.at, "count": messages.len() });
    record(&state, &p, "open_conversation", Some(&corpid), key.raw(), detail).await?;
    Ok(HttpResponse::Ok().json(json!({
        "conversation": token,
        "kind": key.kind(),
        "roomid": match &key { ConvKey::Room(r) => Some(r.as_str()), _ => None },
        "participants": match &key { ConvKey::Pair(people) => Some(people), _ => None },
        "name": name,
        "members": members,
        "messages": messages,
        "anchor": anchor.flatten(),
        "older": rows.first().filter(|_| has_older).map(pos_of),
        "newer": rows.last().filter(|_| has_newer).map(pos_of),
    })))
}

/// The message JSON of `rows` of one conversation (`token`), with their media.
pub async fn render_rows(
    state: &ReviewState,
    corp: &CorpId,
    token: &str,
    rows: &[Row],
) -> Result<Vec<Value>, ApiError> {
    let msgids: Vec<String> = rows.iter().map(|r| r.msgid.clone()).collect();
    let media = state.store.review_media(corp, &msgids).await?;
    Ok(rows.iter().map(|r| render(corp.as_str(), token, r, &media)).collect())
}

/// The conversation token of a row.
pub fn token_of(row: &Row) -> String {
    if row.msgtype.is_empty() && row.decrypt_error.is_some() {
        return ConvKey::Undecryptable.token();
    }
    cursor::conversation_token(&row.roomid, &row.msgfrom, &row.tolist)
}

/// A message of a granted corp that the scope covers; 404 otherwise.
pub async fn readable_message(
    state: &ReviewState,
    p: &Principal,
    corpid: &str,
    msgid: &str,
) -> Result<(CorpId, Row), ApiError> {
    let scope = reader(p)?;
    let (corp, who) = granted(scope, corpid)?;
    let row = state.store.review_message(&corp, msgid).await?.ok_or(ApiError::NotFound)?;
    if !row_allowed(who.as_deref(), &row) {
        return Err(ApiError::NotFound);
    }
    Ok((corp, row))
}

/// `GET /api/corps/{corpid}/messages/{msgid}`: one message.
pub async fn message(
    p: Principal,
    state: web::Data<ReviewState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (corpid, msgid) = path.into_inner();
    let (corp, row) = readable_message(&state, &p, &corpid, &msgid).await?;
    let token = token_of(&row);
    let mut out = render_rows(&state, &corp, &token, std::slice::from_ref(&row)).await?;
    record(&state, &p, "read_message", Some(&corpid), msgid, json!({})).await?;
    Ok(HttpResponse::Ok().json(out.pop().unwrap_or(Value::Null)))
}
