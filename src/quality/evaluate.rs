//! The evaluation of one reply-time rule over a corp's rows, in seq order, without I/O: a
//! [`RuleRun`] holds the rule's cursor and open runs, is fed rows ([`RuleRun::feed`]) and hands
//! out what changed ([`RuleRun::take_delta`]) for the store to write in one transaction.
//!
//! Semantics (see also `docs/reply-time.md`):
//! - a row counts when it is a sent message (not a switch, revoke or consent event), in an
//!   external conversation (a customer takes part: `search::index::is_external`) of the rule's
//!   scope (one-to-one: exactly one receiver; group: a roomid), and, with `employees`, one of
//!   them takes part. Internal conversations are ignored entirely;
//! - customers are senders `wo…`/`wm…`; employees are other senders except bots (`wb…`);
//! - the first customer message after the last employee message of a conversation opens a run;
//!   further customer messages join it (ONE hit per unanswered run, on its first message). The
//!   first employee message of the same conversation at or after the run's start answers it:
//!   its working-time wait is a sample for the daily statistics (of that employee, on the
//!   reply's day), and it is late when it exceeds the rule's minutes;
//! - a run is decided when the rule's "now" passes its deadline (the instant at which the allowed
//!   working time has passed since its start; a start outside working hours counts from the next
//!   working span). "Now" is the newest msgtime evaluated (the watermark), never the wall clock:
//!   an archive that lags (a daemon catching up a backlog, a backfill) sees the reply before it
//!   judges the wait, and the result depends only on the stored rows, not on when they were
//!   evaluated. The price: in a corp where nothing at all is stored after a customer's message,
//!   its hit waits for the next stored message;
//! - each row is applied first (a late reply decides its run with the real wait: `replied after
//!   23 min`), then the watermark moves and every run whose deadline it passed is decided (`no
//!   reply within 10 min`). The outcome depends on the order of the rows only, not on how they
//!   were cut into batches: a restart mid-way gives the same hits.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::rules::ReplyRule;
use crate::message::Row;
use crate::search::index::{conversation_key, is_external};
use crate::store::{OpenRun, ReplyActivity, ReplyCursor, ReplyDelta, ReplyHit, ReplySample};

/// Msgtypes that are events, not messages to answer or answers.
const NOT_MESSAGES: [&str; 5] = ["switch", "revoke", "agree", "disagree", "external_redpacket_notice"];

/// A decided run whose first message is older than this (message time) is forgotten: a reply
/// that late is not a first reply any more.
pub const FORGET_AFTER_MS: i64 = 30 * 24 * 3_600_000;

/// Longest context kept (characters).
const CONTEXT_CHARS: usize = 500;

/// Who sent a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Party {
    Customer,
    Employee,
}

/// External contacts and other corps' people.
pub fn is_customer(id: &str) -> bool {
    id.starts_with("wo") || id.starts_with("wm")
}

fn party_of(id: &str) -> Option<Party> {
    if is_customer(id) {
        Some(Party::Customer)
    } else if id.is_empty() || id.starts_with("wb") {
        None
    } else {
        Some(Party::Employee)
    }
}

/// SHA-256 (hex) of a conversation key: its id in the reply tables.
pub fn conv_hash(key: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A wait as text: `23 min`, `10 min 30 s`.
pub fn fmt_wait(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match (s / 60, s % 60) {
        (m, 0) => format!("{m} min"),
        (0, s) => format!("{s} s"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// A counted row: its conversation and who sent it.
struct Counted {
    key: String,
    group: bool,
    party: Party,
    /// The employee of a one-to-one chat.
    employee: String,
}

fn classify(rule: &ReplyRule, row: &Row) -> Option<Counted> {
    if row.msgtype.is_empty() || NOT_MESSAGES.contains(&row.msgtype.as_str()) {
        return None;
    }
    if !(row.action.is_empty() || row.action == "send") || !is_external(row) {
        return None;
    }
    let party = party_of(&row.msgfrom)?;
    let receivers: Vec<&str> = row.tolist.split(',').filter(|s| !s.is_empty()).collect();
    let group = !row.roomid.is_empty();
    if (group && !rule.group) || (!group && !rule.single) {
        return None;
    }
    let employee = if group {
        String::new()
    } else {
        let [to] = receivers.as_slice() else { return None };
        match party {
            Party::Customer if party_of(to) == Some(Party::Employee) => (*to).to_string(),
            Party::Employee if is_customer(to) => row.msgfrom.clone(),
            _ => return None,
        }
    };
    if !rule.employees.is_empty()
        && !std::iter::once(row.msgfrom.as_str()).chain(receivers.iter().copied()).any(|p| rule.employees.contains(p))
    {
        return None;
    }
    Some(Counted { key: conversation_key(&row.roomid, &row.msgfrom, &row.tolist), group, party, employee })
}

/// One rule's evaluation of one corp.
#[derive(Debug, Clone)]
pub struct RuleRun {
    corpid: String,
    cursor: ReplyCursor,
    /// Open runs by conv, with their deadline.
    open: HashMap<String, (OpenRun, Option<i64>)>,
    /// (deadline, conv) of the runs not decided yet.
    pending: BTreeSet<(i64, String)>,
    hits: Vec<ReplyHit>,
    changed: BTreeMap<String, Option<OpenRun>>,
    activity: BTreeMap<(String, String, String), u64>,
    samples: Vec<ReplySample>,
}

impl RuleRun {
    /// The state read back: the cursor and the open runs.
    pub fn new(rule: &ReplyRule, corpid: &str, cursor: ReplyCursor, runs: Vec<OpenRun>) -> Self {
        let mut me = Self {
            corpid: corpid.to_string(),
            cursor,
            open: HashMap::new(),
            pending: BTreeSet::new(),
            hits: Vec::new(),
            changed: BTreeMap::new(),
            activity: BTreeMap::new(),
            samples: Vec::new(),
        };
        for run in runs {
            // Deadlines follow the rule as it is now (an edited rule applies to open runs too).
            let deadline = rule.calendar.deadline(run.msgtime, rule.allowed_ms());
            if let (false, Some(d)) = (run.decided, deadline) {
                me.pending.insert((d, run.conv.clone()));
            }
            me.open.insert(run.conv.clone(), (run, deadline));
        }
        me
    }

    /// The cursor (including what was fed but not taken yet).
    pub fn cursor(&self) -> ReplyCursor {
        self.cursor
    }

    /// The open runs.
    pub fn open_runs(&self) -> impl Iterator<Item = &OpenRun> {
        self.open.values().map(|(r, _)| r)
    }

    /// Evaluates the next row (rows at or below the cursor are ignored).
    pub fn feed(&mut self, rule: &ReplyRule, row: &Row) {
        if row.seq <= self.cursor.seq {
            return;
        }
        self.cursor.seq = row.seq;
        let t = i64::try_from(row.msgtime).unwrap_or(i64::MAX);
        if t < self.cursor.since_ms {
            return;
        }
        if let Some(c) = classify(rule, row) {
            self.apply(rule, row, t, c);
        }
        if t > self.cursor.watermark {
            self.cursor.watermark = t;
            self.expire(rule);
        }
    }

    fn apply(&mut self, rule: &ReplyRule, row: &Row, t: i64, c: Counted) {
        let conv = conv_hash(&c.key);
        match c.party {
            Party::Customer => {
                if self.open.contains_key(&conv) {
                    return;
                }
                let context: String =
                    crate::review::render::summary_text(&self.corpid, row).chars().take(CONTEXT_CHARS).collect();
                let run = OpenRun {
                    conv: conv.clone(),
                    conversation: c.key,
                    msgid: row.msgid.clone(),
                    msgtime: t,
                    sender: row.msgfrom.clone(),
                    employee: c.employee,
                    context,
                    is_group: c.group,
                    decided: false,
                };
                let deadline = rule.calendar.deadline(t, rule.allowed_ms());
                if let Some(d) = deadline {
                    self.pending.insert((d, conv.clone()));
                }
                self.changed.insert(conv.clone(), Some(run.clone()));
                self.open.insert(conv, (run, deadline));
            }
            Party::Employee => {
                let counted = rule.employees.is_empty() || rule.employees.contains(&row.msgfrom);
                let day = rule.calendar.day_of(t);
                if counted {
                    *self.activity.entry((day.clone(), row.msgfrom.clone(), conv.clone())).or_default() += 1;
                }
                let Some((run, deadline)) = self.open.get(&conv) else { return };
                if t < run.msgtime {
                    return;
                }
                let wait = rule.calendar.working_ms(run.msgtime, t);
                let late = wait > rule.allowed_ms();
                if counted {
                    self.samples.push(ReplySample {
                        msgid: run.msgid.clone(),
                        day,
                        userid: row.msgfrom.clone(),
                        wait_ms: wait,
                        late,
                    });
                }
                if late && !run.decided {
                    self.hits.push(hit(run, format!("replied after {}", fmt_wait(wait))));
                }
                if let Some(d) = deadline {
                    self.pending.remove(&(*d, conv.clone()));
                }
                self.open.remove(&conv);
                self.changed.insert(conv, None);
            }
        }
    }

    /// Decides every run whose deadline the watermark passed; forgets old decided runs.
    fn expire(&mut self, rule: &ReplyRule) {
        let now = self.cursor.watermark;
        while let Some((d, conv)) = self.pending.first().cloned() {
            if d >= now {
                break;
            }
            self.pending.pop_first();
            if let Some((run, _)) = self.open.get_mut(&conv) {
                run.decided = true;
                self.hits.push(hit(run, format!("no reply within {} min", rule.minutes)));
                self.changed.insert(conv, Some(run.clone()));
            }
        }
        let old: Vec<String> = self
            .open
            .iter()
            .filter(|(_, (r, d))| (r.decided || d.is_none()) && now.saturating_sub(r.msgtime) > FORGET_AFTER_MS)
            .map(|(c, _)| c.clone())
            .collect();
        for conv in old {
            if let Some((_, Some(d))) = self.open.remove(&conv) {
                self.pending.remove(&(d, conv.clone()));
            }
            self.changed.insert(conv, None);
        }
    }

    /// Whether something was fed since the last [`RuleRun::take_delta`] (or `since` moved).
    pub fn moved_from(&self, expected: Option<&ReplyCursor>) -> bool {
        expected != Some(&self.cursor)
    }

    /// What changed since the last call, for [`ReplyTimeRepo::reply_apply`] with the cursor the
    /// store has (`expected`).
    ///
    /// [`ReplyTimeRepo::reply_apply`]: crate::store::ReplyTimeRepo::reply_apply
    pub fn take_delta(&mut self, rule: &ReplyRule, expected: Option<ReplyCursor>, alert_state: u8) -> ReplyDelta {
        let mut open_put = Vec::new();
        let mut open_del = Vec::new();
        for (conv, run) in std::mem::take(&mut self.changed) {
            match run {
                Some(r) => open_put.push(r),
                None => open_del.push(conv),
            }
        }
        ReplyDelta {
            rule: rule.name.clone(),
            expected,
            cursor: self.cursor,
            hits: std::mem::take(&mut self.hits),
            hit_alert_state: alert_state,
            open_put,
            open_del,
            activity: std::mem::take(&mut self.activity)
                .into_iter()
                .map(|((day, userid, conv), messages)| ReplyActivity { day, userid, conv, messages })
                .collect(),
            samples: std::mem::take(&mut self.samples),
        }
    }
}

fn hit(run: &OpenRun, matched: String) -> ReplyHit {
    ReplyHit {
        msgid: run.msgid.clone(),
        matched,
        context: run.context.clone(),
        sender: run.sender.clone(),
        conversation: run.conversation.clone(),
        msgtime: run.msgtime,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quality::rules::parse_text;

    fn rule(extra: &str) -> ReplyRule {
        parse_text(&format!("[[reply_time]]\nname = \"r\"\nminutes = 10\nhours = \"00:00-24:00\"\nweekdays = \"mon-sun\"\ntimezone = \"UTC\"\n{extra}"))
            .unwrap()
            .remove(0)
    }

    fn row(seq: u64, min: u64, from: &str, to: &str, room: &str) -> Row {
        Row {
            msgid: format!("m{seq}"),
            seq,
            action: "send".into(),
            msgfrom: from.into(),
            tolist: to.into(),
            msgtype: "text".into(),
            msgtime: 1_800_000_000_000 + min * 60_000,
            text: format!("text {seq}"),
            msgdata: format!(r#"{{"msgtype":"text","text":{{"content":"text {seq}"}}}}"#),
            roomid: room.into(),
            ..Row::default()
        }
    }

    fn run(rule: &ReplyRule, rows: &[Row]) -> ReplyDelta {
        let mut r = RuleRun::new(rule, "ww", ReplyCursor::default(), vec![]);
        for x in rows {
            r.feed(rule, x);
        }
        r.take_delta(rule, None, 0)
    }

    #[test]
    fn late_in_time_and_unanswered() {
        let r = rule("");
        let d = run(
            &r,
            &[
                row(1, 0, "wmC", "zhang", ""),
                row(2, 5, "zhang", "wmC", ""),  // in time
                row(3, 20, "wmC", "zhang", ""), // opens
                row(4, 21, "wmC", "zhang", ""), // joins the run
                row(5, 45, "zhang", "wmC", ""), // late: 25 min
                row(6, 50, "wmD", "li", ""),    // unanswered…
                row(7, 61, "zhang", "wmC", ""), // …decided by a later row of another chat
            ],
        );
        let hits: Vec<(&str, &str)> = d.hits.iter().map(|h| (h.msgid.as_str(), h.matched.as_str())).collect();
        assert_eq!(hits, [("m3", "replied after 25 min"), ("m6", "no reply within 10 min")]);
        assert_eq!(d.hits[0].context, "text 3");
        assert_eq!(d.hits[0].conversation, "pair:wmC|zhang");
        let waits: Vec<(i64, bool)> = d.samples.iter().map(|s| (s.wait_ms, s.late)).collect();
        assert_eq!(waits, [(300_000, false), (1_500_000, true)]);
        assert_eq!(d.activity.iter().map(|a| a.messages).sum::<u64>(), 3);
        assert_eq!(d.open_put.len(), 1, "m6 stays open (decided)");
        assert!(d.open_put[0].decided);
        assert_eq!(d.cursor.seq, 7);
    }

    #[test]
    fn scopes_internal_chats_and_employee_lists() {
        let singles = rule("scope = \"single\"");
        let groups = rule("scope = \"group\"");
        let rows = [
            row(1, 0, "wmC", "zhang,li", "room1"),
            row(2, 0, "wmC", "zhang", ""),
            row(3, 0, "li", "zhang", ""), // internal
            row(4, 0, "zhang", "li,wang", "room2"),
            row(5, 30, "wb1", "zhang", ""),
        ];
        let s = run(&singles, &rows);
        assert_eq!(s.hits.iter().map(|h| h.msgid.as_str()).collect::<Vec<_>>(), ["m2"]);
        let g = run(&groups, &rows);
        assert_eq!(g.hits.iter().map(|h| h.msgid.as_str()).collect::<Vec<_>>(), ["m1"]);
        assert!(g.activity.is_empty(), "the internal group's message is not counted");
        let only_li = rule("employees = [\"li\"]");
        let l = run(&only_li, &rows);
        assert_eq!(l.hits.iter().map(|h| h.msgid.as_str()).collect::<Vec<_>>(), ["m1"], "li is in room1 only");
    }

    #[test]
    fn batches_do_not_change_the_outcome() {
        let r = rule("");
        let rows: Vec<Row> = (1..=40)
            .map(|i| match i % 4 {
                0 => row(i, i * 4, "zhang", "wmC", ""),
                1 => row(i, i * 4, "wmC", "zhang", ""),
                2 => row(i, i * 4, "wmD", "li", ""),
                _ => row(i, i * 4, "li", "wmD", ""),
            })
            .collect();
        let whole = run(&r, &rows);
        // In batches of 3, the state carried over as the store would give it back.
        let mut state = RuleRun::new(&r, "ww", ReplyCursor::default(), vec![]);
        let mut hits = Vec::new();
        for chunk in rows.chunks(3) {
            for x in chunk {
                state.feed(&r, x);
            }
            hits.extend(state.take_delta(&r, None, 0).hits);
            let runs: Vec<OpenRun> = state.open_runs().cloned().collect();
            state = RuleRun::new(&r, "ww", state.cursor(), runs);
        }
        assert_eq!(hits, whole.hits);
        assert!(!hits.is_empty());
    }

    #[test]
    fn waits_read_well() {
        assert_eq!(fmt_wait(600_000), "10 min");
        assert_eq!(fmt_wait(630_000), "10 min 30 s");
        assert_eq!(fmt_wait(5_000), "5 s");
        assert_eq!(conv_hash("room:x").len(), 64);
    }
}
