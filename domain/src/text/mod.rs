//! Text values: names, addresses, kana, sex, short free texts.
//!
//! Names and addresses are stored exactly as entered (no Unicode normalisation: NFC/NFKC would
//! silently replace some kanji, for example U+FA10 塚 with U+585A). Parsing only trims spaces at
//! both ends and refuses blanks, control characters and over-long values. Search keys are a
//! separate, derived form (projections).

mod jis;
mod jisx0213_table;
mod kana;
mod legacy;
mod search;

pub use jis::{Unrepresentable, WINDOWS_LOOKALIKES, jis_lookalike, pmh_unrepresentable, with_jis_lookalikes};
pub use kana::{Kana, KanaConversion, half_width_kana_to_full_width};
pub use legacy::{Undecodable, decode_cp932};
pub use search::{kana_key, name_key};

use std::fmt;

use crate::error::ValueError;

/// Characters that make a spreadsheet read a cell as a formula when they lead it (CSV, or
/// formula, injection): refused at the head of free text at input, and neutralised in CSV files
/// meant for people.
pub const FORMULA_LEADS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Whether a spreadsheet would read `text` as a formula.
pub fn formula_like(text: &str) -> bool {
    text.starts_with(FORMULA_LEADS)
}

/// A free-text cell of a CSV file meant for people: a leading formula character gets a `'`
/// before it, so Excel shows it as text. Numbers and codes are never passed here.
pub fn spreadsheet_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if formula_like(text) { format!("'{text}").into() } else { text.into() }
}

/// Spaces that are trimmed from both ends of text input: ASCII space and 全角スペース.
fn is_edge_space(c: char) -> bool {
    c == ' ' || c == '\u{3000}'
}

/// The shared rule for free text: trimmed, non-empty, no control characters, `chars_max` at most.
fn parse_text(raw: &str, chars_max: usize) -> Result<String, ValueError> {
    let text = raw.trim_matches(is_edge_space);
    if text.is_empty() {
        return Err(ValueError::Required);
    }
    if let Some(i) = text.chars().position(char::is_control) {
        return Err(ValueError::ControlCharacter { position: i + 1 });
    }
    if text.chars().count() > chars_max {
        return Err(ValueError::TooLong { chars_max });
    }
    Ok(text.to_owned())
}

macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Longest value, in characters.
            pub const CHARS_MAX: usize = $max;

            /// Trims spaces at both ends; refuses blanks, control characters and long values.
            pub fn parse(raw: &str) -> Result<Self, ValueError> {
                parse_text(raw, Self::CHARS_MAX).map(Self)
            }

            /// The text as entered.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

text_type!(
    /// 氏名 (person name), as entered, including variant kanji.
    PersonName,
    100
);
text_type!(
    /// 住所 (address), as entered.
    Address,
    200
);
text_type!(
    /// A municipality name (転入元・転出先), for move-in and move-out.
    PlaceName,
    100
);
text_type!(
    /// A reason or remark written by a caseworker (取消理由 etc.).
    Note,
    500
);
text_type!(
    /// 疾病名 (disease name) on a certificate.
    DiseaseName,
    100
);
text_type!(
    /// One designated medical institution (指定医療機関) on a certificate.
    InstitutionName,
    100
);
text_type!(
    /// 負担定義 of a self-pay cap: how the program defines what the recipient pays, as clinics
    /// read it (「医療費の2割」, 「外来」).
    CapDefinition,
    50
);
text_type!(
    /// 所得区分 (income segment) code as set up in PMH's program master.
    IncomeSegment,
    20
);

text_type!(
    /// PMH's text for an error it reported on a record (エラー内容), as recorded: runs of
    /// twelve digits or more masked ([`mask_digit_runs`]) before it is parsed.
    PmhMessage,
    200
);

/// PMH's code for an error it reported on a record (エラーコード): 1 to 20 ASCII letters,
/// digits, `-`, `_` or `.`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PmhErrorCode(String);

impl PmhErrorCode {
    /// Longest code, in characters.
    pub const CHARS_MAX: usize = 20;

    /// Trims ASCII spaces; refuses blanks, long codes and other characters.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let code = raw.trim_matches(' ');
        if code.is_empty() {
            return Err(ValueError::Required);
        }
        if code.chars().count() > Self::CHARS_MAX {
            return Err(ValueError::TooLong { chars_max: Self::CHARS_MAX });
        }
        if !code.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
            return Err(ValueError::Format { expected: "半角英数字（- _ . を含む）20文字以内" });
        }
        Ok(PmhErrorCode(code.to_owned()))
    }

    /// The code as PMH wrote it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PmhErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `text` with every run of twelve or more digits (ASCII or full-width, possibly split by
/// spaces, hyphens or dots: `1234 5678 9012`) replaced by as many `*`: a message from outside
/// may quote a My Number, which must not be kept or shown.
pub fn mask_digit_runs(text: &str) -> String {
    let is_digit = |c: char| c.is_ascii_digit() || ('０'..='９').contains(&c);
    let is_separator = |c: char| matches!(c, ' ' | '\u{3000}' | '-' | '－' | '‐' | '−' | 'ー' | '.' | '．');
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !is_digit(chars[i]) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The longest stretch of digits and single separators that ends on a digit.
        let (mut end, mut digits, mut j) = (i, 0, i);
        while j < chars.len() {
            if is_digit(chars[j]) {
                digits += 1;
                j += 1;
                end = j;
            } else if is_separator(chars[j]) && chars.get(j + 1).is_some_and(|c| is_digit(*c)) {
                j += 1;
            } else {
                break;
            }
        }
        if digits >= 12 {
            out.extend(std::iter::repeat_n('*', end - i));
        } else {
            out.extend(&chars[i..end]);
        }
        i = end;
    }
    out
}

/// 性別 (sex) as coded for PMH: "1" male, "2" female, "9" not applicable (ISO 5218).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sex {
    /// 男 ("1").
    Male,
    /// 女 ("2").
    Female,
    /// 適用不能 ("9"); PMH's handling of codes other than 1 and 2 is an open question.
    NotApplicable,
}

impl Sex {
    /// Parses "1", "2" or "9".
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        match raw {
            "1" => Ok(Sex::Male),
            "2" => Ok(Sex::Female),
            "9" => Ok(Sex::NotApplicable),
            "" => Err(ValueError::Required),
            _ => Err(ValueError::UnknownCode { allowed: "1（男）, 2（女）, 9（適用不能）" }),
        }
    }

    /// The code sent to PMH.
    pub fn code(self) -> &'static str {
        match self {
            Sex::Male => "1",
            Sex::Female => "2",
            Sex::NotApplicable => "9",
        }
    }

    /// The Japanese label printed on certificates.
    pub fn label(self) -> &'static str {
        match self {
            Sex::Male => "男",
            Sex::Female => "女",
            Sex::NotApplicable => "―",
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_formula_lead_is_neutralised_and_nothing_else_is_touched() {
        for lead in ["=1+2", "+81", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(super::spreadsheet_safe(lead), format!("'{lead}"));
            assert!(super::formula_like(lead));
        }
        for fine in ["山田-花子", "A=1", "", "1234", "こども医療費助成"] {
            assert_eq!(super::spreadsheet_safe(fine), fine);
        }
    }

    use super::*;

    #[test]
    fn digit_runs_long_enough_to_be_a_my_number_are_masked_and_shorter_ones_kept() {
        assert_eq!(mask_digit_runs("個人番号123456789018が不正"), "個人番号************が不正");
        assert_eq!(mask_digit_runs("番号１２３４５６７８９０１８です"), "番号************です");
        assert_eq!(mask_digit_runs("行12 桁11、番号12345678901"), "行12 桁11、番号12345678901");
        assert_eq!(mask_digit_runs("1234567890123"), "*************");
        assert_eq!(mask_digit_runs("番号 1234 5678 9012 です"), "番号 ************** です");
        assert_eq!(mask_digit_runs("1234-5678-9012"), "**************");
        assert_eq!(mask_digit_runs("１２３４－５６７８－９０１２"), "**************");
        assert_eq!(mask_digit_runs("2026-12-01 10:00 行 3"), "2026-12-01 10:00 行 3", "a date is not a My Number");
        assert_eq!(PmhErrorCode::parse(" E-01.2_a ").unwrap().as_str(), "E-01.2_a");
        assert_eq!(PmhErrorCode::parse("").unwrap_err(), ValueError::Required);
        assert!(matches!(PmhErrorCode::parse("エラー"), Err(ValueError::Format { .. })));
        assert_eq!(PmhErrorCode::parse(&"E".repeat(21)).unwrap_err(), ValueError::TooLong { chars_max: 20 });
    }

    #[test]
    fn names_are_stored_as_entered() {
        // U+FA10 (塚, a compatibility ideograph) and 髙 must survive: no normalisation.
        let name = PersonName::parse("　髙\u{FA10} 太郎 ").unwrap();
        assert_eq!(name.as_str(), "髙\u{FA10} 太郎");
        assert_eq!(PersonName::parse(" \u{3000} ").unwrap_err(), ValueError::Required);
        assert_eq!(PersonName::parse("山田\n花子").unwrap_err(), ValueError::ControlCharacter { position: 3 });
        assert_eq!(PersonName::parse(&"あ".repeat(101)).unwrap_err(), ValueError::TooLong { chars_max: 100 });
        assert!(Address::parse(&"あ".repeat(200)).is_ok());
        assert_eq!(Address::parse(&"あ".repeat(201)).unwrap_err().code(), "too_long");
    }

    #[test]
    fn text_debug_names_the_type() {
        assert_eq!(format!("{:?}", Note::parse("誤入力").unwrap()), "Note(\"誤入力\")");
    }

    #[test]
    fn sex_codes() {
        assert_eq!(Sex::parse("1").unwrap(), Sex::Male);
        assert_eq!(Sex::parse("2").unwrap().code(), "2");
        assert_eq!(Sex::parse("9").unwrap().label(), "―");
        assert_eq!(Sex::parse("0").unwrap_err().code(), "unknown_code");
        assert_eq!(Sex::parse("M").unwrap_err().code(), "unknown_code");
        assert_eq!(Sex::parse("").unwrap_err().code(), "required");
    }
}
