//! `reply-time run --corp X [--since DATE] [--rule NAME]` evaluates the `[[reply_time]]` rules
//! over a corp's stored messages (a backfill with `--since`, else one pass like the daemon's);
//! `reply-time stats --corp X [--from D] [--to D]` prints the daily statistics. See
//! [`crate::quality`].

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{with_store_of, CliError};
use crate::config::Config;
use crate::quality::task::rules_path;
use crate::quality::{load_file, Evaluator, NewRules, QualityError, ReplyRule};
use crate::store::CorpId;

/// Arguments of `reply-time`.
#[derive(Debug, Args)]
pub struct ReplyTimeArgs {
    /// The configuration file (database URL, `[rules] file`; environment overrides
    /// apply).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// The rules file (default: `[rules] file`, else `rules.toml` beside the
    /// configuration file).
    #[arg(long, global = true)]
    pub rules: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ReplyTimeCommand,
}

/// `reply-time` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReplyTimeCommand {
    /// Evaluate the rules over the stored messages of a corp and update the statistics.
    Run {
        /// The corp.
        #[arg(long)]
        corp: String,
        /// Evaluate again from this day (`YYYY-MM-DD`, midnight in each rule's time zone) or
        /// instant (`2026-12-01T08:00:00Z`, ms since the epoch): the statistics from that day on
        /// are rebuilt. Without it: a pass like the daemon's (a new rule starts at the end).
        #[arg(long)]
        since: Option<String>,
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// With --since: hand the hits found to the alert outbox (default: stored as already
        /// handed, so that a backfill does not alert about the past).
        #[arg(long)]
        alert: bool,
    },
    /// Print the daily statistics per employee.
    Stats {
        /// The corp.
        #[arg(long)]
        corp: String,
        /// First day (`YYYY-MM-DD`), inclusive.
        #[arg(long)]
        from: Option<String>,
        /// Last day, inclusive.
        #[arg(long)]
        to: Option<String>,
        /// Only this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn quality_error(e: QualityError) -> CliError {
    match e {
        QualityError::Store(e) => CliError::store("the reply-time checks")(e),
        e @ QualityError::Config(_) => CliError::config("the reply-time rules", e),
        other => CliError::runtime("the reply-time checks", other),
    }
}

/// `--since` for `rule`: a day is midnight in the rule's time zone.
fn since_ms(s: &str, rule: &ReplyRule) -> Result<i64, CliError> {
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return Ok(rule.calendar.day_start_ms(d));
    }
    crate::search::query::parse_time(s).map_err(CliError::Config)
}

/// Runs `reply-time`.
pub fn run(args: &ReplyTimeArgs) -> Result<(), CliError> {
    let cfg = Config::load(args.config.as_deref())?;
    match &args.command {
        ReplyTimeCommand::Run { corp, since, rule, alert } => {
            let corp = CorpId::new(corp).map_err(|e| CliError::config("--corp", e))?;
            let path = args.rules.clone().unwrap_or_else(|| rules_path(&cfg, args.config.as_deref()));
            let mut rules = load_file(&path).map_err(quality_error)?;
            if let Some(name) = rule {
                rules.retain(|r| &r.name == name);
            }
            rules.retain(|r| r.applies_to(corp.as_str()));
            if rules.is_empty() {
                return Err(CliError::Config(format!(
                    "no enabled [[reply_time]] rule for {corp}{} in {}",
                    rule.as_deref().map(|r| format!(" named {r:?}")).unwrap_or_default(),
                    path.display()
                )));
            }
            evaluate(&cfg, corp, rules, since.as_deref(), *alert)
        }
        ReplyTimeCommand::Stats { corp, from, to, rule, json } => {
            let corp = CorpId::new(corp).map_err(|e| CliError::config("--corp", e))?;
            stats(&cfg, corp, from.clone(), to.clone(), rule.clone(), *json)
        }
    }
}

fn evaluate(
    cfg: &Config,
    corp: CorpId,
    rules: Vec<ReplyRule>,
    since: Option<&str>,
    alert: bool,
) -> Result<(), CliError> {
    let starts: Vec<i64> = match since {
        Some(s) => rules.iter().map(|r| since_ms(s, r)).collect::<Result<_, _>>()?,
        None => Vec::new(),
    };
    with_store_of(cfg, |store| async move {
        let mut ev = Evaluator::new(store, NewRules::FromEnd);
        if since.is_some() && !alert {
            ev = ev.without_alerts();
        }
        for (rule, start) in rules.iter().zip(&starts) {
            ev.reset(&corp, rule, *start).await.map_err(quality_error)?;
        }
        let started = std::time::Instant::now();
        let p = ev.corp(&corp, &rules).await.map_err(quality_error)?;
        println!(
            "{corp}: {} rules, {} rows read, {} hits in {:.1}s",
            rules.len(),
            p.rows,
            p.hits,
            started.elapsed().as_secs_f64()
        );
        Ok(())
    })
}

fn stats(
    cfg: &Config,
    corp: CorpId,
    from: Option<String>,
    to: Option<String>,
    rule: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    with_store_of(cfg, |store| async move {
        let rows = store
            .reply_daily(&corp, from.as_deref(), to.as_deref(), rule.as_deref(), None, u32::MAX)
            .await
            .map_err(CliError::store("reading reply_daily"))?;
        if json {
            let text = serde_json::to_string_pretty(&rows).map_err(|e| CliError::runtime("writing the rows", e))?;
            println!("{text}");
            return Ok(());
        }
        println!("rule\tday\tuserid\tconversations\tmessages\treplies\tmedian_reply_s\tlate");
        for r in rows {
            let median = r.median_reply_ms.map(|m| format!("{:.0}", m as f64 / 1000.0)).unwrap_or_else(|| "-".into());
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                r.rule, r.day, r.userid, r.conversations, r.messages, r.replies, median, r.late
            );
        }
        Ok(())
    })
}
