//! `daicho import --profile PROFILE.toml FILE.csv [--dry-run]`: 既存データ移行 (legacy import).
//!
//! Each row of a legacy CSV becomes the commands of the contract (`register_recipient`, and
//! `grant_certificate` when the profile maps certificate columns), decided by the same `decide`
//! as everything else. A row is all or nothing: its commands are decided one after the other
//! against a scratch copy of the recipient's state, and only when every one is accepted are
//! they queued to the store. Rows stream through in chunks: the store commits a chunk's
//! requests together (group commit), the chunk's report lines are written, and the chunk's
//! states are dropped, so memory stays flat however long the file.
//!
//! Idempotency: every command id is `imp.<source>.<r|g>.<hash>`, the hash taken over the
//! profile's source name and the row's decoded cells. Importing the same file again finds every
//! id recorded with the same content and appends nothing. A person on two rows (two programs)
//! is registered once; the second row must repeat the same basic items.
//!
//! Cells are decoded one by one (UTF-8 strictly, or CP932 without replacement characters): a
//! cell with bytes that are not text rejects its row, never passes through as U+FFFD.

pub mod profile;
pub use daicho_app::csv_records as records;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use daicho_app::bulk::{self, Queued};
use daicho_app::files::{DiskFile, FinishFile};
use daicho_app::ledger::Ledger;
use daicho_app::submit::{Appended, Backend, BackendError, Loaded, Submitted, submit};
use daicho_domain::calendar::{EraTable, GREGORIAN_START};
use daicho_domain::command::{Command, Fingerprint, InputError, TextWarning, parse_command_value};
use daicho_domain::config::Config;
use daicho_domain::event::Event;
use daicho_domain::ids::{CommandId, RecipientRef};
use daicho_domain::numbers::MyNumber;
use daicho_domain::text::{decode_cp932, half_width_kana_to_full_width};
use daicho_domain::{MyNumberHolder, State, evolve};
use daicho_store::Position;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE};
use profile::{ColumnRef, DateFormat, Encoding, Profile};
use records::{Record, RecordError, Records};

/// Rows decided before their appends are awaited and their report lines written.
pub const CHUNK_ROWS: usize = 512;

/// Bytes looked at to tell UTF-8 from CP932.
const SNIFF_BYTES: usize = 64 * 1024;

/// What to import.
pub struct ImportRequest<'a> {
    /// The data directory of the ledger.
    pub data: &'a Path,
    /// The profile (TOML).
    pub profile: &'a Path,
    /// The CSV file.
    pub file: &'a Path,
    /// The report file (default: `<file>.report.csv`).
    pub report: Option<&'a Path>,
    /// Decide every row but record nothing.
    pub dry_run: bool,
    /// Who imports (recorded as the actor of every command).
    pub actor: &'a str,
    /// The recorded date.
    pub today: NaiveDate,
}

/// Counts of an import.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Rows read (not counting the header).
    pub rows: u64,
    /// Rows recorded now.
    pub accepted: u64,
    /// Rows recorded by an earlier import.
    pub already_applied: u64,
    /// Rows refused (nothing written).
    pub rejected: u64,
    /// Empty rows skipped.
    pub blank: u64,
    /// Rows with warnings (half-width kana converted, characters PMH shows as "●").
    pub warned: u64,
}

/// Runs `daicho import`.
pub fn run(req: &ImportRequest<'_>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let profile = match read_profile(req.profile, err) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let mut ledger = match crate::cli::open_ledger(req.data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    if let Some(key) = profile.fixed.get("program")
        && ledger.config().programs().iter().all(|p| p.key.as_str() != key)
    {
        let _ = writeln!(err, "{}: fixed.program: 設定にない制度です", req.profile.display());
        return EXIT_REJECTED;
    }
    let file = match File::open(req.file) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "{}: ファイルを読めません: {e}", req.file.display());
            return EXIT_UNREADABLE;
        }
    };
    let total_bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut input = BufReader::with_capacity(1 << 20, file);
    let encoding = match detect(&mut input, profile.encoding) {
        Ok(e) => e,
        Err(e) => {
            let _ = writeln!(err, "{}: ファイルを読めません: {e}", req.file.display());
            return EXIT_UNREADABLE;
        }
    };
    let report_path = req.report.map_or_else(|| default_report(req.file), Path::to_path_buf);
    let report = match DiskFile::create_new(&report_path) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(
                err,
                "{}: 報告ファイルを作れません（既にあるときは上書きしません）: {e}",
                report_path.display()
            );
            return EXIT_UNREADABLE;
        }
    };
    let mut report = match Report::new(report) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "{}: 報告ファイルに書けません: {e}", report_path.display());
            return EXIT_UNREADABLE;
        }
    };
    let mut importer = Importer {
        profile: &profile,
        encoding,
        actor: req.actor,
        today: req.today,
        dry_run: req.dry_run,
        columns: HashMap::new(),
        order: Vec::new(),
        overlay: Overlay::default(),
        counts: Counts::default(),
    };
    let prefix = importer.id_prefix();
    match ledger.store().any_request_with_prefix(&prefix) {
        Ok(false) => importer.overlay.fresh_prefix = Some(prefix),
        Ok(true) => {}
        Err(e) => {
            let _ = writeln!(err, "台帳を読めません: {e}");
            return EXIT_UNREADABLE;
        }
    }
    let started = Instant::now();
    let mut progress = Progress::new(total_bytes);
    let result = importer.run(&mut ledger, input, &mut report, &mut |counts, bytes| progress.show(counts, bytes));
    progress.finish();
    let result = result.and_then(|()| report.finish().map_err(|e| Failure::Io(format!("報告ファイル: {e}"))));
    let counts = importer.counts.clone();
    let status = match result {
        Ok(()) => {
            if counts.rejected == 0 {
                EXIT_OK
            } else {
                EXIT_REJECTED
            }
        }
        Err(Failure::Input(message)) => {
            let _ = writeln!(err, "{}: {message}", req.file.display());
            EXIT_REJECTED
        }
        Err(Failure::Io(message)) => {
            let _ = writeln!(err, "{}: {message}（この行以降は処理していません）", req.file.display());
            EXIT_UNREADABLE
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let rows_peak = peak_memory_mib();
    let caught_up = Instant::now();
    if !req.dry_run && status != EXIT_UNREADABLE {
        // The register catches up now, so the web UI and `show` see the imported recipients.
        if let Err(e) = ledger.projections() {
            let _ = writeln!(err, "台帳の投影を更新できません（daicho rebuild で作り直せます）: {e}");
        }
    }
    let projection_seconds = caught_up.elapsed().as_secs_f64();
    let head = ledger.store().head();
    let _ = writeln!(
        out,
        "{}: {}行（{}）: 受理 {}、取込済み {}、却下 {}、空行 {}、警告あり {}。{:.1}秒（{:.0}行/秒{}、台帳の投影の更新 {:.1}秒）。{}報告: {}。台帳の先頭: 位置 {} ハッシュ {}",
        req.file.display(),
        counts.rows,
        match encoding {
            Encoding::Cp932 => "CP932",
            _ => "UTF-8",
        },
        counts.accepted,
        counts.already_applied,
        counts.rejected,
        counts.blank,
        counts.warned,
        seconds,
        counts.rows as f64 / seconds.max(1e-9),
        rows_peak.map(|m| format!("、最大メモリ {m} MiB")).unwrap_or_default(),
        projection_seconds,
        if req.dry_run { "確認のみで何も記録していません。" } else { "" },
        report_path.display(),
        head.position,
        head.hash.short()
    );
    status
}

/// The process's peak resident memory so far (Linux `VmHWM`), in MiB.
fn peak_memory_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

fn default_report(file: &Path) -> PathBuf {
    let mut name = file.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".report.csv");
    file.with_file_name(name)
}

fn read_profile(path: &Path, err: &mut dyn Write) -> Result<Profile, u8> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let _ = writeln!(err, "{}: プロファイルを読めません: {e}", path.display());
        EXIT_UNREADABLE
    })?;
    Profile::from_toml(&text).map_err(|e| {
        for (place, message) in &e.problems {
            let _ = writeln!(err, "{}: {place}: {message}", path.display());
        }
        EXIT_REJECTED
    })
}

/// Decides the character set: a UTF-8 BOM is skipped; `Auto` looks at the first 64 KiB.
fn detect(input: &mut BufReader<File>, stated: Encoding) -> std::io::Result<Encoding> {
    let mut sample = Vec::with_capacity(SNIFF_BYTES);
    {
        let buf = input.fill_buf()?;
        sample.extend_from_slice(&buf[..buf.len().min(SNIFF_BYTES)]);
    }
    let bom = sample.starts_with(b"\xEF\xBB\xBF");
    if bom && stated != Encoding::Cp932 {
        input.consume(3);
        return Ok(Encoding::Utf8);
    }
    Ok(match stated {
        Encoding::Auto => match std::str::from_utf8(&sample) {
            Ok(_) => Encoding::Utf8,
            // A character cut by the end of the sample is still UTF-8.
            Err(e) if e.error_len().is_none() => Encoding::Utf8,
            Err(_) => Encoding::Cp932,
        },
        other => other,
    })
}

/// Why an import stopped before the end of the file.
enum Failure {
    /// The file's layout does not match the profile (header): nothing was recorded.
    Input(String),
    /// Reading, the ledger or the report failed.
    Io(String),
}

/// What happened to one row.
enum RowOutcome {
    Accepted { events: Vec<&'static str>, pending: Vec<Queued> },
    AlreadyApplied,
    Rejected { code: &'static str, column: String, message: String },
    Blank,
}

/// A report line waiting for its row's appends.
struct RowReport {
    line: u64,
    outcome: RowOutcome,
    warnings: Vec<Warning>,
}

struct Warning {
    code: &'static str,
    column: String,
    message: String,
}

/// States of the rows in flight: what the store will hold once the queued appends commit.
#[derive(Default)]
struct Overlay {
    recipients: HashMap<RecipientRef, (State, u64)>,
    requests: HashMap<CommandId, Fingerprint>,
    /// The ledger had no command of this source when the import began: none of this run's ids
    /// (`imp.<source>.…`) can be a repeat unless this run wrote it, so the ledger is not asked
    /// (a first migration of a million rows skips two or three index reads per row).
    fresh_prefix: Option<String>,
}

/// A row being decided: reads through the overlay to the ledger, keeps what the row's commands
/// would write until the row is known to be accepted whole.
struct Scratch<'a> {
    ledger: &'a mut Ledger,
    overlay: &'a Overlay,
    recipients: HashMap<RecipientRef, (State, u64)>,
    requests: HashMap<CommandId, Fingerprint>,
    appends: Vec<(Command, Vec<Event>, u64)>,
}

impl Backend for Scratch<'_> {
    fn prior(&mut self, id: &CommandId) -> Result<Option<(Fingerprint, Position)>, BackendError> {
        if let Some(f) = self.requests.get(id).or_else(|| self.overlay.requests.get(id)) {
            return Ok(Some((*f, Position(0))));
        }
        if self.overlay.fresh_prefix.as_deref().is_some_and(|p| id.as_str().starts_with(p)) {
            return Ok(None);
        }
        self.ledger.prior(id)
    }

    fn load(&mut self, recipient: &RecipientRef) -> Result<Loaded, BackendError> {
        if let Some((state, version)) =
            self.recipients.get(recipient).or_else(|| self.overlay.recipients.get(recipient))
        {
            return Ok(Loaded { state: state.clone(), stream: (*version > 0).then(String::new), version: *version });
        }
        // Kept for the row's next command, so a stream is read from the store once per row.
        let loaded = self.ledger.load(recipient)?;
        self.recipients.insert(recipient.clone(), (loaded.state.clone(), loaded.version));
        Ok(loaded)
    }

    fn holder(&mut self, _: &MyNumber, _: &RecipientRef) -> Result<MyNumberHolder, BackendError> {
        Err(BackendError("an import never links a My Number".into()))
    }

    fn append(&mut self, loaded: &Loaded, cmd: &Command, events: &[Event]) -> Result<Appended, BackendError> {
        let state = events.iter().fold(loaded.state.clone(), evolve);
        let version = loaded.version + events.len() as u64;
        self.recipients.insert(cmd.recipient.clone(), (state, version));
        self.requests.insert(cmd.id.clone(), cmd.fingerprint());
        self.appends.push((cmd.clone(), events.to_vec(), loaded.version));
        Ok(Appended::Written { last: Position(0) })
    }
}

struct Importer<'a> {
    profile: &'a Profile,
    encoding: Encoding,
    actor: &'a str,
    today: NaiveDate,
    dry_run: bool,
    /// Field -> 0-based column index and the column's name for messages.
    columns: HashMap<&'static str, (usize, String)>,
    /// The mapped fields by column, as cells are read.
    order: Vec<(&'static str, usize)>,
    overlay: Overlay,
    counts: Counts,
}

impl Importer<'_> {
    fn run(
        &mut self,
        ledger: &mut Ledger,
        input: impl BufRead,
        report: &mut Report,
        progress: &mut dyn FnMut(&Counts, u64),
    ) -> Result<(), Failure> {
        let mut records = Records::new(input, self.profile.delimiter);
        let mut record = Record::default();
        let read = |records: &mut Records<_>, record: &mut Record| match records.next_into(record) {
            Ok(more) => Ok(more),
            Err(RecordError::Io(e)) => Err(Failure::Io(format!("読み込みに失敗しました: {e}"))),
            Err(RecordError::Unclosed { line }) => {
                Err(Failure::Input(format!("{line}行目: 引用符（\"）が閉じていません。この行以降は取り込んでいません")))
            }
        };
        if self.profile.header {
            if !read(&mut records, &mut record)? {
                return Err(Failure::Input("見出し行がありません".into()));
            }
            let names = self.decode_header(&record)?;
            self.resolve(Some(&names))?;
        } else {
            self.resolve(None)?;
        }
        let config = ledger.config().clone();
        let mut chunk: Vec<RowReport> = Vec::with_capacity(CHUNK_ROWS);
        loop {
            let more = read(&mut records, &mut record);
            let more = match more {
                Ok(m) => m,
                Err(e) => {
                    // Rows decided before the bad one are recorded and reported.
                    self.flush(&mut chunk, report)?;
                    return Err(e);
                }
            };
            if !more {
                break;
            }
            let line = record.line;
            self.counts.rows += 1;
            let (outcome, warnings) =
                self.row(ledger, &config, &record).map_err(|e| Failure::Io(format!("{line}行目: {e}")))?;
            match &outcome {
                RowOutcome::Accepted { .. } => self.counts.accepted += 1,
                RowOutcome::AlreadyApplied => self.counts.already_applied += 1,
                RowOutcome::Rejected { .. } => self.counts.rejected += 1,
                RowOutcome::Blank => self.counts.blank += 1,
            }
            if !warnings.is_empty() {
                self.counts.warned += 1;
            }
            chunk.push(RowReport { line, outcome, warnings });
            if chunk.len() >= CHUNK_ROWS {
                self.flush(&mut chunk, report)?;
                progress(&self.counts, records.bytes());
            }
        }
        self.flush(&mut chunk, report)?;
        progress(&self.counts, records.bytes());
        Ok(())
    }

    /// Waits for the chunk's appends, writes its report lines, drops its states.
    fn flush(&mut self, chunk: &mut Vec<RowReport>, report: &mut Report) -> Result<(), Failure> {
        for RowReport { line, outcome, warnings } in chunk.drain(..) {
            let mut entry = ReportLine { line, ..ReportLine::default() };
            match outcome {
                RowOutcome::Accepted { events, pending } => {
                    for p in pending {
                        let done =
                            p.wait().map_err(|e| Failure::Io(format!("{line}行目を台帳に記録できません: {e}")))?;
                        entry.position = Some(done);
                    }
                    entry.result = if self.dry_run { "受理（確認のみ）" } else { "受理" };
                    entry.events = events.join(" ");
                }
                RowOutcome::AlreadyApplied => entry.result = "取込済み",
                RowOutcome::Rejected { code, column, message } => {
                    entry = ReportLine { result: "却下", code, column, message, ..entry };
                }
                RowOutcome::Blank => entry.result = "空行",
            }
            report.row(&entry).map_err(|e| Failure::Io(format!("報告ファイル: {e}")))?;
            for w in warnings {
                let warning = ReportLine {
                    line,
                    result: "警告",
                    code: w.code,
                    column: w.column,
                    message: w.message,
                    ..ReportLine::default()
                };
                report.row(&warning).map_err(|e| Failure::Io(format!("報告ファイル: {e}")))?;
            }
        }
        if !self.dry_run {
            // Everything queued has committed: the store answers for these recipients now.
            self.overlay = Overlay::default();
        }
        report.flush().map_err(|e| Failure::Io(format!("報告ファイル: {e}")))
    }

    fn decode_header(&self, record: &Record) -> Result<Vec<String>, Failure> {
        record
            .cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                self.decode(cell)
                    .map(|s| s.trim().to_owned())
                    .map_err(|()| Failure::Input(format!("見出し行の{}列目を文字として読めません", i + 1)))
            })
            .collect()
    }

    /// Finds the column of every mapped field.
    fn resolve(&mut self, header: Option<&[String]>) -> Result<(), Failure> {
        for field in profile::FIELDS {
            let Some(column) = self.profile.columns.get(field) else { continue };
            let (index, label) = match (column, header) {
                (ColumnRef::Number(n), Some(names)) => {
                    (n - 1, names.get(n - 1).cloned().filter(|s| !s.is_empty()).unwrap_or_else(|| format!("{n}列目")))
                }
                (ColumnRef::Number(n), None) => (n - 1, format!("{n}列目")),
                (ColumnRef::Name(name), Some(names)) => {
                    let found: Vec<usize> =
                        names.iter().enumerate().filter(|(_, n)| *n == name).map(|(i, _)| i).collect();
                    match found[..] {
                        [i] => (i, name.clone()),
                        [] => {
                            return Err(Failure::Input(format!(
                                "見出し行に列「{name}」がありません（columns.{field}）"
                            )));
                        }
                        _ => {
                            return Err(Failure::Input(format!(
                                "見出し行に列「{name}」が複数あります（columns.{field}）"
                            )));
                        }
                    }
                }
                (ColumnRef::Name(_), None) => {
                    return Err(Failure::Input(format!("columns.{field}: 見出し行がありません")));
                }
            };
            self.columns.insert(field, (index, label));
            self.order.push((field, index));
        }
        self.order.sort_by_key(|(_, i)| *i);
        Ok(())
    }

    fn decode(&self, cell: &[u8]) -> Result<String, ()> {
        match self.encoding {
            Encoding::Cp932 => decode_cp932(cell).map_err(|_| ()),
            _ => std::str::from_utf8(cell).map(str::to_owned).map_err(|_| ()),
        }
    }

    fn label(&self, field: &str) -> String {
        self.columns.get(field).map(|(_, l)| l.clone()).unwrap_or_else(|| field.to_owned())
    }

    /// Decides one row; queues its appends when every command is accepted.
    fn row(
        &mut self,
        ledger: &mut Ledger,
        config: &Config,
        record: &Record,
    ) -> Result<(RowOutcome, Vec<Warning>), BackendError> {
        if record.is_blank() {
            return Ok((RowOutcome::Blank, Vec::new()));
        }
        let rejected = |code: &'static str, column: String, message: String| {
            Ok((RowOutcome::Rejected { code, column, message }, Vec::new()))
        };
        // Cells of the mapped fields, decoded and trimmed.
        let mut cells: HashMap<&'static str, String> = HashMap::new();
        for &(field, index) in &self.order {
            let Some(raw) = record.cells.get(index) else {
                let message = format!("列が足りません（{}列、必要な列 {}）", record.cells.len(), index + 1);
                return rejected("missing_column", self.label(field), message);
            };
            let Ok(text) = self.decode(raw) else {
                let charset = if self.encoding == Encoding::Cp932 { "CP932" } else { "UTF-8" };
                return rejected(
                    "undecodable",
                    self.label(field),
                    format!("{charset}の文字として読めないバイトがあります"),
                );
            };
            let text = text.trim_matches(|c: char| c.is_whitespace()).to_owned();
            cells.insert(field, text);
        }
        let mut warnings = Vec::new();
        // Half-width kana from old systems becomes full width, and the row says so.
        if let Some(kana) = cells.get_mut("kana") {
            let (full, changes) = half_width_kana_to_full_width(kana);
            if !changes.is_empty() {
                *kana = full;
                warnings.push(Warning {
                    code: "half_width_kana",
                    column: self.label("kana"),
                    message: format!("半角カナを全角に変換しました（{}か所）", changes.len()),
                });
            }
        }
        for field in ["sex", "program", "income_segment"] {
            let Some(v) = cells.get_mut(field).filter(|v| !v.is_empty()) else { continue };
            match self.profile.translate(field, v) {
                Some(t) => *v = t.to_owned(),
                None => {
                    let message = format!("読み替え表（values.{field}）にないコードです");
                    return rejected("unknown_code", self.label(field), message);
                }
            }
        }
        for field in profile::DATE_FIELDS {
            let Some(raw) = cells.get(field).filter(|v| !v.is_empty()) else { continue };
            match parse_date(raw, &self.profile.date_formats, &config.eras) {
                Ok(d) => {
                    cells.insert(field, d.to_string());
                }
                Err(message) => return rejected("date", self.label(field), message),
            }
        }
        for (field, v) in &self.profile.fixed {
            if let Some(f) = profile::FIELDS.iter().find(|f| **f == field.as_str()) {
                cells.insert(f, v.clone());
            }
        }
        let value = |f: &str| cells.get(f).cloned().unwrap_or_default();
        let grants = self.profile.grants();
        let valid_from = value("valid_from").parse::<NaiveDate>().ok();
        let registered_on = value("registered_on").parse::<NaiveDate>().ok();
        let register_effective = registered_on.or(valid_from.filter(|d| *d <= self.today)).unwrap_or(self.today);
        let recipient = value("recipient");
        let basic = ["name", "kana", "birth_date", "sex", "address"];
        let mut register = Map::new();
        register.insert("id".into(), self.key('r', &recipient, &basic.map(value)).into());
        register.insert("type".into(), "register_recipient".into());
        register.insert("actor".into(), self.actor.into());
        register.insert("recipient".into(), recipient.clone().into());
        register.insert("effective".into(), register_effective.to_string().into());
        for f in basic {
            register.insert(f.into(), value(f).into());
        }
        let register = match parse_command_value(Value::Object(register)) {
            Ok(c) => c,
            Err(e) => return Ok((self.input_rejection(&e), warnings)),
        };
        let grant = if grants {
            // The id hashes every field's cell; `copay_cap_rate` (added later) only when it has one,
            // so rows imported before it keep their ids and import again as 取込済み.
            let all: Vec<String> = profile::FIELDS
                .iter()
                .filter(|f| **f != "copay_cap_rate" || !value(f).is_empty())
                .map(|f| value(f))
                .collect();
            let program = value("program");
            let mut g = Map::new();
            g.insert("id".into(), self.key('g', &recipient, &all).into());
            g.insert("type".into(), "grant_certificate".into());
            g.insert("actor".into(), self.actor.into());
            g.insert("recipient".into(), recipient.clone().into());
            let effective = valid_from.map_or(self.today, |d| d.min(self.today));
            g.insert("effective".into(), effective.to_string().into());
            let certificate = Some(value("certificate")).filter(|c| !c.is_empty()).unwrap_or_else(|| program.clone());
            g.insert("certificate".into(), certificate.into());
            g.insert("program".into(), program.into());
            for f in ["payer_number", "recipient_number", "valid_from"] {
                g.insert(f.into(), value(f).into());
            }
            for f in ["valid_to", "income_segment", "disease"] {
                if let Some(v) = cells.get(f).filter(|v| !v.is_empty()) {
                    g.insert(f.into(), v.clone().into());
                }
            }
            let yen = cells.get("copay_cap_yen").filter(|v| !v.is_empty());
            let rate = cells.get("copay_cap_rate").filter(|v| !v.is_empty());
            // 負担なし in the profile: every grant row has that cap (a cell with an amount or a
            // rate is then the contract's to refuse).
            if yen.is_some() || rate.is_some() || self.profile.copay_cap.kind == "free" {
                let cap = &self.profile.copay_cap;
                let mut c = serde_json::Map::new();
                c.insert("kind".into(), cap.kind.clone().into());
                if let Some(d) = &cap.definition {
                    c.insert("definition".into(), d.clone().into());
                }
                if let Some(yen) = yen {
                    let digits: String = yen.chars().filter(|c| *c != ',' && *c != '円').collect();
                    let Ok(yen) = digits.parse::<i64>() else {
                        return rejected("format", self.label("copay_cap_yen"), "金額を数字で入力してください".into());
                    };
                    c.insert(format!("yen_{}", cap.unit), yen.into());
                }
                if let Some(rate) = rate {
                    let Some(percent) = percent(rate) else {
                        return rejected(
                            "format",
                            self.label("copay_cap_rate"),
                            "負担率を 10、10%、1割 のように入力してください".into(),
                        );
                    };
                    c.insert(format!("rate_{}", cap.unit), percent.into());
                }
                g.insert("copay_cap".into(), Value::Object(c));
            }
            if let Some(list) = cells.get("designated_institutions").filter(|v| !v.is_empty()) {
                let items: Vec<Value> = list
                    .split(self.profile.institutions_separator.as_str())
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_owned()))
                    .collect();
                g.insert("designated_institutions".into(), Value::Array(items));
            }
            match parse_command_value(Value::Object(g)) {
                Ok(c) => Some(c),
                Err(e) => return Ok((self.input_rejection(&e), warnings)),
            }
        } else {
            None
        };
        for cmd in std::iter::once(&register).chain(grant.as_ref()) {
            for w in cmd.warnings() {
                warnings.push(self.text_warning(&w));
            }
        }
        // Decide the row's commands against a scratch copy; queue them only if all pass.
        let last = grant.as_ref().unwrap_or(&register);
        let mut scratch = Scratch {
            ledger,
            overlay: &self.overlay,
            recipients: HashMap::new(),
            requests: HashMap::new(),
            appends: Vec::new(),
        };
        if scratch.prior(&last.id)?.is_some_and(|(f, _)| f == last.fingerprint()) {
            return Ok((RowOutcome::AlreadyApplied, warnings));
        }
        let existing = scratch.load(&register.recipient)?;
        let mut commands = Vec::new();
        match existing.state.recipient() {
            None => commands.push(&register),
            Some(r) => {
                let daicho_domain::command::CommandBody::RegisterRecipient(info) = &register.body else {
                    return Err(BackendError("register command expected".into()));
                };
                let differs: Vec<String> = [
                    ("name", r.name != info.name),
                    ("kana", r.kana != info.kana),
                    ("birth_date", r.birth_date != info.birth_date),
                    ("sex", r.sex != info.sex),
                    ("address", r.address != info.address),
                ]
                .into_iter()
                .filter(|(_, d)| *d)
                .map(|(f, _)| self.label(f))
                .collect();
                if !differs.is_empty() {
                    let message =
                        "同じ受給者が既に登録されていて、基本情報が異なります（変更は画面か apply で記録してください）";
                    return rejected("basic_info_differs", differs.join("、"), message.into());
                }
            }
        }
        commands.extend(grant.as_ref());
        let mut events = Vec::new();
        for cmd in &commands {
            match submit(&mut scratch, config, self.today, cmd)? {
                Submitted::Accepted { events: e, .. } => events.extend(e.iter().map(Event::type_name)),
                Submitted::AlreadyApplied { .. } => {}
                // The scratch ledger is this import's alone: nobody else writes to it.
                Submitted::Conflict => return Err(BackendError(daicho_app::CONFLICT_MESSAGE.into())),
                Submitted::Rejected(r) => {
                    return Ok((
                        RowOutcome::Rejected { code: r.code(), column: String::new(), message: r.message() },
                        warnings,
                    ));
                }
            }
        }
        let Scratch { recipients, requests, appends, .. } = scratch;
        if appends.is_empty() {
            return Ok((RowOutcome::AlreadyApplied, warnings));
        }
        self.overlay.recipients.extend(recipients);
        self.overlay.requests.extend(requests);
        let mut pending = Vec::new();
        if !self.dry_run {
            for (cmd, events, version) in appends {
                pending.push(bulk::queue(ledger.store(), &cmd, &events, version).map_err(BackendError)?);
            }
        }
        Ok((RowOutcome::Accepted { events, pending }, warnings))
    }

    /// What every command id of this source starts with.
    fn id_prefix(&self) -> String {
        format!("imp.{}.", self.profile.source)
    }

    /// `imp.<source>.<kind>.<hash>`: from the source and the row's cells, so the same row of the
    /// same source always gives the same id.
    fn key(&self, kind: char, recipient: &str, cells: &[String]) -> String {
        let mut h = Sha256::new();
        h.update(self.profile.source.as_bytes());
        h.update([0x1f, kind as u8, 0x1f]);
        h.update(recipient.as_bytes());
        for c in cells {
            h.update([0x1f]);
            h.update(c.as_bytes());
        }
        let hex: String = h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect();
        format!("{}{kind}.{hex}", self.id_prefix())
    }

    fn input_rejection(&self, e: &InputError) -> RowOutcome {
        match e {
            InputError::Fields(errors) => {
                let column = errors.first().map(|f| self.field_label(&f.field)).unwrap_or_default();
                let message = errors
                    .iter()
                    .map(|f| format!("{}: {}", self.field_label(&f.field), f.error.message()))
                    .collect::<Vec<_>>()
                    .join("; ");
                RowOutcome::Rejected { code: e.code(), column, message }
            }
            _ => RowOutcome::Rejected { code: e.code(), column: String::new(), message: e.message() },
        }
    }

    /// The column a contract field (`copay_cap.yen_month`, `designated_institutions[1]`) came
    /// from.
    fn field_label(&self, field: &str) -> String {
        let base = field.split(['.', '[']).next().unwrap_or(field);
        if field == "copay_cap.definition" || field == "copay_cap.kind" {
            // From the profile, not from a column.
            return format!("import.{}", field.replace('.', "_"));
        }
        let field = match base {
            "copay_cap" if field.contains(".rate_") => "copay_cap_rate",
            "copay_cap" => "copay_cap_yen",
            "certificate" if !self.columns.contains_key("certificate") => "program",
            "effective" => "valid_from",
            other => other,
        };
        match self.profile.fixed.contains_key(field) {
            true => format!("fixed.{field}"),
            false => self.label(field),
        }
    }

    fn text_warning(&self, w: &TextWarning) -> Warning {
        Warning { code: TextWarning::CODE, column: self.field_label(w.field), message: w.message() }
    }
}

/// A date cell in the first of the profile's formats that reads it.
fn parse_date(raw: &str, formats: &[DateFormat], eras: &EraTable) -> Result<NaiveDate, String> {
    let mut first_error = None;
    for format in formats {
        let parsed = match format {
            DateFormat::Wareki => eras.parse(raw).map_err(|e| e.message()),
            DateFormat::Pattern(p) => NaiveDate::parse_from_str(raw, p).map_err(|e| match e.kind() {
                chrono::format::ParseErrorKind::OutOfRange | chrono::format::ParseErrorKind::Impossible => {
                    "存在しない日付です".to_owned()
                }
                _ => format!("日付として読めません（{p}）"),
            }),
        };
        match parsed {
            Ok(d) if d < GREGORIAN_START => return Err("明治6年（1873年）1月1日より前の日付は扱えません".into()),
            Ok(d) => return Ok(d),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| "日付として読めません".into()))
}

/// One line of the report.
#[derive(Default)]
struct ReportLine {
    line: u64,
    result: &'static str,
    position: Option<u64>,
    events: String,
    code: &'static str,
    column: String,
    message: String,
}

/// The report: one CSV line per row (and one per warning), UTF-8 with a BOM so Excel opens it.
/// It names rows by line number and columns by name; it never repeats a cell's content.
struct Report {
    out: DiskFile,
}

/// A CSV cell, quoted when it must be.
fn csv_cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

impl Report {
    fn new(mut out: DiskFile) -> std::io::Result<Report> {
        out.write_all("\u{FEFF}行,結果,位置,事象,コード,列,内容\r\n".as_bytes())?;
        Ok(Report { out })
    }

    fn row(&mut self, l: &ReportLine) -> std::io::Result<()> {
        let position = l.position.map(|p| p.to_string()).unwrap_or_default();
        let cells = [l.line.to_string(), l.result.to_owned(), position, l.events.clone(), l.code.to_owned()];
        // The column's name comes from the imported file's header (and heads some messages):
        // free text for a spreadsheet.
        let (column, message) =
            (daicho_domain::text::spreadsheet_safe(&l.column), daicho_domain::text::spreadsheet_safe(&l.message));
        let cells = cells.iter().map(|c| csv_cell(c)).chain([csv_cell(&column), csv_cell(&message)]);
        let line: Vec<_> = cells.collect();
        write!(self.out, "{}\r\n", line.join(","))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    fn finish(self) -> std::io::Result<()> {
        self.out.finish_file().map(|_| ())
    }
}

/// A one-line progress display on a terminal (nothing when standard error is not one).
struct Progress {
    total: u64,
    on: bool,
    last: Instant,
    started: Instant,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let now = Instant::now();
        Progress { total, on: std::io::stderr().is_terminal(), last: now, started: now }
    }

    fn show(&mut self, counts: &Counts, bytes: u64) {
        if !self.on || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let fraction = if self.total == 0 { 1.0 } else { bytes as f64 / self.total as f64 };
        let filled = (fraction * 30.0).round() as usize;
        let rate = counts.rows as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\r[{}{}] {:>3.0}% {}行 受理{} 却下{} {:.0}行/秒 ",
            "#".repeat(filled.min(30)),
            " ".repeat(30 - filled.min(30)),
            fraction * 100.0,
            counts.rows,
            counts.accepted,
            counts.rejected,
            rate
        );
    }

    fn finish(&self) {
        if self.on {
            eprintln!();
        }
    }
}

/// A 負担率 cell as whole percent: `10`, `10%`, `１０％` or `1割` (a tenth). `None` for anything
/// else; the range is the contract's to check.
fn percent(cell: &str) -> Option<i64> {
    let ascii: String = cell
        .trim()
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(u32::from(c) - 0xFEE0).unwrap_or(c),
            '％' => '%',
            other => other,
        })
        .collect();
    // At most three digits: the contract refuses more than 100 and no multiplication overflows.
    let number = |digits: &str| {
        (!digits.is_empty() && digits.len() <= 3 && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<i64>().ok())
            .flatten()
    };
    if let Some(tenths) = ascii.strip_suffix('割') {
        return number(tenths).map(|t| t * 10);
    }
    number(ascii.strip_suffix('%').unwrap_or(&ascii))
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn a_rate_cell_reads_as_whole_percent_or_not_at_all() {
        for (cell, expected) in [
            ("10", Some(10)),
            ("10%", Some(10)),
            ("１０％", Some(10)),
            ("2割", Some(20)),
            (" 30 ", Some(30)),
            ("", None),
            ("%", None),
            ("1.5割", None),
            ("-10", None),
            ("十", None),
            ("割", None),
            ("1844674407370955162割", None),
            ("1000", None),
            ("100", Some(100)),
        ] {
            assert_eq!(percent(cell), expected, "{cell:?}");
        }
    }
}
