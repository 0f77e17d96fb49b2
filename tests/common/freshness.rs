//! The freshness drill of WeCom callbacks, for the end-to-end test and `benches/callback.rs`: the
//! daemon binary with the REAL vendor SDK reaches the fake WeCom API (in this process) through its
//! proxy; two corps, one with callback settings (`[callback] poll_interval` = 1 h, so only a
//! callback can make it pull) and one without (polling every `poll_interval`). For each sample a
//! new record appears in the fake server and:
//!
//! - callback corp: the fake server POSTs a signed, encrypted `msgaudit_notify` to the daemon
//!   (`FakeApi::grow_and_notify`) and the clock runs from just before that POST until the record
//!   is in the database (its cursor, read every 5 ms);
//! - polling corp: the clock runs from the record's appearance until it is in the database
//!   (what a corp without callbacks gets today: up to `poll_interval` + the pull).
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use super::daemon::{free_port, write_corps, Daemon};
use super::pipeline::Db;
use emulator::api::{ApiOptions, FakeApi};
use emulator::callback::CallbackTarget;

pub const CB_CORP: &str = "wwfresh00000000001";
pub const POLL_CORP: &str = "wwfresh00000000002";
pub const TOKEN: &str = "FreshnessDrillToken";
pub const AES_KEY: &str = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWo";
const BACKLOG: u64 = 20;

/// What one run measured.
pub struct Freshness {
    /// Callback → record stored, per sample.
    pub callback: Vec<Duration>,
    /// Record appeared → stored, by polling, per sample.
    pub polling: Vec<Duration>,
    /// The polling corp's `poll_interval`.
    pub poll_interval: Duration,
    /// The daemon's `/metrics` at the end.
    pub metrics: String,
    /// HTTP status of a forged callback (must be 401) and whether it made a pull.
    pub forged: (u16, bool),
}

/// The `p` quantile (0..=1) of `v` (nearest rank).
pub fn quantile(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

async fn cursor(db: &Db, corp: &str) -> u64 {
    db.int("SELECT CAST(seq AS SIGNED INTEGER) FROM corp_cursor WHERE corpid = ?", Some(corp)).await.max(0) as u64
}

async fn wait_cursor(db: &Db, corp: &str, want: u64, deadline: Duration, daemon: &mut Daemon) -> Duration {
    let t0 = Instant::now();
    loop {
        if cursor(db, corp).await >= want {
            return t0.elapsed();
        }
        daemon.alive();
        assert!(t0.elapsed() < deadline, "{corp}: seq {want} not stored within {deadline:?}:\n{}", tail(&daemon.log()));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Runs the drill: `callbacks` samples on the callback corp, then `polls` on the polling corp
/// (`poll_interval`), in one daemon run on `db` with the real SDK at `sdk`.
pub async fn run(
    dir: &Path,
    db: &Db,
    sdk: &Path,
    callbacks: usize,
    polls: usize,
    poll_interval: Duration,
) -> Freshness {
    write_corps(dir, &[CB_CORP.to_string(), POLL_CORP.to_string()], 23, BACKLOG, "", None);
    let corps = std::fs::read_to_string(dir.join("corps.toml")).unwrap();
    let corps = corps.replacen(
        "secret = \"s-0\"\n",
        &format!("secret = \"s-0\"\ncallback_token = \"{TOKEN}\"\nencoding_aes_key = \"{AES_KEY}\"\n"),
        1,
    );
    std::fs::write(dir.join("corps.toml"), corps).unwrap();
    let emu = emulator::Emulator::new(emulator::Scenario::load(&dir.join("scenario.toml")).unwrap()).unwrap();
    let api = FakeApi::start(emu, ApiOptions::default()).unwrap();
    let (cb_port, http_port) = (free_port(), free_port());
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{url}\"\n\
             [sdk]\nlibrary = \"{sdk}\"\nthreads = 2\ntimeout = \"5s\"\nproxy = \"{proxy}\"\n\
             [pull]\nlimit = 100\npoll_interval = \"{poll}ms\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n\
             [corps]\ntable = false\nfile = \"{corps}\"\nreload_interval = \"1h\"\n\
             [media]\nenabled = false\n\
             [http]\nlisten = \"127.0.0.1:{http_port}\"\n\
             [callback]\nlisten = \"127.0.0.1:{cb_port}\"\npoll_interval = \"1h\"\n",
            url = db.url,
            sdk = sdk.display(),
            proxy = api.proxy_url(),
            poll = poll_interval.as_millis(),
            corps = dir.join("corps.toml").display(),
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(dir, &config, 1, &[]);
    for corp in [CB_CORP, POLL_CORP] {
        wait_cursor(db, corp, BACKLOG, Duration::from_secs(120), &mut daemon).await;
    }
    let target = CallbackTarget {
        url: format!("http://127.0.0.1:{cb_port}/callback/{CB_CORP}"),
        token: TOKEN.into(),
        encoding_aes_key: AES_KEY.into(),
        corpid: CB_CORP.into(),
    };
    // The daemon's listener answers the URL verification with the plain text.
    let t = target.clone();
    let (status, body) = tokio::task::spawn_blocking(move || t.verify_url("4455667788")).await.unwrap().unwrap();
    assert_eq!((status, body.as_slice()), (200, b"4455667788".as_slice()), "URL verification");

    let mut out = Freshness {
        callback: Vec::new(),
        polling: Vec::new(),
        poll_interval,
        metrics: String::new(),
        forged: (0, false),
    };
    let api = std::sync::Arc::new(api);
    for i in 0..callbacks {
        let (a, t) = (std::sync::Arc::clone(&api), target.clone());
        let t0 = Instant::now();
        let (seq, status) =
            tokio::task::spawn_blocking(move || a.grow_and_notify(&t, 1, i as u64)).await.unwrap().unwrap();
        assert_eq!(status, 200, "callback {i}");
        wait_cursor(db, CB_CORP, seq, Duration::from_secs(60), &mut daemon).await;
        out.callback.push(t0.elapsed());
        // Apart, so that each callback finds the corp waiting (WeCom sends at most every 15 s).
        tokio::time::sleep(Duration::from_millis(50 + (i as u64 * 37) % 150)).await;
    }
    // A forged callback (wrong token): 401, and no pull.
    let forged = CallbackTarget { token: "NotTheToken".into(), ..target.clone() };
    let seq_before = cursor(db, CB_CORP).await;
    api.emulator().grow(CB_CORP, 1).unwrap();
    let status = tokio::task::spawn_blocking(move || forged.notify(9999)).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    out.forged = (status, cursor(db, CB_CORP).await > seq_before);
    for i in 0..polls {
        // A random phase against the poll timer.
        tokio::time::sleep(Duration::from_millis((i as u64 * 7919) % poll_interval.as_millis().max(1) as u64)).await;
        let t0 = Instant::now();
        let seq = api.emulator().grow(POLL_CORP, 1).unwrap();
        wait_cursor(db, POLL_CORP, seq, poll_interval * 4 + Duration::from_secs(30), &mut daemon).await;
        out.polling.push(t0.elapsed());
    }
    out.metrics = tokio::task::spawn_blocking(move || super::daemon::get(http_port, "/metrics"))
        .await
        .unwrap()
        .map(|(_, body)| body)
        .unwrap_or_default();
    let (status, _) = daemon.terminate(Duration::from_secs(60));
    assert!(status.success(), "daemon exit {status}:\n{}", tail(&daemon.log()));
    out
}
