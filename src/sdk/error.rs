//! [`SdkError`]: everything that can go wrong between the daemon and the vendor SDK.
//!
//! Two kinds of failure come back from the SDK: a non-zero return code (10000–10011, see
//! [`SdkCode`]), and a zero return code whose JSON body carries a non-zero `errcode`
//! (sdk-facts.md §2). Both are classified here so that callers decide between "retry soon",
//! "make a new handle" and "this corp is misconfigured" without knowing the codes.

use std::fmt;
use std::path::PathBuf;

/// The SDK's documented return codes (WeWorkFinanceSdk_C.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SdkCode {
    /// 10000: bad argument.
    BadArgument,
    /// 10001: network error (also: a wrong secret, an unknown corp, a failed gettoken).
    Network,
    /// 10002: the response could not be parsed.
    ParseFailure,
    /// 10003: system failure.
    System,
    /// 10004: key error while encrypting.
    EncryptKey,
    /// 10005: bad sdkfileid, or bad key blob.
    BadFileId,
    /// 10006: decryption failed.
    DecryptFailed,
    /// 10007: no private key for this message's key version.
    NoPrivateKey,
    /// 10008: bad encrypt_key.
    BadEncryptKey,
    /// 10009: this IP is not on the corp's whitelist.
    IpNotAllowed,
    /// 10010: the data has expired on the server.
    DataExpired,
    /// 10011: certificate error.
    Certificate,
    /// A code the header does not document.
    Other(i32),
}

impl SdkCode {
    /// Maps a raw return code; 0 is not an error and has no `SdkCode`.
    pub fn from_raw(code: i32) -> Self {
        match code {
            10000 => Self::BadArgument,
            10001 => Self::Network,
            10002 => Self::ParseFailure,
            10003 => Self::System,
            10004 => Self::EncryptKey,
            10005 => Self::BadFileId,
            10006 => Self::DecryptFailed,
            10007 => Self::NoPrivateKey,
            10008 => Self::BadEncryptKey,
            10009 => Self::IpNotAllowed,
            10010 => Self::DataExpired,
            10011 => Self::Certificate,
            other => Self::Other(other),
        }
    }

    /// The raw return code.
    pub fn raw(self) -> i32 {
        match self {
            Self::BadArgument => 10000,
            Self::Network => 10001,
            Self::ParseFailure => 10002,
            Self::System => 10003,
            Self::EncryptKey => 10004,
            Self::BadFileId => 10005,
            Self::DecryptFailed => 10006,
            Self::NoPrivateKey => 10007,
            Self::BadEncryptKey => 10008,
            Self::IpNotAllowed => 10009,
            Self::DataExpired => 10010,
            Self::Certificate => 10011,
            Self::Other(code) => code,
        }
    }

    /// What the code means, in words an operator understands.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::BadArgument => "bad argument",
            Self::Network => {
                "network error (with the real SDK also a wrong secret, an unknown corp or an IP not on the \
                 whitelist: the token request failed)"
            }
            Self::ParseFailure => "the server's response could not be parsed",
            Self::System => "system failure inside the SDK",
            Self::EncryptKey => "key error while encrypting",
            Self::BadFileId => "bad sdkfileid or key blob",
            Self::DecryptFailed => "decryption failed",
            Self::NoPrivateKey => "no private key for this message's key version",
            Self::BadEncryptKey => "bad encrypt_key",
            Self::IpNotAllowed => "this machine's IP is not on the corp's whitelist",
            Self::DataExpired => "the data has expired on the server",
            Self::Certificate => "certificate error",
            Self::Other(_) => "undocumented return code",
        }
    }

    /// 10001–10003 are transient (sdk-facts.md §1); every other code will fail the same way again.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Network | Self::ParseFailure | Self::System)
    }
}

impl fmt::Display for SdkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.raw(), self.meaning())
    }
}

/// JSON `errcode`s with a known meaning (ARCHITECTURE.md decision 11).
pub mod errcode {
    /// Access token expired: the SDK keeps answering this until the handle is replaced.
    pub const TOKEN_EXPIRED: i64 = 42001;
    /// Rate limited.
    pub const RATE_LIMITED: i64 = 45009;
    /// The system is busy.
    pub const BUSY: i64 = -1;
    /// Wrong secret.
    pub const BAD_SECRET: i64 = 40001;
    /// The corp's IP whitelist does not contain this machine.
    pub const IP_FORBIDDEN: i64 = 48002;
    /// IP not allowed (another spelling of the same problem).
    pub const IP_NOT_ALLOWED: i64 = 60020;
}

/// What a code means, in words an operator understands: an SDK return code (10000–10011, from
/// [`SdkCode::meaning`]) or a JSON `errcode` of the WeCom server. The one table of these words
/// (`doctor`, logs); unknown codes say so.
pub fn explain(code: i64) -> &'static str {
    if let Some(raw) = i32::try_from(code).ok().filter(|c| (10000..=10011).contains(c)) {
        return SdkCode::from_raw(raw).meaning();
    }
    match code {
        0 => "ok",
        errcode::BUSY => "the WeCom server is busy; try again later",
        errcode::BAD_SECRET => "invalid secret: not the 会话内容存档 secret of this corp",
        40013 => "invalid corpid",
        40014 | errcode::TOKEN_EXPIRED => "access token invalid or expired: a new SDK handle fetches a new one",
        errcode::RATE_LIMITED => "rate limit: API called too often; retried later",
        errcode::IP_FORBIDDEN => "API forbidden: this machine's IP is not allowed, or the app lacks the permission",
        errcode::IP_NOT_ALLOWED => "this machine's IP is not on the corp's trusted IP list",
        301042 => "this machine's IP is not on the 会话内容存档 IP whitelist (SDK rc 10009)",
        301048 => "the data has expired on the server (SDK rc 10010)",
        301052 => "the corp's 会话内容存档 service has expired or is not enabled",
        _ => "undocumented code",
    }
}

/// Every failure of the SDK layer.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The library file could not be opened.
    #[error("cannot load the WeCom finance SDK from {path}: {reason}")]
    Load {
        /// The path that was tried.
        path: PathBuf,
        /// What the dynamic loader said.
        reason: String,
    },
    /// The library lacks one of the 17 functions of the C API.
    #[error("{path} is not the WeCom finance SDK: symbol `{symbol}` is missing ({reason})")]
    MissingSymbol {
        /// The library.
        path: PathBuf,
        /// The function that could not be resolved.
        symbol: &'static str,
        /// What the dynamic loader said.
        reason: String,
    },
    /// The SDK returned a non-zero code from `call`.
    #[error("{call} returned {code}")]
    Code {
        /// Which C function.
        call: &'static str,
        /// Its return code.
        code: SdkCode,
    },
    /// The SDK returned 0 but the server's JSON says `errcode != 0`.
    #[error("{call}: server answered errcode {errcode} ({errmsg})")]
    Api {
        /// Which C function.
        call: &'static str,
        /// The JSON errcode.
        errcode: i64,
        /// The JSON errmsg, shortened.
        errmsg: String,
    },
    /// The SDK returned 0 with an empty body (a connection cut inside the HTTP headers).
    #[error("{call} returned 0 with an empty body (connection cut?)")]
    EmptyBody {
        /// Which C function.
        call: &'static str,
    },
    /// The SDK returned 0 with a body that is not the expected JSON.
    #[error("{call} returned 0 with an unparsable body: {reason}")]
    BadBody {
        /// Which C function.
        call: &'static str,
        /// Why it did not parse (never the body itself).
        reason: String,
    },
    /// An argument was refused before it could reach the SDK (it might have crashed it).
    #[error("refused before calling {call}: {reason}")]
    InvalidInput {
        /// Which C function would have been called.
        call: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// The media download loop broke the protocol (e.g. no next index before the last chunk).
    #[error("media download protocol error: {0}")]
    Protocol(&'static str),
    /// Writing downloaded media bytes failed.
    #[error("writing media data failed: {0}")]
    Write(#[source] std::io::Error),
    /// Rust code behind the binding panicked (the in-process emulator); the panic was caught.
    #[error("{call} panicked: {message}")]
    Panicked {
        /// Which call.
        call: &'static str,
        /// The panic message.
        message: String,
    },
    /// The `sdk-worker` process died during the call: the vendor SDK crashed (segfault, abort).
    /// Retryable until the same call (same corp, same page or file) crashed `limit` times in a
    /// row; then it is permanent, so the corp is marked failing and the media item fails.
    #[error("{}", crashed_text(call, how, at, *crashes, *limit))]
    Crashed {
        /// Which call.
        call: &'static str,
        /// How the process ended (`was killed by signal 6 (SIGABRT)`).
        how: String,
        /// Where: `the page after seq 100`, `sdkfileid Q2lS…`.
        at: String,
        /// Crashes of this call in a row, this one included.
        crashes: u32,
        /// Crashes in a row after which the call is not retried.
        limit: u32,
    },
    /// The call did not return within the SDK's worst case plus a grace period: it was cut off
    /// (the `sdk-worker` process killed, or, in-process, the call abandoned on its thread).
    #[error("{call} hung for more than {after:?} at {at}; {what}")]
    Hung {
        /// Which call.
        call: &'static str,
        /// The deadline that passed.
        after: std::time::Duration,
        /// Where (as in [`SdkError::Crashed`]).
        at: String,
        /// What was done about it.
        what: &'static str,
    },
    /// The `sdk-worker` process could not be started or broke the protocol.
    #[error("the sdk-worker process failed: {0}")]
    Worker(String),
}

fn crashed_text(call: &str, how: &str, at: &str, crashes: u32, limit: u32) -> String {
    if crashes >= limit {
        format!(
            "the vendor SDK crashed {crashes} times in a row at {at} ({call}; the sdk-worker process {how}); \
             not called again for a while"
        )
    } else {
        format!(
            "the vendor SDK crashed at {at} ({call}; the sdk-worker process {how}); crash {crashes} of {limit} allowed"
        )
    }
}

impl SdkError {
    /// True when the same call may succeed if it is simply tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Code { code, .. } => code.is_retryable(),
            Self::Api { errcode, .. } => {
                matches!(*errcode, errcode::RATE_LIMITED | errcode::TOKEN_EXPIRED | errcode::BUSY)
            }
            Self::EmptyBody { .. } | Self::BadBody { .. } | Self::Protocol(_) | Self::Write(_) => true,
            Self::Load { .. } | Self::MissingSymbol { .. } | Self::InvalidInput { .. } | Self::Panicked { .. } => false,
            Self::Crashed { crashes, limit, .. } => crashes < limit,
            Self::Hung { .. } | Self::Worker(_) => true,
        }
    }

    /// True when the handle must be destroyed and a new one made before the next call
    /// (errcode 42001: the SDK keeps an expired token until its own cached expiry passes).
    pub fn needs_new_handle(&self) -> bool {
        matches!(self, Self::Api { errcode: errcode::TOKEN_EXPIRED, .. })
            || matches!(self, Self::Panicked { .. } | Self::Crashed { .. } | Self::Hung { .. } | Self::Worker(_))
    }

    /// The SDK return code, when there is one.
    pub fn code(&self) -> Option<SdkCode> {
        match self {
            Self::Code { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// A short stable label for metrics (`10001`, `errcode_45009`, `empty_body`, …).
    pub fn metric_label(&self) -> String {
        match self {
            Self::Code { code, .. } => code.raw().to_string(),
            Self::Api { errcode, .. } => format!("errcode_{errcode}"),
            Self::EmptyBody { .. } => "empty_body".into(),
            Self::BadBody { .. } => "bad_body".into(),
            Self::InvalidInput { .. } => "invalid_input".into(),
            Self::Protocol(_) => "protocol".into(),
            Self::Write(_) => "write".into(),
            Self::Panicked { .. } => "panic".into(),
            Self::Crashed { .. } => "crashed".into(),
            Self::Hung { .. } => "hung".into(),
            Self::Worker(_) => "worker".into(),
            Self::Load { .. } | Self::MissingSymbol { .. } => "load".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_classify() {
        for raw in 10000..=10011 {
            let code = SdkCode::from_raw(raw);
            assert_eq!(code.raw(), raw);
            assert!(!matches!(code, SdkCode::Other(_)), "{raw} is documented");
            assert_eq!(code.is_retryable(), (10001..=10003).contains(&raw), "{raw}");
        }
        assert_eq!(SdkCode::from_raw(12345), SdkCode::Other(12345));
        assert!(!SdkCode::Other(12345).is_retryable());
    }

    #[test]
    fn explain_covers_return_codes_and_errcodes() {
        for raw in 10000..=10011 {
            assert_eq!(explain(raw), SdkCode::from_raw(raw as i32).meaning());
        }
        assert!(explain(10001).contains("wrong secret"));
        assert!(explain(10009).contains("whitelist"));
        assert!(explain(40001).contains("secret"));
        assert!(explain(48002).contains("IP"));
        assert!(explain(60020).contains("IP"));
        assert!(explain(301042).contains("whitelist"));
        assert!(explain(45009).contains("rate limit"));
        assert!(explain(42001).contains("expired"));
        assert_eq!(explain(12345), "undocumented code");
    }

    #[test]
    fn api_errcodes_classify() {
        let api = |errcode| SdkError::Api { call: "GetChatData", errcode, errmsg: String::new() };
        assert!(api(45009).is_retryable());
        assert!(api(42001).is_retryable());
        assert!(api(42001).needs_new_handle());
        assert!(!api(40001).is_retryable());
        assert!(!api(48002).is_retryable());
        assert!(!api(301052).is_retryable());
        assert_eq!(api(48002).metric_label(), "errcode_48002");
        let e = SdkError::Code { call: "GetChatData", code: SdkCode::Network };
        let crashed = |crashes| SdkError::Crashed {
            call: "GetChatData",
            how: "was killed by signal 6 (SIGABRT)".into(),
            at: "the page after seq 100".into(),
            crashes,
            limit: 3,
        };
        assert!(crashed(2).is_retryable() && crashed(2).needs_new_handle());
        assert!(!crashed(3).is_retryable(), "the third crash in a row is permanent");
        assert!(crashed(3).to_string().contains("crashed 3 times in a row at the page after seq 100"));
        assert_eq!(crashed(1).metric_label(), "crashed");
        assert_eq!(
            e.to_string(),
            "GetChatData returned 10001 (network error (with the real SDK also a wrong secret, an unknown corp or an \
             IP not on the whitelist: the token request failed))"
        );
    }
}
