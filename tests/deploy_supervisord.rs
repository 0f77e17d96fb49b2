//! The shipped `supervisord/wework-msgaudit.conf` under a real supervisord (apt `supervisor`):
//! supervisord starts the daemon (emulator, SQLite) from that program section, with the install
//! prefix `/opt/wework-msgaudit` rewritten to a temp dir; `kill -9` of the daemon → supervisord
//! restarts it and ingestion continues; `supervisorctl stop` (SIGTERM) → exit status 0 within
//! stopwaitsecs; finally the database holds every record of the emulator's ground truth up to the
//! stored cursor, each exactly once.
//!
//! Without supervisord the test prints a loud SKIPPED banner; with `CI=true` it fails instead.

use crate::common::skip_or_fail;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PREFIX: &str = "/opt/wework-msgaudit";
const PROGRAM: &str = "wework-msgaudit";
/// (corpid, initial backlog, growth per second).
const CORPS: [(&str, u64, f64); 2] = [("wwsupcorp000000001", 2000, 20.0), ("wwsupcorp000000002", 500, 5.0)];
/// Records the server "accumulated" while the daemon was down (added to the backlog the restarted
/// daemon's emulator sees): proves that ingestion continues past where the killed process was.
const DOWNTIME_RECORDS: u64 = 4000;

fn have(cmd: &str) -> bool {
    Command::new(cmd).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// The emulator scenario; `backlog[i]` is corp i's initial backlog.
fn scenario(backlog: [u64; 2]) -> String {
    let mut s = String::from("seed = 7\n");
    for ((corpid, _, growth), records) in CORPS.iter().zip(backlog) {
        s.push_str(&format!(
            "[[corp]]\ncorpid = \"{corpid}\"\nsecret = \"sup-secret\"\nrecords = {records}\ngrowth_per_sec = {growth:?}\n"
        ));
        for ver in 1..=2 {
            let pem = emulator::demo_private_key_pem(ver).unwrap();
            s.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
        }
    }
    s
}

/// Writes `text` to `path` atomically (temp file + rename): a daemon (re)starting at that moment
/// reads the old or the new file, never half of one.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The install directory: config.toml (relative paths: they must resolve through `directory=`),
/// the corps file and keys, data/, log/; returns the supervisord.conf path.
fn install(root: &Path) -> PathBuf {
    for d in ["data", "log", "keys", "msgfile"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let mut corps = String::new();
    for (corpid, _, _) in CORPS {
        corps.push_str(&format!("[[corp]]\ncorpid = \"{corpid}\"\nsecret = \"sup-secret\"\nlimits = 500\n"));
        for ver in 1..=2 {
            corps.push_str(&format!("[[corp.key]]\nver = {ver}\nfile = \"keys/v{ver}.pem\"\n"));
        }
    }
    for ver in 1..=2 {
        std::fs::write(root.join(format!("keys/v{ver}.pem")), emulator::demo_private_key_pem(ver).unwrap()).unwrap();
    }
    std::fs::write(root.join("corps.toml"), corps).unwrap();
    write_atomically(&root.join("scenario.toml"), &scenario([CORPS[0].1, CORPS[1].1]));
    std::fs::write(
        root.join("config.toml"),
        "[database]\nurl = \"sqlite://data/wework-msgaudit.db\"\n[sdk]\nlibrary = \"emulator\"\nthreads = 2\n\
         [pull]\npoll_interval = \"200ms\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"1s\"\n\
         [corps]\ntable = false\nfile = \"corps.toml\"\nreload_interval = \"1s\"\n[media]\nenabled = false\n",
    )
    .unwrap();

    // The shipped program section, rewritten for this temp install.
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("supervisord/wework-msgaudit.conf"))
            .unwrap();
    assert!(shipped.contains(&format!("[program:{PROGRAM}]")), "the shipped file defines [program:{PROGRAM}]");
    assert!(shipped.lines().any(|l| l.trim() == "user=wework"), "the shipped file drops to the wework user");
    let binary = format!("{PREFIX}/bin/wework-msgaudit");
    assert!(shipped.contains(&format!("command={binary} run --config {PREFIX}/config.toml")), "{shipped}");
    let root_s = root.to_str().unwrap();
    let program: String = shipped
        .replace(&binary, env!("CARGO_BIN_EXE_wework-msgaudit"))
        .replace(PREFIX, root_s)
        .lines()
        // The test runs as whoever runs it (root in CI): no privilege drop.
        .map(|l| if l.trim_start().starts_with("user=") { format!("; (test) {l}") } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!program.contains(PREFIX), "every path of the shipped file uses the prefix {PREFIX}");
    let conf = format!(
        "[unix_http_server]\nfile={root_s}/supervisor.sock\n\
         [supervisord]\nnodaemon=true\nlogfile={root_s}/supervisord.log\npidfile={root_s}/supervisord.pid\n\
         childlogdir={root_s}/log\nloglevel=info\n\
         [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\
         [supervisorctl]\nserverurl=unix://{root_s}/supervisor.sock\n\n{program}\n"
    );
    let path = root.join("supervisord.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

/// supervisord as a child; on drop (also when the test fails) it and the daemon it started die.
struct Supervisord {
    child: Child,
}

impl Supervisord {
    fn children(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            // "pid (comm) state ppid ...": comm may contain spaces, so parse after the last ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if ppid == Some(self.child.id()) {
                out.push(pid);
            }
        }
        out
    }
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            for pid in self.children() {
                signal("KILL", pid);
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Signals through the `kill` command (the tests stay free of `unsafe`).
fn signal(sig: &str, pid: u32) -> bool {
    Command::new("kill").args([&format!("-{sig}"), &pid.to_string()]).status().is_ok_and(|s| s.success())
}

fn ctl(conf: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("supervisorctl").arg("-c").arg(conf).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text.trim().to_string())
}

/// The daemon's pid while supervisord reports it RUNNING.
fn running_pid(conf: &Path) -> Option<u32> {
    let (_, status) = ctl(conf, &["status", PROGRAM]);
    if !status.contains("RUNNING") {
        return None;
    }
    let (_, pid) = ctl(conf, &["pid", PROGRAM]);
    pid.parse::<u32>().ok().filter(|p| *p > 0)
}

/// The daemon's pid in any state (STARTING too), if a process is alive.
fn current_pid(conf: &Path) -> Option<u32> {
    let (_, pid) = ctl(conf, &["pid", PROGRAM]);
    pid.parse::<u32>().ok().filter(|p| *p > 0)
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    rows: i64,
    distinct: i64,
    cursor: i64,
}

fn counts(db: &Path) -> [Counts; 2] {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut out = [Counts::default(); 2];
        let Ok(pool) = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await else { return out };
        for (i, (corpid, _, _)) in CORPS.iter().enumerate() {
            let q = |sql: String| {
                let pool = pool.clone();
                async move { sqlx::query_scalar::<_, i64>(&sql).fetch_one(&pool).await.unwrap_or(0) }
            };
            out[i] = Counts {
                rows: q(format!("SELECT COUNT(*) FROM message_{corpid}")).await,
                distinct: q(format!("SELECT COUNT(DISTINCT msgid) FROM message_{corpid}")).await,
                cursor: q(format!("SELECT seq FROM corp_cursor WHERE corpid = '{corpid}'")).await,
            };
        }
        pool.close().await;
        out
    })
}

fn msgids(db: &Path, corpid: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        let ids = sqlx::query_scalar::<_, String>(&format!("SELECT msgid FROM message_{corpid}"))
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        ids
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Polls `f` every 200 ms until it returns `Some`, failing with `what` and the logs at `deadline`.
fn wait_for<T>(
    root: &Path,
    sup: &mut Supervisord,
    deadline: Instant,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    loop {
        if let Some(v) = f() {
            return v;
        }
        if let Ok(Some(s)) = sup.child.try_wait() {
            panic!("supervisord exited ({s}) while waiting for {what}: {}", read(&root.join("supervisord.log")));
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n--- supervisord.log\n{}\n--- daemon log (tail)\n{}",
            read(&root.join("supervisord.log")),
            read(&root.join("log/wework-msgaudit.log")).lines().rev().take(30).collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn supervisord_restarts_the_killed_daemon_and_no_record_is_lost_or_duplicated() {
    if !have("supervisord") || !have("supervisorctl") {
        skip_or_fail("the supervisord test", "supervisord not installed (apt install supervisor)");
        return;
    }
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let conf = install(root);
    let db = root.join("data/wework-msgaudit.db");
    let truth_file = root.join("truth.jsonl");
    let started = Instant::now();
    let mut sup = Supervisord {
        child: Command::new("supervisord")
            .arg("-n")
            .arg("-c")
            .arg(&conf)
            .env("WWF_EMULATOR_SCENARIO", root.join("scenario.toml"))
            .env("WWF_EMULATOR_TRUTH", &truth_file)
            .current_dir(root)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(root.join("supervisord.stdout")).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(root.join("supervisord.stderr")).unwrap()))
            .spawn()
            .unwrap(),
    };

    // 1. supervisord starts the daemon (RUNNING after startsecs) and it ingests.
    let deadline = Instant::now() + Duration::from_secs(90);
    let pid1 = wait_for(root, &mut sup, deadline, "RUNNING and first rows", || {
        running_pid(&conf).filter(|_| counts(&db).iter().all(|c| c.rows > 0))
    });
    let environ = std::fs::read(format!("/proc/{pid1}/environ")).unwrap();
    assert!(
        environ.split(|b| *b == 0).any(|kv| kv == b"RUST_BACKTRACE=1"),
        "the program's environment= line reaches the daemon"
    );
    assert_eq!(std::fs::read_link(format!("/proc/{pid1}/cwd")).unwrap(), root, "directory= is the install dir");
    eprintln!("[{:>5.1?}] daemon RUNNING as pid {pid1}, rows {:?}", t0.elapsed(), counts(&db));

    // 2. While it is down the server gets more records (a larger backlog for the next emulator);
    //    the new backlog is above anything the killed process can have stored by then.
    let grown = |growth: f64| (growth * started.elapsed().as_secs_f64()).ceil() as u64 + 10;
    let backlog2 = [0, 1].map(|i| CORPS[i].1 + grown(CORPS[i].2) + DOWNTIME_RECORDS);
    write_atomically(&root.join("scenario.toml"), &scenario(backlog2));
    assert!(signal("KILL", pid1), "kill -9 {pid1}");
    let at_kill = counts(&db);
    eprintln!("[{:>5.1?}] kill -9 {pid1}; stored then {at_kill:?}", t0.elapsed());
    for (i, c) in at_kill.iter().enumerate() {
        assert!((c.cursor as u64) < backlog2[i], "corp {i}: the restarted daemon has more to pull: {c:?}");
    }

    // 3. supervisord restarts it; kill -9 again as soon as the new process has committed its first
    //    batch of the larger backlog (in the middle of ingesting it; it counts as a failed start
    //    since startsecs have not passed: supervisord retries after a backoff).
    let deadline = Instant::now() + Duration::from_secs(90);
    let pid2 = wait_for(root, &mut sup, deadline, "a restarted daemon that ingests", || {
        current_pid(&conf).filter(|p| *p != pid1 && counts(&db)[0].cursor > at_kill[0].cursor)
    });
    assert!(signal("KILL", pid2), "kill -9 {pid2}");
    let at_kill2 = counts(&db);
    let mid = (at_kill2[0].cursor as u64) < backlog2[0];
    eprintln!(
        "[{:>5.1?}] restarted as pid {pid2}; kill -9 {pid2} (mid-backlog: {mid}), stored then {at_kill2:?}",
        t0.elapsed()
    );

    // 4. Restarted again: ingestion completes the larger backlog and follows live growth.
    let pid3 = wait_for(root, &mut sup, deadline, "a new RUNNING pid", || running_pid(&conf).filter(|p| *p != pid2));
    eprintln!("[{:>5.1?}] restarted as pid {pid3}", t0.elapsed());
    let after = wait_for(root, &mut sup, deadline, "ingestion after the restarts", || {
        let c = counts(&db);
        let done = (0..2).all(|i| c[i].cursor as u64 >= backlog2[i] + if i == 0 { 10 } else { 0 });
        done.then_some(c)
    });
    eprintln!("[{:>5.1?}] after the restarts: {after:?}", t0.elapsed());
    let sup_log = read(&root.join("supervisord.log"));
    let killed = format!("exited: {PROGRAM} (terminated by SIGKILL");
    assert_eq!(sup_log.matches(&killed).count(), 2, "supervisord saw both SIGKILLs: {sup_log}");
    assert_eq!(running_pid(&conf), Some(pid3), "no further restart: the new process stays up");

    // 5. `supervisorctl stop`: SIGTERM, clean exit 0 well within stopwaitsecs (40 s).
    let stop_started = Instant::now();
    let (ok, out) = ctl(&conf, &["stop", PROGRAM]);
    let stop_took = stop_started.elapsed();
    assert!(ok && out.contains("stopped"), "supervisorctl stop: {out}");
    assert!(stop_took < Duration::from_secs(40), "stopped after {stop_took:?}, not within stopwaitsecs");
    let sup_log = read(&root.join("supervisord.log"));
    assert!(
        sup_log.contains(&format!("stopped: {PROGRAM} (exit status 0)")),
        "SIGTERM → exit status 0 (not SIGKILL after stopwaitsecs): {sup_log}"
    );
    let daemon_log = read(&root.join("log/wework-msgaudit.log"));
    assert!(daemon_log.contains("SIGTERM"), "the daemon's stderr lands in stderr_logfile: {daemon_log}");
    assert!(!daemon_log.contains("sup-secret"), "no secret in the log");
    eprintln!("[{:>5.1?}] stopped in {stop_took:?}", t0.elapsed());

    // 6. The database against the ground truth, up to the stored cursor.
    let end = counts(&db);
    let file_truth = read(&truth_file);
    for (i, (corpid, _, _)) in CORPS.iter().enumerate() {
        let c = end[i];
        assert_eq!(c.rows, c.distinct, "{corpid}: no duplicate msgid: {c:?}");
        assert_eq!(c.rows, c.cursor, "{corpid}: one row per seq up to the cursor: {c:?}");
        let mut sc: emulator::Scenario = toml::from_str(&scenario([0, 0])).unwrap();
        sc.corp[i].records = c.cursor as u64;
        sc.corp[i].growth_per_sec = 0.0;
        let truth = emulator::Emulator::new(sc).unwrap().truth(corpid);
        assert_eq!(truth.len() as i64, c.cursor);
        let want: BTreeSet<String> = truth.iter().map(|t| t.msgid.clone()).collect();
        let got: BTreeSet<String> = msgids(&db, corpid).into_iter().collect();
        let missing: Vec<_> = want.difference(&got).take(5).collect();
        let extra: Vec<_> = got.difference(&want).take(5).collect();
        assert!(missing.is_empty() && extra.is_empty(), "{corpid}: missing {missing:?}, unexpected {extra:?}");
        // The daemon's own emulator (WWF_EMULATOR_TRUTH, written by the last process at its
        // start: the larger backlog plus a little growth) agrees with the truth computed here.
        let daemon_truth: Vec<(u64, String)> = file_truth
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["corpid"] == *corpid)
            .map(|v| (v["seq"].as_u64().unwrap(), v["msgid"].as_str().unwrap().to_string()))
            .filter(|(seq, _)| *seq <= c.cursor as u64)
            .collect();
        assert!(daemon_truth.len() as u64 >= backlog2[i], "{corpid}: the truth file holds the larger backlog");
        for (seq, msgid) in &daemon_truth {
            assert_eq!(&truth[*seq as usize - 1].msgid, msgid, "{corpid}: seq {seq} in the daemon's truth");
        }
        eprintln!("{corpid}: {} records, cursor {}, none missing, no duplicate", c.rows, c.cursor);
    }

    // 7. supervisord itself stops on SIGTERM.
    assert!(signal("TERM", sup.child.id()));
    let deadline = Instant::now() + Duration::from_secs(30);
    while sup.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "supervisord did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("[{:>5.1?}] done", t0.elapsed());
}
