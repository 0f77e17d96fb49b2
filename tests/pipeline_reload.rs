//! The supervisor's reconcile through the real sources (SQLite):
//! - a corps file is re-read: a changed corp is restarted, a removed one stopped, a new one
//!   started, an untouched one keeps its actor; nothing is lost or duplicated on the way;
//! - the `corplist`/`corp_keys` tables: enabled corps only, keys per version plus the
//!   `corplist.prikey` fallback, a bad key fails only its corp.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wework_msgaudit::actors::supervisor::{Reload, Running};
use wework_msgaudit::actors::Pipeline;
use wework_msgaudit::corps::{self, Defaults, Sources};
use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::sdk::SdkTimeout;
use wework_msgaudit::secret::Secret;
use wework_msgaudit::store::{self, CorpId, CorpRow, Store};

fn corpid(i: usize) -> String {
    format!("wwreload{i:010}")
}

fn scenario(n: usize, records: u64) -> emulator::Scenario {
    let mut toml = String::new();
    for i in 0..n {
        toml.push_str(&format!("[[corp]]\ncorpid = \"{}\"\nsecret = \"secret-{i}\"\nrecords = {records}\n", corpid(i)));
        for ver in 1..=3 {
            let pem = emulator::demo_private_key_pem(ver).unwrap();
            toml.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
        }
    }
    toml::from_str(&toml).unwrap()
}

/// A corps file entry with the three DEMO-ONLY keys (inline).
fn file_corp(i: usize, limit: u32) -> String {
    let mut s = format!("[[corp]]\ncorpid = \"{}\"\nsecret = \"secret-{i}\"\nlimits = {limit}\n", corpid(i));
    for ver in 1..=3 {
        s.push_str(&format!(
            "[[corp.key]]\nver = {ver}\npem = '''{}'''\n",
            emulator::demo_private_key_pem(ver).unwrap()
        ));
    }
    s
}

async fn wait_until(what: &str, deadline: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn count(store_url: &str, corp: &str) -> (i64, i64, i64) {
    let pool = sqlx::SqlitePool::connect(store_url).await.unwrap();
    let t = format!("message_{corp}");
    let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {t}")).fetch_one(&pool).await.unwrap();
    let d: i64 = sqlx::query_scalar(&format!("SELECT COUNT(DISTINCT msgid) FROM {t}")).fetch_one(&pool).await.unwrap();
    let m: i64 = sqlx::query_scalar(&format!("SELECT COALESCE(MAX(seq), 0) FROM {t}")).fetch_one(&pool).await.unwrap();
    pool.close().await;
    (n, d, m)
}

fn write(path: &Path, text: &str) {
    // Write then rename, as editors do.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn reload_restarts_changed_stops_removed_starts_new_keeps_untouched() {
    actix_rt::System::new().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("r.db").display());
        let store = store::connect(&url, 4).await.unwrap();
        store.migrate().await.unwrap();
        let file = dir.path().join("corps.toml");
        write(&file, &format!("{}{}{}", file_corp(0, 100), file_corp(1, 100), file_corp(2, 100)));
        let emu = Arc::new(emulator::Emulator::new(scenario(4, 1000)).unwrap());
        let sdk = Arc::new(EmulatedSdk::new(Arc::clone(&emu)));
        let sources = Sources { file: Some(file.clone()), ..Sources::default() };
        let p = Pipeline::start(store, sdk, sources, &common::pipeline::config()).unwrap();
        let id = |i| CorpId::new(&corpid(i)).unwrap();
        let stats = Arc::clone(&p.stats);
        wait_until("corps 0..3 complete", Duration::from_secs(120), || {
            let s = stats.snapshot();
            (0..3).all(|i| s.get(&id(i)).is_some_and(|c| c.cursor == 1000))
        })
        .await;
        let before = p.stats.snapshot();
        // corp 0 untouched, corp 1 changed (limit), corp 2 removed, corp 3 new.
        write(&file, &format!("{}{}{}", file_corp(0, 100), file_corp(1, 50), file_corp(3, 100)));
        p.supervisor.send(Reload).await.unwrap();
        wait_until("corp 3 complete, corp 1 restarted", Duration::from_secs(120), || {
            let s = stats.snapshot();
            s.get(&id(3)).is_some_and(|c| c.cursor == 1000)
                && s.get(&id(1)).is_some_and(|c| c.generation > before[&id(1)].generation && c.state != "stopped")
        })
        .await;
        let mut running = p.supervisor.send(Running).await.unwrap();
        running.sort();
        assert_eq!(running, vec![id(0), id(1), id(3)]);
        let after = p.stats.snapshot();
        assert_eq!(after[&id(0)].generation, before[&id(0)].generation, "untouched corp keeps its actor");
        assert!(!after.contains_key(&id(2)), "removed corp is gone from the stats: {after:?}");
        // A bad key for corp 3 only: it is left out (stopped), the others keep running.
        let bad3 = format!(
            "[[corp]]\ncorpid = \"{}\"\nsecret = \"secret-3\"\n[[corp.key]]\nver = 1\npem = \"not a key\"\n",
            corpid(3)
        );
        write(&file, &format!("{}{}{}", file_corp(0, 100), file_corp(1, 50), bad3));
        p.supervisor.send(Reload).await.unwrap();
        wait_until("corp 3 stopped", Duration::from_secs(30), || !stats.snapshot().contains_key(&id(3))).await;
        let running = p.supervisor.send(Running).await.unwrap();
        assert!(running.contains(&id(0)) && running.contains(&id(1)) && !running.contains(&id(3)), "{running:?}");
        p.shutdown().await;
        for i in 0..4 {
            let (n, d, m) = count(&url, &corpid(i)).await;
            assert_eq!((n, d, m), (1000, 1000, 1000), "{} complete, no duplicates", corpid(i));
        }
    });
}

#[test]
fn the_corplist_tables_are_a_source() {
    actix_rt::System::new().block_on(async {
        let store = store::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        let pem = |v| Secret::new(emulator::demo_private_key_pem(v).unwrap());
        let row = |corpid: &str, prikey: Secret, status| CorpRow {
            corpid: corpid.into(),
            secret: Secret::new("s"),
            corpname: format!("name of {corpid}"),
            prikey,
            limits: 0,
            timeout: 7,
            status,
            update: 0,
        };
        store.upsert_corp(&row("withkeys", Secret::default(), 1)).await.unwrap();
        store.upsert_corp(&row("fallback", pem(1), 1)).await.unwrap();
        store.upsert_corp(&row("disabled", pem(1), 0)).await.unwrap();
        store.upsert_corp(&row("badkey", Secret::new("not a key"), 1)).await.unwrap();
        let id = |s: &str| CorpId::new(s).unwrap();
        store.put_corp_key(&id("withkeys"), 1, &pem(1)).await.unwrap();
        store.put_corp_key(&id("withkeys"), 2, &pem(2)).await.unwrap();
        store.put_corp_key(&id("fallback"), 3, &pem(3)).await.unwrap();
        let defaults = Defaults { limit: 250, timeout: SdkTimeout::from_secs(5) };
        let sources = Sources {
            table: Some(Arc::clone(&store) as Arc<dyn Store>),
            defaults: Some(defaults),
            ..Sources::default()
        };
        let desired = corps::load(&sources).await.unwrap();
        let names: Vec<&str> = desired.corps.keys().map(CorpId::as_str).collect();
        assert_eq!(names, ["fallback", "withkeys"]);
        let w = &desired.corps[&id("withkeys")];
        assert_eq!(w.keyring.versions(), vec![1, 2]);
        assert!(!w.keyring.has_fallback());
        assert_eq!((w.limit, w.timeout), (250, SdkTimeout::from_secs(7)));
        let f = &desired.corps[&id("fallback")];
        assert_eq!(f.keyring.versions(), vec![3]);
        assert!(f.keyring.has_fallback());
        assert_eq!(desired.errors.len(), 1, "{:?}", desired.errors);
        assert_eq!(desired.errors[0].0, "badkey");
        assert!(desired.errors[0].1.contains("prikey"), "{:?}", desired.errors);
        // Defined in the table and in a file: an error for that corp only.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("corps.toml");
        std::fs::write(
            &file,
            format!(
                "[[corp]]\ncorpid = \"withkeys\"\nsecret = \"s\"\n[[corp.key]]\nver = 1\npem = '''{}'''\n",
                pem(1).expose()
            ),
        )
        .unwrap();
        let both = Sources { file: Some(file), ..sources };
        let desired = corps::load(&both).await.unwrap();
        assert_eq!(desired.corps.keys().map(CorpId::as_str).collect::<Vec<_>>(), ["fallback"]);
        assert!(
            desired.errors.iter().any(|(c, e)| c == "withkeys" && e.contains("more than once")),
            "{:?}",
            desired.errors
        );
    });
}

#[test]
fn a_corp_actor_that_ends_with_an_error_is_restarted_with_backoff() {
    actix_rt::System::new().block_on(async {
        let store = store::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        let emu = Arc::new(emulator::Emulator::new(scenario(1, 100)).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("corps.toml");
        write(&file, &file_corp(0, 100));
        let p = Pipeline::start(
            store,
            Arc::new(EmulatedSdk::new(emu)),
            Sources { file: Some(file), ..Sources::default() },
            &common::pipeline::config(),
        )
        .unwrap();
        let id = CorpId::new(&corpid(0)).unwrap();
        let stats = Arc::clone(&p.stats);
        wait_until("corp 0 complete", Duration::from_secs(60), || {
            stats.snapshot().get(&id).is_some_and(|c| c.cursor == 100)
        })
        .await;
        let first = stats.snapshot()[&id].generation;
        // Without SDK threads every corp actor ends with an error; the supervisor restarts it
        // again and again, with backoff (10 ms doubling to 300 ms here).
        p.sdk_pool().close();
        let started = Instant::now();
        wait_until("three restarts", Duration::from_secs(30), || {
            stats.snapshot().get(&id).is_some_and(|c| c.generation >= first + 3)
        })
        .await;
        let s = stats.snapshot()[&id].clone();
        assert!(s.last_error.as_deref().is_some_and(|e| e.contains("pool is stopped")), "{s:?}");
        assert!(started.elapsed() >= Duration::from_millis(10 + 20), "restarts back off");
        p.shutdown().await;
    });
}
