//! Hot reload through the `corplist` table while the pipeline runs (SQLite and MariaDB): an
//! inserted corp starts, a disabled one stops, a modified one restarts, `update = 1` restarts
//! exactly that corp once and is reset to 0; every other corp keeps its actor (same generation)
//! and the stored data equals the emulator's truth (no loss, no duplicate).

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pipeline::{check_corp, config, corpid, open, scenario, Db};
use wework_msgaudit::actors::supervisor::Running;
use wework_msgaudit::actors::Pipeline;
use wework_msgaudit::corps::{Defaults, Sources};
use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::sdk::SdkTimeout;
use wework_msgaudit::secret::Secret;
use wework_msgaudit::store::{CorpId, CorpRow, Store};

const POLL: Duration = Duration::from_millis(500);
const RECORDS: u64 = 400;

fn row(i: usize, limits: i32, status: i32, update: i32) -> CorpRow {
    CorpRow {
        corpid: corpid(i),
        secret: Secret::new(format!("secret-{i}")),
        corpname: format!("corp {i}"),
        prikey: Secret::default(),
        limits,
        timeout: 5,
        status,
        update,
    }
}

fn generation(p: &Pipeline, i: usize) -> u64 {
    p.stats.snapshot().get(&CorpId::new(&corpid(i)).unwrap()).map_or(0, |s| s.generation)
}

/// Polls until `f` holds; returns how long it took.
async fn until(what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(60), "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t0.elapsed()
}

async fn running(p: &Pipeline) -> Vec<String> {
    p.supervisor.send(Running).await.unwrap().iter().map(|c| c.to_string()).collect()
}

async fn corplist_drives_the_actors(db: Db) {
    let store = open(&db).await;
    let emu = Arc::new(emulator::Emulator::new(scenario(3, &[], RECORDS)).unwrap());
    for i in 0..3 {
        for ver in 1..=3 {
            let pem = Secret::new(emulator::demo_private_key_pem(ver).unwrap());
            store.put_corp_key(&CorpId::new(&corpid(i)).unwrap(), ver, &pem).await.unwrap();
        }
    }
    store.upsert_corp(&row(0, 100, 1, 0)).await.unwrap();
    store.upsert_corp(&row(1, 100, 1, 0)).await.unwrap();
    let sources = Sources {
        table: Some(Arc::clone(&store) as Arc<dyn Store>),
        defaults: Some(Defaults { limit: 100, timeout: SdkTimeout::from_secs(5) }),
        ..Sources::default()
    };
    let cfg = wework_msgaudit::actors::PipelineConfig { reload_interval: POLL, ..config() };
    let p = Pipeline::start(Arc::clone(&store), Arc::new(EmulatedSdk::new(Arc::clone(&emu))), sources, &cfg).unwrap();
    until("corps 0 and 1 run", || generation(&p, 0) > 0 && generation(&p, 1) > 0).await;
    let g0 = generation(&p, 0);

    // Insert corp 2.
    store.upsert_corp(&row(2, 100, 1, 0)).await.unwrap();
    let took = until("corp 2 starts", || generation(&p, 2) > 0).await;
    eprintln!("insert → started in {took:?} (poll interval {POLL:?})");
    let g2 = generation(&p, 2);

    // Disable corp 1.
    store.set_corp_status(&CorpId::new(&corpid(1)).unwrap(), 0).await.unwrap();
    let t0 = Instant::now();
    loop {
        if !running(&p).await.contains(&corpid(1)) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "corp 1 not stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("disable → stopped in {:?}", t0.elapsed());

    // Modify corp 0 (limits): restarted; corp 2 untouched.
    store.upsert_corp(&row(0, 50, 1, 0)).await.unwrap();
    let took = until("corp 0 restarts", || generation(&p, 0) > g0).await;
    eprintln!("modify → restarted in {took:?}");
    assert_eq!(generation(&p, 2), g2, "an untouched corp keeps its actor");

    // update = 1 on corp 2: restarted exactly once, the flag reset.
    let g0 = generation(&p, 0);
    store.upsert_corp(&row(2, 100, 1, 1)).await.unwrap();
    let took = until("corp 2 restarts for update = 1", || generation(&p, 2) > g2).await;
    eprintln!("update = 1 → restarted in {took:?}");
    let g2_after = generation(&p, 2);
    let t0 = Instant::now();
    loop {
        let flag = store.list_corps().await.unwrap().into_iter().find(|r| r.corpid == corpid(2)).unwrap().update;
        if flag == 0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "update flag not reset");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Several poll intervals later: still exactly one restart (generations are numbered across
    // corps, so "once" means: no newer generation after the first restart), corp 0 untouched.
    tokio::time::sleep(POLL * 6).await;
    assert_eq!(generation(&p, 2), g2_after, "update = 1 restarted corp 2 more than once");
    assert_eq!(generation(&p, 0), g0, "corp 0 untouched by corp 2's update");
    assert!(running(&p).await == vec![corpid(0), corpid(2)], "{:?}", running(&p).await);

    // Everything of corps 0 and 2 stored exactly once.
    common::pipeline::wait_for(&p, &[(corpid(0), RECORDS), (corpid(2), RECORDS)], Duration::from_secs(120)).await;
    p.shutdown().await;
    for i in [0, 2] {
        check_corp(&db, &emu, &corpid(i)).await;
    }
    let t1 = format!("message_{}", corpid(1));
    let rows = db.int(&format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM {t1}"), None).await;
    let distinct = db.int(&format!("SELECT CAST(COUNT(DISTINCT msgid) AS SIGNED INTEGER) FROM {t1}"), None).await;
    assert_eq!(rows, distinct, "the disabled corp has no duplicate");
    db.finish().await;
}

per_db!(corplist_changes_drive_the_actors => corplist_drives_the_actors);
