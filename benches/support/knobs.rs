//! The benchmarks' settings from the environment (`BENCH_RECORDS`, `BENCH_ROUNDS`, …), read one
//! way by all of them: unset means the default, a value that does not parse stops the bench with
//! its name (a typo must not silently measure the default).
#![allow(dead_code)]

/// The number in the environment variable `name`, or `default` when it is unset.
pub fn number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => v.trim().parse().unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    }
}
