//! The `wework-msgaudit` binary: parse the command line, set up logging, run, map errors to exit
//! codes. Everything else is in the library crate.

#![deny(unsafe_code)]

use clap::Parser;
use wework_msgaudit::cli::{self, Cli};

fn main() {
    // Chat content, corp secrets, private keys and media: everything this process creates (the
    // SQLite database and its -wal/-shm, media files and their directories, temp files, log
    // files) is for its own user only, whatever umask it was started with.
    wework_msgaudit::sdk::os::set_umask(0o077);
    let cli = Cli::parse();
    let (level, format) = cli::log_settings(&cli);
    wework_msgaudit::logging::init(&level, format);
    if let Err(e) = cli::run(cli) {
        // The error and every cause under it (`cli::report`).
        eprintln!("wework-msgaudit: {}", cli::report(&e));
        std::process::exit(e.exit_code());
    }
}
