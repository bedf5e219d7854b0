//! `daicho pmh export`: write PMH batches and record them in the log.
//!
//! For each program (all, or `--program`), in its configured mode or `--mode`, the ledger
//! computes the batch at the head, streaming its JSON and CSV into the output directory (made
//! durable), and records it anchored there; finally `manifest.json` and, when records were held
//! back, `rejects.csv` are written.
//!
//! `--batch N` regenerates batch number N from the log alone; its files must hash as recorded.

use std::io::Write;
use std::path::Path;

use daicho_domain::config::{PmhMode, ProgramKey};
use daicho_projections::export::{Batch, manifest, rejects_csv};
use daicho_projections::ledger::Ledger;
use daicho_store::Position;

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE};

fn fail(err: &mut dyn Write, what: impl std::fmt::Display) -> u8 {
    let _ = writeln!(err, "{what}");
    EXIT_UNREADABLE
}

/// Refuses an output directory with files in it: a batch never overwrites another.
pub fn prepare_out(out: &Path) -> Result<(), String> {
    if out.exists() && std::fs::read_dir(out).map_err(|e| e.to_string())?.next().is_some() {
        return Err(format!("{}: 出力先が空ではありません（別のディレクトリを指定してください）", out.display()));
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: 出力先を作れません: {e}", out.display()))
}

/// Writes and fsyncs one file.
pub fn write_file(out: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let path = out.join(name);
    let mut f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `manifest.json` and (when needed) `rejects.csv` into `out`, beside the batches' data
/// files (already written there while the batches were computed).
pub fn write_batches(
    ledger: &Ledger,
    out: &Path,
    batches: &[(Option<u64>, Batch)],
    head: (u64, String),
) -> Result<(), String> {
    let refs: Vec<(Option<u64>, &Batch)> = batches.iter().map(|(n, b)| (*n, b)).collect();
    write_file(out, "manifest.json", &manifest(ledger.config(), &refs, head.0, &head.1))?;
    let held: Vec<&Batch> = batches.iter().map(|(_, b)| b).filter(|b| !b.held_back.is_empty()).collect();
    if !held.is_empty() {
        write_file(out, "rejects.csv", &rejects_csv(&held))?;
    }
    std::fs::File::open(out).and_then(|d| d.sync_all()).map_err(|e| format!("{}: {e}", out.display()))
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
        match ledger.record_pmh_batch_into(&key, mode, today, actor, out_dir) {
            Ok(b) => batches.push(b),
            Err(e) => return fail(err, format!("{key}: {e}")),
        }
    }
    let head = ledger.store().head();
    if let Err(e) = write_batches(&ledger, out_dir, &batches, (head.position.0, head.hash.to_hex())) {
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

/// `daicho pmh export --batch N`.
pub fn regenerate(data: &Path, number: u64, out_dir: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let ledger = match Ledger::open(data) {
        Ok(l) => l,
        Err(e) => return fail(err, format!("{}: 台帳を開けません: {e}", data.display())),
    };
    match ledger.pmh_batches() {
        Ok(all) if all.iter().any(|b| b.number == number) => {}
        Ok(_) => {
            let _ = writeln!(err, "バッチ {number}: そのバッチは記録されていません");
            return EXIT_REJECTED;
        }
        Err(e) => return fail(err, e),
    }
    if let Err(e) = prepare_out(out_dir) {
        return fail(err, e);
    }
    let (recorded, batch) = match ledger.regenerate_pmh_batch_into(number, out_dir) {
        Ok(r) => r,
        Err(e) => return fail(err, format!("バッチ {number}: {e}")),
    };
    let hash = ledger
        .store()
        .get(Position(recorded.batch.to_position))
        .ok()
        .flatten()
        .map(|e| e.hash.to_hex())
        .unwrap_or_default();
    let same = batch.files.len() == recorded.batch.files.len()
        && batch.files.iter().zip(&recorded.batch.files).all(|(f, (name, h))| f.name == *name && f.sha256 == *h);
    if let Err(e) = write_batches(&ledger, out_dir, &[(Some(number), batch)], (recorded.batch.to_position, hash)) {
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
