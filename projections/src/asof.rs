//! 時点照会 (as-of views): a recipient on an effective date D as the ledger knew it at position
//! P. Read from the log itself, not from the projection, so any past knowledge can be shown.
//!
//! Person-level facts (name, address, residency, death, DV measure) are those of the events
//! recorded by P that took effect by D; certificates are those known at P, each with the span
//! covering D. Rescinds recorded by P always count: as known then, the target never happened.
//!
//! What a viewer sees of it is not decided by the state shown: the person's protection is read
//! from the whole stream at the head ([`AsOf::protection`]) and applied through
//! `daicho_domain::privacy`, so a view of the past never shows what is protected now.

use chrono::NaiveDate;
use daicho_domain::certificate::CopayCap;
use daicho_domain::event::{Event, EventBody};
use daicho_domain::ids::CommandId;
use daicho_domain::privacy::{self, Protection};
use daicho_domain::state::{Recipient, Residency, State};
use daicho_domain::{codec, evolve};
use daicho_store::{Position, Store, StreamId};
use serde::Serialize;

use crate::ProjectionError;

/// The events of a stream recorded at or before `at`, decoded.
pub fn events_until(store: &Store, stream: &StreamId, at: Position) -> Result<Vec<(Position, Event)>, ProjectionError> {
    let mut out = Vec::new();
    for e in store.read_stream(stream)? {
        if e.position > at {
            break;
        }
        let body = codec::decode(&e.event_type, e.schema_version, &e.payload)
            .map_err(|x| ProjectionError::Event { position: e.position.0, reason: x.to_string() })?;
        let command = CommandId::parse(&e.correlation_id)
            .map_err(|x| ProjectionError::Event { position: e.position.0, reason: x.code().to_owned() })?;
        out.push((e.position, Event { command, effective: e.effective, body }));
    }
    Ok(out)
}

/// A recipient on `on` as known at `at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AsOf {
    /// Person-level facts in force on the date.
    pub person: Option<Recipient>,
    /// Everything known at the position (certificates with all their spans).
    pub known: Option<Recipient>,
    /// The person's protection at the head of the log (not at `at`).
    pub protection: Protection,
}

/// Computes the as-of view.
pub fn as_of(store: &Store, stream: &StreamId, at: Position, on: NaiveDate) -> Result<AsOf, ProjectionError> {
    let all = events_until(store, stream, Position(u64::MAX))?;
    let protection = Protection::of(all.iter().map(|(_, e)| e));
    let events: Vec<&(Position, Event)> = all.iter().filter(|(p, _)| *p <= at).collect();
    let known = events.iter().fold(State::default(), |s, (_, e)| evolve(s, e));
    let person = events
        .iter()
        .filter(|(_, e)| e.effective <= on || matches!(e.body, EventBody::CommandRescinded { .. }))
        .fold(State::default(), |s, (_, e)| evolve(s, e));
    Ok(AsOf { person: person.recipient().cloned(), known: known.recipient().cloned(), protection })
}

/// One certificate in a view.
#[derive(Serialize)]
pub struct CertificateView {
    pub certificate: String,
    pub program: String,
    pub eligible_on_date: bool,
    pub span_on_date: Option<SpanView>,
    pub spans: Vec<SpanView>,
    pub ended: Option<String>,
    pub reissues: usize,
}

/// One span in a view.
#[derive(Serialize)]
pub struct SpanView {
    pub span: u32,
    pub valid_from: String,
    pub valid_to: Option<String>,
    pub payer_number: Option<String>,
    pub recipient_number: String,
    pub income_segment: Option<String>,
    /// 自己負担上限額 as the card prints it.
    pub copay_cap: Option<String>,
}

/// The view printed by `daicho show` (My Number masked).
#[derive(Serialize)]
pub struct RecipientView {
    pub recipient: String,
    pub internal_number: u64,
    pub as_of_date: String,
    pub as_at_position: u64,
    pub registered: bool,
    pub name: Option<String>,
    pub kana: Option<String>,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    pub address: Option<String>,
    pub my_number: Option<String>,
    pub resident: Option<bool>,
    pub died_on: Option<String>,
    pub dv_support: Option<bool>,
    /// Under a DV support measure now (at the head), whatever the moment shown.
    pub protected_at_head: bool,
    pub certificates: Vec<CertificateView>,
}

fn span_view(s: &daicho_domain::state::Span) -> SpanView {
    SpanView {
        span: s.no.0,
        valid_from: s.period.from().to_string(),
        valid_to: s.period.to().map(|d| d.to_string()),
        payer_number: s.terms.payer_number.map(|p| p.as_string()),
        recipient_number: s.terms.recipient_number.to_string(),
        income_segment: s.terms.income_segment.as_ref().map(ToString::to_string),
        copay_cap: s.terms.copay_cap.as_ref().map(CopayCap::describe),
    }
}

impl AsOf {
    /// The printable view, as `policy` (made from [`AsOf::protection`]) lets its viewer see it.
    pub fn view(&self, n: u64, at: Position, on: NaiveDate, policy: &privacy::View) -> RecipientView {
        let p = self.person.as_ref();
        let k = self.known.as_ref();
        let dv = p.map(|r| r.dv_support_since.is_some());
        RecipientView {
            recipient: k.map(|r| r.id.to_string()).unwrap_or_default(),
            internal_number: n,
            as_of_date: on.to_string(),
            as_at_position: at.0,
            registered: k.is_some(),
            name: p.map(|r| r.name.to_string()),
            kana: p.map(|r| r.kana.to_string()),
            birth_date: p.map(|r| r.birth_date.to_string()),
            sex: p.map(|r| r.sex.code().to_owned()),
            address: p.map(|r| policy.place(r.address.as_str()).to_owned()),
            my_number: p.and_then(|r| r.my_number.as_ref().map(|m| policy.my_number(m, false))),
            resident: p.map(|r| matches!(r.residency, Residency::Resident { .. })),
            died_on: p.and_then(|r| r.died_on.map(|d| d.to_string())),
            dv_support: dv,
            protected_at_head: policy.protected_at_head(),
            certificates: k
                .map(|r| {
                    r.certificates
                        .iter()
                        .map(|c| {
                            let on_date = c.span_on(on);
                            CertificateView {
                                certificate: c.id.to_string(),
                                program: c.program.to_string(),
                                eligible_on_date: on_date.is_some(),
                                span_on_date: on_date.map(span_view),
                                spans: c.spans.iter().map(span_view).collect(),
                                ended: c.ended.map(|e| format!("{} {}", e.on, e.reason.label())),
                                reissues: c.reissues.len(),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}
