//! アクセス記録 (access log): who saw whose personal data, on which page, when. A store of its
//! own (`DATA/access/`), hash-chained like the ledger and verified the same way, so a removed or
//! altered record is detected. Kept apart from the ledger so that reading (which appends here)
//! never competes with recording life events, and so that the ledger's backups and exports are
//! not bloated by it.
//!
//! A page showing personal data is served only after its access records are durable: if the log
//! cannot be written, the page is not shown.

use std::path::{Path, PathBuf};

use daicho_domain::codec;
use daicho_domain::ids::UserId;
use daicho_domain::users::{AccessAction, AccessRecord};
use daicho_store::{Store, StoreError};

use crate::append::System;
use sha2::{Digest, Sha256};

/// The stream of access records.
pub const ACCESS_STREAM: &str = "access";

/// The access log's directory in a data directory.
pub fn access_dir(data: &Path) -> PathBuf {
    data.join("access")
}

/// The access log. Opened when first used: most CLI commands never touch it, and opening its
/// sled database (a few GB after a year of a city's caseworkers) is time a batch command would
/// spend for nothing. The web server opens it at start ([`AccessLog::open`]).
pub struct AccessLog {
    dir: PathBuf,
    store: std::sync::OnceLock<Store>,
    /// Held while opening, so two first uses do not open it twice.
    opening: std::sync::Mutex<()>,
}

/// One access record as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessEntry {
    /// Position in the access log.
    pub position: u64,
    /// When, microseconds since the Unix epoch.
    pub recorded_at_us: i64,
    /// What.
    pub record: AccessRecord,
}

/// What to look for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessFilter {
    /// This user only.
    pub user: Option<String>,
    /// This recipient (internal number) only.
    pub recipient: Option<u64>,
    /// Recorded at or after (microseconds).
    pub from_us: Option<i64>,
    /// Recorded before (microseconds).
    pub until_us: Option<i64>,
}

impl AccessLog {
    /// Opens the access log of a data directory now, creating it the first time.
    pub fn open(data: &Path) -> Result<AccessLog, StoreError> {
        let log = AccessLog::when_used(data);
        log.store()?;
        Ok(log)
    }

    /// The access log of a data directory, opened (or created) when first used.
    pub fn when_used(data: &Path) -> AccessLog {
        AccessLog { dir: access_dir(data), store: std::sync::OnceLock::new(), opening: std::sync::Mutex::new(()) }
    }

    /// The underlying store, opened (or created) the first time.
    pub fn store(&self) -> Result<&Store, StoreError> {
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        let _opening = self.opening.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        let store = match Store::open(&self.dir) {
            Err(StoreError::NotALedger(_)) => Store::create(&self.dir)?,
            other => other?,
        };
        Ok(self.store.get_or_init(|| store))
    }

    /// Appends records in one durable request.
    pub async fn record(&self, records: Vec<AccessRecord>, today: chrono::NaiveDate) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        let store = self.store().map_err(|e| e.to_string())?;
        store.append(request(&records, today)?).await.map(|_| ()).map_err(|e| e.to_string())
    }

    /// Appends records from a thread that may block (the CLI), in requests of at most
    /// [`EVENTS_PER_REQUEST_MAX`](daicho_store::limits::EVENTS_PER_REQUEST_MAX) records, each durable before the
    /// next.
    pub fn record_blocking(&self, records: &[AccessRecord], today: chrono::NaiveDate) -> Result<(), String> {
        let store = self.store().map_err(|e| e.to_string())?;
        for part in records.chunks(daicho_store::limits::EVENTS_PER_REQUEST_MAX) {
            store.append_blocking(request(part, today)?).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Records matching `filter`, newest first, at most `limit`.
    pub fn search(&self, filter: &AccessFilter, limit: usize) -> Result<Vec<AccessEntry>, String> {
        self.search_bounded(filter, limit, usize::MAX).map(|(found, _)| found)
    }

    /// Records matching `filter`, newest first, at most `limit`, looking at no more than
    /// `scanned_max` records; `true` when the scan stopped there with older records unread.
    pub fn search_bounded(
        &self,
        filter: &AccessFilter,
        limit: usize,
        scanned_max: usize,
    ) -> Result<(Vec<AccessEntry>, bool), String> {
        let mut out = Vec::new();
        // Newest first, straight from the log (the access log holds one stream): a search reads
        // back from the head and stops at the limit, at the period's start or at `scanned_max`.
        for (scanned, item) in self.store().map_err(|e| e.to_string())?.read_back().enumerate() {
            if scanned >= scanned_max {
                return Ok((out, true));
            }
            let e = item.map_err(|e| e.to_string())?;
            if filter.from_us.is_some_and(|f| e.recorded_at_us < f) {
                break;
            }
            if filter.until_us.is_some_and(|u| e.recorded_at_us >= u) {
                continue;
            }
            let record = codec::decode_access(e.schema_version, &e.payload)
                .map_err(|x| format!("access log position {}: {x}", e.position))?;
            if filter.user.as_deref().is_some_and(|u| record.user.as_str() != u) {
                continue;
            }
            if filter.recipient.is_some_and(|n| !record.recipients.contains(&n)) {
                continue;
            }
            out.push(AccessEntry { position: e.position.0, recorded_at_us: e.recorded_at_us, record });
            if out.len() == limit {
                break;
            }
        }
        Ok((out, false))
    }
}

/// One append request of `records` (each an event), under a random request id.
fn request(records: &[AccessRecord], today: chrono::NaiveDate) -> Result<daicho_store::AppendRequest, String> {
    let mut id_bytes = [0u8; 16];
    getrandom::fill(&mut id_bytes).map_err(|e| format!("random: {e}"))?;
    let id = format!("a-{}", crate::files::hex(&id_bytes));
    let mut digest = Sha256::new();
    let mut encoded = Vec::with_capacity(records.len());
    for r in records {
        let e = codec::encode_access(r).map_err(|e| e.to_string())?;
        digest.update(&e.payload);
        encoded.push(e);
    }
    let actor = records.first().map(|r| r.user.to_string()).unwrap_or_default();
    let system = System {
        stream: ACCESS_STREAM,
        version: None,
        id: &id,
        digest: digest.finalize().into(),
        actor: &actor,
        expected_head: None,
        effective: today,
    };
    system.request(encoded)
}

/// A record of `user` for `recipients` (none, one, or every row of a list) on `page`.
pub fn record(
    user: &UserId,
    recipients: Vec<u64>,
    page: &str,
    action: AccessAction,
    reason: Option<String>,
) -> AccessRecord {
    AccessRecord { user: user.clone(), recipients, page: page.to_owned(), action, reason }
}
