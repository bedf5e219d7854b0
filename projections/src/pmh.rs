//! PMH history records (履歴): one per span of every certificate, as PMH.md describes them; their
//! validation before export; and their rendering as the PMH JSON array and CSV.
//!
//! A [`PmhRecord`] is the content that decides whether PMH must be told again: everything sent
//! except what comes from the configuration at export time (the certificate type id and name,
//! and the era used in face items). A configuration change therefore does not re-send records by
//! itself; a full export does.

use chrono::NaiveDate;
use daicho_domain::calendar::EraTable;
use daicho_domain::certificate::{CapUnit, CopayCap};

use daicho_domain::config::{Config, FaceItem, Program, ProgramKey};
use daicho_domain::ids::{HistoryKey, RecipientId, SpanNo};
use daicho_domain::numbers::{MyNumber, PayerNumber, RecipientNumber, RecipientNumberRule};
use daicho_domain::state::{Certificate, Recipient};
use daicho_domain::text::pmh_unrepresentable;
use serde::{Deserialize, Serialize};

/// The content of one history record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmhRecord {
    pub recipient: u64,
    pub span: u32,
    pub program: String,
    pub certificate: String,
    pub my_number: Option<String>,
    pub name: String,
    pub kana: String,
    pub address: String,
    pub birth_date: String,
    pub sex: String,
    pub not_disclosed: bool,
    pub payer_number: Option<String>,
    pub recipient_number: String,
    pub income_segment: Option<String>,
    pub designated: Vec<String>,
    pub always_reimbursement: bool,
    /// 自己負担上限額 as PMH's common layout has it.
    pub copay: Option<PmhCap>,
    pub valid_from: String,
    pub valid_to: String,
    pub disease: Option<String>,
    /// 交付年月日 of the card for this span (ISO): the latest reissue within the span, else the
    /// later of the grant and the span's first day.
    pub issued: String,
}

/// 自己負担上限額 as sent: 種別 (code), 負担定義, 負担率 and 金額 per 日・月・回.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmhCap {
    /// 種別 code ([`daicho_domain::certificate::CapKind::code`]).
    pub kind: String,
    /// 負担定義.
    pub definition: Option<String>,
    /// 負担率 (percent) per day, month, visit.
    pub rate: [Option<u8>; 3],
    /// 金額 (yen) per day, month, visit.
    pub yen: [Option<i64>; 3],
    /// The cap as the card prints it.
    pub card: String,
}

impl PmhCap {
    /// The record's form of a cap.
    pub fn of(cap: &CopayCap) -> PmhCap {
        PmhCap {
            kind: cap.kind().code().to_owned(),
            definition: cap.definition().map(ToString::to_string),
            rate: CapUnit::ALL.map(|u| cap.rate().get(u).map(|p| p.get())),
            yen: CapUnit::ALL.map(|u| cap.amount().get(u).map(|y| y.get())),
            card: cap.describe(),
        }
    }
}

impl PmhRecord {
    /// The history key: `R<recipient>S<span>`.
    pub fn history_key(&self) -> HistoryKey {
        HistoryKey::derive(RecipientId(self.recipient), SpanNo(self.span))
    }
}

/// The card's 交付年月日 for `span` of `cert`.
fn issued_on(cert: &Certificate, span: &daicho_domain::state::Span) -> NaiveDate {
    let first = cert.granted_on.max(span.period.from());
    cert.reissues.iter().map(|r| r.on).filter(|on| *on >= first && span.period.contains(*on)).max().unwrap_or(first)
}

/// The history records of a recipient's certificates chosen by `which`, in certificate and span
/// order.
pub fn records_of(n: u64, r: &Recipient, which: impl Fn(&Certificate) -> bool) -> Vec<PmhRecord> {
    records_with(n, r, which, &mut CapForms::default())
}

/// The record's forms of the caps seen so far ([`PmhCap::of`] writes the card's text, the
/// costliest part of a record; a register has few distinct caps).
#[derive(Default)]
pub(crate) struct CapForms(std::collections::HashMap<CopayCap, PmhCap>);

impl CapForms {
    /// Forms kept at most; above, the memo starts again.
    const MAX: usize = 4096;

    fn of(&mut self, cap: &CopayCap) -> PmhCap {
        if let Some(form) = self.0.get(cap) {
            return form.clone();
        }
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        let form = PmhCap::of(cap);
        self.0.insert(cap.clone(), form.clone());
        form
    }
}

/// [`records_of`], with the caps' forms taken from `caps`.
pub(crate) fn records_with(
    n: u64,
    r: &Recipient,
    which: impl Fn(&Certificate) -> bool,
    caps: &mut CapForms,
) -> Vec<PmhRecord> {
    let mut out = Vec::new();
    let birth_date = iso_date(r.birth_date);
    for cert in r.certificates.iter().filter(|c| which(c)) {
        for span in &cert.spans {
            let t = &span.terms;
            out.push(PmhRecord {
                recipient: n,
                span: span.no.0,
                program: cert.program.to_string(),
                certificate: cert.id.to_string(),
                my_number: r.my_number.as_ref().map(MyNumber::reveal),
                name: r.name.to_string(),
                kana: r.kana.to_string(),
                address: r.address.to_string(),
                birth_date: birth_date.clone(),
                sex: r.sex.code().to_owned(),
                not_disclosed: r.dv_support_since.is_some(),
                payer_number: t.payer_number.map(|p| p.as_string()),
                recipient_number: t.recipient_number.to_string(),
                income_segment: t.income_segment.as_ref().map(ToString::to_string),
                designated: t.designated_institutions.iter().map(ToString::to_string).collect(),
                always_reimbursement: t.always_reimbursement,
                copay: t.copay_cap.as_ref().map(|c| caps.of(c)),
                valid_from: iso_date(span.period.from()),
                valid_to: iso_date(span.period.end()),
                disease: t.disease.as_ref().map(ToString::to_string),
                issued: iso_date(issued_on(cert, span)),
            });
        }
    }
    out
}

/// `date` as `YYYY-MM-DD`, as chrono's `Display` writes it, without its formatting machinery
/// (the fold formats four dates per record and event).
pub(crate) fn iso_date(date: NaiveDate) -> String {
    use chrono::Datelike;
    let (y, m, d) = (date.year(), date.month(), date.day());
    if !(0..=9999).contains(&y) {
        return date.to_string();
    }
    let digits = [y / 1000, y / 100 % 10, y / 10 % 10, y % 10];
    let mut out = String::with_capacity(10);
    for digit in digits {
        out.push(char::from(b'0' + digit as u8));
    }
    for (sep, v) in [('-', m), ('-', d)] {
        out.push(sep);
        out.push(char::from(b'0' + (v / 10) as u8));
        out.push(char::from(b'0' + (v % 10) as u8));
    }
    out
}

/// Why a record is held back (not exported until fixed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldReason {
    /// No My Number linked: PMH requires one.
    MyNumberMissing,
    /// The stored My Number fails its check (never expected: a second guard).
    MyNumberInvalid,
    /// The program requires a payer number and the record has none.
    PayerNumberMissing,
    /// The payer number fails its check or is not one of the program's.
    PayerNumberInvalid,
    /// The recipient number does not fit the program's rule.
    RecipientNumberInvalid,
    /// Sex code other than 1 or 2: PMH's handling is an open question.
    SexCodeUnsupported,
    /// A required text is empty or too long for PMH.
    TextLength,
    /// validFrom after validTo.
    DateOrder,
    /// The program is no longer in the configuration.
    ProgramNotConfigured,
}

impl HoldReason {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            HoldReason::MyNumberMissing => "my_number_missing",
            HoldReason::MyNumberInvalid => "my_number_invalid",
            HoldReason::PayerNumberMissing => "payer_number_missing",
            HoldReason::PayerNumberInvalid => "payer_number_invalid",
            HoldReason::RecipientNumberInvalid => "recipient_number_invalid",
            HoldReason::SexCodeUnsupported => "sex_code_unsupported",
            HoldReason::TextLength => "text_length",
            HoldReason::DateOrder => "date_order",
            HoldReason::ProgramNotConfigured => "program_not_configured",
        }
    }

    /// Japanese message.
    pub fn message(self) -> &'static str {
        match self {
            HoldReason::MyNumberMissing => "個人番号が登録されていません",
            HoldReason::MyNumberInvalid => "個人番号が正しくありません",
            HoldReason::PayerNumberMissing => "この制度では公費負担者番号が必要ですが、未登録です",
            HoldReason::PayerNumberInvalid => "公費負担者番号が正しくないか、この制度のものではありません",
            HoldReason::RecipientNumberInvalid => "公費受給者番号がこの制度の形式に合いません",
            HoldReason::SexCodeUnsupported => "性別コード9のPMHでの扱いが未確定のため保留します",
            HoldReason::TextLength => "必須項目が空か、PMHの上限を超えています",
            HoldReason::DateOrder => "有効期間の終期が始期より前です",
            HoldReason::ProgramNotConfigured => "制度が設定にありません",
        }
    }
}

/// Checks a record against PMH's rules (lengths, digits, check digits, required fields, date
/// order) under `program`; every reason found.
pub fn validate(record: &PmhRecord, program: Option<&Program>) -> Vec<HoldReason> {
    let mut reasons = Vec::new();
    let Some(program) = program else {
        return vec![HoldReason::ProgramNotConfigured];
    };
    match &record.my_number {
        None => reasons.push(HoldReason::MyNumberMissing),
        Some(n) if MyNumber::parse(n).is_err() => reasons.push(HoldReason::MyNumberInvalid),
        Some(_) => {}
    }
    match &record.payer_number {
        None if program.payer_number_required => reasons.push(HoldReason::PayerNumberMissing),
        None => {}
        Some(p) => match PayerNumber::parse(p) {
            Ok(p) if program.payer_numbers.contains(&p) => {}
            _ => reasons.push(HoldReason::PayerNumberInvalid),
        },
    }
    let rule_ok = RecipientNumber::parse(&record.recipient_number, program.recipient_number_rule).is_ok()
        && (program.recipient_number_rule == RecipientNumberRule::Free || record.recipient_number.len() == 7);
    if !rule_ok {
        reasons.push(HoldReason::RecipientNumberInvalid);
    }
    if record.sex != "1" && record.sex != "2" {
        reasons.push(HoldReason::SexCodeUnsupported);
    }
    let within = |s: &str, max: usize| !s.is_empty() && s.chars().count() <= max;
    if !within(&record.name, 100) || !within(&record.kana, 100) || !within(&record.address, 200) {
        reasons.push(HoldReason::TextLength);
    }
    if !within(&program.certificate_name, 100) || !within(&record.recipient_number, 30) {
        reasons.push(HoldReason::TextLength);
    }
    if record.valid_from > record.valid_to {
        reasons.push(HoldReason::DateOrder);
    }
    reasons.dedup();
    reasons
}

/// Characters clinics will see as "●", per field, as `U+XXXX` (never the text itself).
pub fn unrepresentable(record: &PmhRecord) -> Vec<(&'static str, Vec<String>)> {
    let mut out = Vec::new();
    let designated = record.designated.join("");
    let disease = record.disease.clone().unwrap_or_default();
    let income = record.income_segment.clone().unwrap_or_default();
    let cap = record.copay.as_ref().and_then(|c| c.definition.clone()).unwrap_or_default();
    for (field, text) in [
        ("name", &record.name),
        ("kana", &record.kana),
        ("address", &record.address),
        ("income_segment", &income),
        ("disease", &disease),
        ("designated", &designated),
        ("copay_definition", &cap),
    ] {
        let chars: Vec<String> =
            pmh_unrepresentable(text).iter().map(|u| format!("U+{:04X}", u32::from(u.ch))).collect();
        if !chars.is_empty() {
            out.push((field, chars));
        }
    }
    out
}

#[cfg(test)]
/// `basicFiveInfo`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BasicFiveInfo<'a> {
    name: &'a str,
    name_kana: &'a str,
    address: &'a str,
    date_of_birth: &'a str,
    sex: &'a str,
}

#[cfg(test)]
/// `maxCopaymentAmount`, in the structure of PMH's common layout. **Provisional** key names (see
/// [`COLUMNS`]); absent sub-items are left out.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MaxCopayment<'a> {
    category: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    burden_definition: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    burden_rate_per_day: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    burden_rate_per_month: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    burden_rate_per_visit: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_per_day: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_per_month: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount_per_visit: Option<i64>,
}

/// One `certificationDetail` item.
#[derive(Serialize)]
pub struct Detail {
    pub name: &'static str,
    pub value: String,
}

#[cfg(test)]
/// One record as PMH receives it, fields in the order of PMH.md.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Wire<'a> {
    org_specific_certificate_type_id: &'a str,
    // An absent optional item is left out, never `null` (a `null` where PMH's schema has a
    // string is a rejection risk); in the CSV it is an empty cell.
    #[serde(skip_serializing_if = "Option::is_none")]
    my_number: Option<&'a str>,
    basic_five_info: BasicFiveInfo<'a>,
    is_not_disclosed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    medical_subsidy_insurer_number: Option<&'a str>,
    certification_name: &'a str,
    medical_subsidy_recipient_number: &'a str,
    certification_sub_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    segment: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    income_segment: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_conditions: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    designated_medical_institutions: Option<String>,
    is_always_reimbursement: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_copayment_amount: Option<MaxCopayment<'a>>,
    valid_from: &'a str,
    valid_to: &'a str,
    history_key: String,
    is_deleted: bool,
    certification_detail: Vec<Detail>,
}

fn wareki(eras: &EraTable, iso: &str) -> String {
    iso.parse::<NaiveDate>().ok().and_then(|d| eras.format(d).ok()).unwrap_or_else(|| iso.to_owned())
}

/// The CSV columns before the card items, in PMH order: (CSV header, JSON name). One table for
/// both files. **Provisional**: the headers are the item names of the Digital Agency's common
/// layout where the briefings name them, else the Japanese names of the field list; the JSON
/// names of the self-pay cap's sub-items are not public and are ours. Change them here (and in
/// ARCHITECTURE.md) when the official ファイル設計書 is at hand.
pub const COLUMNS: [(&str, &str); 29] = [
    ("機関別受給者証種別ID", "orgSpecificCertificateTypeId"),
    ("マイナンバー", "myNumber"),
    ("氏名", "basicFiveInfo.name"),
    ("氏名カナ", "basicFiveInfo.nameKana"),
    ("生年月日", "basicFiveInfo.dateOfBirth"),
    ("性別", "basicFiveInfo.sex"),
    ("住所", "basicFiveInfo.address"),
    ("不開示フラグ", "isNotDisclosed"),
    ("公費負担者番号", "medicalSubsidyInsurerNumber"),
    ("受給者証名", "certificationName"),
    ("受給者番号", "medicalSubsidyRecipientNumber"),
    ("受給者証サブキー", "certificationSubKey"),
    ("区分", "segment"),
    ("所得区分", "incomeSegment"),
    ("追加条件", "additionalConditions"),
    ("指定医療機関情報", "designatedMedicalInstitutions"),
    ("常に償還払い", "isAlwaysReimbursement"),
    ("自己負担上限額-種別", "maxCopaymentAmount.category"),
    ("自己負担上限額-負担定義", "maxCopaymentAmount.burdenDefinition"),
    ("自己負担上限額-負担率-日", "maxCopaymentAmount.burdenRatePerDay"),
    ("自己負担上限額-負担率-月", "maxCopaymentAmount.burdenRatePerMonth"),
    ("自己負担上限額-負担率-回", "maxCopaymentAmount.burdenRatePerVisit"),
    ("自己負担上限額-金額-日", "maxCopaymentAmount.amountPerDay"),
    ("自己負担上限額-金額-月", "maxCopaymentAmount.amountPerMonth"),
    ("自己負担上限額-金額-回", "maxCopaymentAmount.amountPerVisit"),
    ("有効期間-始期", "validFrom"),
    ("有効期間-終期", "validTo"),
    ("履歴キー", "historyKey"),
    ("削除フラグ", "isDeleted"),
];

/// The CSV header of a card item (券面項目, the green columns): its label on the card, marked so
/// that no header repeats one of [`COLUMNS`].
pub fn card_column(label: &str) -> String {
    format!("券面_{label}")
}

/// The card's title item, first in `certificationDetail`.
pub const CARD_TITLE: &str = "受給者証名";

/// The card items (券面項目) of `record` under `program`'s certificate template, in print order:
/// the card's title, then exactly the template's items (the notes and the contact only when
/// the template has their text). An absent value is an empty string, so every line of a
/// program's CSV has the same columns.
pub fn details(record: &PmhRecord, program: &Program, eras: &EraTable) -> Vec<Detail> {
    let template = &program.certificate;
    let mut out = vec![Detail { name: CARD_TITLE, value: program.certificate_name.clone() }];
    for item in &template.items {
        let value = match item {
            FaceItem::PayerNumber => record.payer_number.clone().unwrap_or_default(),
            FaceItem::RecipientNumber => record.recipient_number.clone(),
            FaceItem::Name => record.name.clone(),
            FaceItem::Kana => record.kana.clone(),
            FaceItem::BirthDate => wareki(eras, &record.birth_date),
            FaceItem::Sex => match record.sex.as_str() {
                "1" => "男".to_owned(),
                "2" => "女".to_owned(),
                _ => String::new(),
            },
            FaceItem::Address => record.address.clone(),
            FaceItem::Validity => {
                let from = wareki(eras, &record.valid_from);
                if record.valid_to == daicho_domain::period::PMH_OPEN_END.to_string() {
                    format!("{from}から")
                } else {
                    format!("{from}から{}まで", wareki(eras, &record.valid_to))
                }
            }
            FaceItem::CopayCap => record.copay.as_ref().map(|c| c.card.clone()).unwrap_or_default(),
            FaceItem::IncomeSegment => record.income_segment.clone().unwrap_or_default(),
            FaceItem::DesignatedInstitutions => record.designated.join("、"),
            FaceItem::Disease => record.disease.clone().unwrap_or_default(),
            FaceItem::IssueDate => wareki(eras, &record.issued),
            FaceItem::Issuer => template.issuer.clone(),
            FaceItem::Notes if template.notes.is_empty() => continue,
            FaceItem::Notes => template.notes.replace('\n', " "),
            FaceItem::Contact if template.contact.is_empty() => continue,
            FaceItem::Contact => template.contact.replace('\n', " "),
        };
        out.push(Detail { name: card_label(*item), value });
    }
    out
}

/// A card item's name as PMH is sent it: the printed label, except 交付年月日, the name the
/// Digital Agency uses for what the card prints as 交付日.
pub(crate) fn card_label(item: FaceItem) -> &'static str {
    match item {
        FaceItem::IssueDate => "交付年月日",
        other => other.label(),
    }
}

/// The card items' labels of `program`, as [`details`] gives them.
fn detail_labels(program: &Program) -> Vec<&'static str> {
    let t = &program.certificate;
    std::iter::once(CARD_TITLE)
        .chain(
            t.items
                .iter()
                .filter(|i| match i {
                    FaceItem::Notes => !t.notes.is_empty(),
                    FaceItem::Contact => !t.contact.is_empty(),
                    _ => true,
                })
                .map(|i| card_label(*i)),
        )
        .collect()
}

/// The CSV header of `program`'s files: [`COLUMNS`], then its card items.
pub fn csv_header(program: &Program) -> Vec<String> {
    COLUMNS.iter().map(|(h, _)| (*h).to_owned()).chain(detail_labels(program).into_iter().map(card_column)).collect()
}

/// A record to send: its content and whether it withdraws the key.
pub struct Outgoing<'a> {
    pub record: &'a PmhRecord,
    pub deleted: bool,
}

#[cfg(test)]
fn wire<'a>(o: &'a Outgoing<'a>, program: &'a Program, eras: &EraTable) -> Wire<'a> {
    let r = o.record;
    Wire {
        org_specific_certificate_type_id: &program.pmh_certificate_type_id,
        my_number: r.my_number.as_deref(),
        basic_five_info: BasicFiveInfo {
            name: &r.name,
            name_kana: &r.kana,
            address: &r.address,
            date_of_birth: &r.birth_date,
            sex: &r.sex,
        },
        is_not_disclosed: r.not_disclosed,
        medical_subsidy_insurer_number: r.payer_number.as_deref(),
        certification_name: &program.certificate_name,
        medical_subsidy_recipient_number: &r.recipient_number,
        certification_sub_key: &r.certificate,
        segment: None,
        income_segment: r.income_segment.as_deref(),
        additional_conditions: None,
        designated_medical_institutions: (!r.designated.is_empty()).then(|| r.designated.join(";")),
        is_always_reimbursement: if r.always_reimbursement { "1" } else { "0" },
        max_copayment_amount: r.copay.as_ref().map(|c| MaxCopayment {
            category: &c.kind,
            burden_definition: c.definition.as_deref(),
            burden_rate_per_day: c.rate[0],
            burden_rate_per_month: c.rate[1],
            burden_rate_per_visit: c.rate[2],
            amount_per_day: c.yen[0],
            amount_per_month: c.yen[1],
            amount_per_visit: c.yen[2],
        }),
        valid_from: &r.valid_from,
        valid_to: &r.valid_to,
        history_key: r.history_key().to_string(),
        is_deleted: o.deleted,
        certification_detail: details(r, program, eras),
    }
}

/// The records as the PMH JSON array: UTF-8, one compact record per line between `[` and `]`,
/// final LF. (A valid JSON array; one line per record keeps files diffable and half the size of
/// pretty-printing.) [`crate::render::FilesWriter`] writes the same bytes record by record.
pub fn to_json(records: &[Outgoing<'_>], program: &Program, eras: &EraTable) -> Vec<u8> {
    in_memory(records, program, eras).0
}

fn in_memory(records: &[Outgoing<'_>], program: &Program, eras: &EraTable) -> (Vec<u8>, Vec<u8>) {
    let mut w = crate::render::FilesWriter::new(program, eras, Vec::new(), Vec::new());
    // Writing into memory cannot fail.
    let written = records.iter().try_for_each(|o| w.record(o)).and_then(|()| w.finish());
    written.unwrap_or_default()
}

#[cfg(test)]
/// The structured definition of the JSON file, record by record: what [`to_json`] must write.
fn reference_json(records: &[Outgoing<'_>], program: &Program, eras: &EraTable) -> Vec<u8> {
    let mut out = b"[\n".to_vec();
    for (i, o) in records.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b",\n");
        }
        serde_json::to_writer(&mut out, &wire(o, program, eras)).unwrap();
    }
    out.extend_from_slice(b"\n]\n");
    out
}

/// One CSV field, quoted when it holds a comma, quote or line break.
pub fn csv_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

/// Lines joined with CRLF, after a UTF-8 BOM (what Excel's "CSV UTF-8" writes).
pub fn csv_document(rows: &[Vec<String>]) -> Vec<u8> {
    let mut text = String::from("\u{FEFF}");
    for row in rows {
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            csv_field(&mut text, v);
        }
        text.push_str("\r\n");
    }
    text.into_bytes()
}

/// The records as CSV: header, then one line per record (the bytes of [`csv_document`]).
pub fn to_csv(records: &[Outgoing<'_>], program: &Program, eras: &EraTable) -> Vec<u8> {
    in_memory(records, program, eras).1
}

#[cfg(test)]
/// The structured definition of the CSV file: what [`to_csv`] must write.
fn reference_csv(records: &[Outgoing<'_>], program: &Program, eras: &EraTable) -> Vec<u8> {
    let mut rows = vec![csv_header(program)];
    rows.extend(records.iter().map(|o| csv_row(o, program, eras)));
    csv_document(&rows)
}

/// One record's CSV fields, in header order (the structured definition the renderer's bytes are
/// tested against; reconciliation compares PMH's inquiry files with it).
pub fn csv_row(o: &Outgoing<'_>, program: &Program, eras: &EraTable) -> Vec<String> {
    let flag = |b: bool| if b { "1" } else { "0" }.to_owned();
    let r = o.record;
    let mut row = vec![
        program.pmh_certificate_type_id.clone(),
        r.my_number.clone().unwrap_or_default(),
        r.name.clone(),
        r.kana.clone(),
        r.birth_date.clone(),
        r.sex.clone(),
        r.address.clone(),
        flag(r.not_disclosed),
        r.payer_number.clone().unwrap_or_default(),
        program.certificate_name.clone(),
        r.recipient_number.clone(),
        r.certificate.clone(),
        String::new(),
        r.income_segment.clone().unwrap_or_default(),
        String::new(),
        r.designated.join(";"),
        flag(r.always_reimbursement),
        r.copay.as_ref().map(|c| c.kind.clone()).unwrap_or_default(),
        r.copay.as_ref().and_then(|c| c.definition.clone()).unwrap_or_default(),
    ];
    let cap = r.copay.as_ref();
    row.extend((0..3).map(|i| cap.and_then(|c| c.rate[i]).map(|v| v.to_string()).unwrap_or_default()));
    row.extend((0..3).map(|i| cap.and_then(|c| c.yen[i]).map(|v| v.to_string()).unwrap_or_default()));
    row.extend([r.valid_from.clone(), r.valid_to.clone(), r.history_key().to_string(), flag(o.deleted)]);
    row.extend(details(r, program, eras).into_iter().map(|d| d.value));
    row
}

/// Writes a CSV document (BOM, CRLF) one row at a time: the same bytes as [`csv_document`].
pub struct CsvWriter<W: std::io::Write> {
    out: W,
    line: String,
}

impl<W: std::io::Write> CsvWriter<W> {
    /// Starts the document (the BOM).
    pub fn new(mut out: W) -> std::io::Result<Self> {
        out.write_all("\u{FEFF}".as_bytes())?;
        Ok(CsvWriter { out, line: String::new() })
    }

    /// Appends one row.
    pub fn row<S: AsRef<str>>(&mut self, row: &[S]) -> std::io::Result<()> {
        self.line.clear();
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                self.line.push(',');
            }
            csv_field(&mut self.line, v.as_ref());
        }
        self.line.push_str("\r\n");
        self.out.write_all(self.line.as_bytes())
    }

    /// Returns the writer.
    pub fn finish(self) -> W {
        self.out
    }
}

/// The program of a record under `config`.
pub fn program_of<'c>(config: &'c Config, record: &PmhRecord) -> Option<&'c Program> {
    ProgramKey::parse(&record.program).ok().and_then(|k| config.program(&k))
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_dates_are_written_as_chrono_writes_them() {
        use chrono::NaiveDate;
        for (y, m, d) in [(2026, 4, 1), (1, 1, 1), (999, 12, 31), (9999, 12, 31), (1989, 1, 8)] {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(super::iso_date(date), date.to_string());
        }
        let far = NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap();
        assert_eq!(super::iso_date(far), far.to_string());
    }

    use super::*;

    /// The dotted paths of every value in a JSON object, arrays left whole.
    fn paths(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        if let serde_json::Value::Object(o) = v {
            for (k, x) in o {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                if x.is_object() { paths(x, &p, out) } else { out.push(p) }
            }
        }
    }

    #[test]
    fn the_column_table_names_exactly_the_json_of_a_record_and_the_csv_follows_it() {
        let config = Config::demo().unwrap();
        let program = &config.programs()[0];
        let record = PmhRecord {
            recipient: 1,
            span: 1,
            program: program.key.to_string(),
            certificate: "K1".into(),
            my_number: Some("123456789018".into()),
            name: "桜 太郎".into(),
            kana: "サクラ タロウ".into(),
            address: "さくら市本町1-2-3".into(),
            birth_date: "2018-05-05".into(),
            sex: "1".into(),
            not_disclosed: false,
            payer_number: Some("88139993".into()),
            recipient_number: "000123".into(),
            income_segment: Some("A".into()),
            designated: vec!["さくら病院".into()],
            always_reimbursement: false,
            // Every sub-item set, so that every name of the table is in the JSON.
            copay: Some(PmhCap {
                kind: "1".into(),
                definition: Some("医療費の2割".into()),
                rate: [Some(5), Some(20), Some(30)],
                yen: [Some(100), Some(5000), Some(300)],
                card: String::new(),
            }),
            valid_from: "2026-04-01".into(),
            valid_to: "9999-12-31".into(),
            disease: Some("肢体不自由".into()),
            issued: "2026-04-01".into(),
        };
        let o = Outgoing { record: &record, deleted: false };
        let json: Vec<serde_json::Value> =
            serde_json::from_slice(&to_json(&[Outgoing { record: &record, deleted: false }], program, &config.eras))
                .unwrap();
        let mut found = Vec::new();
        paths(&json[0], "", &mut found);
        found.retain(|p| p != "certificationDetail");
        // segment and additionalConditions are never set today (left out): the table names them.
        let mut named: Vec<String> = COLUMNS
            .iter()
            .map(|(_, j)| (*j).to_owned())
            .filter(|j| j != "segment" && j != "additionalConditions")
            .collect();
        named.sort();
        found.sort();
        assert_eq!(found, named);
        // The CSV row has a cell under every header, in the table's order.
        let row = csv_row(&o, program, &config.eras);
        assert_eq!(row.len(), csv_header(program).len());
        let at = |h: &str| COLUMNS.iter().position(|(c, _)| *c == h).unwrap();
        assert_eq!((row[at("マイナンバー")].as_str(), row[at("住所")].as_str()), ("123456789018", "さくら市本町1-2-3"));
        let cells: Vec<&str> =
            ["種別", "負担定義", "負担率-日", "負担率-月", "負担率-回", "金額-日", "金額-月", "金額-回"]
                .iter()
                .map(|c| row[at(&format!("自己負担上限額-{c}"))].as_str())
                .collect();
        assert_eq!(cells, ["1", "医療費の2割", "5", "20", "30", "100", "5000", "300"]);
        let cap = &json[0]["maxCopaymentAmount"];
        assert_eq!((cap["burdenRatePerDay"].as_u64(), cap["amountPerVisit"].as_i64()), (Some(5), Some(300)));
    }

    /// Records with every optional item set and unset, texts needing escapes and quotes.
    fn awkward_records(program: &Program) -> Vec<PmhRecord> {
        let base = PmhRecord {
            recipient: 12,
            span: 3,
            program: program.key.to_string(),
            certificate: "K1".into(),
            my_number: Some("123456789018".into()),
            name: "桜 \"太郎\", 二世".into(),
            kana: "サクラ\tタロウ".into(),
            address: "さくら市本町1-2-3\r\n2階\\奥\u{1}".into(),
            birth_date: "2018-05-05".into(),
            sex: "1".into(),
            not_disclosed: true,
            payer_number: Some("88139993".into()),
            recipient_number: "000123".into(),
            income_segment: Some("A,\"B\"".into()),
            designated: vec!["さくら病院".into(), "青葉\"医院\"".into(), "北,南".into()],
            always_reimbursement: true,
            copay: Some(PmhCap {
                kind: "1".into(),
                definition: Some("医療費の2割".into()),
                rate: [Some(5), None, Some(30)],
                yen: [None, Some(-5000), Some(300)],
                card: "月額5,000円".into(),
            }),
            valid_from: "2026-04-01".into(),
            valid_to: "9999-12-31".into(),
            disease: Some("肢体不自由".into()),
            issued: "2026-04-01".into(),
        };
        let mut out = vec![base.clone()];
        out.push(PmhRecord {
            my_number: None,
            payer_number: None,
            income_segment: None,
            designated: vec![],
            copay: None,
            disease: None,
            sex: "9".into(),
            not_disclosed: false,
            always_reimbursement: false,
            valid_to: "2027-03-31".into(),
            birth_date: "not a date".into(),
            ..base.clone()
        });
        out.push(PmhRecord {
            designated: vec!["ひとつ".into()],
            copay: Some(PmhCap {
                kind: "2".into(),
                definition: None,
                rate: [None; 3],
                yen: [None; 3],
                card: String::new(),
            }),
            birth_date: "1989-01-07".into(),
            valid_from: "2019-04-30".into(),
            valid_to: "2019-05-01".into(),
            ..base
        });
        out
    }

    #[test]
    fn the_renderer_writes_the_bytes_of_the_structured_definition() {
        let config = Config::demo().unwrap();
        let mut programs: Vec<Program> = config.programs().to_vec();
        // A template with every item, notes and contact across lines.
        let mut wide = programs[0].clone();
        wide.certificate.items = FaceItem::ALL.to_vec();
        wide.certificate.notes = "注意\n二行目".into();
        wide.certificate.contact = "連絡先, \"窓口\"".into();
        programs.push(wide);
        for program in &programs {
            let records = awkward_records(program);
            let outgoing: Vec<Outgoing<'_>> =
                records.iter().enumerate().map(|(i, record)| Outgoing { record, deleted: i % 2 == 1 }).collect();
            for n in [0, 1, outgoing.len()] {
                let some = &outgoing[..n];
                assert_eq!(
                    String::from_utf8(to_json(some, program, &config.eras)).unwrap(),
                    String::from_utf8(reference_json(some, program, &config.eras)).unwrap(),
                    "{}",
                    program.key
                );
                assert_eq!(
                    String::from_utf8(to_csv(some, program, &config.eras)).unwrap(),
                    String::from_utf8(reference_csv(some, program, &config.eras)).unwrap(),
                    "{}",
                    program.key
                );
            }
        }
    }

    #[test]
    fn no_csv_header_repeats_for_any_template() {
        let config = Config::demo().unwrap();
        let mut program = config.programs()[0].clone();
        // Every item on the card, with notes and contact: the widest header there is.
        program.certificate.items = FaceItem::ALL.to_vec();
        program.certificate.notes = "注意".into();
        program.certificate.contact = "連絡先".into();
        for p in config.programs().iter().chain([&program]) {
            let header = csv_header(p);
            let unique: std::collections::BTreeSet<&String> = header.iter().collect();
            assert_eq!(unique.len(), header.len(), "{}: {header:?}", p.key);
            assert_eq!(header.len(), COLUMNS.len() + detail_labels(p).len());
        }
        assert_eq!(detail_labels(&program).len(), FaceItem::ALL.len() + 1, "the title and every item");
    }
}
