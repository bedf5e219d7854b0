//! The write-path harness of `scripts/bench-scale` still runs (a few hundred appends, no
//! PostgreSQL: `scripts/test` runs `scripts/bench-scale --smoke`, which starts one): its figures
//! belong in BENCHMARKS.md, never in a timed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

#[test]
fn the_write_path_harness_runs_and_reports_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("write.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bench-store"))
        .args(["write", "--events", "320", "--dir"])
        .arg(dir.path().join("bench"))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    for row in ["durable appends, 1 writer", "durable appends, 32 writers", "replay"] {
        assert!(table.lines().any(|l| l.contains(row)), "no row {row}:\n{table}");
    }
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(v["fsync_limit_per_s"].as_f64().unwrap() > 0.0);
    for key in ["daicho_1", "sqlite_1", "daicho_32", "sqlite_32"] {
        assert!(v["appends"][key].as_f64().unwrap() > 0.0, "{key}: {v}");
        assert!(v["append_latency"][key]["p99_ms"].as_f64().unwrap() >= 0.0, "{key}");
    }
    assert!(v["appends"].get("postgres_1").is_none(), "no PostgreSQL was given");
    // 32 writers x 10 appends: the replay reads exactly what was appended.
    assert!(v["replay_per_s"]["daicho"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_raw_replay_of_a_ledger_counts_its_events_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ledger");
    let (status, _, err) = daicho_tests::cli::daicho(&data, &["init"]);
    assert_eq!(status, 0, "{err}");
    let json = dir.path().join("replay.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bench-store"))
        .args(["replay", "--store"])
        .arg(data.join("store"))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    // A new ledger holds its configuration event, and nothing else.
    assert_eq!(v["events"], 1, "{v}");
    assert!(v["raw_envelope_bytes"].as_u64().unwrap() > 100, "{v}");
}
