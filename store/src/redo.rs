//! The redo log (再実行ログ) in front of sled: what makes an append durable.
//!
//! sled stays the log of record, but its commit costs two waits for the device (its `flush`
//! ends in `sync_file_range`, then the writer's fsync) and the engine's own work. Here the writer
//! makes each group commit durable with one `pwrite` and one `fdatasync` of a frame in a redo
//! segment, applies the same writes to sled in memory, and answers; a background flusher makes
//! sled durable every [`StoreOptions::flush_interval`] and drops the segments sled no longer
//! needs. On open, frames sled does not have yet are applied to it before anything is read.
//!
//! Files, in `redo/` beside `sled/` (owner-only, like everything of the ledger):
//! - `<first position, 20 digits>.seg`: a segment, holding frames from that position on. Its
//!   file is zero-filled and fsynced (size and name) before its first frame is written, so a
//!   frame's `fdatasync` has no file size or block allocation to record: it writes data only.
//! - `spare`: the next segment, zero-filled ahead of time by the flusher, renamed into place at
//!   a segment switch (a rename and one directory fsync instead of writing a segment's zeros).
//! - `*.tmp`: a file being zero-filled; removed at open.
//!
//! A frame is `length (u32 LE), CRC-32 of the body (u32 LE), body`; the body is `first, last
//! (u64 LE: the group's positions), count (u32 LE), then count times key length (u32 LE), key,
//! value length (u32 LE), value`: exactly the writes of the group's sled batch, the head record
//! among them. A zero length ends a segment.
//!
//! Recovery (see [`recover`]): the frames must follow one another without a gap, the first must
//! start at or before `P + 1` where `P` is the head sled recovered, and the last must end at or
//! after `P`; otherwise acknowledged events are missing and the store refuses to open. Then every
//! frame is applied again in order: a frame holds whole values and later frames overwrite
//! earlier ones, so the result does not depend on which of sled's own unflushed writes survived.
//! Only the last frame written can be torn (the writer writes the next frame only after the
//! previous one's `fdatasync` returned), so a frame that fails its check must be followed by
//! zeros to the segment's end; otherwise the segment was altered and the store refuses to open.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::error::StoreError;
use crate::writer::sync_dir;

/// Points of the write path where a crash is worth testing; the crash test pauses the process
/// at one of them (through [`StoreOptions::probe`]) and kills it there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WritePoint {
    /// A spare segment's zeros are written and synced, not yet renamed to `spare`.
    SpareFilled,
    /// A segment switch renamed the spare into place; the directory is not synced yet.
    SegmentRenamed,
    /// Half of a frame is written.
    FrameHalfWritten,
    /// A whole frame is written, not yet synced.
    FrameWritten,
    /// A frame is durable, not yet applied to sled nor acknowledged.
    FrameSynced,
    /// The flusher's sled flush returned; the files are not fsynced yet.
    SledFlushed,
    /// The flusher removed one segment sled no longer needs.
    SegmentRemoved,
    /// The applier took queued groups and is about to insert them into sled.
    Applying,
    /// The applier stopped on a failure: the failure is recorded and its queue refuses groups.
    ApplierStopped,
}

/// How a store is opened. [`StoreOptions::default`] is what the program uses.
#[derive(Clone)]
pub struct StoreOptions {
    /// Size of a redo segment, in bytes (a frame larger than this gets a segment of its own).
    pub redo_segment_bytes: u64,
    /// How often the flusher makes sled durable and drops redo segments: the most the redo log
    /// holds, and what an open after a crash replays.
    pub flush_interval: Duration,
    /// Called at each [`WritePoint`] (the crash test); `None` in the program.
    pub probe: Option<Arc<dyn Fn(WritePoint) + Send + Sync>>,
    /// sled's segment size for a store created with these options ([`crate::SEGMENT_BYTES`];
    /// tests on a disk of a few MiB take less). An existing store keeps its own.
    pub sled_segment_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            redo_segment_bytes: 16 << 20,
            flush_interval: Duration::from_millis(500),
            probe: None,
            sled_segment_bytes: crate::SEGMENT_BYTES,
        }
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("redo_segment_bytes", &self.redo_segment_bytes)
            .field("flush_interval", &self.flush_interval)
            .field("probe", &self.probe.is_some())
            .field("sled_segment_bytes", &self.sled_segment_bytes)
            .finish()
    }
}

impl StoreOptions {
    pub(crate) fn at(&self, point: WritePoint) {
        if let Some(probe) = &self.probe {
            probe(point);
        }
    }
}

const SEGMENT_SUFFIX: &str = ".seg";
const SPARE: &str = "spare";
const FRAME_HEADER: usize = 8;
/// Zeros are written in blocks of this size.
const ZERO_BLOCK: usize = 1 << 20;

pub(crate) fn redo_dir(store_dir: &Path) -> PathBuf {
    store_dir.join("redo")
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}{SEGMENT_SUFFIX}"))
}

fn owner_only() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.mode(0o600);
    o
}

/// The segments in `dir`, by first position.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if let Some(first) = name.strip_suffix(SEGMENT_SUFFIX).and_then(|n| n.parse::<u64>().ok()) {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Whether the store in `store_dir` has redo segments (frames sled may not have yet).
pub(crate) fn holds_frames(store_dir: &Path) -> Result<bool, StoreError> {
    let dir = redo_dir(store_dir);
    Ok(dir.is_dir() && !segments(&dir)?.is_empty())
}

/// Writes `bytes` zeros to a new file `path` (mode 0600) and fsyncs it.
fn zero_file(path: &Path, bytes: u64) -> std::io::Result<File> {
    let file = owner_only().read(true).write(true).create(true).truncate(true).open(path)?;
    let zeros = vec![0u8; ZERO_BLOCK];
    let mut at = 0u64;
    while at < bytes {
        let n = usize::try_from((bytes - at).min(ZERO_BLOCK as u64)).unwrap_or(ZERO_BLOCK);
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()?;
    Ok(file)
}

/// One group's writes as a frame.
pub(crate) fn encode_frame(first: u64, last: u64, writes: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let body_len: usize = 20 + writes.iter().map(|(k, v)| 8 + k.len() + v.len()).sum::<usize>();
    let mut frame = Vec::with_capacity(FRAME_HEADER + body_len);
    frame.extend_from_slice(&[0; FRAME_HEADER]);
    frame.extend_from_slice(&first.to_le_bytes());
    frame.extend_from_slice(&last.to_le_bytes());
    frame.extend_from_slice(&(writes.len() as u32).to_le_bytes());
    for (k, v) in writes {
        frame.extend_from_slice(&(k.len() as u32).to_le_bytes());
        frame.extend_from_slice(k);
        frame.extend_from_slice(&(v.len() as u32).to_le_bytes());
        frame.extend_from_slice(v);
    }
    let len = (frame.len() - FRAME_HEADER) as u32;
    let crc = crc32fast::hash(&frame[FRAME_HEADER..]);
    frame[..4].copy_from_slice(&len.to_le_bytes());
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    frame
}

/// A decoded frame: the group's positions and its writes.
struct Frame {
    first: u64,
    last: u64,
    writes: Vec<(Vec<u8>, Vec<u8>)>,
}

fn decode_body(body: &[u8]) -> Option<Frame> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = body.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    let u64_at = |b: &[u8]| b.try_into().ok().map(u64::from_le_bytes);
    let first = u64_at(take(8)?)?;
    let last = u64_at(take(8)?)?;
    let count = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let mut writes = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let klen = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let key = take(klen)?.to_vec();
        let vlen = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        let value = take(vlen)?.to_vec();
        writes.push((key, value));
    }
    (at == body.len() && first >= 1 && first <= last).then_some(Frame { first, last, writes })
}

/// The frames of one segment, in order, and whether it ended in a torn frame.
fn read_segment(path: &Path) -> Result<Vec<Frame>, StoreError> {
    let bytes = std::fs::read(path)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("segment").to_owned();
    let mut frames = Vec::new();
    let mut at = 0usize;
    while at + FRAME_HEADER <= bytes.len() {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        let crc = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]]);
        if len == 0 && crc == 0 {
            // The zeros after the last frame, unless a whole frame follows: then the header of
            // an acknowledged frame was zeroed.
            if let Some(later) = whole_frame_after(&bytes, at, frames.last().map_or(0, |f: &Frame| f.last)) {
                return Err(StoreError::Damaged {
                    position: frames.last().map(|f: &Frame| crate::Position(f.last + 1)),
                    reason: format!("redo segment {name}: zeros at byte {at} hide the frame at byte {later}"),
                });
            }
            break;
        }
        let body = at.checked_add(FRAME_HEADER + len).and_then(|end| bytes.get(at + FRAME_HEADER..end));
        let frame = body.filter(|b| crc32fast::hash(b) == crc).and_then(decode_body);
        match frame {
            Some(f) => {
                frames.push(f);
                at += FRAME_HEADER + len;
            }
            None => {
                // A torn last frame: whatever of it reached the disk, then only zeros. Its own
                // extent is unknown when the length is what was torn, so everything after the
                // header must be zero up to where a frame of that length would end, and beyond.
                // And no whole frame may follow anywhere (a length that was changed would
                // otherwise hide the frames after it).
                let end = at.saturating_add(FRAME_HEADER).saturating_add(len).min(bytes.len());
                let rest_is_zero = bytes[end..].iter().all(|b| *b == 0);
                let hidden = whole_frame_after(&bytes, at + 1, frames.last().map_or(0, |f: &Frame| f.last));
                if !rest_is_zero || hidden.is_some() {
                    return Err(StoreError::Damaged {
                        position: frames.last().map(|f: &Frame| crate::Position(f.last + 1)),
                        reason: format!("redo segment {name}: a damaged frame at byte {at} is followed by data"),
                    });
                }
                break;
            }
        }
    }
    Ok(frames)
}

/// The offset of a whole frame (its CRC right, its positions after `after`) starting at or after
/// byte `from`, if there is one. A torn last frame is never followed by one, since a frame is
/// written only after the one before it was synced. Offsets are tried one by one, the cheap
/// position checks before the CRC.
fn whole_frame_after(bytes: &[u8], from: usize, after: u64) -> Option<usize> {
    let group_max = (crate::limits::BATCH_REQUESTS_MAX * crate::limits::EVENTS_PER_REQUEST_MAX) as u64;
    let u32_at = |o: usize| bytes.get(o..o + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
    let u64_at = |o: usize| bytes.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes);
    let whole_at = |o: usize| {
        let (Some(len), Some(crc), Some(first), Some(last)) = (u32_at(o), u32_at(o + 4), u64_at(o + 8), u64_at(o + 16))
        else {
            return false;
        };
        let len = len as usize;
        first > after
            && first <= last
            && last - first < group_max
            && len >= 20
            && o + FRAME_HEADER + len <= bytes.len()
            && crc32fast::hash(&bytes[o + FRAME_HEADER..o + FRAME_HEADER + len]) == crc
    };
    let end = bytes.len().saturating_sub(FRAME_HEADER + 20);
    let mut o = from;
    while o < end {
        if u32_at(o) == Some(0) {
            // No frame starts where its length is zero, and a frame's first non-zero byte is in
            // its length: go to three bytes before the next non-zero byte.
            let next = bytes[o..].iter().position(|b| *b != 0)?;
            o = (o + next).saturating_sub(3).max(o + 1);
            continue;
        }
        if whole_at(o) {
            return Some(o);
        }
        o += 1;
    }
    None
}

/// What [`recover`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Recovered {
    pub frames_applied: u64,
    pub segments_removed: u64,
}

/// Applies to sled every frame of the redo log it does not have, makes sled durable, and removes
/// the segments. `sled_head` reads the head sled holds (after each applied frame it moves on).
pub(crate) fn recover(
    store_dir: &Path,
    db: &sled::Db,
    tree: &sled::Tree,
    sled_head: u64,
) -> Result<Recovered, StoreError> {
    let dir = redo_dir(store_dir);
    let mut done = Recovered::default();
    if !dir.is_dir() {
        return Ok(done);
    }
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            std::fs::remove_file(&path)?;
        }
    }
    let segs = segments(&dir)?;
    if segs.is_empty() {
        return Ok(done);
    }
    // Every frame, in order, contiguous. They are all applied again, not only those after the
    // head sled reports: a frame's writes are whole values, later frames overwrite earlier ones,
    // so the result does not depend on which of sled's undurable writes survived the crash.
    let mut frames = Vec::new();
    for (first, path) in &segs {
        let expected = frames.last().map_or(*first, |f: &Frame| f.last + 1);
        if *first != expected {
            return Err(StoreError::Damaged {
                position: Some(crate::Position(expected)),
                reason: format!("the redo log starts a segment at {first} where {expected} was next: a gap"),
            });
        }
        for frame in read_segment(path)? {
            let expected = frames.last().map_or(*first, |f: &Frame| f.last + 1);
            if frame.first != expected {
                return Err(StoreError::Damaged {
                    position: Some(crate::Position(expected)),
                    reason: format!(
                        "the redo log holds {}..{} where {expected} was next: a gap",
                        frame.first, frame.last
                    ),
                });
            }
            frames.push(frame);
        }
    }
    let (Some(oldest), Some(newest)) = (frames.first(), frames.last()) else {
        for (_, path) in &segs {
            std::fs::remove_file(path)?;
            done.segments_removed += 1;
        }
        sync_dir(&dir)?;
        return Ok(done);
    };
    if oldest.first > sled_head + 1 {
        return Err(StoreError::Damaged {
            position: Some(crate::Position(sled_head + 1)),
            reason: format!("the redo log starts at {} but sled ends at {sled_head}: events are missing", oldest.first),
        });
    }
    if newest.last < sled_head {
        // sled never gets ahead of the redo log's last frame (the applier applies only what
        // is in it, and its last segment stays until sled is durable and the writer closed).
        return Err(StoreError::Damaged {
            position: Some(crate::Position(newest.last + 1)),
            reason: format!("sled holds events up to {sled_head}, beyond the redo log's last frame at {}", newest.last),
        });
    }
    for frame in frames {
        let mut batch = sled::Batch::default();
        for (k, v) in frame.writes {
            batch.insert(k, v);
        }
        tree.apply_batch(batch)?;
        done.frames_applied += 1;
    }
    if done.frames_applied > 0 {
        db.flush()?;
        sync_sled_files(&store_dir.join("sled"), &mut HashMap::new())?;
    }
    for (_, path) in &segs {
        std::fs::remove_file(path)?;
        done.segments_removed += 1;
    }
    sync_dir(&dir)?;
    Ok(done)
}

/// fsyncs the sled database file, then every file of the sled directory and `blobs/` not in
/// `synced` at its present length (sled writes large messages to blob files and never fsyncs
/// them; a blob may still be being written when it is listed, so a file is synced again when it
/// has grown since), then those directories when a file was new. sled's `flush()` ends in
/// `sync_file_range`, which flushes neither the device cache nor the file size.
pub(crate) fn sync_sled_files(sled_dir: &Path, synced: &mut HashMap<PathBuf, u64>) -> std::io::Result<()> {
    File::open(sled_dir.join("db"))?.sync_all()?;
    for dir in [sled_dir.to_path_buf(), sled_dir.join("blobs")] {
        if !dir.is_dir() {
            continue;
        }
        let mut created = false;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if !path.is_file() {
                continue;
            }
            // A file may vanish between listing and opening (sled removes old snapshots).
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            // The length before the sync: if the file grows after it, the next pass syncs again.
            let len = file.metadata()?.len();
            if synced.get(&path) == Some(&len) {
                continue;
            }
            file.sync_all()?;
            created |= synced.insert(path, len).is_none();
        }
        if created {
            sync_dir(&dir)?;
        }
    }
    Ok(())
}

/// State shared by the writer and the flusher.
pub(crate) struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Last position applied to sled (in memory).
    applied: u64,
    /// Last position sled holds durably.
    durable: u64,
    /// Last position the redo log holds durably (the writer's last synced frame).
    written: u64,
    /// First positions of the segments in use, the writer's current one last.
    segments: Vec<u64>,
    /// A spare segment is ready.
    spare: bool,
    /// The writer switched segments: make a spare.
    want_spare: bool,
    /// The writer has stopped: flush, remove every segment, end.
    closing: bool,
    /// The flusher failed: the writer must stop.
    failure: Option<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a thread panicked holding it; the state is plain data and stays
        // usable (the writer stops on the flusher's failure record, not on poison).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The flusher's or the applier's failure, if one had one.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// Records a failure of a background thread: the writer stops at its next commit.
    pub fn fail(&self, e: String) {
        self.lock().failure.get_or_insert(e);
    }

    /// Records that sled now holds (in memory) everything up to `last`.
    pub fn applied(&self, last: u64) {
        self.lock().applied = last;
    }
}

/// The writer's side of the redo log.
pub(crate) struct RedoWriter {
    dir: PathBuf,
    options: StoreOptions,
    /// The current segment: file, first position, write offset, size.
    current: Option<(File, u64, u64, u64)>,
    shared: Arc<Shared>,
}

impl RedoWriter {
    /// After [`recover`]: no segment is in use; sled holds `head` durably.
    pub fn new(store_dir: &Path, head: u64, options: StoreOptions) -> Result<(RedoWriter, Arc<Shared>), StoreError> {
        let dir = redo_dir(store_dir);
        if !dir.is_dir() {
            std::fs::create_dir(&dir)?;
            sync_dir(store_dir)?;
        }
        let spare = dir.join(SPARE).is_file();
        let shared = Arc::new(Shared {
            state: Mutex::new(State { applied: head, durable: head, written: head, spare, ..State::default() }),
            wake: Condvar::new(),
        });
        Ok((RedoWriter { dir, options, current: None, shared: shared.clone() }, shared))
    }

    /// Makes `frame` (positions `first..=last`) durable: on return it survives a crash.
    pub fn append(&mut self, frame: &[u8], first: u64, last: u64) -> std::io::Result<()> {
        let len = frame.len() as u64;
        let fits = self.current.as_ref().is_some_and(|(_, _, offset, size)| offset + len + 8 <= *size);
        if !fits {
            self.switch(first, len + 8)?;
        }
        let Some((file, _, offset, _)) = self.current.as_mut() else {
            return Err(std::io::Error::other("no redo segment"));
        };
        if self.options.probe.is_some() {
            let half = frame.len() / 2;
            file.write_all_at(&frame[..half], *offset)?;
            self.options.at(WritePoint::FrameHalfWritten);
            file.write_all_at(&frame[half..], *offset + half as u64)?;
        } else {
            file.write_all_at(frame, *offset)?;
        }
        self.options.at(WritePoint::FrameWritten);
        file.sync_data()?;
        *offset += len;
        self.shared.lock().written = last;
        self.options.at(WritePoint::FrameSynced);
        Ok(())
    }

    /// Starts a segment for frames from `first`, of at least `need` bytes (room for the frame
    /// and the zero header that ends the segment).
    fn switch(&mut self, first: u64, need: u64) -> std::io::Result<()> {
        let size = self.options.redo_segment_bytes.max(need.next_multiple_of(4096));
        let path = segment_path(&self.dir, first);
        let spare = std::mem::take(&mut self.shared.lock().spare);
        let file = if spare && std::fs::metadata(self.dir.join(SPARE)).is_ok_and(|m| m.len() >= size) {
            std::fs::rename(self.dir.join(SPARE), &path)?;
            self.options.at(WritePoint::SegmentRenamed);
            owner_only().read(true).write(true).open(&path)?
        } else {
            let tmp = self.dir.join(format!("{first:020}.tmp"));
            let file = zero_file(&tmp, size)?;
            std::fs::rename(&tmp, &path)?;
            self.options.at(WritePoint::SegmentRenamed);
            file
        };
        sync_dir(&self.dir)?;
        self.current = Some((file, first, 0, size));
        let mut state = self.shared.lock();
        state.segments.push(first);
        state.want_spare = true;
        self.shared.wake.notify_all();
        Ok(())
    }
}

/// The flusher: every interval (or when woken) makes sled durable up to what was applied, then
/// removes the segments wholly behind it, and keeps a spare segment ready.
pub(crate) struct Flusher {
    pub store_dir: PathBuf,
    pub db: sled::Db,
    pub options: StoreOptions,
    pub shared: Arc<Shared>,
}

impl Flusher {
    pub fn run(self) {
        let dir = redo_dir(&self.store_dir);
        let sled_dir = self.store_dir.join("sled");
        let mut synced = HashMap::new();
        let mut last_flush = std::time::Instant::now();
        loop {
            let (applied, durable, closing, want_spare, flush) = {
                let mut state = self.shared.lock();
                let due = |since: std::time::Instant| self.options.flush_interval.saturating_sub(since.elapsed());
                if !state.closing && !state.want_spare && !due(last_flush).is_zero() {
                    state = self
                        .shared
                        .wake
                        .wait_timeout(state, due(last_flush))
                        .map(|(s, _)| s)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                // Woken to make a spare, sled is flushed only when its interval is due as well.
                let flush = state.closing || due(last_flush).is_zero();
                (state.applied, state.durable, state.closing, std::mem::take(&mut state.want_spare), flush)
            };
            if flush {
                last_flush = std::time::Instant::now();
            }
            let applied = if flush { applied } else { durable };
            let result = self.cycle(&dir, &sled_dir, &mut synced, applied, durable, closing, want_spare);
            if let Err(e) = result {
                self.shared.fail(e);
                return;
            }
            if closing {
                return;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn cycle(
        &self,
        dir: &Path,
        sled_dir: &Path,
        synced: &mut HashMap<PathBuf, u64>,
        applied: u64,
        durable: u64,
        closing: bool,
        want_spare: bool,
    ) -> Result<(), String> {
        if applied > durable {
            self.db.flush().map_err(|e| format!("sled flush: {e}"))?;
            self.options.at(WritePoint::SledFlushed);
            sync_sled_files(sled_dir, synced).map_err(|e| format!("fsync sled files: {e}"))?;
            self.shared.lock().durable = applied;
        }
        // Segments wholly at or before what sled holds durably: every one but the writer's
        // current one (while it runs) whose successor starts at or before durable + 1.
        let removable: Vec<u64> = {
            let state = self.shared.lock();
            let segs = &state.segments;
            let mut out = Vec::new();
            for (i, first) in segs.iter().enumerate() {
                let behind = match segs.get(i + 1) {
                    Some(next) => *next <= state.durable + 1,
                    // The writer's last segment goes only once sled holds every frame the redo
                    // log does: after an applier failure, frames beyond what was applied stay
                    // for recovery.
                    None => closing && state.durable == state.written,
                };
                if !behind {
                    break;
                }
                out.push(*first);
            }
            out
        };
        for first in &removable {
            std::fs::remove_file(segment_path(dir, *first)).map_err(|e| format!("remove redo segment: {e}"))?;
            self.shared.lock().segments.retain(|s| s != first);
            self.options.at(WritePoint::SegmentRemoved);
        }
        if !removable.is_empty() {
            sync_dir(dir).map_err(|e| format!("fsync redo directory: {e}"))?;
        }
        if want_spare && !closing && !self.shared.lock().spare {
            // A spare only saves the writer zero-filling its next segment itself: failing to
            // make one (a full disk) is not a failure of the write path, which meets the same
            // disk at its next switch and stops there if it must.
            let tmp = dir.join(format!("{SPARE}.tmp"));
            let made = zero_file(&tmp, self.options.redo_segment_bytes).and_then(|_| {
                self.options.at(WritePoint::SpareFilled);
                std::fs::rename(&tmp, dir.join(SPARE))?;
                sync_dir(dir)
            });
            match made {
                Ok(()) => self.shared.lock().spare = true,
                Err(_) => {
                    let _ = std::fs::remove_file(&tmp);
                }
            }
        }
        Ok(())
    }
}

/// Signals the flusher that the writer stopped.
pub(crate) fn close(shared: &Shared) {
    shared.lock().closing = true;
    shared.wake.notify_all();
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_frame_round_trips_and_a_flipped_bit_is_refused() {
        let writes = vec![(b"Lkey".to_vec(), vec![7u8; 300]), (b"Mhead".to_vec(), vec![1, 2, 3])];
        let frame = encode_frame(5, 9, &writes);
        let len = u32::from_le_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len + FRAME_HEADER, frame.len());
        let f = decode_body(&frame[FRAME_HEADER..]).unwrap();
        assert_eq!((f.first, f.last), (5, 9));
        assert_eq!(f.writes, writes);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("00000000000000000005.seg");
        let mut bytes = frame.clone();
        bytes.extend(encode_frame(10, 10, &writes));
        bytes.extend(vec![0u8; 4096]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_segment(&path).unwrap().len(), 2);
        // A torn second frame (its tail never written) ends the segment after the first.
        let mut torn = bytes.clone();
        let second = frame.len();
        for b in &mut torn[second + 20..second + frame.len()] {
            *b = 0;
        }
        std::fs::write(&path, &torn).unwrap();
        assert_eq!(read_segment(&path).unwrap().len(), 1);
        // A changed byte in the first frame, with the second after it: damage, not a torn tail.
        let mut altered = bytes.clone();
        altered[FRAME_HEADER + 30] ^= 1;
        std::fs::write(&path, &altered).unwrap();
        assert!(matches!(read_segment(&path), Err(StoreError::Damaged { .. })));
    }

    #[test]
    fn a_zeroed_header_or_a_changed_length_cannot_hide_later_frames() {
        let writes = vec![(b"Lkey".to_vec(), vec![7u8; 300])];
        let frames = [encode_frame(1, 1, &writes), encode_frame(2, 3, &writes), encode_frame(4, 4, &writes)];
        let mut bytes: Vec<u8> = frames.concat();
        bytes.extend(vec![0u8; 8192]);
        let second = frames[0].len();
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("00000000000000000001.seg");
        let read = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            read_segment(&path).map(|f| f.len())
        };
        assert_eq!(read(&bytes).unwrap(), 3);
        // The second frame's header zeroed: it looks like the end of the segment.
        let mut zeroed = bytes.clone();
        zeroed[second..second + FRAME_HEADER].fill(0);
        assert!(matches!(read(&zeroed), Err(StoreError::Damaged { .. })), "{:?}", read(&zeroed).map(|_| ()));
        // Its length changed to reach past the third frame into the zeros.
        let mut longer = bytes.clone();
        let len = (frames[1].len() + frames[2].len() + 100) as u32;
        longer[second..second + 4].copy_from_slice(&len.to_le_bytes());
        assert!(matches!(read(&longer), Err(StoreError::Damaged { .. })));
        // A torn last frame, its header intact or zeroed, still ends the segment quietly.
        let third = second + frames[1].len();
        let mut torn = bytes.clone();
        torn[third + 40..third + frames[2].len()].fill(0);
        assert_eq!(read(&torn).unwrap(), 2);
        torn[third..third + FRAME_HEADER].fill(0);
        assert_eq!(read(&torn).unwrap(), 2);
    }
}
