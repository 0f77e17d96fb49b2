//! `corp add | list | enable | disable | set-key | rotate-secret | encrypt-existing | set-callback`:
//! manage the `corplist` / `corp_keys` / `corp_callback` tables, and list every configured corp
//! whatever its source.
//!
//! Secrets are never taken as plain arguments (they would show in `ps`): `--secret-file` or
//! `--secret-env`. Keys are read from files and parsed with [`parse_private_key`] BEFORE anything
//! is saved; only their public fingerprints are ever printed. With a master key
//! ([`crate::security`]) every secret and key is stored sealed.
//!
//! `corp list` shows the corps of the tables and of the corps file, each with its source. The
//! commands that change a corp (`enable`, `disable`, `set-key`, `rotate-secret`) change the
//! tables only: a corp of the corps file is defined by that file, so they refuse it with exit 2
//! and say what to write in the file (for `set-key`, the `[[corp.key]]` entry); the daemon
//! picks the edit up by itself, and `redecrypt` reads the file's keys.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use clap::{Args, Subcommand};

use super::{with_store_of, CliError};
use crate::config::Config;
use crate::corps::{self, CorpSource, Defaults};
use crate::crypto::{parse_private_key, PrivateKey};
use crate::sdk::{SdkTimeout, MAX_LIMIT};
use crate::secret::Secret;
use crate::security::{self, AtRest};
use crate::store::{CorpId, CorpRow, Store};

/// Arguments of `corp`.
#[derive(Debug, Args)]
pub struct CorpArgs {
    /// The configuration file (the database URL comes from it; environment overrides apply).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,

    /// The corp subcommand.
    #[command(subcommand)]
    pub command: CorpCommand,
}

/// The `corp` subcommands.
#[derive(Debug, Subcommand)]
pub enum CorpCommand {
    /// Add a corp to `corplist` (enabled).
    Add(AddArgs),
    /// List the corps: no secret and no key is ever printed, only key fingerprints.
    List,
    /// Enable a corp (`corplist.status = 1`).
    Enable {
        /// The corpid.
        corpid: String,
    },
    /// Disable a corp (`corplist.status = 0`).
    Disable {
        /// The corpid.
        corpid: String,
    },
    /// Add or replace one key version of a corp (`corp_keys`).
    SetKey(SetKeyArgs),
    /// Replace the 会话存档 secret of a corp (stored sealed when a master key is set); the
    /// running daemon restarts the corp with it at its next reload.
    RotateSecret(RotateArgs),
    /// Seal every plaintext secret and key of `corplist`/`corp_keys` with the master key
    /// (`[security] master_key_file` or `$WEWORK_MSGAUDIT_MASTER_KEY`). Idempotent. Back up
    /// the database first: the Java version cannot read sealed values.
    EncryptExisting,
    /// Set the WeCom callback Token and EncodingAESKey of a corp (`corp_callback`, sealed when a
    /// master key is set; README: Callbacks), or remove them with `--clear`.
    SetCallback(SetCallbackArgs),
}

/// Arguments of `corp set-callback`.
#[derive(Debug, Args)]
pub struct SetCallbackArgs {
    /// The corpid.
    pub corpid: String,
    /// A file holding the Token (surrounding whitespace is ignored).
    #[arg(long, required_unless_present = "clear", requires = "aes_key_file")]
    pub token_file: Option<PathBuf>,
    /// A file holding the EncodingAESKey (43 characters).
    #[arg(long, required_unless_present = "clear", requires = "token_file")]
    pub aes_key_file: Option<PathBuf>,
    /// Remove the corp's callback settings.
    #[arg(long, conflicts_with_all = ["token_file", "aes_key_file"])]
    pub clear: bool,
}

/// Arguments of `corp rotate-secret`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("secret").required(true).args(["secret_file", "secret_env"])))]
pub struct RotateArgs {
    /// The corpid.
    pub corpid: String,
    /// A file holding the new secret (surrounding whitespace is ignored).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// An environment variable holding the new secret.
    #[arg(long)]
    pub secret_env: Option<String>,
}

/// Arguments of `corp add`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("secret").required(true).args(["secret_file", "secret_env"])))]
pub struct AddArgs {
    /// The corpid (1 to 56 ASCII letters, digits or '_').
    #[arg(long)]
    pub corpid: String,
    /// A file holding the 会话存档 secret (surrounding whitespace is ignored).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// An environment variable holding the 会话存档 secret.
    #[arg(long)]
    pub secret_env: Option<String>,
    /// Display name.
    #[arg(long, default_value = "")]
    pub name: String,
    /// Records per GetChatData call (1..=1000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i32).range(1..=1000))]
    pub limits: i32,
    /// SDK call timeout in seconds; default: `[sdk] timeout` of the configuration.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=3600))]
    pub timeout: Option<i32>,
    /// The private key (PEM, DER or bare base64; PKCS#1 or PKCS#8) of `--key-ver`.
    #[arg(long, requires = "key_ver")]
    pub key_file: Option<PathBuf>,
    /// The `publickey_ver` of `--key-file`.
    #[arg(long, requires = "key_file")]
    pub key_ver: Option<u32>,
}

/// Arguments of `corp set-key`.
#[derive(Debug, Args)]
pub struct SetKeyArgs {
    /// The corpid.
    pub corpid: String,
    /// The `publickey_ver` of the key.
    #[arg(long)]
    pub ver: u32,
    /// The private key (PEM, DER or bare base64; PKCS#1 or PKCS#8).
    #[arg(long)]
    pub key_file: PathBuf,
}

/// Runs a `corp` subcommand.
pub fn run(args: &CorpArgs) -> Result<(), CliError> {
    // Everything that can be checked without the database is checked first: a bad corpid, a
    // missing file, a bad key or an unusable master key never opens (let alone changes) the
    // database.
    let cfg = Config::load(args.config.as_deref())?;
    let at_rest = || AtRest::load(&cfg.security.master_key_file).map_err(|e| CliError::config("the master key", e));
    match &args.command {
        CorpCommand::Add(a) => {
            let corpid = corpid(&a.corpid)?;
            let secret = read_secret(a.secret_file.as_deref(), a.secret_env.as_deref())?;
            let key = match (&a.key_file, a.key_ver) {
                (Some(file), Some(ver)) => Some((ver, read_key(file)?)),
                _ => None,
            };
            let at_rest = at_rest()?;
            let timeout =
                a.timeout.unwrap_or_else(|| i32::try_from(cfg.sdk.timeout.as_secs().clamp(1, 3600)).unwrap_or(10));
            with_store_of(&cfg, |store| add(store, &cfg, &at_rest, corpid, secret, a, timeout, key))
        }
        CorpCommand::List => {
            let at_rest = AtRest::load_or_broken(&cfg.security.master_key_file);
            with_store_of(&cfg, |store| list(store, &cfg, at_rest))
        }
        CorpCommand::Enable { corpid: c } => {
            let c = corpid(c)?;
            with_store_of(&cfg, |store| set_status(store, &cfg, c, 1))
        }
        CorpCommand::Disable { corpid: c } => {
            let c = corpid(c)?;
            with_store_of(&cfg, |store| set_status(store, &cfg, c, 0))
        }
        CorpCommand::SetKey(a) => {
            let c = corpid(&a.corpid)?;
            let key = read_key(&a.key_file)?;
            let at_rest = at_rest()?;
            with_store_of(&cfg, |store| set_key(store, &cfg, &at_rest, c, a.ver, key, &a.key_file))
        }
        CorpCommand::RotateSecret(a) => {
            let c = corpid(&a.corpid)?;
            let secret = read_secret(a.secret_file.as_deref(), a.secret_env.as_deref())?;
            let at_rest = at_rest()?;
            with_store_of(&cfg, |store| rotate_secret(store, &cfg, &at_rest, c, secret))
        }
        CorpCommand::SetCallback(a) => {
            let c = corpid(&a.corpid)?;
            let values = match (&a.token_file, &a.aes_key_file) {
                (Some(t), Some(k)) if !a.clear => {
                    let (token, key) = (read_secret(Some(t), None)?, read_secret(Some(k), None)?);
                    // Validated before the database is opened; the error names the setting only.
                    crate::callback::CallbackKeys::from_settings(Some(&token), Some(&key))
                        .map_err(|e| CliError::Config(format!("{}: {e}", e.key())))?;
                    Some((token, key))
                }
                _ => None,
            };
            let at_rest = at_rest()?;
            with_store_of(&cfg, |store| set_callback(store, &cfg, &at_rest, c, values))
        }
        CorpCommand::EncryptExisting => {
            let at_rest = at_rest()?;
            if at_rest.key_id().is_none() {
                return Err(CliError::Config(format!(
                    "no master key: set [security] master_key_file or ${}",
                    crate::security::MASTER_KEY_ENV
                )));
            }
            with_store_of(&cfg, |store| encrypt_existing(store, at_rest))
        }
    }
}

fn corpid(s: &str) -> Result<CorpId, CliError> {
    CorpId::new(s).map_err(|e| CliError::config("the corpid", e))
}

fn read_secret(file: Option<&Path>, env: Option<&str>) -> Result<Secret, CliError> {
    let raw = match (file, env) {
        (Some(file), _) => std::fs::read_to_string(file)
            .map_err(|e| CliError::config(format!("cannot read the secret file {}", file.display()), e))?,
        (None, Some(var)) => {
            // Not `VarError`'s text: for a value that is not Unicode it shows the value.
            std::env::var(var).map_err(|e| {
                let why = if e == std::env::VarError::NotPresent { "not set" } else { "not valid Unicode" };
                CliError::Config(format!("cannot read the secret from ${var}: {why}"))
            })?
        }
        (None, None) => return Err(CliError::Config("give --secret-file or --secret-env".into())),
    };
    let secret = raw.trim();
    if secret.is_empty() {
        return Err(CliError::Config("the secret is empty".into()));
    }
    Ok(Secret::new(secret))
}

/// A key file, parsed (validated) and kept as text for the database: the file's text as is, or
/// the base64 of a binary (DER) file.
struct ValidKey {
    text: Secret,
    key: PrivateKey,
}

fn read_key(file: &Path) -> Result<ValidKey, CliError> {
    let bytes =
        std::fs::read(file).map_err(|e| CliError::config(format!("cannot read the key file {}", file.display()), e))?;
    let key = parse_private_key(&bytes)
        .map_err(|e| CliError::config(format!("the key in {} is not usable", file.display()), e))?;
    let text = match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => base64::engine::general_purpose::STANDARD.encode(e.as_bytes()),
    };
    // The stored text must parse to the same key (it is what the pipeline will read).
    match parse_private_key(text.as_bytes()) {
        Ok(k) if k.fingerprint() == key.fingerprint() => Ok(ValidKey { text: Secret::new(text), key }),
        _ => Err(CliError::Config(format!("the key in {} cannot be stored as text", file.display()))),
    }
}

/// The corps file's entry for `corpid`, if the configuration names a corps file that defines it.
fn file_entry(cfg: &Config, corpid: &CorpId) -> Option<PathBuf> {
    let path = &cfg.corps.file;
    if path.as_os_str().is_empty() {
        return None;
    }
    let defaults = Defaults { limit: MAX_LIMIT, timeout: SdkTimeout::default() };
    let found = corps::from_file(path, defaults).ok()?.into_iter().any(|c| c.corpid == corpid.as_str());
    found.then(|| path.clone())
}

/// The error for a command that changes the tables, given a corp that is not in `corplist`.
fn not_in_table(cfg: &Config, corpid: &CorpId, what: &str) -> CliError {
    match file_entry(cfg, corpid) {
        Some(path) => CliError::Config(format!(
            "corp {corpid} is defined in the corps file {}, not in corplist: {what}",
            path.display()
        )),
        None => CliError::Config(format!("no corp {corpid} in corplist or the corps file")),
    }
}

async fn find(store: &dyn Store, corpid: &CorpId) -> Result<Option<CorpRow>, CliError> {
    Ok(store
        .list_corps()
        .await
        .map_err(CliError::store("reading corplist"))?
        .into_iter()
        .find(|r| r.corpid == corpid.as_str()))
}

fn protect(at_rest: &AtRest, place: &str, value: &Secret) -> Result<Secret, CliError> {
    at_rest.protect(place, value).map_err(|e| CliError::config(format!("sealing {place}"), e))
}

#[allow(clippy::too_many_arguments)]
async fn add(
    store: Arc<dyn Store>,
    cfg: &Config,
    at_rest: &AtRest,
    corpid: CorpId,
    secret: Secret,
    a: &AddArgs,
    timeout: i32,
    key: Option<(u32, ValidKey)>,
) -> Result<(), CliError> {
    if find(store.as_ref(), &corpid).await?.is_some() {
        return Err(CliError::Config(format!(
            "corp {corpid} already exists (use `corp set-key`, `corp enable`, `corp disable`)"
        )));
    }
    if let Some(path) = file_entry(cfg, &corpid) {
        return Err(CliError::Config(format!(
            "corp {corpid} is already defined in the corps file {}: a corp is defined in one place only",
            path.display()
        )));
    }
    let row = CorpRow {
        corpid: corpid.to_string(),
        secret: protect(at_rest, &security::secret_place(corpid.as_str()), &secret)?,
        corpname: a.name.clone(),
        prikey: Secret::new(""),
        limits: a.limits,
        timeout,
        status: 1,
        update: 1,
    };
    store.upsert_corp(&row).await.map_err(CliError::store(format!("storing corp {corpid}")))?;
    let sealed = if at_rest.key_id().is_some() { ", secret stored encrypted" } else { "" };
    println!("added corp {corpid} (enabled, limits {}, timeout {timeout}s{sealed})", a.limits);
    if let Some((ver, key)) = key {
        let text = protect(at_rest, &security::key_place(corpid.as_str(), ver), &key.text)?;
        store
            .put_corp_key(&corpid, ver, &text)
            .await
            .map_err(CliError::store(format!("storing key {ver} of corp {corpid}")))?;
        println!("key version {ver}: {}", describe(&key.key));
    } else {
        println!("no key yet: add one with `corp set-key {corpid} --ver V --key-file PEM`");
    }
    Ok(())
}

fn describe(key: &PrivateKey) -> String {
    format!("RSA-{} fingerprint {}", key.bits(), key.fingerprint())
}

/// How a stored value is kept: `sealed`, `plain`, or `-` when empty.
fn stored_as(values: &[&Secret]) -> &'static str {
    let present: Vec<&&Secret> = values.iter().filter(|v| !v.is_empty()).collect();
    if present.is_empty() {
        "-"
    } else if present.iter().all(|v| security::is_sealed(v.expose())) {
        "sealed"
    } else if present.iter().any(|v| security::is_sealed(v.expose())) {
        "partly sealed"
    } else {
        "plain"
    }
}

async fn list(store: Arc<dyn Store>, cfg: &Config, at_rest: AtRest) -> Result<(), CliError> {
    let corps = store.list_corps().await.map_err(CliError::store("reading corplist"))?;
    let keys = store.list_corp_keys().await.map_err(CliError::store("reading corp_keys"))?;
    let fp = |place: String, text: &Secret| match at_rest.reveal(&place, text) {
        Ok(plain) => match parse_private_key(plain.expose().as_bytes()) {
            Ok(k) => k.fingerprint(),
            Err(_) => "INVALID".to_string(),
        },
        Err(_) => "UNREADABLE".to_string(),
    };
    let mut table =
        vec![["corpid", "source", "name", "status", "limits", "timeout", "stored", "keys"].map(String::from).to_vec()];
    let mut problems = Vec::new();
    for c in &corps {
        let mine: Vec<&(String, u32, Secret)> = keys.iter().filter(|(id, _, _)| *id == c.corpid).collect();
        let mut k: Vec<String> = mine
            .iter()
            .map(|(_, ver, pem)| format!("v{ver}={}", fp(security::key_place(&c.corpid, *ver), pem)))
            .collect();
        if !c.prikey.is_empty() {
            k.push(format!("fallback={}", fp(security::prikey_place(&c.corpid), &c.prikey)));
        }
        if let Err(e) = at_rest.reveal(&security::secret_place(&c.corpid), &c.secret) {
            problems.push(format!("{}: {e}", c.corpid));
        }
        let status = match c.status {
            1 => "enabled".to_string(),
            0 => "disabled".to_string(),
            other => format!("status {other}"),
        };
        let mut stored: Vec<&Secret> = vec![&c.secret, &c.prikey];
        stored.extend(mine.iter().map(|(_, _, pem)| pem));
        table.push(vec![
            c.corpid.clone(),
            CorpSource::Table.to_string(),
            c.corpname.clone(),
            status,
            c.limits.to_string(),
            c.timeout.to_string(),
            stored_as(&stored).to_string(),
            if k.is_empty() { "-".into() } else { k.join(" ") },
        ]);
    }
    if !cfg.corps.file.as_os_str().is_empty() {
        let defaults = Defaults {
            limit: cfg.pull.limit.clamp(1, MAX_LIMIT),
            timeout: SdkTimeout::from_secs(cfg.sdk.timeout.as_secs()),
        };
        match corps::from_file(&cfg.corps.file, defaults) {
            Ok(candidates) => {
                for c in candidates {
                    let status = if c.enabled { "enabled" } else { "disabled" }.to_string();
                    let row = match &c.spec {
                        Ok(spec) => {
                            let ring = &spec.keyring;
                            let k: Vec<String> = ring
                                .versions()
                                .into_iter()
                                .filter_map(|v| ring.key_for(v).map(|key| format!("v{v}={}", key.fingerprint())))
                                .collect();
                            vec![
                                spec.name.clone(),
                                status,
                                spec.limit.to_string(),
                                spec.timeout.secs().to_string(),
                                "file".to_string(),
                                if k.is_empty() { "-".into() } else { k.join(" ") },
                            ]
                        }
                        Err(e) => {
                            problems.push(format!("{}: {e}", c.corpid));
                            vec![String::new(), status, "-".into(), "-".into(), "file".into(), "INVALID".into()]
                        }
                    };
                    let mut line = vec![c.corpid.clone(), CorpSource::File.to_string()];
                    line.extend(row);
                    table.push(line);
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let widths: Vec<usize> = (0..8).map(|i| table.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for r in &table {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| if i == 7 { cell.clone() } else { format!("{cell:<w$}") })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    for p in problems {
        println!("problem: {p}");
    }
    Ok(())
}

async fn set_status(store: Arc<dyn Store>, cfg: &Config, corpid: CorpId, status: i32) -> Result<(), CliError> {
    if find(store.as_ref(), &corpid).await?.is_none() {
        let hint = format!("set `enabled = {}` in its [[corp]] entry there", status == 1);
        return Err(not_in_table(cfg, &corpid, &hint));
    }
    store.set_corp_status(&corpid, status).await.map_err(CliError::store(format!("updating corp {corpid}")))?;
    println!("corp {corpid} {}", if status == 1 { "enabled" } else { "disabled" });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn set_key(
    store: Arc<dyn Store>,
    cfg: &Config,
    at_rest: &AtRest,
    corpid: CorpId,
    ver: u32,
    key: ValidKey,
    file: &Path,
) -> Result<(), CliError> {
    if find(store.as_ref(), &corpid).await?.is_none() {
        let path = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
        let hint = format!(
            "its keys live in that file; add this entry under the corp's [[corp]] (the running daemon picks the \
             edit up by itself, then `redecrypt --corp {corpid}` retries its undecryptable rows):\n\n[[corp.key]]\n\
             ver = {ver}\nfile = \"{}\"\n\n(key {})",
            path.display(),
            describe(&key.key)
        );
        return Err(not_in_table(cfg, &corpid, &hint));
    }
    let text = protect(at_rest, &security::key_place(corpid.as_str(), ver), &key.text)?;
    store
        .put_corp_key(&corpid, ver, &text)
        .await
        .map_err(CliError::store(format!("storing key {ver} of corp {corpid}")))?;
    println!("corp {corpid} key version {ver}: {}", describe(&key.key));
    Ok(())
}

async fn rotate_secret(
    store: Arc<dyn Store>,
    cfg: &Config,
    at_rest: &AtRest,
    corpid: CorpId,
    secret: Secret,
) -> Result<(), CliError> {
    let Some(mut row) = find(store.as_ref(), &corpid).await? else {
        return Err(not_in_table(cfg, &corpid, "change its `secret` there"));
    };
    row.secret = protect(at_rest, &security::secret_place(corpid.as_str()), &secret)?;
    store.upsert_corp(&row).await.map_err(CliError::store(format!("storing corp {corpid}")))?;
    let how = if at_rest.key_id().is_some() { "stored encrypted" } else { "stored as plaintext (no master key)" };
    println!("corp {corpid}: new secret {how}; a running daemon restarts the corp with it at its next reload");
    Ok(())
}

async fn set_callback(
    store: Arc<dyn Store>,
    cfg: &Config,
    at_rest: &AtRest,
    corpid: CorpId,
    values: Option<(Secret, Secret)>,
) -> Result<(), CliError> {
    if find(store.as_ref(), &corpid).await?.is_none() {
        return Err(not_in_table(cfg, &corpid, "set its `callback_token` and `encoding_aes_key` there"));
    }
    let Some((token, key)) = values else {
        let removed = store
            .delete_corp_callback(&corpid)
            .await
            .map_err(CliError::store(format!("removing the callback settings of corp {corpid}")))?;
        println!("corp {corpid}: callback settings {}", if removed { "removed" } else { "were not set" });
        return Ok(());
    };
    let token = protect(at_rest, &crate::callback::token_place(corpid.as_str()), &token)?;
    let key = protect(at_rest, &crate::callback::aes_key_place(corpid.as_str()), &key)?;
    store
        .put_corp_callback(&corpid, &token, &key)
        .await
        .map_err(CliError::store(format!("storing the callback settings of corp {corpid}")))?;
    let how = if at_rest.key_id().is_some() { "stored encrypted" } else { "stored as plaintext (no master key)" };
    println!("corp {corpid}: callback settings {how}; a running daemon uses them at its next reload");
    Ok(())
}

async fn encrypt_existing(store: Arc<dyn Store>, at_rest: AtRest) -> Result<(), CliError> {
    // Seal one value, and prove it opens again before anything is written.
    let seal = |place: String, value: &Secret| -> Result<Option<Secret>, CliError> {
        if value.is_empty() || security::is_sealed(value.expose()) {
            return Ok(None);
        }
        let sealed = protect(&at_rest, &place, value)?;
        match at_rest.reveal(&place, &sealed) {
            Ok(back) if back == *value => Ok(Some(sealed)),
            _ => Err(CliError::Runtime(format!("{place}: the sealed value does not open again; nothing written"))),
        }
    };
    let (mut values, mut corps_changed) = (0, 0);
    for mut row in store.list_corps().await.map_err(CliError::store("reading corplist"))? {
        let secret = seal(security::secret_place(&row.corpid), &row.secret)?;
        let prikey = seal(security::prikey_place(&row.corpid), &row.prikey)?;
        if secret.is_none() && prikey.is_none() {
            continue;
        }
        values += usize::from(secret.is_some()) + usize::from(prikey.is_some());
        if let Some(s) = secret {
            row.secret = s;
        }
        if let Some(k) = prikey {
            row.prikey = k;
        }
        store.upsert_corp(&row).await.map_err(CliError::store(format!("storing corp {}", row.corpid)))?;
        corps_changed += 1;
    }
    for (corpid, ver, pem) in store.list_corp_keys().await.map_err(CliError::store("reading corp_keys"))? {
        if let Some(sealed) = seal(security::key_place(&corpid, ver), &pem)? {
            store
                .put_corp_key(&self::corpid(&corpid)?, ver, &sealed)
                .await
                .map_err(CliError::store(format!("storing key {ver} of corp {corpid}")))?;
            values += 1;
        }
    }
    println!(
        "sealed {values} plaintext value(s) of {corps_changed} corplist row(s) and corp_keys with master key {}",
        at_rest.key_id().unwrap_or("-")
    );
    Ok(())
}
