//! An `audit export` file (JSON Lines, one [`AccessEntry`] per line, every field, by id) verified
//! offline, without the database: the same [`Verifier`] as the stored log, with the file's last
//! entry as the head (an export holds the whole log as it was), and the same anchors. A problem
//! names the line of the file as well as the entry.

use std::io::BufRead;

use super::access_log::{Anchor, Break, Intact, Verifier, GENESIS};
use crate::store::{AccessEntry, AccessLogHead};

/// Why an export file did not verify.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("reading the export failed")]
    Read(#[from] std::io::Error),
    /// A line that is not an access-log entry.
    #[error("line {line} is not an access-log entry: {source}")]
    NotAnEntry {
        /// 1-based line number.
        line: u64,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The chain is broken at `line` (0: at the end of the file).
    #[error("{}: {reason}", where_(*line))]
    Broken {
        /// 1-based line number of the broken entry (0: found at the end).
        line: u64,
        /// What is broken.
        reason: Break,
    },
}

fn where_(line: u64) -> String {
    if line == 0 {
        "at the end of the file".into()
    } else {
        format!("line {line}")
    }
}

impl FileError {
    /// Worth trying again: never (the file says what it says).
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Verifies the export read from `file`, checking `anchors` too. Blank lines are skipped.
pub fn verify(file: impl BufRead, anchors: &[Anchor]) -> Result<Intact, FileError> {
    let mut v = Verifier::anchored(anchors);
    let mut head = AccessLogHead { n: 0, hash: GENESIS.to_string() };
    for (i, line) in file.lines().enumerate() {
        let (line, n) = (line?, i as u64 + 1);
        if line.trim().is_empty() {
            continue;
        }
        let e: AccessEntry = serde_json::from_str(&line).map_err(|source| FileError::NotAnEntry { line: n, source })?;
        v.push(&e).map_err(|reason| FileError::Broken { line: n, reason })?;
        head = AccessLogHead { n: e.id, hash: e.hash };
    }
    v.finish(&head).map_err(|reason| FileError::Broken { line: 0, reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::review::access_log::seal;

    fn export(n: u64) -> String {
        let mut prev = GENESIS.to_string();
        let mut out = String::new();
        for id in 1..=n {
            let mut e = AccessEntry {
                id,
                at_ms: id as i64,
                username: "u".into(),
                role: "reviewer".into(),
                action: "read_message".into(),
                corpid: None,
                target: format!("msg{id}"),
                detail: "{}".into(),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            e.hash = seal(&e);
            prev.clone_from(&e.hash);
            out.push_str(&serde_json::to_string(&e).unwrap());
            out.push('\n');
        }
        out
    }

    #[test]
    fn an_export_verifies_and_an_edited_line_is_named() {
        let text = export(5);
        let ok = verify(text.as_bytes(), &[]).unwrap();
        assert_eq!((ok.checked, ok.last_id), (5, 5));
        let anchor = Anchor { id: 5, hash: ok.head_hash.clone() };
        assert!(verify(text.as_bytes(), std::slice::from_ref(&anchor)).is_ok());
        let edited = text.replacen("msg3", "msgX", 1);
        let e = verify(edited.as_bytes(), &[]).unwrap_err();
        assert!(matches!(e, FileError::Broken { line: 3, reason: Break::Edited { id: 3 } }), "{e}");
        assert!(e.to_string().starts_with("line 3: entry 3 was edited"), "{e}");
        let cut: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
        let e = verify(cut.as_bytes(), &[anchor]).unwrap_err();
        assert!(matches!(e, FileError::Broken { line: 0, reason: Break::Anchor { id: 5 } }), "{e}");
        let e = verify("{\"id\":1}\n".as_bytes(), &[]).unwrap_err();
        assert!(e.to_string().starts_with("line 1 is not an access-log entry"), "{e}");
    }
}
