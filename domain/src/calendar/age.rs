//! 年齢計算ニ関スル法律 (the Age Calculation Act): a person reaches age N at the end of the day
//! before the N-th birthday. A naive difference of dates is not the legal age.
//!
//! Consequences worth a test each: someone born on 1 April reaches each age on 31 March, so the
//! "first 31 March after reaching N" is that very day; someone born on 29 February reaches each
//! age on 28 February, in leap years too.

use chrono::{Datelike, Months, NaiveDate};

/// The day on which a person born on `birth` reaches age `n` (the day before the n-th birthday;
/// for a 29 February birth in a common year, the birthday is taken as 1 March, so 28 February).
/// `None` if the date is out of range.
pub fn date_reaching_age(birth: NaiveDate, n: u32) -> Option<NaiveDate> {
    // `checked_add_months` clamps 29 February to 28 February in common years; the day before
    // an anniversary on 1 March is 28 February as well, so handle 29 February births directly.
    if birth.month() == 2 && birth.day() == 29 {
        let year = birth.year().checked_add(i32::try_from(n).ok()?)?;
        return NaiveDate::from_ymd_opt(year, 2, 28);
    }
    birth.checked_add_months(Months::new(n.checked_mul(12)?))?.pred_opt()
}

/// The legal age on `on` of a person born on `birth`: the largest N whose reaching day is on or
/// before `on` (so on the eve of the 15th birthday the person is 15). 0 before the first.
pub fn legal_age(birth: NaiveDate, on: NaiveDate) -> u32 {
    let Ok(years) = u32::try_from(on.year() - birth.year()) else {
        return 0;
    };
    match date_reaching_age(birth, years) {
        Some(reached) if reached <= on => years,
        _ => years.saturating_sub(1),
    }
}

/// The first 31 March on or after `day`.
pub fn first_march_31_on_or_after(day: NaiveDate) -> Option<NaiveDate> {
    let this_year = NaiveDate::from_ymd_opt(day.year(), 3, 31)?;
    if day <= this_year { Some(this_year) } else { NaiveDate::from_ymd_opt(day.year() + 1, 3, 31) }
}

/// The last day of the month containing `day`.
fn month_end(day: NaiveDate) -> Option<NaiveDate> {
    day.with_day(1)?.checked_add_months(Months::new(1))?.pred_opt()
}

/// An age limit of a program (a per-program setting), as the last day of eligibility.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgeLimit {
    /// Until the first 31 March on or after reaching `age` (こども医療費: "18歳に達する日以後の
    /// 最初の3月31日まで").
    FiscalYearEndAfter { age: u32 },
    /// Until the end of the month in which the person reaches `age`.
    MonthEndAfter { age: u32 },
    /// Only while under `age`: until the day before the `age`-th birthday, the day the person
    /// reaches `age` (育成医療 "18歳未満", 養育医療 "1歳未満").
    UnderAge { age: u32 },
}

impl AgeLimit {
    /// The last day of eligibility for a person born on `birth`.
    pub fn last_day(self, birth: NaiveDate) -> Option<NaiveDate> {
        match self {
            AgeLimit::FiscalYearEndAfter { age } => first_march_31_on_or_after(date_reaching_age(birth, age)?),
            AgeLimit::MonthEndAfter { age } => month_end(date_reaching_age(birth, age)?),
            AgeLimit::UnderAge { age } => date_reaching_age(birth, age),
        }
    }

    /// A Japanese description for messages and screens.
    pub fn describe(self) -> String {
        match self {
            AgeLimit::FiscalYearEndAfter { age } => format!("{age}歳に達する日以後の最初の3月31日まで"),
            AgeLimit::MonthEndAfter { age } => format!("{age}歳に達する日の属する月の末日まで"),
            AgeLimit::UnderAge { age } => format!("{age}歳未満"),
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
    fn legal_age_vector_from_numbers_md() {
        // Born 2011-04-02: legally 15 on 2026-04-01, while a naive difference says 14.
        let birth = d("2011-04-02");
        assert_eq!(legal_age(birth, d("2026-04-01")), 15);
        assert_eq!(legal_age(birth, d("2026-03-31")), 14);
        let naive = d("2026-04-01").years_since(birth).unwrap();
        assert_eq!(naive, 14, "the naive difference really is different");
        assert_eq!(date_reaching_age(birth, 15), Some(d("2026-04-01")));
    }

    #[test]
    fn first_march_31_after_reaching_with_the_1_april_edge() {
        let limit = AgeLimit::FiscalYearEndAfter { age: 15 };
        // Born 2 April: reaches 15 on 1 April 2026, so the first 31 March after is 2027-03-31.
        assert_eq!(limit.last_day(d("2011-04-02")), Some(d("2027-03-31")));
        // Born 1 April: reaches 15 on 31 March 2026, which is itself the first 31 March on or after.
        assert_eq!(limit.last_day(d("2011-04-01")), Some(d("2026-03-31")));
        // Born 31 March: reaches 15 on 30 March 2026.
        assert_eq!(limit.last_day(d("2011-03-31")), Some(d("2026-03-31")));
        // こども医療費 until 18.
        assert_eq!(AgeLimit::FiscalYearEndAfter { age: 18 }.last_day(d("2008-04-02")), Some(d("2027-03-31")));
        assert_eq!(AgeLimit::FiscalYearEndAfter { age: 18 }.last_day(d("2008-04-01")), Some(d("2026-03-31")));
    }

    #[test]
    fn born_on_29_february() {
        let birth = d("2008-02-29");
        // Common year: the birthday counts as 1 March, so the age is reached on 28 February.
        assert_eq!(date_reaching_age(birth, 18), Some(d("2026-02-28")));
        assert_eq!(legal_age(birth, d("2026-02-27")), 17);
        assert_eq!(legal_age(birth, d("2026-02-28")), 18);
        // Leap year: the day before 29 February is 28 February too.
        assert_eq!(date_reaching_age(birth, 16), Some(d("2024-02-28")));
        assert_eq!(legal_age(birth, d("2024-02-28")), 16);
        assert_eq!(AgeLimit::MonthEndAfter { age: 18 }.last_day(birth), Some(d("2026-02-28")));
        assert_eq!(AgeLimit::FiscalYearEndAfter { age: 18 }.last_day(birth), Some(d("2026-03-31")));
        assert_eq!(AgeLimit::UnderAge { age: 18 }.last_day(birth), Some(d("2026-02-28")));
        // Born 1 March: reaches each age on the last day of February, 29th in leap years.
        assert_eq!(date_reaching_age(d("2008-03-01"), 16), Some(d("2024-02-29")));
        assert_eq!(date_reaching_age(d("2008-03-01"), 17), Some(d("2025-02-28")));
    }

    #[test]
    fn month_end_and_under_age() {
        assert_eq!(AgeLimit::MonthEndAfter { age: 18 }.last_day(d("2008-06-15")), Some(d("2026-06-30")));
        // Born 1 July: reaches 18 on 30 June, so the month end is 30 June, not 31 July.
        assert_eq!(AgeLimit::MonthEndAfter { age: 18 }.last_day(d("2008-07-01")), Some(d("2026-06-30")));
        // 養育医療: under 1 year, until the day before the first birthday.
        assert_eq!(AgeLimit::UnderAge { age: 1 }.last_day(d("2026-05-10")), Some(d("2027-05-09")));
        assert_eq!(AgeLimit::UnderAge { age: 18 }.last_day(d("2008-04-02")), Some(d("2026-04-01")));
    }

    #[test]
    fn age_before_birth_and_at_birth() {
        assert_eq!(legal_age(d("2026-05-10"), d("2026-05-10")), 0);
        assert_eq!(legal_age(d("2026-05-10"), d("2020-01-01")), 0);
        assert_eq!(legal_age(d("2025-05-10"), d("2026-05-09")), 1);
    }

    #[test]
    fn descriptions() {
        assert_eq!(AgeLimit::FiscalYearEndAfter { age: 18 }.describe(), "18歳に達する日以後の最初の3月31日まで");
        assert_eq!(AgeLimit::UnderAge { age: 1 }.describe(), "1歳未満");
    }
}
