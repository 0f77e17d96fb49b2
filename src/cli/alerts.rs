//! `alerts status | test-channel NAME | retry [--channel NAME]`: the alert outbox for operators
//! (see [`crate::alerts`]).
//!
//! - `status`: per channel (configured, or with rows left in the outbox), the rows pending, being
//!   sent, sent and failed, the age of the oldest pending one and the newest error; `--json`.
//! - `test-channel NAME`: sends one made-up hit to the channel at once (not through the outbox)
//!   and says whether it was delivered (exit 1 if not): the way to check a URL, a secret, a
//!   robot's keyword or IP list.
//! - `retry`: failed rows (given up) are pending again, with a fresh attempt count.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};

use super::{with_store_of, CliError};
use crate::alerts::{self, metrics, AlertsError};
use crate::config::Config;
use crate::store::AlertHit;

/// Arguments of `alerts`.
#[derive(Debug, Args)]
pub struct AlertsArgs {
    /// The configuration file (database URL, `[[alerts.channel]]`; environment overrides apply).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: AlertsCommand,
}

/// `alerts` subcommands.
#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// The outbox by channel: pending, sending, sent, failed, oldest pending, last error.
    Status {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Send a test message to channel NAME now (exit 1 when it is not delivered).
    TestChannel {
        /// The channel's name (`[[alerts.channel]] name`).
        name: String,
    },
    /// Make the failed (given up) alerts pending again.
    Retry {
        /// Only this channel's.
        #[arg(long)]
        channel: Option<String>,
    },
}

/// Runs `alerts …`.
pub fn run(args: &AlertsArgs) -> Result<(), CliError> {
    let cfg = Config::load(args.config.as_deref())?;
    match &args.command {
        AlertsCommand::Status { json } => status(&cfg, *json),
        AlertsCommand::TestChannel { name } => test_channel(&cfg, name),
        AlertsCommand::Retry { channel } => with_store_of(&cfg, |store| async move {
            let n = store.alert_requeue(channel.as_deref()).await.map_err(CliError::store("requeueing alerts"))?;
            println!("{n} alert(s) pending again");
            Ok(())
        }),
    }
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn status(cfg: &Config, json: bool) -> Result<(), CliError> {
    let counts = with_store_of(cfg, |store| async move {
        store.alert_counts().await.map_err(CliError::store("reading the alert outbox"))
    })?;
    // The configured channels show even without rows (no counters: this process sends nothing).
    let configured = metrics::Counters::default();
    for c in &cfg.alerts.channel {
        configured.register(&c.name);
    }
    let report = metrics::report(&configured.snapshot(), &counts, now_ms());
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        return Ok(());
    }
    if report.is_empty() {
        println!("no alert channel configured and nothing in the outbox");
        return Ok(());
    }
    println!(
        "{:<24} {:>8} {:>8} {:>10} {:>8} {:>12}  last error",
        "channel", "pending", "sending", "sent", "failed", "oldest"
    );
    for r in &report {
        let known = cfg.alerts.channel.iter().any(|c| c.name == r.channel);
        let oldest = if r.pending == 0 {
            "-".to_string()
        } else {
            humantime::format_duration(std::time::Duration::from_secs(r.oldest_pending_seconds as u64)).to_string()
        };
        println!(
            "{:<24} {:>8} {:>8} {:>10} {:>8} {:>12}  {}{}",
            r.channel,
            r.pending,
            r.sending,
            r.sent_rows,
            r.failed_rows,
            oldest,
            r.last_error.as_deref().unwrap_or(""),
            if known { "" } else { " (not configured: nothing sends these)" }
        );
    }
    Ok(())
}

fn test_channel(cfg: &Config, name: &str) -> Result<(), CliError> {
    let channels = alerts::channels(cfg).map_err(|e| CliError::config("[[alerts.channel]]", e))?;
    let channel = channels
        .into_iter()
        .find(|c| c.name() == name)
        .ok_or_else(|| CliError::config("alerts test-channel", AlertsError::NoSuchChannel(name.to_string())))?;
    let now = now_ms();
    let hit = AlertHit {
        id: 0,
        corpid: "wwtest".into(),
        msgid: format!("test-{now}"),
        rule: "test-channel".into(),
        kind: "test".into(),
        matched: "test".into(),
        context: "This is a test message of wework-msgaudit (alerts test-channel).".into(),
        sender: "wework-msgaudit".into(),
        conversation: String::new(),
        msgtime: now,
        created_at: now,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::runtime("cannot start the async runtime", e))?;
    let key = format!("msgaudit-test-{now}");
    match rt.block_on(channel.send(&[hit], &key)) {
        Ok(()) => {
            println!("channel {name}: test message delivered (key {key})");
            Ok(())
        }
        Err(e) => Err(CliError::runtime(format!("channel {name}: the test message was not delivered"), e)),
    }
}
