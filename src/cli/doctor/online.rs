//! Check 7 (`--online`): one `GetChatData` per corp with its configured proxy and timeout,
//! then every fetched record decrypted with the corp's keys; what the SDK prints around a
//! failed call is read for an `errcode` and named, never shown.

use super::install::corp_subject;
use super::report::Report;
use crate::config::Config;
use crate::corps::CorpSpec;
use crate::sdk::{explain, FinanceSdk, NetOptions, SdkError};
use crate::secret::redact_url;

/// Records fetched by the online check (and decrypted to check the keys).
pub(super) const ONLINE_LIMIT: u32 = 100;

/// Check 7: one GetChatData per corp.
pub(super) fn check_online(r: &mut Report, cfg: &Config, sdk: Option<&dyn FinanceSdk>, corps: &[CorpSpec]) {
    const SUBJECT: &str = "online";
    let Some(sdk) = sdk else {
        r.skip(SUBJECT, "no GetChatData call: the SDK did not load");
        return;
    };
    if corps.is_empty() {
        r.skip(SUBJECT, "no GetChatData call: no corp");
        return;
    }
    let proxy = (!cfg.sdk.proxy.is_empty()).then(|| cfg.sdk.proxy.clone());
    let via = proxy.as_deref().map(|p| format!(" via proxy {}", redact_url(p))).unwrap_or_default();
    for spec in corps {
        let net = NetOptions {
            proxy: proxy.clone(),
            proxy_password: (!cfg.sdk.proxy_password.is_empty()).then(|| cfg.sdk.proxy_password.clone()),
            timeout: spec.timeout,
        };
        let call = || -> Result<Vec<crate::sdk::EncryptedRecord>, SdkError> {
            let mut session = sdk.open(spec.corpid.as_str(), &spec.secret)?;
            Ok(session.get_chat_data(0, ONLINE_LIMIT, &net)?.records)
        };
        let (result, printed) = crate::sdk::os::capture_stdout(call);
        let subject = corp_subject(spec);
        match result {
            Ok(records) => {
                r.ok(
                    &subject,
                    format!(
                        "online{via}, {} record(s) returned by GetChatData(seq 0, limit {ONLINE_LIMIT})",
                        records.len()
                    ),
                );
                check_keys(r, &subject, spec, &records);
            }
            Err(e) => {
                let mut text = format!("online check{via} failed: {}", describe_sdk_error(&e));
                match &printed {
                    Ok(bytes) => text.push_str(&describe_printed(bytes)),
                    Err(err) => text.push_str(&format!(" (the SDK's stdout could not be captured: {err})")),
                }
                r.fail(&subject, text);
            }
        }
    }
}

/// Per `publickey_ver` of `records`: does the corp's configured key decrypt them?
pub(super) fn check_keys(r: &mut Report, subject: &str, spec: &CorpSpec, records: &[crate::sdk::EncryptedRecord]) {
    use crate::decode::KeyOutcome;
    #[derive(Default)]
    struct Tally {
        decrypted: usize,
        failed: usize,
        corrupt: usize,
        error: Option<String>,
    }
    if records.is_empty() {
        r.warn(subject, "no record on the server yet: the keys could not be checked");
        return;
    }
    let mut by_ver: std::collections::BTreeMap<u32, Tally> = std::collections::BTreeMap::new();
    for rec in records {
        let t = by_ver.entry(rec.publickey_ver).or_default();
        match crate::crypto::decrypt_record(
            &spec.keyring,
            rec.publickey_ver,
            &rec.encrypt_random_key,
            &rec.encrypt_chat_msg,
        ) {
            Ok(_) => t.decrypted += 1,
            Err(e) => match crate::decode::key_outcome(&e) {
                KeyOutcome::Decrypted => t.decrypted += 1,
                KeyOutcome::KeyFailed(why) => {
                    t.failed += 1;
                    t.error = Some(why);
                }
                KeyOutcome::Unknown => t.corrupt += 1,
            },
        }
    }
    for (ver, t) in by_ver {
        let checked = t.decrypted + t.failed;
        let corrupt = match t.corrupt {
            0 => String::new(),
            n => format!(" ({n} corrupt record(s) not counted)"),
        };
        if t.failed == 0 {
            r.ok(
                subject,
                format!("publickey_ver {ver}: the configured key decrypts {checked} of {checked} record(s){corrupt}"),
            );
        } else {
            r.fail(
                subject,
                format!(
                    "publickey_ver {ver}: the configured key fails for {} of {checked} record(s){corrupt}: {}; set the \
                     right private key for this version (corps file or `corp set-key`), then `redecrypt`",
                    t.failed,
                    t.error.as_deref().unwrap_or("wrong key")
                ),
            );
        }
    }
}

/// An SDK failure with its code in words.
pub(super) fn describe_sdk_error(e: &SdkError) -> String {
    match e {
        SdkError::Code { call, code } => {
            format!("{call} returned {}: {}", code.raw(), explain(i64::from(code.raw())))
        }
        SdkError::Api { call, errcode, errmsg } => {
            format!("{call}: the server answered errcode {errcode}: {} (errmsg: {errmsg})", explain(*errcode))
        }
        other => other.to_string(),
    }
}

/// What the SDK printed on stdout during a failed call, as far as it helps: the `errcode` of
/// the token request (never the text itself).
pub(super) fn describe_printed(printed: &[u8]) -> String {
    if printed.is_empty() {
        return String::new();
    }
    match printed_errcode(printed) {
        Some((code, errmsg)) => {
            let msg = errmsg.map(|m| format!(" (errmsg: {m})")).unwrap_or_default();
            format!("; the SDK printed a token response with errcode {code}: {}{msg}", explain(code))
        }
        None => format!("; the SDK printed {} byte(s) on stdout, without an errcode", printed.len()),
    }
}

/// The first non-zero `"errcode": N` in `printed`, with the `"errmsg"` after it (printable ASCII,
/// at most 160 characters).
pub(super) fn printed_errcode(printed: &[u8]) -> Option<(i64, Option<String>)> {
    let text = String::from_utf8_lossy(printed);
    let mut rest = text.as_ref();
    while let Some(at) = rest.find("\"errcode\"") {
        rest = &rest[at + "\"errcode\"".len()..];
        let Some(value) = rest.trim_start().strip_prefix(':').map(str::trim_start) else { continue };
        let end = value
            .char_indices()
            .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
            .map_or(value.len(), |(i, _)| i);
        let Ok(code) = value[..end].parse::<i64>() else { continue };
        if code == 0 {
            continue;
        }
        let errmsg = value.find("\"errmsg\"").and_then(|at| {
            let v = value[at + "\"errmsg\"".len()..].trim_start().strip_prefix(':')?.trim_start().strip_prefix('"')?;
            let msg: String =
                v[..v.find('"')?].chars().filter(|c| c.is_ascii() && !c.is_ascii_control()).take(160).collect();
            Some(msg)
        });
        return Some((code, errmsg));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gettoken_line_names_its_errcode() {
        let printed = b"get token error: {\"errcode\":40001,\"errmsg\":\"invalid secret, hint: [x]\"}\n";
        assert_eq!(printed_errcode(printed), Some((40001, Some("invalid secret, hint: [x]".into()))));
        assert_eq!(printed_errcode(b"{\"errcode\": -1}"), Some((-1, None)));
        assert_eq!(printed_errcode(b"{\"errcode\":0,\"errmsg\":\"ok\"}"), None);
        assert_eq!(printed_errcode(b"\xb4\xed\xce\xf3 curl: timeout"), None);
        let said = describe_printed(printed);
        assert!(said.contains("40001") && said.contains("secret"), "{said}");
        assert_eq!(describe_printed(b""), "");
    }
}
