//! `sdk-worker --library PATH --channel-fd 3` (hidden): one child process of
//! [`crate::sdk::process::ProcessSdk`], started by the daemon itself. It loads the vendor library
//! and serves the daemon's SDK calls on the channel until the daemon closes it, so that a crash
//! inside the library ends this process, not the daemon. Not meant to be run by hand.

use std::path::PathBuf;

use clap::Args;

use super::CliError;

/// Arguments of `sdk-worker`.
#[derive(Debug, Args)]
pub struct SdkWorkerArgs {
    /// The vendor library to load.
    #[arg(long)]
    pub library: PathBuf,
    /// The descriptor of the channel to the daemon.
    #[arg(long, default_value_t = crate::sdk::process::CHANNEL_FD)]
    pub channel_fd: i32,
}

/// Serves the daemon until it closes the channel.
pub fn run(args: &SdkWorkerArgs) -> Result<(), CliError> {
    crate::sdk::worker::serve(&args.library, args.channel_fd).map_err(|e| CliError::runtime("sdk-worker", e))
}
