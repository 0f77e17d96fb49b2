//! `cargo bench --bench cluster`: records/s with 1, 2 and 3 daemon instances sharing one MariaDB
//! (`[cluster] leases`), 30 emulator corps × `WWF_BENCH_CLUSTER_RECORDS` (default 1,000) records,
//! per-instance CPU (from /proc), and the takeover time after `kill -9` of one of 3 instances.
//! Scaled by the ceiling of ARCHITECTURE.md decision 16 measured in the same run. This machine has 2
//! cores: more instances cannot add CPU, so the point is that splitting costs little and that a
//! dead instance's corps move on within the lease TTL.

#[path = "support/ceiling.rs"]
mod ceiling;
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/knobs.rs"]
mod knobs;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::{free_port, write_corps, Daemon};
use common::pipeline::Db;

const CORPS: usize = 30;
const TTL_S: u64 = 5;

fn corpid(i: usize) -> String {
    format!("wwbench{i:012}")
}

fn setup(dir: &Path, db_url: &str, records: u64, instances: usize) -> Vec<PathBuf> {
    let corpids: Vec<String> = (0..CORPS).map(corpid).collect();
    write_corps(dir, &corpids, 9, records, "", None);
    (1..=instances)
        .map(|n| {
            let config = format!(
                "[database]\nurl = \"{db_url}\"\n[sdk]\nlibrary = \"emulator\"\nthreads = 2\n\
                 [pull]\npoll_interval = \"500ms\"\n[corps]\ntable = false\nfile = \"{corps}\"\n\
                 [media]\nenabled = false\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
                 [cluster]\nleases = true\ninstance_id = \"bench-{n}\"\nlease_ttl = \"{TTL_S}s\"\n[log]\nlevel = \"warn\"\n",
                corps = dir.join("corps.toml").display(),
                port = free_port(),
            );
            let path = dir.join(format!("config-{n}.toml"));
            std::fs::write(&path, config).unwrap();
            path
        })
        .collect()
}

/// utime + stime of a process, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    // Clock ticks are USER_HZ = 100 on Linux.
    ticks / 100.0
}

struct Outcome {
    rate: f64,
    cpu: Vec<f64>,
    takeover: Option<Duration>,
}

async fn stored(db: &Db) -> i64 {
    db.int("SELECT CAST(COALESCE(SUM(seq), 0) AS SIGNED INTEGER) FROM corp_cursor", None).await
}

async fn run(instances: usize, records: u64, kill_one: bool) -> Outcome {
    let db = Db::try_mysql().await.expect("MariaDB (see README: Testing)");
    let dir = tempfile::tempdir().unwrap();
    let configs = setup(dir.path(), &db.url, records, instances);
    let total = (CORPS as u64 * records) as i64;
    let start = Instant::now();
    let mut daemons: Vec<Daemon> =
        configs.iter().enumerate().map(|(i, c)| Daemon::start(dir.path(), c, i + 1, &[])).collect();
    while stored(&db).await < total {
        for d in &mut daemons {
            d.alive();
        }
        assert!(start.elapsed() < Duration::from_secs(900), "not done");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = start.elapsed();
    let cpu: Vec<f64> = daemons.iter().map(|d| cpu_seconds(d.child.id()) / elapsed.as_secs_f64()).collect();
    let takeover = if kill_one {
        let held: Vec<String> = db
            .pairs("SELECT corpid, holder FROM corp_lease WHERE holder = 'bench-1'")
            .await
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        let killed = Instant::now();
        let _ = daemons[0].child.kill();
        let _ = daemons[0].child.wait();
        loop {
            let now: Vec<(String, String)> = db.pairs("SELECT corpid, holder FROM corp_lease").await;
            let moved = held.iter().all(|c| now.iter().any(|(k, h)| k == c && h != "bench-1" && !h.is_empty()));
            if moved {
                break Some(killed.elapsed());
            }
            assert!(killed.elapsed() < Duration::from_secs(120), "no takeover");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    } else {
        None
    };
    for d in daemons.iter_mut().skip(usize::from(kill_one)) {
        let _ = d.terminate(Duration::from_secs(60));
    }
    let rows = db
        .int("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM corp_cursor WHERE seq = ?", Some(&records.to_string()))
        .await;
    assert_eq!(rows, CORPS as i64, "every corp complete");
    db.finish().await;
    Outcome { rate: total as f64 / elapsed.as_secs_f64(), cpu, takeover }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks; this is not one to run there.
    }
    let records: u64 = knobs::number("WWF_BENCH_CLUSTER_RECORDS", 1000);
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ceiling = ceiling::rsa_ceiling(cores);
    println!(
        "aws-lc-rs RSA-2048 decryptions/s on {cores} threads (ceiling, ARCHITECTURE.md decision 16): {ceiling:.1}"
    );
    println!("{CORPS} corps × {records} records, MariaDB, leases with TTL {TTL_S} s");
    for n in 1..=3 {
        let o = rt.block_on(run(n, records, n == 3));
        let cpu: Vec<String> = o.cpu.iter().map(|c| format!("{:.0} %", c * 100.0)).collect();
        println!(
            "{n} instance(s): {:.1} records/s = {:.2} of the ceiling; CPU per instance {}",
            o.rate,
            o.rate / ceiling,
            cpu.join(", ")
        );
        if let Some(t) = o.takeover {
            println!("kill -9 of 1 of 3 instances: all its corps claimed by the others after {:.2} s", t.as_secs_f64());
        }
    }
}
