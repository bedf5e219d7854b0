//! 和暦 (Japanese era dates) from a data table.
//!
//! The built-in table lists 明治 to 令和. A new era is data: the municipality configuration can
//! add `[[era]]` entries (see [`crate::config`]), so printing it needs no new release.

use std::fmt;

use chrono::{Datelike, NaiveDate};

use super::GREGORIAN_START;
use crate::error::ValueError;

/// One era.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Era {
    /// 元号, as printed: 令和.
    pub name: String,
    /// Latin initial used in short forms: R.
    pub initial: char,
    /// First day of the era.
    pub first_day: NaiveDate,
    /// Code used by medical systems (明治 1 ... 令和 5).
    pub code: u8,
}

/// One row of the built-in table: name, initial, first day (y, m, d), code.
type EraRow = (&'static str, char, (i32, u32, u32), u8);

/// The built-in eras, oldest first.
const BUILTIN: [EraRow; 5] = [
    ("明治", 'M', (1868, 1, 25), 1),
    ("大正", 'T', (1912, 7, 30), 2),
    ("昭和", 'S', (1926, 12, 25), 3),
    ("平成", 'H', (1989, 1, 8), 4),
    ("令和", 'R', (2019, 5, 1), 5),
];

/// The eras known to the ledger, oldest first, each starting after the previous one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EraTable {
    eras: Vec<Era>,
}

impl EraTable {
    /// The built-in eras, 明治 to 令和.
    pub fn builtin() -> Self {
        let eras = BUILTIN
            .iter()
            .filter_map(|&(name, initial, (y, m, d), code)| {
                Some(Era { name: name.to_owned(), initial, first_day: NaiveDate::from_ymd_opt(y, m, d)?, code })
            })
            .collect();
        Self { eras }
    }

    /// The built-in eras followed by `later` (from configuration). Each added era must start
    /// after the last known one.
    pub fn with_additions(later: Vec<Era>) -> Result<Self, String> {
        let mut table = Self::builtin();
        for era in later {
            let last = table.eras.last().map(|e| e.first_day).unwrap_or(GREGORIAN_START);
            if era.first_day <= last {
                return Err(format!(
                    "元号「{}」の開始日は、既知の最後の元号の開始日より後でなければなりません",
                    era.name
                ));
            }
            table.eras.push(era);
        }
        Ok(table)
    }

    /// The eras, oldest first.
    pub fn eras(&self) -> &[Era] {
        &self.eras
    }

    /// The era date of `date`; dates before 1873-01-01 (lunisolar calendar) are refused.
    pub fn wareki(&self, date: NaiveDate) -> Result<Wareki<'_>, ValueError> {
        if date < GREGORIAN_START {
            return Err(ValueError::BeforeGregorian);
        }
        let era = self.eras.iter().rev().find(|e| e.first_day <= date).ok_or(ValueError::BeforeGregorian)?;
        let year = u32::try_from(date.year() - era.first_day.year() + 1).map_err(|_| ValueError::InvalidDate)?;
        Ok(Wareki { era, year, month: date.month(), day: date.day() })
    }

    /// `令和8年4月1日`, `令和元年5月1日`.
    pub fn format(&self, date: NaiveDate) -> Result<String, ValueError> {
        self.wareki(date).map(|w| w.to_string())
    }
}

/// A date in an era.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wareki<'a> {
    /// The era.
    pub era: &'a Era,
    /// Year of the era, 1 for the first (printed 元年).
    pub year: u32,
    /// Month, 1-12.
    pub month: u32,
    /// Day of the month.
    pub day: u32,
}

impl Wareki<'_> {
    /// Short form used in forms and tables: `R8.4.1` (year 1 is `R1`).
    pub fn short(&self) -> String {
        format!("{}{}.{}.{}", self.era.initial, self.year, self.month, self.day)
    }
}

impl fmt::Display for Wareki<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.era.name)?;
        if self.year == 1 {
            f.write_str("元")?;
        } else {
            write!(f, "{}", self.year)?;
        }
        write!(f, "年{}月{}日", self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn vectors_from_numbers_md() {
        let table = EraTable::builtin();
        for (date, expected) in [
            ("1912-07-29", "明治45年7月29日"),
            ("1912-07-30", "大正元年7月30日"),
            ("1926-12-25", "昭和元年12月25日"),
            ("1989-01-07", "昭和64年1月7日"),
            ("1989-01-08", "平成元年1月8日"),
            ("2019-04-30", "平成31年4月30日"),
            ("2019-05-01", "令和元年5月1日"),
            ("2026-04-01", "令和8年4月1日"),
        ] {
            assert_eq!(table.format(d(date)).unwrap(), expected, "{date}");
        }
    }

    #[test]
    fn lunisolar_dates_are_refused() {
        let table = EraTable::builtin();
        assert_eq!(table.format(d("1872-12-31")).unwrap_err(), ValueError::BeforeGregorian);
        assert_eq!(table.format(d("1868-01-25")).unwrap_err(), ValueError::BeforeGregorian);
        assert_eq!(table.format(d("1873-01-01")).unwrap(), "明治6年1月1日");
    }

    #[test]
    fn codes_and_short_form() {
        let table = EraTable::builtin();
        let w = table.wareki(d("2026-04-01")).unwrap();
        assert_eq!((w.era.code, w.short()), (5, "R8.4.1".to_owned()));
        assert_eq!(table.wareki(d("1989-01-07")).unwrap().era.code, 3);
        assert_eq!(table.wareki(d("2019-05-01")).unwrap().short(), "R1.5.1");
    }

    #[test]
    fn a_new_era_is_data() {
        let next = Era { name: "新元号".into(), initial: 'X', first_day: d("2040-01-01"), code: 6 };
        let table = EraTable::with_additions(vec![next.clone()]).unwrap();
        assert_eq!(table.format(d("2039-12-31")).unwrap(), "令和21年12月31日");
        assert_eq!(table.format(d("2040-01-01")).unwrap(), "新元号元年1月1日");
        assert_eq!(table.format(d("2041-06-01")).unwrap(), "新元号2年6月1日");
        let too_early = Era { first_day: d("2019-05-01"), ..next };
        assert!(EraTable::with_additions(vec![too_early]).is_err());
    }
}
