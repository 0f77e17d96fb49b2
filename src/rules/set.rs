//! [`RuleSet`]: every enabled rule compiled once (per reload) into one matcher set — ONE
//! Aho-Corasick automaton for the keywords of all rules, ONE `RegexSet` for all their regular
//! expressions, the built-ins and behaviours indexed by kind — and [`RuleSet::evaluate`], which
//! turns one stored row into its hits.
//!
//! Evaluation looks at the matchers first and at a rule's scope (corps, msgtypes, chat,
//! conversation, direction, senders) only for the rules a matcher found, so that a thousand
//! rules cost about what their automaton costs. The text is the row's searchable text as
//! `crate::search::extract` gives it (every msgtype, nested chatrecord/mixed items included).

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde_json::Value;

use super::builtin::{host_in, Builtin};
use super::def::{Behaviour, Chat, Conversation, Corps, Direction, RuleDef};
use super::RulesError;
use crate::store::{BatchHits, RevokeCheck, Row, RuleHit};

/// Characters of text kept on each side of a match in a hit's `context`.
const CONTEXT_CHARS: usize = 30;

/// One compiled rule: its scope and the parameters of its matchers.
#[derive(Debug)]
struct Compiled {
    name: String,
    corps: Option<HashSet<String>>,
    chat: Chat,
    conversation: Conversation,
    direction: Direction,
    senders: HashSet<String>,
    exclude_senders: HashSet<String>,
    msgtypes: HashSet<String>,
    url_domains: Vec<String>,
    file_extensions: HashSet<String>,
    revoke_within_ms: Option<u64>,
}

/// Every enabled rule, compiled.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Compiled>,
    /// All keywords of all rules; pattern i is `keywords[i]`, used by `keyword_rules[i]`.
    keywords: Option<AhoCorasick>,
    keyword_text: Vec<String>,
    keyword_rules: Vec<Vec<u32>>,
    /// All regular expressions; set index i is `regexes[i]` of rule `regex_rules[i]`.
    regex_set: Option<RegexSet>,
    regexes: Vec<Regex>,
    regex_rules: Vec<u32>,
    /// Rules per built-in (in [`Builtin::ALL`] order).
    builtin_rules: Vec<(Builtin, Vec<u32>)>,
    /// Rules per msgtype that is a behaviour.
    behaviour_rules: HashMap<&'static str, Vec<u32>>,
    /// Some rule needs the text.
    needs_text: bool,
}

/// The facts of a row a scope is checked against.
struct Facts<'a> {
    corpid: &'a str,
    msgtype: &'a str,
    sender: &'a str,
    group: bool,
    external: bool,
    sender_external: bool,
    internal_receiver: bool,
}

/// wo/wm: external contacts and other corps.
fn external_id(id: &str) -> bool {
    id.starts_with("wo") || id.starts_with("wm")
}

impl<'a> Facts<'a> {
    fn of(corpid: &'a str, row: &'a Row) -> Self {
        let receivers = || row.tolist.split(',').filter(|s| !s.is_empty());
        let sender_external = external_id(&row.msgfrom);
        Facts {
            corpid,
            msgtype: &row.msgtype,
            sender: &row.msgfrom,
            group: !row.roomid.is_empty(),
            external: sender_external || receivers().any(external_id),
            sender_external,
            internal_receiver: receivers().any(|r| !external_id(r) && !r.starts_with("wb")),
        }
    }
}

impl Compiled {
    fn applies(&self, f: &Facts<'_>) -> bool {
        if self.corps.as_ref().is_some_and(|c| !c.contains(f.corpid)) {
            return false;
        }
        if !self.msgtypes.is_empty() && !self.msgtypes.contains(f.msgtype) {
            return false;
        }
        let chat = match self.chat {
            Chat::Any => true,
            Chat::Single => !f.group,
            Chat::Group => f.group,
        };
        let conversation = match self.conversation {
            Conversation::Any => true,
            Conversation::Internal => !f.external,
            Conversation::External => f.external,
        };
        let direction = match self.direction {
            Direction::Any => true,
            // An employee (not a bot) writing where a customer reads.
            Direction::ToCustomer => !f.sender_external && !f.sender.starts_with("wb") && f.external,
            Direction::FromCustomer => f.sender_external && (f.internal_receiver || f.group),
        };
        chat && conversation
            && direction
            && (self.senders.is_empty() || self.senders.contains(f.sender))
            && !self.exclude_senders.contains(f.sender)
    }
}

impl RuleSet {
    /// Compiles the enabled rules of `defs`. Every regular expression must compile within
    /// `regex_size_limit` bytes (the `regex` crate's compiled-size limit), else the error names
    /// the rule and the expression's place in its list.
    pub fn compile(defs: &[RuleDef], regex_size_limit: usize) -> Result<RuleSet, RulesError> {
        let mut set = RuleSet::default();
        let mut keyword_ids: HashMap<String, usize> = HashMap::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut builtin: HashMap<Builtin, Vec<u32>> = HashMap::new();
        for def in defs.iter().filter(|d| d.enabled) {
            let id = u32::try_from(set.rules.len()).map_err(|_| RulesError::TooMany)?;
            for word in &def.keywords {
                let word = word.trim();
                let k = *keyword_ids.entry(word.to_string()).or_insert_with(|| {
                    patterns.push(word.to_string());
                    set.keyword_rules.push(Vec::new());
                    patterns.len() - 1
                });
                if !set.keyword_rules[k].contains(&id) {
                    set.keyword_rules[k].push(id);
                }
            }
            for (i, re) in def.regex.iter().enumerate() {
                let compiled = RegexBuilder::new(re).size_limit(regex_size_limit).build().map_err(|e| {
                    let why = match e {
                        regex::Error::CompiledTooBig(limit) => format!(
                            "compiles to more than the size limit of {limit} bytes ([rules] regex_size_limit): \
                             simplify it or split it"
                        ),
                        other => other.to_string(),
                    };
                    RulesError::Definition { name: def.name.clone(), message: format!("regex[{}]: {why}", i + 1) }
                })?;
                set.regexes.push(compiled);
                set.regex_rules.push(id);
            }
            for b in &def.builtin {
                builtin.entry(*b).or_default().push(id);
            }
            for b in &def.behaviour {
                for t in b.msgtypes() {
                    set.behaviour_rules.entry(t).or_default().push(id);
                }
            }
            set.needs_text |= !def.keywords.is_empty() || !def.regex.is_empty() || !def.builtin.is_empty();
            set.rules.push(Compiled {
                name: def.name.clone(),
                corps: match &def.corps {
                    Some(Corps::List(list)) => Some(list.iter().cloned().collect()),
                    _ => None,
                },
                chat: def.chat,
                conversation: def.conversation,
                direction: def.direction,
                senders: def.senders.iter().cloned().collect(),
                exclude_senders: def.exclude_senders.iter().cloned().collect(),
                msgtypes: def.msgtypes.iter().cloned().collect(),
                url_domains: def.url_domains.iter().map(|d| d.trim().to_ascii_lowercase()).collect(),
                file_extensions: def
                    .file_extensions
                    .iter()
                    .map(|e| e.trim().trim_start_matches('.').to_lowercase())
                    .collect(),
                revoke_within_ms: def
                    .behaviour
                    .contains(&Behaviour::Revoke)
                    .then(|| def.revoke_within.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
            });
        }
        if !patterns.is_empty() {
            let ac = AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .ascii_case_insensitive(true)
                .build(&patterns)
                .map_err(|e| RulesError::Definition { name: "(keywords)".into(), message: e.to_string() })?;
            set.keywords = Some(ac);
        }
        set.keyword_text = patterns;
        if !set.regexes.is_empty() {
            // Each expression passed the limit alone; the set holds them all.
            let limit = regex_size_limit.saturating_mul(set.regexes.len()).max(regex_size_limit);
            let rs = RegexSetBuilder::new(set.regexes.iter().map(Regex::as_str))
                .size_limit(limit)
                .build()
                .map_err(|e| RulesError::Definition { name: "(regex set)".into(), message: e.to_string() })?;
            set.regex_set = Some(rs);
        }
        set.builtin_rules = Builtin::ALL.iter().filter_map(|b| builtin.remove(b).map(|r| (*b, r))).collect();
        Ok(set)
    }

    /// No rule.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The rules' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| r.name.as_str())
    }

    /// The hits of `row` of `corpid`, appended to `out`: at most one per rule (the first matcher
    /// that finds something: keywords, then regex, built-ins, behaviours). A revoke rule's hit is
    /// a [`RevokeCheck`] (decided when the sending time of the revoked message is known).
    pub fn evaluate(&self, corpid: &str, row: &Row, out: &mut BatchHits) {
        if self.rules.is_empty() || row.msgtype.is_empty() {
            return;
        }
        // The scope facts only once a matcher found something.
        let facts = std::cell::OnceCell::new();
        // Rules already decided for this row (hit or out of scope): few, a Vec is enough.
        let mut decided: Vec<u32> = Vec::new();
        let conversation = || crate::search::index::conversation_key(&row.roomid, &row.msgfrom, &row.tolist);
        let hit = |rule: u32, kind: &str, matched: String, context: String, out: &mut BatchHits| {
            out.hits.push(RuleHit {
                msgid: row.msgid.clone(),
                rule: self.rules[rule as usize].name.clone(),
                kind: kind.to_string(),
                matched,
                context,
                sender: row.msgfrom.clone(),
                conversation: conversation(),
                msgtime: row.msgtime,
            });
        };
        // Decides `rule` once: true when it is new and applies.
        let take = |rule: u32, decided: &mut Vec<u32>| {
            if decided.contains(&rule) {
                return false;
            }
            decided.push(rule);
            self.rules[rule as usize].applies(facts.get_or_init(|| Facts::of(corpid, row)))
        };
        if self.needs_text && crate::search::extract::may_have_text(&row.msgtype) {
            let owned;
            let text: &str = if matches!(row.msgtype.as_str(), "text" | "markdown") && !row.text.is_empty() {
                &row.text
            } else {
                owned = crate::search::extract::record_text(&row.msgtype, &row.msgdata);
                &owned
            };
            if !text.is_empty() {
                self.text_hits(text, &mut decided, &take, &hit, out);
            }
        }
        if let Some(rules) = self.behaviour_rules.get(row.msgtype.as_str()) {
            let mut revoke: Vec<(String, u64)> = Vec::new();
            for &rule in rules {
                if decided.contains(&rule) {
                    continue;
                }
                let r = &self.rules[rule as usize];
                if row.msgtype == "revoke" {
                    if let Some(within) = r.revoke_within_ms {
                        if take(rule, &mut decided) {
                            revoke.push((r.name.clone(), within));
                        }
                    }
                    continue;
                }
                let matched = if row.msgtype == "file" {
                    let ext = file_ext(&row.msgdata);
                    if !r.file_extensions.is_empty() && !r.file_extensions.contains(&ext) {
                        continue;
                    }
                    format!("file .{ext}")
                } else {
                    row.msgtype.clone()
                };
                if take(rule, &mut decided) {
                    let context = crate::search::extract::record_text(&row.msgtype, &row.msgdata);
                    hit(rule, "behaviour", matched, clip_chars(&context, 2 * CONTEXT_CHARS), out);
                }
            }
            if !revoke.is_empty() {
                if let Some(pre) = pre_msgid(&row.msgdata) {
                    out.revokes.push(RevokeCheck {
                        msgid: row.msgid.clone(),
                        pre_msgid: pre,
                        revoked_at: row.msgtime,
                        sender: row.msgfrom.clone(),
                        conversation: conversation(),
                        rules: revoke,
                    });
                }
            }
        }
    }

    fn text_hits(
        &self,
        text: &str,
        decided: &mut Vec<u32>,
        take: &impl Fn(u32, &mut Vec<u32>) -> bool,
        hit: &impl Fn(u32, &str, String, String, &mut BatchHits),
        out: &mut BatchHits,
    ) {
        if let Some(ac) = &self.keywords {
            for m in ac.find_overlapping_iter(text) {
                for &rule in &self.keyword_rules[m.pattern().as_usize()] {
                    if take(rule, decided) {
                        let matched = text[m.range()].to_string();
                        hit(rule, "keyword", matched, context(text, m.range()), out);
                    }
                }
            }
        }
        if let Some(rs) = &self.regex_set {
            for i in rs.matches(text).iter() {
                let rule = self.regex_rules[i];
                if decided.contains(&rule) {
                    continue;
                }
                if let Some(m) = self.regexes[i].find(text) {
                    if take(rule, decided) {
                        hit(rule, "regex", m.as_str().to_string(), context(text, m.range()), out);
                    }
                }
            }
        }
        for (b, rules) in &self.builtin_rules {
            if rules.iter().all(|r| decided.contains(r)) {
                continue;
            }
            let found = b.find(text);
            if found.is_empty() {
                continue;
            }
            for &rule in rules {
                if decided.contains(&rule) {
                    continue;
                }
                let first = match b {
                    Builtin::Url => {
                        let domains = &self.rules[rule as usize].url_domains;
                        found.iter().find(|(_, host)| domains.iter().any(|d| host_in(host, d)))
                    }
                    _ => found.first(),
                };
                let Some((range, value)) = first else { continue };
                if take(rule, decided) {
                    let matched = match b {
                        Builtin::Url => text[range.clone()].to_string(),
                        _ => value.clone(),
                    };
                    hit(rule, "builtin", format!("{}: {matched}", b.as_str()), context(text, range.clone()), out);
                }
            }
        }
    }
}

/// The text around `range`: up to [`CONTEXT_CHARS`] characters on each side.
fn context(text: &str, range: Range<usize>) -> String {
    let start = text[..range.start].char_indices().rev().nth(CONTEXT_CHARS - 1).map_or(0, |(i, _)| i);
    let end = text[range.end..].char_indices().nth(CONTEXT_CHARS).map_or(text.len(), |(i, _)| range.end + i);
    text[start..end].to_string()
}

fn clip_chars(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// A file record's extension: `file.fileext`, else the filename's, lower case.
fn file_ext(msgdata: &str) -> String {
    let v: Value = crate::message::parse_lenient(msgdata).unwrap_or(Value::Null);
    let file = v.get("file");
    let ext = file.and_then(|f| f.get("fileext")).and_then(Value::as_str).unwrap_or_default();
    let ext = if ext.is_empty() {
        let name = file.and_then(|f| f.get("filename")).and_then(Value::as_str).unwrap_or_default();
        name.rsplit_once('.').map_or("", |(_, e)| e)
    } else {
        ext
    };
    ext.trim().trim_start_matches('.').to_lowercase()
}

/// A revoke record's `revoke.pre_msgid`.
fn pre_msgid(msgdata: &str) -> Option<String> {
    let v: Value = crate::message::parse_lenient(msgdata).ok()?;
    let pre = v.get("revoke")?.get("pre_msgid")?.as_str()?;
    (!pre.is_empty()).then(|| pre.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::rules::def::parse_file;

    fn set(toml: &str) -> RuleSet {
        let f = parse_file(std::path::Path::new("rules.toml"), toml).unwrap();
        RuleSet::compile(&f.rules, 1 << 20).unwrap()
    }

    fn row(msgid: &str, from: &str, to: &str, room: &str, v: Value) -> Row {
        let msgtype = v.get("msgtype").and_then(Value::as_str).unwrap_or_default().to_string();
        let text = if msgtype == "text" {
            v.pointer("/text/content").and_then(Value::as_str).unwrap_or_default().to_string()
        } else {
            String::new()
        };
        Row {
            msgid: msgid.into(),
            seq: 1,
            action: "send".into(),
            msgfrom: from.into(),
            tolist: to.into(),
            msgtype,
            msgtime: 1_000_000,
            text,
            msgdata: v.to_string(),
            roomid: room.into(),
            ..Row::default()
        }
    }

    fn text_row(from: &str, to: &str, room: &str, content: &str) -> Row {
        row("m1", from, to, room, json!({"msgtype":"text","text":{"content":content}}))
    }

    fn hits(s: &RuleSet, r: &Row) -> Vec<(String, String, String)> {
        let mut out = BatchHits::default();
        s.evaluate("wwcorp", r, &mut out);
        out.hits.into_iter().map(|h| (h.rule, h.kind, h.matched)).collect()
    }

    fn names(s: &RuleSet, r: &Row) -> Vec<String> {
        let mut v: Vec<String> = hits(s, r).into_iter().map(|h| h.0).collect();
        v.sort();
        v
    }

    #[test]
    fn keywords_overlapping_cjk_and_case() {
        let s = set("[[rule]]\nname = \"a\"\nkeywords = [\"私下\", \"Transfer\"]\n\
                     [[rule]]\nname = \"b\"\nkeywords = [\"私下转账\"]\n\
                     [[rule]]\nname = \"c\"\nkeywords = [\"下转\"]\n\
                     [[rule]]\nname = \"d\"\nkeywords = [\"不在\"]\n");
        let r = text_row("zhangsan", "lisi", "", "我们私下转账吧");
        assert_eq!(names(&s, &r), ["a", "b", "c"]);
        let h = hits(&s, &r);
        assert!(h.contains(&("b".into(), "keyword".into(), "私下转账".into())), "{h:?}");
        assert_eq!(names(&s, &text_row("zhangsan", "lisi", "", "please TRANSFER now")), ["a"]);
        assert!(names(&s, &text_row("zhangsan", "lisi", "", "nothing")).is_empty());
    }

    #[test]
    fn one_hit_per_rule_with_context() {
        let s = set("[[rule]]\nname = \"a\"\nkeywords = [\"x1\", \"x2\"]\nregex = [\"x\\\\d\"]\n");
        let mut out = BatchHits::default();
        s.evaluate("wwcorp", &text_row("zhangsan", "lisi", "", "前面的文字 x1 and x2 后面"), &mut out);
        assert_eq!(out.hits.len(), 1);
        let h = &out.hits[0];
        assert_eq!((h.kind.as_str(), h.matched.as_str()), ("keyword", "x1"));
        assert_eq!(h.context, "前面的文字 x1 and x2 后面");
        assert_eq!(
            (h.sender.as_str(), h.conversation.as_str(), h.msgtime),
            ("zhangsan", "pair:lisi|zhangsan", 1_000_000)
        );
    }

    #[test]
    fn regexes_and_the_size_limit() {
        let s = set("[[rule]]\nname = \"r\"\nregex = [\"加(微|V)信?\\\\s*[a-zA-Z0-9_-]{5,}\"]\n");
        assert_eq!(
            hits(&s, &text_row("u", "v", "", "加V wxid_abc123")),
            [("r".into(), "regex".into(), "加V wxid_abc123".into())]
        );
        assert!(hits(&s, &text_row("u", "v", "", "加油")).is_empty());
        let f =
            parse_file(std::path::Path::new("r.toml"), "[[rule]]\nname = \"big\"\nregex = [\"a\", \"\\\\w{1000}\"]\n")
                .unwrap();
        let e = RuleSet::compile(&f.rules, 10_000).unwrap_err().to_string();
        assert!(e.contains("rule 'big'") && e.contains("regex[2]") && e.contains("size limit of 10000 bytes"), "{e}");
        let f = parse_file(std::path::Path::new("r.toml"), "[[rule]]\nname = \"bad\"\nregex = [\"(\"]\n").unwrap();
        assert!(RuleSet::compile(&f.rules, 10_000).unwrap_err().to_string().contains("regex[1]"));
    }

    #[test]
    fn builtins_valid_and_invalid() {
        let s = set("[[rule]]\nname = \"p\"\nbuiltin = [\"phone\"]\n\
                     [[rule]]\nname = \"i\"\nbuiltin = [\"id_card\"]\n\
                     [[rule]]\nname = \"b\"\nbuiltin = [\"bank_card\"]\n\
                     [[rule]]\nname = \"e\"\nbuiltin = [\"email\"]\n\
                     [[rule]]\nname = \"u\"\nbuiltin = [\"url\"]\nurl_domains = [\"baidu.com\"]\n");
        let t = |s2: &str| names(&s, &text_row("u", "v", "", s2));
        assert_eq!(t("电话13812345678"), ["p"]);
        assert!(t("电话12812345678").is_empty());
        assert_eq!(t("身份证11010519491231002X"), ["i"]);
        assert!(t("身份证110105194912310021").is_empty());
        assert_eq!(t("卡4111111111111111"), ["b"]);
        assert!(t("卡4111111111111112").is_empty());
        assert_eq!(t("a@b.cn"), ["e"]);
        assert_eq!(t("看 https://pan.baidu.com/s/1"), ["u"]);
        assert!(t("看 https://pan.example.com/s/1").is_empty());
        let h = hits(&s, &text_row("u", "v", "", "电话13812345678"));
        assert_eq!(h[0].2, "phone: 13812345678");
    }

    #[test]
    fn behaviours() {
        let s = set("[[rule]]\nname = \"card\"\nbehaviour = [\"card\"]\n\
                     [[rule]]\nname = \"weapp\"\nbehaviour = [\"weapp\"]\n\
                     [[rule]]\nname = \"zip\"\nbehaviour = [\"file\"]\nfile_extensions = [\"ZIP\", \".rar\"]\n\
                     [[rule]]\nname = \"anyfile\"\nbehaviour = [\"file\"]\n\
                     [[rule]]\nname = \"red\"\nbehaviour = [\"redpacket\"]\n\
                     [[rule]]\nname = \"rv\"\nbehaviour = [\"revoke\"]\nrevoke_within = \"30s\"\n");
        let r = |v: Value| row("m", "zhangsan", "lisi", "", v);
        assert_eq!(names(&s, &r(json!({"msgtype":"card","card":{"corpname":"x","userid":"y"}}))), ["card"]);
        assert_eq!(names(&s, &r(json!({"msgtype":"weapp","weapp":{"title":"t"}}))), ["weapp"]);
        assert_eq!(
            names(&s, &r(json!({"msgtype":"file","file":{"filename":"a.ZIP","fileext":"zip"}}))),
            ["anyfile", "zip"]
        );
        assert_eq!(
            names(&s, &r(json!({"msgtype":"file","file":{"filename":"客户.rar","fileext":""}}))),
            ["anyfile", "zip"]
        );
        assert_eq!(names(&s, &r(json!({"msgtype":"file","file":{"filename":"a.pdf","fileext":"pdf"}}))), ["anyfile"]);
        assert_eq!(names(&s, &r(json!({"msgtype":"redpacket","redpacket":{"wish":"w"}}))), ["red"]);
        assert_eq!(names(&s, &r(json!({"msgtype":"external_redpacket","redpacket":{"wish":"w"}}))), ["red"]);
        let mut out = BatchHits::default();
        s.evaluate("wwcorp", &r(json!({"msgtype":"revoke","revoke":{"pre_msgid":"orig"}})), &mut out);
        assert!(out.hits.is_empty());
        assert_eq!(out.revokes.len(), 1);
        assert_eq!(out.revokes[0].pre_msgid, "orig");
        assert_eq!(out.revokes[0].rules, [("rv".to_string(), 30_000)]);
    }

    #[test]
    fn scopes() {
        let s = set("[[rule]]\nname = \"single\"\nkeywords = [\"k\"]\nchat = \"single\"\n\
                     [[rule]]\nname = \"group\"\nkeywords = [\"k\"]\nchat = \"group\"\n\
                     [[rule]]\nname = \"internal\"\nkeywords = [\"k\"]\nconversation = \"internal\"\n\
                     [[rule]]\nname = \"external\"\nkeywords = [\"k\"]\nconversation = \"external\"\n\
                     [[rule]]\nname = \"to_customer\"\nkeywords = [\"k\"]\ndirection = \"to_customer\"\n\
                     [[rule]]\nname = \"from_customer\"\nkeywords = [\"k\"]\ndirection = \"from_customer\"\n\
                     [[rule]]\nname = \"sales\"\nkeywords = [\"k\"]\nsenders = [\"sales1\", \"sales2\"]\n\
                     [[rule]]\nname = \"not_boss\"\nkeywords = [\"k\"]\nexclude_senders = [\"boss\"]\n\
                     [[rule]]\nname = \"othercorp\"\nkeywords = [\"k\"]\ncorps = [\"wwother\"]\n\
                     [[rule]]\nname = \"images\"\nkeywords = [\"k\"]\nmsgtypes = [\"image\"]\n");
        assert_eq!(names(&s, &text_row("zhangsan", "lisi", "", "k")), ["internal", "not_boss", "single"]);
        assert_eq!(names(&s, &text_row("boss", "lisi,wangwu", "room1", "k")), ["group", "internal"]);
        assert_eq!(
            names(&s, &text_row("sales1", "wmCustomer", "", "k")),
            ["external", "not_boss", "sales", "single", "to_customer"]
        );
        assert_eq!(
            // `senders` is about who sends: a customer writing to sales2 is not sales2's message.
            names(&s, &text_row("woCustomer", "sales2", "", "k")),
            ["external", "from_customer", "not_boss", "single"]
        );
        assert_eq!(
            names(&s, &text_row("wmC", "zhangsan,wmD", "room2", "k")),
            ["external", "from_customer", "group", "not_boss"]
        );
    }

    #[test]
    fn nested_chatrecord_and_mixed_text_is_searched() {
        let s = set("[[rule]]\nname = \"n\"\nkeywords = [\"内层秘密\"]\n");
        let inner = json!({"item":[{"type":"text","content":json!({"content":"这是内层秘密"}).to_string()}]});
        let v = json!({"msgtype":"chatrecord","chatrecord":{"title":"记录","item":[
            {"type":"ChatRecordText","content":json!({"content":"外层"}).to_string()},
            {"type":"ChatRecordMixed","content":inner.to_string()},
        ]}});
        assert_eq!(names(&s, &row("m", "a", "b", "", v)), ["n"]);
        let m = json!({"msgtype":"mixed","mixed":{"item":[{"type":"text","content":json!({"content":"内层秘密在此"}).to_string()}]}});
        assert_eq!(names(&s, &row("m", "a", "b", "", m)), ["n"]);
        // Other msgtypes' text: a link's title, a file's name.
        let s = set("[[rule]]\nname = \"t\"\nkeywords = [\"报价单\"]\n");
        assert_eq!(names(&s, &row("m", "a", "b", "", json!({"msgtype":"link","link":{"title":"最新报价单"}}))), ["t"]);
        assert_eq!(
            names(&s, &row("m", "a", "b", "", json!({"msgtype":"file","file":{"filename":"报价单.xlsx"}}))),
            ["t"]
        );
    }

    #[test]
    fn the_example_rules_file_compiles_and_hits() {
        let s = set(include_str!("../../config/rules.example.toml"));
        assert_eq!(s.len(), 8);
        assert_eq!(
            names(&s, &text_row("sales1", "wmCustomer", "", "加微信 wxid_abc123 或 13812345678")),
            ["contact-details-to-customers"]
        );
        assert_eq!(names(&s, &text_row("sales1", "wmCustomer", "", "请私下转账")), ["private-transfer"]);
    }

    #[test]
    fn disabled_rules_and_undecryptable_rows_hit_nothing() {
        let s = set("[[rule]]\nname = \"off\"\nkeywords = [\"k\"]\nenabled = false\n");
        assert!(s.is_empty());
        let s = set("[[rule]]\nname = \"on\"\nkeywords = [\"k\"]\n");
        let mut r = text_row("a", "b", "", "k");
        r.msgtype.clear();
        assert!(names(&s, &r).is_empty());
    }
}
