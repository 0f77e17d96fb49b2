//! Hot reload: watch the configuration file and the corps file, and tell what changed.
//!
//! [`FileWatch`] watches the *directories* of the files (editors save by writing a new file and
//! renaming it over the old one, which a watch on the file itself would lose) through
//! notify-debouncer-full, and sends a [`Changed`] per debounced burst that touched one of the
//! files. The daemon (`cli::run`) then re-reads the corps (the supervisor's `Reload`) or the
//! configuration, and [`classify`] splits a configuration change into what applies at once
//! (ARCHITECTURE.md decision 12: the corp sources, the per-corp defaults and proxy, the log level) and what
//! needs a restart (reported by key name, never by value: values may be secrets).
//!
//! Only events naming one of the two files count: a log file, the SQLite database or any other
//! file of the same directory changes nothing (and the watcher crates' own debug/trace events are
//! dropped by [`crate::logging`], else a log file in the directory would feed on itself). SIGHUP
//! (`cli::run`) triggers the same reload as an edit of both files.
//!
//! An invalid edit is reported and the previous configuration keeps running. Polling
//! (`[corps] reload_interval`) stays on as well: it covers the `corplist` table and any file
//! event notify misses (network file systems).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify_debouncer_full::notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use tokio::sync::mpsc;

/// Which watched files changed in one debounced burst.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changed {
    /// The main configuration file.
    pub config: bool,
    /// The corps file.
    pub corps: bool,
}

/// Why watching failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// notify refused (no inotify instances left, directory missing…).
    #[error("cannot watch {path}: {message}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// notify's message.
        message: String,
    },
}

/// A watch on up to two files; dropping it stops watching.
pub struct FileWatch {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatch").finish_non_exhaustive()
    }
}

/// The absolute form of `p` (relative to the working directory), without touching the disk.
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl FileWatch {
    /// Watches `config` and `corps` (either may be absent), debounced by `debounce`; each burst
    /// that touched one of them is sent on `tx`.
    pub fn start(
        config: Option<&Path>,
        corps: Option<&Path>,
        debounce: Duration,
        tx: mpsc::UnboundedSender<Changed>,
    ) -> Result<Self, WatchError> {
        let config = config.map(absolute);
        let corps = corps.map(absolute);
        let (c, k) = (config.clone(), corps.clone());
        let handler = move |result: DebounceEventResult| {
            let Ok(events) = result else { return };
            let mut changed = Changed::default();
            for event in &events {
                if event.kind.is_access() {
                    continue;
                }
                for path in &event.paths {
                    changed.config |= c.as_deref() == Some(path.as_path());
                    changed.corps |= k.as_deref() == Some(path.as_path());
                }
            }
            if changed != Changed::default() {
                let _ = tx.send(changed);
            }
        };
        let mut debouncer = new_debouncer(debounce, None, handler)
            .map_err(|e| WatchError::Watch { path: PathBuf::new(), message: e.to_string() })?;
        let dirs: BTreeSet<PathBuf> =
            [config, corps].into_iter().flatten().filter_map(|p| p.parent().map(Path::to_path_buf)).collect();
        for dir in dirs {
            debouncer
                .watch(&dir, RecursiveMode::NonRecursive)
                .map_err(|e| WatchError::Watch { path: dir.clone(), message: e.to_string() })?;
        }
        Ok(Self { _debouncer: debouncer })
    }
}

/// Configuration keys (`section.key`) that take effect without a restart.
pub const HOT_KEYS: &[&str] =
    &["corps.table", "corps.file", "pull.limit", "sdk.timeout", "sdk.proxy", "sdk.proxy_password", "log.level"];

/// The keys whose values differ between two configuration files (`section.key`, a whole
/// section when it is not a table), sorted.
pub fn changed_keys(old: &toml::Table, new: &toml::Table) -> Vec<String> {
    let empty = toml::Table::new();
    let mut out = BTreeSet::new();
    let sections: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for section in sections {
        match (old.get(section.as_str()), new.get(section.as_str())) {
            (Some(toml::Value::Table(_)) | None, Some(toml::Value::Table(_)) | None) => {
                let a = old.get(section.as_str()).and_then(toml::Value::as_table).unwrap_or(&empty);
                let b = new.get(section.as_str()).and_then(toml::Value::as_table).unwrap_or(&empty);
                for key in a.keys().chain(b.keys()) {
                    if a.get(key) != b.get(key) {
                        out.insert(format!("{section}.{key}"));
                    }
                }
            }
            (a, b) if a != b => {
                out.insert(section.clone());
            }
            _ => {}
        }
    }
    out.into_iter().collect()
}

/// A configuration change split into keys applied now and keys that need a restart.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Classified {
    /// Applied without a restart.
    pub hot: Vec<String>,
    /// Take effect after a restart.
    pub cold: Vec<String>,
}

impl Classified {
    /// Whether a hot key of `section` changed.
    pub fn hot_in(&self, section: &str) -> bool {
        self.hot.iter().any(|k| k.split('.').next() == Some(section))
    }
}

/// Splits `changed` keys by [`HOT_KEYS`].
pub fn classify(changed: Vec<String>) -> Classified {
    let (hot, cold) = changed.into_iter().partition(|k| HOT_KEYS.contains(&k.as_str()));
    Classified { hot, cold }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn changed_keys_are_named_not_valued() {
        let old = table("[database]\nurl = \"mysql://u:secret1@h/db\"\n[pull]\nlimit = 100\n[log]\nlevel = \"info\"\n");
        let new = table(
            "[database]\nurl = \"mysql://u:secret2@h/db\"\n[pull]\nlimit = 200\n[log]\nlevel = \"debug\"\n[http]\nlisten = \"127.0.0.1:1\"\n",
        );
        let keys = changed_keys(&old, &new);
        assert_eq!(keys, ["database.url", "http.listen", "log.level", "pull.limit"]);
        assert!(!keys.iter().any(|k| k.contains("secret")));
        let c = classify(keys);
        assert_eq!(c.hot, ["log.level", "pull.limit"]);
        assert_eq!(c.cold, ["database.url", "http.listen"]);
        assert!(c.hot_in("pull") && c.hot_in("log") && !c.hot_in("corps"));
    }

    #[test]
    fn identical_files_change_nothing() {
        let t = table("[corps]\nfile = \"corps.toml\"\n");
        assert!(changed_keys(&t, &t.clone()).is_empty());
    }

    #[test]
    fn a_rename_over_the_file_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("corps.toml");
        std::fs::write(&file, "a").unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _watch = FileWatch::start(None, Some(&file), Duration::from_millis(100), tx).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // What editors do: write a temp file, rename it over the original.
        let tmp = dir.path().join(".corps.toml.swp");
        std::fs::write(&tmp, "b").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let got = rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), rx.recv()).await });
        assert_eq!(got.ok().flatten(), Some(Changed { config: false, corps: true }));
    }

    /// Writes to other files of the watched directory (the daemon's log, its SQLite database)
    /// send nothing; an edit of the watched file still does.
    #[test]
    fn other_files_in_the_directory_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "a").unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let _watch = FileWatch::start(Some(&config), None, Duration::from_millis(100), tx).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        {
            use std::io::Write as _;
            let mut log = std::fs::File::create(dir.path().join("wework-msgaudit.log")).unwrap();
            for i in 0..200 {
                writeln!(log, "line {i}").unwrap();
                log.flush().unwrap();
            }
            std::fs::write(dir.path().join("data.db"), "x").unwrap();
        }
        let got = rt.block_on(async { tokio::time::timeout(Duration::from_millis(800), rx.recv()).await });
        assert!(got.is_err(), "a write to another file was reported: {got:?}");
        std::fs::write(&config, "b").unwrap();
        let got = rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), rx.recv()).await });
        assert_eq!(got.ok().flatten(), Some(Changed { config: true, corps: false }));
    }
}
