//! Alerts: rule hits sent to people (issue 17) through a durable outbox.
//!
//! How the parts connect:
//!
//! ```text
//!  rules (ingest) / reply-time check
//!        │ rule_hit rows, alert_state 0
//!        ▼
//!  outbox::dispatch_loop ── ONE transaction: alert_outbox rows (one per routed channel),
//!        │                  alert_state 1                        (store::AlertRepo)
//!        ▼
//!  outbox::send_loop, one per channel: limiter → claim a batch → channel::Channel::send → finish
//!        │                                                       (template: the text, the link)
//!        ▼
//!  WeCom / DingTalk / Feishu robots, a signed JSON webhook, SMTP
//! ```
//!
//! - Channels come from `[[alerts.channel]]` (`crate::config::AlertChannelConfig`); a channel
//!   routes hits itself by rule name and corp ([`channel::Channel::routes`]).
//! - The outbox is `alert_outbox` ([`crate::store::AlertRepo`]). Delivery is at least once, and
//!   exactly once where the receiver honours the batch's idempotency key: a batch is claimed
//!   (in the database) before it is sent, keeps its key across retries, restarts and `kill -9`,
//!   and is sent again only when no result was recorded (the process died mid-send: after
//!   `[alerts] claim_ttl`, or at once by the same `[cluster] instance_id`). Two instances never
//!   claim the same row.
//! - Bursts become one message (`batch_max` hits, `batch_window`); each channel has a
//!   sliding-window rate limit ([`limiter`]; the WeCom robot's 20 a minute by default);
//!   failures are retried with exponential backoff ([`crate::backoff`]).
//! - [`metrics`]: counters by channel and the outbox's size and age, in `/metrics` and `/status`.
//! - `wework-msgaudit alerts status | test-channel NAME | retry` (`crate::cli::alerts`).
//!
//! [`start`] runs it all as background tasks of `run`, stopped by the pipeline's shutdown token.

pub mod channel;
pub mod limiter;
pub mod metrics;
pub mod outbox;
pub mod template;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::config::Config;
use crate::store::{Store, StoreError};
use channel::Channel;
use metrics::Counters;

/// Everything sending an alert can fail with. No variant holds a URL or a secret.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    /// The channel cannot be used as configured (a bad SMTP URL or address).
    #[error("channel {channel}: {message}")]
    Config {
        /// The channel.
        channel: String,
        /// What is wrong.
        message: String,
    },
    /// The request did not get an answer (connection refused, timeout, TLS).
    #[error("channel {channel}: {message}")]
    Transport {
        /// The channel.
        channel: String,
        /// The client's error, without the URL.
        message: String,
    },
    /// The endpoint answered with an HTTP error status.
    #[error("channel {channel}: HTTP {status}: {body}")]
    Http {
        /// The channel.
        channel: String,
        /// The status.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// A robot answered with an error code.
    #[error("channel {channel}: the robot answered code {code}: {message}")]
    Answer {
        /// The channel.
        channel: String,
        /// Its code.
        code: i64,
        /// Its message.
        message: String,
        /// The code says "try later" (rate limited, busy).
        retryable: bool,
    },
    /// The SMTP server refused or could not be reached.
    #[error("channel {channel}: SMTP: {message}")]
    Smtp {
        /// The channel.
        channel: String,
        /// lettre's error.
        message: String,
        /// Not a permanent (5xx) refusal.
        retryable: bool,
    },
    /// No channel of that name (`alerts test-channel`).
    #[error("no alert channel named {0:?} in [[alerts.channel]]")]
    NoSuchChannel(String),
    /// The outbox could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AlertsError {
    /// True when sending the same message later may succeed: no answer, HTTP 408/429/5xx, a
    /// robot's rate-limit or busy code, a transient SMTP failure, a retryable database error.
    pub fn is_retryable(&self) -> bool {
        match self {
            AlertsError::Transport { .. } => true,
            AlertsError::Http { status, .. } => matches!(status, 408 | 425 | 429) || *status >= 500,
            AlertsError::Answer { retryable, .. } | AlertsError::Smtp { retryable, .. } => *retryable,
            AlertsError::Store(e) => e.is_retryable(),
            AlertsError::Config { .. } | AlertsError::NoSuchChannel(_) => false,
        }
    }
}

/// The settings of the outbox's tasks (`[alerts]`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// This instance's name in `alert_outbox.claimed_by`.
    pub owner: String,
    /// See `[alerts] poll_interval`.
    pub poll_interval: Duration,
    /// See `[alerts] batch_max`.
    pub batch_max: u32,
    /// See `[alerts] batch_window`.
    pub batch_window: Duration,
    /// See `[alerts] retry_initial`.
    pub retry_initial: Duration,
    /// See `[alerts] retry_max`.
    pub retry_max: Duration,
    /// See `[alerts] max_attempts`.
    pub max_attempts: u32,
    /// See `[alerts] claim_ttl`.
    pub claim_ttl: Duration,
}

impl Settings {
    /// From the configuration, claims in the name of `owner`.
    pub fn from_config(cfg: &Config, owner: String) -> Self {
        let alerts = &cfg.alerts;
        Self {
            owner,
            poll_interval: alerts.poll_interval.max(Duration::from_millis(50)),
            batch_max: alerts.batch_max.max(1),
            batch_window: alerts.batch_window,
            retry_initial: alerts.retry_initial,
            retry_max: alerts.retry_max,
            max_attempts: alerts.max_attempts,
            claim_ttl: alerts.claim_ttl.max(Duration::from_secs(1)),
        }
    }
}

/// The configured channels, ready to send.
pub fn channels(cfg: &Config) -> Result<Vec<Arc<Channel>>, AlertsError> {
    let alerts = &cfg.alerts;
    alerts.channel.iter().map(|c| Channel::new(c, &cfg.http.public_url, alerts.timeout).map(Arc::new)).collect()
}

/// The running alert tasks ([`start`]).
#[derive(Debug)]
pub struct Task {
    token: CancellationToken,
    handles: Vec<tokio::task::JoinHandle<()>>,
    /// The counters, for the reports.
    pub counters: Arc<Counters>,
}

impl Task {
    /// Stops the tasks (a send in flight finishes and is recorded) and waits for them.
    pub async fn stop(self) {
        self.token.cancel();
        for h in self.handles {
            if let Err(e) = h.await {
                tracing::warn!(error = %e, "an alerts task ended abnormally");
            }
        }
    }
}

/// Starts the dispatcher and one sender per channel on the current runtime, stopped by `stop`
/// (a child token is taken) or [`Task::stop`]; `None` without channels (hits stay in
/// `rule_hit`, not handed over, so that a channel added later sends them) or when a channel
/// cannot be built (logged).
pub fn start(cfg: &Config, store: Arc<dyn Store>, owner: String, stop: &CancellationToken) -> Option<Task> {
    if cfg.alerts.channel.is_empty() {
        return None;
    }
    let channels = match channels(cfg) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            tracing::error!(error = %e, "alerts are off: a channel cannot be used");
            return None;
        }
    };
    let settings = Settings::from_config(cfg, owner);
    let token = stop.child_token();
    let counters = Arc::new(Counters::default());
    for ch in channels.iter() {
        counters.register(ch.name());
    }
    let (store2, settings2, token2, counters2) = (store, settings.clone(), token.clone(), Arc::clone(&counters));
    let main = async move {
        // Our own claims from before a crash (a stable instance id) go back first, before any
        // sender claims anew in the same name.
        let stale = i64::try_from(settings2.claim_ttl.as_millis()).unwrap_or(i64::MAX);
        if let Err(e) = store2.alert_recover(Some(&settings2.owner), stale).await {
            tracing::warn!(error = %e, "recovering the alert claims failed");
        }
        let senders: Vec<_> = channels
            .iter()
            .map(|ch| {
                let span = tracing::info_span!("alerts", channel = %ch.name());
                tokio::spawn(
                    outbox::send_loop(
                        Arc::clone(&store2),
                        Arc::clone(ch),
                        settings2.clone(),
                        Arc::clone(&counters2),
                        token2.clone(),
                    )
                    .instrument(span),
                )
            })
            .collect();
        outbox::dispatch_loop(store2, Arc::clone(&channels), settings2, token2)
            .instrument(tracing::info_span!("alerts_dispatch"))
            .await;
        for s in senders {
            if let Err(e) = s.await {
                tracing::warn!(error = %e, "an alert sender ended abnormally");
            }
        }
    };
    let handles = vec![tokio::spawn(main)];
    tracing::info!(channels = cfg.alerts.channel.len(), owner = %settings.owner, "alerts: sending rule hits");
    Some(Task { token, handles, counters })
}
