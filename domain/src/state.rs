//! 受給者の状態 (state of one recipient stream) and `evolve`, which applies an event without
//! judging it.
//!
//! The state keeps the stream's commands with their events, so that a rescind can re-fold the
//! remaining ones: "as if it had never happened" is then true by construction. The derived
//! [`Recipient`] is what screens, PMH records and certificates read.
//!
//! `evolve` never fails and never panics. An event that does not fit the state (it cannot
//! happen for events `decide` produced) is skipped; [`replay`] reports such skips, and
//! [`Recipient::check_invariants`] states what must always hold. `decide` checks both on the
//! state its events would produce, so a broken rule is refused before it is written.

use chrono::NaiveDate;

use crate::certificate::{EndReason, ReissueReason, Terms};
use crate::config::ProgramKey;
use crate::event::{Event, EventBody};
use crate::ids::{CertificateRef, CommandId, RecipientRef, SpanNo};
use crate::numbers::MyNumber;
use crate::period::Period;
use crate::text::{Address, Kana, PersonName, PlaceName, Sex};

/// One validity span of a certificate with the terms valid during it: the unit PMH receives as
/// a history record (履歴).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// Never reused within the stream.
    pub no: SpanNo,
    /// First and last day.
    pub period: Period,
    /// Attributes during the span.
    pub terms: Terms,
}

/// How and when a certificate ended before its natural expiry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ending {
    /// Last day of eligibility.
    pub on: NaiveDate,
    /// Why.
    pub reason: EndReason,
}

/// A paper certificate reissued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reissue {
    /// Effective date of the reissue.
    pub on: NaiveDate,
    /// Why.
    pub reason: ReissueReason,
}

/// 受給者証 (certificate): one recipient's entitlement under one program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// The caller's id.
    pub id: CertificateRef,
    /// Program.
    pub program: ProgramKey,
    /// Effective date of the grant.
    pub granted_on: NaiveDate,
    /// Spans, in date order, never overlapping.
    pub spans: Vec<Span>,
    /// Set when eligibility was lost, or the person moved out or died.
    pub ended: Option<Ending>,
    /// Reissues, oldest first.
    pub reissues: Vec<Reissue>,
}

impl Certificate {
    /// The span containing `day`.
    pub fn span_on(&self, day: NaiveDate) -> Option<&Span> {
        self.spans.iter().find(|s| s.period.contains(day))
    }

    /// The latest span.
    pub fn last_span(&self) -> Option<&Span> {
        self.spans.last()
    }

    /// Whether some span ends on or after `day` (current or still to come).
    pub fn is_current_or_future_on(&self, day: NaiveDate) -> bool {
        self.spans.iter().any(|s| s.period.end() >= day)
    }
}

/// 住所の状態 (residency).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Residency {
    /// Lives in the municipality since the date.
    Resident { since: NaiveDate },
    /// Moved out on the date, to the place.
    MovedOut { on: NaiveDate, to: PlaceName },
}

/// 受給者 (recipient) as the active events make it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    /// The caller's id.
    pub id: RecipientRef,
    /// Effective date of the registration.
    pub registered_on: NaiveDate,
    /// 氏名.
    pub name: PersonName,
    /// 氏名カナ.
    pub kana: Kana,
    /// 生年月日.
    pub birth_date: NaiveDate,
    /// 性別.
    pub sex: Sex,
    /// 住所 (the last known one after a move-out).
    pub address: Address,
    /// 個人番号, once linked.
    pub my_number: Option<MyNumber>,
    /// Resident or moved out.
    pub residency: Residency,
    /// 死亡日.
    pub died_on: Option<NaiveDate>,
    /// Start of the current DV support measure (支援措置), if one is in force.
    pub dv_support_since: Option<NaiveDate>,
    /// Certificates in the order granted.
    pub certificates: Vec<Certificate>,
}

impl Recipient {
    /// The certificate with the caller's id `id`.
    pub fn certificate(&self, id: &CertificateRef) -> Option<&Certificate> {
        self.certificates.iter().find(|c| c.id == *id)
    }

    /// Whether the person lives in the municipality.
    pub fn is_resident(&self) -> bool {
        matches!(self.residency, Residency::Resident { .. })
    }

    /// Checks what must always hold; the first violation found, named.
    ///
    /// Spans of a certificate are in date order and do not overlap; spans of certificates of
    /// one program do not overlap; span numbers are unique; nothing extends past a death.
    pub fn check_invariants(&self) -> Result<(), Violation> {
        let mut numbers = Vec::new();
        for (i, cert) in self.certificates.iter().enumerate() {
            if self.certificates[..i].iter().any(|c| c.id == cert.id) {
                return Err(Violation::DuplicateCertificate);
            }
            for pair in cert.spans.windows(2) {
                if pair[0].period.end() >= pair[1].period.from() {
                    return Err(Violation::SpansOutOfOrder);
                }
            }
            for other in self.certificates[..i].iter().filter(|c| c.program == cert.program) {
                let overlap = cert.spans.iter().any(|a| other.spans.iter().any(|b| a.period.overlaps(&b.period)));
                if overlap {
                    return Err(Violation::OverlappingProgramSpans);
                }
            }
            if let Some(died) = self.died_on
                && cert.spans.iter().any(|s| s.period.end() > died)
            {
                return Err(Violation::SpanAfterDeath);
            }
            numbers.extend(cert.spans.iter().map(|s| s.no));
        }
        numbers.sort_unstable();
        if numbers.windows(2).any(|w| w[0] == w[1]) {
            return Err(Violation::DuplicateSpanNumber);
        }
        Ok(())
    }
}

/// A state that must never exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two certificates with one id.
    DuplicateCertificate,
    /// Spans of one certificate out of order or overlapping.
    SpansOutOfOrder,
    /// Spans of two certificates of one program overlap.
    OverlappingProgramSpans,
    /// A span extends past the date of death.
    SpanAfterDeath,
    /// A span number used twice.
    DuplicateSpanNumber,
}

/// One command applied to the stream, with its events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The command.
    pub command: CommandId,
    /// Its events, in order.
    pub events: Vec<Event>,
    /// The rescind command that undid it, if any.
    pub rescinded_by: Option<CommandId>,
}

/// The state of one recipient stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    history: Vec<Entry>,
    recipient: Option<Recipient>,
    spans_allocated: u32,
}

impl State {
    /// The recipient as the active events make it; `None` before registration (or after the
    /// registration was rescinded).
    pub fn recipient(&self) -> Option<&Recipient> {
        self.recipient.as_ref()
    }

    /// Every command applied, oldest first, rescinded ones included.
    pub fn history(&self) -> &[Entry] {
        &self.history
    }

    /// The entry of command `id`.
    pub fn entry(&self, id: &CommandId) -> Option<&Entry> {
        self.history.iter().find(|e| e.command == *id)
    }

    /// The highest span number ever allocated in the stream.
    pub fn spans_allocated(&self) -> u32 {
        self.spans_allocated
    }

    /// The next span number to allocate.
    pub fn next_span(&self) -> SpanNo {
        SpanNo(self.spans_allocated.saturating_add(1))
    }

    fn record(&mut self, event: &Event) {
        match self.history.last_mut() {
            Some(last) if last.command == event.command => last.events.push(event.clone()),
            _ => self.history.push(Entry {
                command: event.command.clone(),
                events: vec![event.clone()],
                rescinded_by: None,
            }),
        }
    }
}

/// An event that did not fit the state it was applied to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    /// The command whose event was skipped.
    pub command: CommandId,
    /// Why, in English (for integrity reports, never shown as a business message).
    pub reason: &'static str,
}

/// Applies `event` to `state`, without judging it.
pub fn evolve(mut state: State, event: &Event) -> State {
    if let Some(span) = event.span() {
        state.spans_allocated = state.spans_allocated.max(span.0);
    }
    state.record(event);
    if let EventBody::CommandRescinded { target, .. } = &event.body {
        for entry in state.history.iter_mut().filter(|e| e.command == *target) {
            entry.rescinded_by = Some(event.command.clone());
        }
        state.recipient = replay(&state.history).0;
    } else {
        // A skip cannot happen for events decide produced; replay() reports it when auditing.
        let _ = apply(&mut state.recipient, event);
    }
    state
}

/// Re-folds the active (not rescinded) events of `history`, reporting every event that did not
/// fit.
pub fn replay(history: &[Entry]) -> (Option<Recipient>, Vec<Skip>) {
    let mut recipient = None;
    let mut skips = Vec::new();
    for event in history.iter().filter(|e| e.rescinded_by.is_none()).flat_map(|e| &e.events) {
        if matches!(event.body, EventBody::CommandRescinded { .. }) {
            continue;
        }
        if let Err(reason) = apply(&mut recipient, event) {
            skips.push(Skip { command: event.command.clone(), reason });
        }
    }
    (recipient, skips)
}

/// Applies a non-rescind event to a recipient alone, without the stream's history: what
/// [`evolve`] does for every event but a rescind. For projections that keep only the derived
/// recipient; a rescind needs the history, so they re-fold the stream instead. A misfit (which
/// `decide` never produces) leaves the recipient unchanged.
pub fn apply_event(recipient: &mut Option<Recipient>, event: &Event) {
    let _ = apply(recipient, event);
}

/// Applies one non-rescind event; `Err` names why it did not fit (and nothing changed).
///
/// "Fit" is structural: the recipient exists, the certificate exists, a move-in follows a
/// move-out, a correction has something to correct. Business rules stay in `decide`; these
/// checks are what lets a rescind find the later events that depended on its target.
pub(crate) fn apply(recipient: &mut Option<Recipient>, event: &Event) -> Result<(), &'static str> {
    let day = event.effective;
    if let EventBody::RecipientRegistered { recipient: id, info } = &event.body {
        if recipient.is_some() {
            return Err("recipient already registered");
        }
        *recipient = Some(Recipient {
            id: id.clone(),
            registered_on: day,
            name: info.name.clone(),
            kana: info.kana.clone(),
            birth_date: info.birth_date,
            sex: info.sex,
            address: info.address.clone(),
            my_number: None,
            residency: Residency::Resident { since: day },
            died_on: None,
            dv_support_since: None,
            certificates: Vec::new(),
        });
        return Ok(());
    }
    let r = recipient.as_mut().ok_or("recipient not registered")?;
    match &event.body {
        EventBody::RecipientRegistered { .. } | EventBody::CommandRescinded { .. } => {
            return Err("not applicable here");
        }
        EventBody::MyNumberLinked { my_number, .. } => {
            if r.my_number.is_some() {
                return Err("a My Number is already linked");
            }
            r.my_number = Some(my_number.clone());
        }
        EventBody::MyNumberCorrected { my_number, .. } => {
            if r.my_number.is_none() {
                return Err("no My Number to correct");
            }
            r.my_number = Some(my_number.clone());
        }
        EventBody::PersonalDetailsChanged { name, kana, address } => {
            if let Some(name) = name {
                r.name = name.clone();
            }
            if let Some(kana) = kana {
                r.kana = kana.clone();
            }
            if let Some(address) = address {
                r.address = address.clone();
            }
        }
        EventBody::MovedIn { address, .. } => {
            if r.is_resident() {
                return Err("moved in while resident");
            }
            r.residency = Residency::Resident { since: day };
            r.address = address.clone();
        }
        EventBody::MovedOut { to } => {
            if !r.is_resident() {
                return Err("moved out while not resident");
            }
            r.residency = Residency::MovedOut { on: day, to: to.clone() };
            close_all(r, day, EndReason::MovedOut);
        }
        EventBody::Died => {
            if r.died_on.is_some() {
                return Err("died twice");
            }
            r.died_on = Some(day);
            close_all(r, day, EndReason::Died);
        }
        EventBody::DvSupportStarted => {
            if r.dv_support_since.is_some() {
                return Err("DV support already in force");
            }
            r.dv_support_since = Some(day);
        }
        EventBody::DvSupportEnded => {
            if r.dv_support_since.is_none() {
                return Err("no DV support in force");
            }
            r.dv_support_since = None;
        }
        EventBody::CertificateGranted { certificate, program, span, period, terms } => {
            if r.certificate(certificate).is_some() {
                return Err("certificate already exists");
            }
            r.certificates.push(Certificate {
                id: certificate.clone(),
                program: program.clone(),
                granted_on: day,
                spans: vec![Span { no: *span, period: *period, terms: terms.clone() }],
                ended: None,
                reissues: Vec::new(),
            });
        }
        EventBody::CertificateRenewed { certificate, span, period, changes } => {
            let cert = certificate_mut(r, certificate)?;
            let terms = cert.last_span().ok_or("certificate without spans")?.terms.with(changes);
            cert.spans.push(Span { no: *span, period: *period, terms });
        }
        EventBody::CertificateChanged { certificate, span, changes } => {
            let cert = certificate_mut(r, certificate)?;
            let i = cert.spans.iter().position(|s| s.period.contains(day)).ok_or("no span on the date")?;
            let current = &mut cert.spans[i];
            let terms = current.terms.with(changes);
            if current.period.from() == day {
                current.terms = terms;
            } else {
                let before = current.period.ending_on(day.pred_opt().ok_or("date out of range")?);
                let after = Period::new(day, current.period.to()).map_err(|_| "split out of order")?;
                current.period = before.ok_or("split out of order")?;
                cert.spans.insert(i + 1, Span { no: *span, period: after, terms });
            }
        }
        EventBody::CertificateEnded { certificate, reason } => {
            let cert = certificate_mut(r, certificate)?;
            if cert.span_on(day).is_none() {
                return Err("no span on the date");
            }
            end_certificate(cert, day, EndReason::Lost(*reason));
        }
        EventBody::CertificateReissued { certificate, reason } => {
            certificate_mut(r, certificate)?.reissues.push(Reissue { on: day, reason: *reason });
        }
    }
    Ok(())
}

fn certificate_mut<'a>(r: &'a mut Recipient, id: &CertificateRef) -> Result<&'a mut Certificate, &'static str> {
    r.certificates.iter_mut().find(|c| c.id == *id).ok_or("unknown certificate")
}

/// Ends `cert` on `last`: spans starting later are withdrawn, the span containing `last` ends on
/// it, and the ending is recorded.
fn end_certificate(cert: &mut Certificate, last: NaiveDate, reason: EndReason) {
    cert.spans.retain(|s| s.period.from() <= last);
    for span in &mut cert.spans {
        if let Some(cut) = span.period.ending_on(last) {
            span.period = cut;
        }
    }
    cert.ended = Some(Ending { on: last, reason });
}

/// Move-out and death: every certificate with a span reaching past `last` ends on it; those
/// that had already expired keep their own history.
fn close_all(r: &mut Recipient, last: NaiveDate, reason: EndReason) {
    for cert in &mut r.certificates {
        if cert.spans.iter().any(|s| s.period.end() > last) {
            end_certificate(cert, last, reason);
        }
    }
}
