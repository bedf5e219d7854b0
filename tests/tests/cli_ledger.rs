//! `daicho init`, `apply` and `verify` end to end on a real ledger on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use daicho_tests::cli::{daicho, repo};
use std::path::{Path, PathBuf};

use serde_json::Value;

fn lines(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const GOOD: &str = r#"{"id":"g1","type":"register_recipient","actor":"kubo","recipient":"R1","effective":"2026-04-01","name":"山田 太郎","kana":"ヤマダ タロウ","birth_date":"2015-06-10","sex":"1","address":"さくら市本町1-2-3"}
{"id":"g2","type":"grant_certificate","actor":"kubo","recipient":"R1","effective":"2026-04-01","certificate":"K1","program":"kodomo","payer_number":"88139993","recipient_number":"000123","valid_from":"2026-04-01","valid_to":"2027-03-31"}
{"id":"g3","type":"register_recipient","actor":"kubo","recipient":"R2","effective":"2026-04-02","name":"佐藤 花子","kana":"サトウ ハナコ","birth_date":"1980-01-01","sex":"2","address":"さくら市緑町4-5"}
"#;

#[test]
fn init_then_apply_gives_the_contract_lines_and_a_second_apply_appends_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    let (status, out, _) = daicho(&data, &["init"]);
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("さくら市"));
    // Good and bad lines together.
    let mixed = format!(
        "{GOOD}{}\n{}\nnot json\n",
        r#"{"id":"b1","type":"grant_certificate","actor":"kubo","recipient":"R1","effective":"2026-04-01","certificate":"K2","program":"kodomo","payer_number":"88139993","recipient_number":"000124","valid_from":"2026-06-01"}"#,
        r#"{"id":"b2","type":"move_out","actor":"kubo","recipient":"R9","effective":"2026-04-01","to":"横浜市"}"#,
    );
    let file = write(tmp.path(), "mixed.jsonl", &mixed);
    let (status, out, err) = daicho(&data, &["apply", file.to_str().unwrap()]);
    assert_eq!(status, 1, "{err}");
    let got = lines(&out);
    let summary: Vec<String> = got
        .iter()
        .map(|l| {
            format!(
                "{} {} {}",
                l["line"],
                l["outcome"].as_str().unwrap(),
                l.get("code").and_then(Value::as_str).unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "1 accepted -",
            "2 accepted -",
            "3 accepted -",
            "4 rejected overlapping_certificate",
            "5 rejected recipient_not_registered",
            "6 rejected invalid_json",
        ]
    );
    // Position 1 is the configuration; the three accepted commands follow, densely.
    assert_eq!(got.iter().take(3).map(|l| l["position"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 3, 4]);
    // A second apply of the good lines appends nothing and reports their original positions.
    let good = write(tmp.path(), "good.jsonl", GOOD);
    let (status, out, err) = daicho(&data, &["apply", good.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    let again = lines(&out);
    assert!(again.iter().all(|l| l["outcome"] == "already_applied"), "{out}");
    assert_eq!(again.iter().map(|l| l["position"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 3, 4]);
    assert!(err.contains("位置 4"), "the head did not move: {err}");
    let (status, out, _) = daicho(&data, &["verify"]);
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("検証OK: 4件"), "{out}");
}

#[test]
fn a_changed_line_under_a_used_id_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    assert_eq!(daicho(&data, &["init"]).0, 0);
    let good = write(tmp.path(), "good.jsonl", GOOD);
    assert_eq!(daicho(&data, &["apply", good.to_str().unwrap()]).0, 0);
    let changed = write(tmp.path(), "changed.jsonl", &GOOD.replace("さくら市緑町4-5", "さくら市緑町9-9"));
    let (status, out, _) = daicho(&data, &["apply", changed.to_str().unwrap()]);
    assert_eq!(status, 1);
    let got = lines(&out);
    assert_eq!(got[2]["code"], "idempotency_key_reused");
    assert_eq!(
        (got[0]["outcome"].as_str(), got[1]["outcome"].as_str()),
        (Some("already_applied"), Some("already_applied"))
    );
}

#[test]
fn the_whole_example_applies_and_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    assert_eq!(daicho(&data, &["init"]).0, 0);
    let (status, out, err) = daicho(&data, &["apply", repo().join("examples/sakura.jsonl").to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    assert_eq!(lines(&out).len(), 25);
    // My Numbers go into the ledger, never into the output.
    assert!(!out.contains("300000000012") && !err.contains("300000000012"));
    let (status, out, _) = daicho(&data, &["verify"]);
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("検証OK: 26件"), "{out}");
}

#[test]
fn a_second_recipient_cannot_take_a_linked_my_number() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    assert_eq!(daicho(&data, &["init"]).0, 0);
    let link = |id: &str, r: &str, name: &str, birth: &str| {
        format!(
            r#"{{"id":"{id}","type":"link_my_number","actor":"kubo","approver":"mori","recipient":"{r}","effective":"2026-04-10","my_number":"123456789018","resident_record":{{"name":"{name}","birth_date":"{birth}","sex":"{sex}","address":"{addr}"}}}}"#,
            sex = if r == "R1" { "1" } else { "2" },
            addr = if r == "R1" { "さくら市本町1-2-3" } else { "さくら市緑町4-5" },
        )
    };
    let text = format!(
        "{GOOD}{}\n{}\n",
        link("l1", "R1", "山田 太郎", "2015-06-10"),
        link("l2", "R2", "佐藤 花子", "1980-01-01")
    );
    let file = write(tmp.path(), "links.jsonl", &text);
    let (status, out, _) = daicho(&data, &["apply", file.to_str().unwrap()]);
    assert_eq!(status, 1);
    let got = lines(&out);
    assert_eq!(got[3]["outcome"], "accepted");
    assert_eq!(got[4]["code"], "my_number_in_use");
    // A fresh process sees the same: the index is rebuilt from the log.
    let again = write(tmp.path(), "again.jsonl", &format!("{}\n", link("l3", "R2", "佐藤 花子", "1980-01-01")));
    let (_, out, _) = daicho(&data, &["apply", again.to_str().unwrap()]);
    assert_eq!(lines(&out)[0]["code"], "my_number_in_use");
}

#[test]
fn init_refuses_an_existing_ledger_and_a_bad_configuration() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    assert_eq!(daicho(&data, &["init"]).0, 0);
    let (status, _, err) = daicho(&data, &["init"]);
    assert_eq!(status, 1);
    assert!(err.contains("既に"), "{err}");
    let bad = write(tmp.path(), "bad.toml", &daicho_domain::config::DEMO_TOML.replace("88139993", "88139994"));
    let other = tmp.path().join("other");
    let (status, _, err) = daicho(&other, &["init", "--config", bad.to_str().unwrap()]);
    assert_eq!(status, 1);
    assert!(err.contains("payer_numbers"), "{err}");
    assert!(!other.exists(), "a refused configuration creates nothing");
}

#[test]
fn apply_without_a_ledger_or_file_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("nothing");
    let file = write(tmp.path(), "good.jsonl", GOOD);
    assert_eq!(daicho(&data, &["apply", file.to_str().unwrap()]).0, 2);
    assert_eq!(daicho(&data, &["verify"]).0, 2);
    let data = tmp.path().join("ledger");
    assert_eq!(daicho(&data, &["init"]).0, 0);
    assert_eq!(daicho(&data, &["apply", "/nonexistent.jsonl"]).0, 2);
}

// ---- Damage: a copy of a ledger, altered or truncated, is caught by verify -------------------

fn ledger_with_example(tmp: &Path) -> PathBuf {
    let data = tmp.join("ledger");
    assert_eq!(daicho(&data, &["init"]).0, 0);
    assert_eq!(daicho(&data, &["apply", repo().join("examples/sakura.jsonl").to_str().unwrap()]).0, 0);
    assert_eq!(daicho(&data, &["verify"]).0, 0);
    data
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn with_tree(data: &Path, f: impl FnOnce(&sled::Tree)) {
    let db = daicho_store::open_raw_sled(&data.join("store/sled")).unwrap();
    f(&db.open_tree("ledger").unwrap());
    db.flush().unwrap();
}

#[test]
fn verify_names_the_altered_position_in_a_damaged_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let good = ledger_with_example(tmp.path());
    let copy = tmp.path().join("copy");
    copy_dir(&good, &copy);
    // Change one stored value: the recipient number in the grant at position 3 (a byte of the
    // payload, which ends 64 bytes before the record's end).
    with_tree(&copy, |tree| {
        let mut record = daicho_store::raw::record(tree, 3).unwrap().unwrap();
        let at = record.len() - 66;
        record[at] = if record[at] == b'5' { b'6' } else { b'5' };
        daicho_store::raw::set_record(tree, 3, &record).unwrap();
    });
    let (status, out, _) = daicho(&copy, &["verify"]);
    assert_eq!(status, 1, "{out}");
    assert!(out.contains("位置 3"), "{out}");
    assert!(out.contains("位置 2 までは正常"), "{out}");
    // The original is untouched and still verifies.
    assert_eq!(daicho(&good, &["verify"]).0, 0);
}

#[test]
fn verify_names_the_first_missing_position_in_a_truncated_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let good = ledger_with_example(tmp.path());
    let copy = tmp.path().join("copy");
    copy_dir(&good, &copy);
    // Truncate the log after position 20 (the recorded head still says 26).
    with_tree(&copy, |tree| {
        daicho_store::raw::truncate_after(tree, 20).unwrap();
    });
    let (status, out, _) = daicho(&copy, &["verify"]);
    assert_eq!(status, 1, "{out}");
    assert!(out.contains("位置 21"), "{out}");
    // The damaged copy cannot be opened for writing either.
    let file = write(tmp.path(), "good.jsonl", GOOD);
    let (status, _, err) = daicho(&copy, &["apply", file.to_str().unwrap()]);
    assert_eq!(status, 2);
    assert!(err.contains("damaged"), "{err}");
}

#[test]
fn a_truncated_database_file_never_verifies_with_data_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let good = ledger_with_example(tmp.path());
    let (_, intact, _) = daicho(&good, &["verify"]);
    let db_len = std::fs::metadata(good.join("store/sled/db")).unwrap().len();
    // Cut the sled file itself at several points. Whatever sled recovers, verify either fails
    // or finds the whole ledger intact (the cut only removed unused space).
    let mut detected = 0;
    for (i, cut) in [db_len * 2 / 3, db_len / 3, 64 * 1024, 4096, 0].into_iter().enumerate() {
        let copy = tmp.path().join(format!("copy{i}"));
        copy_dir(&good, &copy);
        let file = std::fs::OpenOptions::new().write(true).open(copy.join("store/sled/db")).unwrap();
        file.set_len(cut).unwrap();
        drop(file);
        let (status, out, _) = daicho(&copy, &["verify"]);
        if status == 0 {
            assert_eq!(out, intact, "cut at {cut}: verify passed but the ledger differs");
        } else {
            detected += 1;
        }
    }
    assert!(detected >= 2, "the small cuts lose data and must be detected ({detected})");
}

#[test]
fn rebuild_catches_up_on_what_apply_left_and_a_full_rebuild_applies_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    assert_eq!(daicho(&data, &["init"]).0, 0);
    let (status, _, err) = daicho(&data, &["apply", repo().join("examples/sakura.jsonl").to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    let lag = |data: &Path| {
        let (status, out, err) = daicho(data, &["status", "--json"]);
        assert_eq!(status, 0, "{err}");
        let v: Value = serde_json::from_str(&out).unwrap();
        (v["registerLag"].as_u64().unwrap(), v["headPosition"].as_u64().unwrap())
    };
    let (behind, head) = lag(&data);
    assert!(behind > 0, "apply leaves the register to catch up");
    let (status, out, err) = daicho(&data, &["rebuild", "--catch-up"]);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains(&format!("位置 {head} まで追いつきました（{behind}件")), "{out}");
    assert_eq!(lag(&data).0, 0);
    // Nothing left: a second catch-up applies none; a rebuild applies the whole log.
    let (_, out, _) = daicho(&data, &["rebuild", "--catch-up"]);
    assert!(out.contains("（0件"), "{out}");
    let (status, out, err) = daicho(&data, &["rebuild"]);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains(&format!("位置 {head} まで再構築しました（{head}件")), "{out}");
}
