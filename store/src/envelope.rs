//! 封筒 (envelope): one stored event with its metadata, its canonical bytes and its place in the
//! hash chain.
//!
//! Canonical bytes, version 1 (all integers big-endian; `str` is a u32 length then UTF-8 bytes;
//! `opt` is a u8 0 or 1 then the value when 1):
//!
//! ```text
//! u8   format = 1
//! u64  position
//! str  stream
//! u64  stream_version
//! opt  str stream_key
//! str  event_id
//! str  event_type
//! u16  schema_version
//! i64  recorded_at      microseconds since 1970-01-01T00:00:00Z
//! i32  effective        days since 1970-01-01
//! str  actor
//! opt  str approver
//! str  correlation_id
//! [32] request_digest
//! u32  payload length, then the payload bytes
//! ```
//!
//! `hash = SHA-256(prev_hash || canonical bytes)`; the first event's `prev_hash` is 32 zero
//! bytes. The stored record is `canonical || prev_hash || hash`.

use std::fmt;

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

/// Format byte of version-1 canonical bytes.
pub const FORMAT_V1: u8 = 1;

/// A place in the log: dense and gapless from 1. `Position(0)` is "before the first event".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position(pub u64);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A SHA-256 value in the hash chain.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Option<Hash> {
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
        }
        Some(Hash(out))
    }

    /// The first 8 hex digits: a short code for humans (printed on certificates and reports).
    pub fn short(&self) -> String {
        self.to_hex()[..8].to_owned()
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Names a stream: 1-128 of `A-Za-z0-9._-`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(String);

impl StreamId {
    /// Longest stream id.
    pub const BYTES_MAX: usize = 128;

    /// Parses a stream id.
    pub fn parse(raw: &str) -> Option<StreamId> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::BYTES_MAX
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        ok.then(|| StreamId(raw.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One stored event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Global position.
    pub position: Position,
    /// Stream.
    pub stream: StreamId,
    /// 1-based version within the stream.
    pub stream_version: u64,
    /// The unique key a keyed stream was created with; only on its version 1.
    pub stream_key: Option<String>,
    /// Idempotency key of this event.
    pub event_id: String,
    /// Event type, for the payload decoder.
    pub event_type: String,
    /// Schema version of the payload.
    pub schema_version: u16,
    /// When the ledger recorded it (transaction time), microseconds since the Unix epoch (UTC).
    pub recorded_at_us: i64,
    /// When it took effect in the world (valid time).
    pub effective: NaiveDate,
    /// Who recorded it.
    pub actor: String,
    /// Who approved it, when approval was needed.
    pub approver: Option<String>,
    /// The request (command) id that produced it.
    pub correlation_id: String,
    /// Content digest of that request, for request-level idempotency.
    pub request_digest: [u8; 32],
    /// Payload bytes, opaque to the store.
    pub payload: Vec<u8>,
    /// Hash of the previous event (zero for the first).
    pub prev_hash: Hash,
    /// `SHA-256(prev_hash || canonical bytes)`.
    pub hash: Hash,
}

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

/// A date as stored: days since 1970-01-01.
pub fn date_to_days(date: NaiveDate) -> i32 {
    i32::try_from((date - EPOCH).num_days()).unwrap_or(i32::MAX)
}

/// Days since 1970-01-01 back to a date.
pub fn days_to_date(days: i32) -> Option<NaiveDate> {
    EPOCH.checked_add_signed(chrono::TimeDelta::days(i64::from(days)))
}

struct Writer(Vec<u8>);

impl Writer {
    fn bytes(&mut self, b: &[u8]) {
        // Every field is bounded far below 4 GiB (payloads by the codec's limit).
        self.0.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_be_bytes());
        self.0.extend_from_slice(b);
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.bytes(s.as_bytes());
            }
        }
    }
}

/// Why stored bytes are not an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError(pub &'static str);

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self.at.checked_add(n).ok_or(RecordError("length overflow"))?;
        let slice = self.bytes.get(self.at..end).ok_or(RecordError("record truncated"))?;
        self.at = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, RecordError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn bytes(&mut self) -> Result<&'a [u8], RecordError> {
        let len = u32::from_be_bytes(self.array()?);
        self.take(usize::try_from(len).map_err(|_| RecordError("length overflow"))?)
    }

    fn string(&mut self) -> Result<String, RecordError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| RecordError("text is not UTF-8"))
    }

    fn opt(&mut self) -> Result<Option<String>, RecordError> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.string().map(Some),
            _ => Err(RecordError("bad option tag")),
        }
    }
}

impl Envelope {
    /// The canonical bytes (everything but the two hashes).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(160 + self.payload.len()));
        w.0.push(FORMAT_V1);
        w.0.extend_from_slice(&self.position.0.to_be_bytes());
        w.bytes(self.stream.as_str().as_bytes());
        w.0.extend_from_slice(&self.stream_version.to_be_bytes());
        w.opt(self.stream_key.as_deref());
        w.bytes(self.event_id.as_bytes());
        w.bytes(self.event_type.as_bytes());
        w.0.extend_from_slice(&self.schema_version.to_be_bytes());
        w.0.extend_from_slice(&self.recorded_at_us.to_be_bytes());
        w.0.extend_from_slice(&date_to_days(self.effective).to_be_bytes());
        w.bytes(self.actor.as_bytes());
        w.opt(self.approver.as_deref());
        w.bytes(self.correlation_id.as_bytes());
        w.0.extend_from_slice(&self.request_digest);
        w.bytes(&self.payload);
        w.0
    }

    /// `SHA-256(prev || canonical)`.
    pub fn chain_hash(prev: &Hash, canonical: &[u8]) -> Hash {
        let mut h = Sha256::new();
        h.update(prev.0);
        h.update(canonical);
        Hash(h.finalize().into())
    }

    /// Sets `prev_hash` and computes `hash`.
    pub fn seal(&mut self, prev: Hash) {
        self.prev_hash = prev;
        self.hash = Self::chain_hash(&prev, &self.canonical_bytes());
    }

    /// Whether `hash` is `SHA-256(prev_hash || canonical bytes)`.
    pub fn hash_is_valid(&self) -> bool {
        Self::chain_hash(&self.prev_hash, &self.canonical_bytes()) == self.hash
    }

    /// The stored record: canonical bytes, previous hash, hash.
    pub fn to_record(&self) -> Vec<u8> {
        let mut out = self.canonical_bytes();
        out.extend_from_slice(&self.prev_hash.0);
        out.extend_from_slice(&self.hash.0);
        out
    }

    /// Parses a stored record. Does not check the hash: see [`Envelope::hash_is_valid`].
    pub fn from_record(bytes: &[u8]) -> Result<Envelope, RecordError> {
        let mut r = Reader { bytes, at: 0 };
        if r.u8()? != FORMAT_V1 {
            return Err(RecordError("unknown record format"));
        }
        let position = Position(r.u64()?);
        let stream = StreamId::parse(&r.string()?).ok_or(RecordError("bad stream id"))?;
        let stream_version = r.u64()?;
        let stream_key = r.opt()?;
        let event_id = r.string()?;
        let event_type = r.string()?;
        let schema_version = r.u16()?;
        let recorded_at_us = r.i64()?;
        let effective = days_to_date(r.i32()?).ok_or(RecordError("effective date out of range"))?;
        let actor = r.string()?;
        let approver = r.opt()?;
        let correlation_id = r.string()?;
        let request_digest = r.array::<32>()?;
        let payload = r.bytes()?.to_vec();
        let prev_hash = Hash(r.array()?);
        let hash = Hash(r.array()?);
        if r.at != bytes.len() {
            return Err(RecordError("trailing bytes after record"));
        }
        Ok(Envelope {
            position,
            stream,
            stream_version,
            stream_key,
            event_id,
            event_type,
            schema_version,
            recorded_at_us,
            effective,
            actor,
            approver,
            correlation_id,
            request_digest,
            payload,
            prev_hash,
            hash,
        })
    }
}

#[cfg(test)]
pub(crate) fn sample(position: u64, prev: Hash) -> Envelope {
    let mut e = Envelope {
        position: Position(position),
        stream: StreamId::parse("recipient-1").unwrap_or_else(|| unreachable!()),
        stream_version: position,
        stream_key: (position == 1).then(|| "R0001".to_owned()),
        event_id: format!("cmd-{position}#0"),
        event_type: "certificate_granted".into(),
        schema_version: 1,
        recorded_at_us: 1_795_000_000_000_000 + i64::try_from(position).unwrap_or(0),
        effective: NaiveDate::from_ymd_opt(2026, 4, 1).unwrap_or_default(),
        actor: "kubo".into(),
        approver: (position == 2).then(|| "mori".to_owned()),
        correlation_id: format!("cmd-{position}"),
        request_digest: [7; 32],
        payload: vec![1, 2, 3, 0xE3, 0x81, 0x82],
        prev_hash: Hash::default(),
        hash: Hash::default(),
    };
    e.seal(prev);
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let first = sample(1, Hash::default());
        let second = sample(2, first.hash);
        for e in [&first, &second] {
            let back = Envelope::from_record(&e.to_record()).unwrap();
            assert_eq!(&back, e);
            assert!(back.hash_is_valid());
        }
        assert_eq!(second.prev_hash, first.hash);
    }

    #[test]
    fn any_changed_byte_breaks_the_hash_or_the_parse() {
        let e = sample(2, sample(1, Hash::default()).hash);
        let record = e.to_record();
        for i in 0..record.len() {
            let mut damaged = record.clone();
            damaged[i] ^= 0x10;
            match Envelope::from_record(&damaged) {
                Err(_) => {}
                Ok(back) => assert!(!back.hash_is_valid(), "byte {i} changed without breaking the hash"),
            }
        }
        assert!(Envelope::from_record(&record[..record.len() - 1]).is_err());
        let mut longer = record.clone();
        longer.push(0);
        assert!(Envelope::from_record(&longer).is_err());
    }

    #[test]
    fn canonical_bytes_follow_the_documented_layout() {
        let e = sample(1, Hash::default());
        let c = e.canonical_bytes();
        assert_eq!(c[0], FORMAT_V1);
        assert_eq!(&c[1..9], &1u64.to_be_bytes());
        assert_eq!(&c[9..13], &11u32.to_be_bytes());
        assert_eq!(&c[13..24], b"recipient-1");
        // The hash is exactly SHA-256(zero prev || canonical).
        let mut h = Sha256::new();
        h.update([0u8; 32]);
        h.update(&c);
        assert_eq!(e.hash.0, <[u8; 32]>::from(h.finalize()));
    }

    #[test]
    fn ids_and_hex() {
        assert!(StreamId::parse("recipient-12").is_some());
        assert!(StreamId::parse("").is_none());
        assert!(StreamId::parse("a b").is_none());
        assert!(StreamId::parse(&"a".repeat(129)).is_none());
        let h = sample(1, Hash::default()).hash;
        assert_eq!(Hash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(h.short().len(), 8);
        assert_eq!(Hash::from_hex("zz"), None);
    }
}
