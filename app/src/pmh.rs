//! PMH batch files (PMH 連携ファイル): what is written beside a batch's data files, and making a
//! recorded batch's files again from the log. The CLI (`daicho pmh export`) and the web UI
//! (`/pmh`) both write through here, so a batch's directory looks the same whoever made it.
//!
//! A batch's data files (JSON, CSV) are streamed while the batch is computed
//! (`Ledger::record_pmh_batch_into`); its companion files are `manifest.json` (the batches,
//! their files' hashes, the chain head they were computed at) and, when records were held back,
//! `rejects.csv`. Companions are made from the batches and the chain at a fixed position: a
//! batch's own event for one batch (the web UI, and a regeneration by either surface), the head
//! after the last batch for the CLI's export of several at once. A single-program export and its
//! regeneration therefore give the same `manifest.json`.

use std::path::Path;

use daicho_projections::export::{Batch, manifest, rejects_csv};
use daicho_store::Position;

use crate::files;
use crate::ledger::{Ledger, LedgerError, RecordedBatch};

/// The companion files of a batch that held back `held_back` records.
pub fn companion_names(held_back: u32) -> &'static [&'static str] {
    if held_back > 0 { &["manifest.json", "rejects.csv"] } else { &["manifest.json"] }
}

/// The companion files of `batches` (numbers: `None` when nothing was sent), anchored at the
/// chain's event at `position`.
pub fn companion_files(
    ledger: &Ledger,
    batches: &[(Option<u64>, &Batch)],
    position: u64,
) -> Result<Vec<(String, Vec<u8>)>, LedgerError> {
    let hash = ledger
        .store()
        .get(Position(position))?
        .ok_or_else(|| LedgerError::Other(format!("no event at position {position}")))?
        .hash
        .to_hex();
    // The configuration in force at that position, as the batches were computed under it (a
    // regeneration must not describe an old batch by today's configuration).
    let config = crate::billing::config_at(ledger.store(), position).map_err(|e| LedgerError::Other(e.to_string()))?;
    let mut out = vec![("manifest.json".to_owned(), manifest(&config, batches, position, &hash))];
    let held: Vec<&Batch> = batches.iter().map(|(_, b)| *b).filter(|b| !b.held_back.is_empty()).collect();
    if !held.is_empty() {
        out.push(("rejects.csv".to_owned(), rejects_csv(&held)));
    }
    Ok(out)
}

/// Writes the companion files of `batches` into `dir` (replacing any there) and makes them
/// durable.
pub fn write_companions(
    ledger: &Ledger,
    dir: &Path,
    batches: &[(Option<u64>, &Batch)],
    position: u64,
) -> Result<(), LedgerError> {
    for (name, bytes) in companion_files(ledger, batches, position)? {
        files::replace(dir, &name, &bytes).map_err(LedgerError::Io)?;
    }
    Ok(())
}

/// A recorded batch made again from the log.
pub struct Regenerated {
    /// The batch as recorded.
    pub recorded: RecordedBatch,
    /// The batch as made now.
    pub batch: Batch,
    /// Whether every data file hashes as recorded.
    pub matches: bool,
}

/// Makes batch `number`'s data files again in `dir`, from the log alone, and says whether they
/// hash as recorded; only then are its companions written, anchored at the batch's own event
/// (as when it was made), so they come out as they did then.
pub fn regenerate_into(ledger: &Ledger, number: u64, dir: &Path) -> Result<Regenerated, LedgerError> {
    std::fs::create_dir_all(dir).map_err(|e| LedgerError::Io(format!("{}: {e}", dir.display())))?;
    let (recorded, batch) = ledger.regenerate_pmh_batch_into(number, dir)?;
    let matches = batch.files.len() == recorded.batch.files.len()
        && batch.files.iter().zip(&recorded.batch.files).all(|(f, (name, h))| f.name == *name && f.sha256 == *h);
    if matches {
        write_companions(ledger, dir, &[(Some(number), &batch)], recorded.position)?;
    }
    Ok(Regenerated { recorded, batch, matches })
}

/// Where the batches a server makes are kept: `DATA/exports/batch-<n>/`.
pub fn batch_dir(exports: &Path, number: u64) -> std::path::PathBuf {
    exports.join(format!("batch-{number}"))
}

/// Makes one program's batch at the head into `exports/batch-<n>/`: its data files streamed
/// into a fresh directory, renamed to the batch's once it is recorded, with its companions
/// anchored at the batch's own event (an abandoned directory is only ever a leftover, never a
/// batch). `None`: nothing to send, nothing recorded.
pub fn generate(
    app: &crate::App,
    actor: &crate::Actor,
    key: &daicho_domain::config::ProgramKey,
    mode: Option<daicho_domain::config::PmhMode>,
    today: chrono::NaiveDate,
    exports: &Path,
) -> Result<Option<(u64, Batch)>, crate::Failure> {
    use crate::{Failure, Outcome, Request};
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| Failure::Infrastructure(e.to_string()))?;
    let tmp = exports.join(format!(".new-{}", files::hex(&random)));
    std::fs::create_dir_all(&tmp).map_err(|e| Failure::Infrastructure(format!("{}: {e}", tmp.display())))?;
    let (number, batch) = match app.execute(actor, Request::PmhBatch { program: key, mode, dir: &tmp }, today) {
        Ok(Outcome::Batch { number, batch }) => (number, batch),
        Ok(other) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Failure::Infrastructure(format!("unexpected outcome {other:?}")));
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    let Some(n) = number else {
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(None);
    };
    let ledger = app.ledger();
    let head = ledger
        .pmh_batches()?
        .iter()
        .find(|b| b.number == n)
        .map(|b| b.position)
        .ok_or_else(|| Failure::Infrastructure(format!("batch {n} recorded but not listed")))?;
    write_companions(&ledger, &tmp, &[(Some(n), &batch)], head)?;
    drop(ledger);
    let dir = batch_dir(exports, n);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Failure::Infrastructure(format!("{}: {e}", dir.display())))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| Failure::Infrastructure(format!("{}: {e}", dir.display())))?;
    files::sync_dir(exports).map_err(Failure::Infrastructure)?;
    Ok(Some((n, *batch)))
}
