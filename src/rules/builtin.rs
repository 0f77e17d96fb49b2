//! The built-in detectors: mainland mobile numbers, 18-digit resident ID numbers (GB 11643
//! checksum), bank card numbers (Luhn), e-mail addresses and URLs (their host, for a domain
//! list). Each returns the matches of one text as `(byte range, normalised value)`.
//!
//! Numbers are found as runs of ASCII digits not touching other digits or ASCII letters (so
//! `电话13812345678` and `手机:138-1234-5678` are found, `order 2013812345678x` is not): a run may
//! be split by single spaces or hyphens (`138 1234 5678`, `6222 0212 3456 7890 128`); the
//! separators are dropped before the check.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

/// What a built-in matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// Mainland mobile numbers: 11 digits `1[3-9]…`, optionally after `+86`/`86`.
    Phone,
    /// 18-digit resident ID numbers whose date is plausible and whose check digit is right.
    IdCard,
    /// 16 to 19 digits passing the Luhn check (ID numbers and phone numbers excluded).
    BankCard,
    /// E-mail addresses.
    Email,
    /// URLs whose host is one of the rule's `url_domains` or under one.
    Url,
}

impl Builtin {
    /// Every built-in, in the order a rule's hit prefers.
    pub const ALL: [Builtin; 5] = [Builtin::Phone, Builtin::IdCard, Builtin::BankCard, Builtin::Email, Builtin::Url];

    /// The name in rules.toml.
    pub fn as_str(self) -> &'static str {
        match self {
            Builtin::Phone => "phone",
            Builtin::IdCard => "id_card",
            Builtin::BankCard => "bank_card",
            Builtin::Email => "email",
            Builtin::Url => "url",
        }
    }

    /// The matches in `text` (for [`Builtin::Url`]: every URL, its host as the value).
    pub fn find(self, text: &str) -> Vec<(Range<usize>, String)> {
        match self {
            Builtin::Phone => number_matches(text, phone),
            Builtin::IdCard => number_matches(text, |n| id_card(n).then(|| n.to_string())),
            Builtin::BankCard => number_matches(text, |n| bank_card(n).then(|| n.to_string())),
            Builtin::Email => EMAIL.find_iter(text).map(|m| (m.range(), m.as_str().to_string())).collect(),
            Builtin::Url => URL
                .captures_iter(text)
                .filter_map(|c| {
                    let whole = c.get(0)?;
                    let host = c.get(1)?.as_str().trim_end_matches('.').to_ascii_lowercase();
                    Some((whole.range(), host))
                })
                .collect(),
        }
    }
}

/// Invariant: a constant pattern that compiles (the tests compile it).
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.)+[A-Za-z]{2,24}")
        .expect("constant regex")
});

/// Invariant: a constant pattern that compiles (the tests compile it). The word boundary is
/// ASCII's (`(?-u:\b)`): Chinese text glues URLs to CJK characters (`网址pan.baidu.com`), which a
/// Unicode boundary would not split, and an ASCII boundary keeps the regex on its fast DFA for
/// CJK text (a Unicode boundary sends every search to the slow PikeVM). A path ends at CJK
/// punctuation and full-width forms (`，` `。` `）`), as Chinese writers end a link.
static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?-u:\b)(?:https?://)?((?:[a-z0-9](?:[a-z0-9-]{0,62})?\.)+[a-z]{2,24})(?::\d{1,5})?(?:[/?#][^\s<>\x22\x{3000}-\x{303F}\x{FF00}-\x{FFEF}]*)?",
    )
    .expect("constant regex")
});

/// Whether `host` is `domain` or under it (`pan.baidu.com` is under `baidu.com`).
pub fn host_in(host: &str, domain: &str) -> bool {
    let domain = domain.trim_start_matches("*.").trim_matches('.');
    host.eq_ignore_ascii_case(domain)
        || (host.len() > domain.len()
            && host.as_bytes()[host.len() - domain.len() - 1] == b'.'
            && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain))
}

/// The numbers of `text` that `check` accepts (its value): a run of digit groups whole, else
/// each group alone (`电话 13812345678 12345`: the groups together are no phone number, the first
/// alone is).
fn number_matches(text: &str, check: impl Fn(&str) -> Option<String>) -> Vec<(Range<usize>, String)> {
    let mut out = Vec::new();
    for (range, digits, groups) in numbers(text) {
        if let Some(v) = check(&digits) {
            out.push((range, v));
        } else if groups.len() > 1 {
            out.extend(groups.into_iter().filter_map(|(r, g)| check(&g).map(|v| (r, v))));
        }
    }
    out
}

/// One group of a number: its byte range and digits.
type Group = (Range<usize>, String);

/// Runs of digits (with a trailing `X` for ID numbers), split at most by single spaces or
/// hyphens, not touching other ASCII letters or digits: `(byte range, the digits, the groups)`.
fn numbers(text: &str) -> impl Iterator<Item = (Range<usize>, String, Vec<Group>)> + '_ {
    let b = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < b.len() {
            if !b[i].is_ascii_digit() || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
                i += 1;
                continue;
            }
            let start = i;
            let mut digits = String::new();
            let mut end = i;
            let mut groups: Vec<Group> = vec![(i..i, String::new())];
            while i < b.len() {
                if b[i].is_ascii_digit() {
                    digits.push(b[i] as char);
                    if let Some(g) = groups.last_mut() {
                        g.1.push(b[i] as char);
                        g.0.end = i + 1;
                    }
                    i += 1;
                    end = i;
                } else if (b[i] == b' ' || b[i] == b'-') && i + 1 < b.len() && b[i + 1].is_ascii_digit() {
                    i += 1;
                    groups.push((i..i, String::new()));
                } else {
                    break;
                }
            }
            if i < b.len() && (b[i] == b'X' || b[i] == b'x') && digits.len() == 17 {
                digits.push('X');
                if let Some(g) = groups.last_mut() {
                    g.1.push('X');
                    g.0.end = i + 1;
                }
                i += 1;
                end = i;
            }
            if i < b.len() && b[i].is_ascii_alphanumeric() {
                // Touches a letter: part of an identifier, not a number.
                while i < b.len() && b[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                continue;
            }
            return Some((start..end, digits, groups));
        }
        None
    })
}

/// A mainland mobile number in `digits` (the 11 digits), `+86`/`86` prefix allowed.
fn phone(digits: &str) -> Option<String> {
    let d = match digits.len() {
        11 => digits,
        13 if digits.starts_with("86") => &digits[2..],
        _ => return None,
    };
    let b = d.as_bytes();
    (b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) && d.bytes().all(|c| c.is_ascii_digit())).then(|| d.to_string())
}

/// An 18-character resident ID number: 17 digits, a plausible birth date and the ISO 7064
/// MOD 11-2 check character (`0`-`9` or `X`).
pub fn id_card(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 || !b[..17].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let num = |r: Range<usize>| s[r].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (num(6..10), num(10..12), num(12..14));
    if !(1900..=2100).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    const CHECK: &[u8; 11] = b"10X98765432";
    let sum: u32 = b[..17].iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    CHECK[(sum % 11) as usize] == b[17].to_ascii_uppercase()
}

/// Luhn's check over ASCII digits.
pub fn luhn(s: &str) -> bool {
    let mut sum = 0u32;
    for (i, c) in s.bytes().rev().enumerate() {
        if !c.is_ascii_digit() {
            return false;
        }
        let mut d = u32::from(c - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !s.is_empty() && sum % 10 == 0
}

/// A bank card number: 16 to 19 digits passing Luhn, not an ID number.
fn bank_card(s: &str) -> bool {
    (16..=19).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_digit()) && luhn(s) && !id_card(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(b: Builtin, text: &str) -> Vec<String> {
        b.find(text).into_iter().map(|(_, v)| v).collect()
    }

    #[test]
    fn phones_inside_chinese_text_with_separators_and_prefix() {
        assert_eq!(values(Builtin::Phone, "电话13812345678请回"), ["13812345678"]);
        assert_eq!(values(Builtin::Phone, "手机:138-1234-5678 或 +86 139 0000 1111"), ["13812345678", "13900001111"]);
        // Too long, wrong prefix, glued to letters.
        assert!(values(Builtin::Phone, "2013812345678, 12812345678, abc13812345678, 13812345678x").is_empty());
        // A number next to another one: the groups together are none, one alone is.
        assert_eq!(values(Builtin::Phone, "电话 13812345678 12345"), ["13812345678"]);
    }

    #[test]
    fn id_numbers_need_their_check_character() {
        // 11010519491231002X: a valid published example; the same with a wrong check is not.
        assert_eq!(values(Builtin::IdCard, "身份证11010519491231002X。"), ["11010519491231002X"]);
        assert_eq!(values(Builtin::IdCard, "id 110105194912310021"), Vec::<String>::new());
        assert!(id_card("440524198001010013"));
        assert!(!id_card("440524198001010014"));
        // A birth year before 1900 is refused even with a right check character.
        assert!(!id_card("440524188001010014"));
        // A date that cannot be.
        assert!(!id_card("110105194913310028"));
    }

    #[test]
    fn bank_cards_need_luhn() {
        assert!(luhn("4111111111111111"));
        assert_eq!(values(Builtin::BankCard, "卡号4111-1111-1111-1111转账"), ["4111111111111111"]);
        assert_eq!(values(Builtin::BankCard, "卡号4111111111111112转账"), Vec::<String>::new());
        // An ID number passing Luhn by chance is still no bank card.
        assert!(values(Builtin::BankCard, "11010519491231002X").is_empty());
    }

    #[test]
    fn emails_and_url_hosts() {
        assert_eq!(values(Builtin::Email, "发到 zhang.san+x@example.com.cn 吧"), ["zhang.san+x@example.com.cn"]);
        assert!(values(Builtin::Email, "not@an address").is_empty());
        assert_eq!(
            values(Builtin::Url, "链接https://Pan.Baidu.com/s/1abc 和 www.example.org/x"),
            ["pan.baidu.com", "www.example.org"]
        );
        let glued = Builtin::Url.find("网址pan.baidu.com/s/9x，提取码1234");
        assert_eq!(glued.iter().map(|(_, h)| h.as_str()).collect::<Vec<_>>(), ["pan.baidu.com"]);
        assert_eq!(&"网址pan.baidu.com/s/9x，提取码1234"[glued[0].0.clone()], "pan.baidu.com/s/9x");
        assert!(host_in("pan.baidu.com", "baidu.com"));
        assert!(host_in("baidu.com", "*.baidu.com"));
        assert!(!host_in("notbaidu.com", "baidu.com"));
    }
}
