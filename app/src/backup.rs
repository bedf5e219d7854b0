//! Backup files of a data directory: the ledger's log and the access log (閲覧記録) in the
//! store's `daicho-backup-1` format, a JSON manifest after the trailer, and a note of the last
//! backup in the data directory for `daicho status` and the admin page.
//!
//! Everything else in a data directory is derived (projections, PMH files) or transient (My
//! Number links waiting for approval, which hold unapproved numbers and are entered again).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use daicho_projections::export::Hashing;
use daicho_store::Store;
use daicho_store::backup::{BackupSummary, write_backup};
use serde::{Deserialize, Serialize};

/// The note of the last backup's file name in the data directory.
const LAST_BACKUP: &str = "last-backup.json";

/// The note of the last backup, in the data directory.
pub fn last_backup_path(data: &Path) -> PathBuf {
    data.join(LAST_BACKUP)
}

/// What a backup wrote (also the note kept in the data directory).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupNote {
    /// `daicho-backup-1`.
    pub format: String,
    /// When it was made, RFC 3339.
    pub created_at: String,
    /// The file, as named by the operator.
    pub file: String,
    /// Bytes of the file.
    pub bytes: u64,
    /// SHA-256 of the whole file.
    pub file_sha256: String,
    /// The logs: name, events, head hash.
    pub logs: Vec<LogNote>,
}

/// One log in a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogNote {
    /// `ledger` or `access`.
    pub name: String,
    /// Events, positions 1 to this.
    pub head_position: u64,
    /// The hash at that position.
    pub head_hash: String,
}

/// Writes a backup of `logs` to `out` (which must not exist): first to `out.partial`, synced,
/// then renamed, so a file under the final name is always whole. Notes it in `data`.
pub fn backup_to(
    data: &Path,
    logs: &[(&str, &Store)],
    municipality: &str,
    created_at: &str,
    out: &Path,
) -> Result<BackupNote, String> {
    if out.exists() {
        return Err(format!("{} は既にあります。上書きしません", out.display()));
    }
    let mut partial_name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    partial_name.push(".partial");
    let partial = out.with_file_name(partial_name);
    let file = File::create_new(&partial).map_err(|e| format!("{}: 作成できません: {e}", partial.display()))?;
    let result = (|| -> Result<(BackupSummary, u64, String), String> {
        let mut w = Hashing::new(BufWriter::with_capacity(1 << 20, file));
        let summary = write_backup(logs, &mut w).map_err(|e| e.to_string())?;
        let manifest = serde_json::json!({
            "format": "daicho-backup-1",
            "municipality": municipality,
            "createdAt": created_at,
            "contentSha256": summary.sha256.to_hex(),
            "logs": summary.parts.iter().map(|p| serde_json::json!({
                "name": p.name, "headPosition": p.events, "headHash": p.head.to_hex(),
            })).collect::<Vec<_>>(),
            "note": "個人情報を含みます。台帳と同じように管理してください。",
        });
        let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())?;
        w.write_all(b"\n")
            .and_then(|()| w.write_all(text.as_bytes()))
            .and_then(|()| w.write_all(b"\n"))
            .map_err(|e| e.to_string())?;
        w.flush().map_err(|e| e.to_string())?;
        let (out, sha256, bytes) = w.done();
        let file = out.into_inner().map_err(|e| e.error().to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        Ok((summary, bytes, sha256))
    })();
    let (summary, bytes, file_sha256) = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    std::fs::rename(&partial, out).map_err(|e| format!("{}: {e}", out.display()))?;
    if let Some(dir) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::files::sync_dir(dir)?;
    }
    let note = BackupNote {
        format: "daicho-backup-1".into(),
        created_at: created_at.to_owned(),
        file: out.display().to_string(),
        bytes,
        file_sha256,
        logs: summary
            .parts
            .iter()
            .map(|p| LogNote { name: p.name.clone(), head_position: p.events, head_hash: p.head.to_hex() })
            .collect(),
    };
    let text = serde_json::to_string_pretty(&note).map_err(|e| e.to_string())?;
    crate::files::replace(data, LAST_BACKUP, text.as_bytes())
        .map_err(|e| format!("最終退避の記録を書けません: {e}"))?;
    Ok(note)
}

/// The note of the last backup, if one was made.
pub fn last_backup(data: &Path) -> Option<BackupNote> {
    let text = std::fs::read_to_string(last_backup_path(data)).ok()?;
    serde_json::from_str(&text).ok()
}
