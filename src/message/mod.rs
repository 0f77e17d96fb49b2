//! Decrypted records: from the record JSON to what the daemon stores.
//!
//! A decrypted record is one JSON object, the source of truth (message-format.md). This module is
//! pure (no I/O, no async, no actors): [`parse_record`] turns one record into the [`Row`] of
//! `message_<corpid>` and the [`MediaRef`]s of `media_<corpid>`; [`undecryptable`] makes the row
//! of a record that could not be decrypted. Reading is tolerant: raw control characters, invalid
//! escapes, numbers beyond u64 and hostile nesting are handled in a parse copy, while the original
//! text is what gets stored (`msgdata`). Nothing here fails or panics on any input.
//!
//! [`summarize`] is the quick look used by `demo`.

mod lenient;
mod media;
mod record;
mod sanitize;
mod summary;

/// Tolerant JSON reading of a stored record (the search extractor reads `msgdata` with it).
pub(crate) use lenient::parse as parse_lenient;
pub use lenient::MAX_JSON_DEPTH;
pub use media::{MediaKind, MediaRef, MAX_NESTING_DEPTH};
pub use record::{parse_record, undecryptable, Parsed, Row, NOT_JSON_PREFIX, NOT_UTF8_ERROR};
pub use sanitize::{sanitize_file_component, MAX_EXT_BYTES, MAX_FILENAME_BYTES};
pub use summary::{sanitize_for_parse, summarize, Summary};
