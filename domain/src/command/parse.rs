//! Raw input to [`Command`]: a JSON object (one line of `daicho apply`, an HTTP body, or a form
//! turned into JSON) becomes a command of validated values, or every field error at once.
//!
//! Rules of the contract: strings are JSON strings (numbers would lose leading zeros), dates are
//! `YYYY-MM-DD`, unknown fields are errors (a typo must not be silently ignored), and no string
//! may hold `<` or `>` (input rule only: stored values are not re-checked for it). For attributes
//! of `renew_certificate` and `change_certificate`, a missing field means "unchanged" and `null`
//! means "clear".

use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{BasicInfo, Command, CommandBody, Grant, ResidentRecord};
use crate::calendar::parse_date;
use crate::certificate::{
    CapError, CapKind, CapUnit, CopayCap, DESIGNATED_INSTITUTIONS_MAX, LossReason, OldCapSetting, PerUnit, Percent,
    ReissueReason, Terms, TermsChange,
};
use crate::config::ProgramKey;
use crate::error::ValueError;
use crate::ids::{CertificateRef, CommandId, RecipientRef, UserId};
use crate::money::Yen;
use crate::numbers::{MyNumber, PayerNumber, RecipientNumber, RecipientNumberRule};
use crate::text::{
    Address, CapDefinition, DiseaseName, IncomeSegment, InstitutionName, Kana, Note, PersonName, PlaceName, Sex,
};

/// One field that could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Field name; nested fields are dotted (`copay_cap.yen`, `designated_institutions[2]`).
    pub field: String,
    /// What is wrong.
    pub error: ValueError,
}

/// Why raw input is not a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputError {
    /// Not JSON; the column where parsing stopped.
    NotJson { column: usize },
    /// JSON, but not an object.
    NotObject,
    /// An object with field errors.
    Fields(Vec<FieldError>),
}

impl InputError {
    /// Stable code: `invalid_json`, `not_an_object`, or the first field error's code.
    pub fn code(&self) -> &'static str {
        match self {
            InputError::NotJson { .. } => "invalid_json",
            InputError::NotObject => "not_an_object",
            InputError::Fields(errors) => errors.first().map_or("invalid_input", |e| e.error.code()),
        }
    }

    /// Japanese message naming each field.
    pub fn message(&self) -> String {
        match self {
            InputError::NotJson { column } => format!("JSONとして読めません（{column}文字目付近）"),
            InputError::NotObject => "JSONオブジェクト（{...}）ではありません".to_owned(),
            InputError::Fields(errors) => {
                errors.iter().map(|e| format!("{}: {}", e.field, e.error.message())).collect::<Vec<_>>().join("; ")
            }
        }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for InputError {}

/// Parses one line of the JSON Lines contract.
pub fn parse_command_line(line: &str) -> Result<Command, InputError> {
    // serde_json's messages can quote the input; only the column is kept.
    let value: Value = serde_json::from_str(line).map_err(|e| InputError::NotJson { column: e.column() })?;
    parse_command_value(value)
}

/// Parses a JSON value of the contract.
pub fn parse_command_value(value: Value) -> Result<Command, InputError> {
    let Value::Object(map) = value else {
        return Err(InputError::NotObject);
    };
    let mut f = Fields { map, prefix: String::new(), errors: Vec::new() };
    let id = f.required("id", CommandId::parse);
    let type_name = f.required("type", |s| Ok(s.to_owned()));
    let actor = f.required("actor", UserId::parse);
    let recipient = f.required("recipient", RecipientRef::parse);
    let effective = f.required("effective", parse_date);
    let body = match type_name {
        Some(t) => body(&mut f, &t),
        None => {
            // Without a type, the other fields cannot be judged: report the type only.
            f.map.clear();
            None
        }
    };
    let errors = f.finish();
    match (id, actor, recipient, effective, body) {
        (Some(id), Some(actor), Some(recipient), Some(effective), Some(body)) if errors.is_empty() => {
            Ok(Command { id, actor, recipient, effective, body })
        }
        _ => Err(InputError::Fields(errors)),
    }
}

impl<'de> Deserialize<'de> for Command {
    /// Deserializes from the JSON contract through [`parse_command_value`].
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        parse_command_value(value).map_err(serde::de::Error::custom)
    }
}

const TYPES: &str = "register_recipient, link_my_number, change_personal_details, move_in, move_out, \
record_death, start_dv_support, end_dv_support, grant_certificate, renew_certificate, change_certificate, \
end_certificate, reissue_certificate, rescind";

fn body(f: &mut Fields, type_name: &str) -> Option<CommandBody> {
    Some(match type_name {
        "register_recipient" => {
            let name = f.required("name", PersonName::parse);
            let kana = f.required("kana", Kana::parse);
            let birth_date = f.required("birth_date", parse_date);
            let sex = f.required("sex", Sex::parse);
            let address = f.required("address", Address::parse);
            CommandBody::RegisterRecipient(BasicInfo {
                name: name?,
                kana: kana?,
                birth_date: birth_date?,
                sex: sex?,
                address: address?,
            })
        }
        "link_my_number" => {
            let my_number = f.required("my_number", MyNumber::parse);
            let approver = f.required("approver", UserId::parse);
            let resident_record = f.object("resident_record", |r| {
                let name = r.required("name", PersonName::parse);
                let birth_date = r.required("birth_date", parse_date);
                let sex = r.required("sex", Sex::parse);
                let address = r.required("address", Address::parse);
                Some(ResidentRecord { name: name?, birth_date: birth_date?, sex: sex?, address: address? })
            });
            CommandBody::LinkMyNumber { my_number: my_number?, approver: approver?, resident_record: resident_record? }
        }
        "change_personal_details" => {
            let name = f.optional("name", PersonName::parse);
            let kana = f.optional("kana", Kana::parse);
            let address = f.optional("address", Address::parse);
            CommandBody::ChangePersonalDetails { name: name?, kana: kana?, address: address? }
        }
        "move_in" => {
            let address = f.required("address", Address::parse);
            let from = f.required("from", PlaceName::parse);
            CommandBody::RecordMoveIn { address: address?, from: from? }
        }
        "move_out" => CommandBody::RecordMoveOut { to: f.required("to", PlaceName::parse)? },
        "record_death" => CommandBody::RecordDeath,
        "start_dv_support" => CommandBody::StartDvSupport,
        "end_dv_support" => CommandBody::EndDvSupport,
        "grant_certificate" => {
            let certificate = f.required("certificate", CertificateRef::parse);
            let program = f.required("program", ProgramKey::parse);
            let valid_from = f.required("valid_from", parse_date);
            let valid_to = f.optional("valid_to", parse_date);
            let payer_number = f.optional("payer_number", PayerNumber::parse);
            let recipient_number = f.required("recipient_number", free_recipient_number);
            let copay_cap = f.optional_object("copay_cap", copay_cap);
            let income_segment = f.optional("income_segment", IncomeSegment::parse);
            let designated_institutions = f.list("designated_institutions", InstitutionName::parse);
            let disease = f.optional("disease", DiseaseName::parse);
            let always_reimbursement = f.bool("always_reimbursement");
            CommandBody::GrantCertificate(Grant {
                certificate: certificate?,
                program: program?,
                valid_from: valid_from?,
                valid_to: valid_to?,
                terms: Terms {
                    payer_number: payer_number?,
                    recipient_number: recipient_number?,
                    copay_cap: copay_cap?,
                    income_segment: income_segment?,
                    designated_institutions: designated_institutions?.unwrap_or_default(),
                    disease: disease?,
                    always_reimbursement: always_reimbursement?.unwrap_or(false),
                },
            })
        }
        "renew_certificate" => {
            let certificate = f.required("certificate", CertificateRef::parse);
            let valid_from = f.required("valid_from", parse_date);
            let valid_to = f.optional("valid_to", parse_date);
            let changes = terms_change(f);
            CommandBody::RenewCertificate {
                certificate: certificate?,
                valid_from: valid_from?,
                valid_to: valid_to?,
                changes: changes?,
            }
        }
        "change_certificate" => {
            let certificate = f.required("certificate", CertificateRef::parse);
            let changes = terms_change(f);
            CommandBody::ChangeCertificate { certificate: certificate?, changes: changes? }
        }
        "end_certificate" => {
            let certificate = f.required("certificate", CertificateRef::parse);
            let reason = f.required("reason", loss_reason);
            CommandBody::EndCertificate { certificate: certificate?, reason: reason? }
        }
        "reissue_certificate" => {
            let certificate = f.required("certificate", CertificateRef::parse);
            let reason = f.required("reason", reissue_reason);
            CommandBody::ReissueCertificate { certificate: certificate?, reason: reason? }
        }
        "rescind" => {
            let target = f.required("target", CommandId::parse);
            let reason = f.required("reason", Note::parse);
            let approver = f.optional("approver", UserId::parse);
            CommandBody::Rescind { target: target?, reason: reason?, approver: approver? }
        }
        _ => {
            // Without a known type, the other fields cannot be judged: report the type only.
            f.map.clear();
            f.error("type", ValueError::UnknownCode { allowed: TYPES });
            return None;
        }
    })
}

/// Syntax only: whether the number fits the program's rule is checked by `decide`, which knows
/// the program.
fn free_recipient_number(raw: &str) -> Result<RecipientNumber, ValueError> {
    RecipientNumber::parse(raw, RecipientNumberRule::Free)
}

fn loss_reason(raw: &str) -> Result<LossReason, ValueError> {
    match raw {
        "age_limit" => Ok(LossReason::AgeLimit),
        "income" => Ok(LossReason::Income),
        "withdrawal" => Ok(LossReason::Withdrawal),
        "other" => Ok(LossReason::Other),
        "" => Err(ValueError::Required),
        _ => Err(ValueError::UnknownCode { allowed: "age_limit, income, withdrawal, other" }),
    }
}

fn reissue_reason(raw: &str) -> Result<ReissueReason, ValueError> {
    match raw {
        "lost" => Ok(ReissueReason::Lost),
        "damaged" => Ok(ReissueReason::Damaged),
        "other" => Ok(ReissueReason::Other),
        "" => Err(ValueError::Required),
        _ => Err(ValueError::UnknownCode { allowed: "lost, damaged, other" }),
    }
}

/// The largest self-pay cap accepted as input (no program's monthly cap comes near it; a larger
/// figure is a typing slip). Stored values are not re-checked against it.
pub const COPAY_YEN_MAX: i64 = 10_000_000;

/// A self-pay cap in PMH's structure: `kind` (limit, fixed, free), `definition` (負担定義, text),
/// `rate_day`/`rate_month`/`rate_visit` (負担率, percent) and `yen_day`/`yen_month`/`yen_visit`
/// (金額). An object of the abolished form `{yen, unit, setting}` (no `kind`) is still read, as
/// [`CopayCap::from_old_form`] maps it, so command files written before the change apply alike.
fn copay_cap(f: &mut Fields) -> Option<CopayCap> {
    if !f.map.contains_key("kind") && ["yen", "unit", "setting"].iter().any(|k| f.map.contains_key(*k)) {
        return old_copay_cap(f);
    }
    let kind = f.required("kind", |s| {
        CapKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(ValueError::UnknownCode { allowed: "limit, fixed, free" })
    });
    let definition = f.optional("definition", CapDefinition::parse);
    let mut rate = PerUnit::default();
    let mut amount = PerUnit::default();
    let mut ok = true;
    for unit in CapUnit::ALL {
        let name = format!("rate_{}", unit.as_str());
        match f.integer(&name) {
            Some(Some(v)) => match Percent::new(v) {
                Ok(p) => rate.set(unit, Some(p)),
                Err(e) => {
                    f.error(&name, e);
                    ok = false;
                }
            },
            Some(None) => {}
            None => ok = false,
        }
        let name = format!("yen_{}", unit.as_str());
        match f.integer(&name).map(|v| v.map(cap_yen)) {
            Some(Some(Ok(y))) => amount.set(unit, Some(y)),
            Some(Some(Err(e))) => {
                f.error(&name, e);
                ok = false;
            }
            Some(None) => {}
            None => ok = false,
        }
    }
    let (kind, definition) = (kind?, definition?);
    if !ok {
        return None;
    }
    match CopayCap::new(kind, definition, rate, amount) {
        Ok(cap) => Some(cap),
        Err(e) => {
            f.error("kind", cap_error(e));
            None
        }
    }
}

fn cap_yen(v: i64) -> Result<Yen, ValueError> {
    if v < 0 {
        Err(ValueError::Negative)
    } else if v > COPAY_YEN_MAX {
        Err(ValueError::TooLarge { max: COPAY_YEN_MAX })
    } else {
        Ok(Yen::new(v))
    }
}

fn cap_error(e: CapError) -> ValueError {
    match e {
        CapError::FreeWithValues => ValueError::CapFreeWithValues,
        CapError::Empty => ValueError::CapEmpty,
        CapError::Negative => ValueError::Negative,
    }
}

/// The abolished form `{yen, unit, setting}`.
fn old_copay_cap(f: &mut Fields) -> Option<CopayCap> {
    let yen = f.integer("yen");
    let unit = f.required("unit", |s| {
        CapUnit::ALL
            .into_iter()
            .find(|u| u.as_str() == s)
            .ok_or(ValueError::UnknownCode { allowed: "month, day, visit" })
    });
    let setting = f.required("setting", |s| match s {
        "outpatient" => Ok(OldCapSetting::Outpatient),
        "inpatient" => Ok(OldCapSetting::Inpatient),
        "combined" => Ok(OldCapSetting::Combined),
        _ => Err(ValueError::UnknownCode { allowed: "outpatient, inpatient, combined" }),
    });
    let yen = match yen?.map(cap_yen) {
        Some(Ok(y)) => y,
        Some(Err(e)) => {
            f.error("yen", e);
            return None;
        }
        None => {
            f.error("yen", ValueError::Required);
            return None;
        }
    };
    CopayCap::from_old_form(yen, unit?, setting?).map_err(|e| f.error("yen", cap_error(e))).ok()
}

fn terms_change(f: &mut Fields) -> Option<TermsChange> {
    let payer_number = f.nullable("payer_number", PayerNumber::parse);
    let recipient_number = f.optional("recipient_number", free_recipient_number);
    let copay_cap = f.nullable_object("copay_cap", copay_cap);
    let income_segment = f.nullable("income_segment", IncomeSegment::parse);
    let designated_institutions = f.list("designated_institutions", InstitutionName::parse);
    let disease = f.nullable("disease", DiseaseName::parse);
    let always_reimbursement = f.bool("always_reimbursement");
    Some(TermsChange {
        payer_number: payer_number?,
        recipient_number: recipient_number?,
        copay_cap: copay_cap?,
        income_segment: income_segment?,
        designated_institutions: designated_institutions?,
        disease: disease?,
        always_reimbursement: always_reimbursement?,
    })
}

/// The fields of one JSON object, taken one by one; what is left at the end is unknown.
///
/// Every accessor returns `None` when it recorded an error, so `?` stops building the command
/// while the errors collected so far are kept.
/// Fields of free text (names, addresses, places, reasons, notes): they end up in CSV files that
/// people open, so a leading formula character is refused ([`ValueError::FormulaLike`]).
const FREE_TEXT_FIELDS: [&str; 9] =
    ["name", "address", "to", "from", "reason", "disease", "income_segment", "designated_institutions", "definition"];

struct Fields {
    map: Map<String, Value>,
    prefix: String,
    errors: Vec<FieldError>,
}

impl Fields {
    fn error(&mut self, name: &str, error: ValueError) {
        self.errors.push(FieldError { field: format!("{}{name}", self.prefix), error });
    }

    /// A string field, or `None` (error recorded) when it is another JSON type.
    fn string(&mut self, name: &str, value: Value) -> Option<String> {
        match value {
            Value::String(s) => Some(s),
            _ => {
                self.error(name, ValueError::WrongType { expected: "文字列" });
                None
            }
        }
    }

    fn parse_with<T>(
        &mut self,
        name: &str,
        value: Value,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Option<T> {
        let text = self.string(name, value)?;
        if let Some(i) = text.chars().position(|c| c == '<' || c == '>') {
            self.error(name, ValueError::Markup { position: i + 1 });
            return None;
        }
        let base = name.split('[').next().unwrap_or(name);
        if FREE_TEXT_FIELDS.contains(&base) && crate::text::formula_like(text.trim_start_matches([' ', '\u{3000}'])) {
            self.error(name, ValueError::FormulaLike);
            return None;
        }
        parse(&text).map_err(|e| self.error(name, e)).ok()
    }

    fn required<T>(&mut self, name: &str, parse: impl FnOnce(&str) -> Result<T, ValueError>) -> Option<T> {
        match self.map.remove(name) {
            None | Some(Value::Null) => {
                self.error(name, ValueError::Required);
                None
            }
            Some(value) => self.parse_with(name, value, parse),
        }
    }

    /// `Some(None)` when absent or null.
    fn optional<T>(&mut self, name: &str, parse: impl FnOnce(&str) -> Result<T, ValueError>) -> Option<Option<T>> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Some(None),
            Some(value) => self.parse_with(name, value, parse).map(Some),
        }
    }

    /// Absent: `Some(None)` (unchanged); null: `Some(Some(None))` (clear); value: set.
    fn nullable<T>(
        &mut self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Option<Option<Option<T>>> {
        match self.map.remove(name) {
            None => Some(None),
            Some(Value::Null) => Some(Some(None)),
            Some(value) => self.parse_with(name, value, parse).map(|v| Some(Some(v))),
        }
    }

    fn bool(&mut self, name: &str) -> Option<Option<bool>> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Some(None),
            Some(Value::Bool(b)) => Some(Some(b)),
            Some(_) => {
                self.error(name, ValueError::WrongType { expected: "true または false" });
                None
            }
        }
    }

    fn integer(&mut self, name: &str) -> Option<Option<i64>> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Some(None),
            Some(Value::Number(n)) if n.is_i64() => Some(n.as_i64()),
            Some(_) => {
                self.error(name, ValueError::WrongType { expected: "整数" });
                None
            }
        }
    }

    /// An array of strings, each parsed; `Some(None)` when absent.
    fn list<T>(&mut self, name: &str, parse: impl Fn(&str) -> Result<T, ValueError>) -> Option<Option<Vec<T>>> {
        let items = match self.map.remove(name) {
            None | Some(Value::Null) => return Some(None),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.error(name, ValueError::WrongType { expected: "文字列の配列" });
                return None;
            }
        };
        if items.len() > DESIGNATED_INSTITUTIONS_MAX {
            self.error(name, ValueError::TooMany { entries_max: DESIGNATED_INSTITUTIONS_MAX });
            return None;
        }
        let count = items.len();
        let parsed: Vec<T> = items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| self.parse_with(&format!("{name}[{i}]"), item, &parse))
            .collect();
        (parsed.len() == count).then_some(Some(parsed))
    }

    fn nested<T>(&mut self, name: &str, value: Value, build: impl FnOnce(&mut Fields) -> Option<T>) -> Option<T> {
        let Value::Object(map) = value else {
            self.error(name, ValueError::WrongType { expected: "オブジェクト" });
            return None;
        };
        let mut inner = Fields { map, prefix: format!("{}{name}.", self.prefix), errors: Vec::new() };
        let built = build(&mut inner);
        let inner_errors = inner.finish();
        let ok = inner_errors.is_empty();
        self.errors.extend(inner_errors);
        if ok { built } else { None }
    }

    fn object<T>(&mut self, name: &str, build: impl FnOnce(&mut Fields) -> Option<T>) -> Option<T> {
        match self.map.remove(name) {
            None | Some(Value::Null) => {
                self.error(name, ValueError::Required);
                None
            }
            Some(value) => self.nested(name, value, build),
        }
    }

    fn optional_object<T>(&mut self, name: &str, build: impl FnOnce(&mut Fields) -> Option<T>) -> Option<Option<T>> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Some(None),
            Some(value) => self.nested(name, value, build).map(Some),
        }
    }

    fn nullable_object<T>(
        &mut self,
        name: &str,
        build: impl FnOnce(&mut Fields) -> Option<T>,
    ) -> Option<Option<Option<T>>> {
        match self.map.remove(name) {
            None => Some(None),
            Some(Value::Null) => Some(Some(None)),
            Some(value) => self.nested(name, value, build).map(|v| Some(Some(v))),
        }
    }

    /// Every error, with the fields nobody asked for reported as unknown.
    fn finish(mut self) -> Vec<FieldError> {
        let unknown: Vec<String> = self.map.keys().cloned().collect();
        for name in unknown {
            self.error(&name, ValueError::UnknownField);
        }
        self.errors
    }
}
