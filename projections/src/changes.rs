//! What a command would change in the PMH history records of a recipient: the confirmation step
//! shows it before anything is recorded.
//!
//! The records of the recipient after the command's events are compared with the register's
//! current records (before them), record by record (history key). Each change says whether PMH
//! will be told at the next batch (the new content differs from what PMH has) and whether the
//! record would be held back by validation. No personal values are carried: field names only.

use daicho_domain::config::Config;
use daicho_domain::state::Recipient;

use crate::pmh::{HoldReason, PmhRecord, program_of, records_of, validate};
use crate::register::Entry;
use crate::{ProjectionError, Projections};

/// How a record changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new history record.
    New,
    /// Its content changes.
    Changed,
    /// It no longer exists (its span was withdrawn or rescinded).
    Withdrawn,
}

impl ChangeKind {
    /// Japanese label.
    pub fn label(self) -> &'static str {
        match self {
            ChangeKind::New => "新規",
            ChangeKind::Changed => "変更",
            ChangeKind::Withdrawn => "削除",
        }
    }
}

/// One record that changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordChange {
    /// `R<recipient>S<span>`.
    pub history_key: String,
    /// Program key.
    pub program: String,
    /// Certificate id.
    pub certificate: String,
    /// How.
    pub kind: ChangeKind,
    /// Japanese names of the fields that change (for [`ChangeKind::Changed`]).
    pub fields: Vec<&'static str>,
    /// Validity of the record after the change (before, when withdrawn).
    pub valid_from: String,
    /// See `valid_from` (`9999-12-31` for open-ended).
    pub valid_to: String,
    /// Whether the next PMH batch will carry it (as a deletion, for a withdrawn record PMH has).
    pub sent: bool,
    /// Why it would be held back instead, if so.
    pub held: Vec<HoldReason>,
}

/// Japanese names of the fields in which two records differ.
pub fn differing_fields(a: &PmhRecord, b: &PmhRecord) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |same: bool, label: &'static str| {
        if !same {
            out.push(label);
        }
    };
    check(a.my_number == b.my_number, "個人番号");
    check(a.name == b.name, "氏名");
    check(a.kana == b.kana, "氏名カナ");
    check(a.address == b.address, "住所");
    check(a.birth_date == b.birth_date, "生年月日");
    check(a.sex == b.sex, "性別");
    check(a.not_disclosed == b.not_disclosed, "非開示（支援措置）");
    check(a.payer_number == b.payer_number, "公費負担者番号");
    check(a.recipient_number == b.recipient_number, "公費受給者番号");
    check(a.income_segment == b.income_segment, "所得区分");
    check(a.designated == b.designated, "指定医療機関");
    check(a.always_reimbursement == b.always_reimbursement, "常時償還払い");
    check(a.copay == b.copay, "自己負担上限額");
    check(a.valid_from == b.valid_from, "有効期間開始日");
    check(a.valid_to == b.valid_to, "有効期間終了日");
    check(a.disease == b.disease, "疾病名");
    check(a.issued == b.issued, "交付年月日");
    out
}

impl Projections {
    /// The record changes of recipient `n` if its state became `after` (`None`: a recipient with
    /// no records). The projection should be caught up.
    pub fn record_changes(
        &self,
        config: &Config,
        n: Option<u64>,
        after: Option<&Recipient>,
    ) -> Result<Vec<RecordChange>, ProjectionError> {
        let entries = match n {
            Some(n) => self.pmh_entries(n)?,
            None => Vec::new(),
        };
        let after_records = match (n, after) {
            (Some(n), Some(r)) => records_of(n, r, |_| true),
            _ => Vec::new(),
        };
        let mut out = Vec::new();
        for record in &after_records {
            let entry = entries.iter().find(|(span, _)| *span == record.span).map(|(_, e)| e);
            let before = entry.and_then(Entry::current);
            let exported = entry.and_then(Entry::exported);
            let (kind, fields) = match before {
                None => (ChangeKind::New, Vec::new()),
                Some(b) if b == record => continue,
                Some(b) => (ChangeKind::Changed, differing_fields(b, record)),
            };
            let held = validate(record, program_of(config, record));
            out.push(RecordChange {
                history_key: record.history_key().to_string(),
                program: record.program.clone(),
                certificate: record.certificate.clone(),
                kind,
                fields,
                valid_from: record.valid_from.clone(),
                valid_to: record.valid_to.clone(),
                sent: held.is_empty() && exported != Some(record),
                held,
            });
        }
        for (span, entry) in &entries {
            let Some(before) = entry.current() else { continue };
            if after_records.iter().any(|r| r.span == *span) {
                continue;
            }
            out.push(RecordChange {
                history_key: before.history_key().to_string(),
                program: before.program.clone(),
                certificate: before.certificate.clone(),
                kind: ChangeKind::Withdrawn,
                fields: Vec::new(),
                valid_from: before.valid_from.clone(),
                valid_to: before.valid_to.clone(),
                sent: entry.exported().is_some(),
                held: Vec::new(),
            });
        }
        Ok(out)
    }
}
