//! Honest health, end to end with the daemon binary, the built-in emulator and SQLite:
//! - a corp whose configured key for `publickey_ver` 1 is not the key its records were
//!   encrypted with: `/healthz` 503 naming the corp and the version, the
//!   `corp_undecryptable_recent_ratio` metric, a WARN with the corpid and the version (never key
//!   material); the right key in the corps file makes it healthy again; `doctor --online`
//!   decrypts what it fetched and fails naming the version;
//! - `status` with no daemon answering says so and exits 3 (0 healthy, 1 unhealthy, 2 config);
//!   with one answering, it shows a disabled corps-file corp as disabled, with its source;
//! - `/healthz`, `/metrics` and `/status` come from one snapshot built at most once a second
//!   (counted by `report_builds_total`), at most ~1 s old; `[http] token_file` guards every
//!   endpoint (401 without the bearer token or with a wrong one), and `status` sends it; a
//!   missing, empty or multi-word token file is a configuration error (exit 2) that never shows
//!   the file's content;
//! - `/metrics` follows Prometheus' conventions: the standard `process_*` families, a
//!   `build_info`, histograms of pull and batch-write latency, `_timestamp_seconds` gauges
//!   instead of "seconds since", label values without spaces, a lease holder label that stays
//!   the same across restarts.

use crate::common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::daemon::{free_port, get, replace_file, Daemon};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_wework-msgaudit");
const GOOD: &str = "wwhealthgood0000001";
const WRONG: &str = "wwhealthwrongkey002";
const TOKEN: &str = "tok-6f1d8a2c9b7e4430-bearer";

fn secret(corp: &str) -> String {
    format!("H3alth-{}-5e0b", &corp[8..])
}

fn pem(ver: u32) -> &'static str {
    emulator::demo_private_key_pem(ver).unwrap()
}

/// A daemon set-up in a temp dir: the scenario (every corp has the DEMO-ONLY keys 1..=3 on the
/// "server"), the corps file (`keys[i]` = the key file configured for version `i + 1`), the
/// configuration with `[http] listen` on a free port, SQLite.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
}

fn setup(corps: &[(&str, u64, [u32; 3])], extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("keys")).unwrap();
    for ver in 1..=3 {
        std::fs::write(d.join(format!("keys/v{ver}.pem")), pem(ver)).unwrap();
    }
    let mut scenario = String::from("seed = 29\n");
    for (corp, records, _) in corps {
        scenario
            .push_str(&format!("[[corp]]\ncorpid = \"{corp}\"\nsecret = \"{}\"\nrecords = {records}\n", secret(corp)));
        for ver in 1..=3 {
            scenario.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{}'''\n", pem(ver)));
        }
    }
    std::fs::write(d.join("scenario.toml"), scenario).unwrap();
    std::fs::write(d.join("corps.toml"), corps_file(corps)).unwrap();
    let port = free_port();
    let config = format!(
        "[database]\nurl = \"sqlite://{db}\"\n[sdk]\nlibrary = \"emulator\"\nthreads = 2\ntimeout = \"5s\"\n\
         [pull]\npoll_interval = \"200ms\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"500ms\"\n\
         [corps]\ntable = false\nfile = \"{corps}\"\nreload_interval = \"1h\"\n\
         [media]\nenabled = false\n\
         [http]\nlisten = \"127.0.0.1:{port}\"\n{extra}\n\
         [log]\nlevel = \"info\"\nformat = \"json\"\n",
        db = d.join("health.db").display(),
        corps = d.join("corps.toml").display(),
    );
    let path = d.join("config.toml");
    std::fs::write(&path, config).unwrap();
    Setup { dir, config: path, port }
}

/// The corps file: `keys[i]` is the key file configured for version `i + 1`.
fn corps_file(corps: &[(&str, u64, [u32; 3])]) -> String {
    let mut file = String::new();
    for (corp, _, keys) in corps {
        file.push_str(&format!("[[corp]]\ncorpid = \"{corp}\"\nsecret = \"{}\"\nlimits = 100\n", secret(corp)));
        for (i, file_ver) in keys.iter().enumerate() {
            file.push_str(&format!("[[corp.key]]\nver = {}\nfile = \"keys/v{file_ver}.pem\"\n", i + 1));
        }
    }
    file
}

/// `GET path` with optional headers → (status code, body).
fn request(port: u16, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    Some((head.split_whitespace().nth(1)?.parse().ok()?, body.to_string()))
}

fn bearer() -> [(&'static str, String); 1] {
    [("Authorization", format!("Bearer {TOKEN}"))]
}

fn authed(port: u16, path: &str) -> Option<(u16, String)> {
    let h = bearer();
    request(port, path, &[(h[0].0, h[0].1.as_str())])
}

fn corp<'a>(status: &'a Value, id: &str) -> Option<&'a Value> {
    status["corps"].as_array()?.iter().find(|c| c["corpid"] == id)
}

/// Polls `/status` until `f` holds.
fn wait_status(d: &mut Daemon, port: u16, token: bool, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    let until = Instant::now() + Duration::from_secs(150);
    loop {
        d.alive();
        let answer = if token { authed(port, "/status") } else { get(port, "/status") };
        if let Some((200, body)) = answer {
            let s: Value = serde_json::from_str(&body).unwrap();
            if f(&s) {
                return s;
            }
            assert!(Instant::now() < until, "{what}: not reached; last /status:\n{s:#}\n{}", d.log());
        } else {
            assert!(Instant::now() < until, "{what}: /status never answered 200: {answer:?}\n{}", d.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One parsed sample: (name, sorted labels) → (type, value); histograms give their count.
type Samples = HashMap<(String, Vec<(String, String)>), (&'static str, f64)>;

fn parse_metrics(body: &str) -> Samples {
    let parsed = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("valid text format");
    let mut out = Samples::new();
    for s in parsed.samples {
        let (kind, v) = match &s.value {
            prometheus_parse::Value::Counter(v) => ("counter", *v),
            prometheus_parse::Value::Gauge(v) => ("gauge", *v),
            prometheus_parse::Value::Untyped(v) => ("untyped", *v),
            prometheus_parse::Value::Histogram(b) => {
                ("histogram", b.iter().find(|b| b.less_than.is_infinite()).map_or(-1.0, |b| b.count))
            }
            prometheus_parse::Value::Summary(_) => ("summary", 0.0),
        };
        let mut labels: Vec<(String, String)> = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        labels.sort();
        assert!(out.insert((s.metric.clone(), labels), (kind, v)).is_none(), "duplicate sample {}", s.metric);
    }
    out
}

fn sample(m: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<(&'static str, f64)> {
    let mut l: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    l.sort();
    m.get(&(name.to_string(), l)).copied()
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn pem_slices() -> Vec<String> {
    (1..=3)
        .flat_map(|v| {
            pem(v).lines().filter(|l| !l.starts_with("-----")).step_by(5).map(|l| l[..24.min(l.len())].to_string())
        })
        .collect()
}

fn assert_no_key_material(text: &str) {
    for slice in pem_slices() {
        assert!(!text.contains(&slice), "private key text in the output");
    }
    for c in [GOOD, WRONG] {
        assert!(!text.contains(&secret(c)), "the secret of {c} in the output");
    }
}

fn cli(s: &Setup, args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).arg("--config").arg(&s.config).current_dir(s.dir.path());
    for (k, _) in std::env::vars() {
        if k.starts_with("WEWORK_MSGAUDIT") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.env("WWF_EMULATOR_SCENARIO", s.dir.path().join("scenario.toml")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("{args:?} exit {:?}:\n{text}", out.status.code());
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_corp_whose_key_does_not_match_is_unhealthy_naming_the_version() {
    const RECORDS: u64 = 300;
    // WRONG has the key of version 2 configured as version 1.
    let s = setup(&[(GOOD, RECORDS, [1, 2, 3]), (WRONG, RECORDS, [2, 2, 3])], "");
    let mut d = Daemon::start(s.dir.path(), &s.config, 1, &[]);
    let st = wait_status(&mut d, s.port, false, "both corps stored every record", |st| {
        [GOOD, WRONG].iter().all(|c| corp(st, c).is_some_and(|c| c["last_seq"] == RECORDS && c["stored"] == RECORDS))
    });
    // Every record is stored (ciphertext kept), but the corp is not healthy.
    let wrong = corp(&st, WRONG).unwrap();
    assert_eq!(wrong["failing"], true, "{st:#}");
    assert_eq!(corp(&st, GOOD).unwrap()["failing"], false, "{st:#}");
    assert_eq!(st["healthy"], false);
    let (code, body) = get(s.port, "/healthz").unwrap();
    assert_eq!(code, 503, "{body}");
    let line = body.lines().find(|l| l.contains(WRONG)).unwrap_or_else(|| panic!("{body}"));
    assert!(line.contains("publickey_ver 1"), "the failing version is named: {line}");
    assert!(!body.contains(GOOD) && !line.contains("publickey_ver 2"), "{body}");

    let (_, text) = get(s.port, "/metrics").unwrap();
    let m = parse_metrics(&text);
    let ratio = |c: &str, v: &str| {
        sample(&m, "wework_msgaudit_corp_undecryptable_recent_ratio", &[("corpid", c), ("publickey_ver", v)])
    };
    assert_eq!(ratio(WRONG, "1"), Some(("gauge", 1.0)), "{text}");
    assert_eq!(ratio(WRONG, "2"), Some(("gauge", 0.0)), "{text}");
    assert_eq!(ratio(GOOD, "1"), Some(("gauge", 0.0)), "{text}");
    assert_eq!(sample(&m, "wework_msgaudit_corp_failing", &[("corpid", WRONG)]), Some(("gauge", 1.0)));

    // A WARN naming the corp and the version, once (not at every page).
    let log = d.log();
    let warns: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"WARN\"") && l.contains("undecryptable") && l.contains("\"publickey_ver\":1"))
        .collect();
    assert!(warns.iter().any(|l| l.contains(&format!("\"corpid\":\"{WRONG}\""))), "no WARN naming {WRONG}:\n{log}");
    assert!(warns.iter().all(|l| !l.contains(GOOD)), "{warns:?}");
    assert_eq!(warns.len(), 1, "warned once while it lasts: {warns:?}");
    assert_no_key_material(&log);

    // The right key in the corps file (applied by the file watcher): healthy again.
    replace_file(
        &s.dir.path().join("corps.toml"),
        &corps_file(&[(GOOD, RECORDS, [1, 2, 3]), (WRONG, RECORDS, [1, 2, 3])]),
    );
    let fixed_at = Instant::now();
    while get(s.port, "/healthz").map(|r| r.0) != Some(200) {
        d.alive();
        assert!(fixed_at.elapsed() < Duration::from_secs(60), "still unhealthy after the key was fixed:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    common::report(&format!(
        "wrong key: /healthz 503 \"{line}\"; {} WARN; healthy {:.1?} after the corps file got the right key",
        warns.len(),
        fixed_at.elapsed()
    ));
    let (status, _) = d.terminate(Duration::from_secs(60));
    assert!(status.success(), "{}", d.log());
}

#[test]
fn doctor_online_decrypts_what_it_fetched_and_names_the_failing_key_version() {
    let s = setup(&[(GOOD, 40, [1, 2, 3]), (WRONG, 40, [2, 2, 3])], "");
    let (code, out) = cli(&s, &["doctor", "--online"]);
    assert_no_key_material(&out);
    assert_eq!(code, 1, "{out}");
    let fails: Vec<&str> = out.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), 1, "only the wrong key fails: {fails:?}\n{out}");
    let line = fails[0];
    assert!(line.starts_with(&format!("FAIL  corp {WRONG}")), "{line}");
    assert!(line.contains("publickey_ver 1") && line.contains(" of "), "version and counts: {line}");
    for (c, ver) in [(GOOD, 1), (GOOD, 2), (GOOD, 3), (WRONG, 2), (WRONG, 3)] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(&format!("ok    corp {c}")) && l.contains(&format!("publickey_ver {ver}:"))),
            "{c} version {ver} is ok:\n{out}"
        );
    }
}

/// `status` with a running daemon shows a disabled corp of the corps file as `disabled`, with
/// its source, beside an enabled one. The daemon's own `/status` does not list a disabled corp
/// (it runs none): the command adds it from the configuration (`mark_disabled` on the daemon's
/// report; the path without a daemon is tested in `cli_corp`).
#[test]
fn status_from_a_running_daemon_shows_a_disabled_file_corp() {
    const OFF: &str = "wwhealthdisabled003";
    const RECORDS: u64 = 10;
    let s = setup(&[(GOOD, RECORDS, [1, 2, 3]), (OFF, RECORDS, [1, 2, 3])], "");
    let corps = s.dir.path().join("corps.toml");
    let text = std::fs::read_to_string(&corps).unwrap();
    let entry = format!("corpid = \"{OFF}\"\n");
    assert!(text.contains(&entry));
    std::fs::write(&corps, text.replace(&entry, &format!("{entry}enabled = false\n"))).unwrap();
    let mut d = Daemon::start(s.dir.path(), &s.config, 1, &[]);
    let report = wait_status(&mut d, s.port, false, "the enabled corp ingested", |st| {
        corp(st, GOOD).is_some_and(|c| c["stored"] == RECORDS)
    });
    assert!(corp(&report, OFF).is_none(), "the daemon lists the disabled corp itself: {report:#}");

    let (code, out) = cli(&s, &["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("source: daemon at http://127.0.0.1:{}\ndaemon: running\n", s.port)), "{out}");
    let row = |c: &str| -> Vec<String> {
        let line = out.lines().find(|l| l.starts_with(c)).unwrap_or_else(|| panic!("no row for {c}:\n{out}"));
        line.split_whitespace().take(3).map(str::to_string).collect()
    };
    assert_eq!(row(OFF), [OFF, "file", "disabled"], "{out}");
    let good = row(GOOD);
    assert_eq!(good[1], "file", "{out}");
    assert_ne!(good[2], "disabled", "{out}");

    let (code, out) = cli(&s, &["status", "--json"]);
    assert_eq!(code, 0, "{out}");
    let json: Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    assert_eq!(corp(&json, OFF).map(|c| c["state"].clone()), Some(Value::from("disabled")), "{json:#}");
    assert_ne!(corp(&json, GOOD).map(|c| c["state"].clone()), Some(Value::from("disabled")), "{json:#}");
    let (status, _) = d.terminate(Duration::from_secs(60));
    assert!(status.success(), "{status}");
}

#[test]
fn status_without_a_daemon_says_so_and_exits_3() {
    let s = setup(&[(GOOD, 10, [1, 2, 3])], "");
    let (code, out) = cli(&s, &["status"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("daemon: not running"), "{out}");
    assert!(out.contains("source: database only") && out.contains(GOOD), "what the database knows: {out}");
    assert!(!out.contains("health: ok"), "{out}");
    let (code, out) = cli(&s, &["status", "--json"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("not running"), "{out}");
    // With [http] listen off, status cannot ask a daemon: the same.
    let text = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(&s.config, text.replace(&format!("listen = \"127.0.0.1:{}\"", s.port), "listen = \"\"")).unwrap();
    let (code, out) = cli(&s, &["status"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("daemon: not running") && out.contains("listen is off"), "{out}");
    // A configuration that does not load: 2.
    std::fs::write(&s.config, "[http]\nno_such_key = 1\n").unwrap();
    assert_eq!(cli(&s, &["status"]).0, 2);
}

#[test]
fn endpoints_serve_one_snapshot_a_second_and_need_the_bearer_token() {
    let s0 = setup(&[(GOOD, 200, [1, 2, 3])], "");
    let token_file = s0.dir.path().join("http.token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let s = {
        let text = std::fs::read_to_string(&s0.config).unwrap();
        let listen = format!("listen = \"127.0.0.1:{}\"\n", s0.port);
        let with = format!("{listen}token_file = \"{}\"\n", token_file.display());
        std::fs::write(&s0.config, text.replace(&listen, &with)).unwrap();
        s0
    };
    let mut d = Daemon::start(s.dir.path(), &s.config, 1, &[]);
    wait_status(&mut d, s.port, true, "GOOD done", |st| corp(st, GOOD).is_some_and(|c| c["last_seq"] == 200));
    for path in ["/healthz", "/metrics", "/status"] {
        assert_eq!(request(s.port, path, &[]).map(|r| r.0), Some(401), "{path} without a token");
        let wrong = [("Authorization", "Bearer tok-6f1d8a2c9b7e4430-bearex")];
        assert_eq!(request(s.port, path, &wrong).map(|r| r.0), Some(401), "{path} with a wrong token");
        let basic = [("Authorization", "Basic dG9rOnRvaw==")];
        assert_eq!(request(s.port, path, &basic).map(|r| r.0), Some(401), "{path} with another scheme");
        assert_eq!(authed(s.port, path).map(|r| r.0), Some(200), "{path} with the token");
    }
    // `status` reads token_file too.
    let (code, out) = cli(&s, &["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("source: daemon at") && out.contains("health: ok"), "{out}");

    // A burst of requests: the report is built at most once a second, whatever their number.
    let builds = |port: u16| {
        let (_, text) = authed(port, "/metrics").unwrap();
        sample(&parse_metrics(&text), "wework_msgaudit_report_builds_total", &[]).expect("report_builds_total").1
    };
    let before = builds(s.port);
    let t0 = Instant::now();
    let port = s.port;
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let mut ages = Vec::new();
                for i in 0..50 {
                    // About 2.5 s of requests from 4 clients (200 in all).
                    std::thread::sleep(Duration::from_millis(50));
                    let path = ["/metrics", "/healthz", "/status"][(t + i) % 3];
                    let (code, body) = authed(port, path).expect("answers");
                    assert_eq!(code, 200, "{path}: {body}");
                    if path == "/status" {
                        let st: Value = serde_json::from_str(&body).unwrap();
                        ages.push(now_secs() - st["generated_at_ms"].as_f64().expect("generated_at_ms") / 1000.0);
                    }
                }
                ages
            })
        })
        .collect();
    let ages: Vec<f64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let elapsed = t0.elapsed();
    let built = builds(s.port) - before;
    let oldest = ages.iter().copied().fold(0.0, f64::max);
    common::report(&format!(
        "snapshot: 200 requests in {elapsed:.2?} caused {built} report build(s); oldest snapshot served {oldest:.2} s"
    ));
    assert!(built <= elapsed.as_secs_f64().ceil() + 2.0, "{built} builds for 200 requests in {elapsed:?}");
    assert!(built >= elapsed.as_secs_f64().floor() - 1.0, "the snapshot is refreshed: {built} in {elapsed:?}");
    assert!(oldest <= 2.0, "a snapshot {oldest:.2} s old was served");
    // A `status` with another token is refused by the running daemon: exit 1, saying why.
    std::fs::write(&token_file, "not-the-daemons-token\n").unwrap();
    let (code, refused) = cli(&s, &["status"]);
    assert_eq!(code, 1, "{refused}");
    assert!(refused.contains("401") && refused.contains("token_file"), "{refused}");
    let log = d.log();
    assert!(!log.contains(TOKEN) && !out.contains(TOKEN), "the token is never shown");
    let (status, _) = d.terminate(Duration::from_secs(60));
    assert!(status.success(), "{log}");
}

#[test]
fn metrics_follow_the_prometheus_conventions() {
    let s = setup(&[(GOOD, 200, [1, 2, 3])], "[cluster]\nleases = true\nlease_ttl = \"3s\"\n");
    let mut holders = Vec::new();
    for run in 1..=2 {
        let mut d = Daemon::start(s.dir.path(), &s.config, run, &[]);
        wait_status(&mut d, s.port, false, "GOOD done and leased", |st| {
            corp(st, GOOD)
                .is_some_and(|c| c["last_seq"] == 200 && c["state"] == "caught up" && !c["lease_holder"].is_null())
        });
        let (code, text) = get(s.port, "/metrics").unwrap();
        assert_eq!(code, 200);
        let m = parse_metrics(&text);
        let holder = m
            .keys()
            .find(|(n, _)| n == "wework_msgaudit_corp_lease")
            .and_then(|(_, l)| l.iter().find(|(k, _)| k == "holder"))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no corp_lease sample:\n{text}"));
        holders.push(holder);
        if run == 2 {
            // The second run has nothing new to store: it only shows its lease.
            let (status, _) = d.terminate(Duration::from_secs(60));
            assert!(status.success(), "{}", d.log());
            break;
        }
        let kind = |name: &str| m.iter().find(|((n, _), _)| n == name).map(|(_, (k, _))| *k);
        for (name, want) in [
            ("process_cpu_seconds_total", "counter"),
            ("process_open_fds", "gauge"),
            ("process_max_fds", "gauge"),
            ("process_start_time_seconds", "gauge"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_virtual_memory_bytes", "gauge"),
            ("wework_msgaudit_build_info", "gauge"),
            ("wework_msgaudit_pull_duration_seconds", "histogram"),
            ("wework_msgaudit_batch_write_duration_seconds", "histogram"),
            ("wework_msgaudit_corp_last_pull_timestamp_seconds", "gauge"),
            ("wework_msgaudit_corp_newest_record_timestamp_seconds", "gauge"),
        ] {
            assert_eq!(kind(name), Some(want), "{name}:\n{text}");
        }
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(sample(&m, "wework_msgaudit_build_info", &[("version", version)]), Some(("gauge", 1.0)));
        let start = sample(&m, "process_start_time_seconds", &[]).unwrap().1;
        assert!((now_secs() - start) > 0.0 && now_secs() - start < 300.0, "start time {start}");
        assert!(sample(&m, "process_open_fds", &[]).unwrap().1 >= 3.0);
        let max_fds = sample(&m, "process_max_fds", &[]).unwrap().1;
        assert!(max_fds >= sample(&m, "process_open_fds", &[]).unwrap().1);
        for h in ["wework_msgaudit_pull_duration_seconds", "wework_msgaudit_batch_write_duration_seconds"] {
            assert!(sample(&m, h, &[]).is_some_and(|(_, count)| count >= 2.0), "{h} observed:\n{text}");
            assert!(text.contains(&format!("{h}_sum ")) && text.contains(&format!("{h}_count ")), "{h}");
        }
        let pulled = sample(&m, "wework_msgaudit_corp_last_pull_timestamp_seconds", &[("corpid", GOOD)]).unwrap().1;
        assert!((now_secs() - pulled).abs() < 30.0, "last pull at {pulled}");
        assert!(!text.contains("seconds_since"), "no \"seconds since\" metric is left:\n{text}");
        for (name, labels) in m.keys() {
            for (k, v) in labels {
                assert!(!v.chars().any(char::is_whitespace), "{name}{{{k}={v:?}}}: a label value with a space");
            }
        }
        assert_eq!(
            sample(&m, "wework_msgaudit_corp_state", &[("corpid", GOOD), ("state", "caught_up")]),
            Some(("gauge", 1.0)),
            "{text}"
        );
        let (status, _) = d.terminate(Duration::from_secs(60));
        assert!(status.success(), "{}", d.log());
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().replace(char::is_whitespace, "_");
    assert_eq!(holders, [host.clone(), host], "the holder label is the same after a restart");
}

#[test]
fn a_missing_or_unusable_token_file_is_a_configuration_error() {
    let s = setup(&[(GOOD, 10, [1, 2, 3])], "");
    let token_file = s.dir.path().join("http.token");
    let text = std::fs::read_to_string(&s.config).unwrap();
    let listen = format!("listen = \"127.0.0.1:{}\"\n", s.port);
    std::fs::write(&s.config, text.replace(&listen, &format!("{listen}token_file = \"{}\"\n", token_file.display())))
        .unwrap();
    for (content, why) in [(None, "No such file"), (Some("\n"), "empty"), (Some("two words\n"), "one line")] {
        if let Some(c) = content {
            std::fs::write(&token_file, c).unwrap();
        }
        for args in [&["run"][..], &["status"][..]] {
            let (code, out) = cli(&s, args);
            assert_eq!(code, 2, "{args:?} with {content:?}: {out}");
            assert!(out.contains("http.token_file") && out.contains(why), "{out}");
            assert!(!out.contains("two words"), "the file's content is never shown: {out}");
        }
    }
}
