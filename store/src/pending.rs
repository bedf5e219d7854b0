//! Acknowledged writes sled has not applied yet (the memtable, 未反映の書き込み), and the
//! applier thread that applies them.
//!
//! Applying a group commit to sled costs tens of microseconds of the engine's own work (about as
//! much as the redo log's `fdatasync`), so the writer does not wait for it: once a group's frame
//! is durable it puts the group's writes here, hands them to the applier and answers. Every read
//! of the store looks here first and in sled second ([`Tables`]); an entry leaves only after
//! sled has it, so an acknowledged write is always in one of the two. Reads in that order never
//! miss one: an entry found missing here was either applied to sled before it left (and sled is
//! read after) or not yet acknowledged.
//!
//! Bounded: the writer blocks when [`QUEUE_FRAMES`] groups wait for the applier, so the memtable
//! never holds more than that many groups.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use sled::IVec;

use crate::redo::{Shared, StoreOptions, WritePoint};

/// Groups that may wait for the applier before the writer blocks.
pub(crate) const QUEUE_FRAMES: usize = 256;

/// The applier is woken when this many groups wait, else it looks every [`APPLY_EVERY`]: one
/// wake-up for many groups instead of one per commit, which on two cores leaves the writer the
/// processor while it commits.
const WAKE_AT: usize = 32;
const APPLY_EVERY: Duration = Duration::from_millis(2);

/// A group's writes: the last position of the group, and its key-value pairs in order.
pub(crate) type Group = (u64, Vec<(IVec, IVec)>);

/// The memtable: each key's newest unapplied value and the group that wrote it.
#[derive(Default)]
pub(crate) struct Memtable {
    map: RwLock<BTreeMap<IVec, (u64, IVec)>>,
    /// The last position sled has applied (in memory); everything up to it reads from sled.
    applied: AtomicU64,
}

impl Memtable {
    pub fn new(applied: u64) -> Memtable {
        Memtable { map: RwLock::default(), applied: AtomicU64::new(applied) }
    }

    // A poisoned lock means a thread panicked while holding it; inserts and removals are single
    // map operations that leave the map whole, so it stays usable.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<IVec, (u64, IVec)>> {
        self.map.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<IVec, (u64, IVec)>> {
        self.map.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a durable group's writes (the writer, before it answers).
    pub fn insert(&self, group: &Group) {
        let mut map = self.write();
        for (k, v) in &group.1 {
            map.insert(k.clone(), (group.0, v.clone()));
        }
    }

    /// The last position sled has applied.
    pub fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }
}

/// The store's tables as every reader must see them: the memtable over sled.
#[derive(Clone)]
pub(crate) struct Tables {
    pub tree: sled::Tree,
    pub pending: Arc<Memtable>,
}

impl Tables {
    /// The value of `key`: the memtable's, else sled's.
    pub fn get(&self, key: &[u8]) -> Result<Option<IVec>, sled::Error> {
        if let Some((_, v)) = self.pending.read().get(key) {
            return Ok(Some(v.clone()));
        }
        self.tree.get(key)
    }

    /// Whether any key starts with `prefix` (the memtable's or sled's), reading one key at most.
    pub fn any_with_prefix(&self, prefix: &[u8]) -> Result<bool, sled::Error> {
        let pending = self
            .pending
            .read()
            .range::<[u8], _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .next()
            .is_some_and(|(k, _)| k.starts_with(prefix));
        Ok(pending || self.tree.scan_prefix(prefix).next().transpose()?.is_some())
    }

    /// Every value under `prefix`, in key order: the memtable's read first, then sled's.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(IVec, IVec)>, sled::Error> {
        let mut merged: BTreeMap<IVec, IVec> = self
            .pending
            .read()
            .range::<[u8], _>((std::ops::Bound::Included(prefix), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, (_, v))| (k.clone(), v.clone()))
            .collect();
        for item in self.tree.scan_prefix(prefix) {
            let (k, v) = item?;
            merged.entry(k).or_insert(v);
        }
        Ok(merged.into_iter().collect())
    }
}

/// The queue from the writer to the applier.
#[derive(Default)]
pub(crate) struct Queue {
    state: Mutex<(VecDeque<Group>, bool)>,
    /// Signalled to the applier (enough groups, or closing) and to a writer waiting for room.
    changed: Condvar,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, (VecDeque<Group>, bool)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a group, waiting while the queue is full. Fails once the applier has stopped.
    pub fn send(&self, group: Group) -> Result<(), ()> {
        let mut state = self.lock();
        while state.0.len() >= QUEUE_FRAMES && !state.1 {
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        if state.1 {
            return Err(());
        }
        state.0.push_back(group);
        if state.0.len() >= WAKE_AT {
            self.changed.notify_all();
        }
        Ok(())
    }

    /// No more groups: the applier applies what is queued and ends.
    pub fn close(&self) {
        self.lock().1 = true;
        self.changed.notify_all();
    }

    /// The queued groups (waiting up to [`APPLY_EVERY`] for some), or `None` once closed and
    /// empty.
    fn take(&self) -> Option<Vec<Group>> {
        let mut state = self.lock();
        if state.0.len() < WAKE_AT && !state.1 {
            state = self.changed.wait_timeout(state, APPLY_EVERY).map(|(s, _)| s).unwrap_or_else(|p| p.into_inner().0);
        }
        if state.0.is_empty() && state.1 {
            return None;
        }
        let taken: Vec<Group> = state.0.drain(..).collect();
        self.changed.notify_all();
        Some(taken)
    }
}

/// The applier: applies groups to sled in order, as few sled batches as it can, then lets them
/// leave the memtable and tells the flusher how far sled has got.
pub(crate) struct Applier {
    pub tree: sled::Tree,
    pub pending: Arc<Memtable>,
    pub shared: Arc<Shared>,
    pub options: StoreOptions,
}

impl Applier {
    /// Runs until the writer drops its sender, applying whatever is queued. A sled failure is
    /// recorded for the writer (which then stops); what was acknowledged is in the redo log.
    pub fn run(self, queue: Arc<Queue>) {
        while let Some(taken) = queue.take() {
            if taken.is_empty() {
                continue;
            }
            self.options.at(WritePoint::Applying);
            // One insert at a time, not one sled batch: a batch takes sled's lock exclusively and
            // stops every reader (the writer's checks among them) while it applies. Atomicity is
            // not lost: readers see a group whole in the memtable until sled has all of it, and
            // after a crash sled recovers a prefix of its inserts, head record last in each
            // group, from which the redo log's frames are applied again (inserts are idempotent).
            for (_, writes) in &taken {
                for (k, v) in writes {
                    if let Err(e) = self.tree.insert(k.clone(), v.clone()) {
                        self.shared.fail(format!("apply to sled: {e}"));
                        // Refuse further groups: the writer stops at its next commit.
                        queue.close();
                        self.options.at(WritePoint::ApplierStopped);
                        return;
                    }
                }
            }
            let last = taken.last().map_or(0, |g| g.0);
            self.pending.applied.store(last, Ordering::Release);
            {
                let mut map = self.pending.write();
                for (group, writes) in &taken {
                    for (k, _) in writes {
                        if map.get(k).is_some_and(|(g, _)| g == group) {
                            map.remove(k);
                        }
                    }
                }
            }
            self.shared.applied(last);
        }
    }
}
