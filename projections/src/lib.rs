//! daicho-projections: what the ledger derives from its event log.
//!
//! One projection today, `register`: the folded recipients (snapshots), their search indexes,
//! and the PMH history records with what PMH has of each. It is a fold over envelopes with a
//! checkpoint (the last applied position and its hash) written in the same sled batch as the
//! data it covers, so it is never half-applied; it catches up from the log and can be rebuilt
//! from position 1, giving the same bytes. Queries ([`query`]) read it; PMH batches
//! ([`export`]) are computed from it; as-of views ([`asof`]) read the log itself.
//!
//! The projections database (`DATA/projections/`) is derived data: deleting it loses nothing.
//!
//! Folds and queries only: nothing here writes to the event log (that is `daicho-app`'s
//! `execute`).

pub mod asof;
pub mod certificate;
pub mod changes;
pub mod export;
pub mod fee;
pub mod fee_report;
mod keyed;
mod keys;
pub mod pdf;
pub mod pmh;
pub mod query;
mod register;

use std::collections::HashMap;
use std::path::Path;

use daicho_domain::config::Config;
use daicho_domain::state::Recipient;
use daicho_store::{Hash, Position, Store, StoreError};

pub use register::{Entry, recipient_number};

/// Format of the projection's data; a different stored format triggers a rebuild.
pub const FORMAT: &str = concat!("daicho-register-5/snapshot-", "2");

/// Events per atomic commit during catch-up.
pub const CHUNK_EVENTS: usize = 10_000;

/// Decoded recipients kept between commits; above this the cache is emptied.
pub const CACHE_RECIPIENTS_MAX: usize = 100_000;

/// Why a projection could not be brought up to date.
#[derive(Debug)]
pub enum ProjectionError {
    /// From the store.
    Store(StoreError),
    /// From sled (the projections database).
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

impl From<sled::Error> for ProjectionError {
    fn from(e: sled::Error) -> Self {
        ProjectionError::Db(e.to_string())
    }
}

/// A stored key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Progress of a catch-up: events applied so far, and the total to apply.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// The projections of one ledger.
pub struct Projections {
    db: sled::Db,
    tree: sled::Tree,
    secret: [u8; 32],
    cache: HashMap<u64, Option<Recipient>>,
    config: Option<Config>,
    batch_part: usize,
}

impl Projections {
    /// Opens (or creates) the projections database in `dir`.
    pub fn open(dir: &Path) -> Result<Projections, ProjectionError> {
        let db = daicho_store::open_sled(&sled::Config::new().path(dir).mode(sled::Mode::HighThroughput))?;
        Self::with_db(db)
    }

    /// A projections database in temporary files, deleted when dropped (to regenerate a past
    /// batch without touching the real one).
    pub fn temporary() -> Result<Projections, ProjectionError> {
        Self::with_db(sled::Config::new().temporary(true).open()?)
    }

    fn with_db(db: sled::Db) -> Result<Projections, ProjectionError> {
        let meta = db.open_tree("meta")?;
        let secret = match meta.get(b"my_number_key")? {
            Some(k) if k.len() == 32 => {
                let mut s = [0u8; 32];
                s.copy_from_slice(&k);
                s
            }
            _ => {
                let mut s = [0u8; 32];
                getrandom::fill(&mut s)
                    .map_err(|e| ProjectionError::Db(format!("no randomness for the index key: {e}")))?;
                meta.insert(b"my_number_key", &s)?;
                meta.flush()?;
                s
            }
        };
        let tree = db.open_tree("register")?;
        let mut p = Projections {
            db,
            tree,
            secret,
            cache: HashMap::new(),
            config: None,
            batch_part: register::BATCH_WRITES_MAX,
        };
        if p.tree.get(keys::FORMAT)?.as_deref() != Some(FORMAT.as_bytes()) {
            p.reset()?;
        }
        p.config = p.stored_config()?;
        Ok(p)
    }

    fn stored_config(&self) -> Result<Option<Config>, ProjectionError> {
        match self.tree.get(keys::CONFIG)? {
            None => Ok(None),
            Some(text) => {
                let text = std::str::from_utf8(&text).map_err(|e| ProjectionError::Corrupt(e.to_string()))?;
                Config::from_toml(text).map(Some).map_err(|e| ProjectionError::Corrupt(e.to_string()))
            }
        }
    }

    /// Empties the projection (its data, not the index key) so it starts again from position 1.
    fn reset(&mut self) -> Result<(), ProjectionError> {
        // Dropping the tree is one operation; clearing it removes key by key.
        self.db.drop_tree("register")?;
        self.tree = self.db.open_tree("register")?;
        self.tree.insert(keys::FORMAT, FORMAT.as_bytes())?;
        self.cache.clear();
        self.config = None;
        Ok(())
    }

    /// Applies a PMH batch's effects in parts of at most `writes` writes (default 100,000), each
    /// part its own sled batch, the checkpoint with the last. Small values let tests take the
    /// parted path with small ledgers.
    pub fn set_batch_part(&mut self, writes: usize) {
        self.batch_part = writes.max(1);
    }

    /// The last applied position and its hash.
    pub fn checkpoint(&self) -> Result<(Position, Hash), ProjectionError> {
        match self.tree.get(keys::CHECKPOINT)? {
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
        self.config.as_ref()
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
            self.config = self.stored_config().unwrap_or(None);
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
        let total = to.0 - from.0;
        let mut fold = register::Fold {
            tree: &self.tree,
            store,
            secret: &self.secret,
            overlay: register::Overlay { writes: Default::default() },
            cache: &mut self.cache,
            dirty: Default::default(),
            config: &mut self.config,
            batch_part: self.batch_part,
        };
        let mut pending = 0usize;
        let mut last: Option<(Position, Hash)> = None;
        for item in store.read_from(Position(from.0 + 1)) {
            let e = item?;
            if e.position > to {
                break;
            }
            if e.event_type == daicho_domain::codec::PMH_BATCH_EXPORTED && pending > 0 {
                // A batch scans the tree: everything before it must be there.
                commit(&mut fold, last)?;
                pending = 0;
            }
            fold.apply(&e)?;
            last = Some((e.position, e.hash));
            pending += 1;
            if pending >= CHUNK_EVENTS || e.event_type == daicho_domain::codec::PMH_BATCH_EXPORTED {
                commit(&mut fold, last)?;
                pending = 0;
                progress(e.position.0 - from.0, total);
            }
        }
        if pending > 0 {
            commit(&mut fold, last)?;
        }
        progress(total, total);
        if self.cache.len() > CACHE_RECIPIENTS_MAX {
            self.cache.clear();
        }
        Ok(last.map_or(from, |(p, _)| p))
    }

    /// Throws the projection away and applies the whole log again (up to `limit`).
    pub fn rebuild(
        &mut self,
        store: &Store,
        limit: Option<Position>,
        progress: Progress<'_>,
    ) -> Result<Position, ProjectionError> {
        self.reset()?;
        self.catch_up(store, limit, progress)
    }

    /// Every key and value of the projection, in order (for tests comparing two builds).
    pub fn dump(&self) -> Result<Vec<KeyValue>, ProjectionError> {
        self.tree.iter().map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Into::into)).collect()
    }

    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

/// Writes the pending snapshots and overlay with the checkpoint, as one atomic batch.
fn commit(fold: &mut register::Fold<'_>, last: Option<(Position, Hash)>) -> Result<(), ProjectionError> {
    fold.flush_snapshots()?;
    let mut batch = sled::Batch::default();
    for (k, v) in std::mem::take(&mut fold.overlay.writes) {
        match v {
            Some(v) => batch.insert(k, v),
            None => batch.remove(k),
        }
    }
    if let Some((p, h)) = last {
        let mut v = p.0.to_be_bytes().to_vec();
        v.extend_from_slice(&h.0);
        batch.insert(keys::CHECKPOINT, v);
    }
    fold.tree.apply_batch(batch)?;
    Ok(())
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
