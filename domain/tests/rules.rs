//! Given/when/then scenarios: one or more per rule of LIFE_EVENTS.md (by rejection code) and
//! per event type (by its effect). Commands are contract JSON; see `support` for the helper.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use daicho_domain::certificate::{CapKind, CapUnit, EndReason, LossReason, OldCapSetting};
use daicho_domain::event::EventBody;
use daicho_domain::ids::SpanNo;
use daicho_domain::money::Yen;
use daicho_domain::state::Residency;
use daicho_domain::{Context, Decision, MyNumberHolder, Rejection, decide};
use serde_json::json;
use support::*;

// ---- 1. Idempotency -----------------------------------------------------------------------

#[test]
fn same_key_same_content_returns_the_first_outcome() {
    let s = Scenario::new().given(&[register()]);
    let cmd = command(with(grant_kodomo("c1"), json!({"id": "grant-1"})));
    let ctx = Context {
        today: s.today,
        config: &s.config,
        prior: Some(cmd.fingerprint()),
        my_number_holder: MyNumberHolder::Nobody,
        sees_protected_addresses: true,
    };
    assert_eq!(decide(&s.state, &cmd, &ctx), Ok(Decision::AlreadyApplied));
}

#[test]
fn same_key_different_content_is_rejected() {
    let s = Scenario::new().given(&[register()]);
    let first = command(with(grant_kodomo("c1"), json!({"id": "grant-1"})));
    let second = command(with(grant_kodomo("c2"), json!({"id": "grant-1"})));
    assert_ne!(first.fingerprint(), second.fingerprint());
    let ctx = Context {
        today: s.today,
        config: &s.config,
        prior: Some(first.fingerprint()),
        my_number_holder: MyNumberHolder::Nobody,
        sees_protected_addresses: true,
    };
    assert_eq!(decide(&s.state, &second, &ctx), Err(Rejection::IdempotencyKeyReused));
}

#[test]
fn a_key_already_in_the_stream_is_never_reused() {
    rejects(
        &[with(register(), json!({"id": "dup"}))],
        with(grant_kodomo("c1"), json!({"id": "dup"})),
        "idempotency_key_reused",
    );
}

#[test]
fn fingerprints_cover_every_field_and_are_pinned() {
    let a = command(with(grant_kosei("c1"), json!({"id": "x"})));
    // Same command parsed twice: same fingerprint.
    assert_eq!(a.fingerprint(), command(with(grant_kosei("c1"), json!({"id": "x"}))).fingerprint());
    for change in [
        json!({"actor": "caseworker2"}),
        json!({"effective": "2025-03-21"}),
        json!({"valid_to": null}),
        json!({"copay_cap": {"yen": 5000, "unit": "month", "setting": "outpatient"}}),
        json!({"copay_cap": {"kind": "limit", "definition": "入院・外来合算", "yen_month": 5000, "rate_month": 20}}),
        json!({"copay_cap": {"kind": "limit", "definition": "入院・外来合算", "yen_day": 5000}}),
        json!({"copay_cap": {"kind": "fixed", "definition": "入院・外来合算", "yen_month": 5000}}),
        json!({"copay_cap": {"kind": "limit", "yen_month": 5000}}),
        json!({"designated_institutions": ["さくら市立病院", "桜クリニック"]}),
        json!({"always_reimbursement": true}),
    ] {
        let b = command(with(with(grant_kosei("c1"), json!({"id": "x"})), change.clone()));
        assert_ne!(a.fingerprint(), b.fingerprint(), "{change} must change the fingerprint");
    }
    // A cap written in the new form that says exactly what the old form said has the old
    // form's canonical text: a command file applied before the layout changed, applied again,
    // is "already applied", not "same id, other content".
    let new_form = command(with(
        with(grant_kosei("c1"), json!({"id": "x"})),
        json!({"copay_cap": {"kind": "limit", "definition": "入院・外来合算", "yen_month": 5000}}),
    ));
    assert_eq!(a.fingerprint(), new_form.fingerprint());
    // The canonical form is versioned: this vector pins it. If it changes, existing idempotency
    // records no longer match; bump FINGERPRINT_V1 deliberately instead. Computed independently:
    //   h = sha256(b"daicho.command.v1"); for each (name, value): h.update(u64be(len) + bytes)
    let pinned = command(
        json!({"id": "pin-1", "type": "record_death", "actor": "u1", "recipient": "R1", "effective": "2026-04-01"}),
    );
    let hex: String = pinned.fingerprint().0.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "5b9843502b3d37a1d200d83d9fe2c2472ee4c8c1bedd4d65490163e69733103c");
}

// ---- 2. Approval --------------------------------------------------------------------------

#[test]
fn my_number_link_needs_a_second_person() {
    rejects(&[register()], with(link("123456789018"), json!({"actor": "supervisor1"})), "approver_is_actor");
}

// ---- 3. Registration ----------------------------------------------------------------------

#[test]
fn registration_happens_once() {
    rejects(&[register()], register(), "recipient_already_registered");
    rejects(&[], grant_kodomo("c1"), "recipient_not_registered");
}

#[test]
fn registration_records_the_basic_information_as_entered() {
    let (events, s) = accepts(&[], with(register(), json!({"name": "髙橋 𠮷子"})));
    assert!(matches!(events[0].body, EventBody::RecipientRegistered { .. }));
    let r = s.recipient();
    assert_eq!(r.name.as_str(), "髙橋 𠮷子");
    assert_eq!(r.birth_date, date("2015-06-10"));
    assert_eq!(r.residency, Residency::Resident { since: date("2026-04-01") });
    assert_eq!((r.my_number.clone(), r.died_on, r.certificates.len()), (None, None, 0));
}

// ---- 4. Dates -----------------------------------------------------------------------------

#[test]
fn effective_dates_are_not_in_the_future() {
    rejects(
        &[register()],
        json!({"type": "move_out", "to": "横浜市", "effective": "2026-11-23"}),
        "effective_date_in_future",
    );
    rejects(&[register()], json!({"type": "record_death", "effective": "2026-11-23"}), "effective_date_in_future");
    // Today itself is fine.
    accepts(&[register()], json!({"type": "record_death", "effective": TODAY}));
}

#[test]
fn grants_may_be_decided_up_to_the_programs_advance_days() {
    // さくら市: 60 days. Today 2026-11-22 + 60 = 2027-01-21.
    let g = with(grant_kodomo("c1"), json!({"valid_from": "2027-01-21", "valid_to": "2027-03-31"}));
    accepts(&[register()], with(g.clone(), json!({"effective": "2027-01-21"})));
    rejects(&[register()], with(g.clone(), json!({"effective": "2027-01-22"})), "effective_date_too_far_ahead");
    rejects(
        &[register()],
        with(g, json!({"effective": TODAY, "valid_from": "2027-01-22"})),
        "valid_from_too_far_ahead",
    );
}

#[test]
fn nothing_happens_before_birth() {
    rejects(&[register()], json!({"type": "move_out", "to": "横浜市", "effective": "2015-06-09"}), "date_before_birth");
    rejects(&[], with(register(), json!({"effective": "2015-06-09"})), "date_before_birth");
    rejects(&[register()], with(grant_kodomo("c1"), json!({"valid_from": "2015-06-09"})), "date_before_birth");
    rejects(&[], with(register(), json!({"birth_date": "2026-11-23", "effective": TODAY})), "birth_date_in_future");
}

// ---- 5. Life events -----------------------------------------------------------------------

#[test]
fn my_number_is_linked_when_the_four_items_match() {
    let (events, s) = accepts(&[register()], link("123456789018"));
    assert!(
        matches!(&events[0].body, EventBody::MyNumberLinked { approver, .. } if approver.as_str() == "supervisor1")
    );
    assert_eq!(s.recipient().my_number.as_ref().unwrap().reveal(), "123456789018");
    // Spaces and full-width ASCII in the record are not differences.
    let spaced = with(
        link("123456789018"),
        json!({"resident_record":
        {"name": "山田　太郎", "birth_date": "2015-06-10", "sex": "1", "address": "さくら市本町１-２-３"}}),
    );
    accepts(&[register()], spaced);
}

#[test]
fn a_second_link_is_a_correction() {
    let (events, s) = accepts(&[register(), link("123456789018")], link("111111111118"));
    assert!(matches!(events[0].body, EventBody::MyNumberCorrected { .. }));
    assert_eq!(s.recipient().my_number.as_ref().unwrap().reveal(), "111111111118");
    rejects(&[register(), link("123456789018")], link("123456789018"), "my_number_unchanged");
}

#[test]
fn a_my_number_held_by_another_recipient_is_refused() {
    let mut s = Scenario::new().given(&[register()]);
    s.holder = MyNumberHolder::Another;
    assert_eq!(s.run(link("123456789018")).unwrap_err().code(), "my_number_in_use");
    // Nobody holding it, the same command is accepted: the holder decided it.
    s.holder = MyNumberHolder::Nobody;
    assert!(s.run(link("123456789018")).is_ok());
}

#[test]
fn basic_items_must_match_the_resident_record() {
    let record = json!({"name": "山田 太朗", "birth_date": "2015-06-11", "sex": "1", "address": "さくら市本町1-2-3"});
    let mut s = Scenario::new().given(&[register()]);
    let err = s.run(with(link("123456789018"), json!({"resident_record": record}))).unwrap_err();
    assert_eq!(err, Rejection::BasicInfoMismatch { fields: vec!["氏名", "生年月日"] });
    rejects(
        &[register()],
        with(
            link("123456789018"),
            json!({"resident_record":
            {"name": "山田 太郎", "birth_date": "2015-06-10", "sex": "2", "address": "さくら市本町9-9-9"}}),
        ),
        "basic_info_mismatch",
    );
    // A variant kanji is a real difference (髙 is not 高).
    let variant = json!({"name": "山田 太郎", "birth_date": "2015-06-10", "sex": "1", "address": "さくら市本町1-2-3"});
    rejects(
        &[with(register(), json!({"name": "髙田 太郎"}))],
        with(link("123456789018"), json!({"resident_record": with(variant, json!({"name": "高田 太郎"}))})),
        "basic_info_mismatch",
    );
}

#[test]
fn personal_details_change_records_only_what_changed() {
    let (events, s) = accepts(
        &[register()],
        json!({"type": "change_personal_details", "name": "山田 太郎", "address": "さくら市緑町7-8"}),
    );
    match &events[0].body {
        EventBody::PersonalDetailsChanged { name, kana, address } => {
            assert_eq!((name, kana), (&None, &None));
            assert_eq!(address.as_ref().unwrap().as_str(), "さくら市緑町7-8");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.recipient().address.as_str(), "さくら市緑町7-8");
    rejects(&[register()], json!({"type": "change_personal_details", "name": "山田 太郎"}), "no_change");
    rejects(&[register()], json!({"type": "change_personal_details"}), "no_change");
}

#[test]
fn move_out_ends_every_open_span_on_the_move_out_date() {
    let short = with(grant_kodomo("k1"), json!({"valid_to": "2026-12-31"}));
    let renewal = json!({"type": "renew_certificate", "certificate": "k1", "valid_from": "2027-01-01",
                         "valid_to": "2027-03-31", "effective": TODAY});
    let (_, s) =
        accepts(&[register(), short, renewal], json!({"type": "move_out", "to": "横浜市", "effective": "2026-10-15"}));
    let r = s.recipient();
    assert!(!r.is_resident());
    let cert = r.certificate(&"k1".parse_ref()).unwrap();
    assert_eq!(cert.spans.len(), 1, "the renewal span starting after the move-out is withdrawn");
    assert_eq!(cert.spans[0].period.to(), Some(date("2026-10-15")));
    assert_eq!(cert.ended.unwrap().reason, EndReason::MovedOut);
}

#[test]
fn no_grant_or_renewal_after_moving_out_unless_moved_in_again() {
    let out = json!({"type": "move_out", "to": "横浜市", "effective": "2026-06-30"});
    rejects(
        &[register(), out.clone()],
        with(grant_kodomo("k1"), json!({"valid_from": "2026-07-01"})),
        "recipient_not_resident",
    );
    rejects(
        &[register(), out.clone()],
        json!({"type": "move_out", "to": "横浜市", "effective": "2026-07-30"}),
        "recipient_not_resident",
    );
    let back = json!({"type": "move_in", "address": "さくら市本町2-2", "from": "横浜市", "effective": "2026-09-01"});
    let (events, s) = accepts(
        &[register(), out.clone(), back.clone()],
        with(grant_kodomo("k1"), json!({"valid_from": "2026-09-01"})),
    );
    assert!(matches!(events[0].body, EventBody::CertificateGranted { .. }));
    assert_eq!(s.recipient().address.as_str(), "さくら市本町2-2");
    assert_eq!(s.recipient().residency, Residency::Resident { since: date("2026-09-01") });
    // Dates must follow the residency they change.
    rejects(&[register(), out.clone()], with(back, json!({"effective": "2026-06-30"})), "date_before_residency_change");
    rejects(
        &[register()],
        json!({"type": "move_out", "to": "横浜市", "effective": "2026-03-31"}),
        "date_before_residency_change",
    );
    rejects(
        &[register()],
        json!({"type": "move_in", "address": "さくら市本町2-2", "from": "横浜市"}),
        "recipient_already_resident",
    );
}

#[test]
fn death_ends_every_open_span_and_no_grant_follows() {
    let (events, s) =
        accepts(&[register(), grant_kodomo("k1")], json!({"type": "record_death", "effective": "2026-08-31"}));
    assert!(matches!(events[0].body, EventBody::Died));
    let cert = s.recipient().certificate(&"k1".parse_ref()).unwrap();
    assert_eq!(cert.spans[0].period.to(), Some(date("2026-08-31")));
    assert_eq!(cert.ended.unwrap().reason, EndReason::Died);
    let death = json!({"type": "record_death", "effective": "2026-08-31"});
    rejects(
        &[register(), death.clone()],
        with(grant_kodomo("k2"), json!({"program": "hitorioya", "payer_number": "81139990"})),
        "recipient_deceased",
    );
    rejects(
        &[register(), grant_kodomo("k1"), death.clone()],
        json!({"type": "renew_certificate", "certificate": "k1", "valid_from": "2027-04-01"}),
        "recipient_deceased",
    );
    rejects(&[register(), death], json!({"type": "record_death", "effective": "2026-09-01"}), "recipient_deceased");
}

#[test]
fn dv_support_starts_and_ends_once() {
    let start = json!({"type": "start_dv_support", "effective": "2026-05-01"});
    let (events, s) = accepts(&[register()], start.clone());
    assert!(matches!(events[0].body, EventBody::DvSupportStarted));
    assert_eq!(s.recipient().dv_support_since, Some(date("2026-05-01")));
    let (events, s) =
        accepts(&[register(), start.clone()], json!({"type": "end_dv_support", "effective": "2026-10-01"}));
    assert!(matches!(events[0].body, EventBody::DvSupportEnded));
    assert_eq!(s.recipient().dv_support_since, None);
    rejects(&[register(), start], json!({"type": "start_dv_support"}), "dv_support_already_active");
    rejects(&[register()], json!({"type": "end_dv_support"}), "dv_support_not_active");
}

/// A scenario whose decider (a caseworker, a viewer) may not see DV-protected addresses.
fn blind(given: &[serde_json::Value]) -> Scenario {
    let mut s = Scenario::new().given(given);
    s.sees_protected = false;
    s
}

#[test]
fn a_protected_address_is_never_compared_with_a_guess_of_someone_who_may_not_see_it() {
    let start = json!({"type": "start_dv_support", "effective": "2026-05-01"});
    let guess = |address: &str| {
        with(link("123456789018"), json!({"resident_record": with(matching_record(), json!({"address": address}))}))
    };
    // The right address and a wrong one get the same answer: the address is left to the
    // approver, who may see it.
    for address in ["さくら市本町1-2-3", "さくら市緑町9-9-9"] {
        let mut s = blind(&[register(), start.clone()]);
        let events = s.run(guess(address)).unwrap();
        assert!(matches!(events[0].body, EventBody::MyNumberLinked { .. }), "{address}");
    }
    // The approver compares it.
    rejects(&[register(), start.clone()], guess("さくら市緑町9-9-9"), "basic_info_mismatch");
    // Without protection the caseworker's check compares it as always.
    let mut s = blind(&[register()]);
    assert_eq!(s.run(guess("さくら市緑町9-9-9")).unwrap_err(), Rejection::BasicInfoMismatch { fields: vec!["住所"] });
    // Other items are still compared: the answer names them, never the address.
    let mut s = blind(&[register(), start]);
    let wrong_name = with(
        guess("さくら市緑町9-9-9"),
        json!({"resident_record": {"name": "山田 次郎", "birth_date": "2015-06-10",
                                                                   "sex": "1", "address": "さくら市緑町9-9-9"}}),
    );
    assert_eq!(s.run(wrong_name).unwrap_err(), Rejection::BasicInfoMismatch { fields: vec!["氏名"] });
}

#[test]
fn a_protected_address_is_changed_only_by_someone_who_may_see_it() {
    let start = json!({"type": "start_dv_support", "effective": "2026-05-01"});
    let change =
        |address: &str| json!({"type": "change_personal_details", "address": address, "effective": "2026-06-01"});
    // The same address and another one get the same refusal (no "nothing changes" oracle).
    for address in ["さくら市本町1-2-3", "さくら市緑町9-9-9"] {
        let mut s = blind(&[register(), start.clone()]);
        assert_eq!(s.run(change(address)).unwrap_err().code(), "protected_address_withheld");
    }
    // A name change without the address is the caseworker's to record.
    let mut s = blind(&[register(), start.clone()]);
    s.run(json!({"type": "change_personal_details", "name": "山田 一郎", "effective": "2026-06-01"})).unwrap();
    // A supervisor (or the operator) records it.
    accepts(&[register(), start.clone()], change("さくら市緑町9-9-9"));
    // After the measure ends, the person's places are still the privileged's to record: a
    // destination or an address would otherwise be shown hidden exactly when it is a covered one.
    let end = json!({"type": "end_dv_support", "effective": "2026-07-01"});
    let mut s = blind(&[register(), start.clone(), end.clone()]);
    assert_eq!(s.run(change("さくら市緑町9-9-9")).unwrap_err(), Rejection::ProtectedAddressWithheld);
    let out = json!({"type": "move_out", "to": "ひみつ市", "effective": "2026-08-01"});
    assert_eq!(s.run(out).unwrap_err(), Rejection::ProtectedAddressWithheld);
    let moved =
        json!({"id": "mv", "type": "change_personal_details", "address": "さくら市東町4-4", "effective": "2026-08-01"});
    let mut s = blind(&[register(), start.clone(), end, moved]);
    let undo = json!({"type": "rescind", "target": "mv", "reason": "誤り", "effective": "2026-08-02"});
    assert_eq!(s.run(undo).unwrap_err(), Rejection::ProtectedAddressWithheld, "a rescind changes the address too");
    // A move back in changes the address too.
    let out = json!({"type": "move_out", "to": "ひみつ市", "effective": "2026-06-01"});
    let back =
        json!({"type": "move_in", "address": "さくら市本町1-2-3", "from": "ひみつ市", "effective": "2026-08-01"});
    let mut s = blind(&[register(), start, out]);
    assert_eq!(s.run(back).unwrap_err(), Rejection::ProtectedAddressWithheld);
}

#[test]
fn a_measure_is_ended_or_undone_only_by_someone_who_may_see_what_it_protects() {
    let start = json!({"id": "dv", "type": "start_dv_support", "effective": "2026-05-01"});
    let end = json!({"type": "end_dv_support", "effective": "2026-07-01"});
    let mut s = blind(&[register(), start.clone()]);
    assert_eq!(s.run(end.clone()).unwrap_err().code(), "dv_support_restricted");
    let undo = json!({"type": "rescind", "target": "dv", "reason": "誤り", "effective": "2026-05-02"});
    assert_eq!(s.run(undo.clone()).unwrap_err(), Rejection::DvSupportRestricted);
    // A caseworker starts one; a supervisor ends or undoes it.
    blind(&[register()]).run(json!({"type": "start_dv_support", "effective": "2026-05-01"})).unwrap();
    accepts(&[register(), start.clone()], end);
    accepts(&[register(), start], undo);
}

// ---- 6. Certificates ----------------------------------------------------------------------

#[test]
fn a_grant_opens_a_certificate_with_its_first_span() {
    let (events, s) = accepts(&[register_adult()], grant_kosei("c1"));
    match &events[0].body {
        EventBody::CertificateGranted { span, period, .. } => {
            assert_eq!(*span, SpanNo(1));
            assert_eq!((period.from(), period.to()), (date("2025-04-01"), Some(date("2026-03-31"))));
        }
        other => panic!("{other:?}"),
    }
    let cert = s.recipient().certificate(&"c1".parse_ref()).unwrap();
    let terms = &cert.spans[0].terms;
    assert_eq!(terms.payer_number.unwrap().to_string(), "15139991");
    assert_eq!(terms.recipient_number.as_str(), "1234566");
    let cap = terms.copay_cap.as_ref().unwrap();
    // The fixture writes the abolished form: it reads as 上限額, monthly amount, setting as 負担定義.
    assert_eq!(cap.as_old_form(), Some((Yen::new(5000), CapUnit::Month, OldCapSetting::Combined)));
    assert_eq!((cap.kind(), cap.amount().month, cap.rate().month), (CapKind::Limit, Some(Yen::new(5000)), None));
    assert_eq!(cap.definition().map(|d| d.as_str()), Some("入院・外来合算"));
    assert_eq!(terms.designated_institutions[0].as_str(), "さくら市立病院");
    assert!(!terms.always_reimbursement);
}

#[test]
fn grant_rules() {
    rejects(&[register()], with(grant_kodomo("k1"), json!({"program": "nanbyo"})), "unknown_program");
    rejects(
        &[register(), grant_kodomo("k1")],
        with(grant_kodomo("k1"), json!({"program": "hitorioya", "payer_number": "81139990"})),
        "certificate_already_exists",
    );
    rejects(
        &[register()],
        with(grant_kodomo("k1"), json!({"payer_number": "81139990"})),
        "payer_number_not_in_program",
    );
    rejects(&[register()], with(grant_kodomo("k1"), json!({"payer_number": null})), "payer_number_required");
    rejects(&[register_adult()], with(grant_kosei("c1"), json!({"valid_to": "2025-03-31"})), "invalid_period");
}

#[test]
fn a_program_without_payer_numbers_takes_grants_without_one() {
    // A local program that prints no payer number: configured with payer_number_required = false.
    let text = daicho_domain::config::DEMO_TOML
        .replace("payer_numbers = [\"81139990\"]", "payer_numbers = [\"81139990\"]\npayer_number_required = false");
    let mut s = Scenario::new();
    s.config = daicho_domain::config::Config::from_toml(&text).unwrap();
    let mut s = s.given(&[register()]);
    let grant = with(grant_kodomo("h1"), json!({"program": "hitorioya", "payer_number": null}));
    let events = s.run(grant).unwrap();
    assert!(matches!(&events[0].body, EventBody::CertificateGranted { terms, .. } if terms.payer_number.is_none()));
    // A change can set it, and clear it again.
    let set = json!({"type": "change_certificate", "certificate": "h1", "payer_number": "81139990", "effective": "2026-05-01"});
    s.run(set).unwrap();
    let clear =
        json!({"type": "change_certificate", "certificate": "h1", "payer_number": null, "effective": "2026-06-01"});
    s.run(clear).unwrap();
    let cert = s.recipient().certificate(&"h1".parse_ref()).unwrap();
    let payers: Vec<_> = cert.spans.iter().map(|sp| sp.terms.payer_number.map(|p| p.to_string())).collect();
    assert_eq!(payers, [None, Some("81139990".to_owned()), None]);
}

#[test]
fn national_recipient_numbers_pass_their_check_digit() {
    let mut s = Scenario::new().given(&[register_adult()]);
    let err = s.run(with(grant_kosei("c1"), json!({"recipient_number": "1234567"}))).unwrap_err();
    assert_eq!(err.code(), "recipient_number_invalid");
    assert!(matches!(err, Rejection::RecipientNumberInvalid(ref e) if e.code() == "recipient_number_check_digit"));
    rejects(
        &[register_adult()],
        with(grant_kosei("c1"), json!({"recipient_number": "K-1"})),
        "recipient_number_invalid",
    );
    // Local programs take free-form numbers, leading zeros kept.
    let (_, s) = accepts(&[register()], with(grant_kodomo("k1"), json!({"recipient_number": "000120"})));
    let cert = s.recipient().certificate(&"k1".parse_ref()).unwrap();
    assert_eq!(cert.spans[0].terms.recipient_number.as_str(), "000120");
}

#[test]
fn no_two_certificates_of_one_program_overlap() {
    let first = with(grant_kodomo("k1"), json!({"valid_to": "2026-12-31"}));
    let second = with(grant_kodomo("k2"), json!({"valid_from": "2026-12-31", "valid_to": "2027-03-31"}));
    rejects(&[register(), first.clone()], second.clone(), "overlapping_certificate");
    // Adjacent is fine, and other programs are independent.
    accepts(&[register(), first.clone()], with(second, json!({"valid_from": "2027-01-01"})));
    let other = with(grant_kodomo("h1"), json!({"program": "hitorioya", "payer_number": "81139990"}));
    accepts(&[register(), grant_kodomo("k1")], other);
}

#[test]
fn age_limited_programs_end_on_the_first_31_march_after_the_limit_age() {
    // Born 2015-06-10: reaches 18 on 2033-06-09, so こども医療費 ends 2034-03-31.
    let open = {
        let mut v = grant_kodomo("k1");
        v.as_object_mut().unwrap().remove("valid_to");
        v
    };
    let (events, _) = accepts(&[register()], open);
    assert!(
        matches!(&events[0].body, EventBody::CertificateGranted { period, .. } if period.to() == Some(date("2034-03-31")))
    );
    let mut s = Scenario::new().given(&[register()]);
    let err = s.run(with(grant_kodomo("k1"), json!({"valid_to": "2034-04-01"}))).unwrap_err();
    assert_eq!(err, Rejection::BeyondAgeLimit { last_day: date("2034-03-31") });
    rejects(&[register()], with(grant_kodomo("k1"), json!({"valid_to": "2034-04-01"})), "beyond_age_limit");
    // 養育医療 is for under 1 year: the child (11) is past it.
    let yoiku = json!({"type": "grant_certificate", "certificate": "y1", "program": "yoiku", "payer_number": "23139991",
                       "recipient_number": "0000018", "valid_from": "2026-04-01"});
    rejects(&[register()], yoiku, "age_limit_reached");
}

#[test]
fn the_1_april_birthday_belongs_to_the_earlier_school_year() {
    // Born 2008-04-01: reaches 18 on 2026-03-31, so こども医療費 ended 2026-03-31.
    let born_1_april = with(register(), json!({"birth_date": "2008-04-01"}));
    let mut s = Scenario::new().given(&[born_1_april]);
    assert_eq!(
        s.run(with(grant_kodomo("k1"), json!({"valid_from": "2026-04-01"}))).unwrap_err(),
        Rejection::AgeLimitReached { last_day: date("2026-03-31") }
    );
    // Born 2008-04-02: reaches 18 on 2026-04-01, so it runs to 2027-03-31.
    let born_2_april = with(register(), json!({"birth_date": "2008-04-02"}));
    accepts(&[born_2_april], grant_kodomo("k1"));
}

#[test]
fn renewal_adds_a_contiguous_span_with_changed_terms() {
    let renew = json!({"type": "renew_certificate", "certificate": "c1", "valid_from": "2026-04-01",
                       "valid_to": "2027-03-31", "income_segment": "B", "effective": "2026-03-15"});
    let (events, s) = accepts(&[register_adult(), grant_kosei("c1")], renew);
    assert!(matches!(&events[0].body, EventBody::CertificateRenewed { span, .. } if *span == SpanNo(2)));
    let cert = s.recipient().certificate(&"c1".parse_ref()).unwrap();
    assert_eq!(cert.spans.len(), 2);
    assert_eq!(cert.spans[1].period.from(), date("2026-04-01"));
    assert_eq!(cert.spans[1].terms.income_segment.as_ref().unwrap().as_str(), "B");
    assert_eq!(cert.spans[1].terms.payer_number, cert.spans[0].terms.payer_number, "unchanged attributes carry over");
    assert_eq!(cert.spans[0].terms.income_segment.as_ref().unwrap().as_str(), "A");
}

#[test]
fn renewal_rules() {
    let renew = json!({"type": "renew_certificate", "certificate": "c1", "valid_from": "2026-04-02",
                       "valid_to": "2027-03-31", "effective": "2026-03-15"});
    let mut s = Scenario::new().given(&[register_adult(), grant_kosei("c1")]);
    assert_eq!(
        s.run(renew.clone()).unwrap_err(),
        Rejection::RenewalNotContiguous { earliest: date("2026-04-01"), latest: date("2026-04-01") }
    );
    rejects(&[register_adult(), grant_kosei("c1")], renew.clone(), "renewal_not_contiguous");
    rejects(
        &[register_adult(), grant_kosei("c1")],
        with(renew.clone(), json!({"valid_from": "2026-03-31"})),
        "renewal_not_contiguous",
    );
    rejects(&[register_adult()], with(renew.clone(), json!({"certificate": "zz"})), "unknown_certificate");
    let open = with(grant_kosei("c1"), json!({"valid_to": null}));
    rejects(&[register_adult(), open], with(renew.clone(), json!({"valid_from": "2026-04-01"})), "open_ended_span");
    let ended = json!({"type": "end_certificate", "certificate": "c1", "reason": "income", "effective": "2025-09-30"});
    rejects(
        &[register_adult(), grant_kosei("c1"), ended],
        with(renew, json!({"valid_from": "2026-04-01"})),
        "certificate_ended",
    );
}

#[test]
fn a_mid_span_change_splits_the_span() {
    let change = json!({"type": "change_certificate", "certificate": "c1", "effective": "2025-10-01",
                        "copay_cap": {"yen": 10000, "unit": "month", "setting": "combined"}, "income_segment": "A"});
    let (events, s) = accepts(&[register_adult(), grant_kosei("c1")], change);
    match &events[0].body {
        EventBody::CertificateChanged { span, changes, .. } => {
            assert_eq!(*span, SpanNo(2));
            assert_eq!(changes.income_segment, None, "an unchanged attribute is not recorded as a change");
            assert!(changes.copay_cap.is_some());
        }
        other => panic!("{other:?}"),
    }
    let cert = s.recipient().certificate(&"c1".parse_ref()).unwrap();
    assert_eq!(cert.spans.len(), 2);
    assert_eq!(cert.spans[0].period.to(), Some(date("2025-09-30")));
    assert_eq!(
        (cert.spans[1].no, cert.spans[1].period.from(), cert.spans[1].period.to()),
        (SpanNo(2), date("2025-10-01"), Some(date("2026-03-31")))
    );
    assert_eq!(cert.spans[0].terms.copay_cap.as_ref().unwrap().amount().month, Some(Yen::new(5000)));
    assert_eq!(cert.spans[1].terms.copay_cap.as_ref().unwrap().amount().month, Some(Yen::new(10000)));
}

#[test]
fn a_change_on_the_first_day_changes_the_span_in_place_and_null_clears() {
    let change = json!({"type": "change_certificate", "certificate": "c1", "effective": "2025-04-01", "copay_cap": null, "disease": null});
    let (_, s) = accepts(&[register_adult(), grant_kosei("c1")], change);
    let cert = s.recipient().certificate(&"c1".parse_ref()).unwrap();
    assert_eq!(cert.spans.len(), 1);
    assert_eq!(cert.spans[0].no, SpanNo(1));
    assert_eq!((cert.spans[0].terms.copay_cap.clone(), cert.spans[0].terms.disease.clone()), (None, None));
}

#[test]
fn change_rules() {
    let change =
        json!({"type": "change_certificate", "certificate": "c1", "effective": "2025-03-31", "income_segment": "B"});
    rejects(&[register_adult(), grant_kosei("c1")], change.clone(), "no_span_on_date");
    rejects(
        &[register_adult(), grant_kosei("c1")],
        with(change.clone(), json!({"effective": "2025-05-01", "income_segment": "A"})),
        "no_change",
    );
    rejects(
        &[register_adult(), grant_kosei("c1")],
        with(change.clone(), json!({"effective": "2025-05-01", "payer_number": "16139990"})),
        "payer_number_not_in_program",
    );
    rejects(
        &[register_adult(), grant_kosei("c1")],
        with(change, json!({"effective": "2026-11-23"})),
        "effective_date_in_future",
    );
}

#[test]
fn loss_of_eligibility_ends_the_span_and_withdraws_later_ones() {
    let renew = json!({"type": "renew_certificate", "certificate": "c1", "valid_from": "2026-04-01", "valid_to": "2027-03-31", "effective": "2026-03-15"});
    let end =
        json!({"type": "end_certificate", "certificate": "c1", "reason": "withdrawal", "effective": "2025-12-31"});
    let (events, s) = accepts(&[register_adult(), grant_kosei("c1"), renew], end);
    assert!(matches!(events[0].body, EventBody::CertificateEnded { reason: LossReason::Withdrawal, .. }));
    let cert = s.recipient().certificate(&"c1".parse_ref()).unwrap();
    assert_eq!(cert.spans.len(), 1);
    assert_eq!(cert.spans[0].period.to(), Some(date("2025-12-31")));
    assert_eq!(cert.ended.unwrap().reason, EndReason::Lost(LossReason::Withdrawal));
    let after = json!({"type": "end_certificate", "certificate": "c1", "reason": "other", "effective": "2026-05-01"});
    rejects(&[register_adult(), grant_kosei("c1")], after, "no_span_on_date");
}

#[test]
fn reissue_prints_again_for_current_certificates_only() {
    let reissue = json!({"type": "reissue_certificate", "certificate": "k1", "reason": "lost", "effective": TODAY});
    let (events, s) = accepts(&[register(), grant_kodomo("k1")], reissue);
    assert!(matches!(events[0].body, EventBody::CertificateReissued { .. }));
    let cert = s.recipient().certificate(&"k1".parse_ref()).unwrap();
    assert_eq!(cert.reissues.len(), 1);
    assert_eq!(cert.spans.len(), 1, "eligibility is unchanged");
    // The 更生医療 certificate expired on 2026-03-31.
    let expired = json!({"type": "reissue_certificate", "certificate": "c1", "reason": "damaged", "effective": TODAY});
    rejects(&[register_adult(), grant_kosei("c1")], expired, "certificate_not_current");
}

// ---- 7. Rescind ---------------------------------------------------------------------------

#[test]
fn rescinding_undoes_the_target_as_if_it_had_never_happened() {
    let change = json!({"id": "chg", "type": "change_certificate", "certificate": "c1", "effective": "2025-10-01", "income_segment": "C"});
    let base = [register_adult(), grant_kosei("c1")];
    let without = Scenario::new().given(&base);
    let (events, s) = accepts(
        &[base[0].clone(), base[1].clone(), change],
        json!({"type": "rescind", "target": "chg", "reason": "入力誤り"}),
    );
    assert!(matches!(&events[0].body, EventBody::CommandRescinded { target, .. } if target.as_str() == "chg"));
    assert_eq!(s.state.recipient(), without.state.recipient());
    // The log keeps both: the change and its rescind.
    assert!(s.state.entry(&"chg".parse_cmd()).unwrap().rescinded_by.is_some());
    // The span number of the rescinded change is not reused by the next change.
    let mut s = s;
    let next = s.run(json!({"type": "change_certificate", "certificate": "c1", "effective": "2025-11-01", "income_segment": "B"})).unwrap();
    assert!(matches!(&next[0].body, EventBody::CertificateChanged { span, .. } if *span == SpanNo(3)));
}

#[test]
fn rescinding_a_death_reopens_the_spans() {
    let death = json!({"id": "death", "type": "record_death", "effective": "2026-08-31"});
    let (_, s) = accepts(
        &[register(), grant_kodomo("k1"), death],
        json!({"type": "rescind", "target": "death", "reason": "別人の届出"}),
    );
    let cert = s.recipient().certificate(&"k1".parse_ref()).unwrap();
    assert_eq!((cert.spans[0].period.to(), cert.ended), (Some(date("2027-03-31")), None));
    assert_eq!(s.recipient().died_on, None);
}

#[test]
fn rescinding_a_my_number_link_needs_a_second_person() {
    let linked = with(link("123456789018"), json!({"id": "lnk"}));
    let rescind = json!({"type": "rescind", "target": "lnk", "reason": "別人の番号", "effective": "2026-05-01"});
    rejects(&[register(), linked.clone()], rescind.clone(), "approval_required");
    rejects(
        &[register(), linked.clone()],
        with(rescind.clone(), json!({"approver": "caseworker1"})),
        "approver_is_actor",
    );
    let (events, s) = accepts(&[register(), linked.clone()], with(rescind.clone(), json!({"approver": "supervisor2"})));
    assert!(matches!(events[0].body, EventBody::CommandRescinded { .. }));
    assert_eq!(s.recipient().my_number, None);
    // A correction too; other rescinds need no approver.
    let corrected = with(link("111111111118"), json!({"id": "cor"}));
    rejects(&[register(), linked, corrected], with(rescind, json!({"target": "cor"})), "approval_required");
    let changed = json!({"type": "change_personal_details", "name": "山田 一郎", "id": "chg"});
    accepts(&[register(), changed], json!({"type": "rescind", "target": "chg", "reason": "入力誤り"}));
}

#[test]
fn rescind_rules() {
    let grant = with(grant_kosei("c1"), json!({"id": "g"}));
    let renew = json!({"id": "r", "type": "renew_certificate", "certificate": "c1", "valid_from": "2026-04-01", "valid_to": "2027-03-31", "effective": "2026-03-15"});
    let rescind = |target: &str| json!({"type": "rescind", "target": target, "reason": "入力誤り"});
    rejects(&[register_adult(), grant.clone()], rescind("nope"), "unknown_target");
    rejects(&[register_adult(), grant.clone(), renew.clone()], rescind("g"), "rescind_conflicts_with_later_events");
    let undo = with(rescind("r"), json!({"id": "undo"}));
    rejects(&[register_adult(), grant.clone(), renew.clone(), undo.clone()], rescind("r"), "target_already_rescinded");
    rejects(&[register_adult(), grant.clone(), renew.clone(), undo], rescind("undo"), "cannot_rescind_rescind");
    // Rescinding a move-out that would make spans overlap a later grant is refused.
    let out = json!({"id": "out", "type": "move_out", "to": "横浜市", "effective": "2026-06-30"});
    let back = json!({"type": "move_in", "address": "さくら市本町2-2", "from": "横浜市", "effective": "2026-08-01"});
    let regrant = with(grant_kodomo("k2"), json!({"valid_from": "2026-08-01"}));
    rejects(
        &[register(), grant_kodomo("k1"), out.clone(), back.clone(), regrant],
        rescind("out"),
        "rescind_conflicts_with_later_events",
    );
    // A move-in depends on the move-out before it; a correction on the link before it.
    rejects(&[register(), out, back], rescind("out"), "rescind_conflicts_with_later_events");
    let first = with(link("123456789018"), json!({"id": "link"}));
    rejects(&[register(), first, link("111111111118")], rescind("link"), "rescind_conflicts_with_later_events");
    // Without dependants, a DV measure's start can be rescinded, but not under its end.
    let start = json!({"id": "dv", "type": "start_dv_support", "effective": "2026-05-01"});
    accepts(&[register(), start.clone()], rescind("dv"));
    rejects(
        &[register(), start, json!({"type": "end_dv_support"})],
        rescind("dv"),
        "rescind_conflicts_with_later_events",
    );
}

// ---- 8. The pair assertion ----------------------------------------------------------------

#[test]
fn a_state_breaking_an_invariant_is_never_extended() {
    use daicho_domain::evolve;
    // Hand-made events that decide would never produce: two overlapping こども certificates.
    let mut s = Scenario::new().given(&[register(), grant_kodomo("k1")]);
    let mut rogue = s.state.history()[1].events[0].clone();
    if let EventBody::CertificateGranted { certificate, span, .. } = &mut rogue.body {
        *certificate = "k2".parse_ref();
        *span = SpanNo(9);
    }
    rogue.command = "rogue".parse_cmd();
    s.state = evolve(s.state, &rogue);
    assert!(s.recipient().check_invariants().is_err());
    assert_eq!(s.run(json!({"type": "start_dv_support"})).unwrap_err().code(), "invariant_violation");
    // The same command on the sound state is accepted: the broken invariant refused it.
    let mut sound = Scenario::new().given(&[register(), grant_kodomo("k1")]);
    assert!(sound.run(json!({"type": "start_dv_support"})).is_ok());
}

// ---- 9. Every rule has a test -------------------------------------------------------------

#[test]
fn every_rejection_code_has_a_scenario() {
    // Every other test of this file, run again on this thread: the codes `decide` actually
    // answered while they ran (each test asserts the code it expects) must be every code there is.
    let scenarios: &[fn()] = &[
        same_key_same_content_returns_the_first_outcome,
        same_key_different_content_is_rejected,
        a_key_already_in_the_stream_is_never_reused,
        fingerprints_cover_every_field_and_are_pinned,
        my_number_link_needs_a_second_person,
        registration_happens_once,
        registration_records_the_basic_information_as_entered,
        effective_dates_are_not_in_the_future,
        grants_may_be_decided_up_to_the_programs_advance_days,
        nothing_happens_before_birth,
        my_number_is_linked_when_the_four_items_match,
        a_second_link_is_a_correction,
        a_my_number_held_by_another_recipient_is_refused,
        basic_items_must_match_the_resident_record,
        personal_details_change_records_only_what_changed,
        move_out_ends_every_open_span_on_the_move_out_date,
        no_grant_or_renewal_after_moving_out_unless_moved_in_again,
        death_ends_every_open_span_and_no_grant_follows,
        dv_support_starts_and_ends_once,
        a_protected_address_is_never_compared_with_a_guess_of_someone_who_may_not_see_it,
        a_protected_address_is_changed_only_by_someone_who_may_see_it,
        a_measure_is_ended_or_undone_only_by_someone_who_may_see_what_it_protects,
        a_grant_opens_a_certificate_with_its_first_span,
        grant_rules,
        a_program_without_payer_numbers_takes_grants_without_one,
        national_recipient_numbers_pass_their_check_digit,
        no_two_certificates_of_one_program_overlap,
        age_limited_programs_end_on_the_first_31_march_after_the_limit_age,
        the_1_april_birthday_belongs_to_the_earlier_school_year,
        renewal_adds_a_contiguous_span_with_changed_terms,
        renewal_rules,
        a_mid_span_change_splits_the_span,
        a_change_on_the_first_day_changes_the_span_in_place_and_null_clears,
        change_rules,
        loss_of_eligibility_ends_the_span_and_withdraws_later_ones,
        reissue_prints_again_for_current_certificates_only,
        rescinding_undoes_the_target_as_if_it_had_never_happened,
        rescinding_a_death_reopens_the_spans,
        rescinding_a_my_number_link_needs_a_second_person,
        rescind_rules,
        a_state_breaking_an_invariant_is_never_extended,
    ];
    let source = include_str!("rules.rs");
    let tests = source.matches(&format!("#[{}]\nfn ", "test")).count();
    assert_eq!(scenarios.len() + 1, tests, "a test of this file is missing above");
    let seen = support::rejections_observed(|| scenarios.iter().for_each(|f| f()));
    let missing: Vec<&str> = Rejection::CODES.iter().copied().filter(|c| !seen.contains(c)).collect();
    assert!(missing.is_empty(), "no scenario makes decide answer {missing:?}");
}

// ---- helpers ------------------------------------------------------------------------------

trait ParseRef {
    fn parse_ref(&self) -> daicho_domain::ids::CertificateRef;
    fn parse_cmd(&self) -> daicho_domain::ids::CommandId;
}

impl ParseRef for &str {
    fn parse_ref(&self) -> daicho_domain::ids::CertificateRef {
        daicho_domain::ids::CertificateRef::parse(self).unwrap()
    }
    fn parse_cmd(&self) -> daicho_domain::ids::CommandId {
        daicho_domain::ids::CommandId::parse(self).unwrap()
    }
}
