//! A corps TOML file as a corp source (format in `config/corps.example.toml`): every `[[corp]]`
//! entry becomes a [`Candidate`]; a bad entry is an error for that corp only.
//!
//! The file holds corp secrets and private keys, and an entry's error reaches the daemon's log
//! ("corp left out"), `validate`, `doctor` and `corp list`. So an error names the place and the
//! key, `<file>:<line>: corp[<n>].<key>: <what was expected>` (`n` counts the `[[corp]]` entries
//! from 1; e.g. `corp[2].key[1].pem`), and never the value: as for the configuration,
//! `crate::toml_errors` reduces serde's message and finds the line from the TOML spans. serde
//! names no key in a type error, so the key is found by trying each key of the entry alone
//! ([`blame`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{limit_or, timeout_or, Candidate, CorpSource, CorpSpec, Defaults, SourceError};
use crate::crypto::{self, Keyring};
use crate::secret::Secret;
use crate::store::CorpId;
use crate::toml_errors::{line_of_error, locate, message_of, value_text, without_value};

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
    /// The callback Token (`crate::callback`); with `encoding_aes_key`, or neither.
    #[serde(default)]
    callback_token: Option<Secret>,
    /// The callback EncodingAESKey (43 characters of base64).
    #[serde(default)]
    encoding_aes_key: Option<Secret>,
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
    let file_err = |line: Option<usize>, message: String| SourceError::File { path: path.to_path_buf(), line, message };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(None, e.to_string()))?;
    let parsed: CorpsFile =
        toml::from_str(&text).map_err(|e| file_err(Some(line_of_error(&text, &e)), message_of(&e)))?;
    let lines = locate(&text);
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = Vec::new();
    for (i, value) in parsed.corp.into_iter().enumerate() {
        let entry = format!("corp[{}]", i + 1);
        let label = value.get("corpid").and_then(toml::Value::as_str).map_or_else(|| entry.clone(), str::to_string);
        let enabled = value.get("enabled").and_then(toml::Value::as_bool).unwrap_or(true);
        let spec = parse_entry(&value).and_then(|c| file_corp(c, &base, defaults)).map_err(|bad| {
            let key = if bad.key.is_empty() { entry.clone() } else { format!("{entry}.{}", bad.key) };
            format!("{}:{}: {key}: {}", path.display(), line_at(&lines, &key), bad.message)
        });
        out.push(Candidate { corpid: label, source: CorpSource::File, enabled, spec });
    }
    Ok(out)
}

/// The line of `key`, or of the nearest enclosing key or entry that has one (1 if none has).
fn line_at(lines: &BTreeMap<String, usize>, key: &str) -> usize {
    let mut key = key;
    loop {
        if let Some(line) = lines.get(key) {
            return *line;
        }
        match key.rfind(['.', '[']) {
            Some(end) => key = &key[..end],
            None => return 1,
        }
    }
}

/// What is wrong with an entry: the key (relative to the entry, `key[1].pem`; "" for the entry
/// itself) and why, without the value.
#[derive(Debug)]
struct Bad {
    key: String,
    message: String,
}

impl Bad {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self { key: key.into(), message: message.into() }
    }
}

/// A `[[corp]]` entry as a [`FileCorp`], or its first wrong key (into its `[[corp.key]]`s).
fn parse_entry(entry: &toml::Value) -> Result<FileCorp, Bad> {
    let e = match FileCorp::deserialize(entry.clone()) {
        Ok(corp) => return Ok(corp),
        Err(e) => e,
    };
    let filler = toml::Table::from_iter([
        ("corpid".to_string(), toml::Value::String("filler".into())),
        ("secret".to_string(), toml::Value::String("filler".into())),
    ]);
    let bad = blame::<FileCorp>(entry, &filler, e.message());
    if bad.key != "key" {
        return Err(bad);
    }
    let key_filler = toml::Table::from_iter([("ver".to_string(), toml::Value::Integer(1))]);
    let keys = entry.get("key").and_then(toml::Value::as_array).into_iter().flatten();
    let inner = keys.enumerate().find_map(|(j, key)| {
        let e = FileKey::deserialize(key.clone()).err()?;
        let inner = blame::<FileKey>(key, &key_filler, e.message());
        let at = if inner.key.is_empty() { format!("key[{}]", j + 1) } else { format!("key[{}].{}", j + 1, inner.key) };
        Some(Bad::new(at, inner.message))
    });
    Err(inner.unwrap_or(bad))
}

/// Why `value` is not a `T` (serde said `message`): the first key that `T` rejects when it is
/// given alone beside `filler` (valid values of `T`'s required keys), with serde's message for
/// it without its value; else (a key is missing, or `value` is no table) `message` for the whole.
fn blame<T: DeserializeOwned>(value: &toml::Value, filler: &toml::Table, message: &str) -> Bad {
    let alone = value.as_table().into_iter().flatten().find_map(|(key, v)| {
        let mut probe = filler.clone();
        probe.insert(key.clone(), v.clone());
        let e = T::deserialize(toml::Value::Table(probe)).err()?;
        Some(Bad::new(key.clone(), without_value(e.message(), &value_text(Some(v)))))
    });
    alone.unwrap_or_else(|| Bad::new("", without_value(message, "")))
}

fn file_corp(c: FileCorp, base: &Path, defaults: Defaults) -> Result<CorpSpec, Bad> {
    let corpid = CorpId::new(&c.corpid).map_err(|e| Bad::new("corpid", e.to_string()))?;
    let mut keyring = Keyring::new();
    for (j, k) in c.key.iter().enumerate() {
        let at = |key: &str| format!("key[{}]{key}", j + 1);
        let (bytes, from) = match (&k.pem, &k.file) {
            (Some(pem), None) => (pem.expose().as_bytes().to_vec(), at(".pem")),
            (None, Some(file)) => {
                let p = if file.is_absolute() { file.clone() } else { base.join(file) };
                let bytes = std::fs::read(&p).map_err(|e| {
                    Bad::new(at(".file"), format!("key ver {}: cannot read {}: {e}", k.ver, p.display()))
                })?;
                (bytes, at(".file"))
            }
            _ => return Err(Bad::new(at(""), format!("key ver {}: give exactly one of `pem` and `file`", k.ver))),
        };
        let key = crypto::keys::parse_private_key_shared(&bytes)
            .map_err(|e| Bad::new(from, format!("key ver {}: {e}", k.ver)))?;
        keyring.insert(k.ver, key);
    }
    if keyring.is_empty() {
        return Err(Bad::new("", "no [[corp.key]]: records could never be decrypted"));
    }
    let callback = crate::callback::CallbackKeys::from_settings(c.callback_token.as_ref(), c.encoding_aes_key.as_ref())
        .map_err(|e| Bad::new(e.key(), e.to_string()))?;
    Ok(CorpSpec::new(corpid, c.name, c.secret, limit_or(c.limits, defaults), timeout_or(c.timeout, defaults), keyring)
        .with_source(CorpSource::File)
        .with_callback(callback))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdk::SdkTimeout;

    const PEM: &str = include_str!("../../tests/fixtures/keys/rsa2048.pkcs8.pem");

    /// Every error of an entry names `<file>:<line>: corp[<n>].<key>` and never the value (before:
    /// "invalid [[corp]] entry: invalid type: integer `918273645501`, expected a string").
    #[test]
    fn entry_errors_name_file_line_and_key_never_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corps.toml");
        let good = format!("[[corp]]\ncorpid = \"wwgood\"\nsecret = \"s\"\n[[corp.key]]\nver = 1\npem = '''{PEM}'''\n");
        let good_lines = good.lines().count();
        let bad = "[[corp]]\ncorpid = \"wwdigits\"\nsecret = 918273645501\n[[corp.key]]\nver = 1\nfile = \"k.pem\"\n\
                   [[corp]]\ncorpid = \"wwpem\"\nsecret = \"s\"\n[[corp.key]]\nver = 1\npem = 123456789012345\n\
                   [[corp]]\nsecret = \"s\"\nlimits = 77665544332211.5\n\
                   [[corp]]\ncorpid = \"ww bad\"\nsecret = \"s\"\n\
                   [[corp]]\ncorpid = \"wwnokey\"\nsecret = \"s\"\n\
                   [[corp]]\ncorpid = \"wwnosecret\"\n\
                   [[corp]]\ncorpid = \"wwtypo\"\nsecret = \"s\"\nsecert = \"s\"\n\
                   [[corp]]\ncorpid = \"wwbadkey\"\nsecret = \"s\"\n[[corp.key]]\nver = 1\npem = \"nope\"\n";
        std::fs::write(&path, format!("{good}{bad}")).unwrap();
        let defaults = Defaults { limit: 100, timeout: SdkTimeout::from_secs(5) };
        let got = from_file(&path, defaults).unwrap();
        let errors: Vec<(String, String)> =
            got.iter().map(|c| (c.corpid.clone(), c.spec.as_ref().err().cloned().unwrap_or_default())).collect();
        let at = |line: usize, key: &str| format!("{}:{}: {key}: ", path.display(), line + good_lines);
        let want = [
            ("wwgood", String::new()),
            ("wwdigits", at(3, "corp[2].secret") + "wrong type, expected a string"),
            ("wwpem", at(12, "corp[3].key[1].pem") + "wrong type, expected a string"),
            ("corp[4]", at(15, "corp[4].limits") + "wrong type, expected an integer"),
            ("ww bad", at(17, "corp[5].corpid")),
            ("wwnokey", at(19, "corp[6]") + "no [[corp.key]]: records could never be decrypted"),
            ("wwnosecret", at(22, "corp[7]") + "missing field `secret`"),
            ("wwtypo", at(27, "corp[8].secert") + "unknown field `secert`"),
            ("wwbadkey", at(33, "corp[9].key[1].pem") + "key ver 1: "),
        ];
        assert_eq!(errors.len(), want.len(), "{errors:?}");
        for ((corpid, error), (want_corpid, want_error)) in errors.iter().zip(&want) {
            assert_eq!(corpid, want_corpid);
            assert!(error.starts_with(want_error.as_str()), "{corpid}: {error:?}, want {want_error:?}");
            for value in ["918273645501", "123456789012345", "77665544332211", "nope", "MII"] {
                assert!(!error.contains(value), "{corpid}: the value is shown: {error}");
            }
        }
        assert!(got[0].spec.is_ok());

        // A file that is no corps file at all: its line, not its content.
        std::fs::write(&path, "\n\ncorp = 918273645501\n").unwrap();
        let e = from_file(&path, defaults).unwrap_err().to_string();
        assert!(e.starts_with(&format!("corps file {}:3: ", path.display())), "{e}");
        assert!(!e.contains("918273645501"), "{e}");
    }
}
