//! PMH export scenarios, driven through `daicho apply` and `daicho pmh export`, asserting the
//! exported JSON: what clinics will be told, and when.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use serde_json::{Value, json};

/// A ledger in a temporary directory, with a counter for export directories.
struct Ledger {
    tmp: tempfile::TempDir,
    data: String,
    exports: usize,
    next_id: usize,
}

/// Runs the CLI on the tests' fixed day (`daicho_tests::cli::TODAY`), never the clock's.
fn daicho(args: &[&str]) -> (u8, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = ["daicho", "--today", daicho_tests::cli::TODAY].into_iter().chain(args.iter().copied());
    let status = daicho::cli::main(argv, &mut out, &mut err);
    (status, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

/// One export: the records of every program, the manifest.
struct Export {
    records: Vec<Value>,
    manifest: Value,
    dir: PathBuf,
}

impl Export {
    /// The records with this history key.
    fn key(&self, key: &str) -> Vec<&Value> {
        self.records.iter().filter(|r| r["historyKey"] == key).collect()
    }

    fn one(&self, key: &str) -> &Value {
        let found = self.key(key);
        assert_eq!(found.len(), 1, "exactly one record {key} in {:#?}", self.records);
        found[0]
    }

    fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.records.iter().map(|r| r["historyKey"].as_str().unwrap().to_owned()).collect();
        k.sort();
        k
    }
}

impl Ledger {
    fn new() -> Ledger {
        Ledger::with_config(None)
    }

    fn with_config(config: Option<&str>) -> Ledger {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("ledger").to_str().unwrap().to_owned();
        let l = Ledger { tmp, data, exports: 0, next_id: 0 };
        let mut args = vec!["--data", l.data(), "init"];
        let path = l.tmp.path().join("city.toml");
        if let Some(text) = config {
            std::fs::write(&path, text).unwrap();
            args.extend(["--config", path.to_str().unwrap()]);
        }
        let (status, _, err) = daicho(&args);
        assert_eq!(status, 0, "{err}");
        l
    }

    fn data(&self) -> &str {
        &self.data
    }

    /// Applies commands (contract JSON without `id` and `actor`); every one must be accepted.
    #[track_caller]
    fn apply(&mut self, commands: &[Value]) {
        let mut text = String::new();
        for c in commands {
            let mut c = c.clone();
            self.next_id += 1;
            let o = c.as_object_mut().unwrap();
            o.entry("id").or_insert(json!(format!("c{}", self.next_id)));
            o.entry("actor").or_insert(json!("kubo"));
            text.push_str(&serde_json::to_string(&c).unwrap());
            text.push('\n');
        }
        let file = self.tmp.path().join(format!("cmd{}.jsonl", self.next_id));
        std::fs::write(&file, text).unwrap();
        let (status, out, err) = daicho(&["--data", &self.data, "apply", file.to_str().unwrap()]);
        assert_eq!(status, 0, "{out}{err}");
    }

    /// A diff export (or `mode`) of every program into a fresh directory.
    #[track_caller]
    fn export_mode(&mut self, mode: &str) -> Export {
        self.exports += 1;
        let dir = self.tmp.path().join(format!("export{}", self.exports));
        let (status, out, err) =
            daicho(&["--data", &self.data, "pmh", "export", "--out", dir.to_str().unwrap(), "--mode", mode]);
        assert_eq!(status, 0, "{out}{err}");
        let mut records = Vec::new();
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        for path in names {
            if path.extension().is_some_and(|e| e == "json") && path.file_name().unwrap() != "manifest.json" {
                let batch: Vec<Value> = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                records.extend(batch);
            }
        }
        let manifest = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        Export { records, manifest, dir }
    }

    #[track_caller]
    fn export(&mut self) -> Export {
        self.export_mode("diff")
    }
}

fn register(r: &str, name: &str, birth: &str) -> Value {
    json!({"type": "register_recipient", "recipient": r, "effective": "2026-04-01", "name": name,
           "kana": "サクラ タロウ", "birth_date": birth, "sex": "1", "address": "さくら市本町1-2-3"})
}

fn link(r: &str, name: &str, birth: &str, number: &str) -> Value {
    json!({"type": "link_my_number", "recipient": r, "effective": "2026-04-02", "approver": "mori", "my_number": number,
           "resident_record": {"name": name, "birth_date": birth, "sex": "1", "address": "さくら市本町1-2-3"}})
}

/// A registered child with a linked My Number.
fn child(r: &str) -> Vec<Value> {
    vec![register(r, "桜 太郎", "2018-05-05"), link(r, "桜 太郎", "2018-05-05", "123456789018")]
}

/// An adult (for 更生医療) with a linked My Number.
fn adult(r: &str) -> Vec<Value> {
    vec![register(r, "桜 一郎", "1970-01-20"), link(r, "桜 一郎", "1970-01-20", "111111111118")]
}

fn kosei(extra: Value) -> Value {
    let mut g = json!({"type": "grant_certificate", "recipient": "A1", "effective": "2026-04-01", "certificate": "J1",
                       "program": "kosei", "payer_number": "15139991", "recipient_number": "1234566",
                       "valid_from": "2026-04-01", "valid_to": "2026-09-30", "income_segment": "A"});
    for (k, v) in extra.as_object().unwrap() {
        g[k] = v.clone();
    }
    g
}

#[test]
fn a_new_grant_is_one_record() {
    let mut l = Ledger::new();
    l.apply(&child("C1"));
    l.apply(&[json!({"type": "grant_certificate", "recipient": "C1", "effective": "2026-04-01", "certificate": "K1",
                     "program": "kodomo", "payer_number": "88139993", "recipient_number": "000123", "valid_from": "2026-04-01"})]);
    let e = l.export();
    let r = e.one("R1S1");
    assert_eq!(r["orgSpecificCertificateTypeId"], "139998L001");
    assert_eq!(r["myNumber"], "123456789018");
    assert_eq!(
        r["basicFiveInfo"],
        json!({"name": "桜 太郎", "nameKana": "サクラ タロウ", "address": "さくら市本町1-2-3", "dateOfBirth": "2018-05-05", "sex": "1"})
    );
    assert_eq!(r["medicalSubsidyInsurerNumber"], "88139993");
    assert_eq!(r["medicalSubsidyRecipientNumber"], "000123");
    assert_eq!(r["certificationName"], "さくら市こども医療証");
    assert_eq!(r["isAlwaysReimbursement"], "0");
    assert_eq!(r["validFrom"], "2026-04-01");
    // こども医療費 ends on the first 31 March after 18: born 2018-05-05, so 2037-03-31.
    assert_eq!(r["validTo"], "2037-03-31");
    assert_eq!((r["isDeleted"].as_bool(), r["isNotDisclosed"].as_bool()), (Some(false), Some(false)));
    let detail: Vec<&str> =
        r["certificationDetail"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    // The card's items: its title, then the template's items in print order (こども医療費 is a
    // local program: its default card has no address, clinics or disease).
    assert_eq!(&detail[..4], ["受給者証名", "公費負担者番号", "公費受給者番号", "氏名"]);
    assert!(!detail.contains(&"住所") && detail.contains(&"交付年月日"), "{detail:?}");
    assert_eq!(r["certificationDetail"][0]["value"], "さくら市こども医療証");
    let birth = detail.iter().position(|d| *d == "生年月日").unwrap();
    assert_eq!(r["certificationDetail"][birth]["value"], "平成30年5月5日");
    // Exporting again with no change exports nothing.
    let again = l.export();
    assert!(again.records.is_empty());
    assert!(
        std::fs::read_dir(&again.dir).unwrap().all(|f| !f.unwrap().file_name().to_str().unwrap().ends_with(".csv"))
    );
}

#[test]
fn an_open_ended_record_ends_on_9999_12_31() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({"valid_to": null}))]);
    let e = l.export();
    assert_eq!(e.one("R1S1")["validTo"], "9999-12-31");
    let details = e.one("R1S1")["certificationDetail"].as_array().unwrap().clone();
    let period = details.iter().find(|d| d["name"] == "有効期間").unwrap();
    assert_eq!(period["value"].as_str(), Some("令和8年4月1日から"));
}

#[test]
fn a_renewal_adds_a_record_and_a_mid_span_change_splits_one() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({"copay_cap": {"yen": 5000, "unit": "month", "setting": "combined"}}))]);
    assert_eq!(l.export().keys(), ["R1S1"]);
    // Renewal: only the new span is sent.
    l.apply(&[json!({"type": "renew_certificate", "recipient": "A1", "effective": "2026-09-01", "certificate": "J1",
                     "valid_from": "2026-10-01", "valid_to": "2027-09-30"})]);
    let e = l.export();
    assert_eq!(e.keys(), ["R1S2"]);
    assert_eq!(
        (e.one("R1S2")["validFrom"].as_str(), e.one("R1S2")["validTo"].as_str()),
        (Some("2026-10-01"), Some("2027-09-30"))
    );
    // A change in the middle of the first span: that record is re-sent ending the day before,
    // and a new record starts on the change.
    l.apply(&[json!({"type": "change_certificate", "recipient": "A1", "effective": "2026-07-01", "certificate": "J1",
                     "copay_cap": {"yen": 10000, "unit": "month", "setting": "combined"}})]);
    let e = l.export();
    assert_eq!(e.keys(), ["R1S1", "R1S3"]);
    assert_eq!(e.one("R1S1")["validTo"], "2026-06-30");
    // A cap written in the abolished form reads as 上限額 with its setting as 負担定義.
    assert_eq!(
        e.one("R1S1")["maxCopaymentAmount"],
        json!({"category": "1", "burdenDefinition": "入院・外来合算", "amountPerMonth": 5000})
    );
    assert_eq!(
        (e.one("R1S3")["validFrom"].as_str(), e.one("R1S3")["validTo"].as_str()),
        (Some("2026-07-01"), Some("2026-09-30"))
    );
    assert_eq!(e.one("R1S3")["maxCopaymentAmount"]["amountPerMonth"], 10000);
}

#[test]
fn move_out_ends_the_record_on_the_move_out_date() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({}))]);
    l.export();
    l.apply(&[json!({"type": "move_out", "recipient": "A1", "effective": "2026-08-15", "to": "横浜市"})]);
    let e = l.export();
    assert_eq!(e.keys(), ["R1S1"]);
    assert_eq!(e.one("R1S1")["validTo"], "2026-08-15");
    assert_eq!(e.one("R1S1")["isDeleted"], false);
}

#[test]
fn a_death_reported_late_corrects_records_already_exported() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({}))]);
    l.apply(&[json!({"type": "change_certificate", "recipient": "A1", "effective": "2026-07-01", "certificate": "J1", "income_segment": "B"})]);
    let first = l.export();
    assert_eq!(first.keys(), ["R1S1", "R1S2"]);
    // Died on 15 June, learned in November: the first record ends on the date of death, and the
    // record that started on 1 July never held: it is withdrawn.
    l.apply(&[json!({"type": "record_death", "recipient": "A1", "effective": "2026-06-15"})]);
    let e = l.export();
    assert_eq!(e.keys(), ["R1S1", "R1S2"]);
    assert_eq!(
        (e.one("R1S1")["validTo"].as_str(), e.one("R1S1")["isDeleted"].as_bool()),
        (Some("2026-06-15"), Some(false))
    );
    assert_eq!(e.one("R1S2")["isDeleted"], true);
    assert_eq!(e.one("R1S2")["validFrom"], "2026-07-01", "a withdrawal names the record PMH has");
    assert_eq!(e.manifest["batches"][3]["deleted"], 1, "{:#}", e.manifest);
}

#[test]
fn dv_support_hides_every_record_while_it_lasts() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({}))]);
    l.apply(&[json!({"type": "renew_certificate", "recipient": "A1", "effective": "2026-09-01", "certificate": "J1",
                     "valid_from": "2026-10-01", "valid_to": "2027-09-30"})]);
    let e = l.export();
    assert!(e.records.iter().all(|r| r["isNotDisclosed"] == false));
    l.apply(&[json!({"type": "start_dv_support", "recipient": "A1", "effective": "2026-10-05"})]);
    let during = l.export();
    assert_eq!(during.keys(), ["R1S1", "R1S2"], "every record of the person");
    assert!(during.records.iter().all(|r| r["isNotDisclosed"] == true));
    // A change while the measure lasts is sent hidden too.
    l.apply(&[json!({"type": "change_certificate", "recipient": "A1", "effective": "2026-10-06", "certificate": "J1", "income_segment": "C"})]);
    let change = l.export();
    assert!(!change.records.is_empty() && change.records.iter().all(|r| r["isNotDisclosed"] == true));
    l.apply(&[json!({"type": "end_dv_support", "recipient": "A1", "effective": "2026-11-01"})]);
    let after = l.export();
    assert_eq!(after.keys(), ["R1S1", "R1S2", "R1S3"]);
    assert!(after.records.iter().all(|r| r["isNotDisclosed"] == false));
}

#[test]
fn a_rescinded_grant_is_withdrawn() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({"id": "wrong-grant"}))]);
    assert_eq!(l.export().keys(), ["R1S1"]);
    l.apply(&[json!({"type": "rescind", "recipient": "A1", "effective": "2026-10-01", "target": "wrong-grant", "reason": "別人への認定"})]);
    let e = l.export();
    assert_eq!(e.keys(), ["R1S1"]);
    assert_eq!(e.one("R1S1")["isDeleted"], true);
    // And once withdrawn, nothing more is said about it.
    assert!(l.export().records.is_empty());
}

#[test]
fn a_grant_rescinded_before_any_export_is_never_sent() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({"id": "wrong-grant"}))]);
    l.apply(&[json!({"type": "rescind", "recipient": "A1", "effective": "2026-10-01", "target": "wrong-grant", "reason": "入力誤り"})]);
    assert!(l.export().records.is_empty());
}

#[test]
fn a_my_number_correction_resends_every_record_and_an_address_change_the_current_ones() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({}))]);
    l.apply(&[json!({"type": "renew_certificate", "recipient": "A1", "effective": "2026-09-01", "certificate": "J1",
                     "valid_from": "2026-10-01", "valid_to": "2027-09-30"})]);
    l.export();
    l.apply(&[link("A1", "桜 一郎", "1970-01-20", "983205673214")]);
    let e = l.export();
    assert_eq!(e.keys(), ["R1S1", "R1S2"]);
    assert!(e.records.iter().all(|r| r["myNumber"] == "983205673214"));
    // A move within the city on 10 October: the current record is re-sent with the new
    // address; the record that ended on 30 September stays as it was, true at the time.
    l.apply(&[json!({"type": "change_personal_details", "recipient": "A1", "effective": "2026-10-10", "address": "さくら市緑町7-8"})]);
    let e = l.export();
    assert_eq!(e.keys(), ["R1S2"]);
    assert_eq!(e.one("R1S2")["basicFiveInfo"]["address"], "さくら市緑町7-8");
    // Rescinding the move puts the old address back on the current record only.
    l.apply(&[json!({"id": "fix", "type": "change_personal_details", "recipient": "A1", "effective": "2026-10-11", "name": "桜 市郎"})]);
    let e = l.export();
    assert_eq!(e.keys(), ["R1S2"]);
    l.apply(&[
        json!({"type": "rescind", "recipient": "A1", "effective": "2026-10-12", "target": "fix", "reason": "誤記"}),
    ]);
    let e = l.export();
    assert_eq!(e.keys(), ["R1S2"]);
    assert_eq!(e.one("R1S2")["basicFiveInfo"]["name"], "桜 一郎");
}

#[test]
fn a_name_with_a_character_outside_jis_x_0213_is_exported_with_a_warning() {
    let mut l = Ledger::new();
    l.apply(&[register("A1", "髙橋 一郎", "1970-01-20"), link("A1", "髙橋 一郎", "1970-01-20", "111111111118")]);
    l.apply(&[kosei(json!({}))]);
    let e = l.export();
    assert_eq!(e.one("R1S1")["basicFiveInfo"]["name"], "髙橋 一郎");
    let kosei_batch = e.manifest["batches"].as_array().unwrap().iter().find(|b| b["program"] == "kosei").unwrap();
    assert_eq!(kosei_batch["warnings"], json!([{"historyKey": "R1S1", "field": "name", "characters": ["U+9AD9"]}]));
}

#[test]
fn a_record_missing_a_required_payer_number_is_held_back_until_fixed() {
    // こども医療費 first configured without payer numbers, then required.
    let optional = daicho_domain::config::DEMO_TOML
        .replace("payer_numbers = [\"88139993\"]", "payer_numbers = [\"88139993\"]\npayer_number_required = false");
    let mut l = Ledger::with_config(Some(&optional));
    l.apply(&child("C1"));
    l.apply(&[json!({"type": "grant_certificate", "recipient": "C1", "effective": "2026-04-01", "certificate": "K1",
                     "program": "kodomo", "recipient_number": "000123", "valid_from": "2026-04-01"})]);
    let required = l.tmp.path().join("required.toml");
    std::fs::write(&required, daicho_domain::config::DEMO_TOML).unwrap();
    let (status, _, err) = daicho(&["--data", l.data(), "config", "set", required.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    // Another child of the same program, with a payer number: the batch really sends something.
    l.apply(&[
        register("C2", "桜 次郎", "2019-06-06"),
        link("C2", "桜 次郎", "2019-06-06", "111111111118"),
        json!({"type": "grant_certificate", "recipient": "C2", "effective": "2026-04-01", "certificate": "K2",
               "program": "kodomo", "payer_number": "88139993", "recipient_number": "000124", "valid_from": "2026-04-01"}),
    ]);
    let e = l.export();
    assert_eq!(e.keys(), ["R2S1"]);
    let kodomo = e.manifest["batches"].as_array().unwrap().iter().find(|b| b["program"] == "kodomo").unwrap();
    assert_eq!(kodomo["heldBack"][0]["historyKey"], "R1S1");
    assert_eq!(kodomo["heldBack"][0]["reasons"][0]["code"], "payer_number_missing");
    let rejects = std::fs::read_to_string(e.dir.join("rejects.csv")).unwrap();
    assert!(rejects.contains("R1S1,payer_number_missing"), "{rejects}");
    assert!(!rejects.contains("桜"), "no names in rejects.csv");
    assert_eq!(kodomo["heldBackTotal"], 1);
    // Not fixed yet: the next export still holds it back (it was not marked as sent), counts
    // it, and does not list it again: the batch before listed it as it is.
    let e = l.export();
    assert!(e.records.is_empty());
    let kodomo = e.manifest["batches"].as_array().unwrap().iter().find(|b| b["program"] == "kodomo").unwrap();
    assert_eq!(kodomo["heldBack"], json!([]));
    assert_eq!(kodomo["heldBackTotal"], 1);
    assert!(!e.dir.join("rejects.csv").exists(), "nothing new to list");
    // The whole list, with what the batches have listed.
    let list = l.tmp.path().join("held.csv");
    let (status, out, err) =
        daicho(&["--data", l.data(), "pmh", "held", "--program", "kodomo", "--out", list.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(out, "kodomo: 保留 1件\n");
    let text = std::fs::read_to_string(&list).unwrap();
    assert!(text.contains(",R1S1,payer_number_missing,"), "{text}");
    assert!(text.trim_end().ends_with("掲載済み"), "{text}");
    // Changed but still held back: listed again, once.
    l.apply(&[json!({"type": "change_personal_details", "recipient": "C1", "effective": "2026-05-01", "address": "さくら市緑町7-8"})]);
    let e = l.export();
    let kodomo = e.manifest["batches"].as_array().unwrap().iter().find(|b| b["program"] == "kodomo").unwrap();
    assert_eq!(kodomo["heldBack"].as_array().map(Vec::len), Some(1), "{kodomo}");
    assert_eq!(kodomo["heldBack"][0]["reasons"][0]["code"], "payer_number_missing");
    assert_eq!(kodomo["heldBackTotal"], 1);
    // Fixed: the next diff sends it.
    l.apply(&[json!({"type": "change_certificate", "recipient": "C1", "effective": "2026-04-01", "certificate": "K1", "payer_number": "88139993"})]);
    let e = l.export();
    assert_eq!(e.one("R1S1")["medicalSubsidyInsurerNumber"], "88139993");
}

#[test]
fn a_record_held_back_is_sent_once_the_configuration_accepts_it_without_being_changed() {
    let mut l = Ledger::new();
    let set = |l: &Ledger, name: &str, toml: &str| {
        let file = l.tmp.path().join(name);
        std::fs::write(&file, toml).unwrap();
        let (status, _, err) = daicho(&["--data", l.data(), "config", "set", file.to_str().unwrap()]);
        assert_eq!(status, 0, "{err}");
    };
    // A grant under the demo configuration, then, before any export, a configuration whose
    // こども医療費 has another payer number: the record is held back, in every diff.
    l.apply(&child("C1"));
    l.apply(&[json!({"type": "grant_certificate", "recipient": "C1", "effective": "2026-04-01", "certificate": "K1",
                     "program": "kodomo", "payer_number": "88139993", "recipient_number": "000123",
                     "valid_from": "2026-04-01"})]);
    // The register has the record (caught up), so the configuration is applied to it.
    let (status, _, err) = daicho(&["--data", l.data(), "rebuild", "--catch-up"]);
    assert_eq!(status, 0, "{err}");
    set(&l, "other.toml", &daicho_domain::config::DEMO_TOML.replace("[\"88139993\"]", "[\"87139994\"]"));
    for round in 0..2 {
        let e = l.export();
        assert!(e.records.is_empty());
        let kodomo = batch_of(&e, "kodomo");
        assert_eq!(kodomo["heldBack"][0]["historyKey"], "R1S1");
        assert_eq!(kodomo["heldBack"][0]["reasons"][0]["code"], "payer_number_invalid");
        if round == 0 {
            // A change while it is held back: its entry is written under this configuration.
            l.apply(&[json!({"type": "change_personal_details", "recipient": "C1", "effective": "2026-05-01",
                             "address": "さくら市中央2-2-2"})]);
        }
    }
    // The demo configuration again: the same record, unchanged, goes in the next diff, once.
    set(&l, "demo.toml", daicho_domain::config::DEMO_TOML);
    let (status, _, err) = daicho(&["--data", l.data(), "rebuild", "--catch-up"]);
    assert_eq!(status, 0, "{err}");
    let e = l.export();
    assert_eq!(e.keys(), ["R1S1"]);
    assert!(batch_of(&e, "kodomo")["heldBack"].as_array().is_none_or(Vec::is_empty));
    assert!(l.export().records.is_empty(), "sent once");
}

#[test]
fn the_self_pay_cap_is_sent_in_pmhs_structure_in_json_csv_and_on_the_card() {
    let card = daicho_domain::config::DEMO_TOML.replace(
        "certificate_name = \"自立支援医療受給者証(更生医療)\"\npayer_numbers = [\"15139991\"]\nrecipient_number = \"checked\"\n",
        "certificate_name = \"自立支援医療受給者証(更生医療)\"\npayer_numbers = [\"15139991\"]\nrecipient_number = \"checked\"\n\
         [program.certificate]\nitems = [\"name\", \"copay_cap\"]\n",
    );
    assert_ne!(card, daicho_domain::config::DEMO_TOML, "the template was inserted");
    let mut l = Ledger::with_config(Some(&card));
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({"copay_cap": {"kind": "limit", "definition": "医療費の1割", "rate_month": 10,
                                          "yen_month": 5000, "yen_visit": 0}}))]);
    let e = l.export_mode("full");
    assert_eq!(
        e.one("R1S1")["maxCopaymentAmount"],
        json!({"category": "1", "burdenDefinition": "医療費の1割", "burdenRatePerMonth": 10,
               "amountPerMonth": 5000, "amountPerVisit": 0}),
        "absent sub-items are left out; a zero amount is an amount"
    );
    assert_eq!(
        e.one("R1S1")["certificationDetail"][2]["value"],
        "上限額 月額 5,000円 1回 0円 負担率 10%（月）（医療費の1割）"
    );
    let csv_path = std::fs::read_dir(&e.dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .find(|p| {
            p.file_name().unwrap().to_str().unwrap().starts_with("kosei_") && p.extension().is_some_and(|x| x == "csv")
        })
        .unwrap();
    let text = String::from_utf8(std::fs::read(csv_path).unwrap()).unwrap();
    let mut lines = text.trim_start_matches('\u{FEFF}').lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    let cell = |name: &str| row[header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name}: {header:?}"))];
    for (column, value) in [
        ("自己負担上限額-種別", "1"),
        ("自己負担上限額-負担定義", "医療費の1割"),
        ("自己負担上限額-負担率-日", ""),
        ("自己負担上限額-負担率-月", "10"),
        ("自己負担上限額-負担率-回", ""),
        ("自己負担上限額-金額-日", ""),
        ("自己負担上限額-金額-月", "5000"),
        ("自己負担上限額-金額-回", "0"),
    ] {
        assert_eq!(cell(column), value, "{column}");
    }
    // 負担なし: the kind alone.
    l.apply(&[json!({"type": "change_certificate", "recipient": "A1", "effective": "2026-04-01", "certificate": "J1",
                     "copay_cap": {"kind": "free"}})]);
    let e = l.export();
    assert_eq!(e.one("R1S1")["maxCopaymentAmount"], json!({"category": "3"}));
}

#[test]
fn full_mode_sends_every_current_record_and_csv_matches_json() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({"designated_institutions": ["さくら病院", "桜, \"東\" クリニック"]}))]);
    l.export();
    let e = l.export_mode("full");
    assert_eq!(e.keys(), ["R1S1"]);
    let csv_path = std::fs::read_dir(&e.dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "csv") && !p.ends_with("rejects.csv"))
        .unwrap();
    let csv = std::fs::read(&csv_path).unwrap();
    assert!(csv.starts_with(b"\xEF\xBB\xBF"), "UTF-8 with BOM");
    let text = String::from_utf8(csv).unwrap();
    assert!(text.contains("\r\n") && !text.replace("\r\n", "").contains('\n'), "CRLF line ends");
    let header = text.trim_start_matches('\u{FEFF}').lines().next().unwrap();
    assert!(
        header.starts_with("機関別受給者証種別ID,マイナンバー,氏名,氏名カナ,生年月日,性別,住所,不開示フラグ"),
        "{header}"
    );
    // No header repeats; the card's items follow the common columns.
    let headers: Vec<&str> = header.split(',').collect();
    let unique: std::collections::BTreeSet<&str> = headers.iter().copied().collect();
    assert_eq!(unique.len(), headers.len(), "a header repeats: {header}");
    assert!(headers.contains(&"券面_受給者証名") && headers.contains(&"券面_交付年月日"), "{header}");
    // The demo's templates have no contact text: no such column.
    assert!(!headers.contains(&"券面_問い合わせ先"), "{header}");
    assert!(text.contains("\"さくら病院;桜, \"\"東\"\" クリニック\""), "quoted field: {text}");
}

#[test]
fn a_past_batch_regenerates_byte_for_byte() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({}))]);
    let first = l.export();
    let batch =
        first.manifest["batches"].as_array().unwrap().iter().find(|b| b["program"] == "kosei").unwrap()["batch"]
            .as_u64()
            .unwrap();
    // More happens afterwards; the past batch must not change.
    l.apply(&[json!({"type": "change_certificate", "recipient": "A1", "effective": "2026-07-01", "certificate": "J1", "income_segment": "B"})]);
    l.export();
    let dir = l.tmp.path().join("regenerated");
    let (status, out, err) =
        daicho(&["--data", l.data(), "pmh", "export", "--batch", &batch.to_string(), "--out", dir.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    for f in std::fs::read_dir(&first.dir).unwrap() {
        let f = f.unwrap();
        let name = f.file_name();
        if name.to_str().unwrap().starts_with("kosei_") {
            assert_eq!(std::fs::read(f.path()).unwrap(), std::fs::read(dir.join(&name)).unwrap(), "{name:?}");
        }
    }
}

// ---- Full uploads (全件連携): what PMH has after each ----------------------------------------
// Our reading of the file design, to confirm with the official ファイル設計書: a full batch of a
// program registered with PMH in full mode replaces the program's records there; a full batch of
// a diff-history program only resends records, so it must carry the withdrawals PMH still needs.

fn shogai(r: &str, certificate: &str, extra: Value) -> Value {
    let mut g = json!({"type": "grant_certificate", "recipient": r, "effective": "2026-04-01", "certificate": certificate,
                       "program": "shogai", "payer_number": "80139991", "recipient_number": "S-1",
                       "valid_from": "2026-04-01", "valid_to": "2027-03-31"});
    for (k, v) in extra.as_object().unwrap() {
        g[k] = v.clone();
    }
    g
}

fn batch_of<'a>(e: &'a Export, program: &str) -> &'a Value {
    e.manifest["batches"].as_array().unwrap().iter().find(|b| b["program"] == program).unwrap()
}

#[test]
fn a_full_export_of_a_diff_history_program_carries_the_withdrawals_pmh_still_has() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({"id": "wrong-grant"}))]);
    assert_eq!(l.export().keys(), ["R1S1"]);
    l.apply(&[json!({"type": "rescind", "recipient": "A1", "effective": "2026-10-01", "target": "wrong-grant", "reason": "別人への認定"})]);
    // A full export (after a configuration change, say) still withdraws R1S1 from PMH ...
    let full = l.export_mode("full");
    assert_eq!(full.keys(), ["R1S1"]);
    assert_eq!(full.one("R1S1")["isDeleted"], true);
    assert_eq!(
        (batch_of(&full, "kosei")["deleted"].as_u64(), batch_of(&full, "kosei")["replacesAll"].as_bool()),
        (Some(1), Some(false))
    );
    // ... and once it has, nothing more is said about it.
    assert!(l.export().records.is_empty());
    assert!(l.export_mode("full").records.is_empty());
}

#[test]
fn a_record_held_back_from_a_full_replacement_is_no_longer_at_pmh_and_is_sent_again_when_fixed() {
    let optional = daicho_domain::config::DEMO_TOML
        .replace("payer_numbers = [\"80139991\"]", "payer_numbers = [\"80139991\"]\npayer_number_required = false");
    let mut l = Ledger::with_config(Some(&optional));
    l.apply(&adult("A1"));
    l.apply(&[register("A2", "桜 二郎", "1971-02-02"), link("A2", "桜 二郎", "1971-02-02", "222222222225")]);
    l.apply(&[
        shogai("A1", "S1", json!({})),
        shogai("A2", "S2", json!({"payer_number": null, "recipient_number": "S-2"})),
    ]);
    assert_eq!(l.export_mode("full").keys(), ["R1S1", "R2S1"]);
    // The payer number becomes required: R2S1 is held back from the next full upload, which
    // replaces the program at PMH, so PMH no longer has it.
    let required = l.tmp.path().join("required.toml");
    std::fs::write(&required, daicho_domain::config::DEMO_TOML).unwrap();
    let (status, _, err) = daicho(&["--data", l.data(), "config", "set", required.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    // PMH has R2S1 as it is (nothing pending), yet the next full upload holds it back: the
    // list of held-back records says so before the upload.
    let list = l.tmp.path().join("held-shogai.csv");
    let (status, out, err) =
        daicho(&["--data", l.data(), "pmh", "held", "--program", "shogai", "--out", list.to_str().unwrap()]);
    assert_eq!((status, out.as_str()), (0, "shogai: 保留 1件\n"), "{err}");
    let text = std::fs::read_to_string(&list).unwrap();
    assert!(text.contains(",R2S1,payer_number_missing,") && text.trim_end().ends_with("次回掲載"), "{text}");
    let e = l.export_mode("full");
    assert_eq!(e.keys(), ["R1S1"]);
    let b = batch_of(&e, "shogai");
    assert_eq!(b["heldBack"][0]["historyKey"], "R2S1");
    assert_eq!((b["replacesAll"].as_bool(), b["dropped"].as_u64()), (Some(true), Some(1)));
    // What daicho thinks PMH has follows the file: PMH had R2S1 until the upload (today,
    // 2026-12-01), so November still counts it and December does not.
    let units = |month: &str| {
        let statement = l.tmp.path().join(format!("statement-{month}"));
        let (status, out, err) = daicho(&[
            "--data",
            l.data(),
            "billing",
            "--month",
            month,
            "--policy",
            "certificates-overlapping",
            "--out",
            statement.to_str().unwrap(),
        ]);
        assert_eq!(status, 0, "{out}{err}");
        let json: Value =
            serde_json::from_slice(&std::fs::read(statement.join(format!("billing-{month}.json"))).unwrap()).unwrap();
        json["units"].as_u64().unwrap()
    };
    assert_eq!((units("2026-11"), units("2026-12")), (2, 1));
    // Fixed: the next full upload carries it again.
    l.apply(&[json!({"type": "change_certificate", "recipient": "A2", "effective": "2026-04-01", "certificate": "S2", "payer_number": "80139991"})]);
    assert_eq!(l.export_mode("full").keys(), ["R1S1", "R2S1"]);
}

#[test]
fn withdrawing_the_last_record_of_a_full_program_sends_an_empty_replacement_once() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[shogai("A1", "S1", json!({"id": "only-grant"}))]);
    assert_eq!(l.export_mode("full").keys(), ["R1S1"]);
    l.apply(&[json!({"type": "rescind", "recipient": "A1", "effective": "2026-10-01", "target": "only-grant", "reason": "入力誤り"})]);
    // Nothing is current, yet PMH has R1S1: an empty file (a header and no record) is written
    // and recorded, and clears the program at PMH.
    let e = l.export_mode("full");
    assert!(e.records.is_empty());
    let b = batch_of(&e, "shogai");
    assert!(b["batch"].as_u64().is_some(), "the empty replacement is recorded: {b:#}");
    assert_eq!((b["records"].as_u64(), b["dropped"].as_u64()), (Some(0), Some(1)));
    let names: Vec<String> =
        b["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let json = std::fs::read_to_string(e.dir.join(&names[0])).unwrap();
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), json!([]));
    let csv = std::fs::read_to_string(e.dir.join(&names[1])).unwrap();
    assert_eq!(csv.trim_start_matches('\u{FEFF}').lines().count(), 1, "a header row only: {csv}");
    // PMH now has nothing of the program: the next full export sends nothing.
    let again = l.export_mode("full");
    assert!(batch_of(&again, "shogai")["batch"].is_null(), "nothing to send after the replacement");
}

/// Every `null` in a JSON value, by path.
fn nulls(v: &Value, path: &str, out: &mut Vec<String>) {
    match v {
        Value::Null => out.push(path.to_owned()),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, x)| nulls(x, &format!("{path}[{i}]"), out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| nulls(x, &format!("{path}.{k}"), out)),
        _ => {}
    }
}

#[test]
fn no_exported_record_holds_a_null_and_absent_items_are_left_out() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    // A grant without a payer number's optional neighbours: no income segment, no clinics, no cap.
    l.apply(&[kosei(json!({"id": "plain", "income_segment": null}))]);
    l.apply(&child("C1"));
    l.apply(&[
        json!({"type": "grant_certificate", "recipient": "C1", "effective": "2026-04-01", "certificate": "K1",
               "program": "kodomo", "payer_number": "88139993", "recipient_number": "000123", "valid_from": "2026-04-01"}),
        json!({"type": "start_dv_support", "recipient": "C1", "effective": "2026-05-01"}),
    ]);
    let first = l.export();
    l.apply(&[json!({"type": "rescind", "recipient": "A1", "effective": "2026-10-01", "target": "plain", "reason": "入力誤り"})]);
    let second = l.export();
    let full = l.export_mode("full");
    let mut found = Vec::new();
    for (i, r) in first.records.iter().chain(&second.records).chain(&full.records).enumerate() {
        nulls(r, &format!("record {i}"), &mut found);
    }
    assert!(found.is_empty(), "nulls in exported records: {found:?}");
    assert!(!first.records.is_empty() && second.one("R1S1")["isDeleted"] == true);
    // Absent optional items are not there at all.
    let k = first.one("R2S1");
    for absent in ["segment", "additionalConditions", "designatedMedicalInstitutions", "maxCopaymentAmount"] {
        assert!(k.get(absent).is_none(), "{absent} present: {k:#}");
    }
}

#[test]
fn the_card_items_sent_are_exactly_those_of_the_programs_certificate_template() {
    let card = daicho_domain::config::DEMO_TOML.replace(
        "certificate_name = \"自立支援医療受給者証(更生医療)\"\npayer_numbers = [\"15139991\"]\nrecipient_number = \"checked\"\n",
        "certificate_name = \"自立支援医療受給者証(更生医療)\"\npayer_numbers = [\"15139991\"]\nrecipient_number = \"checked\"\n\
         [program.certificate]\nitems = [\"name\", \"validity\", \"issue_date\", \"contact\"]\n\
         contact = \"さくら市 障害福祉課\\n電話 0120-000-000\"\n",
    );
    assert_ne!(card, daicho_domain::config::DEMO_TOML, "the template was inserted");
    let mut l = Ledger::with_config(Some(&card));
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({"valid_to": "2027-03-31"}))]);
    let e = l.export();
    let names: Vec<&str> =
        e.one("R1S1")["certificationDetail"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["受給者証名", "氏名", "有効期間", "交付年月日", "問い合わせ先"]);
    let contact = &e.one("R1S1")["certificationDetail"][4]["value"];
    assert_eq!(contact, "さくら市 障害福祉課 電話 0120-000-000");
    assert_eq!(e.one("R1S1")["certificationDetail"][3]["value"], "令和8年4月1日", "issued with the grant");
    // The CSV carries the same card items, after the common columns.
    let csv_path = std::fs::read_dir(&e.dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .find(|p| {
            p.file_name().unwrap().to_str().unwrap().starts_with("kosei_") && p.extension().is_some_and(|x| x == "csv")
        })
        .unwrap();
    let text = String::from_utf8(std::fs::read(csv_path).unwrap()).unwrap();
    let header = text.trim_start_matches('\u{FEFF}').lines().next().unwrap().to_owned();
    assert!(
        header.ends_with(",削除フラグ,券面_受給者証名,券面_氏名,券面_有効期間,券面_交付年月日,券面_問い合わせ先"),
        "{header}"
    );
    // A reissue changes the card, so the record is sent again with its new 交付年月日.
    l.apply(&[json!({"type": "reissue_certificate", "recipient": "A1", "effective": "2026-11-20", "certificate": "J1", "reason": "lost"})]);
    let e = l.export();
    assert_eq!(e.one("R1S1")["certificationDetail"][3]["value"], "令和8年11月20日");
}

#[test]
fn configuration_texts_pmh_would_show_as_black_circles_are_warned_and_listed() {
    // 髙 (U+9AD9) is outside JIS X 0213: PMH shows "●" in every record of the program.
    let odd = daicho_domain::config::DEMO_TOML.replace(
        "certificate_name = \"自立支援医療受給者証(更生医療)\"",
        "certificate_name = \"自立支援医療受給者証(更生医療・髙)\"",
    );
    assert_ne!(odd, daicho_domain::config::DEMO_TOML);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("odd.toml");
    std::fs::write(&path, &odd).unwrap();
    let (status, out, err) = daicho(&["config", "check", path.to_str().unwrap()]);
    assert_eq!(status, 0, "a warning, not a refusal: {out}{err}");
    assert!(err.contains("program[3].certificate_name (kosei): U+9AD9"), "{err}");
    // The demo configuration itself has none.
    let demo = tmp.path().join("demo.toml");
    std::fs::write(&demo, daicho_domain::config::DEMO_TOML).unwrap();
    let (status, _, err) = daicho(&["config", "check", demo.to_str().unwrap()]);
    assert_eq!((status, err.contains("警告")), (0, false), "{err}");
    // And the export's manifest lists it beside the batch.
    let mut l = Ledger::with_config(Some(&odd));
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({}))]);
    let e = l.export();
    let b = batch_of(&e, "kosei");
    assert_eq!(b["configWarnings"], json!([{"field": "certificate_name", "characters": ["U+9AD9"]}]));
    assert_eq!(batch_of(&e, "kodomo")["configWarnings"], json!([]));
}

#[test]
fn a_diff_with_a_withdrawal_and_a_held_back_record_of_one_person_lists_the_held_one_once() {
    let mut l = Ledger::new();
    l.apply(&child("C1"));
    for (id, cert, number, from, to) in
        [("k1", "K1", "000123", "2026-04-01", "2026-06-30"), ("k2", "K2", "000124", "2026-07-01", "2027-03-31")]
    {
        l.apply(&[json!({"id": id, "type": "grant_certificate", "recipient": "C1", "effective": from,
                         "certificate": cert, "program": "kodomo", "payer_number": "88139993",
                         "recipient_number": number, "valid_from": from, "valid_to": to})]);
    }
    assert_eq!(l.export().keys(), ["R1S1", "R1S2"]);
    // Another payer number configured: K2's record, changed by a move, is held back; K1's grant
    // is rescinded: its withdrawal is sent. One person, one program, both at once.
    let other = l.tmp.path().join("other.toml");
    std::fs::write(&other, daicho_domain::config::DEMO_TOML.replace("[\"88139993\"]", "[\"87139994\"]")).unwrap();
    let (status, _, err) = daicho(&["--data", l.data(), "config", "set", other.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    l.apply(&[
        json!({"type": "change_personal_details", "recipient": "C1", "effective": "2026-05-01", "address": "さくら市中央3-3-3"}),
        json!({"type": "rescind", "recipient": "C1", "effective": "2026-05-01", "target": "k1", "reason": "誤登録"}),
    ]);
    let e = l.export();
    assert_eq!(e.keys(), ["R1S1"]);
    assert_eq!(e.one("R1S1")["isDeleted"], true);
    let held: Vec<&str> = batch_of(&e, "kodomo")["heldBack"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["historyKey"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["R1S2"]);
    let rejects = std::fs::read_to_string(e.dir.join("rejects.csv")).unwrap();
    assert_eq!(rejects.matches("R1S2").count(), 1, "{rejects}");
}

/// A tmpfs of `bytes` mounted at `dir` until dropped (a real full disk).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: PathBuf, bytes: usize) -> SmallDisk {
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs", dir.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs needs root, as CI runs");
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn an_export_onto_a_full_disk_fails_cleanly_and_records_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    let data = data.to_str().unwrap();
    let (status, _, err) = daicho(&["--data", data, "demo", "--recipients", "1500", "--seed", "3"]);
    assert_eq!(status, 0, "{err}");
    // The files of a full export of 1,500 recipients are about 20 MB: 256 kB fill up part-way through
    // the first large program, in the middle of the files' threads' writes.
    let out = tmp.path().join("full");
    let disk = SmallDisk::mount(out.clone(), 256 << 10);
    let (status, stdout, err) =
        daicho(&["--data", data, "pmh", "export", "--mode", "full", "--out", out.to_str().unwrap()]);
    assert_ne!(status, 0, "{stdout}");
    assert!(err.contains("No space left on device") || err.contains("os error 28"), "{err}");
    drop(disk);
    // The first program's files did not fit: no batch is recorded, so the next export, onto a
    // disk with room, sends every record.
    let (status, text, err) = daicho(&["--data", data, "status"]);
    assert_eq!(status, 0, "{err}");
    assert!(text.contains("PMH: まだ出力していません"), "{text}");
    let good = tmp.path().join("good");
    let (status, stdout, err) =
        daicho(&["--data", data, "pmh", "export", "--mode", "full", "--out", good.to_str().unwrap()]);
    assert_eq!(status, 0, "{stdout}{err}");
    let manifest: Value = serde_json::from_slice(&std::fs::read(good.join("manifest.json")).unwrap()).unwrap();
    let sent: u64 = manifest["batches"].as_array().unwrap().iter().map(|b| b["records"].as_u64().unwrap()).sum();
    assert!(sent > 300, "every current record is in the full export: {sent}");
    for f in std::fs::read_dir(&good).unwrap() {
        let path = f.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let _: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        }
    }
}

#[test]
fn an_export_that_fails_at_its_second_program_still_describes_the_first_one_it_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    let data = data.to_str().unwrap();
    let (status, _, err) = daicho(&["--data", data, "demo", "--recipients", "1500", "--seed", "3"]);
    assert_eq!(status, 0, "{err}");
    // 心身障害者 (shogai) takes about 0.4 MB, 更生医療 (kosei) about 10 MB: 2 MiB hold the first.
    let out = tmp.path().join("two");
    let disk = SmallDisk::mount(out.clone(), 2 << 20);
    let args = ["--data", data, "pmh", "export", "--mode", "full", "--program", "shogai", "--program", "kosei"];
    let (status, stdout, err) = daicho(&[&args[..], &["--out", out.to_str().unwrap()]].concat());
    assert_ne!(status, 0, "{stdout}");
    assert!(err.contains("kosei:") && err.contains("記録済みのバッチ: 1（manifest.json を書きました）"), "{err}");
    // The recorded batch is described: its manifest names it with its number and files, and
    // lists what it held back (a diff would not list those again).
    let manifest: Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let batches = manifest["batches"].as_array().unwrap();
    assert_eq!(batches.len(), 1, "{manifest}");
    assert_eq!((batches[0]["program"].as_str(), batches[0]["batch"].as_u64()), (Some("shogai"), Some(1)));
    let listed = batches[0]["heldBack"].as_array().unwrap().len();
    assert_eq!(out.join("rejects.csv").exists(), listed > 0);
    drop(disk);
}

/// The data file names a batch wrote (from its manifest), JSON first.
fn batch_files(e: &Export, program: &str) -> Vec<String> {
    let batch = e.manifest["batches"].as_array().unwrap().iter().find(|b| b["program"] == program).unwrap();
    batch["files"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap().to_owned()).collect()
}

impl Ledger {
    /// `daicho pmh results` on a results CSV of these rows (file, history key, code, text).
    fn results(&mut self, rows: &[[&str; 4]], extra: &[&str]) -> (u8, String, String) {
        self.exports += 1;
        let mut text = String::from("\u{feff}ファイル名,履歴キー,エラーコード,エラー内容\r\n");
        for row in rows {
            text.push_str(&row.join(","));
            text.push_str("\r\n");
        }
        let file = self.tmp.path().join(format!("results{}.csv", self.exports));
        std::fs::write(&file, text).unwrap();
        let mut args = vec!["--data", self.data(), "pmh", "results", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        daicho(&args)
    }

    fn head(&self) -> String {
        let (status, out, err) = daicho(&["--data", self.data(), "status"]);
        assert_eq!(status, 0, "{err}");
        out.lines()
            .find(|l| l.starts_with("先頭"))
            .unwrap_or_default()
            .split("（")
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

#[test]
fn a_record_pmh_refused_is_sent_again_after_its_correction_and_not_before() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({}))]);
    let first = l.export();
    assert_eq!(first.keys(), ["R1S1"]);
    let json = &batch_files(&first, "kosei")[0];
    let (status, out, err) =
        l.results(&[[json, "R1S1", "E0101", "個人番号111111111118が住民基本台帳と一致しません"]], &[]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("PMHで不受理 1件"), "{out}");
    assert!(!out.contains("111111111118") && !err.contains("111111111118"), "no My Number echoed: {out}{err}");

    // Not sent again while it is what PMH refused: not in a diff, not even in a full resend.
    assert!(l.export().records.is_empty(), "a refused record is not resent unchanged");
    assert!(l.export_mode("full").key("R1S1").is_empty(), "nor in a full resend");
    // The same file again records nothing new.
    let (status, out, _) = {
        l.exports -= 1;
        l.results(&[[json, "R1S1", "E0101", "個人番号111111111118が住民基本台帳と一致しません"]], &[])
    };
    assert_eq!(status, 0);
    assert!(out.contains("記録済み"), "{out}");

    // A correction (here the address) changes the record: the next diff sends it again.
    l.apply(&[json!({"type": "change_personal_details", "recipient": "A1", "effective": "2026-05-01",
                     "address": "さくら市緑町2-3"})]);
    let corrected = l.export();
    assert_eq!(corrected.keys(), ["R1S1"], "the corrected record is sent again");
    assert_eq!(corrected.one("R1S1")["basicFiveInfo"]["address"], "さくら市緑町2-3");
    assert!(l.export().records.is_empty(), "and once sent, it is not pending any more");
}

#[test]
fn rows_naming_what_daicho_did_not_send_are_reported_and_a_malformed_file_records_nothing() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({}))]);
    let first = l.export();
    let json = batch_files(&first, "kosei")[0].clone();
    l.apply(&[json!({"type": "change_personal_details", "recipient": "A1", "effective": "2026-05-01",
                     "address": "さくら市緑町2-3"})]);
    let second = l.export();
    let json2 = batch_files(&second, "kosei")[0].clone();

    // Malformed: nothing recorded, every problem by line and column.
    let before = l.head();
    let (status, out, err) = l.results(&[[&json2, "R1-S1", "E0101", "x"], [&json2, "R1S1", "", "y"]], &[]);
    assert_eq!(status, 1, "{out}{err}");
    assert!(err.contains("何も記録していません"), "{err}");
    assert!(err.contains("2行目「履歴キー」列") && err.contains("3行目「エラーコード」列"), "{err}");
    assert_eq!(l.head(), before, "nothing recorded");

    // A file daicho never wrote, a key it never sent, a record a later batch sent again: each
    // listed with its line; the one valid row is recorded.
    let (status, out, err) = l.results(
        &[
            ["other_diff_1-2.json", "R1S1", "E1", "a"],
            [&json2, "R9S1", "E1", "b"],
            [&json, "R1S1", "E1", "c"],
            [&json2, "R1S1", "E2", "d"],
        ],
        &[],
    );
    assert_eq!(status, 1, "{out}{err}");
    assert!(out.contains("2行目「other_diff_1-2.json」R1S1: 台帳が作成したバッチのファイル名ではありません"), "{out}");
    assert!(out.contains("3行目") && out.contains("R9S1: 台帳が送った記録にない履歴キーです"), "{out}");
    assert!(out.contains("4行目") && out.contains("で送り直した記録です"), "{out}");
    assert!(out.contains("PMHで不受理 1件"), "{out}");
    assert!(err.contains("3行あります"), "{err}");
    assert_ne!(l.head(), before, "the valid row is recorded");
    assert!(l.export().records.is_empty(), "the refused record waits for its correction");
}

/// The ledger `examples/pmh/README.md` names (the small demo), its data directory, and the
/// path of a sample file by name.
fn examples_ledger() -> (tempfile::TempDir, String, impl Fn(&str) -> String) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("demo").to_str().unwrap().to_owned();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/pmh");
    let sample = move |name: &str| examples.join(name).to_str().unwrap().to_owned();
    assert_eq!(daicho(&["--data", &data, "demo", "--recipients", "10"]).0, 0);
    (tmp, data, sample)
}

/// The sample files of `examples/pmh/` against the ledger their README names.
#[test]
fn examples_pmh() {
    let (tmp, data, sample) = examples_ledger();
    let data = data.as_str();
    let out_dir = tmp.path().join("pmh-1");
    let (status, out, err) = daicho(&["--data", data, "pmh", "export", "--out", out_dir.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    for name in ["kodomo_diff_0-93.json", "hitorioya_diff_0-94.json", "kosei_diff_0-95.csv"] {
        assert!(out_dir.join(name).exists(), "the README's export writes {name}");
    }
    let status_line =
        || daicho(&["--data", data, "status"]).1.lines().find(|l| l.starts_with("先頭")).map(str::to_owned);

    let before = status_line();
    let (status, out, err) = daicho(&["--data", data, "pmh", "results", &sample("results-malformed.csv")]);
    assert_eq!(status, 1, "{out}{err}");
    for expected in
        ["2行目「履歴キー」列", "3行目「エラーコード」列: 入力してください", "4行目「エラー内容」列: 列が足りません"]
    {
        assert!(err.contains(expected), "{expected} in {err}");
    }
    assert!(err.contains("何も記録していません"), "{err}");
    assert_eq!(status_line(), before, "a malformed file records nothing");

    let (status, out, err) = daicho(&["--data", data, "pmh", "results", &sample("results-errors.csv")]);
    assert_eq!(status, 1, "{out}{err}");
    assert!(out.contains("バッチ 1（kodomo）: PMHで不受理 1件"), "two errors on one record: one refusal\n{out}");
    assert!(out.contains("バッチ 3（kosei）: PMHで不受理 1件"), "{out}");
    assert!(out.contains("5行目「kodomo_diff_0-93.json」R99S1: 台帳が送った記録にない履歴キーです"), "{out}");
    assert!(
        out.contains("6行目「shogai_full_0-90.json」R5S1: 台帳が作成したバッチのファイル名ではありません"),
        "{out}"
    );
    assert!(!out.contains("400000000025") && !err.contains("400000000025"), "{out}{err}");
    // Neither refused record is in the next diff.
    let again = tmp.path().join("pmh-2");
    let (status, out, err) = daicho(&["--data", data, "pmh", "export", "--out", again.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(!again.join("kodomo_diff_93-96.json").exists() && out.contains("kodomo: diff 0件"), "{out}");
}

#[test]
fn a_late_result_for_a_batch_whose_record_a_full_resend_sent_again_is_not_applied() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({}))]);
    let diff = l.export();
    let json = batch_files(&diff, "kosei")[0].clone();
    // A full resend sends the record again; PMH's answer to the diff comes after it.
    assert_eq!(l.export_mode("full").keys(), ["R1S1"]);
    let (status, out, err) = l.results(&[[&json, "R1S1", "E0101", "x"]], &[]);
    assert_eq!(status, 1, "{out}{err}");
    assert!(out.contains("で送り直した記録です"), "{out}");
    assert!(!out.contains("PMHで不受理"), "nothing recorded for a batch no row was tied to: {out}");
    // PMH's answer to the full resend itself is applied.
    let full = std::fs::read_dir(l.tmp.path().join(format!("export{}", l.exports - 1)))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("kosei_full_") && n.ends_with(".json"))
        .unwrap();
    let (status, out, err) = l.results(&[[&full, "R1S1", "E0101", "y"]], &[]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("PMHで不受理 1件"), "{out}");
    assert!(l.export_mode("full").key("R1S1").is_empty(), "refused: not sent again unchanged");
}

#[test]
fn a_record_withdrawn_before_pmh_refused_it_leaves_nothing_to_send() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[json!({"id": "g1", "type": "grant_certificate", "recipient": "A1", "effective": "2026-04-01",
                     "certificate": "J1", "program": "kosei", "payer_number": "15139991",
                     "recipient_number": "1234566", "valid_from": "2026-04-01", "valid_to": "2026-09-30",
                     "income_segment": "A"})]);
    let first = l.export();
    let json = batch_files(&first, "kosei")[0].clone();
    // Withdrawn (its deletion waits for the next batch), then PMH says it never took it.
    l.apply(&[
        json!({"type": "rescind", "recipient": "A1", "effective": "2026-05-01", "target": "g1", "reason": "入力誤り"}),
    ]);
    let (status, out, err) = l.results(&[[&json, "R1S1", "E0101", "x"]], &[]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("PMHで不受理 1件"), "{out}");
    // PMH never had it: no deletion is sent, and nothing stays listed as refused.
    let next = l.export();
    assert!(next.records.is_empty(), "{:?}", next.records);
    let mut ledger = daicho_app::ledger::Ledger::open(std::path::Path::new(l.data())).unwrap();
    let reader = ledger.projections().unwrap().reader();
    assert_eq!(reader.pmh_refused("kosei", 10).unwrap().1, 0, "no refused record is left listed");
    assert!(reader.pmh_entries(1).unwrap().is_empty(), "no entry is left");
}

/// The reconciliation samples of `examples/pmh/` against the ledger their README names.
#[test]
fn examples_pmh_reconcile() {
    let (tmp, data, sample) = examples_ledger();
    let data = data.as_str();
    let out_dir = tmp.path().join("pmh-1");
    assert_eq!(daicho(&["--data", data, "pmh", "export", "--out", out_dir.to_str().unwrap()]).0, 0);
    let report = tmp.path().join("report.csv");
    let (status, out, err) =
        daicho(&["--data", data, "pmh", "reconcile", &sample("inquiry.csv"), "--out", report.to_str().unwrap()]);
    assert_eq!(status, 1, "differences found: {out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    for expected in ["個人番号相違（別人登録の疑い）: 1件", "PMHにない: 1件", "台帳にない: 1件", "項目相違: 1件"]
    {
        assert!(lines.contains(&expected), "{expected} in {out}");
    }
    let findings: Vec<&str> = lines.iter().copied().filter(|l| l.contains('\t')).collect();
    assert_eq!(findings.len(), 4, "{out}");
    assert!(
        findings[0].starts_with("個人番号相違（別人登録の疑い）\t2行目\tR2S1\t内部番号 2\t第1回\tマイナンバー"),
        "first: {out}"
    );
    assert!(findings[0].ends_with("台帳 ********0025 / PMH ********9018"), "masked My Numbers: {out}");
    assert!(findings[1].starts_with("PMHにない\t-\tR1S2\t内部番号 1\t第3回"), "{out}");
    assert!(findings[2].starts_with("台帳にない\t59行目\tR99S1\t-"), "{out}");
    assert!(findings[3].starts_with("項目相違\t36行目\tR4S1\t内部番号 4\t第2回\t住所"), "{out}");
    assert!(!out.contains("400000000025") && !out.contains("123456789018"), "no My Number in full: {out}");
    // The CSV report: owner-only, the same findings, wrong-person first, no value but masked
    // My Numbers.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&report).unwrap().permissions().mode() & 0o777, 0o600);
    let csv = std::fs::read_to_string(&report).unwrap();
    let rows: Vec<&str> = csv.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(rows.len(), 5, "{csv}");
    assert!(
        rows[1].starts_with("個人番号相違（別人登録の疑い）,2,R2S1,kodomo,2,1,マイナンバー,********0025,********9018"),
        "{csv}"
    );
    assert!(!csv.contains("さくら市本町9-9-9"), "no value of a differing column: {csv}");
    // A second --out to the same file is refused: a report is never overwritten.
    let (status, _, _) =
        daicho(&["--data", data, "pmh", "reconcile", &sample("inquiry.csv"), "--out", report.to_str().unwrap()]);
    assert_eq!(status, 2);

    let (status, out, err) = daicho(&["--data", data, "pmh", "reconcile", &sample("inquiry-malformed.csv")]);
    assert_eq!(status, 1, "{out}{err}");
    for expected in [
        "2行目「履歴キー」列",
        "3行目「削除フラグ」列: 0 または 1 です",
        "4行目: 列の数が見出し行（29列）と違います（10列）",
    ] {
        assert!(err.contains(expected), "{expected} in {err}");
    }
}

#[test]
fn reconciliation_renders_a_record_as_its_last_full_resend_did_and_compares_only_the_my_number_of_a_refused_one() {
    let mut l = Ledger::new();
    l.apply(&adult("A1"));
    l.apply(&[kosei(json!({}))]);
    let first = l.export();
    let json = batch_files(&first, "kosei")[0].clone();
    // The card's title changes, and a full resend sends the record under the new one.
    let renamed = daicho_domain::config::DEMO_TOML.replacen(
        "certificate_name = \"自立支援医療受給者証(更生医療)\"",
        "certificate_name = \"更生医療受給者証\"",
        1,
    );
    assert_ne!(renamed, daicho_domain::config::DEMO_TOML);
    let file = l.tmp.path().join("renamed.toml");
    std::fs::write(&file, &renamed).unwrap();
    let (status, out, err) = daicho(&["--data", l.data(), "config", "set", file.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    let full = l.export_mode("full");
    let csv_name = batch_files(&full, "kosei")[1].clone();
    let inquiry = full.dir.join(&csv_name);
    let (status, out, err) = daicho(&["--data", l.data(), "pmh", "reconcile", inquiry.to_str().unwrap()]);
    assert_eq!(status, 0, "PMH holds what the full resend sent: {out}{err}");
    // The first diff's file is what PMH held before: its title differs now.
    let first_csv = first.dir.join(batch_files(&first, "kosei")[1].clone());
    let (status, out, _) = daicho(&["--data", l.data(), "pmh", "reconcile", first_csv.to_str().unwrap()]);
    assert_eq!(status, 1, "{out}");
    assert!(out.contains("項目相違: 1件") && out.contains("受給者証名"), "{out}");
    // PMH refuses the diff's record: only a My Number that differs is reported for it.
    let (status, out, err) = l.results(&[[&json, "R1S1", "E0101", "x"]], &[]);
    assert_eq!(status, 1, "a full resend sent it again after the diff: {out}{err}");
    let full_json = batch_files(&full, "kosei")[0].clone();
    let (status, out, err) = l.results(&[[&full_json, "R1S1", "E0101", "x"]], &[]);
    assert_eq!(status, 0, "{out}{err}");
    let (status, out, _) = daicho(&["--data", l.data(), "pmh", "reconcile", first_csv.to_str().unwrap()]);
    assert_eq!(status, 0, "a refused record's other columns are not compared: {out}");
    let text = std::fs::read_to_string(&first_csv).unwrap().replace("111111111118", "123456789018");
    let other = l.tmp.path().join("other.csv");
    std::fs::write(&other, text).unwrap();
    let (status, out, _) = daicho(&["--data", l.data(), "pmh", "reconcile", other.to_str().unwrap()]);
    assert_eq!(status, 1);
    assert!(out.contains("個人番号相違（別人登録の疑い）: 1件"), "{out}");
}
