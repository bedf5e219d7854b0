//! Crash test: a child process appends with several concurrent writers and reports every
//! acknowledged append; the parent kills it with SIGKILL at random moments, reopens the store
//! and checks that every acknowledged event is there, positions have no gap, and the whole log
//! verifies.
//!
//! Cycles: `DAICHO_CRASH_CYCLES` (default 50). Long runs: `scripts/crash-loop 1000`. The seed of
//! the kill times is printed, and `DAICHO_CRASH_SEED` replays a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use daicho::synth::Rng;
use daicho_store::verify::{VerifyOptions, verify_dir};
use daicho_store::{Position, Store};

/// Copies a store that failed to reopen out of the temporary directory, for a post-mortem.
fn keep_for_analysis(dir: &std::path::Path, cycle: u64) -> std::path::PathBuf {
    let kept = std::env::temp_dir().join(format!("daicho-crash-{}-cycle{cycle}", std::process::id()));
    let _ = Command::new("cp").arg("-a").arg(dir).arg(&kept).status();
    kept
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn no_acknowledged_event_is_lost_across_kill_9() {
    let cycles = env_u64("DAICHO_CRASH_CYCLES").unwrap_or(50);
    let seed = env_u64("DAICHO_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    println!("crash test: {cycles} cycles, seed {seed} (DAICHO_CRASH_SEED={seed} replays)");
    let mut rng = Rng::new(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let mut acked: Vec<(u64, u64, String)> = Vec::new();
    let mut total_kill_ms = 0;
    for cycle in 0..cycles {
        let writers = 1 + rng.next_u64() % 8;
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
            .arg(&dir)
            .arg(writers.to_string())
            .arg(format!("c{cycle}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => lines.push(l),
                    Err(_) => break,
                }
            }
            lines
        });
        // Sometimes during open and recovery, mostly while appending.
        let kill_ms = if rng.next_u64().is_multiple_of(10) { rng.next_u64() % 5 } else { 10 + rng.next_u64() % 150 };
        total_kill_ms += kill_ms;
        std::thread::sleep(Duration::from_millis(kill_ms));
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        let lines = reader.join().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert!(!status.success());
        assert!(stderr.is_empty(), "cycle {cycle}: the child reported a failure: {stderr}");
        for line in lines {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if parts.first() == Some(&"ack") {
                acked.push((parts[1].parse().unwrap(), parts[2].parse().unwrap(), parts[3].to_owned()));
            }
        }
        if !dir.join("sled").exists() {
            continue; // killed before the store was created
        }
        // Reopen in this process and check every acknowledgement so far.
        let store = match Store::open(&dir) {
            Ok(s) => s,
            Err(e) => {
                let kept = keep_for_analysis(&dir, cycle);
                panic!("cycle {cycle} (seed {seed}): reopen failed: {e}; store kept in {}", kept.display());
            }
        };
        let head = store.head().position.0;
        for (first, last, id) in &acked {
            assert!(*last <= head, "cycle {cycle} (seed {seed}): acknowledged {id} at {last} beyond head {head}");
            for (k, p) in (*first..=*last).enumerate() {
                let e = store.get(Position(p)).unwrap().unwrap();
                assert_eq!(e.event_id, format!("{id}#{k}"), "cycle {cycle} (seed {seed}): position {p}");
            }
        }
        let positions: Vec<u64> = store.read_from(Position(1)).map(|e| e.unwrap().position.0).collect();
        assert_eq!(positions, (1..=head).collect::<Vec<_>>(), "cycle {cycle} (seed {seed}): gap in positions");
        drop(store);
        // The whole walk grows with the log: every 10th cycle and the last.
        if cycle % 10 == 9 || cycle + 1 == cycles {
            let options = VerifyOptions { payload: &mut |_| Ok(()), progress: &mut |_| {}, update_checkpoint: true };
            let report = verify_dir(&dir, options).unwrap();
            assert!(report.problem.is_none(), "cycle {cycle} (seed {seed}): {:?}", report.problem);
        }
    }
    println!(
        "crash test: {cycles} kills, {} acknowledged appends all present, average kill after {} ms",
        acked.len(),
        total_kill_ms / cycles.max(1)
    );
    assert!(acked.len() as u64 > cycles, "the writers must have been acknowledged many times");
}
