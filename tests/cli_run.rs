//! `wework-msgaudit run --config FILE` as an operator runs it: the daemon binary with the
//! in-process emulator (`[sdk] library = "emulator"`, `WWF_EMULATOR_SCENARIO`), a corps file
//! with key files beside it, SQLite; SIGTERM stops it gracefully (exit 0). Configuration
//! mistakes exit 2.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CORP: &str = "wwruncorp000000001";
const RECORDS: i64 = 500;

fn setup(dir: &Path) -> std::path::PathBuf {
    let mut scenario = format!("[[corp]]\ncorpid = \"{CORP}\"\nsecret = \"run-secret\"\nrecords = {RECORDS}\n");
    let mut corps = format!("[[corp]]\ncorpid = \"{CORP}\"\nsecret = \"run-secret\"\nlimits = 100\n");
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    for ver in 1..=3 {
        let pem = emulator::demo_private_key_pem(ver).unwrap();
        scenario.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
        std::fs::write(dir.join(format!("keys/v{ver}.pem")), pem).unwrap();
        corps.push_str(&format!("[[corp.key]]\nver = {ver}\nfile = \"keys/v{ver}.pem\"\n"));
    }
    std::fs::write(dir.join("scenario.toml"), scenario).unwrap();
    std::fs::write(dir.join("corps.toml"), corps).unwrap();
    let config = format!(
        "[database]\nurl = \"sqlite://{db}\"\n[sdk]\nlibrary = \"emulator\"\nthreads = 2\n\
         [pull]\npoll_interval = \"200ms\"\nbackoff_initial = \"50ms\"\nbackoff_max = \"1s\"\n\
         [corps]\ntable = true\nfile = \"{corps}\"\nreload_interval = \"1s\"\n[media]\nroot = \"{media}\"\n",
        db = dir.join("run.db").display(),
        media = dir.join("msgfile").display(),
        corps = dir.join("corps.toml").display()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn rows(db: &Path) -> (i64, i64, i64) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let Ok(pool) = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await else {
            return (0, 0, 0);
        };
        let t = format!("message_{CORP}");
        let q = |sql: String| {
            let pool = pool.clone();
            async move { sqlx::query_scalar::<_, i64>(&sql).fetch_one(&pool).await.unwrap_or(0) }
        };
        let n = q(format!("SELECT COUNT(*) FROM {t}")).await;
        let d = q(format!("SELECT COUNT(DISTINCT msgid) FROM {t}")).await;
        let c = q(format!("SELECT seq FROM corp_cursor WHERE corpid = '{CORP}'")).await;
        pool.close().await;
        (n, d, c)
    })
}

/// Runs the daemon on the `setup` configuration until all records are stored, then sends SIGTERM;
/// returns the exit status and stderr (the log). Stderr goes to a file, not a pipe: a chatty log
/// would fill a pipe that nobody reads until the end, and block the daemon.
fn ingest_then_sigterm(dir: &Path, config: &Path, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let log_path = dir.join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
        .args(["run", "--config", config.to_str().unwrap()])
        .env("WWF_EMULATOR_SCENARIO", dir.join("scenario.toml"))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
    let db = dir.join("run.db");
    let until = Instant::now() + Duration::from_secs(120);
    while rows(&db).2 < RECORDS {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("daemon exited early ({status}): {}", std::fs::read_to_string(&log_path).unwrap_or_default());
        }
        assert!(Instant::now() < until, "the daemon did not store {RECORDS} records in time");
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = i32::try_from(child.id()).unwrap();
    assert_eq!(send_sigterm(pid), 0);
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < until, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    (status, String::from_utf8_lossy(&std::fs::read(&log_path).unwrap()).into_owned())
}

#[test]
fn run_pulls_the_configured_corps_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let (status, stderr) = ingest_then_sigterm(dir.path(), &config, &[]);
    assert!(status.success(), "exit {status}: {stderr}");
    assert!(stderr.contains("SIGTERM") && stderr.contains("stopped"), "{stderr}");
    assert!(!stderr.contains("run-secret"), "the secret never reaches the log");
    assert_eq!(rows(&dir.path().join("run.db")), (RECORDS, RECORDS, RECORDS), "rows, distinct msgids, cursor");
}

/// `[log] format = "json"` (here from the environment) makes every log line a JSON object, and the
/// corp's lines carry its `corpid`.
#[test]
fn run_applies_the_log_section_of_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path());
    let (status, stderr) = ingest_then_sigterm(
        dir.path(),
        &config,
        &[("WEWORK_MSGAUDIT__LOG__FORMAT", "json"), ("WEWORK_MSGAUDIT__LOG__LEVEL", "debug")],
    );
    assert!(status.success(), "exit {status}: {stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}")))
        .collect();
    assert!(lines.iter().any(|l| l["level"] == "DEBUG"), "level debug applied");
    assert!(lines.iter().any(|l| l.to_string().contains(CORP)), "corp lines carry the corpid");
    assert!(!stderr.contains("run-secret"));
}

/// SIGTERM through the `kill` command (the tests stay free of `unsafe`).
fn send_sigterm(pid: i32) -> i32 {
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    status.code().unwrap_or(-1)
}

#[test]
fn configuration_mistakes_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let out =
            Command::new(env!("CARGO_BIN_EXE_wework-msgaudit")).args(args).envs(env.iter().copied()).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = run(&["run", "--config", "/nonexistent/config.toml"], &[]);
    assert_eq!(code, Some(2), "{err}");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[pull]\nlimt = 5\n").unwrap();
    let (code, err) = run(&["run", "--config", bad.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("limt"), "{err}");
    let nolib = dir.path().join("nolib.toml");
    std::fs::write(&nolib, "[sdk]\nlibrary = \"/nonexistent/libWeWorkFinanceSdk_C.so\"\n").unwrap();
    let (code, err) = run(&["run", "--config", nolib.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{err}");
    let config = setup(dir.path());
    std::fs::remove_file(dir.path().join("corps.toml")).unwrap();
    let scenario = dir.path().join("scenario.toml");
    let (code, err) =
        run(&["run", "--config", config.to_str().unwrap()], &[("WWF_EMULATOR_SCENARIO", scenario.to_str().unwrap())]);
    assert_eq!(code, Some(2), "a missing corps file: {err}");
    assert!(err.contains("corps.toml"), "{err}");
}

/// Issue 13 point 5: an error printed by the binary carries its causes, not only their summary:
/// what the command was doing, the storage error, the operating system's reason.
#[test]
fn an_error_shows_its_cause_chain() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("no-such-dir").join("x.db");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("[database]\nurl = \"sqlite://{}\"\n", db.display())).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
        .args(["media", "stats", "--config", config.to_str().unwrap()])
        .env_remove("WEWORK_MSGAUDIT_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err.lines().find(|l| l.starts_with("wework-msgaudit: ")).unwrap_or_else(|| panic!("{err}"));
    let expected = format!("wework-msgaudit: opening the database sqlite://{}: database error: ", db.display());
    assert!(line.starts_with(&expected), "{line}");
    assert!(line.ends_with("No such file or directory (os error 2)"), "{line}");
}
