//! A deadline for the calls of an in-process SDK session ([`bounded`]).
//!
//! An SDK that runs in the daemon's own process (the in-process emulator, or a vendor library
//! with `[sdk] isolate = false`) cannot be interrupted: a call that never returns would hold its
//! calling thread for good. [`Watched`] runs each call of a session on a short-lived thread and
//! waits at most the SDK's worst case (timeout + 10 s) plus a grace period; then the call is
//! abandoned with [`SdkError::Hung`] (its thread and the session it holds end whenever the call
//! returns, if ever) and the session is unusable, so its owner opens a new one
//! ([`SdkError::needs_new_handle`]). [`super::process::ProcessSdk`] bounds its calls itself (it
//! kills the child), so its sessions are left as they are.
//!
//! The pull pool has its own watchdog ([`crate::actors::sdk_pool`]); the media workers use this.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use super::{ChatPage, FinanceSdk, MediaChunk, NetOptions, SdkError, SdkSession};

const RUNNING: u8 = 0;
const DONE: u8 = 1;
const GIVEN_UP: u8 = 2;

/// Calls abandoned and not returned yet, in the whole process.
static ABANDONED: AtomicUsize = AtomicUsize::new(0);

/// Calls abandoned by [`Watched`] sessions that have not returned yet.
pub fn abandoned() -> usize {
    ABANDONED.load(Ordering::SeqCst)
}

/// `session` as is when `sdk` bounds its calls itself, else wrapped in a [`Watched`].
pub fn bounded(sdk: &dyn FinanceSdk, session: Box<dyn SdkSession>, grace: Duration) -> Box<dyn SdkSession> {
    if sdk.bounds_calls() {
        session
    } else {
        Box::new(Watched { inner: Some(session), grace })
    }
}

/// A session whose every call has a deadline (see the module docs).
pub struct Watched {
    /// `None` once a call was abandoned.
    inner: Option<Box<dyn SdkSession>>,
    grace: Duration,
}

impl Watched {
    fn run<T: Send + 'static>(
        &mut self,
        call: &'static str,
        at: String,
        deadline: Duration,
        f: impl FnOnce(&mut dyn SdkSession) -> Result<T, SdkError> + Send + 'static,
    ) -> Result<T, SdkError> {
        let Some(mut session) = self.inner.take() else {
            return Err(SdkError::Hung {
                call,
                after: deadline,
                at,
                what: "an earlier call of this handle was abandoned",
            });
        };
        let (tx, rx) = mpsc::channel();
        // RUNNING → DONE by the call's thread, or → GIVEN_UP by the caller: whoever comes second
        // knows what the other did, so the count of abandoned calls stays exact.
        let state = Arc::new(AtomicU8::new(RUNNING));
        let theirs = Arc::clone(&state);
        let spawned = std::thread::Builder::new().name("sdk-call".into()).spawn(move || {
            let result = crate::unwind::catch(|| f(session.as_mut()))
                .unwrap_or_else(|message| Err(SdkError::Panicked { call, message }));
            if theirs.compare_exchange(RUNNING, DONE, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                ABANDONED.fetch_sub(1, Ordering::SeqCst);
            } else {
                let _ = tx.send((session, result));
            }
        });
        if let Err(e) = spawned {
            return Err(SdkError::Worker(format!("cannot start a thread for {call}: {e}")));
        }
        let answer = match rx.recv_timeout(deadline) {
            Ok(answer) => answer,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                ABANDONED.fetch_add(1, Ordering::SeqCst);
                if state.compare_exchange(RUNNING, GIVEN_UP, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                    let e = SdkError::Hung { call, after: deadline, at, what: "the call was abandoned on its thread" };
                    tracing::error!(error = %e, abandoned = abandoned(), "an in-process SDK call hung");
                    return Err(e);
                }
                // It returned just now: take its answer after all.
                ABANDONED.fetch_sub(1, Ordering::SeqCst);
                match rx.recv() {
                    Ok(answer) => answer,
                    Err(_) => return Err(SdkError::Worker(format!("the thread of {call} ended without an answer"))),
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(SdkError::Worker(format!("the thread of {call} ended without an answer")));
            }
        };
        self.inner = Some(answer.0);
        answer.1
    }
}

impl SdkSession for Watched {
    fn get_chat_data(&mut self, seq: u64, limit: u32, net: &NetOptions) -> Result<ChatPage, SdkError> {
        let deadline = net.timeout.worst_case() + self.grace;
        let net = net.clone();
        self.run("GetChatData", format!("the page after seq {seq}"), deadline, move |s| {
            s.get_chat_data(seq, limit, &net)
        })
    }

    fn get_media_chunk(&mut self, sdkfileid: &str, index: &str, net: &NetOptions) -> Result<MediaChunk, SdkError> {
        let deadline = net.timeout.worst_case() + self.grace;
        let (id, index, net) = (sdkfileid.to_string(), index.to_string(), net.clone());
        let short: String = sdkfileid.chars().take(24).collect();
        self.run("GetMediaData", format!("sdkfileid {short}…"), deadline, move |s| {
            s.get_media_chunk(&id, &index, &net)
        })
    }
}
