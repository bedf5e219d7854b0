//! CSV (formula) injection (hardening issue, item 4): free text that a spreadsheet would run as a
//! formula is refused at input, in commands, imports and the configuration, so the PMH feed
//! never carries it; free-text cells of CSV files meant for people are neutralised.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use daicho_tests::cli::{daicho as cli, repo};

fn line(v: serde_json::Value) -> String {
    let mut v = v;
    let o = v.as_object_mut().unwrap();
    o.entry("actor").or_insert("case1".into());
    o.entry("effective").or_insert("2026-04-01".into());
    v.to_string()
}

#[test]
fn formulas_in_names_addresses_places_and_reasons_are_refused_at_input() {
    use serde_json::json;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_eq!(cli(&data, &["init"]).0, 0);
    let reg = |id: &str, r: &str, name: &str, address: &str| {
        line(json!({"id": id, "type": "register_recipient", "recipient": r, "name": name, "kana": "ヤマダ ハナコ",
                    "birth_date": "1980-01-01", "sex": "2", "address": address}))
    };
    let lines = [
        reg("f1", "R1", "=1+2", "さくら市本町1-1"),
        reg("f2", "R2", "山田 花子", "=HYPERLINK(\"http://example.invalid\",\"x\")"),
        reg("f3", "R3", "+81 花子", "さくら市本町1-1"),
        reg("f4", "R4", "@SUM(A1)", "さくら市本町1-1"),
        reg("f5", "R5", " -1 花子", "さくら市本町1-1"),
        reg("ok", "R6", "山田 花子", "さくら市本町1-1"),
        line(json!({"id": "f6", "type": "move_out", "recipient": "R6", "to": "=cmd|' /C calc'!A0"})),
        line(json!({"id": "f7", "type": "rescind", "recipient": "R6", "target": "ok", "reason": "-2+3"})),
    ];
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let (code, out, _) = cli(&data, &["apply", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    let answers: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for (a, field) in answers.iter().zip(["name", "address", "name", "name", "name", "", "to", "reason"]) {
        if field.is_empty() {
            assert_eq!(a["outcome"], "accepted", "{a}");
            continue;
        }
        assert_eq!(a["outcome"], "rejected", "{a}");
        assert_eq!(a["errors"][0]["field"], field, "{a}");
        assert_eq!(a["errors"][0]["code"], "formula_like", "{a}");
    }
    // Inside a name, the characters are ordinary.
    let fine = dir.path().join("fine.jsonl");
    std::fs::write(&fine, reg("g1", "R7", "山田-花子", "さくら市本町1-1 A=1") + "\n").unwrap();
    assert_eq!(cli(&data, &["apply", fine.to_str().unwrap()]).0, 0);
}

#[test]
fn a_configuration_name_that_is_a_formula_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::read_to_string(repo().join("domain/data/sakura.toml")).unwrap();
    let bad = demo.replacen("name = \"こども医療費助成\"", "name = \"=HYPERLINK(1)\"", 1);
    assert_ne!(bad, demo, "the demo configuration changed: adjust the test");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, bad).unwrap();
    let (code, out, err) = cli(dir.path(), &["config", "check", file.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!((out.clone() + &err).contains("program[0].name") && (out + &err).contains("数式"));
}

#[test]
fn an_import_report_neutralises_a_column_name_that_is_a_formula() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_eq!(cli(&data, &["init"]).0, 0);
    let profile = r#"
[import]
source = "formula"
encoding = "utf-8"
header = true
date_formats = ["iso"]

[columns]
recipient = "番号"
name = "=氏名"
kana = "カナ"
birth_date = "生年月日"
sex = "性別"
address = "住所"
"#;
    let csv = "番号,=氏名,カナ,生年月日,性別,住所\r\nX-1,=1+2,ヤマダ ハナコ,1980-01-01,2,さくら市本町1-1\r\n";
    std::fs::write(dir.path().join("p.toml"), profile).unwrap();
    std::fs::write(dir.path().join("in.csv"), csv).unwrap();
    let report = dir.path().join("report.csv");
    let p = dir.path().join("p.toml");
    let input = dir.path().join("in.csv");
    let (code, _, err) = cli(
        &data,
        &[
            "import",
            "--profile",
            p.to_str().unwrap(),
            input.to_str().unwrap(),
            "--actor",
            "case1",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{err}");
    let text = std::fs::read_to_string(&report).unwrap();
    let row = text.lines().find(|l| l.contains("formula_like")).unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(",'=氏名,"), "the column cell is not neutralised: {row}");
    assert!(!text.lines().any(|l| l.split(',').any(|cell| cell.starts_with('='))), "{text}");
}
