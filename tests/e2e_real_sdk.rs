//! End to end with the **real** vendor SDK: the daemon binary (`run`) loads
//! `libWeWorkFinanceSdk_C.so` from PyPI, reaches the fake WeCom HTTPS API
//! (`lib/emulator/src/api.rs`) through its own `[sdk] proxy` setting with credentials, and must end
//! with the emulator's exact ground truth in the database and under the media root, on SQLite and
//! on MariaDB, while the server injects every fault class it has: HTTP 500, dropped connections
//! (before and inside the headers), slow answers, errcodes 45009 (rate limit), 48002 (IP
//! forbidden) and 40001 (bad secret, for the first calls), tokens that expire on the server
//! (42001) long before the SDK thinks so, and per-file media errcodes 301042/301048, which the
//! daemon must record as failed items (SDK 10009/10010) rather than retry forever.
//!
//! Like every test that loads the real SDK this runs only inside a loopback-only network
//! namespace (scripts/test.sh), and the fake server binds 127.0.0.1.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::daemon::{real_sdk_config, write_corps, Daemon};
use common::md5_file;
use common::pipeline::{check_corp, Db};
use emulator::api::{fileid_of, ApiFaults, ApiOptions, FakeApi};

const CORP: &str = "wwrealsdk000000001";
const RECORDS: u64 = 90;
/// Three chunks of 512 KiB ciphertext, the last one partial.
const BIG: u64 = 1_300_000;
const PROXY_CREDENTIALS: &str = "audit:pa55:word";

fn faults(expired: &str, forbidden: &str) -> ApiFaults {
    ApiFaults {
        http_500_rate: 0.05,
        errcode_rate: 0.06,
        errcodes: vec![45009, 48002],
        slow_rate: 0.04,
        slow_ms: 1500,
        drop_rate: 0.08,
        // Well under the run's length (~5 s since the media workers went to 16): every
        // session's token expires at least once mid-run, so the expiry path is always taken.
        token_ttl_ms: 2000,
        bad_secret_calls: 2,
        media_errcodes: HashMap::from([(expired.to_string(), 301_048), (forbidden.to_string(), 301_042)]),
    }
}

async fn e2e(db: Db) {
    let label = db.name();
    let Some(sdk) = common::real_sdk("the real-SDK end-to-end test") else { return };
    let dir = tempfile::tempdir().unwrap();
    write_corps(dir.path(), &[CORP.to_string()], 61, RECORDS, "", None);
    let scenario_path = dir.path().join("scenario.toml");
    let scenario = std::fs::read_to_string(&scenario_path).unwrap();
    std::fs::write(&scenario_path, scenario.replacen("records = ", &format!("big_file_bytes = {BIG}\nrecords = "), 1))
        .unwrap();
    let emu = emulator::Emulator::new(emulator::Scenario::load(&scenario_path).unwrap()).unwrap();
    let truth = emu.truth(CORP);
    assert_eq!(truth.len() as u64, RECORDS);
    let media: Vec<_> = truth.iter().flat_map(|t| t.media.iter().map(move |m| (t, m))).collect();
    assert!(media.iter().any(|(_, m)| m.size == BIG), "the scenario has the big file");
    // Two small items that the server refuses for good: data expired, IP not whitelisted.
    let small: Vec<_> = media.iter().filter(|(_, m)| m.size < 100_000).collect();
    let (expired, forbidden) = (small[0], small[small.len() / 2]);
    let fileid = |m: &emulator::TruthMedia| fileid_of(&m.sdkfileid).unwrap();
    let api = FakeApi::start(
        emu,
        ApiOptions {
            proxy_auth: Some(PROXY_CREDENTIALS.into()),
            faults: faults(&fileid(expired.1), &fileid(forbidden.1)),
            log_file: Some(dir.path().join("requests.jsonl")),
            ..ApiOptions::default()
        },
    )
    .unwrap();

    let (config, root) = real_sdk_config(dir.path(), &db.url, &sdk, &api.proxy_url(), Some(PROXY_CREDENTIALS), 25, 40);

    let t0 = Instant::now();
    let mut daemon = Daemon::start(dir.path(), &config, 1, &[]);
    let done_sql = format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM media_{CORP} WHERE status IN (3, 4)");
    let deadline = Duration::from_secs(240);
    loop {
        daemon.alive();
        let cursor = db.int("SELECT CAST(seq AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = ?", Some(CORP)).await;
        if cursor == RECORDS as i64 && db.int(&done_sql, None).await == media.len() as i64 {
            break;
        }
        assert!(
            t0.elapsed() < deadline,
            "{label}: not done after {deadline:?} (cursor {cursor}):\n{}",
            tail(&daemon.log(), 60)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let took = t0.elapsed();
    let (status, _) = daemon.terminate(Duration::from_secs(60));
    assert!(status.success(), "{label}: exit {status}:\n{}", tail(&daemon.log(), 60));

    // The records: exactly the ground truth.
    let (fine, corrupt) = check_corp(&db, api.emulator(), CORP).await;
    assert_eq!((fine, corrupt), (RECORDS as usize, 0));

    // The media: byte-exact, except the two the server refused for good, with the SDK's codes.
    let rows: HashMap<(String, i64), (i64, Option<String>)> = db
        .rows_media(&format!(
            "SELECT msgid, CAST(item AS SIGNED INTEGER), CAST(status AS SIGNED INTEGER), path FROM media_{CORP}"
        ))
        .await
        .into_iter()
        .map(|(msgid, item, status, path)| ((msgid, item), (status, path)))
        .collect();
    assert_eq!(rows.len(), media.len(), "{label}: one media row per item");
    let mut done = 0;
    for (t, m) in &media {
        let (status, path) = &rows[&(t.msgid.clone(), i64::from(m.item))];
        let refused = [(expired, 10010), (forbidden, 10009)].into_iter().find(|((_, x), _)| x.sdkfileid == m.sdkfileid);
        if let Some((_, code)) = refused {
            assert_eq!(*status, 4, "{label}: {} refused by the server ends failed", t.msgid);
            let stored = db
                .int(
                    &format!(
                        "SELECT CAST(media_code AS SIGNED INTEGER) FROM media_{CORP} WHERE msgid = ? AND item = {}",
                        m.item
                    ),
                    Some(&t.msgid),
                )
                .await;
            assert_eq!(stored, code, "{label}: {} keeps the SDK code", t.msgid);
        } else {
            assert_eq!(*status, 3, "{label}: {} item {} downloaded", t.msgid, m.item);
            let p = root.join(path.as_deref().unwrap());
            assert_eq!(md5_file(&p), m.md5, "{label}: {} is byte-exact", p.display());
            done += 1;
        }
    }

    // What the server saw: the proxy credentials on every CONNECT, a valid sign on every
    // getchatdata, and every fault class really injected.
    let requests = api.requests();
    let expected_auth =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(PROXY_CREDENTIALS.as_bytes()));
    let connects: Vec<_> = requests.iter().filter(|r| r.call == "connect").collect();
    assert!(!connects.is_empty());
    assert!(
        connects.iter().all(|r| r.proxy_authorization.as_deref() == Some(expected_auth.as_str()) && r.status == 200),
        "{label}: every CONNECT carries the configured credentials"
    );
    let chats: Vec<_> = requests.iter().filter(|r| r.call == "getchatdata").collect();
    assert!(chats.iter().all(|r| r.sign_ok == Some(true)), "{label}: every encrypt_sign matches its token");
    assert!(chats.iter().all(|r| r.limit == Some(25)), "{label}: the configured limit is sent");
    let mut by_fault: BTreeMap<String, usize> = BTreeMap::new();
    for r in &requests {
        if let Some(f) = &r.fault {
            *by_fault.entry(f.clone()).or_default() += 1;
        }
    }
    for class in [
        "http_500",
        "drop",
        "drop_in_headers",
        "slow",
        "errcode_45009",
        "errcode_48002",
        "errcode_40001",
        "token_expired",
        "errcode_301042",
        "errcode_301048",
    ] {
        assert!(by_fault.contains_key(class), "{label}: fault {class} was injected: {by_fault:?}");
    }
    let tokens = requests.iter().filter(|r| r.call == "gettoken").count();
    assert!(tokens >= 2, "{label}: expired tokens were replaced ({tokens} gettoken calls)");
    common::report(&format!(
        "real SDK e2e ({label}): {RECORDS}/{RECORDS} records, {done}/{} media byte-exact, 2 refused as injected, \
         {} requests, {tokens} tokens, faults {by_fault:?}, {:.1} s",
        media.len(),
        requests.len(),
        took.as_secs_f64()
    ));
    db.finish().await;
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

per_db!(tokio: real_sdk_end_to_end => e2e);
