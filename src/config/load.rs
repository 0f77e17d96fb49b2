//! The layering behind [`Config::load`]: the TOML text, then the environment overrides, each
//! typed by its key, then a check key by key, so that an error names the key and where it was
//! set (`file:line`, or the environment variable) and never the value.
//!
//! Why not a layering crate (figment, config): their errors carry the rejected value (serde's
//! "invalid type: string \"…\"") and no TOML line; here the serde message is reduced to what was
//! expected, and the line comes from the TOML spans.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Config, ConfigError, ENV_PREFIX};

/// Where a key was set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of the TOML file (`path` is `None` for text without a file).
    File {
        /// The file.
        path: Option<PathBuf>,
        /// 1-based line.
        line: usize,
    },
    /// An environment variable (its name).
    Env(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path: Some(p), line } => write!(f, "{}:{line}", p.display()),
            Origin::File { path: None, line } => write!(f, "line {line}"),
            Origin::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// Defaults < `text` < `env`, checked.
pub(super) fn load(
    text: &str,
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let in_file = |line: usize| Origin::File { path: path.map(Path::to_path_buf), line };
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
        at: in_file(e.span().map_or(1, |s| line_of(text, s.start))),
        // The message only: the error's Display quotes the source line, which may hold a value.
        message: e.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; "),
    })?;
    let mut origins: BTreeMap<String, Origin> = locate(text).into_iter().map(|(k, l)| (k, in_file(l))).collect();

    let mut overrides: Vec<(String, String)> = env.into_iter().filter(|(n, _)| n.starts_with(ENV_PREFIX)).collect();
    overrides.sort();
    for (name, raw) in overrides {
        let (section, key) = env_key(&name)?;
        let path = format!("{section}.{key}");
        let value = typed(&section, &key, &raw).map_err(|message| ConfigError::Invalid {
            at: Some(Origin::Env(name.clone())),
            key: path.clone(),
            message,
        })?;
        let entry = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(keys) = entry else { return Err(ConfigError::BadEnv(name)) };
        keys.insert(key, value);
        origins.insert(path, Origin::Env(name));
    }

    // Key by key: the first wrong one is reported with where it was set.
    for (section, item) in &table {
        let one = match item {
            toml::Value::Table(keys) if keys.is_empty() => vec![(section.clone(), single(section, None))],
            toml::Value::Table(keys) => keys
                .iter()
                .map(|(key, value)| (format!("{section}.{key}"), single(section, Some((key.as_str(), value.clone())))))
                .collect(),
            other => vec![(section.clone(), toml::Table::from_iter([(section.clone(), other.clone())]))],
        };
        for (path, probe) in one {
            if let Err(message) = deserialize(probe) {
                let value = value_text(item_at(&table, &path));
                let at = origins.get(&path).or_else(|| origins.get(section)).cloned();
                return Err(ConfigError::Invalid { at, key: path, message: without_value(&message, &value) });
            }
        }
    }
    let config = Config::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Invalid {
        at: path.map(|p| Origin::File { path: Some(p.to_path_buf()), line: 1 }),
        key: "(configuration)".into(),
        message: without_value(e.message(), ""),
    })?;
    config.check().map_err(|(key, message)| ConfigError::Invalid {
        at: origins.get(key).cloned(),
        key: key.to_string(),
        message,
    })?;
    Ok(config)
}

/// `WEWORK_MSGAUDIT__SECTION__KEY` → (`section`, `key`).
fn env_key(name: &str) -> Result<(String, String), ConfigError> {
    let bad = || ConfigError::BadEnv(name.to_string());
    let rest = name.strip_prefix(ENV_PREFIX).ok_or_else(bad)?;
    let mut parts = rest.split("__").map(str::to_ascii_lowercase);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(section), Some(key), None) if !section.is_empty() && !key.is_empty() => Ok((section, key)),
        _ => Err(bad()),
    }
}

/// The environment value `raw` as the type `section.key` takes: tried as a string, an integer, a
/// boolean, a float, in that order; the first that the key accepts wins. A string key thus keeps
/// `"1"` a string, and a number or boolean key gets its type.
fn typed(section: &str, key: &str, raw: &str) -> Result<toml::Value, String> {
    let candidates = [
        Some(toml::Value::String(raw.to_string())),
        raw.parse::<i64>().ok().map(toml::Value::Integer),
        raw.parse::<bool>().ok().map(toml::Value::Boolean),
        raw.parse::<f64>().ok().filter(|f| f.is_finite()).map(toml::Value::Float),
    ];
    let mut first_error = None;
    for value in candidates.into_iter().flatten() {
        match deserialize(single(section, Some((key, value.clone())))) {
            Ok(()) => return Ok(value),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(without_value(&first_error.unwrap_or_default(), raw))
}

/// A configuration of one key (`section.key = value`), or of an empty section.
fn single(section: &str, key: Option<(&str, toml::Value)>) -> toml::Table {
    let mut keys = toml::Table::new();
    if let Some((k, v)) = key {
        keys.insert(k.to_string(), v);
    }
    toml::Table::from_iter([(section.to_string(), toml::Value::Table(keys))])
}

/// Whether `table` deserialises into a [`Config`]: `Err(serde's message)`.
fn deserialize(table: toml::Table) -> Result<(), String> {
    Config::deserialize(toml::Value::Table(table)).map(drop).map_err(|e| e.message().to_string())
}

fn item_at<'a>(table: &'a toml::Table, path: &str) -> Option<&'a toml::Value> {
    match path.split_once('.') {
        Some((section, key)) => table.get(section)?.as_table()?.get(key),
        None => table.get(path),
    }
}

/// How a value may appear in a message: a string's content, anything else as TOML.
fn value_text(value: Option<&toml::Value>) -> String {
    match value {
        Some(toml::Value::String(s)) => s.clone(),
        Some(toml::Value::Table(_) | toml::Value::Array(_)) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// serde's `message` reduced to what was expected: serde quotes the rejected value ("invalid
/// type: string \"123456\", expected u32", "unknown variant `x`, expected one of …"), which may be
/// a secret. Unknown keys keep their message (it names the key, not a value).
fn without_value(message: &str, value: &str) -> String {
    let message = message.trim();
    let expected = message.split_once(", expected ").map(|(_, e)| plain_type(e.trim()));
    let reduced = if message.starts_with("unknown field") || message.starts_with("missing field") {
        return message.to_string();
    } else if message.starts_with("invalid type") {
        format!("wrong type, expected {}", expected.unwrap_or_else(|| "another type".into()))
    } else if message.starts_with("unknown variant") {
        format!("not an allowed value, expected {}", expected.unwrap_or_else(|| "another value".into()))
    } else if message.starts_with("invalid value") || message.starts_with("invalid length") {
        format!("invalid value, expected {}", expected.unwrap_or_else(|| "another value".into()))
    } else {
        message.to_string()
    };
    // Belt and braces for messages of unknown shape.
    if !value.is_empty() && reduced.contains(value) {
        return "invalid value".into();
    }
    reduced
}

/// Rust type names in serde's "expected" as words.
fn plain_type(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        other => other.to_string(),
    }
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// The line of every `section.key` (and section) set in `text`, from the TOML spans. Best
/// effort: a file that is not sections of keys gets the lines of its sections only.
fn locate(text: &str) -> BTreeMap<String, usize> {
    type Keys = BTreeMap<String, toml::Spanned<toml::Value>>;
    let mut out = BTreeMap::new();
    if let Ok(sections) = toml::from_str::<BTreeMap<String, toml::Spanned<toml::Value>>>(text) {
        for (section, value) in &sections {
            out.insert(section.clone(), line_of(text, value.span().start));
        }
    }
    if let Ok(sections) = toml::from_str::<BTreeMap<String, Keys>>(text) {
        for (section, keys) in &sections {
            for (key, value) in keys {
                out.insert(format!("{section}.{key}"), line_of(text, value.span().start));
            }
        }
    }
    out
}
