//! 指示 (commands): what a caseworker or an import asks the ledger to record, validated.
//!
//! Raw input (a JSON line, an HTTP form) becomes a [`Command`] of domain values in [`parse`];
//! a `Command` cannot hold a malformed value. Whether it is *allowed* is `decide`'s business.
//! The JSON Lines contract is ../shared/domain/LIFE_EVENTS.md, with one addition documented in
//! ARCHITECTURE.md: `link_my_number` carries the `resident_record` it was checked against.

mod parse;

pub use parse::{FieldError, InputError, parse_command_line, parse_command_value};

use chrono::NaiveDate;
use sha2::{Digest, Sha256};

use crate::certificate::{CopayCap, LossReason, ReissueReason, Terms, TermsChange};
use crate::config::ProgramKey;
use crate::ids::{CertificateRef, CommandId, RecipientRef, UserId};
use crate::numbers::MyNumber;
use crate::text::{Address, Kana, Note, PersonName, PlaceName, Sex, pmh_unrepresentable};

/// A validated command with the contract's common fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// Idempotency key.
    pub id: CommandId,
    /// Who records it.
    pub actor: UserId,
    /// The caller's id of the recipient concerned.
    pub recipient: RecipientRef,
    /// The day it takes effect in the world (valid time).
    pub effective: NaiveDate,
    /// What is asked.
    pub body: CommandBody,
}

/// 基本情報 of a recipient as registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BasicInfo {
    /// 氏名.
    pub name: PersonName,
    /// 氏名カナ.
    pub kana: Kana,
    /// 生年月日.
    pub birth_date: NaiveDate,
    /// 性別.
    pub sex: Sex,
    /// 住所.
    pub address: Address,
}

/// 基本4情報 as read from the resident record (住民記録) for a My Number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResidentRecord {
    /// 氏名.
    pub name: PersonName,
    /// 生年月日.
    pub birth_date: NaiveDate,
    /// 性別.
    pub sex: Sex,
    /// 住所.
    pub address: Address,
}

/// A grant of a new certificate (認定・新規交付).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The caller's id for the new certificate.
    pub certificate: CertificateRef,
    /// Program key from the configuration.
    pub program: ProgramKey,
    /// First day of eligibility.
    pub valid_from: NaiveDate,
    /// Last day; `None` for open-ended (or up to the program's age limit).
    pub valid_to: Option<NaiveDate>,
    /// Attributes of the first version.
    pub terms: Terms,
}

/// What a command asks for; one variant per contract `type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandBody {
    /// `register_recipient` (基本情報登録).
    RegisterRecipient(BasicInfo),
    /// `link_my_number` (個人番号登録・訂正): needs the four basic items to match the resident
    /// record and a second person's approval.
    LinkMyNumber { my_number: MyNumber, approver: UserId, resident_record: ResidentRecord },
    /// `change_personal_details` (氏名・住所変更, 転居).
    ChangePersonalDetails { name: Option<PersonName>, kana: Option<Kana>, address: Option<Address> },
    /// `move_in` (転入).
    RecordMoveIn { address: Address, from: PlaceName },
    /// `move_out` (転出).
    RecordMoveOut { to: PlaceName },
    /// `record_death` (死亡).
    RecordDeath,
    /// `start_dv_support` (支援措置開始).
    StartDvSupport,
    /// `end_dv_support` (支援措置終了).
    EndDvSupport,
    /// `grant_certificate` (認定・新規交付).
    GrantCertificate(Grant),
    /// `renew_certificate` (更新).
    RenewCertificate {
        certificate: CertificateRef,
        valid_from: NaiveDate,
        valid_to: Option<NaiveDate>,
        changes: TermsChange,
    },
    /// `change_certificate` (変更), taking effect on the command's effective date.
    ChangeCertificate { certificate: CertificateRef, changes: TermsChange },
    /// `end_certificate` (資格喪失): eligibility ends on the effective date.
    EndCertificate { certificate: CertificateRef, reason: LossReason },
    /// `reissue_certificate` (再交付).
    ReissueCertificate { certificate: CertificateRef, reason: ReissueReason },
    /// `rescind` (取消): undo the events of the command `target`.
    Rescind { target: CommandId, reason: Note, approver: Option<UserId> },
}

impl CommandBody {
    /// The contract's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            CommandBody::RegisterRecipient(_) => "register_recipient",
            CommandBody::LinkMyNumber { .. } => "link_my_number",
            CommandBody::ChangePersonalDetails { .. } => "change_personal_details",
            CommandBody::RecordMoveIn { .. } => "move_in",
            CommandBody::RecordMoveOut { .. } => "move_out",
            CommandBody::RecordDeath => "record_death",
            CommandBody::StartDvSupport => "start_dv_support",
            CommandBody::EndDvSupport => "end_dv_support",
            CommandBody::GrantCertificate(_) => "grant_certificate",
            CommandBody::RenewCertificate { .. } => "renew_certificate",
            CommandBody::ChangeCertificate { .. } => "change_certificate",
            CommandBody::EndCertificate { .. } => "end_certificate",
            CommandBody::ReissueCertificate { .. } => "reissue_certificate",
            CommandBody::Rescind { .. } => "rescind",
        }
    }

    /// The second person whose approval the command carries, if it needs one.
    pub fn approver(&self) -> Option<&UserId> {
        match self {
            CommandBody::LinkMyNumber { approver, .. } => Some(approver),
            CommandBody::Rescind { approver, .. } => approver.as_ref(),
            _ => None,
        }
    }
}

/// SHA-256 of a command's canonical form: "same key, same content" for idempotency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// Builds the canonical form: version tag, then `name`, length and value of each field, in a
/// fixed order. Changing it changes every fingerprint, so it is versioned (`FINGERPRINT_V1`)
/// and pinned by a test vector.
struct Canon(Sha256);

const FINGERPRINT_V1: &[u8] = b"daicho.command.v1";

impl Canon {
    fn field(&mut self, name: &str, value: &str) {
        for part in [name.as_bytes(), value.as_bytes()] {
            self.0.update((part.len() as u64).to_be_bytes());
            self.0.update(part);
        }
    }

    fn opt(&mut self, name: &str, value: Option<String>) {
        match value {
            Some(v) => self.field(name, &format!("={v}")),
            None => self.field(name, "-"),
        }
    }

    /// A cap that is exactly one of the abolished form keeps the canonical text it always had,
    /// so a command file applied before the layout changed is still "already applied"; any
    /// other cap has a text no old cap can have (it starts with its kind).
    fn cap(cap: &CopayCap) -> String {
        if let Some((yen, unit, setting)) = cap.as_old_form() {
            return format!("{}/{}/{}", yen.get(), unit.as_str(), setting.as_str());
        }
        let mut text = format!("{}|{}", cap.kind().as_str(), cap.definition().map_or("-", |d| d.as_str()));
        for unit in crate::certificate::CapUnit::ALL {
            let rate = cap.rate().get(unit).map_or("-".to_owned(), |r| r.get().to_string());
            let yen = cap.amount().get(unit).map_or("-".to_owned(), |y| y.get().to_string());
            text.push_str(&format!("|{rate}|{yen}"));
        }
        text
    }

    fn terms(&mut self, t: &Terms) {
        // A present number keeps the canonical bytes it always had; "-" is never a payer number.
        match &t.payer_number {
            Some(p) => self.field("payer_number", &p.as_string()),
            None => self.field("payer_number", "-"),
        }
        self.field("recipient_number", t.recipient_number.as_str());
        self.opt("copay_cap", t.copay_cap.as_ref().map(Self::cap));
        self.opt("income_segment", t.income_segment.as_ref().map(|s| s.as_str().to_owned()));
        self.list("designated_institutions", t.designated_institutions.iter().map(|s| s.as_str()));
        self.opt("disease", t.disease.as_ref().map(|s| s.as_str().to_owned()));
        self.field("always_reimbursement", if t.always_reimbursement { "1" } else { "0" });
    }

    fn list<'a>(&mut self, name: &str, items: impl Iterator<Item = &'a str>) {
        let items: Vec<&str> = items.collect();
        self.field(name, &items.len().to_string());
        for item in items {
            self.field("", item);
        }
    }

    /// `None`: unchanged; `Some(None)`: cleared; `Some(Some(v))`: set.
    fn change(&mut self, name: &str, value: Option<Option<String>>) {
        match value {
            None => self.field(name, "unchanged"),
            Some(None) => self.field(name, "cleared"),
            Some(Some(v)) => self.field(name, &format!("set={v}")),
        }
    }

    fn changes(&mut self, c: &TermsChange) {
        self.change("payer_number", c.payer_number.map(|p| p.map(|p| p.as_string())));
        self.change("recipient_number", c.recipient_number.as_ref().map(|r| Some(r.as_str().to_owned())));
        self.change("copay_cap", c.copay_cap.as_ref().map(|cap| cap.as_ref().map(Self::cap)));
        self.change("income_segment", c.income_segment.as_ref().map(|s| s.as_ref().map(|s| s.as_str().to_owned())));
        match &c.designated_institutions {
            None => self.field("designated_institutions", "unchanged"),
            Some(list) => self.list("designated_institutions", list.iter().map(|s| s.as_str())),
        }
        self.change("disease", c.disease.as_ref().map(|s| s.as_ref().map(|s| s.as_str().to_owned())));
        self.change("always_reimbursement", c.always_reimbursement.map(|b| Some(if b { "1" } else { "0" }.to_owned())));
    }
}

impl Command {
    /// The fingerprint of everything in the command, the id included.
    pub fn fingerprint(&self) -> Fingerprint {
        let mut c = Canon(Sha256::new());
        c.0.update(FINGERPRINT_V1);
        c.field("id", self.id.as_str());
        c.field("type", self.body.type_name());
        c.field("actor", self.actor.as_str());
        c.field("recipient", self.recipient.as_str());
        c.field("effective", &self.effective.to_string());
        match &self.body {
            CommandBody::RegisterRecipient(info) => {
                c.field("name", info.name.as_str());
                c.field("kana", info.kana.as_str());
                c.field("birth_date", &info.birth_date.to_string());
                c.field("sex", info.sex.code());
                c.field("address", info.address.as_str());
            }
            CommandBody::LinkMyNumber { my_number, approver, resident_record: r } => {
                c.field("my_number", &my_number.reveal());
                c.field("approver", approver.as_str());
                c.field("resident.name", r.name.as_str());
                c.field("resident.birth_date", &r.birth_date.to_string());
                c.field("resident.sex", r.sex.code());
                c.field("resident.address", r.address.as_str());
            }
            CommandBody::ChangePersonalDetails { name, kana, address } => {
                c.opt("name", name.as_ref().map(|v| v.as_str().to_owned()));
                c.opt("kana", kana.as_ref().map(|v| v.as_str().to_owned()));
                c.opt("address", address.as_ref().map(|v| v.as_str().to_owned()));
            }
            CommandBody::RecordMoveIn { address, from } => {
                c.field("address", address.as_str());
                c.field("from", from.as_str());
            }
            CommandBody::RecordMoveOut { to } => c.field("to", to.as_str()),
            CommandBody::RecordDeath | CommandBody::StartDvSupport | CommandBody::EndDvSupport => {}
            CommandBody::GrantCertificate(g) => {
                c.field("certificate", g.certificate.as_str());
                c.field("program", g.program.as_str());
                c.field("valid_from", &g.valid_from.to_string());
                c.opt("valid_to", g.valid_to.map(|d| d.to_string()));
                c.terms(&g.terms);
            }
            CommandBody::RenewCertificate { certificate, valid_from, valid_to, changes } => {
                c.field("certificate", certificate.as_str());
                c.field("valid_from", &valid_from.to_string());
                c.opt("valid_to", valid_to.map(|d| d.to_string()));
                c.changes(changes);
            }
            CommandBody::ChangeCertificate { certificate, changes } => {
                c.field("certificate", certificate.as_str());
                c.changes(changes);
            }
            CommandBody::EndCertificate { certificate, reason } => {
                c.field("certificate", certificate.as_str());
                c.field("reason", reason.as_str());
            }
            CommandBody::ReissueCertificate { certificate, reason } => {
                c.field("certificate", certificate.as_str());
                c.field("reason", reason.as_str());
            }
            CommandBody::Rescind { target, reason, approver } => {
                c.field("target", target.as_str());
                c.field("reason", reason.as_str());
                // Added later: absent, the canonical bytes are those rescinds always had.
                if let Some(a) = approver {
                    c.field("approver", a.as_str());
                }
            }
        }
        Fingerprint(c.0.finalize().into())
    }
}

/// A character of an entered text that PMH will show as "●" (outside JIS X 0213): a warning,
/// not a rejection. The text is stored as entered; the caseworker decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextWarning {
    /// Field name of the contract (`name`, `address`, `income_segment`, `disease`,
    /// `designated_institutions`).
    pub field: &'static str,
    /// For a list field, the 0-based item.
    pub item: Option<usize>,
    /// 1-based character position.
    pub position: usize,
    /// The character.
    pub ch: char,
}

impl TextWarning {
    /// Stable code.
    pub const CODE: &'static str = "pmh_unrepresentable";

    /// Japanese message naming the position and code point, never the text.
    pub fn message(&self) -> String {
        let item = self.item.map(|i| format!("{}件目の", i + 1)).unwrap_or_default();
        let warned = format!("{item}{}文字目（U+{:04X}）はPMHで「●」と表示されます", self.position, u32::from(self.ch));
        match crate::text::with_jis_lookalikes(&self.ch.to_string()).and_then(|t| t.chars().next()) {
            // A Windows (CP932) look-alike: say what it becomes, and that a person decides.
            Some(jis) => format!(
                "{warned}。JIS X 0213 の U+{:04X} に直せます（受給者画面で確認して、氏名・住所等の変更として記録します）",
                u32::from(jis)
            ),
            None => warned,
        }
    }
}

impl Command {
    /// Characters of the texts this command sends to PMH (names, addresses, income segments,
    /// disease names, designated institutions) that PMH would show as "●".
    pub fn warnings(&self) -> Vec<TextWarning> {
        let mut fields: Vec<(&'static str, Option<usize>, &str)> = Vec::new();
        let (disease, designated, income, cap) = match &self.body {
            CommandBody::GrantCertificate(g) => (
                g.terms.disease.as_ref(),
                Some(&g.terms.designated_institutions[..]),
                g.terms.income_segment.as_ref(),
                g.terms.copay_cap.as_ref(),
            ),
            CommandBody::RenewCertificate { changes, .. } | CommandBody::ChangeCertificate { changes, .. } => (
                changes.disease.as_ref().and_then(Option::as_ref),
                changes.designated_institutions.as_deref(),
                changes.income_segment.as_ref().and_then(Option::as_ref),
                changes.copay_cap.as_ref().and_then(Option::as_ref),
            ),
            _ => (None, None, None, None),
        };
        if let Some(d) = cap.and_then(CopayCap::definition) {
            fields.push(("copay_cap.definition", None, d.as_str()));
        }
        if let Some(x) = income {
            fields.push(("income_segment", None, x.as_str()));
        }
        if let Some(d) = disease {
            fields.push(("disease", None, d.as_str()));
        }
        for (i, x) in designated.unwrap_or_default().iter().enumerate() {
            fields.push(("designated_institutions", Some(i), x.as_str()));
        }
        match &self.body {
            CommandBody::RegisterRecipient(info) => {
                fields.push(("name", None, info.name.as_str()));
                fields.push(("address", None, info.address.as_str()));
            }
            CommandBody::ChangePersonalDetails { name, address, .. } => {
                if let Some(n) = name {
                    fields.push(("name", None, n.as_str()));
                }
                if let Some(a) = address {
                    fields.push(("address", None, a.as_str()));
                }
            }
            CommandBody::RecordMoveIn { address, .. } => fields.push(("address", None, address.as_str())),
            _ => {}
        }
        fields
            .into_iter()
            .flat_map(|(field, item, text)| {
                pmh_unrepresentable(text).into_iter().map(move |u| TextWarning {
                    field,
                    item,
                    position: u.position,
                    ch: u.ch,
                })
            })
            .collect()
    }
}
