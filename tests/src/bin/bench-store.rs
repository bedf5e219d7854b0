//! Store benchmark: durable append throughput with 1 and 32 concurrent writers, and full replay
//! (read, parse, check the hash), for daicho's store and, in the same run on the same machine,
//! for an SQLite event table (bundled SQLite, WAL, synchronous=FULL, the same envelope bytes and
//! hash chain, a unique (stream, version) index).
//!
//! Usage: bench-store [--events N] [--dir DIR]     (release build: scripts/bench-store)
//! Prints a Markdown table for BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use daicho_store::{AppendRequest, Envelope, ExpectedVersion, Hash, NewEvent, Position, Store, StreamId, Target};
use rusqlite::{Connection, params};

struct Args {
    events: usize,
    dir: PathBuf,
}

fn args() -> Args {
    let mut events = 20_000;
    let mut dir = std::env::temp_dir().join("daicho-bench");
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--events" => events = it.next().and_then(|v| v.parse().ok()).unwrap_or(events),
            "--dir" => dir = it.next().map(PathBuf::from).unwrap_or(dir),
            _ => {
                eprintln!("usage: bench-store [--events N] [--dir DIR]");
                std::process::exit(2);
            }
        }
    }
    Args { events, dir }
}

/// A realistic payload: the golden `certificate_granted` event (115 bytes).
fn payload() -> Vec<u8> {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../domain/golden/v1/certificate_granted.bin");
    std::fs::read(golden).unwrap_or_else(|_| vec![7; 115])
}

fn effective() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 4, 1).unwrap_or_default()
}

/// Throughput and latency of one run.
struct Run {
    events: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        l.get(((l.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or_default()
    }
}

/// Runs `writers` threads, each appending `per_writer` single-event requests through `append`.
fn drive(writers: usize, per_writer: usize, append: impl Fn(usize, usize) + Sync) -> Run {
    let start_line = Barrier::new(writers);
    let latencies = Mutex::new(Vec::with_capacity(writers * per_writer));
    let started = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let (start_line, latencies, append) = (&start_line, &latencies, &append);
            s.spawn(move || {
                start_line.wait();
                let mut mine = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let t = Instant::now();
                    append(w, i);
                    mine.push(t.elapsed());
                }
                if let Ok(mut l) = latencies.lock() {
                    l.extend(mine);
                }
            });
        }
    });
    Run {
        events: writers * per_writer,
        elapsed: started.elapsed(),
        latencies: latencies.into_inner().unwrap_or_default(),
    }
}

fn daicho_appends(dir: &Path, writers: usize, per_writer: usize) -> (Run, daicho_store::Stats) {
    let _ = std::fs::remove_dir_all(dir);
    let store = Store::create(dir).unwrap_or_else(|e| panic!("create: {e}"));
    let payload = payload();
    let run = drive(writers, per_writer, |w, i| {
        let id = format!("w{w}-{i}");
        let request = AppendRequest {
            target: Target::Stream {
                stream: StreamId::parse(&format!("recipient-{w}")).unwrap_or_else(|| unreachable!()),
                expected: ExpectedVersion::Exactly(i as u64),
            },
            request_id: id.clone(),
            request_digest: [1; 32],
            actor: "bench".into(),
            approver: None,
            expected_head: None,
            events: vec![NewEvent {
                event_id: format!("{id}#0"),
                event_type: "certificate_granted".into(),
                schema_version: 1,
                effective: effective(),
                payload: payload.clone(),
            }],
        };
        if let Err(e) = store.append_blocking(request) {
            panic!("append: {e}");
        }
    });
    (run, store.stats())
}

fn daicho_replay(dir: &Path) -> Run {
    let store = Store::open(dir).unwrap_or_else(|e| panic!("open: {e}"));
    let started = Instant::now();
    let mut prev = Hash::default();
    let mut n = 0;
    for e in store.read_from(Position(1)) {
        let e = e.unwrap_or_else(|e| panic!("read: {e}"));
        assert!(e.prev_hash == prev && e.hash_is_valid());
        prev = e.hash;
        n += 1;
    }
    Run { events: n, elapsed: started.elapsed(), latencies: Vec::new() }
}

fn sqlite_open(path: &Path) -> Connection {
    let c = Connection::open(path).unwrap_or_else(|e| panic!("sqlite open: {e}"));
    c.pragma_update(None, "journal_mode", "WAL").unwrap_or_else(|e| panic!("{e}"));
    c.pragma_update(None, "synchronous", "FULL").unwrap_or_else(|e| panic!("{e}"));
    c.busy_timeout(Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
    c
}

fn sqlite_appends(dir: &Path, writers: usize, per_writer: usize) -> Run {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("events.db");
    sqlite_open(&path)
        .execute_batch(
            "CREATE TABLE events (
                position INTEGER PRIMARY KEY,
                stream TEXT NOT NULL,
                version INTEGER NOT NULL,
                event_id TEXT NOT NULL UNIQUE,
                hash BLOB NOT NULL,
                record BLOB NOT NULL,
                UNIQUE (stream, version)
            );",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let connections: Vec<Mutex<Connection>> = (0..writers).map(|_| Mutex::new(sqlite_open(&path))).collect();
    let payload = payload();
    let connections = Arc::new(connections);
    drive(writers, per_writer, |w, i| {
        let mut c = connections[w].lock().unwrap_or_else(|e| e.into_inner());
        let tx =
            c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap_or_else(|e| panic!("{e}"));
        let (last, prev): (i64, Vec<u8>) = tx
            .query_row("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap_or((0, vec![0; 32]));
        let stream = format!("recipient-{w}");
        let version: i64 = tx
            .query_row("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = ?1", [&stream], |r| r.get(0))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(version, i as i64, "expected version");
        let mut e = envelope(last as u64 + 1, &stream, version as u64 + 1, &format!("w{w}-{i}"), &payload);
        let mut prev_hash = Hash::default();
        prev_hash.0.copy_from_slice(&prev);
        e.seal(prev_hash);
        tx.execute(
            "INSERT INTO events (position, stream, version, event_id, hash, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![last + 1, stream, version + 1, e.event_id, e.hash.0.to_vec(), e.to_record()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        tx.commit().unwrap_or_else(|e| panic!("{e}"));
    })
}

fn envelope(position: u64, stream: &str, version: u64, id: &str, payload: &[u8]) -> Envelope {
    Envelope {
        position: Position(position),
        stream: StreamId::parse(stream).unwrap_or_else(|| unreachable!()),
        stream_version: version,
        stream_key: None,
        event_id: format!("{id}#0"),
        event_type: "certificate_granted".into(),
        schema_version: 1,
        recorded_at_us: 0,
        effective: effective(),
        actor: "bench".into(),
        approver: None,
        correlation_id: id.to_owned(),
        request_digest: [1; 32],
        payload: payload.to_vec(),
        prev_hash: Hash::default(),
        hash: Hash::default(),
    }
}

fn sqlite_replay(dir: &Path) -> Run {
    let c = sqlite_open(&dir.join("events.db"));
    let started = Instant::now();
    let mut stmt = c.prepare("SELECT record FROM events ORDER BY position").unwrap_or_else(|e| panic!("{e}"));
    let mut rows = stmt.query([]).unwrap_or_else(|e| panic!("{e}"));
    let mut prev = Hash::default();
    let mut n = 0;
    while let Some(row) = rows.next().unwrap_or_else(|e| panic!("{e}")) {
        let bytes: Vec<u8> = row.get(0).unwrap_or_else(|e| panic!("{e}"));
        let e = Envelope::from_record(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(e.prev_hash == prev && e.hash_is_valid());
        prev = e.hash;
        n += 1;
    }
    Run { events: n, elapsed: started.elapsed(), latencies: Vec::new() }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cores} cores, {cpu}")
}

fn fsync_latency(dir: &Path) -> Duration {
    let path = dir.join("fsync.probe");
    let Ok(mut f) = std::fs::File::create(&path) else { return Duration::ZERO };
    let started = Instant::now();
    for _ in 0..100 {
        let _ = std::io::Write::write_all(&mut f, &[0u8; 100]);
        let _ = f.sync_all();
    }
    let _ = std::fs::remove_file(&path);
    started.elapsed() / 100
}

fn rate(r: &Run) -> String {
    format!("{:.0}/s", r.per_second())
}

fn main() {
    let args = args();
    std::fs::create_dir_all(&args.dir).unwrap_or_else(|e| panic!("{}: {e}", args.dir.display()));
    println!(
        "machine: {}; fsync of 100 bytes: {:?}; {} events per run",
        machine(),
        fsync_latency(&args.dir),
        args.events
    );
    println!();
    println!("| workload | daicho (sled, group commit) | SQLite (WAL, synchronous=FULL) | daicho / SQLite |");
    println!("|---|---|---|---|");
    let mut daicho_dir_32 = None;
    let mut sqlite_dir_32 = None;
    for writers in [1usize, 32] {
        let per_writer = (args.events / writers).max(1);
        let d_dir = args.dir.join(format!("daicho-{writers}"));
        let s_dir = args.dir.join(format!("sqlite-{writers}"));
        let (d, stats) = daicho_appends(&d_dir, writers, per_writer);
        let s = sqlite_appends(&s_dir, writers, per_writer);
        println!(
            "| durable appends, {writers} writer{} | {} (p50 {:.2} ms, p99 {:.2} ms; {:.1} appends per fsync) | {} (p50 {:.2} ms, p99 {:.2} ms) | {:.2}x |",
            if writers == 1 { "" } else { "s" },
            rate(&d),
            d.percentile(0.5).as_secs_f64() * 1000.0,
            d.percentile(0.99).as_secs_f64() * 1000.0,
            stats.requests as f64 / stats.commits.max(1) as f64,
            rate(&s),
            s.percentile(0.5).as_secs_f64() * 1000.0,
            s.percentile(0.99).as_secs_f64() * 1000.0,
            d.per_second() / s.per_second(),
        );
        daicho_dir_32 = Some(d_dir);
        sqlite_dir_32 = Some(s_dir);
    }
    if let (Some(d_dir), Some(s_dir)) = (daicho_dir_32, sqlite_dir_32) {
        let d = daicho_replay(&d_dir);
        let s = sqlite_replay(&s_dir);
        println!(
            "| replay: read, parse, check hash chain ({} events) | {} | {} | {:.2}x |",
            d.events,
            rate(&d),
            rate(&s),
            d.per_second() / s.per_second()
        );
    }
    let _ = std::fs::remove_dir_all(&args.dir);
}
