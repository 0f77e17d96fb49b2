//! Operations, end to end with the daemon binary (`run`) and the built-in emulator, on SQLite and
//! MariaDB:
//! - `/metrics` parses as Prometheus text and its values equal the database's; `/healthz` and
//!   `status` report the corp that always fails (bad secret) while the others flow;
//! - hot reload through file events only (`reload_interval` is 1 h): editing the corps file
//!   starts, stops and restarts exactly the affected corps (the others keep their actor: same
//!   generation); an invalid edit keeps the running corps; a configuration edit changes the log
//!   level and names the keys that need a restart;
//! - SIGTERM during heavy ingest exits 0 within `shutdown_grace`; a restart completes the corps
//!   with no loss and no duplicate (checked record by record against the emulator's truth);
//! - a corp that never pulls raises the retention alert (WARN `alert = "retention"`);
//! - every log line of these runs is free of the configured secrets and private keys, and every
//!   JSON line that names a corp carries its `corpid` field.

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::{free_port, get, replace_file, status_json, Daemon};
use common::pipeline::{check_corp, Db};
use serde_json::Value;

const GOOD1: &str = "wwopsgood0000000001";
const GOOD2: &str = "wwopsgood0000000002";
const BAD: &str = "wwopsbad00000000003";
const NEW: &str = "wwopsnew00000000004";
const PROXY_PASSWORD: &str = "proxyuser:Pr0xyPa55-3c9e";

fn secret(corp: &str) -> String {
    format!("S3cr3t-{}-7d1f0a9c2b", &corp[5..])
}

/// The scenario (all four corps exist on the "server"; BAD has a wrong secret there).
fn scenario_toml(corps: &[(&str, u64)], bad: &[&str]) -> String {
    let mut toml = String::from("seed = 11\n");
    for (corp, records) in corps {
        toml.push_str(&format!("[[corp]]\ncorpid = \"{corp}\"\nsecret = \"{}\"\nrecords = {records}\n", secret(corp)));
        for ver in 1..=3 {
            let pem = emulator::demo_private_key_pem(ver).unwrap();
            toml.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
        }
        toml.push_str(&format!("[corp.faults]\ncorrupt_rate = 0.01\nbad_secret = {}\n", bad.contains(corp)));
    }
    toml
}

/// A corps file entry with key files.
fn corp_entry(corp: &str, limit: u32) -> String {
    let mut s = format!("[[corp]]\ncorpid = \"{corp}\"\nsecret = \"{}\"\nlimits = {limit}\n", secret(corp));
    for ver in 1..=3 {
        s.push_str(&format!("[[corp.key]]\nver = {ver}\nfile = \"keys/v{ver}.pem\"\n"));
    }
    s
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
}

fn setup(db_url: &str, scenario: &str, corps: &str, extra: &str) -> Setup {
    // `extra` holds whole sections (e.g. `[daemon]`) appended to the configuration.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("keys")).unwrap();
    for ver in 1..=3 {
        std::fs::write(d.join(format!("keys/v{ver}.pem")), emulator::demo_private_key_pem(ver).unwrap()).unwrap();
    }
    std::fs::write(d.join("scenario.toml"), scenario).unwrap();
    std::fs::write(d.join("corps.toml"), corps).unwrap();
    let port = free_port();
    let config = format!(
        "[database]\nurl = \"{db_url}\"\n[sdk]\nlibrary = \"emulator\"\nthreads = 2\ntimeout = \"5s\"\n\
         [pull]\npoll_interval = \"200ms\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"500ms\"\n\
         [corps]\ntable = false\nfile = \"{corps}\"\nreload_interval = \"1h\"\n\
         [media]\nroot = \"{media}\"\nsweep_interval = \"500ms\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n\
         [http]\nlisten = \"127.0.0.1:{port}\"\n\
         [log]\nlevel = \"debug\"\nformat = \"json\"\n{extra}",
        corps = d.join("corps.toml").display(),
        media = d.join("msgfile").display(),
    );
    let path = d.join("config.toml");
    std::fs::write(&path, config).unwrap();
    Setup { dir, config: path, port }
}

fn corp<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["corps"].as_array()?.iter().find(|c| c["corpid"] == id)
}

fn media_open(c: &Value) -> u64 {
    c["media"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|x| x["status"] == "pending" || x["status"] == "downloading")
                .map(|x| x["count"].as_u64().unwrap())
                .sum()
        })
        .unwrap_or(0)
}

/// Polls `/status` until `f` holds (generous deadline: 2 noisy cores).
fn wait_status(d: &mut Daemon, port: u16, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(150);
    loop {
        d.alive();
        if let Some(s) = status_json(port) {
            if f(&s) {
                return s;
            }
            assert!(Instant::now() < until, "{what}: not reached; last /status:\n{s:#}\n{}", d.log());
        } else {
            assert!(Instant::now() < until, "{what}: /status never answered\n{}", d.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn done(s: &Value, id: &str, records: u64) -> bool {
    corp(s, id).is_some_and(|c| c["last_seq"] == records && c["stored"] == records && media_open(c) == 0)
}

fn generation(s: &Value, id: &str) -> u64 {
    corp(s, id).and_then(|c| c["generation"].as_u64()).unwrap_or(0)
}

/// Asserts that no configured secret and no slice of a private key appears in `logs`.
fn assert_no_secrets(logs: &str, corps: &[&str]) {
    assert!(!logs.is_empty());
    for c in corps {
        assert!(!logs.contains(&secret(c)), "the secret of {c} is in the logs");
    }
    for ver in 1..=3 {
        let pem = emulator::demo_private_key_pem(ver).unwrap();
        for line in pem.lines().filter(|l| !l.starts_with("-----")).step_by(5) {
            assert!(!logs.contains(&line[..24.min(line.len())]), "private key v{ver} text is in the logs");
        }
    }
}

type Samples = HashMap<(String, Vec<(String, String)>), f64>;

/// Parses `/metrics` with a Prometheus text parser: (name, sorted labels) → value.
fn scrape(port: u16) -> (Samples, String) {
    let (code, body) = get(port, "/metrics").expect("/metrics answers");
    assert_eq!(code, 200);
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("valid text format");
    let mut out = Samples::new();
    for s in parsed.samples {
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            // A histogram: its count (the `+Inf` bucket).
            prometheus_parse::Value::Histogram(buckets) => {
                buckets.iter().find(|b| b.less_than.is_infinite()).map_or(0.0, |b| b.count)
            }
            other => panic!("unexpected sample kind {other:?}"),
        };
        let mut labels: Vec<(String, String)> = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        labels.sort();
        assert!(out.insert((s.metric.clone(), labels), v).is_none(), "duplicate sample {}", s.metric);
    }
    // Every family is declared once.
    for line in body.lines().filter(|l| l.starts_with("# TYPE ")) {
        assert_eq!(body.lines().filter(|l| *l == line).count(), 1, "{line}");
    }
    (out, body)
}

fn sample(m: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut l: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    l.sort();
    m.get(&(format!("wework_msgaudit_{name}"), l)).copied()
}

fn status_cli(s: &Setup) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
        .args(["status", "--config", s.config.to_str().unwrap()])
        .env_remove("WEWORK_MSGAUDIT_LOG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

async fn operations(db: Db) {
    const RECORDS: u64 = 300;
    let scenario = scenario_toml(&[(GOOD1, RECORDS), (GOOD2, RECORDS), (BAD, 50), (NEW, RECORDS)], &[BAD]);
    let corps_file = [corp_entry(GOOD1, 100), corp_entry(GOOD2, 100), corp_entry(BAD, 100)].join("");
    let s = setup(
        &db.url,
        &scenario,
        &corps_file,
        "[daemon]\nfailing_after = 3\nshutdown_grace = \"20s\"\nalert_after = \"3s\"\n",
    );
    let mut d = Daemon::start(s.dir.path(), &s.config, 1, &[]);

    // 1. Two corps flow while the third always fails.
    let st = wait_status(&mut d, s.port, "good corps done, bad corp failing", |st| {
        done(st, GOOD1, RECORDS) && done(st, GOOD2, RECORDS) && corp(st, BAD).is_some_and(|c| c["failing"] == true)
    });
    assert_eq!(st["healthy"], false);
    let (code, body) = get(s.port, "/healthz").unwrap();
    assert_eq!(code, 503, "{body}");
    assert!(body.contains(BAD) && !body.contains(GOOD1), "{body}");
    // The retention alert: BAD has never pulled for longer than alert_after; the others pull.
    let until = Instant::now() + Duration::from_secs(60);
    let alerts = |log: &str| -> Vec<String> {
        log.lines().filter(|l| l.contains("\"alert\":\"retention\"")).map(str::to_string).collect()
    };
    while !alerts(&d.log()).iter().any(|l| l.contains(BAD)) {
        assert!(Instant::now() < until, "no retention alert for {BAD}:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(alerts(&d.log()).iter().all(|l| l.contains(BAD) && l.contains("WARN")), "{:?}", alerts(&d.log()));
    let (code, table) = status_cli(&s);
    assert_eq!(code, 1, "status exits 1 when unhealthy:\n{table}");
    let bad_line = table.lines().find(|l| l.starts_with(BAD)).unwrap_or_else(|| panic!("{table}"));
    assert!(bad_line.contains("YES") && bad_line.contains("10001"), "{bad_line}");
    let good_line = table.lines().find(|l| l.starts_with(GOOD1)).unwrap_or_else(|| panic!("{table}"));
    assert!(good_line.contains(" no ") && good_line.contains(&RECORDS.to_string()), "{good_line}");

    // 2. /metrics equals the database.
    let (m, text) = scrape(s.port);
    assert_eq!(sample(&m, "healthy", &[]), Some(0.0));
    assert_eq!(sample(&m, "database_up", &[]), Some(1.0));
    assert!(m.get(&("process_resident_memory_bytes".to_string(), Vec::new())).is_some_and(|v| *v > 1e6));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    for c in [GOOD1, GOOD2] {
        let table = format!("message_{c}");
        let cursor = db.int("SELECT CAST(seq AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = ?", Some(c)).await;
        let rows = db.int(&format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM {table}"), None).await;
        let bad_rows = db
            .int(&format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM {table} WHERE decrypt_error IS NOT NULL"), None)
            .await;
        assert!(bad_rows > 0, "the scenario has corrupt records");
        assert_eq!(sample(&m, "corp_last_seq", &[("corpid", c)]), Some(cursor as f64), "{c}");
        assert_eq!(sample(&m, "corp_records_stored_total", &[("corpid", c)]), Some(rows as f64), "{c}");
        assert_eq!(sample(&m, "corp_decrypt_failures_total", &[("corpid", c)]), Some(bad_rows as f64), "{c}");
        assert_eq!(sample(&m, "corp_failing", &[("corpid", c)]), Some(0.0), "{c}");
        assert!(sample(&m, "corp_newest_record_timestamp_seconds", &[("corpid", c)]).is_some(), "{c}: lag");
        assert!(
            sample(&m, "corp_last_pull_timestamp_seconds", &[("corpid", c)]).is_some_and(|v| now - v < 60.0),
            "{c}"
        );
        let mut media_rows = 0;
        for status in 1..=4 {
            for kind in ["image", "voice", "video", "file", "emotion", "meeting_voice_call", "voip_doc_share"] {
                let n = db
                    .int(
                        &format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM media_{c} WHERE status = {status} AND kind = ?"),
                        Some(kind),
                    )
                    .await;
                media_rows += n;
                let name = ["", "pending", "downloading", "done", "failed"][status];
                let got = sample(&m, "media_items", &[("corpid", c), ("kind", kind), ("status", name)]).unwrap_or(0.0);
                assert_eq!(got, n as f64, "{c} {kind} {name}");
            }
        }
        let all_media = db.int(&format!("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM media_{c}"), None).await;
        assert!(
            all_media > 0 && media_rows == all_media,
            "{c}: every media kind is covered ({media_rows}/{all_media})"
        );
    }
    assert_eq!(sample(&m, "corp_failing", &[("corpid", BAD)]), Some(1.0));
    assert!(
        sample(&m, "corp_sdk_errors_total", &[("corpid", BAD), ("code", "10001")]).is_some_and(|v| v >= 3.0),
        "{text}"
    );
    assert!(sample(&m, "media_downloads_total", &[("result", "done")]).is_some_and(|v| v > 0.0));

    // 3. Hot reload by file events (polling is hourly): remove BAD, add NEW, keep GOOD1/GOOD2.
    let g1 = generation(&st, GOOD1);
    let g2 = generation(&st, GOOD2);
    let t0 = Instant::now();
    replace_file(
        &s.dir.path().join("corps.toml"),
        &[corp_entry(GOOD1, 100), corp_entry(GOOD2, 100), corp_entry(NEW, 100)].join(""),
    );
    let st =
        wait_status(&mut d, s.port, "BAD removed, NEW done", |st| corp(st, BAD).is_none() && done(st, NEW, RECORDS));
    eprintln!("corps file edit applied and NEW ingested in {:?}", t0.elapsed());
    assert_eq!((generation(&st, GOOD1), generation(&st, GOOD2)), (g1, g2), "untouched corps keep their actor");
    assert_eq!(get(s.port, "/healthz").unwrap().0, 200);
    // Change GOOD2's limit: only GOOD2 restarts.
    replace_file(
        &s.dir.path().join("corps.toml"),
        &[corp_entry(GOOD1, 100), corp_entry(GOOD2, 50), corp_entry(NEW, 100)].join(""),
    );
    let st =
        wait_status(&mut d, s.port, "GOOD2 restarted", |st| generation(st, GOOD2) > g2 && done(st, GOOD2, RECORDS));
    assert_eq!(generation(&st, GOOD1), g1);
    let gnew = generation(&st, NEW);
    // An invalid edit is reported; every corp keeps running.
    replace_file(&s.dir.path().join("corps.toml"), "[[corp]\nthis is not toml");
    let until = Instant::now() + Duration::from_secs(60);
    while !d.log().contains("keeping the current corps") {
        assert!(Instant::now() < until, "invalid corps file not reported:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = status_json(s.port).unwrap();
    assert_eq!(st["corps"].as_array().unwrap().len(), 3, "{st:#}");
    assert_eq!((generation(&st, GOOD1), generation(&st, NEW)), (g1, gnew));
    // A configuration edit: the log level applies at once, a new proxy restarts every corp (and
    // its password is never logged), a cold key is named (not its value).
    replace_file(
        &s.dir.path().join("corps.toml"),
        &[corp_entry(GOOD1, 100), corp_entry(GOOD2, 50), corp_entry(NEW, 100)].join(""),
    );
    std::thread::sleep(Duration::from_secs(2));
    let before = status_json(s.port).unwrap();
    let gens: Vec<u64> = [GOOD1, GOOD2, NEW].iter().map(|c| generation(&before, c)).collect();
    assert_eq!(gens, [g1, generation(&st, GOOD2), gnew], "re-saving the same corps restarts nothing");
    let text = std::fs::read_to_string(&s.config).unwrap();
    replace_file(
        &s.config,
        &text
            .replace("level = \"debug\"", "level = \"info\"")
            .replace("[database]\n", "[database]\nmax_connections = 3\n")
            .replace(
                "[sdk]\n",
                &format!("[sdk]\nproxy = \"http://127.0.0.1:9\"\nproxy_password = \"{PROXY_PASSWORD}\"\n"),
            ),
    );
    let st = wait_status(&mut d, s.port, "every corp restarted on the new proxy", |st| {
        [GOOD1, GOOD2, NEW].iter().zip(&gens).all(|(c, g)| generation(st, c) > *g)
    });
    assert_eq!(st["corps"].as_array().unwrap().len(), 3);
    let until = Instant::now() + Duration::from_secs(60);
    while !(d.log().contains("log level changed") && d.log().contains("database.max_connections")) {
        assert!(Instant::now() < until, "config edit not applied:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!d.log().contains(PROXY_PASSWORD));

    // 4. SIGTERM: exit 0 within the grace period; the data equals the truth.
    let (status, took) = d.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit {status}:\n{}", d.log());
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let emu = emulator::Emulator::new(toml::from_str(&scenario).unwrap()).unwrap();
    for c in [GOOD1, GOOD2, NEW] {
        check_corp(&db, &emu, c).await;
    }
    // With no daemon, `status` says so (exit 3) and shows what the database knows.
    replace_file(&s.dir.path().join("corps.toml"), &[corp_entry(GOOD1, 100), corp_entry(NEW, 100)].join(""));
    let (code, offline) = status_cli(&s);
    assert_eq!(code, 3, "{offline}");
    assert!(offline.contains("source: database only") && offline.contains("daemon: not running"), "{offline}");
    let line = offline.lines().find(|l| l.starts_with(GOOD1)).unwrap_or_else(|| panic!("{offline}"));
    assert!(line.contains("unknown") && line.contains(&format!(" {RECORDS} ")), "{line}");
    let table = table + &offline;
    let logs = d.log() + &std::fs::read_to_string(s.dir.path().join("stdout-1.log")).unwrap() + &table;
    let without_corpid: Vec<&str> =
        logs.lines().filter(|l| l.starts_with('{') && l.contains(GOOD1) && !l.contains("\"corpid\":\"")).collect();
    assert!(without_corpid.is_empty(), "log lines about a corp without a corpid field:\n{}", without_corpid.join("\n"));
    assert_no_secrets(&logs, &[GOOD1, GOOD2, BAD, NEW]);
    db.finish().await;
}

per_db!(metrics_health_status_and_hot_reload => operations);

async fn sigterm_during_ingest(db: Db) {
    const RECORDS: u64 = 15_000;
    let corps = [GOOD1, GOOD2];
    let scenario = scenario_toml(&[(GOOD1, RECORDS), (GOOD2, RECORDS)], &[]);
    let corps_file = [corp_entry(GOOD1, 1000), corp_entry(GOOD2, 1000)].join("");
    let s = setup(&db.url, &scenario, &corps_file, "[daemon]\nshutdown_grace = \"15s\"\n");
    let mut total_runs = 0;
    // Two interrupted runs, then one that completes.
    for run in 1..=3 {
        total_runs += 1;
        let mut d = Daemon::start(s.dir.path(), &s.config, run, &[]);
        let st = wait_status(&mut d, s.port, "ingest under way", |st| {
            let stored: u64 = corps.iter().filter_map(|c| corp(st, c)?["stored"].as_u64()).sum();
            if run < 3 {
                stored >= 2000
            } else {
                // Every record stored (media downloads may still run: SIGTERM interrupts them).
                corps.iter().all(|c| corp(st, c).is_some_and(|c| c["last_seq"] == RECORDS))
            }
        });
        let (status, took) = d.terminate(Duration::from_secs(60));
        let seqs: Vec<u64> = corps.iter().map(|c| corp(&st, c).unwrap()["last_seq"].as_u64().unwrap()).collect();
        eprintln!("run {run}: SIGTERM at last_seq {seqs:?}; exit {status} after {took:?}");
        assert!(status.success(), "run {run}: exit {status}:\n{}", d.log());
        assert!(took < Duration::from_secs(15), "run {run}: exit took {took:?} (grace 15 s)");
        assert!(d.log().contains("\"stopped\""), "run {run}: graceful stop logged");
        if run < 3 {
            assert!(seqs.iter().any(|&q| q < RECORDS), "run {run} was interrupted mid-ingest: {seqs:?}");
        }
        assert_no_secrets(&d.log(), &corps);
    }
    assert_eq!(total_runs, 3);
    let emu = emulator::Emulator::new(toml::from_str(&scenario).unwrap()).unwrap();
    for c in corps {
        let (fine, corrupt) = check_corp(&db, &emu, c).await;
        assert_eq!((fine + corrupt) as u64, RECORDS);
    }
    db.finish().await;
}

per_db!(sigterm_during_heavy_ingest_exits_0_in_grace_and_loses_nothing => sigterm_during_ingest);
