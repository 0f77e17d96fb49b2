//! The `wework-msgaudit` binary: parse the command line, set up logging, run, map errors to exit
//! codes. Everything else is in the library crate.

use clap::Parser;
use wework_msgaudit::cli::{self, Cli};

fn main() {
    let cli = Cli::parse();
    let (level, format) = cli::log_settings(&cli);
    wework_msgaudit::logging::init(&level, format);
    if let Err(e) = cli::run(cli) {
        eprintln!("wework-msgaudit: {e}");
        std::process::exit(e.exit_code());
    }
}
