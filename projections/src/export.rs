//! PMH export batches, computed from the register at a known position.
//!
//! - diff-history: every record whose current content differs from what PMH has (new, changed,
//!   or withdrawn: sent with `isDeleted: true` and the content PMH had);
//! - full: every current record of the program.
//!
//! Records failing validation are held back (listed, not sent; they stay pending). The output
//! depends only on the log up to the batch's position, so a past batch regenerates byte for
//! byte. Nothing here writes files or the log: `daicho pmh export` does.

use daicho_domain::config::{Config, PmhMode, Program, ProgramKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::pmh::{HoldReason, Outgoing, PmhRecord, csv_document, to_csv, to_json, unrepresentable, validate};
use crate::register::entry_from;
use crate::{ProjectionError, Projections, keys};

/// A record held back, named without personal data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Held {
    pub recipient: u64,
    pub certificate: String,
    pub history_key: String,
    pub reasons: Vec<HeldReason>,
}

/// One reason, coded and in Japanese.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeldReason {
    pub code: &'static str,
    pub message: &'static str,
}

impl From<HoldReason> for HeldReason {
    fn from(r: HoldReason) -> Self {
        HeldReason { code: r.code(), message: r.message() }
    }
}

/// Characters clinics will see as "●" in an exported record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Warning {
    pub history_key: String,
    pub field: &'static str,
    pub characters: Vec<String>,
}

/// A file of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub name: String,
    pub bytes: Vec<u8>,
}

impl File {
    /// SHA-256, lower-case hex.
    pub fn sha256(&self) -> String {
        Sha256::digest(&self.bytes).iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One program's batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub program: ProgramKey,
    pub mode: PmhMode,
    pub from_position: u64,
    pub to_position: u64,
    pub records: u32,
    pub deleted: u32,
    pub held_back: Vec<Held>,
    pub warnings: Vec<Warning>,
    /// The JSON and CSV files; empty when there is nothing to send.
    pub files: Vec<File>,
}

/// `diff` or `full` in file names.
pub fn mode_name(mode: PmhMode) -> &'static str {
    match mode {
        PmhMode::Full => "full",
        PmhMode::DiffHistory => "diff",
    }
}

/// What a batch would hold, without its files (the web UI's preview).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub program: ProgramKey,
    pub mode: PmhMode,
    /// Records that would be sent (deletions included).
    pub records: u32,
    /// Of which deletions.
    pub deleted: u32,
    pub held_back: Vec<Held>,
    pub warnings: Vec<Warning>,
}

struct Collected {
    outgoing: Vec<(PmhRecord, bool)>,
    held_back: Vec<Held>,
    warnings: Vec<Warning>,
}

impl Projections {
    fn collect(&self, program: &Program, mode: PmhMode) -> Result<Collected, ProjectionError> {
        let key = program.key.as_str();
        let prefix = match mode {
            PmhMode::DiffHistory => keys::program_prefix(keys::DIRTY, key),
            PmhMode::Full => keys::program_prefix(keys::ACTIVE, key),
        };
        let mut outgoing: Vec<(PmhRecord, bool)> = Vec::new();
        let mut held_back = Vec::new();
        let mut warnings = Vec::new();
        for item in self.tree().scan_prefix(&prefix) {
            let (k, _) = item?;
            let Some((n, span)) = keys::tail_ids(&k) else { continue };
            let Some(bytes) = self.tree().get(keys::entry(n, span))? else { continue };
            let entry = entry_from(&bytes)?;
            match (entry.current, entry.exported) {
                (Some(current), _) => {
                    let reasons = validate(&current, Some(program));
                    if reasons.is_empty() {
                        for (field, characters) in unrepresentable(&current) {
                            warnings.push(Warning {
                                history_key: current.history_key().to_string(),
                                field,
                                characters,
                            });
                        }
                        outgoing.push((current, false));
                    } else {
                        held_back.push(Held {
                            recipient: n,
                            certificate: current.certificate.clone(),
                            history_key: current.history_key().to_string(),
                            reasons: reasons.into_iter().map(Into::into).collect(),
                        });
                    }
                }
                (None, Some(exported)) if mode == PmhMode::DiffHistory => outgoing.push((exported, true)),
                (None, _) => {}
            }
        }
        Ok(Collected { outgoing, held_back, warnings })
    }

    /// What a program's batch would hold now, without rendering its files.
    pub fn batch_summary(&self, program: &Program, mode: PmhMode) -> Result<Summary, ProjectionError> {
        let c = self.collect(program, mode)?;
        Ok(Summary {
            program: program.key.clone(),
            mode,
            records: u32::try_from(c.outgoing.len()).unwrap_or(u32::MAX),
            deleted: u32::try_from(c.outgoing.iter().filter(|(_, d)| *d).count()).unwrap_or(u32::MAX),
            held_back: c.held_back,
            warnings: c.warnings,
        })
    }

    /// Computes a program's batch. The projection must be caught up exactly to `to_position`.
    pub fn compute_batch(
        &self,
        config: &Config,
        program: &Program,
        mode: PmhMode,
        to_position: u64,
    ) -> Result<Batch, ProjectionError> {
        let key = program.key.as_str();
        let Collected { outgoing, held_back, warnings } = self.collect(program, mode)?;
        let from_position = self.last_batch(key)?.map_or(0, |(to, _)| to);
        let records = u32::try_from(outgoing.len()).unwrap_or(u32::MAX);
        let deleted = u32::try_from(outgoing.iter().filter(|(_, d)| *d).count()).unwrap_or(u32::MAX);
        let mut files = Vec::new();
        if !outgoing.is_empty() {
            let out: Vec<Outgoing<'_>> =
                outgoing.iter().map(|(record, deleted)| Outgoing { record, deleted: *deleted }).collect();
            let base = format!("{key}_{}_{from_position}-{to_position}", mode_name(mode));
            let json = to_json(&out, program, &config.eras).map_err(|e| ProjectionError::Corrupt(e.to_string()))?;
            files.push(File { name: format!("{base}.json"), bytes: json });
            files.push(File { name: format!("{base}.csv"), bytes: to_csv(&out, program, &config.eras) });
        }
        Ok(Batch {
            program: program.key.clone(),
            mode,
            from_position,
            to_position,
            records,
            deleted,
            held_back,
            warnings,
            files,
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestFile<'a> {
    name: &'a str,
    sha256: String,
    bytes: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestBatch<'a> {
    batch: Option<u64>,
    program: &'a str,
    mode: &'static str,
    from_position: u64,
    to_position: u64,
    records: u32,
    deleted: u32,
    held_back: &'a [Held],
    warnings: &'a [Warning],
    files: Vec<ManifestFile<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChainHead {
    position: u64,
    hash: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    format: &'static str,
    municipality: &'a str,
    chain_head: ChainHead,
    batches: Vec<ManifestBatch<'a>>,
}

/// `manifest.json` for the batches written together (with their batch numbers, once recorded),
/// and the chain head they were made from.
pub fn manifest(config: &Config, batches: &[(Option<u64>, &Batch)], head_position: u64, head_hash: &str) -> Vec<u8> {
    let m = Manifest {
        format: "daicho-pmh-export-1",
        municipality: &config.municipality.name,
        chain_head: ChainHead { position: head_position, hash: head_hash.to_owned() },
        batches: batches
            .iter()
            .map(|(number, b)| ManifestBatch {
                batch: *number,
                program: b.program.as_str(),
                mode: mode_name(b.mode),
                from_position: b.from_position,
                to_position: b.to_position,
                records: b.records,
                deleted: b.deleted,
                held_back: &b.held_back,
                warnings: &b.warnings,
                files: b
                    .files
                    .iter()
                    .map(|f| ManifestFile { name: &f.name, sha256: f.sha256(), bytes: f.bytes.len() })
                    .collect(),
            })
            .collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&m).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// `rejects.csv`: every held-back record of the batches, one line per reason.
pub fn rejects_csv(batches: &[&Batch]) -> Vec<u8> {
    let mut rows =
        vec![["制度", "受給者内部番号", "受給者証", "履歴キー", "理由コード", "理由"].map(str::to_owned).to_vec()];
    for b in batches {
        for h in &b.held_back {
            for r in &h.reasons {
                rows.push(vec![
                    b.program.to_string(),
                    h.recipient.to_string(),
                    h.certificate.clone(),
                    h.history_key.clone(),
                    r.code.to_owned(),
                    r.message.to_owned(),
                ]);
            }
        }
    }
    csv_document(&rows)
}
