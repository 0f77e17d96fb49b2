//! `run --config FILE`: the daemon.
//!
//! Loads the configuration (exit 2 when it is wrong), connects to and migrates the database,
//! loads the SDK (`[sdk] library`, or `emulator` for the in-process emulator driven by
//! `WWF_EMULATOR_SCENARIO`), starts the pipeline ([`crate::actors::Pipeline`]) and runs until
//! SIGINT or SIGTERM. The stop is graceful: no new fetch starts and in-flight writes finish.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::{store_error, CliError};
use crate::actors::media::MediaSettings;
use crate::actors::{Pipeline, PipelineConfig, PullSettings};
use crate::config::Config;
use crate::corps::{self, Defaults, SourceError, Sources};
use crate::sdk::{dynlib::VendorSdk, emulated::EmulatedSdk, FinanceSdk, SdkTimeout, MAX_LIMIT};
use crate::store;

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (see config/example.toml); without it, defaults and environment.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Runs the daemon until SIGINT/SIGTERM.
pub fn run(args: &RunArgs) -> Result<(), CliError> {
    let cfg = Config::load(args.config.as_deref()).map_err(|e| CliError::Config(e.to_string()))?;
    let sdk = load_sdk(&cfg.sdk.library)?;
    let system = actix_rt::System::new();
    system.block_on(async move {
        let store = store::connect(cfg.database.url.expose()).await.map_err(store_error)?;
        store.migrate().await.map_err(store_error)?;
        tracing::info!(database = %cfg.database.redacted_url(), sdk = %sdk.describe(), "starting");
        let sources = sources_from_config(&cfg, Some(Arc::clone(&store)));
        // A missing or invalid corps file at start-up is a configuration error; later reloads
        // keep the previous corps instead.
        match corps::load(&sources).await {
            Ok(desired) => {
                for (corpid, error) in &desired.errors {
                    tracing::error!(%corpid, %error, "corp left out");
                }
                if desired.corps.is_empty() {
                    tracing::warn!("no enabled corp yet; the sources are re-read every reload_interval");
                }
            }
            Err(e @ SourceError::File { .. }) => return Err(CliError::Config(e.to_string())),
            Err(e) => return Err(CliError::Runtime(e.to_string())),
        }
        let pipeline = Pipeline::start(store, sdk, sources, &pipeline_config(&cfg))
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        let fatal = tokio::select! {
            r = wait_for_signal() => { r?; None }
            reason = pipeline.fatal() => Some(reason),
        };
        tracing::info!("stopping: no new fetches; waiting for in-flight writes");
        pipeline.shutdown().await;
        tracing::info!("stopped");
        match fatal {
            Some(reason) => Err(CliError::Runtime(reason)),
            None => Ok(()),
        }
    })
}

/// `emulator` → the in-process emulator (`WWF_EMULATOR_SCENARIO`), anything else a library path.
pub fn load_sdk(library: &Path) -> Result<Arc<dyn FinanceSdk>, CliError> {
    if library.as_os_str() == "emulator" {
        let emu = emulator::Emulator::from_env().map_err(|e| CliError::Config(format!("emulator scenario: {e}")))?;
        return Ok(Arc::new(EmulatedSdk::new(Arc::new(emu))));
    }
    Ok(Arc::new(VendorSdk::load(library).map_err(|e| CliError::Config(e.to_string()))?))
}

/// The corp sources named by the configuration.
pub fn sources_from_config(cfg: &Config, store: Option<Arc<dyn store::Store>>) -> Sources {
    Sources {
        table: if cfg.corps.table { store } else { None },
        file: (!cfg.corps.file.as_os_str().is_empty()).then(|| cfg.corps.file.clone()),
        fixed: Vec::new(),
        defaults: Some(Defaults {
            limit: cfg.pull.limit.clamp(1, MAX_LIMIT),
            timeout: SdkTimeout::from_secs(cfg.sdk.timeout.as_secs()),
        }),
    }
}

/// The pipeline settings of the configuration.
pub fn pipeline_config(cfg: &Config) -> PipelineConfig {
    PipelineConfig {
        sdk_threads: cfg.sdk.threads,
        decrypt_threads: cfg.pull.decrypt_threads,
        pull: PullSettings {
            poll_interval: cfg.pull.poll_interval,
            backoff_initial: cfg.pull.backoff_initial,
            backoff_max: cfg.pull.backoff_max,
            proxy: (!cfg.sdk.proxy.is_empty()).then(|| cfg.sdk.proxy.clone()),
            proxy_password: (!cfg.sdk.proxy_password.is_empty()).then(|| cfg.sdk.proxy_password.clone()),
        },
        reload_interval: cfg.corps.reload_interval.max(Duration::from_secs(1)),
        hang_grace: Duration::from_secs(10),
        max_hung_threads: cfg.sdk.max_hung_threads,
        media: cfg.media.enabled.then(|| media_settings(cfg)),
    }
}

/// The media settings of the configuration.
pub fn media_settings(cfg: &Config) -> MediaSettings {
    let m = &cfg.media;
    MediaSettings {
        root: m.root.clone(),
        owner: if m.instance_id.is_empty() { host_name() } else { m.instance_id.clone() },
        workers: m.workers.max(1),
        per_corp: m.per_corp.max(1),
        max_attempts: m.max_attempts.max(1),
        chunk_retries: m.chunk_retries,
        backoff_initial: m.backoff_initial,
        backoff_max: m.backoff_max,
        claim_stale: m.claim_stale,
        sweep_interval: m.sweep_interval.max(Duration::from_millis(100)),
        transcode: m.transcode,
        mp3_bitrate_kbps: m.mp3_bitrate,
        mp3_sample_rate: (m.mp3_sample_rate > 0).then_some(m.mp3_sample_rate),
        proxy: (!cfg.sdk.proxy.is_empty()).then(|| cfg.sdk.proxy.clone()),
        proxy_password: (!cfg.sdk.proxy_password.is_empty()).then(|| cfg.sdk.proxy_password.clone()),
    }
}

/// The host name (`/proc/sys/kernel/hostname`), or `default`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// Waits for SIGINT or SIGTERM.
pub async fn wait_for_signal() -> Result<(), CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(|e| CliError::Runtime(format!("SIGTERM handler: {e}")))?;
    let mut int = signal(SignalKind::interrupt()).map_err(|e| CliError::Runtime(format!("SIGINT handler: {e}")))?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
    Ok(())
}
