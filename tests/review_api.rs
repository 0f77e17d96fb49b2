//! The review API's read side over records ingested through the real pipeline (two emulator
//! corps → SQLite or MariaDB), indexed by the real indexer, served by the real routes
//! (`review::server::configure`) behind a test session layer that takes the `Principal` from a
//! test header, with an in-memory access log:
//!
//! (a) scope: a reviewer of corp A gets 404 for corp B's conversation, message and media, no
//!     corp-B search hits (and 404 for `corp=B`); admins get 403, no session 401;
//! (b) a reviewer limited to a userid sees exactly the conversations and messages that userid
//!     takes part in (lists, timelines, single messages, search);
//! (c) conversations add up to the stored rows; a timeline paged backwards and forwards with its
//!     cursors is exactly the stored conversation in (msgtime, seq) order, and pages are stable;
//! (d) every msgtype of the emulator's demo renders with its own kind (`unknown` only for the
//!     unknown one, `undecryptable` for corrupt records), revoke links its msgid;
//! (e) media: 200 whole, `bytes=0-99` → 206 with the exact bytes and Content-Range, suffix range,
//!     416 past the end; Content-Type from the bytes; the original name in `filename*`;
//! (f) exports: a ZIP whose CSV starts with the BOM, has the right row count (capped), and whose
//!     SHA256SUMS and manifest verify against the bytes; JSON Lines too; search export;
//! (g) every successful read appended exactly one access event before answering, refusals none;
//!     with the access log failing, reads answer 503 and serve nothing.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{test as atest, web, App};
use aws_lc_rs::digest;
use common::pipeline::{corpid, open, Db};
use common::review::test_sessions;
use serde_json::Value;
use wework_msgaudit::message::Row;
use wework_msgaudit::review::api::ReviewState;
use wework_msgaudit::review::cursor::ConvKey;
use wework_msgaudit::review::export::{unzip_stored, BOM};
use wework_msgaudit::review::media::MediaSource;
use wework_msgaudit::review::render::{self, KNOWN};
use wework_msgaudit::review::server::configure;
use wework_msgaudit::review::MemoryRecorder;
use wework_msgaudit::search::index::conversation_key;
use wework_msgaudit::search::indexer::{Indexer, IndexerSettings};
use wework_msgaudit::search::{SearchIndex, WriterSettings};
use wework_msgaudit::store::{CorpId, MediaOutcome};

const RECORDS: u64 = 300;
const EXPORT_MAX: u64 = 40;

/// A media item made "downloaded" by the test: msgid, item, the record's filename, the bytes.
type Downloaded = (String, u32, String, Vec<u8>);

fn involves(row: &Row, id: &str) -> bool {
    row.msgfrom == id || row.tolist.split(',').any(|t| t == id)
}

fn key_of(row: &Row) -> String {
    if row.msgtype.is_empty() && row.decrypt_error.is_some() {
        return ConvKey::Undecryptable.token();
    }
    ConvKey::from_raw(&conversation_key(&row.roomid, &row.msgfrom, &row.tolist)).unwrap().token()
}

struct Client<S> {
    app: S,
    recorder: Arc<MemoryRecorder>,
    served: usize,
}

impl<S> Client<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error>,
{
    /// GET `uri` as `who` (no session when `None`): status, headers, body. Checks that a
    /// success appended exactly one access event and a refusal none.
    async fn get(
        &mut self,
        who: Option<&str>,
        uri: &str,
        range: Option<&str>,
    ) -> (u16, actix_web::http::header::HeaderMap, Vec<u8>) {
        let before = self.recorder.events().len();
        let mut req = atest::TestRequest::get().uri(uri);
        if let Some(w) = who {
            req = req.insert_header(("X-Test-Principal", w));
        }
        if let Some(r) = range {
            req = req.insert_header(("Range", r));
        }
        let resp = atest::call_service(&self.app, req.to_request()).await;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = atest::read_body(resp).await.to_vec();
        let after = self.recorder.events().len();
        // A 416 answers a media request (logged with its status), not a refusal.
        if (200..300).contains(&status) || status == 416 {
            self.served += 1;
            assert_eq!(after, before + 1, "{uri}: one access event per read");
        } else {
            assert_eq!(after, before, "{uri}: a refusal ({status}) is not a read");
        }
        (status, headers, body)
    }

    async fn json(&mut self, who: &str, uri: &str) -> Value {
        let (status, _, body) = self.get(Some(who), uri, None).await;
        assert_eq!(status, 200, "{uri}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    async fn status(&mut self, who: Option<&str>, uri: &str) -> u16 {
        self.get(who, uri, None).await.0
    }
}

fn sha256_hex(b: &[u8]) -> String {
    digest::digest(&digest::SHA256, b).as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

/// The files of an export, with its manifest and checksums verified.
fn open_export(zip: &[u8]) -> (Vec<u8>, Value) {
    let files: BTreeMap<String, Vec<u8>> = unzip_stored(zip).expect("a stored zip").into_iter().collect();
    let sums = String::from_utf8(files["SHA256SUMS"].clone()).unwrap();
    for line in sums.lines() {
        let (sha, name) = line.split_once("  ").unwrap();
        assert_eq!(sha256_hex(&files[name]), sha, "sha256sum -c: {name}");
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let data = files[manifest["file"].as_str().unwrap()].clone();
    assert_eq!(manifest["sha256"], sha256_hex(&data));
    (data, manifest)
}

async fn review_api(db: Db) {
    let store = open(&db).await;
    common::pipeline::ingest_corps(&store, 2, RECORDS).await;
    let (a, b) = (corpid(0), corpid(1));
    let corp_a = CorpId::new(&a).unwrap();
    let corp_b = CorpId::new(&b).unwrap();
    // A record that could not be decrypted at all (the demo's corrupt ones are rare).
    let bad = wework_msgaudit::message::undecryptable(100_000, "undecryptable-1", 9, "k", "c", "no key for version 9");
    store.write_batch(&corp_a, &[bad], &[], 100_000).await.unwrap();
    let rows_a = common::pipeline::all_rows(&store, &corp_a).await;
    let rows_b = common::pipeline::all_rows(&store, &corp_b).await;

    let dir = tempfile::tempdir().unwrap();
    let index = Arc::new(SearchIndex::open_writer(&dir.path().join("index"), WriterSettings::default()).unwrap());
    let mut ix = Indexer::new(Arc::clone(&index), Arc::clone(&store), IndexerSettings::default()).unwrap();
    ix.pass(&[corp_a.clone(), corp_b.clone()]).await.unwrap();

    // Media: one image and one file of each corp "downloaded" into the media root.
    let root = dir.path().join("media");
    let mut media: BTreeMap<String, Vec<Downloaded>> = BTreeMap::new();
    for corp in [&corp_a, &corp_b] {
        let jobs = store.claim_media(corp, "test", 10_000, i64::MAX).await.unwrap();
        for kind in ["image", "file", "voice"] {
            let job = jobs.iter().find(|j| j.kind == kind && j.item == 0).expect("a media item");
            let (magic, ext): (&[u8], &str) = match kind {
                "image" => (b"\xff\xd8\xff\xe0", "jpg"),
                "file" => (b"%PDF-1.4\n", "pdf"),
                _ => (b"#!AMR\n", "amr"),
            };
            let mut bytes = magic.to_vec();
            bytes.extend((0..5000u32).map(|i| (i * 7 % 251) as u8));
            let rel = format!("{}/{}.{ext}", corp, job.msgid.replace('/', "_"));
            std::fs::create_dir_all(root.join(corp.as_str())).unwrap();
            std::fs::write(root.join(&rel), &bytes).unwrap();
            // A voice item has its MP3 beside it: the ID3 header, then the same bytes.
            let mp3 = (kind == "voice").then(|| {
                let mp3 = rel.replace(".amr", ".mp3");
                std::fs::write(root.join(&mp3), [b"ID3\x04\x00".as_slice(), &bytes].concat()).unwrap();
                mp3
            });
            let done = MediaOutcome::Done { path: rel, transcoded_path: mp3, transcode_error: None };
            store.finish_media(corp, job, &done).await.unwrap();
            media.entry(corp.to_string()).or_default().push((
                job.msgid.clone(),
                job.item,
                job.filename.clone().unwrap_or_default(),
                bytes,
            ));
        }
    }

    let recorder = Arc::new(MemoryRecorder::default());
    let state = ReviewState {
        store: Arc::clone(&store),
        search: Some(Arc::clone(&index)),
        media: MediaSource { root: root.clone(), object_store: None },
        export_max_rows: EXPORT_MAX,
        recorder: recorder.clone(),
    };
    let data = web::Data::new(state);
    let app = atest::init_service(App::new().wrap(from_fn(test_sessions)).configure(move |c| configure(c, data))).await;
    let mut c = Client { app, recorder: Arc::clone(&recorder), served: 0 };
    let ra = format!("reviewer;{a}=*");
    let limited_user = "sunqi";
    let rl = format!("reviewer;{a}={limited_user}");
    let enc = |s: &str| wework_msgaudit::review::render::enc(s);

    // (a) who may read at all.
    assert_eq!(c.status(None, "/api/corps").await, 401);
    assert_eq!(c.status(Some(&format!("admin;{a}=*")), "/api/corps").await, 403);
    assert_eq!(c.status(Some(&format!("auditor;{a}=*")), "/api/corps").await, 403);
    let corps = c.json(&ra, "/api/corps").await;
    assert_eq!(corps["corps"].as_array().unwrap().len(), 1);
    assert_eq!(corps["corps"][0]["corpid"], a.as_str());
    assert_eq!(corps["corps"][0]["messages"], rows_a.len());

    // (c) conversations add up; every key is the stored rows' key.
    let mut convs: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let uri = format!(
            "/api/corps/{a}/conversations?limit=7{}",
            cursor.as_ref().map_or(String::new(), |c| format!("&cursor={c}"))
        );
        let page = c.json(&ra, &uri).await;
        assert_eq!(c.json(&ra, &uri).await, page, "a page is stable");
        convs.extend(page["conversations"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(n) => cursor = Some(n.to_string()),
            None => break,
        }
    }
    let mut want: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in &rows_a {
        want.entry(key_of(r)).or_default().push(r);
    }
    let got_keys: BTreeSet<String> = convs.iter().map(|v| v["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(got_keys.len(), convs.len(), "no conversation twice");
    assert_eq!(got_keys, want.keys().cloned().collect::<BTreeSet<_>>(), "conversations = the stored rows' keys");
    for v in &convs {
        if let Some(n) = v["messages"].as_u64() {
            assert_eq!(n as usize, want[v["key"].as_str().unwrap()].len(), "{v}");
        }
    }
    let times: Vec<u64> = convs.iter().map(|v| v["last_time"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "latest first");

    // (c) the largest conversation, paged backwards, then forwards, with its cursors.
    let (big_key, big_rows) =
        want.iter().filter(|(k, _)| **k != ConvKey::Undecryptable.token()).max_by_key(|(_, v)| v.len()).unwrap();
    let mut expect: Vec<&Row> = big_rows.clone();
    expect.sort_by_key(|r| (r.msgtime, r.seq));
    let expect_ids: Vec<String> = expect.iter().map(|r| r.msgid.clone()).collect();
    let base = format!("/api/corps/{a}/conversations/{big_key}/messages?limit=4");
    let mut back: Vec<String> = Vec::new();
    let mut page = c.json(&ra, &base).await;
    assert_eq!(c.json(&ra, &base).await, page, "stable");
    loop {
        let ids: Vec<String> =
            page["messages"].as_array().unwrap().iter().map(|m| m["msgid"].as_str().unwrap().to_string()).collect();
        back.splice(0..0, ids);
        match page["older"].as_str() {
            Some(o) => page = c.json(&ra, &format!("{base}&before={o}")).await,
            None => break,
        }
    }
    assert_eq!(back, expect_ids, "backwards");
    let first_two = c
        .json(
            &ra,
            &format!(
                "/api/corps/{a}/conversations/{big_key}/messages?limit=2&before={}",
                wework_msgaudit::review::cursor::timeline(wework_msgaudit::store::TimelinePos {
                    msgtime: u64::MAX,
                    seq: u64::MAX
                })
            ),
        )
        .await;
    assert_eq!(first_two["messages"].as_array().unwrap().len(), 2);
    let mut fwd: Vec<String> = Vec::new();
    // Forwards from a cursor before the first message.
    let mut after =
        Some(wework_msgaudit::review::cursor::timeline(wework_msgaudit::store::TimelinePos { msgtime: 0, seq: 0 }));
    while let Some(cur) = after.take() {
        let p = c.json(&ra, &format!("{base}&after={cur}")).await;
        fwd.extend(p["messages"].as_array().unwrap().iter().map(|m| m["msgid"].as_str().unwrap().to_string()));
        after = p["newer"].as_str().map(str::to_string);
    }
    assert_eq!(fwd, expect_ids, "forwards");
    assert_eq!(c.status(Some(&ra), &format!("{base}&before=garbage")).await, 400);

    // (d) every msgtype renders with its own kind.
    let mut seen = BTreeSet::new();
    for r in &rows_a {
        if !seen.insert(r.msgtype.clone()) {
            continue;
        }
        let m = c.json(&ra, &format!("/api/corps/{a}/messages/{}", enc(&r.msgid))).await;
        let kind = m["kind"].as_str().unwrap();
        if KNOWN.contains(&r.msgtype.as_str()) {
            assert_eq!(kind, r.msgtype, "{m}");
        } else if r.msgtype.is_empty() {
            assert_eq!(kind, "undecryptable", "{m}");
            assert!(m["content"]["reason"].is_string());
        } else {
            assert_eq!(kind, "unknown", "{m}");
        }
        assert_eq!(m["conversation"], key_of(r));
        if r.msgtype == "revoke" {
            assert!(!m["content"]["pre_msgid"].as_str().unwrap().is_empty());
            assert!(m["content"]["pre_msgid_url"].as_str().unwrap().starts_with(&format!("/api/corps/{a}/messages/")));
        }
        if r.msgtype == "chatrecord" || r.msgtype == "mixed" {
            assert!(!m["content"]["items"].as_array().unwrap().is_empty(), "{m}");
        }
    }
    for t in ["text", "image", "revoke", "chatrecord", "mixed", "file", "voice", "meeting", "switch", "future_type", ""]
    {
        assert!(seen.contains(t), "the demo has {t:?} records: {seen:?}");
    }

    // (a) corp B is absent for a reviewer of A.
    let rb = &rows_b[rows_b.len() / 2];
    let kb = key_of(rb);
    assert_eq!(c.status(Some(&ra), &format!("/api/corps/{b}/conversations")).await, 404);
    assert_eq!(c.status(Some(&ra), &format!("/api/corps/{b}/conversations/{kb}/messages")).await, 404);
    assert_eq!(c.status(Some(&ra), &format!("/api/corps/{b}/messages/{}", enc(&rb.msgid))).await, 404);
    assert_eq!(c.status(Some(&ra), &format!("/api/corps/{a}/messages/{}", enc(&rb.msgid))).await, 404);
    let (mb, ib, _, _) = &media[&b][0];
    assert_eq!(c.status(Some(&ra), &format!("/api/corps/{b}/media/{}/{ib}", enc(mb))).await, 404);
    assert_eq!(c.status(Some(&ra), &format!("/api/corps/{b}/people")).await, 404);
    assert_eq!(c.status(Some(&ra), &format!("/api/search?q=&corp={b}")).await, 404);
    let all = c.json(&ra, "/api/search?q=&limit=100").await;
    let indexed_a = rows_a.len();
    assert_eq!(all["total"].as_u64().unwrap() as usize, indexed_a, "only corp A is counted");
    let mut hit_corps = BTreeSet::new();
    let mut hit_ids = BTreeSet::new();
    let mut cur = Some(String::new());
    let mut n_hits = 0;
    while let Some(cc) = cur.take() {
        let uri = if cc.is_empty() {
            "/api/search?q=&limit=7".to_string()
        } else {
            format!("/api/search?q=&limit=7&cursor={cc}")
        };
        let p = c.json(&ra, &uri).await;
        for h in p["hits"].as_array().unwrap() {
            hit_corps.insert(h["corp"].as_str().unwrap().to_string());
            assert!(hit_ids.insert(h["msgid"].as_str().unwrap().to_string()), "no hit twice across pages: {h}");
            n_hits += 1;
        }
        cur = p["next"].as_str().map(str::to_string);
    }
    assert_eq!(hit_corps, BTreeSet::from([a.clone()]));
    assert_eq!(c.status(Some(&ra), "/api/search?q=&from=yesterday").await, 400);
    assert_eq!(c.status(Some(&ra), &format!("/api/search?q={}", "x".repeat(1001))).await, 400);
    // Filters: a conversation, a sender, a msgtype.
    let conv = c.json(&ra, &format!("/api/search?q=&corp={a}&conversation={big_key}&limit=100")).await;
    assert_eq!(conv["total"].as_u64().unwrap() as usize, expect_ids.len());
    assert!(conv["hits"].as_array().unwrap().iter().all(|h| h["conversation"] == big_key.as_str()));
    let by = c.json(&ra, "/api/search?q=&sender=zhangsan&msgtype=text,image&limit=100").await;
    let want_by =
        rows_a.iter().filter(|r| r.msgfrom == "zhangsan" && (r.msgtype == "text" || r.msgtype == "image")).count();
    assert_eq!(by["total"].as_u64().unwrap() as usize, want_by);
    assert_eq!(c.status(Some(&ra), &format!("/api/search?q=&conversation={big_key}")).await, 400, "needs corp");
    let dated = c.json(&ra, "/api/search?q=&from=2000-01-01&to=2100-01-01T00:00:00Z&limit=1").await;
    let since_2000 = rows_a.iter().filter(|r| r.msgtime >= 946_684_800_000).count();
    assert_eq!(dated["total"], since_2000, "dates as RFC 3339 (the undecryptable row has no time)");
    assert_eq!(n_hits, indexed_a);

    // (b) a reviewer limited to one userid.
    let mine: BTreeSet<String> = rows_a.iter().filter(|r| involves(r, limited_user)).map(key_of).collect();
    let lc = c.json(&rl, &format!("/api/corps/{a}/conversations?limit=500")).await;
    let lkeys: BTreeSet<String> =
        lc["conversations"].as_array().unwrap().iter().map(|v| v["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(lkeys, mine, "exactly the conversations {limited_user} takes part in");
    let lcorps = c.json(&rl, "/api/corps").await;
    assert_eq!(lcorps["corps"][0]["messages"], rows_a.iter().filter(|r| involves(r, limited_user)).count());
    for k in lkeys.iter().take(6) {
        let t = c.json(&rl, &format!("/api/corps/{a}/conversations/{k}/messages?limit=500")).await;
        let ids: BTreeSet<String> =
            t["messages"].as_array().unwrap().iter().map(|m| m["msgid"].as_str().unwrap().to_string()).collect();
        let expect: BTreeSet<String> =
            rows_a.iter().filter(|r| key_of(r) == *k && involves(r, limited_user)).map(|r| r.msgid.clone()).collect();
        assert_eq!(ids, expect, "only {limited_user}'s messages of {k}");
    }
    // ?person=: the conversations a person takes part in, within the scope.
    let of = |id: &str| -> BTreeSet<String> { rows_a.iter().filter(|r| involves(r, id)).map(key_of).collect() };
    let keys = |v: &Value| -> BTreeSet<String> {
        v["conversations"].as_array().unwrap().iter().map(|x| x["key"].as_str().unwrap().to_string()).collect()
    };
    let zs = c.json(&ra, &format!("/api/corps/{a}/conversations?person=zhangsan&limit=500")).await;
    assert_eq!(keys(&zs), of("zhangsan"));
    let both = c.json(&rl, &format!("/api/corps/{a}/conversations?person=zhangsan&limit=500")).await;
    assert_eq!(keys(&both), of("zhangsan").intersection(&mine).cloned().collect::<BTreeSet<_>>());
    let not_mine = want.keys().find(|k| !mine.contains(*k)).unwrap();
    assert_eq!(c.status(Some(&rl), &format!("/api/corps/{a}/conversations/{not_mine}/messages")).await, 404);
    assert_eq!(c.status(Some(&rl), &format!("/api/corps/{a}/conversations/{not_mine}/export")).await, 404);
    let other = rows_a.iter().find(|r| !involves(r, limited_user)).unwrap();
    assert_eq!(c.status(Some(&rl), &format!("/api/corps/{a}/messages/{}", enc(&other.msgid))).await, 404);
    let ls = c.json(&rl, "/api/search?q=&limit=100").await;
    let lwant = rows_a.iter().filter(|r| involves(r, limited_user)).count();
    assert_eq!(ls["total"].as_u64().unwrap() as usize, lwant, "search counts only {limited_user}'s messages");
    let by_id: BTreeMap<&str, &Row> = rows_a.iter().map(|r| (r.msgid.as_str(), r)).collect();
    for h in ls["hits"].as_array().unwrap() {
        assert!(involves(by_id[h["msgid"].as_str().unwrap()], limited_user), "{h}");
    }
    let people = c.json(&ra, &format!("/api/corps/{a}/people")).await;
    let ids: Vec<&str> = people["people"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"zhangsan") && ids.contains(&"wmAbCdEf0123456789"), "{ids:?}");
    let kinds: BTreeMap<&str, &str> = people["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds["wmAbCdEf0123456789"], "external");
    assert_eq!(kinds["zhangsan"], "internal");
    assert!(kinds.iter().any(|(id, k)| id.starts_with("wb") && *k == "bot"));

    // (e) media, byte-exact.
    let (mid, item, _, bytes) = &media[&a][0];
    let murl = format!("/api/corps/{a}/media/{}/{item}", enc(mid));
    let (s, h, body) = c.get(Some(&ra), &murl, None).await;
    assert_eq!((s, body.as_slice()), (200, bytes.as_slice()));
    assert_eq!(h.get("content-type").unwrap(), "image/jpeg");
    let (s, h, body) = c.get(Some(&ra), &murl, Some("bytes=0-99")).await;
    assert_eq!((s, body.as_slice()), (206, &bytes[..100]));
    assert_eq!(h.get("content-range").unwrap().to_str().unwrap(), format!("bytes 0-99/{}", bytes.len()));
    let (s, _, body) = c.get(Some(&ra), &murl, Some("bytes=-100")).await;
    assert_eq!((s, body.as_slice()), (206, &bytes[bytes.len() - 100..]));
    let (s, _, body) = c.get(Some(&ra), &murl, Some("bytes=4000-")).await;
    assert_eq!((s, body.as_slice()), (206, &bytes[4000..]));
    let (s, h, _) = c.get(Some(&ra), &murl, Some(&format!("bytes={}-", bytes.len()))).await;
    assert_eq!(s, 416);
    assert_eq!(h.get("content-range").unwrap().to_str().unwrap(), format!("bytes */{}", bytes.len()));
    let (fid, fitem, fname, fbytes) = &media[&a][1];
    let (s, h, body) = c.get(Some(&ra), &format!("/api/corps/{a}/media/{}/{fitem}", enc(fid)), None).await;
    assert_eq!((s, body.as_slice()), (200, fbytes.as_slice()));
    assert_eq!(h.get("content-type").unwrap(), "application/pdf");
    let cd = h.get("content-disposition").unwrap().to_str().unwrap();
    assert!(
        cd.contains(&format!("filename*=UTF-8''{}", enc(fname).replace("%2D", "-").replace("%2E", "."))),
        "{cd} for {fname}"
    );
    assert_eq!(c.status(Some(&ra), &format!("{murl}?format=mp3")).await, 404, "no MP3 of an image");
    assert_eq!(c.status(Some(&ra), &format!("/api/corps/{a}/media/{}/99", enc(mid))).await, 404);
    let m = c.json(&ra, &format!("/api/corps/{a}/messages/{}", enc(mid))).await;
    assert_eq!(m["media"][0]["status"], "done");
    assert_eq!(m["media"][0]["url"], murl);
    // Voice: the original, and ?format=mp3 when the MP3 exists.
    let (vid, vitem, _, vbytes) = &media[&a][2];
    let vurl = format!("/api/corps/{a}/media/{}/{vitem}", enc(vid));
    let (s, h, body) = c.get(Some(&ra), &vurl, None).await;
    assert_eq!((s, body.as_slice()), (200, vbytes.as_slice()));
    assert_eq!(h.get("content-type").unwrap(), "audio/amr");
    let (s, h, body) = c.get(Some(&ra), &format!("{vurl}?format=mp3"), None).await;
    assert_eq!((s, &body[..5]), (200, b"ID3\x04\x00".as_slice()));
    assert_eq!(h.get("content-type").unwrap(), "audio/mpeg");
    assert!(h.get("content-disposition").unwrap().to_str().unwrap().contains(".mp3"));
    let vm = c.json(&ra, &format!("/api/corps/{a}/messages/{}", enc(vid))).await;
    assert_eq!(vm["media"][0]["mp3_url"], format!("{vurl}?format=mp3"));
    assert_eq!(c.status(Some(&ra), &format!("{vurl}?format=ogg")).await, 400);

    // (f) exports.
    let (s, h, zip) =
        c.get(Some(&ra), &format!("/api/corps/{a}/conversations/{big_key}/export?format=csv"), None).await;
    assert_eq!(s, 200);
    assert_eq!(h.get("content-type").unwrap(), "application/zip");
    let (csv, manifest) = open_export(&zip);
    assert!(csv.starts_with(BOM));
    let lines = std::str::from_utf8(&csv[3..]).unwrap().split("\r\n").filter(|l| !l.is_empty()).count();
    let rows_want = expect_ids.len().min(EXPORT_MAX as usize);
    assert_eq!(lines - 1, rows_want, "header + one line per message");
    assert_eq!(manifest["rows"], rows_want);
    assert_eq!(manifest["truncated"], expect_ids.len() > EXPORT_MAX as usize);
    assert_eq!(h.get("x-export-sha256").unwrap().to_str().unwrap(), sha256_hex(&csv));
    let (_, _, zip) =
        c.get(Some(&ra), &format!("/api/corps/{a}/conversations/{big_key}/export?format=jsonl"), None).await;
    let (jsonl, _) = open_export(&zip);
    let msgs: Vec<Value> =
        std::str::from_utf8(&jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(
        msgs.iter().map(|m| m["msgid"].as_str().unwrap().to_string()).collect::<Vec<_>>(),
        expect_ids[..rows_want].to_vec()
    );
    let (s, _, zip) = c.get(Some(&rl), "/api/search/export?q=&format=csv", None).await;
    assert_eq!(s, 200);
    let (csv, manifest) = open_export(&zip);
    assert_eq!(manifest["rows"], lwant.min(EXPORT_MAX as usize));
    assert!(csv.starts_with(BOM));
    assert_eq!(c.status(Some(&ra), &format!("/api/corps/{a}/conversations/{big_key}/export?format=xlsx")).await, 400);

    // (g) the access log: one event per read, with its action; failing closed.
    let events = recorder.events();
    assert_eq!(events.len(), c.served);
    let actions: BTreeSet<&str> = events.iter().map(|(_, e)| e.action.as_str()).collect();
    for want in [
        "list_corps",
        "list_conversations",
        "open_conversation",
        "read_message",
        "search",
        "fetch_media",
        "export",
        "list_people",
    ] {
        assert!(actions.contains(want), "{want} logged: {actions:?}");
    }
    assert!(events
        .iter()
        .all(|(who, e)| who.is_some() && (e.corpid.is_none() || e.corpid.as_deref() == Some(a.as_str()))));
    let exports: Vec<&Value> = events.iter().filter(|(_, e)| e.action == "export").map(|(_, e)| &e.detail).collect();
    assert!(exports.iter().all(|d| d["sha256"].as_str().is_some_and(|s| s.len() == 64)));
    recorder.set_failing(true);
    let (s, _, body) = c.get(Some(&ra), &format!("/api/corps/{a}/messages/{}", enc(&rows_a[0].msgid)), None).await;
    assert_eq!(s, 503);
    assert!(!String::from_utf8_lossy(&body).contains(&rows_a[0].msgid), "nothing served");
    let (s, _, body) = c.get(Some(&ra), &murl, Some("bytes=0-99")).await;
    assert_eq!(s, 503);
    assert!(body.len() < 100 || !body.starts_with(&bytes[..100]));
    recorder.set_failing(false);
    common::report(&format!("review_api {}: {} reads served and logged", db.name(), c.served));
    db.finish().await;
}

per_db!(review_api_reads_within_scope => review_api);

/// The review indexes reach message tables created before them, and new tables have them.
/// SQLite: a new table carries them as `UNIQUE (…, seq)` constraints (one CREATE per table);
/// an older one, made with `CREATE INDEX` statements and without the review indexes, gets them
/// from the next process's `ensure_corp_tables`. MySQL: dropped, then put back.
async fn indexes_added_to_older_tables(db: Db) {
    let store = open(&db).await;
    let corp = CorpId::new("wwolder0000000001").unwrap();
    store.ensure_corp_tables(&corp).await.unwrap();
    let t = corp.message_table();
    let m = corp.media_table();
    let (older, count) = if db.name() == "sqlite" {
        // An index whose leading columns are the review's, whatever made it (constraint or
        // CREATE INDEX); a trailing seq is allowed.
        let count = format!(
            "SELECT COUNT(*) FROM pragma_index_list('{t}') il WHERE \
             (SELECT group_concat(name, ',') FROM (SELECT name FROM pragma_index_info(il.name) ORDER BY seqno)) \
             IN ('roomid,msgtime,seq', 'roomid,msgfrom,msgtime', 'roomid,msgfrom,msgtime,seq')"
        );
        // The tables as an earlier version made them.
        let older = vec![
            format!("DROP TABLE \"{t}\""),
            format!("DROP TABLE \"{m}\""),
            format!(
                "CREATE TABLE \"{t}\" (id INTEGER PRIMARY KEY AUTOINCREMENT, msgid TEXT NOT NULL UNIQUE, \
                 publickey_ver INTEGER NOT NULL DEFAULT 1, seq INTEGER NOT NULL UNIQUE, action TEXT NOT NULL DEFAULT '', \
                 msgfrom TEXT NOT NULL DEFAULT '', tolist TEXT NULL, msgtype TEXT NOT NULL DEFAULT '', \
                 msgtime INTEGER NOT NULL DEFAULT 0, text TEXT NULL, sdkfield TEXT NULL, msgdata TEXT NULL, \
                 status INTEGER NOT NULL DEFAULT 0, media_code INTEGER NOT NULL DEFAULT 0, media_path TEXT NOT NULL DEFAULT '', \
                 roomid TEXT NOT NULL DEFAULT '', created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, decrypt_error TEXT NULL, \
                 encrypt_random_key TEXT NULL, encrypt_chat_msg TEXT NULL)"
            ),
            format!("CREATE INDEX \"idx_{t}_msgtime\" ON \"{t}\" (msgtime)"),
            format!("CREATE INDEX \"idx_{t}_roomid\" ON \"{t}\" (roomid)"),
            format!("CREATE INDEX \"idx_{t}_msgfrom\" ON \"{t}\" (msgfrom)"),
            format!(
                "CREATE TABLE \"{m}\" (id INTEGER PRIMARY KEY AUTOINCREMENT, msgid TEXT NOT NULL, item INTEGER NOT NULL DEFAULT 0, \
                 seq INTEGER NOT NULL, kind TEXT NOT NULL, sdkfileid TEXT NOT NULL, md5 TEXT NULL, size INTEGER NULL, \
                 ext TEXT NOT NULL DEFAULT '', filename TEXT NULL, play_length INTEGER NULL, status INTEGER NOT NULL DEFAULT 1, \
                 media_code INTEGER NOT NULL DEFAULT 0, path TEXT NULL, transcoded_path TEXT NULL, transcode_error TEXT NULL, \
                 attempts INTEGER NOT NULL DEFAULT 0, claimed_by TEXT NULL, claimed_at TEXT NULL, retry_at INTEGER NOT NULL DEFAULT 0, \
                 created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, updated TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, UNIQUE (msgid, item))"
            ),
            format!("CREATE INDEX \"idx_{m}_status\" ON \"{m}\" (status)"),
        ];
        (older, count)
    } else {
        (
            vec![
                format!("ALTER TABLE `{t}` DROP KEY idx_room_time"),
                format!("ALTER TABLE `{t}` DROP KEY idx_room_from"),
            ],
            format!(
                "SELECT COUNT(DISTINCT INDEX_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() \
                 AND TABLE_NAME = '{t}' AND INDEX_NAME IN ('idx_room_time', 'idx_room_from')"
            ),
        )
    };
    assert_eq!(db.int(&count, None).await, 2, "new tables have them");
    for d in &older {
        db.int(d, None).await;
    }
    assert_eq!(db.int(&count, None).await, 0);
    let next = open(&db).await;
    next.ensure_corp_tables(&corp).await.unwrap();
    assert_eq!(db.int(&count, None).await, 2, "added to the older table");
    if db.name() == "sqlite" {
        // The older table keeps its CREATE INDEX indexes and gets no constraint copies: three
        // old, two review, the status index, and the UNIQUE (msgid, item) of the media table.
        let made = format!(
            "SELECT (SELECT COUNT(*) FROM pragma_index_list('{t}') WHERE origin = 'c') * 10 \
             + (SELECT COUNT(*) FROM pragma_index_list('{m}') WHERE origin = 'c')"
        );
        assert_eq!(db.int(&made, None).await, 51);
    }
    db.finish().await;
}

per_db!(review_indexes_reach_older_tables => indexes_added_to_older_tables);

/// Times the review reads over `n` synthetic rows of one corp (200 people, 180 rooms, 60 % of the
/// messages in rooms): `cargo test --test integration -- --ignored review_api::scale`.
async fn scale(db: Db, n: u64) {
    use wework_msgaudit::store::{ConversationSel, Direction};
    let store = open(&db).await;
    let corp = CorpId::new("wwscale000000000001").unwrap();
    let user = |i: u64| format!("user{:03}", i % 200);
    let t0 = std::time::Instant::now();
    let mut seq = 0u64;
    while seq < n {
        let rows: Vec<Row> = (seq + 1..=(seq + 2000).min(n))
            .map(|s| {
                let roomid = if s % 5 < 3 { format!("wr{:06}", s % 300) } else { String::new() };
                let (from, to) = (user(s * 7), user(s * 13 + 1));
                let msgdata = serde_json::json!({"msgid": format!("m{s}"), "action": "send", "from": from, "tolist": [to],
                    "roomid": roomid, "msgtime": 1_700_000_000_000u64 + s * 1000, "msgtype": "text", "text": {"content": "你好 hello"}})
                .to_string();
                Row {
                    msgid: format!("m{s}"),
                    publickey_ver: 1,
                    seq: s,
                    action: "send".into(),
                    msgfrom: from,
                    tolist: to,
                    msgtype: "text".into(),
                    msgtime: 1_700_000_000_000 + s * 1000,
                    text: "你好 hello".into(),
                    msgdata,
                    roomid,
                    ..Row::default()
                }
            })
            .collect();
        seq += rows.len() as u64;
        store.write_batch(&corp, &rows, &[], seq).await.unwrap();
    }
    common::report(&format!("review scale {}: {n} rows written in {:?}", db.name(), t0.elapsed()));
    let who = vec!["user007".to_string()];
    macro_rules! time {
        ($what:expr, $e:expr) => {{
            let t = std::time::Instant::now();
            let v = $e;
            let d = t.elapsed();
            let t = std::time::Instant::now();
            let _ = $e;
            common::report(&format!(
                "review scale {} {n}: {:<40} {:>8.1} ms (again {:.1} ms)",
                db.name(),
                $what,
                d.as_secs_f64() * 1e3,
                t.elapsed().as_secs_f64() * 1e3
            ));
            v
        }};
    }
    time!("count", store.review_count(&corp, None).await.unwrap());
    time!("count, one userid", store.review_count(&corp, Some(&who)).await.unwrap());
    let rooms = time!("rooms (GROUP BY roomid)", store.review_rooms(&corp, None).await.unwrap());
    assert_eq!(rooms.len(), 180, "rooms r with r % 5 < 3");
    time!("rooms, one userid", store.review_rooms(&corp, Some(&who)).await.unwrap());
    let pairs = time!("pairs (GROUP BY msgfrom, tolist)", store.review_pairs(&corp, None, None).await.unwrap());
    time!("pairs, one userid", store.review_pairs(&corp, Some(&who), None).await.unwrap());
    time!("senders (GROUP BY roomid, msgfrom)", store.review_senders(&corp, None).await.unwrap());
    let room = ConversationSel::Room("wr000007".into());
    let page = time!(
        "room timeline, newest 50",
        store.review_timeline(&corp, &room, None, None, Direction::Before, 50).await.unwrap()
    );
    let pos = wework_msgaudit::store::TimelinePos { msgtime: page[49].msgtime, seq: page[49].seq };
    time!(
        "room timeline, 50 before a cursor",
        store.review_timeline(&corp, &room, None, Some(pos), Direction::Before, 50).await.unwrap()
    );
    let sel = ConversationSel::Pairs(pairs.iter().take(2).map(|g| (g.a.clone(), g.b.clone())).collect());
    time!(
        "pair timeline, newest 50",
        store.review_timeline(&corp, &sel, None, None, Direction::Before, 50).await.unwrap()
    );
    time!(
        "room timeline, one userid",
        store.review_timeline(&corp, &room, Some(&who), None, Direction::Before, 50).await.unwrap()
    );
    time!("one message by msgid", store.review_message(&corp, "m50000").await.unwrap());
    db.finish().await;
}

mod scale {
    use super::*;

    #[test]
    #[ignore = "a measurement: run with --ignored"]
    fn sqlite_100k() {
        common::block_on(async { scale(Db::sqlite().await, 100_000).await });
    }

    #[test]
    #[ignore = "a measurement: run with --ignored"]
    fn mysql_100k() {
        common::block_on(async {
            if let Some(db) = Db::mysql().await {
                scale(db, 100_000).await;
            }
        });
    }
}

/// The review API end to end through the daemon binary (`run`: emulator, the database of `db`,
/// `[search]` on, `[review] listen`), over real HTTP, users made with the CLI binary:
/// - without `[search]` the daemon refuses to start (exit 2); the OpenAPI document is open;
/// - `carol` (corps A and B) waits until both corps are stored, indexed and have media on disk,
///   and finds corp B's conversation, message and media item;
/// - `alice` (reviewer of A only) signs in (HttpOnly, SameSite=Strict cookie), sees only A in
///   `/api/corps`, gets 404 for B's conversation, message and media and 200 for A's (the media
///   byte-exact against the file on disk), only A hits for a term both corps hold, 404 for
///   `corp=B`; the admin gets 403 on reads; sign-out needs the CSRF token (403 without), then the
///   cookie gets 401;
/// - the auditor's `/api/access-log` holds exactly alice's reads in order, never of corp B; the
///   chain verifies over the API and with `audit verify` (while the daemon runs and after), and
///   the daemon exits 0 on SIGTERM.
async fn daemon_serves_the_review_api(db: Db) {
    use common::daemon::{free_port, request, write_corps, Answer, Daemon};
    use std::time::Instant;
    const RECORDS: u64 = 150;
    const PW: &str = "a long enough password";
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = ("wwreviewrunA000001".to_string(), "wwreviewrunB000002".to_string());
    write_corps(d, &[a.clone(), b.clone()], 5, RECORDS, "", None);
    let port = free_port();
    let media_root = d.join("msgfile");
    let write = |search: bool| {
        let config = format!(
            "[log]\nlevel = \"info\"\n[database]\nurl = \"{db}\"\n[sdk]\nlibrary = \"emulator\"\nthreads = 2\n\
             [pull]\npoll_interval = \"300ms\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n\
             [corps]\ntable = false\nfile = \"{corps}\"\n\
             [media]\nroot = \"{media}\"\nsweep_interval = \"300ms\"\nbackoff_initial = \"100ms\"\n\
             backoff_max = \"1s\"\ntranscode = false\n\
             [search]\nenabled = {search}\ndir = \"{index}\"\npoll_interval = \"300ms\"\n\
             [review]\nlisten = \"127.0.0.1:{port}\"\n",
            db = db.url,
            corps = d.join("corps.toml").display(),
            media = media_root.display(),
            index = d.join("index").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        d.join("config.toml")
    };
    let config = write(false);
    let cli = |args: &[&str], code: i32| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
            .args(args)
            .args(["--config", config.to_str().unwrap()])
            .env("WWF_EMULATOR_SCENARIO", d.join("scenario.toml"))
            .env("WEWORK_MSGAUDIT_LOG", "warn")
            .env("USER", "tester")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(code), "{args:?}:\n{text}");
        text
    };
    let refused = cli(&["run"], 2);
    assert!(refused.contains("[search] enabled"), "{refused}");

    // The users, with the CLI binary (before the daemon: the same database).
    let pw_file = d.join("pw");
    std::fs::write(&pw_file, format!("{PW}\n")).unwrap();
    let pw = pw_file.to_str().unwrap();
    cli(&["user", "add", "alice", "--role", "reviewer", "--corp", &a, "--password-file", pw], 0);
    cli(&["user", "add", "carol", "--role", "reviewer", "--corp", &a, "--corp", &b, "--password-file", pw], 0);
    cli(&["user", "add", "root", "--role", "admin", "--password-file", pw], 0);
    cli(&["user", "add", "audi", "--role", "auditor", "--password-file", pw], 0);

    let config = write(true);
    let mut daemon = Daemon::start(d, &config, 1, &[]);
    let deadline = Instant::now() + Duration::from_secs(240);
    let doc = loop {
        daemon.alive();
        match request(port, "GET", "/api/openapi.json", &[], None) {
            Some(r) if r.status == 200 => break r,
            _ => {}
        }
        assert!(Instant::now() < deadline, "the review API never answered:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(doc.json()["paths"]["/api/login"].is_object(), "the document is open and lists sign-in");

    // (method, path, JSON body) as the session `who` = (cookie, CSRF token).
    let call = |who: Option<&(String, String)>, method: &str, path: &str, body: Option<serde_json::Value>| -> Answer {
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some((cookie, csrf)) = who {
            headers.push(("Cookie", cookie));
            headers.push(("X-CSRF-Token", csrf));
        }
        request(port, method, path, &headers, body.as_ref()).unwrap_or_else(|| panic!("{method} {path}: no answer"))
    };
    let sign_in = |name: &str| -> ((String, String), Answer) {
        let r = call(None, "POST", "/api/login", Some(serde_json::json!({ "username": name, "password": PW })));
        assert_eq!(r.status, 200, "{name} signs in: {}", r.text());
        let cookie = r.header("set-cookie").expect("a session cookie").split(';').next().unwrap().to_string();
        let csrf = r.json()["csrf_token"].as_str().unwrap().to_string();
        ((cookie, csrf), r)
    };
    let get = |who: &(String, String), path: &str| call(Some(who), "GET", path, None);
    let json = |who: &(String, String), path: &str| {
        let r = get(who, path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    };

    // carol waits until both corps are stored and indexed, and each has an image on disk.
    let (carol, _) = sign_in("carol");
    let mut done_media: BTreeMap<String, (String, Value)> = BTreeMap::new();
    for corp in [&a, &b] {
        loop {
            daemon.alive();
            assert!(Instant::now() < deadline, "{corp} never got ingested, indexed and downloaded:\n{}", daemon.log());
            std::thread::sleep(Duration::from_millis(300));
            let corps = json(&carol, "/api/corps");
            let stored = corps["corps"].as_array().unwrap().iter().find(|c| c["corpid"] == corp.as_str()).cloned();
            let stored = stored.and_then(|c| c["messages"].as_u64()).unwrap_or(0);
            let indexed = json(&carol, &format!("/api/search?q=&corp={corp}&limit=1"))["total"].as_u64().unwrap();
            if stored < RECORDS || indexed != stored {
                continue;
            }
            let images = json(&carol, &format!("/api/search?q=&corp={corp}&msgtype=image&limit=50"));
            let found = images["hits"].as_array().unwrap().iter().find_map(|h| {
                let m = json(&carol, h["url"].as_str().unwrap());
                let item = m["media"].as_array().unwrap().iter().find(|i| i["status"] == "done").cloned()?;
                Some((m["msgid"].as_str().unwrap().to_string(), item))
            });
            if let Some(f) = found {
                done_media.insert(corp.clone(), f);
                break;
            }
        }
    }
    let first_conv = |who: &(String, String), corp: &str| -> (String, Value) {
        let convs = json(who, &format!("/api/corps/{corp}/conversations?limit=5"));
        let key = convs["conversations"][0]["key"].as_str().unwrap().to_string();
        let page = json(who, &format!("/api/corps/{corp}/conversations/{key}/messages?limit=5"));
        (key, page["messages"][0].clone())
    };
    let (b_key, b_msg) = first_conv(&carol, &b);
    let b_media = done_media[&b].1["url"].as_str().unwrap().to_string();
    // A term both corps hold (the emulator's texts): carol finds it in each.
    let term = ["合同", "会议", "报价", "周末", "收到"]
        .into_iter()
        .find(|t| {
            [&a, &b].iter().all(|c| {
                json(&carol, &format!("/api/search?q={}&corp={c}&limit=1", render::enc(t)))["total"].as_u64() > Some(0)
            })
        })
        .expect("a term in both corps");
    let head_before = json(&sign_in("audi").0, "/api/access-log?limit=1")["head"]["n"].as_u64().unwrap();

    // alice: corp A only.
    let (alice, login) = sign_in("alice");
    let set_cookie = login.header("set-cookie").unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly"), "{set_cookie}");
    assert!(set_cookie.contains("SameSite=Strict"), "{set_cookie}");
    assert!(!set_cookie.contains("Secure"), "plain HTTP to 127.0.0.1 (cookie_secure = auto): {set_cookie}");
    let corps = json(&alice, "/api/corps");
    let listed: Vec<&str> = corps["corps"].as_array().unwrap().iter().map(|c| c["corpid"].as_str().unwrap()).collect();
    assert_eq!(listed, [a.as_str()]);
    let b_msg_url = b_msg["url"].as_str().unwrap();
    for path in [
        format!("/api/corps/{b}/conversations"),
        format!("/api/corps/{b}/conversations/{b_key}/messages"),
        b_msg_url.to_string(),
        b_media.clone(),
    ] {
        assert_eq!(get(&alice, &path).status, 404, "alice: {path}");
    }
    let (a_key, a_msg) = first_conv(&alice, &a);
    assert_eq!(json(&alice, a_msg["url"].as_str().unwrap())["msgid"], a_msg["msgid"]);
    let (a_media_msgid, a_item) = &done_media[&a];
    let media = get(&alice, a_item["url"].as_str().unwrap());
    assert_eq!(media.status, 200, "{}", media.text());
    let md5 = a_item["md5"].as_str().unwrap().to_lowercase();
    let on_disk = common::files_under(&media_root.join(&a))
        .into_iter()
        .find(|p| common::md5_file(p).to_lowercase() == md5)
        .expect("the media file on disk");
    assert_eq!(media.body, std::fs::read(&on_disk).unwrap(), "byte-exact: {}", on_disk.display());
    let hits = json(&alice, &format!("/api/search?q={}&limit=100", render::enc(term)));
    let hits = hits["hits"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h["corp"] == a.as_str()), "only corp A hits: {hits:?}");
    assert_eq!(get(&alice, &format!("/api/search?q={}&corp={b}", render::enc(term))).status, 404);

    // The admin may not read.
    let (root, _) = sign_in("root");
    for path in ["/api/corps".to_string(), a_msg["url"].as_str().unwrap().to_string(), "/api/search?q=".to_string()] {
        assert_eq!(get(&root, &path).status, 403, "admin: {path}");
    }

    // Sign-out needs the CSRF token; then the cookie is dead.
    let no_csrf = request(port, "POST", "/api/logout", &[("Cookie", &alice.0)], None).unwrap();
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.text());
    assert_eq!(get(&alice, "/api/me").status, 200, "still signed in");
    assert_eq!(call(Some(&alice), "POST", "/api/logout", None).status, 200);
    assert_eq!(get(&alice, "/api/corps").status, 401);

    // The auditor sees alice's reads, in order, and nothing of corp B.
    let (audi, _) = sign_in("audi");
    let mut entries: Vec<Value> = Vec::new();
    let mut after = head_before;
    loop {
        let page = json(&audi, &format!("/api/access-log?after={after}&limit=1000"));
        entries.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
    }
    let alices: Vec<&Value> = entries.iter().filter(|e| e["username"] == "alice").collect();
    let actions: Vec<&str> = alices.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "login",
            "list_corps",
            "list_conversations",
            "open_conversation",
            "read_message",
            "fetch_media",
            "search",
            "logout"
        ],
        "{alices:#?}"
    );
    assert!(alices.iter().all(|e| e["corpid"] != b.as_str()), "no read of corp B logged for alice");
    assert_eq!(alices[3]["corpid"], a.as_str());
    assert!(alices[4]["target"] == a_msg["msgid"], "{:?}", alices[4]);
    assert!(alices[5]["target"] == a_media_msgid.as_str(), "{:?}", alices[5]);
    assert_eq!(alices[6]["target"], term);
    let _ = a_key;
    let verified = json(&audi, "/api/access-log/verify");
    assert_eq!(verified["intact"], true, "{verified}");

    // The CLI verifies the chain the daemon appended to, while it runs and after it stopped.
    cli(&["audit", "verify"], 0);
    let (status, _) = daemon.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", daemon.log());
    cli(&["audit", "verify"], 0);
    db.finish().await;
}

per_db!(review_daemon_end_to_end => daemon_serves_the_review_api);

/// The userid filter inside the queries matches whole ids only: `a_b` is not `axb` (LIKE
/// wildcards escaped), a receiver matches anywhere in `tolist` but not as part of another id.
async fn userid_filter_is_exact(db: Db) {
    let store = open(&db).await;
    let corp = CorpId::new("wwexact0000000001").unwrap();
    let row = |seq: u64, from: &str, to: &str| Row {
        msgid: format!("e{seq}"),
        seq,
        msgfrom: from.into(),
        tolist: to.into(),
        msgtype: "text".into(),
        msgtime: 1_700_000_000_000 + seq,
        msgdata: "{}".into(),
        ..Row::default()
    };
    let rows = [
        row(1, "axb", "c"),       // not a_b
        row(2, "c", "x,a_b,y"),   // a_b among the receivers
        row(3, "c", "a_b"),       // the only receiver
        row(4, "c", "xa_b,a_bx"), // ids that contain it: no
        row(5, "a_b", "c"),       // the sender
        row(6, "c", "a%b,a!b"),   // wildcards and the escape character: no
        row(7, "c", "d,a_b"),     // the last receiver
    ];
    store.write_batch(&corp, &rows, &[], 7).await.unwrap();
    let who = vec!["a_b".to_string()];
    assert_eq!(store.review_count(&corp, Some(&who)).await.unwrap(), Some(4));
    let pairs = store.review_pairs(&corp, Some(&who), None).await.unwrap();
    let mut got: Vec<(String, String)> = pairs.into_iter().map(|g| (g.a, g.b)).collect();
    got.sort();
    let want = [("a_b", "c"), ("c", "a_b"), ("c", "d,a_b"), ("c", "x,a_b,y")];
    assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    assert_eq!(store.review_count(&corp, Some(&["a!b".to_string()])).await.unwrap(), Some(1));
    assert_eq!(store.review_count(&corp, Some(&[])).await.unwrap(), Some(0), "an empty grant: nothing");
    db.finish().await;
}

per_db!(review_userid_filter_is_exact => userid_filter_is_exact);
