//! Which characters PMH shows as "●": those outside JIS X 0213:2004 (JIS levels 1-4).
//!
//! The repertoire is data generated from CPython's `euc_jis_2004` codec by
//! `domain/data/gen_jisx0213.py` (11,208 single characters and 25 base + combining-mark pairs:
//! 11,233 in all, 10,050 of them kanji). ASCII is accepted too: it is the G0 set of every
//! JIS X 0213 encoding.
//!
//! One deliberate exception: JIS X 0213 maps 1-2-18 to U+FF5E FULLWIDTH TILDE, yet our domain
//! notes (NUMBERS.md, PMH.md) say PMH shows U+FF5E as "●" (it is what CP932 systems produce for
//! 〜, whereas JIS maps 〜 1-1-33 to U+301C WAVE DASH). Until PMH's own character table settles
//! it, we warn: a needless warning costs a caseworker a glance, a missed one shows "●" to a
//! clinic. The exception is [`PMH_EXCEPTIONS`], data beside the table, not a special case in code.

use super::jisx0213_table::{PAIR, SINGLE};

/// Characters inside JIS X 0213:2004 that we nevertheless expect PMH to show as "●".
pub const PMH_EXCEPTIONS: &[char] = &['\u{FF5E}'];

/// The characters CP932 (Windows) systems produce where JIS X 0213 has another code point for
/// the same glyph: (CP932's, JIS X 0213's). Text typed or imported through CP932 carries the
/// first. Where PMH would show it as "●" (U+FF5E by [`PMH_EXCEPTIONS`]; U+FFE0 to U+FFE2,
/// outside JIS X 0213), the second is offered as a correction a person confirms, never applied
/// silently. U+FF0D and U+2225 are in JIS X 0213 themselves (1-2-17, 1-2-52), so they reach
/// clinics as they are and no correction is offered.
pub const WINDOWS_LOOKALIKES: [(char, char); 6] = [
    ('\u{FF5E}', '\u{301C}'), // ～ FULLWIDTH TILDE (0x8160) -> 〜 WAVE DASH
    ('\u{FF0D}', '\u{2212}'), // － FULLWIDTH HYPHEN-MINUS (0x817C) -> − MINUS SIGN
    ('\u{FFE0}', '\u{00A2}'), // ￠ FULLWIDTH CENT SIGN (0x8191) -> ¢
    ('\u{FFE1}', '\u{00A3}'), // ￡ FULLWIDTH POUND SIGN (0x8192) -> £
    ('\u{FFE2}', '\u{00AC}'), // ￢ FULLWIDTH NOT SIGN (0x81CA) -> ¬
    ('\u{2225}', '\u{2016}'), // ∥ PARALLEL TO (0x8161) -> ‖ DOUBLE VERTICAL LINE
];

/// The JIS X 0213 character for a CP932 look-alike, if `c` is one.
pub fn jis_lookalike(c: char) -> Option<char> {
    WINDOWS_LOOKALIKES.iter().find(|(w, _)| *w == c).map(|(_, j)| *j)
}

/// The correction of `c`: its JIS X 0213 character, when `c` is a CP932 look-alike PMH would
/// show as "●".
fn correction(c: char) -> Option<char> {
    jis_lookalike(c).filter(|_| !pmh_unrepresentable(&c.to_string()).is_empty())
}

/// `text` with every CP932 look-alike PMH would show as "●" replaced by its JIS X 0213
/// character, when it has any.
pub fn with_jis_lookalikes(text: &str) -> Option<String> {
    text.chars().any(|c| correction(c).is_some()).then(|| text.chars().map(|c| correction(c).unwrap_or(c)).collect())
}

/// Why a character would not reach clinics intact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnrepresentableReason {
    /// Outside JIS X 0213:2004 (髙 U+9AD9, 𠮷 U+20BB7, half-width kana, emoji, ...).
    OutsideJisX0213,
    /// In [`PMH_EXCEPTIONS`].
    PmhException,
}

/// A character of a string that PMH would show as "●".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unrepresentable {
    /// 1-based character position.
    pub position: usize,
    /// The character.
    pub ch: char,
    /// Why.
    pub reason: UnrepresentableReason,
}

/// Membership of the Basic Multilingual Plane's code points, one bit each (8 KiB), built once
/// from the table: every character of every exported record is looked up (a full export at 1M
/// checks about a billion), and a bit is quicker than a search of 11,208 entries.
fn bmp() -> &'static [u64; 1024] {
    static BITS: std::sync::OnceLock<Box<[u64; 1024]>> = std::sync::OnceLock::new();
    BITS.get_or_init(|| {
        let mut bits = Box::new([0u64; 1024]);
        for cp in (0x20..=0x7E).chain(SINGLE.iter().copied().filter(|cp| *cp < 0x1_0000)) {
            if let Some(word) = bits.get_mut((cp >> 6) as usize) {
                *word |= 1 << (cp & 63);
            }
        }
        bits
    })
}

fn in_single(c: char) -> bool {
    let cp = u32::from(c);
    if cp < 0x1_0000 {
        bmp().get((cp >> 6) as usize).is_some_and(|word| word >> (cp & 63) & 1 == 1)
    } else {
        SINGLE.binary_search(&cp).is_ok()
    }
}

/// The combining marks of the pairs, sorted: a character that is none of them ends no pair.
fn marks() -> &'static [u32] {
    static MARKS: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    MARKS.get_or_init(|| {
        let mut m: Vec<u32> = PAIR.iter().map(|(_, mark)| *mark).collect();
        m.sort_unstable();
        m.dedup();
        m
    })
}

fn is_pair(base: char, mark: char) -> bool {
    let mark = u32::from(mark);
    marks().binary_search(&mark).is_ok() && PAIR.binary_search(&(u32::from(base), mark)).is_ok()
}

/// Lists the characters of `text` that PMH would show as "●", in order.
///
/// A base character followed by a combining mark is accepted when JIS X 0213 has the pair as
/// one character (か + U+309A, for example), even if the mark alone is not in JIS X 0213.
pub fn pmh_unrepresentable(text: &str) -> Vec<Unrepresentable> {
    let mut chars = text.chars().peekable();
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(c) = chars.next() {
        if let Some(&next) = chars.peek()
            && is_pair(c, next)
        {
            chars.next();
            i += 2;
            continue;
        }
        let reason = if PMH_EXCEPTIONS.contains(&c) {
            Some(UnrepresentableReason::PmhException)
        } else if !in_single(c) {
            Some(UnrepresentableReason::OutsideJisX0213)
        } else {
            None
        };
        if let Some(reason) = reason {
            found.push(Unrepresentable { position: i + 1, ch: c, reason });
        }
        i += 1;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use japanese_codepoints::JisX0213Kanji;

    fn chars_of(text: &str) -> Vec<char> {
        pmh_unrepresentable(text).into_iter().map(|u| u.ch).collect()
    }

    #[test]
    fn the_bitmap_agrees_with_the_table_at_every_code_point() {
        let mut members = 0;
        for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
            let cp = u32::from(c);
            let table = (0x20..=0x7E).contains(&cp) || SINGLE.binary_search(&cp).is_ok();
            assert_eq!(in_single(c), table, "U+{cp:04X}");
            members += usize::from(table);
            for (base, mark) in PAIR.iter().filter(|(b, _)| *b == cp) {
                assert!(is_pair(c, char::from_u32(*mark).unwrap()), "pair U+{base:04X} U+{mark:04X}");
            }
        }
        assert_eq!(members, SINGLE.len() + (0x20..=0x7E).filter(|cp| SINGLE.binary_search(cp).is_err()).count());
    }

    #[test]
    fn every_windows_lookalike_is_warned_and_its_jis_character_is_not() {
        let cp932: [[u8; 2]; 6] = [[0x81, 0x60], [0x81, 0x7C], [0x81, 0x91], [0x81, 0x92], [0x81, 0xCA], [0x81, 0x61]];
        for ((windows, jis), bytes) in WINDOWS_LOOKALIKES.into_iter().zip(cp932) {
            // U+FF0D and U+2225 are JIS X 0213 characters too: they reach PMH, nothing to offer.
            let in_jis = matches!(windows, '\u{FF0D}' | '\u{2225}');
            let warned = if in_jis { vec![] } else { vec![windows] };
            assert_eq!(chars_of(&windows.to_string()), warned, "U+{:04X}", u32::from(windows));
            assert_eq!(with_jis_lookalikes(&windows.to_string()).is_some(), !in_jis, "U+{:04X}", u32::from(windows));
            assert!(chars_of(&jis.to_string()).is_empty(), "U+{:04X} reaches PMH", u32::from(jis));
            // CP932 really produces the first: decoded from its bytes.
            assert_eq!(crate::text::decode_cp932(&bytes).unwrap(), windows.to_string());
        }
        assert_eq!(with_jis_lookalikes("1～3丁目"), Some("1〜3丁目".to_owned()));
        assert_eq!(with_jis_lookalikes("1〜3丁目"), None, "nothing to correct");
    }

    #[test]
    fn traps_from_the_domain_notes() {
        assert_eq!(chars_of("髙橋"), vec!['髙']);
        assert_eq!(chars_of("𠮷田"), vec!['𠮷']);
        assert_eq!(chars_of("1〜3丁目"), Vec::<char>::new(), "U+301C WAVE DASH is inside");
        let tilde = pmh_unrepresentable("1～3丁目");
        assert_eq!(tilde.len(), 1);
        assert_eq!((tilde[0].position, tilde[0].ch), (2, '\u{FF5E}'));
        assert_eq!(tilde[0].reason, UnrepresentableReason::PmhException);
        assert_eq!(chars_of("高橋 塚\u{FA10}"), Vec::<char>::new(), "both 塚 forms are inside");
    }

    #[test]
    fn positions_and_reasons() {
        let found = pmh_unrepresentable("山田 髙子😀");
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].position, found[0].ch), (4, '髙'));
        assert_eq!((found[1].position, found[1].ch), (6, '😀'));
        assert!(found.iter().all(|u| u.reason == UnrepresentableReason::OutsideJisX0213));
    }

    #[test]
    fn kana_symbols_ascii_and_non_kanji_additions() {
        // JIS X 0208 non-kanji, ASCII, and non-kanji that only JIS X 0213 has (①, ㋐, ゟ, ㇰ).
        assert!(chars_of("ヤマダ・タロー　東京都千代田区1-2-3 ABC ① ㋐ ゟ ㇰ ♪").is_empty());
        // Half-width kana is JIS X 0201, not JIS X 0213: clinics would see "●".
        assert_eq!(chars_of("ﾔﾏﾀﾞ").len(), 4);
    }

    #[test]
    fn combining_pairs() {
        // か + U+309A (か゚) is one JIS X 0213 character; the mark alone is not.
        assert!(chars_of("か\u{309A}").is_empty());
        assert_eq!(chars_of("あ\u{309A}"), vec!['\u{309A}']);
    }

    #[test]
    fn table_has_the_reference_size() {
        assert_eq!(SINGLE.len() + PAIR.len(), 11_233);
        assert!(SINGLE.windows(2).all(|w| w[0] < w[1]), "sorted for binary search");
        assert!(PAIR.windows(2).all(|w| w[0] < w[1]), "sorted for binary search");
    }

    #[test]
    fn kanji_agree_with_an_independent_source() {
        // japanese-codepoints carries the 10,050 kanji of JIS levels 1-4 from a different source.
        let mut kanji = JisX0213Kanji::cached().codepoints_vec();
        kanji.sort_unstable();
        assert_eq!(kanji.len(), 10_050);
        for cp in &kanji {
            assert!(SINGLE.binary_search(cp).is_ok(), "U+{cp:X} missing from our table");
        }
        // Everything else in our table that is a CJK ideograph is 仝 (U+4EDD), which JIS files
        // among the symbols of row 1.
        let is_ideograph =
            |cp: u32| (0x3400..=0x9FFF).contains(&cp) || (0xF900..=0xFAFF).contains(&cp) || cp >= 0x20000;
        let extra: Vec<u32> =
            SINGLE.iter().copied().filter(|&cp| is_ideograph(cp) && kanji.binary_search(&cp).is_err()).collect();
        assert_eq!(extra, vec![0x4EDD]);
    }
}
