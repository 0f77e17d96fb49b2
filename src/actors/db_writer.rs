//! [`DbWriter`]: the one actor that writes record batches (ARCHITECTURE.md decision 10).
//!
//! [`WriteBatch`] → [`Store::write_batch`]: rows, media rows, rule hits and the new cursor in ONE
//! transaction. The actor never waits for a batch before taking the next message: each batch
//! runs as its own future on the arbiter, so batches of different corps commit concurrently (the
//! store's connection pool bounds the parallelism), and a failing batch fails only the corp
//! that sent it, which gets the error back.
//!
//! A batch refused for a reason retrying cannot fix (a non-retryable [`StoreError`]) is written
//! again record by record with [`store::write_isolating`]: the refused record is stored
//! quarantined and the corp moves on instead of stalling on a poison record. A batch refused
//! even so (or failing with a retryable error every time) goes back to the corp, which marks
//! itself failing after `[daemon] failing_after` refusals in a row and
//! then retries only every `backoff_max`. Batches too large for the database's packet never get
//! here: the store cuts them by bytes and moves oversized values into `message_part`.
//!
//! [`Store::write_batch`]: crate::store::BatchRepo::write_batch

use std::sync::Arc;

use actix::prelude::*;

use crate::store::{self, BatchHits, BatchOutcome, CorpId, Fence, MediaItem, Row, Store, StoreError};

/// Store one page of a corp and move its cursor, in one transaction.
#[derive(Debug, Message)]
#[rtype(result = "Result<Committed, StoreError>")]
pub struct WriteBatch {
    /// The corp.
    pub corpid: CorpId,
    /// Message rows.
    pub rows: Vec<Row>,
    /// Media rows.
    pub media: Vec<MediaItem>,
    /// The rule hits of the rows (`crate::rules`), written in the same transaction.
    pub hits: BatchHits,
    /// The cursor after this batch (the page's max seq).
    pub new_cursor: u64,
    /// The corp's lease, when leases are on: checked inside the batch transaction.
    pub fence: Option<Fence>,
}

/// A committed batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The cursor now stored.
    pub seq: u64,
    /// What was inserted (duplicates excluded).
    pub outcome: BatchOutcome,
}

/// The database writer actor.
#[derive(Debug)]
pub struct DbWriter {
    store: Arc<dyn Store>,
}

impl DbWriter {
    /// A writer over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

impl Actor for DbWriter {
    type Context = Context<Self>;
}

impl Handler<WriteBatch> for DbWriter {
    type Result = ResponseFuture<Result<Committed, StoreError>>;

    fn handle(&mut self, msg: WriteBatch, _ctx: &mut Self::Context) -> Self::Result {
        let store = Arc::clone(&self.store);
        // `ResponseFuture` is spawned on the arbiter by actix: concurrent, not serialised. The
        // span gives every line logged inside (ours and the database driver's) the corpid.
        let span = tracing::info_span!("write", corpid = %msg.corpid);
        Box::pin(tracing::Instrument::instrument(
            async move {
                let outcome = match store
                    .write_batch_with_hits(
                        &msg.corpid,
                        &msg.rows,
                        &msg.media,
                        &msg.hits,
                        msg.new_cursor,
                        msg.fence.as_ref(),
                    )
                    .await
                {
                    Ok(o) => o,
                    Err(e) if e.is_retryable() || matches!(e, StoreError::Fenced { .. }) => return Err(e),
                    Err(e) => {
                        tracing::warn!(corpid = %msg.corpid, error = %e, "a batch was refused; isolating the refused records");
                        store::write_isolating(
                            &*store,
                            &msg.corpid,
                            &msg.rows,
                            &msg.media,
                            &msg.hits,
                            msg.new_cursor,
                            msg.fence.as_ref(),
                        )
                        .await?
                    }
                };
                Ok(Committed { seq: msg.new_cursor, outcome })
            },
            span,
        ))
    }
}
