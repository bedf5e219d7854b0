//! Version 3 of the certificate event payloads. RELEASED AND FROZEN (see `v1`).
//!
//! The self-pay cap (自己負担上限額) in the structure of PMH's common layout: 種別, 負担定義,
//! 負担率 (日・月・回) and 金額 (日・月・回), replacing v1/v2's `{yen, unit, setting}`, whose
//! outpatient / inpatient / combined types PMH abolishes. v1 and v2 payloads are read through
//! `Decoder::upcast_granted`, `upcast_renewed` and `upcast_changed` in `codec/mod.rs`: an old cap
//! becomes kind 1 (上限額), its amount in its unit, and its setting's label (外来, 入院,
//! 入院・外来合算) as 負担定義 ([`crate::certificate::CopayCap::from_old_form`]).

use serde::{Deserialize, Serialize};

/// Self-pay cap. `kind`: 1 limit (上限額), 2 fixed (定額), 3 free (負担なし). Rates in whole
/// percent; amounts in yen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopayCap {
    pub kind: u8,
    pub definition: Option<String>,
    pub rate_day: Option<u8>,
    pub rate_month: Option<u8>,
    pub rate_visit: Option<u8>,
    pub yen_day: Option<i64>,
    pub yen_month: Option<i64>,
    pub yen_visit: Option<i64>,
}

/// Certificate terms.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    pub payer_number: Option<String>,
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
    pub payer_number: Option<Option<String>>,
    pub recipient_number: Option<String>,
    pub copay_cap: Option<Option<CopayCap>>,
    pub income_segment: Option<Option<String>>,
    pub designated_institutions: Option<Vec<String>>,
    pub disease: Option<Option<String>>,
    pub always_reimbursement: Option<bool>,
}

/// `certificate_granted` v3.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateGranted {
    pub certificate: String,
    pub program: String,
    pub span: u32,
    pub valid_from: i32,
    pub valid_to: Option<i32>,
    pub terms: Terms,
}

/// `certificate_renewed` v3.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRenewed {
    pub certificate: String,
    pub span: u32,
    pub valid_from: i32,
    pub valid_to: Option<i32>,
    pub changes: TermsChange,
}

/// `certificate_changed` v3.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateChanged {
    pub certificate: String,
    pub span: u32,
    pub changes: TermsChange,
}
