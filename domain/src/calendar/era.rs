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
            // A short form (R8.4.1), a code (5080401) or a name (令和…) must name one era.
            let clash = table.eras.iter().find(|e| {
                e.initial.eq_ignore_ascii_case(&era.initial)
                    || e.code == era.code
                    || e.name.starts_with(era.name.as_str())
                    || era.name.starts_with(e.name.as_str())
            });
            if let Some(e) = clash {
                return Err(format!("元号「{}」の名前・略号・コードが「{}」と重なります", era.name, e.name));
            }
            if !era.initial.is_ascii_alphabetic() || era.name.is_empty() {
                return Err(format!("元号「{}」の略号は英字1文字にしてください", era.name));
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

    /// Parses a 和暦 date as legacy systems and people write it: `平成25年1月1日`, `平成元年1月8日`,
    /// `H25.1.1` (also with `/` or `-`, either case), and the 7-digit era-code form of medical
    /// systems `4250101` (code, year, month, day). Full-width digits and letters are read as
    /// ASCII. The day must lie within the era it names: `平成31年5月1日` is refused, not moved.
    pub fn parse(&self, raw: &str) -> Result<NaiveDate, ValueError> {
        let (era, gregorian_year, month, day) = self.parts(raw, true)?;
        let date = NaiveDate::from_ymd_opt(gregorian_year, month, day).ok_or(ValueError::InvalidDate)?;
        if date < era.first_day || self.next_first_day(era).is_some_and(|n| date >= n) {
            return Err(ValueError::OutsideEra { era: era.name.clone() });
        }
        if date < GREGORIAN_START {
            return Err(ValueError::BeforeGregorian);
        }
        Ok(date)
    }

    /// Parses a 和暦 month: `令和8年4月`, `平成元年1月`, `R8.4`, `H25/1` (full-width too). The
    /// month must share a day with the era it names (`平成31年4月` and `平成元年1月` are months of
    /// 平成; `平成31年5月` is not). Returns the Gregorian year and the month.
    pub fn parse_month(&self, raw: &str) -> Result<(i32, u32), ValueError> {
        let (era, year, month, _) = self.parts(raw, false)?;
        let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or(ValueError::InvalidDate)?;
        let next_month = if month == 12 {
            NaiveDate::from_ymd_opt(year + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(year, month + 1, 1)
        }
        .ok_or(ValueError::InvalidDate)?;
        if next_month <= era.first_day || self.next_first_day(era).is_some_and(|n| first >= n) {
            return Err(ValueError::OutsideEra { era: era.name.clone() });
        }
        if next_month <= GREGORIAN_START {
            return Err(ValueError::BeforeGregorian);
        }
        Ok((year, month))
    }

    fn next_first_day(&self, era: &Era) -> Option<NaiveDate> {
        self.eras.iter().find(|e| e.first_day > era.first_day).map(|e| e.first_day)
    }

    /// The era, Gregorian year, month and day (1 when `with_day` is false) of a 和暦 text.
    fn parts(&self, raw: &str, with_day: bool) -> Result<(&Era, i32, u32, u32), ValueError> {
        const EXPECTED: &str = "平成25年1月1日、H25.1.1 または 4250101";
        const EXPECTED_MONTH: &str = "令和8年4月 または R8.4";
        let text: String = raw.trim().chars().map(to_ascii).collect();
        if text.is_empty() {
            return Err(ValueError::Required);
        }
        let format = || ValueError::Format { expected: if with_day { EXPECTED } else { EXPECTED_MONTH } };
        let number = |s: &str| -> Result<u32, ValueError> {
            if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format());
            }
            s.parse().map_err(|_| format())
        };
        let (era, year, month, day) = if with_day && text.len() == 7 && text.bytes().all(|b| b.is_ascii_digit()) {
            let code: u8 = text[..1].parse().map_err(|_| format())?;
            let era = self.eras.iter().find(|e| e.code == code).ok_or_else(format)?;
            (era, number(&text[1..3])?, number(&text[3..5])?, number(&text[5..7])?)
        } else if let Some(first) = text.chars().next().filter(char::is_ascii_alphabetic) {
            let era = self.eras.iter().find(|e| e.initial.eq_ignore_ascii_case(&first)).ok_or_else(format)?;
            let rest = &text[first.len_utf8()..];
            let parts: Vec<&str> = rest.split(['.', '/', '-']).collect();
            match (with_day, &parts[..]) {
                (true, [y, m, d]) => (era, number(y)?, number(m)?, number(d)?),
                (false, [y, m]) => (era, number(y)?, number(m)?, 1),
                _ => return Err(format()),
            }
        } else {
            let era = self.eras.iter().find(|e| text.starts_with(e.name.as_str())).ok_or_else(format)?;
            let rest = &text[era.name.len()..];
            let (y, rest) = rest.split_once('年').ok_or_else(format)?;
            let (m, rest) = rest.split_once('月').ok_or_else(format)?;
            let d = if with_day {
                number(rest.strip_suffix('日').ok_or_else(format)?)?
            } else if rest.is_empty() {
                1
            } else {
                return Err(format());
            };
            let y = if y == "元" { 1 } else { number(y)? };
            (era, y, number(m)?, d)
        };
        if year == 0 || !(1..=12).contains(&month) {
            return Err(ValueError::InvalidDate);
        }
        let gregorian_year = i32::try_from(year).map_err(|_| format())? + era.first_day.year() - 1;
        // The last era has no end, but the ledger's dates do (9999-12-31, PMH's open end).
        if gregorian_year > 9999 {
            return Err(ValueError::InvalidDate);
        }
        Ok((era, gregorian_year, month, day))
    }

    /// `令和8年4月`, `令和元年5月`: the era of the month's first day (`平成31年4月`).
    pub fn format_month(&self, year: i32, month: u32) -> Result<String, ValueError> {
        let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or(ValueError::InvalidDate)?;
        let w = self.wareki(first)?;
        Ok(if w.year == 1 {
            format!("{}元年{}月", w.era.name, month)
        } else {
            format!("{}{}年{}月", w.era.name, w.year, month)
        })
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

/// Full-width digits, Latin letters and date separators as ASCII; other characters unchanged.
pub(crate) fn to_ascii(c: char) -> char {
    match c {
        '０'..='９' | 'Ａ'..='Ｚ' | 'ａ'..='ｚ' | '．' | '／' | '－' => {
            char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c)
        }
        // The dashes an IME offers for a hyphen: minus, hyphen, non-breaking hyphen, 長音.
        '\u{2212}' | '\u{2010}' | '\u{2011}' | 'ー' => '-',
        _ => c,
    }
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
        let too_early = Era { first_day: d("2019-05-01"), ..next.clone() };
        assert!(EraTable::with_additions(vec![too_early]).is_err());
        for clash in [
            Era { initial: 'r', ..next.clone() },
            Era { code: 5, ..next.clone() },
            Era { name: "令和".into(), ..next.clone() },
            Era { initial: '1', ..next.clone() },
        ] {
            assert!(EraTable::with_additions(vec![clash.clone()]).is_err(), "{clash:?}");
        }
    }

    #[test]
    fn era_dates_parse_in_every_written_form() {
        let table = EraTable::builtin();
        for (raw, expected) in [
            ("平成25年1月1日", "2013-01-01"),
            ("H25.1.1", "2013-01-01"),
            ("h25/01/01", "2013-01-01"),
            ("H25-1-1", "2013-01-01"),
            ("Ｈ２５．１．１", "2013-01-01"),
            ("4250101", "2013-01-01"),
            ("平成元年1月8日", "1989-01-08"),
            ("昭和64年1月7日", "1989-01-07"),
            ("S64.1.7", "1989-01-07"),
            ("令和元年5月1日", "2019-05-01"),
            ("R8.4.1", "2026-04-01"),
            ("5080401", "2026-04-01"),
            ("大正元年7月30日", "1912-07-30"),
            (" 平成31年4月30日 ", "2019-04-30"),
        ] {
            assert_eq!(table.parse(raw), Ok(d(expected)), "{raw}");
        }
        // Every vector of NUMBERS.md reads back from its printed form.
        for date in ["1912-07-29", "1912-07-30", "1926-12-25", "1989-01-07", "1989-01-08", "2019-04-30", "2019-05-01"] {
            let printed = table.format(d(date)).unwrap();
            assert_eq!(table.parse(&printed), Ok(d(date)), "{printed}");
            let short = table.wareki(d(date)).unwrap().short();
            assert_eq!(table.parse(&short), Ok(d(date)), "{short}");
        }
    }

    #[test]
    fn era_dates_outside_their_era_or_malformed_are_refused() {
        let table = EraTable::builtin();
        let code = |raw: &str| table.parse(raw).unwrap_err().code();
        assert_eq!(code("平成31年5月1日"), "outside_era");
        assert_eq!(code("平成元年1月7日"), "outside_era");
        assert_eq!(code("R1.4.30"), "outside_era");
        assert_eq!(code("明治5年12月31日"), "before_gregorian");
        assert_eq!(code("H25.2.30"), "invalid_date");
        assert_eq!(code("H0.1.1"), "invalid_date");
        assert_eq!(code(""), "required");
        for bad in
            ["X25.1.1", "H25.1", "H25.1.1.1", "平成25年1月", "平成二十五年1月1日", "9250101", "2013-01-01", "H25..1"]
        {
            assert_eq!(code(bad), "format", "{bad}");
        }
        assert_eq!(table.parse("平成31年5月1日").unwrap_err().message(), "平成の期間にない日付です");
    }
}
