//! 受給者スナップショット (recipient snapshot): a derived [`Recipient`] as bytes, for projections
//! that must not re-fold a whole stream for every event.
//!
//! Not an event payload and not frozen: projections are rebuildable, so the format carries
//! [`SNAPSHOT_FORMAT`] and a projection that finds another format rebuilds. Values are re-parsed
//! on decoding like event payloads.

use serde::{Deserialize, Serialize};

use super::{CodecError, Decoder, days_to_date, from_bytes, sex_code, sex_from_code, terms_v3, to_bytes, v3};
use crate::certificate::{EndReason, LossReason, ReissueReason};
use crate::codec::{date_to_days, loss_code, loss_from_code, reissue_code, reissue_from_code};
use crate::config::ProgramKey;
use crate::ids::{CertificateRef, RecipientRef, SpanNo};
use crate::numbers::MyNumber;
use crate::state::{Certificate, Ending, Recipient, Reissue, Residency, Span};
use crate::text::{Address, Kana, PersonName, PlaceName};

/// Version of the snapshot format; change it whenever the types below change.
pub const SNAPSHOT_FORMAT: u16 = 2;

const TYPE: &str = "recipient_snapshot";

#[derive(Serialize, Deserialize)]
struct Snap {
    format: u16,
    id: String,
    registered_on: i32,
    name: String,
    kana: String,
    birth_date: i32,
    sex: u8,
    address: String,
    my_number: Option<String>,
    /// `None`: resident since `residency_date`; `Some(to)`: moved out on it.
    moved_to: Option<String>,
    residency_date: i32,
    died_on: Option<i32>,
    dv_since: Option<i32>,
    certificates: Vec<CertSnap>,
}

#[derive(Serialize, Deserialize)]
struct CertSnap {
    id: String,
    program: String,
    granted_on: i32,
    spans: Vec<SpanSnap>,
    /// Date and reason: 1-4 loss reasons, 10 moved out, 11 died.
    ended: Option<(i32, u8)>,
    reissues: Vec<(i32, u8)>,
}

#[derive(Serialize, Deserialize)]
struct SpanSnap {
    no: u32,
    from: i32,
    to: Option<i32>,
    terms: v3::Terms,
}

/// Encodes a recipient.
pub fn encode_recipient(r: &Recipient) -> Result<Vec<u8>, CodecError> {
    let (moved_to, residency_date) = match &r.residency {
        Residency::Resident { since } => (None, date_to_days(*since)),
        Residency::MovedOut { on, to } => (Some(to.to_string()), date_to_days(*on)),
    };
    let snap = Snap {
        format: SNAPSHOT_FORMAT,
        id: r.id.to_string(),
        registered_on: date_to_days(r.registered_on),
        name: r.name.to_string(),
        kana: r.kana.to_string(),
        birth_date: date_to_days(r.birth_date),
        sex: sex_code(r.sex),
        address: r.address.to_string(),
        my_number: r.my_number.as_ref().map(MyNumber::reveal),
        moved_to,
        residency_date,
        died_on: r.died_on.map(date_to_days),
        dv_since: r.dv_support_since.map(date_to_days),
        certificates: r
            .certificates
            .iter()
            .map(|c| CertSnap {
                id: c.id.to_string(),
                program: c.program.to_string(),
                granted_on: date_to_days(c.granted_on),
                spans: c
                    .spans
                    .iter()
                    .map(|s| SpanSnap {
                        no: s.no.0,
                        from: date_to_days(s.period.from()),
                        to: s.period.to().map(date_to_days),
                        terms: terms_v3(&s.terms),
                    })
                    .collect(),
                ended: c.ended.map(|e| {
                    let code = match e.reason {
                        EndReason::Lost(l) => loss_code(l),
                        EndReason::MovedOut => 10,
                        EndReason::Died => 11,
                    };
                    (date_to_days(e.on), code)
                }),
                reissues: c.reissues.iter().map(|r| (date_to_days(r.on), reissue_code(r.reason))).collect(),
            })
            .collect(),
    };
    to_bytes(&snap)
}

/// Decodes a recipient; `Err` also when the format is another one (rebuild).
pub fn decode_recipient(bytes: &[u8]) -> Result<Recipient, CodecError> {
    let s: Snap = from_bytes(TYPE, bytes)?;
    if s.format != SNAPSHOT_FORMAT {
        return Err(CodecError::UnknownType { event_type: TYPE.to_owned(), schema_version: s.format });
    }
    let d = Decoder { event_type: TYPE };
    let date = |field: &'static str, days: i32| d.field(field, days_to_date(days));
    let residency_date = date("residency_date", s.residency_date)?;
    let residency = match s.moved_to {
        None => Residency::Resident { since: residency_date },
        Some(to) => Residency::MovedOut { on: residency_date, to: d.field("moved_to", PlaceName::parse(&to))? },
    };
    let mut certificates = Vec::with_capacity(s.certificates.len());
    for c in s.certificates {
        let mut spans = Vec::with_capacity(c.spans.len());
        for sp in c.spans {
            spans.push(Span { no: SpanNo(sp.no), period: d.period(sp.from, sp.to)?, terms: d.terms(&sp.terms)? });
        }
        let ended = match c.ended {
            None => None,
            Some((on, code)) => {
                let reason = match code {
                    10 => EndReason::MovedOut,
                    11 => EndReason::Died,
                    other => EndReason::Lost(d.field::<LossReason>("ended", loss_from_code(other))?),
                };
                Some(Ending { on: date("ended", on)?, reason })
            }
        };
        let mut reissues = Vec::with_capacity(c.reissues.len());
        for (on, code) in c.reissues {
            let reason: ReissueReason = d.field("reissues", reissue_from_code(code))?;
            reissues.push(Reissue { on: date("reissues", on)?, reason });
        }
        certificates.push(Certificate {
            id: d.field("certificate", CertificateRef::parse(&c.id))?,
            program: d.field("program", ProgramKey::parse(&c.program))?,
            granted_on: date("granted_on", c.granted_on)?,
            spans,
            ended,
            reissues,
        });
    }
    Ok(Recipient {
        id: d.field("id", RecipientRef::parse(&s.id))?,
        registered_on: date("registered_on", s.registered_on)?,
        name: d.field("name", PersonName::parse(&s.name))?,
        kana: d.field("kana", Kana::parse(&s.kana))?,
        birth_date: date("birth_date", s.birth_date)?,
        sex: d.field("sex", sex_from_code(s.sex))?,
        address: d.field("address", Address::parse(&s.address))?,
        my_number: d.opt("my_number", s.my_number.as_deref(), MyNumber::parse)?,
        residency,
        died_on: s.died_on.map(|x| date("died_on", x)).transpose()?,
        dv_support_since: s.dv_since.map(|x| date("dv_since", x)).transpose()?,
        certificates,
    })
}
