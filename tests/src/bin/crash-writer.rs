//! Child process of the crash test: opens the store in `DIR`, runs `WRITERS` threads that append
//! as fast as they can, and prints `ack <position> <event id>` for each append once it returned
//! (so: once durable). It runs until killed.
//!
//! Usage: crash-writer DIR WRITERS SESSION [SEGMENT_BYTES FLUSH_MS [HALT_POINT HALT_AT]]
//!
//! SEGMENT_BYTES and FLUSH_MS set the redo log's segment size and the flusher's interval (small
//! values make segment switches and background flushes frequent). With HALT_POINT (a
//! [`WritePoint`] name, e.g. `SegmentRenamed`), the thread that reaches that point for the
//! HALT_AT-th time prints `halt <point>` and stops there, for the parent to kill the process in
//! exactly that state.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::NaiveDate;
use daicho_store::{AppendRequest, ExpectedVersion, NewEvent, Store, StoreOptions, StreamId, Target, WritePoint};

fn options(args: &[String]) -> StoreOptions {
    let mut options = StoreOptions::default();
    if let (Some(bytes), Some(ms)) = (args.get(4), args.get(5)) {
        options.redo_segment_bytes = bytes.parse().unwrap_or(options.redo_segment_bytes);
        options.flush_interval = Duration::from_millis(ms.parse().unwrap_or(500));
    }
    if let (Some(point), Some(at)) = (args.get(6).cloned(), args.get(7)) {
        let at: u64 = at.parse().unwrap_or(1);
        let seen = AtomicU64::new(0);
        options.probe = Some(Arc::new(move |p: WritePoint| {
            if format!("{p:?}") == point && seen.fetch_add(1, Ordering::SeqCst) + 1 == at {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "halt {point}");
                let _ = out.flush();
                drop(out);
                loop {
                    std::thread::park();
                }
            }
        }));
    }
    options
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(writers), Some(session)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: crash-writer DIR WRITERS SESSION [SEGMENT_BYTES FLUSH_MS [HALT_POINT HALT_AT]]");
        std::process::exit(2);
    };
    let writers: usize = writers.parse().unwrap_or(4);
    let dir = PathBuf::from(dir);
    let options = options(&args);
    let opened =
        if dir.join("sled").exists() { Store::open_with(&dir, options) } else { Store::create_with(&dir, options) };
    let store = match opened {
        Ok(s) => s,
        Err(e) => {
            eprintln!("open: {e}");
            std::process::exit(3);
        }
    };
    println!("ready {}", store.head().position);
    let effective = NaiveDate::from_ymd_opt(2026, 4, 1).unwrap_or_default();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let session = session.clone();
            std::thread::spawn(move || {
                for i in 0u64.. {
                    let id = format!("{session}-{w}-{i}");
                    // Every fifth append creates a keyed stream; the rest go to shared streams.
                    let target = if i % 5 == 0 {
                        Target::NewKeyed { category: "crash".into(), key: id.clone() }
                    } else {
                        let stream = StreamId::parse(&format!("shared-{}", i % 3)).unwrap_or_else(|| unreachable!());
                        Target::Stream { stream, expected: ExpectedVersion::Any }
                    };
                    let events = (0..=(i % 3))
                        .map(|k| NewEvent {
                            event_id: format!("{id}#{k}"),
                            event_type: "crash_test".into(),
                            schema_version: 1,
                            effective,
                            payload: vec![u8::try_from(k).unwrap_or(0); 40 + (i as usize % 200)],
                        })
                        .collect();
                    let request = AppendRequest {
                        target,
                        request_id: id.clone(),
                        request_digest: [u8::try_from(w % 256).unwrap_or(0); 32],
                        actor: "crash".into(),
                        approver: None,
                        expected_head: None,
                        events,
                    };
                    match store.append_blocking(request) {
                        Ok(outcome) => {
                            let mut out = std::io::stdout().lock();
                            let _ = writeln!(out, "ack {} {} {}", outcome.first.0, outcome.last.0, id);
                            let _ = out.flush();
                        }
                        Err(e) => {
                            eprintln!("append: {e}");
                            std::process::exit(4);
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}
