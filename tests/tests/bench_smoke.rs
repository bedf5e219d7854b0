//! The store benchmark still runs (a few hundred events): its figures belong in BENCHMARKS.md,
//! made by `scripts/bench-store`, never in a timed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn the_store_benchmark_runs_and_prints_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bench-store"))
        .args(["--events", "320", "--dir"])
        .arg(dir.path().join("bench"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = String::from_utf8(out.stdout).unwrap();
    for row in ["durable appends, 1 writer", "durable appends, 32 writers", "replay"] {
        let line = table.lines().find(|l| l.contains(row)).unwrap_or_else(|| panic!("no row {row}:\n{table}"));
        assert_eq!(line.matches('|').count(), 5, "{line}");
        assert!(line.trim_end().ends_with("x |"), "a ratio: {line}");
    }
}
