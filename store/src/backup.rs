//! 退避と復元 (backup and restore): logs written out as their stored records, independent of
//! sled's files, and read back into new stores.
//!
//! A backup file, format `daicho-backup-1` (integers big-endian):
//!
//! ```text
//! "daicho-backup-1\n"
//! per log:  'P', u32 name length, name, u64 events, [32] head hash,
//!           then per event: u32 record length, record (canonical bytes || prev hash || hash)
//! 'Z', [32] SHA-256 of every byte before this 'Z'
//! anything after: a JSON manifest for people (not read back)
//! ```
//!
//! A log is written from position 1 to the head it had when the backup began: positions never
//! change once written, so a backup taken while appends go on is a consistent prefix. Restoring
//! checks every record's place in the chain as it writes it, rebuilds every index from the
//! records (stream versions, event ids, requests, keys, counters), and checks the file's
//! SHA-256 before it reports success.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::envelope::{Envelope, Hash, Position, StreamId};
use crate::error::StoreError;
use crate::request::{AppendOutcome, RequestRecord};
use crate::writer::{head_bytes, sync_dir};
use crate::{Head, Store, keys, open_db, sled_dir};

/// First line of a backup file.
pub const BACKUP_MAGIC: &[u8] = b"daicho-backup-1\n";

/// Records whose writes go to the inserter together while restoring. sled's memory grows with
/// the dirty data it holds until a flush: restoring 934k events (100k recipients) held 12 GB
/// with batches of 10,000 events and no flush, 2.7 GB with batches of 500 and a flush after
/// each, 0.75 GB with batches of 50 and a flush every 1,000 (and took 25 s instead of 42 s); the
/// final writes of 1M streams without a flush held 5.5 GB.
const RESTORE_BATCH_EVENTS: u64 = 50;

/// One log in a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupPart {
    /// Its name (`ledger`, `access`).
    pub name: String,
    /// Events (positions 1 to `head.position`).
    pub events: u64,
    /// The head it was written up to.
    pub head: Hash,
}

/// What a backup file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    /// The logs, in file order.
    pub parts: Vec<BackupPart>,
    /// SHA-256 of the file up to the trailer.
    pub sha256: Hash,
}

fn damaged(reason: impl Into<String>) -> StoreError {
    StoreError::Damaged { position: None, reason: reason.into() }
}

/// A writer that hashes what passes through.
struct Hashing<'a> {
    out: &'a mut dyn Write,
    hasher: Sha256,
}

impl Hashing<'_> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.out.write_all(bytes)
    }
}

/// Writes `logs` (name, store) to `out`, each from position 1 to its head at the start of its
/// part, then the trailer. The caller may append a manifest after it.
pub fn write_backup(logs: &[(&str, &Store)], out: &mut dyn Write) -> Result<BackupSummary, StoreError> {
    let mut w = Hashing { out, hasher: Sha256::new() };
    w.put(BACKUP_MAGIC)?;
    let mut parts = Vec::new();
    for (name, store) in logs {
        let head = store.head();
        w.put(b"P")?;
        w.put(&u32::try_from(name.len()).map_err(|_| damaged("log name too long"))?.to_be_bytes())?;
        w.put(name.as_bytes())?;
        w.put(&head.position.0.to_be_bytes())?;
        w.put(&head.hash.0)?;
        let mut last = Hash::default();
        for (i, envelope) in
            store.replay(Position(1)).take(usize::try_from(head.position.0).unwrap_or(usize::MAX)).enumerate()
        {
            let envelope = envelope?;
            if envelope.position.0 != i as u64 + 1 {
                return Err(StoreError::Damaged {
                    position: Some(Position(i as u64 + 1)),
                    reason: "a position is missing from the log".into(),
                });
            }
            let record = envelope.to_record();
            w.put(&u32::try_from(record.len()).map_err(|_| damaged("record too long"))?.to_be_bytes())?;
            w.put(&record)?;
            last = envelope.hash;
        }
        if last != head.hash {
            return Err(damaged(format!("the {name} log ends before its head")));
        }
        parts.push(BackupPart { name: (*name).to_owned(), events: head.position.0, head: head.hash });
    }
    let sha256 = Hash(w.hasher.finalize_reset().into());
    w.out.write_all(b"Z")?;
    w.out.write_all(&sha256.0)?;
    Ok(BackupSummary { parts, sha256 })
}

/// A reader that hashes what it reads.
struct Hashed<'a> {
    input: &'a mut dyn Read,
    hasher: Sha256,
}

impl Hashed<'_> {
    fn exact<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut buf = [0u8; N];
        self.input.read_exact(&mut buf).map_err(|_| damaged("the backup file ends early"))?;
        self.hasher.update(buf);
        Ok(buf)
    }

    fn vec(&mut self, len: usize) -> Result<Vec<u8>, StoreError> {
        let mut buf = vec![0u8; len];
        self.input.read_exact(&mut buf).map_err(|_| damaged("the backup file ends early"))?;
        self.hasher.update(&buf);
        Ok(buf)
    }
}

/// Longest record accepted from a backup (payloads are at most 64 KiB).
const RECORD_BYTES_MAX: u32 = 1 << 20;

/// Restores every log of the backup read from `input` into the store directory `dir_of(name)`
/// gives (each must not exist). Stops at the first problem; the caller removes what was made.
pub fn restore_backup(
    input: &mut dyn Read,
    dir_of: &dyn Fn(&str) -> Option<std::path::PathBuf>,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<BackupSummary, StoreError> {
    let mut r = Hashed { input, hasher: Sha256::new() };
    let magic: [u8; 16] = r.exact()?;
    if magic != BACKUP_MAGIC {
        return Err(damaged("not a daicho backup (format daicho-backup-1)"));
    }
    let mut parts = Vec::new();
    loop {
        let mut tag = [0u8; 1];
        r.input.read_exact(&mut tag).map_err(|_| damaged("the backup file ends early"))?;
        match tag[0] {
            b'Z' => {
                let expected = r.hasher.clone().finalize();
                let mut stated = [0u8; 32];
                r.input.read_exact(&mut stated).map_err(|_| damaged("the backup file ends early"))?;
                if stated[..] != expected[..] {
                    return Err(damaged("the backup file's SHA-256 does not match its content"));
                }
                return Ok(BackupSummary { parts, sha256: Hash(stated) });
            }
            b'P' => {
                r.hasher.update(tag);
                let len = u32::from_be_bytes(r.exact()?);
                if len > 64 {
                    return Err(damaged("bad log name"));
                }
                let name = String::from_utf8(r.vec(len as usize)?).map_err(|_| damaged("bad log name"))?;
                let events = u64::from_be_bytes(r.exact()?);
                let head = Hash(r.exact()?);
                let dir = dir_of(&name).ok_or_else(|| damaged(format!("unknown log {name} in the backup")))?;
                let mut reader = || -> Result<Envelope, StoreError> {
                    let len = u32::from_be_bytes(r.exact()?);
                    if len > RECORD_BYTES_MAX {
                        return Err(damaged("a record is too long"));
                    }
                    Envelope::from_record(&r.vec(len as usize)?)
                        .map_err(|e| damaged(format!("unreadable record: {}", e.0)))
                };
                let restored = restore_log(&dir, events, &mut reader, &mut |n| progress(&name, n, events))?;
                if restored.hash != head {
                    return Err(damaged(format!("the {name} log does not end at the head the backup names")));
                }
                parts.push(BackupPart { name, events, head });
            }
            _ => return Err(damaged("unknown section in the backup file")),
        }
    }
}

/// Writes `events` envelopes from `next` into a new store in `dir`, checking the chain and
/// building every index; returns the head. Used by restore and by the format upgrade.
///
/// Each stream's open `P` value is kept in memory until it holds [`keys::CHUNK_VERSIONS`]
/// positions, and the rest are written at the end in key order with the stream versions: one
/// write per value instead of one per event.
pub(crate) fn restore_log(
    dir: &Path,
    events: u64,
    next: &mut dyn FnMut() -> Result<Envelope, StoreError>,
    progress: &mut dyn FnMut(u64),
) -> Result<Head, StoreError> {
    Store::create(dir)?.close();
    let (db, tree) = open_db(dir)?;
    // This thread reads and checks the records and builds the writes; a second one gives them
    // to sled, whose inserts are most of a restore's work.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<(Vec<u8>, Vec<u8>)>>(RESTORE_QUEUE);
    let head = std::thread::scope(|s| {
        let inserter = s.spawn(|| insert_all(&db, &tree, rx));
        let built = build_writes(events, next, progress, &mut Writes { tx, pending: Vec::new() });
        // A failed insert ends the channel: its error says more than the send's.
        let inserted =
            inserter.join().unwrap_or_else(|_| Err(StoreError::Io("the restore's inserter panicked".into())));
        inserted.and(built)
    })?;
    db.flush()?;
    // Every file sled wrote, `blobs/` too: the upgrade removes the only other copy next.
    crate::redo::sync_sled_files(&sled_dir(dir), &mut HashMap::new())?;
    sync_dir(&sled_dir(dir))?;
    Ok(head)
}

/// Batches of writes waiting for the inserter.
const RESTORE_QUEUE: usize = 16;

/// Writes between two flushes of sled while restoring (see [`RESTORE_BATCH_EVENTS`]): about
/// 1,000 events' worth.
const RESTORE_FLUSH_WRITES: usize = 3_000;

/// The writes of a restore, sent to the inserter in batches of [`RESTORE_BATCH_EVENTS`].
struct Writes {
    tx: std::sync::mpsc::SyncSender<Vec<(Vec<u8>, Vec<u8>)>>,
    pending: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Writes {
    fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.pending.push((key.as_ref().to_vec(), value.as_ref().to_vec()));
    }

    fn send(&mut self) -> Result<(), StoreError> {
        let writes = std::mem::take(&mut self.pending);
        self.tx.send(writes).map_err(|_| StoreError::Io("the restore's inserter stopped".into()))
    }
}

/// Inserts the batches in order, flushing sled now and then: it holds every dirty page until
/// flushed.
fn insert_all(
    db: &sled::Db,
    tree: &sled::Tree,
    rx: std::sync::mpsc::Receiver<Vec<(Vec<u8>, Vec<u8>)>>,
) -> Result<(), StoreError> {
    let mut since_flush = 0;
    for writes in rx {
        since_flush += writes.len();
        // Plain inserts: a restore needs no batch's atomicity (a failed one is removed whole),
        // and sled's batches cost more per key.
        for (k, v) in writes {
            tree.insert(k, v)?;
        }
        if since_flush >= RESTORE_FLUSH_WRITES {
            db.flush()?;
            since_flush = 0;
        }
    }
    Ok(())
}

/// Reads `events` records from `next`, checks them and sends their writes; the head record
/// is the last write.
fn build_writes(
    events: u64,
    next: &mut dyn FnMut() -> Result<Envelope, StoreError>,
    progress: &mut dyn FnMut(u64),
    batch: &mut Writes,
) -> Result<Head, StoreError> {
    let mut head = Head::default();
    let mut open_request: Option<(String, RequestRecord)> = None;
    let mut counters: HashMap<String, u64> = HashMap::new();
    let mut chunks: HashMap<StreamId, Vec<u8>> = HashMap::new();
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    // The `L` value being filled, written once it holds [`keys::LOG_CHUNK`] records.
    let mut log_chunk = Vec::new();
    for n in 1..=events {
        let e = next()?;
        let at = Some(Position(n));
        if e.position.0 != n {
            return Err(StoreError::Damaged { position: at, reason: "positions are not dense".into() });
        }
        if e.prev_hash != head.hash || !e.hash_is_valid() {
            return Err(StoreError::Damaged { position: at, reason: "the hash chain is broken here".into() });
        }
        let version = versions.entry(e.stream.clone()).or_insert(0);
        *version += 1;
        if e.stream_version != *version {
            return Err(StoreError::Damaged { position: at, reason: "stream versions are not dense".into() });
        }
        keys::push_record(&mut log_chunk, &e.to_record());
        if e.position.0.is_multiple_of(keys::LOG_CHUNK) {
            batch.insert(keys::log(e.position).0, std::mem::take(&mut log_chunk));
        }
        let chunk = chunks.entry(e.stream.clone()).or_default();
        chunk.extend_from_slice(&e.position.0.to_be_bytes());
        if e.stream_version.is_multiple_of(keys::CHUNK_VERSIONS) {
            batch.insert(keys::stream_chunk(&e.stream, e.stream_version).0, std::mem::take(chunk));
        }
        if let Some(key) = &e.stream_key {
            let (category, number) = e
                .stream
                .as_str()
                .rsplit_once('-')
                .and_then(|(c, n)| Some((c, n.parse::<u64>().ok()?)))
                .ok_or(StoreError::Damaged { position: at, reason: "a keyed stream without a number".into() })?;
            batch.insert(keys::stream_key(category, key), e.stream.as_str().as_bytes());
            let last = counters.entry(category.to_owned()).or_default();
            *last = (*last).max(number);
        }
        match &mut open_request {
            Some((id, record)) if *id == e.correlation_id => {
                record.outcome.last = e.position;
                record.outcome.stream_version = e.stream_version;
            }
            _ => {
                if let Some((id, record)) = open_request.take() {
                    batch.insert(keys::with_prefix(keys::REQUEST, id.as_bytes()), record.to_bytes());
                }
                let outcome = AppendOutcome {
                    stream: e.stream.clone(),
                    first: e.position,
                    last: e.position,
                    stream_version: e.stream_version,
                    already_applied: false,
                };
                open_request = Some((e.correlation_id.clone(), RequestRecord { digest: e.request_digest, outcome }));
            }
        }
        let index = open_request.as_ref().map_or(0, |(_, r)| e.position.0 - r.outcome.first.0) as usize;
        if !keys::is_derived_event_id(&e.event_id, &e.correlation_id, index) {
            batch.insert(keys::with_prefix(keys::EVENT_ID, e.event_id.as_bytes()), e.position.0.to_be_bytes());
        }
        head = Head { position: e.position, hash: e.hash, recorded_at_us: e.recorded_at_us };
        if n.is_multiple_of(RESTORE_BATCH_EVENTS) {
            batch.send()?;
            progress(n);
        }
    }
    if let Some((id, record)) = open_request.take() {
        batch.insert(keys::with_prefix(keys::REQUEST, id.as_bytes()), record.to_bytes());
    }
    if !log_chunk.is_empty() {
        batch.insert(keys::log(head.position).0, log_chunk);
    }
    batch.send()?;
    // The open `P` values and every stream's version, in key order.
    let mut streams: Vec<(StreamId, u64)> = versions.into_iter().collect();
    streams.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    for (i, (stream, version)) in streams.iter().enumerate() {
        if let Some(chunk) = chunks.remove(stream).filter(|c| !c.is_empty()) {
            batch.insert(keys::stream_chunk(stream, *version).0, chunk);
        }
        batch.insert(keys::with_prefix(keys::STREAM_VERSION, stream.as_str().as_bytes()), version.to_be_bytes());
        if (i + 1).is_multiple_of(RESTORE_BATCH_EVENTS as usize) {
            batch.send()?;
        }
    }
    for (category, n) in counters {
        batch.insert(keys::with_prefix(keys::COUNTER, category.as_bytes()), n.to_be_bytes());
    }
    batch.insert(keys::META_HEAD, head_bytes(&head));
    batch.send()?;
    progress(events);
    Ok(head)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::request::{AppendRequest, ExpectedVersion, NewEvent, Target};

    fn request(id: &str, key: Option<&str>, events: usize) -> AppendRequest {
        AppendRequest {
            target: match key {
                Some(k) => Target::NewKeyed { category: "recipient".into(), key: k.into() },
                None => Target::Stream {
                    stream: crate::envelope::StreamId::parse("config").unwrap(),
                    expected: ExpectedVersion::Any,
                },
            },
            request_id: id.into(),
            request_digest: [7; 32],
            actor: "kubo".into(),
            approver: None,
            expected_head: None,
            events: (0..events)
                .map(|i| NewEvent {
                    event_id: format!("{id}#{i}"),
                    event_type: "something_happened".into(),
                    schema_version: 1,
                    effective: chrono::NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
                    payload: vec![i as u8; 10],
                })
                .collect(),
        }
    }

    #[test]
    fn a_backup_restores_the_same_chain_and_indexes() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::create(&tmp.path().join("a")).unwrap();
        store.append_blocking(request("r1", Some("R1"), 2)).unwrap();
        store.append_blocking(request("r2", None, 1)).unwrap();
        store.append_blocking(request("r3", Some("R2"), 3)).unwrap();
        let mut bytes = Vec::new();
        let summary = write_backup(&[("ledger", &store)], &mut bytes).unwrap();
        assert_eq!(summary.parts[0].events, 6);
        let target = tmp.path().join("b");
        let restored =
            restore_backup(&mut &bytes[..], &|name| (name == "ledger").then(|| target.clone()), &mut |_, _, _| {})
                .unwrap();
        assert_eq!(restored, summary);
        let copy = Store::open(&target).unwrap();
        assert_eq!(copy.head().hash, store.head().hash);
        assert_eq!(copy.request("r3").unwrap(), store.request("r3").unwrap());
        assert_eq!(copy.stream_for_key("recipient", "R2").unwrap(), store.stream_for_key("recipient", "R2").unwrap());
        // The copy goes on where the original would: the next keyed stream gets the next number.
        let next = copy.append_blocking(request("r4", Some("R3"), 1)).unwrap();
        assert_eq!(next.stream.as_str(), "recipient-3");
        assert_eq!(next.first, Position(7));
        // A second restore into the same place is refused.
        let again = restore_backup(&mut &bytes[..], &|_| Some(target.clone()), &mut |_, _, _| {});
        assert!(again.is_err());
    }

    #[test]
    fn a_changed_byte_is_found() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::create(&tmp.path().join("a")).unwrap();
        store.append_blocking(request("r1", Some("R1"), 2)).unwrap();
        let mut bytes = Vec::new();
        write_backup(&[("ledger", &store)], &mut bytes).unwrap();
        // A payload byte (chain broken), then a byte of the trailer (hash mismatch).
        for at in [bytes.len() - 80, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            let dir = tmp.path().join(format!("c{at}"));
            let err = restore_backup(&mut &bad[..], &|_| Some(dir.clone()), &mut |_, _, _| {}).unwrap_err();
            assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
        }
    }
}
