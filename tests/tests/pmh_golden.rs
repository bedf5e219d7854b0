//! The PMH feed, frozen: a synthetic municipality of the demo configuration exported in every
//! mode (a first diff, a diff with a withdrawal, a split span, a DV measure and a record held
//! back, every kind of self-pay cap, a full export, then a full export that clears a full-mode
//! program and carries a diff-history program's withdrawal), compared byte for byte with the
//! files in `tests/golden/pmh/`.
//! Any change to what PMH receives is deliberate: run with `DAICHO_BLESS=1` to write the new
//! files, and review them in the diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use daicho_tests::cli::daicho;
use serde_json::{Value, json};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/pmh")
}

/// The steps' output: step name -> (file name -> bytes as compared).
type Steps = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// What is compared of a file: data files as they are; the manifest without the chain head,
/// whose hash covers the events' recording times.
fn comparable(name: &str, bytes: Vec<u8>) -> Vec<u8> {
    if name != "manifest.json" {
        return bytes;
    }
    let mut v: Value = serde_json::from_slice(&bytes).unwrap();
    v.as_object_mut().unwrap().remove("chainHead");
    let mut out = serde_json::to_vec_pretty(&v).unwrap();
    out.push(b'\n');
    out
}

fn apply(data: &Path, dir: &Path, name: &str, commands: &[Value]) {
    let text: String = commands.iter().map(|c| format!("{}\n", serde_json::to_string(c).unwrap())).collect();
    let file = dir.join(name);
    std::fs::write(&file, text).unwrap();
    let (status, out, err) = daicho(data, &["apply", file.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
}

fn export(data: &Path, dir: &Path, step: &str, mode: &str, steps: &mut Steps) {
    let out_dir = dir.join(step);
    let (status, out, err) = daicho(data, &["pmh", "export", "--mode", mode, "--out", out_dir.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&out_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        files.insert(name.clone(), comparable(&name, std::fs::read(&path).unwrap()));
    }
    steps.insert(step.to_owned(), files);
}

/// A rescind of `target` on `recipient`.
fn rescind(id: &str, recipient: &str, target: &str, effective: &str) -> Value {
    json!({"id": id, "type": "rescind", "actor": "kubo", "recipient": recipient, "effective": effective,
           "target": target, "reason": "入力誤り"})
}

/// The scenario, run on the tests' fixed day.
fn run() -> Steps {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    let (status, out, err) = daicho(&data, &["demo", "--recipients", "10"]);
    assert_eq!(status, 0, "{out}{err}");
    // A child whose My Number is not linked yet: held back.
    apply(
        &data,
        tmp.path(),
        "held.jsonl",
        &[
            json!({"id": "g-held-reg", "type": "register_recipient", "actor": "kubo", "recipient": "G-HELD", "effective": "2026-04-01",
               "name": "桜 保留", "kana": "サクラ ホリュウ", "birth_date": "2019-06-06", "sex": "2", "address": "さくら市本町9-9-9"}),
            json!({"id": "g-held-grant", "type": "grant_certificate", "actor": "kubo", "recipient": "G-HELD", "effective": "2026-04-01",
               "certificate": "G-K1", "program": "kodomo", "payer_number": "88139993", "recipient_number": "009999",
               "valid_from": "2026-04-01"}),
        ],
    );
    // The small demo lacks some programs: an infant (養育医療), a child (育成医療) and an adult
    // (心身障害者), each linked.
    let person = |r: &str, name: &str, kana: &str, birth: &str, number: &str| {
        vec![
            json!({"id": format!("g-{r}-reg"), "type": "register_recipient", "actor": "kubo", "recipient": r,
                   "effective": "2026-06-01", "name": name, "kana": kana, "birth_date": birth, "sex": "1",
                   "address": "さくら市緑町1-1"}),
            json!({"id": format!("g-{r}-link"), "type": "link_my_number", "actor": "kubo", "approver": "mori",
                   "recipient": r, "effective": "2026-06-02", "my_number": number,
                   "resident_record": {"name": name, "birth_date": birth, "sex": "1", "address": "さくら市緑町1-1"}}),
        ]
    };
    let grant = |r: &str, program: &str, payer: &str| {
        json!({"id": format!("g-{r}-grant"), "type": "grant_certificate", "actor": "kubo", "recipient": r,
               "effective": "2026-06-03", "certificate": format!("G-{r}"), "program": program, "payer_number": payer,
               "recipient_number": "1234566", "valid_from": "2026-06-03", "valid_to": "2026-12-31"})
    };
    // Each with a self-pay cap of another kind (負担なし, 上限額 with a rate, 定額).
    let with_cap = |mut g: Value, cap: Value| {
        g["copay_cap"] = cap;
        g
    };
    let mut more = person("G-YOIKU", "桜 小太郎", "サクラ コタロウ", "2026-05-20", "333333333332");
    more.push(with_cap(grant("G-YOIKU", "yoiku", "23139991"), json!({"kind": "free"})));
    more.extend(person("G-IKUSEI", "桜 育男", "サクラ イクオ", "2016-08-08", "444444444440"));
    more.push(with_cap(
        grant("G-IKUSEI", "ikusei", "16139990"),
        json!({"kind": "limit", "definition": "医療費の1割", "rate_month": 10, "yen_month": 5000, "yen_day": 0}),
    ));
    more.extend(person("G-SHOGAI", "桜 障太", "サクラ ショウタ", "1975-03-03", "111111111118"));
    more.push(json!({"id": "g-shogai-grant", "type": "grant_certificate", "actor": "kubo", "recipient": "G-SHOGAI",
        "effective": "2026-06-03", "certificate": "G-S1", "program": "shogai", "payer_number": "80139991",
        "recipient_number": "S-0001", "valid_from": "2026-06-03", "valid_to": "2027-03-31",
        "copay_cap": {"kind": "fixed", "definition": "1回200円", "yen_visit": 200}}));
    // A child whose grant PMH will have, then withdrawn.
    more.extend(person("G-GONE", "桜 取消", "サクラ トリケシ", "2017-07-07", "123456789018"));
    more.push(json!({"id": "g-gone-grant", "type": "grant_certificate", "actor": "kubo", "recipient": "G-GONE",
        "effective": "2026-06-03", "certificate": "G-K2", "program": "kodomo", "payer_number": "88139993",
        "recipient_number": "009998", "valid_from": "2026-06-03"}));
    apply(&data, tmp.path(), "more.jsonl", &more);
    let mut steps = Steps::new();
    export(&data, tmp.path(), "1-diff", "diff", &mut steps);
    // A withdrawal of a record PMH has, a DV measure, a change inside a span (which splits it),
    // and the held-back grant undone before it was ever sent.
    apply(
        &data,
        tmp.path(),
        "changes.jsonl",
        &[
            rescind("g-rescind-sent", "G-GONE", "g-gone-grant", "2026-11-01"),
            json!({"id": "g-dv", "type": "start_dv_support", "actor": "mori", "recipient": "G-IKUSEI", "effective": "2026-11-01"}),
            json!({"id": "g-split", "type": "change_certificate", "actor": "kubo", "recipient": "G-YOIKU", "effective": "2026-09-01",
               "certificate": "G-G-YOIKU", "income_segment": "B"}),
            rescind("g-rescind-held", "G-HELD", "g-held-grant", "2026-11-01"),
        ],
    );
    export(&data, tmp.path(), "2-diff", "diff", &mut steps);
    export(&data, tmp.path(), "3-full", "full", &mut steps);
    // The last 心身障害者 record withdrawn (a full-mode program: an empty replacement clears it)
    // and the 育成医療 one (a diff-history program: its full export carries the withdrawal).
    let withdrawals = [
        rescind("g-rescind-shogai", "G-SHOGAI", "g-shogai-grant", "2026-11-20"),
        rescind("g-rescind-ikusei", "G-IKUSEI", "g-G-IKUSEI-grant", "2026-11-20"),
    ];
    apply(&data, tmp.path(), "withdrawals.jsonl", &withdrawals);
    export(&data, tmp.path(), "4-full", "full", &mut steps);
    steps
}

/// The golden set covers what it claims: every program of the demo configuration in both modes,
/// a withdrawal, a record held back, a DV measure, a split span and every kind of self-pay cap.
fn assert_covers(steps: &Steps) {
    let mut programs_by_mode: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut records: Vec<Value> = Vec::new();
    let mut held = 0;
    for files in steps.values() {
        for (name, bytes) in files {
            if name == "manifest.json" {
                let m: Value = serde_json::from_slice(bytes).unwrap();
                held += m["batches"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b["heldBack"].as_array().unwrap().len())
                    .sum::<usize>();
            } else if let Some(stem) = name.strip_suffix(".json") {
                let mut parts = stem.split('_');
                let (program, mode) = (parts.next().unwrap(), parts.next().unwrap());
                programs_by_mode
                    .entry(if mode == "full" { "full" } else { "diff" })
                    .or_default()
                    .push(program.to_owned());
                records.extend(serde_json::from_slice::<Vec<Value>>(bytes).unwrap());
            }
        }
    }
    let config = daicho_domain::config::Config::demo().unwrap();
    let mut missing = Vec::new();
    for mode in ["diff", "full"] {
        // A full-mode program is always sent in full: it has no diff file.
        for p in config
            .programs()
            .iter()
            .filter(|p| mode == "full" || p.pmh_mode == daicho_domain::config::PmhMode::DiffHistory)
        {
            if !programs_by_mode.get(mode).is_some_and(|ps| ps.iter().any(|x| x == p.key.as_str())) {
                missing.push(format!("{mode} {}", p.key));
            }
        }
    }
    assert!(missing.is_empty(), "not in the golden set: {missing:?}");
    assert!(records.iter().any(|r| r["isDeleted"] == true), "no withdrawal");
    assert!(records.iter().any(|r| r["isNotDisclosed"] == true), "no DV measure");
    assert!(held > 0, "no record held back");
    let split = records.iter().any(|r| r["historyKey"].as_str().is_some_and(|k| !k.ends_with("S1")));
    assert!(split, "no second span of a certificate");
    // Every kind of self-pay cap, and a rate beside amounts.
    let caps: Vec<&Value> = records.iter().filter_map(|r| r.get("maxCopaymentAmount")).collect();
    for kind in ["1", "2", "3"] {
        assert!(caps.iter().any(|c| c["category"] == kind), "no cap of kind {kind}");
    }
    assert!(caps.iter().any(|c| c.get("burdenRatePerMonth").is_some()), "no cap with a rate");
    // The full replacements: one that clears a program (an empty file, recorded), and a full
    // export of a diff-history program that carries a withdrawal.
    let last: Value = serde_json::from_slice(&steps["4-full"]["manifest.json"]).unwrap();
    let batch =
        |program: &str| last["batches"].as_array().unwrap().iter().find(|b| b["program"] == program).unwrap().clone();
    let shogai = batch("shogai");
    assert_eq!(
        (shogai["records"].as_u64(), shogai["dropped"].as_u64(), shogai["replacesAll"].as_bool()),
        (Some(0), Some(1), Some(true))
    );
    assert!(shogai["batch"].as_u64().is_some() && shogai["files"].as_array().unwrap().len() == 2, "{shogai:#}");
    let ikusei = batch("ikusei");
    assert_eq!((ikusei["deleted"].as_u64(), ikusei["replacesAll"].as_bool()), (Some(1), Some(false)), "{ikusei:#}");
}

#[test]
fn the_pmh_feed_of_the_demo_municipality_is_byte_for_byte_the_golden_one() {
    let steps = run();
    assert_covers(&steps);
    let golden = golden_dir();
    if std::env::var_os("DAICHO_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(&golden);
        for (step, files) in &steps {
            std::fs::create_dir_all(golden.join(step)).unwrap();
            for (name, bytes) in files {
                std::fs::write(golden.join(step).join(name), bytes).unwrap();
            }
        }
    }
    for (step, files) in &steps {
        let mut expected: Vec<String> = std::fs::read_dir(golden.join(step))
            .unwrap_or_else(|e| panic!("{step}: no golden files ({e}); run with DAICHO_BLESS=1"))
            .map(|e| e.unwrap().file_name().to_str().unwrap().to_owned())
            .collect();
        expected.sort();
        assert_eq!(files.keys().cloned().collect::<Vec<_>>(), expected, "{step}: the files differ");
        for (name, bytes) in files {
            let want = std::fs::read(golden.join(step).join(name)).unwrap();
            assert!(*bytes == want, "{step}/{name} differs from tests/golden/pmh (DAICHO_BLESS=1 rewrites it)");
        }
    }
}
