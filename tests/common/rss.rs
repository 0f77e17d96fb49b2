//! Peak resident memory from `/proc`, shared by the tests and benches that bound it: `VmHWM` of
//! a process, and starting a new peak for this one.
#![allow(dead_code)]

/// `VmHWM` (peak resident set, kB) of `/proc/<pid>/status` (`pid` may be `self`); `None` when
/// the process is gone or the kernel does not report it.
pub fn peak_kb(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Starts a new peak for this process: its `VmHWM` becomes its current resident size
/// (`echo 5 > /proc/self/clear_refs`, Linux ≥ 4.0).
pub fn reset_peak() -> std::io::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
}
