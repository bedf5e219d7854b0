//! The read models' engine: one redb file (`DATA/readmodel/register.redb`), chosen by the spike
//! of ARCHITECTURE.md ("Read-model engine"): a page cache of a size we set (its memory does not
//! grow with the file), a safe API, a stable file format, snapshot reads that never block the
//! writer.
//!
//! Two tables: `register` (the byte keys of [`crate::keys`] and their values) and `meta` (the
//! keyed-hash secret of the My Number index, kept when the register is emptied). Every write is
//! one transaction; commits during a catch-up are not synced, the last one is (see
//! [`Db::apply`]): after a crash the file opens at the last synced commit, whose checkpoint says
//! where to catch up from.

use std::path::Path;
use std::sync::Arc;

use redb::{Durability, ReadableDatabase, TableDefinition};

use crate::ProjectionError;

const REGISTER: TableDefinition<&[u8], &[u8]> = TableDefinition::new("register");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Default page cache of the read models, in bytes.
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for ProjectionError {
            fn from(e: $t) -> Self {
                ProjectionError::Db(e.to_string())
            }
        }
    )*};
}

from_redb!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// The read models' database; clones share it.
#[derive(Clone)]
pub(crate) struct Db {
    inner: Arc<redb::Database>,
}

/// Keys and values in key order, read from a snapshot.
pub(crate) type Scan = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), ProjectionError>>>;

/// Readers of [`Db::warming`], the scan's own included: I/O-bound, so more of them than cores.
pub(crate) const WARM_READERS: usize = 8;

/// One write: `None` removes the key.
pub(crate) type Write = (Vec<u8>, Option<Vec<u8>>);

impl Db {
    /// Opens (or creates) the file at `path` with a page cache of `cache_bytes`.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<Db, ProjectionError> {
        let db = redb::Builder::new().set_cache_size(cache_bytes).create(path)?;
        Db::init(db)
    }

    /// A database in memory, gone when dropped.
    pub fn temporary() -> Result<Db, ProjectionError> {
        let db =
            redb::Builder::new().set_cache_size(16 << 20).create_with_backend(redb::backends::InMemoryBackend::new())?;
        Db::init(db)
    }

    fn init(db: redb::Database) -> Result<Db, ProjectionError> {
        let tx = db.begin_write()?;
        tx.open_table(REGISTER)?;
        tx.open_table(META)?;
        tx.commit()?;
        Ok(Db { inner: Arc::new(db) })
    }

    /// A consistent view of the register as of the last commit.
    pub fn view(&self) -> Result<View, ProjectionError> {
        let tx = self.inner.begin_read()?;
        Ok(View { table: tx.open_table(REGISTER)? })
    }

    /// One value, as of the last commit.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError> {
        self.view()?.get(key)
    }

    /// A value of the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, ProjectionError> {
        let tx = self.inner.begin_read()?;
        let t = tx.open_table(META)?;
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }

    /// Sets a value of the `meta` table (durably).
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), ProjectionError> {
        let tx = self.inner.begin_write()?;
        tx.open_table(META)?.insert(key, value)?;
        tx.commit()?;
        Ok(())
    }

    /// Applies `writes` as one transaction; `durable` syncs it (and every earlier one) to disk.
    /// A commit that is not durable is atomic all the same: after a crash the file holds the
    /// last durable commit, whole.
    pub fn apply(&self, writes: impl IntoIterator<Item = Write>, durable: bool) -> Result<(), ProjectionError> {
        let mut tx = self.inner.begin_write()?;
        if durable {
            // Stores the allocator's state with the commit, so that opening after a crash does
            // not walk the whole file to rebuild it.
            tx.set_quick_repair(true);
        } else {
            tx.set_durability(Durability::None)?;
        }
        {
            let mut t = tx.open_table(REGISTER)?;
            for (k, v) in writes {
                match v {
                    Some(v) => {
                        t.insert(k.as_slice(), v.as_slice())?;
                    }
                    None => {
                        t.remove(k.as_slice())?;
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Runs `scan`, which reads every key of `prefix` (a one-byte prefix followed by a recipient
    /// number, u64 BE) in order, while [`WARM_READERS`] helper threads read the same range in
    /// as many parts at once, each from its start: on a cold page cache `scan` then finds most
    /// of its pages read, by requests the disk served side by side instead of one after another
    /// (a fee statement at 1M recipients read 315 MB in 77,000 page reads, 10 of its 15 s).
    /// The helpers stop when `scan` returns; what they read is only what `scan` reads.
    pub fn warming<R>(&self, prefix: u8, scan: impl FnOnce() -> R) -> R {
        let last = self.view().ok().and_then(|v| v.last_recipient(prefix));
        let Some(last) = last else { return scan() };
        let stop = std::sync::atomic::AtomicBool::new(false);
        // Stops the helpers when the scan returns or unwinds.
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let part = last / WARM_READERS as u64 + 1;
        std::thread::scope(|s| {
            for i in 1..WARM_READERS as u64 {
                let (stop, db) = (&stop, self.clone());
                let key = |n: u64| {
                    let mut k = vec![prefix];
                    k.extend_from_slice(&n.to_be_bytes());
                    k
                };
                let (from, to) = (key(i.saturating_mul(part)), key((i + 1).saturating_mul(part).saturating_sub(1)));
                // A helper that cannot start, or a failed read in one, only means the scan reads
                // those pages itself.
                let _ = std::thread::Builder::new().name("daicho-warm".into()).spawn_scoped(s, move || {
                    if let Ok(view) = db.view() {
                        let _ = view.for_each_between(&from, &to, |_, _| {
                            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                                return Err(ProjectionError::Corrupt(String::new()));
                            }
                            Ok(())
                        });
                    }
                });
            }
            let _stop = Stop(&stop);
            scan()
        })
    }

    /// Empties the register (not `meta`), durably.
    pub fn clear(&self) -> Result<(), ProjectionError> {
        let mut tx = self.inner.begin_write()?;
        tx.set_quick_repair(true);
        tx.delete_table(REGISTER)?;
        tx.open_table(REGISTER)?;
        tx.commit()?;
        Ok(())
    }
}

/// A read-only snapshot of the register.
pub(crate) struct View {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl View {
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError> {
        Ok(self.table.get(key)?.map(|v| v.value().to_vec()))
    }

    pub fn contains(&self, key: &[u8]) -> Result<bool, ProjectionError> {
        Ok(self.table.get(key)?.is_some())
    }

    /// Every key starting with `prefix` and its value, in key order.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Scan, ProjectionError> {
        let prefix = prefix.to_vec();
        let range = self.table.range::<&[u8]>(prefix.as_slice()..)?;
        Ok(Box::new(
            range
                .map(|item| item.map(|(k, v)| (k.value().to_vec(), v.value().to_vec())).map_err(ProjectionError::from))
                .take_while(move |item| match item {
                    Ok((k, _)) => k.starts_with(&prefix),
                    Err(_) => true,
                }),
        ))
    }

    /// Calls `f` with every key from `from` to `to` (inclusive) and its value, in key order,
    /// borrowed (nothing is copied for keys `f` passes over).
    pub fn for_each_between(
        &self,
        from: &[u8],
        to: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), ProjectionError>,
    ) -> Result<(), ProjectionError> {
        for item in self.table.range::<&[u8]>(from..=to)? {
            let (k, v) = item?;
            f(k.value(), v.value())?;
        }
        Ok(())
    }

    /// The recipient number of the last key of a `prefix` that is followed by one (u64 BE).
    fn last_recipient(&self, prefix: u8) -> Option<u64> {
        let end = [prefix.saturating_add(1)];
        let start = [prefix];
        let (k, _) = self.table.range::<&[u8]>(start.as_slice()..end.as_slice()).ok()?.next_back()?.ok()?;
        let tail: [u8; 8] = k.value().get(1..9)?.try_into().ok()?;
        Some(u64::from_be_bytes(tail))
    }

    /// Every key and value, in key order.
    pub fn iter(&self) -> Result<Scan, ProjectionError> {
        self.scan_prefix(&[])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(prefix: u8, n: u64) -> Vec<u8> {
        let mut k = vec![prefix];
        k.extend_from_slice(&n.to_be_bytes());
        k
    }

    #[test]
    fn a_warmed_scan_reads_what_it_reads_alone_and_the_helpers_end_with_it() {
        let db = Db::temporary().unwrap();
        // Recipients 1..=5000 under `V`, and keys of the prefixes either side.
        let writes = (1..=5000u64)
            .map(|n| (key(b'V', n), Some(n.to_le_bytes().to_vec())))
            .chain([(key(b'U', 9), Some(vec![1])), (key(b'W', 1), Some(vec![2]))]);
        db.apply(writes, true).unwrap();
        let alone: Vec<_> = db.view().unwrap().scan_prefix(b"V").unwrap().map(Result::unwrap).collect();
        let warmed: Vec<_> =
            db.warming(b'V', || db.view().unwrap().scan_prefix(b"V").unwrap().map(Result::unwrap).collect());
        assert_eq!(warmed, alone);
        assert_eq!(warmed.len(), 5000);
        assert_eq!(db.view().unwrap().last_recipient(b'V'), Some(5000));
        // A scan that reads nothing still gives its own result.
        assert_eq!(db.warming(b'V', || 7), 7);
        // No key of the prefix: the scan alone.
        assert_eq!(db.view().unwrap().last_recipient(b'X'), None);
        assert_eq!(db.warming(b'X', || "alone"), "alone");
    }
}
