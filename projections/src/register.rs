//! The `register` projection's fold: what one envelope changes.
//!
//! - `config` stream, `configuration_set`: the configuration in force (validation of PMH records
//!   needs it).
//! - `recipient-<n>` streams: the recipient's snapshot (advanced with `apply_event`; a rescind
//!   re-folds the stream from the log), its search index entries, and its PMH entries.
//! - `pmh` stream, `pmh_batch_exported`: what PMH now has: exported := current for every record
//!   the batch sent; a record held back keeps what PMH had (it stays pending), except from a
//!   full replacement, after which PMH has nothing of it (`export::replaces`).
//! - `pmh-results` stream, `pmh_results_recorded`: PMH refused records a batch sent it: each is marked
//!   refused ([`Refusal`]) and is not sent again until its content changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use daicho_domain::codec::{self, CONFIGURATION_SET, PMH_BATCH_EXPORTED, PMH_RESULTS_RECORDED, PmhBatch, PmhResults};
use daicho_domain::config::{Config, PmhMode};
use daicho_domain::event::{Event, EventBody};
use daicho_domain::ids::CommandId;
use daicho_domain::state::{Recipient, State, apply_event};
use daicho_domain::text::{kana_key, name_key};
use daicho_domain::{evolve, numbers::MyNumber};
use daicho_store::{Envelope, Store};
use serde::{Deserialize, Serialize};

use crate::ProjectionError;
use crate::db::{Db, Write};
use crate::fee::{FeeHistory, FeeVersion, fees_bytes, fees_from};
use crate::keyed::hmac_sha256;
use crate::keys;
use crate::packed::{pack, unpack};
use crate::pmh::{CapForms, HoldReason, PmhRecord, records_with, validate};

/// Recipients held above which applying a PMH batch writes a part (see `apply_batch`).
pub(crate) const BATCH_WRITES_MAX: usize = 20_000;

/// Pending writes over the register: the last write of a key wins; `None` removes.
pub(crate) struct Overlay {
    pub writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Overlay {
    /// The pending value of `key`, else the committed one (none without a database: the bulk
    /// rebuild folds each recipient from nothing).
    pub fn get(&self, db: Option<&Db>, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError> {
        match (self.writes.get(key), db) {
            (Some(v), _) => Ok(v.clone()),
            (None, Some(db)) => db.get(key),
            (None, None) => Ok(None),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub fn remove(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }
}

/// A PMH entry: the record as it is now, and what PMH has of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub program: String,
    /// Changed only through [`Entry::set_current`], which keeps `sent` canonical.
    current: Option<PmhRecord>,
    sent: Sent,
    /// The batch (its number) that sent what PMH has, or the record it refused; 0 for none.
    batch: u64,
    /// The last batch that listed the record as held back (保留), and what it listed: a batch
    /// names only the records held back since (new, changed, or held for other reasons), with
    /// a count of all of them. Cleared when PMH is sent the record or has nothing of it (a
    /// full replacement that holds it back lists it again at once).
    listed: Option<Listed>,
}

/// A held-back record as a batch listed it: the batch's number and the [`held_fingerprint`] of
/// the record and its reasons then.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Listed {
    pub batch: u64,
    pub fingerprint: u64,
}

/// What a held-back record is, for telling whether a batch listed it as it is now: the first
/// eight bytes of the SHA-256 of the record's encoding and its reasons' codes. A function of
/// the record and the configuration, so every fold gets the same value.
pub(crate) fn held_fingerprint(record: &PmhRecord, reasons: &[HoldReason]) -> u64 {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    // Encoding owned strings and integers into a Vec cannot fail.
    h.update(bincode::serde::encode_to_vec(record, bincode::config::standard()).unwrap_or_default());
    for r in reasons {
        h.update([0]);
        h.update(r.code().as_bytes());
    }
    let digest = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// PMH refused a record a batch sent it (its registration results): PMH does not have it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// The batch that sent it.
    pub batch: u64,
    /// PMH's code and text.
    pub code: String,
    pub message: String,
    /// The record refused: it is not sent again while the current record is this one.
    pub record: PmhRecord,
    /// PMH had an earlier version of the record before the batch (and keeps it): a withdrawal
    /// is still sent for it, and it still counts for the fee.
    pub earlier: bool,
}

/// What PMH has of an entry's record. One copy of a record when PMH has what the ledger has
/// (the usual case after a batch); the content PMH has is kept apart only while it differs (a
/// withdrawal is sent with it, `isDeleted: true`). The form is canonical (a function of the
/// current record and PMH's), so folds that reach the same state store the same bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Sent {
    /// PMH has nothing of it.
    Nothing,
    /// PMH has exactly the current record (there is one).
    Current,
    /// PMH has this record, which is not the current one.
    Other(Box<PmhRecord>),
    /// PMH refused the record it was sent.
    Refused(Box<Refusal>),
}

impl Entry {
    /// A record PMH has never had.
    pub(crate) fn new(program: String, current: PmhRecord) -> Entry {
        Entry { program, current: Some(current), sent: Sent::Nothing, batch: 0, listed: None }
    }

    /// The record as it is now (none once withdrawn).
    pub fn current(&self) -> Option<&PmhRecord> {
        self.current.as_ref()
    }

    /// The record as PMH has it (of a record PMH refused that it had an earlier version of,
    /// the refused one: the key is the same, the content PMH kept unknown here).
    pub fn exported(&self) -> Option<&PmhRecord> {
        match &self.sent {
            Sent::Nothing => None,
            Sent::Current => self.current.as_ref(),
            Sent::Other(r) => Some(r.as_ref()),
            Sent::Refused(r) => r.earlier.then_some(&r.record),
        }
    }

    /// What PMH's results said of the record last sent, when PMH refused it.
    pub fn refusal(&self) -> Option<&Refusal> {
        match &self.sent {
            Sent::Refused(r) => Some(r),
            _ => None,
        }
    }

    /// The batch that sent what PMH has, or the record it refused (0: none).
    pub fn batch(&self) -> u64 {
        self.batch
    }

    /// The current content differs from what PMH has: the next batch of the program sends it.
    /// A record PMH refused is sent again once it changes (a correction), not before; withdrawn,
    /// it is sent as deleted when PMH kept an earlier version.
    pub fn pending(&self) -> bool {
        match &self.sent {
            Sent::Nothing => self.current.is_some(),
            Sent::Current => false,
            Sent::Other(r) => self.current.as_ref() != Some(r.as_ref()),
            Sent::Refused(r) => match &self.current {
                Some(current) => *current != r.record,
                None => r.earlier,
            },
        }
    }

    /// PMH refused the record and it has not changed since: no batch sends it.
    pub fn refused_unchanged(&self) -> bool {
        self.refusal().is_some() && !self.pending()
    }

    /// A full replacement left out a refused record: PMH no longer has the earlier version it
    /// kept. Returns whether that changed anything.
    fn forget_earlier(&mut self) -> bool {
        match &mut self.sent {
            Sent::Refused(r) if r.earlier => {
                r.earlier = false;
                true
            }
            _ => false,
        }
    }

    /// PMH refused what batch `batch` sent of this record: returns whether the entry changed.
    /// The batch must be the one that sent what PMH has, or (`full`) a later full batch, which
    /// sent it again unless PMH had refused it; not when PMH was never sent it.
    pub(crate) fn refuse(&mut self, (batch, full): (u64, bool), code: &str, message: &str, earlier: bool) -> bool {
        let resent = full && self.batch < batch && self.refusal().is_none();
        if self.batch != batch && !resent {
            return false;
        }
        let record = match &self.sent {
            Sent::Nothing => return false,
            Sent::Current => match &self.current {
                Some(current) => current.clone(),
                None => return false,
            },
            Sent::Other(r) => (**r).clone(),
            Sent::Refused(r) => r.record.clone(),
        };
        let refusal = Refusal { batch, code: code.to_owned(), message: message.to_owned(), record, earlier };
        if self.refusal() == Some(&refusal) {
            return false;
        }
        self.sent = Sent::Refused(Box::new(refusal));
        self.batch = batch;
        true
    }

    /// Sets the current record; what PMH has stays. Returns whether anything changed.
    pub(crate) fn set_current(&mut self, new: Option<PmhRecord>) -> bool {
        if self.current == new {
            return false;
        }
        let old = std::mem::replace(&mut self.current, new);
        self.sent = match std::mem::replace(&mut self.sent, Sent::Nothing) {
            Sent::Current => old.map_or(Sent::Nothing, |r| Sent::Other(Box::new(r))),
            Sent::Other(r) if self.current.as_ref() == Some(r.as_ref()) => Sent::Current,
            // A refusal stays until a batch sends the record again.
            other => other,
        };
        true
    }

    /// PMH now has the current record (nothing when there is none), sent by batch `batch`.
    pub(crate) fn set_exported_current(&mut self, batch: u64) {
        if self.current.is_some() {
            self.sent = Sent::Current;
            self.batch = batch;
            self.listed = None;
        } else {
            self.clear_exported();
        }
    }

    /// PMH no longer has anything of the record.
    pub(crate) fn clear_exported(&mut self) {
        self.sent = Sent::Nothing;
        self.batch = 0;
        self.listed = None;
    }

    /// Whether the last batch that listed the record as held back listed it as it is now
    /// (`fingerprint`: [`held_fingerprint`] of the current record and its reasons).
    fn listed_as(&self, fingerprint: u64) -> bool {
        self.listed.is_some_and(|l| l.fingerprint == fingerprint)
    }

    /// The current record, and what PMH has when that is another one (its withdrawal).
    pub(crate) fn into_parts(self) -> (Option<PmhRecord>, bool, Option<PmhRecord>) {
        match self.sent {
            Sent::Nothing => (self.current, false, None),
            Sent::Current => (self.current, true, None),
            Sent::Other(r) => (self.current, true, Some(*r)),
            Sent::Refused(r) => {
                let earlier = r.earlier;
                (self.current, earlier, earlier.then_some(r.record))
            }
        }
    }
}

/// A recipient's PMH entries, by span number (one `E` value).
pub(crate) type Entries = BTreeMap<u32, Entry>;

/// A recipient's fee histories, by span number (one `V` value).
pub(crate) type Fees = BTreeMap<u32, FeeHistory>;

pub(crate) fn entries_bytes(e: &Entries) -> Result<Vec<u8>, ProjectionError> {
    bincode::serde::encode_to_vec(e, bincode::config::standard())
        .map(|raw| pack(&raw))
        .map_err(|e| ProjectionError::Corrupt(e.to_string()))
}

pub(crate) fn entries_from(bytes: &[u8]) -> Result<Entries, ProjectionError> {
    bincode::serde::decode_from_slice(&unpack(bytes)?, bincode::config::standard())
        .map(|(e, _)| e)
        .map_err(|e| ProjectionError::Corrupt(e.to_string()))
}

/// The `D`, `H` and `A` markers of a recipient's entries, by key, with their values: per
/// program, whether one of them is pending and can be sent (`D`: a withdrawal, or a current
/// record that passes validation under `config`), the pending ones validation holds back (`H`,
/// with what the batch's list of held-back records names), and whether one has a current record
/// (`A`), and those whose last sending PMH refused (`F`). A function of the entries and the configuration in force, so a change of
/// configuration marks every pending entry again ([`Fold::remark`]).
pub(crate) fn markers_of(n: u64, entries: &Entries, config: Option<&Config>) -> Markers {
    let mut out = Markers::new();
    // Held back and not yet listed by a batch as it is now (`H`), or listed (`L`).
    let mut held: BTreeMap<(u8, &str), Vec<HeldRecord>> = BTreeMap::new();
    let mut refused: BTreeMap<&str, Vec<RefusedRecord>> = BTreeMap::new();
    for e in entries.values() {
        if let Some(r) = e.refusal() {
            refused.entry(&e.program).or_default().push(RefusedRecord {
                certificate: r.record.certificate.clone(),
                history_key: r.record.history_key().to_string(),
                batch: r.batch,
                code: r.code.clone(),
                message: r.message.clone(),
                corrected: e.pending(),
            });
        }
        if e.pending() {
            let reasons = match &e.current {
                Some(current) => validate(current, config.and_then(|c| c.program_by_key(&e.program))),
                None => Vec::new(),
            };
            match (&e.current, reasons.is_empty()) {
                (Some(current), false) => {
                    let marker =
                        if e.listed_as(held_fingerprint(current, &reasons)) { keys::LISTED } else { keys::HELD };
                    held.entry((marker, &e.program)).or_default().push(HeldRecord {
                        certificate: current.certificate.clone(),
                        history_key: current.history_key().to_string(),
                        reasons,
                    })
                }
                _ => {
                    out.insert(keys::program_marker(keys::DIRTY, &e.program, n), Vec::new());
                }
            }
        }
        if e.current.is_some() {
            out.insert(keys::program_marker(keys::ACTIVE, &e.program, n), Vec::new());
        }
    }
    for ((marker, program), records) in held {
        out.insert(keys::program_marker(marker, program, n), held_bytes(&records));
    }
    for (program, records) in refused {
        out.insert(keys::program_marker(keys::REFUSED, program, n), refused_bytes(&records));
    }
    out
}

/// A record PMH refused, as an `F` value lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedRecord {
    pub certificate: String,
    pub history_key: String,
    /// The batch that sent it.
    pub batch: u64,
    /// PMH's code and text.
    pub code: String,
    pub message: String,
    /// Changed since (the next batch sends it).
    pub corrected: bool,
}

fn refused_bytes(records: &[RefusedRecord]) -> Vec<u8> {
    // Encoding owned strings and integers into a Vec cannot fail.
    bincode::serde::encode_to_vec(records, bincode::config::standard()).unwrap_or_default()
}

/// The records of an `F` value.
pub(crate) fn refused_from(bytes: &[u8]) -> Result<Vec<RefusedRecord>, ProjectionError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(h, _)| h)
        .map_err(|e| ProjectionError::Corrupt(e.to_string()))
}

/// A recipient's markers: key to value.
pub(crate) type Markers = BTreeMap<Vec<u8>, Vec<u8>>;

/// The writes that turn markers `before` into `after`.
fn marker_writes(before: &Markers, after: &Markers, out: &mut impl Extend<Write>) {
    out.extend(before.keys().filter(|k| !after.contains_key(*k)).map(|k| (k.clone(), None)));
    out.extend(after.iter().filter(|(k, v)| before.get(*k) != Some(*v)).map(|(k, v)| (k.clone(), Some(v.clone()))));
}

/// A pending record validation holds back, as an `H` value lists it (no personal data beyond
/// the certificate and history key the batch's list names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HeldRecord {
    pub certificate: String,
    pub history_key: String,
    pub reasons: Vec<HoldReason>,
}

fn held_bytes(records: &[HeldRecord]) -> Vec<u8> {
    // Encoding owned strings and enums into a Vec cannot fail.
    bincode::serde::encode_to_vec(records, bincode::config::standard()).unwrap_or_default()
}

/// How many records an `H` or `L` value lists, without decoding them: the length that starts
/// the encoding of a sequence.
pub(crate) fn held_count(bytes: &[u8]) -> Result<u32, ProjectionError> {
    bincode::serde::decode_from_slice::<u64, _>(bytes, bincode::config::standard())
        .map(|(n, _)| u32::try_from(n).unwrap_or(u32::MAX))
        .map_err(|e| ProjectionError::Corrupt(e.to_string()))
}

/// The records of an `H` or `L` value.
pub(crate) fn held_from(bytes: &[u8]) -> Result<Vec<HeldRecord>, ProjectionError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(h, _)| h)
        .map_err(|e| ProjectionError::Corrupt(e.to_string()))
}

/// The values of the per-recipient keys `key(n)` of `wanted` (recipients in increasing order;
/// those without a value left out). When they lie close together (the recipients of a program
/// of a fifth of the municipality, say) the keys between the first and the last are read as one
/// range, in leaf order, keeping only the wanted ones: cheaper than a search from the root for
/// each.
pub(crate) fn read_values(
    view: &crate::db::View,
    key: fn(u64) -> Vec<u8>,
    wanted: &[u64],
) -> Result<Vec<(u64, Vec<u8>)>, ProjectionError> {
    let mut found = Vec::with_capacity(wanted.len());
    let (Some(&first), Some(&last)) = (wanted.first(), wanted.last()) else { return Ok(found) };
    let span = last.saturating_sub(first).saturating_add(1);
    if span > DENSE_SPAN.saturating_mul(wanted.len() as u64) {
        for &n in wanted {
            if let Some(bytes) = view.get(&key(n))? {
                found.push((n, bytes));
            }
        }
        return Ok(found);
    }
    let mut next = wanted.iter().peekable();
    view.for_each_between(&key(first), &key(last), |k, v| {
        let Some(n) = keys::tail_recipient(k) else { return Ok(()) };
        while next.next_if(|w| **w < n).is_some() {}
        if next.next_if_eq(&&n).is_some() {
            found.push((n, v.to_vec()));
        }
        Ok(())
    })?;
    Ok(found)
}

/// Recipients spanned per wanted one up to which [`read_values`] reads one range.
const DENSE_SPAN: u64 = 16;

/// What the fold holds of a recipient between two commits, written at the next one.
#[derive(Default)]
struct Held {
    /// The entries, once loaded, and their markers as stored.
    entries: Option<(Entries, Markers)>,
    entries_changed: bool,
    fees: Option<Fees>,
    fees_changed: bool,
    /// The search keys as stored, once an event could move them.
    index_before: Option<BTreeSet<Vec<u8>>>,
    /// Spans whose record an event may have changed since it was last computed: computed when
    /// needed (at the commit, or before a batch touches the recipient), once however many events
    /// touched them.
    stale: BTreeSet<u32>,
    /// Of those, the basic items (name, kana, address) a change of them left to records of spans
    /// that had ended before it took effect.
    frozen: BTreeMap<u32, [String; 3]>,
}

/// The basic items of a recipient as records carry them.
fn basic_items(r: &Recipient) -> [String; 3] {
    [r.name.to_string(), r.kana.to_string(), r.address.to_string()]
}

/// The fee-relevant content of each span of `r` that `scope` covers.
fn fee_versions(r: Option<&Recipient>, scope: &Scope) -> BTreeMap<u32, FeeVersion> {
    let mut out = BTreeMap::new();
    for cert in r.iter().flat_map(|r| r.certificates.iter()).filter(|c| scope.covers(c)) {
        for span in &cert.spans {
            out.insert(span.no.0, FeeVersion::of_span(cert, span));
        }
    }
    out
}

/// The `B` value of a program after `batch`: its to-position and batch number.
pub(crate) fn last_batch_value(batch: &PmhBatch, batch_number: u64) -> Vec<u8> {
    let mut value = batch.to_position.to_be_bytes().to_vec();
    value.extend_from_slice(&batch_number.to_be_bytes());
    value
}

/// Which records an event can change.
enum Scope {
    /// Those of one certificate.
    Certificate(daicho_domain::ids::CertificateRef),
    /// Every record of the person.
    All,
}

impl Scope {
    fn covers(&self, c: &daicho_domain::state::Certificate) -> bool {
        match self {
            Scope::All => true,
            Scope::Certificate(id) => c.id == *id,
        }
    }
}

/// What the fold carries from one envelope to the next.
pub(crate) struct Fold<'a> {
    /// The committed register under the overlay; `None` in the bulk rebuild.
    pub db: Option<&'a Db>,
    pub store: &'a Store,
    pub secret: &'a [u8; 32],
    pub overlay: Overlay,
    /// See [`crate::Projections::set_batch_part`].
    pub batch_part: usize,
    /// Decoded recipients; `dirty` ones are written at the next commit.
    pub cache: &'a mut HashMap<u64, Option<Recipient>>,
    pub dirty: BTreeSet<u64>,
    /// Entries, fee histories and search keys of the recipients touched since the last commit.
    held: BTreeMap<u64, Held>,
    pub config: &'a mut Option<std::sync::Arc<Config>>,
    caps: CapForms,
}

/// A recipient's stored entries and fee histories (`E` and `V` values).
type Stored = (u64, Option<Vec<u8>>, Option<Vec<u8>>);

/// What a PMH batch does to the entries of its program.
struct Settle<'p> {
    program_key: &'p str,
    /// The configuration in force (the markers follow it) and the program in it.
    config: Option<&'p Config>,
    program: Option<&'p daicho_domain::config::Program>,
    /// A full replacement ([`crate::export::replaces`]).
    replacing: bool,
    full: bool,
    uploaded: chrono::NaiveDate,
    /// The batch's number.
    number: u64,
}

impl Settle<'_> {
    /// PMH now has the current content of every record of the program the batch sent (a
    /// pending one; with a full batch, every current one); held-back records keep what PMH had,
    /// except from a full replacement. Returns whether the entries changed and the fee versions
    /// that follow (from this batch on PMH has the record, or no longer has it).
    fn entries(&self, entries: &mut Entries) -> (bool, Vec<(u32, FeeVersion)>) {
        let mut fees = Vec::new();
        let mut changed = false;
        for (span, entry) in entries.iter_mut() {
            if entry.program != self.program_key || !(entry.pending() || (self.full && entry.current.is_some())) {
                continue;
            }
            let pending = entry.pending();
            let before = (entry.exported().is_some(), pending, entry.batch, entry.listed);
            let had = before.0;
            if entry.refused_unchanged() {
                // Not sent again until corrected, not even in full; a full replacement leaves
                // PMH without the earlier version it kept.
                if !(self.replacing && entry.forget_earlier()) {
                    continue;
                }
            } else {
                match &entry.current {
                    // Sent as isDeleted, or left out of a full replacement: PMH has nothing.
                    None => entry.clear_exported(),
                    // Only a record that changed takes this batch's number: results naming a full
                    // batch apply to the records it sent again (`Entry::refuse`), so a full
                    // batch rewrites no unchanged entry.
                    Some(current) => {
                        let reasons = validate(current, self.program);
                        if reasons.is_empty() {
                            if pending {
                                entry.set_exported_current(self.number);
                            }
                        } else {
                            let fingerprint = held_fingerprint(current, &reasons);
                            // Held back from a full replacement: PMH drops what it had. From a diff
                            // or a resend PMH keeps what it had.
                            if self.replacing {
                                entry.clear_exported();
                            }
                            // A pending record held back: the batch lists it, and a later one
                            // only once it changes. The first batch that listed it as it is
                            // stays named (a batch visits only the records it can change: one
                            // listed already is not among them).
                            if entry.pending() && !entry.listed_as(fingerprint) {
                                entry.listed = Some(Listed { batch: self.number, fingerprint });
                            }
                        }
                    }
                }
            }
            let now = entry.exported().is_some();
            changed |= before != (now, entry.pending(), entry.batch, entry.listed);
            if !had && now {
                // From this batch on PMH has the record: it counts for the fee.
                fees.push((*span, FeeVersion::Exported));
            } else if had && !now && entry.current.is_some() {
                // PMH no longer has a record the ledger still has: it stops counting.
                fees.push((*span, FeeVersion::Unexported { on: codec::date_to_days(self.uploaded) }));
            }
        }
        let count = entries.len();
        entries.retain(|_, e| e.current.is_some() || e.exported().is_some());
        (changed || entries.len() != count, fees)
    }

    /// [`Settle::entries`] on a recipient's stored entries and fee histories, as writes: the
    /// bytes [`Fold::flush`] writes for the same change.
    fn stored(
        &self,
        n: u64,
        entries: Option<&[u8]>,
        fees: Option<&[u8]>,
        position: u64,
        out: &mut Vec<Write>,
    ) -> Result<(), ProjectionError> {
        let Some(bytes) = entries else { return Ok(()) };
        let mut entries = entries_from(bytes)?;
        let before = markers_of(n, &entries, self.config);
        let (changed, versions) = self.entries(&mut entries);
        if changed {
            if entries.is_empty() {
                out.push((keys::entries_of(n), None));
            } else {
                out.push((keys::entries_of(n), Some(entries_bytes(&entries)?)));
            }
            marker_writes(&before, &markers_of(n, &entries, self.config), out);
        }
        if !versions.is_empty() {
            let mut history = match fees {
                Some(bytes) => fees_from(bytes)?,
                None => Fees::new(),
            };
            for (span, version) in versions {
                history.entry(span).or_default().push((position, version));
            }
            out.push((keys::fees_of(n), Some(fees_bytes(&history)?)));
        }
        Ok(())
    }
}

/// The recipient number of a stream `recipient-<n>`.
pub fn recipient_number(stream: &str) -> Option<u64> {
    stream.strip_prefix("recipient-")?.parse().ok()
}

fn decode_event(e: &Envelope) -> Result<Event, ProjectionError> {
    let at = |why: String| ProjectionError::Event { position: e.position.0, reason: why };
    let body = codec::decode(&e.event_type, e.schema_version, &e.payload).map_err(|x| at(x.to_string()))?;
    let command = CommandId::parse(&e.correlation_id).map_err(|x| at(x.code().to_owned()))?;
    Ok(Event { command, effective: e.effective, body })
}

impl<'a> Fold<'a> {
    pub fn new(
        db: Option<&'a Db>,
        store: &'a Store,
        secret: &'a [u8; 32],
        cache: &'a mut HashMap<u64, Option<Recipient>>,
        config: &'a mut Option<std::sync::Arc<Config>>,
        batch_part: usize,
    ) -> Fold<'a> {
        Fold {
            db,
            store,
            secret,
            overlay: Overlay { writes: BTreeMap::new() },
            batch_part,
            cache,
            dirty: BTreeSet::new(),
            held: BTreeMap::new(),
            config,
            caps: CapForms::default(),
        }
    }
}

impl Fold<'_> {
    /// Applies one envelope (a PMH batch must be applied with nothing held: see the engine).
    pub fn apply(&mut self, e: &Envelope) -> Result<(), ProjectionError> {
        match (e.stream.as_str(), e.event_type.as_str()) {
            ("config", CONFIGURATION_SET) => {
                let text = codec::decode_configuration(e.schema_version, &e.payload)
                    .map_err(|x| ProjectionError::Event { position: e.position.0, reason: x.to_string() })?;
                let config = Config::from_toml(&text)
                    .map_err(|x| ProjectionError::Event { position: e.position.0, reason: x.to_string() })?;
                self.overlay.put(keys::CONFIG.to_vec(), text.into_bytes());
                *self.config = Some(std::sync::Arc::new(config));
                match self.db {
                    Some(db) => self.remark(db),
                    None => Ok(()),
                }
            }
            ("pmh", PMH_BATCH_EXPORTED) => {
                let batch = codec::decode_pmh_batch(e.schema_version, &e.payload)
                    .map_err(|x| ProjectionError::Event { position: e.position.0, reason: x.to_string() })?;
                self.apply_batch(&batch, e.stream_version, (e.position.0, e.effective), None)
            }
            // In the log on the `pmh-results` stream; the bulk rebuild hands it to each recipient it
            // names as an event of the recipient's stream.
            (stream, PMH_RESULTS_RECORDED) => {
                let results = codec::decode_pmh_results(e.schema_version, &e.payload)
                    .map_err(|x| ProjectionError::Event { position: e.position.0, reason: x.to_string() })?;
                self.apply_results(&results, e.position.0, recipient_number(stream))
            }
            (stream, _) => match recipient_number(stream) {
                Some(n) => self.apply_recipient(n, e),
                None => Ok(()),
            },
        }
    }

    /// Recipient `n` as folded so far, taken out of the cache (the fold puts it back).
    fn take(&mut self, n: u64) -> Result<Option<Recipient>, ProjectionError> {
        if let Some(r) = self.cache.remove(&n) {
            return Ok(r);
        }
        match self.overlay.get(self.db, &keys::recipient(n))? {
            None => Ok(None),
            Some(bytes) => Ok(Some(
                codec::snapshot::decode_recipient(&unpack(&bytes)?)
                    .map_err(|x| ProjectionError::Corrupt(x.to_string()))?,
            )),
        }
    }

    fn apply_recipient(&mut self, n: u64, e: &Envelope) -> Result<(), ProjectionError> {
        let event = decode_event(e)?;
        if matches!(event.body, EventBody::DvSupportStarted) {
            // Kept even when the measure is rescinded: the privacy policy still covers it.
            self.overlay.put(keys::ever_protected(n), Vec::new());
        }
        // Records of spans that ended before a change to the basic items took effect keep the
        // items they had: they were true then (and PMH need not hear of them again).
        let mut keep_basic_before = match event.body {
            EventBody::PersonalDetailsChanged { .. } | EventBody::MovedIn { .. } => Some(event.effective),
            _ => None,
        };
        // What the event can change: one certificate's records, or every record of the person;
        // the search keys only when an indexed value can move.
        let (scope, indexed) = match &event.body {
            // A reissue changes the card's 交付年月日, a card item PMH is sent.
            EventBody::CertificateReissued { certificate, .. } => (Scope::Certificate(certificate.clone()), false),
            EventBody::CertificateGranted { certificate, .. }
            | EventBody::CertificateRenewed { certificate, .. }
            | EventBody::CertificateChanged { certificate, .. }
            | EventBody::CertificateEnded { certificate, .. } => (Scope::Certificate(certificate.clone()), true),
            EventBody::DvSupportStarted | EventBody::DvSupportEnded | EventBody::MovedIn { .. } => (Scope::All, false),
            _ => (Scope::All, true),
        };
        let mut recipient = self.take(n)?;
        let fees_before = fee_versions(recipient.as_ref(), &scope);
        let basic_before = match event.body {
            EventBody::PersonalDetailsChanged { .. }
            | EventBody::MovedIn { .. }
            | EventBody::CommandRescinded { .. } => recipient.as_ref().map(basic_items),
            _ => None,
        };
        if indexed && self.held.get(&n).is_none_or(|h| h.index_before.is_none()) {
            // The search keys follow the recipient: computed once before the first change of
            // this commit, and once after the last (at the commit).
            let keys = self.index_keys(n, recipient.as_ref());
            self.held.entry(n).or_default().index_before = Some(keys);
        }
        if let EventBody::CommandRescinded { target, .. } = &event.body {
            // The history is in the log: re-fold the stream up to this event.
            let mut state = State::default();
            for x in self.store.read_stream(&e.stream)? {
                if x.position > e.position {
                    break;
                }
                let decoded = decode_event(&x)?;
                if decoded.command == *target {
                    keep_basic_before = Some(decoded.effective);
                }
                state = evolve(state, &decoded);
            }
            recipient = state.recipient().cloned();
        } else {
            apply_event(&mut recipient, &event);
        }
        let before = (fees_before, basic_before);
        let updated = self.update_pmh(n, before, recipient.as_ref(), &scope, keep_basic_before, e.position.0);
        self.cache.insert(n, recipient);
        self.dirty.insert(n);
        updated
    }

    fn index_keys(&self, n: u64, r: Option<&Recipient>) -> BTreeSet<Vec<u8>> {
        let mut set = BTreeSet::new();
        let Some(r) = r else { return set };
        set.insert(keys::text_index(keys::NAME, &name_key(r.name.as_str()), n));
        set.insert(keys::text_index(keys::KANA, &kana_key(r.kana.as_str()), n));
        if let Some(my_number) = &r.my_number {
            set.insert(keys::my_number(&self.my_number_mac(my_number), n));
        }
        for cert in &r.certificates {
            for span in &cert.spans {
                if let Some(p) = span.terms.payer_number {
                    set.insert(keys::text_index(keys::PAYER, &p.as_string(), n));
                }
                set.insert(keys::text_index(keys::RECIPIENT_NUMBER, span.terms.recipient_number.as_str(), n));
            }
        }
        set
    }

    pub fn my_number_mac(&self, n: &MyNumber) -> [u8; 32] {
        hmac_sha256(self.secret, n.reveal().as_bytes())
    }

    /// Says recipient `n`'s entries changed: they are written at the commit.
    fn entries_changed(&mut self, n: u64) {
        self.held.entry(n).or_default().entries_changed = true;
    }

    /// The entries of recipient `n`, loaded on first use since the last commit.
    fn entries_mut(&mut self, n: u64) -> Result<&mut Entries, ProjectionError> {
        let loaded = self.held.get(&n).is_some_and(|h| h.entries.is_some());
        if !loaded {
            let entries = match self.overlay.get(self.db, &keys::entries_of(n))? {
                Some(bytes) => entries_from(&bytes)?,
                None => Entries::new(),
            };
            let markers = markers_of(n, &entries, self.config.as_deref());
            self.held.entry(n).or_default().entries = Some((entries, markers));
        }
        let held = self.held.entry(n).or_default();
        match &mut held.entries {
            Some((entries, _)) => Ok(entries),
            None => Err(ProjectionError::Corrupt("entries not loaded".into())),
        }
    }

    /// Whether recipient `n` has, in `program`, an entry pending and one with a current record
    /// (the bulk rebuild: which batches touch the recipient).
    pub fn program_state(&self, n: u64, program: &str) -> (bool, bool) {
        let Some((entries, _)) = self.held.get(&n).and_then(|h| h.entries.as_ref()) else { return (false, false) };
        let mut state = (false, false);
        for e in entries.values().filter(|e| e.program == program) {
            state.0 |= e.pending();
            state.1 |= e.current.is_some();
        }
        state
    }

    /// Appends versions to recipient `n`'s fee histories.
    fn push_fees(&mut self, n: u64, position: u64, versions: Vec<(u32, FeeVersion)>) -> Result<(), ProjectionError> {
        if versions.is_empty() {
            return Ok(());
        }
        self.fees_of(n)?;
        let held = self.held.entry(n).or_default();
        held.fees_changed = true;
        if let Some(fees) = &mut held.fees {
            for (span, version) in versions {
                fees.entry(span).or_default().push((position, version));
            }
        }
        Ok(())
    }

    /// Records what an event changed in recipient `n`'s PMH records: the fee histories now (a
    /// record's fee-relevant content comes from its certificate and span alone), the records
    /// themselves later ([`Fold::materialize`]). `before`: the fee versions of the spans in scope
    /// and the basic items, before the event.
    fn update_pmh(
        &mut self,
        n: u64,
        (fees_before, basic_before): (BTreeMap<u32, FeeVersion>, Option<[String; 3]>),
        new: Option<&Recipient>,
        scope: &Scope,
        keep_basic_before: Option<chrono::NaiveDate>,
        position: u64,
    ) -> Result<(), ProjectionError> {
        let fees_after = fee_versions(new, scope);
        let spans: BTreeSet<u32> = fees_before.keys().chain(fees_after.keys()).copied().collect();
        if spans.is_empty() {
            return Ok(());
        }
        let fees: Vec<(u32, FeeVersion)> = spans
            .iter()
            .filter(|s| fees_before.get(s) != fees_after.get(s))
            .map(|s| (*s, fees_after.get(s).cloned().unwrap_or(FeeVersion::Removed)))
            .collect();
        // Records of spans that had ended before a change to the basic items took effect keep
        // the items they had (the record's as it was: frozen by an earlier change, or the
        // person's before this event).
        let mut frozen: Vec<(u32, Option<[String; 3]>)> = Vec::new();
        match (keep_basic_before, new) {
            (Some(cutoff), Some(r)) => {
                let cutoff = cutoff.to_string();
                let ends: BTreeMap<u32, String> = r
                    .certificates
                    .iter()
                    .filter(|c| scope.covers(c))
                    .flat_map(|c| c.spans.iter().map(|s| (s.no.0, crate::pmh::iso_date(s.period.end()))))
                    .collect();
                for span in &spans {
                    let ended = ends.get(span).is_some_and(|end| *end < cutoff);
                    if !(ended && fees_before.contains_key(span)) {
                        frozen.push((*span, None));
                        continue;
                    }
                    let held = self.held.get(&n);
                    let items = if held.is_some_and(|h| h.stale.contains(span)) {
                        held.and_then(|h| h.frozen.get(span)).cloned().or_else(|| basic_before.clone())
                    } else {
                        let entries = self.entries_mut(n)?;
                        entries
                            .get(span)
                            .and_then(|e| e.current.as_ref())
                            .map(|c| [c.name.clone(), c.kana.clone(), c.address.clone()])
                    };
                    frozen.push((*span, items));
                }
            }
            _ => frozen.extend(spans.iter().map(|s| (*s, None))),
        }
        let held = self.held.entry(n).or_default();
        for (span, items) in frozen {
            match items {
                Some(items) => held.frozen.insert(span, items),
                None => held.frozen.remove(&span),
            };
        }
        held.stale.extend(spans);
        self.push_fees(n, position, fees)
    }

    /// Computes the records of recipient `n`'s stale spans from the recipient as folded, and
    /// updates its entries.
    pub fn materialize(&mut self, n: u64) -> Result<(), ProjectionError> {
        let Some(held) = self.held.get_mut(&n) else { return Ok(()) };
        if held.stale.is_empty() {
            return Ok(());
        }
        let stale = std::mem::take(&mut held.stale);
        let frozen = std::mem::take(&mut held.frozen);
        let caps = &mut self.caps;
        let mut records: BTreeMap<u32, PmhRecord> = match self.cache.get(&n).and_then(Option::as_ref) {
            Some(r) => records_with(n, r, |c| c.spans.iter().any(|s| stale.contains(&s.no.0)), caps)
                .into_iter()
                .map(|r| (r.span, r))
                .collect(),
            None => BTreeMap::new(),
        };
        let entries = self.entries_mut(n)?;
        let mut changed = false;
        for span in stale {
            let mut current = records.remove(&span);
            if let (Some(record), Some([name, kana, address])) = (current.as_mut(), frozen.get(&span)) {
                record.name.clone_from(name);
                record.kana.clone_from(kana);
                record.address.clone_from(address);
            }
            match entries.get_mut(&span) {
                Some(entry) => {
                    changed |= entry.set_current(current);
                    if entry.current.is_none() && entry.exported().is_none() {
                        entries.remove(&span);
                        changed = true;
                    }
                }
                None => {
                    if let Some(record) = current {
                        let program = record.program.clone();
                        entries.insert(span, Entry::new(program, record));
                        changed = true;
                    }
                }
            }
        }
        if changed {
            self.entries_changed(n);
        }
        Ok(())
    }

    /// PMH's results for a batch: every record named is marked refused (unless a later batch
    /// sent it again). `only`: the refusals of one recipient (the bulk rebuild); otherwise all.
    /// A record PMH had never had before the batch (its fee history shows it first exported by
    /// the batch) stops counting for the fee: PMH never registered it.
    pub fn apply_results(
        &mut self,
        results: &PmhResults,
        position: u64,
        only: Option<u64>,
    ) -> Result<(), ProjectionError> {
        for r in results.refused.iter().filter(|r| only.is_none_or(|n| r.recipient == n)) {
            let n = r.recipient;
            self.materialize(n)?;
            let new_in_batch = self.fees_of(n)?.get(&r.span).is_some_and(|history| {
                history.iter().any(|(p, v)| *p == results.batch_position && *v == FeeVersion::Exported)
            });
            // PMH keeps an earlier version unless it never had one or the batch replaced the
            // program (then it has nothing of the record).
            let earlier = !new_in_batch && !results.replacing;
            let entries = self.entries_mut(n)?;
            let Some(entry) = entries.get_mut(&r.span) else { continue };
            if entry.program != results.program.as_str()
                || !entry.refuse((results.batch, results.full), r.code.as_str(), r.message.as_str(), earlier)
            {
                continue;
            }
            // Withdrawn since, and PMH has nothing of it: nothing is left to send.
            if entry.current().is_none() && entry.exported().is_none() {
                entries.remove(&r.span);
            }
            self.entries_changed(n);
            let fee = if new_in_batch {
                Some(FeeVersion::Refused { exported_at: results.batch_position })
            } else if results.replacing {
                // PMH had it until the replacement, which it refused: from that day it has not.
                Some(FeeVersion::Unexported { on: codec::date_to_days(results.batch_day) })
            } else {
                None
            };
            if let Some(fee) = fee {
                self.push_fees(n, position, vec![(r.span, fee)])?;
            }
        }
        Ok(())
    }

    /// Recipient `n`'s fee histories, loaded on first use since the last commit.
    fn fees_of(&mut self, n: u64) -> Result<&Fees, ProjectionError> {
        let loaded = self.held.get(&n).is_some_and(|h| h.fees.is_some());
        if !loaded {
            let fees = match self.overlay.get(self.db, &keys::fees_of(n))? {
                Some(bytes) => fees_from(&bytes)?,
                None => Fees::new(),
            };
            self.held.entry(n).or_default().fees = Some(fees);
        }
        match self.held.get(&n).and_then(|h| h.fees.as_ref()) {
            Some(fees) => Ok(fees),
            None => Err(ProjectionError::Corrupt("fees not loaded".into())),
        }
    }

    /// A batch was exported: PMH now has the current content of every record it sent; after a
    /// full replacement ([`crate::export::replaces`]) it has nothing else of the program.
    /// `only`: the records of one recipient, all held (the bulk rebuild); otherwise every record
    /// of the program, committed.
    pub fn apply_batch(
        &mut self,
        batch: &PmhBatch,
        batch_number: u64,
        (position, uploaded): (u64, chrono::NaiveDate),
        only: Option<u64>,
    ) -> Result<(), ProjectionError> {
        let program_key = batch.program.as_str().to_owned();
        let config = self.config.clone();
        let config = config.as_deref();
        let program = config.and_then(|c| c.program(&batch.program));
        let settle = Settle {
            program_key: &program_key,
            config,
            program,
            replacing: program.is_some_and(|p| crate::export::replaces(p, batch.mode)),
            full: batch.mode == PmhMode::Full,
            uploaded,
            number: batch_number,
        };
        match (only, self.db) {
            (Some(n), _) => {
                self.materialize(n)?;
                let entries = self.entries_mut(n)?;
                let (changed, fees) = settle.entries(entries);
                if changed {
                    self.entries_changed(n);
                }
                self.push_fees(n, position, fees)?;
            }
            (None, Some(db)) => self.apply_batch_committed(db, &settle, position)?,
            (None, None) => {}
        }
        if only.is_none() {
            self.overlay.put(keys::last_batch(&program_key), last_batch_value(batch, batch_number));
        }
        Ok(())
    }

    /// [`Fold::apply_batch`] over the committed register: every recipient with an entry of the
    /// program that the batch can change, in parts of [`Fold::batch_part`] recipients, each part
    /// settled on all cores and written without a checkpoint. A full batch of a large
    /// municipality touches millions of entries; the checkpoint only moves past this event with
    /// the engine's commit after the last part, and applying the event again after a crash in
    /// between gives the same result (entries already updated are no longer pending, and a
    /// record PMH already has is not counted again for the fee).
    fn apply_batch_committed(&mut self, db: &Db, settle: &Settle<'_>, position: u64) -> Result<(), ProjectionError> {
        // The part reads the register itself: what is held and pending goes there first.
        self.write_part()?;
        // Only a pending entry that can be sent changes, except in a full replacement, where
        // PMH also drops every current record held back (pending or not): a full resend of a
        // diff-history program finds what PMH already has unchanged, and records held back
        // keep what PMH had.
        // Records held back and not yet listed take the batch's number as listing them.
        let mut prefixes = vec![
            keys::program_prefix(keys::DIRTY, settle.program_key),
            keys::program_prefix(keys::HELD, settle.program_key),
        ];
        if settle.replacing {
            prefixes.push(keys::program_prefix(keys::ACTIVE, settle.program_key));
        }
        let mut recipients: BTreeSet<u64> = BTreeSet::new();
        {
            let view = db.view()?;
            for prefix in prefixes {
                for item in view.scan_prefix(&prefix)? {
                    let (key, _) = item?;
                    recipients.extend(keys::tail_recipient(&key));
                }
            }
        }
        let recipients: Vec<u64> = recipients.into_iter().collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 4);
        for part in recipients.chunks(self.batch_part.max(1)) {
            let stored: Vec<Stored> = {
                let view = db.view()?;
                let entries = read_values(&view, keys::entries_of, part)?;
                let mut fees = read_values(&view, keys::fees_of, part)?.into_iter().peekable();
                entries
                    .into_iter()
                    .map(|(n, e)| {
                        while fees.next_if(|(m, _)| *m < n).is_some() {}
                        let f = fees.next_if(|(m, _)| *m == n).map(|(_, f)| f);
                        (n, Some(e), f)
                    })
                    .collect()
            };
            let per_thread = stored.len().div_ceil(threads).max(1);
            let written: Vec<Result<Vec<Write>, ProjectionError>> = std::thread::scope(|s| {
                let workers: Vec<_> = stored
                    .chunks(per_thread)
                    .map(|chunk| {
                        s.spawn(move || {
                            let mut writes = Vec::new();
                            for (n, entries, fees) in chunk {
                                settle.stored(*n, entries.as_deref(), fees.as_deref(), position, &mut writes)?;
                            }
                            Ok(writes)
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .map(|w| {
                        w.join().unwrap_or_else(|_| Err(ProjectionError::Corrupt("a batch worker panicked".into())))
                    })
                    .collect()
            });
            let mut writes = Vec::new();
            for w in written {
                writes.extend(w?);
            }
            db.apply(writes, false)?;
        }
        Ok(())
    }

    /// Writes what is held and pending without a checkpoint (only while applying a PMH batch,
    /// which the engine applies alone in its chunk).
    fn write_part(&mut self) -> Result<(), ProjectionError> {
        self.flush()?;
        match self.db {
            Some(db) => db.apply(std::mem::take(&mut self.overlay.writes), false),
            None => Ok(()),
        }
    }

    /// The configuration changed: marks every pending entry of the committed register again
    /// (which of them validation holds back follows the configuration). Applied with nothing
    /// held, as the engine applies a configuration alone; the writes go with its commit.
    fn remark(&mut self, db: &Db) -> Result<(), ProjectionError> {
        let mut stored: BTreeMap<u64, Markers> = BTreeMap::new();
        let view = db.view()?;
        for prefix in [keys::DIRTY, keys::HELD, keys::LISTED] {
            for item in view.scan_prefix(&[prefix])? {
                let (k, v) = item?;
                if let Some(n) = keys::tail_recipient(&k) {
                    stored.entry(n).or_default().insert(k, v);
                }
            }
        }
        for (n, before) in stored {
            let entries = match view.get(&keys::entries_of(n))? {
                Some(bytes) => entries_from(&bytes)?,
                None => Entries::new(),
            };
            let mut after = markers_of(n, &entries, self.config.as_deref());
            after.retain(|k, _| matches!(k.first(), Some(&keys::DIRTY | &keys::HELD | &keys::LISTED)));
            marker_writes(&before, &after, &mut self.overlay.writes);
        }
        Ok(())
    }

    /// Moves what is held (snapshots, entries and their markers, fee histories, search keys) to
    /// the overlay, as writes of the next commit.
    pub fn flush(&mut self) -> Result<(), ProjectionError> {
        let stale: Vec<u64> = self.held.iter().filter(|(_, h)| !h.stale.is_empty()).map(|(n, _)| *n).collect();
        for n in stale {
            self.materialize(n)?;
        }
        for n in std::mem::take(&mut self.dirty) {
            match self.cache.get(&n) {
                Some(Some(r)) => {
                    let bytes =
                        codec::snapshot::encode_recipient(r).map_err(|x| ProjectionError::Corrupt(x.to_string()))?;
                    self.overlay.put(keys::recipient(n), pack(&bytes));
                }
                Some(None) => self.overlay.remove(keys::recipient(n)),
                None => {}
            }
        }
        for (n, held) in std::mem::take(&mut self.held) {
            if let (Some((entries, before)), true) = (&held.entries, held.entries_changed) {
                if entries.is_empty() {
                    self.overlay.remove(keys::entries_of(n));
                } else {
                    self.overlay.put(keys::entries_of(n), entries_bytes(entries)?);
                }
                marker_writes(before, &markers_of(n, entries, self.config.as_deref()), &mut self.overlay.writes);
            }
            if let (Some(fees), true) = (&held.fees, held.fees_changed) {
                self.overlay.put(keys::fees_of(n), fees_bytes(fees)?);
            }
            if let Some(before) = &held.index_before {
                let now = self.cache.get(&n).and_then(Option::as_ref);
                let after = self.index_keys(n, now);
                for k in before.difference(&after) {
                    self.overlay.remove(k.clone());
                }
                for k in after.difference(before) {
                    self.overlay.put(k.clone(), Vec::new());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(address: &str) -> PmhRecord {
        PmhRecord {
            recipient: 1,
            span: 1,
            program: "kodomo".into(),
            certificate: "K1".into(),
            my_number: None,
            name: "桜 太郎".into(),
            kana: "サクラ タロウ".into(),
            address: address.into(),
            birth_date: "2018-05-05".into(),
            sex: "1".into(),
            not_disclosed: false,
            payer_number: None,
            recipient_number: "000123".into(),
            income_segment: None,
            designated: Vec::new(),
            always_reimbursement: false,
            copay: None,
            valid_from: "2026-04-01".into(),
            valid_to: "2027-03-31".into(),
            disease: None,
            issued: "2026-04-01".into(),
        }
    }

    #[test]
    fn what_pmh_has_is_kept_once_and_in_one_form_whatever_the_path() {
        let mut e = Entry::new("kodomo".into(), record("本町"));
        assert!(e.pending() && e.exported().is_none());
        e.set_exported_current(1);
        assert!(!e.pending());
        assert_eq!(e.exported(), Some(&record("本町")));
        assert_eq!(e.sent, Sent::Current, "one copy when PMH has the current record");
        // A move: PMH still has the old address, sent again by the next batch.
        assert!(e.set_current(Some(record("青葉台"))));
        assert!(e.pending());
        assert_eq!(e.exported(), Some(&record("本町")));
        // Moving back: nothing to send, and the same bytes as never having moved.
        assert!(e.set_current(Some(record("本町"))));
        assert!(!e.pending());
        let mut never_moved = Entry::new("kodomo".into(), record("本町"));
        never_moved.set_exported_current(1);
        assert_eq!(
            entries_bytes(&[(1, e.clone())].into()).unwrap(),
            entries_bytes(&[(1, never_moved)].into()).unwrap()
        );
        assert!(!e.set_current(Some(record("本町"))), "no change");
        // Withdrawn: PMH's record is kept for the isDeleted line.
        assert!(e.set_current(None));
        assert!(e.pending());
        assert_eq!(e.clone().into_parts(), (None, true, Some(record("本町"))));
        e.clear_exported();
        assert!(!e.pending() && e.exported().is_none());
    }
}
