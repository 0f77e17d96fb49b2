//! `wework-msgaudit-sdk-worker sdk-worker --library PATH --channel-fd 3`: the lean program of the
//! daemon's `sdk-worker` children ([`wework_msgaudit::sdk::process`]). It does what the daemon's
//! hidden `sdk-worker` subcommand does ([`wework_msgaudit::sdk::worker::serve`]) from a binary
//! that links only what the vendor library needs: no FFmpeg, no TLS stack, no database drivers.
//! An exec of the daemon's own binary maps ~100 shared libraries (24 ms of CPU); this one maps a
//! handful (under 1 ms), and the daemon starts one child per SDK thread and media worker.
//!
//! The daemon finds it beside its own binary, opens it once at start and execs it through that
//! descriptor, so an upgrade that replaces the files on disk never pairs a running daemon with a
//! newer worker. Without it the daemon execs itself (`/proc/self/exe sdk-worker …`). Not meant to
//! be run by hand; it takes exactly the arguments of the subcommand.

#![deny(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use wework_msgaudit::sdk::process::{CHANNEL_FD, SUBCOMMAND};

/// The arguments: `[sdk-worker] --library PATH [--channel-fd N]`.
fn parse(mut args: impl Iterator<Item = std::ffi::OsString>) -> Result<(PathBuf, i32), String> {
    let (mut library, mut fd) = (None, CHANNEL_FD);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some(a) if a == SUBCOMMAND => {}
            Some("--library") => library = Some(PathBuf::from(args.next().ok_or("--library needs a path")?)),
            Some("--channel-fd") => {
                let v = args.next().ok_or("--channel-fd needs a number")?;
                fd = v.to_str().and_then(|v| v.parse().ok()).ok_or("--channel-fd needs a number")?;
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Ok((library.ok_or("--library is required")?, fd))
}

fn main() -> ExitCode {
    // As the daemon's binary: whatever the vendor library writes is for this user only.
    wework_msgaudit::sdk::os::set_umask(0o077);
    let (library, fd) = match parse(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!(
                "wework-msgaudit-sdk-worker: {e}\nusage: wework-msgaudit-sdk-worker {SUBCOMMAND} --library PATH \
                 --channel-fd N (started by the daemon, not by hand)"
            );
            return ExitCode::from(2);
        }
    };
    match wework_msgaudit::sdk::worker::serve(&library, fd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wework-msgaudit-sdk-worker: {e}");
            ExitCode::FAILURE
        }
    }
}
