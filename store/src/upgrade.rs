//! The storage-format upgrade (形式の更新): a store of format `daicho-store-1` is copied into
//! the current layout (see [`crate::keys`]) the first time it is opened.
//!
//! The log's records are the same in both formats; only the indexes differ. So the upgrade
//! reads the old database's records in order and writes them, with freshly built indexes, into a
//! new store in `<dir>/upgrade/` through the restore's own code (which checks the chain as it
//! goes), then swaps the databases by renames:
//!
//! 1. `<dir>/upgrade/` is built and synced (the old `sled/` is untouched; the redo log was
//!    emptied into it by the open that found it old);
//! 2. `sled/` is renamed to `sled.format-1`;
//! 3. `upgrade/sled/` is renamed to `sled/`, and the directory synced;
//! 4. `sled.format-1` and `upgrade/` are removed.
//!
//! A crash at any point leaves one of the states [`settle`] recognises at the next open: before
//! step 2, the old store in force and an unfinished copy to discard; after it, a finished copy to
//! move into place or to clean up after. The verified checkpoint stays valid: the chain does not
//! change.

use std::path::Path;

use crate::envelope::{Envelope, Position};
use crate::error::StoreError;
use crate::writer::{head_from_bytes, sync_dir};
use crate::{Head, keys, sled_dir};

const STAGING: &str = "upgrade";
pub(crate) const OLD: &str = "sled.format-1";

/// Whether the database holds a store of format 1.
pub(crate) fn is_format_1(tree: &sled::Tree) -> Result<bool, StoreError> {
    Ok(tree.get(keys::META_FORMAT)?.is_some_and(|f| f.as_ref() == keys::FORMAT_1_NAME))
}

/// Finishes or discards an upgrade that a crash interrupted, before the store is opened.
pub(crate) fn settle(dir: &Path) -> Result<(), StoreError> {
    let staging = dir.join(STAGING);
    let old = dir.join(OLD);
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

/// Copies the format-1 store open in `db`/`tree` (its redo log already applied) into the
/// current format and swaps it into place. The handles are closed on the way.
pub(crate) fn from_format_1(dir: &Path, db: sled::Db, tree: sled::Tree) -> Result<Head, StoreError> {
    let damaged = |position: Option<Position>, reason: &str| StoreError::Damaged { position, reason: reason.into() };
    let head = tree.get(keys::META_HEAD)?.ok_or_else(|| damaged(None, "no head record"))?;
    let head = head_from_bytes(&head).ok_or_else(|| damaged(None, "unreadable head record"))?;
    let staging = dir.join(STAGING);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    let copied = {
        let mut records = tree.range(keys::log(Position(1))..=keys::log(head.position));
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
