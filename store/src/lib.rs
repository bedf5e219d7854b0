//! daicho-store: the event log on sled. It stores envelopes and opaque payloads, and knows
//! nothing about subsidies.
//!
//! - [`Store::append`] (async) / [`Store::append_blocking`]: events for one stream with an
//!   expected version, all or nothing, idempotent by request id; acknowledged only once durable.
//! - [`Store::read_stream`], [`Store::read_from`], [`Store::subscribe`]: reads never go past the
//!   durable head, so nothing is ever seen that a crash could take back.
//! - [`Store::head`]: the durable head (position, chain hash).
//! - [`verify::verify_dir`]: walks the whole chain and every index, names the first bad position.
//!
//! On disk, a store directory holds `sled/` (the database), `redo/` (the redo log that makes
//! appends durable before sled does, see [`redo`](crate::redo)) and, once verified,
//! `checkpoint`.

pub mod backup;
#[cfg(test)]
#[path = "../tests/common/earlier_formats.rs"]
mod earlier_formats_fixture;
mod envelope;
mod error;
mod keys;
mod pending;
#[doc(hidden)]
pub mod raw;
mod redo;
mod request;
mod upgrade;
pub mod verify;
mod writer;

pub use envelope::{Envelope, Hash, Position, RecordError, StreamId, date_to_days, days_to_date};
pub use error::{AppendError, StoreError};
pub use redo::{StoreOptions, WritePoint};
pub use request::{AppendOutcome, AppendRequest, ExpectedVersion, NewEvent, RequestRecord, Target, limits};

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use crate::pending::{Applier, Memtable, Queue, Tables};
use crate::redo::{Flusher, RedoWriter};
use crate::writer::{Counters, Job, Writer, head_bytes, head_from_bytes, sync_dir};

/// The durable end of the log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Head {
    /// Position of the last durable event (0 when empty).
    pub position: Position,
    /// Its hash (zero when empty).
    pub hash: Hash,
    /// Its recorded time, microseconds since the Unix epoch.
    pub recorded_at_us: i64,
}

/// Number of events at the end of the log whose chain is checked when opening.
pub const OPEN_CHECK_EVENTS: u64 = 64;

pub(crate) fn valid_text_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= limits::ID_BYTES_MAX && s.bytes().all(|b| b.is_ascii_graphic())
}

pub(crate) fn valid_event_type(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The verified checkpoint kept beside the database: the last position `verify` walked to and
/// its hash. A log that ends before it, or differs at it, was truncated or altered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Last verified position.
    pub position: Position,
    /// Its hash.
    pub hash: Hash,
    /// When verified, microseconds since the Unix epoch.
    pub verified_at_us: i64,
}

impl Checkpoint {
    const MAGIC: &'static str = "daicho-checkpoint-1";

    /// Reads `dir/checkpoint`, if there is one.
    pub fn read(dir: &Path) -> Result<Option<Checkpoint>, StoreError> {
        let path = dir.join("checkpoint");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let bad = || StoreError::Damaged { position: None, reason: "unreadable checkpoint file".into() };
        let mut parts = text.split_whitespace();
        if parts.next() != Some(Self::MAGIC) {
            return Err(bad());
        }
        let position = Position(parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?);
        let hash = parts.next().and_then(Hash::from_hex).ok_or_else(bad)?;
        let verified_at_us = parts.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
        Ok(Some(Checkpoint { position, hash, verified_at_us }))
    }

    /// Writes `dir/checkpoint` durably (temporary file, fsync, rename, fsync of the directory).
    pub fn write(&self, dir: &Path) -> Result<(), StoreError> {
        let tmp = dir.join("checkpoint.tmp");
        let text = format!("{} {} {} {}\n", Self::MAGIC, self.position.0, self.hash.to_hex(), self.verified_at_us);
        {
            let mut f = File::create(&tmp)?;
            std::io::Write::write_all(&mut f, text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join("checkpoint"))?;
        sync_dir(dir)?;
        Ok(())
    }
}

/// What the writer has done since the store was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Durable commits (each one fsync).
    pub commits: u64,
    /// Events written.
    pub events: u64,
    /// Requests accepted and written (not counting already-applied ones).
    pub requests: u64,
}

struct Inner {
    dir: PathBuf,
    stats: Arc<Counters>,
    tables: Tables,
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    head: watch::Receiver<Head>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer; wait for it so the database closes cleanly.
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Some(handle) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = handle.join();
        }
    }
}

/// A handle to an open store. Cheap to clone; the store closes when the last handle is dropped.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

fn sled_dir(dir: &Path) -> PathBuf {
    dir.join("sled")
}

/// Removes snapshot files sled did not finish writing.
///
/// sled 0.34.7 writes a snapshot to `snap.<lsn>.generating`, fsyncs it and renames it to
/// `snap.<lsn>`; a snapshot counts only once renamed. But on opening, sled considers every file
/// named `snap.*` and takes the last in sorted order, which is the incomplete `.generating` file
/// when a process was killed while writing one, and then refuses to open with
/// `Corruption { at: None }` (spacejam/sled#1527, #1533; found here by the crash test). Removing
/// such files leaves sled the previous complete snapshot and the log, its normal recovery basis.
/// Returns how many were removed.
pub(crate) fn remove_incomplete_snapshots(sled_dir: &Path) -> Result<usize, StoreError> {
    let mut removed = 0;
    let Ok(entries) = std::fs::read_dir(sled_dir) else {
        return Ok(0);
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(sled_dir)?;
    }
    Ok(removed)
}

/// How long opening waits for sled's file lock.
pub const LOCK_WAIT_MS: u64 = 2_000;

/// Opens a sled database, waiting up to [`LOCK_WAIT_MS`] for its file lock: sled releases the
/// lock only when its last background reference goes, a moment after the handle is dropped, so
/// an immediate reopen in the same process can find it still held. Another process holding the
/// ledger still gets the error, after the wait.
pub fn open_sled(config: &sled::Config) -> Result<sled::Db, sled::Error> {
    let started = std::time::Instant::now();
    loop {
        match config.open() {
            // sled 0.34 reports a held lock as ErrorKind::Other with this text.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && started.elapsed() < std::time::Duration::from_millis(LOCK_WAIT_MS) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// The page cache sled may take per open store by default, in bytes (sled's own default is
/// 1 GiB, which a register of a million recipients fills and overshoots).
pub const DEFAULT_CACHE_BYTES: u64 = 128 << 20;

/// The page cache of stores opened from now on (see [`set_cache_bytes`]).
static CACHE_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(DEFAULT_CACHE_BYTES);

/// Sets the page cache, in bytes, of every store this process opens from now on (at least
/// 8 MiB): the operator's memory setting (`--log-cache-mib`).
pub fn set_cache_bytes(bytes: u64) {
    CACHE_BYTES.store(bytes.max(8 << 20), std::sync::atomic::Ordering::Relaxed);
}

/// The page cache, in bytes, stores are opened with.
pub fn cache_bytes() -> u64 {
    CACHE_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

/// Opens the store's sled database and brings it up to date with the redo log: after this,
/// sled holds durably every event that was acknowledged, and the redo log is empty. A store of
/// an earlier format is upgraded first ([`upgrade`]).
pub(crate) fn open_db(dir: &Path) -> Result<(sled::Db, sled::Tree), StoreError> {
    // Held while an interrupted upgrade is settled and an upgrade runs: sled's own lock is
    // taken only once a database is opened, and two processes settling at once could each
    // remove what the other is moving into place.
    let _upgrading = upgrade::lock(dir)?;
    upgrade::settle(dir)?;
    let (db, tree) = open_current(dir)?;
    if upgrade::is_earlier_format(&tree)? {
        upgrade::from_earlier_format(dir, db, tree)?;
        return open_current(dir);
    }
    Ok((db, tree))
}

/// The size of sled's segments (its unit of writing and of garbage collection) in the stores
/// created from now on: 8 MiB, where sled's default is 512 KiB. sled reads every segment's
/// header when it opens: at a million recipients a 7.7 GB log of 512 KiB segments took 14,600
/// reads, most of a cold `daicho status` (BENCHMARKS.md, 2026-12-04). A store keeps the size it
/// was created with (sled refuses another), so stores of earlier releases keep 512 KiB until a
/// backup is restored.
pub const SEGMENT_BYTES: usize = 8 << 20;

/// The segment size of the sled database in `sled_dir`: as its `conf` file records it, or
/// `new` for a new one.
fn segment_bytes(sled_dir: &Path, new: usize) -> Result<usize, StoreError> {
    let conf = match std::fs::read(sled_dir.join("conf")) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // sled writes `conf` when it makes a database: a database without one is damaged,
            // and opening it with a guessed size could misread it.
            let db_len = std::fs::metadata(sled_dir.join("db")).map(|m| m.len()).unwrap_or(0);
            return match db_len {
                0 => Ok(new),
                _ => Err(StoreError::Damaged {
                    position: None,
                    reason: "sled's conf file is missing beside its database (restore from a backup)".into(),
                }),
            };
        }
        Err(e) => return Err(e.into()),
    };
    // The file is sled's own: `key: value` lines, then a checksum.
    let text = String::from_utf8_lossy(&conf);
    text.lines().find_map(|line| line.strip_prefix("segment_size: ")?.trim().parse().ok()).ok_or_else(|| {
        StoreError::Damaged {
            position: None,
            reason: "sled's conf file names no segment size (restore from a backup)".into(),
        }
    })
}

/// sled's configuration for the database in `sled_dir` (segments of `new` bytes if it is new).
fn sled_config(sled_dir: &Path, new: usize) -> Result<sled::Config, StoreError> {
    Ok(sled::Config::new().path(sled_dir).mode(sled::Mode::HighThroughput).segment_size(segment_bytes(sled_dir, new)?))
}

/// Opens a store's sled database `sled_dir` as sled alone, nothing of the store (tools and tests
/// that look at or damage its raw records), with the segment size it was created with. No redo
/// log is applied and no lock waited for: never for a store in use.
#[doc(hidden)]
pub fn open_raw_sled(sled_dir: &Path) -> Result<sled::Db, StoreError> {
    Ok(sled_config(sled_dir, SEGMENT_BYTES)?.open()?)
}

fn open_current(dir: &Path) -> Result<(sled::Db, sled::Tree), StoreError> {
    remove_incomplete_snapshots(&sled_dir(dir))?;
    // No timer flush of sled's own: the flusher decides when sled writes (redo.rs).
    let config = sled_config(&sled_dir(dir), SEGMENT_BYTES)?.cache_capacity(cache_bytes()).flush_every_ms(None);
    let db = open_sled(&config)?;
    let tree = db.open_tree("ledger")?;
    // A database without a readable head is left as it is, for `verify` to report. A store of
    // an earlier format is brought up to date with its redo log too (its frames hold that
    // format's writes), before it is copied into the current format.
    let head = match upgrade::is_earlier_format(&tree)? {
        true => upgrade::head_of(&tree),
        false => read_meta(&tree),
    };
    if let Ok(head) = head {
        redo::recover(dir, &db, &tree, head.position.0)?;
    }
    Ok((db, tree))
}

/// Reads the head and format; used by `open` and by `verify`.
pub(crate) fn read_meta(tree: &sled::Tree) -> Result<Head, StoreError> {
    let damaged = |reason: &str| StoreError::Damaged { position: None, reason: reason.to_owned() };
    match tree.get(keys::META_FORMAT)? {
        Some(f) if f.as_ref() == keys::FORMAT_NAME => {}
        Some(_) => return Err(damaged("unknown store format")),
        None => return Err(damaged("no store format record")),
    }
    let head = tree.get(keys::META_HEAD)?.ok_or_else(|| damaged("no head record"))?;
    head_from_bytes(&head).ok_or_else(|| damaged("unreadable head record"))
}

impl Store {
    /// Creates a new, empty store in `dir` (which must not hold one).
    ///
    /// The database is made in `sled.creating` beside where it belongs, with its format and
    /// head records durable, and only then renamed into place: a process killed while creating
    /// leaves no `sled/` that cannot be opened (the crash test found one with no format record),
    /// only a staging directory, which the next `create` removes.
    pub fn create(dir: &Path) -> Result<Store, StoreError> {
        Store::create_with(dir, StoreOptions::default())
    }

    /// [`Store::create`] with options.
    pub fn create_with(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        if sled_dir(dir).exists() {
            return Err(StoreError::AlreadyExists(dir.display().to_string()));
        }
        std::fs::create_dir_all(dir)?;
        let staging = dir.join("sled.creating");
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        {
            let db = open_sled(&sled_config(&staging, options.sled_segment_bytes)?)?;
            let tree = db.open_tree("ledger")?;
            let mut batch = sled::Batch::default();
            batch.insert(keys::META_FORMAT, keys::FORMAT_NAME);
            batch.insert(keys::META_HEAD, head_bytes(&Head::default()));
            tree.apply_batch(batch)?;
            db.flush()?;
        }
        for entry in std::fs::read_dir(&staging)? {
            let path = entry?.path();
            if path.is_file() {
                File::open(&path)?.sync_all()?;
            }
        }
        sync_dir(&staging)?;
        std::fs::rename(&staging, sled_dir(dir))?;
        sync_dir(dir)?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
        Store::open_with(dir, options)
    }

    /// Opens the store in `dir`. Checks the head, the chain of the last
    /// [`OPEN_CHECK_EVENTS`] events and the verified checkpoint, not the whole log.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, StoreOptions::default())
    }

    /// [`Store::open`] with options.
    pub fn open_with(dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        if !upgrade::holds_a_store(dir) {
            return Err(StoreError::NotALedger(dir.display().to_string()));
        }
        let (db, tree) = open_db(dir)?;
        let head = read_meta(&tree)?;
        check_tail(&tree, head)?;
        if let Some(cp) = Checkpoint::read(dir)? {
            check_checkpoint(&tree, head, cp)?;
        }
        let stats = Arc::new(Counters::default());
        let (redo, shared) = RedoWriter::new(dir, head.position.0, options.clone())?;
        let tables = Tables { tree: tree.clone(), pending: Arc::new(Memtable::new(head.position.0)) };
        let flusher = Flusher { store_dir: dir.to_path_buf(), db, options: options.clone(), shared: shared.clone() };
        let flusher = std::thread::Builder::new().name("daicho-store-flusher".into()).spawn(move || {
            // A panic (a bug) must not leave the writer appending to a redo log nobody empties.
            let shared = flusher.shared.clone();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| flusher.run())).is_err() {
                shared.fail("the flusher stopped unexpectedly".into());
            }
        })?;
        let queue = Arc::new(Queue::default());
        let applier =
            Applier { tree, pending: tables.pending.clone(), shared: shared.clone(), options: options.clone() };
        let groups = queue.clone();
        let applier = std::thread::Builder::new().name("daicho-store-applier".into()).spawn(move || {
            let shared = applier.shared.clone();
            let options = applier.options.clone();
            let queue = groups.clone();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| applier.run(groups))).is_err() {
                shared.fail("the applier stopped unexpectedly".into());
                queue.close();
                options.at(WritePoint::ApplierStopped);
            }
        })?;
        let writer = Writer {
            stats: stats.clone(),
            tables: tables.clone(),
            redo,
            queue,
            applier: Some(applier),
            shared,
            flusher: Some(flusher),
            head,
            tail: writer::LogTail::after(&tables.tree, head.position)?,
            stopped: false,
        };
        let (jobs_tx, jobs_rx) = mpsc::channel(limits::QUEUE_REQUESTS_MAX);
        let (head_tx, head_rx) = watch::channel(head);
        let handle = std::thread::Builder::new()
            .name("daicho-store-writer".into())
            .spawn(move || writer.run(jobs_rx, head_tx))?;
        Ok(Store {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                stats,
                tables,
                jobs: Mutex::new(Some(jobs_tx)),
                head: head_rx,
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn sender(&self) -> Result<mpsc::Sender<Job>, AppendError> {
        self.inner.jobs.lock().ok().and_then(|j| j.clone()).ok_or(AppendError::Stopped)
    }

    /// Appends, returning once the events are durable (or the request was refused).
    pub async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.sender()?.send(Job { request, reply }).await.map_err(|_| AppendError::Stopped)?;
        answer.await.map_err(|_| AppendError::Stopped)?
    }

    /// [`Store::append`] for callers outside an async runtime (the CLI). Must not be called from
    /// within one.
    pub fn append_blocking(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        self.submit_blocking(request)?.wait()
    }

    /// Queues an append and returns at once; [`Pending::wait`] gives its outcome once durable.
    /// Requests queued by one caller are committed in the order queued, so a bulk loader can
    /// queue a whole stream's history (with [`Target::Key`] and exact expected versions) without
    /// waiting between appends. Not from within an async runtime.
    pub fn submit_blocking(&self, request: AppendRequest) -> Result<Pending, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.sender()?.blocking_send(Job { request, reply }).map_err(|_| AppendError::Stopped)?;
        Ok(Pending(answer))
    }

    /// What the writer has done since the store was opened.
    pub fn stats(&self) -> Stats {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.inner.stats;
        Stats { commits: c.commits.load(Relaxed), events: c.events.load(Relaxed), requests: c.requests.load(Relaxed) }
    }

    /// The durable head.
    pub fn head(&self) -> Head {
        *self.inner.head.borrow()
    }

    fn envelope_at(&self, position: Position) -> Result<Envelope, StoreError> {
        let (key, slot) = keys::log(position);
        let chunk = self.inner.tables.get(&key)?;
        envelope_in(chunk.as_deref(), slot, position)?
            .ok_or_else(|| StoreError::Damaged { position: Some(position), reason: "missing from the log".into() })
    }

    /// The envelope at `position`, if it is durable.
    pub fn get(&self, position: Position) -> Result<Option<Envelope>, StoreError> {
        if position.0 == 0 || position > self.head().position {
            return Ok(None);
        }
        self.envelope_at(position).map(Some)
    }

    /// The current version of a stream (0 if it does not exist).
    pub fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let key = keys::with_prefix(keys::STREAM_VERSION, stream.as_str().as_bytes());
        Ok(self.inner.tables.get(&key)?.and_then(|v| keys::u64_value(&v)).unwrap_or(0))
    }

    /// Every durable event of a stream, in version order.
    pub fn read_stream(&self, stream: &StreamId) -> Result<Vec<Envelope>, StoreError> {
        let head = self.head().position;
        let mut out = Vec::new();
        for (_, chunk) in self.inner.tables.scan_prefix(&keys::stream_chunks_prefix(stream))? {
            for position in keys::chunk_positions(&chunk) {
                if Position(position) > head {
                    return Ok(out);
                }
                out.push(self.envelope_at(Position(position))?);
            }
        }
        Ok(out)
    }

    /// The stream registered under a key (see [`Target::NewKeyed`]).
    pub fn stream_for_key(&self, category: &str, key: &str) -> Result<Option<StreamId>, StoreError> {
        let Some(value) = self.inner.tables.get(&keys::stream_key(category, key))? else {
            return Ok(None);
        };
        let stream = std::str::from_utf8(&value).ok().and_then(StreamId::parse);
        let stream = stream.ok_or(StoreError::Damaged { position: None, reason: "bad stream key index".into() })?;
        // Only once the stream's first event is durable.
        let first = self.inner.tables.get(&keys::stream_chunk(&stream, 1).0)?.and_then(|v| keys::chunk_position(&v, 0));
        Ok(first.is_some_and(|p| Position(p) <= self.head().position).then_some(stream))
    }

    /// Whether any request id recorded starts with `prefix` (one key read): a bulk job whose
    /// ids share a prefix learns at once that none of them can be a repeat.
    pub fn any_request_with_prefix(&self, prefix: &str) -> Result<bool, StoreError> {
        Ok(self.inner.tables.any_with_prefix(&keys::with_prefix(keys::REQUEST, prefix.as_bytes()))?)
    }

    /// The record of an earlier request with this id, if any.
    pub fn request(&self, request_id: &str) -> Result<Option<RequestRecord>, StoreError> {
        let Some(value) = self.inner.tables.get(&keys::with_prefix(keys::REQUEST, request_id.as_bytes()))? else {
            return Ok(None);
        };
        let record = RequestRecord::from_bytes(&value)
            .ok_or(StoreError::Damaged { position: None, reason: "bad request index".into() })?;
        Ok((record.outcome.last <= self.head().position).then_some(record))
    }

    /// Durable events from `from` (inclusive) to the head, in order.
    ///
    /// Positions up to what sled had applied when the read began come from one sled range scan;
    /// the few after it (still in the memtable, or applied since) one by one.
    pub fn read_from(&self, from: Position) -> impl Iterator<Item = Result<Envelope, StoreError>> + '_ {
        let head = self.head().position;
        let start = Position(from.0.max(1));
        let split = Position(self.inner.tables.pending.applied().min(head.0));
        let scanned = (start <= split).then(|| self.inner.tables.tree.range(keys::log(start).0..=keys::log(split).0));
        let rest = start.0.max(split.0 + 1)..=head.0;
        scanned
            .into_iter()
            .flatten()
            .flat_map(move |item| decode_chunk(item, start.0, split.0))
            .chain(rest.map(move |p| self.envelope_at(Position(p))))
    }

    /// The log from `from` to the head, in order, each event proven: its hash is
    /// `SHA-256(prev_hash || canonical bytes)`, its position the next one, and its `prev_hash`
    /// the hash of the event before it (from position 1 on; a read from later trusts its first
    /// event's `prev_hash`). Any of these failing ends the replay with [`StoreError::Damaged`].
    ///
    /// For long reads (a replay, a backup): a helper thread walks sled's range in batches while
    /// the caller's thread decodes and checks, so two cores overlap. (Two helpers reading
    /// alternate stretches were slower: sled's iterators contend.) Dropping the iterator early
    /// ends the helper at its next batch.
    pub fn replay(&self, from: Position) -> impl Iterator<Item = Result<Envelope, StoreError>> + '_ {
        let head = self.head().position;
        let start = from.0.max(1);
        let split = self.inner.tables.pending.applied().min(head.0);
        let mut batches = None;
        let mut no_thread = None;
        if start <= split {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<sled::Result<(sled::IVec, sled::IVec)>>>(REPLAY_QUEUE);
            let tree = self.inner.tables.tree.clone();
            let read = move || {
                let mut batch = Vec::with_capacity(REPLAY_BATCH);
                for item in tree.range(keys::log(Position(start)).0..=keys::log(Position(split)).0) {
                    let failed = item.is_err();
                    batch.push(item);
                    if batch.len() == REPLAY_BATCH || failed {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(REPLAY_BATCH));
                        if tx.send(full).is_err() || failed {
                            return;
                        }
                    }
                }
                let _ = tx.send(batch);
            };
            match std::thread::Builder::new().name("daicho-store-replay".into()).spawn(read) {
                Ok(_) => batches = Some(rx),
                Err(e) => no_thread = Some(StoreError::from(e)),
            }
        }
        let scanned =
            batches.into_iter().flatten().flatten().flat_map(move |item| decode_chunk(item, start, split)).map(|e| {
                e.and_then(|e| {
                    if e.hash_is_valid() {
                        Ok(e)
                    } else {
                        Err(StoreError::Damaged {
                            position: Some(e.position),
                            reason: "hash does not match the contents: the event was altered".into(),
                        })
                    }
                })
            });
        let rest = start.max(split + 1)..=head.0;
        let items =
            no_thread.into_iter().map(Err).chain(scanned).chain(rest.map(move |p| self.envelope_at(Position(p))));
        let mut expected = start;
        let mut prev: Option<Hash> = (start == 1).then(Hash::default);
        let mut failed = false;
        items.map_while(move |item| {
            if failed {
                return None;
            }
            let checked = item.and_then(|e| {
                let why = if e.position.0 != expected {
                    Some(format!("missing from the log (next present is {})", e.position))
                } else if prev.is_some_and(|p| p != e.prev_hash) {
                    Some("chain broken: previous hash does not match".to_owned())
                } else {
                    None
                };
                match why {
                    Some(reason) => Err(StoreError::Damaged { position: Some(Position(expected)), reason }),
                    None => Ok(e),
                }
            });
            match &checked {
                Ok(e) => {
                    expected += 1;
                    prev = Some(e.hash);
                }
                Err(_) => failed = true,
            }
            Some(checked)
        })
    }

    /// Durable events from the head back to position 1, newest first (a bounded scan of the
    /// recent past reads only what it needs).
    pub fn read_back(&self) -> impl Iterator<Item = Result<Envelope, StoreError>> + '_ {
        let head = self.head().position;
        let split = Position(self.inner.tables.pending.applied().min(head.0));
        let newest = (split.0 + 1..=head.0).rev().map(move |p| self.envelope_at(Position(p)));
        let scanned =
            (split.0 >= 1).then(|| self.inner.tables.tree.range(keys::log(Position(1)).0..=keys::log(split).0));
        newest.chain(
            scanned.into_iter().flatten().rev().flat_map(move |item| decode_chunk(item, 1, split.0).into_iter().rev()),
        )
    }

    /// Follows the log from `from`: first every durable event already there, then each new one
    /// as it becomes durable, with no gap and no duplicate at the switch.
    pub fn subscribe(&self, from: Position) -> Subscription {
        Subscription { store: self.clone(), next: Position(from.0.max(1)), head: self.inner.head.clone() }
    }

    /// Closes the store: waits for the writer to finish what it was given.
    pub fn close(self) {
        drop(self);
    }
}

/// `L` values per batch of [`Store::replay`]'s helper (1,024 records), and batches it may read
/// ahead.
const REPLAY_BATCH: usize = 64;
const REPLAY_QUEUE: usize = 8;

/// The envelope in `slot` of the `L` value `chunk`, which must be the one of `position`; `None`
/// when the value does not reach that slot (or there is no value).
pub(crate) fn envelope_in(
    chunk: Option<&[u8]>,
    slot: usize,
    position: Position,
) -> Result<Option<Envelope>, StoreError> {
    let damaged = |reason: String| StoreError::Damaged { position: Some(position), reason };
    let Some(chunk) = chunk else {
        return Ok(None);
    };
    match keys::chunk_records(chunk).nth(slot) {
        None => Ok(None),
        Some(Err(())) => Err(damaged("the log's record is cut short".into())),
        Some(Ok(record)) => {
            let e = Envelope::from_record(record).map_err(|e| damaged(e.to_string()))?;
            in_place(e, position.0).map(Some)
        }
    }
}

/// `e` if it is the record of position `p` (its slot in the log); a later one means `p` is
/// missing.
pub(crate) fn in_place(e: Envelope, p: u64) -> Result<Envelope, StoreError> {
    let reason = match e.position.0 {
        n if n == p => return Ok(e),
        n if n > p => format!("missing from the log (next present is {n})"),
        n => format!("record says position {n}"),
    };
    Err(StoreError::Damaged { position: Some(Position(p)), reason })
}

/// The envelope at `position` as sled holds it (the memtable not looked at: for opening and
/// verifying, when it is empty).
pub(crate) fn log_record(tree: &sled::Tree, position: Position) -> Result<Option<Envelope>, StoreError> {
    let (key, slot) = keys::log(position);
    envelope_in(tree.get(key)?.as_deref(), slot, position)
}

/// The envelopes of positions `lo..=hi` in an `L` value from a sled scan, in order; a record
/// cut short or not of its position ends them with an error.
fn decode_chunk(
    item: Result<(sled::IVec, sled::IVec), sled::Error>,
    lo: u64,
    hi: u64,
) -> Vec<Result<Envelope, StoreError>> {
    let (key, value) = match item {
        Ok(kv) => kv,
        Err(e) => return vec![Err(e.into())],
    };
    let Some(first) = keys::log_chunk_first(&key) else {
        return vec![Err(StoreError::Damaged { position: None, reason: "a log key out of place".into() })];
    };
    let mut out = Vec::with_capacity(keys::LOG_CHUNK as usize);
    for (i, record) in keys::chunk_records(&value).enumerate() {
        let p = first + i as u64;
        let damaged = |reason: String| StoreError::Damaged { position: Some(Position(p)), reason };
        if i as u64 >= keys::LOG_CHUNK {
            out.push(Err(damaged("a log value holds more records than its share".into())));
            break;
        }
        if p > hi {
            break;
        }
        let e = match record {
            Err(()) => Err(damaged("the log's record is cut short".into())),
            Ok(_) if p < lo => continue,
            Ok(r) => Envelope::from_record(r).map_err(|e| damaged(e.to_string())).and_then(|e| in_place(e, p)),
        };
        let failed = e.is_err();
        out.push(e);
        if failed {
            break;
        }
    }
    out
}

/// An append queued with [`Store::submit_blocking`].
pub struct Pending(oneshot::Receiver<Result<AppendOutcome, AppendError>>);

impl Pending {
    /// Waits for the outcome (blocking). Not from within an async runtime.
    pub fn wait(self) -> Result<AppendOutcome, AppendError> {
        self.0.blocking_recv().map_err(|_| AppendError::Stopped)?
    }
}

/// Events from a position on, catching up and then following new commits.
pub struct Subscription {
    store: Store,
    next: Position,
    head: watch::Receiver<Head>,
}

impl Subscription {
    /// The next event, waiting for it if the log has not reached it yet. `None` when the store
    /// closed.
    pub async fn next(&mut self) -> Option<Result<Envelope, StoreError>> {
        loop {
            if self.next <= self.head.borrow_and_update().position {
                let result = self.store.envelope_at(self.next);
                if result.is_ok() {
                    self.next = Position(self.next.0 + 1);
                }
                return Some(result);
            }
            if self.head.changed().await.is_err() {
                return None;
            }
        }
    }

    /// The position of the next event it will return.
    pub fn position(&self) -> Position {
        self.next
    }
}

fn check_tail(tree: &sled::Tree, head: Head) -> Result<(), StoreError> {
    let damaged = |p: u64, reason: &str| StoreError::Damaged { position: Some(Position(p)), reason: reason.to_owned() };
    // The head's value holds the head's record last, and no value comes after it.
    let (own, slot) = keys::log(head.position);
    let later = match head.position.0 {
        0 => keys::log_chunk_key(0),
        p => keys::log_chunk_key((p - 1) / keys::LOG_CHUNK + 1),
    };
    let beyond = tree.range(later..=keys::log_chunk_key(u64::MAX)).next().transpose()?.is_some()
        || (head.position.0 > 0
            && tree.get(own)?.is_some_and(|chunk| keys::chunk_records(&chunk).nth(slot + 1).is_some()));
    if beyond {
        return Err(damaged(head.position.0 + 1, "an event beyond the recorded head"));
    }
    if head.position.0 == 0 {
        return Ok(());
    }
    let from = head.position.0.saturating_sub(OPEN_CHECK_EVENTS - 1).max(1);
    let mut expected_next_prev: Option<Hash> = None;
    for p in from..=head.position.0 {
        let e = log_record(tree, Position(p))?.ok_or_else(|| damaged(p, "missing from the log"))?;
        if !e.hash_is_valid() {
            return Err(damaged(p, "hash or position does not match"));
        }
        if expected_next_prev.is_some_and(|h| h != e.prev_hash) {
            return Err(damaged(p, "chain broken: previous hash does not match"));
        }
        expected_next_prev = Some(e.hash);
    }
    if expected_next_prev != Some(head.hash) {
        return Err(damaged(head.position.0, "the recorded head hash does not match the log"));
    }
    Ok(())
}

fn check_checkpoint(tree: &sled::Tree, head: Head, cp: Checkpoint) -> Result<(), StoreError> {
    if cp.position > head.position {
        return Err(StoreError::Damaged {
            position: Some(Position(head.position.0 + 1)),
            reason: format!("the log ends at {} but was verified up to {}: truncated", head.position, cp.position),
        });
    }
    if cp.position.0 == 0 {
        return Ok(());
    }
    let hash = log_record(tree, cp.position).ok().flatten().map(|e| e.hash);
    if hash != Some(cp.hash) {
        return Err(StoreError::Damaged {
            position: Some(cp.position),
            reason: "differs from the verified checkpoint: altered".into(),
        });
    }
    Ok(())
}
