//! [`ProcessStats`]: the standard `process_*` metrics, read from `/proc` as Prometheus' own
//! process collector reads them (CPU seconds, open and maximum file descriptors, start time,
//! resident and virtual memory). Linux only; on other systems the fields are `None` and the
//! families are left out.

use serde::{Deserialize, Serialize};

/// Clock ticks per second of `/proc/<pid>/stat` (`USER_HZ`, 100 on every Linux ABI; Prometheus'
/// procfs library assumes the same).
const USER_HZ: f64 = 100.0;

/// The process at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// User + system CPU time, seconds.
    pub cpu_seconds: Option<f64>,
    /// Open file descriptors.
    pub open_fds: Option<u64>,
    /// The soft limit of open file descriptors.
    pub max_fds: Option<u64>,
    /// Start time, seconds since the epoch.
    pub start_time_seconds: Option<f64>,
    /// Resident memory, bytes.
    pub resident_memory_bytes: Option<u64>,
    /// Virtual memory, bytes.
    pub virtual_memory_bytes: Option<u64>,
}

impl ProcessStats {
    /// Reads this process's numbers.
    pub fn read() -> Self {
        let stat = std::fs::read_to_string("/proc/self/stat").ok();
        // The fields after the command name (which may hold spaces and parentheses).
        let fields: Vec<&str> = stat
            .as_deref()
            .and_then(|s| s.rsplit_once(')'))
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // Field n of proc(5) is fields[n - 3].
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        let cpu_seconds = field(14).zip(field(15)).map(|(u, s)| (u + s) as f64 / USER_HZ);
        let start_time_seconds = field(22).zip(boot_time()).map(|(ticks, boot)| boot as f64 + ticks as f64 / USER_HZ);
        Self {
            cpu_seconds,
            open_fds: std::fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64),
            max_fds: max_open_files(),
            start_time_seconds,
            resident_memory_bytes: status_kib("VmRSS:").map(|k| k * 1024),
            virtual_memory_bytes: field(23),
        }
    }
}

/// `btime` of `/proc/stat`: the boot time, seconds since the epoch.
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")).and_then(|v| v.trim().parse().ok())
}

/// The soft limit of "Max open files" in `/proc/self/limits`.
fn max_open_files() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    match soft {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// A `kB` value of `/proc/self/status`.
fn status_kib(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read() {
        let p = ProcessStats::read();
        assert!(p.resident_memory_bytes.is_some_and(|b| b > 1 << 20), "{p:?}");
        assert!(p.virtual_memory_bytes >= p.resident_memory_bytes, "{p:?}");
        assert!(p.open_fds.is_some_and(|n| n >= 3) && p.max_fds >= p.open_fds, "{p:?}");
        assert!(p.cpu_seconds.is_some_and(|s| s >= 0.0), "{p:?}");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let started = p.start_time_seconds.unwrap();
        assert!(started <= now + 1.0 && now - started < 24.0 * 3600.0, "started {started}, now {now}");
    }
}
