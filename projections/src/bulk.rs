//! The bulk rebuild (一括再構築): the register from position 1 as one job, not event by event.
//!
//! 1. **Read** the log once, its two halves at once (each by its own thread, each in order).
//!    Recipient events go to partitions of
//!    [`PARTITION_RECIPIENTS`] consecutive recipient numbers, kept in memory and spilled to
//!    owner-only files in the read-model directory above [`SPILL_BYTES`]; configurations and
//!    PMH batches are kept in position order. PMH's results go to the partition of every
//!    recipient they name, as an event of that recipient.
//! 2. **Fold** each partition on its own thread (as many as the machine has cores, at most
//!    [`FOLD_THREADS_MAX`]): each recipient's stream from nothing, with the same [`Fold`] the
//!    incremental catch-up uses, and between its events the PMH batches that touch its records
//!    (a batch of a program marks every record of the program that differs from what PMH has,
//!    and for a full batch every current one: so a recipient without such a record is not
//!    visited). The configuration in force at each batch decides validation, as it did then.
//! 3. **Write** each partition's keys, sorted, in one unsynced transaction of a fresh file; the
//!    configuration, the last batch per program and the checkpoint go with the last one, which
//!    is synced. The caller swaps the file in.
//!
//! The result is the same bytes as applying the log event by event (the test
//! `rebuilding_gives_the_same_bytes_as_incremental_application`).

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use daicho_domain::codec::{self, CONFIGURATION_SET, PMH_BATCH_EXPORTED, PMH_RESULTS_RECORDED, PmhBatch};
use daicho_domain::config::{Config, PmhMode};
use daicho_store::{Envelope, Hash, Position, Store, StreamId};

use crate::db::Db;
use crate::register::{Fold, last_batch_value, recipient_number};
use crate::{KeyValue, Progress, ProjectionError, keys};

/// Consecutive recipient numbers per partition.
pub const PARTITION_RECIPIENTS: u64 = 1 << 14;

/// Recipient events held in memory, by default, before the partitions are spilled to files.
pub const SPILL_BYTES: usize = 128 << 20;

/// Threads folding partitions at most.
pub const FOLD_THREADS_MAX: usize = 4;

/// A PMH batch of the log.
struct BatchAt {
    position: u64,
    number: u64,
    uploaded: chrono::NaiveDate,
    batch: PmhBatch,
    /// Index into the configurations: the one in force at the batch.
    config: Option<usize>,
}

/// A program's batches, in position order.
#[derive(Default)]
struct ProgramBatches {
    all: Vec<BatchAt>,
    /// Indexes into `all` of the full batches.
    full: Vec<usize>,
}

/// What the read found besides the recipients' events.
struct System {
    /// Configurations (text and parsed), in position order.
    configs: Vec<(String, std::sync::Arc<Config>)>,
    /// Batches by program.
    batches: BTreeMap<String, ProgramBatches>,
    /// Positions of every batch, in order.
    positions: Vec<u64>,
}

/// A partition's events: from each stretch of the log in order, those spilled to a file, then
/// those still in memory.
#[derive(Default)]
struct Partition {
    pieces: Vec<Piece>,
}

/// What one stretch of the log holds of a partition.
#[derive(Default)]
struct Piece {
    mem: Vec<u8>,
    file: Option<(PathBuf, File)>,
}

/// The fields of an envelope the fold reads, in a compact form.
fn spill(out: &mut Vec<u8>, n: u64, e: &Envelope) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&e.position.0.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&e.stream_version.to_le_bytes());
    out.extend_from_slice(&codec::date_to_days(e.effective).to_le_bytes());
    out.extend_from_slice(&e.schema_version.to_le_bytes());
    for text in [e.event_type.as_bytes(), e.correlation_id.as_bytes(), &e.payload] {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text);
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// An envelope back from its spilled form (the fields the fold does not read left empty).
fn unspill(bytes: &[u8]) -> Option<(u64, Envelope)> {
    let u64_at = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    let position = u64_at(0)?;
    let n = u64_at(8)?;
    let stream_version = u64_at(16)?;
    let days = i32::from_le_bytes(bytes.get(24..28)?.try_into().ok()?);
    let schema_version = u16::from_le_bytes(bytes.get(28..30)?.try_into().ok()?);
    let mut at = 30;
    let mut field = || {
        let len = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize;
        let v = bytes.get(at + 4..at + 4 + len)?;
        at += 4 + len;
        Some(v)
    };
    let event_type = String::from_utf8(field()?.to_vec()).ok()?;
    let correlation_id = String::from_utf8(field()?.to_vec()).ok()?;
    let payload = field()?.to_vec();
    let envelope = Envelope {
        position: Position(position),
        stream: StreamId::parse(&format!("recipient-{n}"))?,
        stream_version,
        stream_key: None,
        event_id: String::new(),
        event_type,
        schema_version,
        recorded_at_us: 0,
        effective: codec::days_to_date(days).ok()?,
        actor: String::new(),
        approver: None,
        correlation_id,
        request_digest: [0; 32],
        payload,
        prev_hash: Hash::default(),
        hash: Hash::default(),
    };
    Some((n, envelope))
}

fn io(what: &str) -> impl Fn(std::io::Error) -> ProjectionError + '_ {
    move |e| ProjectionError::Db(format!("rebuild: {what}: {e}"))
}

/// What a reader of one stretch of the log found.
#[derive(Default)]
struct Stretch {
    parts: BTreeMap<u64, Piece>,
    /// Configurations with their positions.
    configs: Vec<(u64, String, Config)>,
    /// Batches: position, batch number, upload day, batch.
    batches: Vec<(u64, u64, chrono::NaiveDate, PmhBatch)>,
    /// The hash of its last event.
    last: Option<Hash>,
}

/// Reads positions `from..=to` of the log (`tag` names its spill files).
fn read_stretch(
    store: &Store,
    (from, to): (u64, u64),
    (spill_dir, spill_bytes): (Option<&Path>, usize),
    tag: usize,
    progress: Option<Progress<'_>>,
) -> Result<Stretch, ProjectionError> {
    let mut out = Stretch::default();
    let mut progress = progress;
    let mut held = 0usize;
    if from > to {
        return Ok(out);
    }
    for item in store.read_from(Position(from)) {
        let e = item?;
        if e.position.0 > to {
            break;
        }
        out.last = Some(e.hash);
        if let Some(p) = progress.as_mut()
            && e.position.0.is_multiple_of(100_000)
        {
            p(e.position.0.saturating_mul(READERS).min(to), to);
        }
        let at = |why: String| ProjectionError::Event { position: e.position.0, reason: why };
        match (e.stream.as_str(), e.event_type.as_str()) {
            ("config", CONFIGURATION_SET) => {
                let text = codec::decode_configuration(e.schema_version, &e.payload).map_err(|x| at(x.to_string()))?;
                let config = Config::from_toml(&text).map_err(|x| at(x.to_string()))?;
                out.configs.push((e.position.0, text, config));
            }
            ("pmh", PMH_BATCH_EXPORTED) => {
                let batch = codec::decode_pmh_batch(e.schema_version, &e.payload).map_err(|x| at(x.to_string()))?;
                out.batches.push((e.position.0, e.stream_version, e.effective, batch));
            }
            (stream, event_type) => {
                // PMH's results go to each recipient they name, in log order with its events.
                let named: Vec<u64> = if event_type == PMH_RESULTS_RECORDED {
                    let results =
                        codec::decode_pmh_results(e.schema_version, &e.payload).map_err(|x| at(x.to_string()))?;
                    let mut named: Vec<u64> = results.refused.iter().map(|r| r.recipient).collect();
                    named.sort_unstable();
                    named.dedup();
                    named
                } else {
                    recipient_number(stream).into_iter().collect()
                };
                for n in named {
                    let piece = out.parts.entry(n / PARTITION_RECIPIENTS).or_default();
                    let before = piece.mem.len();
                    spill(&mut piece.mem, n, &e);
                    held += piece.mem.len() - before;
                }
                if held > spill_bytes
                    && let Some(dir) = spill_dir
                {
                    for (i, piece) in out.parts.iter_mut() {
                        if piece.mem.is_empty() {
                            continue;
                        }
                        if piece.file.is_none() {
                            let path = dir.join(format!("part-{tag}-{i}"));
                            let file = File::options()
                                .read(true)
                                .write(true)
                                .create(true)
                                .truncate(true)
                                .open(&path)
                                .map_err(io("spill file"))?;
                            piece.file = Some((path, file));
                        }
                        if let Some((_, f)) = &mut piece.file {
                            f.write_all(&piece.mem).map_err(io("spill"))?;
                        }
                        piece.mem = Vec::new();
                    }
                    held = 0;
                }
            }
        }
    }
    Ok(out)
}

/// Stretches of the log read at once, each by its own thread.
const READERS: u64 = 2;

/// Splits the log up to `to` into partitions, reading its halves at once; returns them, the
/// system events and the hash at `to`.
fn read(
    store: &Store,
    to: Position,
    spill: (Option<&Path>, usize),
    progress: Progress<'_>,
) -> Result<(Vec<Partition>, System, Hash), ProjectionError> {
    let share = (spill.0, spill.1 / READERS as usize);
    let mid = to.0 / READERS;
    let (first, second) = std::thread::scope(|scope| {
        let second = scope.spawn(move || read_stretch(store, (mid + 1, to.0), share, 1, None));
        let first = read_stretch(store, (1, mid), share, 0, Some(progress));
        let second = second.join().unwrap_or_else(|_| Err(ProjectionError::Db("rebuild: a reader failed".into())));
        (first, second)
    });
    let (first, second) = (first?, second?);
    let last = second.last.or(first.last).unwrap_or_default();
    let mut parts: BTreeMap<u64, Partition> = BTreeMap::new();
    for stretch_parts in [first.parts, second.parts] {
        for (i, piece) in stretch_parts {
            parts.entry(i).or_default().pieces.push(piece);
        }
    }
    let mut system = System { configs: Vec::new(), batches: BTreeMap::new(), positions: Vec::new() };
    let mut config_positions = Vec::new();
    for (position, text, config) in first.configs.into_iter().chain(second.configs) {
        config_positions.push(position);
        system.configs.push((text, std::sync::Arc::new(config)));
    }
    for (position, number, uploaded, batch) in first.batches.into_iter().chain(second.batches) {
        // The configuration in force: the last one recorded before the batch.
        let config = config_positions.partition_point(|p| *p < position).checked_sub(1);
        system.positions.push(position);
        let list = system.batches.entry(batch.program.as_str().to_owned()).or_default();
        if batch.mode == PmhMode::Full {
            list.full.push(list.all.len());
        }
        list.all.push(BatchAt { position, number, uploaded, batch, config });
    }
    Ok((parts.into_values().collect(), system, last))
}

/// Where a spilled event is: recipient, position, offset and length of its record.
type EventAt = (u64, u64, usize, usize);

/// A partition's events, in their spilled form: the bytes (the spilled ones, then those still in
/// memory, so in position order) and, for each event, its recipient, position and where it is,
/// sorted by recipient and position.
fn events_of(part: &mut Partition) -> Result<(Vec<u8>, Vec<EventAt>), ProjectionError> {
    let mut bytes = Vec::new();
    for piece in &mut part.pieces {
        if let Some((path, file)) = piece.file.take() {
            drop(file);
            BufReader::new(File::open(&path).map_err(io("spill file"))?)
                .read_to_end(&mut bytes)
                .map_err(io("spill"))?;
            std::fs::remove_file(&path).map_err(io("spill file"))?;
        }
        bytes.append(&mut piece.mem);
    }
    let bad = || ProjectionError::Corrupt("rebuild: a spilled event is unreadable".into());
    let mut index = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes.get(at..at + 4).ok_or_else(bad)?.try_into().map_err(|_| bad())?) as usize;
        let record = bytes.get(at + 4..at + 4 + len).ok_or_else(bad)?;
        let u64_at = |i: usize| record.get(i..i + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
        let (position, n) = (u64_at(0).ok_or_else(bad)?, u64_at(8).ok_or_else(bad)?);
        index.push((n, position, at + 4, len));
        at += 4 + len;
    }
    index.sort_unstable_by_key(|(n, position, _, _)| (*n, *position));
    Ok((bytes, index))
}

/// Whether a key belongs to a search index (written last, merged from sorted runs).
fn is_index(key: &[u8]) -> bool {
    matches!(key.first(), Some(&(keys::NAME | keys::KANA | keys::PAYER | keys::RECIPIENT_NUMBER | keys::MY_NUMBER)))
}

/// A partition's search keys, sorted: in memory, or in a file of `[u16 LE length][key]`.
enum Run {
    Mem(std::vec::IntoIter<Vec<u8>>),
    File(BufReader<File>),
}

impl Run {
    fn new(keys: Vec<Vec<u8>>, dir: Option<&Path>, i: usize) -> Result<Run, ProjectionError> {
        let Some(dir) = dir else { return Ok(Run::Mem(keys.into_iter())) };
        let path = dir.join(format!("index-{i}"));
        let mut out = std::io::BufWriter::new(File::create(&path).map_err(io("index run"))?);
        for k in &keys {
            let len = u16::try_from(k.len())
                .map_err(|_| ProjectionError::Corrupt("rebuild: a search key is too long".into()))?;
            out.write_all(&len.to_le_bytes()).and_then(|()| out.write_all(k)).map_err(io("index run"))?;
        }
        out.flush().map_err(io("index run"))?;
        let file = File::open(&path).map_err(io("index run"))?;
        // Unlinked now: the open file is read to its end, and nothing is left behind.
        std::fs::remove_file(&path).map_err(io("index run"))?;
        Ok(Run::File(BufReader::with_capacity(1 << 16, file)))
    }

    fn next_key(&mut self) -> Result<Option<Vec<u8>>, ProjectionError> {
        match self {
            Run::Mem(it) => Ok(it.next()),
            Run::File(r) => {
                let mut len = [0u8; 2];
                match r.read_exact(&mut len) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                    Err(e) => return Err(io("index run")(e)),
                }
                let mut k = vec![0u8; usize::from(u16::from_le_bytes(len))];
                r.read_exact(&mut k).map_err(io("index run"))?;
                Ok(Some(k))
            }
        }
    }
}

/// Writes the runs' keys in one sorted pass (a k-way merge), in transactions of
/// `chunk` keys.
fn write_index(db: &Db, mut runs: Vec<Run>, chunk: usize) -> Result<(), ProjectionError> {
    use std::cmp::Reverse;
    let mut heap = std::collections::BinaryHeap::new();
    for (i, run) in runs.iter_mut().enumerate() {
        if let Some(k) = run.next_key()? {
            heap.push(Reverse((k, i)));
        }
    }
    let mut batch = Vec::with_capacity(chunk);
    while let Some(Reverse((k, i))) = heap.pop() {
        if let Some(next) = runs.get_mut(i).map(Run::next_key).transpose()?.flatten() {
            heap.push(Reverse((next, i)));
        }
        batch.push((k, Some(Vec::new())));
        if batch.len() >= chunk {
            db.apply(std::mem::take(&mut batch), false)?;
        }
    }
    db.apply(batch, false)
}

/// The next batch, after `after` and before `before`, that touches recipient `n`'s records as
/// the fold holds them: for a program with a record that differs from what PMH has, its next
/// batch; with only current records, its next full batch.
fn next_batch<'s>(system: &'s System, fold: &Fold<'_>, n: u64, after: u64, before: u64) -> Option<&'s BatchAt> {
    let mut best: Option<&BatchAt> = None;
    for (program, list) in &system.batches {
        let (pending, active) = fold.program_state(n, program);
        let found = if pending {
            list.all.get(list.all.partition_point(|b| b.position <= after))
        } else {
            if list.full.is_empty() || !active {
                continue;
            }
            let i = list.full.partition_point(|i| list.all.get(*i).is_some_and(|b| b.position <= after));
            list.full.get(i).and_then(|i| list.all.get(*i))
        };
        if let Some(b) = found.filter(|b| b.position < before)
            && best.is_none_or(|x| b.position < x.position)
        {
            best = Some(b);
        }
    }
    best
}

/// Puts configuration `i` (an index into the system's configurations) in force in `fold`,
/// unless it already is (`in_force`: the one that is, once one was put).
fn use_config(fold: &mut Fold<'_>, system: &System, i: Option<usize>, in_force: &mut Option<Option<usize>>) {
    if *in_force != Some(i) {
        *fold.config = i.and_then(|i| system.configs.get(i)).map(|(_, c)| c.clone());
        *in_force = Some(i);
    }
}

/// Applies the batches that touch `n`'s records between positions `after` and `before`.
fn settle(
    fold: &mut Fold<'_>,
    system: &System,
    (n, mut after, before): (u64, u64, u64),
    in_force: &mut Option<Option<usize>>,
) -> Result<(), ProjectionError> {
    let first = system.positions.partition_point(|p| *p <= after);
    if system.positions.get(first).is_none_or(|p| *p >= before) {
        return Ok(());
    }
    // Which records a batch touches depends on them: compute them.
    fold.materialize(n)?;
    while let Some(b) = next_batch(system, fold, n, after, before) {
        use_config(fold, system, b.config, in_force);
        fold.apply_batch(&b.batch, b.number, (b.position, b.uploaded), Some(n))?;
        after = b.position;
    }
    Ok(())
}

/// What a partition gives: its recipients' keys in recipient order (each recipient's in key
/// order), and their search keys, sorted.
struct Folded {
    data: Vec<KeyValue>,
    index: Vec<Vec<u8>>,
}

/// Folds one partition.
fn fold_partition(
    store: &Store,
    secret: &[u8; 32],
    system: &System,
    to: u64,
    part: &mut Partition,
) -> Result<Folded, ProjectionError> {
    let (bytes, events) = events_of(part)?;
    let bad = || ProjectionError::Corrupt("rebuild: a spilled event is unreadable".into());
    let mut out = Folded { data: Vec::new(), index: Vec::new() };
    let mut cache = HashMap::new();
    let mut config = None;
    // One fold for the partition, emptied after each recipient (it keeps only its memo of caps).
    let mut fold = Fold::new(None, store, secret, &mut cache, &mut config, usize::MAX);
    let mut in_force = None;
    let mut i = 0;
    while i < events.len() {
        let n = events[i].0;
        let mut after = 0u64;
        while let Some(&(m, position, at, len)) = events.get(i).filter(|e| e.0 == n) {
            let (_, e) = bytes.get(at..at + len).and_then(unspill).filter(|(k, _)| *k == m).ok_or_else(bad)?;
            settle(&mut fold, system, (n, after, position), &mut in_force)?;
            fold.apply(&e)?;
            after = position;
            i += 1;
        }
        settle(&mut fold, system, (n, after, to + 1), &mut in_force)?;
        // The markers follow the configuration in force at the end.
        use_config(&mut fold, system, system.configs.len().checked_sub(1), &mut in_force);
        fold.flush()?;
        fold.cache.clear();
        for (k, v) in std::mem::take(&mut fold.overlay.writes) {
            match v {
                Some(_) if is_index(&k) => out.index.push(k),
                Some(v) => out.data.push((k, v)),
                None => {}
            }
        }
    }
    out.index.sort_unstable();
    Ok(out)
}

/// Rebuilds the register of `store` up to `to` into `db` (empty but for the FORMAT key);
/// returns the position reached. `spill`: where partitions go above how many bytes of events
/// (no directory: all in memory).
pub(crate) fn rebuild(
    db: &Db,
    store: &Store,
    secret: &[u8; 32],
    to: Position,
    spill: (Option<&Path>, usize),
    progress: Progress<'_>,
) -> Result<Position, ProjectionError> {
    let spill_dir = spill.0;
    let (parts, system, hash) = read(store, to, spill, progress)?;
    let parts: Vec<Mutex<Partition>> = parts.into_iter().map(Mutex::new).collect();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, FOLD_THREADS_MAX);
    let (send, receive) = std::sync::mpsc::sync_channel::<(usize, Result<Folded, ProjectionError>)>(threads);
    let mut runs: Vec<Run> = Vec::new();
    let written = std::thread::scope(|scope| -> Result<(), ProjectionError> {
        for _ in 0..threads {
            let send = send.clone();
            let (parts, next, system) = (&parts, &next, &system);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(part) = parts.get(i) else { break };
                    let result = match part.lock() {
                        Ok(mut p) => fold_partition(store, secret, system, to.0, &mut p),
                        Err(_) => Err(ProjectionError::Db("rebuild: a fold thread failed".into())),
                    };
                    let failed = result.is_err();
                    if send.send((i, result)).is_err() || failed {
                        // Stop taking partitions: the writer stopped, or this one failed.
                        next.store(usize::MAX / 2, Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
        drop(send);
        // Written in partition order as they come (a later one may finish first): each key
        // family grows at its end. The search keys wait, as sorted runs, for one merge.
        let mut ready: BTreeMap<usize, Folded> = BTreeMap::new();
        let mut want = 0usize;
        for (i, result) in receive {
            match result {
                Ok(kv) => ready.insert(i, kv),
                Err(e) => {
                    next.store(usize::MAX / 2, Ordering::Relaxed);
                    return Err(e);
                }
            };
            while let Some(folded) = ready.remove(&want) {
                db.apply(folded.data.into_iter().map(|(k, v)| (k, Some(v))), false)?;
                runs.push(Run::new(folded.index, spill_dir, want)?);
                want += 1;
            }
        }
        if want < parts.len() {
            return Err(ProjectionError::Db("rebuild: a partition was not folded".into()));
        }
        Ok(())
    });
    written?;
    write_index(db, runs, 500_000)?;
    let mut last: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    if let Some((text, _)) = system.configs.last() {
        last.push((keys::CONFIG.to_vec(), Some(text.clone().into_bytes())));
    }
    for (program, list) in &system.batches {
        if let Some(b) = list.all.last() {
            last.push((keys::last_batch(program), Some(last_batch_value(&b.batch, b.number))));
        }
    }
    if to.0 > 0 {
        let mut v = to.0.to_be_bytes().to_vec();
        v.extend_from_slice(&hash.0);
        last.push((keys::CHECKPOINT.to_vec(), Some(v)));
    }
    db.apply(last, true)?;
    progress(to.0, to.0);
    Ok(to)
}
