//! The storage role of the callback settings of `corplist` corps (`crate::callback`):
//! [`CallbackRepo`] over the side table `corp_callback` (`callback_sql`), so that the Java
//! version's `corplist` keeps exactly its columns.

use async_trait::async_trait;

use super::{CorpId, StoreError};
use crate::secret::Secret;

/// A `corp_callback` row, as stored (values may be sealed, `crate::security`). Never prints the
/// values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpCallbackRow {
    /// The corp.
    pub corpid: String,
    /// The callback Token.
    pub token: Secret,
    /// The EncodingAESKey.
    pub encoding_aes_key: Secret,
}

/// The `corp_callback` table.
#[async_trait]
pub trait CallbackRepo: Send + Sync {
    /// Every row, by corpid.
    async fn list_corp_callbacks(&self) -> Result<Vec<CorpCallbackRow>, StoreError>;

    /// Inserts or replaces the row of `corpid`.
    async fn put_corp_callback(
        &self,
        corpid: &CorpId,
        token: &Secret,
        encoding_aes_key: &Secret,
    ) -> Result<(), StoreError>;

    /// Removes the row of `corpid`; whether there was one.
    async fn delete_corp_callback(&self, corpid: &CorpId) -> Result<bool, StoreError>;
}
