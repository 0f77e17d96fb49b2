//! The vendor SDK (or the emulator's drop-in `.so`) loaded at run time with libloading.
//!
//! The library is opened with `RTLD_LAZY | RTLD_LOCAL | RTLD_DEEPBIND`: it carries its own
//! OpenSSL, libcurl and protobuf and calls them through the PLT, so without `RTLD_DEEPBIND` its
//! references would bind to the system OpenSSL that libavformat brings into the process
//! (sdk-facts.md §2). All 17 functions are resolved when the library is loaded, so a wrong file
//! fails at start-up naming the missing symbol, not in the middle of a pull.
//!
//! Memory rules (sdk-facts.md §2): the SDK overwrites `Slice`/`MediaData` buffers without freeing
//! the old ones, so every call gets a fresh one ([`OwnedSlice`], [`OwnedMediaData`]) that is freed
//! when it goes out of scope. A handle ([`VendorSession`]) is destroyed on drop and used by one
//! thread at a time.

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, c_void, CString};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::Arc;

use libloading::os::unix::{Library, RTLD_LAZY, RTLD_LOCAL};

use super::{guard, ChatPage, FinanceSdk, MediaChunk, NetOptions, SdkCode, SdkError, SdkSession};
use crate::secret::Secret;

/// `Slice_t` of WeWorkFinanceSdk_C.h, opaque here: it is made, read and freed only through the
/// SDK's own accessor functions, so its layout never matters on this side.
#[repr(C)]
pub struct CSlice {
    _opaque: [u8; 0],
}

/// `MediaData_t` of WeWorkFinanceSdk_C.h, opaque for the same reason.
#[repr(C)]
pub struct CMediaData {
    _opaque: [u8; 0],
}

type NewSdkFn = unsafe extern "C" fn() -> *mut c_void;
type InitFn = unsafe extern "C" fn(*mut c_void, *const c_char, *const c_char) -> c_int;
type GetChatDataFn =
    unsafe extern "C" fn(*mut c_void, c_ulonglong, c_uint, *const c_char, *const c_char, c_int, *mut CSlice) -> c_int;
type DecryptDataFn = unsafe extern "C" fn(*const c_char, *const c_char, *mut CSlice) -> c_int;
type GetMediaDataFn = unsafe extern "C" fn(
    *mut c_void,
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
    c_int,
    *mut CMediaData,
) -> c_int;
type DestroySdkFn = unsafe extern "C" fn(*mut c_void);
type NewSliceFn = unsafe extern "C" fn() -> *mut CSlice;
type FreeSliceFn = unsafe extern "C" fn(*mut CSlice);
type SliceContentFn = unsafe extern "C" fn(*mut CSlice) -> *mut c_char;
type SliceLenFn = unsafe extern "C" fn(*mut CSlice) -> c_int;
type NewMediaDataFn = unsafe extern "C" fn() -> *mut CMediaData;
type FreeMediaDataFn = unsafe extern "C" fn(*mut CMediaData);
type MediaBufFn = unsafe extern "C" fn(*mut CMediaData) -> *mut c_char;
type MediaIntFn = unsafe extern "C" fn(*mut CMediaData) -> c_int;

/// The 17 functions of the C API, resolved once.
struct Api {
    new_sdk: NewSdkFn,
    init: InitFn,
    get_chat_data: GetChatDataFn,
    decrypt_data: DecryptDataFn,
    get_media_data: GetMediaDataFn,
    destroy_sdk: DestroySdkFn,
    new_slice: NewSliceFn,
    free_slice: FreeSliceFn,
    get_content_from_slice: SliceContentFn,
    get_slice_len: SliceLenFn,
    new_media_data: NewMediaDataFn,
    free_media_data: FreeMediaDataFn,
    get_out_index_buf: MediaBufFn,
    get_data: MediaBufFn,
    get_index_len: MediaIntFn,
    get_data_len: MediaIntFn,
    is_media_data_finish: MediaIntFn,
    /// Keeps the code behind the function pointers mapped; dropped last.
    _lib: Library,
}

/// The names of the 17 functions, in the order the loader resolves them.
pub const SYMBOLS: [&str; 17] = [
    "NewSdk",
    "Init",
    "GetChatData",
    "DecryptData",
    "GetMediaData",
    "DestroySdk",
    "NewSlice",
    "FreeSlice",
    "GetContentFromSlice",
    "GetSliceLen",
    "NewMediaData",
    "FreeMediaData",
    "GetOutIndexBuf",
    "GetData",
    "GetIndexLen",
    "GetDataLen",
    "IsMediaDataFinish",
];

impl Api {
    fn load(path: &Path) -> Result<Self, SdkError> {
        let flags = RTLD_LAZY | RTLD_LOCAL | libc::RTLD_DEEPBIND;
        // SAFETY: loading a library runs its initialisers. The vendor SDK's initialisers only set up
        // its private OpenSSL/protobuf state; RTLD_LOCAL | RTLD_DEEPBIND keep its symbols from
        // interposing on the process's own libraries and vice versa.
        let lib = unsafe { Library::open(Some(path), flags) }
            .map_err(|e| SdkError::Load { path: path.to_path_buf(), reason: e.to_string() })?;
        macro_rules! sym {
            ($name:literal, $ty:ty) => {{
                // SAFETY: the type is the C prototype of this symbol in WeWorkFinanceSdk_C.h
                // (sdk-facts.md §1); the pointer is copied out and stays valid while `lib` lives,
                // which `Api` guarantees by owning `lib`.
                let symbol = unsafe { lib.get::<$ty>(concat!($name, "\0").as_bytes()) };
                *symbol.map_err(|e| SdkError::MissingSymbol {
                    path: path.to_path_buf(),
                    symbol: $name,
                    reason: e.to_string(),
                })?
            }};
        }
        Ok(Self {
            new_sdk: sym!("NewSdk", NewSdkFn),
            init: sym!("Init", InitFn),
            get_chat_data: sym!("GetChatData", GetChatDataFn),
            decrypt_data: sym!("DecryptData", DecryptDataFn),
            get_media_data: sym!("GetMediaData", GetMediaDataFn),
            destroy_sdk: sym!("DestroySdk", DestroySdkFn),
            new_slice: sym!("NewSlice", NewSliceFn),
            free_slice: sym!("FreeSlice", FreeSliceFn),
            get_content_from_slice: sym!("GetContentFromSlice", SliceContentFn),
            get_slice_len: sym!("GetSliceLen", SliceLenFn),
            new_media_data: sym!("NewMediaData", NewMediaDataFn),
            free_media_data: sym!("FreeMediaData", FreeMediaDataFn),
            get_out_index_buf: sym!("GetOutIndexBuf", MediaBufFn),
            get_data: sym!("GetData", MediaBufFn),
            get_index_len: sym!("GetIndexLen", MediaIntFn),
            get_data_len: sym!("GetDataLen", MediaIntFn),
            is_media_data_finish: sym!("IsMediaDataFinish", MediaIntFn),
            _lib: lib,
        })
    }
}

/// A `Slice_t` made by `NewSlice` and freed by `FreeSlice` when dropped.
struct OwnedSlice<'a> {
    api: &'a Api,
    ptr: NonNull<CSlice>,
}

impl<'a> OwnedSlice<'a> {
    fn new(api: &'a Api, call: &'static str) -> Result<Self, SdkError> {
        // SAFETY: NewSlice takes no arguments and returns a heap Slice_t or NULL.
        let ptr = unsafe { (api.new_slice)() };
        NonNull::new(ptr).map(|ptr| Self { api, ptr }).ok_or(SdkError::Code { call, code: SdkCode::System })
    }

    /// Copies the content out (exactly `len` bytes; the SDK NUL-terminates but `len` is exact).
    fn to_vec(&self) -> Vec<u8> {
        // SAFETY: the pointer came from NewSlice and is not freed until drop.
        let (buf, len) = unsafe {
            ((self.api.get_content_from_slice)(self.ptr.as_ptr()), (self.api.get_slice_len)(self.ptr.as_ptr()))
        };
        match usize::try_from(len) {
            Ok(len) if !buf.is_null() && len > 0 => {
                // SAFETY: the SDK guarantees `len` readable bytes at `buf`, owned by the slice,
                // which outlives this borrow; the bytes are copied before the slice is freed.
                unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) }.to_vec()
            }
            _ => Vec::new(),
        }
    }
}

impl Drop for OwnedSlice<'_> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from NewSlice and is freed exactly once, here.
        unsafe { (self.api.free_slice)(self.ptr.as_ptr()) }
    }
}

/// A `MediaData_t` made by `NewMediaData` and freed by `FreeMediaData` when dropped.
struct OwnedMediaData<'a> {
    api: &'a Api,
    ptr: NonNull<CMediaData>,
}

impl<'a> OwnedMediaData<'a> {
    fn new(api: &'a Api) -> Result<Self, SdkError> {
        // SAFETY: NewMediaData takes no arguments and returns a heap MediaData_t or NULL.
        let ptr = unsafe { (api.new_media_data)() };
        NonNull::new(ptr)
            .map(|ptr| Self { api, ptr })
            .ok_or(SdkError::Code { call: "NewMediaData", code: SdkCode::System })
    }

    fn copy(&self, buf: MediaBufFn, len: MediaIntFn) -> Vec<u8> {
        // SAFETY: the pointer came from NewMediaData and is not freed until drop.
        let (buf, len) = unsafe { (buf(self.ptr.as_ptr()), len(self.ptr.as_ptr())) };
        match usize::try_from(len) {
            Ok(len) if !buf.is_null() && len > 0 => {
                // SAFETY: the SDK guarantees `len` readable bytes at `buf` (data is not
                // NUL-terminated: `len` is the only bound), owned by the MediaData until freed.
                unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) }.to_vec()
            }
            _ => Vec::new(),
        }
    }

    fn to_chunk(&self) -> MediaChunk {
        // SAFETY: the pointer came from NewMediaData and is not freed until drop.
        let finish = unsafe { (self.api.is_media_data_finish)(self.ptr.as_ptr()) };
        let index = self.copy(self.api.get_out_index_buf, self.api.get_index_len);
        MediaChunk {
            data: self.copy(self.api.get_data, self.api.get_data_len),
            next_index: String::from_utf8_lossy(&index).into_owned(),
            is_finish: finish != 0,
        }
    }
}

impl Drop for OwnedMediaData<'_> {
    fn drop(&mut self) {
        // SAFETY: the pointer came from NewMediaData and is freed exactly once, here.
        unsafe { (self.api.free_media_data)(self.ptr.as_ptr()) }
    }
}

/// The vendor SDK (or a drop-in replacement) loaded from a file.
pub struct VendorSdk {
    api: Arc<Api>,
    path: PathBuf,
}

impl std::fmt::Debug for VendorSdk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendorSdk").field("path", &self.path).finish_non_exhaustive()
    }
}

impl VendorSdk {
    /// Loads the library at `path` and resolves all 17 functions.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SdkError> {
        let path = path.as_ref();
        if !path.is_file() {
            return Err(SdkError::Load { path: path.to_path_buf(), reason: "no such file".into() });
        }
        // dlopen searches the library path for a name without a slash; a configured file is a
        // path (relative to the working directory), so give it one.
        let open_path = if path.is_relative() && path.components().count() == 1 {
            Path::new(".").join(path)
        } else {
            path.to_path_buf()
        };
        Ok(Self { api: Arc::new(Api::load(&open_path)?), path: path.to_path_buf() })
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `Init` with raw arguments, bypassing [`guard::check_init`]. Only the contract tests need
    /// this, to see the SDK's own answer (10000) to an empty corpid or secret.
    pub fn raw_init_code(&self, corpid: &str, secret: &str) -> Result<i32, SdkError> {
        let corpid = guard::c_string("Init", corpid, "corpid contains NUL")?;
        let secret = guard::c_string("Init", secret, "secret contains NUL")?;
        let handle = VendorSession::new_handle(&self.api)?;
        // SAFETY: the handle is live (owned by `handle`), both strings are NUL-terminated and
        // outlive the call.
        Ok(unsafe { (self.api.init)(handle.ptr.as_ptr(), corpid.as_ptr(), secret.as_ptr()) })
    }
}

impl FinanceSdk for VendorSdk {
    fn describe(&self) -> String {
        format!("vendor:{}", self.path.display())
    }

    fn open(&self, corpid: &str, secret: &Secret) -> Result<Box<dyn SdkSession>, SdkError> {
        Ok(Box::new(self.open_session(corpid, secret)?))
    }

    fn decrypt_data(&self, encrypt_key: &str, encrypt_msg: &str) -> Result<Vec<u8>, SdkError> {
        self.decrypt(encrypt_key, encrypt_msg)
    }
}

impl VendorSdk {
    /// `NewSdk` + `Init` (what [`FinanceSdk::open`] boxes).
    pub fn open_session(&self, corpid: &str, secret: &Secret) -> Result<VendorSession, SdkError> {
        guard::check_init(corpid, secret.expose())?;
        let c_corpid = guard::c_string("Init", corpid, "corpid contains NUL")?;
        let c_secret = zeroize::Zeroizing::new(
            guard::c_string("Init", secret.expose(), "secret contains NUL")?.into_bytes_with_nul(),
        );
        let session = VendorSession::new_handle(&self.api)?;
        // SAFETY: the handle is live, both strings are NUL-terminated and outlive the call; Init
        // copies them (it only stores corpid/secret, sdk-facts.md §2).
        let rc = unsafe { (self.api.init)(session.ptr.as_ptr(), c_corpid.as_ptr(), c_secret.as_ptr().cast()) };
        if rc != 0 {
            return Err(SdkError::Code { call: "Init", code: SdkCode::from_raw(rc) });
        }
        Ok(session)
    }

    /// `DecryptData` (what [`FinanceSdk::decrypt_data`] calls).
    pub fn decrypt(&self, encrypt_key: &str, encrypt_msg: &str) -> Result<Vec<u8>, SdkError> {
        const CALL: &str = "DecryptData";
        guard::check_decrypt_input(encrypt_key, encrypt_msg)?;
        let key = zeroize::Zeroizing::new(
            guard::c_string(CALL, encrypt_key, "encrypt_key contains NUL")?.into_bytes_with_nul(),
        );
        let msg = guard::c_string(CALL, encrypt_msg, "encrypt_msg contains NUL")?;
        let slice = OwnedSlice::new(&self.api, CALL)?;
        // SAFETY: both strings are NUL-terminated and were checked by `check_decrypt_input` against
        // every input known to crash DecryptData; the slice is fresh and non-NULL.
        let rc = unsafe { (self.api.decrypt_data)(key.as_ptr().cast(), msg.as_ptr(), slice.ptr.as_ptr()) };
        if rc != 0 {
            return Err(SdkError::Code { call: CALL, code: SdkCode::from_raw(rc) });
        }
        Ok(slice.to_vec())
    }
}

/// One SDK handle (`NewSdk`), destroyed with `DestroySdk` on drop.
pub struct VendorSession {
    api: Arc<Api>,
    ptr: NonNull<c_void>,
}

// SAFETY: the handle is only used through `&mut self`, so by one thread at a time; the SDK keeps
// no thread-local state tied to the creating thread (sdk-facts.md §2: handles are per thread only
// because concurrent use races on the token cache).
unsafe impl Send for VendorSession {}

impl VendorSession {
    fn new_handle(api: &Arc<Api>) -> Result<Self, SdkError> {
        // SAFETY: NewSdk takes no arguments and returns a new handle or NULL.
        let ptr = unsafe { (api.new_sdk)() };
        NonNull::new(ptr)
            .map(|ptr| Self { api: Arc::clone(api), ptr })
            .ok_or(SdkError::Code { call: "NewSdk", code: SdkCode::System })
    }

    fn net_strings(net: &NetOptions, call: &'static str) -> Result<(CString, zeroize::Zeroizing<Vec<u8>>), SdkError> {
        let proxy = guard::c_string(call, net.proxy.as_deref().unwrap_or(""), "proxy contains NUL")?;
        let passwd = guard::c_string(
            call,
            net.proxy_password.as_ref().map(Secret::expose).unwrap_or(""),
            "proxy password contains NUL",
        )?;
        Ok((proxy, zeroize::Zeroizing::new(passwd.into_bytes_with_nul())))
    }
}

impl Drop for VendorSession {
    fn drop(&mut self) {
        // SAFETY: the handle came from NewSdk and is destroyed exactly once, here.
        unsafe { (self.api.destroy_sdk)(self.ptr.as_ptr()) }
    }
}

impl SdkSession for VendorSession {
    fn get_chat_data(&mut self, seq: u64, limit: u32, net: &NetOptions) -> Result<ChatPage, SdkError> {
        super::chatdata::parse_chat_page(&self.chat_body(seq, limit, net)?)
    }

    fn get_media_chunk(&mut self, sdkfileid: &str, index: &str, net: &NetOptions) -> Result<MediaChunk, SdkError> {
        self.media_chunk(sdkfileid, index, net)
    }
}

impl VendorSession {
    /// `GetChatData`, the raw body (rc 0) unparsed.
    pub fn chat_body(&mut self, seq: u64, limit: u32, net: &NetOptions) -> Result<Vec<u8>, SdkError> {
        const CALL: &str = "GetChatData";
        let (proxy, passwd) = Self::net_strings(net, CALL)?;
        let slice = OwnedSlice::new(&self.api, CALL)?;
        // SAFETY: the handle is live and used by this thread only (&mut self); the strings are
        // NUL-terminated and outlive the call; the slice is fresh and non-NULL; the timeout is
        // at least 1 s (SdkTimeout), so the call cannot block forever. The SDK itself checks
        // `limit` (10000 outside 1..=1000) before doing anything.
        let rc = unsafe {
            (self.api.get_chat_data)(
                self.ptr.as_ptr(),
                seq,
                limit,
                proxy.as_ptr(),
                passwd.as_ptr().cast(),
                net.timeout.secs(),
                slice.ptr.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(SdkError::Code { call: CALL, code: SdkCode::from_raw(rc) });
        }
        Ok(slice.to_vec())
    }

    /// One `GetMediaData` call.
    pub fn media_chunk(&mut self, sdkfileid: &str, index: &str, net: &NetOptions) -> Result<MediaChunk, SdkError> {
        const CALL: &str = "GetMediaData";
        guard::check_media(sdkfileid, index)?;
        let (proxy, passwd) = Self::net_strings(net, CALL)?;
        let c_index = guard::c_string(CALL, index, "index contains NUL")?;
        let c_fileid = guard::c_string(CALL, sdkfileid, "sdkfileid contains NUL")?;
        let media = OwnedMediaData::new(&self.api)?;
        // SAFETY: the handle is live and used by this thread only; every string is NUL-terminated
        // and outlives the call; the MediaData is fresh and non-NULL (a NULL one crashes the SDK);
        // the timeout is at least 1 s.
        let rc = unsafe {
            (self.api.get_media_data)(
                self.ptr.as_ptr(),
                c_index.as_ptr(),
                c_fileid.as_ptr(),
                proxy.as_ptr(),
                passwd.as_ptr().cast(),
                net.timeout.secs(),
                media.ptr.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(SdkError::Code { call: CALL, code: SdkCode::from_raw(rc) });
        }
        Ok(media.to_chunk())
    }
}

/// Opens a system library with `RTLD_NOW | RTLD_GLOBAL` and keeps it loaded for the life of the
/// process. Tests use it to reproduce a host process whose other libraries brought the system's
/// libssl/libcrypto in before the vendor SDK (sdk-facts.md §2), so that the contract tests prove
/// RTLD_DEEPBIND keeps the SDK on its own OpenSSL.
pub fn open_global(name: &str) -> Result<(), SdkError> {
    use libloading::os::unix::{RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: the caller names a system library (libssl/libcrypto) whose initialisers are safe to
    // run at any time; it stays loaded for the life of the process (`forget` below), so no
    // pointer into it can dangle.
    let lib = unsafe { Library::open(Some(name), RTLD_NOW | RTLD_GLOBAL) }
        .map_err(|e| SdkError::Load { path: PathBuf::from(name), reason: e.to_string() })?;
    std::mem::forget(lib);
    Ok(())
}
