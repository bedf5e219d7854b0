//! `verify`: walk the whole log and every index, and name the first bad position.
//!
//! Checked, in log order: positions are dense from 1; each record parses; its position is its
//! slot's (16 per `L` value, none but the last value short, none over); its `prev_hash` is the
//! previous event's hash; its hash is `SHA-256(prev_hash || canonical bytes)`; stream versions
//! go up by one per stream; the stream, event-id, request and key indexes point back at it; the
//! caller's payload check passes (`daicho verify` re-decodes every payload). Then: the recorded head is the last event, the
//! stream-version index matches, and the log reaches the verified checkpoint unchanged. A
//! passing walk may move the checkpoint forward.

use std::collections::HashMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::envelope::{Envelope, Hash, Position, StreamId};
use crate::error::StoreError;
use crate::keys;
use crate::request::RequestRecord;
use crate::{Checkpoint, Head, read_meta};

/// What was wrong, where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The first bad position, when the problem has one.
    pub position: Option<Position>,
    /// What is wrong.
    pub reason: String,
}

/// The result of a walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events that passed every check.
    pub events_verified: u64,
    /// Streams seen.
    pub streams: u64,
    /// The head recorded in the store.
    pub recorded_head: Head,
    /// The first problem, if any.
    pub problem: Option<Problem>,
}

/// Options of a walk.
pub struct VerifyOptions<'a> {
    /// Checks each payload (decoding it); `Err` names what is wrong.
    pub payload: &'a mut dyn FnMut(&Envelope) -> Result<(), String>,
    /// Called every [`PROGRESS_EVERY`] events with the number verified so far.
    pub progress: &'a mut dyn FnMut(u64),
    /// Move the verified checkpoint to the end when everything passes.
    pub update_checkpoint: bool,
}

/// How often progress is reported.
pub const PROGRESS_EVERY: u64 = 100_000;

/// Verifies the store in `dir`, which must not be open elsewhere (sled locks it).
pub fn verify_dir(dir: &Path, options: VerifyOptions<'_>) -> Result<VerifyReport, StoreError> {
    if !crate::upgrade::holds_a_store(dir) {
        return Err(StoreError::NotALedger(dir.display().to_string()));
    }
    let (db, tree) = crate::open_db(dir)?;
    let report = walk(&tree, dir, options)?;
    drop(tree);
    drop(db);
    Ok(report)
}

/// The reason a damage error gives (the position is the caller's).
fn damage_reason(err: StoreError) -> String {
    match err {
        StoreError::Damaged { reason, .. } => reason,
        other => other.to_string(),
    }
}

fn problem(position: u64, reason: impl Into<String>) -> Option<Problem> {
    Some(Problem { position: Some(Position(position)), reason: reason.into() })
}

fn index_position(tree: &sled::Tree, key: &[u8]) -> Result<Option<u64>, StoreError> {
    Ok(tree.get(key)?.and_then(|v| keys::u64_value(&v)))
}

fn walk(tree: &sled::Tree, dir: &Path, options: VerifyOptions<'_>) -> Result<VerifyReport, StoreError> {
    let recorded_head = match read_meta(tree) {
        Ok(h) => h,
        Err(e) => {
            return Ok(VerifyReport {
                events_verified: 0,
                streams: 0,
                recorded_head: Head::default(),
                problem: Some(Problem { position: None, reason: e.to_string() }),
            });
        }
    };
    let mut versions: HashMap<StreamId, u64> = HashMap::new();
    let mut prev = Hash::default();
    let mut last = Head::default();
    let mut expected = 1u64;
    let mut indexed_ids = 0u64;
    let found = (|| -> Result<Option<Problem>, StoreError> {
        for item in tree.scan_prefix([keys::LOG]) {
            let (key, value) = item?;
            let Some(first) = keys::log_chunk_first(&key) else {
                return Ok(problem(expected, "a log key out of place"));
            };
            if first != expected {
                return Ok(problem(expected, format!("missing from the log (next present is {first})")));
            }
            let records: Vec<_> = keys::chunk_records(&value).collect();
            if records.len() > keys::LOG_CHUNK as usize {
                return Ok(problem(first + keys::LOG_CHUNK, "a log value holds more records than its share"));
            }
            for (i, record) in records.into_iter().enumerate() {
                let p = first + i as u64;
                let e = match record
                    .map_err(|()| "cut short".to_owned())
                    .and_then(|r| Envelope::from_record(r).map_err(|e| e.to_string()))
                {
                    Ok(e) => e,
                    Err(err) => return Ok(problem(p, format!("unreadable record: {err}"))),
                };
                let e = match crate::in_place(e, p) {
                    Ok(e) => e,
                    Err(err) => return Ok(problem(p, damage_reason(err))),
                };
                if e.prev_hash != prev {
                    return Ok(problem(p, "chain broken: previous hash does not match"));
                }
                if !e.hash_is_valid() {
                    return Ok(problem(p, "hash does not match the contents: the event was altered"));
                }
                if e.recorded_at_us < last.recorded_at_us {
                    return Ok(problem(p, "recorded time goes backwards"));
                }
                let version = versions.entry(e.stream.clone()).or_insert(0);
                *version += 1;
                if e.stream_version != *version {
                    return Ok(problem(p, format!("stream version {} where {} was due", e.stream_version, version)));
                }
                if let Some(why) = check_indexes(tree, &e, &mut indexed_ids)? {
                    return Ok(problem(p, why));
                }
                if let Err(why) = (options.payload)(&e) {
                    return Ok(problem(p, format!("payload: {why}")));
                }
                prev = e.hash;
                last = Head { position: e.position, hash: e.hash, recorded_at_us: e.recorded_at_us };
                expected += 1;
                if last.position.0 % crate::verify::PROGRESS_EVERY == 0 {
                    (options.progress)(last.position.0);
                }
            }
        }
        if recorded_head.position != last.position || recorded_head.hash != last.hash {
            return Ok(problem(
                last.position.0 + 1,
                format!("the log ends at {} but the recorded head is {}", last.position, recorded_head.position),
            ));
        }
        for item in tree.scan_prefix([keys::STREAM_VERSION]) {
            let (key, value) = item?;
            let stream = std::str::from_utf8(key.get(1..).unwrap_or_default()).ok().and_then(StreamId::parse);
            let indexed = keys::u64_value(&value);
            match stream {
                Some(s) if versions.get(&s).copied() == indexed => {}
                _ => {
                    return Ok(Some(Problem {
                        position: None,
                        reason: "stream version index disagrees with the log".into(),
                    }));
                }
            }
        }
        let mut positions = 0u64;
        for item in tree.scan_prefix([keys::STREAM_POSITIONS]) {
            let (_, chunk) = item?;
            if chunk.len() % 8 != 0 {
                return Ok(Some(Problem { position: None, reason: "a stream index value is cut short".into() }));
            }
            positions += chunk.len() as u64 / 8;
        }
        let ids = tree.scan_prefix([keys::EVENT_ID]).count() as u64;
        if positions != last.position.0 || ids != indexed_ids {
            return Ok(Some(Problem { position: None, reason: "an index holds entries the log does not".into() }));
        }
        if let Some(cp) = Checkpoint::read(dir)? {
            if cp.position > last.position {
                return Ok(problem(
                    last.position.0 + 1,
                    format!("the log ends at {} but was verified up to {}: truncated", last.position, cp.position),
                ));
            }
            let at = crate::log_record(tree, cp.position).ok().flatten();
            if cp.position.0 > 0 && at.map(|e| e.hash) != Some(cp.hash) {
                return Ok(problem(cp.position.0, "differs from the verified checkpoint: altered"));
            }
        }
        Ok(None)
    })()?;
    if found.is_none() && options.update_checkpoint {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0);
        Checkpoint { position: last.position, hash: last.hash, verified_at_us: now }.write(dir)?;
    }
    Ok(VerifyReport {
        events_verified: if found.is_some() { expected - 1 } else { last.position.0 },
        streams: versions.len() as u64,
        recorded_head,
        problem: found,
    })
}

/// The indexes must point back at the event.
fn check_indexes(tree: &sled::Tree, e: &Envelope, indexed_ids: &mut u64) -> Result<Option<String>, StoreError> {
    let p = e.position.0;
    let (chunk_key, slot) = keys::stream_chunk(&e.stream, e.stream_version);
    if tree.get(&chunk_key)?.and_then(|chunk| keys::chunk_position(&chunk, slot)) != Some(p) {
        return Ok(Some("stream index does not point at this event".into()));
    }
    let request = tree
        .get(keys::with_prefix(keys::REQUEST, e.correlation_id.as_bytes()))?
        .and_then(|v| RequestRecord::from_bytes(&v));
    let Some(request) = request.filter(|r| {
        r.digest == e.request_digest && r.outcome.stream == e.stream && r.outcome.first.0 <= p && p <= r.outcome.last.0
    }) else {
        return Ok(Some("request index does not cover this event".into()));
    };
    let index = (p - request.outcome.first.0) as usize;
    let indexed = index_position(tree, &keys::with_prefix(keys::EVENT_ID, e.event_id.as_bytes()))?;
    if keys::is_derived_event_id(&e.event_id, &e.correlation_id, index) {
        if indexed.is_some() {
            return Ok(Some("event id index holds an id its request makes unique".into()));
        }
    } else if indexed != Some(p) {
        return Ok(Some("event id index does not point at this event".into()));
    } else {
        *indexed_ids += 1;
    }
    if let Some(key) = &e.stream_key {
        let category = e.stream.as_str().rsplit_once('-').map(|(c, _)| c).unwrap_or_default();
        let indexed = tree.get(keys::stream_key(category, key))?;
        if e.stream_version != 1 || indexed.as_deref() != Some(e.stream.as_str().as_bytes()) {
            return Ok(Some("stream key index does not point at this stream".into()));
        }
    }
    Ok(None)
}
