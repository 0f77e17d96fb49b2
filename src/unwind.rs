//! Panics caught at the edges where the daemon calls code it does not trust to be panic-free (the
//! vendor SDK binding, FFmpeg, decryption of hostile input on a worker pool): the panic becomes a
//! typed error of the caller's module and the actor, the corp and the daemon go on (decision 1).
//!
//! One function, [`catch`], used by every such edge; [`panic_message`] gives the text of a payload
//! caught elsewhere (a rayon pool, a tokio task).

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`; a panic inside it becomes `Err(message)`.
///
/// `AssertUnwindSafe`: every caller drops whatever `f` touched on a panic (the session, the
/// decoder, the half-written temp file) or keeps only data that a panic cannot leave half-updated.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panic_message(payload.as_ref()))
}

/// The text of a caught panic payload.
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message() {
        assert_eq!(catch(|| 41 + 1), Ok(42));
        assert_eq!(catch(|| -> u8 { panic!("static text") }), Err("static text".to_string()));
        let n = 7;
        assert_eq!(catch(|| -> u8 { panic!("formatted {n}") }), Err("formatted 7".to_string()));
        assert_eq!(catch(|| std::panic::panic_any(5u32)), Err("non-string panic payload".to_string()));
    }
}
