//! The vendor SDK crashing or hanging inside the daemon (issue 12, points 3 and 4), with the
//! emulator's drop-in `.so` and its crash faults (`crash_seq`, `media_crash_seq`,
//! `media_hang_seq`), end to end with the daemon binary:
//!
//! - **drill**: three corps; GetChatData aborts (SIGABRT) on one corp's page after seq 100,
//!   GetMediaData segfaults on one file of a second corp and never returns for one file of the
//!   third; one media worker (so a hung call would hold every download). The daemon process
//!   survives (same pid throughout), the other corps ingest to their exact ground truth, every
//!   other media file completes byte-exact, the crashing and the hanging file fail for good,
//!   the poisoned corp is reported failing by `/healthz` (503, naming it and the crashes).
//! - **in-process watchdog**: the same hung GetMediaData with the in-process emulator (no child
//!   processes): the media worker gives up on the call after the SDK's worst case and the other
//!   files of the corp complete.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::daemon::{children, free_port, get, Daemon};
use common::pipeline::{check_corp, Db};
use common::{emulator_so, md5_file};

const SEED: u64 = 31;
const RECORDS: u64 = 240;
const POISON: &str = "wwsdkiso0000000001";
const MEDIA_CRASH: &str = "wwsdkiso0000000002";
const MEDIA_HANG: &str = "wwsdkiso0000000003";
/// The poisoned corp's GetChatData aborts on the page that holds this seq.
const CRASH_SEQ: u64 = 150;
/// Records per GetChatData call (so the poisoned corp stores 100 records first).
const LIMIT: u32 = 50;

fn secret(corp: &str) -> String {
    format!("iso-{}-s3cr3t", &corp[corp.len() - 4..])
}

/// The scenario: the DEMO-ONLY keys 1..=3, `faults[i]` for corp i.
fn scenario_toml(corps: &[(&str, String)]) -> String {
    let mut t = format!("seed = {SEED}\n");
    for (id, faults) in corps {
        t.push_str(&format!("[[corp]]\ncorpid = \"{id}\"\nsecret = \"{}\"\nrecords = {RECORDS}\n", secret(id)));
        for ver in 1..=3 {
            let pem = emulator::demo_private_key_pem(ver).unwrap();
            t.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
        }
        t.push_str(&format!("[corp.faults]\n{faults}\n"));
    }
    t
}

/// The seqs of the records of `corp` that carry exactly one media item (each attempt at a file
/// that hangs holds the only media worker until its deadline: one item is enough).
fn media_seqs(emu: &emulator::Emulator, corp: &str) -> Vec<u64> {
    emu.truth(corp).into_iter().filter(|t| t.media.len() == 1 && !t.corrupt).map(|t| t.seq).collect()
}

/// `(status, path)` of every media item of `corp`'s record `seq`.
async fn media_rows(db: &Db, corp: &str, msgid: &str) -> Vec<(String, i64, i64, Option<String>)> {
    db.rows_media(&format!(
        "SELECT msgid, CAST(item AS SIGNED INTEGER), CAST(status AS SIGNED INTEGER), path FROM media_{corp} \
         WHERE msgid = '{msgid}'"
    ))
    .await
}

async fn cursor(db: &Db, corp: &str) -> u64 {
    db.int("SELECT CAST(seq AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = ?", Some(corp)).await as u64
}

async fn open_media(db: &Db, corp: &str) -> i64 {
    if cursor(db, corp).await == 0 {
        return 1;
    }
    db.int(&format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM media_{corp} WHERE status IN (1, 2)"), None).await
}

#[test]
fn drill_vendor_sdk_crashes_and_hangs_are_contained_in_child_processes() {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(drill());
}

async fn drill() {
    let t0 = Instant::now();
    let plain: Vec<(&str, String)> = [POISON, MEDIA_CRASH, MEDIA_HANG].iter().map(|c| (*c, String::new())).collect();
    let truth = emulator::Emulator::new(toml::from_str(&scenario_toml(&plain)).unwrap()).unwrap();
    // The files that crash and hang: the media of a record in the middle of the backlog.
    let crash_media = media_seqs(&truth, MEDIA_CRASH).into_iter().find(|s| *s > 40).unwrap();
    let hang_media = media_seqs(&truth, MEDIA_HANG).into_iter().find(|s| *s > 60).unwrap();
    let corps = [
        (POISON, format!("crash_seq = {CRASH_SEQ}\ncrash = \"abort\"")),
        (MEDIA_CRASH, format!("media_crash_seq = {crash_media}\ncrash = \"segv\"")),
        (MEDIA_HANG, format!("media_hang_seq = {hang_media}")),
    ];
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("keys")).unwrap();
    std::fs::create_dir_all(d.join("msgfile")).unwrap();
    for ver in 1..=3 {
        std::fs::write(d.join(format!("keys/v{ver}.pem")), emulator::demo_private_key_pem(ver).unwrap()).unwrap();
    }
    std::fs::write(d.join("scenario.toml"), scenario_toml(&corps)).unwrap();
    let mut corps_file = String::new();
    for (id, _) in &corps {
        corps_file.push_str(&format!("[[corp]]\ncorpid = \"{id}\"\nsecret = \"{}\"\nlimits = {LIMIT}\n", secret(id)));
        for ver in 1..=3 {
            corps_file.push_str(&format!("[[corp.key]]\nver = {ver}\nfile = \"keys/v{ver}.pem\"\n"));
        }
    }
    std::fs::write(d.join("corps.toml"), corps_file).unwrap();
    let db = Db::sqlite().await;
    let port = free_port();
    let root = d.join("msgfile");
    // The default [sdk] isolation; one media worker: a call that never returns would hold every
    // download of every corp.
    let config = d.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{db}\"\n[sdk]\nlibrary = \"{so}\"\nthreads = 2\ntimeout = \"1s\"\n\
             [pull]\npoll_interval = \"200ms\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"2s\"\n\
             [corps]\ntable = false\nfile = \"{corps}\"\nreload_interval = \"1h\"\n\
             [media]\nenabled = true\nroot = \"{root}\"\nworkers = 1\nper_corp = 1\nmax_attempts = 2\n\
             backoff_initial = \"100ms\"\nbackoff_max = \"500ms\"\nsweep_interval = \"300ms\"\ntranscode = false\n\
             [http]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"info\"\nformat = \"json\"\n",
            db = db.url,
            so = emulator_so().display(),
            corps = d.join("corps.toml").display(),
            root = root.display(),
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(d, &config, 1, &[]);
    let pid = daemon.child.id();
    let until = Instant::now() + Duration::from_secs(240);
    let healthz = loop {
        daemon.alive();
        let poisoned_at = cursor(&db, POISON).await;
        let others_done = cursor(&db, MEDIA_CRASH).await == RECORDS && cursor(&db, MEDIA_HANG).await == RECORDS;
        let mut media_settled = true;
        for c in [POISON, MEDIA_CRASH, MEDIA_HANG] {
            media_settled &= open_media(&db, c).await == 0;
        }
        let health = get(port, "/healthz");
        let named = health.as_ref().is_some_and(|(code, body)| *code == 503 && body.contains(POISON));
        if poisoned_at == 100 && others_done && media_settled && named {
            break health.unwrap();
        }
        assert!(
            Instant::now() < until,
            "not settled: poisoned corp at {poisoned_at}, others done {others_done}, media settled \
             {media_settled}, /healthz {health:?}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    daemon.alive();
    assert_eq!(daemon.child.id(), pid, "the daemon is the same process");
    // Its SDK children run the lean worker installed beside its binary (as cargo builds both).
    // (A child that just crashed and is not yet reaped has no exe: left out.)
    let workers: Vec<_> = children(pid)
        .into_iter()
        .filter_map(|c| Some((std::fs::read_link(format!("/proc/{c}/exe")).ok()?, c)))
        .collect();
    assert!(!workers.is_empty(), "the daemon has sdk-worker children");
    for (exe, c) in &workers {
        assert!(exe.ends_with(wework_msgaudit::sdk::process::WORKER_BINARY), "child {c} runs {}", exe.display());
        assert_eq!(std::fs::read_to_string(format!("/proc/{c}/comm")).unwrap().trim(), "sdk-worker");
    }
    // /healthz names the poisoned corp, why, and no other corp.
    let (_, body) = &healthz;
    assert!(body.contains("crashed 3 times"), "{body}");
    assert!(body.contains("seq 100"), "{body}");
    assert!(!body.contains(MEDIA_CRASH) && !body.contains(MEDIA_HANG), "{body}");
    // The other corps: their exact ground truth.
    for c in [MEDIA_CRASH, MEDIA_HANG] {
        check_corp(&db, &truth, c).await;
    }
    assert_eq!(cursor(&db, POISON).await, 100, "the poisoned corp stored what came before its poison page");
    // Media: every file but the crashing and the hanging one byte-exact; those two failed for good.
    let (mut exact, mut failed) = (0, Vec::new());
    for c in [POISON, MEDIA_CRASH, MEDIA_HANG] {
        let stored = cursor(&db, c).await;
        for t in truth.truth(c).into_iter().filter(|t| t.seq <= stored && !t.corrupt) {
            let rows = media_rows(&db, c, &t.msgid).await;
            assert_eq!(rows.len(), t.media.len(), "{c} seq {}: media rows", t.seq);
            for (_, item, status, path) in rows {
                let want = t.media.iter().find(|m| i64::from(m.item) == item).unwrap();
                if (c == MEDIA_CRASH && t.seq == crash_media) || (c == MEDIA_HANG && t.seq == hang_media) {
                    assert_eq!(status, 4, "{c} seq {}: the poisoned file failed for good", t.seq);
                    failed.push((c, t.seq));
                    continue;
                }
                assert_eq!(status, 3, "{c} seq {} item {item}: done", t.seq);
                let file = root.join(path.unwrap());
                assert_eq!(md5_file(&file), want.md5, "{c} seq {} item {item}", t.seq);
                exact += 1;
            }
        }
    }
    assert!(failed.iter().any(|f| f.0 == MEDIA_CRASH) && failed.iter().any(|f| f.0 == MEDIA_HANG), "{failed:?}");
    let log = daemon.log();
    assert!(log.contains("signal 11") && log.contains("signal 6"), "the crashes are logged:\n{log}");
    // The poisoned page was fed to the SDK exactly 3 times (then quarantined, not re-crashed at
    // every retry of the failing corp).
    let chat_crashes =
        log.lines().filter(|l| l.contains("the vendor SDK crashed; its sdk-worker") && l.contains(POISON)).count();
    assert_eq!(chat_crashes, 3, "{log}");
    let (status, _) = daemon.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit {status}:\n{}", daemon.log());
    common::report(&format!(
        "drill sdk crash/hang: daemon pid {pid} unchanged; 2/2 other corps {RECORDS}/{RECORDS} exact; poisoned corp \
         stopped at seq 100 and failing (the poisonous page fed to the SDK 3 times); {exact} media byte-exact, \
         {} poisoned files failed for good ({:.1} s)",
        failed.len(),
        t0.elapsed().as_secs_f64()
    ));
    db.finish().await;
}

/// In-process (no child processes: the emulator rlib, as `demo` and `library = "emulator"`): a
/// GetMediaData that never returns no longer holds the only media worker for good.
#[test]
fn in_process_hung_get_media_data_releases_the_media_worker() {
    use common::pipeline::{config, corpid, keyring, open, wait_for};
    use wework_msgaudit::actors::media::MediaSettings;
    use wework_msgaudit::actors::Pipeline;
    use wework_msgaudit::corps::{CorpSpec, Sources};
    use wework_msgaudit::sdk::emulated::EmulatedSdk;
    use wework_msgaudit::sdk::SdkTimeout;
    use wework_msgaudit::secret::Secret;
    use wework_msgaudit::store::CorpId;

    actix_rt::System::new().block_on(async {
        let id = corpid(0);
        let mut sc = common::pipeline::scenario(1, &[], 120);
        sc.corp[0].faults = emulator::Faults::default();
        let plain = emulator::Emulator::new(sc.clone()).unwrap();
        let hang = media_seqs(&plain, &id).into_iter().find(|s| *s > 20).unwrap();
        sc.corp[0].faults.media_hang_seq = hang;
        let emu = Arc::new(emulator::Emulator::new(sc).unwrap());
        let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
        let db = Db::sqlite().await;
        let store = open(&db).await;
        let media_root = tempfile::tempdir().unwrap();
        let mut cfg = config();
        cfg.media = Some(MediaSettings {
            root: media_root.path().to_path_buf(),
            workers: 1,
            per_corp: 1,
            max_attempts: 1,
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_millis(200),
            sweep_interval: Duration::from_millis(200),
            transcode: false,
            ..MediaSettings::default()
        });
        let spec = CorpSpec::new(
            CorpId::new(&id).unwrap(),
            "hang",
            Secret::new("secret-0"),
            1000,
            SdkTimeout::from_secs(1),
            keyring(),
        );
        let p = Pipeline::start(store, sdk, Sources { fixed: vec![spec], ..Sources::default() }, &cfg).unwrap();
        wait_for(&p, &[(id.clone(), 120)], Duration::from_secs(60)).await;
        let until = Instant::now() + Duration::from_secs(90);
        while open_media(&db, &id).await > 0 {
            assert!(Instant::now() < until, "media still open: the hung call holds the only worker");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let truth = emu.truth(&id);
        let mut done = 0;
        for t in truth.iter().filter(|t| !t.media.is_empty() && !t.corrupt) {
            for (_, item, status, path) in media_rows(&db, &id, &t.msgid).await {
                if t.seq == hang {
                    assert_eq!(status, 4, "the hung file failed (max_attempts 1)");
                    continue;
                }
                assert_eq!(status, 3, "seq {} item {item}", t.seq);
                let want = t.media.iter().find(|m| i64::from(m.item) == item).unwrap();
                assert_eq!(md5_file(&media_root.path().join(path.unwrap())), want.md5);
                done += 1;
            }
        }
        assert!(done > 5, "{done}");
        p.shutdown().await;
        db.finish().await;
    });
}
