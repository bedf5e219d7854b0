//! Stored payloads as JSON, for auditors: each payload decoded as exactly the version it was
//! stored in (no upcasting: the audit bundle shows what the log holds), field names as in the
//! frozen types of `v1`, `v2` and `v3`. Dates are days since 1970-01-01 and enumerations their `u8`
//! codes, as stored; the envelope around them carries the readable effective date.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{CodecError, from_bytes, v1, v2, v3};

fn as_json<T: DeserializeOwned + Serialize>(event_type: &str, payload: &[u8]) -> Result<Value, CodecError> {
    let v: T = from_bytes(event_type, payload)?;
    // serde_json's message could quote a value: name only the type.
    serde_json::to_value(&v).map_err(|_| CodecError::Malformed {
        event_type: event_type.to_owned(),
        detail: "not representable as JSON".into(),
    })
}

/// The payload of `(event_type, schema_version)` as JSON.
pub fn payload_json(event_type: &str, schema_version: u16, payload: &[u8]) -> Result<Value, CodecError> {
    match (event_type, schema_version) {
        ("recipient_registered", 1) => as_json::<v1::RecipientRegistered>(event_type, payload),
        ("my_number_linked" | "my_number_corrected", 1) => as_json::<v1::MyNumberSet>(event_type, payload),
        ("personal_details_changed", 1) => as_json::<v1::PersonalDetailsChanged>(event_type, payload),
        ("moved_in", 1) => as_json::<v1::MovedIn>(event_type, payload),
        ("moved_out", 1) => as_json::<v1::MovedOut>(event_type, payload),
        ("died" | "dv_support_started" | "dv_support_ended", 1) => as_json::<v1::Empty>(event_type, payload),
        ("certificate_granted", 1) => as_json::<v1::CertificateGranted>(event_type, payload),
        ("certificate_granted", 2) => as_json::<v2::CertificateGranted>(event_type, payload),
        ("certificate_granted", 3) => as_json::<v3::CertificateGranted>(event_type, payload),
        ("certificate_renewed", 1) => as_json::<v1::CertificateRenewed>(event_type, payload),
        ("certificate_renewed", 2) => as_json::<v2::CertificateRenewed>(event_type, payload),
        ("certificate_renewed", 3) => as_json::<v3::CertificateRenewed>(event_type, payload),
        ("certificate_changed", 1) => as_json::<v1::CertificateChanged>(event_type, payload),
        ("certificate_changed", 2) => as_json::<v2::CertificateChanged>(event_type, payload),
        ("certificate_changed", 3) => as_json::<v3::CertificateChanged>(event_type, payload),
        ("certificate_ended", 1) => as_json::<v1::CertificateEnded>(event_type, payload),
        ("certificate_reissued", 1) => as_json::<v1::CertificateReissued>(event_type, payload),
        ("command_rescinded", 1) => as_json::<v1::CommandRescinded>(event_type, payload),
        ("configuration_set", 1) => as_json::<v1::ConfigurationSet>(event_type, payload),
        ("pmh_batch_exported", 1) => as_json::<v1::PmhBatchExported>(event_type, payload),
        ("pmh_results_recorded", 1) => as_json::<v1::PmhResultsRecorded>(event_type, payload),
        ("user_added", 1) => as_json::<v1::UserAdded>(event_type, payload),
        ("user_password_set", 1) => as_json::<v1::UserPasswordSet>(event_type, payload),
        ("user_disabled", 1) => as_json::<v1::UserDisabled>(event_type, payload),
        ("access_recorded", 1) => as_json::<v1::AccessRecorded>(event_type, payload),
        ("access_recorded", 2) => as_json::<v2::AccessRecorded>(event_type, payload),
        ("fee_schedule_set", 1) => as_json::<v1::FeeScheduleSet>(event_type, payload),
        ("billing_month_closed", 1) => as_json::<v1::BillingMonthClosed>(event_type, payload),
        _ => Err(CodecError::UnknownType { event_type: event_type.to_owned(), schema_version }),
    }
}
