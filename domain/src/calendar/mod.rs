//! Civil dates: strict parsing, 和暦 (Japanese era) formatting, and legal age.
//!
//! The ledger handles dates from 1873-01-01, when Japan adopted the Gregorian calendar, to
//! 9999-12-31 (PMH's open end). Earlier dates were lunisolar and are refused.

mod age;
mod era;

pub use age::{AgeLimit, date_reaching_age, first_march_31_on_or_after, legal_age};
pub use era::{Era, EraTable, Wareki};

use chrono::NaiveDate;

use crate::error::ValueError;

/// The first day of the Gregorian calendar in Japan (明治6年1月1日).
pub const GREGORIAN_START: NaiveDate = match NaiveDate::from_ymd_opt(1873, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

/// What [`parse_written_date`] accepts, for messages.
pub const WRITTEN_DATE_FORMS: &str = "2026-04-01、2026年4月1日、令和8年4月1日、R8.4.1 など";

/// Parses a date as a caseworker writes it: `2026-04-01`, or 和暦 as [`EraTable::parse`] reads
/// it (`令和8年4月1日`, `令和元年5月1日`, `R8.4.1`, `R08.04.01`, `H25.1.1`), full-width digits
/// (an IME's) read as ASCII. A date outside the era it names (`平成31年5月1日`, `令和元年4月30日`,
/// `昭和64年1月8日`) is refused, never moved. One parser for the web's forms and the legacy
/// import (whose `wareki` format is [`EraTable::parse`]).
pub fn parse_written_date(eras: &EraTable, raw: &str) -> Result<NaiveDate, ValueError> {
    let text: String = raw.trim().chars().map(era::to_ascii).collect();
    if text.is_empty() {
        return Err(ValueError::Required);
    }
    if text.bytes().next().is_some_and(|b| b.is_ascii_digit()) && text.contains('年') {
        return gregorian_written(&text);
    }
    if text.bytes().next().is_some_and(|b| b.is_ascii_digit()) && text.len() != 7 {
        return parse_date(&text).map_err(|e| match e {
            ValueError::Format { .. } => ValueError::Format { expected: WRITTEN_DATE_FORMS },
            other => other,
        });
    }
    eras.parse(&text).map_err(|e| match e {
        ValueError::Format { .. } => ValueError::Format { expected: WRITTEN_DATE_FORMS },
        other => other,
    })
}

/// `2026年4月1日`: the Western year written the Japanese way.
fn gregorian_written(text: &str) -> Result<NaiveDate, ValueError> {
    let format = || ValueError::Format { expected: WRITTEN_DATE_FORMS };
    let (y, rest) = text.split_once('年').ok_or_else(format)?;
    let (m, rest) = rest.split_once('月').ok_or_else(format)?;
    let d = rest.strip_suffix('日').ok_or_else(format)?;
    let digits = |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit());
    if y.len() != 4 || !digits(y, 4) || !digits(m, 2) || !digits(d, 2) {
        return Err(format());
    }
    let (y, m, d) =
        (y.parse().map_err(|_| format())?, m.parse().map_err(|_| format())?, d.parse().map_err(|_| format())?);
    let date = NaiveDate::from_ymd_opt(y, m, d).ok_or(ValueError::InvalidDate)?;
    if date < GREGORIAN_START {
        return Err(ValueError::BeforeGregorian);
    }
    Ok(date)
}

/// What [`parse_written_month`] accepts, for messages.
pub const WRITTEN_MONTH_FORMS: &str = "2026-04、2026年4月、令和8年4月、R8.4 など";

/// Parses a month as a caseworker writes it: `2026-04`, `2026年4月`, or 和暦 as
/// [`EraTable::parse_month`] reads it (`令和8年4月`, `R8.4`), full-width digits too. Returns the
/// Gregorian year and month; a month outside the era it names is refused.
pub fn parse_written_month(eras: &EraTable, raw: &str) -> Result<(i32, u32), ValueError> {
    let text: String = raw.trim().chars().map(era::to_ascii).collect();
    if text.is_empty() {
        return Err(ValueError::Required);
    }
    let format = || ValueError::Format { expected: WRITTEN_MONTH_FORMS };
    if text.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        let (y, m) = match text.split_once('-') {
            Some((y, m)) if y.len() == 4 && m.len() == 2 => (y, m),
            Some(_) => return Err(format()),
            None => {
                let (y, rest) = text.split_once('年').ok_or_else(format)?;
                let m = rest.strip_suffix('月').ok_or_else(format)?;
                if y.len() != 4 || m.is_empty() || m.len() > 2 {
                    return Err(format());
                }
                (y, m)
            }
        };
        if !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(format());
        }
        let year: i32 = y.parse().map_err(|_| format())?;
        let month: u32 = m.parse().map_err(|_| format())?;
        if !(1..=12).contains(&month) || year > 9999 {
            return Err(ValueError::InvalidDate);
        }
        if year < 1873 {
            return Err(ValueError::BeforeGregorian);
        }
        return Ok((year, month));
    }
    eras.parse_month(&text).map_err(|e| match e {
        ValueError::Format { .. } => ValueError::Format { expected: WRITTEN_MONTH_FORMS },
        other => other,
    })
}

/// Parses a date written `YYYY-MM-DD` (exactly that: ten characters, zero-padded).
pub fn parse_date(raw: &str) -> Result<NaiveDate, ValueError> {
    if raw.is_empty() {
        return Err(ValueError::Required);
    }
    let b = raw.as_bytes();
    let shape_ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter().enumerate().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape_ok {
        return Err(ValueError::Format { expected: "YYYY-MM-DD" });
    }
    let date = NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| ValueError::InvalidDate)?;
    if date < GREGORIAN_START {
        return Err(ValueError::BeforeGregorian);
    }
    Ok(date)
}

#[cfg(test)]
mod written_tests {
    use super::*;

    #[test]
    fn every_written_form_of_a_date_is_read_and_impossible_era_dates_are_refused() {
        let eras = EraTable::builtin();
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        for (raw, want) in [
            ("令和8年4月1日", "2026-04-01"),
            ("R8.4.1", "2026-04-01"),
            ("R08.04.01", "2026-04-01"),
            ("r8.4.1", "2026-04-01"),
            ("H25.1.1", "2013-01-01"),
            ("平成25年1月1日", "2013-01-01"),
            ("2026-04-01", "2026-04-01"),
            ("２０２６－０４－０１", "2026-04-01"),
            ("令和８年４月１日", "2026-04-01"),
            ("Ｒ８．４．１", "2026-04-01"),
            ("令和元年5月1日", "2019-05-01"),
            ("平成元年1月8日", "1989-01-08"),
            (" 令和8年4月1日　", "2026-04-01"),
            ("2026年4月1日", "2026-04-01"),
            ("２０２６年４月１日", "2026-04-01"),
            ("2026ー04ー01", "2026-04-01"),
            ("2026\u{2212}04\u{2212}01", "2026-04-01"),
            ("令和7981年12月31日", "9999-12-31"),
        ] {
            assert_eq!(parse_written_date(&eras, raw).ok(), day(want), "{raw}");
        }
        for raw in ["平成31年5月1日", "令和元年4月30日", "昭和64年1月8日"] {
            assert!(matches!(parse_written_date(&eras, raw), Err(ValueError::OutsideEra { .. })), "{raw}");
        }
        for raw in ["令和8年2月30日", "2026-02-30", "2026年2月30日", "R7982.1.1", "令和9999年1月1日"] {
            assert_eq!(parse_written_date(&eras, raw), Err(ValueError::InvalidDate), "{raw}");
        }
        for raw in ["2026/4/1", "来週", "R8-4", "8.4.1"] {
            assert_eq!(
                parse_written_date(&eras, raw),
                Err(ValueError::Format { expected: WRITTEN_DATE_FORMS }),
                "{raw}"
            );
        }
        assert_eq!(parse_written_date(&eras, "  "), Err(ValueError::Required));
    }

    #[test]
    fn every_written_form_of_a_month_is_read_and_months_outside_their_era_are_refused() {
        let eras = EraTable::builtin();
        for (raw, want) in [
            ("2026-04", (2026, 4)),
            ("2026年4月", (2026, 4)),
            ("２０２６年１０月", (2026, 10)),
            ("令和8年4月", (2026, 4)),
            ("R8.4", (2026, 4)),
            ("R08.04", (2026, 4)),
            ("h25/1", (2013, 1)),
            ("平成元年1月", (1989, 1)),
            ("平成31年4月", (2019, 4)),
            ("令和元年5月", (2019, 5)),
            ("昭和64年1月", (1989, 1)),
        ] {
            assert_eq!(parse_written_month(&eras, raw), Ok(want), "{raw}");
            assert_eq!(eras.format_month(want.0, want.1).ok().map(|t| parse_written_month(&eras, &t)), Some(Ok(want)));
        }
        for raw in ["平成31年5月", "令和元年4月", "昭和64年2月"] {
            assert!(matches!(parse_written_month(&eras, raw), Err(ValueError::OutsideEra { .. })), "{raw}");
        }
        for raw in ["2026-13", "令和8年13月", "令和7982年1月"] {
            assert_eq!(parse_written_month(&eras, raw), Err(ValueError::InvalidDate), "{raw}");
        }
        assert_eq!(parse_written_month(&eras, "1872年12月"), Err(ValueError::BeforeGregorian));
        assert_eq!(parse_written_month(&eras, "令和7981年12月"), Ok((9999, 12)));
        // Months two eras share belong to both.
        for (raw, want) in [
            ("明治45年7月", (1912, 7)),
            ("大正元年7月", (1912, 7)),
            ("大正15年12月", (1926, 12)),
            ("昭和元年12月", (1926, 12)),
        ] {
            assert_eq!(parse_written_month(&eras, raw), Ok(want), "{raw}");
        }
        for raw in ["2026-4", "2026/04", "R8.4.1", "令和8年4月1日", "来月", "26年4月"] {
            assert_eq!(
                parse_written_month(&eras, raw),
                Err(ValueError::Format { expected: WRITTEN_MONTH_FORMS }),
                "{raw}"
            );
        }
        assert_eq!(eras.format_month(2019, 5).as_deref(), Ok("令和元年5月"));
        assert_eq!(eras.format_month(2019, 4).as_deref(), Ok("平成31年4月"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_strict() {
        assert_eq!(parse_date("2026-04-01").unwrap(), NaiveDate::from_ymd_opt(2026, 4, 1).unwrap());
        assert_eq!(parse_date("9999-12-31").unwrap(), crate::period::PMH_OPEN_END);
        assert_eq!(parse_date("2026-4-1").unwrap_err().code(), "format");
        assert_eq!(parse_date("2026/04/01").unwrap_err().code(), "format");
        assert_eq!(parse_date("R8-04-01").unwrap_err().code(), "format");
        assert_eq!(parse_date("2026-02-29").unwrap_err().code(), "invalid_date");
        assert_eq!(parse_date("2026-13-01").unwrap_err().code(), "invalid_date");
        assert_eq!(parse_date("1872-12-31").unwrap_err().code(), "before_gregorian");
        assert!(parse_date("1873-01-01").is_ok());
        assert_eq!(parse_date("").unwrap_err().code(), "required");
    }
}
