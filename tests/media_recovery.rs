//! What the media side finds at start-up, on SQLite and MariaDB.
//!
//! (a) A kill between the MP3's rename and the row update leaves a done voice item whose row
//!     still says the transcode was interrupted, with a complete MP3 beside the original: the
//!     media actors adopt it at start-up (the file untouched, the row naming it). An MP3 cut
//!     short, or with a byte of its audio changed, is made again; an item with no MP3 keeps its
//!     marker (a transcoder that kills the process is not retried).
//!     A look that fails (a row it cannot read) is made again each sweep, and records the MP3
//!     once it can, without a restart.
//! (b) The daemon with `[media] enabled = false` queues no media row: the items are kept held
//!     (status 0) with the message rows at status 1; started again with media on, it downloads
//!     them all. Through the binary (the configuration's wiring) and through the pipeline on both
//!     databases (the SQL); a Java-era table upgraded while media is off holds its items to
//!     download too (MariaDB).

use crate::common;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::daemon::{write_corps, Daemon};
use common::pipeline::{config, corpid, open, scenario, specs, wait_for, Db};
use common::{files_under, md5_file};
use wework_msgaudit::actors::media::{MediaSettings, TRANSCODE_INTERRUPTED};
use wework_msgaudit::actors::Pipeline;
use wework_msgaudit::corps::Sources;
use wework_msgaudit::media::download::{self, DownloadSettings};
use wework_msgaudit::media::transcode::{self, Mp3Options};
use wework_msgaudit::media::transcode_beside;
use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::sdk::{FinanceSdk, NetOptions};
use wework_msgaudit::secret::Secret;
use wework_msgaudit::store::{CorpId, MediaOutcome, Store};

const RECORDS: u64 = 200;

/// Downloads every pending item of `corp` the way the media worker does, and records a voice
/// item as the daemon records it just before transcoding: done, with the "interrupted" marker.
/// Returns the voice items' paths.
async fn download_all_as_if_killed_while_transcoding(
    store: &Arc<dyn Store>,
    sdk: &EmulatedSdk,
    corp: &CorpId,
    root: &Path,
) -> Vec<String> {
    let settings = DownloadSettings { root: root.to_path_buf(), owner: "adopt".into(), chunk_retries: 3 };
    let mut session = sdk.open(corp.as_str(), &Secret::new("secret-0")).unwrap();
    let mut voice = Vec::new();
    for _round in 0..50 {
        let jobs = store.claim_media(corp, "adopt", 100, i64::MAX).await.unwrap();
        if jobs.is_empty() {
            return voice;
        }
        for job in jobs {
            let stop = AtomicBool::new(false);
            let outcome = match download::download(&mut *session, corp, &job, &NetOptions::default(), &settings, &stop)
            {
                Ok(d) => {
                    let is_voice = d.sniffed.is_some_and(|s| s.is_transcodable_voice());
                    if is_voice {
                        voice.push(d.path.clone());
                    }
                    MediaOutcome::Done {
                        path: d.path,
                        transcoded_path: None,
                        transcode_error: is_voice.then(|| TRANSCODE_INTERRUPTED.to_string()),
                    }
                }
                Err(e) => MediaOutcome::Retry { code: e.media_code(), retry_at: 0 },
            };
            store.finish_media(corp, &job, &outcome).await.unwrap();
        }
    }
    panic!("media not drained")
}

/// `(transcoded_path, transcode_error)` of the item whose original is `path` ("" for NULL).
async fn transcode_columns(db: &Db, corp: &CorpId, path: &str) -> (String, String) {
    let sql = format!(
        "SELECT COALESCE(transcoded_path, ''), COALESCE(transcode_error, '') FROM media_{} WHERE path = '{path}'",
        corp.as_str()
    );
    db.pairs(&sql).await.pop().unwrap_or_else(|| panic!("no row has path {path}"))
}

/// The one corp's pages (of 100 records).
fn sources() -> Sources {
    Sources { fixed: specs(1, 100), ..Sources::default() }
}

/// The state a kill while transcoding leaves: the corp's records ingested through the pipeline
/// (media off), then every media item downloaded and recorded done, the voice ones with the
/// "interrupted" marker and no MP3 yet.
struct LeftByAKill {
    sdk: Arc<EmulatedSdk>,
    store: Arc<dyn Store>,
    corp: CorpId,
    dir: tempfile::TempDir,
    root: std::path::PathBuf,
    /// The voice items' paths under `root`.
    voice: Vec<String>,
}

async fn left_by_a_kill(db: &Db) -> LeftByAKill {
    let emu = Arc::new(emulator::Emulator::new(scenario(1, &[], RECORDS)).unwrap());
    let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
    let store = open(db).await;
    let p = Pipeline::start(Arc::clone(&store), sdk.clone(), sources(), &config()).unwrap();
    wait_for(&p, &[(corpid(0), RECORDS)], Duration::from_secs(60)).await;
    p.shutdown().await;
    let corp = CorpId::new(&corpid(0)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("msgfile");
    let voice = download_all_as_if_killed_while_transcoding(&store, &sdk, &corp, &root).await;
    LeftByAKill { sdk, store, corp, dir, root, voice }
}

/// Media on, the sweep every 200 ms.
fn media_config(root: &Path) -> wework_msgaudit::actors::PipelineConfig {
    let mut cfg = config();
    cfg.media = Some(MediaSettings {
        root: root.to_path_buf(),
        owner: "adopt".into(),
        sweep_interval: Duration::from_millis(200),
        ..MediaSettings::default()
    });
    cfg
}

async fn adoption(db: Db) {
    let LeftByAKill { sdk, store, corp, dir, root, voice } = left_by_a_kill(&db).await;
    assert!(voice.len() >= 4, "the scenario has at least 4 voice items: {voice:?}");
    // The state a kill leaves: [0] a complete MP3 beside the original; [1] an MP3 cut short; [2]
    // an MP3 with one audio byte changed; [3..] no MP3 (killed before the rename).
    let opts = Mp3Options { bitrate_kbps: 32, sample_rate: None, ..Default::default() };
    let tmp = dir.path().join("tmp");
    let mp3: Vec<String> = voice[..3].iter().map(|v| transcode_beside(&root, v, &tmp, &opts).unwrap()).collect();
    let complete_md5 = md5_file(&root.join(&mp3[0]));
    let want_md5: Vec<String> = voice[..3]
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let fresh = dir.path().join(format!("fresh-{i}.mp3"));
            transcode::transcode_file(&root.join(v), &fresh, &opts).unwrap();
            md5_file(&fresh)
        })
        .collect();
    assert_eq!(complete_md5, want_md5[0], "the transcoder is deterministic (the test relies on it)");
    let cut = root.join(&mp3[1]);
    let len = std::fs::metadata(&cut).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&cut).unwrap().set_len(len / 2).unwrap();
    let flipped = root.join(&mp3[2]);
    let mut bytes = std::fs::read(&flipped).unwrap();
    let at = bytes.len() - 30;
    bytes[at] ^= 0x20;
    std::fs::write(&flipped, bytes).unwrap();
    let untouched_mtime = std::fs::metadata(root.join(&mp3[0])).unwrap().modified().unwrap();
    for v in &voice {
        assert_eq!(transcode_columns(&db, &corp, v).await, (String::new(), TRANSCODE_INTERRUPTED.to_string()));
    }
    // Start-up with media on: nothing to download, the three MP3s settled.
    let p = Pipeline::start(Arc::clone(&store), sdk, sources(), &media_config(&root)).unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let mut settled = 0;
        for (v, m) in voice.iter().zip(&mp3) {
            if transcode_columns(&db, &corp, v).await == (m.clone(), String::new()) {
                settled += 1;
            }
        }
        if settled == 3 {
            break;
        }
        assert!(Instant::now() < until, "{settled} of 3 MP3s left by a kill recorded 30 s after start-up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the corp's start-up work end before looking at the files.
    tokio::time::sleep(Duration::from_millis(500)).await;
    p.shutdown().await;
    assert_eq!(md5_file(&root.join(&mp3[0])), complete_md5, "the complete MP3 is adopted as it is");
    assert_eq!(
        std::fs::metadata(root.join(&mp3[0])).unwrap().modified().unwrap(),
        untouched_mtime,
        "the complete MP3 is not rewritten"
    );
    for i in 1..3 {
        assert_eq!(md5_file(&root.join(&mp3[i])), want_md5[i], "the damaged MP3 {} is made again", mp3[i]);
    }
    for v in &voice[3..] {
        assert_eq!(
            transcode_columns(&db, &corp, v).await,
            (String::new(), TRANSCODE_INTERRUPTED.to_string()),
            "an item without an MP3 keeps its marker"
        );
        let beside = root.join(v).with_extension("mp3");
        assert!(!beside.exists(), "no MP3 is made for {v}");
    }
    let stray: Vec<_> = files_under(&root).into_iter().filter(|f| f.starts_with(root.join(".tmp"))).collect();
    assert!(stray.is_empty(), "{stray:?}");
    common::report(&format!(
        "media_recovery adoption ({}): {} voice items, 1 complete MP3 adopted untouched, 2 damaged MP3s made again, \
         {} without an MP3 kept their marker",
        if db.url.starts_with("sqlite") { "SQLite" } else { "MariaDB" },
        voice.len(),
        voice.len() - 3
    ));
    db.finish().await;
}

/// Media rows of `corp` by status: [held (0), pending, downloading, done, failed].
async fn by_status(db: &Db, corp: &str) -> [i64; 5] {
    let mut out = [0; 5];
    for (s, n) in out.iter_mut().enumerate() {
        *n = db
            .int(&format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM media_{corp} WHERE status = {s}"), None)
            .await;
    }
    out
}

/// Items of the truth of `corp` (corrupt records' media are unknown to the daemon).
fn truth_items(emu: &emulator::Emulator, corp: &str) -> i64 {
    emu.truth(corp).iter().filter(|t| !t.corrupt).map(|t| t.media.len()).sum::<usize>() as i64
}

/// Message rows of `corp` that have media, and of those the ones at status 1 with their
/// first item's sdkfileid.
async fn message_rows_with_media(db: &Db, corp: &str) -> (i64, i64) {
    let with = db
        .int(&format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM message_{corp} WHERE sdkfield <> ''"), None)
        .await;
    let pending = db
        .int(
            &format!(
                "SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM message_{corp} WHERE sdkfield <> '' AND status = 1 \
                 AND media_code = 0 AND media_path = ''"
            ),
            None,
        )
        .await;
    (with, pending)
}

#[test]
fn the_daemon_with_media_off_queues_nothing_and_downloads_all_once_media_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let corp = "wwmediaoff00000001".to_string();
    write_corps(dir.path(), std::slice::from_ref(&corp), 5, 150, "", None);
    let root = dir.path().join("msgfile");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let db = rt.block_on(Db::sqlite());
    let config = dir.path().join("config.toml");
    let write_config = |enabled: bool| {
        std::fs::write(
            &config,
            format!(
                "[database]\nurl = \"{db}\"\n[sdk]\nlibrary = \"emulator\"\nthreads = 1\n\
                 [pull]\npoll_interval = \"200ms\"\n[corps]\ntable = false\nfile = \"{corps}\"\n\
                 [log]\nformat = \"json\"\n\
                 [media]\nenabled = {enabled}\nroot = \"{root}\"\ninstance_id = \"off\"\nsweep_interval = \"200ms\"\n",
                db = db.url,
                corps = dir.path().join("corps.toml").display(),
                root = root.display()
            ),
        )
        .unwrap()
    };
    write_config(false);
    let sc: emulator::Scenario =
        toml::from_str(&std::fs::read_to_string(dir.path().join("scenario.toml")).unwrap()).unwrap();
    let emu = emulator::Emulator::new(sc).unwrap();
    let items = truth_items(&emu, &corp);
    assert!(items > 20, "{items}");
    // 1. Media off: every record stored, no item queued.
    let mut d = Daemon::start(dir.path(), &config, 1, &[]);
    let cursor = format!("SELECT CAST(seq AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = '{corp}'");
    let until = Instant::now() + Duration::from_secs(60);
    while rt.block_on(db.int(&cursor, None)) < 150 {
        d.alive();
        assert!(Instant::now() < until, "not ingested:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    // A few sweeps of nothing.
    std::thread::sleep(Duration::from_millis(800));
    let (status, _) = d.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", d.log());
    let s = rt.block_on(by_status(&db, &corp));
    assert_eq!(s[1..], [0, 0, 0, 0], "media off: no item pending, downloading, done or failed: {s:?}");
    assert_eq!(s[0], items, "every item is kept, held: {s:?}");
    let (with, pending) = rt.block_on(message_rows_with_media(&db, &corp));
    assert!(with > 0);
    assert_eq!(pending, with, "message rows with media stay at status 1 (not downloaded), as the Java schema has it");
    assert!(files_under(&root).is_empty(), "nothing downloaded: {:?}", files_under(&root));
    let stats = std::process::Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
        .args(["media", "stats", "--corp", &corp, "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.status.success(), "{text}");
    let held: i64 = text.lines().skip(1).map(|l| l.split_whitespace().last().unwrap().parse::<i64>().unwrap()).sum();
    assert_eq!(held, items, "`media stats` shows the held items:\n{text}");
    // 2. Media on: the held items are queued and downloaded, once each.
    write_config(true);
    let mut d = Daemon::start(dir.path(), &config, 2, &[]);
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        d.alive();
        let s = rt.block_on(by_status(&db, &corp));
        if s[3] == items {
            break;
        }
        assert!(Instant::now() < until, "not downloaded after media was turned on: {s:?}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, _) = d.terminate(Duration::from_secs(30));
    assert!(status.success(), "{status}:\n{}", d.log());
    let log = d.log();
    let queued = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["message"] == "media items stored while media was off are queued")
        .unwrap_or_else(|| panic!("no line says the held items were queued:\n{log}"));
    assert_eq!(queued["fields"]["items"].as_i64(), Some(items), "{queued}");
    let (_, pending) = rt.block_on(message_rows_with_media(&db, &corp));
    assert_eq!(pending, 0, "every message row mirrors its downloaded item");
    common::report(&format!(
        "media_recovery media off: {items} items held (0 queued) while off, {items}/{items} downloaded once on"
    ));
    rt.block_on(db.finish());
}

/// The same through the pipeline, on both databases: a store told to hold new media rows inserts
/// them held; the media actors queue and download them.
async fn held_then_released(db: Db) {
    let emu = Arc::new(emulator::Emulator::new(scenario(1, &[], 80)).unwrap());
    let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
    let store = open(&db).await;
    store.hold_new_media(true);
    let p = Pipeline::start(Arc::clone(&store), sdk.clone(), sources(), &config()).unwrap();
    wait_for(&p, &[(corpid(0), 80)], Duration::from_secs(60)).await;
    p.shutdown().await;
    let corp = corpid(0);
    let items = truth_items(&emu, &corp);
    let s = by_status(&db, &corp).await;
    assert_eq!(s, [items, 0, 0, 0, 0], "held, not pending");
    let stats = store.media_stats(&CorpId::new(&corp).unwrap()).await.unwrap();
    assert_eq!(stats.iter().filter(|c| c.status == 0).map(|c| c.count).sum::<u64>(), items as u64);
    // A store that no longer holds (media on) and the media actors.
    let store = open(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::start(store, sdk, sources(), &media_config(dir.path())).unwrap();
    let until = Instant::now() + Duration::from_secs(120);
    loop {
        let s = by_status(&db, &corp).await;
        if s[3] == items {
            break;
        }
        assert!(Instant::now() < until, "{s:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    p.shutdown().await;
    let (with, pending) = message_rows_with_media(&db, &corp).await;
    assert!(with > 0);
    assert_eq!(pending, 0);
    db.finish().await;
}

/// A Java-era message table upgraded while media is off: its done item stays done, the item
/// still to download is held (not queued) until media is on.
async fn java_items_held(db: Db) {
    const JAVA: &str = "ww0123456789abcdef";
    let ddl = include_str!("fixtures/java_schema.sql")
        .split(';')
        .find(|stmt| stmt.contains(&format!("CREATE TABLE `message_{JAVA}`")))
        .unwrap();
    let raw = sqlx::MySqlPool::connect(&db.url).await.unwrap();
    sqlx::raw_sql(ddl).execute(&raw).await.unwrap();
    let voice = r#"{"md5sum":"fedcba9876543210fedcba9876543210","voice_size":2000,"sdkfileid":"SDKF2"}"#;
    sqlx::raw_sql(&format!(
        "INSERT INTO `message_{JAVA}` (msgid, seq, msgtype, msgtime, sdkfield, msgdata, status, media_code, media_path) \
         VALUES ('m4', 12, 'image', 1700000000003, 'SDKF1', '{{}}', 1, 1, '/msgfile/{JAVA}/12.png'), \
         ('m5', 13, 'voice', 1700000000004, 'SDKF2', '{voice}', 1, 0, '')"
    ))
    .execute(&raw)
    .await
    .unwrap();
    raw.close().await;
    let store = open(&db).await;
    store.hold_new_media(true);
    let corp = CorpId::new(JAVA).unwrap();
    store.ensure_corp_tables(&corp).await.unwrap();
    let status =
        |msgid: &str| format!("SELECT CAST(status AS SIGNED INTEGER) FROM media_{JAVA} WHERE msgid = '{msgid}'");
    assert_eq!(db.int(&status("m4"), None).await, 3, "the Java item downloaded stays done");
    assert_eq!(db.int(&status("m5"), None).await, 0, "the Java item to download is held while media is off");
    assert_eq!(open(&db).await.release_held_media(&corp).await.unwrap(), 1);
    assert_eq!(db.int(&status("m5"), None).await, 1, "queued once media is on");
    db.finish().await;
}

/// A row that the look for cut-off transcodes cannot read (its msgid is not UTF-8: SQLite keeps
/// what it is given) fails the whole look at start-up, while recovering and claiming, which do
/// not read it, go on. The look is made again once a sweep interval has passed, not as fast as
/// the database answers; once the row is mended, the MP3 that a kill left beside another voice
/// item is recorded without a restart.
#[test]
fn a_look_for_cut_off_transcodes_that_fails_is_made_again_each_sweep_until_it_succeeds() {
    common::block_on(async {
        let db = Db::sqlite().await;
        let k = left_by_a_kill(&db).await;
        assert!(k.voice.len() >= 2, "the scenario has at least 2 voice items: {:?}", k.voice);
        let opts = Mp3Options { bitrate_kbps: 32, sample_rate: None, ..Default::default() };
        let mp3 = transcode_beside(&k.root, &k.voice[0], &k.dir.path().join("tmp"), &opts).unwrap();
        let table = format!("media_{}", k.corp.as_str());
        let (msgid, _) =
            db.pairs(&format!("SELECT msgid, '' FROM {table} WHERE path = '{}'", k.voice[1])).await.pop().unwrap();
        db.exec(&format!("UPDATE {table} SET msgid = X'FF' WHERE path = '{}'", k.voice[1])).await;

        let sweep = Duration::from_millis(200);
        let p = Pipeline::start(Arc::clone(&k.store), k.sdk.clone(), sources(), &media_config(&k.root)).unwrap();
        let counters = p.media_counters.clone().unwrap();
        let failed = || counters.adopt_failed.load(std::sync::atomic::Ordering::Relaxed);
        let until = Instant::now() + Duration::from_secs(30);
        while failed() < 3 {
            assert!(
                Instant::now() < until,
                "the failing look was made {} times in 30 s, not again and again",
                failed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (t0, n0) = (Instant::now(), failed());
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (looks, took) = (failed() - n0, t0.elapsed());
        let most = (took.as_millis() / sweep.as_millis()) as u64 + 2;
        assert!(looks <= most, "{looks} failed looks in {took:?}: at most one per sweep ({sweep:?}) expected");
        assert_eq!(
            transcode_columns(&db, &k.corp, &k.voice[0]).await,
            (String::new(), TRANSCODE_INTERRUPTED.to_string()),
            "nothing is recorded while the look fails"
        );

        db.exec(&format!("UPDATE {table} SET msgid = '{msgid}' WHERE path = '{}'", k.voice[1])).await;
        let until = Instant::now() + Duration::from_secs(30);
        while transcode_columns(&db, &k.corp, &k.voice[0]).await != (mp3.clone(), String::new()) {
            assert!(Instant::now() < until, "the MP3 left by a kill is not recorded 30 s after the row was mended");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        p.shutdown().await;
        common::report(&format!(
            "media_recovery failing look (SQLite): {looks} failed looks in {took:.1?} with a {sweep:?} sweep; after the \
             row was mended the MP3 was recorded without a restart"
        ));
        db.finish().await;
    });
}

per_db!(
    a_complete_mp3_left_by_a_kill_is_adopted_and_a_damaged_one_made_again => adoption,
    media_stored_while_off_is_held_then_downloaded => held_then_released,
);

#[test]
fn java_items_to_download_are_held_while_media_is_off_on_mariadb() {
    common::block_on(async {
        if let Some(db) = Db::mysql().await {
            java_items_held(db).await;
        }
    });
}
