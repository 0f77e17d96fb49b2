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
pub mod object_store;
pub mod sniff;
pub mod transcode;

use std::path::Path;

/// Transcodes the voice file `rel` (relative to `root`) to an MP3 beside it (same stem), at
/// `opts`; returns the MP3's relative path, or why it failed (the original is kept either way:
/// DESIGN.md decision 8).
pub fn transcode_beside(root: &Path, rel: &str, opts: &transcode::Mp3Options) -> Result<String, String> {
    let mp3_rel = match rel.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() && !stem.ends_with('/') => format!("{stem}.mp3"),
        _ => format!("{rel}.mp3"),
    };
    if mp3_rel == rel {
        return Err("the original is already an .mp3".into());
    }
    transcode::transcode_file(&root.join(rel), &root.join(&mp3_rel), opts).map_err(|e| e.to_string())?;
    Ok(mp3_rel)
}
