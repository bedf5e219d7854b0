//! 受給者証 (certificate) vocabulary shared by commands, events and state: the terms of a
//! certificate version, changes to them, the self-pay cap, and the reasons a certificate ends or
//! is reissued.

use crate::money::Yen;
use crate::numbers::{PayerNumber, RecipientNumber};
use crate::text::{DiseaseName, IncomeSegment, InstitutionName};

/// Most designated institutions on one certificate.
pub const DESIGNATED_INSTITUTIONS_MAX: usize = 20;

/// Unit of a self-pay cap (自己負担上限額).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CapUnit {
    /// 月額.
    Month,
    /// 日額.
    Day,
    /// 1回あたり.
    Visit,
}

/// Which care a self-pay cap applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CapSetting {
    /// 外来.
    Outpatient,
    /// 入院.
    Inpatient,
    /// 入院・外来合算.
    Combined,
}

/// 自己負担上限額 (self-pay cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CopayCap {
    /// Amount, zero or more.
    pub yen: Yen,
    /// Per month, day or visit.
    pub unit: CapUnit,
    /// Outpatient, inpatient or combined.
    pub setting: CapSetting,
}

impl CapUnit {
    /// Contract and PMH name.
    pub fn as_str(self) -> &'static str {
        match self {
            CapUnit::Month => "month",
            CapUnit::Day => "day",
            CapUnit::Visit => "visit",
        }
    }
}

impl CapSetting {
    /// Contract and PMH name.
    pub fn as_str(self) -> &'static str {
        match self {
            CapSetting::Outpatient => "outpatient",
            CapSetting::Inpatient => "inpatient",
            CapSetting::Combined => "combined",
        }
    }
}

/// The attributes of one certificate version, valid during one span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terms {
    /// 公費負担者番号; `None` only for programs that do not require one.
    pub payer_number: Option<PayerNumber>,
    /// 公費受給者番号.
    pub recipient_number: RecipientNumber,
    /// 自己負担上限額.
    pub copay_cap: Option<CopayCap>,
    /// 所得区分.
    pub income_segment: Option<IncomeSegment>,
    /// 指定医療機関, in print order.
    pub designated_institutions: Vec<InstitutionName>,
    /// 疾病名.
    pub disease: Option<DiseaseName>,
    /// 償還払い: always handled by reimbursement (PMH `isAlwaysReimbursement` "1").
    pub always_reimbursement: bool,
}

/// A change to [`Terms`]: `None` leaves an attribute as it is; for optional attributes
/// `Some(None)` clears it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TermsChange {
    /// New or cleared payer number.
    pub payer_number: Option<Option<PayerNumber>>,
    /// New recipient number.
    pub recipient_number: Option<RecipientNumber>,
    /// New or cleared cap.
    pub copay_cap: Option<Option<CopayCap>>,
    /// New or cleared income segment.
    pub income_segment: Option<Option<IncomeSegment>>,
    /// New list of designated institutions.
    pub designated_institutions: Option<Vec<InstitutionName>>,
    /// New or cleared disease.
    pub disease: Option<Option<DiseaseName>>,
    /// New reimbursement flag.
    pub always_reimbursement: Option<bool>,
}

impl Terms {
    /// These terms with `change` applied.
    pub fn with(&self, change: &TermsChange) -> Terms {
        Terms {
            payer_number: change.payer_number.unwrap_or(self.payer_number),
            recipient_number: change.recipient_number.clone().unwrap_or_else(|| self.recipient_number.clone()),
            copay_cap: change.copay_cap.unwrap_or(self.copay_cap),
            income_segment: change.income_segment.clone().unwrap_or_else(|| self.income_segment.clone()),
            designated_institutions: change
                .designated_institutions
                .clone()
                .unwrap_or_else(|| self.designated_institutions.clone()),
            disease: change.disease.clone().unwrap_or_else(|| self.disease.clone()),
            always_reimbursement: change.always_reimbursement.unwrap_or(self.always_reimbursement),
        }
    }
}

/// Why a certificate's eligibility was lost (資格喪失), as a caseworker records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossReason {
    /// 年齢到達.
    AgeLimit,
    /// 所得超過.
    Income,
    /// 辞退・申請取下げ.
    Withdrawal,
    /// その他.
    Other,
}

impl LossReason {
    /// Contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::AgeLimit => "age_limit",
            LossReason::Income => "income",
            LossReason::Withdrawal => "withdrawal",
            LossReason::Other => "other",
        }
    }

    /// Japanese label.
    pub fn label(self) -> &'static str {
        match self {
            LossReason::AgeLimit => "年齢到達",
            LossReason::Income => "所得超過",
            LossReason::Withdrawal => "辞退",
            LossReason::Other => "その他",
        }
    }
}

/// Why a certificate ended before its natural expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Eligibility lost (資格喪失).
    Lost(LossReason),
    /// 転出: the person moved out of the municipality.
    MovedOut,
    /// 死亡.
    Died,
}

impl EndReason {
    /// Japanese label.
    pub fn label(self) -> &'static str {
        match self {
            EndReason::Lost(reason) => reason.label(),
            EndReason::MovedOut => "転出",
            EndReason::Died => "死亡",
        }
    }
}

/// Why a paper certificate is reissued (再交付).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReissueReason {
    /// 紛失.
    Lost,
    /// 破損・汚損.
    Damaged,
    /// その他.
    Other,
}

impl ReissueReason {
    /// Contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReissueReason::Lost => "lost",
            ReissueReason::Damaged => "damaged",
            ReissueReason::Other => "other",
        }
    }

    /// Japanese label.
    pub fn label(self) -> &'static str {
        match self {
            ReissueReason::Lost => "紛失",
            ReissueReason::Damaged => "破損",
            ReissueReason::Other => "その他",
        }
    }
}
