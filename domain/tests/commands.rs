//! The JSON Lines command contract: what parses, and how refusals name their fields.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use daicho_domain::command::{Command, CommandBody, FieldError, InputError, parse_command_line};

/// The field errors of `line`, each as `field:code`.
#[track_caller]
fn fields(line: &str) -> Vec<String> {
    match parse_command_line(line) {
        Err(InputError::Fields(errors)) => {
            errors.into_iter().map(|FieldError { field, error }| format!("{field}:{}", error.code())).collect()
        }
        other => panic!("expected field errors, got {other:?}"),
    }
}

const COMMON: &str = r#""id": "c-1", "actor": "u1", "recipient": "R1", "effective": "2026-04-01""#;

#[test]
fn every_contract_type_parses() {
    let lines = [
        r#""type": "register_recipient", "name": "山田 太郎", "kana": "ヤマダ タロウ", "birth_date": "2015-06-10", "sex": "1", "address": "さくら市本町1-2-3""#,
        r#""type": "link_my_number", "my_number": "123456789018", "approver": "u2", "resident_record": {"name": "山田 太郎", "birth_date": "2015-06-10", "sex": "1", "address": "さくら市本町1-2-3"}"#,
        r#""type": "change_personal_details", "address": "さくら市緑町7-8""#,
        r#""type": "move_in", "address": "さくら市本町1-2-3", "from": "横浜市""#,
        r#""type": "move_out", "to": "横浜市""#,
        r#""type": "record_death""#,
        r#""type": "start_dv_support""#,
        r#""type": "end_dv_support""#,
        r#""type": "grant_certificate", "certificate": "k1", "program": "kodomo", "payer_number": "88139993", "recipient_number": "000123", "valid_from": "2026-04-01", "copay_cap": {"yen": 10000, "unit": "month", "setting": "outpatient"}, "income_segment": "A", "designated_institutions": ["さくら病院"], "disease": "喘息", "always_reimbursement": false"#,
        r#""type": "renew_certificate", "certificate": "k1", "valid_from": "2027-04-01", "valid_to": "2028-03-31", "income_segment": "B""#,
        r#""type": "change_certificate", "certificate": "k1", "copay_cap": null"#,
        r#""type": "end_certificate", "certificate": "k1", "reason": "age_limit""#,
        r#""type": "reissue_certificate", "certificate": "k1", "reason": "lost""#,
        r#""type": "rescind", "target": "c-0", "reason": "入力誤り""#,
    ];
    for line in lines {
        let json = format!("{{{COMMON}, {line}}}");
        let cmd = parse_command_line(&json).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(json.contains(&format!("\"{}\"", cmd.body.type_name())));
        // serde's Deserialize goes through the same parser.
        let via_serde: Command = serde_json::from_str(&json).unwrap();
        assert_eq!(via_serde, cmd);
    }
}

#[test]
fn missing_common_fields_are_named() {
    assert_eq!(
        fields(r#"{"type": "record_death"}"#),
        ["id:required", "actor:required", "recipient:required", "effective:required"]
    );
}

#[test]
fn every_bad_field_is_reported_at_once() {
    let line = format!(
        r#"{{{COMMON}, "type": "register_recipient", "name": "", "kana": "やまだ", "birth_date": "2015/06/10", "sex": "M", "address": "本町"}}"#
    );
    assert_eq!(fields(&line), ["name:required", "kana:not_katakana", "birth_date:format", "sex:unknown_code"]);
}

#[test]
fn check_digits_are_checked_at_the_edge() {
    let link = format!(
        r#"{{{COMMON}, "type": "link_my_number", "my_number": "123456789012", "approver": "u2", "resident_record": {{"name": "山田", "birth_date": "2015-06-10", "sex": "1", "address": "本町"}}}}"#
    );
    assert_eq!(fields(&link), ["my_number:my_number_check_digit"]);
    let grant = format!(
        r#"{{{COMMON}, "type": "grant_certificate", "certificate": "k1", "program": "kodomo", "payer_number": "88134458", "recipient_number": "1", "valid_from": "2026-04-01"}}"#
    );
    assert_eq!(fields(&grant), ["payer_number:payer_number_check_digit"]);
}

#[test]
fn nested_fields_are_dotted() {
    let line = format!(
        r#"{{{COMMON}, "type": "grant_certificate", "certificate": "k1", "program": "kodomo", "payer_number": "88139993", "recipient_number": "1", "valid_from": "2026-04-01", "copay_cap": {{"yen": -1, "unit": "week", "setting": "outpatient"}}, "designated_institutions": ["ok", ""]}}"#
    );
    assert_eq!(
        fields(&line),
        ["copay_cap.unit:unknown_code", "copay_cap.yen:negative", "designated_institutions[1]:required"]
    );
    let link = format!(
        r#"{{{COMMON}, "type": "link_my_number", "my_number": "123456789018", "approver": "u2", "resident_record": {{"name": "山田", "sex": "1", "address": "本町", "phone": "x"}}}}"#
    );
    assert_eq!(fields(&link), ["resident_record.birth_date:required", "resident_record.phone:unknown_field"]);
}

/// A grant line with `cap` as its self-pay cap.
fn grant_with_cap(cap: &str) -> String {
    format!(
        r#"{{{COMMON}, "type": "grant_certificate", "certificate": "k1", "program": "kodomo", "payer_number": "88139993", "recipient_number": "1", "valid_from": "2026-04-01", "copay_cap": {cap}}}"#
    )
}

#[test]
fn a_self_pay_cap_in_pmh_structure_parses_with_its_kind_definition_rates_and_amounts() {
    use daicho_domain::certificate::{CapKind, CapUnit};
    let cmd = parse_command_line(&grant_with_cap(
        r#"{"kind": "limit", "definition": "医療費の2割", "rate_month": 20, "yen_month": 10000, "yen_visit": 500}"#,
    ))
    .unwrap();
    let CommandBody::GrantCertificate(grant) = cmd.body else { panic!() };
    let cap = grant.terms.copay_cap.unwrap();
    assert_eq!(cap.kind(), CapKind::Limit);
    assert_eq!(cap.definition().unwrap().as_str(), "医療費の2割");
    assert_eq!(cap.rate().get(CapUnit::Month).map(|p| p.get()), Some(20));
    assert_eq!(cap.rate().get(CapUnit::Day), None);
    let amounts: Vec<(CapUnit, i64)> = cap.amount().present().map(|(u, y)| (u, y.get())).collect();
    assert_eq!(amounts, [(CapUnit::Month, 10000), (CapUnit::Visit, 500)]);
    assert_eq!(cap.describe(), "上限額 月額 10,000円 1回 500円 負担率 20%（月）（医療費の2割）");
    assert_eq!(cap.as_old_form(), None, "two amounts and a rate: no old form says that");
    let free = parse_command_line(&grant_with_cap(r#"{"kind": "free"}"#)).unwrap();
    let CommandBody::GrantCertificate(grant) = free.body else { panic!() };
    assert_eq!(grant.terms.copay_cap.unwrap().kind(), CapKind::Free);
}

#[test]
fn a_self_pay_cap_that_makes_no_sense_is_refused_by_field() {
    for (cap, expected) in [
        (r#"{"kind": "free", "yen_month": 0}"#, vec!["copay_cap.kind:cap_free_with_values"]),
        (r#"{"kind": "limit"}"#, vec!["copay_cap.kind:cap_empty"]),
        (r#"{"kind": "fixed", "definition": "外来"}"#, vec!["copay_cap.kind:cap_empty"]),
        (r#"{"kind": "fixed", "rate_visit": 10}"#, vec!["copay_cap.kind:cap_empty"]),
        (r#"{"kind": "limit", "rate_month": 101}"#, vec!["copay_cap.rate_month:too_large"]),
        (
            r#"{"kind": "limit", "rate_day": -1, "yen_visit": -5}"#,
            vec!["copay_cap.rate_day:negative", "copay_cap.yen_visit:negative"],
        ),
        (r#"{"kind": "limit", "yen_month": 10000001}"#, vec!["copay_cap.yen_month:too_large"]),
        (r#"{"kind": "limit", "yen_month": "1000"}"#, vec!["copay_cap.yen_month:wrong_type"]),
        (r#"{"kind": "weekly", "yen_month": 1000}"#, vec!["copay_cap.kind:unknown_code"]),
        (r#"{"kind": "limit", "yen_month": 1000, "definition": "=1+1"}"#, vec!["copay_cap.definition:formula_like"]),
        (r#"{"kind": "limit", "yen_month": 1000, "definition": "<b>"}"#, vec!["copay_cap.definition:markup"]),
        // The two forms never mix: with a kind, the old form's fields are unknown.
        (
            r#"{"kind": "limit", "yen": 1000, "unit": "month"}"#,
            vec!["copay_cap.kind:cap_empty", "copay_cap.unit:unknown_field", "copay_cap.yen:unknown_field"],
        ),
        (r#"{"definition": "外来", "yen_month": 1000}"#, vec!["copay_cap.kind:required"]),
    ] {
        let mut got = fields(&grant_with_cap(cap));
        got.sort();
        assert_eq!(got, expected, "{cap}");
    }
}

#[test]
fn unknown_fields_and_types_are_refused() {
    let typo = format!(r#"{{{COMMON}, "type": "move_out", "to": "横浜市", "too": "x"}}"#);
    assert_eq!(fields(&typo), ["too:unknown_field"]);
    // A field of another command type is unknown here.
    let other = format!(r#"{{{COMMON}, "type": "record_death", "to": "横浜市"}}"#);
    assert_eq!(fields(&other), ["to:unknown_field"]);
    let unknown = format!(r#"{{{COMMON}, "type": "promote", "to": "x"}}"#);
    assert_eq!(fields(&unknown), ["type:unknown_code"]);
}

#[test]
fn strings_must_be_strings() {
    // A number would lose leading zeros; booleans and integers must be JSON booleans and integers.
    let line = format!(
        r#"{{{COMMON}, "type": "grant_certificate", "certificate": "k1", "program": "kodomo", "payer_number": 88139993, "recipient_number": "1", "valid_from": "2026-04-01", "always_reimbursement": "no", "copay_cap": {{"yen": "1000", "unit": "month", "setting": "combined"}}}}"#
    );
    assert_eq!(
        fields(&line),
        ["payer_number:wrong_type", "copay_cap.yen:wrong_type", "always_reimbursement:wrong_type"]
    );
}

#[test]
fn change_attributes_distinguish_absent_from_null() {
    let line = format!(
        r#"{{{COMMON}, "type": "change_certificate", "certificate": "k1", "income_segment": null, "disease": "喘息"}}"#
    );
    let cmd = parse_command_line(&line).unwrap();
    let CommandBody::ChangeCertificate { changes, .. } = cmd.body else { panic!() };
    assert_eq!(changes.income_segment, Some(None), "null clears");
    assert_eq!(changes.copay_cap, None, "absent leaves unchanged");
    assert_eq!(changes.disease.unwrap().unwrap().as_str(), "喘息");
}

#[test]
fn malformed_lines() {
    assert_eq!(parse_command_line("{\"id\": ").unwrap_err().code(), "invalid_json");
    assert_eq!(parse_command_line("[1, 2]").unwrap_err(), InputError::NotObject);
    assert_eq!(parse_command_line("").unwrap_err().code(), "invalid_json");
}

#[test]
fn messages_never_echo_personal_data() {
    let secret = "123456789012";
    let line = format!(
        r#"{{{COMMON}, "type": "link_my_number", "my_number": "{secret}", "approver": "u2", "resident_record": {{"name": "秘密 花子", "birth_date": "2015-06-10", "sex": "1", "address": "秘密町"}}, "extra": "秘密"}}"#
    );
    let err = parse_command_line(&line).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(secret) && !shown.contains("1234567890"));
    assert!(!shown.contains("秘密 花子") && !err.message().contains("秘密町"));
    // A JSON syntax error names a column, not the text around it.
    let broken = format!(r#"{{"my_number": "{secret}" "#);
    let err = parse_command_line(&broken).unwrap_err();
    assert!(!err.message().contains(secret));
}
