//! CPU time of processes and threads from `/proc`, shared by the benchmarks that account for
//! where the cores went (the bench itself, the daemon, its children, the database server).
#![allow(dead_code)]

/// CPU seconds (user + system) of `/proc/<path>/stat` (a process or a task).
pub fn cpu_secs(path: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{path}/stat")) else { return 0.0 };
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    // The state (a letter) first, then the numbers: utime and stime are fields 14 and 15 of stat,
    // so 12 and 13 of `rest` counted from 1 with the state, 11 and 12 from 0.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (field(11) + field(12)) as f64 / 100.0
}

/// The pids of the processes whose command name is `comm` (e.g. `mariadbd`).
pub fn pids_named(comm: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm))
        .collect()
}

/// CPU seconds of every process named `comm`, together.
pub fn cpu_secs_named(comm: &str) -> f64 {
    pids_named(comm).iter().map(|pid| cpu_secs(pid)).sum()
}
