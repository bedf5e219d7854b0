//! 突合 (reconciliation) with what PMH holds: the CSV PMH's inquiry screen (医療費助成情報照会)
//! downloads, compared per history key and column with what daicho sent.
//!
//! What daicho sent of each record is what the register says PMH has (the record as the batch
//! that sent it carried it; the register keeps which batch that was), rendered as that batch
//! rendered it: under the configuration in force at the batch's position. Every column of the
//! file that is one of daicho's CSV columns is compared. The report lists, first, records whose
//! **My Number differs** (a possible registration of the wrong person), then records daicho
//! sent that PMH does not hold, records PMH holds that daicho does not know it sent, and records
//! whose other columns differ. It names columns, never their values, and shows My Numbers
//! masked; the file is the complete download of each program it contains (a record of such a
//! program missing from it is reported as missing at PMH). Nothing is recorded.
//!
//! The official layout is not public: [`DEFAULT_PROFILE`] (`examples/pmh/inquiry-profile.toml`)
//! assumes the columns of the upload CSV.

use std::collections::{BTreeMap, HashMap};

use daicho_domain::config::{Config, ProgramKey};
use daicho_domain::ids::HistoryKey;
use daicho_domain::numbers::MyNumber;
use daicho_projections::pmh::{Outgoing, csv_header, csv_row};
use serde::Deserialize;

use crate::csv_records::Record;
use crate::ledger::{Ledger, LedgerError};
use crate::pmh_results::{Encoding, FILE_BYTES_MAX, FileProblem, PROBLEMS_MAX, PmhCsv};

/// The default column profile.
pub const DEFAULT_PROFILE: &str = include_str!("../../examples/pmh/inquiry-profile.toml");

/// Where the identifying columns are, and names of PMH's columns that differ from daicho's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub description: Option<String>,
    pub encoding: Encoding,
    pub history_key: String,
    pub type_id: String,
    pub my_number: String,
    pub deleted: String,
    /// PMH's column name -> daicho's.
    pub rename: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileToml {
    #[serde(default)]
    inquiry: SettingsToml,
    columns: ColumnsToml,
    #[serde(default)]
    rename: BTreeMap<String, String>,
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
    history_key: String,
    type_id: String,
    my_number: String,
    deleted: String,
}

impl Profile {
    /// Reads a profile; the error names the place in Japanese.
    pub fn from_toml(text: &str) -> Result<Profile, String> {
        let p: ProfileToml = toml::from_str(text).map_err(|e| format!("プロファイルを読めません: {}", e.message()))?;
        let encoding = Encoding::of_profile(p.inquiry.encoding.as_deref(), "inquiry.encoding")?;
        let c = p.columns;
        crate::pmh_results::blank_column(&[
            ("columns.history_key", &c.history_key),
            ("columns.type_id", &c.type_id),
            ("columns.my_number", &c.my_number),
            ("columns.deleted", &c.deleted),
        ])?;
        Ok(Profile {
            description: p.inquiry.description,
            encoding,
            history_key: c.history_key,
            type_id: c.type_id,
            my_number: c.my_number,
            deleted: c.deleted,
            rename: p.rename,
        })
    }

    /// The default profile ([`DEFAULT_PROFILE`]).
    pub fn default_profile() -> Result<Profile, String> {
        Profile::from_toml(DEFAULT_PROFILE)
    }
}

/// One row of PMH's file: its line, its identifying cells, and every cell in header order.
#[derive(Clone, Debug)]
struct Row {
    line: u64,
    history_key: String,
    type_id: String,
    /// PMH holds it as deleted (not held; its program still counts as in the file).
    deleted: bool,
    cells: Vec<String>,
}

/// The file: daicho's name for each column (the identifying ones under daicho's own names,
/// whatever the file calls them), and its rows.
#[derive(Debug)]
struct Inquiry {
    header: Vec<String>,
    rows: Vec<Row>,
}

/// daicho's names of the identifying columns, in the order of [`Profile`]'s.
const IDENTITY: [&str; 4] = ["履歴キー", "機関別受給者証種別ID", "マイナンバー", "削除フラグ"];

/// Reads PMH's inquiry file; any problem refuses it whole (at most [`PROBLEMS_MAX`] listed).
fn read(bytes: &[u8], profile: &Profile) -> Result<Inquiry, Vec<FileProblem>> {
    let whole = |message: String| vec![FileProblem { line: 0, column: None, message }];
    let too_large = format!("ファイルが大きすぎます（{} MiB まで。制度ごとに分けてください）", FILE_BYTES_MAX >> 20);
    let mut csv = PmhCsv::open(bytes, profile.encoding, &too_large)?;
    let mut record = Record::default();
    let mut problems = Vec::new();
    if !csv.next(&mut record)? {
        return Err(whole("ファイルが空です（見出し行がありません）".into()));
    }
    let mut header: Vec<String> = record
        .cells
        .iter()
        .map(|c| {
            let name = csv.decode(c).unwrap_or_default().trim().to_owned();
            profile.rename.get(&name).cloned().unwrap_or(name)
        })
        .collect();
    let ids = [&profile.history_key, &profile.type_id, &profile.my_number, &profile.deleted];
    let mut at = [0usize; 4];
    for (i, name) in ids.iter().enumerate() {
        // The identifying columns are looked up by the profile's names (after any rename).
        let wanted = profile.rename.get(name.as_str()).unwrap_or(name);
        match header.iter().position(|h| h == wanted) {
            Some(p) => at[i] = p,
            None => problems.push(FileProblem {
                line: record.line,
                column: Some((*name).clone()),
                message: "見出し行にこの列がありません（プロファイルの列名を確かめてください）".into(),
            }),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    for (i, daicho_name) in IDENTITY.iter().enumerate() {
        if let Some(h) = header.get_mut(at[i]) {
            *h = (*daicho_name).to_owned();
        }
    }
    let mut rows = Vec::new();
    let mut extra = 0usize;
    let mut problem = |p: FileProblem, problems: &mut Vec<FileProblem>| {
        if problems.len() < PROBLEMS_MAX {
            problems.push(p);
        } else {
            extra += 1;
        }
    };
    while csv.next(&mut record)? {
        if record.is_blank() {
            continue;
        }
        let line = record.line;
        if record.cells.len() != header.len() {
            problem(
                FileProblem {
                    line,
                    column: None,
                    message: format!("列の数が見出し行（{}列）と違います（{}列）", header.len(), record.cells.len()),
                },
                &mut problems,
            );
            continue;
        }
        let mut cells = Vec::with_capacity(header.len());
        let mut readable = true;
        for (name, cell) in header.iter().zip(&record.cells) {
            match csv.decode(cell) {
                Some(text) => cells.push(text.trim().to_owned()),
                None => {
                    problem(csv.undecodable(line, name), &mut problems);
                    readable = false;
                }
            }
        }
        if !readable {
            continue;
        }
        let cell = |i: usize| cells.get(at[i]).map(String::as_str).unwrap_or_default();
        if let Err(e) = HistoryKey::parse(cell(0)) {
            problem(FileProblem { line, column: Some(ids[0].clone()), message: e.message() }, &mut problems);
            continue;
        }
        if cell(1).is_empty() {
            problem(FileProblem { line, column: Some(ids[1].clone()), message: "必須です".into() }, &mut problems);
            continue;
        }
        if !matches!(cell(3), "" | "0" | "1") {
            problem(
                FileProblem { line, column: Some(ids[3].clone()), message: "0 または 1 です".into() },
                &mut problems,
            );
            continue;
        }
        let (history_key, type_id, deleted) = (cell(0).to_owned(), cell(1).to_owned(), cell(3) == "1");
        rows.push(Row { line, history_key, type_id, deleted, cells });
    }
    if extra > 0 {
        problems.push(FileProblem {
            line: 0, column: None, message: format!("ほかに{extra}件の問題があります")
        });
    }
    if problems.is_empty() { Ok(Inquiry { header, rows }) } else { Err(problems) }
}

/// What a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// The My Number PMH holds is not the one daicho sent: possibly another person's.
    WrongPerson,
    /// daicho sent it; PMH does not hold it.
    MissingAtPmh,
    /// PMH holds it; daicho does not know it sent it.
    UnknownToDaicho,
    /// Other columns differ.
    FieldsDiffer,
}

impl Kind {
    /// In Japanese, for the report.
    pub fn label(self) -> &'static str {
        match self {
            Kind::WrongPerson => "個人番号相違（別人登録の疑い）",
            Kind::MissingAtPmh => "PMHにない",
            Kind::UnknownToDaicho => "台帳にない",
            Kind::FieldsDiffer => "項目相違",
        }
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: Kind,
    /// The line of PMH's file (none for a record missing from it).
    pub line: Option<u64>,
    pub history_key: String,
    pub program: Option<ProgramKey>,
    /// The recipient's internal number, when daicho knows the record.
    pub recipient: Option<u64>,
    /// The batch that sent what daicho thinks PMH has.
    pub batch: Option<u64>,
    /// The columns that differ (names only), or why a row is unknown.
    pub columns: Vec<String>,
    /// My Numbers, masked: daicho's and PMH's.
    pub my_numbers: Option<(String, String)>,
}

/// The result of a reconciliation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    /// Rows of the file (records PMH holds).
    pub rows: usize,
    /// The programs the file holds records of.
    pub programs: Vec<ProgramKey>,
    /// Records found on both sides and compared.
    pub compared: usize,
    /// Findings, wrong-person first, then by kind, line and history key.
    pub findings: Vec<Finding>,
}

impl Reconciliation {
    /// The findings of one kind.
    pub fn of(&self, kind: Kind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }

    /// The report as CSV (BOM, CRLF): one line per finding.
    pub fn csv(&self) -> Vec<u8> {
        let mut rows: Vec<Vec<String>> = vec![
            [
                "区分",
                "行",
                "履歴キー",
                "制度",
                "受給者内部番号",
                "送信したバッチ",
                "項目",
                "台帳の個人番号",
                "PMHの個人番号",
            ]
            .map(str::to_owned)
            .to_vec(),
        ];
        for f in &self.findings {
            let (ours, theirs) = f.my_numbers.clone().unwrap_or_default();
            rows.push(vec![
                f.kind.label().to_owned(),
                f.line.map(|l| l.to_string()).unwrap_or_default(),
                f.history_key.clone(),
                f.program.as_ref().map(ToString::to_string).unwrap_or_default(),
                f.recipient.map(|n| n.to_string()).unwrap_or_default(),
                f.batch.map(|b| b.to_string()).unwrap_or_default(),
                f.columns.join("・"),
                ours,
                theirs,
            ]);
        }
        daicho_projections::pmh::csv_document(&rows)
    }
}

/// A My Number as a report shows it: masked, or that it is not one.
fn masked(raw: &str) -> String {
    match MyNumber::parse(raw) {
        Ok(n) => n.masked(),
        Err(_) if raw.is_empty() => "（なし）".into(),
        Err(_) => "（個人番号の形式ではない値）".into(),
    }
}

/// Why a reconciliation was not done.
#[derive(Debug)]
pub enum ReconcileError {
    /// The file is malformed.
    File(Vec<FileProblem>),
    /// Storage failed.
    Ledger(LedgerError),
}

impl From<LedgerError> for ReconcileError {
    fn from(e: LedgerError) -> Self {
        ReconcileError::Ledger(e)
    }
}

/// What a reconciliation reads of the ledger, taken under its lock and compared without it.
pub struct Inputs {
    pub config: Config,
    pub batches: Vec<crate::ledger::RecordedBatch>,
    pub reader: daicho_projections::query::Reader,
    pub store: daicho_store::Store,
}

impl Ledger {
    /// What [`reconcile`] needs, with the register caught up.
    pub fn reconcile_inputs(&mut self) -> Result<Inputs, LedgerError> {
        let batches = self.pmh_batches()?;
        let reader = self.projections()?.reader();
        Ok(Inputs { config: self.config().clone(), batches, reader, store: self.store().clone() })
    }

    /// [`reconcile`] at the head.
    pub fn reconcile_pmh(&mut self, bytes: &[u8], profile: &Profile) -> Result<Reconciliation, ReconcileError> {
        let inputs = self.reconcile_inputs()?;
        reconcile(bytes, profile, &inputs)
    }
}

/// Compares PMH's inquiry file `bytes` (read through `profile`) with what daicho sent (see the
/// module). Reads only.
pub fn reconcile(bytes: &[u8], profile: &Profile, inputs: &Inputs) -> Result<Reconciliation, ReconcileError> {
    let Inquiry { header, rows } = read(bytes, profile).map_err(ReconcileError::File)?;
    let Inputs { config, batches, reader, store } = inputs;
    let by_type: HashMap<&str, &ProgramKey> =
        config.programs().iter().map(|p| (p.pmh_certificate_type_id.as_str(), &p.key)).collect();
    let mut out = Reconciliation { rows: rows.len(), ..Reconciliation::default() };
    let unknown = |row: &Row, program: Option<ProgramKey>, why: &str| Finding {
        kind: Kind::UnknownToDaicho,
        line: Some(row.line),
        history_key: row.history_key.clone(),
        program,
        recipient: None,
        batch: None,
        columns: vec![why.to_owned()],
        my_numbers: None,
    };
    // PMH's rows by program and history key (the first row of a key; a later one is listed).
    let mut held: BTreeMap<ProgramKey, HashMap<String, &Row>> = BTreeMap::new();
    for row in &rows {
        let Some(key) = by_type.get(row.type_id.as_str()) else {
            out.findings.push(unknown(row, None, "設定にない機関別受給者証種別IDです"));
            continue;
        };
        // A program PMH holds only as deleted is in the file all the same.
        let of_program = held.entry((*key).clone()).or_default();
        if row.deleted {
            continue;
        }
        match of_program.entry(row.history_key.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => {
                out.findings.push(unknown(row, Some((*key).clone()), "同じ履歴キーの行が前にもあります"));
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(row);
            }
        }
    }
    out.programs = held.keys().cloned().collect();
    let positions: HashMap<u64, u64> = batches.iter().map(|b| (b.number, b.position)).collect();
    let head = store.head().position.0;
    // Each program's full batches: a full resend renders every record again under the
    // configuration of its own day, so a record's last rendering is the later of its batch and
    // the last full batch after it.
    let mut fulls: HashMap<&str, Vec<u64>> = HashMap::new();
    for b in batches.iter().filter(|b| b.batch.mode == daicho_domain::config::PmhMode::Full) {
        fulls.entry(b.batch.program.as_str()).or_default().push(b.number);
    }
    let column = |name: &str| header.iter().position(|h| h == name);
    let my_number_at = column(IDENTITY[2]);
    let mut configs: HashMap<u64, Config> = HashMap::new();
    for (key, rows) in &mut held {
        let findings = &mut out.findings;
        let compared = &mut out.compared;
        let mut failed: Option<LedgerError> = None;
        let full_batches = fulls.get(key.as_str()).cloned().unwrap_or_default();
        reader
            .for_each_pmh_entry(key.as_str(), &mut |n, _, entry| {
                let Some(sent) = entry.exported() else { return Ok(()) };
                let history_key = sent.history_key().to_string();
                let batch = entry.batch();
                let Some(row) = rows.remove(&history_key) else {
                    findings.push(Finding {
                        kind: Kind::MissingAtPmh,
                        line: None,
                        history_key,
                        program: Some(key.clone()),
                        recipient: Some(n),
                        batch: Some(batch),
                        columns: Vec::new(),
                        my_numbers: None,
                    });
                    return Ok(());
                };
                *compared += 1;
                let rendered = if entry.refusal().is_some() {
                    batch
                } else {
                    full_batches.iter().copied().filter(|f| *f > batch).max().unwrap_or(batch)
                };
                if let std::collections::hash_map::Entry::Vacant(v) = configs.entry(rendered) {
                    match crate::billing::config_at(store, positions.get(&rendered).copied().unwrap_or(head)) {
                        Ok(c) => {
                            v.insert(c);
                        }
                        Err(e) => {
                            failed = Some(LedgerError::Other(e.to_string()));
                            return Err(daicho_projections::ProjectionError::Corrupt("configuration".into()));
                        }
                    }
                }
                let at_batch = configs.get(&rendered).unwrap_or(config);
                let Some(program) = at_batch.program(key).or_else(|| config.program(key)) else { return Ok(()) };
                let ours: HashMap<String, String> = csv_header(program)
                    .into_iter()
                    .zip(csv_row(&Outgoing { record: sent, deleted: false }, program, &at_batch.eras))
                    .collect();
                let mut columns = Vec::new();
                let mut my_numbers = None;
                for (i, (name, theirs)) in header.iter().zip(&row.cells).enumerate() {
                    if *name == IDENTITY[0] || *name == IDENTITY[3] {
                        continue;
                    }
                    // What PMH kept of a record it refused is not known here: only the My
                    // Number is compared (PMH holding another one is what must be found).
                    if entry.refusal().is_some() && Some(i) != my_number_at {
                        continue;
                    }
                    let Some(value) = ours.get(name) else { continue };
                    if value.trim() != theirs {
                        if Some(i) == my_number_at {
                            my_numbers = Some((masked(value), masked(theirs)));
                        }
                        columns.push(name.clone());
                    }
                }
                if !columns.is_empty() {
                    findings.push(Finding {
                        kind: if my_numbers.is_some() { Kind::WrongPerson } else { Kind::FieldsDiffer },
                        line: Some(row.line),
                        history_key,
                        program: Some(key.clone()),
                        recipient: Some(n),
                        batch: Some(rendered),
                        columns,
                        my_numbers,
                    });
                }
                Ok(())
            })
            .map_err(|e| failed.take().unwrap_or(LedgerError::from(e)))?;
        for row in rows.values() {
            // The key may name a recipient daicho has (whose record it did not send).
            let recipient = HistoryKey::parse(&row.history_key)
                .ok()
                .and_then(|k| k.parts())
                .map(|(n, _)| n.0)
                .filter(|n| reader.recipient(*n).is_ok_and(|r| r.is_some()));
            out.findings.push(Finding {
                kind: Kind::UnknownToDaicho,
                line: Some(row.line),
                history_key: row.history_key.clone(),
                program: Some(key.clone()),
                recipient,
                batch: None,
                columns: Vec::new(),
                my_numbers: None,
            });
        }
    }
    out.findings.sort_by(|a, b| {
        (a.kind, a.line.unwrap_or(u64::MAX), &a.history_key).cmp(&(b.kind, b.line.unwrap_or(u64::MAX), &b.history_key))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_reads_and_a_bad_file_names_line_and_column() {
        let profile = Profile::default_profile().unwrap_or_else(|e| panic!("{e}"));
        let ok = "履歴キー,機関別受給者証種別ID,マイナンバー,削除フラグ,氏名\r\nR1S1,139998N15,400000000017,0,桜\r\nR1S2,139998N15,,1,桜\r\n";
        let rows = read(ok.as_bytes(), &profile).unwrap_or_else(|e| panic!("{e:?}")).rows;
        assert_eq!(rows.iter().map(|r| r.deleted).collect::<Vec<_>>(), [false, true], "a deleted row is kept, flagged");
        assert_eq!((rows[0].line, rows[0].history_key.as_str()), (2, "R1S1"));
        let bad = "履歴キー,機関別受給者証種別ID,マイナンバー,削除フラグ\r\nR1-S1,X,1,0\r\nR1S1,,1,0\r\nR1S1,X,1,2\r\nR1S1,X\r\n";
        let problems: Vec<String> =
            read(bad.as_bytes(), &profile).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("2行目「履歴キー」列"), "{problems:?}");
        assert_eq!(problems[1], "3行目「機関別受給者証種別ID」列: 必須です");
        assert_eq!(problems[2], "4行目「削除フラグ」列: 0 または 1 です");
        assert_eq!(problems[3], "5行目: 列の数が見出し行（4列）と違います（2列）");
        let missing = read("履歴キー,氏名\r\n".as_bytes(), &profile).unwrap_err();
        assert_eq!(missing.len(), 3);
    }

    #[test]
    fn a_renamed_column_is_compared_under_daichos_name() {
        let profile = Profile::from_toml(
            "[columns]\nhistory_key = \"履歴キー\"\ntype_id = \"種別\"\nmy_number = \"マイナンバー\"\ndeleted = \"削除\"\n[rename]\n\"種別ID\" = \"種別\"\n\"個人番号\" = \"マイナンバー\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let read_renamed = read("履歴キー,種別ID,個人番号,削除\r\nR1S1,X,1,0\r\n".as_bytes(), &profile)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            read_renamed.header,
            ["履歴キー", "機関別受給者証種別ID", "マイナンバー", "削除フラグ"],
            "daicho's names"
        );
        assert_eq!(read_renamed.rows[0].cells[2], "1");
        // Named by the profile without a rename: still daicho's My Number column.
        let plain = Profile::from_toml(
            "[columns]\nhistory_key = \"キー\"\ntype_id = \"種別\"\nmy_number = \"個人番号\"\ndeleted = \"削除\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let read_plain =
            read("キー,種別,個人番号,削除\r\nR1S1,X,1,0\r\n".as_bytes(), &plain).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(read_plain.header[2], "マイナンバー");
        assert_eq!(masked("400000000017"), "********0017");
        assert_eq!(masked("12"), "（個人番号の形式ではない値）");
    }
}
