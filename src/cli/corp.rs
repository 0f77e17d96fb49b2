//! `corp add | list | enable | disable | set-key`: manage the `corplist` / `corp_keys` tables.
//!
//! Secrets are never taken as plain arguments (they would show in `ps`): `--secret-file` or
//! `--secret-env`. Keys are read from files and parsed with [`parse_private_key`] BEFORE anything
//! is saved; only their public fingerprints are ever printed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use clap::{Args, Subcommand};

use super::{store_error, with_store, CliError};
use crate::crypto::{parse_private_key, PrivateKey};
use crate::secret::Secret;
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
    /// SDK call timeout in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i32).range(1..=3600))]
    pub timeout: i32,
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
    // missing file or a bad key never opens (let alone changes) the database.
    match &args.command {
        CorpCommand::Add(a) => {
            let corpid = corpid(&a.corpid)?;
            let secret = read_secret(a)?;
            let key = match (&a.key_file, a.key_ver) {
                (Some(file), Some(ver)) => Some((ver, read_key(file)?)),
                _ => None,
            };
            with_store(args.config.as_deref(), |store| add(store, corpid, secret, a, key))
        }
        CorpCommand::List => with_store(args.config.as_deref(), list),
        CorpCommand::Enable { corpid: c } => {
            let c = corpid(c)?;
            with_store(args.config.as_deref(), |store| set_status(store, c, 1))
        }
        CorpCommand::Disable { corpid: c } => {
            let c = corpid(c)?;
            with_store(args.config.as_deref(), |store| set_status(store, c, 0))
        }
        CorpCommand::SetKey(a) => {
            let c = corpid(&a.corpid)?;
            let key = read_key(&a.key_file)?;
            with_store(args.config.as_deref(), |store| set_key(store, c, a.ver, key))
        }
    }
}

fn corpid(s: &str) -> Result<CorpId, CliError> {
    CorpId::new(s).map_err(|e| CliError::Config(e.to_string()))
}

fn read_secret(a: &AddArgs) -> Result<Secret, CliError> {
    let raw = match (&a.secret_file, &a.secret_env) {
        (Some(file), _) => std::fs::read_to_string(file)
            .map_err(|e| CliError::Config(format!("cannot read the secret file {}: {e}", file.display())))?,
        (None, Some(var)) => {
            std::env::var(var).map_err(|e| CliError::Config(format!("cannot read the secret from ${var}: {e}")))?
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
    let bytes = std::fs::read(file)
        .map_err(|e| CliError::Config(format!("cannot read the key file {}: {e}", file.display())))?;
    let key = parse_private_key(&bytes)
        .map_err(|e| CliError::Config(format!("the key in {} is not usable: {e}", file.display())))?;
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

async fn find(store: &dyn Store, corpid: &CorpId) -> Result<Option<CorpRow>, CliError> {
    Ok(store.list_corps().await.map_err(store_error)?.into_iter().find(|r| r.corpid == corpid.as_str()))
}

async fn add(
    store: Arc<dyn Store>,
    corpid: CorpId,
    secret: Secret,
    a: &AddArgs,
    key: Option<(u32, ValidKey)>,
) -> Result<(), CliError> {
    if find(store.as_ref(), &corpid).await?.is_some() {
        return Err(CliError::Config(format!(
            "corp {corpid} already exists (use `corp set-key`, `corp enable`, `corp disable`)"
        )));
    }
    let row = CorpRow {
        corpid: corpid.to_string(),
        secret,
        corpname: a.name.clone(),
        prikey: Secret::new(""),
        limits: a.limits,
        timeout: a.timeout,
        status: 1,
        update: 1,
    };
    store.upsert_corp(&row).await.map_err(store_error)?;
    println!("added corp {corpid} (enabled, limits {}, timeout {}s)", a.limits, a.timeout);
    if let Some((ver, key)) = key {
        store.put_corp_key(&corpid, ver, &key.text).await.map_err(store_error)?;
        println!("key version {ver}: {}", describe(&key.key));
    } else {
        println!("no key yet: add one with `corp set-key {corpid} --ver V --key-file PEM`");
    }
    Ok(())
}

fn describe(key: &PrivateKey) -> String {
    format!("RSA-{} fingerprint {}", key.bits(), key.fingerprint())
}

async fn list(store: Arc<dyn Store>) -> Result<(), CliError> {
    let corps = store.list_corps().await.map_err(store_error)?;
    let keys = store.list_corp_keys().await.map_err(store_error)?;
    let fp = |text: &Secret| match parse_private_key(text.expose().as_bytes()) {
        Ok(k) => k.fingerprint(),
        Err(_) => "INVALID".to_string(),
    };
    let mut table = vec![["corpid", "name", "status", "limits", "timeout", "keys"].map(String::from).to_vec()];
    for c in &corps {
        let mut k: Vec<String> = keys
            .iter()
            .filter(|(id, _, _)| *id == c.corpid)
            .map(|(_, ver, pem)| format!("v{ver}={}", fp(pem)))
            .collect();
        if !c.prikey.is_empty() {
            k.push(format!("fallback={}", fp(&c.prikey)));
        }
        let status = match c.status {
            1 => "enabled".to_string(),
            0 => "disabled".to_string(),
            other => format!("status {other}"),
        };
        table.push(vec![
            c.corpid.clone(),
            c.corpname.clone(),
            status,
            c.limits.to_string(),
            c.timeout.to_string(),
            if k.is_empty() { "-".into() } else { k.join(" ") },
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|i| table.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for r in &table {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (cell, w))| if i == 5 { cell.clone() } else { format!("{cell:<w$}") })
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    Ok(())
}

async fn set_status(store: Arc<dyn Store>, corpid: CorpId, status: i32) -> Result<(), CliError> {
    if find(store.as_ref(), &corpid).await?.is_none() {
        return Err(CliError::Config(format!("no corp {corpid} in corplist")));
    }
    store.set_corp_status(&corpid, status).await.map_err(store_error)?;
    println!("corp {corpid} {}", if status == 1 { "enabled" } else { "disabled" });
    Ok(())
}

async fn set_key(store: Arc<dyn Store>, corpid: CorpId, ver: u32, key: ValidKey) -> Result<(), CliError> {
    if find(store.as_ref(), &corpid).await?.is_none() {
        return Err(CliError::Config(format!("no corp {corpid} in corplist")));
    }
    store.put_corp_key(&corpid, ver, &key.text).await.map_err(store_error)?;
    println!("corp {corpid} key version {ver}: {}", describe(&key.key));
    Ok(())
}
