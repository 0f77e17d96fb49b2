//! The integration tests, as one binary (`cargo test --test integration`): each file of `tests/`
//! is a module here, so that the whole suite links once instead of once per file (a test binary
//! links every dependency statically). Run one file's tests with its module path as the filter,
//! e.g. `cargo test --test integration store_db::`.
//!
//! The tests of all files run as threads of this one process (`--test-threads=2` in
//! scripts/test.sh), so none may change what the process shares: no `std::env::set_var`, no
//! current directory, umask or signal disposition of its own; configuration goes to children
//! through `Command::env`, state into per-test temp dirs. The emulator's `.so`, once loaded
//! in-process, serves the demo scenario to every test here (it reads `WWF_EMULATOR_SCENARIO`
//! once per process, and no test of this binary sets it). The five files that need a process of
//! their own are separate `[[test]]` targets (Cargo.toml says why for each):
//! `sdk_vs_libavformat`, `pipeline_big_records`, `pipeline_scale`, `media_s3`, `cluster_leases`.
//!
//! Shared helpers live in `common/` (and `crypto_support/` for the crypto tests); `per_db!`
//! (in `common`) makes one test per database of an `async fn(Db)` body.

#[macro_use]
mod common;
mod crypto_support;

mod alerts;
mod callback;
mod cli_corp;
mod cli_demo;
mod cli_doctor;
mod cli_ops;
mod cli_run;
mod completeness;
mod console;
mod crypto_keys;
mod crypto_native;
mod crypto_native_fuzz;
mod deploy_files;
mod deploy_supervisord;
mod drills;
mod e2e_hostile;
mod e2e_real_sdk;
mod file_modes;
mod media_download;
mod media_kill;
mod media_recovery;
mod media_transcode;
mod message_emulator;
mod message_hostile;
mod observe_health;
mod pipeline_corplist;
mod pipeline_errors;
mod pipeline_hang;
mod pipeline_ingest;
mod pipeline_poison;
mod pipeline_progress;
mod pipeline_reload;
mod reply_time;
mod review_api;
mod review_auth;
mod rules;
mod run_operator;
mod sdk_contract;
mod sdk_isolation;
mod sdk_media;
mod sdk_process;
mod search;
mod store_db;
mod wecom_meta;
