//! The search index over records ingested through the real pipeline (emulator corps → SQLite or
//! MariaDB), built by the incremental indexer from `Store::messages_after`:
//!
//! (a) every stored row is indexed and the cursors are the corps' last seqs; a second pass adds
//!     nothing;
//! (b) 1- and 2-character CJK queries (and longer ones) find exactly what a substring scan of the
//!     stored records finds; corp, time, msgtype and sender filters agree with the scan;
//! (c) rows deleted from the database leave the index at the next verification; a corp whose
//!     tables are dropped leaves it at the next pass; `reindex` of one corp rebuilds it.
//!
//! MariaDB as in the pipeline tests (a fresh database; SKIPPED banner outside CI when unreachable).

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::pipeline::{corpid, open, Db};
use wework_msgaudit::message::Row;
use wework_msgaudit::search::extract::record_text;
use wework_msgaudit::search::indexer::{Indexer, IndexerSettings};
use wework_msgaudit::search::tokenizer::is_cjk;
use wework_msgaudit::search::{search, SearchIndex, SearchRequest, WriterSettings};
use wework_msgaudit::store::CorpId;

const RECORDS: u64 = 800;

/// Every hit of `req` as (corp, seq), all pages.
fn hits(index: &SearchIndex, req: &SearchRequest) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    loop {
        let page = search(index, &SearchRequest { offset: out.len(), limit: 1000, ..req.clone() }).unwrap();
        let n = page.hits.len();
        out.extend(page.hits.into_iter().map(|h| (h.corp, h.seq)));
        if n == 0 || out.len() >= page.total {
            out.sort();
            return out;
        }
    }
}

async fn index_and_query(db: Db) {
    let store = open(&db).await;
    common::pipeline::ingest_corps(&store, 2, RECORDS).await;

    let corps: Vec<CorpId> = (0..2).map(|i| CorpId::new(&corpid(i)).unwrap()).collect();
    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(SearchIndex::open_writer(dir.path(), WriterSettings::default()).unwrap());
    let settings = IndexerSettings { batch: 150, verify_page: 100, ..IndexerSettings::default() };
    let mut ix = Indexer::new(Arc::clone(&index), Arc::clone(&store), settings).unwrap();

    // (a) everything indexed, cursors at the last seqs, committed.
    let p = ix.pass(&corps).await.unwrap();
    let mut rows: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for c in &corps {
        rows.insert(c.to_string(), common::pipeline::all_rows(&store, c).await);
    }
    let total: usize = rows.values().map(Vec::len).sum();
    assert_eq!(p.added as usize, total);
    assert_eq!(index.num_docs() as usize, total);
    let want_cursors: BTreeMap<String, u64> =
        rows.iter().map(|(c, r)| (c.clone(), r.last().map_or(0, |r| r.seq))).collect();
    assert_eq!(index.cursors().unwrap(), want_cursors);
    assert_eq!(ix.pass(&corps).await.unwrap().added, 0);

    // (b) CJK queries of 1..4 characters agree with a substring scan of the stored records.
    let texts: Vec<(String, &Row, String)> = rows
        .iter()
        .flat_map(|(c, rs)| rs.iter().map(move |r| (c.clone(), r, record_text(&r.msgtype, &r.msgdata))))
        .collect();
    let mut queries: Vec<String> = Vec::new();
    for (_, _, t) in texts.iter().step_by(37) {
        let run: Vec<char> = t.chars().skip_while(|c| !is_cjk(*c)).take_while(|c| is_cjk(*c)).collect();
        for n in 1..=4 {
            if run.len() >= n {
                queries.push(run[run.len() - n..].iter().collect());
            }
        }
    }
    queries.sort();
    queries.dedup();
    assert!(queries.iter().any(|q| q.chars().count() == 1) && queries.iter().any(|q| q.chars().count() == 2));
    for q in &queries {
        let expected: Vec<(String, u64)> = {
            let mut e: Vec<_> =
                texts.iter().filter(|(_, _, t)| t.contains(q.as_str())).map(|(c, r, _)| (c.clone(), r.seq)).collect();
            e.sort();
            e
        };
        assert!(!expected.is_empty());
        assert_eq!(hits(&index, &SearchRequest { q: q.clone(), ..SearchRequest::default() }), expected, "query {q}");
    }
    eprintln!("{} CJK queries agree with the substring scan over {total} rows", queries.len());

    // Filters agree with the scan: corp, time range, msgtype, sender.
    let q = queries.iter().find(|q| q.chars().count() == 1).unwrap().clone();
    let scan = |keep: &dyn Fn(&str, &Row) -> bool| -> Vec<(String, u64)> {
        let mut e: Vec<_> = texts
            .iter()
            .filter(|(c, r, t)| t.contains(q.as_str()) && keep(c, r))
            .map(|(c, r, _)| (c.clone(), r.seq))
            .collect();
        e.sort();
        e
    };
    let base = SearchRequest { q: q.clone(), ..SearchRequest::default() };
    let c0 = corps[0].to_string();
    assert_eq!(hits(&index, &SearchRequest { corp: Some(c0.clone()), ..base.clone() }), scan(&|c, _| c == c0));
    let mut times: Vec<u64> = texts.iter().map(|(_, r, _)| r.msgtime).collect();
    times.sort_unstable();
    let (lo, hi) = (times[times.len() / 4], times[times.len() * 3 / 4]);
    assert_eq!(
        hits(&index, &SearchRequest { from_ms: Some(lo as i64), to_ms: Some(hi as i64), ..base.clone() }),
        scan(&|_, r| r.msgtime >= lo && r.msgtime < hi)
    );
    assert_eq!(
        hits(&index, &SearchRequest { msgtypes: vec!["text".into()], ..base.clone() }),
        scan(&|_, r| r.msgtype == "text")
    );
    let sender = texts[0].1.msgfrom.clone();
    assert_eq!(
        hits(&index, &SearchRequest { sender: Some(sender.clone()), ..base.clone() }),
        scan(&|_, r| r.msgfrom == sender)
    );

    // (c) deleted rows, a dropped corp, a one-corp reindex.
    let t0 = corps[0].message_table();
    db.int(&format!("DELETE FROM message_{} WHERE seq <= 25", corps[0]), None).await;
    let v = ix.verify().await.unwrap();
    let deleted = rows[&c0].iter().filter(|r| r.seq <= 25).count() as u64;
    assert_eq!(v.removed_rows, deleted);
    assert_eq!(index.num_docs() as usize, total - deleted as usize);
    assert!(hits(&index, &SearchRequest { corp: Some(c0.clone()), ..SearchRequest::default() })
        .iter()
        .all(|(_, s)| *s > 25));
    assert_eq!(ix.verify().await.unwrap().removed_rows, 0);

    let c1 = corps[1].to_string();
    db.int(&format!("DROP TABLE message_{c1}"), None).await;
    let p = ix.pass(&corps).await.unwrap();
    assert_eq!(p.removed_corps, 1);
    assert!(hits(&index, &SearchRequest { corp: Some(c1.clone()), ..SearchRequest::default() }).is_empty());
    assert!(!index.cursors().unwrap().contains_key(&c1));

    let p = ix.reindex(Some(&corps[0]), &corps).await.unwrap();
    assert_eq!(p.added, rows[&c0].len() as u64 - deleted, "{t0} rebuilt");
    assert_eq!(index.num_docs(), p.added);
    db.finish().await;
}

fn block_on<F: std::future::Future<Output = ()>>(f: F) {
    actix_rt::System::new().block_on(f);
}

#[test]
fn sqlite_index_query_and_deletes() {
    block_on(async { index_and_query(Db::sqlite().await).await });
}

#[test]
fn mysql_index_query_and_deletes() {
    block_on(async {
        if let Some(db) = Db::mysql().await {
            index_and_query(db).await;
        }
    });
}
