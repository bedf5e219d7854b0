//! `daicho check` end to end on the shipped example files and on malformed input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The repository root (this crate lives in `tests/`).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs the CLI in-process; returns the exit status, stdout lines as JSON, and stderr.
/// Runs the CLI on the tests' fixed day (`daicho_tests::cli::TODAY`), never the clock's.
fn daicho(args: &[&str]) -> (u8, Vec<Value>, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let argv = ["daicho", "--today", daicho_tests::cli::TODAY].into_iter().chain(args.iter().copied());
    let status = daicho::cli::main(argv, &mut out, &mut err);
    let stdout = String::from_utf8(out).unwrap();
    let lines = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (status, lines, String::from_utf8(err).unwrap())
}

fn check(file: &Path) -> (u8, Vec<Value>, String) {
    daicho(&["check", "--today", "2026-11-22", file.to_str().unwrap()])
}

#[test]
fn the_sakura_example_is_accepted_line_by_line() {
    let (status, lines, err) = check(&repo().join("examples/sakura.jsonl"));
    assert_eq!(status, 0, "{err}");
    let source = std::fs::read_to_string(repo().join("examples/sakura.jsonl")).unwrap();
    assert_eq!(lines.len(), source.lines().count(), "one output line per input line");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["line"], i + 1);
        assert_eq!(line["outcome"], "accepted", "{line}");
        assert_eq!(line["position"], i + 1, "one event per command, positions dense from 1");
    }
    // 髙 in a name is accepted, with a warning that PMH shows it as "●".
    let warned: Vec<&Value> = lines.iter().filter(|l| l.get("warnings").is_some()).collect();
    assert_eq!(warned.len(), 1);
    assert_eq!(warned[0]["warnings"][0]["code"], "pmh_unrepresentable");
    assert!(err.contains("受理 25件"));
}

#[test]
fn output_never_contains_a_my_number() {
    let (_, lines, err) = check(&repo().join("examples/sakura.jsonl"));
    let all = format!("{lines:?}{err}");
    for n in ["300000000012", "300000000020"] {
        assert!(!all.contains(n));
    }
    let (_, lines, err) = check(&repo().join("examples/mistakes.jsonl"));
    let all = format!("{lines:?}{err}");
    assert!(!all.contains("300000000038") && !all.contains("300000000039"));
}

#[test]
fn the_mistakes_example_names_each_rule_line_and_field() {
    let (status, lines, _) = check(&repo().join("examples/mistakes.jsonl"));
    assert_eq!(status, 1, "any rejected line gives exit status 1");
    // Each line as `line code field`, with `-` where there is none.
    let got: Vec<String> = lines
        .iter()
        .map(|l| {
            let code = l.get("code").and_then(Value::as_str).unwrap_or_else(|| l["outcome"].as_str().unwrap());
            let field = l["errors"].get(0).and_then(|e| e["field"].as_str()).unwrap_or("-");
            format!("{} {code} {field}", l["line"])
        })
        .collect();
    assert_eq!(
        got,
        [
            "1 not_katakana kana",
            "2 accepted -",
            "3 already_applied -",
            "4 idempotency_key_reused -",
            "5 my_number_check_digit my_number",
            "6 approver_is_actor -",
            "7 basic_info_mismatch -",
            "8 payer_number_check_digit payer_number",
            "9 payer_number_not_in_program -",
            "10 beyond_age_limit -",
            "11 unknown_field too",
            "12 invalid_json -",
            "13 recipient_not_registered -",
        ]
    );
    // The same id with the same content returns the first outcome's position.
    assert_eq!(lines[1]["position"], lines[2]["position"]);
}

#[test]
fn malformed_bytes_are_rejected_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.jsonl");
    let good = r#"{"id":"a","type":"register_recipient","actor":"u","recipient":"R1","effective":"2026-04-01","name":"山田","kana":"ヤマダ","birth_date":"2000-01-01","sex":"1","address":"本町"}"#;
    let mut bytes = b"\xEF\xBB\xBF".to_vec(); // BOM, as Excel writes
    bytes.extend_from_slice(good.as_bytes());
    bytes.extend_from_slice(b"\r\n\r\n"); // CRLF, then a blank line
    bytes.extend_from_slice(b"{\"id\":\"b\xFF\"}\n"); // invalid UTF-8
    bytes.extend_from_slice(&vec![b'x'; daicho::outcome::LINE_BYTES_MAX + 10]); // too long
    bytes.extend_from_slice(b"\n");
    bytes.extend_from_slice(good.replace("\"a\"", "\"c\"").replace("R1", "R2").as_bytes()); // no final newline
    std::fs::write(&path, bytes).unwrap();
    let (status, lines, _) = check(&path);
    assert_eq!(status, 1);
    let codes: Vec<&str> = lines.iter().map(|l| l.get("code").and_then(Value::as_str).unwrap_or("ok")).collect();
    assert_eq!(codes, ["ok", "empty_line", "invalid_utf8", "line_too_long", "ok"]);
    assert_eq!(lines.iter().map(|l| l["line"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
}

#[test]
fn an_unreadable_file_exits_2() {
    let (status, lines, err) = check(&repo().join("examples/does-not-exist.jsonl"));
    assert_eq!((status, lines.len()), (2, 0));
    assert!(err.contains("読めません"));
}

#[test]
fn configuration_files_are_validated_with_places() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("city.toml");
    let demo = daicho_domain::config::DEMO_TOML.replace("\"88139993\"", "\"88139994\"");
    std::fs::write(&path, demo).unwrap();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let status = daicho::cli::main(["daicho", "config", "check", path.to_str().unwrap()], &mut out, &mut err);
    assert_eq!(status, 1);
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains("program[0].payer_numbers[0]"), "{err}");
    // The shipped demo configuration is valid, and `daicho config` prints exactly it.
    let mut out = Vec::new();
    let sakura = repo().join("domain/data/sakura.toml");
    assert_eq!(
        daicho::cli::main(["daicho", "config", "check", sakura.to_str().unwrap()], &mut out, &mut Vec::new()),
        0
    );
    let mut out = Vec::new();
    assert_eq!(daicho::cli::main(["daicho", "config", "demo"], &mut out, &mut Vec::new()), 0);
    assert_eq!(String::from_utf8(out).unwrap(), std::fs::read_to_string(sakura).unwrap());
}
