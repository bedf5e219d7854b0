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
