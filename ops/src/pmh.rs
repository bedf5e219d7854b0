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

use daicho_app::ledger::Ledger;
use daicho_app::{Actor, App, Outcome, Request};
use daicho_domain::config::{PmhMode, ProgramKey};
use daicho_projections::export::Batch;

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE};

fn fail(err: &mut dyn Write, what: impl std::fmt::Display) -> u8 {
    let _ = writeln!(err, "{what}");
    EXIT_UNREADABLE
}

/// Writes the companion files of `batches` into `out`, beside the batches' data files (already
/// written there while the batches were computed), anchored at the head.
fn write_batches(ledger: &Ledger, out: &Path, batches: &[(Option<u64>, Batch)]) -> Result<(), String> {
    let refs: Vec<(Option<u64>, &Batch)> = batches.iter().map(|(n, b)| (*n, b)).collect();
    let head = ledger.store().head().position.0;
    daicho_app::pmh::write_companions(ledger, out, &refs, head).map_err(|e| e.to_string())
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
    let app = match App::open(data) {
        Ok(app) => app,
        Err(e) => return fail(err, format!("{}: 台帳を開けません: {e}", data.display())),
    };
    if let Err(e) = daicho_app::files::empty_output_dir(out_dir) {
        return fail(err, e);
    }
    let ledger = app.ledger();
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
    drop(ledger);
    let operator = Actor::Operator(actor.to_owned());
    let mut batches: Vec<(Option<u64>, Batch)> = Vec::new();
    for key in programs {
        match app.execute(&operator, Request::PmhBatch { program: &key, mode, dir: out_dir }, today) {
            Ok(Outcome::Batch { number, batch }) => batches.push((number, *batch)),
            Ok(other) => return fail(err, format!("{key}: unexpected outcome {other:?}")),
            Err(e) => return fail(err, format!("{key}: {e}")),
        }
    }
    let ledger = app.ledger();
    if let Err(e) = write_batches(&ledger, out_dir, &batches) {
        return fail(err, e);
    }
    for (number, b) in &batches {
        let _ = writeln!(
            out,
            "{}: {} {}件（うち削除 {}件）{}、保留 {}件、●になる文字の警告 {}件{}",
            b.program,
            daicho_projections::export::mode_name(b.mode),
            b.records,
            b.deleted,
            if b.dropped > 0 {
                format!("、全件の置き換えでPMHから外れる {}件（アップロードすると消えます）", b.dropped)
            } else {
                String::new()
            },
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
    if let Err(e) = daicho_app::files::empty_output_dir(out_dir) {
        return fail(err, e);
    }
    let same = match daicho_app::pmh::regenerate_into(&ledger, number, out_dir) {
        Ok(r) => r.matches,
        Err(e) => return fail(err, format!("バッチ {number}: {e}")),
    };
    if same {
        let _ = writeln!(out, "バッチ {number} を再生成しました。記録されたハッシュと一致します");
        EXIT_OK
    } else {
        let _ = writeln!(out, "バッチ {number} を再生成しましたが、記録されたハッシュと一致しません");
        EXIT_REJECTED
    }
}
