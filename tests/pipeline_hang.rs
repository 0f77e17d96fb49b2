//! Hung SDK calls (ARCHITECTURE.md decision 3), with the emulator's `hang_ms` (every call of a corp
//! sleeps, ignoring the timeout): with ONE SDK thread, a corp whose calls hang does not stall
//! the others (its calls are abandoned and their threads replaced) and is reported failing; a
//! corp whose hang stops recovers by itself; more hung calls than the limit is fatal.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wework_msgaudit::actors::{Pipeline, PipelineConfig, PullSettings};
use wework_msgaudit::corps::{CorpSpec, Sources};
use wework_msgaudit::crypto::{parse_private_key, Keyring};
use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::sdk::SdkTimeout;
use wework_msgaudit::secret::Secret;
use wework_msgaudit::store::{self, CorpId};

const GOOD: &str = "wwhanggood00000001";
const HUNG: &str = "wwhanghung00000001";
const RECOVERS: &str = "wwhangheal00000001";

fn scenario() -> emulator::Scenario {
    let pem = emulator::demo_private_key_pem(1).unwrap();
    let corp = |id: &str, hang: u64, calls: u64| {
        format!(
            "[[corp]]\ncorpid = \"{id}\"\nsecret = \"s\"\nrecords = 500\n[[corp.key]]\nver = 1\nprivate_key_pem = '''{pem}'''\n\
             [corp.faults]\nhang_ms = {hang}\nhang_calls = {calls}\n"
        )
    };
    // RECOVERS hangs on its first 3 calls only.
    toml::from_str(&format!("{}{}{}", corp(GOOD, 0, 0), corp(HUNG, 2500, 0), corp(RECOVERS, 2500, 3))).unwrap()
}

fn spec(id: &str) -> CorpSpec {
    let mut k = Keyring::new();
    k.insert(1, parse_private_key(emulator::demo_private_key_pem(1).unwrap().as_bytes()).unwrap());
    CorpSpec::new(CorpId::new(id).unwrap(), id, Secret::new("s"), 50, SdkTimeout::from_secs(1), k)
}

fn config(max_hung: usize) -> PipelineConfig {
    PipelineConfig {
        sdk_threads: 1,
        decrypt_threads: 1,
        pull: PullSettings {
            poll_interval: Duration::from_millis(100),
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(200),
            ..PullSettings::default()
        },
        reload_interval: Duration::from_secs(3600),
        hang_grace: Duration::ZERO,
        max_hung_threads: max_hung,
        media: None,
        lease: None,
        ..PipelineConfig::default()
    }
}

async fn start(max_hung: usize) -> Pipeline {
    let store = store::connect("sqlite::memory:").await.unwrap();
    store.migrate().await.unwrap();
    let sdk = Arc::new(EmulatedSdk::new(Arc::new(emulator::Emulator::new(scenario()).unwrap())));
    Pipeline::start(
        store,
        sdk,
        Sources { fixed: vec![spec(HUNG), spec(GOOD), spec(RECOVERS)], ..Sources::default() },
        &config(max_hung),
    )
    .unwrap()
}

#[test]
fn a_hung_corp_does_not_stall_the_others_with_one_sdk_thread() {
    actix_rt::System::new().block_on(async {
        let p = start(16).await;
        let good = CorpId::new(GOOD).unwrap();
        let hung = CorpId::new(HUNG).unwrap();
        let heals = CorpId::new(RECOVERS).unwrap();
        let until = Instant::now() + Duration::from_secs(120);
        let mut max_live = 0;
        let mut saw_hung = false;
        loop {
            let s = p.stats.snapshot();
            max_live = max_live.max(p.sdk_pool().live_threads());
            saw_hung |= s.get(&hung).and_then(|c| c.last_error.as_deref()).is_some_and(|e| e.contains("hung"));
            let hung_failing = s.get(&hung).is_some_and(|c| c.is_failing(3));
            let healed = s.get(&heals).is_some_and(|c| c.cursor == 500);
            if s.get(&good).is_some_and(|c| c.cursor == 500) && saw_hung && hung_failing && healed {
                break;
            }
            assert!(Instant::now() < until, "good corp stalled: {s:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let s = p.stats.snapshot();
        assert_eq!(s[&hung].cursor, 0);
        assert!(s[&hung].sdk_errors["hung"] >= 3, "{:?}", s[&hung]);
        // The healed corp: exactly its 3 hanging calls were abandoned, then it caught up.
        assert_eq!(s[&heals].sdk_errors.get("hung"), Some(&3), "{:?}", s[&heals]);
        assert!(!s[&heals].is_failing(3), "{:?}", s[&heals]);
        // 1 serving thread + the hung ones (each call hangs 2.5 s, abandoned after 1 s).
        assert!(max_live <= 1 + 16, "{max_live}");
        p.shutdown().await;
    });
}

#[test]
fn too_many_hung_calls_are_fatal() {
    actix_rt::System::new().block_on(async {
        let p = start(0).await;
        let reason = tokio::time::timeout(Duration::from_secs(60), p.fatal()).await.expect("fatal in time");
        assert!(reason.contains("hung"), "{reason}");
        p.shutdown().await;
    });
}
