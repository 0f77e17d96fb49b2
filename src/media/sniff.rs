//! Content sniffing: what a downloaded file really is, from its first bytes.
//!
//! The extension of a stored file comes from [`sniff`] first; the record's hint (`fileext`,
//! filename, already sanitised by `message`) is used when sniffing finds nothing, or when it only
//! finds a container that many formats share (ZIP for docx/xlsx/apk…, the OLE compound file for
//! doc/xls/ppt): see [`choose_ext`].

/// How many leading bytes [`sniff`] looks at.
pub const SNIFF_BYTES: usize = 16;

/// A type recognised by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// JPEG (`FF D8 FF`).
    Jpeg,
    /// PNG.
    Png,
    /// GIF87a / GIF89a.
    Gif,
    /// WebP (`RIFF....WEBP`).
    Webp,
    /// BMP (`BM`).
    Bmp,
    /// ISO base media (`....ftyp`): MP4, MOV, M4A.
    Mp4,
    /// AMR-NB (`#!AMR\n`).
    Amr,
    /// AMR-WB (`#!AMR-WB\n`).
    AmrWb,
    /// SILK v3, Tencent (`\x02#!SILK_V3`) or plain (`#!SILK_V3`) layout.
    Silk,
    /// MP3 (ID3 tag or an MPEG audio frame header).
    Mp3,
    /// WAV (`RIFF....WAVE`).
    Wav,
    /// Ogg.
    Ogg,
    /// PDF.
    Pdf,
    /// ZIP (also docx, xlsx, pptx, apk, jar…).
    Zip,
    /// OLE compound file (doc, xls, ppt, msg…).
    Ole,
    /// RAR.
    Rar,
    /// 7-Zip.
    SevenZip,
    /// gzip.
    Gzip,
}

impl Sniffed {
    /// The extension a file of this type gets (lowercase, no dot).
    pub fn ext(self) -> &'static str {
        match self {
            Sniffed::Jpeg => "jpg",
            Sniffed::Png => "png",
            Sniffed::Gif => "gif",
            Sniffed::Webp => "webp",
            Sniffed::Bmp => "bmp",
            Sniffed::Mp4 => "mp4",
            Sniffed::Amr => "amr",
            Sniffed::AmrWb => "awb",
            Sniffed::Silk => "silk",
            Sniffed::Mp3 => "mp3",
            Sniffed::Wav => "wav",
            Sniffed::Ogg => "ogg",
            Sniffed::Pdf => "pdf",
            Sniffed::Zip => "zip",
            Sniffed::Ole => "doc",
            Sniffed::Rar => "rar",
            Sniffed::SevenZip => "7z",
            Sniffed::Gzip => "gz",
        }
    }

    /// True for voice the daemon transcodes to MP3 (AMR-NB and SILK).
    pub fn is_transcodable_voice(self) -> bool {
        matches!(self, Sniffed::Amr | Sniffed::Silk)
    }

    /// Extensions of formats stored in this container: the record's hint wins when it is one.
    fn family(self) -> &'static [&'static str] {
        match self {
            Sniffed::Zip => &["docx", "xlsx", "pptx", "apk", "jar", "epub", "odt", "ods", "odp", "ipa", "xmind", "zip"],
            Sniffed::Ole => &["doc", "xls", "ppt", "msg", "wps", "et", "dps", "vsd"],
            Sniffed::Mp4 => &["mp4", "mov", "m4a", "m4v", "3gp"],
            Sniffed::Jpeg => &["jpg", "jpeg"],
            _ => &[],
        }
    }
}

/// The type of a file whose first bytes are `head` (at least [`SNIFF_BYTES`] when the file is
/// that long), or `None`.
pub fn sniff(head: &[u8]) -> Option<Sniffed> {
    let starts = |magic: &[u8]| head.starts_with(magic);
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    Some(if starts(b"\xFF\xD8\xFF") {
        Sniffed::Jpeg
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Sniffed::Png
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Sniffed::Gif
    } else if starts(b"RIFF") && at(8, b"WEBP") {
        Sniffed::Webp
    } else if starts(b"RIFF") && at(8, b"WAVE") {
        Sniffed::Wav
    } else if at(4, b"ftyp") {
        Sniffed::Mp4
    } else if starts(b"#!AMR\n") {
        Sniffed::Amr
    } else if starts(b"#!AMR-WB\n") {
        Sniffed::AmrWb
    } else if starts(b"#!SILK_V3") || starts(b"\x02#!SILK_V3") {
        Sniffed::Silk
    } else if starts(b"ID3") || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0 && head[1] & 0x06 != 0) {
        Sniffed::Mp3
    } else if starts(b"OggS") {
        Sniffed::Ogg
    } else if starts(b"%PDF-") {
        Sniffed::Pdf
    } else if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") {
        Sniffed::Zip
    } else if starts(b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1") {
        Sniffed::Ole
    } else if starts(b"Rar!\x1a\x07") {
        Sniffed::Rar
    } else if starts(b"7z\xBC\xAF\x27\x1C") {
        Sniffed::SevenZip
    } else if starts(b"\x1f\x8b") {
        Sniffed::Gzip
    } else if starts(b"BM") && head.len() >= 14 && at(6, b"\0\0\0\0") {
        Sniffed::Bmp
    } else {
        return None;
    })
}

/// The extension for a file sniffed as `sniffed` whose record suggests `hint` (a safe
/// `[a-z0-9]{1,16}` extension, or `""`): the sniffed type's, unless it is a container and the
/// hint names a format of that container; the hint when nothing was sniffed; `bin` when neither.
pub fn choose_ext(sniffed: Option<Sniffed>, hint: &str) -> String {
    let hint_ok =
        !hint.is_empty() && hint.len() <= 16 && hint.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    match sniffed {
        Some(s) if hint_ok && s.family().contains(&hint) => hint.to_string(),
        Some(s) => s.ext().to_string(),
        None if hint_ok => hint.to_string(),
        None => "bin".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/lib/emulator/fixtures");

    #[test]
    fn the_emulator_fixtures_are_recognised() {
        for (file, want) in [
            ("image.jpg", Sniffed::Jpeg),
            ("emotion.png", Sniffed::Png),
            ("emotion.gif", Sniffed::Gif),
            ("video.mp4", Sniffed::Mp4),
            ("voice.amr", Sniffed::Amr),
            ("voice_tencent.silk", Sniffed::Silk),
            ("voice_plain.silk", Sniffed::Silk),
        ] {
            let bytes = std::fs::read(format!("{FIXTURES}/{file}")).unwrap();
            assert_eq!(sniff(&bytes[..SNIFF_BYTES]), Some(want), "{file}");
        }
    }

    #[test]
    fn short_and_unknown_heads() {
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"\xFF"), None);
        assert_eq!(sniff(b"hello world, plain text"), None);
        assert_eq!(sniff(b"RIFF\0\0\0\0AVI "), None);
        assert_eq!(sniff(b"%PDF-1.7\n"), Some(Sniffed::Pdf));
        assert_eq!(sniff(b"ID3\x04\0"), Some(Sniffed::Mp3));
        assert_eq!(sniff(b"\xFF\xFB\x90\x00"), Some(Sniffed::Mp3));
    }

    #[test]
    fn containers_take_the_hint_of_their_family_only() {
        assert_eq!(choose_ext(Some(Sniffed::Zip), "docx"), "docx");
        assert_eq!(choose_ext(Some(Sniffed::Zip), "jpg"), "zip");
        assert_eq!(choose_ext(Some(Sniffed::Ole), "xls"), "xls");
        assert_eq!(choose_ext(Some(Sniffed::Jpeg), "png"), "jpg");
        assert_eq!(choose_ext(Some(Sniffed::Jpeg), "jpeg"), "jpeg");
        assert_eq!(choose_ext(None, "txt"), "txt");
        assert_eq!(choose_ext(None, ""), "bin");
        assert_eq!(choose_ext(None, "../etc"), "bin");
        assert_eq!(choose_ext(None, "TXT"), "bin");
    }
}
