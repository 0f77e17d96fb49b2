//! [`TempFile`]: the one kind of temporary file of the media path. A file in flight (a partial
//! download, an MP3 being written, a local copy waiting for its upload) is removed when its
//! `TempFile` is dropped — on every error path, and on a panic that unwinds — unless it was
//! [persisted](TempFile::persist) (renamed into its final place). What a killed process leaves
//! behind sits in the instance's temp directory and is removed at the next start
//! ([`super::download::clean_temp`]).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

/// A file removed on drop unless persisted.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    /// False once persisted (nothing to remove).
    armed: bool,
}

impl TempFile {
    /// Creates `path` (owner-only, 0600: media are chat content), truncating what a killed
    /// process may have left under that name; the file is open for writing.
    pub fn create(path: PathBuf) -> io::Result<(TempFile, File)> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path)?;
        Ok((TempFile { path, armed: true }, file))
    }

    /// Takes charge of an existing file, which is removed on drop (a local copy that lives only
    /// until it is uploaded).
    pub fn adopt(path: PathBuf) -> TempFile {
        TempFile { path, armed: true }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file to `dest` (atomic within one filesystem); from then on it is kept. On
    /// failure the file is still removed on drop.
    pub fn persist(mut self, dest: &Path) -> io::Result<()> {
        fs::rename(&self.path, dest)?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_on_drop_kept_once_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let (t, mut f) = TempFile::create(dir.path().join("a.part")).unwrap();
        io::Write::write_all(&mut f, b"x").unwrap();
        let p = t.path().to_path_buf();
        assert!(p.exists());
        drop(t);
        assert!(!p.exists(), "dropped: removed");

        let (t, _f) = TempFile::create(dir.path().join("b.part")).unwrap();
        let dest = dir.path().join("b.final");
        t.persist(&dest).unwrap();
        assert!(dest.exists(), "persisted: kept under the final name");

        let (t, _f) = TempFile::create(dir.path().join("c.part")).unwrap();
        let p = t.path().to_path_buf();
        assert!(t.persist(&dir.path().join("no/such/dir/c")).is_err());
        assert!(!p.exists(), "a failed persist still removes the file");

        std::fs::write(dir.path().join("copy"), b"y").unwrap();
        drop(TempFile::adopt(dir.path().join("copy")));
        assert!(!dir.path().join("copy").exists(), "an adopted file is removed on drop");
    }

    #[test]
    fn owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let (t, _f) = TempFile::create(dir.path().join("m")).unwrap();
        assert_eq!(fs::metadata(t.path()).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
