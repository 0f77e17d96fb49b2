//! RSA private keys as users paste them.
//!
//! [`parse_private_key`] accepts PKCS#1 (`BEGIN RSA PRIVATE KEY`) and PKCS#8 (`BEGIN PRIVATE KEY`)
//! as PEM, raw DER, or a bare base64 body without header lines (how the Java version stored
//! `corplist.prikey`), with any whitespace, CRLF, indentation, literal `\n` escapes and JSON `\/`
//! escapes, and surrounding quotes. Without headers, PKCS#1 and PKCS#8 are told apart from the DER.
//!
//! A parsed [`PrivateKey`] decrypts with aws-lc-rs when aws-lc-rs accepts the key (RSA 2048–8192
//! bits); smaller keys (1024–2047 bits) fall back to the `rsa` crate (ARCHITECTURE.md decision 5).
//!
//! No error message and no `Debug`/`Display` output ever contains key material.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::{Pkcs1PrivateDecryptingKey, PrivateDecryptingKey};
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use rsa::pkcs1::der::Decode as _;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePublicKey as _, SecretDocument};
use zeroize::Zeroizing;

use super::CryptoError;

/// Smallest modulus accepted: PKCS#1 v1.5 needs `k ≥ |m| + 11` bytes and the random key is an
/// 88-character base64 string, so anything under ~800 bits cannot work; 1024 is the floor.
pub const MIN_BITS: usize = 1024;
/// Largest modulus accepted (aws-lc-rs' limit).
pub const MAX_BITS: usize = 8192;
/// Keys of at least this size are decrypted by aws-lc-rs; smaller ones by the `rsa` crate.
pub const AWS_LC_MIN_BITS: usize = 2048;

/// Why a private key could not be used. Messages say what was wrong, never what the key was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Nothing but whitespace/quotes.
    #[error("the private key is empty")]
    Empty,
    /// Neither DER nor UTF-8 text.
    #[error("the private key is neither DER nor UTF-8 text (PEM or base64)")]
    NotText,
    /// A PEM `-----BEGIN …-----` line without its `-----END …-----`.
    #[error("PEM block `{label}` has no matching END line")]
    PemUnterminated {
        /// The PEM label.
        label: String,
    },
    /// A backslash escape other than `\n`, `\r`, `\t`, `\/`, `\\`.
    #[error("unexpected backslash escape at character {offset}")]
    BadEscape {
        /// Character offset in the input.
        offset: usize,
    },
    /// The body is not base64.
    #[error("not base64: invalid character at byte {offset} of the base64 body")]
    NotBase64 {
        /// Byte offset inside the (whitespace-stripped) base64 body.
        offset: usize,
    },
    /// The body is base64 but its length or padding is invalid.
    #[error("not base64: {0}")]
    Base64Length(&'static str),
    /// A public key or certificate was given where a private key is needed.
    #[error("this is a {0}, not a private key: paste the private key")]
    NotPrivate(&'static str),
    /// A PEM block of a kind this program does not read.
    #[error("unsupported PEM block `{label}`: expected `RSA PRIVATE KEY` (PKCS#1) or `PRIVATE KEY` (PKCS#8)")]
    UnsupportedPem {
        /// The PEM label (sanitised).
        label: String,
    },
    /// Encrypted PKCS#8 or legacy encrypted PEM.
    #[error(
        "encrypted private keys are not supported: decrypt it first, e.g. `openssl pkey -in enc.pem -out plain.pem`"
    )]
    Encrypted,
    /// PKCS#8 for another algorithm (EC, Ed25519, …).
    #[error("not an RSA key: the PKCS#8 algorithm is {oid}")]
    NotRsa {
        /// The algorithm OID found.
        oid: String,
    },
    /// The DER is neither PKCS#1 `RSAPrivateKey` nor PKCS#8 `PrivateKeyInfo`.
    #[error("not an RSA private key: the DER is neither PKCS#1 RSAPrivateKey nor PKCS#8 PrivateKeyInfo")]
    UnknownStructure,
    /// The DER started like the expected structure but did not parse.
    #[error("DER parse failed ({format}): {detail}")]
    Der {
        /// `PKCS#1` or `PKCS#8`.
        format: &'static str,
        /// What the DER decoder said (positions and tags only).
        detail: String,
    },
    /// Modulus smaller than [`MIN_BITS`].
    #[error("key too small: {bits} bits (at least {MIN_BITS} required)")]
    TooSmall {
        /// Modulus size.
        bits: usize,
    },
    /// Modulus larger than [`MAX_BITS`].
    #[error("key too large: {bits} bits (at most {MAX_BITS} supported)")]
    TooLarge {
        /// Modulus size.
        bits: usize,
    },
    /// Structurally fine but no backend would take it (inconsistent components, bad exponent…).
    #[error("RSA key rejected: {0}")]
    Rejected(String),
}

/// Which implementation decrypts.
enum Backend {
    /// aws-lc-rs (2048–8192 bits): fast, constant-time.
    AwsLc(Pkcs1PrivateDecryptingKey),
    /// The `rsa` crate (1024–2047 bits), with blinding (see [`SystemRng`]).
    RustCrypto(Box<rsa::RsaPrivateKey>),
}

/// A parsed RSA private key, ready for PKCS#1 v1.5 decryption. `Send + Sync`; share it in an
/// `Arc`. `Debug`/`Display` show only the size and the public fingerprint.
pub struct PrivateKey {
    backend: Backend,
    bits: usize,
    public_der: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey").field("bits", &self.bits).finish_non_exhaustive()
    }
}

impl fmt::Display for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RSA-{} {}", self.bits, self.fingerprint())
    }
}

impl PrivateKey {
    /// Modulus size in bits.
    #[must_use]
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Size of a ciphertext (and of the modulus) in bytes.
    #[must_use]
    pub fn size_bytes(&self) -> usize {
        self.bits.div_ceil(8)
    }

    /// The public key as DER `SubjectPublicKeyInfo`.
    #[must_use]
    pub fn public_key_der(&self) -> Vec<u8> {
        self.public_der.clone()
    }

    /// `sha256:` + the first 16 hex digits of SHA-256(SubjectPublicKeyInfo). Safe to log.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.public_der);
        let mut s = String::from("sha256:");
        for b in d.as_ref().iter().take(8) {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    /// Which implementation decrypts with this key: `"aws-lc-rs"` or `"rsa"`.
    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::AwsLc(_) => "aws-lc-rs",
            Backend::RustCrypto(_) => "rsa",
        }
    }

    /// RSA PKCS#1 v1.5 decryption.
    ///
    /// # Errors
    /// [`CryptoError::CorruptCiphertext`] if the ciphertext is not exactly the modulus size;
    /// [`CryptoError::RsaDecrypt`] if the padding check fails (wrong key or corrupt data).
    pub fn decrypt_pkcs1(&self, ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if ciphertext.len() != self.size_bytes() {
            return Err(CryptoError::CorruptCiphertext { reason: "RSA ciphertext length differs from the key size" });
        }
        match &self.backend {
            Backend::AwsLc(key) => {
                let mut out = Zeroizing::new(vec![0u8; key.min_output_size()]);
                let n = key.decrypt(ciphertext, &mut out).map_err(|_| CryptoError::RsaDecrypt)?.len();
                out.truncate(n);
                Ok(out)
            }
            Backend::RustCrypto(key) => key
                .decrypt_blinded(&mut SystemRng, rsa::Pkcs1v15Encrypt, ciphertext)
                .map(Zeroizing::new)
                .map_err(|_| CryptoError::RsaDecrypt),
        }
    }
}

/// `rand_core` 0.6 adaptor over aws-lc-rs' system RNG, for the `rsa` crate's blinding.
struct SystemRng;

impl rsa::rand_core::RngCore for SystemRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // aws-lc's RNG does not fail in practice; if it ever did, the blinding factor would be
        // weaker but decryption stays correct, which is better than a panic.
        let _ = aws_lc_rs::rand::fill(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        aws_lc_rs::rand::fill(dest).map_err(|_| {
            rsa::rand_core::Error::from(
                std::num::NonZeroU32::new(rsa::rand_core::Error::CUSTOM_START).unwrap_or(std::num::NonZeroU32::MIN),
            )
        })
    }
}

impl rsa::rand_core::CryptoRng for SystemRng {}

/// DER flavour found in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Pkcs1,
    Pkcs8,
    EncryptedPkcs8,
}

/// Parse a private key in any of the forms users paste (see the module docs).
///
/// # Errors
/// A [`KeyError`] saying what was wrong; it never contains key material.
pub fn parse_private_key(input: &[u8]) -> Result<PrivateKey, KeyError> {
    let (der, hint) = decode_to_der(input)?;
    let format = match hint {
        Some(f) => f,
        None => sniff_der(&der).ok_or(KeyError::UnknownStructure)?,
    };
    build(&der, format)
}

/// Keys already parsed, by the SHA-256 of the bytes they were parsed from. Weak: a key lives as
/// long as a keyring holds it, not longer because of this map.
static PARSED: LazyLock<Mutex<HashMap<[u8; 32], Weak<PrivateKey>>>> = LazyLock::new(Mutex::default);

/// [`parse_private_key`], once per distinct input while the key is in use: the same bytes give
/// the same key. The corp sources are re-read every `reload_interval`, and parsing checks the
/// key (RSA_check_key, about 2 ms for 2048 bits): with 5,000 corps every reload took ~10 s of
/// CPU (a third of a core at the default 30 s). Errors are not remembered.
///
/// # Errors
/// As [`parse_private_key`].
pub fn parse_private_key_shared(input: &[u8]) -> Result<Arc<PrivateKey>, KeyError> {
    let digest: [u8; 32] = {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, input);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    };
    let known = PARSED.lock().unwrap_or_else(|e| e.into_inner()).get(&digest).and_then(Weak::upgrade);
    if let Some(key) = known {
        return Ok(key);
    }
    let key = Arc::new(parse_private_key(input)?);
    let mut parsed = PARSED.lock().unwrap_or_else(|e| e.into_inner());
    // Forget keys nobody holds any more, whenever the map has doubled since the last time.
    if parsed.len() >= 64 && parsed.len().is_power_of_two() {
        parsed.retain(|_, k| k.strong_count() > 0);
    }
    parsed.insert(digest, Arc::downgrade(&key));
    Ok(key)
}

/// Looks like raw DER: a SEQUENCE with a long-form length (every RSA key is > 127 bytes).
fn looks_like_der(input: &[u8]) -> bool {
    matches!(input, [0x30, 0x81..=0x84, ..])
}

fn decode_to_der(input: &[u8]) -> Result<(Zeroizing<Vec<u8>>, Option<Format>), KeyError> {
    if looks_like_der(input) {
        return Ok((Zeroizing::new(input.to_vec()), None));
    }
    let text = std::str::from_utf8(input).map_err(|_| KeyError::NotText)?;
    let text = unescape(text)?;
    let trimmed = strip_quotes(&text);
    if trimmed.is_empty() {
        return Err(KeyError::Empty);
    }
    let (body, hint) = match find_pem(trimmed)? {
        Some((label, body)) => (body, Some(format_for_label(&label, body)?)),
        None => (trimmed, None),
    };
    let der = decode_base64_body(body)?;
    if der.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok((der, hint))
}

/// Replace the two-character escapes `\n`, `\r`, `\t` with whitespace and `\/` with `/`, as
/// left by JSON/SQL exports. Runs of backslashes (double escaping) count as one.
fn unescape(text: &str) -> Result<Zeroizing<String>, KeyError> {
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        while matches!(chars.peek(), Some((_, '\\'))) {
            chars.next();
        }
        match chars.next() {
            Some((_, 'n' | 'r' | 't')) => out.push('\n'),
            Some((_, '/')) => out.push('/'),
            // A trailing backslash (line continuation) is whitespace.
            None => out.push('\n'),
            Some((_, c)) if c.is_whitespace() => out.push('\n'),
            Some(_) => return Err(KeyError::BadEscape { offset: i }),
        }
    }
    Ok(out)
}

/// Trim whitespace and any number of surrounding quote characters.
fn strip_quotes(s: &str) -> &str {
    const QUOTES: &[char] = &['"', '\'', '`'];
    let mut s = s.trim();
    loop {
        let t = s.trim_matches(QUOTES).trim();
        if t.len() == s.len() {
            return s;
        }
        s = t;
    }
}

/// Find the first PEM block that is a private key; else report what kind of block was found.
/// Returns `(label, body)`; `None` when there is no `-----BEGIN` at all.
fn find_pem(text: &str) -> Result<Option<(String, &str)>, KeyError> {
    const BEGIN: &str = "-----BEGIN ";
    let mut rest = text;
    let mut first_other: Option<String> = None;
    let mut found_any = false;
    while let Some(at) = rest.find(BEGIN) {
        found_any = true;
        let after = rest.get(at + BEGIN.len()..).unwrap_or("");
        let Some(label_end) = after.find("-----") else {
            return Err(KeyError::PemUnterminated { label: "?".to_owned() });
        };
        let raw_label = after.get(..label_end).unwrap_or("");
        let label = sanitize_label(raw_label);
        let body_start = after.get(label_end + 5..).unwrap_or("");
        let end_marker = format!("-----END {raw_label}-----");
        let Some(body_end) = body_start.find(&end_marker) else {
            return Err(KeyError::PemUnterminated { label });
        };
        let body = body_start.get(..body_end).unwrap_or("");
        if label.contains("PRIVATE KEY") {
            return Ok(Some((label, body)));
        }
        if first_other.is_none() {
            first_other = Some(label);
        }
        rest = body_start.get(body_end + end_marker.len()..).unwrap_or("");
    }
    match first_other {
        Some(label) if found_any => Ok(Some((label, ""))),
        _ => Ok(None),
    }
}

/// Keep a PEM label only if it looks like one (so that nothing else is ever echoed).
fn sanitize_label(raw: &str) -> String {
    let raw = raw.trim();
    if !raw.is_empty()
        && raw.len() <= 40
        && raw.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ')
    {
        raw.to_owned()
    } else {
        "<unrecognised>".to_owned()
    }
}

fn format_for_label(label: &str, body: &str) -> Result<Format, KeyError> {
    match label {
        "RSA PRIVATE KEY" => {
            // Legacy OpenSSL encryption: "Proc-Type: 4,ENCRYPTED" header inside the block.
            if body.contains("ENCRYPTED") || body.contains("DEK-Info") {
                Err(KeyError::Encrypted)
            } else {
                Ok(Format::Pkcs1)
            }
        }
        "PRIVATE KEY" => Ok(Format::Pkcs8),
        "ENCRYPTED PRIVATE KEY" => Err(KeyError::Encrypted),
        "PUBLIC KEY" | "RSA PUBLIC KEY" => Err(KeyError::NotPrivate("public key")),
        "CERTIFICATE" | "TRUSTED CERTIFICATE" | "X509 CERTIFICATE" => Err(KeyError::NotPrivate("certificate")),
        "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => Err(KeyError::NotPrivate("certificate request")),
        "EC PRIVATE KEY" | "DSA PRIVATE KEY" | "OPENSSH PRIVATE KEY" => {
            Err(KeyError::UnsupportedPem { label: label.to_owned() })
        }
        other => Err(KeyError::UnsupportedPem { label: other.to_owned() }),
    }
}

/// Decode a base64 body, ignoring all whitespace; accepts the URL-safe alphabet too.
fn decode_base64_body(body: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    const LAX: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let mut compact = Zeroizing::new(Vec::with_capacity(body.len()));
    for b in body.bytes() {
        match b {
            b if b.is_ascii_whitespace() => {}
            b'-' => compact.push(b'+'),
            b'_' => compact.push(b'/'),
            b => compact.push(b),
        }
    }
    if compact.is_empty() {
        return Err(KeyError::Empty);
    }
    if let Some(pos) = compact.iter().position(|&b| !(b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='))
    {
        return Err(KeyError::NotBase64 { offset: pos });
    }
    LAX.decode(&*compact).map(Zeroizing::new).map_err(|e| match e {
        base64::DecodeError::InvalidByte(offset, _) => KeyError::NotBase64 { offset },
        base64::DecodeError::InvalidLength(_) => KeyError::Base64Length("invalid length (truncated?)"),
        base64::DecodeError::InvalidLastSymbol(_, _) => KeyError::Base64Length("invalid last symbol (truncated?)"),
        base64::DecodeError::InvalidPadding => KeyError::Base64Length("invalid padding"),
    })
}

/// DER header reader: returns `(tag, declared content length, bytes after the header)`.
fn der_header(buf: &[u8]) -> Option<(u8, usize, &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, rest) = rest.split_first()?;
    if first < 0x80 {
        return Some((tag, usize::from(first), rest));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let bytes = rest.get(..n)?;
    let len = bytes.iter().try_fold(0usize, |acc, &b| acc.checked_mul(256)?.checked_add(usize::from(b)))?;
    Some((tag, len, rest.get(n..)?))
}

/// Minimal DER TLV reader: returns `(tag, content, rest)`; `None` if the content is cut short.
fn der_tlv(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (tag, len, rest) = der_header(buf)?;
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

/// Like [`der_tlv`] but returns whatever part of the content is present when the buffer is
/// shorter than the declared length: `(tag, available content)`.
fn der_header_lenient(buf: &[u8]) -> Option<(u8, &[u8])> {
    let (tag, len, rest) = der_header(buf)?;
    Some((tag, rest.get(..len).unwrap_or(rest)))
}

/// Tell PKCS#1 `RSAPrivateKey`, PKCS#8 `PrivateKeyInfo` and `EncryptedPrivateKeyInfo` apart by
/// the shape of the outer SEQUENCE. Only the first element and the tag of the second are needed,
/// so a truncated key is still recognised (and then rejected by the DER parser, which says that
/// it is incomplete).
fn sniff_der(der: &[u8]) -> Option<Format> {
    let (tag, content) = der_header_lenient(der)?;
    if tag != 0x30 {
        return None;
    }
    let (t1, _, rest) = der_tlv(content)?;
    let t2 = *rest.first()?;
    match (t1, t2) {
        // version INTEGER, then AlgorithmIdentifier SEQUENCE
        (0x02, 0x30) => Some(Format::Pkcs8),
        // version INTEGER, then modulus INTEGER
        (0x02, 0x02) => Some(Format::Pkcs1),
        // encryptionAlgorithm SEQUENCE, then encryptedData OCTET STRING
        (0x30, 0x04) => Some(Format::EncryptedPkcs8),
        _ => None,
    }
}

fn der_error(format: &'static str, e: &rsa::pkcs1::der::Error) -> KeyError {
    KeyError::Der { format, detail: e.to_string() }
}

fn modulus_bits(bytes: &[u8]) -> usize {
    let bytes = match bytes.iter().position(|&b| b != 0) {
        Some(i) => bytes.get(i..).unwrap_or(&[]),
        None => return 0,
    };
    let lead = bytes.first().map_or(0, |b| b.leading_zeros() as usize);
    (bytes.len() * 8).saturating_sub(lead)
}

fn build(der: &[u8], format: Format) -> Result<PrivateKey, KeyError> {
    // `pkcs8_der` is what aws-lc-rs takes; `pkcs1` borrows the inner RSAPrivateKey.
    let pkcs8_doc: Option<SecretDocument>;
    let (pkcs8_der, pkcs1): (&[u8], &[u8]) = match format {
        Format::EncryptedPkcs8 => return Err(KeyError::Encrypted),
        Format::Pkcs8 => {
            let pki = rsa::pkcs8::PrivateKeyInfo::try_from(der).map_err(|e| match e {
                rsa::pkcs8::Error::Asn1(e) => der_error("PKCS#8", &e),
                other => KeyError::Der { format: "PKCS#8", detail: other.to_string() },
            })?;
            if pki.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
                return Err(KeyError::NotRsa { oid: pki.algorithm.oid.to_string() });
            }
            (der, pki.private_key)
        }
        Format::Pkcs1 => {
            // Wrap the PKCS#1 structure in a PKCS#8 PrivateKeyInfo (zeroized on drop).
            let pki = rsa::pkcs8::PrivateKeyInfo::new(rsa::pkcs1::ALGORITHM_ID, der);
            let doc = SecretDocument::try_from(&pki).map_err(|e| match e {
                rsa::pkcs8::Error::Asn1(e) => der_error("PKCS#1", &e),
                other => KeyError::Der { format: "PKCS#1", detail: other.to_string() },
            })?;
            pkcs8_doc = Some(doc);
            let bytes = pkcs8_doc.as_ref().map_or(&[][..], SecretDocument::as_bytes);
            (bytes, der)
        }
    };

    let parsed = rsa::pkcs1::RsaPrivateKey::from_der(pkcs1).map_err(|e| der_error("PKCS#1", &e))?;
    let bits = modulus_bits(parsed.modulus.as_bytes());
    if bits < MIN_BITS {
        return Err(KeyError::TooSmall { bits });
    }
    if bits > MAX_BITS {
        return Err(KeyError::TooLarge { bits });
    }

    match PrivateDecryptingKey::from_pkcs8(pkcs8_der) {
        Ok(key) => {
            let public_der = key
                .public_key()
                .as_der()
                .map(|d: PublicKeyX509Der<'static>| d.as_ref().to_vec())
                .map_err(|_| KeyError::Rejected("cannot encode the public key".to_owned()))?;
            let bits = key.key_size_bits();
            let key = Pkcs1PrivateDecryptingKey::new(key)
                .map_err(|_| KeyError::Rejected("aws-lc-rs refused the key".to_owned()))?;
            Ok(PrivateKey { backend: Backend::AwsLc(key), bits, public_der })
        }
        Err(aws_err) if bits < AWS_LC_MIN_BITS => {
            let key = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8_der)
                .map_err(|e| KeyError::Rejected(format!("rsa crate: {e}; aws-lc-rs: {aws_err}")))?;
            key.validate().map_err(|e| KeyError::Rejected(format!("inconsistent key: {e}")))?;
            let public_der = key
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| KeyError::Rejected(format!("cannot encode the public key: {e}")))?
                .into_vec();
            Ok(PrivateKey { backend: Backend::RustCrypto(Box::new(key)), bits, public_der })
        }
        Err(aws_err) => Err(KeyError::Rejected(format!("aws-lc-rs: {aws_err}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_handles_json_and_sql_forms() {
        assert_eq!(&*unescape(r"a\nb\r\nc\/d").unwrap(), "a\nb\n\nc/d");
        assert_eq!(&*unescape(r"a\\nb").unwrap(), "a\nb");
        assert!(matches!(unescape(r"a\qb"), Err(KeyError::BadEscape { offset: 1 })));
    }

    #[test]
    fn strip_quotes_nested() {
        assert_eq!(strip_quotes(" ' \"abc\" ' "), "abc");
        assert_eq!(strip_quotes("abc"), "abc");
    }

    #[test]
    fn der_tlv_never_panics_on_short_input() {
        for len in 0..8 {
            let buf = [0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01];
            let _ = der_tlv(&buf[..len]);
            let _ = sniff_der(&buf[..len]);
        }
        assert_eq!(sniff_der(&[0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]), Some(Format::Pkcs1));
    }

    #[test]
    fn modulus_bits_counts_leading_zeros() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(modulus_bits(&[0x01]), 1);
        assert_eq!(modulus_bits(&[]), 0);
    }

    #[test]
    fn shared_parse_gives_the_same_key_while_it_is_held() {
        let pem = emulator::demo_private_key_pem(1).unwrap();
        let a = parse_private_key_shared(pem.as_bytes()).unwrap();
        let b = parse_private_key_shared(pem.as_bytes()).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "parsed once");
        // Other bytes for the same key: parsed on their own, the same key.
        let crlf = pem.replace('\n', "\r\n");
        let c = parse_private_key_shared(crlf.as_bytes()).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(a.fingerprint(), c.fingerprint());
        // Released: the map keeps no key alive, the next parse makes a new one.
        let weak = Arc::downgrade(&a);
        drop((a, b));
        assert!(weak.upgrade().is_none());
        let d = parse_private_key_shared(pem.as_bytes()).unwrap();
        assert_eq!(d.fingerprint(), c.fingerprint());
        // Errors are errors every time.
        assert!(parse_private_key_shared(b"not a key").is_err());
        assert!(parse_private_key_shared(b"not a key").is_err());
    }
}
