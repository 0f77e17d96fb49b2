//! The `corplist` / `corp_keys` tables as a corp source: every row becomes a [`Candidate`]
//! (enabled when `status = 1`); sealed secrets and keys are opened with [`AtRest`]. A corp's
//! `corp_callback` row (side table) gives its callback settings (`crate::callback`).

use std::collections::HashMap;

use super::{limit_or, timeout_or, Candidate, CorpSource, CorpSpec, Defaults, SourceError};
use crate::crypto::{self, Keyring};
use crate::secret::Secret;
use crate::security::{self, AtRest};
use crate::store::{CorpId, CorpRow, Store};

/// Every corp of `corplist` (enabled or not), with its `corp_keys`; sealed secrets and keys are
/// opened with `at_rest` (a value that does not open is an error for that corp only).
pub async fn from_table(
    store: &dyn Store,
    defaults: Defaults,
    at_rest: &AtRest,
) -> Result<Vec<Candidate>, SourceError> {
    let rows = store.list_corps().await?;
    let keys = store.list_corp_keys().await?;
    // A database not migrated by this version (read by `doctor` or `status` without migrating)
    // has no corp_callback table: no callbacks, rather than no corps.
    let callbacks: HashMap<String, crate::store::CorpCallbackRow> = match store.list_corp_callbacks().await {
        Ok(rows) => rows.into_iter().map(|r| (r.corpid.clone(), r)).collect(),
        Err(e) if missing_table(&e.to_string()) => HashMap::new(),
        Err(e) => return Err(e.into()),
    };
    let mut by_corp: HashMap<String, Vec<(u32, Secret)>> = HashMap::new();
    for (corpid, ver, pem) in keys {
        by_corp.entry(corpid).or_default().push((ver, pem));
    }
    let mut out = Vec::new();
    for row in rows {
        let spec = (|| {
            let corpid = CorpId::new(&row.corpid).map_err(|e| e.to_string())?;
            let keyring =
                table_keyring(&row, by_corp.get(&row.corpid).map(Vec::as_slice).unwrap_or_default(), at_rest)?;
            let secret =
                at_rest.reveal(&security::secret_place(&row.corpid), &row.secret).map_err(|e| e.to_string())?;
            let callback = match callbacks.get(&row.corpid) {
                Some(cb) => table_callback(cb, at_rest)?,
                None => None,
            };
            Ok(CorpSpec::new(
                corpid,
                row.corpname.clone(),
                secret,
                limit_or(i64::from(row.limits), defaults),
                timeout_or(i64::from(row.timeout), defaults),
                keyring,
            )
            .with_update_requested(row.update != 0)
            .with_source(CorpSource::Table)
            .with_callback(callback))
        })();
        out.push(Candidate { corpid: row.corpid, source: CorpSource::Table, enabled: row.status == 1, spec });
    }
    Ok(out)
}

/// The error of a query on a table that does not exist (MySQL/MariaDB and SQLite wording).
fn missing_table(error: &str) -> bool {
    error.contains("corp_callback") && (error.contains("doesn't exist") || error.contains("no such table"))
}

/// The callback settings of a `corp_callback` row (sealed values opened with `at_rest`); the
/// error names the column, never the value.
pub fn table_callback(
    row: &crate::store::CorpCallbackRow,
    at_rest: &AtRest,
) -> Result<Option<crate::callback::CallbackKeys>, String> {
    let token = at_rest.reveal(&crate::callback::token_place(&row.corpid), &row.token).map_err(|e| e.to_string())?;
    let key = at_rest
        .reveal(&crate::callback::aes_key_place(&row.corpid), &row.encoding_aes_key)
        .map_err(|e| e.to_string())?;
    crate::callback::CallbackKeys::from_settings(Some(&token), Some(&key)).map_err(|e| {
        let column = if e.key() == "callback_token" { "token" } else { "encoding_aes_key" };
        format!("corp_callback.{column}: {e}")
    })
}

/// The keyring of a `corplist` row: `keys` (its `corp_keys` rows, `(publickey_ver, prikey)`) by
/// version, `corplist.prikey` as the fallback (ARCHITECTURE.md decision 5); sealed keys are opened
/// with `at_rest`. The pipeline and the `redecrypt` command both build keyrings only through
/// this function.
pub fn table_keyring(row: &CorpRow, keys: &[(u32, Secret)], at_rest: &AtRest) -> Result<Keyring, String> {
    let mut keyring = Keyring::new();
    if !row.prikey.is_empty() {
        let text = at_rest.reveal(&security::prikey_place(&row.corpid), &row.prikey).map_err(|e| e.to_string())?;
        let key = crypto::keys::parse_private_key_shared(text.expose().as_bytes())
            .map_err(|e| format!("corplist.prikey: {e}"))?;
        keyring.set_fallback(key);
    }
    for (ver, pem) in keys {
        let text = at_rest.reveal(&security::key_place(&row.corpid, *ver), pem).map_err(|e| e.to_string())?;
        let key = crypto::keys::parse_private_key_shared(text.expose().as_bytes())
            .map_err(|e| format!("corp_keys publickey_ver {ver}: {e}"))?;
        keyring.insert(*ver, key);
    }
    Ok(keyring)
}
