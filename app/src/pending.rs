//! 承認待ち (pending approvals): a caseworker enters a My Number link or correction, or the
//! rescind of one; it is recorded in the ledger only when a different supervisor approves it, as
//! one command whose actor is the caseworker and whose approver is the supervisor.
//!
//! Until then the request is web state, not a ledger fact: it lives in `DATA/web/` (sled), keyed
//! by an id the server issues (never the client's), holding the form's values. A request is
//! never replaced: what a supervisor was shown is what they approve (the approval also carries
//! a digest of the page, see `pages::approvals`). Approving submits the command (idempotently:
//! approving twice records once) and removes the request; sending it back removes it.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The form kind of requests stored before requests had a kind.
fn link_kind() -> String {
    "link_my_number".to_owned()
}

/// A request waiting for approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingLink {
    /// The command id it will be recorded under, issued by the server.
    pub id: String,
    /// The form's own key (the idempotency key it was rendered with): a second submit of the
    /// same form finds its request instead of making another.
    #[serde(default)]
    pub form_key: String,
    /// The form: `link_my_number` or `rescind`.
    #[serde(default = "link_kind")]
    pub kind: String,
    /// Internal recipient number.
    pub recipient: u64,
    /// Who asked.
    pub requested_by: String,
    /// When (microseconds since the Unix epoch).
    pub requested_at_us: i64,
    /// The form's values (field name, value), as entered.
    pub fields: Vec<(String, String)>,
}

/// Why a request was not stored.
#[derive(Debug, PartialEq, Eq)]
pub enum PutError {
    /// A request with this id exists: it is never replaced.
    Exists,
    /// The database failed.
    Failed(String),
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

    /// Stores a new request durably; one with the same id is never replaced.
    pub fn insert(&self, link: &PendingLink) -> Result<(), PutError> {
        let bytes = serde_json::to_vec(link).map_err(|e| PutError::Failed(e.to_string()))?;
        match self.tree.compare_and_swap(link.id.as_bytes(), None::<&[u8]>, Some(bytes)) {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(PutError::Exists),
            Err(e) => return Err(PutError::Failed(e.to_string())),
        }
        self.tree.flush().map_err(|e| PutError::Failed(e.to_string()))?;
        Ok(())
    }

    /// The request with this id.
    pub fn get(&self, id: &str) -> Result<Option<PendingLink>, String> {
        match self.tree.get(id.as_bytes()).map_err(|e| e.to_string())? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| e.to_string()),
        }
    }

    /// The request `user` made from the form rendered with `form_key`, if any.
    pub fn by_form(&self, user: &str, form_key: &str) -> Result<Option<PendingLink>, String> {
        Ok(self.all()?.into_iter().find(|l| l.requested_by == user && l.form_key == form_key))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: &str, recipient: u64) -> PendingLink {
        PendingLink {
            id: id.into(),
            form_key: "w-1".into(),
            kind: link_kind(),
            recipient,
            requested_by: "case1".into(),
            requested_at_us: 1,
            fields: vec![("my_number".into(), "123456789018".into())],
        }
    }

    #[test]
    fn a_request_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let pending = PendingLinks::open(dir.path()).unwrap();
        pending.insert(&link("p-1", 1)).unwrap();
        assert_eq!(pending.insert(&link("p-1", 4)), Err(PutError::Exists));
        assert_eq!(pending.get("p-1").unwrap().unwrap().recipient, 1);
        assert_eq!(pending.by_form("case1", "w-1").unwrap().unwrap().id, "p-1");
        assert_eq!(pending.by_form("case2", "w-1").unwrap(), None);
    }

    #[test]
    fn requests_stored_before_kinds_read_as_links() {
        let old = r#"{"id":"w-1","recipient":3,"requested_by":"k","requested_at_us":5,"fields":[]}"#;
        let read: PendingLink = serde_json::from_str(old).unwrap();
        assert_eq!(read.kind, "link_my_number");
        assert_eq!(read.form_key, "");
    }
}
