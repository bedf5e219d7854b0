//! The read-model engine spike (issue 20): the same keys and values, taken from a real
//! register, in redb and in LMDB (through heed), measured phase by phase, each phase in its own
//! process so that its peak RSS is its own.
//!
//! Usage (`scripts/bench-engines` drives it):
//!   bench-engines dump --projections DIR --out FILE
//!       every key and value of the sled register tree, in key order, as
//!       [u32 LE key length][u32 LE value length][key][value]
//!   bench-engines load  --engine redb|lmdb --dump FILE --db PATH
//!       sorted bulk load: commits of 100,000 keys without sync, one durable commit at the end
//!   bench-engines read  --engine redb|lmdb --dump FILE --db PATH [--cache-mib N]
//!       open (the caller drops the page cache first), 10,000 cold point reads of snapshots,
//!       200,000 warm ones, a scan of every PMH entry, 1,000 kana prefix searches
//!   bench-engines update --engine redb|lmdb --dump FILE --db PATH [--cache-mib N]
//!       10,000 entry rewrites in one durable commit, then 1,000 durable commits of one rewrite
//! Each phase prints one JSON object on stdout.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redb::ReadableDatabase;
use serde_json::json;

type Kv = (Vec<u8>, Vec<u8>);

struct Args {
    phase: String,
    engine: String,
    dump: PathBuf,
    db: PathBuf,
    projections: PathBuf,
    cache_mib: usize,
}

fn usage() -> ! {
    eprintln!("usage: bench-engines dump|load|read|update --engine redb|lmdb --dump FILE --db PATH [--cache-mib N]");
    std::process::exit(2);
}

fn args() -> Args {
    let mut it = std::env::args().skip(1);
    let phase = it.next().unwrap_or_else(|| usage());
    let mut a = Args {
        phase,
        engine: String::new(),
        dump: PathBuf::new(),
        db: PathBuf::new(),
        projections: PathBuf::new(),
        cache_mib: 256,
    };
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--engine" => a.engine = value,
            "--dump" | "--out" => a.dump = PathBuf::from(value),
            "--db" => a.db = PathBuf::from(value),
            "--projections" => a.projections = PathBuf::from(value),
            "--cache-mib" => a.cache_mib = value.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    a
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("bench-engines: {what}: {e}");
    std::process::exit(1);
}

/// The process's peak resident set (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn dump(a: &Args) {
    let db = sled::Config::new().path(&a.projections).open().unwrap_or_else(|e| fail("open sled", e));
    let tree = db.open_tree("register").unwrap_or_else(|e| fail("open tree", e));
    let started = Instant::now();
    let file = File::create(&a.dump).unwrap_or_else(|e| fail("create dump", e));
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let (mut keys, mut bytes) = (0u64, 0u64);
    for item in tree.iter() {
        let (k, v) = item.unwrap_or_else(|e| fail("read sled", e));
        out.write_all(&(k.len() as u32).to_le_bytes()).unwrap_or_else(|e| fail("write", e));
        out.write_all(&(v.len() as u32).to_le_bytes()).unwrap_or_else(|e| fail("write", e));
        out.write_all(&k).unwrap_or_else(|e| fail("write", e));
        out.write_all(&v).unwrap_or_else(|e| fail("write", e));
        keys += 1;
        bytes += (k.len() + v.len()) as u64;
    }
    out.flush().unwrap_or_else(|e| fail("write", e));
    println!("{}", json!({"phase": "dump", "keys": keys, "bytes": bytes, "secs": started.elapsed().as_secs_f64()}));
}

/// Calls `each` on every key and value of the dump, in order.
fn read_dump(path: &Path, each: &mut dyn FnMut(&[u8], &[u8])) {
    let file = File::open(path).unwrap_or_else(|e| fail("open dump", e));
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut head = [0u8; 8];
    let (mut k, mut v) = (Vec::new(), Vec::new());
    loop {
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => fail("read dump", e),
        }
        let kl = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let vl = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        k.resize(kl, 0);
        v.resize(vl, 0);
        r.read_exact(&mut k).unwrap_or_else(|e| fail("read dump", e));
        r.read_exact(&mut v).unwrap_or_else(|e| fail("read dump", e));
        each(&k, &v);
    }
}

/// The dump's snapshot keys, its entry keys with their values' lengths, and 1,000 kana search
/// prefixes (the first two characters of kana keys spread over the index).
struct Sample {
    snapshots: Vec<Vec<u8>>,
    entries: Vec<(Vec<u8>, usize)>,
    kana: Vec<Vec<u8>>,
}

fn sample(path: &Path) -> Sample {
    let mut s = Sample { snapshots: Vec::new(), entries: Vec::new(), kana: Vec::new() };
    let mut kana_keys = 0u64;
    read_dump(path, &mut |k, v| match k.first() {
        Some(b'R') => s.snapshots.push(k.to_vec()),
        Some(b'E') => s.entries.push((k.to_vec(), v.len())),
        Some(b'K') => {
            kana_keys += 1;
            if kana_keys.is_multiple_of(997) && s.kana.len() < 1000 {
                // The prefix byte and two kana (three bytes each in UTF-8).
                s.kana.push(k[..k.len().min(7)].to_vec());
            }
        }
        _ => {}
    });
    s
}

/// A deterministic shuffle (xorshift), so both engines read the same keys in the same order.
fn shuffled<T: Clone>(items: &[T], n: usize, seed: u64) -> Vec<T> {
    let mut x = seed | 1;
    (0..n.min(items.len().max(1)))
        .filter_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            items.get((x % items.len().max(1) as u64) as usize).cloned()
        })
        .collect()
}

fn percentile(times: &mut [Duration], p: f64) -> f64 {
    if times.is_empty() {
        return 0.0;
    }
    times.sort_unstable();
    let i = ((times.len() as f64 - 1.0) * p).round() as usize;
    times[i].as_secs_f64() * 1e6
}

/// What each engine must do; one implementation per engine below.
trait Engine {
    fn put_sorted(&mut self, batch: &[Kv]);
    fn finish_load(&mut self);
    fn get(&self, key: &[u8]) -> Option<usize>;
    /// Visits keys starting with `prefix`, at most `limit`; returns the count and value bytes.
    fn scan(&self, prefix: &[u8], limit: usize) -> (u64, u64);
    /// Rewrites each key with a value of the given length, in one durable commit.
    fn rewrite(&mut self, keys: &[(Vec<u8>, usize)]);
}

const TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("register");

struct Redb {
    db: redb::Database,
}

impl Redb {
    fn open(path: &Path, cache_mib: usize, create: bool) -> Redb {
        let mut b = redb::Builder::new();
        b.set_cache_size(cache_mib << 20);
        let db = if create { b.create(path) } else { b.open(path) };
        Redb { db: db.unwrap_or_else(|e| fail("open redb", e)) }
    }
}

impl Engine for Redb {
    fn put_sorted(&mut self, batch: &[Kv]) {
        let mut tx = self.db.begin_write().unwrap_or_else(|e| fail("begin", e));
        tx.set_durability(redb::Durability::None).unwrap_or_else(|e| fail("durability", e));
        {
            let mut t = tx.open_table(TABLE).unwrap_or_else(|e| fail("table", e));
            for (k, v) in batch {
                t.insert(k.as_slice(), v.as_slice()).unwrap_or_else(|e| fail("insert", e));
            }
        }
        tx.commit().unwrap_or_else(|e| fail("commit", e));
    }

    fn finish_load(&mut self) {
        // One durable commit makes every earlier non-durable one durable.
        let tx = self.db.begin_write().unwrap_or_else(|e| fail("begin", e));
        tx.commit().unwrap_or_else(|e| fail("commit", e));
    }

    fn get(&self, key: &[u8]) -> Option<usize> {
        let tx = self.db.begin_read().unwrap_or_else(|e| fail("begin read", e));
        let t = tx.open_table(TABLE).unwrap_or_else(|e| fail("table", e));
        t.get(key).unwrap_or_else(|e| fail("get", e)).map(|v| v.value().len())
    }

    fn scan(&self, prefix: &[u8], limit: usize) -> (u64, u64) {
        let tx = self.db.begin_read().unwrap_or_else(|e| fail("begin read", e));
        let t = tx.open_table(TABLE).unwrap_or_else(|e| fail("table", e));
        let (mut n, mut bytes) = (0u64, 0u64);
        for item in t.range::<&[u8]>(prefix..).unwrap_or_else(|e| fail("range", e)) {
            let (k, v) = item.unwrap_or_else(|e| fail("range", e));
            if !k.value().starts_with(prefix) || n as usize >= limit {
                break;
            }
            n += 1;
            bytes += v.value().len() as u64;
        }
        (n, bytes)
    }

    fn rewrite(&mut self, keys: &[(Vec<u8>, usize)]) {
        let tx = self.db.begin_write().unwrap_or_else(|e| fail("begin", e));
        {
            let mut t = tx.open_table(TABLE).unwrap_or_else(|e| fail("table", e));
            for (k, len) in keys {
                t.insert(k.as_slice(), vec![0x5a; *len].as_slice()).unwrap_or_else(|e| fail("insert", e));
            }
        }
        tx.commit().unwrap_or_else(|e| fail("commit", e));
    }
}

struct Lmdb {
    env: heed::Env,
    db: heed::Database<'static, heed::types::Bytes, heed::types::Bytes>,
}

impl Lmdb {
    fn open(path: &Path, nosync: bool) -> Lmdb {
        std::fs::create_dir_all(path).unwrap_or_else(|e| fail("mkdir", e));
        let mut o = heed::EnvOpenOptions::new();
        o.map_size(64 << 30).max_dbs(4);
        if nosync {
            // SAFETY: NO_SYNC only changes when LMDB syncs; the load ends with `force_sync`.
            #[allow(unsafe_code)]
            unsafe {
                o.flags(heed::EnvFlags::NO_SYNC);
            }
        }
        // SAFETY: this process is the file's only user, and nothing truncates or rewrites it
        // while it is mapped (LMDB's requirement for a sound memory map).
        #[allow(unsafe_code)]
        let env = unsafe { o.open(path) }.unwrap_or_else(|e| fail("open lmdb", e));
        let env: &'static heed::Env = Box::leak(Box::new(env));
        let wtxn = env.write_txn().unwrap_or_else(|e| fail("begin", e));
        let db = env
            .create_databases_and_commit(wtxn, |wdo, wtxn| -> Result<_, heed::Error> {
                let db = wdo.create_database::<heed::types::Bytes, heed::types::Bytes>(wtxn, Some("register"))?;
                Ok(heed::CommitOrAbort::<_, ()>::Commit(db))
            })
            .unwrap_or_else(|e| fail("create db", e))
            .unwrap_commit();
        Lmdb { env: env.clone(), db }
    }
}

impl Engine for Lmdb {
    fn put_sorted(&mut self, batch: &[Kv]) {
        let mut w = self.env.write_txn().unwrap_or_else(|e| fail("begin", e));
        for (k, v) in batch {
            self.db.put_with_flags(&mut w, heed::PutFlags::APPEND, k, v).unwrap_or_else(|e| fail("put", e));
        }
        w.commit().unwrap_or_else(|e| fail("commit", e));
    }

    fn finish_load(&mut self) {
        self.env.force_sync().unwrap_or_else(|e| fail("sync", e));
    }

    fn get(&self, key: &[u8]) -> Option<usize> {
        let r = self.env.read_txn().unwrap_or_else(|e| fail("begin read", e));
        self.db.get(&r, key).unwrap_or_else(|e| fail("get", e)).map(<[u8]>::len)
    }

    fn scan(&self, prefix: &[u8], limit: usize) -> (u64, u64) {
        let r = self.env.read_txn().unwrap_or_else(|e| fail("begin read", e));
        let (mut n, mut bytes) = (0u64, 0u64);
        for item in self.db.prefix_iter(&r, prefix).unwrap_or_else(|e| fail("prefix", e)) {
            let (_, v) = item.unwrap_or_else(|e| fail("prefix", e));
            if n as usize >= limit {
                break;
            }
            n += 1;
            bytes += v.len() as u64;
        }
        (n, bytes)
    }

    fn rewrite(&mut self, keys: &[(Vec<u8>, usize)]) {
        let mut w = self.env.write_txn().unwrap_or_else(|e| fail("begin", e));
        for (k, len) in keys {
            self.db.put(&mut w, k, &vec![0x5a; *len]).unwrap_or_else(|e| fail("put", e));
        }
        w.commit().unwrap_or_else(|e| fail("commit", e));
    }
}

fn engine(a: &Args, create: bool, nosync: bool) -> Box<dyn Engine> {
    match a.engine.as_str() {
        "redb" => Box::new(Redb::open(&a.db, a.cache_mib, create)),
        "lmdb" => Box::new(Lmdb::open(&a.db, nosync)),
        _ => usage(),
    }
}

fn size_of(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path)
            .map(|d| d.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
            .unwrap_or(0)
    } else {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }
}

fn load(a: &Args) {
    let started = Instant::now();
    let mut e = engine(a, true, true);
    let mut batch: Vec<Kv> = Vec::with_capacity(100_000);
    let (mut keys, mut bytes) = (0u64, 0u64);
    read_dump(&a.dump, &mut |k, v| {
        batch.push((k.to_vec(), v.to_vec()));
        keys += 1;
        bytes += (k.len() + v.len()) as u64;
        if batch.len() == 100_000 {
            e.put_sorted(&batch);
            batch.clear();
        }
    });
    e.put_sorted(&batch);
    e.finish_load();
    let secs = started.elapsed().as_secs_f64();
    drop(e);
    println!(
        "{}",
        json!({"phase": "load", "engine": a.engine, "keys": keys, "bytes": bytes, "secs": secs,
               "file_bytes": size_of(&a.db), "peak_rss_mib": peak_rss_mib()})
    );
}

fn read(a: &Args) {
    let s = sample(&a.dump);
    let started = Instant::now();
    let e = engine(a, false, false);
    let first = e.get(&s.snapshots[0]);
    let open_secs = started.elapsed().as_secs_f64();
    let cold = shuffled(&s.snapshots, 10_000, 7);
    let t = Instant::now();
    let mut cold_times = Vec::with_capacity(cold.len());
    for k in &cold {
        let one = Instant::now();
        if e.get(k).is_none() {
            fail("cold read", "a key of the dump is missing");
        }
        cold_times.push(one.elapsed());
    }
    let cold_secs = t.elapsed().as_secs_f64();
    let warm = shuffled(&s.snapshots, 200_000, 11);
    let mut warm_times = Vec::with_capacity(warm.len());
    let t = Instant::now();
    for k in &warm {
        let one = Instant::now();
        if e.get(k).is_none() {
            fail("warm read", "a key of the dump is missing");
        }
        warm_times.push(one.elapsed());
    }
    let warm_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let (entries, entry_bytes) = e.scan(b"E", usize::MAX);
    let scan_secs = t.elapsed().as_secs_f64();
    let mut search_times = Vec::with_capacity(s.kana.len());
    let mut found = 0u64;
    for p in &s.kana {
        let one = Instant::now();
        found += e.scan(p, 51).0;
        search_times.push(one.elapsed());
    }
    println!(
        "{}",
        json!({"phase": "read", "engine": a.engine, "cache_mib": a.cache_mib, "open_secs": open_secs,
               "first": first.is_some(),
               "cold_gets": cold.len(), "cold_secs": cold_secs,
               "cold_p50_us": percentile(&mut cold_times, 0.5), "cold_p99_us": percentile(&mut cold_times, 0.99),
               "warm_gets": warm.len(), "warm_per_s": warm.len() as f64 / warm_secs,
               "warm_p50_us": percentile(&mut warm_times, 0.5), "warm_p99_us": percentile(&mut warm_times, 0.99),
               "scan_entries": entries, "scan_bytes": entry_bytes, "scan_secs": scan_secs,
               "searches": s.kana.len(), "search_hits": found,
               "search_p50_us": percentile(&mut search_times, 0.5), "search_p99_us": percentile(&mut search_times, 0.99),
               "peak_rss_mib": peak_rss_mib()})
    );
}

fn update(a: &Args) {
    let s = sample(&a.dump);
    let mut e = engine(a, false, false);
    let many = shuffled(&s.entries, 10_000, 13);
    let t = Instant::now();
    e.rewrite(&many);
    let batch_secs = t.elapsed().as_secs_f64();
    let single = shuffled(&s.entries, 1_000, 17);
    let mut times = Vec::with_capacity(single.len());
    let t = Instant::now();
    for k in &single {
        let one = Instant::now();
        e.rewrite(std::slice::from_ref(k));
        times.push(one.elapsed());
    }
    let single_secs = t.elapsed().as_secs_f64();
    drop(e);
    println!(
        "{}",
        json!({"phase": "update", "engine": a.engine, "batch_keys": many.len(), "batch_secs": batch_secs,
               "commits": single.len(), "commits_per_s": single.len() as f64 / single_secs,
               "commit_p50_us": percentile(&mut times, 0.5), "commit_p99_us": percentile(&mut times, 0.99),
               "file_bytes": size_of(&a.db), "peak_rss_mib": peak_rss_mib()})
    );
}

fn main() {
    let a = args();
    match a.phase.as_str() {
        "dump" => dump(&a),
        "load" => load(&a),
        "read" => read(&a),
        "update" => update(&a),
        _ => usage(),
    }
}
