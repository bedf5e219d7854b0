//! Key layout of the single sled tree `ledger`. One tree, so that every commit is one atomic
//! `apply_batch` (sled seals a batch so it is recovered whole or not at all).
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `L` | position (u64 BE) | the envelope record |
//! | `P` | stream, 0x00, chunk (u64 BE) | the positions (u64 BE each) of the stream's versions `chunk * 32 + 1` on, at most 32 |
//! | `V` | stream | current version (u64 BE) |
//! | `E` | event id, only one not of the form `<request id>#<index in the request>` | position (u64 BE) |
//! | `R` | request id | digest (32), first, last, last stream version (u64 BE each), stream |
//! | `K` | category, 0x00, key | stream |
//! | `C` | category | last number allocated (u64 BE) |
//! | `M` | name | metadata: `format`, `head` (position, hash, recorded_at) |
//!
//! Format `daicho-store-2`. Format 1 had one `S` key (stream, version → position) per event and
//! an `E` key for every event: three sled keys per event, where sled's open time and resident
//! page table grow with the number of keys. Here a stream's positions share one value per 32
//! versions, and the event ids the program makes (`<request id>#<i>`) are unique because request
//! ids are, so they need no index: about 1.3 keys per event. A format-1 store is copied into
//! this layout when opened ([`crate::upgrade`]).

use crate::envelope::{Position, StreamId};

pub const LOG: u8 = b'L';
pub const STREAM_POSITIONS: u8 = b'P';
pub const STREAM_VERSION: u8 = b'V';
pub const EVENT_ID: u8 = b'E';
pub const REQUEST: u8 = b'R';
pub const STREAM_KEY: u8 = b'K';
pub const COUNTER: u8 = b'C';

pub fn log(position: Position) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = LOG;
    k[1..].copy_from_slice(&position.0.to_be_bytes());
    k
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
pub const FORMAT_NAME: &[u8] = b"daicho-store-2";
/// The format before (see the module's documentation), upgraded when opened.
pub const FORMAT_1_NAME: &[u8] = b"daicho-store-1";
