//! 事象 (events): what happened, in the past tense, each with its effective date and the command
//! that caused it.
//!
//! These are the domain's event values. Their stored form is a separate, versioned type (the
//! event log's payload), so that changing this enum never silently changes stored bytes.
//!
//! Events are explicit about everything `evolve` needs (concrete periods, allocated span
//! numbers): folding never consults the configuration or the clock, so the same events always
//! give the same state.

use chrono::NaiveDate;

use crate::certificate::{LossReason, ReissueReason, Terms, TermsChange};
use crate::command::BasicInfo;
use crate::config::ProgramKey;
use crate::ids::{CertificateRef, CommandId, RecipientRef, SpanNo, UserId};
use crate::numbers::MyNumber;
use crate::period::Period;
use crate::text::{Address, Kana, Note, PersonName, PlaceName};

/// One event of a recipient's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The command (idempotency key) whose decision produced this event.
    pub command: CommandId,
    /// The day it took effect in the world.
    pub effective: NaiveDate,
    /// What happened.
    pub body: EventBody,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventBody {
    /// 基本情報登録.
    RecipientRegistered { recipient: RecipientRef, info: BasicInfo },
    /// 個人番号登録: the first My Number of the recipient.
    MyNumberLinked { my_number: MyNumber, approver: UserId },
    /// 個人番号訂正: a My Number replacing another.
    MyNumberCorrected { my_number: MyNumber, approver: UserId },
    /// 氏名・カナ・住所変更.
    PersonalDetailsChanged { name: Option<PersonName>, kana: Option<Kana>, address: Option<Address> },
    /// 転入.
    MovedIn { address: Address, from: PlaceName },
    /// 転出: every span open on the effective date ends on it.
    MovedOut { to: PlaceName },
    /// 死亡: every span open on the effective date ends on it.
    Died,
    /// 支援措置開始 (DV support measure).
    DvSupportStarted,
    /// 支援措置終了.
    DvSupportEnded,
    /// 認定・新規交付: a certificate with its first span.
    CertificateGranted { certificate: CertificateRef, program: ProgramKey, span: SpanNo, period: Period, terms: Terms },
    /// 更新: a new span after the last, with the last span's terms changed by `changes`.
    CertificateRenewed { certificate: CertificateRef, span: SpanNo, period: Period, changes: TermsChange },
    /// 変更: from the effective date, `changes` apply; the span containing that date is split
    /// (the new part is `span`), or changed in place when the date is its first day.
    CertificateChanged { certificate: CertificateRef, span: SpanNo, changes: TermsChange },
    /// 資格喪失: eligibility ends on the effective date; later spans are withdrawn.
    CertificateEnded { certificate: CertificateRef, reason: LossReason },
    /// 再交付: a new paper certificate; eligibility unchanged.
    CertificateReissued { certificate: CertificateRef, reason: ReissueReason },
    /// 取消: the events of command `target` are undone, as if they had never happened.
    CommandRescinded { target: CommandId, reason: Note },
}

impl Event {
    /// The span number this event allocates, if any.
    pub fn span(&self) -> Option<SpanNo> {
        match &self.body {
            EventBody::CertificateGranted { span, .. }
            | EventBody::CertificateRenewed { span, .. }
            | EventBody::CertificateChanged { span, .. } => Some(*span),
            _ => None,
        }
    }

    /// Stable snake_case name of the event type.
    pub fn type_name(&self) -> &'static str {
        match &self.body {
            EventBody::RecipientRegistered { .. } => "recipient_registered",
            EventBody::MyNumberLinked { .. } => "my_number_linked",
            EventBody::MyNumberCorrected { .. } => "my_number_corrected",
            EventBody::PersonalDetailsChanged { .. } => "personal_details_changed",
            EventBody::MovedIn { .. } => "moved_in",
            EventBody::MovedOut { .. } => "moved_out",
            EventBody::Died => "died",
            EventBody::DvSupportStarted => "dv_support_started",
            EventBody::DvSupportEnded => "dv_support_ended",
            EventBody::CertificateGranted { .. } => "certificate_granted",
            EventBody::CertificateRenewed { .. } => "certificate_renewed",
            EventBody::CertificateChanged { .. } => "certificate_changed",
            EventBody::CertificateEnded { .. } => "certificate_ended",
            EventBody::CertificateReissued { .. } => "certificate_reissued",
            EventBody::CommandRescinded { .. } => "command_rescinded",
        }
    }

    /// Japanese label for timelines.
    pub fn label(&self) -> &'static str {
        match &self.body {
            EventBody::RecipientRegistered { .. } => "基本情報登録",
            EventBody::MyNumberLinked { .. } => "個人番号登録",
            EventBody::MyNumberCorrected { .. } => "個人番号訂正",
            EventBody::PersonalDetailsChanged { .. } => "氏名・住所等変更",
            EventBody::MovedIn { .. } => "転入",
            EventBody::MovedOut { .. } => "転出",
            EventBody::Died => "死亡",
            EventBody::DvSupportStarted => "支援措置開始",
            EventBody::DvSupportEnded => "支援措置終了",
            EventBody::CertificateGranted { .. } => "認定・新規交付",
            EventBody::CertificateRenewed { .. } => "更新",
            EventBody::CertificateChanged { .. } => "変更",
            EventBody::CertificateEnded { .. } => "資格喪失",
            EventBody::CertificateReissued { .. } => "再交付",
            EventBody::CommandRescinded { .. } => "取消",
        }
    }
}
