//! The completeness report: is the archive of each corp whole, and what is missing?
//!
//! [`check`] asks the database (through [`CompletenessRepo`], one bounded question per finding:
//! gaps are found by SQL, never by loading seqs) and the metadata tables that the WeCom API part
//! of the daemon fills (`wecom_permit_user`, `wecom_consent`; read only here), and returns a
//! [`CompletenessReport`]: per corp, every finding by [`Kind`], with exact counts and the first
//! [`Options::limit`] examples. The `completeness` command prints it (table or JSON, exit code by
//! [`CompletenessReport::needs_attention`]); the observer computes it on its own slower timer and
//! puts it into the `/status` [`Report`](super::Report), and [`super::metrics`] renders one gauge
//! per kind and corp.
//!
//! The findings:
//!
//! | kind | what | attention |
//! |---|---|---|
//! | `gap_never_served` | seqs missing between two stored records at or below the cursor: the API moved past them, it will never serve them | yes |
//! | `gap_not_yet_pulled` | seqs missing above the cursor: the next pulls may still fill them (none while the cursor is the highest stored seq, as [`crate::store::BatchRepo::cursor`] makes it; what the server holds beyond the cursor is the lag: `lag_seconds`, `since_last_pull_seconds`, `pull_stale`) | no |
//! | `member_unseen` | archived members (`wecom_permit_user`) who appear in no decrypted record | no |
//! | `person_not_archived` | internal userids (not `wo`/`wm`/`wb…`) in records who are not archived members | no |
//! | `consent_missing` | conversations with an external contact (`wo…`/`wm…`) without an `Agree`/`Default_Agree` consent: a 1:1 pair (employee, contact) or a (room, contact) | yes |
//! | `media_failed` | media items failed for good (status 4), by kind and code | yes |
//! | `undecryptable` | records kept with their ciphertext because no key decrypts them, by `publickey_ver` | yes |
//! | `quarantined` | records the database refused as parsed, kept whole | no |
//! | `pull_stale` | the corp's last successful pull is older than `[daemon] alert_after` (known only from a running daemon) | yes |
//!
//! Rules that keep the report honest: seqs are per corp and only increase, so a gap is computed
//! from what is stored now (a gap that a later pull filled is no gap); the range before the lowest
//! stored seq is not a gap (the archive may have started later, WeCom keeps 5 days); member and
//! consent findings are made only once the metadata tables hold something for the corp (else the
//! report says "not fetched" instead of flagging every person); `--since` bounds every finding to
//! the records from the first one with `msgtime >= since` on (by seq: undecryptable records have
//! no msgtime), the gap ending at that record included.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::store::{ConsentRow, CorpId, Participation, Store, StoreError};

/// Why a corp's completeness could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum CompletenessError {
    /// The database failed.
    #[error("completeness check: {0}")]
    Store(#[from] StoreError),
}

impl CompletenessError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
        }
    }
}

/// A kind of finding (its `snake_case` name is the metric label and the JSON key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Missing seqs at or below the cursor.
    GapNeverServed,
    /// Missing seqs above the cursor.
    GapNotYetPulled,
    /// Archived members seen in no record.
    MemberUnseen,
    /// Internal people in records who are not archived members.
    PersonNotArchived,
    /// External conversations without consent.
    ConsentMissing,
    /// Media failed for good.
    MediaFailed,
    /// Records no key decrypts.
    Undecryptable,
    /// Records the database refused as parsed, kept whole.
    Quarantined,
    /// No successful pull for longer than `alert_after`.
    PullStale,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 9] = [
        Kind::GapNeverServed,
        Kind::GapNotYetPulled,
        Kind::MemberUnseen,
        Kind::PersonNotArchived,
        Kind::ConsentMissing,
        Kind::MediaFailed,
        Kind::Undecryptable,
        Kind::Quarantined,
        Kind::PullStale,
    ];

    /// The stable name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::GapNeverServed => "gap_never_served",
            Kind::GapNotYetPulled => "gap_not_yet_pulled",
            Kind::MemberUnseen => "member_unseen",
            Kind::PersonNotArchived => "person_not_archived",
            Kind::ConsentMissing => "consent_missing",
            Kind::MediaFailed => "media_failed",
            Kind::Undecryptable => "undecryptable",
            Kind::Quarantined => "quarantined",
            Kind::PullStale => "pull_stale",
        }
    }

    /// Whether a finding of this kind needs someone's attention (else it is informational).
    pub fn attention(self) -> bool {
        matches!(
            self,
            Kind::GapNeverServed | Kind::ConsentMissing | Kind::MediaFailed | Kind::Undecryptable | Kind::PullStale
        )
    }

    /// What a count of this kind counts.
    pub fn unit(self) -> &'static str {
        match self {
            Kind::GapNeverServed | Kind::GapNotYetPulled => "seqs",
            Kind::MemberUnseen | Kind::PersonNotArchived => "people",
            Kind::ConsentMissing => "conversations",
            Kind::MediaFailed => "items",
            Kind::Undecryptable | Kind::Quarantined => "records",
            Kind::PullStale => "corps",
        }
    }
}

/// What [`check`] looks at.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only records from the first with `msgtime >= since_ms` on.
    pub since_ms: Option<u64>,
    /// How many examples (gap ranges, people, conversations) each list keeps; counts are exact.
    pub limit: u32,
    /// A corp whose last successful pull is older is `pull_stale` (`[daemon] alert_after`).
    pub stale_after: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self { since_ms: None, limit: 100, stale_after: Duration::from_secs(24 * 3600) }
    }
}

/// Seqs missing between `after` and `before` (both stored), exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRange {
    /// The stored seq before the gap.
    pub after: u64,
    /// The stored seq after it.
    pub before: u64,
}

impl SeqRange {
    /// How many seqs are missing.
    pub fn missing(&self) -> u64 {
        self.before.saturating_sub(self.after).saturating_sub(1)
    }
}

/// Gaps on one side of the cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gaps {
    /// Ranges.
    pub ranges: u64,
    /// Missing seqs.
    pub missing: u64,
    /// The first ranges (clipped to this side of the cursor).
    pub first: Vec<SeqRange>,
}

/// A conversation with an external contact that lacks consent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConsentGap {
    /// The room (`""` for a 1:1 pair).
    pub roomid: String,
    /// The employee of a 1:1 pair (`""` in a room).
    pub userid: String,
    /// The external contact.
    pub external_id: String,
    /// The consent on record when there is one (`Disagree`, …), `None` when none.
    pub status: Option<String>,
}

/// Failed media of one kind and code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaFailure {
    /// Media kind.
    pub kind: String,
    /// The stored code (SDK return code, WeCom errcode, or the daemon's own).
    pub code: i64,
    /// Items.
    pub count: u64,
}

/// Undecryptable records of one key version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFailure {
    /// The `publickey_ver`.
    pub publickey_ver: u32,
    /// Records.
    pub count: u64,
    /// Their lowest seq.
    pub min_seq: u64,
    /// Their highest seq.
    pub max_seq: u64,
}

/// Names of people, counted exactly, listed up to the limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct People {
    /// How many.
    pub count: u64,
    /// The first (sorted).
    pub first: Vec<String>,
}

/// One corp's completeness.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CorpCompleteness {
    /// The corp.
    pub corpid: String,
    /// Why it could not be checked (the other fields are then empty).
    pub error: Option<String>,
    /// The corp's cursor (`corp_cursor`).
    pub cursor: u64,
    /// Records stored (all, not only since `--since`).
    pub records: u64,
    /// The lowest and highest stored seq.
    pub min_seq: u64,
    /// See `min_seq`.
    pub max_seq: u64,
    /// The first seq looked at (`--since`), `None` for all.
    pub from_seq: Option<u64>,
    /// Seq gaps at or below the cursor.
    pub never_served: Gaps,
    /// Seq gaps above the cursor.
    pub not_yet_pulled: Gaps,
    /// Whether `wecom_permit_user` holds anything for the corp (else no member findings).
    pub members_fetched: bool,
    /// Archived members (present in the last list).
    pub archived_members: u64,
    /// Archived members seen in no record.
    pub members_unseen: People,
    /// Internal people seen who are not archived members.
    pub people_not_archived: People,
    /// Whether `wecom_consent` holds anything for the corp (else no consent findings).
    pub consent_fetched: bool,
    /// External conversations (1:1 pairs and (room, contact)) seen.
    pub external_conversations: u64,
    /// Those without consent: how many.
    pub consent_missing: u64,
    /// The first of them.
    pub consent_gaps: Vec<ConsentGap>,
    /// Media failed for good.
    pub media_failed: Vec<MediaFailure>,
    /// Undecryptable records by key version.
    pub undecryptable: Vec<KeyFailure>,
    /// Records stored whole, not as parsed.
    pub quarantined: u64,
    /// Now − the newest stored msgtime, seconds.
    pub lag_seconds: Option<f64>,
    /// Seconds since the last successful pull (from a running daemon only).
    pub since_last_pull_seconds: Option<f64>,
    /// Every kind with its count (all kinds, zeros included).
    pub findings: BTreeMap<Kind, u64>,
}

impl CorpCompleteness {
    /// The count of `kind`.
    pub fn count(&self, kind: Kind) -> u64 {
        self.findings.get(&kind).copied().unwrap_or(0)
    }

    /// Whether something needs attention (an attention kind with a count, or no check at all).
    pub fn needs_attention(&self) -> bool {
        self.error.is_some() || Kind::ALL.iter().any(|k| k.attention() && self.count(*k) > 0)
    }

    fn tally(&mut self, stale: bool) {
        let failed_media = self.media_failed.iter().map(|m| m.count).sum();
        let undecryptable = self.undecryptable.iter().map(|k| k.count).sum();
        for (k, v) in [
            (Kind::GapNeverServed, self.never_served.missing),
            (Kind::GapNotYetPulled, self.not_yet_pulled.missing),
            (Kind::MemberUnseen, self.members_unseen.count),
            (Kind::PersonNotArchived, self.people_not_archived.count),
            (Kind::ConsentMissing, self.consent_missing),
            (Kind::MediaFailed, failed_media),
            (Kind::Undecryptable, undecryptable),
            (Kind::Quarantined, self.quarantined),
            (Kind::PullStale, u64::from(stale)),
        ] {
            self.findings.insert(k, v);
        }
    }
}

/// The completeness of every corp checked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletenessReport {
    /// When it was made, seconds since the epoch.
    pub generated_at: u64,
    /// `--since`, ms since the epoch.
    pub since_ms: Option<u64>,
    /// Something needs attention (see [`Kind::attention`]).
    pub attention: bool,
    /// The corp with the oldest lag (longest since its last pull when known, else the oldest
    /// newest record) and that lag in seconds.
    pub oldest_lag: Option<(String, f64)>,
    /// Totals per kind over every corp.
    pub totals: BTreeMap<Kind, u64>,
    /// One entry per corp, by corpid.
    pub corps: Vec<CorpCompleteness>,
}

impl CompletenessReport {
    /// Whether something needs attention.
    pub fn needs_attention(&self) -> bool {
        self.corps.iter().any(CorpCompleteness::needs_attention)
    }
}

/// A contact outside the corp (`wo…` / `wm…`: external contacts, whose consent counts).
pub fn is_external(id: &str) -> bool {
    id.starts_with("wo") || id.starts_with("wm")
}

/// An employee's userid: not empty and not `wo…` / `wm…` / `wb…` (external contacts, bots).
pub fn is_internal(id: &str) -> bool {
    !id.is_empty() && !is_external(id) && !id.starts_with("wb")
}

fn agrees(status: &str) -> bool {
    status == "Agree" || status == "Default_Agree"
}

/// What the distinct `(roomid, msgfrom, tolist)` of a corp say: internal people, and the
/// external conversations (1:1: every (internal, external) of a message's participants; in a
/// room: every (room, external)).
#[derive(Debug, Default)]
struct Seen {
    people: BTreeSet<String>,
    pairs: BTreeSet<(String, String)>,
    rooms: BTreeSet<(String, String)>,
}

fn seen(parts: &[Participation]) -> Seen {
    let mut s = Seen::default();
    for p in parts {
        // A spilled tolist (a marker: too big for one row) is not read back here.
        let to = if p.tolist.starts_with(crate::store::MARKER_PREFIX) { "" } else { p.tolist.as_str() };
        let ids: Vec<&str> =
            std::iter::once(p.msgfrom.as_str()).chain(to.split(',')).map(str::trim).filter(|i| !i.is_empty()).collect();
        let internal: Vec<&str> = ids.iter().copied().filter(|i| is_internal(i)).collect();
        let external: Vec<&str> = ids.iter().copied().filter(|i| is_external(i)).collect();
        s.people.extend(internal.iter().map(|i| i.to_string()));
        for e in &external {
            if p.roomid.is_empty() {
                s.pairs.extend(internal.iter().map(|i| (i.to_string(), e.to_string())));
            } else {
                s.rooms.insert((p.roomid.clone(), e.to_string()));
            }
        }
    }
    s
}

fn people(names: impl Iterator<Item = String>, limit: u32) -> People {
    let mut p = People::default();
    for n in names {
        p.count += 1;
        if p.first.len() < limit as usize {
            p.first.push(n);
        }
    }
    p
}

fn consent_gaps(s: &Seen, consents: &[ConsentRow], limit: u32) -> (u64, Vec<ConsentGap>) {
    let status: HashMap<(&str, &str, &str), &str> = consents
        .iter()
        .map(|c| ((c.roomid.as_str(), c.userid.as_str(), c.external_id.as_str()), c.agree_status.as_str()))
        .collect();
    // In a room WeCom's answer names the contact (userid ''); accept a row of any userid.
    let room_agree: HashSet<(&str, &str)> = consents
        .iter()
        .filter(|c| !c.roomid.is_empty() && agrees(&c.agree_status))
        .map(|c| (c.roomid.as_str(), c.external_id.as_str()))
        .collect();
    let mut missing = Vec::new();
    for (userid, ext) in &s.pairs {
        let st = status.get(&("", userid.as_str(), ext.as_str())).copied();
        if !st.is_some_and(agrees) {
            missing.push(ConsentGap {
                roomid: String::new(),
                userid: userid.clone(),
                external_id: ext.clone(),
                status: st.map(str::to_string),
            });
        }
    }
    for (roomid, ext) in &s.rooms {
        if !room_agree.contains(&(roomid.as_str(), ext.as_str())) {
            let st = status.get(&(roomid.as_str(), "", ext.as_str())).copied();
            missing.push(ConsentGap {
                roomid: roomid.clone(),
                userid: String::new(),
                external_id: ext.clone(),
                status: st.map(str::to_string),
            });
        }
    }
    let n = missing.len() as u64;
    missing.truncate(limit as usize);
    (n, missing)
}

/// Checks one corp. `since_last_pull`: seconds since its last successful pull, from a running
/// daemon (`None`: unknown).
pub async fn check_corp(
    store: &dyn Store,
    corpid: &CorpId,
    opts: &Options,
    since_last_pull: Option<f64>,
    now: SystemTime,
) -> Result<CorpCompleteness, CompletenessError> {
    let mut c =
        CorpCompleteness { corpid: corpid.to_string(), since_last_pull_seconds: since_last_pull, ..Default::default() };
    c.cursor = store.cursor(corpid).await?;
    let bounds = store.seq_bounds(corpid).await?;
    if let Some(b) = bounds {
        c.records = b.records;
        c.min_seq = b.min_seq;
        c.max_seq = b.max_seq;
        if b.newest_msgtime_ms > 0 {
            let newest = UNIX_EPOCH + Duration::from_millis(b.newest_msgtime_ms);
            c.lag_seconds = Some(now.duration_since(newest).map(|d| d.as_secs_f64()).unwrap_or(0.0));
        }
    }
    // The first seq looked at; `i64::MAX` (not u64::MAX, which SQLite would read as -1) when
    // nothing is recent enough.
    let from = match opts.since_ms {
        None => 0,
        Some(ms) => store.seq_floor(corpid, ms).await?.unwrap_or(i64::MAX as u64),
    };
    c.from_seq = opts.since_ms.map(|_| from);
    if bounds.is_some() {
        // The gap that ends at the first record looked at counts too.
        let start = if from == 0 { 0 } else { store.seq_before(corpid, from).await?.unwrap_or(from) };
        let scan = store.seq_gaps(corpid, start, c.cursor, opts.limit).await?;
        c.never_served.ranges = scan.below_ranges;
        c.never_served.missing = scan.below_missing;
        c.not_yet_pulled.ranges = scan.above_ranges;
        c.not_yet_pulled.missing = scan.above_missing;
        for (after, before) in scan.first {
            if after < c.cursor {
                c.never_served.first.push(SeqRange { after, before: before.min(c.cursor.saturating_add(1)) });
            }
            if before > c.cursor.saturating_add(1) {
                c.not_yet_pulled.first.push(SeqRange { after: after.max(c.cursor), before });
            }
        }
    }
    let parts = store.participations(corpid, from).await?;
    let seen = seen(&parts);
    let permit = store.permit_users(corpid).await?;
    c.members_fetched = !permit.is_empty();
    c.archived_members = permit.len() as u64;
    if c.members_fetched {
        let archived: HashSet<&str> = permit.iter().map(String::as_str).collect();
        c.members_unseen = people(permit.iter().filter(|u| !seen.people.contains(*u)).cloned(), opts.limit);
        c.people_not_archived =
            people(seen.people.iter().filter(|p| !archived.contains(p.as_str())).cloned(), opts.limit);
    }
    let consents = store.consents(corpid).await?;
    c.consent_fetched = !consents.is_empty();
    c.external_conversations = (seen.pairs.len() + seen.rooms.len()) as u64;
    if c.consent_fetched {
        (c.consent_missing, c.consent_gaps) = consent_gaps(&seen, &consents, opts.limit);
    }
    c.media_failed = store
        .failed_media(corpid, from)
        .await?
        .into_iter()
        .map(|m| MediaFailure { kind: m.kind, code: m.code, count: m.count })
        .collect();
    for u in store.undecrypted_counts(corpid, from).await? {
        if u.quarantined {
            c.quarantined += u.count;
        } else {
            c.undecryptable.push(KeyFailure {
                publickey_ver: u.publickey_ver,
                count: u.count,
                min_seq: u.min_seq,
                max_seq: u.max_seq,
            });
        }
    }
    let stale = since_last_pull.is_some_and(|s| s > opts.stale_after.as_secs_f64());
    c.tally(stale);
    Ok(c)
}

/// Checks every corp of `corps`; `since_last_pull` per corpid from a running daemon (may be
/// empty). A corp that cannot be checked carries its error (and needs attention).
pub async fn check(
    store: &dyn Store,
    corps: &[CorpId],
    since_last_pull: &HashMap<String, f64>,
    opts: &Options,
    now: SystemTime,
) -> CompletenessReport {
    use tracing::Instrument;
    let mut out = Vec::with_capacity(corps.len());
    for corpid in corps {
        let span = tracing::info_span!("completeness", corpid = %corpid);
        let pulled = since_last_pull.get(corpid.as_str()).copied();
        match check_corp(store, corpid, opts, pulled, now).instrument(span.clone()).await {
            Ok(c) => out.push(c),
            Err(e) => {
                span.in_scope(|| tracing::warn!(error = %e, "completeness check failed"));
                let mut c =
                    CorpCompleteness { corpid: corpid.to_string(), error: Some(e.to_string()), ..Default::default() };
                c.tally(false);
                out.push(c);
            }
        }
    }
    out.sort_by(|a, b| a.corpid.cmp(&b.corpid));
    let mut totals: BTreeMap<Kind, u64> = Kind::ALL.iter().map(|k| (*k, 0)).collect();
    for c in &out {
        for (k, v) in &c.findings {
            *totals.entry(*k).or_default() += v;
        }
    }
    let lag = |c: &CorpCompleteness| c.since_last_pull_seconds.or(c.lag_seconds);
    let oldest_lag =
        out.iter().filter_map(|c| lag(c).map(|l| (c.corpid.clone(), l))).max_by(|a, b| a.1.total_cmp(&b.1));
    let report = CompletenessReport {
        generated_at: now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        since_ms: opts.since_ms,
        attention: false,
        oldest_lag,
        totals,
        corps: out,
    };
    CompletenessReport { attention: report.needs_attention(), ..report }
}

/// A duration in seconds for a human: `45s`, `12m`, `3.5h`, `2.1d`; `-` when unknown.
pub(crate) fn secs(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(s) if s < 120.0 => format!("{s:.0}s"),
        Some(s) if s < 7200.0 => format!("{:.0}m", s / 60.0),
        Some(s) if s < 172_800.0 => format!("{:.1}h", s / 3600.0),
        Some(s) => format!("{:.1}d", s / 86_400.0),
    }
}

fn table(rows: Vec<Vec<String>>, out: &mut String) {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    for row in rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
}

/// The report as text: one summary line per corp, then the details of each finding.
pub fn render_text(r: &CompletenessReport) -> String {
    let mut out = String::new();
    let mut header = vec![
        "CORPID".to_string(),
        "CURSOR".into(),
        "MAX_SEQ".into(),
        "RECORDS".into(),
        "LAG".into(),
        "SINCE_PULL".into(),
    ];
    header.extend(Kind::ALL.iter().filter(|k| **k != Kind::PullStale).map(|k| k.name().to_uppercase()));
    let mut rows = vec![header];
    for c in &r.corps {
        let mut row = vec![
            c.corpid.clone(),
            c.cursor.to_string(),
            c.max_seq.to_string(),
            c.records.to_string(),
            secs(c.lag_seconds),
            format!("{}{}", secs(c.since_last_pull_seconds), if c.count(Kind::PullStale) > 0 { " STALE" } else { "" }),
        ];
        for k in Kind::ALL.iter().filter(|k| **k != Kind::PullStale) {
            let n = c.count(*k);
            let not_fetched = match k {
                Kind::MemberUnseen | Kind::PersonNotArchived => !c.members_fetched,
                Kind::ConsentMissing => !c.consent_fetched,
                _ => false,
            };
            row.push(if c.error.is_some() {
                "?".into()
            } else if not_fetched {
                "n/f".into()
            } else if n > 0 && k.attention() {
                format!("{n}!")
            } else {
                n.to_string()
            });
        }
        rows.push(row);
    }
    table(rows, &mut out);
    if r.corps.is_empty() {
        out.push_str("(no corps)\n");
    }
    out.push_str("(! needs attention; n/f: metadata not fetched yet, no finding made)\n");
    for c in &r.corps {
        let mut lines = Vec::new();
        if let Some(e) = &c.error {
            lines.push(format!("NOT CHECKED: {e}"));
        }
        let ranges = |g: &Gaps| {
            let shown: Vec<String> = g
                .first
                .iter()
                .map(|s| {
                    if s.missing() == 1 {
                        format!("{}", s.after + 1)
                    } else {
                        format!("{}-{}", s.after + 1, s.before - 1)
                    }
                })
                .collect();
            let more = if (g.first.len() as u64) < g.ranges { ", …" } else { "" };
            format!("{} seqs in {} ranges: {}{more}", g.missing, g.ranges, shown.join(", "))
        };
        if c.never_served.missing > 0 {
            lines.push(format!("never served (below cursor {}): {}", c.cursor, ranges(&c.never_served)));
        }
        if c.not_yet_pulled.missing > 0 {
            lines.push(format!("not yet pulled (above cursor {}): {}", c.cursor, ranges(&c.not_yet_pulled)));
        }
        let list = |p: &People| {
            let more = if (p.first.len() as u64) < p.count { ", …" } else { "" };
            format!("{}: {}{more}", p.count, p.first.join(", "))
        };
        if c.members_unseen.count > 0 {
            lines.push(format!("archived members never seen {}", list(&c.members_unseen)));
        }
        if c.people_not_archived.count > 0 {
            lines.push(format!("people seen, not archived members {}", list(&c.people_not_archived)));
        }
        if c.consent_missing > 0 {
            let shown: Vec<String> = c
                .consent_gaps
                .iter()
                .map(|g| {
                    let what = if g.roomid.is_empty() {
                        format!("{}↔{}", g.userid, g.external_id)
                    } else {
                        format!("room {} {}", g.roomid, g.external_id)
                    };
                    format!("{what} ({})", g.status.as_deref().unwrap_or("no consent on record"))
                })
                .collect();
            lines.push(format!("external conversations without consent {}: {}", c.consent_missing, shown.join(", ")));
        }
        for m in &c.media_failed {
            lines.push(format!("media failed for good: {} {} (code {})", m.count, m.kind, m.code));
        }
        for k in &c.undecryptable {
            lines.push(format!(
                "undecryptable: {} records of publickey_ver {} (seq {}..={}; add the key, then `redecrypt`)",
                k.count, k.publickey_ver, k.min_seq, k.max_seq
            ));
        }
        if c.quarantined > 0 {
            lines.push(format!("quarantined (stored whole, not parsed): {} records", c.quarantined));
        }
        if c.count(Kind::PullStale) > 0 {
            lines.push(format!("no successful pull for {}", secs(c.since_last_pull_seconds)));
        }
        if !lines.is_empty() {
            out.push_str(&format!("\n{}:\n", c.corpid));
            for l in lines {
                out.push_str(&format!("  {l}\n"));
            }
        }
    }
    if let Some((corp, lag)) = &r.oldest_lag {
        out.push_str(&format!("\noldest lag: {corp} {}\n", secs(Some(*lag))));
    }
    out.push_str(if r.attention { "\nresult: NEEDS ATTENTION\n" } else { "\nresult: complete\n" });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(room: &str, from: &str, to: &str) -> Participation {
        Participation { roomid: room.into(), msgfrom: from.into(), tolist: to.into() }
    }

    #[test]
    fn people_and_external_conversations_come_from_senders_and_receivers() {
        let s = seen(&[
            part("", "zhangsan", "wmA"),
            part("", "woB", "lisi"),
            part("wr1", "wangwu", "zhangsan,wmA,wbBot"),
            part("", "zhangsan", "lisi"),
        ]);
        assert_eq!(s.people.iter().map(String::as_str).collect::<Vec<_>>(), ["lisi", "wangwu", "zhangsan"]);
        let pairs: Vec<_> = s.pairs.iter().map(|(a, b)| format!("{a}/{b}")).collect();
        assert_eq!(pairs, ["lisi/woB", "zhangsan/wmA"]);
        assert_eq!(s.rooms.iter().cloned().collect::<Vec<_>>(), [("wr1".to_string(), "wmA".to_string())]);
    }

    #[test]
    fn consent_needs_an_agreement_for_the_pair_or_the_room() {
        let s = seen(&[part("", "zhangsan", "wmA"), part("", "lisi", "wmA"), part("wr1", "wmA", "zhangsan")]);
        let row = |room: &str, user: &str, st: &str| ConsentRow {
            roomid: room.into(),
            userid: user.into(),
            external_id: "wmA".into(),
            agree_status: st.into(),
        };
        let (n, gaps) = consent_gaps(&s, &[row("", "zhangsan", "Agree"), row("", "lisi", "Disagree")], 10);
        assert_eq!(n, 2);
        assert_eq!(gaps[0].userid, "lisi");
        assert_eq!(gaps[0].status.as_deref(), Some("Disagree"));
        assert_eq!((gaps[1].roomid.as_str(), gaps[1].status.as_deref()), ("wr1", None));
        let (n, _) = consent_gaps(
            &s,
            &[row("", "zhangsan", "Default_Agree"), row("", "lisi", "Agree"), row("wr1", "", "Agree")],
            10,
        );
        assert_eq!(n, 0);
        let (n, gaps) = consent_gaps(&s, &[], 1);
        assert_eq!((n, gaps.len()), (3, 1), "counted exactly, listed up to the limit");
    }

    #[test]
    fn attention_is_only_for_the_attention_kinds() {
        let mut c = CorpCompleteness { corpid: "ww1".into(), ..Default::default() };
        c.not_yet_pulled.missing = 5;
        c.members_unseen.count = 2;
        c.quarantined = 1;
        c.tally(false);
        assert!(!c.needs_attention(), "informational only");
        c.undecryptable.push(KeyFailure { publickey_ver: 3, count: 1, min_seq: 4, max_seq: 4 });
        c.tally(false);
        assert!(c.needs_attention());
        assert_eq!(Kind::ALL.iter().filter(|k| k.attention()).count(), 5);
        let r =
            CompletenessReport { attention: true, corps: vec![c], generated_at: 1_800_000_000, ..Default::default() };
        let t = render_text(&r);
        assert!(t.contains("publickey_ver 3") && t.contains("NEEDS ATTENTION"), "{t}");

        // One gauge per kind and corp, zeros included; the attention flag; when it ran.
        let m = super::super::metrics::render(&super::super::Report { completeness: Some(r), ..Default::default() });
        for line in [
            "wework_msgaudit_completeness_findings{corpid=\"ww1\",kind=\"undecryptable\"} 1",
            "wework_msgaudit_completeness_findings{corpid=\"ww1\",kind=\"gap_not_yet_pulled\"} 5",
            "wework_msgaudit_completeness_findings{corpid=\"ww1\",kind=\"consent_missing\"} 0",
            "wework_msgaudit_completeness_attention{corpid=\"ww1\"} 1",
            "wework_msgaudit_completeness_timestamp_seconds 1800000000",
        ] {
            assert!(m.lines().any(|l| l == line), "{line} in:\n{m}");
        }
        assert_eq!(m.matches("wework_msgaudit_completeness_findings{").count(), Kind::ALL.len());
    }

    #[test]
    fn the_report_round_trips_through_json_with_kind_names_as_keys() {
        let mut c = CorpCompleteness { corpid: "ww1".into(), ..Default::default() };
        c.never_served = Gaps { ranges: 1, missing: 2, first: vec![SeqRange { after: 3, before: 6 }] };
        c.tally(true);
        let r = CompletenessReport { corps: vec![c], ..Default::default() };
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"gap_never_served\":2") && json.contains("\"pull_stale\":1"), "{json}");
        let back: CompletenessReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }
}
