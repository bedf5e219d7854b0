//! Version 2 of some event payloads. RELEASED AND FROZEN (see `v1`).
//!
//! Certificate events: the payer number may be absent (programs that print none), so
//! `Terms.payer_number` is optional and `TermsChange.payer_number` can also clear it. v1
//! payloads are read through `upcast_*` in `codec/mod.rs`: a v1 payer number is always present.
//!
//! `access_recorded`: one record names every recipient a page showed (a search page of 50 rows
//! is one event, not 50). A v1 record's optional recipient becomes a list of zero or one.

use serde::{Deserialize, Serialize};

use super::v1::CopayCap;

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

/// `certificate_granted` v2.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateGranted {
    pub certificate: String,
    pub program: String,
    pub span: u32,
    pub valid_from: i32,
    pub valid_to: Option<i32>,
    pub terms: Terms,
}

/// `certificate_renewed` v2.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRenewed {
    pub certificate: String,
    pub span: u32,
    pub valid_from: i32,
    pub valid_to: Option<i32>,
    pub changes: TermsChange,
}

/// `certificate_changed` v2.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateChanged {
    pub certificate: String,
    pub span: u32,
    pub changes: TermsChange,
}

/// `access_recorded` v2.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecorded {
    pub user: String,
    pub recipients: Vec<u64>,
    pub page: String,
    pub action: u8,
    pub reason: Option<String>,
}
