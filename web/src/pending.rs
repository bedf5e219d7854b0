//! 承認待ち (pending My Number links): a caseworker enters a My Number link or correction; it
//! is recorded in the ledger only when a different supervisor approves it, as one command whose
//! actor is the caseworker and whose approver is the supervisor.
//!
//! Until then the request is web state, not a ledger fact: it lives in `DATA/web/` (sled), keyed
//! by its command id, holding the form's values. Approving submits the command (idempotently:
//! approving twice records once) and removes the request; rejecting removes it.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// A request waiting for approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLink {
    /// The command id it will be recorded under.
    pub id: String,
    /// Internal recipient number.
    pub recipient: u64,
    /// Who asked.
    pub requested_by: String,
    /// When (microseconds since the Unix epoch).
    pub requested_at_us: i64,
    /// The form's values (field name, value), as entered.
    pub fields: Vec<(String, String)>,
}

/// The pending requests.
pub struct PendingLinks {
    tree: sled::Tree,
}

impl PendingLinks {
    /// Opens (or creates) `DATA/web/`.
    pub fn open(data: &Path) -> Result<PendingLinks, String> {
        let db = daicho_store::open_sled(&sled::Config::new().path(data.join("web"))).map_err(|e| e.to_string())?;
        let tree = db.open_tree("pending_links").map_err(|e| e.to_string())?;
        Ok(PendingLinks { tree })
    }

    /// Stores a request durably (replacing one with the same id).
    pub fn put(&self, link: &PendingLink) -> Result<(), String> {
        let bytes = serde_json::to_vec(link).map_err(|e| e.to_string())?;
        self.tree.insert(link.id.as_bytes(), bytes).map_err(|e| e.to_string())?;
        self.tree.flush().map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The request with this id.
    pub fn get(&self, id: &str) -> Result<Option<PendingLink>, String> {
        match self.tree.get(id.as_bytes()).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| e.to_string()),
        }
    }

    /// Every request, oldest first.
    pub fn all(&self) -> Result<Vec<PendingLink>, String> {
        let mut out: Vec<PendingLink> = Vec::new();
        for item in self.tree.iter() {
            let (_, b) = item.map_err(|e| e.to_string())?;
            out.push(serde_json::from_slice(&b).map_err(|e| e.to_string())?);
        }
        out.sort_by_key(|l| l.requested_at_us);
        Ok(out)
    }

    /// Removes a request.
    pub fn remove(&self, id: &str) -> Result<(), String> {
        self.tree.remove(id.as_bytes()).map_err(|e| e.to_string())?;
        self.tree.flush().map_err(|e| e.to_string())?;
        Ok(())
    }
}
