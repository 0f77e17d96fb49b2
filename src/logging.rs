//! Logging set-up: tracing to stderr (the vendor SDK printf()s to stdout, sdk-facts.md §2), in
//! human or JSON format, with a filter that [`set_level`] can change while running (hot reload of
//! `[log] level`, ARCHITECTURE.md decision 12).
//!
//! Rules for log lines (enforced by review and by a test that greps a full run's logs): every
//! line about one corp carries a `corpid` field (the corp actor's span or an explicit field);
//! secrets (corp secrets, private keys, passwords, access tokens) are never logged — the types
//! that hold them print `<redacted>`.
//!
//! Whatever the filter, two kinds of debug/trace events are dropped ([`dropped`]): those of the
//! S3 request signer (they print access keys) and those of the file watcher (notify, inotify,
//! mio), which log every event in the watched directories: with the log file in the
//! configuration's directory, each logged event is a write there, which is an event to log, and
//! so on (hundreds of MB in seconds at `--log trace`).

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer as _;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

use crate::config::LogFormat;

type Handle = reload::Handle<EnvFilter, Registry>;

static HANDLE: OnceLock<Handle> = OnceLock::new();

/// Why the log filter could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The filter does not parse.
    #[error("invalid log filter {filter:?}: {message}")]
    BadFilter {
        /// The filter as given.
        filter: String,
        /// The parser's message.
        message: String,
    },
    /// [`init`] was not called (or another subscriber is installed).
    #[error("logging is not initialised with a reloadable filter")]
    NotInitialised,
}

fn parse(level: &str) -> Result<EnvFilter, LogError> {
    EnvFilter::try_new(level).map_err(|e| LogError::BadFilter { filter: level.to_string(), message: e.to_string() })
}

/// Installs the global subscriber with `level` (falls back to `info` when it does not parse, and
/// says so on stderr) in `format`.
pub fn init(level: &str, format: LogFormat) {
    let filter = parse(level).unwrap_or_else(|e| {
        eprintln!("wework-msgaudit: {e}; logging at info");
        EnvFilter::new("info")
    });
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    // Colours only on a terminal: log files (supervisord, systemd, tests) get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let installed = match format {
        LogFormat::Human => {
            registry.with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr).with_filter(dropped())).try_init()
        }
        LogFormat::Json => {
            registry.with(fmt::layer().json().with_writer(std::io::stderr).with_filter(dropped())).try_init()
        }
    };
    if installed.is_ok() {
        let _ = HANDLE.set(handle);
    }
}

/// Targets whose debug and trace events are never written: the S3 request signer (`reqsign*`,
/// under OpenDAL) prints the access keys in clear; the file watcher's crates log each file
/// system event, including the writes of this very log.
const QUIET_TARGETS: &[&str] = &["reqsign", "notify", "inotify", "mio"];

/// Whether an event of `target` at `level` is dropped whatever the configured filter says.
pub fn is_dropped(target: &str, level: &tracing::Level) -> bool {
    *level > tracing::Level::INFO
        && QUIET_TARGETS.iter().any(|t| {
            target
                .strip_prefix(t)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::") || rest.starts_with('_'))
        })
}

fn dropped() -> tracing_subscriber::filter::FilterFn {
    tracing_subscriber::filter::filter_fn(|meta| !is_dropped(meta.target(), meta.level()))
}

/// Replaces the filter of the running subscriber.
pub fn set_level(level: &str) -> Result<(), LogError> {
    let filter = parse(level)?;
    HANDLE.get().ok_or(LogError::NotInitialised)?.reload(filter).map_err(|_| LogError::NotInitialised)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn watcher_and_signer_chatter_is_dropped() {
        for target in ["notify::inotify", "notify_debouncer_full", "mio::poll", "reqsign_core::sign", "inotify"] {
            assert!(is_dropped(target, &Level::TRACE) && is_dropped(target, &Level::DEBUG), "{target}");
            assert!(!is_dropped(target, &Level::INFO), "{target}");
        }
        for target in ["wework_msgaudit::reload", "notifyer", "sqlx::query", "miofoo"] {
            assert!(!is_dropped(target, &Level::TRACE), "{target}");
        }
    }
}
