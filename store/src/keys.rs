//! Key layout of the single sled tree `ledger`. One tree, so that every commit is one atomic
//! `apply_batch` (sled seals a batch so it is recovered whole or not at all).
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `L` | chunk (u64 BE) | the envelope records of positions `chunk * 16 + 1` on, at most 16, each `u32 BE length, record` |
//! | `P` | stream, 0x00, chunk (u64 BE) | the positions (u64 BE each) of the stream's versions `chunk * 32 + 1` on, at most 32 |
//! | `V` | stream | current version (u64 BE) |
//! | `E` | event id, only one not of the form `<request id>#<index in the request>` | position (u64 BE) |
//! | `R` | request id | digest (32), first, last, last stream version (u64 BE each), stream |
//! | `K` | category, 0x00, key | stream |
//! | `C` | category | last number allocated (u64 BE) |
//! | `M` | name | metadata: `format`, `head` (position, hash, recorded_at) |
//!
//! Format `daicho-store-3`. Format 1 had one `S` key (stream, version → position) per event and
//! an `E` key for every event: three sled keys per event, where sled's open time and resident
//! page table grow with the number of keys. Format 2 gave a stream's positions one value per 32
//! versions, and no index to the event ids the program makes (`<request id>#<i>`, unique because
//! request ids are): about 1.3 keys per event, one `L` key per event the most of them. Format 3
//! puts [`LOG_CHUNK`] consecutive records in one `L` value, the key layout otherwise the same: at
//! a million recipients (9.4M events) about 3.4 million keys instead of 12.2 million. A store of an earlier format is
//! copied into this layout when opened ([`crate::upgrade`]); in both earlier formats an `L` key
//! held one record under its position ([`single_log`]).

use crate::envelope::{Position, StreamId};

pub const LOG: u8 = b'L';
pub const STREAM_POSITIONS: u8 = b'P';
pub const STREAM_VERSION: u8 = b'V';
pub const EVENT_ID: u8 = b'E';
pub const REQUEST: u8 = b'R';
pub const STREAM_KEY: u8 = b'K';
pub const COUNTER: u8 = b'C';

/// Records per `L` value.
///
/// Each group commit rewrites the value its last record went into (a value is whole in sled, in
/// the redo log and in the memtable), so a commit of one event writes up to 16 records' bytes,
/// about 4 KiB; a bulk load's groups of 50 events write each value about once. 16 records cut
/// the log's keys sixteenfold, and sled's leaves (16 keys at most) stay about 64 KiB.
pub const LOG_CHUNK: u64 = 16;

/// The `L` key of chunk `chunk`.
pub fn log_chunk_key(chunk: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = LOG;
    k[1..].copy_from_slice(&chunk.to_be_bytes());
    k
}

/// The `L` key holding `position` (from 1), and the slot it has in the value.
pub fn log(position: Position) -> ([u8; 9], usize) {
    let index = position.0.saturating_sub(1);
    (log_chunk_key(index / LOG_CHUNK), (index % LOG_CHUNK) as usize)
}

/// The first position an `L` key's value holds, from its key.
pub fn log_chunk_first(key: &[u8]) -> Option<u64> {
    if key.len() != 9 || key[0] != LOG {
        return None;
    }
    Some(u64_value(&key[1..])?.checked_mul(LOG_CHUNK)? + 1)
}

/// The `L` key of `position` in formats 1 and 2 (one record per key), read by the upgrade.
pub fn single_log(position: Position) -> [u8; 9] {
    log_chunk_key(position.0)
}

/// Adds a record at the end of an `L` value.
pub fn push_record(chunk: &mut Vec<u8>, record: &[u8]) {
    // A record is at most a few tens of KiB (payloads at most 64 KiB: `limits`).
    chunk.extend_from_slice(&u32::try_from(record.len()).unwrap_or(u32::MAX).to_be_bytes());
    chunk.extend_from_slice(record);
}

/// The records of an `L` value in order; an `Err` (and nothing after it) where the value is
/// cut short.
pub fn chunk_records(chunk: &[u8]) -> impl Iterator<Item = Result<&[u8], ()>> + '_ {
    let mut rest = Some(chunk);
    std::iter::from_fn(move || {
        let bytes = rest.take()?;
        if bytes.is_empty() {
            return None;
        }
        let record = bytes
            .get(..4)
            .and_then(|l| l.try_into().ok())
            .map(|l: [u8; 4]| u32::from_be_bytes(l) as usize)
            .and_then(|len| Some((bytes.get(4..4 + len)?, len)));
        match record {
            Some((record, len)) => {
                rest = Some(&bytes[4 + len..]);
                Some(Ok(record))
            }
            None => Some(Err(())),
        }
    })
}

/// The record in `slot` of an `L` value (`None` past its end or where it is cut short).
pub fn chunk_record(chunk: &[u8], slot: usize) -> Option<&[u8]> {
    chunk_records(chunk).nth(slot)?.ok()
}

/// Versions per `P` value.
///
/// Small enough that appending to a long stream (the access log is one) rewrites at most 256
/// bytes: with 256 versions per value the access log's appends rewrote 2 KiB values, and sled
/// copies the whole leaf (up to 16 of them) on each write, which made page views under load 10
/// to 30 times slower. A recipient's stream (9 versions on average) still takes one value.
pub const CHUNK_VERSIONS: u64 = 32;

/// The `P` key holding the position of `version` (from 1), and the slot it has in the value.
pub fn stream_chunk(stream: &StreamId, version: u64) -> (Vec<u8>, usize) {
    let index = version.saturating_sub(1);
    let mut k = stream_chunks_prefix(stream);
    k.extend_from_slice(&(index / CHUNK_VERSIONS).to_be_bytes());
    (k, (index % CHUNK_VERSIONS) as usize)
}

pub fn stream_chunks_prefix(stream: &StreamId) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.as_str().len() + 10);
    k.push(STREAM_POSITIONS);
    k.extend_from_slice(stream.as_str().as_bytes());
    k.push(0);
    k
}

/// The position in slot `slot` of a `P` value.
pub fn chunk_position(chunk: &[u8], slot: usize) -> Option<u64> {
    u64_value(chunk.get(slot * 8..)?)
}

/// The positions of a `P` value, in version order.
pub fn chunk_positions(chunk: &[u8]) -> impl Iterator<Item = u64> + '_ {
    chunk.chunks_exact(8).filter_map(u64_value)
}

/// Whether an event id is the one the request's own id gives its `index`-th event
/// (`<request id>#<index>`): such ids are unique with the request id and have no `E` key.
pub fn is_derived_event_id(event_id: &str, request_id: &str, index: usize) -> bool {
    event_id
        .strip_prefix(request_id)
        .and_then(|rest| rest.strip_prefix('#'))
        .is_some_and(|n| canonical_index(n) == Some(index))
}

/// A decimal index as `usize::to_string` writes it (no sign, no leading zero).
fn canonical_index(n: &str) -> Option<usize> {
    let digits = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'));
    digits.then(|| n.parse().ok()).flatten()
}

/// The request id and index an event id would be derived from, if it has that form.
pub fn derived_parts(event_id: &str) -> Option<(&str, usize)> {
    let (request, n) = event_id.rsplit_once('#')?;
    Some((request, canonical_index(n)?))
}

pub fn with_prefix(prefix: u8, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 1);
    k.push(prefix);
    k.extend_from_slice(name);
    k
}

pub fn stream_key(category: &str, key: &str) -> Vec<u8> {
    let mut k = with_prefix(STREAM_KEY, category.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

pub fn u64_value(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

pub const META_FORMAT: &[u8] = b"Mformat";
pub const META_HEAD: &[u8] = b"Mhead";
pub const FORMAT_NAME: &[u8] = b"daicho-store-3";
/// The formats before (see the module's documentation), upgraded when opened.
pub const FORMAT_1_NAME: &[u8] = b"daicho-store-1";
pub const FORMAT_2_NAME: &[u8] = b"daicho-store-2";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_value_gives_its_records_in_order_and_stops_where_it_is_cut_short() {
        let mut value = Vec::new();
        for record in [&b"first"[..], b"", b"third record"] {
            push_record(&mut value, record);
        }
        let whole: Vec<_> = chunk_records(&value).collect();
        assert_eq!(whole, [Ok(&b"first"[..]), Ok(&b""[..]), Ok(&b"third record"[..])]);
        assert_eq!(chunk_record(&value, 2), Some(&b"third record"[..]));
        assert_eq!(chunk_record(&value, 3), None);
        // Cut inside the third record, then inside its length: an error, and nothing after it.
        for cut in [value.len() - 1, 4 + 5 + 4 + 2] {
            let records: Vec<_> = chunk_records(&value[..cut]).collect();
            assert_eq!(records, [Ok(&b"first"[..]), Ok(&b""[..]), Err(())]);
            assert_eq!(chunk_record(&value[..cut], 2), None);
        }
    }

    #[test]
    fn positions_map_to_sixteen_slots_per_value() {
        assert_eq!(log(Position(1)), (log_chunk_key(0), 0));
        assert_eq!(log(Position(16)), (log_chunk_key(0), 15));
        assert_eq!(log(Position(17)), (log_chunk_key(1), 0));
        assert_eq!(log_chunk_first(&log_chunk_key(1)), Some(17));
        // Formats 1 and 2 kept one record under each position.
        assert_eq!(single_log(Position(17)), log_chunk_key(17));
    }
}
