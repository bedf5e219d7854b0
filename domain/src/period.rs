//! 有効期間 (period): a span of civil dates, first day to last day inclusive, possibly open-ended.

use chrono::NaiveDate;

use crate::error::ValueError;

/// The `validTo` PMH needs for an open-ended period.
pub const PMH_OPEN_END: NaiveDate = match NaiveDate::from_ymd_opt(9999, 12, 31) {
    Some(d) => d,
    None => NaiveDate::MAX,
};

/// First day to last day, both inclusive; `to: None` is open-ended. Always `from <= to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    from: NaiveDate,
    to: Option<NaiveDate>,
}

impl Period {
    /// A period; refuses a last day before the first.
    pub fn new(from: NaiveDate, to: Option<NaiveDate>) -> Result<Self, ValueError> {
        match to {
            Some(to) if to < from => Err(ValueError::EndBeforeStart),
            _ => Ok(Self { from, to }),
        }
    }

    /// First day.
    pub fn from(&self) -> NaiveDate {
        self.from
    }

    /// Last day, `None` when open-ended.
    pub fn to(&self) -> Option<NaiveDate> {
        self.to
    }

    /// Last day, or 9999-12-31 when open-ended (PMH's `validTo`).
    pub fn end(&self) -> NaiveDate {
        self.to.unwrap_or(PMH_OPEN_END)
    }

    /// Whether `day` lies within the period.
    pub fn contains(&self, day: NaiveDate) -> bool {
        self.from <= day && day <= self.end()
    }

    /// Whether the two periods share at least one day.
    pub fn overlaps(&self, other: &Period) -> bool {
        self.from <= other.end() && other.from <= self.end()
    }

    /// The period cut to end on `last` (when `last` is before its current end), or `None` when
    /// `last` is before the first day, so nothing is left.
    pub fn ending_on(&self, last: NaiveDate) -> Option<Period> {
        if last < self.from {
            None
        } else if last < self.end() {
            Some(Period { from: self.from, to: Some(last) })
        } else {
            Some(*self)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn construction() {
        assert!(Period::new(d("2026-04-01"), Some(d("2026-04-01"))).is_ok());
        assert_eq!(Period::new(d("2026-04-02"), Some(d("2026-04-01"))).unwrap_err(), ValueError::EndBeforeStart);
        let open = Period::new(d("2026-04-01"), None).unwrap();
        assert_eq!(open.end(), d("9999-12-31"));
        assert_eq!(open.to(), None);
    }

    #[test]
    fn containment_and_overlap() {
        let a = Period::new(d("2026-04-01"), Some(d("2027-03-31"))).unwrap();
        let b = Period::new(d("2027-03-31"), None).unwrap();
        let c = Period::new(d("2027-04-01"), None).unwrap();
        assert!(a.contains(d("2026-04-01")) && a.contains(d("2027-03-31")));
        assert!(!a.contains(d("2026-03-31")) && !a.contains(d("2027-04-01")));
        assert!(a.overlaps(&b) && b.overlaps(&a), "one shared day is an overlap");
        assert!(!a.overlaps(&c) && !c.overlaps(&a));
        assert!(b.overlaps(&c));
    }

    #[test]
    fn ending_on() {
        let a = Period::new(d("2026-04-01"), None).unwrap();
        assert_eq!(a.ending_on(d("2026-06-30")).unwrap().to(), Some(d("2026-06-30")));
        assert_eq!(a.ending_on(d("2026-04-01")).unwrap().to(), Some(d("2026-04-01")));
        assert_eq!(a.ending_on(d("2026-03-31")), None);
        let b = Period::new(d("2026-04-01"), Some(d("2026-05-31"))).unwrap();
        assert_eq!(b.ending_on(d("2026-12-31")), Some(b), "a later end does not extend");
    }
}
