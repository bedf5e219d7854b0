//! Key layout of the single sled tree `ledger`. One tree, so that every commit is one atomic
//! `apply_batch` (sled seals a batch so it is recovered whole or not at all).
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `L` | position (u64 BE) | the envelope record |
//! | `S` | stream, 0x00, version (u64 BE) | position (u64 BE) |
//! | `V` | stream | current version (u64 BE) |
//! | `E` | event id | position (u64 BE) |
//! | `R` | request id | digest (32), first, last, last stream version (u64 BE each), stream |
//! | `K` | category, 0x00, key | stream |
//! | `C` | category | last number allocated (u64 BE) |
//! | `M` | name | metadata: `format`, `head` (position, hash, recorded_at) |

use crate::envelope::{Position, StreamId};

pub const LOG: u8 = b'L';
pub const STREAM_EVENT: u8 = b'S';
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

pub fn stream_event(stream: &StreamId, version: u64) -> Vec<u8> {
    let mut k = stream_events_prefix(stream);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

pub fn stream_events_prefix(stream: &StreamId) -> Vec<u8> {
    let mut k = Vec::with_capacity(stream.as_str().len() + 10);
    k.push(STREAM_EVENT);
    k.extend_from_slice(stream.as_str().as_bytes());
    k.push(0);
    k
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
pub const FORMAT_NAME: &[u8] = b"daicho-store-1";
