//! 検索キー (search keys): derived forms of names and kana for matching, never for storing.
//!
//! Names stay exactly as entered; only these keys are normalised, so a caseworker typing
//! half-width kana, hiragana, full-width digits or a compatibility ideograph still finds the
//! person. Variant kanji (髙 and 高) are different characters and stay different: folding them
//! needs an official variant table, which we do not have.

use unicode_normalization::UnicodeNormalization;

/// Name key: NFKC (U+FA10 塚 becomes U+585A, full-width letters become ASCII), spaces removed,
/// lower case.
pub fn name_key(text: &str) -> String {
    text.nfkc().filter(|c| !c.is_whitespace()).flat_map(char::to_lowercase).collect()
}

/// Kana key: NFKC (half-width kana becomes full-width), hiragana to katakana, small kana to
/// large (ァ to ア, ッ to ツ, ャ to ヤ, ヵ to カ, ...), spaces and the middle dot removed.
pub fn kana_key(text: &str) -> String {
    text.nfkc()
        .filter(|c| !c.is_whitespace() && *c != '・')
        .map(|c| {
            let c = match c {
                'ぁ'..='ゖ' => char::from_u32(u32::from(c) + 0x60).unwrap_or(c),
                _ => c,
            };
            match c {
                'ァ' => 'ア',
                'ィ' => 'イ',
                'ゥ' => 'ウ',
                'ェ' => 'エ',
                'ォ' => 'オ',
                'ッ' => 'ツ',
                'ャ' => 'ヤ',
                'ュ' => 'ユ',
                'ョ' => 'ヨ',
                'ヮ' => 'ワ',
                'ヵ' => 'カ',
                'ヶ' => 'ケ',
                other => other,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kana_keys_ignore_size_spaces_and_script() {
        assert_eq!(kana_key("キョウコ"), "キヨウコ");
        assert_eq!(kana_key("キヨウコ"), kana_key("キョウコ"));
        assert_eq!(kana_key("ﾔﾏﾀﾞ ﾀﾛｳ"), "ヤマダタロウ");
        assert_eq!(kana_key("やまだ　たろう"), "ヤマダタロウ");
        assert_eq!(kana_key("ジョン・スミス"), "ジヨンスミス");
        assert_eq!(kana_key("ハットリ"), kana_key("ハツトリ"));
        assert!(kana_key("ヤマダ タロウ").starts_with(&kana_key("やまだ")));
    }

    #[test]
    fn name_keys_fold_width_and_compatibility_forms_only() {
        assert_eq!(name_key("山田　太郎"), "山田太郎");
        assert_eq!(name_key("\u{FA10}本"), "\u{585A}本");
        assert_eq!(name_key("ＡＢＣ 商店"), "abc商店");
        // Variant kanji are different people's names as far as search knows.
        assert_ne!(name_key("髙橋"), name_key("高橋"));
    }
}
