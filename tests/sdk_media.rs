//! The media chunk loop against the emulator, in-process and through its `.so`: every media item
//! of the demo corp (including a multi-MB file served in 512 KiB chunks) arrives byte-exact, and
//! is streamed: no single write is larger than one chunk.

use crate::common;

use std::io::Write;
use std::sync::Arc;

use md5::{Digest, Md5};
use wework_msgaudit::sdk::{self, dynlib::VendorSdk, emulated::EmulatedSdk, FinanceSdk, NetOptions, MEDIA_CHUNK_BYTES};
use wework_msgaudit::secret::Secret;

/// A writer that hashes what it gets and remembers the largest write.
#[derive(Default)]
struct Md5Sink {
    md5: Md5,
    bytes: u64,
    largest_write: usize,
}

impl Write for Md5Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.md5.update(buf);
        self.bytes += buf.len() as u64;
        self.largest_write = self.largest_write.max(buf.len());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn download_everything(sdk: &dyn FinanceSdk) {
    let truth = emulator::Emulator::demo().truth(emulator::DEMO_CORPID);
    let media: Vec<_> = truth.iter().flat_map(|r| r.media.iter().map(move |m| (r.seq, m))).collect();
    assert!(media.len() >= 20, "demo corp has {} media items", media.len());
    assert!(media.iter().any(|(_, m)| m.item > 0), "nested media present");
    let big = media.iter().map(|(_, m)| m.size).max().unwrap();
    assert!(big > 2 * MEDIA_CHUNK_BYTES as u64, "a multi-chunk file is present ({big} B)");
    let mut session = sdk.open(emulator::DEMO_CORPID, &Secret::new(emulator::DEMO_SECRET)).unwrap();
    for (seq, item) in media {
        let mut sink = Md5Sink::default();
        let n = sdk::download_media(session.as_mut(), &item.sdkfileid, &NetOptions::default(), 3, &mut sink)
            .unwrap_or_else(|e| panic!("seq {seq} item {}: {e}", item.item));
        assert_eq!(n, item.size, "seq {seq} item {} size", item.item);
        assert_eq!(sink.bytes, item.size);
        assert_eq!(hex(&sink.md5.finalize()), item.md5, "seq {seq} item {} md5", item.item);
        assert!(
            sink.largest_write <= MEDIA_CHUNK_BYTES,
            "streamed in chunks, not whole ({} B write)",
            sink.largest_write
        );
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_demo_media_item_downloads_byte_exact_in_process() {
    download_everything(&EmulatedSdk::new(Arc::new(emulator::Emulator::demo())));
}

#[test]
fn every_demo_media_item_downloads_byte_exact_through_the_so() {
    download_everything(&VendorSdk::load(common::emulator_so()).unwrap());
}

#[test]
fn an_unknown_sdkfileid_is_a_permanent_error() {
    let sdk = VendorSdk::load(common::emulator_so()).unwrap();
    let mut session = sdk.open(emulator::DEMO_CORPID, &Secret::new(emulator::DEMO_SECRET)).unwrap();
    let err =
        sdk::download_media(session.as_mut(), "Tm90QVJlYWxGaWxlSWQ=", &NetOptions::default(), 3, &mut std::io::sink())
            .unwrap_err();
    assert_eq!(err.code(), Some(wework_msgaudit::sdk::SdkCode::BadFileId), "{err:?}");
    assert!(!err.is_retryable());
}
