//! The store's contract: appends with expected versions, idempotency, keyed streams, group
//! commit under concurrency, reads bounded by the durable head, subscriptions without gaps,
//! reopening, and detection of damage at open and by verify.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[path = "common/earlier_formats.rs"]
mod earlier_formats;
use earlier_formats::{format_head, unpack_format, unpack_format_1};

use chrono::NaiveDate;
use daicho_store::verify::{VerifyOptions, verify_dir};
use daicho_store::{
    AppendError, AppendRequest, ExpectedVersion, NewEvent, Position, Store, StoreError, StreamId, Target,
};

fn stream(s: &str) -> StreamId {
    StreamId::parse(s).unwrap()
}

fn event(id: &str) -> NewEvent {
    NewEvent {
        event_id: id.to_owned(),
        event_type: "test_event".into(),
        schema_version: 1,
        effective: NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
        payload: id.as_bytes().to_vec(),
    }
}

fn request(target: Target, id: &str, events: usize) -> AppendRequest {
    AppendRequest {
        target,
        request_id: id.to_owned(),
        request_digest: digest(id),
        actor: "kubo".into(),
        approver: None,
        expected_head: None,
        events: (0..events).map(|i| event(&format!("{id}#{i}"))).collect(),
    }
}

fn digest(s: &str) -> [u8; 32] {
    let mut d = [0u8; 32];
    for (i, b) in s.bytes().enumerate() {
        d[i % 32] ^= b;
    }
    d
}

fn to(s: &str, expected: ExpectedVersion) -> Target {
    Target::Stream { stream: stream(s), expected }
}

fn verify(dir: &Path) -> daicho_store::verify::VerifyReport {
    verify_dir(dir, VerifyOptions { payload: &mut |_| Ok(()), progress: &mut |_| {}, update_checkpoint: true }).unwrap()
}

#[test]
fn appends_are_dense_chained_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    assert_eq!(store.head().position, Position(0));
    let a = store.append_blocking(request(to("s-a", ExpectedVersion::NoStream), "r1", 2)).unwrap();
    let b = store.append_blocking(request(to("s-b", ExpectedVersion::Any), "r2", 1)).unwrap();
    let c = store.append_blocking(request(to("s-a", ExpectedVersion::Exactly(2)), "r3", 1)).unwrap();
    assert_eq!((a.first, a.last, a.stream_version), (Position(1), Position(2), 2));
    assert_eq!((b.first, b.last), (Position(3), Position(3)));
    assert_eq!((c.first, c.stream_version, c.already_applied), (Position(4), 3, false));
    let all: Vec<_> = store.read_from(Position(1)).map(Result::unwrap).collect();
    assert_eq!(all.iter().map(|e| e.position.0).collect::<Vec<_>>(), [1, 2, 3, 4]);
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    assert!(all.iter().all(|e| e.hash_is_valid()));
    assert_eq!(store.head().hash, all[3].hash);
    let s_a = store.read_stream(&stream("s-a")).unwrap();
    assert_eq!(
        s_a.iter().map(|e| (e.stream_version, e.event_id.as_str())).collect::<Vec<_>>(),
        [(1, "r1#0"), (2, "r1#1"), (3, "r3#0")]
    );
    assert_eq!(s_a[0].correlation_id, "r1");
    assert_eq!(store.stream_version(&stream("s-b")).unwrap(), 1);
    assert_eq!(store.read_from(Position(3)).count(), 2);
    assert!(store.get(Position(5)).unwrap().is_none());
}

#[test]
fn replay_reads_what_read_from_reads_across_many_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    // More than a few of the helper's batches, some of them perhaps still in the memtable.
    for i in 0..3000 {
        store.append_blocking(request(to(&format!("s-{}", i % 7), ExpectedVersion::Any), &format!("r{i}"), 1)).unwrap();
    }
    let positions = |it: &mut dyn Iterator<Item = Result<daicho_store::Envelope, StoreError>>| {
        it.map(|e| e.unwrap()).map(|e| (e.position.0, e.hash)).collect::<Vec<_>>()
    };
    let read = positions(&mut store.read_from(Position(1)));
    assert_eq!(read.len(), 3000);
    assert_eq!(positions(&mut store.replay(Position(1))), read);
    assert_eq!(positions(&mut store.replay(Position(2500))), read[2499..]);
    assert_eq!(store.replay(Position(3001)).count(), 0);
    // Stopping early leaves the store usable (the helper ends at its next batch).
    assert_eq!(store.replay(Position(1)).take(10).count(), 10);
    store.append_blocking(request(to("s-x", ExpectedVersion::Any), "after", 1)).unwrap();
    assert_eq!(store.replay(Position(1)).count(), 3001);
}

#[test]
fn an_expected_version_mismatch_is_its_own_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    store.append_blocking(request(to("s", ExpectedVersion::NoStream), "r1", 1)).unwrap();
    let err = store.append_blocking(request(to("s", ExpectedVersion::Exactly(0)), "r2", 1)).unwrap_err();
    assert!(matches!(err, AppendError::WrongExpectedVersion { actual: 1, .. }), "{err:?}");
    let err = store.append_blocking(request(to("s", ExpectedVersion::NoStream), "r3", 1)).unwrap_err();
    assert!(matches!(err, AppendError::WrongExpectedVersion { .. }));
    assert_eq!(store.head().position, Position(1));
    // The refused request ids stay free.
    store.append_blocking(request(to("s", ExpectedVersion::Exactly(1)), "r2", 1)).unwrap();
}

#[test]
fn a_repeated_request_returns_its_first_outcome_and_a_changed_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let first = store.append_blocking(request(to("s", ExpectedVersion::NoStream), "r1", 3)).unwrap();
    // Same id and digest: the original positions, nothing written, even with a stale version.
    let again = store.append_blocking(request(to("s", ExpectedVersion::NoStream), "r1", 3)).unwrap();
    assert!(again.already_applied);
    assert_eq!((again.first, again.last, again.stream.clone()), (first.first, first.last, first.stream.clone()));
    assert_eq!(store.head().position, Position(3));
    let mut changed = request(to("s", ExpectedVersion::Any), "r1", 3);
    changed.request_digest[0] ^= 1;
    assert_eq!(store.append_blocking(changed).unwrap_err(), AppendError::RequestIdReused);
    // An event id used by another request is refused.
    let mut reuse = request(to("s", ExpectedVersion::Any), "r2", 1);
    reuse.events[0].event_id = "r1#1".into();
    assert_eq!(store.append_blocking(reuse).unwrap_err(), AppendError::EventIdReused { event_id: "r1#1".into() });
    let mut twice = request(to("s", ExpectedVersion::Any), "r3", 2);
    twice.events[1].event_id = twice.events[0].event_id.clone();
    assert!(matches!(store.append_blocking(twice).unwrap_err(), AppendError::EventIdReused { .. }));
    assert_eq!(store.request("r1").unwrap().unwrap().outcome.last, Position(3));
    assert!(store.request("r2").unwrap().is_none());
}

#[test]
fn a_request_id_prefix_is_found_in_the_memtable_and_in_sled_but_not_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    assert!(!store.any_request_with_prefix("imp.a.").unwrap());
    store.append_blocking(request(to("s", ExpectedVersion::NoStream), "imp.a.r.01", 1)).unwrap();
    // Just acknowledged (the memtable, or sled if the applier was quick).
    assert!(store.any_request_with_prefix("imp.a.").unwrap());
    for other in ["imp.b.", "imp.a.g.", "imp.ab", "x"] {
        assert!(!store.any_request_with_prefix(other).unwrap(), "{other}");
    }
    // Applied to sled, after a reopen.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.any_request_with_prefix("imp.a.").unwrap());
    assert!(store.any_request_with_prefix("imp.").unwrap());
    assert!(!store.any_request_with_prefix("imp.b.").unwrap());
}

#[test]
fn keyed_streams_get_numbers_and_keys_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let keyed = |key: &str| Target::NewKeyed { category: "recipient".into(), key: key.into() };
    let a = store.append_blocking(request(keyed("R0001"), "r1", 1)).unwrap();
    let b = store.append_blocking(request(keyed("R0002"), "r2", 1)).unwrap();
    assert_eq!((a.stream.as_str(), b.stream.as_str()), ("recipient-1", "recipient-2"));
    let err = store.append_blocking(request(keyed("R0001"), "r3", 1)).unwrap_err();
    assert_eq!(err, AppendError::StreamKeyTaken { stream: stream("recipient-1") });
    assert_eq!(store.stream_for_key("recipient", "R0002").unwrap(), Some(stream("recipient-2")));
    assert_eq!(store.stream_for_key("recipient", "R0003").unwrap(), None);
    // The key is in the first envelope only, so the index can be rebuilt from the log.
    let events = store.read_stream(&stream("recipient-1")).unwrap();
    assert_eq!(events[0].stream_key.as_deref(), Some("R0001"));
    store.append_blocking(request(to("recipient-1", ExpectedVersion::Exactly(1)), "r4", 1)).unwrap();
    assert_eq!(store.read_stream(&stream("recipient-1")).unwrap()[1].stream_key, None);
    // A refused keyed request allocates no number.
    let mut bad = request(keyed("R0009"), "r5", 1);
    bad.events[0].event_id = "r1#0".into();
    assert!(store.append_blocking(bad).is_err());
    let c = store.append_blocking(request(keyed("R0009"), "r6", 1)).unwrap();
    assert_eq!(c.stream.as_str(), "recipient-3");
}

#[test]
fn requests_breaking_limits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let empty = request(to("s", ExpectedVersion::Any), "r", 0);
    assert!(matches!(store.append_blocking(empty), Err(AppendError::Invalid(_))));
    let many = request(to("s", ExpectedVersion::Any), "r", 65);
    assert!(matches!(store.append_blocking(many), Err(AppendError::Invalid(_))));
    let mut big = request(to("s", ExpectedVersion::Any), "r", 1);
    big.events[0].payload = vec![0; 64 * 1024 + 1];
    assert!(matches!(store.append_blocking(big), Err(AppendError::Invalid(_))));
    let mut bad_type = request(to("s", ExpectedVersion::Any), "r", 1);
    bad_type.events[0].event_type = "Bad Type".into();
    assert!(matches!(store.append_blocking(bad_type), Err(AppendError::Invalid(_))));
    let bad_key = request(Target::NewKeyed { category: "Recipient".into(), key: "x".into() }, "r", 1);
    assert!(matches!(store.append_blocking(bad_key), Err(AppendError::Invalid(_))));
    assert_eq!(store.head().position, Position(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_grouped_into_fewer_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let writers = 32;
    let per_writer = 20;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut positions = Vec::new();
            for i in 0..per_writer {
                let target = to(&format!("w{w}"), ExpectedVersion::Exactly(i));
                let outcome = store.append(request(target, &format!("w{w}-{i}"), 1)).await.unwrap();
                positions.push(outcome.first.0);
            }
            positions
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    let n = writers * per_writer;
    assert_eq!(all, (1..=n).collect::<Vec<_>>(), "every position once, no gap");
    let stats = store.stats();
    assert_eq!((stats.events, stats.requests), (n, n));
    assert!(stats.commits < n, "32 concurrent writers share commits: {stats:?}");
}

#[test]
fn a_reopened_store_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let head = {
        let store = Store::create(dir.path()).unwrap();
        store.append_blocking(request(to("s", ExpectedVersion::NoStream), "r1", 2)).unwrap();
        store.head()
    };
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.head(), head);
    let next = store.append_blocking(request(to("s", ExpectedVersion::Exactly(2)), "r2", 1)).unwrap();
    assert_eq!(next.first, Position(3));
    assert_eq!(store.get(Position(3)).unwrap().unwrap().prev_hash, head.hash);
    assert!(store.get(Position(3)).unwrap().unwrap().recorded_at_us >= head.recorded_at_us);
    drop(store);
    assert!(matches!(Store::create(dir.path()), Err(StoreError::AlreadyExists(_))));
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(Store::open(empty.path()), Err(StoreError::NotALedger(_))));
    assert!(verify(dir.path()).problem.is_none());
}

/// sled's segment size as its `conf` file records it.
fn recorded_segment_size(dir: &Path) -> String {
    let conf = std::fs::read(dir.join("sled").join("conf")).unwrap();
    let text = String::from_utf8_lossy(&conf).into_owned();
    text.lines().find_map(|l| l.strip_prefix("segment_size: ")).unwrap().to_owned()
}

#[test]
fn a_store_keeps_the_segment_size_it_was_created_with() {
    // New stores get large segments; one of an earlier release (sled's default, 512 KiB) still
    // opens, writes and verifies, and keeps its own (sled refuses to open with another).
    let new = tempfile::tempdir().unwrap();
    drop(Store::create(new.path()).unwrap());
    assert_eq!(recorded_segment_size(new.path()), daicho_store::SEGMENT_BYTES.to_string());
    let old = tempfile::tempdir().unwrap();
    let options = daicho_store::StoreOptions { sled_segment_bytes: 512 << 10, ..Default::default() };
    let store = Store::create_with(old.path(), options).unwrap();
    store.append_blocking(request(to("s", ExpectedVersion::NoStream), "r1", 2)).unwrap();
    drop(store);
    let store = Store::open(old.path()).unwrap();
    store.append_blocking(request(to("s", ExpectedVersion::Exactly(2)), "r2", 1)).unwrap();
    assert_eq!(store.head().position, Position(3));
    drop(store);
    assert_eq!(recorded_segment_size(old.path()), "524288");
    assert!(verify(old.path()).problem.is_none());
    assert!(daicho_store::open_raw_sled(&old.path().join("sled")).is_ok());
    // Without sled's conf the size is unknown: refused as damage, not guessed.
    std::fs::remove_file(old.path().join("sled").join("conf")).unwrap();
    match Store::open(old.path()) {
        Err(StoreError::Damaged { reason, .. }) => assert!(reason.contains("conf"), "{reason}"),
        other => panic!("opened without its conf: {:?}", other.map(|s| s.head())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_catches_up_then_follows_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    for i in 0..50 {
        store.append(request(to("s", ExpectedVersion::Any), &format!("before-{i}"), 1)).await.unwrap();
    }
    let mut sub = store.subscribe(Position(1));
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..150 {
                store.append(request(to("s", ExpectedVersion::Any), &format!("after-{i}"), 1)).await.unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    while seen.len() < 200 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(10), sub.next()).await.unwrap().unwrap().unwrap();
        seen.push(e.position.0);
    }
    writer.await.unwrap();
    assert_eq!(seen, (1..=200).collect::<Vec<_>>());
    // A late subscriber starting mid-log gets exactly the rest.
    let mut late = store.subscribe(Position(190));
    let mut rest = Vec::new();
    for _ in 0..11 {
        rest.push(late.next().await.unwrap().unwrap().position.0);
    }
    assert_eq!(rest, (190..=200).collect::<Vec<_>>());
}

/// Rewrites one stored record with a raw sled handle, as someone with write access could.
fn tamper(dir: &Path, position: u64, change: impl FnOnce(&mut Vec<u8>)) {
    let db = daicho_store::open_raw_sled(&dir.join("sled")).unwrap();
    let tree = db.open_tree("ledger").unwrap();
    let mut record = daicho_store::raw::record(&tree, position).unwrap().unwrap();
    change(&mut record);
    daicho_store::raw::set_record(&tree, position, &record).unwrap();
    db.flush().unwrap();
}

/// Flips bits of the last payload byte of a record (before its two hashes).
fn flip(mask: u8) -> impl FnOnce(&mut Vec<u8>) {
    move |r| {
        let at = r.len() - 65;
        r[at] ^= mask;
    }
}

/// Changes a record's actor and recomputes its own hash, as a careful forger would.
fn forge(r: &mut Vec<u8>) {
    let mut e = daicho_store::Envelope::from_record(r).unwrap();
    e.actor = "intruder".into();
    let prev = e.prev_hash;
    e.seal(prev);
    *r = e.to_record();
}

fn filled(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    for i in 0..n {
        store.append_blocking(request(to(&format!("s{}", i % 7), ExpectedVersion::Any), &format!("r{i}"), 1)).unwrap();
    }
    dir
}

#[test]
fn verify_names_the_first_altered_position() {
    let dir = filled(200);
    assert!(verify(dir.path()).problem.is_none());
    // A change inside the payload of event 57 (the payload is at the end, before the hashes).
    tamper(dir.path(), 57, flip(0x20));
    let problem = verify(dir.path()).problem.unwrap();
    assert_eq!(problem.position, Some(Position(57)));
    assert!(problem.reason.contains("altered"), "{}", problem.reason);
}

#[test]
fn a_consistently_rehashed_forgery_breaks_the_next_link() {
    let dir = filled(100);
    // Alter event 40 and recompute its own hash: the chain breaks at 41.
    tamper(dir.path(), 40, forge);
    let problem = verify(dir.path()).problem.unwrap();
    assert_eq!(problem.position, Some(Position(41)));
    assert!(problem.reason.contains("chain"), "{}", problem.reason);
}

#[test]
fn damage_near_the_head_is_found_when_opening() {
    let dir = filled(100);
    tamper(dir.path(), 99, flip(1));
    match Store::open(dir.path()) {
        Err(StoreError::Damaged { position, .. }) => assert_eq!(position, Some(Position(99))),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("opened a damaged store"),
    }
}

#[test]
fn truncation_is_found_against_the_verified_checkpoint() {
    let dir = filled(120);
    assert!(verify(dir.path()).problem.is_none(), "this writes the checkpoint at 120");
    // Remove the last 20 events and rewind the head consistently, as a careful intruder or a
    // lost file tail would leave it.
    {
        let db = daicho_store::open_raw_sled(&dir.path().join("sled")).unwrap();
        let tree = db.open_tree("ledger").unwrap();
        let keep = daicho_store::raw::record(&tree, 100).unwrap().unwrap();
        let e = daicho_store::Envelope::from_record(&keep).unwrap();
        daicho_store::raw::truncate_after(&tree, 100).unwrap();
        let mut head = 100u64.to_be_bytes().to_vec();
        head.extend_from_slice(&e.hash.0);
        head.extend_from_slice(&e.recorded_at_us.to_be_bytes());
        tree.insert(b"Mhead", head).unwrap();
        db.flush().unwrap();
    }
    let problem = verify(dir.path()).problem.unwrap();
    assert!(problem.reason.contains("truncated") || problem.reason.contains("index"), "{}", problem.reason);
    assert!(matches!(Store::open(dir.path()), Err(StoreError::Damaged { .. })));
}

/// Replays the whole log of `dir`: the replay must give `whole` events, then stop with damage
/// at `position` whose reason names `word`.
fn assert_replay_stops(dir: &Path, whole: u64, position: u64, word: &str) {
    let store = Store::open(dir).unwrap();
    let mut good = 0;
    for item in store.replay(Position(1)) {
        match item {
            Ok(_) => good += 1,
            Err(StoreError::Damaged { position: at, reason }) => {
                assert_eq!((good, at), (whole, Some(Position(position))), "{reason}");
                assert!(reason.contains(word), "{reason}");
                return;
            }
            Err(other) => panic!("{other}"),
        }
    }
    panic!("the replay gave {good} events and no damage");
}

#[test]
fn replay_stops_at_the_first_altered_forged_or_missing_event() {
    // Each damage deep in the log (opening checks only its tail), beyond the first batches
    // the replay's helper reads.
    let altered = filled(3000);
    tamper(altered.path(), 2100, flip(0x20));
    assert_replay_stops(altered.path(), 2099, 2100, "altered");
    let forged = filled(3000);
    tamper(forged.path(), 1500, forge);
    assert_replay_stops(forged.path(), 1500, 1501, "chain");
    let gap = filled(3000);
    {
        let db = daicho_store::open_raw_sled(&gap.path().join("sled")).unwrap();
        daicho_store::raw::remove_record(&db.open_tree("ledger").unwrap(), 1024).unwrap();
        db.flush().unwrap();
    }
    assert_replay_stops(gap.path(), 1023, 1024, "missing");
    let whole = filled(3000);
    let store = Store::open(whole.path()).unwrap();
    assert_eq!(store.replay(Position(1)).map(Result::unwrap).count(), 3000);
}

#[test]
fn a_gap_in_the_log_is_named() {
    let dir = filled(30);
    {
        let db = daicho_store::open_raw_sled(&dir.path().join("sled")).unwrap();
        daicho_store::raw::remove_record(&db.open_tree("ledger").unwrap(), 12).unwrap();
        db.flush().unwrap();
    }
    let problem = verify(dir.path()).problem.unwrap();
    assert_eq!(problem.position, Some(Position(12)));
    assert!(problem.reason.contains("missing"), "{}", problem.reason);
}

#[test]
fn an_unfinished_sled_snapshot_does_not_stop_the_store_from_opening() {
    // Regression for the crash test's finding (sled 0.34.7, spacejam/sled#1527): a process killed
    // while sled writes a snapshot leaves `snap.<lsn>.generating`, which sled then tries to read.
    let dir = filled(50);
    let head = Store::open(dir.path()).unwrap().head();
    let sled_dir = dir.path().join("sled");
    let unfinished = sled_dir.join("snap.FFFFFFFFFFFFFFFF.generating");
    std::fs::write(&unfinished, b"half a snapshot").unwrap();
    // sled alone refuses to open this directory.
    assert!(daicho_store::open_raw_sled(&sled_dir).is_err(), "sled opened despite the unfinished snapshot");
    std::fs::write(&unfinished, b"half a snapshot").unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.head(), head);
    assert!(!unfinished.exists());
    drop(store);
    std::fs::write(&unfinished, b"half a snapshot").unwrap();
    assert!(verify(dir.path()).problem.is_none());
}

#[test]
fn a_keyed_stream_takes_later_appends_by_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let by_key = |expected| Target::Key { category: "recipient".into(), key: "R0001".into(), expected };
    assert_eq!(
        store.append_blocking(request(by_key(ExpectedVersion::Any), "r0", 1)).unwrap_err(),
        AppendError::StreamKeyUnknown
    );
    let first = Target::NewKeyed { category: "recipient".into(), key: "R0001".into() };
    store.append_blocking(request(first, "r1", 1)).unwrap();
    let next = store.append_blocking(request(by_key(ExpectedVersion::Exactly(1)), "r2", 2)).unwrap();
    assert_eq!((next.stream.as_str(), next.stream_version), ("recipient-1", 3));
    let stale = store.append_blocking(request(by_key(ExpectedVersion::Exactly(1)), "r3", 1)).unwrap_err();
    assert!(matches!(stale, AppendError::WrongExpectedVersion { actual: 3, .. }));
}

#[test]
fn an_append_can_require_the_head_it_was_computed_at() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    store.append_blocking(request(to("s", ExpectedVersion::Any), "r1", 2)).unwrap();
    let mut anchored = request(to("batch", ExpectedVersion::Any), "b1", 1);
    anchored.expected_head = Some(Position(1));
    assert_eq!(
        store.append_blocking(anchored.clone()).unwrap_err(),
        AppendError::HeadMoved { expected: Position(1), actual: Position(2) }
    );
    anchored.expected_head = Some(Position(2));
    assert_eq!(store.append_blocking(anchored).unwrap().first, Position(3));
}

#[test]
fn queued_appends_of_one_caller_commit_in_order_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    // A whole history queued before any acknowledgement: creation, then appends by key.
    let mut pending = Vec::new();
    for r in 0..50 {
        let key = format!("R{r:04}");
        pending.push(
            store
                .submit_blocking(request(
                    Target::NewKeyed { category: "recipient".into(), key: key.clone() },
                    &format!("{key}-0"),
                    1,
                ))
                .unwrap(),
        );
        for v in 1..4u64 {
            let target =
                Target::Key { category: "recipient".into(), key: key.clone(), expected: ExpectedVersion::Exactly(v) };
            pending.push(store.submit_blocking(request(target, &format!("{key}-{v}"), 1)).unwrap());
        }
    }
    let outcomes: Vec<_> = pending.into_iter().map(|p| p.wait().unwrap()).collect();
    assert_eq!(outcomes.iter().map(|o| o.first.0).collect::<Vec<_>>(), (1..=200).collect::<Vec<_>>());
    assert_eq!(store.stream_version(&stream("recipient-50")).unwrap(), 4);
    assert!(store.stats().commits < 200, "queued appends share commits: {:?}", store.stats());
}

#[test]
fn a_creation_cut_short_leaves_no_store_and_the_next_creation_succeeds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    // What a process killed while creating leaves: a staging directory with an empty database.
    std::fs::create_dir_all(dir.join("sled.creating")).unwrap();
    std::fs::write(dir.join("sled.creating").join("db"), b"").unwrap();
    assert!(Store::open(&dir).is_err(), "a staging directory is not a store");
    let store = Store::create(&dir).unwrap();
    assert_eq!(store.head().position.0, 0);
    drop(store);
    assert!(!dir.join("sled.creating").exists());
    assert!(Store::open(&dir).is_ok());
}

#[test]
fn a_long_stream_reads_back_in_order_across_position_chunks_and_through_a_restore() {
    // 600 versions: nineteen `P` values of 32 positions, the last one open (24 of 32); a second stream
    // interleaved so that positions and versions differ.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(&dir.path().join("a")).unwrap();
    for i in 0..10 {
        store.append_blocking(request(to("long", ExpectedVersion::Any), &format!("l{i}"), 60)).unwrap();
        store.append_blocking(request(to("short", ExpectedVersion::Any), &format!("s{i}"), 1)).unwrap();
    }
    let check = |store: &Store| {
        let events = store.read_stream(&stream("long")).unwrap();
        assert_eq!(events.len(), 600);
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e.stream_version, i as u64 + 1);
            assert_eq!(e.event_id, format!("l{}#{}", i / 60, i % 60));
        }
        assert_eq!(store.stream_version(&stream("long")).unwrap(), 600);
        assert_eq!(store.read_stream(&stream("short")).unwrap().len(), 10);
    };
    check(&store);
    let mut bytes = Vec::new();
    daicho_store::backup::write_backup(&[("ledger", &store)], &mut bytes).unwrap();
    store.close();
    assert!(verify(&dir.path().join("a")).problem.is_none());
    check(&Store::open(&dir.path().join("a")).unwrap());
    let copy = dir.path().join("b");
    daicho_store::backup::restore_backup(&mut &bytes[..], &|_| Some(copy.clone()), &mut |_, _, _| {}).unwrap();
    assert!(verify(&copy).problem.is_none());
    let restored = Store::open(&copy).unwrap();
    check(&restored);
    // The restored copy goes on at version 601, in the open chunk.
    restored.append_blocking(request(to("long", ExpectedVersion::Exactly(600)), "l10", 1)).unwrap();
    assert_eq!(restored.read_stream(&stream("long")).unwrap()[600].event_id, "l10#0");
}

#[test]
fn event_ids_of_any_form_stay_unique_whether_indexed_or_made_from_the_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    // An id of the program's own form belongs to its request; one of any other form is indexed.
    let mut free = request(to("s", ExpectedVersion::Any), "a1", 2);
    free.events[1].event_id = "custom-id".into();
    store.append_blocking(free).unwrap();
    let mut reuse = request(to("s", ExpectedVersion::Any), "a2", 1);
    reuse.events[0].event_id = "custom-id".into();
    assert_eq!(store.append_blocking(reuse).unwrap_err(), AppendError::EventIdReused { event_id: "custom-id".into() });
    // Another request giving the id a later request's own would make: indexed, so that later
    // request is refused.
    let mut early = request(to("s", ExpectedVersion::Any), "a3", 1);
    early.events[0].event_id = "a9#0".into();
    store.append_blocking(early).unwrap();
    assert_eq!(
        store.append_blocking(request(to("s", ExpectedVersion::Any), "a9", 1)).unwrap_err(),
        AppendError::EventIdReused { event_id: "a9#0".into() }
    );
    // The id `a1#1` was not given to a1's second event (that is `custom-id`): it is free.
    let mut free_slot = request(to("s", ExpectedVersion::Any), "a4", 1);
    free_slot.events[0].event_id = "a1#1".into();
    store.append_blocking(free_slot).unwrap();
    // Forms that only look alike are other ids: `a1#00` is not `a1#0`, and is refused only once used.
    let mut look_alike = request(to("s", ExpectedVersion::Any), "a5", 2);
    look_alike.events[0].event_id = "a1#00".into();
    look_alike.events[1].event_id = "a1#+0".into();
    store.append_blocking(look_alike).unwrap();
    let mut again = request(to("s", ExpectedVersion::Any), "a6", 1);
    again.events[0].event_id = "a1#0".into();
    assert_eq!(store.append_blocking(again).unwrap_err(), AppendError::EventIdReused { event_id: "a1#0".into() });
    store.close();
    let report = verify(dir.path());
    assert!(report.problem.is_none(), "{:?}", report.problem);
    assert_eq!(report.events_verified, 6);
}

#[test]
fn stores_of_the_earlier_formats_are_upgraded_when_opened_and_keep_their_chains() {
    for format in [1, 2] {
        upgraded_keeps_its_chain(format);
    }
}

fn upgraded_keeps_its_chain(format: u8) {
    let tmp = tempfile::tempdir().unwrap();
    unpack_format(format, tmp.path());
    let dir = tmp.path().join("store");
    let (position, hash) = format_head(format);
    let store = Store::open(&dir).unwrap();
    assert_eq!((store.head().position.0, store.head().hash.to_hex()), (position, hash.clone()));
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!names.iter().any(|n| n == "upgrade" || n == "sled.format-1"), "{names:?}");
    // Every stream reads back whole, and appends go on after the upgraded head.
    let all: Vec<_> = store.read_from(Position(1)).collect::<Result<_, _>>().unwrap();
    assert_eq!(all.len() as u64, position);
    let mut streams = std::collections::BTreeMap::new();
    for e in &all {
        *streams.entry(e.stream.clone()).or_insert(0u64) += 1;
    }
    for (s, n) in &streams {
        let read = store.read_stream(s).unwrap();
        assert_eq!(read.len() as u64, *n);
        assert!(read.iter().enumerate().all(|(i, e)| e.stream_version == i as u64 + 1));
    }
    let first = &all[0];
    let repeat = store.request(&first.correlation_id).unwrap().unwrap();
    assert_eq!(repeat.outcome.first, Position(1));
    let next = store.append_blocking(request(to("after-upgrade", ExpectedVersion::NoStream), "u1", 2)).unwrap();
    assert_eq!(next.first, Position(position + 1));
    store.close();
    let report = verify(&dir);
    assert!(report.problem.is_none(), "{:?}", report.problem);
    assert_eq!(report.events_verified, position + 2);
}

#[test]
fn an_upgrade_cut_short_at_any_step_is_finished_or_started_again_at_the_next_open() {
    let (position, hash) = format_head(1);
    let tmp = tempfile::tempdir().unwrap();
    // A finished copy, made by upgrading a second unpacked fixture.
    let donor = tmp.path().join("donor");
    unpack_format_1(&donor);
    Store::open(&donor.join("store")).unwrap().close();
    let opens_at_the_head = |dir: &Path| {
        let store = Store::open(dir).unwrap();
        assert_eq!((store.head().position.0, store.head().hash.to_hex()), (position, hash.clone()));
        store.close();
        for leftover in ["upgrade", "sled.format-1"] {
            assert!(!dir.join(leftover).exists(), "{leftover} left in {}", dir.display());
        }
        assert!(verify(dir).problem.is_none());
    };
    // 1. Killed while copying: the old store is in force, the copy half made.
    let a = tmp.path().join("a");
    unpack_format_1(&a);
    std::fs::create_dir_all(a.join("store/upgrade/sled")).unwrap();
    std::fs::write(a.join("store/upgrade/sled/db"), b"half a database").unwrap();
    opens_at_the_head(&a.join("store"));
    // 2. Killed between the two renames: no `sled/`, the old one aside, the copy finished.
    let b = tmp.path().join("b");
    unpack_format_1(&b);
    std::fs::rename(b.join("store/sled"), b.join("store/sled.format-1")).unwrap();
    std::fs::create_dir_all(b.join("store/upgrade")).unwrap();
    copy_dir(&donor.join("store/sled"), &b.join("store/upgrade/sled"));
    opens_at_the_head(&b.join("store"));
    // 3. Killed before the old database was removed.
    let c = tmp.path().join("c");
    unpack_format_1(&c);
    std::fs::rename(c.join("store/sled"), c.join("store/sled.format-1")).unwrap();
    copy_dir(&donor.join("store/sled"), &c.join("store/sled"));
    opens_at_the_head(&c.join("store"));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn verify_refuses_a_stream_index_value_cut_short_or_pointing_elsewhere() {
    let value_key = b"Ps3\0\0\0\0\0\0\0\0\0".to_vec();
    let change_index = |dir: &Path, change: &dyn Fn(&mut Vec<u8>)| {
        let db = daicho_store::open_raw_sled(&dir.join("sled")).unwrap();
        let tree = db.open_tree("ledger").unwrap();
        let mut value = tree.get(&value_key).unwrap().unwrap().to_vec();
        change(&mut value);
        tree.insert(value_key.clone(), value).unwrap();
        db.flush().unwrap();
    };
    // Stray bytes after the positions of stream `s3`.
    let dir = filled(60);
    assert!(verify(dir.path()).problem.is_none());
    change_index(dir.path(), &|v| v.extend_from_slice(&[0, 0, 7]));
    assert!(verify(dir.path()).problem.unwrap().reason.contains("cut short"));
    // Its second position pointing at another event.
    let dir = filled(60);
    change_index(dir.path(), &|v| v[15] ^= 1);
    let problem = verify(dir.path()).problem.unwrap();
    assert!(problem.reason.contains("stream index"), "{}", problem.reason);
    // One position short of the stream's version: the writer refuses to append to it (and
    // stops) rather than write a position into the wrong slot.
    let dir = filled(60);
    change_index(dir.path(), &|v| v.truncate(v.len() - 8));
    let store = Store::open(dir.path()).unwrap();
    let head = store.head();
    assert!(store.append_blocking(request(to("s3", ExpectedVersion::Any), "after-damage", 1)).is_err());
    assert!(store.append_blocking(request(to("s4", ExpectedVersion::Any), "after-damage-2", 1)).is_err());
    assert_eq!(store.head(), head);
}

/// The log keeps 16 records per sled value: requests of every size, alone or committed in one
/// group with others, fill values across groups and within one; every read gives each record
/// once and in place, from the memtable as from sled, and from any position inside a value.
#[test]
fn records_read_back_whole_and_in_place_across_the_log_values() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let sizes = [1, 3, 15, 16, 17, 2, 40, 1, 1, 31, 64, 5];
    let mut n = 0;
    for round in 0..3 {
        // Alone (each its own group), then queued together (a few groups of many).
        for (i, size) in sizes.iter().enumerate() {
            let id = format!("alone-{round}-{i}");
            store.append_blocking(request(to(&format!("s{}", i % 4), ExpectedVersion::Any), &id, *size)).unwrap();
            n += size;
        }
        let queued: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| {
                let id = format!("queued-{round}-{i}");
                store.submit_blocking(request(to(&format!("t{}", i % 3), ExpectedVersion::Any), &id, *size)).unwrap()
            })
            .collect();
        for p in queued {
            p.wait().unwrap();
        }
        n += sizes.iter().sum::<usize>();
    }
    let n = n as u64;
    let check = |store: &Store| {
        assert_eq!(store.head().position.0, n);
        let all: Vec<_> = store.read_from(Position(1)).map(Result::unwrap).collect();
        assert_eq!(all.iter().map(|e| e.position.0).collect::<Vec<_>>(), (1..=n).collect::<Vec<_>>());
        for from in [1, 2, 15, 16, 17, 32, 33, n - 1, n] {
            let read: Vec<u64> = store.read_from(Position(from)).map(|e| e.unwrap().position.0).collect();
            assert_eq!(read, (from..=n).collect::<Vec<_>>(), "read_from({from})");
            let replayed: Vec<u64> = store.replay(Position(from)).map(|e| e.unwrap().position.0).collect();
            assert_eq!(replayed, (from..=n).collect::<Vec<_>>(), "replay({from})");
            assert_eq!(store.get(Position(from)).unwrap().unwrap(), all[from as usize - 1]);
        }
        assert!(store.get(Position(n + 1)).unwrap().is_none());
        let back: Vec<u64> = store.read_back().map(|e| e.unwrap().position.0).collect();
        assert_eq!(back, (1..=n).rev().collect::<Vec<_>>());
        for s in ["s0", "s1", "s2", "s3", "t0", "t1", "t2"] {
            let events = store.read_stream(&stream(s)).unwrap();
            assert!(!events.is_empty());
            assert!(events.iter().enumerate().all(|(i, e)| e.stream_version == i as u64 + 1 && e.stream.as_str() == s));
        }
    };
    check(&store);
    store.close();
    let report = verify(dir.path());
    assert!(report.problem.is_none(), "{:?}", report.problem);
    assert_eq!(report.events_verified, n);
    // Reopened: everything from sled, and appends go on filling the last value.
    let store = Store::open(dir.path()).unwrap();
    check(&store);
    let next = store.append_blocking(request(to("s0", ExpectedVersion::Any), "after-reopen", 3)).unwrap();
    assert_eq!(next.first, Position(n + 1));
    assert_eq!(store.read_from(Position(n)).count(), 4);
}

/// Runs `f` on the log's tree through a raw sled handle (the store closed), then flushes.
fn with_raw_tree(dir: &Path, f: impl FnOnce(&sled::Tree)) {
    let db = daicho_store::open_raw_sled(&dir.join("sled")).unwrap();
    f(&db.open_tree("ledger").unwrap());
    db.flush().unwrap();
}

/// The key of the log's `chunk`-th value (16 records each).
fn log_value_key(chunk: u64) -> Vec<u8> {
    let mut key = vec![b'L'];
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

/// Adds a copy of record 17 at the end of the log's `chunk`-th value (made if absent).
fn add_copy_of_17_to_value(tree: &sled::Tree, chunk: u64) {
    let copy = daicho_store::raw::record(tree, 17).unwrap().unwrap();
    let mut value = tree.get(log_value_key(chunk)).unwrap().map(|v| v.to_vec()).unwrap_or_default();
    value.extend_from_slice(&(copy.len() as u32).to_be_bytes());
    value.extend_from_slice(&copy);
    tree.insert(log_value_key(chunk), value).unwrap();
}

/// A log value that holds more records than its share, or one short of it before the log's
/// last value, is damage that verify names.
#[test]
fn verify_refuses_log_values_holding_too_many_or_too_few_records() {
    // Record 17, the first of the second value, copied onto the end of the first.
    let too_many = filled(40);
    with_raw_tree(too_many.path(), |tree| add_copy_of_17_to_value(tree, 0));
    let problem = verify(too_many.path()).problem.unwrap();
    assert_eq!(problem.position, Some(Position(17)));
    assert!(problem.reason.contains("more records"), "{}", problem.reason);
    // Reads stop there too, rather than give position 17 twice.
    let store = Store::open(too_many.path()).unwrap();
    let read: Vec<_> = store.read_from(Position(1)).collect();
    assert_eq!(read.iter().take_while(|r| r.is_ok()).count(), 16);
    assert!(matches!(&read[16], Err(StoreError::Damaged { position: Some(Position(17)), .. })), "{:?}", read[16]);
    drop(store);
    // The records after 30 removed, then the third value put back: only the second is short.
    let too_few = filled(40);
    with_raw_tree(too_few.path(), |tree| {
        let kept = tree.get(log_value_key(2)).unwrap().unwrap();
        daicho_store::raw::truncate_after(tree, 30).unwrap();
        tree.insert(log_value_key(2), kept).unwrap();
    });
    let problem = verify(too_few.path()).problem.unwrap();
    assert_eq!(problem.position, Some(Position(31)));
    assert!(problem.reason.contains("missing"), "{}", problem.reason);
}

/// Opening checks that the head's `L` value ends with the head: a record added after it (in
/// the head's value, or in a value of its own when the head filled its value) is refused.
#[test]
fn opening_refuses_a_record_stored_beyond_the_head_in_any_value() {
    // Onto the end of the head's value (full at 32, half full at 40), then as a value of its own
    // after the full head value of 32.
    for (events, chunk) in [(32, 1), (40, 2), (32, 2)] {
        let dir = filled(events);
        with_raw_tree(dir.path(), |tree| add_copy_of_17_to_value(tree, chunk));
        match Store::open(dir.path()) {
            Err(StoreError::Damaged { reason, .. }) => assert!(reason.contains("beyond"), "{reason}"),
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("a store of {events} events with a record added to value {chunk} opened"),
        }
    }
}
