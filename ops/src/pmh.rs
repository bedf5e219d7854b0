//! `daicho pmh export`: write PMH batches and record them in the log.
//!
//! For each program (all, or `--program`), in its configured mode or `--mode`: bring the
//! register up to the head, compute the batch, write its JSON and CSV, and append a
//! `pmh_batch_exported` event anchored at that head (if anything else was recorded meanwhile,
//! compute again). Then `manifest.json` and, when records were held back, `rejects.csv`.
//!
//! `--batch N` regenerates batch number N from the log alone: a temporary register is built up
//! to the batch's position and the batch computed again; its files must hash as recorded.

use std::io::Write;
use std::path::Path;

use daicho_domain::codec::{self, PMH_BATCH_EXPORTED, PmhBatch};
use daicho_domain::config::{PmhMode, ProgramKey};
use daicho_projections::Projections;
use daicho_projections::export::{Batch, manifest, rejects_csv};
use daicho_store::{AppendError, AppendRequest, ExpectedVersion, NewEvent, Position, StreamId, Target};
use sha2::{Digest, Sha256};

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE};
use daicho_projections::ledger::Ledger;

/// The system stream of PMH batches.
pub const PMH_STREAM: &str = "pmh";

/// Attempts to record a batch while others keep writing.
const HEAD_RETRIES_MAX: usize = 20;

fn fail(err: &mut dyn Write, what: impl std::fmt::Display) -> u8 {
    let _ = writeln!(err, "{what}");
    EXIT_UNREADABLE
}

/// Refuses an output directory with files in it: a batch never overwrites another.
fn prepare_out(out: &Path) -> Result<(), String> {
    if out.exists() && std::fs::read_dir(out).map_err(|e| e.to_string())?.next().is_some() {
        return Err(format!("{}: 出力先が空ではありません（別のディレクトリを指定してください）", out.display()));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: 出力先を作れません: {e}", out.display()))
}

fn write_file(out: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let path = out.join(name);
    let mut f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", path.display()))
}

/// What `daicho pmh export` is asked to do.
pub struct ExportRequest<'a> {
    /// Data directory.
    pub data: &'a Path,
    /// Output directory (empty or absent).
    pub out_dir: &'a Path,
    /// Mode for every program; `None`: each program's configured mode.
    pub mode: Option<PmhMode>,
    /// Only this program.
    pub program: Option<&'a str>,
    /// Effective date of the batch events.
    pub today: chrono::NaiveDate,
    /// Who records them.
    pub actor: &'a str,
}

/// `daicho pmh export`.
pub fn export(request: &ExportRequest<'_>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let ExportRequest { data, out_dir, mode, program, today, actor } = *request;
    let mut ledger = match Ledger::open(data) {
        Ok(l) => l,
        Err(e) => return fail(err, format!("{}: 台帳を開けません: {e}", data.display())),
    };
    if let Err(e) = prepare_out(out_dir) {
        return fail(err, e);
    }
    let programs: Vec<ProgramKey> = match program {
        Some(p) => match ProgramKey::parse(p).ok().filter(|k| ledger.config().program(k).is_some()) {
            Some(k) => vec![k],
            None => {
                let _ = writeln!(err, "{p}: 設定にない制度です");
                return EXIT_REJECTED;
            }
        },
        None => ledger.config().programs().iter().map(|p| p.key.clone()).collect(),
    };
    let mut batches: Vec<(Option<u64>, Batch)> = Vec::new();
    for key in programs {
        match export_one(&mut ledger, &key, mode, out_dir, today, actor) {
            Ok(b) => batches.push(b),
            Err(e) => return fail(err, format!("{key}: {e}")),
        }
    }
    let head = ledger.store().head();
    let config = ledger.config().clone();
    let refs: Vec<(Option<u64>, &Batch)> = batches.iter().map(|(n, b)| (*n, b)).collect();
    if let Err(e) =
        write_file(out_dir, "manifest.json", &manifest(&config, &refs, head.position.0, &head.hash.to_hex()))
    {
        return fail(err, e);
    }
    let held: Vec<&Batch> = batches.iter().map(|(_, b)| b).filter(|b| !b.held_back.is_empty()).collect();
    if !held.is_empty()
        && let Err(e) = write_file(out_dir, "rejects.csv", &rejects_csv(&held))
    {
        return fail(err, e);
    }
    for (number, b) in &batches {
        let _ = writeln!(
            out,
            "{}: {} {}件（うち削除 {}件）、保留 {}件、●になる文字の警告 {}件{}",
            b.program,
            daicho_projections::export::mode_name(b.mode),
            b.records,
            b.deleted,
            b.held_back.len(),
            b.warnings.len(),
            number.map(|n| format!("、バッチ番号 {n}")).unwrap_or_else(|| "（送信なし）".into())
        );
    }
    EXIT_OK
}

/// Computes, writes and records one program's batch; retries while the head moves.
fn export_one(
    ledger: &mut Ledger,
    key: &ProgramKey,
    mode: Option<PmhMode>,
    out_dir: &Path,
    today: chrono::NaiveDate,
    actor: &str,
) -> Result<(Option<u64>, Batch), String> {
    let stream = StreamId::parse(PMH_STREAM).ok_or("pmh stream id")?;
    for _ in 0..HEAD_RETRIES_MAX {
        let head = ledger.store().head();
        let projections = ledger.projections().map_err(|e| e.to_string())?;
        let config = projections.config().cloned().ok_or("設定が記録されていません")?;
        let program = config.program(key).ok_or("設定にない制度です")?;
        let mode = mode.unwrap_or(program.pmh_mode);
        let batch = projections.compute_batch(&config, program, mode, head.position.0).map_err(|e| e.to_string())?;
        if batch.records == 0 {
            return Ok((None, batch));
        }
        for f in &batch.files {
            write_file(out_dir, &f.name, &f.bytes)?;
        }
        let version = ledger.store().stream_version(&stream).map_err(|e| e.to_string())?;
        let event = PmhBatch {
            program: key.clone(),
            mode,
            from_position: batch.from_position,
            to_position: batch.to_position,
            records: batch.records,
            deleted: batch.deleted,
            held_back: u32::try_from(batch.held_back.len()).unwrap_or(u32::MAX),
            files: batch.files.iter().map(|f| (f.name.clone(), f.sha256())).collect(),
        };
        let encoded = codec::encode_pmh_batch(&event).map_err(|e| e.to_string())?;
        let digest: [u8; 32] = Sha256::digest(&encoded.payload).into();
        let id = format!("pmh-{key}-{}-{}", daicho_projections::export::mode_name(mode), head.position);
        let request = AppendRequest {
            target: Target::Stream { stream: stream.clone(), expected: ExpectedVersion::Exactly(version) },
            request_id: id.clone(),
            request_digest: digest,
            actor: actor.to_owned(),
            approver: None,
            expected_head: Some(head.position),
            events: vec![NewEvent {
                event_id: format!("{id}#0"),
                event_type: PMH_BATCH_EXPORTED.to_owned(),
                schema_version: encoded.schema_version,
                effective: today,
                payload: encoded.payload,
            }],
        };
        match ledger.store().append_blocking(request) {
            Ok(o) => return Ok((Some(o.stream_version), batch)),
            Err(AppendError::HeadMoved { .. } | AppendError::WrongExpectedVersion { .. }) => {
                for f in &batch.files {
                    let _ = std::fs::remove_file(out_dir.join(&f.name));
                }
                continue;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    Err("他の記録が続いたため、バッチを確定できませんでした".into())
}

/// `daicho pmh export --batch N`.
pub fn regenerate(data: &Path, number: u64, out_dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let ledger = match Ledger::open(data) {
        Ok(l) => l,
        Err(e) => return fail(err, format!("{}: 台帳を開けません: {e}", data.display())),
    };
    let stream = StreamId::parse(PMH_STREAM).unwrap_or_else(|| unreachable!("static stream id"));
    let envelope = match ledger.store().read_stream(&stream) {
        Ok(events) => events.into_iter().find(|e| e.stream_version == number),
        Err(e) => return fail(err, e),
    };
    let Some(envelope) = envelope else {
        let _ = writeln!(err, "バッチ番号 {number} はありません");
        return EXIT_REJECTED;
    };
    let recorded = match codec::decode_pmh_batch(envelope.schema_version, &envelope.payload) {
        Ok(b) => b,
        Err(e) => return fail(err, e),
    };
    if let Err(e) = prepare_out(out_dir) {
        return fail(err, e);
    }
    let result = (|| -> Result<Batch, String> {
        let mut temp = Projections::temporary().map_err(|e| e.to_string())?;
        let to = Position(recorded.to_position);
        temp.catch_up(ledger.store(), Some(to), &mut |_, _| {}).map_err(|e| e.to_string())?;
        let config = temp.config().cloned().ok_or("設定が記録されていません")?;
        let program = config.program(&recorded.program).ok_or("設定にない制度です")?;
        temp.compute_batch(&config, program, recorded.mode, recorded.to_position).map_err(|e| e.to_string())
    })();
    let batch = match result {
        Ok(b) => b,
        Err(e) => return fail(err, e),
    };
    let mut same = batch.files.len() == recorded.files.len();
    for (f, (name, hash)) in batch.files.iter().zip(&recorded.files) {
        same &= f.name == *name && f.sha256() == *hash;
        if let Err(e) = write_file(out_dir, &f.name, &f.bytes) {
            return fail(err, e);
        }
    }
    let config = ledger.config().clone();
    let manifest =
        manifest(&config, &[(Some(number), &batch)], recorded.to_position, &head_hash(&ledger, recorded.to_position));
    if let Err(e) = write_file(out_dir, "manifest.json", &manifest) {
        return fail(err, e);
    }
    if !batch.held_back.is_empty()
        && let Err(e) = write_file(out_dir, "rejects.csv", &rejects_csv(&[&batch]))
    {
        return fail(err, e);
    }
    if same {
        let _ = writeln!(out, "バッチ {number} を再生成しました。記録されたハッシュと一致します");
        EXIT_OK
    } else {
        let _ = writeln!(out, "バッチ {number} を再生成しましたが、記録されたハッシュと一致しません");
        EXIT_REJECTED
    }
}

fn head_hash(ledger: &Ledger, position: u64) -> String {
    ledger.store().get(Position(position)).ok().flatten().map(|e| e.hash.to_hex()).unwrap_or_default()
}
