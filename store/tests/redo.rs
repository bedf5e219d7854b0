//! The redo log (再実行ログ): an acknowledged append survives a crash that sled's own files do
//! not, a torn last frame is dropped, any other damage to the log refuses the open, and a
//! background thread that fails stops the writer.
//!
//! A crash image is a copy of the store's directory taken while the writer is held at a point of
//! the write path (through [`StoreOptions::probe`]): what the disk holds if the machine stopped
//! there, with sled's unflushed writes lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use chrono::NaiveDate;
use daicho_store::verify::{VerifyOptions, verify_dir};
use daicho_store::{
    AppendError, AppendRequest, ExpectedVersion, NewEvent, Position, Store, StoreError, StoreOptions, StreamId, Target,
    WritePoint,
};

fn request(i: usize) -> AppendRequest {
    let id = format!("r{i}");
    AppendRequest {
        target: Target::Stream {
            stream: StreamId::parse(&format!("s{}", i % 3)).unwrap(),
            expected: ExpectedVersion::Any,
        },
        request_id: id.clone(),
        request_digest: [7; 32],
        actor: "kubo".into(),
        approver: None,
        expected_head: None,
        events: vec![NewEvent {
            event_id: format!("{id}#0"),
            event_type: "test_event".into(),
            schema_version: 1,
            effective: NaiveDate::from_ymd_opt(2026, 4, 1).unwrap(),
            payload: vec![b'x'; 200],
        }],
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else if path.is_file() {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Appends `acked` requests (each acknowledged), then starts one more and holds the writer once
/// its frame is written, not synced; returns a copy of the directory taken there. sled is never
/// flushed (an hour's interval), so the copy's sled holds none of the appends.
fn crash_image(acked: usize, segment_bytes: u64) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let hold = Arc::new(AtomicBool::new(false));
    let (held_tx, held_rx) = mpsc::channel();
    let held_tx = std::sync::Mutex::new(held_tx);
    let options = StoreOptions {
        redo_segment_bytes: segment_bytes,
        flush_interval: Duration::from_secs(3600),
        probe: Some(Arc::new({
            let hold = hold.clone();
            move |point| {
                if point == WritePoint::FrameWritten && hold.load(Ordering::SeqCst) {
                    let _ = held_tx.lock().unwrap().send(());
                    loop {
                        std::thread::park();
                    }
                }
            }
        })),
        ..StoreOptions::default()
    };
    let store = Store::create_with(&dir, options).unwrap();
    for i in 0..acked {
        store.append_blocking(request(i)).unwrap();
    }
    hold.store(true, Ordering::SeqCst);
    let _unacknowledged = store.submit_blocking(request(acked)).unwrap();
    held_rx.recv().unwrap();
    let image = tmp.path().join("image");
    copy_dir(&dir, &image);
    // The held store's threads stay parked until the test process ends.
    std::mem::forget(store);
    std::mem::forget(_unacknowledged);
    (tmp, image)
}

fn raw_sled_head(dir: &Path) -> u64 {
    let db = daicho_store::open_raw_sled(&dir.join("sled")).unwrap();
    let head = db.open_tree("ledger").unwrap().get(b"Mhead").unwrap().unwrap();
    u64::from_be_bytes(head[..8].try_into().unwrap())
}

/// The segments of an image, by name, and each one's frames as (offset, length with header).
fn segments(dir: &Path) -> Vec<(PathBuf, Vec<(usize, usize)>)> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.join("redo"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            let mut frames = Vec::new();
            let mut at = 0;
            while at + 8 <= bytes.len() {
                let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
                if len == 0 {
                    break;
                }
                frames.push((at, 8 + len));
                at += 8 + len;
            }
            (path, frames)
        })
        .collect()
}

/// Appends until the store refuses one (at most `limit`): how many were acknowledged, and the
/// refusal.
fn append_until_refused(store: &Store, limit: usize) -> (usize, Option<AppendError>) {
    for i in 0..limit {
        if let Err(e) = store.append_blocking(request(i)) {
            return (i, Some(e));
        }
    }
    (limit, None)
}

fn verifies(dir: &Path) -> bool {
    let options = VerifyOptions { payload: &mut |_| Ok(()), progress: &mut |_| {}, update_checkpoint: false };
    verify_dir(dir, options).unwrap().problem.is_none()
}

fn opened_head(dir: &Path) -> u64 {
    Store::open(dir).unwrap().head().position.0
}

#[test]
fn acknowledged_appends_are_in_the_redo_log_when_sled_has_none_of_them() {
    let (_tmp, image) = crash_image(20, 16 << 20);
    assert_eq!(raw_sled_head(&image), 0, "sled was never flushed: the appends are only in the redo log");
    let store = Store::open(&image).unwrap();
    // The held, unacknowledged append's frame was whole when the image was taken.
    let head = store.head().position.0;
    assert!((20..=21).contains(&head), "head {head}");
    for p in 1..=20u64 {
        assert_eq!(store.get(Position(p)).unwrap().unwrap().event_id, format!("r{}#0", p - 1));
    }
    drop(store);
    assert!(verifies(&image));
    // Recovery made sled durable and emptied the redo log.
    assert_eq!(raw_sled_head(&image), head);
    assert!(segments(&image).is_empty());
}

#[test]
fn a_torn_last_frame_is_dropped() {
    let (_tmp, image) = crash_image(20, 16 << 20);
    let segs = segments(&image);
    let (path, frames) = segs.last().unwrap();
    let (at, len) = *frames.last().unwrap();
    // The held frame's second half never reached the disk.
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at + len / 2..at + len].fill(0);
    std::fs::write(path, &bytes).unwrap();
    assert_eq!(opened_head(&image), 20);
    assert!(verifies(&image));
}

#[test]
fn a_changed_frame_before_the_last_refuses_the_open() {
    let (_tmp, image) = crash_image(20, 16 << 20);
    let segs = segments(&image);
    let (path, frames) = &segs[0];
    let (at, len) = frames[3];
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at + len - 10] ^= 0x20;
    std::fs::write(path, &bytes).unwrap();
    match Store::open(&image) {
        Err(StoreError::Damaged { reason, .. }) => assert!(reason.contains("redo segment"), "{reason}"),
        other => panic!("expected damage, got {:?}", other.map(|s| s.head())),
    }
}

#[test]
fn a_missing_segment_refuses_the_open() {
    // Segments of 4 KiB hold a few frames each: twenty appends fill several.
    for which in ["first", "middle"] {
        let (_tmp, image) = crash_image(20, 4096);
        let segs = segments(&image);
        assert!(segs.len() >= 3, "{} segments", segs.len());
        let gone = if which == "first" { &segs[0].0 } else { &segs[1].0 };
        std::fs::remove_file(gone).unwrap();
        match Store::open(&image) {
            Err(StoreError::Damaged { reason, .. }) => {
                assert!(reason.contains("redo log"), "{which}: {reason}")
            }
            other => panic!("{which}: expected damage, got {:?}", other.map(|s| s.head())),
        }
    }
}

#[test]
fn many_small_segments_recover_every_acknowledged_append() {
    let (_tmp, image) = crash_image(60, 4096);
    assert!(segments(&image).len() >= 5);
    assert!(opened_head(&image) >= 60);
    assert!(verifies(&image));
}

#[test]
fn a_failing_flusher_stops_the_writer_and_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let options = StoreOptions {
        flush_interval: Duration::from_millis(1),
        probe: Some(Arc::new(|point| {
            if point == WritePoint::SledFlushed {
                panic!("injected: the flusher fails after sled's flush");
            }
        })),
        ..StoreOptions::default()
    };
    let store = Store::create_with(&dir, options).unwrap();
    let (acked, refusal) = append_until_refused(&store, 100_000);
    let refusal = refusal.expect("the writer stops once the flusher failed");
    assert!(matches!(refusal, AppendError::Storage(ref e) if e.contains("flusher")), "{refusal:?}");
    // No retry: every later append is refused too.
    assert!(store.append_blocking(request(acked + 1)).is_err());
    drop(store);
    assert_eq!(opened_head(&dir), acked as u64);
    assert!(verifies(&dir));
}

/// Where the applier-failure test's threads are: the writer's second frame after arming is
/// synced, and the applier has stopped.
#[derive(Default)]
struct Gate {
    state: std::sync::Mutex<(bool, bool)>,
    changed: std::sync::Condvar,
}

impl Gate {
    fn set(&self, f: impl FnOnce(&mut (bool, bool))) {
        f(&mut self.state.lock().unwrap());
        self.changed.notify_all();
    }

    fn wait(&self, until: impl Fn(&(bool, bool)) -> bool) {
        let mut state = self.state.lock().unwrap();
        while !until(&state) {
            state = self.changed.wait(state).unwrap();
        }
    }
}

#[test]
fn an_append_synced_as_the_applier_fails_is_acknowledged_and_kept() {
    // The writer checks for a background failure, writes and syncs its frame, then queues the
    // group for the applier. Here the applier fails between the check and the queueing: the
    // group is durable, so it is acknowledged, the writer refuses what follows, and the redo
    // log keeps the group for the next open (sled never got it).
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let armed = Arc::new(AtomicBool::new(false));
    let gate = Arc::new(Gate::default());
    let synced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let applying = Arc::new(AtomicBool::new(false));
    let options = StoreOptions {
        flush_interval: Duration::from_millis(1),
        probe: Some(Arc::new({
            let (armed, gate) = (armed.clone(), gate.clone());
            move |point| {
                if !armed.load(Ordering::SeqCst) {
                    return;
                }
                match point {
                    WritePoint::FrameSynced if synced.fetch_add(1, Ordering::SeqCst) == 1 => {
                        gate.set(|s| s.0 = true);
                        gate.wait(|s| s.1);
                    }
                    WritePoint::Applying if !applying.swap(true, Ordering::SeqCst) => {
                        gate.wait(|s| s.0);
                        panic!("injected: the applier fails");
                    }
                    WritePoint::ApplierStopped => gate.set(|s| s.1 = true),
                    _ => {}
                }
            }
        })),
        ..StoreOptions::default()
    };
    let store = Store::create_with(&dir, options).unwrap();
    for i in 0..10 {
        store.append_blocking(request(i)).unwrap();
    }
    armed.store(true, Ordering::SeqCst);
    store.append_blocking(request(10)).unwrap();
    let raced = store.append_blocking(request(11));
    assert!(raced.is_ok(), "a synced frame is committed: {raced:?}");
    let refusal = store.append_blocking(request(12)).unwrap_err();
    assert!(matches!(refusal, AppendError::Storage(ref e) if e.contains("applier")), "{refusal:?}");
    drop(store);
    assert_eq!(opened_head(&dir), 12, "every acknowledged append is there after the open");
    assert!(verifies(&dir));
}

#[test]
fn a_panicking_writer_ends_the_background_threads_and_keeps_its_synced_frame() {
    // A bug that panics the writer thread after its fifth frame is synced: the store stops,
    // its applier and flusher end (or sled would stay locked by this process), and the frame,
    // durable but never answered, is recovered at the next open.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let synced = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let options = StoreOptions {
        flush_interval: Duration::from_millis(1),
        probe: Some(Arc::new(move |point| {
            if point == WritePoint::FrameSynced && synced.fetch_add(1, Ordering::SeqCst) == 4 {
                panic!("injected: the writer fails");
            }
        })),
        ..StoreOptions::default()
    };
    let store = Store::create_with(&dir, options).unwrap();
    for i in 0..4 {
        store.append_blocking(request(i)).unwrap();
    }
    assert_eq!(store.append_blocking(request(4)).unwrap_err(), AppendError::Stopped);
    assert_eq!(store.append_blocking(request(5)).unwrap_err(), AppendError::Stopped);
    drop(store);
    assert_eq!(opened_head(&dir), 5);
    assert!(verifies(&dir));
}

/// A tmpfs of a few MiB, unmounted when dropped: a disk that really fills up.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        // Mounting needs root, as the test scripts run.
        let options = format!("size={size},mode=0700");
        run(
            "mount",
            &["-t".as_ref(), "tmpfs".as_ref(), "-o".as_ref(), options.as_ref(), "tmpfs".as_ref(), at.as_os_str()],
        );
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_stops_the_writer_and_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = SmallDisk::mount(&tmp.path().join("disk"), "3m");
    let dir = disk.0.join("store");
    let options = StoreOptions {
        redo_segment_bytes: 64 << 10,
        flush_interval: Duration::from_millis(5),
        probe: None,
        sled_segment_bytes: 512 << 10,
    };
    let store = Store::create_with(&dir, options).unwrap();
    let (acked, refusal) = append_until_refused(&store, 200_000);
    let refusal = refusal.expect("a 3 MiB disk fills up");
    assert!(matches!(refusal, AppendError::Storage(_)), "{refusal:?}");
    assert!(acked > 100, "only {acked} appends before the disk was full");
    println!("full disk after {acked} appends: {refusal}");
    assert!(store.append_blocking(request(acked + 1)).is_err(), "no append after a failed write");
    drop(store);
    // The same files on a disk with room: every acknowledged append is there, nothing after.
    let moved = tmp.path().join("moved");
    copy_dir(&dir, &moved);
    drop(disk);
    assert_eq!(opened_head(&moved), acked as u64);
    assert!(verifies(&moved));
}

/// Runs a command of the test's set-up, which must succeed; its standard output.
fn run(program: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = std::process::Command::new(program).args(args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// An ext4 file system on a loop device over `image`, mounted at `at`; unmounted
/// and detached when dropped.
struct LoopFs {
    at: PathBuf,
    device: String,
}

impl LoopFs {
    fn mount(image: &Path, at: &Path) -> LoopFs {
        std::fs::create_dir_all(at).unwrap();
        let device = run("losetup", &["--find".as_ref(), "--show".as_ref(), image.as_os_str()]);
        let fs = LoopFs { at: at.to_path_buf(), device };
        run("mount", &[fs.device.as_ref(), at.as_os_str()]);
        fs
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.at).status();
        let _ = std::process::Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

#[test]
fn a_failing_fsync_stops_the_writer_for_good_and_loses_nothing_acknowledged() {
    // A device that fails its writes: an ext4 file system of 64 MiB whose loop device writes
    // into a file on a tmpfs of 32 MiB. After 500 appends the test fills the tmpfs: the file
    // system still believes it has room, `write` still succeeds into the page cache, but the
    // loop device fails the writes the kernel sends it, so `fsync` returns an error. Frames go
    // into segments whose blocks the device already holds (zero-filled and synced), so the first
    // sync to fail is one of the next segment switch (its zeros or its name in the directory,
    // whose journal commit the device cannot store). sled is never flushed (an hour's interval)
    // and writes nothing in so few appends.
    let tmp = tempfile::tempdir().unwrap();
    let backing = SmallDisk::mount(&tmp.path().join("backing"), "32m");
    let image = backing.0.join("disk.img");
    run("truncate", &["-s".as_ref(), "64M".as_ref(), image.as_os_str()]);
    // With its journal and inode tables written out now, so that the device holds their blocks
    // before it starts failing (ext4 without a journal can report a sync as done while the
    // inode of a new file never reached the device: an earlier version of this test lost
    // acknowledged appends that way, to the file system, not to the store).
    let init = "lazy_itable_init=0,lazy_journal_init=0";
    run("mkfs.ext4", &["-q".as_ref(), "-F".as_ref(), "-E".as_ref(), init.as_ref(), image.as_os_str()]);
    let acked = {
        let fs = LoopFs::mount(&image, &tmp.path().join("mnt"));
        let dir = fs.at.join("store");
        let options = StoreOptions {
            redo_segment_bytes: 64 << 10,
            flush_interval: Duration::from_secs(3600),
            probe: None,
            sled_segment_bytes: 512 << 10,
        };
        let store = Store::create_with(&dir, options).unwrap();
        for i in 0..500 {
            store.append_blocking(request(i)).unwrap();
        }
        // The device's backing store fills up.
        {
            use std::io::Write;
            let mut filler = std::fs::File::create(backing.0.join("filler")).unwrap();
            let block = vec![0xa5u8; 1 << 20];
            while filler.write_all(&block).is_ok() {}
        }
        let mut acked = 500;
        let refusal = loop {
            match store.append_blocking(request(acked)) {
                Ok(_) => acked += 1,
                Err(e) => break e,
            }
            assert!(acked < 100_000, "the device never failed");
        };
        assert!(
            matches!(refusal, AppendError::Storage(ref e) if e.contains("redo log") && e.contains("error")),
            "{refusal:?}"
        );
        println!("device failed after {acked} appends: {refusal}");
        // No retry after a failed sync: the writer refuses everything from now on, without
        // touching the disk again.
        for i in 1..4 {
            assert_eq!(store.append_blocking(request(acked + i)).unwrap_err(), AppendError::Stopped);
        }
        drop(store);
        acked
    };
    // What the device holds: the backing file, copied to a disk with room, checked (a file
    // system that lost writes needs it), mounted.
    let copy = tmp.path().join("copy.img");
    std::fs::copy(&image, &copy).unwrap();
    drop(backing);
    let fsck = std::process::Command::new("e2fsck").args(["-f", "-y"]).arg(&copy).output().unwrap();
    assert!(fsck.status.code().is_some_and(|c| c <= 1), "e2fsck: {}", String::from_utf8_lossy(&fsck.stdout));
    let fs = LoopFs::mount(&copy, &tmp.path().join("copy"));
    let head = opened_head(&fs.at.join("store"));
    // Every acknowledged append is there; the one whose sync failed may be too (its outcome
    // is unknown until this open), nothing after it.
    assert!(head == acked as u64 || head == acked as u64 + 1, "head {head}, acknowledged {acked}");
    assert!(verifies(&fs.at.join("store")));
}
