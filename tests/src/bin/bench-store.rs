//! The write-path harness of `scripts/bench-scale`: durable single-event appends with 1 and 32
//! concurrent writers and a full replay (read, parse, check the hash chain), for daicho's store
//! and, in the same run with the same envelope bytes and the same hash-chain work, for an SQLite
//! event table (bundled SQLite, WAL, synchronous=FULL) and a PostgreSQL one (the server
//! `scripts/bench-scale` starts: fsync on, synchronous_commit on), each with a unique
//! (stream, version) index; and the device's own rate of 100-byte appends each followed by
//! `fdatasync`, the physical limit of one writer.
//!
//! Usage:
//!   bench-store write [--events N] [--dir DIR] [--postgres CONNINFO] [--json FILE]
//!   bench-store replay --store DIR [--json FILE]     (raw replay of a ledger's log)
//! Prints a Markdown table; `--json` also writes the figures for `scripts/bench-scale`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use daicho_store::{AppendRequest, Envelope, ExpectedVersion, Hash, NewEvent, Position, Store, StreamId, Target};
use postgres::fallible_iterator::FallibleIterator;
use rusqlite::{Connection, params};

struct Args {
    mode: Mode,
    events: usize,
    dir: PathBuf,
    postgres: Option<String>,
    json: Option<PathBuf>,
    store: Option<PathBuf>,
}

#[derive(PartialEq)]
enum Mode {
    Write,
    Replay,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench-store write [--events N] [--dir DIR] [--postgres CONNINFO] [--json FILE]\n       bench-store replay --store DIR [--json FILE]"
    );
    std::process::exit(2);
}

fn args() -> Args {
    let mut it = std::env::args().skip(1).peekable();
    let mode = match it.peek().map(String::as_str) {
        Some("replay") => Mode::Replay,
        Some("write") => Mode::Write,
        _ => usage(),
    };
    it.next();
    let mut a = Args {
        mode,
        events: 20_000,
        dir: std::env::temp_dir().join("daicho-bench"),
        postgres: None,
        json: None,
        store: None,
    };
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--events" => a.events = value.parse().unwrap_or_else(|_| usage()),
            "--dir" => a.dir = PathBuf::from(value),
            "--postgres" => a.postgres = Some(value),
            "--json" => a.json = Some(PathBuf::from(value)),
            "--store" => a.store = Some(PathBuf::from(value)),
            _ => usage(),
        }
    }
    a
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
    daicho_replay_store(&store)
}

fn daicho_replay_store(store: &Store) -> Run {
    let started = Instant::now();
    let mut prev = Hash::default();
    let mut n = 0;
    // `replay` checks each hash on its helper threads and the links in order; the link is
    // checked here again as the SQLite and PostgreSQL replays check it.
    for e in store.replay(Position(1)) {
        let e = e.unwrap_or_else(|e| panic!("read: {e}"));
        assert!(e.prev_hash == prev);
        prev = e.hash;
        n += 1;
    }
    Run { events: n, elapsed: started.elapsed(), latencies: Vec::new() }
}

/// sled's iterator over the log's values (key prefix `L`), raw: no parse, no check. The store
/// is closed, so its redo log is empty and sled holds everything.
fn sled_scan(dir: &Path) -> (Run, Vec<sled::IVec>) {
    let db = daicho_store::open_raw_sled(&dir.join("sled")).unwrap_or_else(|e| panic!("sled: {e}"));
    let tree = db.open_tree("ledger").unwrap_or_else(|e| panic!("sled: {e}"));
    let started = Instant::now();
    let mut records = Vec::new();
    for item in tree.range(&b"L"[..]..&b"M"[..]) {
        let (_, v) = item.unwrap_or_else(|e| panic!("sled: {e}"));
        records.push(v);
    }
    // Each value holds several records; finding them is part of the raw read.
    let events = records.iter().map(|v| daicho_store::raw::split_value(v).len()).sum();
    (Run { events, elapsed: started.elapsed(), latencies: Vec::new() }, records)
}

/// Parse and chain check of records already in memory: the replay's work without the engine.
fn parse_records(values: &[sled::IVec]) -> Run {
    let started = Instant::now();
    let mut prev = Hash::default();
    let mut events = 0;
    for bytes in values.iter().flat_map(|v| daicho_store::raw::split_value(v)) {
        events += 1;
        let e = Envelope::from_record(bytes).unwrap_or_else(|e| panic!("{e}"));
        assert!(e.prev_hash == prev && e.hash_is_valid());
        prev = e.hash;
    }
    Run { events, elapsed: started.elapsed(), latencies: Vec::new() }
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

// ---- PostgreSQL: the same table, the same chain, one head row serialising appenders ------------

fn pg_connect(conninfo: &str) -> postgres::Client {
    postgres::Client::connect(conninfo, postgres::NoTls).unwrap_or_else(|e| panic!("postgres connect: {e}"))
}

fn postgres_appends(conninfo: &str, writers: usize, per_writer: usize) -> Run {
    let mut admin = pg_connect(conninfo);
    admin
        .batch_execute(
            "DROP TABLE IF EXISTS events; DROP TABLE IF EXISTS head;
             CREATE TABLE events (
                position BIGINT PRIMARY KEY,
                stream TEXT NOT NULL,
                version BIGINT NOT NULL,
                event_id TEXT NOT NULL UNIQUE,
                hash BYTEA NOT NULL,
                record BYTEA NOT NULL,
                UNIQUE (stream, version)
             );
             CREATE TABLE head (one BOOLEAN PRIMARY KEY, position BIGINT NOT NULL, hash BYTEA NOT NULL);
             INSERT INTO head VALUES (true, 0, decode(repeat('00', 32), 'hex'));",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let clients: Vec<Mutex<postgres::Client>> = (0..writers).map(|_| Mutex::new(pg_connect(conninfo))).collect();
    let payload = payload();
    drive(writers, per_writer, |w, i| {
        let mut c = clients[w].lock().unwrap_or_else(|e| e.into_inner());
        let mut tx = c.transaction().unwrap_or_else(|e| panic!("{e}"));
        // The head row is the chain's one point of order, as the sled store's head key is.
        let row = tx.query_one("SELECT position, hash FROM head FOR UPDATE", &[]).unwrap_or_else(|e| panic!("{e}"));
        let (last, prev): (i64, Vec<u8>) = (row.get(0), row.get(1));
        let stream = format!("recipient-{w}");
        let version: i64 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM events WHERE stream = $1", &[&stream])
            .unwrap_or_else(|e| panic!("{e}"))
            .get(0);
        assert_eq!(version, i as i64, "expected version");
        let mut e = envelope(last as u64 + 1, &stream, version as u64 + 1, &format!("w{w}-{i}"), &payload);
        let mut prev_hash = Hash::default();
        prev_hash.0.copy_from_slice(&prev);
        e.seal(prev_hash);
        let hash = e.hash.0.to_vec();
        tx.execute(
            "INSERT INTO events (position, stream, version, event_id, hash, record) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&(last + 1), &stream, &(version + 1), &e.event_id, &hash, &e.to_record()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        tx.execute("UPDATE head SET position = $1, hash = $2", &[&(last + 1), &hash]).unwrap_or_else(|e| panic!("{e}"));
        tx.commit().unwrap_or_else(|e| panic!("{e}"));
    })
}

fn postgres_replay(conninfo: &str) -> Run {
    let mut c = pg_connect(conninfo);
    let started = Instant::now();
    let mut prev = Hash::default();
    let mut n = 0;
    let params: [&(dyn postgres::types::ToSql + Sync); 0] = [];
    let mut rows = c.query_raw("SELECT record FROM events ORDER BY position", params).unwrap_or_else(|e| panic!("{e}"));
    while let Some(row) = rows.next().unwrap_or_else(|e| panic!("{e}")) {
        let bytes: &[u8] = row.get(0);
        let e = Envelope::from_record(bytes).unwrap_or_else(|e| panic!("{e}"));
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

/// Sequential 100-byte appends to one file, each followed by `fdatasync`: the most durable
/// appends one writer can make per second on this device.
fn fsync_limit(dir: &Path, appends: usize) -> f64 {
    let path = dir.join("fsync.probe");
    let Ok(mut f) = std::fs::File::create(&path) else { return 0.0 };
    let started = Instant::now();
    for _ in 0..appends {
        if std::io::Write::write_all(&mut f, &[0u8; 100]).is_err() || f.sync_data().is_err() {
            return 0.0;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    appends as f64 / secs
}

fn rate(r: &Run) -> String {
    format!("{:.0}/s", r.per_second())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn write_json(path: &Option<PathBuf>, value: &serde_json::Value) {
    if let Some(p) = path {
        let text = serde_json::to_string_pretty(value).unwrap_or_default();
        std::fs::write(p, text + "\n").unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    }
}

/// The raw replay of a ledger's log: read every stored record, parse it, check the chain.
fn replay_ledger(args: &Args) {
    let dir = args.store.clone().unwrap_or_else(|| usage());
    let store = Store::open(&dir).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
    let r = daicho_replay_store(&store);
    // The envelope bytes, counted in a second pass so the replay is timed alone.
    let bytes: u64 = store.read_from(Position(1)).map(|e| e.map_or(0, |e| e.to_record().len() as u64)).sum();
    println!("replay: {} events, {bytes} envelope bytes, {:.2} s ({})", r.events, r.elapsed.as_secs_f64(), rate(&r));
    write_json(
        &args.json,
        &serde_json::json!({"events": r.events, "raw_envelope_bytes": bytes, "replay_s": r.elapsed.as_secs_f64()}),
    );
}

fn main() {
    let args = args();
    if args.mode == Mode::Replay {
        replay_ledger(&args);
        return;
    }
    std::fs::create_dir_all(&args.dir).unwrap_or_else(|e| panic!("{}: {e}", args.dir.display()));
    let fsync_appends = (args.events / 10).clamp(10, 5_000);
    let limit = fsync_limit(&args.dir, fsync_appends);
    println!(
        "machine: {}; sequential 100-byte appends with fdatasync: {limit:.0}/s; {} events per run",
        machine(),
        args.events
    );
    println!();
    let peers = if args.postgres.is_some() { "SQLite | PostgreSQL" } else { "SQLite" };
    println!("| workload | daicho (sled, group commit) | {peers} |");
    println!("|---|---|---|{}", if args.postgres.is_some() { "---|" } else { "" });
    let mut appends = serde_json::Map::new();
    let mut latency = serde_json::Map::new();
    let mut last_dirs = None;
    for writers in [1usize, 32] {
        let per_writer = (args.events / writers).max(1);
        let d_dir = args.dir.join(format!("daicho-{writers}"));
        let s_dir = args.dir.join(format!("sqlite-{writers}"));
        let (d, stats) = daicho_appends(&d_dir, writers, per_writer);
        let s = sqlite_appends(&s_dir, writers, per_writer);
        let p = args.postgres.as_deref().map(|c| postgres_appends(c, writers, per_writer));
        let cell = |r: &Run| {
            format!("{} (p50 {:.2} ms, p99 {:.2} ms)", rate(r), ms(r.percentile(0.5)), ms(r.percentile(0.99)))
        };
        println!(
            "| durable appends, {writers} writer{} | {} ({:.1} appends per fsync) | {} |{}",
            if writers == 1 { "" } else { "s" },
            cell(&d),
            stats.requests as f64 / stats.commits.max(1) as f64,
            cell(&s),
            p.as_ref().map(|p| format!(" {} |", cell(p))).unwrap_or_default(),
        );
        for (name, r) in [("daicho", Some(&d)), ("sqlite", Some(&s)), ("postgres", p.as_ref())] {
            let Some(r) = r else { continue };
            appends.insert(format!("{name}_{writers}"), serde_json::json!(r.per_second()));
            latency.insert(
                format!("{name}_{writers}"),
                serde_json::json!({"p50_ms": ms(r.percentile(0.5)), "p99_ms": ms(r.percentile(0.99))}),
            );
        }
        if writers == 1 {
            appends.insert(
                "daicho_1_appends_per_fsync".into(),
                serde_json::json!(stats.requests as f64 / stats.commits.max(1) as f64),
            );
        } else {
            appends.insert(
                "daicho_32_appends_per_fsync".into(),
                serde_json::json!(stats.requests as f64 / stats.commits.max(1) as f64),
            );
        }
        last_dirs = Some((d_dir, s_dir));
    }
    let mut replay = serde_json::Map::new();
    if let Some((d_dir, s_dir)) = last_dirs {
        let d = daicho_replay(&d_dir);
        let s = sqlite_replay(&s_dir);
        let p = args.postgres.as_deref().map(postgres_replay);
        println!(
            "| replay: read, parse, check hash chain ({} events) | {} | {} |{}",
            d.events,
            rate(&d),
            rate(&s),
            p.as_ref().map(|p| format!(" {} |", rate(p))).unwrap_or_default(),
        );
        // Where daicho's replay goes: sled's iterator alone, and the same parse and chain check
        // on records already in memory.
        let (scan, records) = sled_scan(&d_dir);
        let parse = parse_records(&records);
        println!(
            "| replay split: sled's iterator alone, then parse and chain check in memory | {} and {} | |{}",
            rate(&scan),
            rate(&parse),
            if args.postgres.is_some() { " |" } else { "" }
        );
        replay.insert("daicho".into(), serde_json::json!(d.per_second()));
        replay.insert("daicho_sled_iterator".into(), serde_json::json!(scan.per_second()));
        replay.insert("daicho_parse_in_memory".into(), serde_json::json!(parse.per_second()));
        replay.insert("sqlite".into(), serde_json::json!(s.per_second()));
        if let Some(p) = p {
            replay.insert("postgres".into(), serde_json::json!(p.per_second()));
        }
    }
    write_json(
        &args.json,
        &serde_json::json!({
            "events_per_run": args.events,
            "machine": machine(),
            "fsync_limit_per_s": limit,
            "appends": appends,
            "append_latency": latency,
            "replay_per_s": replay,
        }),
    );
    let _ = std::fs::remove_dir_all(&args.dir);
}
