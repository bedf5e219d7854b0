//! 却下理由 (rejections): one variant per business rule, each with a stable code (never renumbered
//! or reused) and a Japanese message for the caseworker.
//!
//! Messages never contain personal data: they name the rule, and where it helps, a date of the
//! ledger's own (a limit, an expected first day).

use std::fmt;

use chrono::{Datelike, NaiveDate};

use crate::error::ValueError;

/// Why `decide` refused a command. Nothing is written for a rejected command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// The command id was used before for a command with different content.
    IdempotencyKeyReused,
    /// The approver is the actor: approval needs a second person.
    ApproverIsActor,
    /// `register_recipient` for a recipient already registered.
    RecipientAlreadyRegistered,
    /// Any other command for a recipient not registered.
    RecipientNotRegistered,
    /// The effective date is after today (for commands that cannot be decided in advance).
    EffectiveDateInFuture,
    /// A grant or renewal decided further ahead than the program allows.
    EffectiveDateTooFarAhead { latest: NaiveDate },
    /// A grant or renewal whose first day is further ahead than the program allows.
    ValidFromTooFarAhead { latest: NaiveDate },
    /// A date before the recipient's birth.
    DateBeforeBirth,
    /// A birth date after today.
    BirthDateInFuture,
    /// The recipient's death is recorded.
    RecipientDeceased,
    /// The recipient has moved out (and not moved in again).
    RecipientNotResident,
    /// `move_in` for a recipient living in the municipality.
    RecipientAlreadyResident,
    /// A move-out before the day residency started, or a move-in before the move-out.
    DateBeforeResidencyChange,
    /// The My Number is linked to another recipient.
    MyNumberInUse,
    /// The recipient's basic items differ from the resident record; the fields are named.
    BasicInfoMismatch { fields: Vec<&'static str> },
    /// The My Number is the one already linked.
    MyNumberUnchanged,
    /// The command would change nothing.
    NoChange,
    /// `start_dv_support` while a measure is in force.
    DvSupportAlreadyActive,
    /// `end_dv_support` without a measure in force.
    DvSupportNotActive,
    /// The program key is not in the configuration.
    UnknownProgram,
    /// The certificate id is already used by this recipient.
    CertificateAlreadyExists,
    /// The recipient has no certificate with this id.
    UnknownCertificate,
    /// The payer number is not one of the program's.
    PayerNumberNotInProgram,
    /// The program requires a payer number and none is given.
    PayerNumberRequired,
    /// The recipient number does not fit the program's rule (format or check digit).
    RecipientNumberInvalid(ValueError),
    /// The last day of the period is before its first day.
    InvalidPeriod,
    /// The person is past the program's age limit on the first day.
    AgeLimitReached { last_day: NaiveDate },
    /// The period ends after the program's age limit.
    BeyondAgeLimit { last_day: NaiveDate },
    /// Another certificate of the same program overlaps the period.
    OverlappingCertificate,
    /// The certificate ended (eligibility lost, moved out, died): a new grant is needed.
    CertificateEnded,
    /// The current span has no last day, so there is nothing to renew after.
    OpenEndedSpan,
    /// A renewal must start the day after the current span (or within the program's gap).
    RenewalNotContiguous { earliest: NaiveDate, latest: NaiveDate },
    /// No span of the certificate contains the effective date.
    NoSpanOnDate,
    /// A reissue for a certificate no longer valid.
    CertificateNotCurrent,
    /// The rescind target is not a command of this recipient.
    UnknownTarget,
    /// The rescind target was already rescinded.
    TargetAlreadyRescinded,
    /// A rescind cannot be rescinded: record the right event again instead.
    CannotRescindRescind,
    /// Later events depend on the target: rescind them first.
    RescindConflictsWithLaterEvents,
    /// The events would break an invariant: a defect, refused rather than written.
    InvariantViolation,
    /// An address the protection of a DV support measure covers is changed only by someone who
    /// may see it (係長, 管理者); refused whatever the value, so the answer reveals nothing.
    ProtectedAddressWithheld,
    /// Undoing a My Number link or correction needs a second person, as the link did.
    ApprovalRequired,
    /// Ending a DV support measure, or rescinding its start or end, is for those who may see
    /// protected addresses (係長, 管理者).
    DvSupportRestricted,
}

fn ymd(d: NaiveDate) -> String {
    format!("{}年{}月{}日", d.year(), d.month(), d.day())
}

impl Rejection {
    /// Every code, for documentation and tests that each rule has a test.
    pub const CODES: [&'static str; 42] = [
        "idempotency_key_reused",
        "approver_is_actor",
        "recipient_already_registered",
        "recipient_not_registered",
        "effective_date_in_future",
        "effective_date_too_far_ahead",
        "valid_from_too_far_ahead",
        "date_before_birth",
        "birth_date_in_future",
        "recipient_deceased",
        "recipient_not_resident",
        "recipient_already_resident",
        "date_before_residency_change",
        "my_number_in_use",
        "basic_info_mismatch",
        "my_number_unchanged",
        "no_change",
        "dv_support_already_active",
        "dv_support_not_active",
        "unknown_program",
        "certificate_already_exists",
        "unknown_certificate",
        "payer_number_not_in_program",
        "payer_number_required",
        "recipient_number_invalid",
        "invalid_period",
        "age_limit_reached",
        "beyond_age_limit",
        "overlapping_certificate",
        "certificate_ended",
        "open_ended_span",
        "renewal_not_contiguous",
        "no_span_on_date",
        "certificate_not_current",
        "unknown_target",
        "target_already_rescinded",
        "cannot_rescind_rescind",
        "rescind_conflicts_with_later_events",
        "invariant_violation",
        "protected_address_withheld",
        "approval_required",
        "dv_support_restricted",
    ];

    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::IdempotencyKeyReused => "idempotency_key_reused",
            Rejection::ApproverIsActor => "approver_is_actor",
            Rejection::RecipientAlreadyRegistered => "recipient_already_registered",
            Rejection::RecipientNotRegistered => "recipient_not_registered",
            Rejection::EffectiveDateInFuture => "effective_date_in_future",
            Rejection::EffectiveDateTooFarAhead { .. } => "effective_date_too_far_ahead",
            Rejection::ValidFromTooFarAhead { .. } => "valid_from_too_far_ahead",
            Rejection::DateBeforeBirth => "date_before_birth",
            Rejection::BirthDateInFuture => "birth_date_in_future",
            Rejection::RecipientDeceased => "recipient_deceased",
            Rejection::RecipientNotResident => "recipient_not_resident",
            Rejection::RecipientAlreadyResident => "recipient_already_resident",
            Rejection::DateBeforeResidencyChange => "date_before_residency_change",
            Rejection::MyNumberInUse => "my_number_in_use",
            Rejection::BasicInfoMismatch { .. } => "basic_info_mismatch",
            Rejection::MyNumberUnchanged => "my_number_unchanged",
            Rejection::NoChange => "no_change",
            Rejection::DvSupportAlreadyActive => "dv_support_already_active",
            Rejection::DvSupportNotActive => "dv_support_not_active",
            Rejection::UnknownProgram => "unknown_program",
            Rejection::CertificateAlreadyExists => "certificate_already_exists",
            Rejection::UnknownCertificate => "unknown_certificate",
            Rejection::PayerNumberNotInProgram => "payer_number_not_in_program",
            Rejection::PayerNumberRequired => "payer_number_required",
            Rejection::RecipientNumberInvalid(_) => "recipient_number_invalid",
            Rejection::InvalidPeriod => "invalid_period",
            Rejection::AgeLimitReached { .. } => "age_limit_reached",
            Rejection::BeyondAgeLimit { .. } => "beyond_age_limit",
            Rejection::OverlappingCertificate => "overlapping_certificate",
            Rejection::CertificateEnded => "certificate_ended",
            Rejection::OpenEndedSpan => "open_ended_span",
            Rejection::RenewalNotContiguous { .. } => "renewal_not_contiguous",
            Rejection::NoSpanOnDate => "no_span_on_date",
            Rejection::CertificateNotCurrent => "certificate_not_current",
            Rejection::UnknownTarget => "unknown_target",
            Rejection::TargetAlreadyRescinded => "target_already_rescinded",
            Rejection::CannotRescindRescind => "cannot_rescind_rescind",
            Rejection::RescindConflictsWithLaterEvents => "rescind_conflicts_with_later_events",
            Rejection::InvariantViolation => "invariant_violation",
            Rejection::ProtectedAddressWithheld => "protected_address_withheld",
            Rejection::ApprovalRequired => "approval_required",
            Rejection::DvSupportRestricted => "dv_support_restricted",
        }
    }

    /// Japanese message for the caseworker.
    pub fn message(&self) -> String {
        match self {
            Rejection::IdempotencyKeyReused => {
                "この処理番号（id）は、内容の異なる別の指示で既に使われています".to_owned()
            }
            Rejection::ApproverIsActor => "承認者は入力者と別の職員でなければなりません".to_owned(),
            Rejection::RecipientAlreadyRegistered => "この受給者は既に登録されています".to_owned(),
            Rejection::RecipientNotRegistered => "受給者が登録されていません".to_owned(),
            Rejection::EffectiveDateInFuture => "発生日に未来の日付は指定できません".to_owned(),
            Rejection::EffectiveDateTooFarAhead { latest } => {
                format!("事前の決定日は{}までです", ymd(*latest))
            }
            Rejection::ValidFromTooFarAhead { latest } => {
                format!("有効期間の始期は{}までの日付を指定してください", ymd(*latest))
            }
            Rejection::DateBeforeBirth => "生年月日より前の日付です".to_owned(),
            Rejection::BirthDateInFuture => "生年月日に未来の日付は指定できません".to_owned(),
            Rejection::RecipientDeceased => "死亡が記録されている受給者です".to_owned(),
            Rejection::RecipientNotResident => {
                "転出済みの受給者です（再び転入した場合は、先に転入を記録してください）".to_owned()
            }
            Rejection::RecipientAlreadyResident => "既に市内に住所がある受給者です".to_owned(),
            Rejection::DateBeforeResidencyChange => "直前の転入・転出日より前の日付です".to_owned(),
            Rejection::MyNumberInUse => "この個人番号は別の受給者に登録されています。番号を確認してください".to_owned(),
            Rejection::BasicInfoMismatch { fields } => {
                format!("住民記録と基本4情報が一致しません（{}）。先に基本情報を確認してください", fields.join("、"))
            }
            Rejection::MyNumberUnchanged => "登録済みの個人番号と同じです".to_owned(),
            Rejection::NoChange => "変更される項目がありません".to_owned(),
            Rejection::DvSupportAlreadyActive => "既に支援措置中です".to_owned(),
            Rejection::DvSupportNotActive => "支援措置中ではありません".to_owned(),
            Rejection::UnknownProgram => "設定されていない制度です".to_owned(),
            Rejection::CertificateAlreadyExists => "この受給者証IDは既に使われています".to_owned(),
            Rejection::UnknownCertificate => "指定された受給者証がありません".to_owned(),
            Rejection::PayerNumberNotInProgram => "この制度の公費負担者番号ではありません".to_owned(),
            Rejection::PayerNumberRequired => "この制度では公費負担者番号が必要です".to_owned(),
            Rejection::RecipientNumberInvalid(e) => format!("公費受給者番号: {}", e.message()),
            Rejection::InvalidPeriod => "有効期間の終期が始期より前です".to_owned(),
            Rejection::AgeLimitReached { last_day } => {
                format!("年齢要件により資格は{}までです", ymd(*last_day))
            }
            Rejection::BeyondAgeLimit { last_day } => {
                format!("有効期間の終期は年齢要件により{}までです", ymd(*last_day))
            }
            Rejection::OverlappingCertificate => "同じ制度の別の受給者証と有効期間が重なります".to_owned(),
            Rejection::CertificateEnded => {
                "資格喪失・転出・死亡により終了した受給者証です（新規の認定が必要です）".to_owned()
            }
            Rejection::OpenEndedSpan => "現在の有効期間に終期がないため更新できません".to_owned(),
            Rejection::RenewalNotContiguous { earliest, latest } if earliest == latest => {
                format!("更新後の有効期間の始期は{}（現在の有効期間の翌日）です", ymd(*earliest))
            }
            Rejection::RenewalNotContiguous { earliest, latest } => {
                format!("更新後の有効期間の始期は{}から{}までの日付です", ymd(*earliest), ymd(*latest))
            }
            Rejection::NoSpanOnDate => "その日に有効な期間がありません".to_owned(),
            Rejection::CertificateNotCurrent => "有効期間が終わった受給者証は再交付できません".to_owned(),
            Rejection::UnknownTarget => "取消の対象となる記録がありません".to_owned(),
            Rejection::TargetAlreadyRescinded => "その記録は既に取り消されています".to_owned(),
            Rejection::CannotRescindRescind => {
                "取消は取り消せません。正しい内容をあらためて記録してください".to_owned()
            }
            Rejection::RescindConflictsWithLaterEvents => {
                "後続の記録がこの記録を前提にしているため取り消せません。先に後続の記録を取り消してください".to_owned()
            }
            Rejection::InvariantViolation => {
                "内部の整合性検査に失敗したため記録しませんでした。システム管理者に連絡してください".to_owned()
            }
            Rejection::ProtectedAddressWithheld => {
                "支援措置の対象となった方の住所・転出先・転入元は、住所を閲覧できる職員（係長・管理者）が記録します"
                    .to_owned()
            }
            Rejection::ApprovalRequired => {
                "個人番号の登録・訂正の取消には、別の職員（係長）の承認が必要です".to_owned()
            }
            Rejection::DvSupportRestricted => {
                "支援措置の終了と、支援措置の記録の取消は、係長または管理者が記録します".to_owned()
            }
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.code())
    }
}

impl std::error::Error for Rejection {}
