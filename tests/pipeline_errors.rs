//! Errcodes and scale (SQLite, in-process emulator):
//! - a permanent errcode (40001, bad secret) marks the corp `failing` with the server's errmsg
//!   while a corp with transient errcodes (45009) and empty bodies still completes;
//! - 100 corps are pulled by 2 SDK threads (corps are not threads).

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use wework_msgaudit::actors::{Pipeline, PipelineConfig, PullSettings};
use wework_msgaudit::corps::{CorpSpec, Sources};
use wework_msgaudit::crypto::{parse_private_key, Keyring};
use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::sdk::SdkTimeout;
use wework_msgaudit::secret::Secret;
use wework_msgaudit::store::{self, CorpId};

fn corp_toml(id: &str, records: u64, faults: &str) -> String {
    let pem = emulator::demo_private_key_pem(2).unwrap();
    format!(
        "[[corp]]\ncorpid = \"{id}\"\nsecret = \"s\"\nrecords = {records}\n[[corp.key]]\nver = 2\n\
         private_key_pem = '''{pem}'''\n[corp.faults]\n{faults}\n"
    )
}

fn spec(id: &str, limit: u32) -> CorpSpec {
    let mut k = Keyring::new();
    k.insert(2, parse_private_key(emulator::demo_private_key_pem(2).unwrap().as_bytes()).unwrap());
    CorpSpec::new(CorpId::new(id).unwrap(), id, Secret::new("s"), limit, SdkTimeout::from_secs(5), k)
}

/// The tests' fast configuration with `threads` SDK threads, polling every 200 ms.
fn config(threads: usize) -> PipelineConfig {
    let base = common::pipeline::config();
    PipelineConfig {
        sdk_threads: threads,
        pull: PullSettings { poll_interval: Duration::from_millis(200), ..base.pull },
        ..base
    }
}

#[test]
fn a_permanent_errcode_marks_the_corp_failing_and_transient_ones_are_retried() {
    actix_rt::System::new().block_on(async {
        let scenario = format!(
            "{}{}",
            corp_toml("wwerrbadsecret0001", 300, "errcode_rate = 1.0\nerrcode = 40001"),
            corp_toml("wwerrtransient0001", 300, "errcode_rate = 0.2\nerrcode = 45009\nempty_body_rate = 0.1"),
        );
        let emu = emulator::Emulator::new(toml::from_str(&scenario).unwrap()).unwrap();
        let store = store::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        let p = Pipeline::start(
            store,
            Arc::new(EmulatedSdk::new(Arc::new(emu))),
            Sources {
                fixed: vec![spec("wwerrbadsecret0001", 50), spec("wwerrtransient0001", 50)],
                ..Sources::default()
            },
            &config(2),
        )
        .unwrap();
        let bad = CorpId::new("wwerrbadsecret0001").unwrap();
        let ok = CorpId::new("wwerrtransient0001").unwrap();
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let s = p.stats.snapshot();
            let failing = s.get(&bad).is_some_and(|c| c.state == "failing");
            if failing && s.get(&ok).is_some_and(|c| c.cursor == 300) {
                let e = s[&bad].last_error.clone().unwrap_or_default();
                assert!(e.contains("40001") && e.contains("emulated errcode"), "errmsg surfaced: {e}");
                assert_eq!(s[&bad].cursor, 0);
                break;
            }
            assert!(Instant::now() < until, "{s:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        p.shutdown().await;
    });
}

#[test]
fn a_hundred_corps_are_pulled_by_two_sdk_threads() {
    actix_rt::System::new().block_on(async {
        let ids: Vec<String> = (0..100).map(|i| format!("wwmany{i:012}")).collect();
        let scenario: String = ids.iter().map(|id| corp_toml(id, 30, "")).collect();
        let emu = emulator::Emulator::new(toml::from_str(&scenario).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = store::connect(&format!("sqlite://{}", dir.path().join("many.db").display()), 4).await.unwrap();
        store.migrate().await.unwrap();
        let p = Pipeline::start(
            Arc::clone(&store),
            Arc::new(EmulatedSdk::new(Arc::new(emu))),
            Sources { fixed: ids.iter().map(|id| spec(id, 20)).collect(), ..Sources::default() },
            &config(2),
        )
        .unwrap();
        let until = Instant::now() + Duration::from_secs(180);
        loop {
            let s = p.stats.snapshot();
            let done = s.values().filter(|c| c.cursor == 30).count();
            assert!(p.sdk_pool().live_threads() <= 2, "SDK threads stay bounded");
            if done == ids.len() {
                break;
            }
            assert!(Instant::now() < until, "{done} of {} corps done", ids.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        p.shutdown().await;
        for id in &ids {
            assert_eq!(store.cursor(&CorpId::new(id).unwrap()).await.unwrap(), 30, "{id}");
        }
    });
}
