//! Crash test: a child process appends with several concurrent writers and reports every
//! acknowledged append; the parent kills it with SIGKILL at random moments, reopens the store
//! and checks that every acknowledged event is there, positions have no gap, and the whole log
//! verifies. Every third cycle stops the child at a named point of the write path first (a
//! segment switch, a half-written frame, the flusher between sled's flush and its fsync, ...),
//! so that the kills known to be dangerous are not left to chance.
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

/// The points of the write path a cycle can stop at ([`daicho_store::WritePoint`]), each with
/// how many times it may pass before the child stops there (chosen at random up to this).
const POINTS: [(&str, u64); 8] = [
    ("SpareFilled", 3),
    ("SegmentRenamed", 4),
    ("FrameHalfWritten", 200),
    ("FrameWritten", 200),
    ("FrameSynced", 200),
    ("SledFlushed", 10),
    ("SegmentRemoved", 4),
    ("Applying", 100),
];

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
    let mut halts = [0u64; POINTS.len()];
    let mut halt_cycles = 0u64;
    for cycle in 0..cycles {
        let writers = 1 + rng.next_u64() % 8;
        // Every third cycle stops the child at a point of the write path, in turn; the others
        // kill it at a random moment. Small segments and a short flush interval (in every halt
        // cycle, half of the others) make segment switches and background flushes frequent.
        let halt = (cycle % 3 == 2).then(|| {
            let point = POINTS[(halt_cycles % POINTS.len() as u64) as usize];
            halt_cycles += 1;
            (point, 1 + rng.next_u64() % point.1)
        });
        let mut command = Command::new(env!("CARGO_BIN_EXE_crash-writer"));
        command.arg(&dir).arg(writers.to_string()).arg(format!("c{cycle}"));
        if halt.is_some() || rng.next_u64().is_multiple_of(2) {
            let segment = [16u64 << 10, 64 << 10, 256 << 10][(rng.next_u64() % 3) as usize];
            let flush_ms = [2u64, 10, 50][(rng.next_u64() % 3) as usize];
            command.arg(segment.to_string()).arg(flush_ms.to_string());
            if let Some(((name, _), at)) = halt {
                command.arg(name).arg(at.to_string());
            }
        }
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        let _ = tx.send(l);
                    }
                    Err(_) => break,
                }
            }
        });
        let mut lines = Vec::new();
        if let Some(((name, _), _)) = halt {
            // Wait for the child to stop at its point (it may not get there: an open that
            // fails, say, reports on stderr, checked below).
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok(l) if l.starts_with("halt ") => {
                        halts[POINTS.iter().position(|p| p.0 == name).unwrap()] += 1;
                        lines.push(l);
                        break;
                    }
                    Ok(l) => lines.push(l),
                    Err(_) => break,
                }
            }
        } else {
            // Sometimes during open and recovery, mostly while appending.
            let kill_ms =
                if rng.next_u64().is_multiple_of(10) { rng.next_u64() % 5 } else { 10 + rng.next_u64() % 150 };
            total_kill_ms += kill_ms;
            std::thread::sleep(Duration::from_millis(kill_ms));
        }
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
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
    let timed = cycles - halt_cycles;
    println!(
        "crash test: {cycles} kills, {} acknowledged appends all present; {timed} at random moments (average \
         after {} ms), {halt_cycles} at points of the write path: {}",
        acked.len(),
        total_kill_ms / timed.max(1),
        POINTS.iter().zip(halts).map(|((name, _), n)| format!("{name} {n}")).collect::<Vec<_>>().join(", ")
    );
    assert!(acked.len() as u64 > cycles, "the writers must have been acknowledged many times");
    if halt_cycles >= 2 * POINTS.len() as u64 {
        for ((name, _), n) in POINTS.iter().zip(halts) {
            assert!(n > 0, "no cycle stopped at {name}: the probe is not reached");
        }
    }
}
