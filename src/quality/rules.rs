//! The `[[reply_time]]` entries of `rules.toml`: [`parse_tables`] turns the raw tables (as the
//! rules file loader keeps them) into [`ReplyRule`]s; [`load_file`] reads them from a file itself
//! (the daemon's task, the CLI, tests).
//!
//! ```toml
//! [[reply_time]]
//! name = "reply-10min"              # unique; the `rule` of its hits and statistics
//! corps = ["wwabc"]                 # default: every corp
//! scope = ["single", "group"]       # external one-to-one chats and/or groups with customers
//! minutes = 10                      # working minutes a customer may wait
//! hours = ["09:00-12:00", "13:30-18:00"]   # or one string "09:00-18:00"
//! weekdays = ["mon", "tue", "wed", "thu", "fri"]   # the default
//! timezone = "Asia/Shanghai"        # IANA name (the default)
//! employees = ["zhangsan"]          # optional: only conversations these take part in
//! holidays = ["2026-10-01"]         # optional: no working time on these dates
//! workdays = ["2026-10-10"]         # optional: working dates that are not working weekdays
//! enabled = true
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use super::calendar::{weekday_index, Calendar, Span};
use super::QualityError;

/// Longest rule name (`rule_hit.rule` is VARCHAR(128)).
pub const MAX_NAME: usize = 128;

/// One reply-time rule.
#[derive(Debug, Clone)]
pub struct ReplyRule {
    /// Its name.
    pub name: String,
    /// The corps it applies to; empty = every corp.
    pub corps: BTreeSet<String>,
    /// External one-to-one chats.
    pub single: bool,
    /// Group chats with customers.
    pub group: bool,
    /// Working minutes a customer may wait.
    pub minutes: u32,
    /// Working time.
    pub calendar: Calendar,
    /// Only conversations one of these takes part in, and only their statistics; empty = all.
    pub employees: BTreeSet<String>,
}

impl ReplyRule {
    /// Whether the rule applies to `corpid`.
    pub fn applies_to(&self, corpid: &str) -> bool {
        self.corps.is_empty() || self.corps.contains(corpid)
    }

    /// The allowed wait in ms.
    pub fn allowed_ms(&self) -> i64 {
        i64::from(self.minutes) * 60_000
    }
}

/// One string or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn items(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
            OneOrMany::Many(v) => v,
        }
    }
}

/// A `[[reply_time]]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: String,
    #[serde(default)]
    corps: Vec<String>,
    scope: Option<OneOrMany>,
    minutes: u32,
    hours: Option<OneOrMany>,
    weekdays: Option<OneOrMany>,
    timezone: Option<String>,
    #[serde(default)]
    employees: Vec<String>,
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    workdays: Vec<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

fn parse_one(t: &toml::Table) -> Result<Option<ReplyRule>, QualityError> {
    let name_hint = t.get("name").and_then(toml::Value::as_str).unwrap_or("?").to_string();
    let err = |m: String| QualityError::Config(format!("[[reply_time]] {name_hint:?}: {m}"));
    let raw: Raw =
        toml::Value::Table(t.clone()).try_into().map_err(|e: toml::de::Error| err(e.message().to_string()))?;
    if raw.name.trim().is_empty() || raw.name.chars().count() > MAX_NAME {
        return Err(err(format!("name must have 1 to {MAX_NAME} characters")));
    }
    if !raw.enabled {
        return Ok(None);
    }
    if raw.minutes == 0 || raw.minutes > 100_000 {
        return Err(err("minutes must be 1 to 100000".into()));
    }
    let (mut single, mut group) = (false, false);
    match raw.scope {
        None => (single, group) = (true, true),
        Some(s) => {
            for item in s.items() {
                match item.as_str() {
                    "single" | "1:1" | "one_to_one" => single = true,
                    "group" => group = true,
                    other => return Err(err(format!("scope {other:?}: expected \"single\" or \"group\""))),
                }
            }
        }
    }
    if !single && !group {
        return Err(err("scope is empty".into()));
    }
    let spans = match raw.hours {
        None => vec![Span { start: 9 * 60, end: 18 * 60 }],
        Some(h) => {
            h.items().iter().map(|s| Span::parse(s)).collect::<Result<_, _>>().map_err(|e| err(e.to_string()))?
        }
    };
    let mut weekdays = [true, true, true, true, true, false, false];
    if let Some(w) = raw.weekdays {
        weekdays = [false; 7];
        for item in w.items() {
            let range = item.split_once('-').map(|(a, b)| (weekday_index(a), weekday_index(b)));
            match (range, weekday_index(&item)) {
                (Some((Some(a), Some(b))), _) if a <= b => weekdays[a..=b].iter_mut().for_each(|d| *d = true),
                (None, Some(i)) => weekdays[i] = true,
                _ => return Err(err(format!("weekday {item:?}: expected mon … sun or a range like mon-fri"))),
            }
        }
    }
    let dates = |list: &[String], what: &str| -> Result<BTreeSet<jiff::civil::Date>, QualityError> {
        list.iter().map(|d| d.parse().map_err(|_| err(format!("{what} {d:?}: expected YYYY-MM-DD")))).collect()
    };
    let calendar = Calendar::new(
        raw.timezone.as_deref().unwrap_or("Asia/Shanghai"),
        weekdays,
        spans,
        dates(&raw.holidays, "holiday")?,
        dates(&raw.workdays, "workday")?,
    )
    .map_err(|e| err(e.to_string()))?;
    Ok(Some(ReplyRule {
        name: raw.name,
        corps: raw.corps.into_iter().collect(),
        single,
        group,
        minutes: raw.minutes,
        calendar,
        employees: raw.employees.into_iter().collect(),
    }))
}

/// The enabled rules of the `[[reply_time]]` tables (what the rules file loader keeps as raw
/// `Vec<toml::Table>`); disabled ones are left out. An invalid entry or a name used twice is an
/// error naming the entry.
pub fn parse_tables(tables: &[toml::Table]) -> Result<Vec<ReplyRule>, QualityError> {
    let mut out: Vec<ReplyRule> = Vec::new();
    let mut names = BTreeSet::new();
    for t in tables {
        if let Some(name) = t.get("name").and_then(toml::Value::as_str) {
            if !names.insert(name.to_string()) {
                return Err(QualityError::Config(format!("[[reply_time]] {name:?} is defined twice")));
            }
        }
        out.extend(parse_one(t)?);
    }
    Ok(out)
}

/// The `[[reply_time]]` tables of a rules file's text (other keys and tables are ignored: they
/// belong to the content rules).
pub fn parse_text(text: &str) -> Result<Vec<ReplyRule>, QualityError> {
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| QualityError::Config(e.message().to_string()))?;
    let tables: Vec<toml::Table> = match table.get("reply_time") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_table()
                    .cloned()
                    .ok_or_else(|| QualityError::Config("reply_time must be [[reply_time]] tables".into()))
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(QualityError::Config("reply_time must be [[reply_time]] tables".into())),
    };
    parse_tables(&tables)
}

/// The rules of the rules file at `path`; a missing file has none.
pub fn load_file(path: &Path) -> Result<Vec<ReplyRule>, QualityError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_text(&text).map_err(|e| match e {
            QualityError::Config(m) => QualityError::Config(format!("{}: {m}", path.display())),
            other => other,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(QualityError::Io(path.to_path_buf(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_entry_and_the_defaults() {
        let rules = parse_text(
            r#"
            [[rule]]
            name = "someone else's"
            [[reply_time]]
            name = "ten"
            corps = ["wwa"]
            scope = "single"
            minutes = 10
            hours = ["09:00-12:00", "13:30-18:00"]
            weekdays = "mon-fri, sat"
            timezone = "Europe/Berlin"
            employees = ["zhangsan"]
            holidays = ["2026-12-25"]
            [[reply_time]]
            name = "defaults"
            minutes = 30
            [[reply_time]]
            name = "off"
            minutes = 1
            enabled = false
            "#,
        )
        .unwrap();
        assert_eq!(rules.len(), 2);
        let r = &rules[0];
        assert_eq!((r.name.as_str(), r.single, r.group, r.minutes, r.allowed_ms()), ("ten", true, false, 10, 600_000));
        assert!(r.applies_to("wwa") && !r.applies_to("wwb"));
        assert!(r.employees.contains("zhangsan"));
        let d = &rules[1];
        assert!(d.single && d.group && d.applies_to("anything") && d.employees.is_empty());
    }

    #[test]
    fn mistakes_name_the_entry() {
        for (text, needle) in [
            ("[[reply_time]]\nname = \"a\"\n", "minutes"),
            ("[[reply_time]]\nname = \"a\"\nminutes = 5\nscope = [\"internal\"]\n", "scope"),
            ("[[reply_time]]\nname = \"a\"\nminutes = 5\nhours = \"18:00-09:00\"\n", "end must be after"),
            ("[[reply_time]]\nname = \"a\"\nminutes = 5\ntimezone = \"Nowhere/Town\"\n", "IANA"),
            ("[[reply_time]]\nname = \"a\"\nminutes = 5\nweekdays = [\"funday\"]\n", "weekday"),
            ("[[reply_time]]\nname = \"a\"\nminutes = 5\nholidays = [\"1 May\"]\n", "YYYY-MM-DD"),
            ("[[reply_time]]\nname = \"a\"\nminutes = 5\ncolour = 1\n", "colour"),
            ("[[reply_time]]\nname = \"a\"\nminutes = 5\n[[reply_time]]\nname = \"a\"\nminutes = 6\n", "twice"),
            ("reply_time = 3\n", "[[reply_time]]"),
        ] {
            let e = parse_text(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        assert!(load_file(Path::new("/nonexistent/rules.toml")).unwrap().is_empty());
    }
}
