//! 旧システムの文字コード (legacy encodings): CP932 (Windows Shift_JIS, as exported by older
//! municipal systems) decoded without ever letting a replacement character (U+FFFD) through.
//!
//! encoding_rs's `SHIFT_JIS` is the WHATWG Shift_JIS, which is Microsoft's CP932 with the NEC
//! and IBM extensions: FBFC is 髙 (U+9AD9), 8740 is ① (U+2460), 8160 is U+FF5E.

use encoding_rs::{DecoderResult, SHIFT_JIS};

/// Bytes that are not CP932: where the first bad sequence starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Undecodable {
    /// 0-based byte offset of the first byte of the bad sequence.
    pub byte_offset: usize,
}

/// Decodes CP932 `bytes`; any undecodable sequence is an error, never U+FFFD.
pub fn decode_cp932(bytes: &[u8]) -> Result<String, Undecodable> {
    let mut decoder = SHIFT_JIS.new_decoder_without_bom_handling();
    let capacity = decoder.max_utf8_buffer_length_without_replacement(bytes.len()).unwrap_or(bytes.len() * 3);
    let mut out = String::with_capacity(capacity);
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut out, true);
    match result {
        DecoderResult::InputEmpty => Ok(out),
        DecoderResult::Malformed(bad, good_after) => {
            let byte_offset = read.saturating_sub(usize::from(bad) + usize::from(good_after));
            Err(Undecodable { byte_offset })
        }
        // The buffer was sized for the worst case; report rather than loop if it ever is not.
        DecoderResult::OutputFull => Err(Undecodable { byte_offset: read }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::pmh_unrepresentable;

    #[test]
    fn vectors_from_numbers_md() {
        assert_eq!(decode_cp932(b"\xFB\xFC").unwrap(), "\u{9AD9}"); // 髙
        assert_eq!(decode_cp932(b"\x87\x40").unwrap(), "\u{2460}"); // ①
        assert_eq!(decode_cp932(b"\x81\x60").unwrap(), "\u{FF5E}"); // ～ as CP932 maps it
    }

    #[test]
    fn decoded_legacy_text_is_checked_for_pmh() {
        // 髙橋 from a legacy export: stored as decoded, and PMH would show 髙 as "●".
        let name = decode_cp932(b"\xFB\xFC\x8B\xB4").unwrap();
        assert_eq!(name, "髙橋");
        assert_eq!(pmh_unrepresentable(&name).len(), 1);
        // ① is in JIS X 0213 (1-13-1): no warning. U+FF5E is a PMH exception.
        assert!(pmh_unrepresentable(&decode_cp932(b"\x87\x40").unwrap()).is_empty());
        assert_eq!(pmh_unrepresentable(&decode_cp932(b"1\x81\x603").unwrap()).len(), 1);
    }

    #[test]
    fn undecodable_bytes_are_an_error_with_their_offset() {
        // 0x81 followed by a byte that cannot be a trail byte.
        assert_eq!(decode_cp932(b"ab\x81\x20cd").unwrap_err(), Undecodable { byte_offset: 2 });
        // A lead byte at the very end.
        assert_eq!(decode_cp932(b"\x8B\xB4\x81").unwrap_err(), Undecodable { byte_offset: 2 });
        // 0xA0 is not CP932 at all.
        assert_eq!(decode_cp932(b"\xA0").unwrap_err(), Undecodable { byte_offset: 0 });
        // Half-width katakana is valid CP932 (single bytes A1-DF).
        assert_eq!(decode_cp932(b"\xB1\xB2").unwrap(), "ｱｲ");
        assert!(!decode_cp932(b"plain ascii").unwrap().contains('\u{FFFD}'));
    }
}
