//! `decide`: every business rule, pure and synchronous. Given the recipient's state, a command
//! and the facts looked up for it (the [`Context`]), it returns the events to record or a
//! [`Rejection`].
//!
//! Order of checks (early returns; the first failing rule is the one reported):
//! 1. idempotency: a known command id returns [`Decision::AlreadyApplied`] (same content) or
//!    [`Rejection::IdempotencyKeyReused`] (different content);
//! 2. approval: an approver must differ from the actor;
//! 3. registration: only `register_recipient` before registration, never after;
//! 4. dates: not before birth; not after today, except grants and renewals up to the program's
//!    `advance_days`;
//! 5. the command's own rules (life status, certificates, periods, age limits, rescinds), among
//!    them the privacy rules: a DV-protected address the decider may not see is not compared
//!    with input; for a person with any protection, someone who may not see protected addresses
//!    records no address or place (nor rescinds one), and neither ends a measure nor rescinds
//!    one; a rescind of a My Number link needs an approver;
//! 6. the pair assertion: the resulting state is computed with `evolve`'s own code and must
//!    satisfy [`Recipient::check_invariants`]; otherwise nothing is written
//!    ([`Rejection::InvariantViolation`]).

use chrono::{Days, NaiveDate};

use crate::certificate::{Terms, TermsChange};
use crate::command::{BasicInfo, Command, CommandBody, Fingerprint, Grant, ResidentRecord};
use crate::config::{Config, Program};
use crate::event::{Event, EventBody};
use crate::ids::{CertificateRef, CommandId};
use crate::numbers::RecipientNumber;
use crate::period::Period;
use crate::privacy::Protection;
use crate::rejection::Rejection;
use crate::state::{Certificate, Recipient, Residency, State, apply, replay};

/// Who, if anyone, already holds a My Number: looked up by the caller in the My Number index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MyNumberHolder {
    /// No recipient.
    #[default]
    Nobody,
    /// The recipient of this command.
    ThisRecipient,
    /// Another recipient.
    Another,
}

/// Facts from outside the stream, looked up before deciding.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// Today's date in Japan (the recorded date).
    pub today: NaiveDate,
    /// The municipality's programs.
    pub config: &'a Config,
    /// The fingerprint of an earlier command with the same id, anywhere in the ledger.
    pub prior: Option<Fingerprint>,
    /// For `link_my_number`: who holds the number already.
    pub my_number_holder: MyNumberHolder,
    /// Whether whoever decides now (the actor at a check, the approver at an approval) may see
    /// a DV-protected address ([`crate::privacy::sees_protected_addresses`]). When not, a protected
    /// address is never compared with input (the answer would confirm a guess) and never
    /// changed by them ([`Rejection::ProtectedAddressWithheld`]).
    pub sees_protected_addresses: bool,
}

impl<'a> Context<'a> {
    /// The operator's context (CLI, import, demo) with nothing looked up: no prior command,
    /// nobody holding the number; the operator owns the ledger's files and sees every address.
    pub fn new(today: NaiveDate, config: &'a Config) -> Self {
        Self { today, config, prior: None, my_number_holder: MyNumberHolder::Nobody, sees_protected_addresses: true }
    }
}

/// What to do with a command that is not rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Record these events, in this order, atomically.
    Record(Vec<Event>),
    /// The same command was recorded before: return its first outcome, record nothing.
    AlreadyApplied,
}

/// Decides `cmd` against `state`. Pure: the same inputs always give the same answer.
pub fn decide(state: &State, cmd: &Command, ctx: &Context<'_>) -> Result<Decision, Rejection> {
    // 1. Idempotency first.
    if let Some(prior) = ctx.prior {
        return if prior == cmd.fingerprint() {
            Ok(Decision::AlreadyApplied)
        } else {
            Err(Rejection::IdempotencyKeyReused)
        };
    }
    if state.entry(&cmd.id).is_some() {
        // The caller did not find the id, but this stream has it: refuse rather than guess.
        return Err(Rejection::IdempotencyKeyReused);
    }
    // 2. Approval.
    if cmd.body.approver() == Some(&cmd.actor) {
        return Err(Rejection::ApproverIsActor);
    }
    // 3. Registration.
    let recipient = match (&cmd.body, state.recipient()) {
        (CommandBody::RegisterRecipient(_), Some(_)) => return Err(Rejection::RecipientAlreadyRegistered),
        (CommandBody::RegisterRecipient(info), None) => {
            let events = register(cmd, info, ctx)?;
            return checked(state, events);
        }
        (_, None) => return Err(Rejection::RecipientNotRegistered),
        (_, Some(r)) => r,
    };
    // 4. Dates common to all commands about a registered person.
    if cmd.effective < recipient.birth_date {
        return Err(Rejection::DateBeforeBirth);
    }
    // 5. The command's own rules.
    let event = |body: EventBody| vec![Event { command: cmd.id.clone(), effective: cmd.effective, body }];
    // The current address, when the decider may not see it (covered by a DV support measure).
    let protection = Protection::of_state(state);
    let address_withheld = !ctx.sees_protected_addresses && protection.covers(recipient.address.as_str());
    // A place recorded for a person with any protection, by someone who may not see what it
    // covers: refused whatever the value, since how it would be shown (hidden or not) or sent
    // (changed or not) would tell whether a guess names a covered place.
    let places_withheld = !ctx.sees_protected_addresses && protection.any();
    let events = match &cmd.body {
        CommandBody::RegisterRecipient(_) => return Err(Rejection::RecipientAlreadyRegistered),
        CommandBody::LinkMyNumber { my_number, approver, resident_record } => {
            not_after_today(cmd, ctx)?;
            if recipient.my_number.as_ref() == Some(my_number) {
                return Err(Rejection::MyNumberUnchanged);
            }
            if ctx.my_number_holder == MyNumberHolder::Another {
                return Err(Rejection::MyNumberInUse);
            }
            // A withheld address is compared at the approval, by an approver who may see it.
            let fields = mismatched_fields(recipient, resident_record, !address_withheld);
            if !fields.is_empty() {
                return Err(Rejection::BasicInfoMismatch { fields });
            }
            let (my_number, approver) = (my_number.clone(), approver.clone());
            event(match recipient.my_number {
                None => EventBody::MyNumberLinked { my_number, approver },
                Some(_) => EventBody::MyNumberCorrected { my_number, approver },
            })
        }
        CommandBody::ChangePersonalDetails { name, kana, address } => {
            not_after_today(cmd, ctx)?;
            if address.is_some() && places_withheld {
                return Err(Rejection::ProtectedAddressWithheld);
            }
            // Only what really changes is recorded.
            let name = name.clone().filter(|n| *n != recipient.name);
            let kana = kana.clone().filter(|k| *k != recipient.kana);
            let address = address.clone().filter(|a| *a != recipient.address);
            if name.is_none() && kana.is_none() && address.is_none() {
                return Err(Rejection::NoChange);
            }
            event(EventBody::PersonalDetailsChanged { name, kana, address })
        }
        CommandBody::RecordMoveIn { address, from } => {
            not_after_today(cmd, ctx)?;
            if places_withheld {
                return Err(Rejection::ProtectedAddressWithheld);
            }
            alive(recipient)?;
            match &recipient.residency {
                Residency::Resident { .. } => return Err(Rejection::RecipientAlreadyResident),
                Residency::MovedOut { on, .. } if cmd.effective <= *on => {
                    return Err(Rejection::DateBeforeResidencyChange);
                }
                Residency::MovedOut { .. } => {}
            }
            event(EventBody::MovedIn { address: address.clone(), from: from.clone() })
        }
        CommandBody::RecordMoveOut { to } => {
            not_after_today(cmd, ctx)?;
            if places_withheld {
                return Err(Rejection::ProtectedAddressWithheld);
            }
            alive(recipient)?;
            match &recipient.residency {
                Residency::MovedOut { .. } => return Err(Rejection::RecipientNotResident),
                Residency::Resident { since } if cmd.effective < *since => {
                    return Err(Rejection::DateBeforeResidencyChange);
                }
                Residency::Resident { .. } => {}
            }
            event(EventBody::MovedOut { to: to.clone() })
        }
        CommandBody::RecordDeath => {
            not_after_today(cmd, ctx)?;
            alive(recipient)?;
            event(EventBody::Died)
        }
        CommandBody::StartDvSupport => {
            not_after_today(cmd, ctx)?;
            if recipient.dv_support_since.is_some() {
                return Err(Rejection::DvSupportAlreadyActive);
            }
            event(EventBody::DvSupportStarted)
        }
        CommandBody::EndDvSupport => {
            not_after_today(cmd, ctx)?;
            if !ctx.sees_protected_addresses {
                return Err(Rejection::DvSupportRestricted);
            }
            if recipient.dv_support_since.is_none() {
                return Err(Rejection::DvSupportNotActive);
            }
            event(EventBody::DvSupportEnded)
        }
        CommandBody::GrantCertificate(grant) => event(grant_certificate(state, recipient, cmd, grant, ctx)?),
        CommandBody::RenewCertificate { certificate, valid_from, valid_to, changes } => {
            let cert = certificate_of(recipient, certificate)?;
            let program = program_of(ctx.config, cert)?;
            alive(recipient)?;
            resident(recipient)?;
            if cert.ended.is_some() {
                return Err(Rejection::CertificateEnded);
            }
            in_advance_window(cmd.effective, *valid_from, program, ctx)?;
            let last = cert.last_span().ok_or(Rejection::InvariantViolation)?;
            let last_day = last.period.to().ok_or(Rejection::OpenEndedSpan)?;
            let earliest = last_day.succ_opt().ok_or(Rejection::InvalidPeriod)?;
            let latest = earliest
                .checked_add_days(Days::new(u64::from(program.renewal_gap_days)))
                .ok_or(Rejection::InvalidPeriod)?;
            if *valid_from < earliest || *valid_from > latest {
                return Err(Rejection::RenewalNotContiguous { earliest, latest });
            }
            let terms = last.terms.with(changes);
            check_terms(program, &terms)?;
            let period = period_within_age_limit(program, recipient, *valid_from, *valid_to)?;
            no_overlap(recipient, program, Some(&cert.id), &period)?;
            event(EventBody::CertificateRenewed {
                certificate: cert.id.clone(),
                span: state.next_span(),
                period,
                changes: changes.clone(),
            })
        }
        CommandBody::ChangeCertificate { certificate, changes } => {
            not_after_today(cmd, ctx)?;
            let cert = certificate_of(recipient, certificate)?;
            let program = program_of(ctx.config, cert)?;
            let span = cert.span_on(cmd.effective).ok_or(Rejection::NoSpanOnDate)?;
            let terms = span.terms.with(changes);
            if terms == span.terms {
                return Err(Rejection::NoChange);
            }
            check_terms(program, &terms)?;
            event(EventBody::CertificateChanged {
                certificate: cert.id.clone(),
                span: state.next_span(),
                changes: minimal_change(&span.terms, changes),
            })
        }
        CommandBody::EndCertificate { certificate, reason } => {
            not_after_today(cmd, ctx)?;
            let cert = certificate_of(recipient, certificate)?;
            if cert.span_on(cmd.effective).is_none() {
                return Err(Rejection::NoSpanOnDate);
            }
            event(EventBody::CertificateEnded { certificate: cert.id.clone(), reason: *reason })
        }
        CommandBody::ReissueCertificate { certificate, reason } => {
            not_after_today(cmd, ctx)?;
            let cert = certificate_of(recipient, certificate)?;
            alive(recipient)?;
            if !cert.is_current_or_future_on(ctx.today) {
                return Err(Rejection::CertificateNotCurrent);
            }
            event(EventBody::CertificateReissued { certificate: cert.id.clone(), reason: *reason })
        }
        CommandBody::Rescind { target, reason, approver } => {
            not_after_today(cmd, ctx)?;
            let entry = state.entry(target).ok_or(Rejection::UnknownTarget)?;
            if entry.events.iter().any(|e| matches!(e.body, EventBody::CommandRescinded { .. })) {
                return Err(Rejection::CannotRescindRescind);
            }
            if entry.rescinded_by.is_some() {
                return Err(Rejection::TargetAlreadyRescinded);
            }
            // Re-fold without the target: every later event must still fit, and every
            // invariant must still hold.
            let mut trial: Vec<_> = state.history().to_vec();
            for e in trial.iter_mut().filter(|e| e.command == *target) {
                e.rescinded_by = Some(cmd.id.clone());
            }
            let (after, skips) = replay(&trial);
            let consistent = skips.is_empty() && after.as_ref().is_none_or(|r| r.check_invariants().is_ok());
            if !consistent {
                return Err(Rejection::RescindConflictsWithLaterEvents);
            }
            let undoes = |f: fn(&EventBody) -> bool| entry.events.iter().any(|e| f(&e.body));
            if !ctx.sees_protected_addresses
                && undoes(|b| matches!(b, EventBody::DvSupportStarted | EventBody::DvSupportEnded))
            {
                return Err(Rejection::DvSupportRestricted);
            }
            if places_withheld
                && undoes(|b| {
                    matches!(
                        b,
                        EventBody::PersonalDetailsChanged { address: Some(_), .. }
                            | EventBody::MovedIn { .. }
                            | EventBody::MovedOut { .. }
                    )
                })
            {
                return Err(Rejection::ProtectedAddressWithheld);
            }
            if approver.is_none() && rescind_needs_approval(state, target) {
                return Err(Rejection::ApprovalRequired);
            }
            event(EventBody::CommandRescinded { target: target.clone(), reason: reason.clone() })
        }
    };
    checked(state, events)
}

/// The pair assertion: the events must apply cleanly and leave a state that satisfies every
/// invariant. A failure is a defect in `decide`, refused rather than written.
fn checked(state: &State, events: Vec<Event>) -> Result<Decision, Rejection> {
    let mut next = state.recipient().cloned();
    for e in events.iter().filter(|e| !matches!(e.body, EventBody::CommandRescinded { .. })) {
        apply(&mut next, e).map_err(|_| Rejection::InvariantViolation)?;
    }
    if let Some(r) = &next {
        r.check_invariants().map_err(|_| Rejection::InvariantViolation)?;
    }
    Ok(Decision::Record(events))
}

fn register(cmd: &Command, info: &BasicInfo, ctx: &Context<'_>) -> Result<Vec<Event>, Rejection> {
    if info.birth_date > ctx.today {
        return Err(Rejection::BirthDateInFuture);
    }
    if cmd.effective < info.birth_date {
        return Err(Rejection::DateBeforeBirth);
    }
    not_after_today(cmd, ctx)?;
    Ok(vec![Event {
        command: cmd.id.clone(),
        effective: cmd.effective,
        body: EventBody::RecipientRegistered { recipient: cmd.recipient.clone(), info: info.clone() },
    }])
}

fn grant_certificate(
    state: &State,
    recipient: &Recipient,
    cmd: &Command,
    grant: &Grant,
    ctx: &Context<'_>,
) -> Result<EventBody, Rejection> {
    alive(recipient)?;
    resident(recipient)?;
    let program = ctx.config.program(&grant.program).ok_or(Rejection::UnknownProgram)?;
    in_advance_window(cmd.effective, grant.valid_from, program, ctx)?;
    if grant.valid_from < recipient.birth_date {
        return Err(Rejection::DateBeforeBirth);
    }
    if recipient.certificate(&grant.certificate).is_some() {
        return Err(Rejection::CertificateAlreadyExists);
    }
    check_terms(program, &grant.terms)?;
    let period = period_within_age_limit(program, recipient, grant.valid_from, grant.valid_to)?;
    no_overlap(recipient, program, None, &period)?;
    Ok(EventBody::CertificateGranted {
        certificate: grant.certificate.clone(),
        program: program.key.clone(),
        span: state.next_span(),
        period,
        terms: grant.terms.clone(),
    })
}

fn not_after_today(cmd: &Command, ctx: &Context<'_>) -> Result<(), Rejection> {
    if cmd.effective > ctx.today { Err(Rejection::EffectiveDateInFuture) } else { Ok(()) }
}

/// Grants and renewals may be decided in advance, up to the program's `advance_days`.
fn in_advance_window(
    effective: NaiveDate,
    valid_from: NaiveDate,
    program: &Program,
    ctx: &Context<'_>,
) -> Result<(), Rejection> {
    let latest = ctx
        .today
        .checked_add_days(Days::new(u64::from(program.advance_days)))
        .ok_or(Rejection::EffectiveDateInFuture)?;
    if effective > latest {
        return Err(Rejection::EffectiveDateTooFarAhead { latest });
    }
    if valid_from > latest {
        return Err(Rejection::ValidFromTooFarAhead { latest });
    }
    Ok(())
}

fn alive(recipient: &Recipient) -> Result<(), Rejection> {
    if recipient.died_on.is_some() { Err(Rejection::RecipientDeceased) } else { Ok(()) }
}

fn resident(recipient: &Recipient) -> Result<(), Rejection> {
    if recipient.is_resident() { Ok(()) } else { Err(Rejection::RecipientNotResident) }
}

fn certificate_of<'r>(recipient: &'r Recipient, id: &CertificateRef) -> Result<&'r Certificate, Rejection> {
    recipient.certificate(id).ok_or(Rejection::UnknownCertificate)
}

fn program_of<'c>(config: &'c Config, cert: &Certificate) -> Result<&'c Program, Rejection> {
    config.program(&cert.program).ok_or(Rejection::UnknownProgram)
}

/// Payer number present when required and one of the program's; recipient number under the
/// program's rule.
fn check_terms(program: &Program, terms: &Terms) -> Result<(), Rejection> {
    match &terms.payer_number {
        None if program.payer_number_required => return Err(Rejection::PayerNumberRequired),
        None => {}
        Some(p) if !program.payer_numbers.contains(p) => return Err(Rejection::PayerNumberNotInProgram),
        Some(_) => {}
    }
    RecipientNumber::parse(terms.recipient_number.as_str(), program.recipient_number_rule)
        .map_err(Rejection::RecipientNumberInvalid)?;
    Ok(())
}

/// The period of a grant or renewal: an omitted last day becomes the program's age limit (if it
/// has one); a given one may not exceed it.
fn period_within_age_limit(
    program: &Program,
    recipient: &Recipient,
    valid_from: NaiveDate,
    valid_to: Option<NaiveDate>,
) -> Result<Period, Rejection> {
    let limit = match program.age_limit {
        Some(rule) => Some(rule.last_day(recipient.birth_date).ok_or(Rejection::InvalidPeriod)?),
        None => None,
    };
    let valid_to = match (limit, valid_to) {
        (Some(last_day), _) if valid_from > last_day => return Err(Rejection::AgeLimitReached { last_day }),
        (Some(last_day), Some(to)) if to > last_day => return Err(Rejection::BeyondAgeLimit { last_day }),
        (Some(last_day), None) => Some(last_day),
        (_, given) => given,
    };
    Period::new(valid_from, valid_to).map_err(|_| Rejection::InvalidPeriod)
}

/// No other certificate of the program may overlap `period` (`except`: the certificate being
/// renewed, whose own spans are ordered by the renewal rule).
fn no_overlap(
    recipient: &Recipient,
    program: &Program,
    except: Option<&CertificateRef>,
    period: &Period,
) -> Result<(), Rejection> {
    let overlaps = recipient
        .certificates
        .iter()
        .filter(|c| c.program == program.key && Some(&c.id) != except)
        .flat_map(|c| &c.spans)
        .any(|s| s.period.overlaps(period));
    if overlaps { Err(Rejection::OverlappingCertificate) } else { Ok(()) }
}

/// The names of the basic items that differ between the recipient and the resident record.
/// Names and addresses are compared ignoring spaces and full-/half-width ASCII; nothing else is
/// folded (a variant kanji is a real difference to resolve first).
/// Whether rescinding command `target` of this stream needs an approver: it linked or
/// corrected a My Number, which took a second person.
pub fn rescind_needs_approval(state: &State, target: &CommandId) -> bool {
    state.entry(target).is_some_and(|e| {
        e.events
            .iter()
            .any(|ev| matches!(ev.body, EventBody::MyNumberLinked { .. } | EventBody::MyNumberCorrected { .. }))
    })
}

fn mismatched_fields(recipient: &Recipient, record: &ResidentRecord, compare_address: bool) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if comparable(recipient.name.as_str()) != comparable(record.name.as_str()) {
        fields.push("氏名");
    }
    if recipient.birth_date != record.birth_date {
        fields.push("生年月日");
    }
    if recipient.sex != record.sex {
        fields.push("性別");
    }
    if compare_address && comparable(recipient.address.as_str()) != comparable(record.address.as_str()) {
        fields.push("住所");
    }
    fields
}

fn comparable(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match u32::from(c) {
            cp @ 0xFF01..=0xFF5E => char::from_u32(cp - 0xFEE0).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// Only the attributes that really change, so the event says exactly what changed.
fn minimal_change(current: &Terms, change: &TermsChange) -> TermsChange {
    TermsChange {
        payer_number: change.payer_number.filter(|p| *p != current.payer_number),
        recipient_number: change.recipient_number.clone().filter(|r| *r != current.recipient_number),
        copay_cap: change.copay_cap.clone().filter(|c| *c != current.copay_cap),
        income_segment: change.income_segment.clone().filter(|s| *s != current.income_segment),
        designated_institutions: change
            .designated_institutions
            .clone()
            .filter(|d| *d != current.designated_institutions),
        disease: change.disease.clone().filter(|d| *d != current.disease),
        always_reimbursement: change.always_reimbursement.filter(|b| *b != current.always_reimbursement),
    }
}
