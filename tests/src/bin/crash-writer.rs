//! Child process of the crash test: opens the store in `DIR`, runs `WRITERS` threads that append
//! as fast as they can, and prints `ack <position> <event id>` for each append once it returned
//! (so: once durable). It runs until killed.
//!
//! Usage: crash-writer DIR WRITERS SESSION

use std::io::Write;
use std::path::PathBuf;

use chrono::NaiveDate;
use daicho_store::{AppendRequest, ExpectedVersion, NewEvent, Store, StreamId, Target};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(writers), Some(session)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: crash-writer DIR WRITERS SESSION");
        std::process::exit(2);
    };
    let writers: usize = writers.parse().unwrap_or(4);
    let dir = PathBuf::from(dir);
    let store = match if dir.join("sled").exists() { Store::open(&dir) } else { Store::create(&dir) } {
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
