//! `completeness [--config FILE] [--corp C]… [--since T] [--limit N] [--json]`: what is missing
//! from the archive, per corp (the findings and their rules: [`crate::observe::completeness`]).
//!
//! The report is made from the database (the per-corp tables and the `wecom_*` metadata tables);
//! when the daemon answers at `[http] listen`, its `/status` adds the time since each corp's last
//! successful pull (`pull_stale` beyond `[daemon] alert_after`). `--since` takes an RFC 3339 time
//! (`2026-12-01T00:00:00Z`), a duration back from now (`7d`, `36h`) or epoch seconds.
//!
//! Exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | nothing needs attention (informational findings may be listed) |
//! | 4 | something needs attention: seqs never served, external conversations without consent, media failed for good, undecryptable records, a stale corp, or a corp that could not be checked |
//! | 2 | the configuration does not load, or a bad `--corp` / `--since` |
//! | 1 | the database could not be opened |

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;

use super::CliError;
use crate::config::Config;
use crate::observe::completeness::{self, CompletenessReport, Options};
use crate::observe::{self, Report};
use crate::store::CorpId;

/// Arguments of `completeness`.
#[derive(Debug, Args)]
pub struct CompletenessArgs {
    /// The configuration file (as for `run`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Only this corp (repeatable); default: every configured corp.
    #[arg(long = "corp")]
    pub corps: Vec<String>,
    /// Only records from this time on: RFC 3339, a duration ago (`7d`), or epoch seconds.
    #[arg(long)]
    pub since: Option<String>,
    /// Examples listed per finding (counts are always exact).
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `--since` as ms since the epoch.
pub fn parse_since(text: &str, now: SystemTime) -> Result<u64, String> {
    let text = text.trim();
    let at = if let Ok(secs) = text.parse::<u64>() {
        UNIX_EPOCH + Duration::from_secs(secs)
    } else if let Ok(ago) = humantime::parse_duration(text) {
        now.checked_sub(ago).ok_or_else(|| format!("--since {text}: before the epoch"))?
    } else {
        humantime::parse_rfc3339_weak(text).map_err(|e| {
            format!("--since {text:?}: neither an RFC 3339 time, a duration (7d) nor epoch seconds ({e})")
        })?
    };
    let ms = at.duration_since(UNIX_EPOCH).map_err(|_| format!("--since {text}: before the epoch"))?.as_millis();
    u64::try_from(ms).map_err(|_| format!("--since {text}: too far"))
}

/// Seconds since the last successful pull of each corp, from the running daemon's `/status`
/// (empty when none answers).
fn since_last_pull(cfg: &Config) -> HashMap<String, f64> {
    let Ok(mut addr) = cfg.http.listen.parse::<SocketAddr>() else { return HashMap::new() };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let Ok(token) = observe::http::read_token(&cfg.http.token_file) else { return HashMap::new() };
    match super::status::http_get(addr, "/status", token.as_ref()) {
        Ok((200, body)) => serde_json::from_str::<Report>(&body)
            .map(|r| r.corps.into_iter().filter_map(|c| c.since_last_pull_seconds.map(|s| (c.corpid, s))).collect())
            .unwrap_or_default(),
        _ => HashMap::new(),
    }
}

/// Prints the report; see the module documentation for the exit codes.
pub fn run(args: &CompletenessArgs) -> Result<(), CliError> {
    let cfg = Config::load(args.config.as_deref())?;
    let now = SystemTime::now();
    let since_ms = args.since.as_deref().map(|s| parse_since(s, now)).transpose().map_err(CliError::Config)?;
    let mut chosen = Vec::new();
    for c in &args.corps {
        chosen.push(CorpId::new(c).map_err(|e| CliError::config(format!("--corp {c}"), e))?);
    }
    let pulled = since_last_pull(&cfg);
    let opts = Options { since_ms, limit: args.limit, stale_after: cfg.daemon.alert_after };
    let cfg_ref = &cfg;
    let report: CompletenessReport = super::with_store_of(&cfg, |store| async move {
        let corps = if chosen.is_empty() {
            let sources = super::run::sources_from_config(cfg_ref, Some(std::sync::Arc::clone(&store)));
            let desired =
                crate::corps::load(&sources).await.map_err(|e| CliError::runtime("reading the corp sources", e))?;
            let disabled = desired.disabled.iter().filter_map(|(c, _)| CorpId::new(c).ok());
            desired.corps.into_keys().chain(disabled).collect()
        } else {
            chosen
        };
        Ok(completeness::check(store.as_ref(), &corps, &pulled, &opts, now).await)
    })?;
    if args.json {
        let json =
            serde_json::to_string_pretty(&report).map_err(|e| CliError::runtime("writing the report as JSON", e))?;
        println!("{json}");
    } else {
        print!("{}", completeness::render_text(&report));
    }
    if report.attention {
        let kinds: Vec<String> = report
            .totals
            .iter()
            .filter(|(k, n)| k.attention() && **n > 0)
            .map(|(k, n)| format!("{} {n} {}", k.name(), k.unit()))
            .collect();
        let unchecked = report.corps.iter().filter(|c| c.error.is_some()).count();
        let mut what = kinds.join(", ");
        if unchecked > 0 {
            what = format!("{what}{}{unchecked} corp(s) not checked", if what.is_empty() { "" } else { ", " });
        }
        return Err(CliError::Attention(format!("the archive needs attention: {what}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_a_duration_or_epoch_seconds() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(parse_since("1700000000", now).unwrap(), 1_700_000_000_000);
        assert_eq!(parse_since("1d", now).unwrap(), (1_800_000_000 - 86_400) * 1000);
        assert_eq!(parse_since("2026-12-01T00:00:00Z", now).unwrap(), 1_796_083_200_000);
        assert!(parse_since("yesterday", now).is_err());
    }
}
