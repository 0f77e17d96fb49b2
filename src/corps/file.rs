//! A corps TOML file as a corp source (format in `config/corps.example.toml`): every `[[corp]]`
//! entry becomes a [`Candidate`]; a bad entry is an error for that corp only.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{limit_or, timeout_or, Candidate, CorpSource, CorpSpec, Defaults, SourceError};
use crate::crypto::{self, Keyring};
use crate::secret::Secret;
use crate::store::CorpId;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpsFile {
    #[serde(default)]
    corp: Vec<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCorp {
    corpid: String,
    secret: Secret,
    #[serde(default)]
    name: String,
    #[serde(default)]
    limits: i64,
    #[serde(default)]
    timeout: i64,
    /// Read from the raw entry by [`from_file`] (so that a disabled entry that does not parse is
    /// still known as disabled); declared so that `deny_unknown_fields` accepts it.
    #[serde(default = "enabled_default")]
    #[allow(dead_code)]
    enabled: bool,
    #[serde(default)]
    key: Vec<FileKey>,
}

fn enabled_default() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    ver: u32,
    #[serde(default)]
    pem: Option<Secret>,
    #[serde(default)]
    file: Option<PathBuf>,
}

/// The corps of a TOML file. Relative key `file`s are relative to the file's directory. A bad
/// `[[corp]]` entry is an error for that corp only; an unreadable file fails the whole source.
pub fn from_file(path: &Path, defaults: Defaults) -> Result<Vec<Candidate>, SourceError> {
    let file_err = |message: String| SourceError::File { path: path.to_path_buf(), message };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let parsed: CorpsFile = toml::from_str(&text).map_err(|e| file_err(e.message().to_string()))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = Vec::new();
    for (i, value) in parsed.corp.into_iter().enumerate() {
        let label = value
            .get("corpid")
            .and_then(toml::Value::as_str)
            .map_or_else(|| format!("[[corp]] #{}", i + 1), str::to_string);
        let enabled = value.get("enabled").and_then(toml::Value::as_bool).unwrap_or(true);
        let spec = FileCorp::deserialize(value)
            .map_err(|e| format!("invalid [[corp]] entry: {}", e.message()))
            .and_then(|c| file_corp(c, &base, defaults));
        out.push(Candidate { corpid: label, source: CorpSource::File, enabled, spec });
    }
    Ok(out)
}

fn file_corp(c: FileCorp, base: &Path, defaults: Defaults) -> Result<CorpSpec, String> {
    let corpid = CorpId::new(&c.corpid).map_err(|e| e.to_string())?;
    let mut keyring = Keyring::new();
    for k in &c.key {
        let bytes = match (&k.pem, &k.file) {
            (Some(pem), None) => pem.expose().as_bytes().to_vec(),
            (None, Some(file)) => {
                let p = if file.is_absolute() { file.clone() } else { base.join(file) };
                std::fs::read(&p).map_err(|e| format!("key ver {}: cannot read {}: {e}", k.ver, p.display()))?
            }
            _ => return Err(format!("key ver {}: give exactly one of `pem` and `file`", k.ver)),
        };
        let key = crypto::parse_private_key(&bytes).map_err(|e| format!("key ver {}: {e}", k.ver))?;
        keyring.insert(k.ver, key);
    }
    if keyring.is_empty() {
        return Err("no [[corp.key]]: records could never be decrypted".into());
    }
    Ok(CorpSpec::new(corpid, c.name, c.secret, limit_or(c.limits, defaults), timeout_or(c.timeout, defaults), keyring)
        .with_source(CorpSource::File))
}
