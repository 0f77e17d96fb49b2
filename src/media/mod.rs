//! Media: what happens to an attachment after its record is stored.
//!
//! - [`sniff`] tells a file's real type from its first bytes (the extension and whether it is
//!   voice to transcode);
//! - [`download`] streams one claimed item into a verified file under the media root;
//! - [`transcode`] turns AMR-NB and SILK v3 voice into MP3 in-process (libavcodec only: never
//!   libavformat, see docs/sdk-facts.md §2);
//! - [`object_store`] uploads finished files to S3-compatible storage (`[media] backend = "s3"`);
//! - [`tmp_file::TempFile`] is every file in flight (a partial download, an MP3 being written, a
//!   local copy waiting for its upload): removed on drop unless renamed into place.
//!
//! These are plain functions, testable without an actor system; `actors::media` is the glue.

pub mod download;
pub mod object_store;
pub mod sniff;
pub mod tmp_file;
pub mod transcode;

use std::path::Path;

/// Transcodes the voice file `rel` (relative to `root`) to an MP3 beside it (same stem), at
/// `opts`; returns the MP3's relative path, or why it failed (the original is kept either way:
/// ARCHITECTURE.md decision 8). The MP3 is written in `temp_dir` (under `root`: the instance's media
/// temp directory, emptied at start-up) and renamed into place, so a process killed meanwhile
/// leaves no stray file among the media.
pub fn transcode_beside(
    root: &Path,
    rel: &str,
    temp_dir: &Path,
    opts: &transcode::Mp3Options,
) -> Result<String, String> {
    let mp3_rel = mp3_beside(rel)?;
    std::fs::create_dir_all(temp_dir).map_err(|e| format!("create {}: {e}", temp_dir.display()))?;
    transcode::transcode_file_via(&root.join(rel), &root.join(&mp3_rel), Some(temp_dir), opts)
        .map_err(|e| e.to_string())?;
    Ok(mp3_rel)
}

/// The MP3's path beside the original `rel` (same stem, `.mp3`), relative to the media root; an
/// error when the original is an `.mp3` itself.
pub fn mp3_beside(rel: &str) -> Result<String, String> {
    let mp3_rel = match rel.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() && !stem.ends_with('/') => format!("{stem}.mp3"),
        _ => format!("{rel}.mp3"),
    };
    if mp3_rel == rel {
        return Err("the original is already an .mp3".into());
    }
    Ok(mp3_rel)
}

/// Largest MP3 [`adopt_beside`] reads (10 minutes at 320 kbit/s is 24 MB).
const MAX_MP3_BYTES: u64 = 64 * 1024 * 1024;

/// What [`adopt_beside`] found beside an original whose transcode was cut off (the row still
/// says "interrupted").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// A complete MP3 ([`transcode::check_mp3`]): its relative path, to record.
    Complete(String),
    /// No MP3: the transcode did not reach its rename. Left alone: a transcoder that kills the
    /// process must not be retried at every start.
    Missing,
    /// An MP3 that failed the check was removed and the voice transcoded again: why it was
    /// removed, and the new result (the MP3's path or why it failed).
    Redone {
        /// Why the old file was removed.
        reason: String,
        /// The new transcode.
        result: Result<String, String>,
    },
    /// An MP3 that failed the check was removed; transcoding is off, so nothing replaces it.
    Removed {
        /// Why it was removed.
        reason: String,
    },
    /// The MP3 could not be read or removed (permissions, I/O): left as it is.
    Unreadable(String),
}

/// At start-up, for a voice original `rel` whose row still carries the "interrupted" transcode
/// marker: a process killed between the MP3's rename and the row update left a complete MP3
/// beside it, which is adopted after [`transcode::check_mp3`] passes. One that fails the check
/// (cut short or damaged by anything outside the transcoder, which only ever renames complete
/// files into place) is removed and, with `redo`, made again. Removing it first means that a
/// transcoder that kills the process while redoing it leaves [`Adoption::Missing`] for the next
/// start: it is never retried in a loop.
pub fn adopt_beside(root: &Path, rel: &str, temp_dir: &Path, opts: &transcode::Mp3Options, redo: bool) -> Adoption {
    let Ok(mp3_rel) = mp3_beside(rel) else { return Adoption::Missing };
    let path = root.join(&mp3_rel);
    let bytes = match std::fs::File::open(&path) {
        Ok(f) => {
            let mut bytes = Vec::new();
            match std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_MP3_BYTES + 1), &mut bytes) {
                Ok(_) => bytes,
                Err(e) => return Adoption::Unreadable(format!("read {}: {e}", path.display())),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Adoption::Missing,
        Err(e) => return Adoption::Unreadable(format!("open {}: {e}", path.display())),
    };
    let reason = match transcode::check_mp3(&bytes) {
        Ok(_) => return Adoption::Complete(mp3_rel),
        Err(e) => e.to_string(),
    };
    if let Err(e) = std::fs::remove_file(&path) {
        return Adoption::Unreadable(format!("remove {} ({reason}): {e}", path.display()));
    }
    if redo {
        Adoption::Redone { reason, result: transcode_beside(root, rel, temp_dir, opts) }
    } else {
        Adoption::Removed { reason }
    }
}
