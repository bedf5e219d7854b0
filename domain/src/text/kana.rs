//! 氏名カナ (kana name): full-width katakana, and the conversion of half-width kana from old
//! systems, which reports every change it made.

use std::fmt;

use crate::error::ValueError;

/// 氏名カナ: full-width katakana (ァ-ヺ, ヽ, ヾ), the long vowel mark ー, the middle dot ・ and
/// spaces (half- or full-width), as entered.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Kana(String);

fn is_kana_char(c: char) -> bool {
    matches!(c, '\u{30A1}'..='\u{30FA}' | '\u{30FB}' | '\u{30FC}' | '\u{30FD}' | '\u{30FE}' | ' ' | '\u{3000}')
}

impl Kana {
    /// Longest value, in characters.
    pub const CHARS_MAX: usize = 100;

    /// Trims spaces at both ends and accepts only full-width katakana, ー, ・ and spaces.
    ///
    /// Half-width kana is refused here (with its position): converting it is a visible step,
    /// [`half_width_kana_to_full_width`], whose report an import shows to the operator.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let text = raw.trim_matches(|c| c == ' ' || c == '\u{3000}');
        if text.is_empty() {
            return Err(ValueError::Required);
        }
        if let Some((i, c)) = text.chars().enumerate().find(|&(_, c)| !is_kana_char(c)) {
            let half_width = ('\u{FF61}'..='\u{FF9F}').contains(&c);
            return Err(ValueError::NotKatakana { position: i + 1, half_width });
        }
        if text.chars().count() > Self::CHARS_MAX {
            return Err(ValueError::TooLong { chars_max: Self::CHARS_MAX });
        }
        Ok(Self(text.to_owned()))
    }

    /// The kana as entered.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Kana {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Kana {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kana({:?})", self.0)
    }
}

/// One change made by [`half_width_kana_to_full_width`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KanaConversion {
    /// 1-based character position in the input where the converted text starts.
    pub position: usize,
    /// The half-width text that was replaced (one character, or a base with ﾞ or ﾟ).
    pub from: String,
    /// The full-width character that replaced it.
    pub to: char,
}

/// Full-width equivalents of U+FF61..=U+FF9F, in order.
const FULL: [char; 63] = [
    '。', '「', '」', '、', '・', 'ヲ', 'ァ', 'ィ', 'ゥ', 'ェ', 'ォ', 'ャ', 'ュ', 'ョ', 'ッ', 'ー', 'ア', 'イ', 'ウ',
    'エ', 'オ', 'カ', 'キ', 'ク', 'ケ', 'コ', 'サ', 'シ', 'ス', 'セ', 'ソ', 'タ', 'チ', 'ツ', 'テ', 'ト', 'ナ', 'ニ',
    'ヌ', 'ネ', 'ノ', 'ハ', 'ヒ', 'フ', 'ヘ', 'ホ', 'マ', 'ミ', 'ム', 'メ', 'モ', 'ヤ', 'ユ', 'ヨ', 'ラ', 'リ', 'ル',
    'レ', 'ロ', 'ワ', 'ン', '゛', '゜',
];

fn full_width(c: char) -> Option<char> {
    let offset = u32::from(c).checked_sub(0xFF61)?;
    FULL.get(usize::try_from(offset).ok()?).copied()
}

/// The voiced (ﾞ) form of a full-width katakana, if it has one.
fn voiced(c: char) -> Option<char> {
    match c {
        'カ' | 'キ' | 'ク' | 'ケ' | 'コ' | 'サ' | 'シ' | 'ス' | 'セ' | 'ソ' | 'タ' | 'チ' | 'ツ' | 'テ' | 'ト'
        | 'ハ' | 'ヒ' | 'フ' | 'ヘ' | 'ホ' => char::from_u32(u32::from(c) + 1),
        'ウ' => Some('ヴ'),
        'ワ' => Some('ヷ'),
        'ヲ' => Some('ヺ'),
        _ => None,
    }
}

/// The semi-voiced (ﾟ) form of a full-width katakana, if it has one.
fn semi_voiced(c: char) -> Option<char> {
    match c {
        'ハ' | 'ヒ' | 'フ' | 'ヘ' | 'ホ' => char::from_u32(u32::from(c) + 2),
        _ => None,
    }
}

/// Converts half-width katakana (U+FF61..=U+FF9F) to full width, joining a base with a following
/// ﾞ or ﾟ into one character (ｶﾞ becomes ガ), and reports every change. Other characters pass
/// through unchanged.
pub fn half_width_kana_to_full_width(input: &str) -> (String, Vec<KanaConversion>) {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len());
    let mut changes = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let Some(base) = full_width(c) else {
            out.push(c);
            i += 1;
            continue;
        };
        let mark = chars.get(i + 1).copied();
        let joined = match mark {
            Some('\u{FF9E}') => voiced(base),
            Some('\u{FF9F}') => semi_voiced(base),
            _ => None,
        };
        let (to, used) = match joined {
            Some(j) => (j, 2),
            None => (base, 1),
        };
        out.push(to);
        changes.push(KanaConversion { position: i + 1, from: chars[i..i + used].iter().collect(), to });
        i += used;
    }
    (out, changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kana_accepts_katakana_marks_and_spaces() {
        for ok in ["ヤマダ タロウ", "ヤマダ\u{3000}ハナコ", "ジョン・スミス", "ヴァージニア", "ヰヱヲ", "ヽヾ"]
        {
            assert_eq!(Kana::parse(ok).unwrap().as_str(), ok);
        }
        assert_eq!(Kana::parse(" サトウ ").unwrap().as_str(), "サトウ");
    }

    #[test]
    fn kana_refuses_other_scripts_by_position() {
        assert_eq!(Kana::parse("やまだ").unwrap_err(), ValueError::NotKatakana { position: 1, half_width: false });
        assert_eq!(Kana::parse("ヤマﾀﾞ").unwrap_err(), ValueError::NotKatakana { position: 3, half_width: true });
        assert_eq!(Kana::parse("山田").unwrap_err().code(), "not_katakana");
        assert_eq!(Kana::parse("ﾔﾏﾀﾞ").unwrap_err().message(), "1文字目が半角カナです。全角カタカナで入力してください");
        assert_eq!(Kana::parse("").unwrap_err(), ValueError::Required);
        assert_eq!(Kana::parse(&"ア".repeat(101)).unwrap_err().code(), "too_long");
    }

    #[test]
    fn half_width_conversion_joins_marks_and_reports() {
        let (text, changes) = half_width_kana_to_full_width("ﾔﾏﾀﾞ ﾊﾟﾝ");
        assert_eq!(text, "ヤマダ パン");
        assert_eq!(
            changes,
            vec![
                KanaConversion { position: 1, from: "ﾔ".into(), to: 'ヤ' },
                KanaConversion { position: 2, from: "ﾏ".into(), to: 'マ' },
                KanaConversion { position: 3, from: "ﾀﾞ".into(), to: 'ダ' },
                KanaConversion { position: 6, from: "ﾊﾟ".into(), to: 'パ' },
                KanaConversion { position: 8, from: "ﾝ".into(), to: 'ン' },
            ]
        );
        assert!(Kana::parse(&text).is_ok());
    }

    #[test]
    fn half_width_conversion_edge_cases() {
        assert_eq!(half_width_kana_to_full_width("ｳﾞｨｰ").0, "ヴィー");
        assert_eq!(half_width_kana_to_full_width("ﾜﾞｦﾞ").0, "ヷヺ");
        assert_eq!(half_width_kana_to_full_width("ｼﾞｮﾝ･ｽﾐｽ").0, "ジョン・スミス");
        // A mark that cannot join stays a separate, spacing mark, and is reported.
        let (text, changes) = half_width_kana_to_full_width("ｱﾞ");
        assert_eq!(text, "ア゛");
        assert_eq!(changes.len(), 2);
        // Nothing to convert: nothing reported.
        let (text, changes) = half_width_kana_to_full_width("ヤマダ");
        assert_eq!((text.as_str(), changes.len()), ("ヤマダ", 0));
    }

    #[test]
    fn full_width_table_covers_the_half_width_block() {
        for cp in 0xFF61..=0xFF9F {
            assert!(full_width(char::from_u32(cp).unwrap()).is_some(), "{cp:X}");
        }
        assert_eq!(full_width('ｱ'), Some('ア'));
        assert_eq!(full_width('ﾝ'), Some('ン'));
        assert_eq!(full_width('A'), None);
    }
}
