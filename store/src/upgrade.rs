//! The storage-format upgrade (形式の更新): a store of format `daicho-store-1` or
//! `daicho-store-2` is copied into the current layout (see [`crate::keys`]) the first time it is
//! opened.
//!
//! The log's records are the same in every format; only their grouping into sled values and
//! the indexes differ. So the upgrade
//! reads the old database's records in order and writes them, with freshly built indexes, into a
//! new store in `<dir>/upgrade/` through the restore's own code (which checks the chain as it
//! goes), then swaps the databases by renames:
//!
//! 1. `<dir>/upgrade/` is built and synced (the old `sled/` is untouched; its redo log was
//!    applied to it and emptied by the open that found it old, and the upgrade refuses to go on
//!    if a segment is left);
//! 2. `sled/` is renamed to `sled.format-1` (the name whatever the old format: see [`OLD`]);
//! 3. `upgrade/sled/` is renamed to `sled/`, and the directory synced;
//! 4. `sled.format-1` and `upgrade/` are removed.
//!
//! All of it runs under an exclusive lock on `<dir>/open.lock` ([`lock`]), since sled's own lock
//! is taken only when a database is opened. A crash at any point leaves one of the states
//! [`settle`] recognises at the next open: before
//! step 2, the old store in force and an unfinished copy to discard; after it, a finished copy to
//! move into place or to clean up after. The verified checkpoint stays valid: the chain does not
//! change.

use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::envelope::{Envelope, Position};
use crate::error::StoreError;
use crate::writer::{head_from_bytes, sync_dir};
use crate::{Head, keys, sled_dir};

const STAGING: &str = "upgrade";
/// Where the old database is put aside, whatever its format: the name the first upgrade gave
/// it, kept so that a release of format 2, rolled back to while an upgrade to format 3 was cut
/// short, still recognises the pieces and finishes the swap (it then refuses the store as of an
/// unknown format) rather than taking the directory for no store and making a new one there.
pub(crate) const OLD: &str = "sled.format-1";

/// Whether `dir` holds a store: its database, or the pieces an interrupted upgrade left.
pub(crate) fn holds_a_store(dir: &Path) -> bool {
    sled_dir(dir).join("db").exists() || dir.join(OLD).exists()
}

/// An exclusive lock on `<dir>/open.lock`, held while [`settle`] and an upgrade run (released
/// when dropped; a second process opening meanwhile waits for it).
pub(crate) fn lock(dir: &Path) -> Result<File, StoreError> {
    let file =
        std::fs::OpenOptions::new().create(true).truncate(false).write(true).mode(0o600).open(dir.join("open.lock"))?;
    file.lock()?;
    Ok(file)
}

/// The head record of a database of an earlier format (the same record as in the current one).
pub(crate) fn head_of(tree: &sled::Tree) -> Result<Head, StoreError> {
    let damaged = |reason: &str| StoreError::Damaged { position: None, reason: reason.into() };
    let head = tree.get(keys::META_HEAD)?.ok_or_else(|| damaged("no head record"))?;
    head_from_bytes(&head).ok_or_else(|| damaged("unreadable head record"))
}

/// Whether the database holds a store of an earlier format (1 or 2), to be upgraded.
pub(crate) fn is_earlier_format(tree: &sled::Tree) -> Result<bool, StoreError> {
    Ok(tree
        .get(keys::META_FORMAT)?
        .is_some_and(|f| f.as_ref() == keys::FORMAT_1_NAME || f.as_ref() == keys::FORMAT_2_NAME))
}

/// Finishes or discards an upgrade that a crash interrupted, before the store is opened.
pub(crate) fn settle(dir: &Path) -> Result<(), StoreError> {
    let staging = dir.join(STAGING);
    let old = dir.join(OLD);
    // Nothing to settle on every ordinary open: no directory fsync then (under heavy writeback
    // one can wait for seconds).
    if !old.exists() && !staging.exists() {
        return Ok(());
    }
    if old.exists() {
        if !sled_dir(dir).exists() {
            let copy = sled_dir(&staging);
            if !copy.exists() {
                return Err(StoreError::Damaged {
                    position: None,
                    reason: format!("an interrupted format upgrade left no database: the old one is in {OLD}/"),
                });
            }
            std::fs::rename(&copy, sled_dir(dir))?;
            sync_dir(dir)?;
        }
        std::fs::remove_dir_all(&old)?;
    }
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    sync_dir(dir)?;
    Ok(())
}

/// Copies the store of an earlier format open in `db`/`tree` (its redo log already applied)
/// into the current format and swaps it into place. The handles are closed on the way.
pub(crate) fn from_earlier_format(dir: &Path, db: sled::Db, tree: sled::Tree) -> Result<Head, StoreError> {
    let damaged = |position: Option<Position>, reason: &str| StoreError::Damaged { position, reason: reason.into() };
    let head = head_of(&tree)?;
    // The redo log was applied to the old database when it was opened, and emptied: a frame
    // left would be applied to the new one, in the old layout.
    if crate::redo::holds_frames(dir)? {
        return Err(damaged(None, "the redo log of an earlier format's store was not applied before its upgrade"));
    }
    let staging = dir.join(STAGING);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    let copied = {
        // Formats 1 and 2: one record per `L` key, under its position.
        let mut records = tree.range(keys::single_log(Position(1))..=keys::single_log(head.position));
        let mut next = || -> Result<Envelope, StoreError> {
            let (_, value) = records.next().ok_or_else(|| damaged(None, "the log ends before its head"))??;
            Envelope::from_record(&value).map_err(|e| damaged(None, &format!("unreadable record: {}", e.0)))
        };
        crate::backup::restore_log(&staging, head.position.0, &mut next, &mut |_| {})?
    };
    if copied.hash != head.hash {
        return Err(damaged(Some(head.position), "the log does not end at its recorded head"));
    }
    drop(tree);
    drop(db);
    std::fs::rename(sled_dir(dir), dir.join(OLD))?;
    std::fs::rename(sled_dir(&staging), sled_dir(dir))?;
    sync_dir(dir)?;
    // sled's background threads may still hold the old files a moment: what is left is removed
    // at the next open.
    if std::fs::remove_dir_all(dir.join(OLD)).is_ok() && std::fs::remove_dir_all(&staging).is_ok() {
        sync_dir(dir)?;
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::envelope::StreamId;
    use crate::request::{AppendOutcome, RequestRecord};
    use crate::writer::head_bytes;
    use crate::{Store, StoreOptions};

    use crate::earlier_formats_fixture::unpack_format_1;

    /// A format-1 process killed with an acknowledged group in its redo log only: the group is
    /// applied to the old database before the copy, and so is in the upgraded store.
    #[test]
    fn a_format_1_store_killed_with_frames_in_its_redo_log_upgrades_with_them() {
        let tmp = tempfile::tempdir().unwrap();
        unpack_format_1(tmp.path());
        let dir = tmp.path().join("store");
        // The group, in format 1's layout, sealed on the fixture's head.
        let head = {
            let db = sled::Config::new().path(sled_dir(&dir)).open().unwrap();
            head_of(&db.open_tree("ledger").unwrap()).unwrap()
        };
        let stream = StreamId::parse("late-stream").unwrap();
        let p = head.position.0 + 1;
        let mut e = Envelope {
            position: Position(p),
            stream: stream.clone(),
            stream_version: 1,
            stream_key: None,
            event_id: "late#0".into(),
            event_type: "late_event".into(),
            schema_version: 1,
            recorded_at_us: head.recorded_at_us + 1,
            effective: chrono::NaiveDate::from_ymd_opt(2026, 11, 2).unwrap(),
            actor: "fixture".into(),
            approver: None,
            correlation_id: "late".into(),
            request_digest: [3; 32],
            payload: b"late".to_vec(),
            prev_hash: head.hash,
            hash: head.hash,
        };
        e.seal(head.hash);
        let at = p.to_be_bytes().to_vec();
        let mut s_key = b"Slate-stream\0".to_vec();
        s_key.extend_from_slice(&1u64.to_be_bytes());
        let outcome = AppendOutcome {
            stream: stream.clone(),
            first: Position(p),
            last: Position(p),
            stream_version: 1,
            already_applied: false,
        };
        let writes = vec![
            (keys::single_log(Position(p)).to_vec(), e.to_record()),
            (s_key, at.clone()),
            (b"Elate#0".to_vec(), at),
            (b"Vlate-stream".to_vec(), 1u64.to_be_bytes().to_vec()),
            (b"Rlate".to_vec(), RequestRecord { digest: [3; 32], outcome }.to_bytes()),
            (
                keys::META_HEAD.to_vec(),
                head_bytes(&Head { position: Position(p), hash: e.hash, recorded_at_us: e.recorded_at_us }),
            ),
        ];
        let mut segment = crate::redo::encode_frame(p, p, &writes);
        segment.resize(segment.len() + 4096, 0);
        std::fs::write(crate::redo::redo_dir(&dir).join(format!("{p:020}.seg")), segment).unwrap();

        let store = Store::open_with(&dir, StoreOptions::default()).unwrap();
        assert_eq!(store.head().position, Position(p));
        assert_eq!(store.head().hash, e.hash);
        let late = store.read_stream(&stream).unwrap();
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].payload, b"late");
        assert!(store.request("late").unwrap().is_some());
        store.close();
        let report = crate::verify::verify_dir(
            &dir,
            crate::verify::VerifyOptions { payload: &mut |_| Ok(()), progress: &mut |_| {}, update_checkpoint: false },
        )
        .unwrap();
        assert!(report.problem.is_none(), "{:?}", report.problem);
        assert_eq!(report.events_verified, p);
    }
}
