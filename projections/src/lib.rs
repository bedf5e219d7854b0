//! daicho-projections: what the ledger derives from its event log.
//!
//! One projection today, `register`: the folded recipients (snapshots), their search indexes,
//! and the PMH history records with what PMH has of each. It is a fold over envelopes with a
//! checkpoint (the last applied position and its hash) written in the same transaction as the
//! data it covers, so it is never half-applied; it catches up from the log and can be rebuilt
//! from position 1, giving the same bytes. Queries ([`query`]) read it; PMH batches
//! ([`export`]) are computed from it; as-of views ([`asof`]) read the log itself.
//!
//! The read-model database (`DATA/readmodel/register.redb`, [`db`]) is derived data: deleting
//! it loses nothing.
//!
//! Folds and queries only: nothing here writes to the event log (that is `daicho-app`'s
//! `execute`).

pub mod asof;
mod bulk;
pub mod certificate;
pub mod changes;
mod db;
pub mod export;
pub mod fee;
pub mod fee_report;
mod keyed;
mod keys;
mod packed;
pub mod pdf;
pub mod pmh;
pub mod query;
mod register;
pub mod render;

use std::collections::HashMap;
use std::path::Path;

use daicho_domain::config::Config;
use daicho_domain::state::Recipient;
use daicho_store::{Hash, Position, Store, StoreError};

pub use db::DEFAULT_CACHE_BYTES;
pub use register::{Entry, Refusal, RefusedRecord, recipient_number};

/// Format of the projection's data; a different stored format triggers a rebuild.
pub const FORMAT: &str = concat!("daicho-register-12/snapshot-", "2");

/// Events per atomic commit during catch-up.
pub const CHUNK_EVENTS: usize = 10_000;

/// Decoded recipients kept between commits; above this the cache is emptied.
pub const CACHE_RECIPIENTS_MAX: usize = 100_000;

/// Why a projection could not be brought up to date.
#[derive(Debug)]
pub enum ProjectionError {
    /// From the store.
    Store(StoreError),
    /// From the read-model database.
    Db(String),
    /// An event could not be applied (the position and why): the log is damaged or newer than
    /// this program.
    Event { position: u64, reason: String },
    /// The projection's own data is unreadable.
    Corrupt(String),
    /// The projection does not belong to this log (or the log was restored older): rebuild.
    Stale(String),
}

impl std::fmt::Display for ProjectionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProjectionError::Store(e) => write!(f, "{e}"),
            ProjectionError::Db(e) => write!(f, "projection database: {e}"),
            ProjectionError::Event { position, reason } => write!(f, "event at position {position}: {reason}"),
            ProjectionError::Corrupt(e) => write!(f, "projection data unreadable: {e}"),
            ProjectionError::Stale(e) => write!(f, "projection out of step with the log ({e}): rebuild it"),
        }
    }
}

impl std::error::Error for ProjectionError {}

impl From<StoreError> for ProjectionError {
    fn from(e: StoreError) -> Self {
        ProjectionError::Store(e)
    }
}

/// A stored key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Progress of a catch-up: events applied so far, and the total to apply.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// The projections of one ledger.
pub struct Projections {
    db: db::Db,
    /// The directory of the file (`None`: in memory) and its page cache.
    dir: Option<std::path::PathBuf>,
    cache_bytes: usize,
    /// See [`Projections::set_spill_bytes`].
    spill_bytes: usize,
    secret: [u8; 32],
    cache: HashMap<u64, Option<Recipient>>,
    /// Shared with the fold, which hands it to each batch it applies (a clone of the whole
    /// configuration per recipient and batch was a tenth of a rebuild).
    config: Option<std::sync::Arc<Config>>,
    batch_part: usize,
}

impl Projections {
    /// The file of the read models in their directory.
    pub const FILE: &'static str = "register.redb";
    /// A rebuild's file until it is swapped in (one left by a crash is removed at open).
    pub const NEW_FILE: &'static str = "register.redb.new";
    /// A rebuild's spilled partitions (removed at open and after the rebuild).
    pub const SPILL_DIR: &'static str = "rebuild-spill";

    /// Opens (or creates) the read models in `dir` (created for the owner only) with a page cache
    /// of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: usize) -> Result<Projections, ProjectionError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| ProjectionError::Db(format!("creating the read-model directory: {e}")))?;
        // What a rebuild killed half-way left.
        let _ = std::fs::remove_file(dir.join(Self::NEW_FILE));
        let _ = std::fs::remove_dir_all(dir.join(Self::SPILL_DIR));
        let file = dir.join(Self::FILE);
        let db = db::Db::open(&file, cache_bytes)?;
        let db = if db.get(keys::FORMAT)?.is_some_and(|f| f != FORMAT.as_bytes()) {
            // Another format: its data is of no use, and a new file is quicker than emptying it.
            drop(db);
            std::fs::remove_file(&file)
                .map_err(|e| ProjectionError::Db(format!("removing read models of another format: {e}")))?;
            db::Db::open(&file, cache_bytes)?
        } else {
            db
        };
        let mut p = Self::with_db(db)?;
        p.dir = Some(dir.to_path_buf());
        p.cache_bytes = cache_bytes;
        Ok(p)
    }

    /// Read models in memory, gone when dropped (to regenerate a past batch without touching the
    /// real ones).
    pub fn temporary() -> Result<Projections, ProjectionError> {
        Self::with_db(db::Db::temporary()?)
    }

    fn with_db(db: db::Db) -> Result<Projections, ProjectionError> {
        let secret = match db.meta("my_number_key")? {
            Some(k) if k.len() == 32 => {
                let mut s = [0u8; 32];
                s.copy_from_slice(&k);
                s
            }
            _ => {
                let mut s = [0u8; 32];
                getrandom::fill(&mut s)
                    .map_err(|e| ProjectionError::Db(format!("no randomness for the index key: {e}")))?;
                db.set_meta("my_number_key", &s)?;
                s
            }
        };
        let mut p = Projections {
            db,
            dir: None,
            cache_bytes: db::DEFAULT_CACHE_BYTES,
            spill_bytes: bulk::SPILL_BYTES,
            secret,
            cache: HashMap::new(),
            config: None,
            batch_part: register::BATCH_WRITES_MAX,
        };
        if p.db.get(keys::FORMAT)?.as_deref() != Some(FORMAT.as_bytes()) {
            p.reset()?;
        }
        p.config = p.stored_config()?.map(std::sync::Arc::new);
        Ok(p)
    }

    fn stored_config(&self) -> Result<Option<Config>, ProjectionError> {
        match self.db.get(keys::CONFIG)? {
            None => Ok(None),
            Some(text) => {
                let text = std::str::from_utf8(&text).map_err(|e| ProjectionError::Corrupt(e.to_string()))?;
                Config::from_toml(text).map(Some).map_err(|e| ProjectionError::Corrupt(e.to_string()))
            }
        }
    }

    /// Empties the projection (its data, not the index key) so it starts again from position 1.
    fn reset(&mut self) -> Result<(), ProjectionError> {
        self.db.clear()?;
        self.db.apply([(keys::FORMAT.to_vec(), Some(FORMAT.as_bytes().to_vec()))], true)?;
        self.cache.clear();
        self.config = None;
        Ok(())
    }

    /// Applies a PMH batch's effects in parts of at most `writes` writes (default 100,000), each
    /// part its own transaction, the checkpoint with the last. Small values let tests take the
    /// parted path with small ledgers.
    pub fn set_batch_part(&mut self, writes: usize) {
        self.batch_part = writes.max(1);
    }

    /// Spills a rebuild's partitions to files above `bytes` of events held (default 128 MiB).
    /// Small values let tests take the spilling path with small ledgers.
    pub fn set_spill_bytes(&mut self, bytes: usize) {
        self.spill_bytes = bytes;
    }

    /// The last applied position and its hash.
    pub fn checkpoint(&self) -> Result<(Position, Hash), ProjectionError> {
        match self.db.get(keys::CHECKPOINT)? {
            None => Ok((Position(0), Hash::default())),
            Some(v) => {
                let p = keys::u64_at(&v, 0).ok_or_else(|| ProjectionError::Corrupt("checkpoint".into()))?;
                let mut h = Hash::default();
                h.0.copy_from_slice(v.get(8..40).ok_or_else(|| ProjectionError::Corrupt("checkpoint".into()))?);
                Ok((Position(p), h))
            }
        }
    }

    /// The configuration in force at the checkpoint.
    pub fn config(&self) -> Option<&Config> {
        self.config.as_deref()
    }

    /// Applies every event after the checkpoint up to `limit` (default: the store's head).
    /// Refuses with [`ProjectionError::Stale`] when the checkpoint does not match the log.
    pub fn catch_up(
        &mut self,
        store: &Store,
        limit: Option<Position>,
        progress: Progress<'_>,
    ) -> Result<Position, ProjectionError> {
        let result = self.catch_up_inner(store, limit, progress);
        if result.is_err() {
            // The cache may be ahead of what was committed.
            self.cache.clear();
            self.config = self.stored_config().unwrap_or(None).map(std::sync::Arc::new);
        }
        result
    }

    fn catch_up_inner(
        &mut self,
        store: &Store,
        limit: Option<Position>,
        progress: Progress<'_>,
    ) -> Result<Position, ProjectionError> {
        let (from, hash) = self.checkpoint()?;
        let head = store.head().position;
        let to = limit.map_or(head, |l| l.min(head));
        if from.0 > 0 {
            match store.get(from)? {
                Some(e) if e.hash == hash => {}
                Some(_) => return Err(ProjectionError::Stale(format!("position {from} differs"))),
                None => return Err(ProjectionError::Stale(format!("the log ends before position {from}"))),
            }
        }
        if from >= to {
            return Ok(from);
        }
        if from.0 == 0 {
            return self.rebuild(store, Some(to), progress);
        }
        let total = to.0 - from.0;
        let mut fold = register::Fold::new(
            Some(&self.db),
            store,
            &self.secret,
            &mut self.cache,
            &mut self.config,
            self.batch_part,
        );
        let mut pending = 0usize;
        let mut last: Option<(Position, Hash)> = None;
        for item in store.read_from(Position(from.0 + 1)) {
            let e = item?;
            if e.position > to {
                break;
            }
            // A batch and a configuration scan the committed register: everything before them
            // must be there, and they are committed alone.
            let alone = matches!(
                e.event_type.as_str(),
                daicho_domain::codec::PMH_BATCH_EXPORTED | daicho_domain::codec::CONFIGURATION_SET
            );
            if alone && pending > 0 {
                commit(&mut fold, last, false)?;
                pending = 0;
            }
            fold.apply(&e)?;
            last = Some((e.position, e.hash));
            pending += 1;
            if pending >= CHUNK_EVENTS || alone {
                commit(&mut fold, last, false)?;
                pending = 0;
                progress(e.position.0 - from.0, total);
            }
        }
        // The last commit is synced, and with it every earlier one.
        commit(&mut fold, last, true)?;
        progress(total, total);
        if self.cache.len() > CACHE_RECIPIENTS_MAX {
            self.cache.clear();
        }
        Ok(last.map_or(from, |(p, _)| p))
    }

    /// Throws the projection away and builds it again from the whole log (up to `limit`), as
    /// one bulk job ([`bulk`]) into a fresh file that replaces the current one only when it is
    /// complete and synced: a crash before leaves the current one in force.
    pub fn rebuild(
        &mut self,
        store: &Store,
        limit: Option<Position>,
        progress: Progress<'_>,
    ) -> Result<Position, ProjectionError> {
        let head = store.head().position;
        let to = limit.map_or(head, |l| l.min(head));
        let fresh = |db: &db::Db| -> Result<(), ProjectionError> {
            db.set_meta("my_number_key", &self.secret)?;
            db.apply([(keys::FORMAT.to_vec(), Some(FORMAT.as_bytes().to_vec()))], false)
        };
        let reached = match self.dir.clone() {
            None => {
                let db = db::Db::temporary()?;
                fresh(&db)?;
                let reached = bulk::rebuild(&db, store, &self.secret, to, (None, self.spill_bytes), progress)?;
                self.db = db;
                reached
            }
            Some(dir) => {
                let io =
                    |what: &'static str| move |e: std::io::Error| ProjectionError::Db(format!("rebuild: {what}: {e}"));
                let new = dir.join(Self::NEW_FILE);
                let spill = dir.join(Self::SPILL_DIR);
                let _ = std::fs::remove_file(&new);
                let _ = std::fs::remove_dir_all(&spill);
                {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new().mode(0o700).create(&spill).map_err(io("spill directory"))?;
                }
                let db = db::Db::open(&new, self.cache_bytes)?;
                fresh(&db)?;
                let built = bulk::rebuild(&db, store, &self.secret, to, (Some(&spill), self.spill_bytes), progress);
                let _ = std::fs::remove_dir_all(&spill);
                let reached = built?;
                drop(db);
                std::fs::rename(&new, dir.join(Self::FILE)).map_err(io("swapping the new file in"))?;
                std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(io("syncing the directory"))?;
                self.db = db::Db::open(&dir.join(Self::FILE), self.cache_bytes)?;
                reached
            }
        };
        self.cache.clear();
        self.config = self.stored_config()?.map(std::sync::Arc::new);
        Ok(reached)
    }

    /// Every key and value of the projection, in order (for tests comparing two builds).
    pub fn dump(&self) -> Result<Vec<KeyValue>, ProjectionError> {
        self.db.view()?.iter()?.collect()
    }

    pub(crate) fn db(&self) -> &db::Db {
        &self.db
    }

    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

/// Writes the pending snapshots and overlay with the checkpoint, as one transaction (synced
/// when `durable`).
fn commit(fold: &mut register::Fold<'_>, last: Option<(Position, Hash)>, durable: bool) -> Result<(), ProjectionError> {
    fold.flush()?;
    let mut writes = std::mem::take(&mut fold.overlay.writes);
    if let Some((p, h)) = last {
        let mut v = p.0.to_be_bytes().to_vec();
        v.extend_from_slice(&h.0);
        writes.insert(keys::CHECKPOINT.to_vec(), Some(v));
    }
    fold.db.map_or(Ok(()), |db| db.apply(writes, durable))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stored_format_names_the_snapshot_format_it_holds() {
        // A snapshot of another format would fail to decode after an upgrade; naming it in
        // FORMAT turns that into a rebuild.
        let snapshot = format!("/snapshot-{}", daicho_domain::codec::snapshot::SNAPSHOT_FORMAT);
        assert!(super::FORMAT.ends_with(&snapshot), "{} against {snapshot}", super::FORMAT);
    }
}
