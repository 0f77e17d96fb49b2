//! The report of `doctor`: one line per check, counted by verdict, and the scrubber that
//! replaces every secret doctor could find (database and proxy passwords, corp secrets, key
//! text) by `***` before a line is printed.

use std::fmt::Display;
use std::io::Write as _;
use std::path::Path;

use crate::config::Config;
use crate::security::{self, AtRest};
use crate::store::Store;
use crate::toml_errors::value_text;

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    Ok,
    Warn,
    Fail,
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// Prints the lines, counts the verdicts and scrubs every known secret from the output.
#[derive(Default)]
pub(in crate::cli) struct Report {
    counts: [usize; 4],
    secrets: Vec<String>,
}

impl Report {
    /// Remembers a value that must never be printed.
    pub(in crate::cli) fn secret(&mut self, value: &str) {
        let value = value.trim();
        if value.chars().count() >= MIN_SCRUB_LEN && !self.secrets.iter().any(|s| s == value) {
            self.secrets.push(value.to_string());
            // Longest first, so that a secret containing another is replaced whole.
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    /// Remembers every line of a PEM (or other key text) that is long enough to be identifying.
    pub(in crate::cli) fn key_text(&mut self, text: &str) {
        for line in text.lines().map(str::trim).filter(|l| l.len() >= 16 && !l.starts_with("-----")) {
            self.secret(line);
        }
    }

    fn scrub(&self, text: &str) -> String {
        let mut out: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    fn line(&mut self, status: Status, subject: &str, details: impl Display) {
        self.counts[status as usize] += 1;
        let line = self.scrub(&format!("{:<6}{subject}: {details}", status.label()));
        let mut out = std::io::stdout().lock();
        // A closed stdout (`doctor | head -1`) must not abort the remaining checks.
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    pub(in crate::cli) fn ok(&mut self, subject: &str, details: impl Display) {
        self.line(Status::Ok, subject, details);
    }

    pub(in crate::cli) fn warn(&mut self, subject: &str, details: impl Display) {
        self.line(Status::Warn, subject, details);
    }

    pub(in crate::cli) fn fail(&mut self, subject: &str, details: impl Display) {
        self.line(Status::Fail, subject, details);
    }

    pub(in crate::cli) fn skip(&mut self, subject: &str, details: impl Display) {
        self.line(Status::Skip, subject, details);
    }

    pub(in crate::cli) fn failed(&self) -> usize {
        self.counts[Status::Fail as usize]
    }

    pub(in crate::cli) fn summary(&self) {
        let [ok, warn, fail, skip] = self.counts;
        let mut text = format!("summary: {ok} ok, {warn} warn, {fail} FAIL");
        if skip > 0 {
            text.push_str(&format!(", {skip} skipped"));
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// The passwords inside a database URL (userinfo and `password=`/`pass=` parameters).
pub(super) fn url_passwords(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(scheme_end) = url.find("://") {
        let auth_start = scheme_end + 3;
        let auth_end = url[auth_start..].find(['/', '?', '#']).map_or(url.len(), |i| auth_start + i);
        if let Some(at) = url[auth_start..auth_end].rfind('@') {
            if let Some((_, password)) = url[auth_start..auth_start + at].split_once(':') {
                out.push(password.to_string());
            }
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
            if k.to_ascii_lowercase().contains("pass") {
                out.push(v.to_string());
            }
        }
    }
    out
}

/// `%XX` sequences decoded (a URL password as the driver sees it); invalid ones are kept.
pub(super) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The passwords of the configuration, for the scrubber.
pub(in crate::cli) fn remember_config_secrets(r: &mut Report, cfg: &Config) {
    for password in url_passwords(cfg.database.url.expose()) {
        r.secret(&percent_decode(&password));
        r.secret(&password);
    }
    r.secret(cfg.sdk.proxy_password.expose());
    r.secret(cfg.media.s3_secret_access_key.expose());
}

/// Secrets and keys of every `corplist`/`corp_keys` row, also of corps that will be left out.
pub(super) async fn remember_table_secrets(r: &mut Report, store: &dyn Store, at_rest: &AtRest) {
    if let Ok(rows) = store.list_corps().await {
        for row in rows {
            r.secret(row.secret.expose());
            r.key_text(row.prikey.expose());
            if let Ok(plain) = at_rest.reveal(&security::secret_place(&row.corpid), &row.secret) {
                r.secret(plain.expose());
            }
            if let Ok(plain) = at_rest.reveal(&security::prikey_place(&row.corpid), &row.prikey) {
                r.key_text(plain.expose());
            }
        }
    }
    if let Ok(keys) = store.list_corp_keys().await {
        for (corpid, ver, pem) in keys {
            r.key_text(pem.expose());
            if let Ok(plain) = at_rest.reveal(&security::key_place(&corpid, ver), &pem) {
                r.key_text(plain.expose());
            }
        }
    }
}

/// Secrets and inline keys of every `[[corp]]` of a corps file, also of corps that will be left
/// out (their error messages could quote a value).
pub(super) fn remember_file_secrets(r: &mut Report, path: &Path) {
    let Some(table) = std::fs::read_to_string(path).ok().and_then(|t| t.parse::<toml::Table>().ok()) else { return };
    let Some(corps) = table.get("corp").and_then(toml::Value::as_array) else { return };
    // Values of the wrong type too (an unquoted all-digit secret): the scrubber is the last
    // guard should a message ever quote one.
    for corp in corps {
        if let Some(secret) = corp.get("secret") {
            r.secret(&value_text(Some(secret)));
        }
        for key in corp.get("key").and_then(toml::Value::as_array).into_iter().flatten() {
            match key.get("pem") {
                Some(toml::Value::String(pem)) => r.key_text(pem),
                Some(other) => r.secret(&value_text(Some(other))),
                None => {}
            }
        }
    }
}

/// Secrets shorter than this are not scrubbed (they would mangle ordinary words).
pub(super) const MIN_SCRUB_LEN: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scrubber_hides_secrets_and_key_lines() {
        let mut r = Report::default();
        r.secret("pw-12345");
        r.secret("x");
        r.key_text("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n");
        assert_eq!(r.scrub("a pw-12345 b\nx"), "a *** b x");
        assert_eq!(r.scrub("key MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"), "key ***");
    }

    #[test]
    fn the_scrubber_knows_corps_file_values_of_the_wrong_type() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("corps.toml");
        std::fs::write(
            &path,
            "[[corp]]\ncorpid = \"ww1\"\nsecret = 918273645501\n[[corp.key]]\nver = 1\npem = 123456789012345\n",
        )
        .unwrap();
        let mut r = Report::default();
        remember_file_secrets(&mut r, &path);
        assert_eq!(r.scrub("a 918273645501 b 123456789012345"), "a *** b ***");
    }

    #[test]
    fn url_passwords_finds_every_form() {
        assert_eq!(url_passwords("mysql://u:p%40ss@h:3306/db?password=two&x=1"), ["p%40ss", "two"]);
        assert!(url_passwords("sqlite:///var/lib/x.db").is_empty());
        assert_eq!(percent_decode("p%40ss%zz%4"), "p@ss%zz%4");
    }
}
