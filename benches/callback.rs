//! `cargo bench --bench callback`: how fresh the archive is with WeCom callbacks, against polling,
//! end to end in ONE daemon run with the REAL vendor SDK (`WWF_REAL_SDK`, run inside `unshare -n`
//! like the real-SDK tests): the fake WeCom API makes a new record appear and POSTs a signed,
//! encrypted `msgaudit_notify` to the daemon; the time until the record is in the database is the
//! callback figure. A second corp without callbacks polls every `poll_interval` (default 5 s, the
//! `[pull]` default): the time from a record's appearance until it is stored is the polling figure
//! (up to `poll_interval` + the pull). See `tests/common/freshness.rs`.
//!
//! Environment: `WWF_BENCH_CALLBACK_SAMPLES` (default 100 callbacks), `WWF_BENCH_POLL_SAMPLES`
//! (default 20), `WWF_BENCH_POLL_INTERVAL_MS` (default 5000), `WWF_BENCH_DB=mariadb` for a fresh
//! MariaDB database instead of SQLite. The goal: callback p99 < 1 s.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/knobs.rs"]
mod knobs;

use std::time::Duration;

use common::freshness::{self, quantile};
use common::pipeline::Db;

fn main() {
    // `cargo bench` passes `--bench`; a `cargo test --benches` run passes nothing: skip there.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(sdk) = std::env::var_os("WWF_REAL_SDK").map(std::path::PathBuf::from) else {
        eprintln!(
            "callback bench: set WWF_REAL_SDK (the real libWeWorkFinanceSdk_C_x86.so) and run inside `unshare -n`"
        );
        std::process::exit(2);
    };
    common::assert_network_isolated();
    let callbacks = knobs::number("WWF_BENCH_CALLBACK_SAMPLES", 100) as usize;
    let polls = knobs::number("WWF_BENCH_POLL_SAMPLES", 20) as usize;
    let poll = Duration::from_millis(knobs::number("WWF_BENCH_POLL_INTERVAL_MS", 5000));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let db = if std::env::var("WWF_BENCH_DB").as_deref() == Ok("mariadb") {
            Db::try_mysql().await.expect("MariaDB")
        } else {
            Db::sqlite().await
        };
        let dir = tempfile::tempdir().unwrap();
        let f = freshness::run(dir.path(), &db, &sdk, callbacks, polls, poll).await;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("callback freshness ({}, real SDK, one daemon run)", db.name());
        println!(
            "  with callbacks:  callback → record stored   p50 {:7.1} ms  p99 {:7.1} ms  max {:7.1} ms  ({} samples)",
            ms(quantile(&f.callback, 0.5)),
            ms(quantile(&f.callback, 0.99)),
            ms(quantile(&f.callback, 1.0)),
            f.callback.len()
        );
        println!(
            "  polling every {:?}: record appears → stored p50 {:7.1} ms  p99 {:7.1} ms  max {:7.1} ms  ({} samples)",
            f.poll_interval,
            ms(quantile(&f.polling, 0.5)),
            ms(quantile(&f.polling, 0.99)),
            ms(quantile(&f.polling, 1.0)),
            f.polling.len()
        );
        println!(
            "  goal callback p99 < 1 s: {}",
            if quantile(&f.callback, 0.99) < Duration::from_secs(1) { "met" } else { "MISSED" }
        );
        assert_eq!(f.forged, (401, false));
        db.finish().await;
    });
}
