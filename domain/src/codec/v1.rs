//! Version 1 of every stored event payload. RELEASED AND FROZEN: never edit a type here. To
//! change an event, add a version-2 type in a new module, decode version 1 through an upcaster,
//! and add the new bytes to the golden corpus (`domain/golden/`).
//!
//! Fields are primitives only (strings, integers, options, lists), so the bytes depend on
//! nothing but these definitions: dates are `i32` days since 1970-01-01, enumerations are `u8`
//! codes written out below, never serde's variant indexes.

use serde::{Deserialize, Serialize};

/// `recipient_registered` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientRegistered {
    pub recipient: String,
    pub name: String,
    pub kana: String,
    pub birth_date: i32,
    /// 1 male, 2 female, 9 not applicable.
    pub sex: u8,
    pub address: String,
}

/// `my_number_linked` v1 and `my_number_corrected` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MyNumberSet {
    pub my_number: String,
    pub approver: String,
}

/// `personal_details_changed` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalDetailsChanged {
    pub name: Option<String>,
    pub kana: Option<String>,
    pub address: Option<String>,
}

/// `moved_in` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedIn {
    pub address: String,
    pub from: String,
}

/// `moved_out` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedOut {
    pub to: String,
}

/// `died`, `dv_support_started`, `dv_support_ended` v1: no fields (zero bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Self-pay cap. `unit`: 1 month, 2 day, 3 visit. `setting`: 1 outpatient, 2 inpatient,
/// 3 combined.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopayCap {
    pub yen: i64,
    pub unit: u8,
    pub setting: u8,
}

/// Certificate terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    pub payer_number: String,
    pub recipient_number: String,
    pub copay_cap: Option<CopayCap>,
    pub income_segment: Option<String>,
    pub designated_institutions: Vec<String>,
    pub disease: Option<String>,
    pub always_reimbursement: bool,
}

/// A change to certificate terms: `None` unchanged; for optional attributes `Some(None)` clears.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TermsChange {
    pub payer_number: Option<String>,
    pub recipient_number: Option<String>,
    pub copay_cap: Option<Option<CopayCap>>,
    pub income_segment: Option<Option<String>>,
    pub designated_institutions: Option<Vec<String>>,
    pub disease: Option<Option<String>>,
    pub always_reimbursement: Option<bool>,
}

/// `certificate_granted` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateGranted {
    pub certificate: String,
    pub program: String,
    pub span: u32,
    pub valid_from: i32,
    pub valid_to: Option<i32>,
    pub terms: Terms,
}

/// `certificate_renewed` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRenewed {
    pub certificate: String,
    pub span: u32,
    pub valid_from: i32,
    pub valid_to: Option<i32>,
    pub changes: TermsChange,
}

/// `certificate_changed` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateChanged {
    pub certificate: String,
    pub span: u32,
    pub changes: TermsChange,
}

/// `certificate_ended` v1. `reason`: 1 age limit, 2 income, 3 withdrawal, 4 other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateEnded {
    pub certificate: String,
    pub reason: u8,
}

/// `certificate_reissued` v1. `reason`: 1 lost, 2 damaged, 3 other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateReissued {
    pub certificate: String,
    pub reason: u8,
}

/// `command_rescinded` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRescinded {
    pub target: String,
    pub reason: String,
}

/// `configuration_set` v1: the municipality configuration file, as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigurationSet {
    pub toml: String,
}

/// `pmh_batch_exported` v1 (system stream `pmh`): a batch of PMH records was produced.
/// `mode`: 1 full, 2 diff-history. `files`: (file name, SHA-256 hex) in write order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmhBatchExported {
    pub program: String,
    pub mode: u8,
    pub from_position: u64,
    pub to_position: u64,
    pub records: u32,
    pub deleted: u32,
    pub held_back: u32,
    pub files: Vec<(String, String)>,
}

/// `pmh_results_recorded` v1 (system stream `pmh-results`): PMH's registration results for one
/// batch. `batch`: the batch's number (its version in the `pmh` stream); `batch_position`: its
/// log position; `batch_day`: its effective date (days since 1970-01-01); `full`: whether it was
/// a full batch; `replacing`: whether it was a full replacement. `texts`: PMH's (code, text) pairs; `refused`: (recipient, span,
/// index into `texts`). `rows`: rows of the results file for this batch; `unmatched`: rows naming
/// a record daicho did not send in it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PmhResultsRecorded {
    pub batch: u64,
    pub batch_position: u64,
    pub batch_day: i32,
    pub full: bool,
    pub replacing: bool,
    pub program: String,
    pub file_sha256: String,
    pub rows: u32,
    pub unmatched: u32,
    pub texts: Vec<(String, String)>,
    pub refused: Vec<(u64, u32, u32)>,
}

/// `user_added` v1 (system stream `users`). `role`: 1 viewer, 2 caseworker, 3 supervisor,
/// 4 admin, 5 auditor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserAdded {
    pub user: String,
    pub name: String,
    pub role: u8,
    pub password_hash: String,
}

/// `user_password_set` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserPasswordSet {
    pub user: String,
    pub password_hash: String,
}

/// `user_disabled` v1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserDisabled {
    pub user: String,
}

/// `access_recorded` v1 (the access log). `action`: 1 viewed, 2 My Number revealed, 3 protected
/// address shown, 4 downloaded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecorded {
    pub user: String,
    pub recipient: Option<u64>,
    pub page: String,
    pub action: u8,
    pub reason: Option<String>,
}

/// `fee_schedule_set` v1 (system stream `billing`): the PMH operating fee per recipient and
/// month, in force from `from_month` (YYYY-MM).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeScheduleSet {
    pub from_month: String,
    pub unit_yen: u32,
}

/// `billing_month_closed` v1 (system stream `billing`): a month's fee statement is final.
/// `policy`: 1 persons-overlapping, 2 persons-month-end, 3 certificates-overlapping.
/// `position`: the log position the statement was computed at (the event follows it).
/// `counts`: units under policies 1, 2, 3. `files`: (file name, SHA-256 hex) in write order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingMonthClosed {
    pub month: String,
    pub policy: u8,
    pub position: u64,
    pub unit_yen: u32,
    pub counts: [u64; 3],
    pub month_yen: u64,
    pub adjustment_yen: i64,
    pub total_yen: i64,
    pub files: Vec<(String, String)>,
}
