//! PMH export batches, computed from the register at a known position.
//!
//! - diff-history: every record whose current content differs from what PMH has (new, changed,
//!   or withdrawn: sent with `isDeleted: true` and the content PMH had);
//! - full: every current record of the program; for a diff-history program then the
//!   withdrawals PMH still has. A full batch of a full-mode program replaces the program at PMH
//!   ([`replaces`]).
//!
//! Records failing validation are held back (listed, not sent; they stay pending, or, left out
//! of a full replacement, are no longer at PMH). The output
//! depends only on the log up to the batch's position, so a past batch regenerates byte for
//! byte. Files are streamed record by record into writers the caller supplies (memory stays
//! flat for a batch of millions of records); nothing here writes the log.

use daicho_domain::config::{Config, PmhMode, Program, ProgramKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use std::io::Write;

use crate::db::Db;
use crate::pmh::{HoldReason, Outgoing, PmhRecord, csv_document, unrepresentable, validate};
use crate::query::Reader;
use crate::register::{Entry, entries_from, held_count, held_from, read_values};
use crate::render::FilesWriter;
use crate::{ProjectionError, Projections, keys};

/// A record held back, named without personal data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    pub recipient: u64,
    pub certificate: String,
    pub history_key: String,
    pub reasons: Vec<HeldReason>,
}

/// One reason, coded and in Japanese.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeldReason {
    pub code: &'static str,
    pub message: &'static str,
}

impl From<HoldReason> for HeldReason {
    fn from(r: HoldReason) -> Self {
        HeldReason { code: r.code(), message: r.message() }
    }
}

/// Characters clinics will see as "●" in an exported record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Warning {
    pub history_key: String,
    pub field: &'static str,
    pub characters: Vec<String>,
}

/// A file of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub name: String,
    /// SHA-256 of the content, lower-case hex.
    pub sha256: String,
    /// Length of the content in bytes.
    pub len: u64,
    /// The content, when the batch was computed in memory ([`Projections::compute_batch`]);
    /// `None` when it was streamed to a file ([`Projections::write_batch`]).
    pub bytes: Option<Vec<u8>>,
}

/// One program's batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub program: ProgramKey,
    pub mode: PmhMode,
    pub from_position: u64,
    pub to_position: u64,
    pub records: u32,
    pub deleted: u32,
    /// Records PMH had that this full replacement leaves out (held back or withdrawn).
    pub dropped: u32,
    /// The records held back (保留) that the batch lists: of a full batch all of them; of a
    /// diff, those not listed as they are now by an earlier batch (held back since, changed
    /// since, or held back for other reasons since).
    pub held_back: Vec<Held>,
    /// Every record held back, listed or not.
    pub held_total: u32,
    pub warnings: Vec<Warning>,
    /// The JSON and CSV files; empty when there is nothing to send.
    pub files: Vec<File>,
}

/// `diff` or `full` in file names.
pub fn mode_name(mode: PmhMode) -> &'static str {
    match mode {
        PmhMode::Full => "full",
        PmhMode::DiffHistory => "diff",
    }
}

/// What a batch would hold, without its files (the web UI's preview).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub program: ProgramKey,
    pub mode: PmhMode,
    /// Records that would be sent (deletions included).
    pub records: u32,
    /// Of which deletions.
    pub deleted: u32,
    /// Records PMH has that a full replacement would leave out.
    pub dropped: u32,
    /// The records held back that the batch would list (see [`Batch::held_back`]).
    pub held_back: Vec<Held>,
    /// Every record held back, listed or not.
    pub held_total: u32,
    pub warnings: Vec<Warning>,
}

/// The names of a batch's data files: `<program>_<mode>_<from>-<to>.json` and `.csv`.
pub fn file_names(program: &ProgramKey, mode: PmhMode, from_position: u64, to_position: u64) -> [String; 2] {
    let base = format!("{program}_{}_{from_position}-{to_position}", mode_name(mode));
    [format!("{base}.json"), format!("{base}.csv")]
}

/// What the scan hands to the renderer: records (with whether each is a withdrawal), then the
/// end of a complete scan.
enum ToRenderer {
    Records(Vec<(PmhRecord, bool)>),
    End,
}

const RENDERER_STOPPED: &str = "the renderer stopped";

/// Records per chunk handed from the scan to the renderer, and chunks in flight.
const RENDER_CHUNK: usize = 1024;
const RENDER_QUEUE: usize = 8;

/// A writer that counts and hashes (SHA-256) what passes through it.
pub struct Hashing<W> {
    inner: W,
    sha: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W> Hashing<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Hashing { inner, sha: Sha256::new(), len: 0 }
    }

    /// The writer, the SHA-256 (lower-case hex) and the length of what was written.
    pub fn done(self) -> (W, String, u64) {
        let hex = self.sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
        (self.inner, hex, self.len)
    }
}

/// The renderer's end of a file: filled buffers go to the file's thread, emptied ones come back.
struct Pipe {
    full: std::sync::mpsc::SyncSender<Vec<u8>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl crate::render::Sink for Pipe {
    fn take(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        let next = self.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(buf.capacity()));
        let full = std::mem::replace(buf, next);
        self.full.send(full).map_err(|_| std::io::Error::other("the file writer stopped"))
    }
}

/// Buffers in flight to a file's thread.
const PIPE_QUEUE: usize = 4;

/// A thread that hashes and writes into `file` every buffer sent through the returned pipe,
/// until the pipe is dropped; it returns the file (or stops at its first error).
fn pipe<'s, W: Write + Send + 's>(
    scope: &'s std::thread::Scope<'s, '_>,
    mut file: Hashing<W>,
) -> (Pipe, std::thread::ScopedJoinHandle<'s, std::io::Result<Hashing<W>>>) {
    let (full, buffers) = std::sync::mpsc::sync_channel::<Vec<u8>>(PIPE_QUEUE);
    let (give_back, spare) = std::sync::mpsc::channel::<Vec<u8>>();
    let handle = scope.spawn(move || {
        for mut buf in buffers {
            file.write_all(&buf)?;
            buf.clear();
            // The renderer may have finished: a buffer it no longer wants is dropped.
            let _ = give_back.send(buf);
        }
        Ok(file)
    });
    (Pipe { full, spare }, handle)
}

/// What a scan found besides the records themselves.
struct Scanned {
    records: u32,
    deleted: u32,
    /// Records PMH has that a full replacement leaves out (held back, or withdrawn): after the
    /// upload PMH no longer has them.
    dropped: u32,
    held_back: Vec<Held>,
    held_total: u32,
    warnings: Vec<Warning>,
}

fn io_err(e: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Corrupt(format!("writing a batch file: {e}"))
}

/// Whether a batch of `program` in `mode` replaces every record of the program at PMH: a full
/// batch of a program registered with PMH in full mode (全件連携). A full batch of a
/// diff-history program only resends records, so it carries the withdrawals PMH still needs.
/// (Our reading of the file design, to confirm with the official ファイル設計書.)
pub fn replaces(program: &Program, mode: PmhMode) -> bool {
    mode == PmhMode::Full && program.pmh_mode == PmhMode::Full
}

/// Visits every record a batch of `program` in `mode` would send, in file order, with
/// whether it is sent as deleted; collects held-back records and "●" warnings.
///
/// - diff-history: every record whose current content differs from what PMH has (the `D`
///   markers), and the list of those validation holds back (the `H` markers' values);
/// - full: every current record, then (for a diff-history program) the withdrawals PMH still
///   has; a full replacement sends no withdrawal, and counts what it drops.
fn scan(
    db: &Db,
    program: &Program,
    mode: PmhMode,
    each: &mut dyn FnMut(PmhRecord, bool) -> Result<(), ProjectionError>,
) -> Result<Scanned, ProjectionError> {
    let key = program.key.as_str();
    let replacing = replaces(program, mode);
    // (prefix, whether the pass looks at withdrawn records only)
    // A marker names a recipient with such an entry in the program: its other entries are
    // skipped (a pending marker's pass visits pending entries, an active one's current ones).
    let pending = |e: &Entry| e.pending();
    // A record PMH refused is not sent again until corrected, not even in full.
    let active = |e: &Entry| e.current().is_some() && !e.refused_unchanged();
    type Pass<'a> = (Vec<u8>, bool, &'a (dyn Fn(&Entry) -> bool + Sync));
    let passes: Vec<Pass<'_>> = match mode {
        PmhMode::DiffHistory => vec![(keys::program_prefix(keys::DIRTY, key), false, &pending)],
        PmhMode::Full => vec![
            (keys::program_prefix(keys::ACTIVE, key), false, &active),
            (keys::program_prefix(keys::DIRTY, key), true, &pending),
        ],
    };
    let mut out =
        Scanned { records: 0, deleted: 0, dropped: 0, held_back: Vec::new(), held_total: 0, warnings: Vec::new() };
    let view = db.view()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
    for (prefix, withdrawn_only, visits) in passes {
        let mut markers = view.scan_prefix(&prefix)?;
        // A window of recipients read in key order: their stored entries.
        let mut read_window = || -> Result<Vec<(u64, Vec<u8>)>, ProjectionError> {
            let mut wanted: Vec<u64> = Vec::with_capacity(SCAN_WINDOW);
            for item in markers.by_ref() {
                let (k, _) = item?;
                wanted.extend(keys::tail_recipient(&k));
                if wanted.len() >= SCAN_WINDOW {
                    break;
                }
            }
            read_values(&view, keys::entries_of, &wanted)
        };
        let mut visit = |decoded: Vec<(u64, Entry)>, out: &mut Scanned| -> Result<(), ProjectionError> {
            for (n, entry) in decoded {
                let (current, exported, withdrawn) = entry.into_parts();
                match (current, withdrawn) {
                    // The full pass over pending records is for withdrawals only: current ones
                    // were visited with the active records.
                    (Some(_), _) if withdrawn_only => {}
                    (Some(current), _) => {
                        let reasons = validate(&current, Some(program));
                        if reasons.is_empty() {
                            for (field, characters) in unrepresentable(&current) {
                                out.warnings.push(Warning {
                                    history_key: current.history_key().to_string(),
                                    field,
                                    characters,
                                });
                            }
                            each(current, false)?;
                            out.records = out.records.saturating_add(1);
                        } else if mode == PmhMode::DiffHistory {
                            // Listed once, from the `H` markers below: a recipient with a
                            // record to send and another held back has both markers.
                        } else {
                            if replacing && exported {
                                out.dropped = out.dropped.saturating_add(1);
                            }
                            out.held_back.push(Held {
                                recipient: n,
                                certificate: current.certificate.clone(),
                                history_key: current.history_key().to_string(),
                                reasons: reasons.into_iter().map(Into::into).collect(),
                            });
                        }
                    }
                    (None, Some(_)) if replacing => out.dropped = out.dropped.saturating_add(1),
                    (None, Some(withdrawn)) => {
                        each(withdrawn, true)?;
                        out.records = out.records.saturating_add(1);
                        out.deleted = out.deleted.saturating_add(1);
                    }
                    (None, None) => {}
                }
            }

            Ok(())
        };
        // Each window's entries are decoded on all cores (decoding is most of a scan's work)
        // while this thread visits the window before it, in order, and reads the next one.
        let mut window = read_window()?;
        let mut decoded: Option<Vec<(u64, Entry)>> = None;
        while !window.is_empty() {
            let (this, next) = std::thread::scope(|s| {
                let worker = s.spawn(|| decode_window(&window, threads, key, visits));
                let next = match decoded.take() {
                    Some(d) => visit(d, &mut out).and_then(|()| read_window()),
                    None => read_window(),
                };
                let this =
                    worker.join().unwrap_or_else(|_| Err(ProjectionError::Corrupt("a scan worker panicked".into())));
                (this, next)
            });
            decoded = Some(this?);
            window = next?;
        }
        if let Some(d) = decoded {
            visit(d, &mut out)?;
        }
    }
    if mode == PmhMode::DiffHistory {
        // What validation holds back, as the markers list it: their entries are not read. A
        // diff lists the records not yet listed as they are now (`H`), and counts the others
        // (`L`) by their values' lengths alone.
        for item in view.scan_prefix(&keys::program_prefix(keys::LISTED, key))? {
            let (_, v) = item?;
            out.held_total = out.held_total.saturating_add(held_count(&v)?);
        }
        for item in view.scan_prefix(&keys::program_prefix(keys::HELD, key))? {
            let (k, v) = item?;
            let Some(n) = keys::tail_recipient(&k) else { continue };
            for h in held_from(&v)? {
                out.held_back.push(Held {
                    recipient: n,
                    certificate: h.certificate,
                    history_key: h.history_key,
                    reasons: h.reasons.into_iter().map(Into::into).collect(),
                });
            }
        }
    }
    out.held_total = out.held_total.saturating_add(u32::try_from(out.held_back.len()).unwrap_or(u32::MAX));
    Ok(out)
}

/// Recipients per window of a scan.
const SCAN_WINDOW: usize = 4096;

/// The entries of `program` that `visits` chooses, of each stored recipient, in order, decoded
/// on up to `threads` threads.
fn decode_window(
    stored: &[(u64, Vec<u8>)],
    threads: usize,
    program: &str,
    visits: &(dyn Fn(&Entry) -> bool + Sync),
) -> Result<Vec<(u64, Entry)>, ProjectionError> {
    let decode = |part: &[(u64, Vec<u8>)]| -> Result<Vec<(u64, Entry)>, ProjectionError> {
        let mut out = Vec::new();
        for (n, bytes) in part {
            out.extend(
                entries_from(bytes)?.into_values().filter(|e| e.program == program && visits(e)).map(|e| (*n, e)),
            );
        }
        Ok(out)
    };
    if threads <= 1 || stored.len() < 64 {
        return decode(stored);
    }
    let per_thread = stored.len().div_ceil(threads);
    let parts: Vec<Result<Vec<(u64, Entry)>, ProjectionError>> = std::thread::scope(|s| {
        let workers: Vec<_> = stored.chunks(per_thread).map(|part| s.spawn(move || decode(part))).collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err(ProjectionError::Corrupt("a scan worker panicked".into()))))
            .collect()
    });
    let mut out = Vec::new();
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

impl Reader {
    /// What a program's batch would hold now, without rendering its files (no lock on the
    /// ledger: take the reader after catching up).
    pub fn batch_summary(&self, program: &Program, mode: PmhMode) -> Result<Summary, ProjectionError> {
        let s = scan(&self.db, program, mode, &mut |_, _| Ok(()))?;
        Ok(Summary {
            program: program.key.clone(),
            mode,
            records: s.records,
            deleted: s.deleted,
            dropped: s.dropped,
            held_back: s.held_back,
            held_total: s.held_total,
            warnings: s.warnings,
        })
    }
}

impl Projections {
    /// See [`scan`].
    fn scan(
        &self,
        program: &Program,
        mode: PmhMode,
        each: &mut dyn FnMut(PmhRecord, bool) -> Result<(), ProjectionError>,
    ) -> Result<Scanned, ProjectionError> {
        scan(self.db(), program, mode, each)
    }

    /// See [`Reader::batch_summary`].
    pub fn batch_summary(&self, program: &Program, mode: PmhMode) -> Result<Summary, ProjectionError> {
        self.reader().batch_summary(program, mode)
    }

    /// Computes a program's batch, streaming its JSON and CSV into writers made by `open` (called
    /// once per file name, JSON first): memory stays flat whatever the batch size. Returns the
    /// batch (its files with hashes and lengths, no bytes) and the writers, flushed, in the same
    /// order. When there is nothing to send the batch has no files and the writers hold
    /// incomplete documents: the caller throws them away. The projection must be caught up
    /// exactly to `to_position`.
    pub fn write_batch<W: Write + Send>(
        &self,
        config: &Config,
        program: &Program,
        mode: PmhMode,
        to_position: u64,
        open: &mut dyn FnMut(&str) -> std::io::Result<W>,
    ) -> Result<(Batch, Vec<(String, W)>), ProjectionError> {
        let from_position = self.last_batch(program.key.as_str())?.map_or(0, |(to, _)| to);
        let [json_name, csv_name] = file_names(&program.key, mode, from_position, to_position);
        let json = Hashing::new(open(&json_name).map_err(io_err)?);
        let csv = Hashing::new(open(&csv_name).map_err(io_err)?);
        let eras = &config.eras;
        // Reading the register, rendering the files and hashing and writing them take about as
        // long as each other: the scan runs here, a second thread renders (records passed in
        // chunks), and a thread per file hashes and writes its buffers.
        let (scanned, written, sunk) = std::thread::scope(|s| {
            let (json_pipe, json_sink) = pipe(s, json);
            let (csv_pipe, csv_sink) = pipe(s, csv);
            let (tx, rx) = std::sync::mpsc::sync_channel::<ToRenderer>(RENDER_QUEUE);
            let renderer = s.spawn(move || {
                let mut files = FilesWriter::new(program, eras, json_pipe, csv_pipe);
                for message in rx {
                    match message {
                        ToRenderer::Records(chunk) => {
                            for (record, deleted) in &chunk {
                                files.record(&Outgoing { record, deleted: *deleted })?;
                            }
                        }
                        // The documents are closed only after a complete scan: a failed one
                        // leaves files that no reader takes for whole.
                        ToRenderer::End => return files.finish().map(|_| Some(())),
                    }
                }
                Ok(None)
            });
            let mut chunk = Vec::with_capacity(RENDER_CHUNK);
            let mut scanned = self.scan(program, mode, &mut |record, deleted| {
                chunk.push((record, deleted));
                if chunk.len() >= RENDER_CHUNK {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(RENDER_CHUNK));
                    // The renderer stopped on an error: it is reported below.
                    tx.send(ToRenderer::Records(full))
                        .map_err(|_| ProjectionError::Corrupt(RENDERER_STOPPED.into()))?;
                }
                Ok(())
            });
            if scanned.is_ok() && (tx.send(ToRenderer::Records(chunk)).is_err() || tx.send(ToRenderer::End).is_err()) {
                scanned = Err(ProjectionError::Corrupt(RENDERER_STOPPED.into()));
            }
            drop(tx);
            let written = renderer.join().map_err(|_| ProjectionError::Corrupt("the renderer panicked".into()));
            // The renderer has dropped its pipes: each file's thread ends with its last buffer.
            let sunk = [json_sink, csv_sink]
                .map(|h| h.join().unwrap_or_else(|_| Err(std::io::Error::other("a file writer panicked"))));
            (scanned, written, sunk)
        });
        // A file's own error first (the renderer stopped because of it), then the scan's; when
        // the scan stopped because the renderer did, the renderer's.
        let [json, csv] = sunk;
        let (json, csv) = (json.map_err(io_err)?, csv.map_err(io_err)?);
        let scanned = match scanned {
            Err(ProjectionError::Corrupt(why)) if why == RENDERER_STOPPED => None,
            other => Some(other?),
        };
        if written?.map_err(io_err)?.is_none() {
            return Err(ProjectionError::Corrupt(RENDERER_STOPPED.into()));
        }
        let Some(scanned) = scanned else { return Err(ProjectionError::Corrupt(RENDERER_STOPPED.into())) };
        let (mut json, json_sha, json_len) = json.done();
        let (mut csv, csv_sha, csv_len) = csv.done();
        json.flush().map_err(io_err)?;
        csv.flush().map_err(io_err)?;
        // A full replacement that would leave PMH with records the ledger no longer sends is sent
        // even when it holds none: an empty file clears the program.
        let files = if scanned.records == 0 && scanned.dropped == 0 {
            Vec::new()
        } else {
            vec![
                File { name: json_name.clone(), sha256: json_sha, len: json_len, bytes: None },
                File { name: csv_name.clone(), sha256: csv_sha, len: csv_len, bytes: None },
            ]
        };
        let batch = Batch {
            program: program.key.clone(),
            mode,
            from_position,
            to_position,
            records: scanned.records,
            deleted: scanned.deleted,
            dropped: scanned.dropped,
            held_back: scanned.held_back,
            held_total: scanned.held_total,
            warnings: scanned.warnings,
            files,
        };
        Ok((batch, vec![(json_name, json), (csv_name, csv)]))
    }

    /// Computes a program's batch in memory (its files' bytes included). For batches of a large
    /// municipality prefer [`Projections::write_batch`].
    pub fn compute_batch(
        &self,
        config: &Config,
        program: &Program,
        mode: PmhMode,
        to_position: u64,
    ) -> Result<Batch, ProjectionError> {
        let (mut batch, writers) = self.write_batch(config, program, mode, to_position, &mut |_| Ok(Vec::new()))?;
        for (file, (_, bytes)) in batch.files.iter_mut().zip(writers) {
            file.bytes = Some(bytes);
        }
        Ok(batch)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestFile<'a> {
    name: &'a str,
    sha256: String,
    bytes: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestBatch<'a> {
    batch: Option<u64>,
    program: &'a str,
    mode: &'static str,
    from_position: u64,
    to_position: u64,
    records: u32,
    deleted: u32,
    /// A full replacement: after the upload PMH has exactly the file's records of the program.
    replaces_all: bool,
    /// Records PMH had that a full replacement leaves out.
    dropped: u32,
    /// Every record held back; `heldBack` lists those not listed before (a diff) or all (full).
    held_back_total: u32,
    held_back: &'a [Held],
    warnings: &'a [Warning],
    /// Texts of the program's configuration sent in every record that PMH shows with "●".
    config_warnings: Vec<ConfigWarning>,
    files: Vec<ManifestFile<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigWarning {
    field: String,
    characters: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChainHead {
    position: u64,
    hash: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    format: &'static str,
    municipality: &'a str,
    chain_head: ChainHead,
    batches: Vec<ManifestBatch<'a>>,
}

/// `manifest.json` for the batches written together (with their batch numbers, once recorded),
/// and the chain head they were made from.
pub fn manifest(config: &Config, batches: &[(Option<u64>, &Batch)], head_position: u64, head_hash: &str) -> Vec<u8> {
    let m = Manifest {
        format: "daicho-pmh-export-2",
        municipality: &config.municipality.name,
        chain_head: ChainHead { position: head_position, hash: head_hash.to_owned() },
        batches: batches
            .iter()
            .map(|(number, b)| ManifestBatch {
                batch: *number,
                program: b.program.as_str(),
                mode: mode_name(b.mode),
                from_position: b.from_position,
                to_position: b.to_position,
                records: b.records,
                deleted: b.deleted,
                replaces_all: config.program(&b.program).is_some_and(|p| replaces(p, b.mode)),
                dropped: b.dropped,
                held_back_total: b.held_total,
                held_back: &b.held_back,
                warnings: &b.warnings,
                config_warnings: config
                    .program(&b.program)
                    .map(|p| p.pmh_warnings())
                    .unwrap_or_default()
                    .into_iter()
                    .map(|w| ConfigWarning { field: w.field, characters: w.characters })
                    .collect(),
                files: b
                    .files
                    .iter()
                    .map(|f| ManifestFile { name: &f.name, sha256: f.sha256.clone(), bytes: f.len })
                    .collect(),
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&m).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// `rejects.csv`: the held-back records the batches list ([`Batch::held_back`]), one line per
/// reason.
pub fn rejects_csv(batches: &[&Batch]) -> Vec<u8> {
    let mut rows =
        vec![["制度", "受給者内部番号", "受給者証", "履歴キー", "理由コード", "理由"].map(str::to_owned).to_vec()];
    for b in batches {
        for h in &b.held_back {
            for r in &h.reasons {
                rows.push(vec![
                    b.program.to_string(),
                    h.recipient.to_string(),
                    h.certificate.clone(),
                    h.history_key.clone(),
                    r.code.to_owned(),
                    r.message.to_owned(),
                ]);
            }
        }
    }
    csv_document(&rows)
}
