//! The text of an alert: one block per hit from a template, a title, a link to the message in
//! the review console when `[http] public_url` is set, and a size limit per channel (a WeCom
//! robot's markdown holds 4096 bytes: what does not fit is counted in a last line).
//!
//! Placeholders of a template (`[[alerts.channel]] template`): `{rule}`, `{kind}`, `{corp}`,
//! `{conversation}`, `{sender}`, `{time}` (UTC, RFC 3339), `{msgid}`, `{matched}`, `{context}`
//! (the text around the match, the match in bold in markdown), `{link}`. A line holding `{link}`
//! is left out when there is no link.

use std::time::{Duration, UNIX_EPOCH};

use crate::store::AlertHit;

/// The built-in markdown block of one hit (WeCom, DingTalk, Feishu).
pub const MARKDOWN: &str = "**{rule}** ({kind}) · {corp}\n> {context}\n\
sender: {sender} · conversation: {conversation}\ntime: {time} · matched: {matched}\n[open in the review console]({link})";

/// The built-in plain-text block of one hit (e-mail, the webhook's `text`).
pub const TEXT: &str = "Rule: {rule} ({kind})\nCorp: {corp}\nConversation: {conversation}\nSender: {sender}\n\
Time: {time}\nMatched: {matched}\nContext: {context}\nMessage: {link}";

/// How the text is marked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Markdown (the robots).
    Markdown,
    /// Plain text.
    Text,
}

/// A rendered alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line: the subject of a mail, the title of a robot's message.
    pub title: String,
    /// The blocks of the hits, separated by a blank line (or a rule in markdown).
    pub body: String,
    /// Hits left out for size.
    pub left_out: usize,
}

/// The console's link to `hit`'s message: `<public_url>/#corp=<corpid>&conv=<token>&msg=<msgid>&t=<msgtime>`
/// (the console's own location format, `src/review/console/app.js`; `conv` is the API token of
/// the conversation when the hit's conversation is a search-index key, else left out). `None`
/// without a public URL.
pub fn link(public_url: &str, hit: &AlertHit) -> Option<String> {
    if public_url.is_empty() {
        return None;
    }
    let mut q = form_pairs(&[("corp", hit.corpid.as_str())]);
    if let Some(conv) = crate::review::cursor::ConvKey::from_raw(&hit.conversation) {
        q.push('&');
        q.push_str(&form_pairs(&[("conv", &conv.token())]));
    }
    let t = hit.msgtime.to_string();
    q.push('&');
    q.push_str(&form_pairs(&[("msg", hit.msgid.as_str()), ("t", t.as_str())]));
    Some(format!("{}/#{q}", public_url.trim_end_matches('/')))
}

/// `k=v&…`, percent-encoded as `URLSearchParams` reads it.
fn form_pairs(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&")
}

/// Percent-encodes everything but unreserved characters.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A msgtime as RFC 3339 UTC.
pub fn time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

/// One line: newlines and carriage returns become spaces.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// One hit's block from `template`.
pub fn block(template: &str, style: Style, hit: &AlertHit, public_url: &str) -> String {
    let link = link(public_url, hit);
    let context = one_line(&hit.context);
    let matched = one_line(&hit.matched);
    let context = match style {
        Style::Markdown if !matched.is_empty() && context.contains(&matched) => {
            context.replacen(&matched, &format!("**{matched}**"), 1)
        }
        _ => context,
    };
    let context = if context.is_empty() { matched.clone() } else { context };
    let time = time(hit.msgtime);
    let values: [(&str, &str); 10] = [
        ("{rule}", hit.rule.as_str()),
        ("{kind}", hit.kind.as_str()),
        ("{corp}", hit.corpid.as_str()),
        ("{conversation}", hit.conversation.as_str()),
        ("{sender}", hit.sender.as_str()),
        ("{time}", time.as_str()),
        ("{msgid}", hit.msgid.as_str()),
        ("{matched}", matched.as_str()),
        ("{context}", context.as_str()),
        ("{link}", link.as_deref().unwrap_or("")),
    ];
    let mut lines = Vec::new();
    for line in template.lines() {
        if line.contains("{link}") && link.is_none() {
            continue;
        }
        // One pass over the line, so that a value holding "{rule}" is not replaced again.
        let mut out = String::with_capacity(line.len() * 2);
        let mut rest = line;
        'outer: while !rest.is_empty() {
            for (k, v) in &values {
                if let Some(after) = rest.strip_prefix(k) {
                    out.push_str(v);
                    rest = after;
                    continue 'outer;
                }
            }
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
        }
        lines.push(out);
    }
    lines.join("\n")
}

/// Renders `hits` (at least one) into at most `max_bytes` of body (0: no limit).
pub fn render(template: &str, style: Style, hits: &[AlertHit], public_url: &str, max_bytes: usize) -> Rendered {
    let title = match hits {
        [one] => format!("wework-msgaudit alert: {} ({})", one.rule, one.corpid),
        many => format!("wework-msgaudit: {} alerts", many.len()),
    };
    let sep = match style {
        Style::Markdown => "\n\n---\n\n",
        Style::Text => "\n\n",
    };
    let header = match style {
        Style::Markdown => format!("### {title}\n\n"),
        Style::Text => String::new(),
    };
    let mut body = header;
    let mut left_out = 0;
    for (i, hit) in hits.iter().enumerate() {
        let b = block(template, style, hit, public_url);
        let piece = if i == 0 { b } else { format!("{sep}{b}") };
        // Room for the "and N more" line.
        let reserve = if i + 1 < hits.len() { 40 } else { 0 };
        if max_bytes > 0 && body.len() + piece.len() + reserve > max_bytes {
            if i == 0 {
                body.push_str(&truncate(&piece, max_bytes.saturating_sub(body.len() + 40)));
                left_out = hits.len() - 1;
            } else {
                left_out = hits.len() - i;
            }
            break;
        }
        body.push_str(&piece);
    }
    if left_out > 0 {
        body.push_str(&format!("{sep}… and {left_out} more (see the review console)"));
    }
    Rendered { title, body, left_out }
}

/// `s` cut to at most `max` bytes on a character boundary, with "…".
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(3);
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(i: i64) -> AlertHit {
        AlertHit {
            id: i,
            corpid: "wwcorp".into(),
            msgid: format!("msg/{i}"),
            rule: "leak".into(),
            kind: "keyword".into(),
            matched: "身份证".into(),
            context: "请发一下身份证号码\n谢谢".into(),
            sender: "zhangsan".into(),
            conversation: "pair:lisi|zhangsan".into(),
            msgtime: 1_765_000_000_000,
            created_at: 0,
        }
    }

    #[test]
    fn block_fills_every_placeholder_and_the_link() {
        let b = block(MARKDOWN, Style::Markdown, &hit(1), "https://audit.example.com/");
        assert!(b.contains("**leak** (keyword) · wwcorp"), "{b}");
        assert!(b.contains("> 请发一下**身份证**号码 谢谢"), "{b}");
        assert!(b.contains("sender: zhangsan · conversation: pair:lisi|zhangsan"), "{b}");
        assert!(b.contains("time: 2025-12-06T05:46:40Z"), "{b}");
        let conv = crate::review::cursor::ConvKey::from_raw("pair:lisi|zhangsan").unwrap().token();
        assert!(
            b.contains(&format!("(https://audit.example.com/#corp=wwcorp&conv={conv}&msg=msg%2F1&t=1765000000000)")),
            "{b}"
        );
        let no_link = block(MARKDOWN, Style::Markdown, &hit(1), "");
        assert!(!no_link.contains("console"), "{no_link}");
    }

    #[test]
    fn values_are_not_expanded_twice() {
        let mut h = hit(1);
        h.context = "{rule} {link}".into();
        let b = block("{context}|{rule}", Style::Text, &h, "");
        assert_eq!(b, "{rule} {link}|leak");
    }

    #[test]
    fn the_size_limit_counts_what_is_left_out() {
        let hits: Vec<AlertHit> = (0..50).map(hit).collect();
        let r = render(MARKDOWN, Style::Markdown, &hits, "https://a.example", 4096);
        assert!(r.body.len() <= 4096, "{}", r.body.len());
        assert!(r.left_out > 0 && r.left_out < 50);
        assert!(r.body.ends_with(&format!("… and {} more (see the review console)", r.left_out)));
        let all = render(TEXT, Style::Text, &hits, "", 0);
        assert_eq!(all.left_out, 0);
        assert_eq!(all.body.matches("Rule: leak").count(), 50);
        assert_eq!(all.title, "wework-msgaudit: 50 alerts");
    }
}
