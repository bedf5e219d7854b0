//! Values of the register as stored: compressed with LZ4 (lz4_flex's block format, its safe
//! code), the uncompressed length in front. Records repeat the person's and the certificate's
//! items in every span, and compress to about a quarter (at 100k recipients: entries 164 MB to
//! 38 MB, snapshots 56 to 26 MB, fee histories 31 to 13 MB); fewer bytes is what makes redb's
//! writes, and so the rebuild, fast.

use crate::ProjectionError;

/// Largest value unpacked: a stored length above it is damage, not data.
pub(crate) const VALUE_MAX: usize = 64 << 20;

pub(crate) fn pack(raw: &[u8]) -> Vec<u8> {
    lz4_flex::block::compress_prepend_size(raw)
}

pub(crate) fn unpack(stored: &[u8]) -> Result<Vec<u8>, ProjectionError> {
    let corrupt = |e: lz4_flex::block::DecompressError| ProjectionError::Corrupt(format!("a stored value: {e}"));
    let (len, _) = lz4_flex::block::uncompressed_size(stored).map_err(corrupt)?;
    if len > VALUE_MAX {
        return Err(ProjectionError::Corrupt(format!("a stored value claims {len} bytes")));
    }
    lz4_flex::block::decompress_size_prepended(stored).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::{VALUE_MAX, pack, unpack};

    #[test]
    fn values_round_trip_and_damage_is_an_error_not_a_panic_or_a_huge_allocation() {
        for raw in [&b""[..], b"x", "桜 一郎、さくら市緑町7-8、桜 一郎、さくら市緑町7-8".as_bytes()]
        {
            assert_eq!(unpack(&pack(raw)).unwrap(), raw);
        }
        let mut packed = pack(&[7u8; 1000]);
        assert!(packed.len() < 100, "repeats compress");
        // A length claiming more than the limit.
        packed[..4].copy_from_slice(&(u32::try_from(VALUE_MAX).unwrap() + 1).to_le_bytes());
        assert!(unpack(&packed).is_err());
        // Truncated and garbled values.
        let good = pack("受給者の記録".repeat(20).as_bytes());
        assert!(unpack(&good[..good.len() / 2]).is_err());
        assert!(unpack(&[1, 0]).is_err());
    }
}
