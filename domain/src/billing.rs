//! 運営費 (the PMH operating fee): months, counting policies, the fee schedule, and counting one
//! person's history records for a month.
//!
//! From April 2027 a municipality pays PMH about 2 yen per registered recipient per month. What
//! "registered" means is still open, so the counting rule is a named [`Policy`], reported on
//! every statement beside the counts under the other policies. The unit price is data with an
//! effective month ([`FeeSchedule`]), recorded in the log, never a constant.
//!
//! This module counts one person: which of their records count in a month, under which program,
//! how many units. Which records exist (exported to PMH, not withdrawn, as known at a position)
//! is the projection's business.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::error::ValueError;

const MONTH_FORMAT: &str = "YYYY-MM（例: 2026-10）";

/// A calendar month (YYYY-MM), 1873-01..=9999-12.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Month {
    year: u16,
    month: u8,
}

impl Month {
    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Result<Month, ValueError> {
        let b = s.as_bytes();
        if b.len() != 7 || b[4] != b'-' || !b.iter().enumerate().all(|(i, c)| i == 4 || c.is_ascii_digit()) {
            return Err(ValueError::Format { expected: MONTH_FORMAT });
        }
        let year: u16 = s[..4].parse().map_err(|_| ValueError::Format { expected: MONTH_FORMAT })?;
        let month: u8 = s[5..].parse().map_err(|_| ValueError::Format { expected: MONTH_FORMAT })?;
        if !(1873..=9999).contains(&year) || !(1..=12).contains(&month) {
            return Err(ValueError::InvalidDate);
        }
        Ok(Month { year, month })
    }

    /// The month a date falls in.
    pub fn of(date: NaiveDate) -> Month {
        // Dates in the ledger are 1873..=9999 (calendar::parse_date).
        Month { year: u16::try_from(date.year()).unwrap_or(9999), month: u8::try_from(date.month()).unwrap_or(12) }
    }

    /// The first day.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(i32::from(self.year), u32::from(self.month), 1).unwrap_or(NaiveDate::MAX)
    }

    /// The last day.
    pub fn last_day(self) -> NaiveDate {
        if self.year == 9999 && self.month == 12 {
            return NaiveDate::from_ymd_opt(9999, 12, 31).unwrap_or(NaiveDate::MAX);
        }
        self.next().first_day().pred_opt().unwrap_or(NaiveDate::MAX)
    }

    /// The next month.
    pub fn next(self) -> Month {
        if self.month == 12 { Month { year: self.year + 1, month: 1 } } else { Month { month: self.month + 1, ..self } }
    }

    /// The month before.
    pub fn prev(self) -> Month {
        if self.month == 1 { Month { year: self.year - 1, month: 12 } } else { Month { month: self.month - 1, ..self } }
    }

    /// Japanese label: 2026年10月.
    pub fn label_ja(self) -> String {
        format!("{}年{}月", self.year, self.month)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// How recipients are counted for the fee. Codes are stable (they are stored in closed months).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Policy {
    /// Distinct persons with a record whose span overlaps the month (the default).
    PersonsOverlapping,
    /// Distinct persons registered on the last day of the month.
    PersonsMonthEnd,
    /// Person x certificate, with a record overlapping the month.
    CertificatesOverlapping,
}

impl Policy {
    /// Every policy, in report order.
    pub const ALL: [Policy; 3] = [Policy::PersonsOverlapping, Policy::PersonsMonthEnd, Policy::CertificatesOverlapping];

    /// The stable name.
    pub fn code(self) -> &'static str {
        match self {
            Policy::PersonsOverlapping => "persons-overlapping",
            Policy::PersonsMonthEnd => "persons-month-end",
            Policy::CertificatesOverlapping => "certificates-overlapping",
        }
    }

    /// The stored number.
    pub fn number(self) -> u8 {
        match self {
            Policy::PersonsOverlapping => 1,
            Policy::PersonsMonthEnd => 2,
            Policy::CertificatesOverlapping => 3,
        }
    }

    /// From the stored number.
    pub fn from_number(n: u8) -> Result<Policy, ValueError> {
        Policy::ALL.into_iter().find(|p| p.number() == n).ok_or(ValueError::UnknownCode { allowed: "1, 2, 3" })
    }

    /// From the name.
    pub fn parse(s: &str) -> Result<Policy, ValueError> {
        Policy::ALL.into_iter().find(|p| p.code() == s).ok_or(ValueError::UnknownCode {
            allowed: "persons-overlapping, persons-month-end, certificates-overlapping",
        })
    }

    /// What it counts, in Japanese.
    pub fn label_ja(self) -> &'static str {
        match self {
            Policy::PersonsOverlapping => "実人数（月内に有効な履歴がある人）",
            Policy::PersonsMonthEnd => "実人数（月末日に有効な履歴がある人）",
            Policy::CertificatesOverlapping => "受給者証数（人×受給者証、月内に有効）",
        }
    }

    fn per_person(self) -> bool {
        !matches!(self, Policy::CertificatesOverlapping)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The unit price per month: each entry is in force from its month until the next entry's.
/// Before the first entry nothing is charged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeeSchedule {
    entries: BTreeMap<Month, u32>,
}

impl FeeSchedule {
    /// Adds (or replaces) the price from a month on, as recorded in order.
    pub fn set(&mut self, from: Month, unit_yen: u32) {
        self.entries.insert(from, unit_yen);
    }

    /// The unit price of a month, if charged.
    pub fn unit_for(&self, month: Month) -> Option<u32> {
        self.entries.range(..=month).next_back().map(|(_, yen)| *yen)
    }

    /// The entry in force for a month: (from month, unit price).
    pub fn entry_for(&self, month: Month) -> Option<(Month, u32)> {
        self.entries.range(..=month).next_back().map(|(m, yen)| (*m, *yen))
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (Month, u32)> + '_ {
        self.entries.iter().map(|(m, y)| (*m, *y))
    }

    /// The first charged month.
    pub fn first_month(&self) -> Option<Month> {
        self.entries.keys().next().copied()
    }
}

/// One history record of a person, as far as the fee is concerned. It borrows its text from
/// where the records were read (a statement reads millions of them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeeRecord<'a> {
    /// Span number (the history key is `R<recipient>S<span>`).
    pub span: u32,
    /// Program key.
    pub program: &'a str,
    /// The caller's certificate id (unique per person).
    pub certificate: &'a str,
    /// 公費負担者番号, if any.
    pub payer_number: Option<&'a str>,
    /// validFrom.
    pub from: NaiveDate,
    /// validTo.
    pub to: NaiveDate,
}

/// One counted line: a person under one program in a month.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counted {
    /// Program key.
    pub program: String,
    /// Payer number of the latest counted record of the program.
    pub payer_number: Option<String>,
    /// Units charged on this line (persons: 1 on one program of the person, 0 on the others;
    /// certificates: one per certificate).
    pub units: u32,
    /// The spans that make the person count under this program.
    pub spans: Vec<u32>,
    /// When `units` is 0 under a person policy: the program the person is charged to.
    pub charged_to: Option<String>,
}

/// A month's first and last day, computed once per count rather than once per record.
#[derive(Clone, Copy)]
struct Days {
    first: NaiveDate,
    last: NaiveDate,
}

impl Days {
    fn of(month: Month) -> Days {
        Days { first: month.first_day(), last: month.last_day() }
    }
}

fn qualifies(r: &FeeRecord<'_>, days: Days, policy: Policy) -> bool {
    match policy {
        Policy::PersonsMonthEnd => r.from <= days.last && r.to >= days.last,
        Policy::PersonsOverlapping | Policy::CertificatesOverlapping => r.from <= days.last && r.to >= days.first,
    }
}

/// The lines of one person in a month under a policy, by program (key order). A person counted
/// under several programs is charged once under a person policy, to the first program in key
/// order; the other lines carry 0 units and name that program.
pub fn count_person(records: &[FeeRecord<'_>], month: Month, policy: Policy) -> Vec<Counted> {
    let days = Days::of(month);
    let mut by_program: BTreeMap<&str, (Vec<&FeeRecord<'_>>, BTreeSet<&str>)> = BTreeMap::new();
    for r in records.iter().filter(|r| qualifies(r, days, policy)) {
        let slot = by_program.entry(r.program).or_default();
        slot.0.push(r);
        slot.1.insert(r.certificate);
    }
    let first = by_program.keys().next().map(|p| (*p).to_owned());
    by_program
        .into_iter()
        .map(|(program, (mut recs, certificates))| {
            recs.sort_by_key(|r| (r.from, r.span));
            let payer_number = recs.last().and_then(|r| r.payer_number).map(str::to_owned);
            let charged_here = !policy.per_person() || first.as_deref() == Some(program);
            let units = if policy.per_person() {
                u32::from(charged_here)
            } else {
                u32::try_from(certificates.len()).unwrap_or(u32::MAX)
            };
            Counted {
                program: program.to_owned(),
                payer_number,
                units,
                spans: recs.iter().map(|r| r.span).collect(),
                charged_to: if charged_here { None } else { first.clone() },
            }
        })
        .collect()
}

/// The units of one person in a month under a policy: the sum of [`count_person`]'s units,
/// without building its lines (a statement asks this 15 times per person).
pub fn units_of(records: &[FeeRecord<'_>], month: Month, policy: Policy) -> u32 {
    let days = Days::of(month);
    let mut qualifying = records.iter().filter(|r| qualifies(r, days, policy));
    if policy.per_person() {
        return u32::from(qualifying.next().is_some());
    }
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for r in qualifying {
        let id = (r.program, r.certificate);
        if !seen.contains(&id) {
            seen.push(id);
        }
    }
    u32::try_from(seen.len()).unwrap_or(u32::MAX)
}

// ---- Rules of the billing stream ------------------------------------------------------------

/// Why a billing request is refused by a rule: a closed set with stable codes and Japanese
/// messages that name no person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BillingRejection {
    /// The month has not ended (its last day is today or later).
    NotEnded(Month),
    /// The month is closed already.
    AlreadyClosed(Month),
    /// No fee schedule covers the month: nothing to charge or close.
    NotCharged(Month),
    /// The month was closed under another policy.
    PolicyDiffers { month: Month, closed: Policy },
    /// A schedule entry would change a closed month.
    ScheduleClosed { from: Month, closed: Month },
    /// The unit price is out of range.
    UnitTooLarge,
}

impl BillingRejection {
    /// Every code, for tests that each has a rule that gives it.
    pub const CODES: [&'static str; 6] =
        ["not_ended", "already_closed", "not_charged", "policy_differs", "schedule_closed", "unit_too_large"];

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            BillingRejection::NotEnded(_) => "not_ended",
            BillingRejection::AlreadyClosed(_) => "already_closed",
            BillingRejection::NotCharged(_) => "not_charged",
            BillingRejection::PolicyDiffers { .. } => "policy_differs",
            BillingRejection::ScheduleClosed { .. } => "schedule_closed",
            BillingRejection::UnitTooLarge => "unit_too_large",
        }
    }
}

impl fmt::Display for BillingRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BillingRejection::NotEnded(m) => write!(f, "{} はまだ終わっていないため締められません", m.label_ja()),
            BillingRejection::AlreadyClosed(m) => write!(f, "{} は締め済みです", m.label_ja()),
            BillingRejection::NotCharged(m) => {
                write!(f, "{} は料金表の開始前のため課金されません（締める必要はありません）", m.label_ja())
            }
            BillingRejection::PolicyDiffers { month, closed } => {
                write!(f, "{} は計上方針 {} で締められています", month.label_ja(), closed.code())
            }
            BillingRejection::ScheduleClosed { from, closed } => write!(
                f,
                "{} からの料金は設定できません: {} は締め済みです（締め済みの月は変えられません）",
                from.label_ja(),
                closed.label_ja()
            ),
            BillingRejection::UnitTooLarge => write!(f, "単価は0〜{}円で指定してください", crate::codec::UNIT_YEN_MAX),
        }
    }
}

/// Decides closing `month` on `today`, given the schedule and the months closed (with their
/// policies): the unit price the month is closed at. A month closes after its last day, once,
/// and only when a schedule entry covers it.
pub fn decide_close(
    month: Month,
    today: NaiveDate,
    schedule: &FeeSchedule,
    closed: &BTreeMap<Month, Policy>,
) -> Result<u32, BillingRejection> {
    ended(month, today)?;
    if closed.contains_key(&month) {
        return Err(BillingRejection::AlreadyClosed(month));
    }
    schedule.unit_for(month).ok_or(BillingRejection::NotCharged(month))
}

/// Refused unless `month` has ended by `today` (its last day is before today).
pub fn ended(month: Month, today: NaiveDate) -> Result<(), BillingRejection> {
    if month.last_day() >= today { Err(BillingRejection::NotEnded(month)) } else { Ok(()) }
}

/// Decides a schedule entry of `unit_yen` from `from` on, given the months closed: refused when
/// the price is out of range or would change a closed month.
pub fn decide_schedule(from: Month, unit_yen: u32, closed: &BTreeMap<Month, Policy>) -> Result<(), BillingRejection> {
    if unit_yen > crate::codec::UNIT_YEN_MAX {
        return Err(BillingRejection::UnitTooLarge);
    }
    match closed.range(from..).next() {
        Some((closed, _)) => Err(BillingRejection::ScheduleClosed { from, closed: *closed }),
        None => Ok(()),
    }
}

/// The policy a statement of a month is computed under: the one it was closed under (asking for
/// another is refused), else the one asked for.
pub fn statement_policy(
    month: Month,
    asked: Option<Policy>,
    closed: Option<Policy>,
) -> Result<Option<Policy>, BillingRejection> {
    match (asked, closed) {
        (Some(a), Some(c)) if a != c => Err(BillingRejection::PolicyDiffers { month, closed: c }),
        (_, Some(c)) => Ok(Some(c)),
        (a, None) => Ok(a),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec<'a>(span: u32, program: &'a str, cert: &'a str, from: &str, to: &str) -> FeeRecord<'a> {
        FeeRecord {
            span,
            program,
            certificate: cert,
            payer_number: Some("88139993"),
            from: from.parse().unwrap(),
            to: to.parse().unwrap(),
        }
    }

    #[test]
    fn months_parse_strictly_and_know_their_days() {
        let m = Month::parse("2024-02").unwrap();
        assert_eq!(m.last_day().to_string(), "2024-02-29");
        for (m, last) in
            [("2023-02", "2023-02-28"), ("2026-12", "2026-12-31"), ("2026-04", "2026-04-30"), ("9999-12", "9999-12-31")]
        {
            assert_eq!(Month::parse(m).unwrap().last_day().to_string(), last);
        }
        assert_eq!(m.prev().to_string(), "2024-01");
        assert_eq!(Month::parse("2026-12").unwrap().next().to_string(), "2027-01");
        assert_eq!(Month::parse("2027-01").unwrap().prev().to_string(), "2026-12");
        for bad in ["2026-13", "2026-00", "2026-1", "202610", "２０２６-10", "2026/10", "1872-12", "2026-10 "] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Month::of("2026-10-31".parse().unwrap()).to_string(), "2026-10");
    }

    #[test]
    fn the_schedule_charges_from_its_first_month_and_changes_by_month() {
        let mut s = FeeSchedule::default();
        assert_eq!(s.unit_for(Month::parse("2030-01").unwrap()), None);
        s.set(Month::parse("2027-04").unwrap(), 2);
        s.set(Month::parse("2028-04").unwrap(), 3);
        assert_eq!(s.unit_for(Month::parse("2027-03").unwrap()), None);
        assert_eq!(s.unit_for(Month::parse("2027-04").unwrap()), Some(2));
        assert_eq!(s.unit_for(Month::parse("2028-03").unwrap()), Some(2));
        assert_eq!(s.unit_for(Month::parse("2028-04").unwrap()), Some(3));
    }

    #[test]
    fn a_person_in_two_programs_counts_once_per_person_and_twice_per_certificate() {
        let records =
            [rec(1, "kodomo", "K1", "2026-04-01", "2027-03-31"), rec(2, "hitorioya", "H1", "2026-10-15", "9999-12-31")];
        let oct = Month::parse("2026-10").unwrap();
        let lines = count_person(&records, oct, Policy::PersonsOverlapping);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].program, "hitorioya");
        assert_eq!((lines[0].units, lines[1].units), (1, 0));
        assert_eq!(lines[1].charged_to.as_deref(), Some("hitorioya"));
        assert_eq!(units_of(&records, oct, Policy::PersonsOverlapping), 1);
        assert_eq!(units_of(&records, oct, Policy::PersonsMonthEnd), 1);
        assert_eq!(units_of(&records, oct, Policy::CertificatesOverlapping), 2);
        // September: only kodomo.
        let sep = Month::parse("2026-09").unwrap();
        assert_eq!(units_of(&records, sep, Policy::CertificatesOverlapping), 1);
    }

    #[test]
    fn month_end_needs_the_last_day_and_overlap_needs_any_day() {
        let records = [rec(1, "kodomo", "K1", "2026-04-01", "2026-10-20")];
        let oct = Month::parse("2026-10").unwrap();
        assert_eq!(units_of(&records, oct, Policy::PersonsOverlapping), 1);
        assert_eq!(units_of(&records, oct, Policy::PersonsMonthEnd), 0);
        let nov = Month::parse("2026-11").unwrap();
        assert_eq!(units_of(&records, nov, Policy::PersonsOverlapping), 0);
        // Two spans of one certificate in a month are one certificate.
        let split =
            [rec(1, "kodomo", "K1", "2026-04-01", "2026-10-14"), rec(2, "kodomo", "K1", "2026-10-15", "2027-03-31")];
        assert_eq!(units_of(&split, oct, Policy::CertificatesOverlapping), 1);
        let lines = count_person(&split, oct, Policy::PersonsOverlapping);
        assert_eq!(lines[0].spans, vec![1, 2]);
    }

    #[test]
    fn policies_round_trip_their_names_and_numbers() {
        for p in Policy::ALL {
            assert_eq!(Policy::parse(p.code()).unwrap(), p);
            assert_eq!(Policy::from_number(p.number()).unwrap(), p);
        }
        assert!(Policy::parse("persons").is_err());
    }

    #[test]
    fn a_month_closes_after_its_end_once_and_only_when_charged() {
        let m = |s: &str| Month::parse(s).unwrap();
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let mut schedule = FeeSchedule::default();
        schedule.set(m("2027-04"), 2);
        let mut closed = BTreeMap::new();
        assert_eq!(
            decide_close(m("2027-04"), day("2027-04-30"), &schedule, &closed),
            Err(BillingRejection::NotEnded(m("2027-04")))
        );
        assert_eq!(decide_close(m("2027-04"), day("2027-05-01"), &schedule, &closed), Ok(2));
        assert_eq!(
            decide_close(m("2027-03"), day("2027-05-01"), &schedule, &closed),
            Err(BillingRejection::NotCharged(m("2027-03")))
        );
        closed.insert(m("2027-04"), Policy::PersonsOverlapping);
        assert_eq!(
            decide_close(m("2027-04"), day("2027-05-01"), &schedule, &closed),
            Err(BillingRejection::AlreadyClosed(m("2027-04")))
        );
        // A schedule from a closed month on is refused; from the month after, accepted.
        assert_eq!(
            decide_schedule(m("2027-04"), 3, &closed),
            Err(BillingRejection::ScheduleClosed { from: m("2027-04"), closed: m("2027-04") })
        );
        assert_eq!(decide_schedule(m("2027-05"), 3, &closed), Ok(()));
        assert_eq!(
            decide_schedule(m("2027-05"), crate::codec::UNIT_YEN_MAX + 1, &closed),
            Err(BillingRejection::UnitTooLarge)
        );
        // A closed month's statement is under its policy; another one asked for is refused.
        let closed_under = Some(Policy::PersonsOverlapping);
        assert_eq!(statement_policy(m("2027-04"), None, closed_under), Ok(closed_under));
        let other = Policy::ALL.into_iter().find(|p| Some(*p) != closed_under).unwrap();
        assert!(matches!(
            statement_policy(m("2027-04"), Some(other), closed_under),
            Err(BillingRejection::PolicyDiffers { .. })
        ));
        assert_eq!(statement_policy(m("2027-05"), Some(other), None), Ok(Some(other)));
        let codes: Vec<&str> = [
            BillingRejection::NotEnded(m("2027-04")),
            BillingRejection::AlreadyClosed(m("2027-04")),
            BillingRejection::NotCharged(m("2027-04")),
            BillingRejection::PolicyDiffers { month: m("2027-04"), closed: Policy::PersonsOverlapping },
            BillingRejection::ScheduleClosed { from: m("2027-04"), closed: m("2027-04") },
            BillingRejection::UnitTooLarge,
        ]
        .iter()
        .map(BillingRejection::code)
        .collect();
        assert_eq!(codes, BillingRejection::CODES);
    }
}
