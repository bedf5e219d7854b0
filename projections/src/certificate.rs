//! The face of a paper certificate (受給者証の券面): the items of the program's template, in
//! print order, with their Japanese values and 和暦 dates, made from a recipient's state on a day.
//! The same face feeds the HTML print page (and, later, the PDF).
//!
//! Every face carries the log position it was made from and a verification code (the first 12
//! hexadecimal digits of the chain hash at that position, in groups of four), so a paper can be
//! tied back to the log: at that position `daicho verify` or an audit bundle shows the same hash.

use chrono::NaiveDate;
use daicho_domain::certificate::CopayCap;
use daicho_domain::config::{Config, FaceItem, PaperSize};
use daicho_domain::privacy;
use daicho_domain::state::{Certificate, Recipient};

/// `12,345`.
pub fn yen(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The cap as the card prints it: `上限額 月額 10,000円（外来）`.
pub fn copay(c: &CopayCap) -> String {
    c.describe()
}

/// The verification code of a chain hash (hex): `C40E-2DB7-4B99`.
pub fn verification_code(hash_hex: &str) -> String {
    let head: Vec<char> = hash_hex.chars().take(12).map(|c| c.to_ascii_uppercase()).collect();
    head.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

/// One printed item: its label and its lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaceLine {
    pub item: FaceItem,
    pub label: &'static str,
    pub lines: Vec<String>,
}

/// A certificate's face.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Face {
    /// 受給者証の名称.
    pub title: String,
    pub size: PaperSize,
    /// Printed again after a reissue: marked 再交付.
    pub reissued: bool,
    /// The certificate's id (受給者証ID).
    pub certificate: String,
    pub lines: Vec<FaceLine>,
    /// The log position the face was made from.
    pub position: u64,
    pub verification_code: String,
}

/// Why no face can be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaceError {
    /// The configuration no longer has the program.
    UnknownProgram,
    /// No span of the certificate covers the day, and none starts after it.
    NoSpan,
}

impl FaceError {
    /// Japanese message for staff.
    pub fn message(&self) -> &'static str {
        match self {
            FaceError::UnknownProgram => "この受給者証の制度は現在の設定にありません",
            FaceError::NoSpan => "指定した日以降に有効な期間がないため、受給者証を作成できません",
        }
    }
}

/// Where in the log a face was made: the position and its chain hash (hex).
#[derive(Clone, Copy, Debug)]
pub struct Made<'a> {
    pub position: u64,
    pub hash_hex: &'a str,
}

/// The face of `certificate` of `recipient` for the span valid on `on` (or the next one to
/// start), issued on `issued`, made from the log at `made`, showing what `policy` lets its
/// reader see.
pub fn face(
    config: &Config,
    recipient: &Recipient,
    certificate: &Certificate,
    (on, issued): (NaiveDate, NaiveDate),
    made: Made<'_>,
    policy: &privacy::View,
) -> Result<Face, FaceError> {
    let Made { position, hash_hex } = made;
    let program = config.program(&certificate.program).ok_or(FaceError::UnknownProgram)?;
    let span = certificate
        .span_on(on)
        .or_else(|| certificate.spans.iter().find(|s| s.period.from() > on))
        .ok_or(FaceError::NoSpan)?;
    let wareki = |d: NaiveDate| config.eras.format(d).unwrap_or_else(|_| d.to_string());
    let template = &program.certificate;
    let one = |s: String| vec![s];
    let or_none = |s: Option<String>| vec![s.unwrap_or_else(|| "―".to_owned())];
    let mut lines = Vec::new();
    for item in &template.items {
        let t = &span.terms;
        let values = match item {
            FaceItem::PayerNumber => or_none(t.payer_number.map(|p| p.as_string())),
            FaceItem::RecipientNumber => one(t.recipient_number.to_string()),
            FaceItem::Name => one(recipient.name.to_string()),
            FaceItem::Kana => one(recipient.kana.to_string()),
            FaceItem::BirthDate => one(wareki(recipient.birth_date)),
            FaceItem::Sex => one(recipient.sex.label().to_owned()),
            FaceItem::Address => one(policy.place(recipient.address.as_str()).to_owned()),
            FaceItem::Validity => {
                let to = span.period.to().map_or_else(|| "定めなし".to_owned(), |d| format!("{}まで", wareki(d)));
                one(format!("{}から {to}", wareki(span.period.from())))
            }
            FaceItem::CopayCap => or_none(t.copay_cap.as_ref().map(copay)),
            FaceItem::IncomeSegment => or_none(t.income_segment.as_ref().map(ToString::to_string)),
            FaceItem::DesignatedInstitutions if t.designated_institutions.is_empty() => or_none(None),
            FaceItem::DesignatedInstitutions => t.designated_institutions.iter().map(ToString::to_string).collect(),
            FaceItem::Disease => or_none(t.disease.as_ref().map(ToString::to_string)),
            FaceItem::IssueDate => one(wareki(issued)),
            FaceItem::Issuer => one(template.issuer.clone()),
            FaceItem::Notes if template.notes.is_empty() => continue,
            FaceItem::Notes => template.notes.lines().map(str::to_owned).collect(),
            FaceItem::Contact if template.contact.is_empty() => continue,
            FaceItem::Contact => template.contact.lines().map(str::to_owned).collect(),
        };
        lines.push(FaceLine { item: *item, label: item.label(), lines: values });
    }
    Ok(Face {
        title: program.certificate_name.clone(),
        size: template.size,
        reissued: !certificate.reissues.is_empty(),
        certificate: certificate.id.to_string(),
        lines,
        position,
        verification_code: verification_code(hash_hex),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_amounts() {
        assert_eq!(verification_code("c40e2db74b99472e6ac2"), "C40E-2DB7-4B99");
        assert_eq!(yen(1234567), "1,234,567");
        assert_eq!(yen(999), "999");
        assert_eq!(yen(1000), "1,000");
        assert_eq!(yen(0), "0");
        assert_eq!(yen(-1000), "-1,000");
    }
}
