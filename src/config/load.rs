//! The layering behind [`Config::load`]: the TOML text, then the environment overrides, each
//! typed by its key, then a check key by key, so that an error names the key and where it was
//! set (`file:line`, or the environment variable) and never the value.
//!
//! Why not a layering crate (figment, config): their errors carry the rejected value (serde's
//! "invalid type: string \"…\"") and no TOML line; here the serde message is reduced to what was
//! expected, and the line comes from the TOML spans (both in `crate::toml_errors`, which the
//! corps file uses too).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Config, ConfigError, ENV_PREFIX};
use crate::toml_errors::{line_of_error, locate, message_of, value_text, without_value};

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
        at: in_file(line_of_error(text, &e)),
        // The message only: the error's Display quotes the source line, which may hold a value.
        message: message_of(&e),
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
