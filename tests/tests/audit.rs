//! Audit tools end to end: `daicho audit bundle` checked by the shipped independent verifier
//! (Python, standard library only), tampering caught by it, and `daicho replay` at past
//! positions and times.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use daicho_tests::cli::{daicho, repo};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Runs the shipped verifier; (exit status, stdout).
fn verify_bundle(dir: &Path) -> (i32, String) {
    let out = Command::new("python3")
        .arg(repo().join("scripts/verify-bundle"))
        .arg(dir)
        .output()
        .expect("python3 (Debian's python3 package) runs the verifier");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

fn demo(dir: &Path) -> PathBuf {
    let data = dir.join("ledger");
    let (code, _, err) = daicho(&data, &["demo", "--recipients", "120", "--seed", "3"]);
    assert_eq!(code, 0, "{err}");
    data
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_independent_verifier_confirms_a_bundle_and_catches_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let data = demo(tmp.path());
    let (code, _, _) = daicho(&data, &["apply", repo().join("examples/sakura.jsonl").to_str().unwrap()]);
    assert_eq!(code, 0);
    let head: u64 = {
        let (_, out, _) = daicho(&data, &["verify"]);
        out.split("位置 ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap()
    };

    // The whole ledger.
    let whole = tmp.path().join("whole");
    let (code, out, err) = daicho(&data, &["audit", "bundle", "--out", whole.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("位置 1〜{head}")), "{out}");
    let (status, text) = verify_bundle(&whole);
    assert_eq!(status, 0, "{text}");
    assert!(text.starts_with(&format!("OK: {head} events")), "{text}");
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(whole.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["chainHead"]["position"], head);
    assert_eq!(manifest["lastHash"], manifest["chainHead"]["hash"]);
    // Lines carry the decoded payload beside its bytes.
    let events = std::fs::read_to_string(whole.join("events.jsonl")).unwrap();
    let first: Value = serde_json::from_str(events.lines().next().unwrap()).unwrap();
    assert_eq!(first["eventType"], "configuration_set");
    assert!(first["payload"]["toml"].as_str().unwrap().contains("さくら市"));

    // A middle range.
    let seen_before = daicho_app::access::AccessLog::open(&data).unwrap().store().unwrap().head().position.0;
    let middle = tmp.path().join("middle");
    let (code, _, _) =
        daicho(&data, &["audit", "bundle", "--from", "40", "--to", "90", "--out", middle.to_str().unwrap()]);
    assert_eq!(code, 0);
    let (status, text) = verify_bundle(&middle);
    assert_eq!(status, 0, "{text}");
    assert!(text.contains("positions 40-90"), "{text}");
    // The bundle holds people's data raw: the OS user is recorded as having seen every person
    // of the range, and no one else.
    let people: std::collections::BTreeSet<u64> = std::fs::read_to_string(middle.join("events.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["stream"].as_str().and_then(|s| s.strip_prefix("recipient-")).map(|n| n.parse().unwrap())
        })
        .collect();
    assert!(!people.is_empty());
    let log = daicho_app::access::AccessLog::open(&data).unwrap();
    let recorded: std::collections::BTreeSet<u64> = log
        .search(&daicho_app::access::AccessFilter::default(), 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.position > seen_before && e.record.page == "daicho audit bundle")
        .filter(|e| e.record.user.as_str().starts_with("os."))
        .flat_map(|e| e.record.recipients)
        .collect();
    assert_eq!(people, recorded, "the access record of the bundle does not name exactly its people");

    // One changed payload byte, with the file's hash in the manifest updated to match: the
    // chain names the position.
    let tampered = tmp.path().join("tampered");
    std::fs::create_dir(&tampered).unwrap();
    let mut lines: Vec<String> = events.lines().map(str::to_owned).collect();
    let mut victim: Value = serde_json::from_str(&lines[56]).unwrap();
    let hexed = victim["payloadHex"].as_str().unwrap().to_owned();
    let flipped = if hexed.ends_with('0') { "1" } else { "0" };
    victim["payloadHex"] = Value::String(format!("{}{flipped}", &hexed[..hexed.len() - 1]));
    lines[56] = serde_json::to_string(&victim).unwrap();
    let text = lines.join("\n") + "\n";
    std::fs::write(tampered.join("events.jsonl"), &text).unwrap();
    let mut m = manifest.clone();
    m["files"][0]["sha256"] = Value::String(sha256_hex(text.as_bytes()));
    m["files"][0]["bytes"] = Value::from(text.len());
    std::fs::write(tampered.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let (status, text) = verify_bundle(&tampered);
    assert_eq!(status, 1, "{text}");
    assert!(text.contains("position 57"), "{text}");

    // A file that no longer matches the manifest.
    std::fs::write(tampered.join("manifest.json"), serde_json::to_vec(&manifest).unwrap()).unwrap();
    let (status, text) = verify_bundle(&tampered);
    assert_eq!(status, 1);
    assert!(text.contains("SHA-256"), "{text}");

    // A dropped line breaks the chain at the next one.
    let dropped = tmp.path().join("dropped");
    std::fs::create_dir(&dropped).unwrap();
    let text: String = events.lines().enumerate().filter(|(i, _)| *i != 9).map(|(_, l)| format!("{l}\n")).collect();
    std::fs::write(dropped.join("events.jsonl"), &text).unwrap();
    let mut m = manifest.clone();
    m["files"][0]["sha256"] = Value::String(sha256_hex(text.as_bytes()));
    m["files"][0]["bytes"] = Value::from(text.len());
    std::fs::write(dropped.join("manifest.json"), serde_json::to_vec(&m).unwrap()).unwrap();
    let (status, text) = verify_bundle(&dropped);
    assert_eq!(status, 1);
    assert!(text.contains("position 11, expected 10"), "{text}");

    // A range beyond the head is refused and writes nothing.
    let refused = tmp.path().join("refused");
    let (code, _, err) =
        daicho(&data, &["audit", "bundle", "--to", &(head + 1).to_string(), "--out", refused.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(!refused.exists());
}

#[test]
fn replay_shows_the_register_as_known_at_a_past_position_or_time() {
    let tmp = tempfile::tempdir().unwrap();
    let data = demo(tmp.path());
    let (_, out, _) = daicho(&data, &["verify"]);
    let head: u64 = out.split("位置 ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    let today = "2026-11-20";

    let (code, now, err) = daicho(&data, &["replay", "--as-at", &head.to_string(), "--as-of", today]);
    assert_eq!(code, 0, "{err}");
    let now: Vec<Value> = now.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(now.len(), 120, "every recipient known at the head");
    for v in &now {
        let shown = v["my_number"].as_str().unwrap_or("********0000");
        assert!(shown.starts_with("********"), "My Number not masked: {shown}");
    }

    let (code, early, _) = daicho(&data, &["replay", "--as-at", &(head / 10).to_string(), "--as-of", today]);
    assert_eq!(code, 0);
    let early_count = early.lines().count();
    assert!(early_count > 0 && early_count < 120, "{early_count} recipients known at position {}", head / 10);

    // One recipient at the head equals `daicho show`.
    let id = now[5]["recipient"].as_str().unwrap().to_owned();
    let (_, replayed, _) =
        daicho(&data, &["replay", "--as-at", &head.to_string(), "--as-of", today, "--recipient", &id]);
    let (_, shown, _) = daicho(&data, &["show", &id, "--as-of", today]);
    assert_eq!(replayed, shown);

    // By time: before anything was recorded nobody is known; a time in the future is the head.
    let (code, none, _) = daicho(&data, &["replay", "--as-at", "2000-01-01T00:00:00+09:00", "--as-of", today]);
    assert_eq!(code, 0);
    assert_eq!(none.lines().count(), 0);
    let (_, later, _) = daicho(&data, &["replay", "--as-at", "2999-01-01 00:00", "--as-of", today]);
    assert_eq!(later.lines().count(), 120);

    // Bad moments are named.
    let (code, _, err) = daicho(&data, &["replay", "--as-at", "yesterday"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = daicho(&data, &["replay", "--as-at", &(head + 5).to_string()]);
    assert_eq!(code, 1);
    assert!(err.contains("先頭の位置"), "{err}");
}
