//! Errors of value parsing (値の検証エラー): one closed enum with stable codes and Japanese messages.
//!
//! Messages never repeat the rejected input: it may be personal data, and messages reach logs
//! and CLI output. They name a position or a limit instead.

use std::fmt;

/// Why a raw value could not become a domain value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueError {
    /// The value is missing or blank.
    Required,
    /// Longer than the limit, counted in characters.
    TooLong { chars_max: usize },
    /// A control character (tab, newline, ...) at this 1-based character position.
    ControlCharacter { position: usize },
    /// Not in the expected shape; the `&str` describes the shape in Japanese.
    Format { expected: &'static str },
    /// A JSON value of the wrong type (a number where a string belongs, ...).
    WrongType { expected: &'static str },
    /// 個人番号 check digit does not match.
    MyNumberCheckDigit,
    /// 公費負担者番号 check digit does not match.
    PayerNumberCheckDigit,
    /// 公費受給者番号 check digit does not match.
    RecipientNumberCheckDigit,
    /// 全国地方公共団体コード check digit does not match.
    MunicipalityCodeCheckDigit,
    /// Kana contains something other than full-width katakana, ー, ・ or a space.
    NotKatakana { position: usize, half_width: bool },
    /// Not one of the allowed codes.
    UnknownCode { allowed: &'static str },
    /// A date that does not exist or is out of the supported range.
    InvalidDate,
    /// A date before 1873-01-01, when Japan adopted the Gregorian calendar.
    BeforeGregorian,
    /// An amount below zero where only zero or more makes sense.
    Negative,
    /// More entries than allowed in a list.
    TooMany { entries_max: usize },
    /// A period whose last day is before its first day.
    EndBeforeStart,
    /// A field the command type does not have.
    UnknownField,
    /// `<` or `>` at this 1-based character position: markup has no place in a name, an address
    /// or a note, and refusing it at input keeps HTML and script fragments out of the log.
    Markup { position: usize },
    /// An amount above the largest that makes sense.
    TooLarge { max: i64 },
    /// An era date outside its era (平成32年, 令和元年4月1日): the era it names never had that day.
    OutsideEra { era: String },
    /// Free text that starts with `=`, `+`, `-` or `@`: a spreadsheet would run it as a formula.
    FormulaLike,
    /// A self-pay cap of 負担なし with a rate or an amount.
    CapFreeWithValues,
    /// A self-pay cap of 上限額 with neither a rate nor an amount, or of 定額 without an amount.
    CapEmpty,
}

impl ValueError {
    /// Stable, never renumbered code (snake_case), for files, APIs and tests.
    pub fn code(&self) -> &'static str {
        match self {
            ValueError::Required => "required",
            ValueError::TooLong { .. } => "too_long",
            ValueError::ControlCharacter { .. } => "control_character",
            ValueError::Format { .. } => "format",
            ValueError::WrongType { .. } => "wrong_type",
            ValueError::MyNumberCheckDigit => "my_number_check_digit",
            ValueError::PayerNumberCheckDigit => "payer_number_check_digit",
            ValueError::RecipientNumberCheckDigit => "recipient_number_check_digit",
            ValueError::MunicipalityCodeCheckDigit => "municipality_code_check_digit",
            ValueError::NotKatakana { .. } => "not_katakana",
            ValueError::UnknownCode { .. } => "unknown_code",
            ValueError::InvalidDate => "invalid_date",
            ValueError::BeforeGregorian => "before_gregorian",
            ValueError::Negative => "negative",
            ValueError::TooMany { .. } => "too_many",
            ValueError::EndBeforeStart => "end_before_start",
            ValueError::UnknownField => "unknown_field",
            ValueError::Markup { .. } => "markup",
            ValueError::TooLarge { .. } => "too_large",
            ValueError::OutsideEra { .. } => "outside_era",
            ValueError::FormulaLike => "formula_like",
            ValueError::CapFreeWithValues => "cap_free_with_values",
            ValueError::CapEmpty => "cap_empty",
        }
    }

    /// Japanese message for caseworkers.
    pub fn message(&self) -> String {
        match self {
            ValueError::Required => "入力してください".to_owned(),
            ValueError::TooLong { chars_max } => format!("{chars_max}文字以内で入力してください"),
            ValueError::ControlCharacter { position } => {
                format!("{position}文字目に使えない文字（改行・タブ等）があります")
            }
            ValueError::Format { expected } => format!("形式が正しくありません（{expected}）"),
            ValueError::WrongType { expected } => format!("{expected}で指定してください"),
            ValueError::MyNumberCheckDigit => {
                "個人番号のチェックデジットが一致しません。番号を確認してください".to_owned()
            }
            ValueError::PayerNumberCheckDigit => "公費負担者番号のチェックデジットが一致しません".to_owned(),
            ValueError::RecipientNumberCheckDigit => "公費受給者番号のチェックデジットが一致しません".to_owned(),
            ValueError::MunicipalityCodeCheckDigit => "地方公共団体コードのチェックデジットが一致しません".to_owned(),
            ValueError::NotKatakana { position, half_width: true } => {
                format!("{position}文字目が半角カナです。全角カタカナで入力してください")
            }
            ValueError::NotKatakana { position, half_width: false } => {
                format!("{position}文字目がカタカナではありません。全角カタカナで入力してください")
            }
            ValueError::UnknownCode { allowed } => format!("次のいずれかを指定してください: {allowed}"),
            ValueError::InvalidDate => "存在しない日付です".to_owned(),
            ValueError::BeforeGregorian => "明治6年（1873年）1月1日より前の日付は扱えません".to_owned(),
            ValueError::Negative => "0以上の値を入力してください".to_owned(),
            ValueError::TooMany { entries_max } => format!("{entries_max}件以内で入力してください"),
            ValueError::EndBeforeStart => "終期が始期より前の日付です".to_owned(),
            ValueError::UnknownField => "この指示の種類では使えない項目です".to_owned(),
            ValueError::TooLarge { max } => format!("{max}以下の値を入力してください"),
            ValueError::OutsideEra { era } => format!("{era}の期間にない日付です"),
            ValueError::Markup { position } => {
                format!("{position}文字目に使えない記号（< または >）があります")
            }
            ValueError::FormulaLike => "先頭に = + - @ は使えません（表計算ソフトで数式として扱われるため）".to_owned(),
            ValueError::CapFreeWithValues => "種別が「負担なし」のときは負担率と金額を入力しないでください".to_owned(),
            ValueError::CapEmpty => "負担率か金額を1つ以上入力してください（定額は金額が必要です）".to_owned(),
        }
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ValueError {}
