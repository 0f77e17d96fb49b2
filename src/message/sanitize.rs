//! Names that end up in file paths: the record's `filename` and `fileext` are untrusted.

/// The longest file name (in bytes) that [`MediaRef::filename`](super::MediaRef) holds.
pub const MAX_FILENAME_BYTES: usize = 200;

/// The longest extension (in bytes, without the dot) taken from a record.
pub const MAX_EXT_BYTES: usize = 16;

/// A string safe to use as ONE component of a file path:
///
/// - `/` and `\` become `_`; NUL, every other control character and the Unicode bidirectional
///   overrides (which make a name display differently from what it is) are dropped;
/// - runs of dots become one dot, and leading and trailing dots and whitespace are dropped (no
///   hidden files, no `.`, no `..` anywhere);
/// - at most `max_len` bytes, cut on a char boundary; a short extension (`.pdf`) is kept when the
///   name has to be shortened.
///
/// Returns `""` when nothing is left; the caller picks a name of its own then.
pub fn sanitize_file_component(s: &str, max_len: usize) -> String {
    let mut cleaned = String::with_capacity(s.len().min(max_len.saturating_mul(2)).min(4096));
    for c in s.chars() {
        match c {
            '/' | '\\' => cleaned.push('_'),
            '.' if cleaned.ends_with('.') => {}
            c if c.is_control() || is_bidi_control(c) => {}
            c => cleaned.push(c),
        }
    }
    let dot_or_space = |c: char| c == '.' || c.is_whitespace();
    let trimmed = cleaned.trim_matches(dot_or_space);
    if trimmed.len() <= max_len {
        return trimmed.to_string();
    }
    // Too long: keep the extension if it is short, and cut the stem.
    let ext = trimmed
        .rfind('.')
        .and_then(|p| trimmed.get(p..))
        .filter(|e| e.len() <= MAX_EXT_BYTES + 1 && e.len() * 2 <= max_len && !e.contains(char::is_whitespace));
    let ext = ext.unwrap_or_default();
    let stem = prefix_within(trimmed, max_len - ext.len()).trim_end_matches(dot_or_space);
    if stem.is_empty() {
        return prefix_within(trimmed, max_len).trim_end_matches(dot_or_space).to_string();
    }
    let mut out = String::with_capacity(stem.len() + ext.len());
    out.push_str(stem);
    out.push_str(ext);
    out
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn prefix_within(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

/// U+202A..U+202E and U+2066..U+2069 (and the marks U+200E, U+200F, U+061C).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// A record's file extension, if it is one: ASCII letters and digits only (after leading dots
/// and surrounding whitespace), 1..=[`MAX_EXT_BYTES`] long, lower-cased. `../../etc/passwd`,
/// `tar.gz` and `""` are not.
pub(crate) fn sanitize_ext(s: &str) -> Option<String> {
    let e = s.trim().trim_start_matches('.');
    (!e.is_empty() && e.len() <= MAX_EXT_BYTES && e.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| e.to_ascii_lowercase())
}

/// The extension of a file name (the part after its last dot), if [`sanitize_ext`] accepts it.
pub(crate) fn ext_of_filename(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let (stem, ext) = base.rsplit_once('.')?;
    if stem.trim_start_matches('.').is_empty() {
        return None; // ".bashrc" has no extension
    }
    sanitize_ext(ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_controls_and_leading_dots_go() {
        assert_eq!(sanitize_file_component("../../etc/passwd", 100), "_._etc_passwd");
        assert_eq!(sanitize_file_component("a..b...c", 100), "a.b.c");
        assert_eq!(sanitize_file_component("..", 100), "");
        assert_eq!(sanitize_file_component("name. ", 100), "name");
        assert_eq!(sanitize_file_component(" . .hidden", 100), "hidden");
        assert_eq!(sanitize_file_component("a\0b\u{1}c\u{7f}d\\e/f\n", 100), "abcd_e_f");
        assert_eq!(sanitize_file_component("evil\u{202E}fdp.exe", 100), "evilfdp.exe");
        assert_eq!(sanitize_file_component("报告.pdf", 100), "报告.pdf");
        assert_eq!(sanitize_file_component("", 100), "");
        assert_eq!(sanitize_file_component("abc", 0), "");
    }

    #[test]
    fn long_names_are_cut_on_a_char_boundary_keeping_the_extension() {
        let long = format!("{}.pdf", "文".repeat(5000));
        let s = sanitize_file_component(&long, 200);
        assert!(s.len() <= 200, "{}", s.len());
        assert!(s.ends_with(".pdf"));
        assert!(s.starts_with('文'));
        let s = sanitize_file_component(&"é".repeat(100), 7);
        assert_eq!(s, "ééé");
        // An extension that would eat the name is not kept.
        assert_eq!(sanitize_file_component("abcdefgh.pdf", 6), "abcdef");
        assert_eq!(sanitize_file_component(&format!("{}.{}", "a".repeat(50), "x".repeat(40)), 30), "a".repeat(30));
    }

    #[test]
    fn extensions() {
        assert_eq!(sanitize_ext("PDF").as_deref(), Some("pdf"));
        assert_eq!(sanitize_ext(".jpg ").as_deref(), Some("jpg"));
        assert_eq!(sanitize_ext("../../etc/passwd"), None);
        assert_eq!(sanitize_ext("tar.gz"), None);
        assert_eq!(sanitize_ext(""), None);
        assert_eq!(sanitize_ext(&"a".repeat(17)), None);
        assert_eq!(ext_of_filename("报告.Docx").as_deref(), Some("docx"));
        assert_eq!(ext_of_filename("a/b.c/readme"), None);
        assert_eq!(ext_of_filename(".bashrc"), None);
        assert_eq!(ext_of_filename("noext"), None);
    }
}
