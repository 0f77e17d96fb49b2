//! `redecrypt --corp ID`: retries the rows stored undecryptable (with their ciphertext) using the
//! corp's current keyring, e.g. after `corp set-key` added a missing key version.
//!
//! The keyring is the corp's as the pipeline reads it ([`corps::find`] over the configured sources:
//! the `corplist`/`corp_keys` tables or the corps file, enabled or disabled) and each
//! row goes through [`decode_record`] (the pipeline's decrypt + parse step). A row that now
//! decrypts is overwritten in one transaction ([`Store::replace_decrypted`]); a row that still
//! fails is left as it is. The Java version's `解密失败` rows have no ciphertext: they are
//! counted, never retried.
//!
//! [`Store::replace_decrypted`]: crate::store::BatchRepo::replace_decrypted

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::{with_store_of, CliError};
use crate::config::Config;
use crate::corps::{self, SourceError, Sources};
use crate::decode::{decode_record, Record};
use crate::sdk::chatdata::EncryptedRecord;
use crate::store::{CorpId, Store};

/// Rows read per page.
const PAGE: u32 = 200;

/// Arguments of `redecrypt`.
#[derive(Debug, Args)]
pub struct RedecryptArgs {
    /// The corpid whose undecryptable rows to retry.
    #[arg(long)]
    pub corp: String,
    /// The configuration file (the database URL comes from it; environment overrides apply).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// What a `redecrypt` run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Rows now decrypted and stored without error.
    pub recovered: u64,
    /// Rows that still carry a decrypt error (ciphertext kept).
    pub still: u64,
    /// Java-era rows without ciphertext (never retried).
    pub unrecoverable: u64,
    /// Why the `still` rows failed, with counts.
    pub reasons: BTreeMap<String, u64>,
}

impl Outcome {
    /// The summary line.
    pub fn summary(&self) -> String {
        let reasons = if self.reasons.is_empty() {
            "none".to_string()
        } else {
            self.reasons.iter().map(|(r, n)| format!("{n} × {r}")).collect::<Vec<_>>().join("; ")
        };
        format!(
            "recovered {}, still undecryptable {} (reasons: {reasons}); {} rows from the Java version have no \
             ciphertext and were skipped",
            self.recovered, self.still, self.unrecoverable
        )
    }
}

/// Runs `redecrypt`.
pub fn run(args: &RedecryptArgs) -> Result<(), CliError> {
    let corpid = CorpId::new(&args.corp).map_err(|e| CliError::config("--corp", e))?;
    let cfg = Config::load(args.config.as_deref())?;
    with_store_of(&cfg, |store| async {
        let sources = super::run::sources_from_config(&cfg, Some(Arc::clone(&store)));
        let outcome = redecrypt(store, &sources, &corpid).await?;
        println!("{}", outcome.summary());
        Ok(())
    })
}

/// Retries every undecryptable row of `corpid` that kept its ciphertext, with the keyring the
/// `sources` define for it.
pub async fn redecrypt(store: Arc<dyn Store>, sources: &Sources, corpid: &CorpId) -> Result<Outcome, CliError> {
    let keyring = match corps::find(sources, corpid).await {
        Ok(Some(Ok(spec))) => Arc::clone(&spec.keyring),
        Ok(Some(Err(e))) => return Err(CliError::Config(format!("corp {corpid}: {e}"))),
        Ok(None) => return Err(CliError::Config(format!("no corp {corpid} in corplist or the corps file"))),
        Err(SourceError::Table(e)) => return Err(CliError::store("reading corplist/corp_keys")(e)),
        Err(e) => return Err(CliError::runtime(format!("finding corp {corpid}"), e)),
    };
    if keyring.is_empty() {
        return Err(CliError::Config(format!("corp {corpid} has no key: add one with `corp set-key`")));
    }
    let mut outcome = Outcome::default();
    let mut after = 0;
    loop {
        let page = store
            .undecrypted(corpid, after, PAGE)
            .await
            .map_err(CliError::store(format!("reading undecryptable rows of {corpid}")))?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for u in page {
            let record = EncryptedRecord {
                seq: u.seq,
                msgid: u.msgid,
                publickey_ver: u.publickey_ver,
                encrypt_random_key: u.encrypt_random_key,
                encrypt_chat_msg: u.encrypt_chat_msg,
            };
            let Record { row, media, .. } = decode_record(&keyring, &record);
            match &row.decrypt_error {
                None => {
                    store
                        .replace_decrypted(corpid, u.id, &row, &media)
                        .await
                        .map_err(CliError::store("storing a decrypted row"))?;
                    outcome.recovered += 1;
                }
                Some(reason) => {
                    // Decrypted but not clean (decision 6): store what was read, ciphertext kept.
                    if !row.msgdata.is_empty() {
                        store
                            .replace_decrypted(corpid, u.id, &row, &media)
                            .await
                            .map_err(CliError::store("storing a decrypted row"))?;
                    }
                    outcome.still += 1;
                    *outcome.reasons.entry(reason_class(reason)).or_default() += 1;
                }
            }
        }
    }
    outcome.unrecoverable = store
        .count_unrecoverable(corpid)
        .await
        .map_err(CliError::store(format!("counting the Java version's rows of {corpid}")))?;
    Ok(outcome)
}

/// The reason without per-row details (numbers), so that equal causes group together.
fn reason_class(reason: &str) -> String {
    reason.split(':').next().unwrap_or(reason).trim().to_string()
}
