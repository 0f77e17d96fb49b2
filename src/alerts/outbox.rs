//! The two kinds of task that move alerts: the dispatcher ([`dispatch_loop`]) hands new hits to
//! the outbox, one sender per channel ([`send_loop`]) empties the channel's part of it.
//!
//! The sender's cycle: wait for the channel's rate limit; claim a batch (nothing due, or a burst
//! still within its window: sleep and look again); send it; record the result. After a failure
//! that is worth retrying, the batch is due again after the channel's next backoff delay
//! (`crate::backoff`) and the sender itself waits as long, so a channel that is down is not
//! hammered with its other batches meanwhile; the first success resets the delay. A stop
//! (the shutdown token) is seen between two sends: a send in flight finishes (it is bounded by
//! `[alerts] timeout`) and its result is recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::channel::Channel;
use super::limiter::Limiter;
use super::metrics::Counters;
use super::Settings;
use crate::backoff::Backoff;
use crate::store::{AlertHit, AlertOutcome, Store};

/// Hits handed over per dispatch transaction.
pub const DISPATCH_LIMIT: u32 = 500;

/// Sleeps `d` or until `token` is cancelled; false when cancelled.
async fn pause(token: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = token.cancelled() => false,
    }
}

/// Hands new hits to the outbox until `token` is cancelled, and gives back the claims of dead
/// senders (older than `claim_ttl`) every `claim_ttl / 4`.
pub async fn dispatch_loop(
    store: Arc<dyn Store>,
    channels: Arc<Vec<Arc<Channel>>>,
    settings: Settings,
    token: CancellationToken,
) {
    let route = {
        let channels = Arc::clone(&channels);
        move |hit: &AlertHit| -> Vec<String> {
            channels.iter().filter(|c| c.routes(hit)).map(|c| c.name().to_string()).collect()
        }
    };
    let stale_ms = i64::try_from(settings.claim_ttl.as_millis()).unwrap_or(i64::MAX);
    let recover_every = (settings.claim_ttl / 4).max(Duration::from_millis(500));
    let mut last_recover = Instant::now();
    loop {
        if token.is_cancelled() {
            return;
        }
        if last_recover.elapsed() >= recover_every {
            last_recover = Instant::now();
            match store.alert_recover(None, stale_ms).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(rows = n, "alerts: claims of a sender that died given back; they are sent again")
                }
                Err(e) => tracing::warn!(error = %e, "alerts: recovering stale claims failed"),
            }
        }
        let more = match store.alert_dispatch(DISPATCH_LIMIT, &route).await {
            Ok(o) => {
                if o.hits > 0 {
                    tracing::debug!(hits = o.hits, rows = o.rows, "alerts: hits handed to the outbox");
                }
                o.hits >= u64::from(DISPATCH_LIMIT)
            }
            Err(e) => {
                tracing::warn!(error = %e, retryable = e.is_retryable(), "alerts: handing hits to the outbox failed");
                false
            }
        };
        if !more && !pause(&token, settings.poll_interval).await {
            return;
        }
    }
}

/// Sends `channel`'s alerts until `token` is cancelled.
pub async fn send_loop(
    store: Arc<dyn Store>,
    channel: Arc<Channel>,
    settings: Settings,
    counters: Arc<Counters>,
    token: CancellationToken,
) {
    let name = channel.name().to_string();
    let mut limiter = Limiter::new(channel.rate_limit(), channel.cfg.rate_window);
    let mut backoff = Backoff::new(settings.retry_initial, settings.retry_max);
    let window_ms = i64::try_from(settings.batch_window.as_millis()).unwrap_or(i64::MAX);
    // An idle channel looks again this often (often enough to honour the batch window).
    let idle = settings.poll_interval.min(settings.batch_window.max(Duration::from_millis(100)));
    loop {
        if token.is_cancelled() {
            return;
        }
        let wait = limiter.wait(Instant::now());
        if !wait.is_zero() {
            counters.rate_limited(&name);
            tracing::debug!(?wait, "rate limit reached; waiting");
            if !pause(&token, wait).await {
                return;
            }
            continue;
        }
        let batch = match store.alert_claim(&name, &settings.owner, settings.batch_max, window_ms).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "claiming alerts failed");
                if !pause(&token, idle).await {
                    return;
                }
                continue;
            }
        };
        if batch.is_empty() {
            if !pause(&token, idle).await {
                return;
            }
            continue;
        }
        let ids: Vec<i64> = batch.iter().map(|i| i.id).collect();
        let key = batch[0].batch_key.clone();
        let attempts = batch.iter().map(|i| i.attempts).max().unwrap_or(1);
        let hits: Vec<AlertHit> = batch.into_iter().map(|i| i.hit).collect();
        limiter.record(Instant::now());
        let started = Instant::now();
        let result = channel.send(&hits, &key).await;
        let outcome = match &result {
            Ok(()) => {
                backoff.reset();
                counters.sent(&name, hits.len());
                tracing::info!(hits = hits.len(), %key, attempts, elapsed = ?started.elapsed(), "alert sent");
                AlertOutcome::Sent
            }
            Err(e) if e.is_retryable() && (settings.max_attempts == 0 || attempts < settings.max_attempts) => {
                let delay = backoff.next_delay();
                counters.failed(&name);
                tracing::warn!(error = %e, hits = hits.len(), %key, attempts, retry_in = ?delay, "alert not sent; will retry");
                AlertOutcome::Retry {
                    delay_ms: i64::try_from(delay.as_millis()).unwrap_or(i64::MAX),
                    error: e.to_string(),
                }
            }
            Err(e) => {
                counters.failed(&name);
                counters.given_up(&name, hits.len());
                tracing::error!(error = %e, hits = hits.len(), %key, attempts, "alert given up (`alerts retry` sends it again)");
                AlertOutcome::Failed { error: e.to_string() }
            }
        };
        // The result must be recorded, even while stopping: retried a few times.
        let mut recorded = false;
        for _ in 0..5 {
            match store.alert_finish(&ids, &settings.owner, &outcome).await {
                Ok(()) => {
                    recorded = true;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "recording an alert's result failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
        if !recorded {
            // The claim stays; after claim_ttl the batch is sent again with the same key.
            tracing::error!(%key, "the result of an alert could not be recorded; it will be sent again after claim_ttl");
        }
        if let AlertOutcome::Retry { delay_ms, .. } = outcome {
            if !pause(&token, Duration::from_millis(u64::try_from(delay_ms).unwrap_or(0))).await {
                return;
            }
        }
    }
}
