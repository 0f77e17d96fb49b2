//! `status [--config FILE] [--json]`: the per-corp picture as a table.
//!
//! With `[http] listen` set and the daemon answering there, the report is the daemon's own
//! (`GET /status`: the same [`Report`] that `/metrics` and `/healthz` render; with
//! `[http] token_file` the token is sent). Otherwise no daemon is running (or none can be asked):
//! the output says so and shows what the database alone knows (cursor and media counts of every
//! configured corp; live state `unknown`).
//!
//! Exit codes (usable from scripts and monitoring):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | the daemon answered: healthy |
//! | 1 | the daemon answered: unhealthy (database down, a corp failing), or it refused the request (wrong token) |
//! | 2 | the configuration does not load |
//! | 3 | no daemon answered at `[http] listen` (not running, or `listen` is off) |

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::Args;

use super::CliError;
use crate::config::Config;
use crate::corps::CorpSource;
use crate::observe::completeness::secs;
use crate::observe::{self, Report};
use crate::secret::Secret;

/// Arguments of `status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The configuration file (as for `run`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What asking the daemon gave.
enum Asked {
    /// Its report.
    Report(Box<Report>),
    /// Nobody answered (the reason).
    NotRunning(String),
    /// It answered, but not with a report (the reason: a refused token, an error status).
    Refused(String),
}

/// Prints the report; see the module documentation for the exit codes.
pub fn run(args: &StatusArgs) -> Result<(), CliError> {
    let cfg = Config::load(args.config.as_deref())?;
    let token = observe::http::read_token(&cfg.http.token_file).map_err(CliError::Config)?;
    let configured = configured_corps(&cfg);
    let why = match ask_daemon(&cfg.http.listen, token.as_ref()) {
        Asked::Report(mut report) => {
            mark_disabled(&mut report, &configured);
            print(args, &report, &format!("daemon at http://{}", cfg.http.listen), None, &configured)?;
            return if report.healthy {
                Ok(())
            } else {
                let failing = report.failing().count();
                Err(CliError::Runtime(format!(
                    "unhealthy: {}{failing} corp(s) failing",
                    if report.database_ok { "" } else { "the database does not answer, " }
                )))
            };
        }
        Asked::Refused(why) => return Err(CliError::Runtime(why)),
        Asked::NotRunning(why) => why,
    };
    let db_error = match database_report(&cfg) {
        Ok(mut report) => {
            mark_disabled(&mut report, &configured);
            print(args, &report, &format!("database only ({why})"), Some(&why), &configured)?;
            String::new()
        }
        Err(e) => {
            let e = super::report(&e);
            if !args.json {
                println!("daemon: not running ({why})\ndatabase: NOT OK: {e}");
            }
            format!("; the database does not answer either: {e}")
        }
    };
    Err(CliError::NotRunning(format!("the daemon is not running: {why}{db_error}")))
}

fn print(
    args: &StatusArgs,
    report: &Report,
    source: &str,
    not_running: Option<&str>,
    configured: &[(String, CorpSource, bool)],
) -> Result<(), CliError> {
    if args.json {
        let json =
            serde_json::to_string_pretty(report).map_err(|e| CliError::runtime("writing the report as JSON", e))?;
        println!("{json}");
    } else {
        let sources = configured.iter().map(|c| (c.0.clone(), c.1.to_string())).collect();
        print!("{}", render_table_with_sources(report, source, not_running, &sources));
    }
    Ok(())
}

/// `GET /status` from the daemon at `listen`.
fn ask_daemon(listen: &str, token: Option<&Secret>) -> Asked {
    if listen.is_empty() {
        return Asked::NotRunning("[http] listen is off, so no daemon can be asked".into());
    }
    let mut addr: SocketAddr = match listen.parse() {
        Ok(a) => a,
        Err(e) => return Asked::NotRunning(format!("http.listen {listen:?}: {e}")),
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    match http_get(addr, "/status", token) {
        Err(e) => Asked::NotRunning(format!("no daemon answering at {addr}: {e}")),
        Ok((200, body)) => match serde_json::from_str(&body) {
            Ok(r) => Asked::Report(Box::new(r)),
            Err(e) => Asked::Refused(format!("bad /status answer from {addr}: {e}")),
        },
        Ok((401, _)) => Asked::Refused(format!(
            "the daemon at {addr} refused the request (401): [http] token_file must hold the daemon's token"
        )),
        Ok((code, body)) => {
            Asked::Refused(format!("the daemon at {addr} answered {code}: {}", body.lines().next().unwrap_or("")))
        }
    }
}

/// A minimal HTTP/1.0 GET (the daemon's own endpoint on loopback; no client library needed):
/// the status code and the body; `Err` when nothing answers.
pub fn http_get(addr: SocketAddr, path: &str, token: Option<&Secret>) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let auth = token.map(|t| format!("Authorization: Bearer {}\r\n", t.expose())).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or_default();
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {status_line:?}")))?;
    Ok((code, body.to_string()))
}

/// The report from the database alone: every corp of the configured sources.
fn database_report(cfg: &Config) -> Result<Report, CliError> {
    super::with_store_of(cfg, |store| async move {
        let sources = super::run::sources_from_config(cfg, Some(std::sync::Arc::clone(&store)));
        let desired =
            crate::corps::load(&sources).await.map_err(|e| CliError::runtime("reading the corp sources", e))?;
        let disabled = desired.disabled.iter().filter_map(|(c, _)| crate::store::CorpId::new(c).ok());
        let src = observe::Sources {
            stats: None,
            store,
            corps: desired.corps.into_keys().chain(disabled).collect(),
            media: None,
            failing_after: cfg.daemon.failing_after,
            // The outbox as the database has it (no counters: this process sends nothing).
            alerts: Some(Default::default()),
        };
        Ok(observe::gather(&src, SystemTime::now()).await)
    })
}

/// Every configured corp of every source: `(corpid, source, enabled)`. Best effort and bounded:
/// the tables are read through a read-only connection given 5 s; when the database does not
/// answer, the corps file's only.
fn configured_corps(cfg: &Config) -> Vec<(String, CorpSource, bool)> {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return Vec::new() };
    rt.block_on(async {
        let store = if cfg.corps.table {
            let connect = crate::store::connect_read_only(cfg.database.url.expose());
            tokio::time::timeout(Duration::from_secs(5), connect).await.ok().and_then(Result::ok)
        } else {
            None
        };
        let read = |store| async move {
            let sources = super::run::sources_from_config(cfg, store);
            tokio::time::timeout(Duration::from_secs(5), crate::corps::read(&sources)).await.ok()?.ok()
        };
        let parts = match read(store).await {
            Some(parts) => parts,
            None => read(None).await.unwrap_or_default(),
        };
        parts.into_iter().flatten().map(|c| (c.corpid, c.source, c.enabled)).collect()
    })
}

/// Disabled corps show as `disabled` (added when the daemon's report does not have them).
fn mark_disabled(report: &mut Report, configured: &[(String, CorpSource, bool)]) {
    for (corpid, _, enabled) in configured.iter().filter(|c| !c.2) {
        match report.corps.iter_mut().find(|c| &c.corpid == corpid) {
            Some(c) => c.state = "disabled".into(),
            None if !enabled => report.corps.push(observe::CorpReport {
                corpid: corpid.clone(),
                state: "disabled".into(),
                ..observe::CorpReport::default()
            }),
            None => {}
        }
    }
    report.corps.sort_by(|a, b| a.corpid.cmp(&b.corpid));
}

/// The report as a text table (one line per corp) with a header saying where it came from;
/// `not_running`: why no daemon answered (the health is then unknown).
pub fn render_table(r: &Report, source: &str, not_running: Option<&str>) -> String {
    render_table_with_sources(r, source, not_running, &std::collections::BTreeMap::new())
}

/// [`render_table`] with a SOURCE column: where each corp is defined (`table`, `file`).
pub fn render_table_with_sources(
    r: &Report,
    source: &str,
    not_running: Option<&str>,
    sources: &std::collections::BTreeMap<String, String>,
) -> String {
    let (daemon, health) = match not_running {
        Some(why) => (format!("not running ({why})"), "unknown (no daemon)"),
        None => ("running".to_string(), if r.healthy { "ok" } else { "UNHEALTHY" }),
    };
    let mut out = format!(
        "source: {source}\ndaemon: {daemon}\ndatabase: {}\nhealth: {health}\n\n",
        r.database_error.as_deref().map_or_else(|| "ok".to_string(), |e| format!("NOT OK: {e}")),
    );
    let header = [
        "CORPID",
        "SOURCE",
        "STATE",
        "FAILING",
        "LAST_SEQ",
        "STORED",
        "DECRYPT_FAIL",
        "LAG",
        "SINCE_PULL",
        "RESTARTS",
        "MEDIA p/d/ok/fail",
        "LEASE",
        "LAST_ERROR",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for c in &r.corps {
        let media = ["pending", "downloading", "done", "failed"]
            .map(|st| c.media.iter().filter(|m| m.status == st).map(|m| m.count).sum::<u64>().to_string())
            .join("/");
        rows.push(vec![
            c.corpid.clone(),
            sources.get(&c.corpid).cloned().unwrap_or_else(|| "-".into()),
            c.state.clone(),
            if c.failing { "YES".into() } else { "no".into() },
            c.last_seq.to_string(),
            c.stored.to_string(),
            c.decrypt_failures.to_string(),
            secs(c.lag_seconds),
            secs(c.since_last_pull_seconds),
            c.restarts.to_string(),
            media,
            c.lease_holder.clone().unwrap_or_else(|| "-".into()),
            if c.failing_keys().next().is_some() {
                c.failing_reason()
            } else {
                c.last_error.clone().unwrap_or_default()
            }
            .chars()
            .take(160)
            .collect(),
        ]);
    }
    let widths: Vec<usize> =
        (0..header.len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if r.corps.is_empty() {
        out.push_str("(no corps)\n");
    }
    if let Some(c) = &r.completeness {
        let found: Vec<String> = c
            .totals
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{} {n}{}", k.name(), if k.attention() { "!" } else { "" }))
            .collect();
        let age = r.generated_at.saturating_sub(c.generated_at);
        out.push_str(&format!(
            "\ncompleteness ({age}s ago): {}{}\n",
            if found.is_empty() { "nothing missing".to_string() } else { found.join(", ") },
            if c.attention { " — NEEDS ATTENTION (details: wework-msgaudit completeness)" } else { "" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{CorpReport, MediaStatusCount};

    #[test]
    fn the_table_shows_failing_corps_and_media_counts() {
        let r = Report {
            database_ok: true,
            healthy: false,
            corps: vec![
                CorpReport {
                    corpid: "wwgood".into(),
                    state: "caught up".into(),
                    last_seq: 120,
                    media: vec![
                        MediaStatusCount { kind: "image".into(), status: "done".into(), count: 3 },
                        MediaStatusCount { kind: "voice".into(), status: "done".into(), count: 2 },
                    ],
                    since_last_pull_seconds: Some(3.0),
                    ..CorpReport::default()
                },
                CorpReport {
                    corpid: "wwbad".into(),
                    state: "failing".into(),
                    failing: true,
                    last_error: Some("GetChatData returned 10001".into()),
                    ..CorpReport::default()
                },
            ],
            ..Report::default()
        };
        let t = render_table(&r, "test", None);
        assert!(t.contains("health: UNHEALTHY") && t.contains("daemon: running"), "{t}");
        let good = t.lines().find(|l| l.starts_with("wwgood")).unwrap();
        assert!(good.contains("120") && good.contains("0/0/5/0") && good.contains("3s"), "{good}");
        let bad = t.lines().find(|l| l.starts_with("wwbad")).unwrap();
        assert!(bad.contains("YES") && bad.contains("10001"), "{bad}");
        let t = render_table(&r, "database only", Some("nothing at 127.0.0.1:9"));
        assert!(t.contains("daemon: not running (nothing at") && t.contains("health: unknown"), "{t}");
    }

    #[test]
    fn the_table_ends_with_the_completeness_summary() {
        use crate::observe::completeness::{CompletenessReport, Kind};
        let mut c = CompletenessReport { attention: true, generated_at: 90, ..CompletenessReport::default() };
        c.totals.insert(Kind::GapNeverServed, 3);
        c.totals.insert(Kind::MemberUnseen, 1);
        c.totals.insert(Kind::MediaFailed, 0);
        let r = Report { generated_at: 100, completeness: Some(c), ..Report::default() };
        let t = render_table(&r, "test", None);
        assert!(t.contains("completeness (10s ago): gap_never_served 3!, member_unseen 1 — NEEDS ATTENTION"), "{t}");
    }
}
