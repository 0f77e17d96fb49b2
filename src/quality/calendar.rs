//! Working time: the hours of a rule in its time zone, and how much of it lies between two
//! instants.
//!
//! A [`Calendar`] is a time zone (IANA name, through `jiff` with the tz database built in), the
//! working weekdays, one or more spans of the day (`09:00-12:00`, `13:30-18:00`), and dates that
//! are holidays or extra working days (调休). [`Calendar::working_ms`] counts the working time
//! between two instants; [`Calendar::deadline`] is the instant at which a given amount of it has
//! passed since a start. A start outside working hours therefore counts from the next working
//! span's start. Local times that do not exist or repeat (a DST change) resolve as `jiff`'s
//! "compatible" rule does (the later instant of a gap, the earlier of a fold).

use std::collections::BTreeSet;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::QualityError;

/// Days looked ahead for a deadline before giving up (a calendar with almost no working time).
const HORIZON_DAYS: u32 = 800;

/// A span of a working day, `[start, end)` in minutes since midnight (end may be 1440).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    /// Start, minutes since midnight.
    pub start: u16,
    /// End, minutes since midnight (after `start`, at most 1440).
    pub end: u16,
}

impl Span {
    /// `"09:00-18:00"` (`24:00` allowed as an end).
    pub fn parse(s: &str) -> Result<Self, QualityError> {
        let bad = || QualityError::Config(format!("working hours {s:?}: expected HH:MM-HH:MM, e.g. 09:00-18:00"));
        let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
        let minutes = |t: &str| -> Option<u16> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
        };
        let (start, end) = (minutes(a).ok_or_else(bad)?, minutes(b).ok_or_else(bad)?);
        if start >= end {
            return Err(QualityError::Config(format!(
                "working hours {s:?}: the end must be after the start (split a night shift in two)"
            )));
        }
        Ok(Self { start, end })
    }
}

/// Working time in one time zone.
#[derive(Debug, Clone)]
pub struct Calendar {
    tz: TimeZone,
    /// Monday = 0 … Sunday = 6.
    weekdays: [bool; 7],
    spans: Vec<Span>,
    holidays: BTreeSet<Date>,
    workdays: BTreeSet<Date>,
}

impl Calendar {
    /// A calendar; `spans` must not overlap (they are sorted here).
    pub fn new(
        tz_name: &str,
        weekdays: [bool; 7],
        mut spans: Vec<Span>,
        holidays: BTreeSet<Date>,
        workdays: BTreeSet<Date>,
    ) -> Result<Self, QualityError> {
        let tz = TimeZone::get(tz_name)
            .map_err(|e| QualityError::Config(format!("time zone {tz_name:?} is not an IANA name: {e}")))?;
        spans.sort();
        if spans.is_empty() {
            return Err(QualityError::Config("no working hours".into()));
        }
        if spans.windows(2).any(|w| w[0].end > w[1].start) {
            return Err(QualityError::Config("working hours overlap".into()));
        }
        if !weekdays.iter().any(|d| *d) && workdays.is_empty() {
            return Err(QualityError::Config("no working weekday".into()));
        }
        Ok(Self { tz, weekdays, spans, holidays, workdays })
    }

    /// The time zone.
    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }

    /// The local date of `ms` (ms since the epoch) as `YYYY-MM-DD`.
    pub fn day_of(&self, ms: i64) -> String {
        self.date_of(ms).to_string()
    }

    fn date_of(&self, ms: i64) -> Date {
        Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH).to_zoned(self.tz.clone()).date()
    }

    /// The instant (ms) at which local date `d` starts.
    pub fn day_start_ms(&self, d: Date) -> i64 {
        self.local_ms(d, 0)
    }

    fn is_workday(&self, d: Date) -> bool {
        if self.holidays.contains(&d) {
            return false;
        }
        if self.workdays.contains(&d) {
            return true;
        }
        // to_monday_zero_offset is 0..=6.
        self.weekdays[usize::try_from(d.weekday().to_monday_zero_offset()).unwrap_or(0)]
    }

    /// The instant of `minutes` after local midnight of `d` (1440 = the next midnight).
    fn local_ms(&self, d: Date, minutes: u16) -> i64 {
        let (date, minutes) = if minutes >= 1440 { (d.tomorrow().unwrap_or(d), minutes - 1440) } else { (d, minutes) };
        let t = Time::new(i8::try_from(minutes / 60).unwrap_or(0), i8::try_from(minutes % 60).unwrap_or(0), 0, 0)
            .unwrap_or(Time::midnight());
        date.to_datetime(t).to_zoned(self.tz.clone()).map(|z| z.timestamp().as_millisecond()).unwrap_or(i64::MAX)
    }

    /// The working spans of `d` as instants `[start, end)` (ms).
    fn spans_of(&self, d: Date) -> impl Iterator<Item = (i64, i64)> + '_ {
        let work = self.is_workday(d);
        self.spans.iter().filter(move |_| work).map(move |s| (self.local_ms(d, s.start), self.local_ms(d, s.end)))
    }

    /// Working time (ms) in `[from, to)`; 0 when `to <= from`.
    pub fn working_ms(&self, from: i64, to: i64) -> i64 {
        if to <= from {
            return 0;
        }
        let (mut d, last) = (self.date_of(from), self.date_of(to));
        let mut total = 0i64;
        loop {
            for (a, b) in self.spans_of(d) {
                let (a, b) = (a.max(from), b.min(to));
                if b > a {
                    total += b - a;
                }
            }
            if d >= last {
                return total;
            }
            match d.tomorrow() {
                Ok(n) => d = n,
                Err(_) => return total,
            }
        }
    }

    /// The instant (ms) at which `amount` ms of working time have passed since `from`; `None`
    /// when that is further than [`HORIZON_DAYS`] ahead.
    pub fn deadline(&self, from: i64, amount: i64) -> Option<i64> {
        let mut left = amount.max(0);
        let mut d = self.date_of(from);
        for _ in 0..HORIZON_DAYS {
            for (a, b) in self.spans_of(d) {
                let a = a.max(from);
                if b <= a {
                    continue;
                }
                if b - a >= left {
                    return Some(a + left);
                }
                left -= b - a;
            }
            d = d.tomorrow().ok()?;
        }
        None
    }
}

/// `"mon"` … `"sun"` (or full English names, any case) → Monday = 0 … Sunday = 6.
pub fn weekday_index(s: &str) -> Option<usize> {
    const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let s = s.trim().to_ascii_lowercase();
    let head = s.get(..3)?;
    NAMES.iter().position(|n| *n == head && (s.len() == 3 || full_name(n) == s))
}

fn full_name(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MON_FRI: [bool; 7] = [true, true, true, true, true, false, false];

    fn shanghai() -> Calendar {
        Calendar::new(
            "Asia/Shanghai",
            MON_FRI,
            vec![Span::parse("09:00-18:00").unwrap()],
            BTreeSet::new(),
            BTreeSet::new(),
        )
        .unwrap()
    }

    /// ms of a Shanghai local time.
    fn at(s: &str) -> i64 {
        let dt: jiff::civil::DateTime = s.parse().unwrap();
        dt.to_zoned(TimeZone::get("Asia/Shanghai").unwrap()).unwrap().timestamp().as_millisecond()
    }

    const MIN: i64 = 60_000;

    #[test]
    fn spans_parse() {
        assert_eq!(Span::parse("09:00-18:00").unwrap(), Span { start: 540, end: 1080 });
        assert_eq!(Span::parse(" 00:00 - 24:00 ").unwrap(), Span { start: 0, end: 1440 });
        for bad in ["18:00-09:00", "9-18", "09:60-10:00", "25:00-26:00", "10:00-10:00", ""] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(weekday_index("Mon"), Some(0));
        assert_eq!(weekday_index("sunday"), Some(6));
        assert_eq!(weekday_index("sundae"), None);
        assert!(Calendar::new(
            "Mars/Olympus",
            MON_FRI,
            vec![Span { start: 0, end: 60 }],
            BTreeSet::new(),
            BTreeSet::new()
        )
        .is_err());
    }

    #[test]
    fn friday_evening_to_monday_morning() {
        let c = shanghai();
        // 2026-12-04 is a Friday.
        let fri = at("2026-12-04T17:55");
        assert_eq!(c.working_ms(fri, at("2026-12-07T09:04")), 9 * MIN);
        assert_eq!(c.working_ms(fri, at("2026-12-07T09:20")), 25 * MIN);
        assert_eq!(c.deadline(fri, 10 * MIN), Some(at("2026-12-07T09:05")));
        // Outside working hours the clock starts at the next start.
        assert_eq!(c.deadline(at("2026-12-05T11:00"), 10 * MIN), Some(at("2026-12-07T09:10")));
        assert_eq!(c.deadline(at("2026-12-07T07:00"), 0), Some(at("2026-12-07T09:00")));
        assert_eq!(c.working_ms(at("2026-12-05T08:00"), at("2026-12-06T20:00")), 0);
        assert_eq!(c.day_of(at("2026-12-07T00:30")), "2026-12-07");
    }

    #[test]
    fn lunch_breaks_holidays_and_other_zones() {
        let spans = vec![Span::parse("13:30-18:00").unwrap(), Span::parse("09:00-12:00").unwrap()];
        let hol: BTreeSet<Date> = ["2026-12-08".parse().unwrap()].into();
        let extra: BTreeSet<Date> = ["2026-12-12".parse().unwrap()].into();
        let c = Calendar::new("Asia/Shanghai", MON_FRI, spans, hol, extra).unwrap();
        assert_eq!(c.working_ms(at("2026-12-07T11:50"), at("2026-12-07T13:40")), 20 * MIN);
        // Tuesday the 8th is a holiday: Monday 17:55 + 10 min → Wednesday 09:05.
        assert_eq!(c.deadline(at("2026-12-07T17:55"), 10 * MIN), Some(at("2026-12-09T09:05")));
        // Saturday the 12th is a working day.
        assert_eq!(c.deadline(at("2026-12-11T17:58"), 5 * MIN), Some(at("2026-12-12T09:03")));
        // New York: 09:00 there is 14:00 UTC in winter, 13:00 UTC in summer.
        let ny = Calendar::new(
            "America/New_York",
            MON_FRI,
            vec![Span::parse("09:00-17:00").unwrap()],
            BTreeSet::new(),
            BTreeSet::new(),
        )
        .unwrap();
        let utc = |s: &str| s.parse::<Timestamp>().unwrap().as_millisecond();
        assert_eq!(ny.deadline(utc("2026-12-07T12:00:00Z"), 10 * MIN), Some(utc("2026-12-07T14:10:00Z")));
        assert_eq!(ny.deadline(utc("2026-07-06T12:00:00Z"), 10 * MIN), Some(utc("2026-07-06T13:10:00Z")));
    }
}
