//! PMH's registration results (医療費助成情報登録結果確認): the error CSV PMH offers after an
//! upload, read through a column profile, tied to the batches daicho recorded and recorded in
//! the log (`pmh_results_recorded` on the `pmh-results` stream).
//!
//! Each row names a batch file, a history key, PMH's code and its text. A row is tied to the
//! batch that wrote the file and to the record of the history key; the record must be one that
//! batch sent (the register keeps which batch sent each record). Rows that name anything else
//! (a file daicho never wrote, a key it never sent, a record sent again by a later batch) are
//! reported with their line, never dropped in silence; the other rows are recorded. A file whose
//! layout or cells are wrong is refused whole, each problem named by line and column, and
//! nothing is recorded. The same file read twice records nothing the second time.
//!
//! PMH's texts are kept as they come, except that runs of twelve digits or more are masked (a
//! My Number quoted in an error must not reach the log or a screen).
//!
//! The official layout of the file is not public: [`DEFAULT_PROFILE`] (the file
//! `examples/pmh/results-profile.toml`) is our assumption of its column names.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use daicho_domain::codec::{self, PmhRefusal, PmhResults};
use daicho_domain::config::ProgramKey;
use daicho_domain::ids::HistoryKey;
use daicho_domain::text::{PmhErrorCode, PmhMessage, decode_cp932, mask_digit_runs};
use daicho_store::{Position, StreamId};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::append::{RETRIES_MAX, System, lost_race, text_digest};
use crate::csv_records::{Record, RecordError, Records};
use crate::ledger::{Ledger, LedgerError, RecordedBatch};

/// The stream PMH's results are recorded on (apart from the batches, whose numbers are the
/// `pmh` stream's versions).
pub const RESULTS_STREAM: &str = "pmh-results";

/// The default column profile.
pub const DEFAULT_PROFILE: &str = include_str!("../../examples/pmh/results-profile.toml");

/// Largest results file read, in bytes.
pub const FILE_BYTES_MAX: usize = 64 << 20;

/// Rows read at most.
pub const ROWS_MAX: usize = 1_000_000;

/// The character set of a results file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Cp932,
    /// UTF-8 when the file starts with a BOM or is valid UTF-8, else CP932.
    Auto,
}

impl Encoding {
    /// A profile's `encoding` (at `place`): `utf-8`, `cp932` or `auto` (the default).
    pub fn of_profile(value: Option<&str>, place: &str) -> Result<Encoding, String> {
        match value {
            None | Some("auto") => Ok(Encoding::Auto),
            Some("utf-8") => Ok(Encoding::Utf8),
            Some("cp932") => Ok(Encoding::Cp932),
            Some(_) => Err(format!("{place}: \"utf-8\"、\"cp932\"、\"auto\" のいずれかです")),
        }
    }
}

/// The first of a profile's column names (place, name) that is blank, as an error.
pub fn blank_column(columns: &[(&str, &String)]) -> Result<(), String> {
    match columns.iter().find(|(_, name)| name.trim().is_empty()) {
        Some((place, _)) => Err(format!("{place}: 列名が空です")),
        None => Ok(()),
    }
}

/// Where each field of a row is read from: the header's column names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub description: Option<String>,
    pub encoding: Encoding,
    /// The columns of the batch file name, history key, PMH's code and text.
    pub file: String,
    pub history_key: String,
    pub code: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileToml {
    #[serde(default)]
    results: SettingsToml,
    columns: ColumnsToml,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SettingsToml {
    description: Option<String>,
    encoding: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnsToml {
    file: String,
    history_key: String,
    code: String,
    message: String,
}

impl Profile {
    /// Reads a profile; the error names the place in Japanese.
    pub fn from_toml(text: &str) -> Result<Profile, String> {
        let p: ProfileToml = toml::from_str(text).map_err(|e| format!("プロファイルを読めません: {}", e.message()))?;
        let encoding = Encoding::of_profile(p.results.encoding.as_deref(), "results.encoding")?;
        let c = p.columns;
        blank_column(&[
            ("columns.file", &c.file),
            ("columns.history_key", &c.history_key),
            ("columns.code", &c.code),
            ("columns.message", &c.message),
        ])?;
        Ok(Profile {
            description: p.results.description,
            encoding,
            file: c.file,
            history_key: c.history_key,
            code: c.code,
            message: c.message,
        })
    }

    /// The default profile ([`DEFAULT_PROFILE`]).
    pub fn default_profile() -> Result<Profile, String> {
        Profile::from_toml(DEFAULT_PROFILE)
    }
}

/// A problem with a results file: its line (0: the file as a whole), the column, what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileProblem {
    pub line: u64,
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, &self.column) {
            (0, None) => f.write_str(&self.message),
            (0, Some(c)) => write!(f, "「{c}」列: {}", self.message),
            (line, None) => write!(f, "{line}行目: {}", self.message),
            (line, Some(c)) => write!(f, "{line}行目「{c}」列: {}", self.message),
        }
    }
}

/// Problems reported at most (the rest are counted).
pub const PROBLEMS_MAX: usize = 100;

/// One row of a results file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub line: u64,
    pub file: String,
    pub history_key: HistoryKey,
    pub code: PmhErrorCode,
    pub message: PmhMessage,
}

/// Longest batch file name accepted, in characters.
const FILE_NAME_CHARS_MAX: usize = 200;

/// A CSV file from PMH opened for reading: its records after any BOM, cells decoded in the
/// encoding the profile states (or finds); shared by the results and the inquiry files.
pub(crate) struct PmhCsv<'a> {
    records: Records<&'a [u8]>,
    pub(crate) encoding: Encoding,
}

impl<'a> PmhCsv<'a> {
    /// `bytes` read as `stated` (a UTF-8 BOM is skipped unless CP932 is stated; `Auto`: UTF-8
    /// when the whole file is, else CP932); refused above [`FILE_BYTES_MAX`].
    pub(crate) fn open(bytes: &'a [u8], stated: Encoding, too_large: &str) -> Result<PmhCsv<'a>, Vec<FileProblem>> {
        if bytes.len() > FILE_BYTES_MAX {
            return Err(vec![FileProblem { line: 0, column: None, message: too_large.to_owned() }]);
        }
        let (body, encoding) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
            Some(rest) if stated != Encoding::Cp932 => (rest, Encoding::Utf8),
            _ => match stated {
                Encoding::Auto if std::str::from_utf8(bytes).is_ok() => (bytes, Encoding::Utf8),
                Encoding::Auto => (bytes, Encoding::Cp932),
                other => (bytes, other),
            },
        };
        Ok(PmhCsv { records: Records::new(body, b','), encoding })
    }

    /// A cell as text, `None` when its bytes are not text in the file's encoding.
    pub(crate) fn decode(&self, cell: &[u8]) -> Option<String> {
        match self.encoding {
            Encoding::Cp932 => decode_cp932(cell).ok(),
            _ => std::str::from_utf8(cell).ok().map(str::to_owned),
        }
    }

    /// The problem of a cell [`PmhCsv::decode`] could not read.
    pub(crate) fn undecodable(&self, line: u64, column: &str) -> FileProblem {
        let charset = if self.encoding == Encoding::Cp932 { "CP932" } else { "UTF-8" };
        FileProblem {
            line, column: Some(column.to_owned()), message: format!("{charset}として読めない文字があります")
        }
    }

    /// The next record into `record`; false at the end.
    pub(crate) fn next(&mut self, record: &mut Record) -> Result<bool, Vec<FileProblem>> {
        self.records.next_into(record).map_err(|e| match e {
            RecordError::Unclosed { line } => {
                vec![FileProblem {
                    line, column: None, message: "引用符（\"）が閉じられていません".into()
                }]
            }
            RecordError::Io(e) => vec![FileProblem { line: 0, column: None, message: format!("読めません: {e}") }],
        })
    }
}

/// Reads the rows of a results file; any problem refuses the whole file (at most
/// [`PROBLEMS_MAX`] are listed, then one that counts the rest).
pub fn read(bytes: &[u8], profile: &Profile) -> Result<Vec<Row>, Vec<FileProblem>> {
    let whole = |message: String| vec![FileProblem { line: 0, column: None, message }];
    let mut csv =
        PmhCsv::open(bytes, profile.encoding, &format!("ファイルが大きすぎます（{} MiB まで）", FILE_BYTES_MAX >> 20))?;
    let mut record = Record::default();
    let mut problems: Vec<FileProblem> = Vec::new();
    let mut extra = 0usize;
    let mut problem = |p: FileProblem, problems: &mut Vec<FileProblem>| {
        if problems.len() < PROBLEMS_MAX {
            problems.push(p);
        } else {
            extra += 1;
        }
    };
    if !csv.next(&mut record)? {
        return Err(whole("ファイルが空です（見出し行がありません）".into()));
    }
    let header: Vec<String> =
        record.cells.iter().map(|c| csv.decode(c).unwrap_or_default().trim().to_owned()).collect();
    let names = [&profile.file, &profile.history_key, &profile.code, &profile.message];
    let mut at = [0usize; 4];
    for (i, name) in names.iter().enumerate() {
        match header.iter().position(|h| h == name.as_str()) {
            Some(p) => at[i] = p,
            None => problem(
                FileProblem {
                    line: record.line,
                    column: Some((*name).clone()),
                    message: "見出し行にこの列がありません（プロファイルの列名を確かめてください）".into(),
                },
                &mut problems,
            ),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let mut rows = Vec::new();
    while csv.next(&mut record)? {
        if record.is_blank() {
            continue;
        }
        if rows.len() >= ROWS_MAX {
            return Err(whole(format!("行が多すぎます（{ROWS_MAX}行まで）")));
        }
        let line = record.line;
        let mut cell = |i: usize, problems: &mut Vec<FileProblem>| -> Option<String> {
            let column = Some(names[i].clone());
            match record.cells.get(at[i]).map(|c| csv.decode(c)) {
                None => {
                    problem(FileProblem { line, column, message: "列が足りません".into() }, problems);
                    None
                }
                Some(None) => {
                    problem(csv.undecodable(line, names[i]), problems);
                    None
                }
                Some(Some(text)) => Some(text),
            }
        };
        let cells = [0, 1, 2, 3].map(|i| cell(i, &mut problems));
        let [Some(file), Some(key), Some(code), Some(message)] = cells else { continue };
        let mut bad = |i: usize, message: String, problems: &mut Vec<FileProblem>| {
            problem(FileProblem { line, column: Some(names[i].clone()), message }, problems);
        };
        let file = file.trim().to_owned();
        if file.is_empty() {
            bad(0, "必須です".into(), &mut problems);
        } else if file.chars().count() > FILE_NAME_CHARS_MAX || file.chars().any(char::is_control) {
            bad(0, format!("{FILE_NAME_CHARS_MAX}文字以内の、制御文字を含まないファイル名です"), &mut problems);
        }
        let key = HistoryKey::parse(key.trim()).map_err(|e| bad(1, e.message(), &mut problems));
        // A code is short: one that could be a My Number means the profile names a wrong column.
        let code = if mask_digit_runs(&code) != code {
            bad(2, "個人番号の可能性がある値です（プロファイルの列名を確かめてください）".into(), &mut problems);
            Err(())
        } else {
            PmhErrorCode::parse(&code).map_err(|e| bad(2, e.message(), &mut problems))
        };
        let message = PmhMessage::parse(&mask_digit_runs(&message)).map_err(|e| bad(3, e.message(), &mut problems));
        if let (Ok(history_key), Ok(code), Ok(message)) = (key, code, message)
            && problems.is_empty()
        {
            rows.push(Row { line, file, history_key, code, message });
        }
    }
    if extra > 0 {
        problems.push(FileProblem {
            line: 0, column: None, message: format!("ほかに{extra}件の問題があります")
        });
    }
    if problems.is_empty() { Ok(rows) } else { Err(problems) }
}

/// Why a row was not tied to a record daicho sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unmatched {
    /// No recorded batch wrote a file of this name.
    UnknownFile,
    /// daicho has no record of this history key (now: a record withdrawn since, or sent as a
    /// deletion, is no longer there).
    UnknownRecord,
    /// The record is not one the batch sent (another program, or not in that batch).
    NotInBatch { batch: u64 },
    /// A later batch sent the record again: PMH's answer to that one counts.
    SentAgain { batch: u64, later: u64 },
}

impl Unmatched {
    /// In Japanese, naming no person.
    pub fn message(&self) -> String {
        match self {
            Unmatched::UnknownFile => "台帳が作成したバッチのファイル名ではありません".into(),
            Unmatched::UnknownRecord => {
                "台帳が送った記録にない履歴キーです（削除として送った記録なら、PMHの照会で確かめてください）".into()
            }
            Unmatched::NotInBatch { batch } => format!("バッチ {batch} が送った記録ではありません"),
            Unmatched::SentAgain { batch, later } => {
                format!("バッチ {batch} の後、バッチ {later} で送り直した記録です（その結果を待ちます）")
            }
        }
    }
}

/// A row not recorded, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmatchedRow {
    pub line: u64,
    pub file: String,
    pub history_key: String,
    pub why: Unmatched,
}

/// What reading a results file did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// SHA-256 (hex) of the file.
    pub file_sha256: String,
    /// Rows read.
    pub rows: usize,
    /// Per batch tied to: its number, program and the records recorded refused.
    pub batches: Vec<(u64, ProgramKey, usize)>,
    /// Rows not tied to a record daicho sent (the first [`UNMATCHED_LISTED_MAX`]).
    pub unmatched: Vec<UnmatchedRow>,
    /// How many rows were not tied, in all.
    pub unmatched_count: usize,
    /// The same file was recorded before: nothing was recorded now.
    pub already_recorded: bool,
    /// The position of the last event recorded (or of the earlier recording).
    pub position: Option<Position>,
}

/// Unmatched rows listed at most (all are counted).
pub const UNMATCHED_LISTED_MAX: usize = 1000;

/// Why a results file was not recorded.
#[derive(Debug)]
pub enum ResultsError {
    /// The file is malformed: nothing recorded.
    File(Vec<FileProblem>),
    /// A batch named with `covers` is not recorded.
    NoSuchBatch(u64),
    /// The log moved on every try.
    Conflict,
    /// The refusals do not fit one append (more events than a request may hold).
    TooLarge,
    /// Storage failed.
    Ledger(LedgerError),
}

impl From<LedgerError> for ResultsError {
    fn from(e: LedgerError) -> Self {
        ResultsError::Ledger(e)
    }
}

/// A recorded batch's refusals being gathered: (recipient, span) to the refusal, in file order.
#[derive(Default)]
struct Gathered {
    order: Vec<(u64, u32)>,
    refusals: BTreeMap<(u64, u32), PmhRefusal>,
    rows: u32,
    unmatched: u32,
}

/// The rows gathered per batch number, with the batch.
type ByBatch = BTreeMap<u64, (RecordedBatch, Gathered)>;

impl Ledger {
    /// Reads PMH's results file `bytes` through `profile` and records the refusals it names
    /// (see the module). `covers`: batches the file answers besides those its rows name (a file
    /// without errors names none: every record of those batches was accepted).
    pub fn record_pmh_results(
        &mut self,
        bytes: &[u8],
        profile: &Profile,
        covers: &[u64],
        today: NaiveDate,
        actor: &str,
    ) -> Result<Report, ResultsError> {
        let rows = read(bytes, profile).map_err(ResultsError::File)?;
        let file_sha256: String = Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect();
        let id = format!("pmh-results-{}", &file_sha256[..32]);
        let stream = StreamId::parse(RESULTS_STREAM).ok_or_else(|| LedgerError::Other("results stream id".into()))?;
        for _ in 0..RETRIES_MAX {
            if let Some(earlier) = self.store().request(&id).map_err(LedgerError::from)? {
                // Recorded before: what it recorded then, not what these arguments would.
                let mut report = self.match_rows(&rows, &[], &file_sha256)?.0;
                report.batches = self
                    .pmh_results()?
                    .into_iter()
                    .filter(|(_, _, _, r)| r.file_sha256 == file_sha256)
                    .fold(Vec::<(u64, ProgramKey, usize)>::new(), |mut out, (_, _, _, r)| {
                        match out.iter_mut().find(|(n, _, _)| *n == r.batch) {
                            Some(x) => x.2 += r.refused.len(),
                            None => out.push((r.batch, r.program.clone(), r.refused.len())),
                        }
                        out
                    });
                report.already_recorded = true;
                report.position = Some(earlier.outcome.last);
                return Ok(report);
            }
            let head = self.store().head();
            let (mut report, gathered) = self.match_rows(&rows, covers, &file_sha256)?;
            let config_now = self.config().clone();
            let mut encoded = Vec::new();
            for (number, (batch, g)) in &gathered {
                let config = crate::billing::config_at(self.store(), batch.position)
                    .map_err(|e| LedgerError::Other(e.to_string()))?;
                let program = config.program(&batch.batch.program).or_else(|| config_now.program(&batch.batch.program));
                let results = PmhResults {
                    batch: *number,
                    batch_position: batch.position,
                    batch_day: batch.effective,
                    full: batch.batch.mode == daicho_domain::config::PmhMode::Full,
                    replacing: program.is_some_and(|p| daicho_projections::export::replaces(p, batch.batch.mode)),
                    program: batch.batch.program.clone(),
                    file_sha256: file_sha256.clone(),
                    rows: g.rows,
                    unmatched: g.unmatched,
                    refused: g.order.iter().filter_map(|k| g.refusals.get(k)).cloned().collect(),
                };
                encoded.extend(codec::split_pmh_results(&results).map_err(|e| LedgerError::Other(e.to_string()))?);
            }
            if encoded.is_empty() {
                // Nothing to tie to any batch: reported, nothing recorded.
                report.batches.clear();
                return Ok(report);
            }
            if encoded.len() > daicho_store::limits::EVENTS_PER_REQUEST_MAX {
                return Err(ResultsError::TooLarge);
            }
            let version = self.store().stream_version(&stream).map_err(LedgerError::from)?;
            let system = System {
                stream: RESULTS_STREAM,
                version: Some(version),
                id: &id,
                digest: text_digest(&file_sha256),
                actor,
                expected_head: Some(head.position),
                effective: today,
            };
            match self.store().append_blocking(system.request(encoded).map_err(LedgerError::Other)?) {
                Ok(o) => {
                    report.position = Some(o.last);
                    report.already_recorded = o.already_applied;
                    return Ok(report);
                }
                Err(e) if lost_race(&e) => continue,
                Err(e) => return Err(LedgerError::Append(e).into()),
            }
        }
        Err(ResultsError::Conflict)
    }

    /// Ties each row to a batch and a record it sent, at the register's head.
    fn match_rows(
        &mut self,
        rows: &[Row],
        covers: &[u64],
        file_sha256: &str,
    ) -> Result<(Report, ByBatch), ResultsError> {
        let batches = self.pmh_batches()?;
        let mut by_file: BTreeMap<&str, &RecordedBatch> = BTreeMap::new();
        for b in &batches {
            for (name, _) in &b.batch.files {
                by_file.insert(name.as_str(), b);
            }
        }
        let mut gathered = ByBatch::new();
        // Per batch: rows naming it, of which not tied to a record it sent.
        let mut counts: BTreeMap<u64, (u32, u32)> = BTreeMap::new();
        for number in covers {
            let b = batches.iter().find(|b| b.number == *number).ok_or(ResultsError::NoSuchBatch(*number))?;
            gathered.entry(*number).or_insert_with(|| (b.clone(), Gathered::default()));
        }
        let reader = self.projections()?.reader();
        let mut unmatched = Vec::new();
        let mut unmatched_count = 0usize;
        // A recipient's entries, read once for its rows (rows of one recipient come together).
        let mut last: Option<(u64, Vec<(u32, daicho_projections::Entry)>)> = None;
        for row in rows {
            let mut miss = |why: Unmatched| {
                unmatched_count += 1;
                if unmatched.len() < UNMATCHED_LISTED_MAX {
                    unmatched.push(UnmatchedRow {
                        line: row.line,
                        file: mask_digit_runs(&row.file),
                        history_key: mask_digit_runs(row.history_key.as_str()),
                        why,
                    });
                }
            };
            let Some(batch) = by_file.get(row.file.as_str()) else {
                miss(Unmatched::UnknownFile);
                continue;
            };
            let g = &mut counts.entry(batch.number).or_default();
            g.0 = g.0.saturating_add(1);
            let found = match row.history_key.parts() {
                Some((n, span)) => {
                    if last.as_ref().is_none_or(|(m, _)| *m != n.0) {
                        last = Some((n.0, reader.pmh_entries(n.0).map_err(LedgerError::from)?));
                    }
                    let entries = last.as_ref().map(|(_, e)| e.as_slice()).unwrap_or_default();
                    entries.iter().find(|(s, _)| *s == span.0).map(|(_, e)| (n.0, span.0, e))
                }
                None => None,
            };
            let Some((n, span, entry)) = found else {
                g.1 = g.1.saturating_add(1);
                miss(Unmatched::UnknownRecord);
                continue;
            };
            // The batch that sent what PMH has (or the record it refused) must be this one, or
            // a later full batch that sent it again; and no full batch may have sent it again
            // since (PMH's answer to that one counts).
            let sent = entry.batch();
            let full = batch.batch.mode == daicho_domain::config::PmhMode::Full;
            let resent = full && sent < batch.number && entry.refusal().is_none() && entry.exported().is_some();
            let later_full = batches
                .iter()
                .filter(|b| {
                    b.batch.program == batch.batch.program && b.batch.mode == daicho_domain::config::PmhMode::Full
                })
                .map(|b| b.number)
                .find(|n| *n > batch.number && *n > sent);
            let why = if entry.program != batch.batch.program.as_str() || sent == 0 {
                Some(Unmatched::NotInBatch { batch: batch.number })
            } else if sent > batch.number {
                Some(Unmatched::SentAgain { batch: batch.number, later: sent })
            } else if sent < batch.number && !resent {
                Some(Unmatched::NotInBatch { batch: batch.number })
            } else {
                later_full
                    .filter(|_| entry.refusal().is_none())
                    .map(|later| Unmatched::SentAgain { batch: batch.number, later })
            };
            if let Some(why) = why {
                g.1 = g.1.saturating_add(1);
                miss(why);
                continue;
            }
            let g = &mut gathered.entry(batch.number).or_insert_with(|| ((*batch).clone(), Gathered::default())).1;
            match g.refusals.get_mut(&(n, span)) {
                // A second error on the same record: its text joins the first's.
                Some(r) => {
                    let joined: String =
                        format!("{} / {}", r.message, row.message).chars().take(PmhMessage::CHARS_MAX).collect();
                    if let Ok(m) = PmhMessage::parse(&joined) {
                        r.message = m;
                    }
                }
                None => {
                    g.order.push((n, span));
                    g.refusals.insert(
                        (n, span),
                        PmhRefusal { recipient: n, span, code: row.code.clone(), message: row.message.clone() },
                    );
                }
            }
        }
        // Only batches with a refusal, or named by `covers`, are recorded: rows that all failed
        // to match say nothing of what PMH accepted.
        for (number, (_, g)) in gathered.iter_mut() {
            let (rows, unmatched) = counts.get(number).copied().unwrap_or_default();
            g.rows = rows;
            g.unmatched = unmatched;
        }
        let report = Report {
            file_sha256: file_sha256.to_owned(),
            rows: rows.len(),
            batches: gathered.iter().map(|(n, (b, g))| (*n, b.batch.program.clone(), g.refusals.len())).collect(),
            unmatched,
            unmatched_count,
            already_recorded: false,
            position: None,
        };
        Ok((report, gathered))
    }

    /// Every recorded results event, oldest first: its position, when and by whom, and what it
    /// says.
    pub fn pmh_results(&self) -> Result<Vec<(u64, i64, String, PmhResults)>, LedgerError> {
        let stream = StreamId::parse(RESULTS_STREAM).ok_or_else(|| LedgerError::Other("results stream id".into()))?;
        let mut out = Vec::new();
        for e in self.store().read_stream(&stream)? {
            let r = codec::decode_pmh_results(e.schema_version, &e.payload)
                .map_err(|x| LedgerError::Other(x.to_string()))?;
            out.push((e.position.0, e.recorded_at_us, e.actor, r));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        Profile::default_profile().unwrap_or_else(|e| panic!("{e}"))
    }

    const HEADER: &str = "ファイル名,履歴キー,エラーコード,エラー内容\r\n";

    #[test]
    fn the_default_profile_reads_a_file_in_utf8_with_a_bom_or_in_cp932() {
        let text = format!("{HEADER}kodomo_diff_0-10.json,R1S2,E0101,\"個人番号123456789018が, 不正\"\r\n,,,\r\n");
        let mut with_bom = b"\xEF\xBB\xBF".to_vec();
        with_bom.extend_from_slice(text.as_bytes());
        for bytes in [text.as_bytes().to_vec(), with_bom, CP932.to_vec()] {
            let rows = read(&bytes, &profile()).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].line, 2);
            assert_eq!(rows[0].file, "kodomo_diff_0-10.json");
            assert_eq!(rows[0].history_key.as_str(), "R1S2");
            assert_eq!(rows[0].code.as_str(), "E0101");
            assert_eq!(rows[0].message.as_str(), "個人番号************が, 不正", "a My Number is masked");
        }
    }

    /// The same file in CP932 (as Python's `str.encode("cp932")` gives it).
    const CP932: &[u8] = b"\x83t\x83@\x83C\x83\x8b\x96\xbc,\x97\x9a\x97\xf0\x83L\x81[,\x83G\x83\x89\x81[\x83R\x81[\x83h,\x83G\x83\x89\x81[\x93\xe0\x97e\x0d\x0akodomo_diff_0-10.json,R1S2,E0101,\x22\x8c\xc2\x90l\x94\xd4\x8d\x86123456789018\x82\xaa, \x95s\x90\xb3\x22\x0d\x0a,,,\x0d\x0a";

    #[test]
    fn every_problem_is_named_by_line_and_column_and_the_file_is_refused_whole() {
        let text = format!(
            "{HEADER}a.json,R1S1,E1,ok\r\nb.json,R1-S1,E1,ok\r\nc.json,R1S1,エラー,ok\r\nd.json,R1S1,E1,\r\ne.json,R1S1\r\n"
        );
        let problems = read(text.as_bytes(), &profile()).unwrap_err();
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 5, "{shown:?}");
        assert!(shown[0].starts_with("3行目「履歴キー」列: "), "{shown:?}");
        assert!(shown[1].starts_with("4行目「エラーコード」列: "), "{shown:?}");
        assert!(shown[2].starts_with("5行目「エラー内容」列: "), "{shown:?}");
        assert_eq!(shown[3], "6行目「エラーコード」列: 列が足りません");
        assert_eq!(shown[4], "6行目「エラー内容」列: 列が足りません");
    }

    #[test]
    fn a_header_without_the_profiles_columns_an_open_quote_and_bad_bytes_are_refused() {
        let missing = read("ファイル名,履歴キー,コード,内容\r\n".as_bytes(), &profile()).unwrap_err();
        assert_eq!(missing.len(), 2);
        assert_eq!(
            missing[0].to_string(),
            "1行目「エラーコード」列: 見出し行にこの列がありません（プロファイルの列名を確かめてください）"
        );
        let open = read(format!("{HEADER}a.json,R1S1,E1,\"never closed\r\n").as_bytes(), &profile()).unwrap_err();
        assert_eq!(open[0].to_string(), "2行目: 引用符（\"）が閉じられていません");
        let mut utf8 = profile();
        utf8.encoding = Encoding::Utf8;
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(b"a.json,R1S1,E1,\x82\xa0\r\n");
        let bad = read(&bytes, &utf8).unwrap_err();
        assert_eq!(bad[0].to_string(), "2行目「エラー内容」列: UTF-8として読めない文字があります");
        assert!(read(b"", &profile()).is_err());
    }

    #[test]
    fn a_code_that_could_be_a_my_number_refuses_the_file_and_is_not_echoed() {
        let text = format!("{HEADER}a.json,R1S1,1234 5678 9018,内容\r\n");
        let problems = read(text.as_bytes(), &profile()).unwrap_err();
        let shown = problems[0].to_string();
        assert!(shown.starts_with("2行目「エラーコード」列: 個人番号の可能性がある値です"), "{shown}");
        assert!(!shown.contains("9018"), "{shown}");
    }

    #[test]
    fn a_profile_names_its_mistakes() {
        assert!(Profile::from_toml("[columns]\nfile = \"a\"\n").unwrap_err().starts_with("プロファイルを読めません"));
        let blank = "[columns]\nfile = \" \"\nhistory_key = \"b\"\ncode = \"c\"\nmessage = \"d\"\n";
        assert_eq!(Profile::from_toml(blank).unwrap_err(), "columns.file: 列名が空です");
        let encoding = "[results]\nencoding = \"sjis\"\n[columns]\nfile = \"a\"\nhistory_key = \"b\"\ncode = \"c\"\nmessage = \"d\"\n";
        assert!(Profile::from_toml(encoding).unwrap_err().starts_with("results.encoding"));
    }
}
