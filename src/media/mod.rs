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
/// DESIGN.md decision 8). The MP3 is written in `temp_dir` (under `root`: the instance's media
/// temp directory, emptied at start-up) and renamed into place, so a process killed meanwhile
/// leaves no stray file among the media.
pub fn transcode_beside(
    root: &Path,
    rel: &str,
    temp_dir: &Path,
    opts: &transcode::Mp3Options,
) -> Result<String, String> {
    let mp3_rel = match rel.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() && !stem.ends_with('/') => format!("{stem}.mp3"),
        _ => format!("{rel}.mp3"),
    };
    if mp3_rel == rel {
        return Err("the original is already an .mp3".into());
    }
    std::fs::create_dir_all(temp_dir).map_err(|e| format!("create {}: {e}", temp_dir.display()))?;
    transcode::transcode_file_via(&root.join(rel), &root.join(&mp3_rel), Some(temp_dir), opts)
        .map_err(|e| e.to_string())?;
    Ok(mp3_rel)
}
