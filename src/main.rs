//! The `wework-msgaudit` binary: parse the command line, set up logging, run, map errors to exit
//! codes. Everything else is in the library crate.

use clap::Parser;
use tracing_subscriber::EnvFilter;
use wework_msgaudit::cli::{self, Cli};
use wework_msgaudit::config::LogFormat;

fn main() {
    let cli = Cli::parse();
    // Logs go to stderr: the vendor SDK printf()s to stdout (sdk-facts.md §2).
    let (level, format) = cli::log_settings(&cli);
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Human => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    if let Err(e) = cli::run(cli) {
        eprintln!("wework-msgaudit: {e}");
        std::process::exit(e.exit_code());
    }
}
