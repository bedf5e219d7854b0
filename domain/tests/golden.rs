//! The golden corpus: the bytes of every released payload version, committed in
//! `domain/golden/v<N>/<event type>.bin` and decoded by this test forever.
//!
//! - Every file decodes, and to exactly the sample event below.
//! - For the current version of each type, encoding the sample gives exactly the file's bytes:
//!   editing a released type (a field added, renamed or reordered) fails here.
//! - Every current (type, version) has a file. A new version gets its file by running
//!   `DAICHO_BLESS=1 cargo test -p daicho-domain --test golden`, which writes missing files
//!   only and never overwrites one.
//!
//! It also shows, with test-only types, how an upcaster reads a version-1 payload as version 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use daicho_domain::codec::{self, CURRENT_VERSIONS, Decoded};
use daicho_domain::command::parse_command_value;
use daicho_domain::config::Config;
use daicho_domain::event::EventBody;
use daicho_domain::{Context, Decision, State, decide, evolve};
use serde_json::json;

/// The configuration sample of the corpus: the demo file as it was when the corpus was made (the
/// bundled demo may change; the sample may not).
const CONFIGURATION_V1: &str = include_str!("data/configuration-v1.toml");

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// Samples of every event type, produced by the real `decide` so they are events the ledger
/// really writes; the first of each type is the one in the corpus.
fn samples() -> Vec<(String, Decoded)> {
    let config = Config::demo().unwrap();
    let today = "2026-11-22".parse().unwrap();
    let lines = [
        json!({"type": "register_recipient", "name": "髙橋 𠮷子", "kana": "タカハシ ヨシコ", "birth_date": "1960-02-29", "sex": "2", "address": "さくら市本町1-2-3 さくら荘101", "effective": "2025-01-10"}),
        json!({"type": "link_my_number", "my_number": "123456789018", "approver": "mori", "resident_record": {"name": "髙橋 𠮷子", "birth_date": "1960-02-29", "sex": "2", "address": "さくら市本町1-2-3 さくら荘101"}, "effective": "2025-01-11"}),
        json!({"type": "link_my_number", "my_number": "111111111118", "approver": "mori", "resident_record": {"name": "髙橋 𠮷子", "birth_date": "1960-02-29", "sex": "2", "address": "さくら市本町1-2-3 さくら荘101"}, "effective": "2025-01-12"}),
        json!({"type": "grant_certificate", "certificate": "J0001", "program": "kosei", "payer_number": "15139991", "recipient_number": "1234566", "valid_from": "2025-04-01", "valid_to": "2026-03-31", "copay_cap": {"yen": 5000, "unit": "month", "setting": "combined"}, "income_segment": "一般1", "designated_institutions": ["さくら市立病院", "桜クリニック"], "disease": "心臓機能障害", "effective": "2025-03-20"}),
        json!({"type": "change_certificate", "certificate": "J0001", "copay_cap": null, "income_segment": "一般2", "designated_institutions": ["さくら市立病院"], "always_reimbursement": true, "effective": "2025-07-01"}),
        json!({"type": "renew_certificate", "certificate": "J0001", "valid_from": "2026-04-01", "valid_to": "2027-03-31", "payer_number": "15139991", "recipient_number": "0000018", "copay_cap": {"yen": 10000, "unit": "visit", "setting": "outpatient"}, "disease": null, "effective": "2026-03-10"}),
        json!({"type": "reissue_certificate", "certificate": "J0001", "reason": "damaged", "effective": "2026-06-01"}),
        json!({"type": "change_personal_details", "name": "髙橋 良子", "address": "さくら市緑町4-5", "effective": "2026-06-02"}),
        json!({"type": "start_dv_support", "effective": "2026-06-03"}),
        json!({"type": "end_dv_support", "effective": "2026-06-04"}),
        json!({"id": "to-undo", "type": "change_personal_details", "kana": "タカハシ リョウコ", "effective": "2026-06-05"}),
        json!({"type": "rescind", "target": "to-undo", "reason": "入力誤り", "effective": "2026-06-06"}),
        json!({"type": "end_certificate", "certificate": "J0001", "reason": "withdrawal", "effective": "2026-09-30"}),
        json!({"type": "move_out", "to": "横浜市", "effective": "2026-10-01"}),
        json!({"type": "move_in", "address": "さくら市東町7-7", "from": "横浜市", "effective": "2026-10-15"}),
        json!({"type": "record_death", "effective": "2026-11-01"}),
    ];
    let mut state = State::default();
    let mut out = Vec::new();
    for (i, mut line) in lines.into_iter().enumerate() {
        let obj = line.as_object_mut().unwrap();
        obj.entry("id").or_insert(json!(format!("golden-{i}")));
        obj.insert("actor".into(), json!("kubo"));
        obj.insert("recipient".into(), json!("R0001"));
        let cmd = parse_command_value(line).unwrap();
        let Ok(Decision::Record(events)) = decide(&state, &cmd, &Context::new(today, &config)) else {
            panic!("sample {i} not accepted");
        };
        for e in events {
            out.push((e.type_name().to_owned(), Decoded::Recipient(e.body.clone())));
            state = evolve(state, &e);
        }
    }
    out.push((codec::CONFIGURATION_SET.to_owned(), Decoded::Configuration(CONFIGURATION_V1.to_owned())));
    out.push((
        codec::PMH_BATCH_EXPORTED.to_owned(),
        Decoded::PmhBatch(codec::PmhBatch {
            program: daicho_domain::config::ProgramKey::parse("kodomo").unwrap(),
            mode: daicho_domain::config::PmhMode::DiffHistory,
            from_position: 120,
            to_position: 4_096,
            records: 37,
            deleted: 2,
            held_back: 1,
            files: vec![
                ("kodomo_diff_history_120-4096.json".into(), "ab".repeat(32)),
                ("kodomo_diff_history_120-4096.csv".into(), "cd".repeat(32)),
            ],
        }),
    ));
    out.push((
        codec::PMH_RESULTS_RECORDED.to_owned(),
        Decoded::PmhResults(codec::PmhResults {
            batch: 3,
            batch_position: 4_097,
            batch_day: "2026-11-20".parse().unwrap(),
            full: false,
            replacing: false,
            program: daicho_domain::config::ProgramKey::parse("kodomo").unwrap(),
            file_sha256: "ef".repeat(32),
            rows: 3,
            unmatched: 1,
            refused: vec![
                codec::PmhRefusal {
                    recipient: 12,
                    span: 1,
                    code: daicho_domain::text::PmhErrorCode::parse("E0101").unwrap(),
                    message: daicho_domain::text::PmhMessage::parse("個人番号が住民基本台帳と一致しません").unwrap(),
                },
                codec::PmhRefusal {
                    recipient: 4_100,
                    span: 7,
                    code: daicho_domain::text::PmhErrorCode::parse("W-20.1").unwrap(),
                    message: daicho_domain::text::PmhMessage::parse("有効期間が重複しています").unwrap(),
                },
                codec::PmhRefusal {
                    recipient: 4_101,
                    span: 2,
                    code: daicho_domain::text::PmhErrorCode::parse("E0101").unwrap(),
                    message: daicho_domain::text::PmhMessage::parse("個人番号が住民基本台帳と一致しません").unwrap(),
                },
            ],
        }),
    ));
    use daicho_domain::ids::UserId;
    use daicho_domain::users::{AccessAction, AccessRecord, Role, UserEvent};
    let user = UserId::parse("mori").unwrap();
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g".to_owned();
    out.push((
        codec::USER_ADDED.to_owned(),
        Decoded::User(UserEvent::Added {
            user: user.clone(),
            name: "森 係長".into(),
            role: Role::Supervisor,
            password_hash: hash.clone(),
        }),
    ));
    out.push((
        codec::USER_PASSWORD_SET.to_owned(),
        Decoded::User(UserEvent::PasswordSet { user: user.clone(), password_hash: hash }),
    ));
    out.push((codec::USER_DISABLED.to_owned(), Decoded::User(UserEvent::Disabled { user: user.clone() })));
    out.push((
        codec::ACCESS_RECORDED.to_owned(),
        Decoded::Access(AccessRecord {
            user,
            recipients: vec![12],
            page: "/recipients/12".into(),
            action: AccessAction::MyNumberRevealed,
            reason: Some("医療機関からの照会".into()),
        }),
    ));
    use daicho_domain::billing::{Month, Policy};
    out.push((
        codec::FEE_SCHEDULE_SET.to_owned(),
        Decoded::Billing(codec::BillingEvent::FeeScheduleSet {
            from_month: Month::parse("2027-04").unwrap(),
            unit_yen: 2,
        }),
    ));
    out.push((
        codec::BILLING_MONTH_CLOSED.to_owned(),
        Decoded::Billing(codec::BillingEvent::MonthClosed(codec::MonthClosed {
            month: Month::parse("2027-04").unwrap(),
            policy: Policy::PersonsOverlapping,
            position: 1_234_567,
            unit_yen: 2,
            counts: [32_000, 31_850, 33_410],
            month_yen: 64_000,
            adjustment_yen: -4,
            total_yen: 63_996,
            files: vec![
                ("billing-2027-04-detail.csv".into(), "ab".repeat(32)),
                ("billing-2027-04-summary.csv".into(), "cd".repeat(32)),
            ],
        })),
    ));
    out
}

fn encode(decoded: &Decoded) -> codec::Encoded {
    match decoded {
        Decoded::Recipient(body) => codec::encode(body).unwrap(),
        Decoded::Configuration(toml) => codec::encode_configuration(toml).unwrap(),
        Decoded::PmhBatch(batch) => codec::encode_pmh_batch(batch).unwrap(),
        Decoded::PmhResults(r) => codec::encode_pmh_results(r).unwrap(),
        Decoded::User(e) => codec::encode_user(e).unwrap(),
        Decoded::Access(r) => codec::encode_access(r).unwrap(),
        Decoded::Billing(e) => codec::encode_billing(e).unwrap(),
    }
}

#[test]
fn samples_cover_every_event_type() {
    let mut types: Vec<String> = samples().into_iter().map(|(t, _)| t).collect();
    types.sort();
    types.dedup();
    let mut expected: Vec<String> = CURRENT_VERSIONS.iter().map(|(t, _)| (*t).to_owned()).collect();
    expected.sort();
    assert_eq!(types, expected);
}

#[test]
fn the_golden_corpus_decodes_and_current_versions_encode_to_it() {
    let bless = std::env::var("DAICHO_BLESS").is_ok_and(|v| v == "1");
    let samples = samples();
    for (event_type, version) in CURRENT_VERSIONS {
        let (_, sample) = samples.iter().find(|(t, _)| t == event_type).unwrap();
        let encoded = encode(sample);
        assert_eq!(encoded.schema_version, version, "{event_type}: encode writes the current version");
        let path = golden_dir().join(format!("v{version}")).join(format!("{event_type}.bin"));
        if !path.exists() {
            assert!(
                bless,
                "{} is missing: run DAICHO_BLESS=1 cargo test -p daicho-domain --test golden",
                path.display()
            );
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &encoded.payload).unwrap();
        }
        let golden = std::fs::read(&path).unwrap();
        assert!(
            golden == encoded.payload,
            "{event_type} v{version}: encoding changed. A released type is frozen: add a new version instead"
        );
    }
}

#[test]
fn every_file_in_the_corpus_decodes_forever() {
    let samples = samples();
    let mut files = 0;
    for version_dir in std::fs::read_dir(golden_dir()).unwrap() {
        let version_dir = version_dir.unwrap().path();
        let version: u16 = version_dir.file_name().unwrap().to_str().unwrap().trim_start_matches('v').parse().unwrap();
        for file in std::fs::read_dir(&version_dir).unwrap() {
            let path = file.unwrap().path();
            let event_type = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let bytes = std::fs::read(&path).unwrap();
            let decoded =
                codec::decode_any(&event_type, version, &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            // Old versions decode through upcasters to today's event; today's sample is the
            // expected value for every version of the type.
            let (_, sample) = samples.iter().find(|(t, _)| *t == event_type).unwrap();
            assert_eq!(&decoded, sample, "{}", path.display());
            // Auditors read every stored version as JSON.
            let json = codec::json::payload_json(&event_type, version, &bytes)
                .unwrap_or_else(|e| panic!("{} as JSON: {e}", path.display()));
            assert!(json.is_object(), "{}", path.display());
            files += 1;
        }
    }
    assert!(files >= CURRENT_VERSIONS.len());
}

#[test]
fn a_flipped_byte_in_a_golden_payload_is_not_silently_accepted_as_the_sample() {
    let bytes = std::fs::read(golden_dir().join("v1/certificate_granted.bin")).unwrap();
    let samples = samples();
    let (_, sample) = samples.iter().find(|(t, _)| t == "certificate_granted").unwrap();
    for i in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[i] ^= 0x01;
        if let Ok(decoded) = codec::decode_any("certificate_granted", 1, &damaged) {
            assert_ne!(&decoded, sample, "flipping byte {i} went unnoticed");
        }
    }
}

// ---- How a new version is added: an upcaster, shown with test-only types --------------------

mod example {
    //! An imaginary event `pet_registered`: v1 had a name; v2 adds the kana. v1 payloads stay
    //! on disk forever and are read through `upcast_v1`.
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub struct PetRegisteredV1 {
        pub name: String,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub struct PetRegisteredV2 {
        pub name: String,
        pub kana: Option<String>,
    }

    pub fn upcast_v1(v1: PetRegisteredV1) -> PetRegisteredV2 {
        PetRegisteredV2 { name: v1.name, kana: None }
    }

    /// The decode dispatch a real type would have: every released version, one current form.
    pub fn decode(version: u16, bytes: &[u8]) -> Option<PetRegisteredV2> {
        let config = bincode::config::standard().with_limit::<{ 64 * 1024 }>();
        match version {
            1 => bincode::serde::decode_from_slice::<PetRegisteredV1, _>(bytes, config).ok().map(|(v, _)| upcast_v1(v)),
            2 => bincode::serde::decode_from_slice::<PetRegisteredV2, _>(bytes, config).ok().map(|(v, _)| v),
            _ => None,
        }
    }
}

#[test]
fn an_upcaster_reads_version_1_as_version_2() {
    let config = bincode::config::standard();
    let v1 = bincode::serde::encode_to_vec(example::PetRegisteredV1 { name: "ポチ".into() }, config).unwrap();
    let v2 = bincode::serde::encode_to_vec(
        example::PetRegisteredV2 { name: "タマ".into(), kana: Some("タマ".into()) },
        config,
    )
    .unwrap();
    assert_eq!(example::decode(1, &v1), Some(example::PetRegisteredV2 { name: "ポチ".into(), kana: None }));
    assert_eq!(example::decode(2, &v2).unwrap().kana.as_deref(), Some("タマ"));
    // Reading v1 bytes as v2 without the upcaster would be wrong: that is why the envelope
    // carries the schema version.
    assert!(bincode::serde::decode_from_slice::<example::PetRegisteredV2, _>(&v1, config).is_err());
    let _ = EventBody::Died;
}

#[test]
fn recipient_snapshots_round_trip_through_every_step_of_a_full_history() {
    use daicho_domain::codec::snapshot::{decode_recipient, encode_recipient};
    let config = Config::demo().unwrap();
    let _ = &config;
    let mut recipient = None;
    let mut steps = 0;
    for (_, sample) in samples() {
        let Decoded::Recipient(body) = sample else { continue };
        let event = daicho_domain::event::Event {
            command: daicho_domain::ids::CommandId::parse("x").unwrap(),
            effective: "2026-11-01".parse().unwrap(),
            body,
        };
        if matches!(event.body, EventBody::CommandRescinded { .. }) {
            continue;
        }
        daicho_domain::state::apply_event(&mut recipient, &event);
        let r = recipient.as_ref().unwrap();
        let bytes = encode_recipient(r).unwrap();
        assert_eq!(&decode_recipient(&bytes).unwrap(), r, "after {}", event.type_name());
        steps += 1;
    }
    assert!(steps >= 14);
    assert!(decode_recipient(&[9, 9, 9]).is_err());
}
