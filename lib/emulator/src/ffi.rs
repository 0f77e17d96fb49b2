//! The C ABI: the 17 functions of `WeWorkFinanceSdk_C.h`, backed by [`Emulator::global`].
//!
//! Memory rules mirror the vendor SDK: result buffers are allocated by the library (`malloc`),
//! `FreeSlice` / `FreeMediaData` free them. **Reusing a Slice/MediaData for a second call
//! overwrites its buffers without freeing the old ones (a leak, exactly like the real SDK): the
//! caller must New/Free per call.** `Slice.buf` is NUL-terminated with an exact `len`;
//! `MediaData.data` is not NUL-terminated (use `data_len`); `outindexbuf` is NUL-terminated.
//!
//! Unlike the vendor SDK, NULL handles/out pointers return 10000 instead of crashing, and a panic
//! never crosses the boundary (every function catches it and returns 10003).
#![allow(non_snake_case, non_camel_case_types)]

use std::ffi::{c_char, c_int, c_uint, c_ulonglong, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use crate::{Emulator, Session};

const RC_BAD_ARG: c_int = 10000;
const RC_SYSTEM: c_int = 10003;

/// `typedef struct Slice_t { char *buf; int len; } Slice_t;`
#[repr(C)]
#[derive(Debug)]
pub struct Slice_t {
    pub buf: *mut c_char,
    pub len: c_int,
}

/// `typedef struct MediaData { char *outindexbuf; int out_len; char *data; int data_len; int is_finish; }`
#[repr(C)]
#[derive(Debug)]
pub struct MediaData_t {
    pub outindexbuf: *mut c_char,
    pub out_len: c_int,
    pub data: *mut c_char,
    pub data_len: c_int,
    pub is_finish: c_int,
}

/// The opaque SDK handle.
pub struct WeWorkFinanceSdk_t {
    session: Mutex<Session>,
}

fn guard(f: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(RC_SYSTEM)
}

/// A C string argument as bytes (`None` for NULL).
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string valid for the call.
unsafe fn arg<'a>(p: *const c_char) -> Option<&'a [u8]> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-NULL and, by the caller's contract, NUL-terminated and alive for 'a.
        Some(unsafe { CStr::from_ptr(p) }.to_bytes())
    }
}

/// `malloc`s a copy of `bytes` (plus a NUL if `nul`); NULL on allocation failure.
fn c_copy(bytes: &[u8], nul: bool) -> *mut c_char {
    let n = bytes.len() + usize::from(nul);
    // SAFETY: malloc with a non-zero size; the result is checked for NULL before use.
    let p = unsafe { libc::malloc(n.max(1)) } as *mut u8;
    if p.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: p points to at least n writable bytes that do not overlap `bytes`.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        if nul {
            *p.add(bytes.len()) = 0;
        }
    }
    p as *mut c_char
}

fn with_session<R>(sdk: *mut WeWorkFinanceSdk_t, f: impl FnOnce(&mut Session) -> R) -> Option<R> {
    if sdk.is_null() {
        return None;
    }
    // SAFETY: non-NULL handles come from NewSdk and stay valid until DestroySdk (caller contract).
    let h = unsafe { &*sdk };
    let mut s = h.session.lock().unwrap_or_else(|p| p.into_inner());
    Some(f(&mut s))
}

/// `WeWorkFinanceSdk_t *NewSdk(void)`
#[no_mangle]
pub extern "C" fn NewSdk() -> *mut WeWorkFinanceSdk_t {
    catch_unwind(|| {
        let session = Emulator::global().new_session();
        Box::into_raw(Box::new(WeWorkFinanceSdk_t { session: Mutex::new(session) }))
    })
    .unwrap_or(std::ptr::null_mut())
}

/// `int Init(WeWorkFinanceSdk_t*, const char *corpid, const char *secret)`
///
/// # Safety
/// `sdk` NULL or from NewSdk; strings NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn Init(sdk: *mut WeWorkFinanceSdk_t, corpid: *const c_char, secret: *const c_char) -> c_int {
    guard(|| {
        // SAFETY: caller contract (documented above).
        let (c, k) = unsafe { (arg(corpid), arg(secret)) };
        with_session(sdk, |s| Emulator::global().init(s, c, k)).unwrap_or(RC_BAD_ARG)
    })
}

/// `int GetChatData(sdk, seq, limit, proxy, passwd, timeout, Slice_t *out)`
///
/// # Safety
/// `sdk` NULL or from NewSdk; strings NULL or NUL-terminated; `out` NULL or a valid Slice_t.
#[no_mangle]
pub unsafe extern "C" fn GetChatData(
    sdk: *mut WeWorkFinanceSdk_t,
    seq: c_ulonglong,
    limit: c_uint,
    proxy: *const c_char,
    passwd: *const c_char,
    timeout: c_int,
    out: *mut Slice_t,
) -> c_int {
    guard(|| {
        if out.is_null() || sdk.is_null() || limit == 0 || limit > 1000 {
            return RC_BAD_ARG;
        }
        // SAFETY: caller contract (documented above).
        let (p, w) = unsafe { (arg(proxy), arg(passwd)) };
        let res = with_session(sdk, |s| Emulator::global().get_chat_data(s, seq, limit, p, w, timeout));
        match res {
            Some(Ok(body)) => {
                let Ok(len) = c_int::try_from(body.len()) else { return RC_SYSTEM };
                let buf = c_copy(&body, true);
                if buf.is_null() {
                    return RC_SYSTEM;
                }
                // SAFETY: out is non-NULL and valid (caller contract). The old buffer is not
                // freed, exactly like the vendor SDK.
                unsafe {
                    (*out).buf = buf;
                    (*out).len = len;
                }
                0
            }
            Some(Err(rc)) => rc,
            None => RC_BAD_ARG,
        }
    })
}

/// `int DecryptData(const char *encrypt_key, const char *encrypt_msg, Slice_t *out)`
///
/// # Safety
/// Strings NULL or NUL-terminated; `out` NULL or a valid Slice_t.
#[no_mangle]
pub unsafe extern "C" fn DecryptData(
    encrypt_key: *const c_char,
    encrypt_msg: *const c_char,
    out: *mut Slice_t,
) -> c_int {
    guard(|| {
        if out.is_null() {
            return RC_BAD_ARG;
        }
        // SAFETY: caller contract (documented above).
        let (k, m) = unsafe { (arg(encrypt_key), arg(encrypt_msg)) };
        match Emulator::global().decrypt_data(k, m) {
            Ok(pt) => {
                let Ok(len) = c_int::try_from(pt.len()) else { return RC_SYSTEM };
                let buf = c_copy(&pt, true);
                if buf.is_null() {
                    return RC_SYSTEM;
                }
                // SAFETY: out is non-NULL and valid (caller contract).
                unsafe {
                    (*out).buf = buf;
                    (*out).len = len;
                }
                0
            }
            Err(rc) => rc,
        }
    })
}

/// `int GetMediaData(sdk, indexbuf, sdkfileid, proxy, passwd, timeout, MediaData_t *out)`
///
/// # Safety
/// `sdk` NULL or from NewSdk; strings NULL or NUL-terminated; `out` NULL or a valid MediaData_t.
#[no_mangle]
pub unsafe extern "C" fn GetMediaData(
    sdk: *mut WeWorkFinanceSdk_t,
    indexbuf: *const c_char,
    sdkfileid: *const c_char,
    proxy: *const c_char,
    passwd: *const c_char,
    timeout: c_int,
    out: *mut MediaData_t,
) -> c_int {
    guard(|| {
        if out.is_null() || sdk.is_null() {
            return RC_BAD_ARG;
        }
        // SAFETY: caller contract (documented above).
        let (i, f, p, w) = unsafe { (arg(indexbuf), arg(sdkfileid), arg(proxy), arg(passwd)) };
        let res = with_session(sdk, |s| Emulator::global().get_media_data(s, i, f, p, w, timeout));
        match res {
            Some(Ok(chunk)) => {
                let (Ok(out_len), Ok(data_len)) =
                    (c_int::try_from(chunk.outindexbuf.len()), c_int::try_from(chunk.data.len()))
                else {
                    return RC_SYSTEM;
                };
                let ob = c_copy(&chunk.outindexbuf, true);
                let db = c_copy(&chunk.data, false);
                if ob.is_null() || db.is_null() {
                    // SAFETY: free(NULL) is a no-op; non-NULL pointers come from c_copy's malloc.
                    unsafe {
                        libc::free(ob.cast());
                        libc::free(db.cast());
                    }
                    return RC_SYSTEM;
                }
                // SAFETY: out is non-NULL and valid (caller contract). Old buffers are not freed,
                // exactly like the vendor SDK.
                unsafe {
                    (*out).outindexbuf = ob;
                    (*out).out_len = out_len;
                    (*out).data = db;
                    (*out).data_len = data_len;
                    (*out).is_finish = c_int::from(chunk.is_finish);
                }
                0
            }
            Some(Err(rc)) => rc,
            None => RC_BAD_ARG,
        }
    })
}

/// `void DestroySdk(WeWorkFinanceSdk_t*)`
///
/// # Safety
/// `sdk` NULL or from NewSdk, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn DestroySdk(sdk: *mut WeWorkFinanceSdk_t) {
    let _ = catch_unwind(|| {
        if !sdk.is_null() {
            // SAFETY: sdk came from Box::into_raw in NewSdk and is destroyed once (caller contract).
            drop(unsafe { Box::from_raw(sdk) });
        }
    });
}

/// `Slice_t *NewSlice(void)`
#[no_mangle]
pub extern "C" fn NewSlice() -> *mut Slice_t {
    catch_unwind(|| Box::into_raw(Box::new(Slice_t { buf: std::ptr::null_mut(), len: 0 })))
        .unwrap_or(std::ptr::null_mut())
}

/// `void FreeSlice(Slice_t*)`
///
/// # Safety
/// `s` NULL or from NewSlice, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn FreeSlice(s: *mut Slice_t) {
    let _ = catch_unwind(|| {
        if s.is_null() {
            return;
        }
        // SAFETY: s came from Box::into_raw in NewSlice; buf is NULL or from malloc.
        unsafe {
            let b = Box::from_raw(s);
            libc::free(b.buf.cast());
        }
    });
}

/// `char *GetContentFromSlice(Slice_t*)`
///
/// # Safety
/// `s` NULL or a valid Slice_t.
#[no_mangle]
pub unsafe extern "C" fn GetContentFromSlice(s: *mut Slice_t) -> *mut c_char {
    catch_unwind(|| {
        if s.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: non-NULL and valid (caller contract).
        unsafe { (*s).buf }
    })
    .unwrap_or(std::ptr::null_mut())
}

/// `int GetSliceLen(Slice_t*)`
///
/// # Safety
/// `s` NULL or a valid Slice_t.
#[no_mangle]
pub unsafe extern "C" fn GetSliceLen(s: *mut Slice_t) -> c_int {
    catch_unwind(|| {
        if s.is_null() {
            return 0;
        }
        // SAFETY: non-NULL and valid (caller contract).
        unsafe { (*s).len }
    })
    .unwrap_or(0)
}

/// `MediaData_t *NewMediaData(void)`
#[no_mangle]
pub extern "C" fn NewMediaData() -> *mut MediaData_t {
    catch_unwind(|| {
        Box::into_raw(Box::new(MediaData_t {
            outindexbuf: std::ptr::null_mut(),
            out_len: 0,
            data: std::ptr::null_mut(),
            data_len: 0,
            is_finish: 0,
        }))
    })
    .unwrap_or(std::ptr::null_mut())
}

/// `void FreeMediaData(MediaData_t*)`
///
/// # Safety
/// `m` NULL or from NewMediaData, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn FreeMediaData(m: *mut MediaData_t) {
    let _ = catch_unwind(|| {
        if m.is_null() {
            return;
        }
        // SAFETY: m came from Box::into_raw in NewMediaData; buffers are NULL or from malloc.
        unsafe {
            let b = Box::from_raw(m);
            libc::free(b.outindexbuf.cast());
            libc::free(b.data.cast());
        }
    });
}

/// `char *GetOutIndexBuf(MediaData_t*)`
///
/// # Safety
/// `m` NULL or a valid MediaData_t.
#[no_mangle]
pub unsafe extern "C" fn GetOutIndexBuf(m: *mut MediaData_t) -> *mut c_char {
    catch_unwind(|| {
        if m.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: non-NULL and valid (caller contract).
        unsafe { (*m).outindexbuf }
    })
    .unwrap_or(std::ptr::null_mut())
}

/// `char *GetData(MediaData_t*)`
///
/// # Safety
/// `m` NULL or a valid MediaData_t.
#[no_mangle]
pub unsafe extern "C" fn GetData(m: *mut MediaData_t) -> *mut c_char {
    catch_unwind(|| {
        if m.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: non-NULL and valid (caller contract).
        unsafe { (*m).data }
    })
    .unwrap_or(std::ptr::null_mut())
}

/// `int GetIndexLen(MediaData_t*)`
///
/// # Safety
/// `m` NULL or a valid MediaData_t.
#[no_mangle]
pub unsafe extern "C" fn GetIndexLen(m: *mut MediaData_t) -> c_int {
    catch_unwind(|| {
        if m.is_null() {
            return 0;
        }
        // SAFETY: non-NULL and valid (caller contract).
        unsafe { (*m).out_len }
    })
    .unwrap_or(0)
}

/// `int GetDataLen(MediaData_t*)`
///
/// # Safety
/// `m` NULL or a valid MediaData_t.
#[no_mangle]
pub unsafe extern "C" fn GetDataLen(m: *mut MediaData_t) -> c_int {
    catch_unwind(|| {
        if m.is_null() {
            return 0;
        }
        // SAFETY: non-NULL and valid (caller contract).
        unsafe { (*m).data_len }
    })
    .unwrap_or(0)
}

/// `int IsMediaDataFinish(MediaData_t*)`
///
/// # Safety
/// `m` NULL or a valid MediaData_t.
#[no_mangle]
pub unsafe extern "C" fn IsMediaDataFinish(m: *mut MediaData_t) -> c_int {
    catch_unwind(|| {
        if m.is_null() {
            return 0;
        }
        // SAFETY: non-NULL and valid (caller contract).
        unsafe { (*m).is_finish }
    })
    .unwrap_or(0)
}
