//! The emulator's rlib behind [`FinanceSdk`], in-process.
//!
//! Tests and `demo` use this to run the whole daemon without loading any `.so`. It applies the
//! same [`guard`] checks as the vendor binding, and catches a panic inside the emulator as
//! [`SdkError::Panicked`] so that the emulator can never take the daemon down.

use std::sync::Arc;

use emulator::{Emulator, Session};

use super::{guard, ChatPage, FinanceSdk, MediaChunk, NetOptions, SdkCode, SdkError, SdkSession};
use crate::secret::Secret;

/// An in-process emulator standing in for the vendor SDK.
#[derive(Clone)]
pub struct EmulatedSdk {
    emulator: Arc<Emulator>,
}

impl EmulatedSdk {
    /// Wraps an emulator (each test may build its own scenario).
    pub fn new(emulator: Arc<Emulator>) -> Self {
        Self { emulator }
    }

    /// The emulator behind it (for ground truth in tests).
    pub fn emulator(&self) -> &Arc<Emulator> {
        &self.emulator
    }
}

fn guarded<T>(call: &'static str, f: impl FnOnce() -> Result<T, i32>) -> Result<T, SdkError> {
    match crate::unwind::catch(f) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(rc)) => Err(SdkError::Code { call, code: SdkCode::from_raw(rc) }),
        Err(message) => Err(SdkError::Panicked { call, message }),
    }
}

impl FinanceSdk for EmulatedSdk {
    fn describe(&self) -> String {
        "emulator (in-process)".to_string()
    }

    fn open(&self, corpid: &str, secret: &Secret) -> Result<Box<dyn SdkSession>, SdkError> {
        guard::check_init(corpid, secret.expose())?;
        let emulator = Arc::clone(&self.emulator);
        let session = guarded("Init", || {
            let mut session = emulator.new_session();
            match emulator.init(&mut session, Some(corpid.as_bytes()), Some(secret.expose().as_bytes())) {
                0 => Ok(session),
                rc => Err(rc),
            }
        })?;
        Ok(Box::new(EmulatedSession { emulator, session }))
    }

    fn decrypt_data(&self, encrypt_key: &str, encrypt_msg: &str) -> Result<Vec<u8>, SdkError> {
        guard::check_decrypt_input(encrypt_key, encrypt_msg)?;
        guarded("DecryptData", || {
            self.emulator.decrypt_data(Some(encrypt_key.as_bytes()), Some(encrypt_msg.as_bytes()))
        })
    }
}

struct EmulatedSession {
    emulator: Arc<Emulator>,
    session: Session,
}

impl SdkSession for EmulatedSession {
    fn get_chat_data(&mut self, seq: u64, limit: u32, net: &NetOptions) -> Result<ChatPage, SdkError> {
        let proxy = net.proxy.as_deref().map(str::as_bytes);
        let passwd = net.proxy_password.as_ref().map(|p| p.expose().as_bytes());
        let body = guarded("GetChatData", || {
            self.emulator.get_chat_data(&mut self.session, seq, limit, proxy, passwd, net.timeout.secs())
        })?;
        super::chatdata::parse_chat_page(&body)
    }

    fn get_media_chunk(&mut self, sdkfileid: &str, index: &str, net: &NetOptions) -> Result<MediaChunk, SdkError> {
        guard::check_media(sdkfileid, index)?;
        let proxy = net.proxy.as_deref().map(str::as_bytes);
        let passwd = net.proxy_password.as_ref().map(|p| p.expose().as_bytes());
        let chunk = guarded("GetMediaData", || {
            self.emulator.get_media_data(
                &mut self.session,
                Some(index.as_bytes()),
                Some(sdkfileid.as_bytes()),
                proxy,
                passwd,
                net.timeout.secs(),
            )
        })?;
        Ok(MediaChunk {
            data: chunk.data,
            next_index: String::from_utf8_lossy(&chunk.outindexbuf).into_owned(),
            is_finish: chunk.is_finish,
        })
    }
}
