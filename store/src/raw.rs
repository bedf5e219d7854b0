//! The log's records as sled holds them, for tools and tests that read or damage them through
//! a raw handle ([`crate::open_raw_sled`]), as someone with write access to the files could:
//! never for a store in use. The layout is [`crate::keys`]'s: [`LOG_CHUNK`] records per `L`
//! value.

use crate::envelope::Position;
use crate::keys::{self, LOG_CHUNK};

/// The records an `L` value holds, in order (as far as it is whole).
pub fn split_value(value: &[u8]) -> Vec<&[u8]> {
    keys::chunk_records(value).map_while(Result::ok).collect()
}

/// The stored record at `position`.
pub fn record(tree: &sled::Tree, position: u64) -> sled::Result<Option<Vec<u8>>> {
    let (key, slot) = keys::log(Position(position));
    Ok(tree.get(key)?.and_then(|v| keys::chunk_record(&v, slot).map(<[u8]>::to_vec)))
}

/// Rewrites the value holding `position` with `change` applied to its records.
fn rewrite(tree: &sled::Tree, position: u64, change: impl FnOnce(&mut Vec<Vec<u8>>, usize)) -> sled::Result<()> {
    let (key, slot) = keys::log(Position(position));
    let mut records: Vec<Vec<u8>> =
        tree.get(key)?.map(|v| split_value(&v).into_iter().map(<[u8]>::to_vec).collect()).unwrap_or_default();
    change(&mut records, slot);
    if records.is_empty() {
        tree.remove(key)?;
        return Ok(());
    }
    let mut value = Vec::new();
    for r in &records {
        keys::push_record(&mut value, r);
    }
    tree.insert(key, value)?;
    Ok(())
}

/// Replaces the record at `position` (which must be stored) with `record`.
pub fn set_record(tree: &sled::Tree, position: u64, record: &[u8]) -> sled::Result<()> {
    rewrite(tree, position, |records, slot| {
        if let Some(r) = records.get_mut(slot) {
            *r = record.to_vec();
        }
    })
}

/// Takes the record at `position` out of its value: the later records of the value move into
/// its place, so the log has a gap there.
pub fn remove_record(tree: &sled::Tree, position: u64) -> sled::Result<()> {
    rewrite(tree, position, |records, slot| {
        if slot < records.len() {
            records.remove(slot);
        }
    })
}

/// Removes every record after `position`, as a lost tail of the file would.
pub fn truncate_after(tree: &sled::Tree, position: u64) -> sled::Result<()> {
    let later = keys::log_chunk_key(position.div_ceil(LOG_CHUNK));
    let doomed: Vec<sled::IVec> =
        tree.range(later..=keys::log_chunk_key(u64::MAX)).keys().collect::<sled::Result<_>>()?;
    for key in doomed {
        tree.remove(key)?;
    }
    if !position.is_multiple_of(LOG_CHUNK) {
        rewrite(tree, position, |records, slot| records.truncate(slot + 1))?;
    }
    Ok(())
}
