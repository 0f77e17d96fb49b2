//! `rule add | list | remove | test`: the rules of the `rule_def` table, and a rule evaluated
//! over the stored history (backfill) — see `crate::rules` and the README's "Rules".
//!
//! `add` checks the rule (its TOML, its regular expressions against `[rules] regex_size_limit`)
//! before storing it; the daemon picks table changes up at its next rules reload. `list` shows
//! the rules of rules.toml and of the table. `test` counts the hits of a rule (by name, from the
//! file or the table) or of every rule of a file over the stored records of each corp, prints a
//! few samples and, with `--write`, stores the hits (idempotent: a second run stores none).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::{with_store_of, CliError};
use crate::config::Config;
use crate::rules::{self, RuleDef, RuleSet};
use crate::store::{CorpId, Store};

/// Arguments of `rule`.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// The configuration file (the database URL and `[rules]` come from it; environment
    /// overrides apply).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,

    /// The rule subcommand.
    #[command(subcommand)]
    pub command: RuleCommand,
}

/// The `rule` subcommands.
#[derive(Debug, Subcommand)]
pub enum RuleCommand {
    /// Add a rule to the `rule_def` table, or replace the one of that name.
    Add {
        /// The rule's name.
        name: String,
        /// A file holding the rule as TOML (the keys of one `[[rule]]`, `name` optional).
        #[arg(long, conflicts_with = "body")]
        file: Option<PathBuf>,
        /// The rule as TOML, e.g. 'keywords = ["私下转账"]'.
        #[arg(long)]
        body: Option<String>,
        /// Store it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// List the rules of the rules file and of the `rule_def` table.
    List,
    /// Remove a rule from the `rule_def` table (its hits stay).
    Remove {
        /// The rule's name.
        name: String,
    },
    /// Evaluate a rule over the stored records: the count, a few samples; `--write` stores the
    /// hits.
    Test {
        /// The rule's name (of the rules file or the table).
        #[arg(required_unless_present = "file")]
        name: Option<String>,
        /// Every `[[rule]]` of this rules file instead.
        #[arg(long, conflicts_with = "name")]
        file: Option<PathBuf>,
        /// Only this corp (else every configured corp).
        #[arg(long)]
        corp: Option<String>,
        /// Only records sent since then: ms since the epoch, `2024-05-01T08:00:00Z` or `2024-05-01`.
        #[arg(long)]
        since: Option<String>,
        /// Store the hits (idempotent).
        #[arg(long)]
        write: bool,
        /// How many samples to print.
        #[arg(long, default_value_t = 5)]
        samples: usize,
    },
}

/// Runs `rule`.
pub fn run(args: &RuleArgs) -> Result<(), CliError> {
    let cfg = Config::load(args.config.as_deref())?;
    let file = crate::rules::file_of(&cfg.rules, args.config.as_deref());
    match &args.command {
        RuleCommand::Add { name, file: body_file, body, disabled } => {
            let body = match (body_file, body) {
                (Some(f), None) => std::fs::read_to_string(f)
                    .map_err(|e| CliError::config(format!("cannot read {}", f.display()), e))?,
                (None, Some(b)) => b.clone(),
                _ => return Err(CliError::Config("give the rule with --file or --body".into())),
            };
            let def = rules::parse_body(name, &body).map_err(|e| CliError::config("the rule", e))?;
            RuleSet::compile(std::slice::from_ref(&def), limit(&cfg)).map_err(|e| CliError::config("the rule", e))?;
            with_store_of(&cfg, |store| async move {
                let added =
                    store.rule_def_put(name, &body, !disabled).await.map_err(CliError::store("writing rule_def"))?;
                println!(
                    "{} rule {name}{}",
                    if added { "added" } else { "replaced" },
                    if *disabled { " (disabled)" } else { "" }
                );
                Ok(())
            })
        }
        RuleCommand::List => {
            let from_file = file_rules(file.as_deref())?;
            with_store_of(&cfg, |store| async move {
                for d in &from_file {
                    println!("{}", line(d, "file", d.enabled));
                }
                for row in store.rule_defs().await.map_err(CliError::store("reading rule_def"))? {
                    match rules::parse_body(&row.name, &row.body) {
                        Ok(d) => println!("{}", line(&d, "table", row.enabled)),
                        Err(e) => println!("{}\ttable\tINVALID: {e}", row.name),
                    }
                }
                Ok(())
            })
        }
        RuleCommand::Remove { name } => with_store_of(&cfg, |store| async move {
            if store.rule_def_remove(name).await.map_err(CliError::store("writing rule_def"))? {
                println!("removed rule {name}");
                Ok(())
            } else {
                Err(CliError::Config(format!("no rule named {name} in rule_def")))
            }
        }),
        RuleCommand::Test { name, file: test_file, corp, since, write, samples } => {
            let since = since
                .as_deref()
                .map(|s| crate::search::query::parse_time(s).map(|t| u64::try_from(t).unwrap_or(0)))
                .transpose()
                .map_err(CliError::Config)?;
            let corp = corp.as_deref().map(CorpId::new).transpose().map_err(|e| CliError::config("--corp", e))?;
            let cfg = &cfg;
            with_store_of(cfg, |store| async move {
                let defs = match (name, test_file) {
                    (_, Some(f)) => rules::read_file(f).map_err(|e| CliError::config("the rules file", e))?.rules,
                    (Some(n), None) => vec![find(&store, file.as_deref(), n).await?],
                    (None, None) => return Err(CliError::Config("give a rule name or --file".into())),
                };
                // A disabled rule is tested all the same.
                let defs: Vec<RuleDef> = defs.into_iter().map(|d| RuleDef { enabled: true, ..d }).collect();
                let set = RuleSet::compile(&defs, limit(cfg)).map_err(|e| CliError::config("the rule", e))?;
                let corps = match corp {
                    Some(c) => vec![c],
                    None => {
                        let sources = super::run::sources_from_config(cfg, Some(Arc::clone(&store)));
                        crate::search::indexer::configured_corps(&sources)
                            .await
                            .map_err(|e| CliError::runtime("reading the corp sources", e))?
                    }
                };
                let (mut scanned, mut hits, mut written) = (0, 0, 0);
                for c in &corps {
                    let b = rules::backfill(store.as_ref(), &set, c, since, *write, *samples)
                        .await
                        .map_err(CliError::store(format!("reading the records of {c}")))?;
                    println!("{c}: {} hits in {} records", b.hits, b.scanned);
                    for h in &b.samples {
                        println!(
                            "  {}\t{}\t{}\t{}\t{}\t{}",
                            h.msgid,
                            h.rule,
                            h.kind,
                            h.sender,
                            h.matched,
                            h.context.replace('\n', " ")
                        );
                    }
                    (scanned, hits, written) = (scanned + b.scanned, hits + b.hits, written + b.written);
                }
                println!("total: {hits} hits in {scanned} records of {} corps", corps.len());
                if *write {
                    println!("stored: {written} new hits");
                }
                Ok(())
            })
        }
    }
}

fn limit(cfg: &Config) -> usize {
    if cfg.rules.regex_size_limit == 0 {
        rules::DEFAULT_REGEX_SIZE_LIMIT
    } else {
        cfg.rules.regex_size_limit
    }
}

/// The rules of the rules file (none when it does not exist).
fn file_rules(file: Option<&Path>) -> Result<Vec<RuleDef>, CliError> {
    match file.filter(|p| p.exists()) {
        Some(p) => Ok(rules::read_file(p).map_err(|e| CliError::config("the rules file", e))?.rules),
        None => Ok(Vec::new()),
    }
}

/// Rule `name` of the file, else of the table.
async fn find(store: &Arc<dyn Store>, file: Option<&Path>, name: &str) -> Result<RuleDef, CliError> {
    if let Some(d) = file_rules(file)?.into_iter().find(|d| d.name == name) {
        return Ok(d);
    }
    let rows = store.rule_defs().await.map_err(CliError::store("reading rule_def"))?;
    let row =
        rows.into_iter().find(|r| r.name == name).ok_or_else(|| CliError::Config(format!("no rule named {name}")))?;
    rules::parse_body(&row.name, &row.body).map_err(|e| CliError::config("the rule", e))
}

/// One line of `rule list`: name, source, enabled, what it matches.
fn line(d: &RuleDef, source: &str, enabled: bool) -> String {
    let mut what = Vec::new();
    if !d.keywords.is_empty() {
        what.push(format!("{} keywords", d.keywords.len()));
    }
    if !d.regex.is_empty() {
        what.push(format!("{} regex", d.regex.len()));
    }
    for b in &d.builtin {
        what.push(b.as_str().to_string());
    }
    for b in &d.behaviour {
        what.push(b.as_str().to_string());
    }
    format!("{}\t{source}\t{}\t{}", d.name, if enabled { "enabled" } else { "disabled" }, what.join(", "))
}
