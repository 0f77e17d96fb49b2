//! Searching: a query string and filters → a tantivy query → hits, newest first or by relevance,
//! with highlighted snippets.
//!
//! The query language is small on purpose:
//! - words separated by spaces must all match (AND);
//! - `"…"` is a phrase (its pieces adjacent and in order); a single unquoted word that mixes
//!   scripts (`微信pay`) is a phrase too;
//! - a leading `-` excludes (`-广告`).
//!
//! A CJK run of one character is its unigram, of n ≥ 2 characters the chain of its n − 1
//! bigrams at consecutive positions ([`super::tokenizer`]): exactly the documents containing the
//! run as a substring (within a CJK run), so 1- and 2-character queries always hit. Latin text is
//! matched by whole words, case-insensitively.

use std::ops::Bound;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, PhraseQuery, Query, RangeQuery, TermQuery};
use tantivy::schema::{IndexRecordOption, Value as _};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Order, TantivyDocument, Term};

use super::index::{pair_key, room_key, Fields, SearchIndex};
use super::tokenizer::{pieces, Kind};
use super::SearchError;

/// Most hits of one page.
pub const MAX_LIMIT: usize = 1000;

/// How hits are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortOrder {
    /// Newest `msgtime` first.
    #[default]
    Newest,
    /// Best BM25 score first.
    Relevance,
}

/// Which conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversation {
    /// A group chat.
    Room(String),
    /// The one-to-one chat of two people (either order).
    Pair(String, String),
    /// A conversation by its key ([`conversation_key`](super::index::conversation_key): also
    /// the chats outside rooms of three or more people).
    Key(String),
}

/// A search.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// The query string (module documentation); empty = every message that passes the filters.
    pub q: String,
    /// Only this corp.
    pub corp: Option<String>,
    /// `msgtime >=` this (ms).
    pub from_ms: Option<i64>,
    /// `msgtime <` this (ms).
    pub to_ms: Option<i64>,
    /// Only these msgtypes (any of them); empty = all.
    pub msgtypes: Vec<String>,
    /// Only this sender.
    pub sender: Option<String>,
    /// Only this conversation.
    pub conversation: Option<Conversation>,
    /// Only external (`true`) or internal (`false`) conversations.
    pub external: Option<bool>,
    /// Order.
    pub order: SortOrder,
    /// Hits per page (1..=[`MAX_LIMIT`]).
    pub limit: usize,
    /// Hits skipped.
    pub offset: usize,
    /// Longest snippet, characters (0 = 150).
    pub snippet_chars: usize,
    /// Only what this scope covers (the review API's reviewer): corp → `None` (all of it) or the
    /// ids of which one must take part (send or receive). `Some` of an empty list: nothing.
    /// Applied inside the query, so totals and pages count only what the scope covers.
    pub scope: Option<Vec<(String, Option<Vec<String>>)>>,
}

/// One hit.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hit {
    /// The corp.
    pub corp: String,
    /// The row's seq (read the row with `Store::read_message`).
    pub seq: u64,
    /// The msgid.
    pub msgid: String,
    /// msgtime (ms).
    pub msgtime: i64,
    /// The msgtype.
    pub msgtype: String,
    /// The sender.
    pub sender: String,
    /// The conversation key (`room:…` or `pair:a|b`).
    pub conversation: String,
    /// With an external contact.
    pub external: bool,
    /// BM25 score (relevance order only).
    pub score: Option<f32>,
    /// The best fragment of the text, HTML-escaped, matches in `<b>…</b>`.
    pub snippet: String,
}

/// A page of hits.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SearchResults {
    /// Every matching message.
    pub total: usize,
    /// This page.
    pub hits: Vec<Hit>,
}

/// One clause of the query string.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    text: String,
    negated: bool,
}

/// Splits the query string into clauses (quoted phrases, words, `-` negation).
fn clauses(q: &str) -> Vec<Clause> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else { break };
        let negated = first == '-';
        if negated {
            chars.next();
        }
        let mut text = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                text.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                text.push(c);
                chars.next();
            }
        }
        out.push(Clause { text, negated });
    }
    out
}

/// The terms of a phrase with their offsets: CJK runs as bigram chains (a lone character as its
/// unigram), words and symbols as they are. Empty when the text has no token.
pub fn phrase_terms(text_field: tantivy::schema::Field, text: &str) -> Vec<(usize, Term)> {
    let ps = pieces(text);
    let bigram_at = |pos: usize| ps.iter().any(|p| p.kind == Kind::Bigram && p.position == pos);
    let mut terms = Vec::new();
    for p in &ps {
        let keep = match p.kind {
            Kind::Bigram | Kind::Word | Kind::Symbol => true,
            // A unigram only when no bigram starts or ends at it.
            Kind::Unigram => !(bigram_at(p.position) || (p.position > 0 && bigram_at(p.position - 1))),
        };
        if keep {
            terms.push((p.position, Term::from_field_text(text_field, &p.text)));
        }
    }
    let first = terms.first().map_or(0, |(pos, _)| *pos);
    terms.into_iter().map(|(pos, t)| (pos - first, t)).collect()
}

/// The query of one phrase; `None` when it has no token.
fn phrase_query(f: &Fields, text: &str) -> Option<Box<dyn Query>> {
    let mut terms = phrase_terms(f.text, text);
    match terms.len() {
        0 => None,
        1 => terms.pop().map(|(_, t)| Box::new(TermQuery::new(t, IndexRecordOption::WithFreqs)) as Box<dyn Query>),
        _ => Some(Box::new(PhraseQuery::new_with_offset(terms))),
    }
}

fn raw(field: tantivy::schema::Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic))
}

/// The text part of the query (what snippets highlight) and the whole query with filters.
pub fn build(f: &Fields, req: &SearchRequest) -> (Option<Box<dyn Query>>, Box<dyn Query>) {
    let mut text: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for c in clauses(&req.q) {
        if let Some(q) = phrase_query(f, &c.text) {
            text.push((if c.negated { Occur::MustNot } else { Occur::Must }, q));
        }
    }
    let has_positive = text.iter().any(|(o, _)| *o == Occur::Must);
    let text_query: Option<Box<dyn Query>> =
        has_positive.then(|| Box::new(BooleanQuery::new(text.iter().map(|(o, q)| (*o, q.box_clone())).collect())) as _);
    let mut all: Vec<(Occur, Box<dyn Query>)> = text;
    if !has_positive {
        all.push((Occur::Must, Box::new(AllQuery)));
    }
    if let Some(corp) = &req.corp {
        all.push((Occur::Must, raw(f.corp, corp)));
    }
    if req.from_ms.is_some() || req.to_ms.is_some() {
        let lo = req.from_ms.map_or(Bound::Unbounded, |v| Bound::Included(Term::from_field_i64(f.msgtime, v)));
        let hi = req.to_ms.map_or(Bound::Unbounded, |v| Bound::Excluded(Term::from_field_i64(f.msgtime, v)));
        all.push((Occur::Must, Box::new(RangeQuery::new(lo, hi))));
    }
    if !req.msgtypes.is_empty() {
        let any: Vec<(Occur, Box<dyn Query>)> =
            req.msgtypes.iter().map(|t| (Occur::Should, raw(f.msgtype, t))).collect();
        all.push((Occur::Must, Box::new(BooleanQuery::new(any))));
    }
    if let Some(sender) = &req.sender {
        all.push((Occur::Must, raw(f.sender, sender)));
    }
    match &req.conversation {
        Some(Conversation::Room(r)) => all.push((Occur::Must, raw(f.conversation, &room_key(r)))),
        Some(Conversation::Pair(a, b)) => all.push((Occur::Must, raw(f.conversation, &pair_key(a, b)))),
        Some(Conversation::Key(k)) => all.push((Occur::Must, raw(f.conversation, k))),
        None => {}
    }
    if let Some(ext) = req.external {
        let term = Term::from_field_u64(f.external, u64::from(ext));
        all.push((Occur::Must, Box::new(TermQuery::new(term, IndexRecordOption::Basic))));
    }
    if let Some(scope) = &req.scope {
        all.push((Occur::Must, scope_query(f, scope)));
    }
    (text_query, Box::new(BooleanQuery::new(all)))
}

/// The documents a scope covers: any of its corps, each whole or with one of its participants.
fn scope_query(f: &Fields, scope: &[(String, Option<Vec<String>>)]) -> Box<dyn Query> {
    let mut any: Vec<(Occur, Box<dyn Query>)> = Vec::new();
    for (corp, ids) in scope {
        let corp_q = raw(f.corp, corp);
        match ids {
            None => any.push((Occur::Should, corp_q)),
            Some(ids) if ids.is_empty() => {}
            Some(ids) => {
                let who: Vec<(Occur, Box<dyn Query>)> =
                    ids.iter().map(|id| (Occur::Should, raw(f.participant, id))).collect();
                let both: Vec<(Occur, Box<dyn Query>)> =
                    vec![(Occur::Must, corp_q), (Occur::Must, Box::new(BooleanQuery::new(who)))];
                any.push((Occur::Should, Box::new(BooleanQuery::new(both))));
            }
        }
    }
    if any.is_empty() {
        // Nothing granted: a term no document has (corp ids are never empty).
        return raw(f.corp, "");
    }
    Box::new(BooleanQuery::new(any))
}

/// Runs `req` on `index` (as of its last reload).
pub fn search(index: &SearchIndex, req: &SearchRequest) -> Result<SearchResults, SearchError> {
    let f = index.fields();
    let (text_query, query) = build(&f, req);
    let searcher = index.searcher();
    let limit = req.limit.clamp(1, MAX_LIMIT);
    let top = TopDocs::with_limit(limit).and_offset(req.offset);
    let (total, addrs): (usize, Vec<(Option<f32>, DocAddress)>) = match req.order {
        SortOrder::Newest => {
            let (n, docs) =
                searcher.search(&query, &(Count, top.order_by_fast_field::<i64>("msgtime", Order::Desc)))?;
            (n, docs.into_iter().map(|(_, a)| (None, a)).collect())
        }
        SortOrder::Relevance => {
            let (n, docs) = searcher.search(&query, &(Count, top))?;
            (n, docs.into_iter().map(|(s, a)| (Some(s), a)).collect())
        }
    };
    let snippets = match &text_query {
        Some(q) => {
            let mut g = SnippetGenerator::create(&searcher, q.as_ref(), f.text)?;
            g.set_max_num_chars(if req.snippet_chars == 0 { 150 } else { req.snippet_chars });
            Some(g)
        }
        None => None,
    };
    let mut hits = Vec::with_capacity(addrs.len());
    for (score, addr) in addrs {
        let doc: TantivyDocument = searcher.doc(addr)?;
        let s = |field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        let snippet = match &snippets {
            Some(g) => g.snippet_from_doc(&doc).to_html(),
            None => escape(
                &s(f.text)
                    .chars()
                    .take(if req.snippet_chars == 0 { 150 } else { req.snippet_chars })
                    .collect::<String>(),
            ),
        };
        hits.push(Hit {
            corp: s(f.corp),
            seq: doc.get_first(f.seq).and_then(|v| v.as_u64()).unwrap_or(0),
            msgid: s(f.msgid),
            msgtime: doc.get_first(f.msgtime).and_then(|v| v.as_i64()).unwrap_or(0),
            msgtype: s(f.msgtype),
            sender: s(f.sender),
            conversation: s(f.conversation),
            external: doc.get_first(f.external).and_then(|v| v.as_u64()) == Some(1),
            score,
            snippet,
        });
    }
    Ok(SearchResults { total, hits })
}

/// A time filter: ms since the epoch, an RFC 3339 time (`2024-05-01T08:00:00Z`, UTC) or a date
/// (`2024-05-01`, its midnight UTC). The error says what was wrong.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let full = if s.len() == 10 { format!("{s}T00:00:00Z") } else { s.to_string() };
    let t =
        humantime::parse_rfc3339_weak(full.trim_end_matches('Z')).map_err(|e| format!("invalid time {s:?}: {e}"))?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).map_err(|e| format!("invalid time {s:?}: {e}"))?.as_millis();
    i64::try_from(ms).map_err(|e| format!("invalid time {s:?}: {e}"))
}

/// HTML-escapes `s` (as tantivy's snippets are).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::message::Row;
    use crate::search::extract::record_text;
    use crate::search::index::WriterSettings;
    use crate::store::CorpId;

    #[test]
    fn query_string_clauses() {
        let c = clauses(r#"  微信 -广告 "hello world" -"a b" x"#);
        let got: Vec<(&str, bool)> = c.iter().map(|c| (c.text.as_str(), c.negated)).collect();
        assert_eq!(got, [("微信", false), ("广告", true), ("hello world", false), ("a b", true), ("x", false)]);
        assert!(clauses("   ").is_empty());
    }

    #[test]
    fn phrase_terms_pick_bigram_chains() {
        let f = tantivy::schema::Schema::builder().add_text_field("t", tantivy::schema::TEXT);
        let texts = |s: &str| -> Vec<(usize, String)> {
            phrase_terms(f, s)
                .into_iter()
                .map(|(o, t)| (o, t.value().as_str().unwrap_or_default().to_string()))
                .collect()
        };
        assert_eq!(texts("微"), [(0, "微".to_string())]);
        assert_eq!(texts("微信"), [(0, "微信".to_string())]);
        assert_eq!(texts("微信支付"), [(0, "微信".into()), (1, "信支".into()), (2, "支付".into())]);
        assert_eq!(texts("微信Pay"), [(0, "微信".into()), (2, "pay".into())]);
        assert_eq!(texts("a中b"), [(0, "a".into()), (1, "中".into()), (2, "b".into())]);
        assert!(texts("，。").is_empty());
    }

    fn corpus_row(seq: u64, text: &str, msgtime: u64, from: &str, roomid: &str) -> Row {
        Row {
            seq,
            msgid: format!("m{seq}"),
            msgtype: "text".into(),
            msgtime,
            msgfrom: from.into(),
            tolist: "li".into(),
            roomid: roomid.into(),
            msgdata: json!({"msgtype":"text","text":{"content":text}}).to_string(),
            ..Row::default()
        }
    }

    /// Recall against a plain substring scan: every document whose text contains a CJK query (or
    /// an emoji, or a Latin word as a whole word, case-insensitively) is found, and nothing else
    /// for CJK-only queries.
    #[test]
    fn recall_against_a_substring_scan() {
        let dir = tempfile::tempdir().unwrap();
        let idx = SearchIndex::open_writer(dir.path(), WriterSettings::default()).unwrap();
        let corp = CorpId::new("ww1").unwrap();
        let words = [
            "微信", "支付", "我们", "明天", "开会", "好的", "收到", "客户", "合同", "Hello", "WORLD", "👍", "😂",
            "价格", "发货", "谢谢", "iPhone", "2024", "地址", "的", "了", "退款", "老板", "🎉",
        ];
        let mut rng = 7u64;
        let mut next = || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (rng >> 33) as usize
        };
        let mut rows = Vec::new();
        for seq in 1..=3000u64 {
            let n = 1 + next() % 8;
            let mut text = String::new();
            for _ in 0..n {
                text.push_str(words[next() % words.len()]);
                if next() % 3 == 0 {
                    text.push(if next() % 2 == 0 { ' ' } else { '，' });
                }
            }
            rows.push(corpus_row(seq, &text, 1_700_000_000_000 + seq, "zhang", ""));
        }
        idx.add(&corp, &rows).unwrap();
        idx.commit(&BTreeMap::from([("ww1".into(), 3000)])).unwrap();
        let texts: Vec<(u64, String)> = rows.iter().map(|r| (r.seq, record_text(&r.msgtype, &r.msgdata))).collect();
        let queries = [
            "微",
            "信",
            "微信",
            "信支",
            "支付",
            "微信支付",
            "天开会好",
            "的",
            "了收",
            "户合同价",
            "👍",
            "😂🎉",
            "hello",
            "world",
            "iphone",
            "2024",
            "退款老板",
        ];
        let mut occurring = 0;
        for q in queries {
            let cjk_or_symbol = !q.chars().any(|c| c.is_ascii_alphanumeric());
            let expected: Vec<u64> = texts
                .iter()
                .filter(|(_, t)| {
                    if cjk_or_symbol {
                        t.contains(q)
                    } else {
                        t.split(|c: char| !c.is_alphanumeric() || crate::search::tokenizer::is_cjk(c))
                            .any(|w| w.eq_ignore_ascii_case(q))
                    }
                })
                .map(|(s, _)| *s)
                .collect();
            let req = SearchRequest { q: q.into(), limit: MAX_LIMIT, ..SearchRequest::default() };
            let mut got = Vec::new();
            let mut offset = 0;
            loop {
                let page = search(&idx, &SearchRequest { offset, ..req.clone() }).unwrap();
                got.extend(page.hits.iter().map(|h| h.seq));
                offset += page.hits.len();
                if page.hits.is_empty() || offset >= page.total {
                    break;
                }
            }
            got.sort_unstable();
            let missing: Vec<&u64> = expected.iter().filter(|s| got.binary_search(s).is_err()).collect();
            assert!(missing.is_empty(), "{q}: {} expected, {} missing", expected.len(), missing.len());
            occurring += usize::from(!expected.is_empty());
            if q.chars().all(crate::search::tokenizer::is_cjk) {
                // Bigrams at consecutive positions: exactly the substring matches.
                assert_eq!(got, expected, "{q}");
            }
        }
        assert!(occurring >= 14, "only {occurring} queries occur in the corpus");
    }

    #[test]
    fn filters_order_phrases_and_snippets() {
        let dir = tempfile::tempdir().unwrap();
        let idx = SearchIndex::open_writer(dir.path(), WriterSettings::default()).unwrap();
        let a = CorpId::new("wwa").unwrap();
        let b = CorpId::new("wwb").unwrap();
        idx.add(
            &a,
            &[
                corpus_row(1, "明天开会讨论合同", 1000, "zhang", ""),
                corpus_row(2, "合同已经签了 <ok>", 2000, "wang", "room1"),
                corpus_row(3, "hello world 合同", 3000, "wmEXT", ""),
            ],
        )
        .unwrap();
        let mut file = corpus_row(4, "", 4000, "zhang", "room1");
        file.msgtype = "file".into();
        file.msgdata = json!({"msgtype":"file","file":{"filename":"合同草案.pdf"}}).to_string();
        idx.add(&b, &[file]).unwrap();
        idx.commit(&BTreeMap::new()).unwrap();

        let run = |req: SearchRequest| -> Vec<(String, u64)> {
            search(&idx, &SearchRequest { limit: 10, ..req })
                .unwrap()
                .hits
                .into_iter()
                .map(|h| (h.corp, h.seq))
                .collect()
        };
        let q = |s: &str| SearchRequest { q: s.into(), ..SearchRequest::default() };
        // Newest first by default.
        assert_eq!(run(q("合同")), [("wwb".into(), 4), ("wwa".into(), 3), ("wwa".into(), 2), ("wwa".into(), 1)]);
        assert_eq!(run(SearchRequest { corp: Some("wwa".into()), ..q("合同") }).len(), 3);
        assert_eq!(run(SearchRequest { from_ms: Some(2000), to_ms: Some(4000), ..q("合同") }).len(), 2);
        assert_eq!(run(SearchRequest { msgtypes: vec!["file".into()], ..q("合") }), [("wwb".into(), 4)]);
        assert_eq!(run(SearchRequest { sender: Some("wang".into()), ..q("") }), [("wwa".into(), 2)]);
        let room = Some(Conversation::Room("room1".into()));
        assert_eq!(run(SearchRequest { conversation: room, ..q("") }).len(), 2);
        let pair = Some(Conversation::Pair("li".into(), "zhang".into()));
        assert_eq!(run(SearchRequest { conversation: pair, ..q("合同") }), [("wwa".into(), 1)]);
        assert_eq!(run(SearchRequest { external: Some(true), ..q("") }), [("wwa".into(), 3)]);
        assert_eq!(run(SearchRequest { external: Some(false), ..q("") }).len(), 3);
        // Phrases, negation, mixed scripts.
        assert_eq!(run(q("\"hello world\"")), [("wwa".into(), 3)]);
        assert!(run(q("\"world hello\"")).is_empty());
        assert_eq!(run(q("合同 -开会 -hello")), [("wwb".into(), 4), ("wwa".into(), 2)]);
        assert_eq!(run(q("HELLO")), [("wwa".into(), 3)]);
        assert!(run(q("开合")).is_empty());
        // Relevance order gives scores; snippets highlight and escape.
        let res = search(&idx, &SearchRequest { order: SortOrder::Relevance, limit: 10, ..q("签了") }).unwrap();
        assert_eq!(res.total, 1);
        assert!(res.hits[0].score.is_some_and(|s| s > 0.0));
        assert!(res.hits[0].snippet.contains("<b>签了</b>"), "{}", res.hits[0].snippet);
        assert!(res.hits[0].snippet.contains("&lt;ok"), "{}", res.hits[0].snippet);
        let res = search(&idx, &SearchRequest { limit: 10, ..q("合同草案") }).unwrap();
        assert!(res.hits[0].snippet.contains("<b>合同草案</b>"), "{}", res.hits[0].snippet);
        // No text: filters only, plain (escaped) text as the snippet.
        let res = search(&idx, &SearchRequest { limit: 1, offset: 1, ..q("") }).unwrap();
        assert_eq!((res.total, res.hits.len(), res.hits[0].seq), (4, 1, 3));
    }
}
