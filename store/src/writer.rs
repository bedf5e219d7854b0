//! The single writer: group commit.
//!
//! One thread receives append requests through a bounded channel. It takes every request
//! waiting (up to `BATCH_REQUESTS_MAX`), stages them in order (checking expected versions,
//! idempotency and keys against the tree and against earlier requests of the same group),
//! makes the whole group durable once as one redo frame together with the new head, applies it
//! to sled as one atomic batch, publishes the new durable head, and only then answers every
//! caller. Positions are assigned here and nowhere else, so they are dense and gapless.
//!
//! Durability: the group's writes go first to the redo log as one frame, made durable by one
//! `fdatasync` ([`crate::redo`]); then they are applied to sled in memory, the head is
//! published and the callers answered. sled is made durable behind, by the flusher. Any failure
//! (of the frame's write or sync, of sled, or of the flusher) stops the writer: nothing is
//! acknowledged that is not durable, a failed `fdatasync` is never retried, and nothing more is
//! accepted until the store is reopened.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot, watch};

use crate::envelope::{Envelope, Position, StreamId};
use crate::error::AppendError;
use crate::keys;
use crate::pending::{Queue, Tables};
use crate::redo::{self, RedoWriter, Shared};
use crate::request::{AppendOutcome, AppendRequest, ExpectedVersion, RequestRecord, Target, limits};
use crate::{Head, valid_event_type, valid_text_id};

/// A request and where to send its answer.
pub(crate) struct Job {
    pub request: AppendRequest,
    pub reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
}

pub(crate) struct Writer {
    pub tables: Tables,
    pub redo: RedoWriter,
    /// The applier's queue; dropped (ending the applier) when the writer ends.
    pub queue: Arc<Queue>,
    /// The applier thread, joined before the flusher is told to close.
    pub applier: Option<std::thread::JoinHandle<()>>,
    pub shared: Arc<Shared>,
    /// The flusher thread, ended and joined when the writer ends.
    pub flusher: Option<std::thread::JoinHandle<()>>,
    pub head: Head,
    /// The `L` value the next record goes into, as durable: kept here rather than read back
    /// before each commit, so that a commit never copies stored records it did not check.
    pub tail: LogTail,
    pub stopped: bool,
    pub stats: Arc<Counters>,
}

/// An `L` value being filled: its chunk number, its records so far (each `u32 length, record`),
/// and whether the group changed it.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogTail {
    pub chunk: u64,
    pub value: Vec<u8>,
    pub dirty: bool,
}

impl LogTail {
    /// The value the record after `head` goes into, from sled when `head` left it partly
    /// filled: at open, after the tail of the log was checked ([`crate::check_tail`]).
    pub fn after(tree: &sled::Tree, head: Position) -> Result<LogTail, crate::StoreError> {
        let chunk = head.0 / keys::LOG_CHUNK;
        let value = match head.0 % keys::LOG_CHUNK {
            0 => Vec::new(),
            _ => tree.get(keys::log_chunk_key(chunk))?.map(|v| v.to_vec()).unwrap_or_default(),
        };
        Ok(LogTail { chunk, value, dirty: false })
    }
}

/// Counters the writer keeps, readable while it runs.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub commits: AtomicU64,
    pub events: AtomicU64,
    pub requests: AtomicU64,
}

fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// Head record: position, hash, recorded_at.
pub(crate) fn head_bytes(head: &Head) -> Vec<u8> {
    let mut v = Vec::with_capacity(48);
    v.extend_from_slice(&head.position.0.to_be_bytes());
    v.extend_from_slice(&head.hash.0);
    v.extend_from_slice(&head.recorded_at_us.to_be_bytes());
    v
}

pub(crate) fn head_from_bytes(bytes: &[u8]) -> Option<Head> {
    Some(Head {
        position: Position(keys::u64_value(bytes)?),
        hash: crate::envelope::Hash(bytes.get(8..40)?.try_into().ok()?),
        recorded_at_us: i64::from_be_bytes(bytes.get(40..48)?.try_into().ok()?),
    })
}

impl Writer {
    /// Runs until every sender is gone.
    pub fn run(mut self, mut jobs: mpsc::Receiver<Job>, head_tx: watch::Sender<Head>) {
        while let Some(first) = jobs.blocking_recv() {
            let mut group = vec![first];
            while group.len() < limits::BATCH_REQUESTS_MAX {
                match jobs.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            let results = self.commit(&group);
            let head = self.head;
            // Wake subscribers only when the durable head moved.
            head_tx.send_if_modified(|h| std::mem::replace(h, head) != head);
            for (job, result) in group.into_iter().zip(results) {
                // A caller that went away no longer needs its answer.
                let _ = job.reply.send(result);
            }
        }
        // Every caller answered; `Drop` ends the applier and the flusher.
    }

    fn commit(&mut self, group: &[Job]) -> Vec<Result<AppendOutcome, AppendError>> {
        if self.stopped {
            // The first refusal names the cause; a background failure keeps being named.
            let refusal = match self.shared.failure() {
                Some(e) => AppendError::Storage(format!("background: {e}")),
                None => AppendError::Stopped,
            };
            return group.iter().map(|_| refusal.clone()).map(Err).collect();
        }
        let mut stage = Stage::new(&self.tables, self.head, now_us().max(self.head.recorded_at_us), self.tail.clone());
        let mut results: Vec<_> = group.iter().map(|job| stage.prepare(&job.request)).collect();
        if let Some(e) = stage.read_failure.take() {
            self.stopped = true;
            return group.iter().map(|_| Err(AppendError::Storage(e.clone()))).collect();
        }
        if stage.writes == 0 {
            return results;
        }
        let new_head = stage.head;
        stage.flush_tail();
        stage.puts.push((keys::META_HEAD.to_vec(), head_bytes(&new_head)));
        let tail = std::mem::take(&mut stage.tail);
        match self.persist(stage.puts, self.head.position.0 + 1, new_head.position.0) {
            Ok(()) => {
                self.tail = tail;
                self.stats.commits.fetch_add(1, Ordering::Relaxed);
                self.stats.events.fetch_add(new_head.position.0 - self.head.position.0, Ordering::Relaxed);
                self.stats.requests.fetch_add(results.iter().filter(|r| r.is_ok()).count() as u64, Ordering::Relaxed);
                self.head = new_head;
            }
            Err(e) => {
                self.stopped = true;
                for r in &mut results {
                    if r.is_ok() {
                        *r = Err(AppendError::Storage(e.clone()));
                    }
                }
            }
        }
        results
    }

    /// Makes the group durable in the redo log, then puts it in the memtable and hands it to
    /// the applier: once this returns, readers see it.
    fn persist(&mut self, writes: Vec<(Vec<u8>, Vec<u8>)>, first: u64, last: u64) -> Result<(), String> {
        if let Some(e) = self.shared.failure() {
            return Err(format!("background: {e}"));
        }
        let frame = redo::encode_frame(first, last, &writes);
        self.redo.append(&frame, first, last).map_err(|e| format!("redo log: {e}"))?;
        // From here the group is committed: it survives a crash, and recovery applies it to
        // sled at the next open. Readers see it in the memtable; if the applier has stopped,
        // the group is still acknowledged, and the writer refuses what comes after it.
        let group = (last, writes.into_iter().map(|(k, v)| (k.into(), v.into())).collect());
        self.tables.pending.insert(&group);
        if self.queue.send(group).is_err() {
            self.stopped = true;
        }
        Ok(())
    }
}

impl Drop for Writer {
    /// When the writer ends, or unwinds from a panic (a bug): the applier finishes what is
    /// queued, then the flusher makes sled durable and empties the redo log as far as sled
    /// holds it. Without this a panicking writer would leave both threads running.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.fail("the writer stopped unexpectedly".into());
        }
        self.queue.close();
        if let Some(applier) = self.applier.take() {
            let _ = applier.join();
        }
        redo::close(&self.shared);
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

/// fsync of a directory, so that the names of files created in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The writes of one group, staged in order.
struct Stage<'t> {
    tables: &'t Tables,
    /// The group's sled writes, in order.
    puts: Vec<(Vec<u8>, Vec<u8>)>,
    head: Head,
    recorded_at_us: i64,
    writes: usize,
    versions: HashMap<StreamId, u64>,
    requests: HashMap<String, RequestRecord>,
    event_ids: HashSet<String>,
    /// `P` values as this group leaves them.
    chunks: HashMap<Vec<u8>, Vec<u8>>,
    /// The `L` value the group's newest records go into, written out when the group moves
    /// past it or ends.
    tail: LogTail,
    keys: HashMap<Vec<u8>, StreamId>,
    counters: HashMap<String, u64>,
    read_failure: Option<String>,
}

impl<'t> Stage<'t> {
    fn new(tables: &'t Tables, head: Head, recorded_at_us: i64, tail: LogTail) -> Self {
        Stage {
            tables,
            puts: Vec::new(),
            head,
            recorded_at_us,
            writes: 0,
            versions: HashMap::new(),
            requests: HashMap::new(),
            event_ids: HashSet::new(),
            chunks: HashMap::new(),
            tail,
            keys: HashMap::new(),
            counters: HashMap::new(),
            read_failure: None,
        }
    }

    /// Reads from the tree; a read error is remembered and stops the group.
    fn get(&mut self, key: &[u8]) -> Option<sled::IVec> {
        match self.tables.get(key) {
            Ok(v) => v,
            Err(e) => {
                self.read_failure.get_or_insert_with(|| format!("read: {e}"));
                None
            }
        }
    }

    fn version_of(&mut self, stream: &StreamId) -> u64 {
        if let Some(v) = self.versions.get(stream) {
            return *v;
        }
        let key = keys::with_prefix(keys::STREAM_VERSION, stream.as_str().as_bytes());
        self.get(&key).and_then(|v| keys::u64_value(&v)).unwrap_or(0)
    }

    /// Whether an id of the form `<request id>#<i>`, given by another request, is the id a
    /// durable request of that id gave its `i`-th event (such ids have no `E` key). A request of
    /// this group is not looked at: its ids are in `event_ids`.
    fn derived_id_taken(&mut self, event_id: &str) -> bool {
        let Some((request, index)) = keys::derived_parts(event_id) else {
            return false;
        };
        let Some(record) = self.get(&keys::with_prefix(keys::REQUEST, request.as_bytes())) else {
            return false;
        };
        let Some(record) = RequestRecord::from_bytes(&record) else {
            self.read_failure.get_or_insert_with(|| "read: bad request record".into());
            return true;
        };
        let position = record.outcome.first.0.saturating_add(index as u64);
        if position > record.outcome.last.0 {
            return false;
        }
        let (key, slot) = keys::log(Position(position));
        let Some(chunk) = self.get(&key) else {
            return false;
        };
        match keys::chunk_record(&chunk, slot) {
            Some(bytes) => Envelope::from_record(bytes).map(|e| e.event_id == event_id).unwrap_or(true),
            None => false,
        }
    }

    /// The `P` value a new version goes into, as this group has left it so far.
    fn chunk(&mut self, key: &[u8]) -> Vec<u8> {
        if let Some(v) = self.chunks.get(key) {
            return v.clone();
        }
        self.get(key).map(|v| v.to_vec()).unwrap_or_default()
    }

    /// Adds a sealed record (the next position) to the `L` value it belongs in; the value
    /// before it, once full, is written out.
    fn stage_record(&mut self, position: Position, record: &[u8]) {
        let chunk = position.0.saturating_sub(1) / keys::LOG_CHUNK;
        if self.tail.chunk != chunk {
            self.flush_tail();
            // Positions are dense: the next value starts empty.
            self.tail = LogTail { chunk, value: Vec::new(), dirty: false };
        }
        keys::push_record(&mut self.tail.value, record);
        self.tail.dirty = true;
    }

    /// Writes out the `L` value the group's last records went into, if it took any.
    fn flush_tail(&mut self) {
        if self.tail.dirty {
            self.puts.push((keys::log_chunk_key(self.tail.chunk).to_vec(), self.tail.value.clone()));
            self.tail.dirty = false;
        }
    }

    fn prepare(&mut self, req: &AppendRequest) -> Result<AppendOutcome, AppendError> {
        validate(req)?;
        // Request-level idempotency first.
        let known = match self.requests.get(&req.request_id) {
            Some(r) => Some(r.clone()),
            None => self
                .get(&keys::with_prefix(keys::REQUEST, req.request_id.as_bytes()))
                .and_then(|v| RequestRecord::from_bytes(&v)),
        };
        if let Some(record) = known {
            return if record.digest == req.request_digest {
                Ok(AppendOutcome { already_applied: true, ..record.outcome })
            } else {
                Err(AppendError::RequestIdReused)
            };
        }
        if let Some(expected) = req.expected_head
            && expected != self.head.position
        {
            return Err(AppendError::HeadMoved { expected, actual: self.head.position });
        }
        // A keyed target is an ordinary stream target once the key is resolved.
        let resolved;
        let target = match &req.target {
            Target::Key { category, key, expected } => {
                let index_key = keys::stream_key(category, key);
                let stream = match self.keys.get(&index_key) {
                    Some(s) => Some(s.clone()),
                    None => self.get(&index_key).and_then(|v| StreamId::parse(std::str::from_utf8(&v).ok()?)),
                };
                resolved = Target::Stream { stream: stream.ok_or(AppendError::StreamKeyUnknown)?, expected: *expected };
                &resolved
            }
            other => other,
        };
        // The stream.
        let (stream, current, key) = match target {
            Target::Stream { stream, expected } => {
                let current = self.version_of(stream);
                if !expected.allows(current) {
                    return Err(AppendError::WrongExpectedVersion {
                        stream: stream.clone(),
                        expected: expected.describe(),
                        actual: current,
                    });
                }
                (stream.clone(), current, None)
            }
            Target::NewKeyed { category, key } => {
                let index_key = keys::stream_key(category, key);
                let existing = match self.keys.get(&index_key) {
                    Some(s) => Some(s.clone()),
                    None => self.get(&index_key).and_then(|v| StreamId::parse(std::str::from_utf8(&v).ok()?)),
                };
                if let Some(stream) = existing {
                    return Err(AppendError::StreamKeyTaken { stream });
                }
                let last = match self.counters.get(category) {
                    Some(n) => *n,
                    None => self
                        .get(&keys::with_prefix(keys::COUNTER, category.as_bytes()))
                        .and_then(|v| keys::u64_value(&v))
                        .unwrap_or(0),
                };
                let n = last + 1;
                let stream = StreamId::parse(&format!("{category}-{n}"))
                    .ok_or_else(|| AppendError::Invalid("category makes a bad stream id".into()))?;
                let current = self.version_of(&stream);
                if !ExpectedVersion::NoStream.allows(current) {
                    return Err(AppendError::WrongExpectedVersion {
                        stream,
                        expected: ExpectedVersion::NoStream.describe(),
                        actual: current,
                    });
                }
                self.counters.insert(category.clone(), n);
                (stream, 0, Some((index_key, key.clone(), category.clone(), n)))
            }
            Target::Key { .. } => return Err(AppendError::Invalid("unresolved key target".into())),
        };
        // Event ids: never reused, not even within the request.
        let mut seen = HashSet::new();
        for (i, e) in req.events.iter().enumerate() {
            let taken = self.event_ids.contains(&e.event_id)
                || !seen.insert(e.event_id.as_str())
                || self.get(&keys::with_prefix(keys::EVENT_ID, e.event_id.as_bytes())).is_some()
                || (!keys::is_derived_event_id(&e.event_id, &req.request_id, i) && self.derived_id_taken(&e.event_id));
            if taken {
                if let Some((_, _, category, n)) = &key {
                    // Undo the number allocated above: nothing of this request is written.
                    self.counters.insert(category.clone(), n - 1);
                }
                return Err(AppendError::EventIdReused { event_id: e.event_id.clone() });
            }
        }
        // Seal and stage.
        let first = Position(self.head.position.0 + 1);
        let mut version = current;
        let mut touched: Vec<Vec<u8>> = Vec::new();
        for (i, e) in req.events.iter().enumerate() {
            version += 1;
            let mut envelope = Envelope {
                position: Position(self.head.position.0 + 1),
                stream: stream.clone(),
                stream_version: version,
                stream_key: if i == 0 { key.as_ref().map(|(_, k, _, _)| k.clone()) } else { None },
                event_id: e.event_id.clone(),
                event_type: e.event_type.clone(),
                schema_version: e.schema_version,
                recorded_at_us: self.recorded_at_us,
                effective: e.effective,
                actor: req.actor.clone(),
                approver: req.approver.clone(),
                correlation_id: req.request_id.clone(),
                request_digest: req.request_digest,
                payload: e.payload.clone(),
                prev_hash: self.head.hash,
                hash: self.head.hash,
            };
            envelope.seal(self.head.hash);
            let at = envelope.position.0.to_be_bytes();
            self.stage_record(envelope.position, &envelope.to_record());
            let (chunk_key, slot) = keys::stream_chunk(&stream, version);
            let mut chunk = self.chunk(&chunk_key);
            if chunk.len() != slot * 8 {
                // The stream's index does not end where its version says: damaged. Nothing of
                // the group is written, and the writer stops (verify names the damage).
                self.read_failure.get_or_insert_with(|| format!("stream index of {stream} does not match its version"));
                chunk.truncate(slot * 8);
            }
            chunk.extend_from_slice(&at);
            if !touched.contains(&chunk_key) {
                touched.push(chunk_key.clone());
            }
            self.chunks.insert(chunk_key, chunk);
            if !keys::is_derived_event_id(&e.event_id, &req.request_id, i) {
                self.puts.push((keys::with_prefix(keys::EVENT_ID, e.event_id.as_bytes()), at.to_vec()));
            }
            self.event_ids.insert(e.event_id.clone());
            self.head = Head { position: envelope.position, hash: envelope.hash, recorded_at_us: self.recorded_at_us };
            self.writes += 1;
        }
        for key in touched {
            let value = self.chunks.get(&key).cloned().unwrap_or_default();
            self.puts.push((key, value));
        }
        self.puts.push((
            keys::with_prefix(keys::STREAM_VERSION, stream.as_str().as_bytes()),
            version.to_be_bytes().to_vec(),
        ));
        self.versions.insert(stream.clone(), version);
        if let Some((index_key, _, category, n)) = key {
            self.puts.push((index_key.clone(), stream.as_str().as_bytes().to_vec()));
            self.puts.push((keys::with_prefix(keys::COUNTER, category.as_bytes()), n.to_be_bytes().to_vec()));
            self.keys.insert(index_key, stream.clone());
        }
        let outcome =
            AppendOutcome { stream, first, last: self.head.position, stream_version: version, already_applied: false };
        let record = RequestRecord { digest: req.request_digest, outcome: outcome.clone() };
        self.puts.push((keys::with_prefix(keys::REQUEST, req.request_id.as_bytes()), record.to_bytes()));
        self.requests.insert(req.request_id.clone(), record);
        Ok(outcome)
    }
}

fn validate(req: &AppendRequest) -> Result<(), AppendError> {
    let invalid = |why: &str| Err(AppendError::Invalid(why.to_owned()));
    if req.events.is_empty() || req.events.len() > limits::EVENTS_PER_REQUEST_MAX {
        return invalid("a request has 1 to 64 events");
    }
    if !valid_text_id(&req.request_id) {
        return invalid("bad request id");
    }
    if !valid_text_id(&req.actor) || req.approver.as_deref().is_some_and(|a| !valid_text_id(a)) {
        return invalid("bad actor or approver");
    }
    if let Target::NewKeyed { category, key } | Target::Key { category, key, .. } = &req.target {
        let category_ok = !category.is_empty()
            && category.len() <= limits::CATEGORY_BYTES_MAX
            && category.bytes().all(|b| b.is_ascii_lowercase());
        if !category_ok {
            return invalid("a category is 1 to 32 lower-case letters");
        }
        if key.is_empty() || key.len() > limits::KEY_BYTES_MAX || key.contains('\0') {
            return invalid("a stream key is 1 to 256 bytes without NUL");
        }
    }
    for e in &req.events {
        if !valid_text_id(&e.event_id) {
            return invalid("bad event id");
        }
        if !valid_event_type(&e.event_type) {
            return invalid("bad event type");
        }
        if e.payload.len() > limits::PAYLOAD_BYTES_MAX {
            return invalid("payload larger than 64 KiB");
        }
    }
    Ok(())
}
