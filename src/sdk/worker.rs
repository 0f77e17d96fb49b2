//! The child's side of [`super::process`]: an `sdk-worker` process loads the vendor library, says
//! `Ready` on its channel (fd [`super::process::CHANNEL_FD`], [`super::wire`] frames) and serves
//! one request at a time (open/close a session, one page of chat data, one media chunk, one
//! `DecryptData`) until the daemon closes the channel. A crash here ends only this process; the
//! daemon sees the channel close and reports [`SdkError::Crashed`].

use std::collections::HashMap;
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::dynlib::{VendorSdk, VendorSession};
use super::wire::{self, Net, Reply, Request, WireError};
use super::{NetOptions, SdkError, SdkTimeout};
use crate::secret::Secret;

/// Why a child ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The channel fd is not usable.
    #[error("the channel fd {0} is not a socket of the daemon")]
    Channel(RawFd),
    /// The library could not be loaded (already told to the daemon).
    #[error(transparent)]
    Load(#[from] SdkError),
    /// The channel failed.
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// Runs a child: loads `library`, says `Ready` on the channel `fd`, then serves requests until
/// the daemon closes the channel. Only the `sdk-worker` subcommand calls this.
pub fn serve(library: &Path, fd: RawFd) -> Result<(), WorkerError> {
    // SAFETY: fstat on an integer fd reads nothing of ours; it only tells whether fd is open.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable memory for one `struct stat`.
    if fd < 0 || unsafe { libc::fstat(fd, &mut st) } != 0 || (st.st_mode & libc::S_IFMT) != libc::S_IFSOCK {
        return Err(WorkerError::Channel(fd));
    }
    // SAFETY: the daemon passed this socket for this process alone; nothing else owns it.
    let mut sock = unsafe { UnixStream::from_raw_fd(fd) };
    // SAFETY: dup2 of two open descriptors; SIG_IGN dispositions for three signals; PR_SET_NAME
    // reads a NUL-terminated string of at most 16 bytes. What the SDK prints goes to stderr,
    // never onto the channel; the daemon decides when this ends. The name: `ps -C sdk-worker`
    // and `top` find the children whatever they were exec'd through (`/proc/self/exe` would
    // name them `exe`, `/proc/self/fd/N` `N`).
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"sdk-worker".as_ptr() as libc::c_ulong, 0, 0, 0);
        libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let sdk = match VendorSdk::load(library) {
        Ok(sdk) => sdk,
        Err(e) => {
            let _ = wire::send_reply(&mut sock, &Reply::LoadFailed { reason: e.to_string() });
            return Err(e.into());
        }
    };
    wire::send_reply(&mut sock, &Reply::Ready { version: wire::VERSION })?;
    let mut sessions: HashMap<u64, VendorSession> = HashMap::new();
    let mut next = 1u64;
    loop {
        let request = match wire::recv_request(&mut sock) {
            Ok(r) => r,
            Err(WireError::Closed) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let reply = match request {
            Request::Open { corpid, secret } => match sdk.open_session(&corpid, &Secret::new(secret.as_str())) {
                Ok(s) => {
                    sessions.insert(next, s);
                    next += 1;
                    Reply::Handle(next - 1)
                }
                Err(e) => error_reply(e),
            },
            Request::Close { handle } => {
                sessions.remove(&handle);
                continue;
            }
            Request::Chat { handle, seq, limit, net } => match sessions.get_mut(&handle) {
                Some(s) => s.chat_body(seq, limit, &net_options(net)).map_or_else(error_reply, Reply::Body),
                None => Reply::Refused(format!("unknown handle {handle}")),
            },
            Request::Media { handle, sdkfileid, index, net } => match sessions.get_mut(&handle) {
                Some(s) => s.media_chunk(&sdkfileid, &index, &net_options(net)).map_or_else(error_reply, |c| {
                    Reply::Chunk { data: c.data, next_index: c.next_index, finish: c.is_finish }
                }),
                None => Reply::Refused(format!("unknown handle {handle}")),
            },
            Request::Decrypt { key, msg } => sdk.decrypt(&key, &msg).map_or_else(error_reply, Reply::Body),
        };
        wire::send_reply(&mut sock, &reply)?;
    }
}

fn error_reply(e: SdkError) -> Reply {
    match e {
        SdkError::Code { code, .. } => Reply::Code(code.raw()),
        other => Reply::Refused(other.to_string()),
    }
}

fn net_options(net: Net) -> NetOptions {
    NetOptions {
        proxy: (!net.proxy.is_empty()).then_some(net.proxy),
        proxy_password: (!net.passwd.is_empty()).then(|| Secret::new(net.passwd.as_str())),
        timeout: SdkTimeout::from_secs(u64::from(net.timeout.max(1).unsigned_abs())),
    }
}
