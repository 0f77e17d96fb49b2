//! `cargo bench --bench scale`: many corps in one daemon process, as a user would run it.
//!
//! The daemon binary (`run`) with the default settings except what the setup needs (SQLite, the
//! built-in emulator, a corps file, an HTTP port): `BENCH_CORPS` corps (default 5,000), each with
//! a backlog of 5 media-free records under one key. Printed:
//! - how long until every corp is caught up (every record stored), from the process start;
//! - then, after `BENCH_SETTLE_SECS` (default 10), over `BENCH_IDLE_SECS` (default 30) of idling at
//!   the default poll interval: the resident memory (VmRSS), the thread count and the CPU used, in
//!   % of one core (utime + stime from /proc).
//!
//! The goals (issue 18): caught up in under 60 s, idle under 400 MB RSS and under 25 % of one core.
//! The emulator runs inside the daemon's process, so its CPU (answering every idle poll) is counted.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/knobs.rs"]
mod knobs;

use std::path::Path;
use std::time::{Duration, Instant};

use common::daemon::{free_port, Daemon};
use common::pipeline::Db;

const RECORDS: u64 = 5;

fn corpid(i: usize) -> String {
    format!("wwscale{i:011}")
}

/// The emulator's scenario and the daemon's corps file, one key (ver 1) for every corp.
fn write_corps(dir: &Path, corps: usize) {
    let pem = emulator::demo_private_key_pem(1).expect("demo key");
    std::fs::write(dir.join("v1.pem"), pem).unwrap();
    let mut scenario = String::from("seed = 11\n");
    let mut file = String::new();
    for i in 0..corps {
        let c = corpid(i);
        scenario.push_str(&format!(
            "[[corp]]\ncorpid = \"{c}\"\nsecret = \"s-{i}\"\nrecords = {RECORDS}\n\
             [corp.media_mix]\n[[corp.key]]\nver = 1\nprivate_key_pem = '''{pem}'''\n"
        ));
        file.push_str(&format!(
            "[[corp]]\ncorpid = \"{c}\"\nsecret = \"s-{i}\"\n[[corp.key]]\nver = 1\nfile = \"v1.pem\"\n"
        ));
    }
    std::fs::write(dir.join("scenario.toml"), scenario).unwrap();
    std::fs::write(dir.join("corps.toml"), file).unwrap();
}

/// (utime + stime in seconds, VmRSS in kB, threads) of a process and its children.
fn usage(pid: u32) -> (f64, u64, u64) {
    let mut pids = vec![pid];
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        pids.extend(children.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
    }
    let (mut cpu, mut rss, mut threads) = (0.0, 0, 0);
    for p in pids {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, r)| r).split_whitespace().collect();
        let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // Fields 14 and 15 of /proc/pid/stat (utime, stime), counted from the state (field 3);
        // clock ticks are USER_HZ = 100.
        cpu += (tick(11) + tick(12)) / 100.0;
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        rss += field("VmRSS:");
        threads += field("Threads:");
    }
    (cpu, rss, threads)
}

async fn stored(db: &Db) -> i64 {
    db.int("SELECT CAST(COALESCE(SUM(seq), 0) AS INTEGER) FROM corp_cursor", None).await
}

fn main() {
    let corps = knobs::number("BENCH_CORPS", 5000) as usize;
    let settle = Duration::from_secs(knobs::number("BENCH_SETTLE_SECS", 10));
    let idle = Duration::from_secs(knobs::number("BENCH_IDLE_SECS", 30));
    common::block_on(async {
        let db = Db::sqlite().await;
        let dir = tempfile::tempdir().unwrap();
        write_corps(dir.path(), corps);
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[database]\nurl = \"{}\"\n[sdk]\nlibrary = \"emulator\"\n[corps]\ntable = false\nfile = \"{}\"\n\
                 [http]\nlisten = \"127.0.0.1:{}\"\n[log]\nlevel = \"warn\"\n",
                db.url,
                dir.path().join("corps.toml").display(),
                free_port()
            ),
        )
        .unwrap();
        let total = (corps as u64 * RECORDS) as i64;
        let started = Instant::now();
        let mut daemon = Daemon::start(dir.path(), &config, 1, &[]);
        let pid = daemon.child.id();
        let mut peak_rss = 0;
        loop {
            daemon.alive();
            peak_rss = peak_rss.max(usage(pid).1);
            let n = stored(&db).await;
            if n >= total {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(1800), "{n} of {total} records after 30 min");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let caught_up = started.elapsed();
        let cpu_catch_up = usage(pid).0;
        println!(
            "{corps} corps × {RECORDS} records caught up in {:.1} s (goal < 60 s); {cpu_catch_up:.1} s of CPU; \
             peak RSS while catching up {} MB",
            caught_up.as_secs_f64(),
            peak_rss / 1024
        );
        tokio::time::sleep(settle).await;
        let (cpu0, _, _) = usage(pid);
        let t0 = Instant::now();
        let (mut rss_max, mut threads_max) = (0, 0);
        while t0.elapsed() < idle {
            daemon.alive();
            let (_, rss, threads) = usage(pid);
            rss_max = rss_max.max(rss);
            threads_max = threads_max.max(threads);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let (cpu1, rss, threads) = usage(pid);
        let busy = (cpu1 - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
        println!(
            "idle over {:.0} s (after {} s to settle): RSS {} MB (max {} MB; goal < 400 MB), {threads} threads \
             (max {threads_max}), CPU {busy:.1} % of one core (goal < 25 %)",
            t0.elapsed().as_secs_f64(),
            settle.as_secs(),
            rss / 1024,
            rss_max.max(rss) / 1024
        );
        let (status, took) = daemon.terminate(Duration::from_secs(120));
        println!("SIGTERM → {status} in {:.1} s", took.as_secs_f64());
        assert!(status.success(), "{}", daemon.log());
        db.finish().await;
    });
}
