//! Rule definitions as written: one [`RuleDef`] per `[[rule]]` of rules.toml or per `rule_def`
//! row (its `body` is the same TOML), and the rules file itself ([`RulesFile`], [`read_file`]).
//!
//! An error names the place and the key and never the value (as for the corps file,
//! `crate::toml_errors`): `<file>:<line>: rule[<n>].<key>: <what was expected>`, or
//! `rule_def '<name>': <key>: …` for a table row.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::builtin::Builtin;
use super::RulesError;
use crate::toml_errors::{line_of_error, locate, message_of, value_text, without_value};

/// Which chats a rule looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chat {
    /// One-to-one and group chats.
    #[default]
    Any,
    /// One-to-one chats only.
    Single,
    /// Group chats only.
    Group,
}

/// Internal or external conversations (external: a participant's id starts with `wo` or `wm`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Conversation {
    /// Both.
    #[default]
    Any,
    /// Only employees (and bots) take part.
    Internal,
    /// An external contact takes part.
    External,
}

/// Who sends to whom.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Any sender.
    #[default]
    Any,
    /// An employee sends to a conversation with an external contact (employee→customer).
    ToCustomer,
    /// An external contact sends to a conversation with an employee (customer→employee).
    FromCustomer,
}

/// A behaviour matcher: the msgtype itself is what a rule looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Behaviour {
    /// A business card (`card`).
    Card,
    /// A mini program (`weapp`).
    Weapp,
    /// A file (`file`), optionally only with one of `file_extensions`.
    File,
    /// A red packet (`redpacket`, `external_redpacket`).
    Redpacket,
    /// A revoke (`revoke`) within `revoke_within` of sending the message it takes back.
    Revoke,
}

impl Behaviour {
    /// The name in rules.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            Behaviour::Card => "card",
            Behaviour::Weapp => "weapp",
            Behaviour::File => "file",
            Behaviour::Redpacket => "redpacket",
            Behaviour::Revoke => "revoke",
        }
    }

    /// The msgtypes of records that show the behaviour.
    pub fn msgtypes(self) -> &'static [&'static str] {
        match self {
            Behaviour::Card => &["card"],
            Behaviour::Weapp => &["weapp"],
            Behaviour::File => &["file"],
            Behaviour::Redpacket => &["redpacket", "external_redpacket"],
            Behaviour::Revoke => &["revoke"],
        }
    }
}

/// `corps = "all"` or a list of corpids.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Corps {
    /// `"all"`.
    All(String),
    /// These corps.
    List(Vec<String>),
}

/// One rule as written (`[[rule]]` of rules.toml, or a `rule_def` body). A rule hits a record
/// when the record is in its scope and ANY of its matchers matches; one hit per record and rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    /// Unique name (at most 128 characters): the `rule` of its hits.
    pub name: String,
    /// Off: not evaluated.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `"all"` (the default) or a list of corpids.
    #[serde(default)]
    pub corps: Option<Corps>,
    /// `any` (default), `single` (1:1) or `group`.
    #[serde(default)]
    pub chat: Chat,
    /// `any` (default), `internal` or `external`.
    #[serde(default)]
    pub conversation: Conversation,
    /// `any` (default), `to_customer` (employee→customer) or `from_customer`.
    #[serde(default)]
    pub direction: Direction,
    /// Only messages sent by these userids (a department: its members' userids); empty = any.
    #[serde(default)]
    pub senders: Vec<String>,
    /// Never messages sent by these userids.
    #[serde(default)]
    pub exclude_senders: Vec<String>,
    /// Only records of these msgtypes; empty = every msgtype.
    #[serde(default)]
    pub msgtypes: Vec<String>,
    /// Words or phrases (ASCII letters case-insensitive), in the text of every msgtype, nested
    /// chatrecord/mixed items included.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// A file of more keywords, one per line (`#` starts a comment line); relative to the rules
    /// file. Not in a `rule_def` body.
    #[serde(default)]
    pub keywords_file: Option<PathBuf>,
    /// Regular expressions (Rust `regex` syntax), each within the size limit.
    #[serde(default)]
    pub regex: Vec<String>,
    /// Built-in detectors: `phone`, `id_card`, `bank_card`, `email`, `url`.
    #[serde(default)]
    pub builtin: Vec<Builtin>,
    /// For `builtin = ["url"]`: the domains (a host equal to one or under one hits).
    #[serde(default)]
    pub url_domains: Vec<String>,
    /// Behaviours: `card`, `weapp`, `file`, `redpacket`, `revoke`.
    #[serde(default)]
    pub behaviour: Vec<Behaviour>,
    /// For `behaviour = ["file"]`: only files with these extensions (case-insensitive, without
    /// the dot); empty = any file.
    #[serde(default)]
    pub file_extensions: Vec<String>,
    /// For `behaviour = ["revoke"]`: a revoke at most this long after sending hits ("30s").
    #[serde(default, with = "humantime_serde")]
    pub revoke_within: Option<Duration>,
}

fn yes() -> bool {
    true
}

/// rules.toml as parsed: `[[rule]]` entries (each checked by [`read_file`]) and `[[reply_time]]`
/// entries kept as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFile {
    /// The `[[rule]]` entries, not yet checked.
    #[serde(default)]
    rule: Vec<toml::Value>,
    /// The `[[reply_time]]` entries: parsed by the reply-time check, not here.
    #[serde(default)]
    pub reply_time: Vec<toml::Table>,
}

/// A rules file read: its rules (with `keywords_file`s read into `keywords`) and its
/// `[[reply_time]]` entries.
#[derive(Debug, Clone, Default)]
pub struct FileRules {
    /// The `[[rule]]` entries, in file order.
    pub rules: Vec<RuleDef>,
    /// The `[[reply_time]]` entries (parsed by the reply-time check).
    pub reply_time: Vec<toml::Table>,
}

/// Reads and checks a rules file. Every error is `<file>:<line>: rule[<n>].<key>: …`.
pub fn read_file(path: &Path) -> Result<FileRules, RulesError> {
    let text = std::fs::read_to_string(path).map_err(|e| RulesError::File {
        path: path.to_path_buf(),
        line: 0,
        message: e.to_string(),
    })?;
    parse_file(path, &text)
}

/// [`read_file`] of `text` (as if read from `path`).
pub fn parse_file(path: &Path, text: &str) -> Result<FileRules, RulesError> {
    let err = |line: usize, message: String| RulesError::File { path: path.to_path_buf(), line, message };
    let parsed: RulesFile = toml::from_str(text).map_err(|e| err(line_of_error(text, &e), message_of(&e)))?;
    let lines = locate(text);
    let line_at = |key: &str| {
        let mut k = key;
        loop {
            if let Some(l) = lines.get(k) {
                return *l;
            }
            match k.rfind(['.', '[']) {
                Some(end) if end > 0 => k = &k[..end],
                _ => return 1,
            }
        }
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut rules = Vec::with_capacity(parsed.rule.len());
    for (i, value) in parsed.rule.iter().enumerate() {
        let entry = format!("rule[{}]", i + 1);
        let mut def = parse_value(value).map_err(|(key, message)| {
            let at = if key.is_empty() { entry.clone() } else { format!("{entry}.{key}") };
            err(line_at(&at), format!("{at}: {message}"))
        })?;
        if let Some(file) = def.keywords_file.take() {
            let p = if file.is_absolute() { file } else { base.join(file) };
            let words = std::fs::read_to_string(&p).map_err(|e| {
                let at = format!("{entry}.keywords_file");
                err(line_at(&at), format!("{at}: cannot read {}: {e}", p.display()))
            })?;
            def.keywords.extend(
                words.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string),
            );
        }
        check(&def).map_err(|(key, message)| {
            let at = if key.is_empty() { entry.clone() } else { format!("{entry}.{key}") };
            err(line_at(&at), format!("{at}: {message}"))
        })?;
        rules.push(def);
    }
    let mut seen = std::collections::HashSet::new();
    for (i, r) in rules.iter().enumerate() {
        if !seen.insert(r.name.as_str()) {
            let at = format!("rule[{}].name", i + 1);
            return Err(err(line_at(&at), format!("{at}: a second rule named {:?}", r.name)));
        }
    }
    Ok(FileRules { rules, reply_time: parsed.reply_time })
}

/// One rule from a `rule_def` body (`name` is the row's: a body without one takes it, a
/// different one is an error). `keywords_file` is refused (a row has no directory).
pub fn parse_body(name: &str, body: &str) -> Result<RuleDef, RulesError> {
    let err = |message: String| RulesError::Definition { name: name.to_string(), message };
    let mut table: toml::Table = body.parse().map_err(|e: toml::de::Error| err(message_of(&e)))?;
    match table.get("name").and_then(toml::Value::as_str) {
        None => {
            table.insert("name".into(), toml::Value::String(name.to_string()));
        }
        Some(n) if n == name => {}
        Some(_) => return Err(err("name: differs from the rule's name".into())),
    }
    let def = parse_value(&toml::Value::Table(table))
        .map_err(|(key, m)| err(if key.is_empty() { m } else { format!("{key}: {m}") }))?;
    if def.keywords_file.is_some() {
        return Err(err("keywords_file: only in rules.toml (list the keywords in the rule)".into()));
    }
    check(&def).map_err(|(key, m)| err(if key.is_empty() { m } else { format!("{key}: {m}") }))?;
    Ok(def)
}

/// A [`RuleDef`] from one entry, or (the key, why) without the value: serde names no key in a
/// type error, so each key is tried alone beside a valid `name`.
fn parse_value(value: &toml::Value) -> Result<RuleDef, (String, String)> {
    let e = match RuleDef::deserialize(value.clone()) {
        Ok(def) => return Ok(def),
        Err(e) => e,
    };
    let filler = toml::Table::from_iter([("name".to_string(), toml::Value::String("filler".into()))]);
    let alone = value.as_table().into_iter().flatten().find_map(|(key, v)| {
        let mut probe = filler.clone();
        probe.insert(key.clone(), v.clone());
        let e = RuleDef::deserialize(toml::Value::Table(probe)).err()?;
        Some((key.clone(), without_value(e.message(), &value_text(Some(v)))))
    });
    Err(alone.unwrap_or_else(|| (String::new(), without_value(e.message(), ""))))
}

/// What a rule must have beyond its types: a name, a matcher, the parameters its matchers need.
fn check(def: &RuleDef) -> Result<(), (String, String)> {
    let bad = |key: &str, m: &str| Err((key.to_string(), m.to_string()));
    if def.name.trim().is_empty() || def.name.chars().count() > 128 {
        return bad("name", "must have 1 to 128 characters");
    }
    if let Some(Corps::All(s)) = &def.corps {
        if s != "all" {
            return bad("corps", "expected \"all\" or a list of corpids");
        }
    }
    if def.keywords.is_empty()
        && def.keywords_file.is_none()
        && def.regex.is_empty()
        && def.builtin.is_empty()
        && def.behaviour.is_empty()
    {
        return bad("", "no matcher: give keywords, regex, builtin or behaviour");
    }
    if def.keywords.iter().any(|k| k.trim().is_empty()) {
        return bad("keywords", "an empty keyword would match everything");
    }
    if def.builtin.contains(&Builtin::Url) && def.url_domains.is_empty() {
        return bad("url_domains", "builtin \"url\" needs url_domains");
    }
    if def.behaviour.contains(&Behaviour::Revoke) && def.revoke_within.is_none() {
        return bad("revoke_within", "behaviour \"revoke\" needs revoke_within (e.g. \"30s\")");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_file_line_and_key_never_the_value() {
        let path = Path::new("/etc/wma/rules.toml");
        let text =
            "[[rule]]\nname = \"ok\"\nkeywords = [\"a\"]\n\n[[rule]]\nname = \"bad\"\nkeywords = \"secretword\"\n";
        let e = parse_file(path, text).unwrap_err().to_string();
        assert!(e.starts_with("rules file /etc/wma/rules.toml:7: rule[2].keywords: wrong type"), "{e}");
        assert!(!e.contains("secretword"), "{e}");

        let text = "[[rule]]\nname = \"x\"\nkeywrds = [\"a\"]\n";
        let e = parse_file(path, text).unwrap_err().to_string();
        assert!(e.contains(":3: rule[1].keywrds: unknown field"), "{e}");

        let text = "[[rule]]\nname = \"x\"\nbuiltin = [\"url\"]\n";
        let e = parse_file(path, text).unwrap_err().to_string();
        assert!(e.contains(":1: rule[1].url_domains: builtin \"url\" needs url_domains"), "{e}");

        let text = "[[rule]]\nname = \"x\"\nbuiltin = [\"passport\"]\n";
        let e = parse_file(path, text).unwrap_err().to_string();
        assert!(e.contains(":3: rule[1].builtin: not an allowed value"), "{e}");
        assert!(!e.contains("passport"), "{e}");

        let text = "[[rule]]\nname = \"x\"\n";
        let e = parse_file(path, text).unwrap_err().to_string();
        assert!(e.contains(":1: rule[1]: no matcher"), "{e}");

        let text = "[[rule]]\nname = \"x\"\nkeywords=[\"a\"]\n[[rule]]\nname = \"x\"\nkeywords=[\"b\"]\n";
        let e = parse_file(path, text).unwrap_err().to_string();
        assert!(e.contains(":5: rule[2].name: a second rule named"), "{e}");
    }

    #[test]
    fn reply_time_entries_are_kept_uninterpreted() {
        let text = "[[rule]]\nname = \"a\"\nkeywords = [\"x\"]\n[[reply_time]]\nname = \"rt\"\nminutes = 5\nwhatever = { a = 1 }\n";
        let f = parse_file(Path::new("rules.toml"), text).unwrap();
        assert_eq!(f.rules.len(), 1);
        assert_eq!(f.reply_time.len(), 1);
        assert_eq!(f.reply_time[0].get("minutes").and_then(toml::Value::as_integer), Some(5));
    }

    #[test]
    fn keywords_file_is_read_relative_to_the_rules_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("words.txt"), "# comment\n私下转账\n\n  竞品A  \n").unwrap();
        let text = "[[rule]]\nname = \"w\"\nkeywords = [\"x\"]\nkeywords_file = \"words.txt\"\n";
        let f = parse_file(&dir.path().join("rules.toml"), text).unwrap();
        assert_eq!(f.rules[0].keywords, ["x", "私下转账", "竞品A"]);
    }

    #[test]
    fn a_body_takes_the_row_s_name() {
        let d = parse_body("r1", "keywords = [\"a\"]\nchat = \"group\"\n").unwrap();
        assert_eq!((d.name.as_str(), d.chat), ("r1", Chat::Group));
        let e = parse_body("r1", "name = \"r2\"\nkeywords = [\"a\"]\n").unwrap_err().to_string();
        assert!(e.contains("name: differs"), "{e}");
        let e = parse_body("r1", "keywords = [\"a\"]\ndirection = \"sideways\"\n").unwrap_err().to_string();
        assert!(e.contains("direction: not an allowed value"), "{e}");
    }
}
