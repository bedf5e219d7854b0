//! 保存形式 (stored form of events): domain events to and from versioned payload bytes.
//!
//! A payload is bincode (standard configuration: little-endian, variable-length integers) of a
//! frozen, versioned type ([`v1`]), named by the envelope's event type and schema version.
//! Decoding is limited to [`PAYLOAD_BYTES_MAX`], must consume every byte, and re-parses every
//! value through the domain's parsers, so stored data that no longer makes sense is an error,
//! not a silently wrong value.
//!
//! Versioning: a released type never changes. A new version is a new type; [`decode`] reads old
//! versions through upcasters into today's domain events, and the golden corpus
//! (`domain/golden/`) holds the bytes of every released version, decoded by a test forever.

pub mod json;
pub mod snapshot;
pub mod v1;
pub mod v2;
pub mod v3;

use std::fmt;

use bincode::config::{Configuration, Limit, LittleEndian, Varint};
use chrono::NaiveDate;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::calendar::GREGORIAN_START;
use crate::certificate::{
    CapError, CapKind, CapUnit, CopayCap, LossReason, OldCapSetting, PerUnit, Percent, ReissueReason, Terms,
    TermsChange,
};
use crate::command::BasicInfo;
use crate::config::ProgramKey;
use crate::error::ValueError;
use crate::event::EventBody;
use crate::ids::{CertificateRef, CommandId, RecipientRef, SpanNo, UserId};
use crate::numbers::{MyNumber, PayerNumber, RecipientNumber, RecipientNumberRule};
use crate::period::Period;
use crate::text::{
    Address, CapDefinition, DiseaseName, IncomeSegment, InstitutionName, Kana, Note, PersonName, PlaceName,
    PmhErrorCode, PmhMessage, Sex,
};
use crate::users::{AccessAction, AccessRecord, Role, UserEvent};

/// Largest payload accepted, in bytes.
pub const PAYLOAD_BYTES_MAX: usize = 64 * 1024;

/// The event type of the configuration event (system stream `config`).
pub const CONFIGURATION_SET: &str = "configuration_set";

/// The event type of a PMH export batch (system stream `pmh`).
pub const PMH_BATCH_EXPORTED: &str = "pmh_batch_exported";

/// The event type of PMH's registration results for a batch (system stream `pmh-results`).
pub const PMH_RESULTS_RECORDED: &str = "pmh_results_recorded";

/// The event type of a fee schedule entry (system stream `billing`).
pub const FEE_SCHEDULE_SET: &str = "fee_schedule_set";
/// The event type of a closed billing month (system stream `billing`).
pub const BILLING_MONTH_CLOSED: &str = "billing_month_closed";

/// Event types of the `users` system stream.
pub const USER_ADDED: &str = "user_added";
/// See [`USER_ADDED`].
pub const USER_PASSWORD_SET: &str = "user_password_set";
/// See [`USER_ADDED`].
pub const USER_DISABLED: &str = "user_disabled";
/// The event type of the access log.
pub const ACCESS_RECORDED: &str = "access_recorded";

/// Encodes a user event.
pub fn encode_user(e: &UserEvent) -> Result<Encoded, CodecError> {
    let (event_type, payload) = match e {
        UserEvent::Added { user, name, role, password_hash } => (
            USER_ADDED,
            to_bytes(&v1::UserAdded {
                user: user.to_string(),
                name: name.clone(),
                role: role.number(),
                password_hash: password_hash.clone(),
            })?,
        ),
        UserEvent::PasswordSet { user, password_hash } => (
            USER_PASSWORD_SET,
            to_bytes(&v1::UserPasswordSet { user: user.to_string(), password_hash: password_hash.clone() })?,
        ),
        UserEvent::Disabled { user } => (USER_DISABLED, to_bytes(&v1::UserDisabled { user: user.to_string() })?),
    };
    Ok(Encoded { event_type, schema_version: 1, payload })
}

/// Decodes a user event.
pub fn decode_user(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<UserEvent, CodecError> {
    let d = Decoder { event_type };
    match (event_type, schema_version) {
        (USER_ADDED, 1) => {
            let v: v1::UserAdded = from_bytes(event_type, payload)?;
            let role = Role::from_number(v.role).ok_or(CodecError::Invalid {
                event_type: event_type.to_owned(),
                field: "role",
                error: unknown("1-5"),
            })?;
            Ok(UserEvent::Added {
                user: d.field("user", UserId::parse(&v.user))?,
                name: v.name,
                role,
                password_hash: v.password_hash,
            })
        }
        (USER_PASSWORD_SET, 1) => {
            let v: v1::UserPasswordSet = from_bytes(event_type, payload)?;
            Ok(UserEvent::PasswordSet {
                user: d.field("user", UserId::parse(&v.user))?,
                password_hash: v.password_hash,
            })
        }
        (USER_DISABLED, 1) => {
            let v: v1::UserDisabled = from_bytes(event_type, payload)?;
            Ok(UserEvent::Disabled { user: d.field("user", UserId::parse(&v.user))? })
        }
        _ => Err(CodecError::UnknownType { event_type: event_type.to_owned(), schema_version }),
    }
}

/// Encodes an access record (v2).
pub fn encode_access(r: &AccessRecord) -> Result<Encoded, CodecError> {
    let v = v2::AccessRecorded {
        user: r.user.to_string(),
        recipients: r.recipients.clone(),
        page: r.page.clone(),
        action: r.action.number(),
        reason: r.reason.clone(),
    };
    Ok(Encoded { event_type: ACCESS_RECORDED, schema_version: 2, payload: to_bytes(&v)? })
}

/// v1 named at most one recipient.
fn upcast_access(v: v1::AccessRecorded) -> v2::AccessRecorded {
    v2::AccessRecorded {
        user: v.user,
        recipients: v.recipient.into_iter().collect(),
        page: v.page,
        action: v.action,
        reason: v.reason,
    }
}

/// Decodes an access record (v1 through its upcaster, v2).
pub fn decode_access(schema_version: u16, payload: &[u8]) -> Result<AccessRecord, CodecError> {
    let v = match schema_version {
        1 => upcast_access(from_bytes::<v1::AccessRecorded>(ACCESS_RECORDED, payload)?),
        2 => from_bytes::<v2::AccessRecorded>(ACCESS_RECORDED, payload)?,
        _ => return Err(CodecError::UnknownType { event_type: ACCESS_RECORDED.to_owned(), schema_version }),
    };
    let d = Decoder { event_type: ACCESS_RECORDED };
    let action = AccessAction::from_number(v.action).ok_or(CodecError::Invalid {
        event_type: ACCESS_RECORDED.to_owned(),
        field: "action",
        error: unknown("1-4"),
    })?;
    Ok(AccessRecord {
        user: d.field("user", UserId::parse(&v.user))?,
        recipients: v.recipients,
        page: v.page,
        action,
        reason: v.reason,
    })
}

/// A PMH export batch as recorded in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmhBatch {
    /// Program exported.
    pub program: ProgramKey,
    /// Full or diff-history.
    pub mode: crate::config::PmhMode,
    /// The previous batch's `to_position` for this program (0 for the first).
    pub from_position: u64,
    /// The log position the batch was computed at (the batch event itself follows it).
    pub to_position: u64,
    /// Records sent (deleted ones included).
    pub records: u32,
    /// Of which `isDeleted`.
    pub deleted: u32,
    /// Records held back by validation.
    pub held_back: u32,
    /// (file name, SHA-256 hex), in write order.
    pub files: Vec<(String, String)>,
}

/// PMH's registration results (医療費助成情報登録結果) for one batch, as recorded: the records
/// PMH refused; every other record the batch sent was accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmhResults {
    /// The batch: its number in the `pmh` stream.
    pub batch: u64,
    /// The batch event's log position.
    pub batch_position: u64,
    /// The batch event's effective date (its upload day).
    pub batch_day: NaiveDate,
    /// The batch was a full one: it sent every current record of the program (those PMH
    /// already had again).
    pub full: bool,
    /// The batch replaced the program at PMH ([`crate::config::PmhMode::Full`] of a full-mode
    /// program): a record it sent that PMH refused is no longer at PMH in any version.
    pub replacing: bool,
    /// The batch's program.
    pub program: ProgramKey,
    /// SHA-256 (lower-case hex) of the results file read.
    pub file_sha256: String,
    /// Rows of the file for this batch (in the first event of a batch's results).
    pub rows: u32,
    /// Of which rows naming a record daicho did not send in the batch (reported, not applied).
    pub unmatched: u32,
    /// Records PMH refused, in file order.
    pub refused: Vec<PmhRefusal>,
}

/// A record PMH refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmhRefusal {
    /// The recipient's internal number and the record's span (its history key).
    pub recipient: u64,
    pub span: u32,
    /// PMH's code and text.
    pub code: PmhErrorCode,
    pub message: PmhMessage,
}

/// Encodes PMH's results for a batch; [`CodecError::TooLarge`] when they do not fit one payload
/// (split the refusals: [`split_pmh_results`]).
pub fn encode_pmh_results(r: &PmhResults) -> Result<Encoded, CodecError> {
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut index: std::collections::HashMap<(&str, &str), u32> = std::collections::HashMap::new();
    let mut refused = Vec::with_capacity(r.refused.len());
    for x in &r.refused {
        let key = (x.code.as_str(), x.message.as_str());
        let i = match index.get(&key) {
            Some(i) => *i,
            None => {
                let i = u32::try_from(texts.len()).map_err(|_| CodecError::TooLarge)?;
                texts.push((key.0.to_owned(), key.1.to_owned()));
                index.insert(key, i);
                i
            }
        };
        refused.push((x.recipient, x.span, i));
    }
    let v = v1::PmhResultsRecorded {
        batch: r.batch,
        batch_position: r.batch_position,
        batch_day: date_to_days(r.batch_day),
        full: r.full,
        replacing: r.replacing,
        program: r.program.to_string(),
        file_sha256: r.file_sha256.clone(),
        rows: r.rows,
        unmatched: r.unmatched,
        texts,
        refused,
    };
    let payload = to_bytes(&v)?;
    if payload.len() > PAYLOAD_BYTES_MAX {
        return Err(CodecError::TooLarge);
    }
    Ok(Encoded { event_type: PMH_RESULTS_RECORDED, schema_version: 1, payload })
}

/// PMH's results for one batch as events of at most [`PAYLOAD_BYTES_MAX`] each: the refusals in
/// file order, split where a payload would not fit (the counts in the first).
pub fn split_pmh_results(r: &PmhResults) -> Result<Vec<Encoded>, CodecError> {
    let mut out = Vec::new();
    let mut rest: &[PmhRefusal] = &r.refused;
    let mut first = true;
    loop {
        // The largest prefix that fits, found by halving from all of it.
        let mut take = rest.len();
        let encoded = loop {
            let part = PmhResults {
                rows: if first { r.rows } else { 0 },
                unmatched: if first { r.unmatched } else { 0 },
                refused: rest[..take].to_vec(),
                ..r.clone()
            };
            match encode_pmh_results(&part) {
                Ok(e) => break e,
                Err(CodecError::TooLarge) if take > 1 => take = take.div_ceil(2),
                Err(e) => return Err(e),
            }
        };
        out.push(encoded);
        rest = &rest[take..];
        first = false;
        if rest.is_empty() {
            return Ok(out);
        }
    }
}

/// Decodes PMH's results for a batch.
pub fn decode_pmh_results(schema_version: u16, payload: &[u8]) -> Result<PmhResults, CodecError> {
    if schema_version != 1 {
        return Err(CodecError::UnknownType { event_type: PMH_RESULTS_RECORDED.to_owned(), schema_version });
    }
    let v: v1::PmhResultsRecorded = from_bytes(PMH_RESULTS_RECORDED, payload)?;
    let d = Decoder { event_type: PMH_RESULTS_RECORDED };
    let mut texts = Vec::with_capacity(v.texts.len());
    for (code, message) in &v.texts {
        texts.push((d.field("code", PmhErrorCode::parse(code))?, d.field("message", PmhMessage::parse(message))?));
    }
    let mut refused = Vec::with_capacity(v.refused.len());
    for (recipient, span, i) in v.refused {
        let Some((code, message)) = usize::try_from(i).ok().and_then(|i| texts.get(i)) else {
            return Err(CodecError::Invalid {
                event_type: PMH_RESULTS_RECORDED.to_owned(),
                field: "refused",
                error: ValueError::TooLarge { max: i64::try_from(texts.len()).unwrap_or(i64::MAX) },
            });
        };
        refused.push(PmhRefusal { recipient, span, code: code.clone(), message: message.clone() });
    }
    Ok(PmhResults {
        batch: v.batch,
        batch_position: v.batch_position,
        batch_day: d.field("batch_day", days_to_date(v.batch_day))?,
        full: v.full,
        replacing: v.replacing,
        program: d.field("program", ProgramKey::parse(&v.program))?,
        file_sha256: v.file_sha256,
        rows: v.rows,
        unmatched: v.unmatched,
        refused,
    })
}

/// Largest unit price accepted, in yen (the expected price is about 2 yen).
pub const UNIT_YEN_MAX: u32 = 10_000;

/// An event of the `billing` system stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BillingEvent {
    /// The unit price from a month on.
    FeeScheduleSet {
        /// First month charged at this price.
        from_month: crate::billing::Month,
        /// Yen per counted unit and month.
        unit_yen: u32,
    },
    /// A month's statement is final.
    MonthClosed(MonthClosed),
}

/// A closed billing month as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonthClosed {
    /// The month.
    pub month: crate::billing::Month,
    /// The counting policy billed.
    pub policy: crate::billing::Policy,
    /// The log position the statement was computed at.
    pub position: u64,
    /// Unit price of the month.
    pub unit_yen: u32,
    /// Units under each policy of [`crate::billing::Policy::ALL`], in that order.
    pub counts: [u64; 3],
    /// The month's own charge (units x unit price).
    pub month_yen: u64,
    /// Adjustments for earlier closed months carried by this statement.
    pub adjustment_yen: i64,
    /// The amount due: month plus adjustments.
    pub total_yen: i64,
    /// (file name, SHA-256 hex), in write order.
    pub files: Vec<(String, String)>,
}

/// Encodes a billing event.
pub fn encode_billing(e: &BillingEvent) -> Result<Encoded, CodecError> {
    let (event_type, payload) = match e {
        BillingEvent::FeeScheduleSet { from_month, unit_yen } => (
            FEE_SCHEDULE_SET,
            to_bytes(&v1::FeeScheduleSet { from_month: from_month.to_string(), unit_yen: *unit_yen })?,
        ),
        BillingEvent::MonthClosed(c) => (
            BILLING_MONTH_CLOSED,
            to_bytes(&v1::BillingMonthClosed {
                month: c.month.to_string(),
                policy: c.policy.number(),
                position: c.position,
                unit_yen: c.unit_yen,
                counts: c.counts,
                month_yen: c.month_yen,
                adjustment_yen: c.adjustment_yen,
                total_yen: c.total_yen,
                files: c.files.clone(),
            })?,
        ),
    };
    Ok(Encoded { event_type, schema_version: 1, payload })
}

/// Decodes a billing event.
pub fn decode_billing(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<BillingEvent, CodecError> {
    let d = Decoder { event_type };
    let unit = |yen: u32| {
        if yen > UNIT_YEN_MAX { Err(ValueError::TooLarge { max: i64::from(UNIT_YEN_MAX) }) } else { Ok(yen) }
    };
    match (event_type, schema_version) {
        (FEE_SCHEDULE_SET, 1) => {
            let v: v1::FeeScheduleSet = from_bytes(event_type, payload)?;
            Ok(BillingEvent::FeeScheduleSet {
                from_month: d.field("from_month", crate::billing::Month::parse(&v.from_month))?,
                unit_yen: d.field("unit_yen", unit(v.unit_yen))?,
            })
        }
        (BILLING_MONTH_CLOSED, 1) => {
            let v: v1::BillingMonthClosed = from_bytes(event_type, payload)?;
            Ok(BillingEvent::MonthClosed(MonthClosed {
                month: d.field("month", crate::billing::Month::parse(&v.month))?,
                policy: d.field("policy", crate::billing::Policy::from_number(v.policy))?,
                position: v.position,
                unit_yen: d.field("unit_yen", unit(v.unit_yen))?,
                counts: v.counts,
                month_yen: v.month_yen,
                adjustment_yen: v.adjustment_yen,
                total_yen: v.total_yen,
                files: v.files,
            }))
        }
        _ => Err(CodecError::UnknownType { event_type: event_type.to_owned(), schema_version }),
    }
}

/// Encodes a PMH batch event.
pub fn encode_pmh_batch(b: &PmhBatch) -> Result<Encoded, CodecError> {
    let mode = match b.mode {
        crate::config::PmhMode::Full => 1,
        crate::config::PmhMode::DiffHistory => 2,
    };
    let v = v1::PmhBatchExported {
        program: b.program.to_string(),
        mode,
        from_position: b.from_position,
        to_position: b.to_position,
        records: b.records,
        deleted: b.deleted,
        held_back: b.held_back,
        files: b.files.clone(),
    };
    Ok(Encoded { event_type: PMH_BATCH_EXPORTED, schema_version: 1, payload: to_bytes(&v)? })
}

/// Decodes a PMH batch event.
pub fn decode_pmh_batch(schema_version: u16, payload: &[u8]) -> Result<PmhBatch, CodecError> {
    if schema_version != 1 {
        return Err(CodecError::UnknownType { event_type: PMH_BATCH_EXPORTED.to_owned(), schema_version });
    }
    let v: v1::PmhBatchExported = from_bytes(PMH_BATCH_EXPORTED, payload)?;
    let d = Decoder { event_type: PMH_BATCH_EXPORTED };
    let mode = match v.mode {
        1 => crate::config::PmhMode::Full,
        2 => crate::config::PmhMode::DiffHistory,
        _ => {
            return Err(CodecError::Invalid {
                event_type: PMH_BATCH_EXPORTED.to_owned(),
                field: "mode",
                error: unknown("1, 2"),
            });
        }
    };
    Ok(PmhBatch {
        program: d.field("program", ProgramKey::parse(&v.program))?,
        mode,
        from_position: v.from_position,
        to_position: v.to_position,
        records: v.records,
        deleted: v.deleted,
        held_back: v.held_back,
        files: v.files,
    })
}

fn bincode_config() -> Configuration<LittleEndian, Varint, Limit<PAYLOAD_BYTES_MAX>> {
    bincode::config::standard().with_limit::<PAYLOAD_BYTES_MAX>()
}

/// An event ready for the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// Event type (`certificate_granted`).
    pub event_type: &'static str,
    /// Schema version of the payload type.
    pub schema_version: u16,
    /// bincode bytes.
    pub payload: Vec<u8>,
}

/// Why stored bytes could not become an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// No decoder for this event type and version.
    UnknownType { event_type: String, schema_version: u16 },
    /// The bytes are not a payload of the type (or bytes remain after it).
    Malformed { event_type: String, detail: String },
    /// A decoded value is invalid under today's rules (named field).
    Invalid { event_type: String, field: &'static str, error: ValueError },
    /// The value could not be encoded (larger than [`PAYLOAD_BYTES_MAX`]).
    TooLarge,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::UnknownType { event_type, schema_version } => {
                write!(f, "unknown event type {event_type} v{schema_version}")
            }
            CodecError::Malformed { event_type, detail } => write!(f, "malformed {event_type} payload: {detail}"),
            CodecError::Invalid { event_type, field, error } => {
                write!(f, "invalid {event_type}.{field}: {}", error.code())
            }
            CodecError::TooLarge => write!(f, "payload larger than {PAYLOAD_BYTES_MAX} bytes"),
        }
    }
}

impl std::error::Error for CodecError {}

fn to_bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, bincode_config()).map_err(|_| CodecError::TooLarge)
}

fn from_bytes<T: DeserializeOwned>(event_type: &str, bytes: &[u8]) -> Result<T, CodecError> {
    let malformed = |detail: String| CodecError::Malformed { event_type: event_type.to_owned(), detail };
    if bytes.len() > PAYLOAD_BYTES_MAX {
        return Err(malformed(format!("{} bytes", bytes.len())));
    }
    let (value, read) =
        bincode::serde::decode_from_slice::<T, _>(bytes, bincode_config()).map_err(|e| malformed(e.to_string()))?;
    if read != bytes.len() {
        return Err(malformed(format!("{} trailing bytes", bytes.len() - read)));
    }
    Ok(value)
}

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(1970, 1, 1) {
    Some(d) => d,
    None => NaiveDate::MIN,
};

/// A date as stored: days since 1970-01-01.
pub fn date_to_days(date: NaiveDate) -> i32 {
    // Dates are 1873..=9999, well inside i32 days.
    i32::try_from((date - EPOCH).num_days()).unwrap_or(i32::MAX)
}

/// A stored date back; the range is checked like any input date ([`crate::calendar::parse_date`]: four-digit
/// years, from 1873-01-01), with the same errors, without a round trip through text (this runs
/// for every date of every event read).
pub fn days_to_date(days: i32) -> Result<NaiveDate, ValueError> {
    let date = EPOCH.checked_add_signed(chrono::TimeDelta::days(i64::from(days))).ok_or(ValueError::InvalidDate)?;
    if !(0..=9999).contains(&chrono::Datelike::year(&date)) {
        return Err(ValueError::Format { expected: "YYYY-MM-DD" });
    }
    if date < GREGORIAN_START {
        return Err(ValueError::BeforeGregorian);
    }
    Ok(date)
}

/// Encodes a recipient event body as its current version.
pub fn encode(body: &EventBody) -> Result<Encoded, CodecError> {
    let (event_type, payload) = match body {
        EventBody::RecipientRegistered { recipient, info } => (
            "recipient_registered",
            to_bytes(&v1::RecipientRegistered {
                recipient: recipient.to_string(),
                name: info.name.to_string(),
                kana: info.kana.to_string(),
                birth_date: date_to_days(info.birth_date),
                sex: sex_code(info.sex),
                address: info.address.to_string(),
            })?,
        ),
        EventBody::MyNumberLinked { my_number, approver } => (
            "my_number_linked",
            to_bytes(&v1::MyNumberSet { my_number: my_number.reveal(), approver: approver.to_string() })?,
        ),
        EventBody::MyNumberCorrected { my_number, approver } => (
            "my_number_corrected",
            to_bytes(&v1::MyNumberSet { my_number: my_number.reveal(), approver: approver.to_string() })?,
        ),
        EventBody::PersonalDetailsChanged { name, kana, address } => (
            "personal_details_changed",
            to_bytes(&v1::PersonalDetailsChanged {
                name: name.as_ref().map(ToString::to_string),
                kana: kana.as_ref().map(ToString::to_string),
                address: address.as_ref().map(ToString::to_string),
            })?,
        ),
        EventBody::MovedIn { address, from } => {
            ("moved_in", to_bytes(&v1::MovedIn { address: address.to_string(), from: from.to_string() })?)
        }
        EventBody::MovedOut { to } => ("moved_out", to_bytes(&v1::MovedOut { to: to.to_string() })?),
        EventBody::Died => ("died", to_bytes(&v1::Empty {})?),
        EventBody::DvSupportStarted => ("dv_support_started", to_bytes(&v1::Empty {})?),
        EventBody::DvSupportEnded => ("dv_support_ended", to_bytes(&v1::Empty {})?),
        EventBody::CertificateGranted { certificate, program, span, period, terms } => (
            "certificate_granted",
            to_bytes(&v3::CertificateGranted {
                certificate: certificate.to_string(),
                program: program.to_string(),
                span: span.0,
                valid_from: date_to_days(period.from()),
                valid_to: period.to().map(date_to_days),
                terms: terms_v3(terms),
            })?,
        ),
        EventBody::CertificateRenewed { certificate, span, period, changes } => (
            "certificate_renewed",
            to_bytes(&v3::CertificateRenewed {
                certificate: certificate.to_string(),
                span: span.0,
                valid_from: date_to_days(period.from()),
                valid_to: period.to().map(date_to_days),
                changes: changes_v3(changes),
            })?,
        ),
        EventBody::CertificateChanged { certificate, span, changes } => (
            "certificate_changed",
            to_bytes(&v3::CertificateChanged {
                certificate: certificate.to_string(),
                span: span.0,
                changes: changes_v3(changes),
            })?,
        ),
        EventBody::CertificateEnded { certificate, reason } => (
            "certificate_ended",
            to_bytes(&v1::CertificateEnded { certificate: certificate.to_string(), reason: loss_code(*reason) })?,
        ),
        EventBody::CertificateReissued { certificate, reason } => (
            "certificate_reissued",
            to_bytes(&v1::CertificateReissued { certificate: certificate.to_string(), reason: reissue_code(*reason) })?,
        ),
        EventBody::CommandRescinded { target, reason } => (
            "command_rescinded",
            to_bytes(&v1::CommandRescinded { target: target.to_string(), reason: reason.to_string() })?,
        ),
    };
    let schema_version = current_version(event_type);
    Ok(Encoded { event_type, schema_version, payload })
}

/// The version `encode` writes for an event type.
pub fn current_version(event_type: &str) -> u16 {
    CURRENT_VERSIONS.iter().find(|(t, _)| *t == event_type).map_or(1, |(_, v)| *v)
}

/// Encodes the municipality configuration (TOML text) as a `configuration_set` event.
pub fn encode_configuration(toml: &str) -> Result<Encoded, CodecError> {
    Ok(Encoded {
        event_type: CONFIGURATION_SET,
        schema_version: 1,
        payload: to_bytes(&v1::ConfigurationSet { toml: toml.to_owned() })?,
    })
}

/// Decodes a `configuration_set` payload to the configuration text.
pub fn decode_configuration(schema_version: u16, payload: &[u8]) -> Result<String, CodecError> {
    match schema_version {
        1 => Ok(from_bytes::<v1::ConfigurationSet>(CONFIGURATION_SET, payload)?.toml),
        _ => Err(CodecError::UnknownType { event_type: CONFIGURATION_SET.to_owned(), schema_version }),
    }
}

/// What any stored payload decodes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// An event of a recipient stream.
    Recipient(EventBody),
    /// A municipality configuration.
    Configuration(String),
    /// A PMH export batch.
    PmhBatch(PmhBatch),
    /// PMH's results for a batch.
    PmhResults(PmhResults),
    /// A user account event.
    User(UserEvent),
    /// An access record.
    Access(AccessRecord),
    /// A fee schedule entry or a closed billing month.
    Billing(BillingEvent),
}

/// Decodes any stored payload (every type the ledger writes), for verification and audit.
pub fn decode_any(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<Decoded, CodecError> {
    if event_type == CONFIGURATION_SET {
        decode_configuration(schema_version, payload).map(Decoded::Configuration)
    } else if event_type == PMH_BATCH_EXPORTED {
        decode_pmh_batch(schema_version, payload).map(Decoded::PmhBatch)
    } else if event_type == PMH_RESULTS_RECORDED {
        decode_pmh_results(schema_version, payload).map(Decoded::PmhResults)
    } else if matches!(event_type, USER_ADDED | USER_PASSWORD_SET | USER_DISABLED) {
        decode_user(event_type, schema_version, payload).map(Decoded::User)
    } else if matches!(event_type, FEE_SCHEDULE_SET | BILLING_MONTH_CLOSED) {
        decode_billing(event_type, schema_version, payload).map(Decoded::Billing)
    } else if event_type == ACCESS_RECORDED {
        decode_access(schema_version, payload).map(Decoded::Access)
    } else {
        decode(event_type, schema_version, payload).map(Decoded::Recipient)
    }
}

/// Decodes a recipient event payload of any released version into today's event body.
pub fn decode(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<EventBody, CodecError> {
    let d = Decoder { event_type };
    match (event_type, schema_version) {
        ("recipient_registered", 1) => {
            let v: v1::RecipientRegistered = from_bytes(event_type, payload)?;
            Ok(EventBody::RecipientRegistered {
                recipient: d.field("recipient", RecipientRef::parse(&v.recipient))?,
                info: BasicInfo {
                    name: d.field("name", PersonName::parse(&v.name))?,
                    kana: d.field("kana", Kana::parse(&v.kana))?,
                    birth_date: d.field("birth_date", days_to_date(v.birth_date))?,
                    sex: d.field("sex", sex_from_code(v.sex))?,
                    address: d.field("address", Address::parse(&v.address))?,
                },
            })
        }
        ("my_number_linked" | "my_number_corrected", 1) => {
            let v: v1::MyNumberSet = from_bytes(event_type, payload)?;
            let my_number = d.field("my_number", MyNumber::parse(&v.my_number))?;
            let approver = d.field("approver", UserId::parse(&v.approver))?;
            Ok(if event_type == "my_number_linked" {
                EventBody::MyNumberLinked { my_number, approver }
            } else {
                EventBody::MyNumberCorrected { my_number, approver }
            })
        }
        ("personal_details_changed", 1) => {
            let v: v1::PersonalDetailsChanged = from_bytes(event_type, payload)?;
            Ok(EventBody::PersonalDetailsChanged {
                name: d.opt("name", v.name.as_deref(), PersonName::parse)?,
                kana: d.opt("kana", v.kana.as_deref(), Kana::parse)?,
                address: d.opt("address", v.address.as_deref(), Address::parse)?,
            })
        }
        ("moved_in", 1) => {
            let v: v1::MovedIn = from_bytes(event_type, payload)?;
            Ok(EventBody::MovedIn {
                address: d.field("address", Address::parse(&v.address))?,
                from: d.field("from", PlaceName::parse(&v.from))?,
            })
        }
        ("moved_out", 1) => {
            let v: v1::MovedOut = from_bytes(event_type, payload)?;
            Ok(EventBody::MovedOut { to: d.field("to", PlaceName::parse(&v.to))? })
        }
        ("died", 1) => from_bytes::<v1::Empty>(event_type, payload).map(|_| EventBody::Died),
        ("dv_support_started", 1) => from_bytes::<v1::Empty>(event_type, payload).map(|_| EventBody::DvSupportStarted),
        ("dv_support_ended", 1) => from_bytes::<v1::Empty>(event_type, payload).map(|_| EventBody::DvSupportEnded),
        ("certificate_granted", 1) => {
            let v = upcast_granted(from_bytes::<v1::CertificateGranted>(event_type, payload)?);
            d.granted(d.upcast_granted(v)?)
        }
        ("certificate_granted", 2) => d.granted(d.upcast_granted(from_bytes(event_type, payload)?)?),
        ("certificate_granted", 3) => d.granted(from_bytes(event_type, payload)?),
        ("certificate_renewed", 1) => {
            let v = upcast_renewed(from_bytes::<v1::CertificateRenewed>(event_type, payload)?);
            d.renewed(d.upcast_renewed(v)?)
        }
        ("certificate_renewed", 2) => d.renewed(d.upcast_renewed(from_bytes(event_type, payload)?)?),
        ("certificate_renewed", 3) => d.renewed(from_bytes(event_type, payload)?),
        ("certificate_changed", 1) => {
            let v = upcast_changed(from_bytes::<v1::CertificateChanged>(event_type, payload)?);
            d.changed(d.upcast_changed(v)?)
        }
        ("certificate_changed", 2) => d.changed(d.upcast_changed(from_bytes(event_type, payload)?)?),
        ("certificate_changed", 3) => d.changed(from_bytes(event_type, payload)?),
        ("certificate_ended", 1) => {
            let v: v1::CertificateEnded = from_bytes(event_type, payload)?;
            Ok(EventBody::CertificateEnded {
                certificate: d.field("certificate", CertificateRef::parse(&v.certificate))?,
                reason: d.field("reason", loss_from_code(v.reason))?,
            })
        }
        ("certificate_reissued", 1) => {
            let v: v1::CertificateReissued = from_bytes(event_type, payload)?;
            Ok(EventBody::CertificateReissued {
                certificate: d.field("certificate", CertificateRef::parse(&v.certificate))?,
                reason: d.field("reason", reissue_from_code(v.reason))?,
            })
        }
        ("command_rescinded", 1) => {
            let v: v1::CommandRescinded = from_bytes(event_type, payload)?;
            Ok(EventBody::CommandRescinded {
                target: d.field("target", CommandId::parse(&v.target))?,
                reason: d.field("reason", Note::parse(&v.reason))?,
            })
        }
        _ => Err(CodecError::UnknownType { event_type: event_type.to_owned(), schema_version }),
    }
}

/// Every event type with its current schema version, in a fixed order.
pub const CURRENT_VERSIONS: [(&str, u16); 24] = [
    ("recipient_registered", 1),
    ("my_number_linked", 1),
    ("my_number_corrected", 1),
    ("personal_details_changed", 1),
    ("moved_in", 1),
    ("moved_out", 1),
    ("died", 1),
    ("dv_support_started", 1),
    ("dv_support_ended", 1),
    ("certificate_granted", 3),
    ("certificate_renewed", 3),
    ("certificate_changed", 3),
    ("certificate_ended", 1),
    ("certificate_reissued", 1),
    ("command_rescinded", 1),
    (CONFIGURATION_SET, 1),
    (PMH_BATCH_EXPORTED, 1),
    (PMH_RESULTS_RECORDED, 1),
    (USER_ADDED, 1),
    (USER_PASSWORD_SET, 1),
    (USER_DISABLED, 1),
    (ACCESS_RECORDED, 2),
    (FEE_SCHEDULE_SET, 1),
    (BILLING_MONTH_CLOSED, 1),
];

/// Turns decoded primitives into domain values, naming the field on failure.
struct Decoder<'a> {
    event_type: &'a str,
}

impl Decoder<'_> {
    fn field<T>(&self, field: &'static str, value: Result<T, ValueError>) -> Result<T, CodecError> {
        value.map_err(|error| CodecError::Invalid { event_type: self.event_type.to_owned(), field, error })
    }

    fn opt<T>(
        &self,
        field: &'static str,
        value: Option<&str>,
        parse: impl Fn(&str) -> Result<T, ValueError>,
    ) -> Result<Option<T>, CodecError> {
        value.map(|v| self.field(field, parse(v))).transpose()
    }

    fn period(&self, from: i32, to: Option<i32>) -> Result<Period, CodecError> {
        let from = self.field("valid_from", days_to_date(from))?;
        let to = to.map(|t| self.field("valid_to", days_to_date(t))).transpose()?;
        self.field("valid_to", Period::new(from, to))
    }

    fn cap(&self, cap: &v3::CopayCap) -> Result<CopayCap, CodecError> {
        let invalid = |field: &'static str, error: ValueError| CodecError::Invalid {
            event_type: self.event_type.to_owned(),
            field,
            error,
        };
        let kind = self.field("copay_cap.kind", kind_from_code(cap.kind))?;
        let definition = self.opt("copay_cap.definition", cap.definition.as_deref(), CapDefinition::parse)?;
        let mut rate = PerUnit::default();
        let mut amount = PerUnit::default();
        for (unit, r, yen) in [
            (CapUnit::Day, cap.rate_day, cap.yen_day),
            (CapUnit::Month, cap.rate_month, cap.yen_month),
            (CapUnit::Visit, cap.rate_visit, cap.yen_visit),
        ] {
            rate.set(unit, r.map(|r| self.field("copay_cap.rate", Percent::new(i64::from(r)))).transpose()?);
            if yen.is_some_and(|y| y < 0) {
                return Err(invalid("copay_cap.yen", ValueError::Negative));
            }
            amount.set(unit, yen.map(crate::money::Yen::new));
        }
        CopayCap::new(kind, definition, rate, amount).map_err(|e| {
            invalid(
                "copay_cap",
                match e {
                    CapError::FreeWithValues => ValueError::CapFreeWithValues,
                    CapError::Empty => ValueError::CapEmpty,
                    CapError::Negative => ValueError::Negative,
                },
            )
        })
    }

    /// A v1/v2 cap `{yen, unit, setting}` as v3, by [`CopayCap::from_old_form`]'s mapping.
    fn upcast_cap(&self, cap: v1::CopayCap) -> Result<v3::CopayCap, CodecError> {
        let unit = self.field("copay_cap.unit", unit_from_code(cap.unit))?;
        let setting = self.field("copay_cap.setting", setting_from_code(cap.setting))?;
        if cap.yen < 0 {
            return Err(CodecError::Invalid {
                event_type: self.event_type.to_owned(),
                field: "copay_cap.yen",
                error: ValueError::Negative,
            });
        }
        let old = CopayCap::from_old_form(crate::money::Yen::new(cap.yen), unit, setting).map_err(|_| {
            CodecError::Invalid {
                event_type: self.event_type.to_owned(),
                field: "copay_cap.yen",
                error: ValueError::Negative,
            }
        })?;
        Ok(cap_v3(&old))
    }

    fn upcast_terms(&self, t: v2::Terms) -> Result<v3::Terms, CodecError> {
        Ok(v3::Terms {
            payer_number: t.payer_number,
            recipient_number: t.recipient_number,
            copay_cap: t.copay_cap.map(|c| self.upcast_cap(c)).transpose()?,
            income_segment: t.income_segment,
            designated_institutions: t.designated_institutions,
            disease: t.disease,
            always_reimbursement: t.always_reimbursement,
        })
    }

    fn upcast_changes(&self, c: v2::TermsChange) -> Result<v3::TermsChange, CodecError> {
        Ok(v3::TermsChange {
            payer_number: c.payer_number,
            recipient_number: c.recipient_number,
            copay_cap: c.copay_cap.map(|cap| cap.map(|cap| self.upcast_cap(cap)).transpose()).transpose()?,
            income_segment: c.income_segment,
            designated_institutions: c.designated_institutions,
            disease: c.disease,
            always_reimbursement: c.always_reimbursement,
        })
    }

    fn upcast_granted(&self, v: v2::CertificateGranted) -> Result<v3::CertificateGranted, CodecError> {
        Ok(v3::CertificateGranted {
            certificate: v.certificate,
            program: v.program,
            span: v.span,
            valid_from: v.valid_from,
            valid_to: v.valid_to,
            terms: self.upcast_terms(v.terms)?,
        })
    }

    fn upcast_renewed(&self, v: v2::CertificateRenewed) -> Result<v3::CertificateRenewed, CodecError> {
        Ok(v3::CertificateRenewed {
            certificate: v.certificate,
            span: v.span,
            valid_from: v.valid_from,
            valid_to: v.valid_to,
            changes: self.upcast_changes(v.changes)?,
        })
    }

    fn upcast_changed(&self, v: v2::CertificateChanged) -> Result<v3::CertificateChanged, CodecError> {
        Ok(v3::CertificateChanged {
            certificate: v.certificate,
            span: v.span,
            changes: self.upcast_changes(v.changes)?,
        })
    }

    fn institutions(&self, list: &[String]) -> Result<Vec<InstitutionName>, CodecError> {
        list.iter().map(|s| self.field("designated_institutions", InstitutionName::parse(s))).collect()
    }

    fn granted(&self, v: v3::CertificateGranted) -> Result<EventBody, CodecError> {
        Ok(EventBody::CertificateGranted {
            certificate: self.field("certificate", CertificateRef::parse(&v.certificate))?,
            program: self.field("program", ProgramKey::parse(&v.program))?,
            span: SpanNo(v.span),
            period: self.period(v.valid_from, v.valid_to)?,
            terms: self.terms(&v.terms)?,
        })
    }

    fn renewed(&self, v: v3::CertificateRenewed) -> Result<EventBody, CodecError> {
        Ok(EventBody::CertificateRenewed {
            certificate: self.field("certificate", CertificateRef::parse(&v.certificate))?,
            span: SpanNo(v.span),
            period: self.period(v.valid_from, v.valid_to)?,
            changes: self.changes(&v.changes)?,
        })
    }

    fn changed(&self, v: v3::CertificateChanged) -> Result<EventBody, CodecError> {
        Ok(EventBody::CertificateChanged {
            certificate: self.field("certificate", CertificateRef::parse(&v.certificate))?,
            span: SpanNo(v.span),
            changes: self.changes(&v.changes)?,
        })
    }

    fn terms(&self, t: &v3::Terms) -> Result<Terms, CodecError> {
        Ok(Terms {
            payer_number: self.opt("payer_number", t.payer_number.as_deref(), PayerNumber::parse)?,
            recipient_number: self
                .field("recipient_number", RecipientNumber::parse(&t.recipient_number, RecipientNumberRule::Free))?,
            copay_cap: t.copay_cap.as_ref().map(|c| self.cap(c)).transpose()?,
            income_segment: self.opt("income_segment", t.income_segment.as_deref(), IncomeSegment::parse)?,
            designated_institutions: self.institutions(&t.designated_institutions)?,
            disease: self.opt("disease", t.disease.as_deref(), DiseaseName::parse)?,
            always_reimbursement: t.always_reimbursement,
        })
    }

    fn changes(&self, c: &v3::TermsChange) -> Result<TermsChange, CodecError> {
        Ok(TermsChange {
            payer_number: c
                .payer_number
                .as_ref()
                .map(|p| self.opt("payer_number", p.as_deref(), PayerNumber::parse))
                .transpose()?,
            recipient_number: self.opt("recipient_number", c.recipient_number.as_deref(), |s| {
                RecipientNumber::parse(s, RecipientNumberRule::Free)
            })?,
            copay_cap: c.copay_cap.as_ref().map(|cap| cap.as_ref().map(|cap| self.cap(cap)).transpose()).transpose()?,
            income_segment: c
                .income_segment
                .as_ref()
                .map(|s| self.opt("income_segment", s.as_deref(), IncomeSegment::parse))
                .transpose()?,
            designated_institutions: c.designated_institutions.as_ref().map(|l| self.institutions(l)).transpose()?,
            disease: c.disease.as_ref().map(|s| self.opt("disease", s.as_deref(), DiseaseName::parse)).transpose()?,
            always_reimbursement: c.always_reimbursement,
        })
    }
}

fn cap_v3(cap: &CopayCap) -> v3::CopayCap {
    let rate = |u| cap.rate().get(u).map(Percent::get);
    let yen = |u| cap.amount().get(u).map(|y: crate::money::Yen| y.get());
    v3::CopayCap {
        kind: match cap.kind() {
            CapKind::Limit => 1,
            CapKind::Fixed => 2,
            CapKind::Free => 3,
        },
        definition: cap.definition().map(ToString::to_string),
        rate_day: rate(CapUnit::Day),
        rate_month: rate(CapUnit::Month),
        rate_visit: rate(CapUnit::Visit),
        yen_day: yen(CapUnit::Day),
        yen_month: yen(CapUnit::Month),
        yen_visit: yen(CapUnit::Visit),
    }
}

fn kind_from_code(code: u8) -> Result<CapKind, ValueError> {
    match code {
        1 => Ok(CapKind::Limit),
        2 => Ok(CapKind::Fixed),
        3 => Ok(CapKind::Free),
        _ => Err(unknown("1, 2, 3")),
    }
}

// ---- Upcasters: v1 payloads read as v2 -------------------------------------------------------

fn upcast_terms(t: v1::Terms) -> v2::Terms {
    v2::Terms {
        payer_number: Some(t.payer_number),
        recipient_number: t.recipient_number,
        copay_cap: t.copay_cap,
        income_segment: t.income_segment,
        designated_institutions: t.designated_institutions,
        disease: t.disease,
        always_reimbursement: t.always_reimbursement,
    }
}

fn upcast_changes(c: v1::TermsChange) -> v2::TermsChange {
    v2::TermsChange {
        // In v1 a payer number could be set but never cleared.
        payer_number: c.payer_number.map(Some),
        recipient_number: c.recipient_number,
        copay_cap: c.copay_cap,
        income_segment: c.income_segment,
        designated_institutions: c.designated_institutions,
        disease: c.disease,
        always_reimbursement: c.always_reimbursement,
    }
}

fn upcast_granted(v: v1::CertificateGranted) -> v2::CertificateGranted {
    v2::CertificateGranted {
        certificate: v.certificate,
        program: v.program,
        span: v.span,
        valid_from: v.valid_from,
        valid_to: v.valid_to,
        terms: upcast_terms(v.terms),
    }
}

fn upcast_renewed(v: v1::CertificateRenewed) -> v2::CertificateRenewed {
    v2::CertificateRenewed {
        certificate: v.certificate,
        span: v.span,
        valid_from: v.valid_from,
        valid_to: v.valid_to,
        changes: upcast_changes(v.changes),
    }
}

fn upcast_changed(v: v1::CertificateChanged) -> v2::CertificateChanged {
    v2::CertificateChanged { certificate: v.certificate, span: v.span, changes: upcast_changes(v.changes) }
}

fn terms_v3(t: &Terms) -> v3::Terms {
    v3::Terms {
        payer_number: t.payer_number.map(|p| p.as_string()),
        recipient_number: t.recipient_number.to_string(),
        copay_cap: t.copay_cap.as_ref().map(cap_v3),
        income_segment: t.income_segment.as_ref().map(ToString::to_string),
        designated_institutions: t.designated_institutions.iter().map(ToString::to_string).collect(),
        disease: t.disease.as_ref().map(ToString::to_string),
        always_reimbursement: t.always_reimbursement,
    }
}

fn changes_v3(c: &TermsChange) -> v3::TermsChange {
    v3::TermsChange {
        payer_number: c.payer_number.map(|p| p.map(|p| p.as_string())),
        recipient_number: c.recipient_number.as_ref().map(ToString::to_string),
        copay_cap: c.copay_cap.as_ref().map(|cap| cap.as_ref().map(cap_v3)),
        income_segment: c.income_segment.as_ref().map(|s| s.as_ref().map(ToString::to_string)),
        designated_institutions: c
            .designated_institutions
            .as_ref()
            .map(|l| l.iter().map(ToString::to_string).collect()),
        disease: c.disease.as_ref().map(|s| s.as_ref().map(ToString::to_string)),
        always_reimbursement: c.always_reimbursement,
    }
}

fn sex_code(sex: Sex) -> u8 {
    match sex {
        Sex::Male => 1,
        Sex::Female => 2,
        Sex::NotApplicable => 9,
    }
}

fn sex_from_code(code: u8) -> Result<Sex, ValueError> {
    Sex::parse(&code.to_string())
}

fn unknown(allowed: &'static str) -> ValueError {
    ValueError::UnknownCode { allowed }
}

fn unit_from_code(code: u8) -> Result<CapUnit, ValueError> {
    match code {
        1 => Ok(CapUnit::Month),
        2 => Ok(CapUnit::Day),
        3 => Ok(CapUnit::Visit),
        _ => Err(unknown("1, 2, 3")),
    }
}

fn setting_from_code(code: u8) -> Result<OldCapSetting, ValueError> {
    match code {
        1 => Ok(OldCapSetting::Outpatient),
        2 => Ok(OldCapSetting::Inpatient),
        3 => Ok(OldCapSetting::Combined),
        _ => Err(unknown("1, 2, 3")),
    }
}

fn loss_code(reason: LossReason) -> u8 {
    match reason {
        LossReason::AgeLimit => 1,
        LossReason::Income => 2,
        LossReason::Withdrawal => 3,
        LossReason::Other => 4,
    }
}

fn loss_from_code(code: u8) -> Result<LossReason, ValueError> {
    match code {
        1 => Ok(LossReason::AgeLimit),
        2 => Ok(LossReason::Income),
        3 => Ok(LossReason::Withdrawal),
        4 => Ok(LossReason::Other),
        _ => Err(unknown("1, 2, 3, 4")),
    }
}

fn reissue_code(reason: ReissueReason) -> u8 {
    match reason {
        ReissueReason::Lost => 1,
        ReissueReason::Damaged => 2,
        ReissueReason::Other => 3,
    }
}

fn reissue_from_code(code: u8) -> Result<ReissueReason, ValueError> {
    match code {
        1 => Ok(ReissueReason::Lost),
        2 => Ok(ReissueReason::Damaged),
        3 => Ok(ReissueReason::Other),
        _ => Err(unknown("1, 2, 3")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_are_range_checked() {
        for d in ["1873-01-01", "1970-01-01", "2026-04-01", "9999-12-31"] {
            let date: NaiveDate = d.parse().unwrap();
            assert_eq!(days_to_date(date_to_days(date)).unwrap(), date);
        }
        assert_eq!(date_to_days("1970-01-02".parse().unwrap()), 1);
        assert_eq!(days_to_date(-40_000).unwrap_err(), ValueError::BeforeGregorian);
        // The same answers as reading the date back as input text, across and beyond the range.
        let through_text = |days: i32| {
            let date =
                EPOCH.checked_add_signed(chrono::TimeDelta::days(i64::from(days))).ok_or(ValueError::InvalidDate)?;
            crate::calendar::parse_date(&date.format("%Y-%m-%d").to_string())
        };
        let edges = [date_to_days(GREGORIAN_START), date_to_days("9999-12-31".parse().unwrap())];
        let mut days: Vec<i32> = edges.iter().flat_map(|e| (e - 3)..=(e + 3)).collect();
        days.extend((-800_000..=3_000_000).step_by(997));
        days.extend([i32::MIN, i32::MAX, -719_529, -719_528]);
        for d in days {
            assert_eq!(days_to_date(d), through_text(d), "{d}");
        }
    }

    #[test]
    fn decoding_refuses_trailing_bytes_and_oversize() {
        let mut bytes = encode(&EventBody::Died).unwrap().payload;
        assert!(bytes.is_empty());
        bytes.push(0);
        assert!(matches!(decode("died", 1, &bytes), Err(CodecError::Malformed { .. })));
        let huge = vec![0u8; PAYLOAD_BYTES_MAX + 1];
        assert!(matches!(decode("moved_out", 1, &huge), Err(CodecError::Malformed { .. })));
        // A length prefix claiming more than the limit is refused before allocating.
        let claim = [0xFC, 0xFF, 0xFF, 0xFF, 0x7F];
        assert!(matches!(decode("moved_out", 1, &claim), Err(CodecError::Malformed { .. })));
    }

    #[test]
    fn pmh_results_too_large_for_one_payload_split_in_file_order_and_decode_back() {
        let refusal = |i: u64| PmhRefusal {
            recipient: i,
            span: 1,
            code: PmhErrorCode::parse(&format!("E{i}")).unwrap(),
            message: PmhMessage::parse(&format!("{i}{}", "あ".repeat(190))).unwrap(),
        };
        let results = PmhResults {
            batch: 2,
            batch_position: 40,
            batch_day: "2026-11-20".parse().unwrap(),
            full: true,
            replacing: true,
            program: ProgramKey::parse("kodomo").unwrap(),
            file_sha256: "ab".repeat(32),
            rows: 700,
            unmatched: 3,
            refused: (1..=700).map(refusal).collect(),
        };
        assert!(matches!(encode_pmh_results(&results), Err(CodecError::TooLarge)), "too large for one payload");
        let parts = split_pmh_results(&results).unwrap();
        assert!(parts.len() >= 5, "{}", parts.len());
        let mut back = Vec::new();
        for (i, e) in parts.iter().enumerate() {
            assert!(e.payload.len() <= PAYLOAD_BYTES_MAX);
            let d = decode_pmh_results(e.schema_version, &e.payload).unwrap();
            assert_eq!((d.rows, d.unmatched), if i == 0 { (700, 3) } else { (0, 0) });
            assert_eq!((d.batch, d.batch_position, d.replacing), (2, 40, true));
            back.extend(d.refused);
        }
        assert_eq!(back, results.refused);
        // Repeated texts are stored once: many refusals of one error fit one payload.
        let same = PmhResults {
            refused: (1..=3000)
                .map(|i| PmhRefusal { code: PmhErrorCode::parse("E1").unwrap(), ..refusal(i) })
                .map(|r| PmhRefusal { message: PmhMessage::parse("個人番号が一致しません").unwrap(), ..r })
                .collect(),
            ..results
        };
        assert_eq!(split_pmh_results(&same).unwrap().len(), 1);
    }

    #[test]
    fn unknown_types_and_versions_are_named() {
        assert_eq!(
            decode("died", 2, &[]).unwrap_err(),
            CodecError::UnknownType { event_type: "died".into(), schema_version: 2 }
        );
        assert!(matches!(decode("promoted", 1, &[]), Err(CodecError::UnknownType { .. })));
    }

    #[test]
    fn stored_values_are_reparsed() {
        let bad = to_bytes(&v1::MyNumberSet { my_number: "123456789012".into(), approver: "u".into() }).unwrap();
        assert_eq!(
            decode("my_number_linked", 1, &bad).unwrap_err(),
            CodecError::Invalid {
                event_type: "my_number_linked".into(),
                field: "my_number",
                error: ValueError::MyNumberCheckDigit
            }
        );
        // The error never carries the number.
        assert!(!decode("my_number_linked", 1, &bad).unwrap_err().to_string().contains("1234"));
    }

    fn changed_with(cap: Option<CopayCap>) -> EventBody {
        EventBody::CertificateChanged {
            certificate: CertificateRef::parse("c1").unwrap(),
            span: SpanNo(2),
            changes: TermsChange { copay_cap: Some(cap), ..TermsChange::default() },
        }
    }

    #[test]
    fn every_kind_of_cap_round_trips_through_v3() {
        let mut rate = PerUnit::default();
        rate.set(CapUnit::Month, Some(Percent::new(20).unwrap()));
        rate.set(CapUnit::Day, Some(Percent::new(100).unwrap()));
        let mut amount = PerUnit::default();
        amount.set(CapUnit::Visit, Some(crate::money::Yen::new(200)));
        amount.set(CapUnit::Month, Some(crate::money::Yen::new(0)));
        let definition = Some(CapDefinition::parse("1回200円（月4回まで）").unwrap());
        let caps = [
            CopayCap::new(CapKind::Limit, definition.clone(), rate, amount).unwrap(),
            CopayCap::new(CapKind::Fixed, None, PerUnit::default(), amount).unwrap(),
            CopayCap::new(CapKind::Free, definition, PerUnit::default(), PerUnit::default()).unwrap(),
        ];
        for cap in caps.into_iter().map(Some).chain([None]) {
            let body = changed_with(cap);
            let encoded = encode(&body).unwrap();
            assert_eq!(encoded.schema_version, 3);
            assert_eq!(decode(encoded.event_type, 3, &encoded.payload).unwrap(), body);
        }
    }

    #[test]
    fn a_stored_v3_cap_that_breaks_the_rules_is_an_error_not_a_cap() {
        let cap = |kind, rate_month, yen_month| v3::CopayCap {
            kind,
            definition: None,
            rate_day: None,
            rate_month,
            rate_visit: None,
            yen_day: None,
            yen_month,
            yen_visit: None,
        };
        for (bad, field, error) in [
            (cap(3, None, Some(10)), "copay_cap", ValueError::CapFreeWithValues),
            (cap(1, None, None), "copay_cap", ValueError::CapEmpty),
            (cap(4, None, Some(10)), "copay_cap.kind", unknown("1, 2, 3")),
            (cap(1, Some(101), None), "copay_cap.rate", ValueError::TooLarge { max: 100 }),
            (cap(1, None, Some(-1)), "copay_cap.yen", ValueError::Negative),
        ] {
            let payload = to_bytes(&v3::CertificateChanged {
                certificate: "c1".into(),
                span: 2,
                changes: v3::TermsChange {
                    payer_number: None,
                    recipient_number: None,
                    copay_cap: Some(Some(bad)),
                    income_segment: None,
                    designated_institutions: None,
                    disease: None,
                    always_reimbursement: None,
                },
            })
            .unwrap();
            assert_eq!(
                decode("certificate_changed", 3, &payload).unwrap_err(),
                CodecError::Invalid { event_type: "certificate_changed".into(), field, error }
            );
        }
    }

    #[test]
    fn an_old_cap_reads_as_limit_with_its_setting_as_definition() {
        let old = to_bytes(&v2::CertificateChanged {
            certificate: "c1".into(),
            span: 2,
            changes: v2::TermsChange {
                payer_number: None,
                recipient_number: None,
                copay_cap: Some(Some(v1::CopayCap { yen: 8000, unit: 3, setting: 2 })),
                income_segment: None,
                designated_institutions: None,
                disease: None,
                always_reimbursement: None,
            },
        })
        .unwrap();
        let EventBody::CertificateChanged { changes, .. } = decode("certificate_changed", 2, &old).unwrap() else {
            panic!()
        };
        let cap = changes.copay_cap.flatten().unwrap();
        assert_eq!(cap.kind(), CapKind::Limit);
        assert_eq!(cap.amount().get(CapUnit::Visit), Some(crate::money::Yen::new(8000)));
        assert!(cap.rate().is_empty());
        assert_eq!(cap.definition().map(|d| d.as_str()), Some("入院"));
        assert_eq!(cap.as_old_form(), Some((crate::money::Yen::new(8000), CapUnit::Visit, OldCapSetting::Inpatient)));
    }

    #[test]
    fn a_v3_cap_with_every_field_set_has_pinned_bytes() {
        // The corpus samples come from old-form caps (no rates, kind 1 only): these bytes pin
        // the order and width of every v3 cap field, so a swap of two fields cannot pass.
        let cap = v3::CopayCap {
            kind: 2,
            definition: Some("定".into()),
            rate_day: Some(1),
            rate_month: Some(2),
            rate_visit: Some(3),
            yen_day: Some(4),
            yen_month: Some(5),
            yen_visit: Some(6),
        };
        let hex: String = to_bytes(&cap).unwrap().iter().map(|b| format!("{b:02x}")).collect();
        // kind 02; Some 01, length 03, 定 e5ae9a; rates Some 01 + u8; amounts Some 01 + zigzag varint.
        assert_eq!(hex, "020103e5ae9a0101010201030108010a010c");
    }
}
