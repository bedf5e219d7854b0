//! Checked numbers: 個人番号 (My Number), 公費負担者番号 (payer number), 公費受給者番号
//! (recipient number) and 全国地方公共団体コード (municipality code).
//!
//! Each is parsed once from text and cannot hold a number whose check digit fails.
//! A [`MyNumber`] never prints itself: `Debug` and `Display` show a masked form, and the digits
//! are reachable only through [`MyNumber::reveal`], so every use of the plain number is visible
//! in the code.

use std::fmt;

use crate::error::ValueError;

/// Parses exactly `N` ASCII digits.
fn digits<const N: usize>(raw: &str, expected: &'static str) -> Result<[u8; N], ValueError> {
    if raw.is_empty() {
        return Err(ValueError::Required);
    }
    let bytes = raw.as_bytes();
    if bytes.len() != N || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(ValueError::Format { expected });
    }
    let mut out = [0u8; N];
    for (slot, b) in out.iter_mut().zip(bytes) {
        *slot = b - b'0';
    }
    Ok(out)
}

fn to_text(digits: &[u8]) -> String {
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

/// The MHLW 2-1 check digit shared by payer and recipient numbers.
///
/// Weights 2, 1, 2, 1, ... from the rightmost body digit leftwards; a two-digit product counts
/// as the sum of its digits; the check digit is 10 minus the last digit of the sum (0 when that
/// last digit is 0).
pub fn check_digit_21(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let product = u32::from(d) * if i % 2 == 0 { 2 } else { 1 };
            product / 10 + product % 10
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// 個人番号 (My Number): 12 digits, the last a mod-11 check digit.
///
/// Specific personal information: it must never reach a log, a URL, an error message or a file
/// name. `Debug`/`Display` print `********9018`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct MyNumber([u8; 12]);

impl MyNumber {
    /// Weights for digits 1..=11, left to right.
    const WEIGHTS: [u32; 11] = [6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2];

    /// Parses 12 half-width digits and checks the check digit.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let d = digits::<12>(raw, "半角数字12桁")?;
        let sum: u32 = d[..11].iter().zip(Self::WEIGHTS).map(|(&x, w)| u32::from(x) * w).sum();
        let r = sum % 11;
        let expected = if r <= 1 { 0 } else { 11 - r };
        if u32::from(d[11]) != expected {
            return Err(ValueError::MyNumberCheckDigit);
        }
        Ok(Self(d))
    }

    /// The 12 digits. Call only where the plain number is needed and permitted (PMH files,
    /// the stored event, a logged reveal on screen).
    pub fn reveal(&self) -> String {
        to_text(&self.0)
    }

    /// Masked form for screens and diagnostics: `********` and the last four digits.
    pub fn masked(&self) -> String {
        format!("********{}", to_text(&self.0[8..]))
    }
}

impl fmt::Debug for MyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MyNumber({})", self.masked())
    }
}

impl fmt::Display for MyNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// 公費負担者番号 (payer number): 法別番号 (2) + 都道府県番号 (2) + 実施機関番号 (3) + check digit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PayerNumber([u8; 8]);

impl PayerNumber {
    /// Parses 8 half-width digits and checks the 2-1 check digit.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let d = digits::<8>(raw, "半角数字8桁")?;
        if check_digit_21(&d[..7]) != d[7] {
            return Err(ValueError::PayerNumberCheckDigit);
        }
        Ok(Self(d))
    }

    /// 法別番号 (law code), the first two digits.
    pub fn law_code(&self) -> String {
        to_text(&self.0[..2])
    }

    /// 都道府県番号 (prefecture number), digits 3-4.
    pub fn prefecture(&self) -> String {
        to_text(&self.0[2..4])
    }

    /// 実施機関番号 (implementing body number), digits 5-7.
    pub fn institution(&self) -> String {
        to_text(&self.0[4..7])
    }

    /// The 8 digits as printed.
    pub fn as_string(&self) -> String {
        to_text(&self.0)
    }
}

impl fmt::Debug for PayerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PayerNumber({})", self.as_string())
    }
}

impl fmt::Display for PayerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

/// How a program's recipient numbers are checked (a per-program setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipientNumberRule {
    /// National programs: 6 digits and a 2-1 check digit anchored at the right of the body.
    Checked7,
    /// Local programs: up to 30 half-width printable characters, no check digit.
    Free,
}

/// 公費受給者番号 (recipient number), kept as text exactly as printed (leading zeros matter).
///
/// Every value satisfies at least [`RecipientNumberRule::Free`]; whether it also satisfies the
/// program's rule is checked with [`RecipientNumber::parse`] given that rule.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecipientNumber(String);

impl RecipientNumber {
    /// Longest free-form recipient number PMH accepts.
    pub const CHARS_MAX: usize = 30;

    /// Parses a recipient number under `rule`.
    pub fn parse(raw: &str, rule: RecipientNumberRule) -> Result<Self, ValueError> {
        match rule {
            RecipientNumberRule::Checked7 => {
                let d = digits::<7>(raw, "半角数字7桁")?;
                if check_digit_21(&d[..6]) != d[6] {
                    return Err(ValueError::RecipientNumberCheckDigit);
                }
                Ok(Self(raw.to_owned()))
            }
            RecipientNumberRule::Free => {
                if raw.is_empty() {
                    return Err(ValueError::Required);
                }
                if raw.chars().count() > Self::CHARS_MAX {
                    return Err(ValueError::TooLong { chars_max: Self::CHARS_MAX });
                }
                if !raw.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ValueError::Format { expected: "半角英数字・記号30文字以内" });
                }
                Ok(Self(raw.to_owned()))
            }
        }
    }

    /// The number as printed.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RecipientNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecipientNumber({})", self.0)
    }
}

impl fmt::Display for RecipientNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 全国地方公共団体コード (municipality code): 5 digits and a check digit (JIS X 0401/0402).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MunicipalityCode([u8; 6]);

impl MunicipalityCode {
    /// Parses 6 digits; the check digit is the last digit of 11 minus (sum of digits x 6,5,4,3,2
    /// mod 11).
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let d = digits::<6>(raw, "半角数字6桁")?;
        let sum: u32 = d[..5].iter().zip([6u32, 5, 4, 3, 2]).map(|(&x, w)| u32::from(x) * w).sum();
        if (11 - sum % 11) % 10 != u32::from(d[5]) {
            return Err(ValueError::MunicipalityCodeCheckDigit);
        }
        Ok(Self(d))
    }

    /// 都道府県番号, the first two digits.
    pub fn prefecture(&self) -> String {
        to_text(&self.0[..2])
    }

    /// The six digits.
    pub fn as_string(&self) -> String {
        to_text(&self.0)
    }
}

impl fmt::Debug for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MunicipalityCode({})", self.as_string())
    }
}

impl fmt::Display for MunicipalityCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors from ../shared/domain/NUMBERS.md.
    #[test]
    fn payer_number_vectors() {
        for valid in ["54016027", "88134457", "33120015", "81136244", "81137242", "88138243", "88131248", "89131247"] {
            assert!(PayerNumber::parse(valid).is_ok(), "{valid} should be valid");
        }
        for invalid in ["88134458", "87654321"] {
            assert_eq!(PayerNumber::parse(invalid).unwrap_err(), ValueError::PayerNumberCheckDigit);
        }
        // The correct check digits for the two invalid vectors.
        assert!(PayerNumber::parse("88134457").is_ok());
        assert!(PayerNumber::parse("87654323").is_ok());
    }

    #[test]
    fn payer_number_parts() {
        let p = PayerNumber::parse("54016027").unwrap();
        assert_eq!((p.law_code().as_str(), p.prefecture().as_str(), p.institution().as_str()), ("54", "01", "602"));
        assert_eq!(p.to_string(), "54016027");
    }

    #[test]
    fn payer_number_shape() {
        assert_eq!(PayerNumber::parse("").unwrap_err(), ValueError::Required);
        assert_eq!(PayerNumber::parse("5401602").unwrap_err().code(), "format");
        assert_eq!(PayerNumber::parse("540160277").unwrap_err().code(), "format");
        assert_eq!(PayerNumber::parse("５４０１６０２７").unwrap_err().code(), "format");
    }

    #[test]
    fn recipient_number_vectors() {
        for valid in ["1234566", "0000018", "0000000"] {
            let n = RecipientNumber::parse(valid, RecipientNumberRule::Checked7).unwrap();
            assert_eq!(n.as_str(), valid, "leading zeros are kept");
        }
        for invalid in ["0000002", "1234567"] {
            assert_eq!(
                RecipientNumber::parse(invalid, RecipientNumberRule::Checked7).unwrap_err(),
                ValueError::RecipientNumberCheckDigit
            );
        }
        // 0000002's check digit should be 0 (it is 0000000, valid above).
    }

    #[test]
    fn recipient_number_weighting_is_anchored_right() {
        // Weighting 123456 from the left (x2 on the 1) sums 2+2+6+4+1+6 = 21: check digit 9.
        // That number must be refused; the right-anchored rule gives 6.
        assert_eq!(
            RecipientNumber::parse("1234569", RecipientNumberRule::Checked7).unwrap_err(),
            ValueError::RecipientNumberCheckDigit
        );
        assert!(RecipientNumber::parse("1234566", RecipientNumberRule::Checked7).is_ok());
    }

    #[test]
    fn free_recipient_numbers() {
        let rule = RecipientNumberRule::Free;
        assert_eq!(RecipientNumber::parse("000123", rule).unwrap().as_str(), "000123");
        assert!(RecipientNumber::parse("K-2026-0001", rule).is_ok());
        assert!(RecipientNumber::parse(&"9".repeat(30), rule).is_ok());
        assert_eq!(RecipientNumber::parse(&"9".repeat(31), rule).unwrap_err().code(), "too_long");
        assert_eq!(RecipientNumber::parse("12 34", rule).unwrap_err().code(), "format");
        assert_eq!(RecipientNumber::parse("", rule).unwrap_err().code(), "required");
    }

    #[test]
    fn my_number_vectors() {
        for valid in ["123456789018", "111111111118", "983205673214"] {
            assert!(MyNumber::parse(valid).is_ok(), "valid vector rejected");
        }
        for invalid in ["210987654321", "123456789012"] {
            assert_eq!(MyNumber::parse(invalid).unwrap_err(), ValueError::MyNumberCheckDigit);
        }
        // 210987654321's check digit should be 0.
        assert!(MyNumber::parse("210987654320").is_ok());
    }

    #[test]
    fn my_number_never_prints_itself() {
        let n = MyNumber::parse("123456789018").unwrap();
        assert_eq!(n.to_string(), "********9018");
        assert_eq!(format!("{n:?}"), "MyNumber(********9018)");
        assert!(!format!("{n:?}{n}{:?}", Some(&n)).contains("12345678"));
        assert_eq!(n.reveal(), "123456789018");
        // Errors do not echo the input either.
        let err = MyNumber::parse("123456789012").unwrap_err();
        assert!(!err.message().contains("1234"));
    }

    #[test]
    fn my_number_shape() {
        assert_eq!(MyNumber::parse("12345678901").unwrap_err().code(), "format");
        assert_eq!(MyNumber::parse("12345678901a").unwrap_err().code(), "format");
        assert_eq!(MyNumber::parse("").unwrap_err().code(), "required");
    }

    #[test]
    fn municipality_codes() {
        // 千代田区, 札幌市, 八王子市 (published codes), and the demo さくら市.
        for valid in ["131016", "011002", "132012", "139998"] {
            assert!(MunicipalityCode::parse(valid).is_ok(), "{valid}");
        }
        assert_eq!(MunicipalityCode::parse("131017").unwrap_err(), ValueError::MunicipalityCodeCheckDigit);
        assert_eq!(MunicipalityCode::parse("139998").unwrap().prefecture(), "13");
    }
}
