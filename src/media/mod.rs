//! Media: what happens to an attachment after its record is stored.
//!
//! - [`sniff`] tells a file's real type from its first bytes (the extension and whether it is
//!   voice to transcode);
//! - [`download`] streams one claimed item into a verified file under the media root;
//! - [`transcode`] turns AMR-NB and SILK v3 voice into MP3 in-process (libavcodec only: never
//!   libavformat, see DESIGN.md's note on the vendor SDK);
//!
//! These are plain functions, testable without an actor system; `actors::media` is the glue.

pub mod download;
pub mod sniff;
pub mod transcode;
