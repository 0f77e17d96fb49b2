//! `wework-msgaudit-sdk-worker sdk-worker --library PATH --channel-fd 3`: the lean program of the
//! daemon's `sdk-worker` children ([`wework_msgaudit::sdk::process`]). It runs the daemon's hidden
//! `sdk-worker` subcommand ([`wework_msgaudit::cli::sdk_worker`], same arguments, same code) from a
//! binary that links only what the vendor library needs: no FFmpeg, no database drivers. An exec
//! of the daemon's own binary maps ~100 shared libraries (23 ms of CPU); this one maps a handful
//! (under 1 ms), and the daemon starts one child per SDK thread and media worker.
//!
//! The daemon finds it beside its own binary, opens it once at start and execs it through that
//! descriptor, so an upgrade that replaces the files on disk never pairs a running daemon with a
//! newer worker. Without it the daemon execs itself (`/proc/self/exe sdk-worker …`). Not meant to
//! be run by hand.

#![deny(unsafe_code)]

use clap::Parser;
use wework_msgaudit::cli::{self, sdk_worker};

/// The only command of this program: the daemon's `sdk-worker` subcommand.
#[derive(Debug, Parser)]
#[command(name = "wework-msgaudit-sdk-worker", about = "sdk-worker child of wework-msgaudit (started by the daemon)")]
enum Worker {
    /// Loads the vendor library and serves the daemon on the channel until it closes.
    SdkWorker(sdk_worker::SdkWorkerArgs),
}

fn main() {
    // As the daemon's binary: whatever the vendor library writes is for this user only.
    wework_msgaudit::sdk::os::set_umask(0o077);
    let Worker::SdkWorker(args) = Worker::parse();
    if let Err(e) = sdk_worker::run(&args) {
        eprintln!("wework-msgaudit-sdk-worker: {}", cli::report(&e));
        std::process::exit(e.exit_code());
    }
}
