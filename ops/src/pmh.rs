//! `daicho pmh export`: write PMH batches and record them in the log.
//!
//! For each program (all, or `--program`), in its configured mode or `--mode`, the ledger
//! computes the batch at the head, streaming its JSON and CSV into the output directory (made
//! durable), and records it anchored there; finally `manifest.json` and, when records were held
//! back, `rejects.csv` are written.
//!
//! `--batch N` regenerates batch number N from the log alone; its files must hash as recorded.
//!
//! `daicho pmh results FILE.csv`: PMH's registration results ([`daicho_app::pmh_results`]).
//!
//! `daicho pmh reconcile FILE.csv`: 突合 with what PMH holds ([`daicho_app::pmh_reconcile`]).

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

/// The programs named (each once, in the configuration's order), or all when none is.
fn chosen(ledger: &Ledger, named: &[String], err: &mut dyn Write) -> Result<Vec<ProgramKey>, u8> {
    for p in named {
        if !ProgramKey::parse(p).is_ok_and(|k| ledger.config().program(&k).is_some()) {
            let _ = writeln!(err, "--program {p}: 設定にない制度です");
            return Err(EXIT_REJECTED);
        }
    }
    Ok(ledger
        .config()
        .programs()
        .iter()
        .filter(|p| named.is_empty() || named.iter().any(|n| n == p.key.as_str()))
        .map(|p| p.key.clone())
        .collect())
}

/// What `daicho pmh export` is asked to do.
pub struct ExportRequest<'a> {
    /// Data directory.
    pub data: &'a Path,
    /// Output directory (empty or absent).
    pub out_dir: &'a Path,
    /// Mode for every program; `None`: each program's configured mode.
    pub mode: Option<PmhMode>,
    /// Only these programs (none: all).
    pub programs: &'a [String],
    /// Effective date of the batch events.
    pub today: chrono::NaiveDate,
    /// Who records them.
    pub actor: &'a str,
}

/// `daicho pmh export`.
pub fn export(request: &ExportRequest<'_>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let ExportRequest { data, out_dir, mode, programs, today, actor } = *request;
    let app = match App::open(data) {
        Ok(app) => app,
        Err(e) => return fail(err, format!("{}: 台帳を開けません: {e}", data.display())),
    };
    if let Err(e) = daicho_app::files::empty_output_dir(out_dir) {
        return fail(err, e);
    }
    let programs = match chosen(&app.ledger(), programs, err) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let operator = Actor::Operator(actor.to_owned());
    let mut batches: Vec<(Option<u64>, Batch)> = Vec::new();
    for key in programs {
        let failed = match app.execute(&operator, Request::PmhBatch { program: &key, mode, dir: out_dir }, today) {
            Ok(Outcome::Batch { number, batch }) => {
                batches.push((number, *batch));
                continue;
            }
            Ok(other) => format!("{key}: unexpected outcome {other:?}"),
            Err(e) => format!("{key}: {e}"),
        };
        // The batches recorded before this one get their companions all the same: a diff
        // lists a held-back record once, and their manifest is where it is listed. The failed
        // program's partial files go first (the directory was empty: every other file is one
        // of the recorded batches'), which also frees the room a full disk took.
        if !batches.is_empty() {
            let kept: std::collections::BTreeSet<&str> =
                batches.iter().flat_map(|(_, b)| b.files.iter().map(|f| f.name.as_str())).collect();
            if let Ok(entries) = std::fs::read_dir(out_dir) {
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    if !name.to_str().is_some_and(|n| kept.contains(n)) {
                        let _ = std::fs::remove_file(entry.path());
                    }
                }
            }
            let recorded: Vec<String> = batches.iter().filter_map(|(n, _)| n.map(|n| n.to_string())).collect();
            let written = write_batches(&app.ledger(), out_dir, &batches);
            let _ = writeln!(
                err,
                "記録済みのバッチ: {}（manifest.json {}）",
                if recorded.is_empty() { "なし".to_owned() } else { recorded.join(", ") },
                if written.is_ok() {
                    "を書きました"
                } else {
                    "を書けませんでした。--batch N で作り直せます"
                }
            );
        }
        return fail(err, failed);
    }
    let ledger = app.ledger();
    if let Err(e) = write_batches(&ledger, out_dir, &batches) {
        return fail(err, e);
    }
    for (number, b) in &batches {
        let _ = writeln!(
            out,
            "{}: {} {}件（うち削除 {}件）{}、保留 {}、●になる文字の警告 {}件{}",
            b.program,
            daicho_projections::export::mode_name(b.mode),
            b.records,
            b.deleted,
            if b.dropped > 0 {
                format!("、全件の置き換えでPMHから外れる {}件（アップロードすると消えます）", b.dropped)
            } else {
                String::new()
            },
            if b.held_total as usize > b.held_back.len() {
                format!("{}件（うち今回一覧 {}件）", b.held_total, b.held_back.len())
            } else {
                format!("{}件", b.held_total)
            },
            b.warnings.len(),
            number.map(|n| format!("、バッチ番号 {n}")).unwrap_or_else(|| "（送信なし）".into())
        );
    }
    EXIT_OK
}

/// `daicho pmh held`: every record held back (保留) now, per program (all, or those named):
/// counts on `out`, and with `report` the whole list as CSV in a new owner-only file. A batch
/// lists only the records held back since the program's previous batch; this is the list of
/// all of them.
pub fn held(data: &Path, named: &[String], report: Option<&Path>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let app = match App::open(data) {
        Ok(app) => app,
        Err(e) => return fail(err, format!("{}: 台帳を開けません: {e}", data.display())),
    };
    let mut ledger = app.ledger();
    let programs = match chosen(&ledger, named, err) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let reader = match ledger.projections() {
        Ok(p) => p.reader(),
        Err(e) => return fail(err, e),
    };
    let config = ledger.config().clone();
    drop(ledger);
    let mut rows = vec![
        ["制度", "受給者内部番号", "受給者証", "履歴キー", "理由コード", "理由", "一覧"].map(str::to_owned).to_vec(),
    ];
    for key in &programs {
        let limit = if report.is_some() { usize::MAX } else { 0 };
        let Some(program) = config.program(key) else { continue };
        let (held, total) = match reader.pmh_held(program, limit) {
            Ok(h) => h,
            Err(e) => return fail(err, format!("{key}: {e}")),
        };
        let _ = writeln!(out, "{key}: 保留 {total}件");
        for (h, new) in held {
            for r in &h.reasons {
                rows.push(vec![
                    key.to_string(),
                    h.recipient.to_string(),
                    h.certificate.clone(),
                    h.history_key.clone(),
                    r.code.to_owned(),
                    r.message.to_owned(),
                    if new { "次回掲載" } else { "掲載済み" }.to_owned(),
                ]);
            }
        }
    }
    if let Some(path) = report {
        let written = daicho_app::files::DiskFile::create_new(path).and_then(|mut f| {
            f.write_all(&daicho_projections::pmh::csv_document(&rows))?;
            daicho_app::files::FinishFile::finish_file(f)
        });
        if let Err(e) = written {
            return fail(err, format!("{}: 書けません: {e}", path.display()));
        }
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

/// What `daicho pmh results` is asked to do.
pub struct ResultsRequest<'a> {
    /// Data directory.
    pub data: &'a Path,
    /// The results CSV.
    pub file: &'a Path,
    /// Column profile; `None`: the default one.
    pub profile: Option<&'a Path>,
    /// Batches the file answers besides those its rows name.
    pub covers: &'a [u64],
    /// Effective date of the results events.
    pub today: chrono::NaiveDate,
    /// Who records them.
    pub actor: &'a str,
}

/// `daicho pmh results`.
pub fn results(request: &ResultsRequest<'_>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    use daicho_app::pmh_results::Profile;
    let ResultsRequest { data, file, profile, covers, today, actor } = *request;
    let Some((profile, bytes)) = profile_and_file(profile, Profile::default_profile, Profile::from_toml, file, err)
    else {
        return EXIT_REJECTED;
    };
    let app = match App::open(data) {
        Ok(app) => app,
        Err(e) => return fail(err, format!("{}: 台帳を開けません: {e}", data.display())),
    };
    let operator = Actor::Operator(actor.to_owned());
    let report = match app.execute(&operator, Request::PmhResults { file: &bytes, profile: &profile, covers }, today) {
        Ok(Outcome::PmhResults(report)) => report,
        Ok(other) => return fail(err, format!("unexpected outcome {other:?}")),
        Err(daicho_app::Failure::Rejected(daicho_app::execute::Refusal::ResultsFile(problems))) => {
            let _ = writeln!(err, "{}: 登録結果ファイルを読めません。何も記録していません", file.display());
            for p in problems {
                let _ = writeln!(err, "{}: {p}", file.display());
            }
            return EXIT_REJECTED;
        }
        Err(daicho_app::Failure::Rejected(r)) => {
            let _ = writeln!(err, "{}: {r}", file.display());
            return EXIT_REJECTED;
        }
        Err(e) => return fail(err, format!("{}: {e}", file.display())),
    };
    if report.already_recorded {
        let _ =
            writeln!(out, "{}: この登録結果ファイルは記録済みです（新たに記録したものはありません）", file.display());
    }
    let _ = writeln!(out, "{}: {}行", file.display(), report.rows);
    for (number, program, refused) in &report.batches {
        let _ = writeln!(out, "バッチ {number}（{program}）: PMHで不受理 {refused}件");
    }
    for u in &report.unmatched {
        let _ = writeln!(out, "{}: {}行目「{}」{}: {}", file.display(), u.line, u.file, u.history_key, u.why.message());
    }
    if report.unmatched_count > report.unmatched.len() {
        let _ = writeln!(out, "{}: ほかに{}行", file.display(), report.unmatched_count - report.unmatched.len());
    }
    if report.unmatched_count == 0 {
        EXIT_OK
    } else {
        let _ = writeln!(
            err,
            "{}: 台帳が送っていない記録を指す行が{}行あります（その行は記録していません）",
            file.display(),
            report.unmatched_count
        );
        EXIT_REJECTED
    }
}

/// `daicho pmh reconcile`.
pub fn reconcile(
    data: &Path,
    file: &Path,
    profile: Option<&Path>,
    report: Option<&Path>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    use daicho_app::pmh_reconcile::{Kind, Profile, ReconcileError};
    let Some((profile, bytes)) = profile_and_file(profile, Profile::default_profile, Profile::from_toml, file, err)
    else {
        return EXIT_REJECTED;
    };
    let mut ledger = match Ledger::open(data) {
        Ok(l) => l,
        Err(e) => return fail(err, format!("{}: 台帳を開けません: {e}", data.display())),
    };
    let result = match ledger.reconcile_pmh(&bytes, &profile) {
        Ok(r) => r,
        Err(ReconcileError::File(problems)) => {
            let _ = writeln!(err, "{}: 照会ファイルを読めません", file.display());
            for p in problems {
                let _ = writeln!(err, "{}: {p}", file.display());
            }
            return EXIT_REJECTED;
        }
        Err(ReconcileError::Ledger(e)) => return fail(err, format!("{}: {e}", file.display())),
    };
    if let Some(path) = report {
        let written = daicho_app::files::DiskFile::create_new(path).and_then(|mut f| {
            use std::io::Write as _;
            f.write_all(&result.csv())?;
            daicho_app::files::FinishFile::finish_file(f)
        });
        if let Err(e) = written {
            return fail(err, format!("{}: 書けません: {e}", path.display()));
        }
    }
    let programs: Vec<String> = result.programs.iter().map(ToString::to_string).collect();
    let _ = writeln!(
        out,
        "{}: {}行（制度: {}）、照合 {}件",
        file.display(),
        result.rows,
        if programs.is_empty() { "なし".to_owned() } else { programs.join("、") },
        result.compared
    );
    for kind in [Kind::WrongPerson, Kind::MissingAtPmh, Kind::UnknownToDaicho, Kind::FieldsDiffer] {
        let _ = writeln!(out, "{}: {}件", kind.label(), result.of(kind).count());
    }
    for f in &result.findings {
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            f.kind.label(),
            f.line.map_or_else(|| "-".to_owned(), |l| format!("{l}行目")),
            f.history_key,
            f.recipient.map_or_else(|| "-".to_owned(), |n| format!("内部番号 {n}")),
            f.batch.map_or_else(|| "-".to_owned(), |b| format!("第{b}回")),
            f.columns.join("・"),
            f.my_numbers.as_ref().map_or_else(String::new, |(a, b)| format!("台帳 {a} / PMH {b}")),
        );
    }
    if result.findings.is_empty() { EXIT_OK } else { EXIT_REJECTED }
}

/// The column profile (`path`, else the default) and the file's bytes (at most
/// `daicho_app::pmh_results::FILE_BYTES_MAX`); `None` once the problem is written to `err`.
fn profile_and_file<P>(
    path: Option<&Path>,
    default: fn() -> Result<P, String>,
    parse: fn(&str) -> Result<P, String>,
    file: &Path,
    err: &mut dyn Write,
) -> Option<(P, Vec<u8>)> {
    use daicho_app::pmh_results::FILE_BYTES_MAX;
    let profile = match path {
        None => default(),
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("読めません: {e}")).and_then(|t| parse(&t)),
    };
    let profile = match profile {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "プロファイル: {e}");
            return None;
        }
    };
    let bytes = match std::fs::metadata(file) {
        Ok(m) if m.len() > FILE_BYTES_MAX as u64 => {
            Err(format!("ファイルが大きすぎます（{} MiB まで）", FILE_BYTES_MAX >> 20))
        }
        Ok(_) => std::fs::read(file).map_err(|e| format!("読めません: {e}")),
        Err(e) => Err(format!("読めません: {e}")),
    };
    match bytes {
        Ok(b) => Some((profile, b)),
        Err(e) => {
            let _ = writeln!(err, "{}: {e}", file.display());
            None
        }
    }
}
