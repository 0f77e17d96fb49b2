//! The pipeline's one shutdown mechanism (the model is mini-redis's `Shutdown`): a
//! [`CancellationToken`] that every actor and task listens to, and a "done" channel whose
//! senders travel inside the same [`Shutdown`] values. Whatever must finish before the process
//! may exit — a corp's pull loop with its last write, a media job with its database update, the
//! supervisor giving the leases back and letting the SDK threads leave the vendor library —
//! holds a `Shutdown` until it has finished; the [`Stopper`] cancels the token and waits until
//! the last one is dropped, within the `[daemon] shutdown_grace` it is given.
//!
//! A part that can also be stopped on its own (one corp: removed, restarted) listens to a
//! [`Shutdown::child`]: stopped by [`Shutdown::stop`] or with the whole pipeline.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The stop signal, held by every actor and task that must finish before the pipeline has
/// stopped (dropping it says "finished").
#[derive(Debug, Clone)]
pub struct Shutdown {
    token: CancellationToken,
    _done: mpsc::Sender<()>,
}

impl Shutdown {
    /// True once the stop was signalled.
    pub fn is_shutdown(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves when the stop is signalled (at once when it already was).
    pub async fn recv(&self) {
        self.token.cancelled().await;
    }

    /// A listener that stops with this one, or alone by [`Shutdown::stop`]; it holds the
    /// pipeline's end like this one.
    pub fn child(&self) -> Shutdown {
        Shutdown { token: self.token.child_token(), _done: self._done.clone() }
    }

    /// Signals the stop to this listener and its children (to a child: only that part).
    pub fn stop(&self) {
        self.token.cancel();
    }

    /// The token itself, for code that only polls it (a worker thread between two chunks) or
    /// must stop a part without holding the pipeline's end.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }
}

/// How a stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Everything finished, after this long.
    InTime(Duration),
    /// The grace period ran out first.
    Overran(Duration),
}

/// The owner's side: hands out [`Shutdown`]s, then signals the stop and waits for them.
#[derive(Debug)]
pub struct Stopper {
    token: CancellationToken,
    done_tx: mpsc::Sender<()>,
    done_rx: mpsc::Receiver<()>,
}

impl Default for Stopper {
    fn default() -> Self {
        Self::new()
    }
}

impl Stopper {
    /// Nothing stopped yet.
    pub fn new() -> Self {
        let (done_tx, done_rx) = mpsc::channel(1);
        Self { token: CancellationToken::new(), done_tx, done_rx }
    }

    /// A listener (and a hold on the end).
    pub fn listener(&self) -> Shutdown {
        Shutdown { token: self.token.clone(), _done: self.done_tx.clone() }
    }

    /// The stop signal alone, without a hold on the end (for what stops with the pipeline but
    /// need not be waited for: the review API's listener).
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Signals the stop and waits until every [`Shutdown`] has been dropped, at most `grace`.
    pub async fn stop(self, grace: Duration) -> Stopped {
        let Stopper { token, done_tx, mut done_rx } = self;
        let started = Instant::now();
        token.cancel();
        drop(done_tx);
        // Nothing is ever sent: `recv` answers `None` once the last sender is gone.
        match tokio::time::timeout(grace, done_rx.recv()).await {
            Ok(_) => Stopped::InTime(started.elapsed()),
            Err(_) => Stopped::Overran(grace),
        }
    }
}

/// Ends an actix system whose futures may still wait on the database (a report, a reload):
/// their drop must happen inside the runtime, where sqlx can hand its connections back, or it
/// panics (and a panic in a drop aborts the process). Entering the runtime's context while the
/// system (its task set first, then the runtime) is dropped gives them that.
pub fn close_system(system: actix_rt::SystemRunner) {
    let (rt, _stop) = system.into_parts();
    let handle = rt.tokio_runtime().handle().clone();
    let _inside = handle.enter();
    drop(rt);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stop_ends_when_the_last_listener_is_dropped() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let stopper = Stopper::new();
            let a = stopper.listener();
            let corp = a.child();
            let (tx, rx) = tokio::sync::oneshot::channel();
            corp.stop();
            assert!(corp.is_shutdown() && !a.is_shutdown(), "a child stops alone");
            tokio::spawn(async move {
                a.recv().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                drop(a);
                let _ = tx.send(());
            });
            drop(corp);
            let stopped = stopper.stop(Duration::from_secs(5)).await;
            assert!(matches!(stopped, Stopped::InTime(d) if d >= Duration::from_millis(50)), "{stopped:?}");
            rx.await.unwrap();

            let stopper = Stopper::new();
            let held = stopper.listener();
            assert_eq!(stopper.stop(Duration::from_millis(50)).await, Stopped::Overran(Duration::from_millis(50)));
            assert!(held.is_shutdown(), "the signal reached the holder");
        });
    }
}
