//! Media downloads end to end without the actor system, on SQLite and MariaDB: emulator corps →
//! pipeline → `media_<corpid>` rows → claim → `media::download::download` → finish.
//!
//! (a) every media item of every msgtype (nested ones included), a 42 MiB file (84 chunks) and
//!     5 % failing chunks: every item reaches status 3, its bytes equal the emulator's original
//!     (MD5), its path follows `<corpid>/<yyyy>/<mm>/<dd>/<msgid>[-<n>].<ext>`, the message rows
//!     mirror status and `media_path`, and no temp file is left;
//! (b) a claimed item whose process died is requeued at start-up, or failed when its attempts
//!     are exhausted (decision 2); `Released` gives the attempt back;
//! (a') the same through the pipeline with the media actors (2 workers), voice transcoded to MP3;
//! (a'') a slow 42 MiB file of one corp does not hold back another corp's files, and a graceful
//!     shutdown gives its interrupted attempt back;
//! (c) hostile msgids and extensions write only inside the media root.

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use common::pipeline::{config, corpid, open, scenario, specs, wait_for, Db};
use common::{files_under, md5_file};
use std::sync::atomic::Ordering;
use wework_msgaudit::actors::media::{MediaSettings, TRANSCODE_INTERRUPTED};
use wework_msgaudit::actors::Pipeline;
use wework_msgaudit::corps::Sources;
use wework_msgaudit::media::download::{self, DownloadSettings};
use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::sdk::{FinanceSdk, NetOptions};
use wework_msgaudit::secret::Secret;
use wework_msgaudit::store::{CorpId, MediaJob, MediaOutcome, Store, MEDIA_CODE_ATTEMPTS_EXHAUSTED};

const RECORDS: u64 = 400;
const BIG: u64 = 42 << 20;

fn emulated(sc: emulator::Scenario) -> (Arc<emulator::Emulator>, Arc<EmulatedSdk>) {
    let emu = Arc::new(emulator::Emulator::new(sc).unwrap());
    let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
    (emu, sdk)
}

/// One corp of [`RECORDS`] records (every media msgtype), the [`BIG`] file, 5 % failing chunks.
fn big_file_with_failing_chunks() -> (Arc<emulator::Emulator>, Arc<EmulatedSdk>) {
    let mut sc = scenario(1, &[], RECORDS);
    sc.corp[0].big_file_bytes = BIG;
    sc.corp[0].faults.media_rc_rate = 0.05;
    sc.corp[0].faults.media_rc = 10001;
    emulated(sc)
}

/// Claims and downloads until nothing is left; returns (done, retried chunks and attempts).
async fn drain(store: &Arc<dyn Store>, sdk: &Arc<EmulatedSdk>, corp: &CorpId, secret: &str, root: &Path) -> (u64, u64) {
    let settings = DownloadSettings { root: root.to_path_buf(), owner: "test-owner".into(), chunk_retries: 3 };
    let mut session = sdk.open(corp.as_str(), &Secret::new(secret)).unwrap();
    let (mut done, mut retried) = (0, 0);
    for _round in 0..200 {
        let jobs = store.claim_media(corp, "test-owner", 16, i64::MAX).await.unwrap();
        if jobs.is_empty() {
            return (done, retried);
        }
        for job in jobs {
            let stop = AtomicBool::new(false);
            let result = download::download(&mut *session, corp, &job, &NetOptions::default(), &settings, &stop);
            let outcome = match result {
                Ok(d) => {
                    done += 1;
                    retried += d.retried_chunks;
                    MediaOutcome::Done { path: d.path, transcoded_path: None, transcode_error: None }
                }
                Err(e) if e.is_retryable() => {
                    retried += 1;
                    MediaOutcome::Retry { code: e.media_code(), retry_at: 0 }
                }
                Err(e) => panic!("item {} ({}) failed permanently: {e}", job.id, job.kind),
            };
            store.finish_media(corp, &job, &outcome).await.unwrap();
        }
    }
    panic!("media not drained after 200 rounds");
}

async fn every_item_lands(db: Db) {
    let (emu, sdk) = big_file_with_failing_chunks();
    let store = open(&db).await;
    let p = Pipeline::start(
        Arc::clone(&store),
        sdk.clone(),
        Sources { fixed: specs(1, 200), ..Sources::default() },
        &config(),
    )
    .unwrap();
    wait_for(&p, &[(corpid(0), RECORDS)], Duration::from_secs(120)).await;
    p.shutdown().await;
    let corp = CorpId::new(&corpid(0)).unwrap();
    let root = tempfile::tempdir().unwrap();
    let (done, retried) = drain(&store, &sdk, &corp, "secret-0", root.path()).await;
    let expected = verify(&db, &emu, &corp, root.path(), false).await;
    assert_eq!(done as usize, expected);
    assert!(retried > 0, "injected chunk failures must be retried");
    eprintln!("{done} done, {retried} chunks or attempts retried");
    db.finish().await;
}

/// Every media item of `corp` is stored (status 3), byte-exact, at its layout path, mirrored into
/// its message row; no stray file. Returns the number of items.
async fn verify(db: &Db, emu: &emulator::Emulator, corp: &CorpId, root: &Path, transcoded: bool) -> usize {
    let truth = emu.truth(corp.as_str());
    let expected: Vec<_> =
        truth.iter().filter(|t| !t.corrupt).flat_map(|t| t.media.iter().map(move |m| (t, m))).collect();
    let kinds: std::collections::BTreeSet<&str> = expected.iter().map(|(_, m)| m.kind.as_str()).collect();
    eprintln!("{} items ({kinds:?})", expected.len());
    for k in ["image", "voice", "video", "emotion", "file", "meeting_voice_call", "voip_doc_share"] {
        assert!(kinds.contains(k), "the scenario has {k} media");
    }
    assert!(expected.iter().any(|(_, m)| m.item > 0), "nested items");
    assert!(expected.iter().any(|(_, m)| m.size == BIG), "the big file");
    // Every file: bytes, layout; and the message rows mirror the first item.
    let paths: HashMap<(String, i64), (i64, Option<String>)> = db
        .rows_media(&format!(
            "SELECT msgid, CAST(item AS SIGNED INTEGER), CAST(status AS SIGNED INTEGER), path FROM media_{}",
            corp.as_str()
        ))
        .await
        .into_iter()
        .map(|(msgid, item, status, path)| ((msgid, item), (status, path)))
        .collect();
    for (t, m) in &expected {
        let (status, path) = &paths[&(t.msgid.clone(), i64::from(m.item))];
        assert_eq!(*status, 3);
        let path = path.as_deref().unwrap();
        let (y, mo, d) = download::utc_date(
            serde_json::from_str::<serde_json::Value>(&t.plaintext).unwrap()["msgtime"].as_u64().unwrap(),
        );
        let stem = download::file_stem(&t.msgid, m.item);
        assert!(path.starts_with(&format!("{}/{y:04}/{mo:02}/{d:02}/{stem}.", corp.as_str())), "{path}");
        if ["jpg", "png", "gif", "amr", "silk", "mp4"].contains(&m.ext.as_str()) {
            assert!(path.ends_with(&format!(".{}", m.ext)), "{path} sniffed as {}", m.ext);
        }
        assert_eq!(md5_file(&root.join(path)), m.md5, "{path}");
        if m.item == t.media.iter().map(|x| x.item).min().unwrap() {
            let mirrored = db
                .int(
                    &format!(
                        "SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM message_{} WHERE msgid = ? AND status = 3 \
                         AND media_code = 1 AND media_path = '{path}'",
                        corp.as_str()
                    ),
                    Some(&t.msgid),
                )
                .await;
            assert_eq!(mirrored, 1, "message row of {} mirrors {path}", t.msgid);
        }
    }
    let all = files_under(root);
    let voice = expected.iter().filter(|(_, m)| m.ext == "amr" || m.ext == "silk").count();
    let want = expected.len() + if transcoded { voice } else { 0 };
    assert_eq!(all.len(), want, "one file per item (+ an MP3 per voice file) and no temp file: {all:?}");
    if transcoded {
        let mp3 = db
            .int(
                &format!(
                    "SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM media_{} WHERE transcoded_path LIKE '%.mp3' \
                     AND transcode_error IS NULL",
                    corp.as_str()
                ),
                None,
            )
            .await;
        assert_eq!(mp3 as usize, voice, "every AMR/SILK item has its MP3");
        assert!(voice > 0);
    }
    expected.len()
}

async fn through_the_media_actors(db: Db) {
    let (emu, sdk) = big_file_with_failing_chunks();
    let root = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.media = Some(MediaSettings {
        root: root.path().to_path_buf(),
        owner: "actors".into(),
        workers: 2,
        per_corp: 2,
        chunk_retries: 1,
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        sweep_interval: Duration::from_millis(200),
        ..MediaSettings::default()
    });
    let p =
        Pipeline::start(open(&db).await, sdk, Sources { fixed: specs(1, 200), ..Sources::default() }, &cfg).unwrap();
    wait_for(&p, &[(corpid(0), RECORDS)], Duration::from_secs(120)).await;
    let corp = CorpId::new(&corpid(0)).unwrap();
    let want = emu.truth(corp.as_str()).iter().filter(|t| !t.corrupt).map(|t| t.media.len()).sum::<usize>() as i64;
    let settled = format!(
        "SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM media_{} WHERE status = 3 AND (transcode_error IS NULL OR \
         transcode_error <> '{TRANSCODE_INTERRUPTED}')",
        corp.as_str()
    );
    let until = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let n = db.int(&settled, None).await;
        if n == want {
            break;
        }
        assert!(std::time::Instant::now() < until, "{n} of {want} media items settled");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let counters = p.media_counters.clone().unwrap();
    p.shutdown().await;
    verify(&db, &emu, &corp, root.path(), true).await;
    eprintln!(
        "actors: {} done, {} retried, {} transcoded",
        counters.done.load(Ordering::Relaxed),
        counters.retried.load(Ordering::Relaxed),
        counters.transcoded.load(Ordering::Relaxed)
    );
    db.finish().await;
}

/// Corp 0 has a 42 MiB file on a slow link (300 ms per chunk: 25 s); corp 1 has small files
/// only. With 2 workers and 1 item per corp, corp 1's media all land while corp 0's big file is
/// still downloading; a graceful shutdown then gives the big file's attempt back.
async fn big_file_does_not_block_other_corps(db: Db) {
    let mut sc = scenario(2, &[], 60);
    sc.corp[0].big_file_bytes = BIG;
    sc.corp[0].faults.media_chunk_ms = 300;
    for c in &mut sc.corp {
        c.faults.chat_rc_rate = 0.0;
        c.faults.corrupt_rate = 0.0;
    }
    let (emu, sdk) = emulated(sc);
    let root = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.media = Some(MediaSettings {
        root: root.path().to_path_buf(),
        owner: "fair".into(),
        workers: 2,
        per_corp: 1,
        sweep_interval: Duration::from_millis(200),
        ..MediaSettings::default()
    });
    let p =
        Pipeline::start(open(&db).await, sdk, Sources { fixed: specs(2, 100), ..Sources::default() }, &cfg).unwrap();
    wait_for(&p, &[(corpid(0), 60), (corpid(1), 60)], Duration::from_secs(60)).await;
    let want1 = emu.truth(&corpid(1)).iter().map(|t| t.media.len()).sum::<usize>() as i64;
    let done1 = format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM media_{} WHERE status = 3", corpid(1));
    let big0 = format!("SELECT CAST(status AS SIGNED INTEGER) FROM media_{} WHERE size = {BIG}", corpid(0));
    let until = std::time::Instant::now() + Duration::from_secs(120);
    while db.int(&done1, None).await < want1 {
        assert!(std::time::Instant::now() < until, "corp 1's media did not land");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let big = db.int(&big0, None).await;
    assert_ne!(big, 3, "the big file finished before the other corp's small files: no contention was shown");
    // Make sure it is really in flight, then stop gracefully.
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while db.int(&big0, None).await != 2 {
        assert!(std::time::Instant::now() < until, "the big file never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.shutdown().await;
    let attempts = format!(
        "SELECT CAST(attempts AS SIGNED INTEGER) FROM media_{} WHERE size = {BIG} AND status = 1 AND claimed_by IS NULL",
        corpid(0)
    );
    assert_eq!(db.int(&attempts, None).await, 0, "the interrupted attempt was given back");
    let parts = files_under(&root.path().join(".tmp"));
    assert!(parts.is_empty(), "{parts:?}");
    db.finish().await;
}

async fn recovery_and_poison(db: Db) {
    let (_emu, sdk) = emulated(scenario(1, &[], 60));
    let store = open(&db).await;
    let p = Pipeline::start(Arc::clone(&store), sdk, Sources { fixed: specs(1, 100), ..Sources::default() }, &config())
        .unwrap();
    wait_for(&p, &[(corpid(0), 60)], Duration::from_secs(60)).await;
    p.shutdown().await;
    let corp = CorpId::new(&corpid(0)).unwrap();
    let pending = |s: &[wework_msgaudit::store::MediaCount], st: u8| -> u64 {
        s.iter().filter(|c| c.status == st).map(|c| c.count).sum()
    };
    let total = pending(&store.media_stats(&corp).await.unwrap(), 1);
    assert!(total >= 4, "{total}");
    // Two claims by a dead instance "a", one by the live "b".
    let a = store.claim_media(&corp, "a", 2, i64::MAX).await.unwrap();
    let b = store.claim_media(&corp, "b", 1, i64::MAX).await.unwrap();
    assert_eq!((a.len(), b.len()), (2, 1));
    assert!(a.iter().chain(&b).all(|j| j.attempts == 1));
    assert_ne!(a[0].id, b[0].id);
    // "a" restarts: its items come back, "b"'s claim (fresh) stays.
    let r = store.recover_media(&corp, "a", Duration::from_secs(3600), 5).await.unwrap();
    assert_eq!((r.requeued, r.failed), (2, 0));
    assert_eq!(pending(&store.media_stats(&corp).await.unwrap(), 2), 1);
    // A released attempt does not count; a stale claim of anyone is taken back.
    store.finish_media(&corp, &b[0], &MediaOutcome::Released).await.unwrap();
    let again = store.claim_media(&corp, "b", 1, i64::MAX).await.unwrap();
    assert_eq!(again[0].attempts, if again[0].id == b[0].id { 1 } else { 2 });
    store.finish_media(&corp, &again[0], &MediaOutcome::Released).await.unwrap();
    // Poison: items claimed (and crashed on) max_attempts times fail instead of looping.
    let mut failed = 0;
    for _cycle in 0..5 {
        for j in store.claim_media(&corp, "c", 1000, i64::MAX).await.unwrap() {
            assert!(j.attempts <= 3, "an item over its limit was handed out again: {j:?}");
        }
        failed += store.recover_media(&corp, "c", Duration::from_secs(3600), 3).await.unwrap().failed;
    }
    assert_eq!(failed, total, "every item failed after 3 crashed attempts");
    let code = db
        .int(
            &format!(
                "SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM media_{} WHERE status = 4 AND media_code = {}",
                corp.as_str(),
                MEDIA_CODE_ATTEMPTS_EXHAUSTED
            ),
            None,
        )
        .await;
    assert_eq!(code as u64, total);
    // `media retry`: failed items back to pending with a fresh counter.
    assert_eq!(store.requeue_media(&corp, 4).await.unwrap(), total);
    let stats = store.media_stats(&corp).await.unwrap();
    assert_eq!((pending(&stats, 4), pending(&stats, 1)), (0, total));
    assert!(store.claim_media(&corp, "d", 1000, i64::MAX).await.unwrap().iter().all(|j| j.attempts == 1));
    db.finish().await;
}

#[test]
fn hostile_names_stay_inside_the_media_root() {
    let emu = Arc::new(emulator::Emulator::demo());
    let corp_s = emu.corpids().remove(0);
    let truth = emu.truth(&corp_s);
    let item = truth.iter().flat_map(|t| t.media.iter()).find(|m| m.kind == "file").unwrap().clone();
    let sdk = EmulatedSdk::new(Arc::clone(&emu));
    let mut session = sdk.open(&corp_s, &Secret::new(emulator::DEMO_SECRET)).unwrap();
    let corp = CorpId::new(&corp_s).unwrap();
    let root = tempfile::tempdir().unwrap();
    let settings = DownloadSettings { root: root.path().join("media"), owner: "../../owner".into(), chunk_retries: 1 };
    let long = "n".repeat(10_000);
    for (i, (msgid, ext)) in [
        ("../../etc/passwd", "../../etc/passwd"),
        ("a/b\0c", "x/y"),
        (long.as_str(), long.as_str()),
        ("..", ".."),
        ("", ""),
    ]
    .into_iter()
    .enumerate()
    {
        let job = MediaJob {
            id: i as u64 + 1,
            msgid: msgid.into(),
            item: 0,
            seq: 1,
            msgtime: 1_700_000_000_000,
            kind: "file".into(),
            sdkfileid: item.sdkfileid.clone(),
            md5: Some(item.md5.clone()),
            size: Some(item.size),
            ext: ext.into(),
            filename: Some(msgid.into()),
            play_length: None,
            attempts: 1,
        };
        let d =
            download::download(&mut *session, &corp, &job, &NetOptions::default(), &settings, &AtomicBool::new(false))
                .unwrap();
        let p = settings.root.join(&d.path).canonicalize().unwrap();
        assert!(p.starts_with(settings.root.canonicalize().unwrap()), "{p:?}");
        assert!(d.path.len() < 300, "{}", d.path.len());
        assert_eq!(md5_file(&p), item.md5);
    }
    let all = files_under(root.path());
    assert!(all.iter().all(|p| p.starts_with(root.path().join("media"))), "{all:?}");
    assert_eq!(all.iter().filter(|p| p.extension().is_some_and(|e| e == "part")).count(), 0);
}

per_db!(
    every_media_item_lands_verified => every_item_lands,
    claims_are_recovered_and_poison_items_fail => recovery_and_poison,
    every_media_item_lands_through_the_media_actors => through_the_media_actors,
);

#[test]
fn a_big_file_does_not_block_the_small_files_of_other_corps_on_sqlite() {
    common::block_on(async { big_file_does_not_block_other_corps(Db::sqlite().await).await });
}
