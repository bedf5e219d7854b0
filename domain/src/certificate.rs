//! 受給者証 (certificate) vocabulary shared by commands, events and state: the terms of a
//! certificate version, changes to them, the self-pay cap, and the reasons a certificate ends or
//! is reissued.

use crate::money::Yen;
use crate::numbers::{PayerNumber, RecipientNumber};
use crate::text::{CapDefinition, DiseaseName, IncomeSegment, InstitutionName};

/// Most designated institutions on one certificate.
pub const DESIGNATED_INSTITUTIONS_MAX: usize = 20;

/// The period a rate or an amount of a self-pay cap is counted over (日・月・回).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CapUnit {
    /// 日額: per day.
    Day,
    /// 月額: per month.
    Month,
    /// 1回あたり: per visit.
    Visit,
}

impl CapUnit {
    /// Every unit, in the order of PMH's common layout (日, 月, 回).
    pub const ALL: [CapUnit; 3] = [CapUnit::Day, CapUnit::Month, CapUnit::Visit];

    /// Contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            CapUnit::Month => "month",
            CapUnit::Day => "day",
            CapUnit::Visit => "visit",
        }
    }

    /// How an amount per this unit is written (日額, 月額, 1回).
    pub fn amount_label(self) -> &'static str {
        match self {
            CapUnit::Day => "日額",
            CapUnit::Month => "月額",
            CapUnit::Visit => "1回",
        }
    }

    /// Japanese name as PMH's layout and the card print it (日, 月, 回).
    pub fn label(self) -> &'static str {
        match self {
            CapUnit::Day => "日",
            CapUnit::Month => "月",
            CapUnit::Visit => "回",
        }
    }
}

/// 自己負担上限額の種別 (kind of self-pay cap). **Provisional**: PMH's codes are not public;
/// these three cover what the programs in the demo configuration print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CapKind {
    /// 上限額 ("1"): the recipient pays the program's share (負担率, if set) up to the amounts.
    Limit,
    /// 定額 ("2"): the recipient pays the amounts (for example 200 yen a visit).
    Fixed,
    /// 負担なし ("3"): the recipient pays nothing; no rate and no amount.
    Free,
}

impl CapKind {
    /// Every kind, in code order.
    pub const ALL: [CapKind; 3] = [CapKind::Limit, CapKind::Fixed, CapKind::Free];

    /// Contract name.
    pub fn as_str(self) -> &'static str {
        match self {
            CapKind::Limit => "limit",
            CapKind::Fixed => "fixed",
            CapKind::Free => "free",
        }
    }

    /// The code sent to PMH (provisional, see the type).
    pub fn code(self) -> &'static str {
        match self {
            CapKind::Limit => "1",
            CapKind::Fixed => "2",
            CapKind::Free => "3",
        }
    }

    /// Japanese name.
    pub fn label(self) -> &'static str {
        match self {
            CapKind::Limit => "上限額",
            CapKind::Fixed => "定額",
            CapKind::Free => "負担なし",
        }
    }
}

/// One value per 日・月・回 (day, month, visit), each optional.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PerUnit<T> {
    /// 日.
    pub day: Option<T>,
    /// 月.
    pub month: Option<T>,
    /// 回.
    pub visit: Option<T>,
}

impl<T> Default for PerUnit<T> {
    fn default() -> Self {
        PerUnit { day: None, month: None, visit: None }
    }
}

impl<T: Copy> PerUnit<T> {
    /// The value for `unit`.
    pub fn get(&self, unit: CapUnit) -> Option<T> {
        match unit {
            CapUnit::Day => self.day,
            CapUnit::Month => self.month,
            CapUnit::Visit => self.visit,
        }
    }

    /// Sets the value for `unit`.
    pub fn set(&mut self, unit: CapUnit, value: Option<T>) {
        match unit {
            CapUnit::Day => self.day = value,
            CapUnit::Month => self.month = value,
            CapUnit::Visit => self.visit = value,
        }
    }

    /// The units that have a value, with it, in the order of [`CapUnit::ALL`].
    pub fn present(&self) -> impl Iterator<Item = (CapUnit, T)> + '_ {
        CapUnit::ALL.into_iter().filter_map(|u| self.get(u).map(|v| (u, v)))
    }

    /// No unit has a value.
    pub fn is_empty(&self) -> bool {
        self.present().next().is_none()
    }
}

/// 負担率 (share of the cost the recipient pays), in whole percent, 0 to 100.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u8);

impl Percent {
    /// The largest share.
    pub const MAX: u8 = 100;

    /// A share of `value` percent; refuses more than 100.
    pub fn new(value: i64) -> Result<Percent, crate::error::ValueError> {
        if value < 0 {
            return Err(crate::error::ValueError::Negative);
        }
        u8::try_from(value)
            .ok()
            .filter(|v| *v <= Self::MAX)
            .map(Percent)
            .ok_or(crate::error::ValueError::TooLarge { max: i64::from(Self::MAX) })
    }

    /// The share in percent.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// Which care a self-pay cap applied to, in the form before PMH's common layout (外来, 入院,
/// 入院・外来合算). **Abolished**: never entered any more; a stored or submitted cap of the old
/// form is read as a [`CopayCap`] whose 負担定義 is this label (see [`CopayCap::from_old_form`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OldCapSetting {
    /// 外来.
    Outpatient,
    /// 入院.
    Inpatient,
    /// 入院・外来合算.
    Combined,
}

impl OldCapSetting {
    /// The 負担定義 an old cap of this setting reads as.
    pub fn label(self) -> &'static str {
        match self {
            OldCapSetting::Outpatient => "外来",
            OldCapSetting::Inpatient => "入院",
            OldCapSetting::Combined => "入院・外来合算",
        }
    }

    /// Contract name of the old form.
    pub fn as_str(self) -> &'static str {
        match self {
            OldCapSetting::Outpatient => "outpatient",
            OldCapSetting::Inpatient => "inpatient",
            OldCapSetting::Combined => "combined",
        }
    }
}

/// 自己負担上限額 (self-pay cap) in the structure of PMH's common layout: 種別, 負担定義,
/// 負担率 (日・月・回) and 金額 (日・月・回).
///
/// Invariant (kept by [`CopayCap::new`]): 負担なし has neither rates nor amounts; 上限額 has at
/// least one of them; 定額 has at least one amount.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CopayCap {
    kind: CapKind,
    definition: Option<CapDefinition>,
    rate: PerUnit<Percent>,
    amount: PerUnit<Yen>,
}

/// Why a cap's parts do not make a cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapError {
    /// 負担なし with a rate or an amount.
    FreeWithValues,
    /// 上限額 with neither a rate nor an amount, or 定額 without an amount.
    Empty,
    /// An amount below zero.
    Negative,
}

impl CopayCap {
    /// A cap of these parts, if they make one.
    pub fn new(
        kind: CapKind,
        definition: Option<CapDefinition>,
        rate: PerUnit<Percent>,
        amount: PerUnit<Yen>,
    ) -> Result<CopayCap, CapError> {
        if amount.present().any(|(_, y)| y.get() < 0) {
            return Err(CapError::Negative);
        }
        let empty = rate.is_empty() && amount.is_empty();
        match kind {
            CapKind::Free if !empty => Err(CapError::FreeWithValues),
            CapKind::Limit if empty => Err(CapError::Empty),
            // A fixed charge is an amount; a rate beside it is allowed (PMH's layout has both).
            CapKind::Fixed if amount.is_empty() => Err(CapError::Empty),
            _ => Ok(CopayCap { kind, definition, rate, amount }),
        }
    }

    /// A cap of the abolished form `{yen, unit, setting}`: 上限額, the amount in its unit, and
    /// the setting's label as 負担定義. The one mapping for stored events (upcast) and for
    /// commands written in the old form.
    pub fn from_old_form(yen: Yen, unit: CapUnit, setting: OldCapSetting) -> Result<CopayCap, CapError> {
        let mut amount = PerUnit::default();
        amount.set(unit, Some(yen));
        let definition = CapDefinition::parse(setting.label()).ok();
        CopayCap::new(CapKind::Limit, definition, PerUnit::default(), amount)
    }

    /// The old form this cap was read from, if it is exactly one: 上限額, no rate, one amount,
    /// and an old setting's label as 負担定義. Keeps the fingerprint of commands written before
    /// the layout changed.
    pub fn as_old_form(&self) -> Option<(Yen, CapUnit, OldCapSetting)> {
        if self.kind != CapKind::Limit || !self.rate.is_empty() {
            return None;
        }
        let mut amounts = self.amount.present();
        let (unit, yen) = amounts.next()?;
        if amounts.next().is_some() {
            return None;
        }
        let definition = self.definition.as_ref()?.as_str();
        [OldCapSetting::Outpatient, OldCapSetting::Inpatient, OldCapSetting::Combined]
            .into_iter()
            .find(|s| s.label() == definition)
            .map(|s| (yen, unit, s))
    }

    /// 種別.
    pub fn kind(&self) -> CapKind {
        self.kind
    }

    /// 負担定義.
    pub fn definition(&self) -> Option<&CapDefinition> {
        self.definition.as_ref()
    }

    /// 負担率 per unit.
    pub fn rate(&self) -> &PerUnit<Percent> {
        &self.rate
    }

    /// 金額 per unit.
    pub fn amount(&self) -> &PerUnit<Yen> {
        &self.amount
    }

    /// The cap as a caseworker reads it and the card prints it:
    /// 「上限額 月額 10,000円 負担率 20%（月）（医療費の2割）」.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.kind.label().to_owned()];
        for (unit, yen) in self.amount.present() {
            parts.push(format!("{} {yen}", unit.amount_label()));
        }
        for (unit, rate) in self.rate.present() {
            parts.push(format!("負担率 {}%（{}）", rate.get(), unit.label()));
        }
        let mut text = parts.join(" ");
        if let Some(d) = &self.definition {
            text.push_str(&format!("（{d}）"));
        }
        text
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
            copay_cap: change.copay_cap.clone().unwrap_or_else(|| self.copay_cap.clone()),
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
