//! Everything the binary creates is for its own user only: after a real `demo` run (the full
//! pipeline with media downloads and voice transcoding, into a SQLite file), started with the
//! permissive umask 022 that supervisord used to set, the SQLite database and its -wal/-shm,
//! every media file (0600) and every media directory — the dated ones and the instance's temp
//! directory — (0700) allow nothing to group or others.

use crate::common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn demo_creates_database_media_and_temp_files_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("demo.db");
    // The parent shell's umask is inherited by the child; 022 is what the old supervisord
    // setting gave the daemon. `umask` is a shell builtin, hence sh -c.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 022 && exec '{}' demo --duration 4s --db '{}'",
            env!("CARGO_BIN_EXE_wework-msgaudit"),
            db.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "demo failed: {}", String::from_utf8_lossy(&out.stderr));

    let mut checked_files = 0;
    for suffix in ["", "-wal", "-shm"] {
        let p = dir.path().join(format!("demo.db{suffix}"));
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
            checked_files += 1;
        }
    }
    assert!(checked_files >= 1, "the database exists");

    let root = dir.path().join("msgfile");
    assert_eq!(mode(&root), 0o700, "media root");
    let mut dirs = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
                dirs.push(p);
            }
        }
    }
    let files = common::files_under(&root);
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "mp3")), "voice was transcoded: {files:?}");
    for d in &dirs {
        assert_eq!(mode(d), 0o700, "directory {}", d.display());
    }
    for f in &files {
        assert_eq!(mode(f), 0o600, "file {}", f.display());
    }
    let temp: Vec<&std::path::PathBuf> =
        dirs.iter().filter(|d| d.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))).collect();
    assert!(!temp.is_empty(), "the instance's temp directory exists: {dirs:?}");
    let dated = dirs.iter().filter(|d| d.strip_prefix(&root).unwrap().components().count() == 4).count();
    assert!(dated > 0, "dated <corpid>/<yyyy>/<mm>/<dd> directories: {dirs:?}");
    eprintln!("checked {} directories and {} files: all owner-only", dirs.len(), files.len() + checked_files);
}
