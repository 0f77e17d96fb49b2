//! Operating-system helpers that need `unsafe`, kept here with the crate's other unsafe code.
//!
//! - [`capture_stdout`]: the vendor SDK `printf()`s the `gettoken` response to stdout when the
//!   token request fails, and that line is the only place the cause (e.g. errcode 40001) shows
//!   (sdk-facts.md §2, ARCHITECTURE.md decision 11). `doctor --online` captures fd 1 around its one
//!   `GetChatData` per corp to name the cause; the daemon never does (fd 1 is process-wide).
//! - [`free_space`]: `statvfs` of the media root, for `doctor`.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// At most this much captured output is kept.
pub const MAX_CAPTURE: u64 = 64 * 1024;

/// Flushes every C stdio output stream (the SDK's `printf` buffers in glibc's `stdout`).
fn flush_c_stdio() {
    // SAFETY: fflush(NULL) flushes all open output streams; it reads no pointer of ours.
    unsafe {
        libc::fflush(std::ptr::null_mut());
    }
}

/// An anonymous in-memory file (`memfd_create`), closed on exec.
fn memfd() -> io::Result<File> {
    // SAFETY: the name is a NUL-terminated literal; memfd_create returns a new descriptor or -1.
    let fd = unsafe { libc::memfd_create(c"wework-msgaudit-stdout".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor owned by nothing else; the File closes it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Puts the saved descriptor back on fd 1 when dropped (also when the captured call panics).
struct Restore {
    saved: OwnedFd,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let _ = io::stdout().flush();
        flush_c_stdio();
        // SAFETY: both descriptors are open: `saved` is owned by self, fd 1 is the redirection.
        // dup2 replaces fd 1 atomically; `saved` is closed afterwards by OwnedFd's drop.
        unsafe {
            libc::dup2(self.saved.as_raw_fd(), libc::STDOUT_FILENO);
        }
    }
}

/// Points fd 1 at `sink`; the returned guard restores it.
fn redirect(sink: &File) -> io::Result<Restore> {
    io::stdout().flush()?;
    flush_c_stdio();
    // SAFETY: dup has no memory-safety preconditions; the result is checked before use.
    let saved = unsafe { libc::dup(libc::STDOUT_FILENO) };
    if saved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `saved` is a fresh descriptor owned by nothing else.
    let saved = unsafe { OwnedFd::from_raw_fd(saved) };
    // SAFETY: `sink` and fd 1 are open descriptors; dup2 replaces fd 1 atomically.
    if unsafe { libc::dup2(sink.as_raw_fd(), libc::STDOUT_FILENO) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Restore { saved })
}

/// Runs `f` with fd 1 redirected into an anonymous in-memory file and returns `f`'s result and
/// what was written to stdout meanwhile (at most [`MAX_CAPTURE`] bytes), or why stdout could not
/// be captured (`f` runs either way, exactly once).
///
/// fd 1 is process-wide: whatever any thread writes to stdout while `f` runs is captured too, so
/// call this only where nothing else prints (`doctor`, between two of its own lines). C stdio is
/// flushed before fd 1 is restored, so a `printf` without a newline is captured as well; fd 1 is
/// restored even when `f` panics.
pub fn capture_stdout<T>(f: impl FnOnce() -> T) -> (T, io::Result<Vec<u8>>) {
    let sink = match memfd() {
        Ok(sink) => sink,
        Err(e) => return (f(), Err(e)),
    };
    let guard = match redirect(&sink) {
        Ok(guard) => guard,
        Err(e) => return (f(), Err(e)),
    };
    let value = f();
    drop(guard);
    (value, read_back(sink))
}

fn read_back(mut sink: File) -> io::Result<Vec<u8>> {
    sink.seek(SeekFrom::Start(0))?;
    let mut out = Vec::new();
    sink.take(MAX_CAPTURE).read_to_end(&mut out)?;
    Ok(out)
}

/// Bytes available to unprivileged users (`f_bavail × f_frsize`) on the file system of `path`.
pub fn free_space(path: &Path) -> io::Result<u64> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: `statvfs` is a plain C struct of integers, for which all-zero bytes are valid.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and outlives the call; `st` is writable memory for
    // exactly one `struct statvfs`.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // The field types differ between targets (u32 or u64): widen explicitly.
    #[allow(clippy::unnecessary_cast)]
    let (avail, frsize) = (st.f_bavail as u64, st.f_frsize as u64);
    Ok(avail.saturating_mul(frsize))
}

/// Sets the process's file mode creation mask to `mask` (e.g. `0o077`: new files 0600, new
/// directories 0700) and returns the previous mask.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask(2) only swaps the calling process's creation mask; it cannot fail and reads
    // or writes no memory of ours.
    let previous = unsafe { libc::umask(mask as libc::mode_t) };
    previous as u32
}

/// True when this process may write into `path` (access(2) with `W_OK`: the real uid's view,
/// without creating anything).
pub fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt as _;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: `c_path` is a valid NUL-terminated string that outlives the call; access(2) only
    // reads it.
    unsafe { libc::access(c_path.as_ptr(), libc::W_OK) == 0 }
}

/// Gives the system back the memory the C allocator holds free (glibc's `malloc_trim(0)`; a
/// no-op elsewhere). glibc returns what a thread freed in its arena only from the arena's top,
/// so after a burst (thousands of corps catching up, SQLite re-parsing its schema on each
/// connection) hundreds of MB stay resident though nothing uses them: at 5,000 corps one call
/// took the daemon from 554 MB to 391 MB (measured). Returns whether anything was given back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() -> bool {
    // SAFETY: malloc_trim takes no pointers and reads or writes no memory of ours; glibc locks
    // each arena while it trims it, so it may run beside any other allocation.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// See the glibc version: other allocators give memory back themselves.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_rust_and_c_stdout_and_restores_fd_1() {
        let (value, captured) = capture_stdout(|| {
            std::io::stdout().write_all(b"from rust\n").unwrap();
            std::io::stdout().flush().unwrap();
            // SAFETY: a NUL-terminated format without conversions.
            unsafe {
                libc::printf(c"from C, no newline".as_ptr());
            }
            7
        });
        assert_eq!(value, 7);
        let text = String::from_utf8(captured.unwrap()).unwrap();
        assert!(text.contains("from rust\n"), "{text:?}");
        assert!(text.contains("from C, no newline"), "{text:?}");
        // fd 1 is back: a second capture sees only its own output.
        let ((), again) = capture_stdout(|| {
            std::io::stdout().write_all(b"second").unwrap();
        });
        let again = String::from_utf8(again.unwrap()).unwrap();
        assert!(again.contains("second") && !again.contains("from rust"), "{again:?}");
    }

    #[test]
    fn free_space_of_tmp_is_known() {
        assert!(free_space(&std::env::temp_dir()).unwrap() > 0);
        assert!(free_space(Path::new("/nonexistent/dir")).is_err());
    }

    /// Many small blocks freed by another thread stay resident until the trim gives them back.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn release_free_memory_gives_freed_pages_back() {
        fn rss_kb() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .unwrap()
                .trim()
                .trim_end_matches(" kB")
                .trim()
                .parse()
                .unwrap()
        }
        // Below the mmap threshold, in a thread's own arena; one block kept at the end, so the
        // arena cannot shrink from its top by itself.
        let held = std::thread::spawn(|| {
            let blocks: Vec<Vec<u8>> = (0..200_000).map(|i| vec![(i % 251) as u8; 1000]).collect();
            let keep = vec![1u8; 1000];
            drop(blocks);
            keep
        })
        .join()
        .unwrap();
        let before = rss_kb();
        release_free_memory();
        let after = rss_kb();
        assert_eq!(held[0], 1);
        assert!(before.saturating_sub(after) > 100_000, "RSS {before} kB before the trim, {after} kB after");
    }
}
