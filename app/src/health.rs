//! 稼働状況 (health): what an operator checks first. The log's head, how far the register
//! projection lags behind it, the last verify, the last backup, the last PMH batch of each
//! program, and disk use. Shown by `daicho status`, the admin page, and (without hashes or
//! names) `/healthz`. Nothing here is personal data.

use std::path::Path;

use daicho_store::{Checkpoint, Store};
use serde::{Deserialize, Serialize};

use crate::backup::{BackupNote, last_backup};
use crate::ledger::{Ledger, store_dir};

/// The health of a data directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Municipality name.
    pub municipality: String,
    /// The log's head.
    pub head_position: u64,
    /// Its hash (hex).
    pub head_hash: String,
    /// When the head was recorded (µs since the epoch; 0 for an empty log).
    pub head_recorded_at_us: i64,
    /// Position the register projection has reached.
    pub register_position: u64,
    /// Events the register has not applied yet.
    pub register_lag: u64,
    /// The access log's head position, when there is one.
    pub access_position: Option<u64>,
    /// The last `daicho verify` that passed: position, hash, when (µs).
    pub last_verify: Option<VerifyNote>,
    /// The last backup.
    pub last_backup: Option<BackupNote>,
    /// The last PMH batch of each program.
    pub pmh: Vec<PmhNote>,
    /// Bytes on disk per part of the data directory, and in all.
    pub disk: Vec<(String, u64)>,
    /// Files and directories that group or others may access (path, mode), at most
    /// [`EXPOSED_LISTED_MAX`].
    #[serde(default)]
    pub exposed: Vec<(String, u32)>,
    /// The caches' sizes the process runs with.
    #[serde(default = "crate::ledger::Memory::current")]
    pub memory: crate::ledger::Memory,
}

/// Files more open than the owner's listed by the health, at most.
pub const EXPOSED_LISTED_MAX: usize = 20;

/// A verified checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyNote {
    /// Last verified position.
    pub position: u64,
    /// Its hash.
    pub hash: String,
    /// When, µs since the epoch.
    pub verified_at_us: i64,
}

/// The last batch of one program.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PmhNote {
    /// Program key.
    pub program: String,
    /// Batch number.
    pub batch: u64,
    /// `full` or `diff`.
    pub mode: String,
    /// Log position the batch was computed at.
    pub to_position: u64,
    /// Records sent.
    pub records: u32,
    /// When recorded, µs.
    pub recorded_at_us: i64,
}

impl Health {
    /// Collects the health of the ledger in `data`; `access` is the access log's store when
    /// open (the server) or absent.
    pub fn collect(data: &Path, ledger: &mut Ledger, access: Option<&Store>) -> Result<Health, String> {
        let mut h = Health::of_ledger(data, ledger, access)?;
        h.measure_disk(data);
        Ok(h)
    }

    /// What the ledger says (head, lags, verify, backup, batches), without the disk figures.
    pub fn of_ledger(data: &Path, ledger: &mut Ledger, access: Option<&Store>) -> Result<Health, String> {
        let head = ledger.store().head();
        let (register_position, _) = ledger.projections_unsynced().checkpoint().map_err(|e| e.to_string())?;
        let last_verify = Checkpoint::read(&store_dir(data)).map_err(|e| e.to_string())?.map(|c| VerifyNote {
            position: c.position.0,
            hash: c.hash.to_hex(),
            verified_at_us: c.verified_at_us,
        });
        let mut pmh: Vec<PmhNote> = Vec::new();
        for b in ledger.pmh_batches().map_err(|e| e.to_string())? {
            let note = PmhNote {
                program: b.batch.program.to_string(),
                batch: b.number,
                mode: match b.batch.mode {
                    daicho_domain::config::PmhMode::Full => "full".into(),
                    daicho_domain::config::PmhMode::DiffHistory => "diff".into(),
                },
                to_position: b.batch.to_position,
                records: b.batch.records,
                recorded_at_us: b.recorded_at_us,
            };
            match pmh.iter_mut().find(|p| p.program == note.program) {
                Some(slot) => *slot = note,
                None => pmh.push(note),
            }
        }
        Ok(Health {
            municipality: ledger.config().municipality.name.clone(),
            head_position: head.position.0,
            head_hash: head.hash.to_hex(),
            head_recorded_at_us: head.recorded_at_us,
            register_position: register_position.0,
            register_lag: head.position.0.saturating_sub(register_position.0),
            access_position: access.map(|a| a.head().position.0),
            last_verify,
            last_backup: last_backup(data),
            pmh,
            disk: Vec::new(),
            exposed: Vec::new(),
            memory: crate::ledger::Memory::current(),
        })
    }

    /// Walks the data directory: bytes per part and in all, and what others may access.
    pub fn measure_disk(&mut self, data: &Path) {
        let mut disk = Vec::new();
        let mut total = 0;
        if let Ok(entries) = std::fs::read_dir(data) {
            let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let bytes = size_of(&entry.path());
                total += bytes;
                disk.push((entry.file_name().to_string_lossy().into_owned(), bytes));
            }
        }
        disk.push(("合計".to_owned(), total));
        self.disk = disk;
        self.exposed = crate::ledger::exposed_files(data, EXPOSED_LISTED_MAX);
    }
}

/// Bytes of a file, or of everything under a directory (symbolic links not followed).
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    std::fs::read_dir(path).map_or(0, |entries| entries.filter_map(Result::ok).map(|e| size_of(&e.path())).sum())
}

/// Bytes for people, in powers of 1000: `950 B`, `4.2 MB`.
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", units[unit]) }
}
