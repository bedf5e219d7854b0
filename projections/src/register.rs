//! The `register` projection's fold: what one envelope changes.
//!
//! - `config` stream, `configuration_set`: the configuration in force (validation of PMH records
//!   needs it).
//! - `recipient-<n>` streams: the recipient's snapshot (advanced with `apply_event`; a rescind
//!   re-folds the stream from the log), its search index entries, and its PMH entries.
//! - `pmh` stream, `pmh_batch_exported`: what PMH now has: exported := current for every record
//!   the batch sent; a record held back keeps what PMH had (it stays pending), except from a
//!   full replacement, after which PMH has nothing of it (`export::replaces`).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use daicho_domain::codec::{self, CONFIGURATION_SET, PMH_BATCH_EXPORTED, PmhBatch};
use daicho_domain::config::{Config, PmhMode};
use daicho_domain::event::{Event, EventBody};
use daicho_domain::ids::CommandId;
use daicho_domain::state::{Recipient, State, apply_event};
use daicho_domain::text::{kana_key, name_key};
use daicho_domain::{evolve, numbers::MyNumber};
use daicho_store::{Envelope, Store};
use serde::{Deserialize, Serialize};

use crate::ProjectionError;
use crate::fee::{FeeVersion, fee_history_bytes, fee_history_from};
use crate::keyed::hmac_sha256;
use crate::keys;
use crate::pmh::{PmhRecord, records_of, validate};

/// Pending writes above which applying a PMH batch writes a part (see `apply_batch`).
pub(crate) const BATCH_WRITES_MAX: usize = 100_000;

/// Pending writes over the tree: the last write of a key wins; `None` removes.
pub(crate) struct Overlay {
    pub writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Overlay {
    pub fn get(&self, tree: &sled::Tree, key: &[u8]) -> Result<Option<Vec<u8>>, ProjectionError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => Ok(tree.get(key)?.map(|v| v.to_vec())),
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    pub fn remove(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }
}

/// A PMH entry: the record as it is now, and as PMH has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub program: String,
    pub current: Option<PmhRecord>,
    pub exported: Option<PmhRecord>,
}

pub(crate) fn entry_bytes(e: &Entry) -> Result<Vec<u8>, ProjectionError> {
    bincode::serde::encode_to_vec(e, bincode::config::standard()).map_err(|e| ProjectionError::Corrupt(e.to_string()))
}

pub(crate) fn entry_from(bytes: &[u8]) -> Result<Entry, ProjectionError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map(|(e, _)| e)
        .map_err(|e| ProjectionError::Corrupt(e.to_string()))
}

/// Which records an event can change.
enum Scope {
    /// Those of one certificate.
    Certificate(daicho_domain::ids::CertificateRef),
    /// Every record of the person.
    All,
}

/// What the fold carries from one envelope to the next.
pub(crate) struct Fold<'a> {
    pub tree: &'a sled::Tree,
    pub store: &'a Store,
    pub secret: &'a [u8; 32],
    pub overlay: Overlay,
    /// See [`crate::Projections::set_batch_part`].
    pub batch_part: usize,
    /// Decoded recipients; `dirty` ones are written at the next commit.
    pub cache: &'a mut HashMap<u64, Option<Recipient>>,
    pub dirty: BTreeSet<u64>,
    pub config: &'a mut Option<Config>,
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

impl Fold<'_> {
    /// Applies one envelope (a PMH batch must be applied on an empty overlay: see the engine).
    pub fn apply(&mut self, e: &Envelope) -> Result<(), ProjectionError> {
        match (e.stream.as_str(), e.event_type.as_str()) {
            ("config", CONFIGURATION_SET) => {
                let text = codec::decode_configuration(e.schema_version, &e.payload)
                    .map_err(|x| ProjectionError::Event { position: e.position.0, reason: x.to_string() })?;
                let config = Config::from_toml(&text)
                    .map_err(|x| ProjectionError::Event { position: e.position.0, reason: x.to_string() })?;
                self.overlay.put(keys::CONFIG.to_vec(), text.into_bytes());
                *self.config = Some(config);
                Ok(())
            }
            ("pmh", PMH_BATCH_EXPORTED) => {
                let batch = codec::decode_pmh_batch(e.schema_version, &e.payload)
                    .map_err(|x| ProjectionError::Event { position: e.position.0, reason: x.to_string() })?;
                self.apply_batch(&batch, e.stream_version, (e.position.0, e.effective))
            }
            (stream, _) => match recipient_number(stream) {
                Some(n) => self.apply_recipient(n, e),
                None => Ok(()),
            },
        }
    }

    fn load(&mut self, n: u64) -> Result<Option<Recipient>, ProjectionError> {
        if let Some(r) = self.cache.get(&n) {
            return Ok(r.clone());
        }
        let r = match self.overlay.get(self.tree, &keys::recipient(n))? {
            None => None,
            Some(bytes) => {
                Some(codec::snapshot::decode_recipient(&bytes).map_err(|x| ProjectionError::Corrupt(x.to_string()))?)
            }
        };
        self.cache.insert(n, r.clone());
        Ok(r)
    }

    fn apply_recipient(&mut self, n: u64, e: &Envelope) -> Result<(), ProjectionError> {
        let old = self.load(n)?;
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
        let new = if let EventBody::CommandRescinded { target, .. } = &event.body {
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
            state.recipient().cloned()
        } else {
            let mut r = old.clone();
            apply_event(&mut r, &event);
            r
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
        if indexed {
            self.update_indexes(n, old.as_ref(), new.as_ref());
        }
        self.update_pmh(n, old.as_ref(), new.as_ref(), &scope, keep_basic_before, e.position.0)?;
        self.cache.insert(n, new);
        self.dirty.insert(n);
        Ok(())
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

    fn update_indexes(&mut self, n: u64, old: Option<&Recipient>, new: Option<&Recipient>) {
        let before = self.index_keys(n, old);
        let after = self.index_keys(n, new);
        for k in before.difference(&after) {
            self.overlay.remove(k.clone());
        }
        for k in after.difference(&before) {
            self.overlay.put(k.clone(), Vec::new());
        }
    }

    fn get_entry(&self, n: u64, span: u32) -> Result<Option<Entry>, ProjectionError> {
        self.overlay.get(self.tree, &keys::entry(n, span))?.map(|b| entry_from(&b)).transpose()
    }

    /// Writes an entry (or removes it when nothing is left to say), and its markers where their
    /// state changes from `before` (the entry as stored, if any).
    fn put_entry(&mut self, n: u64, span: u32, before: Option<&Entry>, entry: &Entry) -> Result<(), ProjectionError> {
        let gone = entry.current.is_none() && entry.exported.is_none();
        if gone {
            if before.is_some() {
                self.overlay.remove(keys::entry(n, span));
            }
        } else {
            self.overlay.put(keys::entry(n, span), entry_bytes(entry)?);
        }
        let state = |e: Option<&Entry>| match e {
            None => (false, false),
            Some(e) => (e.current != e.exported, e.current.is_some()),
        };
        let (dirty_before, active_before) = state(before);
        let (dirty_now, active_now) = if gone { (false, false) } else { state(Some(entry)) };
        for (prefix, was, is) in [(keys::DIRTY, dirty_before, dirty_now), (keys::ACTIVE, active_before, active_now)] {
            if was != is {
                let marker = keys::program_marker(prefix, &entry.program, n, span);
                if is {
                    self.overlay.put(marker, Vec::new());
                } else {
                    self.overlay.remove(marker);
                }
            }
        }
        Ok(())
    }

    fn update_pmh(
        &mut self,
        n: u64,
        old: Option<&Recipient>,
        new: Option<&Recipient>,
        scope: &Scope,
        keep_basic_before: Option<chrono::NaiveDate>,
        position: u64,
    ) -> Result<(), ProjectionError> {
        let in_scope = |c: &daicho_domain::state::Certificate| match scope {
            Scope::All => true,
            Scope::Certificate(id) => c.id == *id,
        };
        let mut after: BTreeMap<u32, PmhRecord> =
            new.map(|r| records_of(n, r, in_scope)).unwrap_or_default().into_iter().map(|r| (r.span, r)).collect();
        // Spans that existed before: stored entries say what they were.
        let mut spans: BTreeSet<u32> = after.keys().copied().collect();
        if let Some(old) = old {
            spans.extend(old.certificates.iter().filter(|c| in_scope(c)).flat_map(|c| c.spans.iter().map(|s| s.no.0)));
        }
        for span in spans {
            let mut current = after.remove(&span);
            let stored = self.get_entry(n, span)?;
            let mut entry = match &stored {
                Some(e) => e.clone(),
                None => match &current {
                    Some(r) => Entry { program: r.program.clone(), current: None, exported: None },
                    None => continue,
                },
            };
            if let (Some(cutoff), Some(record), Some(previous)) =
                (keep_basic_before, current.as_mut(), entry.current.as_ref())
                && record.valid_to < cutoff.to_string()
            {
                record.name.clone_from(&previous.name);
                record.kana.clone_from(&previous.kana);
                record.address.clone_from(&previous.address);
            }
            if entry.current == current {
                continue;
            }
            let fee_now = current.as_ref().map(FeeVersion::of);
            if entry.current.as_ref().map(FeeVersion::of) != fee_now {
                self.push_fee(n, span, position, fee_now.unwrap_or(FeeVersion::Removed))?;
            }
            entry.current = current;
            self.put_entry(n, span, stored.as_ref(), &entry)?;
        }
        Ok(())
    }

    /// A batch was exported: PMH now has the current content of every record it sent; after a
    /// full replacement ([`crate::export::replaces`]) it has nothing else of the program.
    fn apply_batch(
        &mut self,
        batch: &PmhBatch,
        batch_number: u64,
        (position, uploaded): (u64, chrono::NaiveDate),
    ) -> Result<(), ProjectionError> {
        let program_key = batch.program.as_str().to_owned();
        let config = self.config.clone();
        let program = config.as_ref().and_then(|c| c.program(&batch.program));
        let replacing = program.is_some_and(|p| crate::export::replaces(p, batch.mode));
        let mut keys_to_visit: BTreeSet<(u64, u32)> = BTreeSet::new();
        let mut prefixes = vec![keys::program_prefix(keys::DIRTY, &program_key)];
        if batch.mode == PmhMode::Full {
            prefixes.push(keys::program_prefix(keys::ACTIVE, &program_key));
        }
        for prefix in prefixes {
            // The engine commits before a batch, so the tree holds every earlier write.
            for item in self.tree.scan_prefix(&prefix) {
                let (key, _) = item?;
                if let Some(ids) = keys::tail_ids(&key) {
                    keys_to_visit.insert(ids);
                }
            }
        }
        for (n, span) in keys_to_visit {
            if self.overlay.writes.len() >= self.batch_part {
                // A full batch of a large municipality touches millions of entries: write them
                // in parts instead of holding them all. The checkpoint only moves past this
                // event with the last part, and applying the event again after a crash in
                // between gives the same result (entries already updated are no longer dirty).
                self.write_overlay()?;
            }
            let Some(stored) = self.get_entry(n, span)? else { continue };
            let mut entry = stored.clone();
            match &entry.current {
                // Sent as isDeleted, or left out of a full replacement: PMH has nothing.
                None => entry.exported = None,
                Some(current) if validate(current, program).is_empty() => entry.exported = Some(current.clone()),
                // Held back from a full replacement: PMH drops what it had.
                Some(_) if replacing => entry.exported = None,
                // Held back from a diff or a resend: PMH keeps what it had.
                Some(_) => continue,
            }
            if entry != stored {
                if stored.exported.is_none() && entry.exported.is_some() {
                    // From this batch on PMH has the record: it counts for the fee.
                    self.push_fee(n, span, position, FeeVersion::Exported)?;
                } else if stored.exported.is_some() && entry.exported.is_none() && entry.current.is_some() {
                    // PMH no longer has a record the ledger still has: it stops counting.
                    let on = codec::date_to_days(uploaded);
                    self.push_fee(n, span, position, FeeVersion::Unexported { on })?;
                }
                self.put_entry(n, span, Some(&stored), &entry)?;
            }
        }
        let mut value = batch.to_position.to_be_bytes().to_vec();
        value.extend_from_slice(&batch_number.to_be_bytes());
        self.overlay.put(keys::last_batch(&program_key), value);
        Ok(())
    }

    /// Appends a version to a record's fee history.
    fn push_fee(&mut self, n: u64, span: u32, position: u64, version: FeeVersion) -> Result<(), ProjectionError> {
        let key = keys::fee(n, span);
        let mut history = match self.overlay.get(self.tree, &key)? {
            Some(bytes) => fee_history_from(&bytes)?,
            None => Vec::new(),
        };
        history.push((position, version));
        self.overlay.put(key, fee_history_bytes(&history)?);
        Ok(())
    }

    /// Writes the overlay to the tree without a checkpoint (only while applying a PMH batch,
    /// which the engine applies alone in its chunk).
    fn write_overlay(&mut self) -> Result<(), ProjectionError> {
        let mut batch = sled::Batch::default();
        for (k, v) in std::mem::take(&mut self.overlay.writes) {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    /// Writes the snapshots of the recipients changed since the last commit.
    pub fn flush_snapshots(&mut self) -> Result<(), ProjectionError> {
        for n in std::mem::take(&mut self.dirty) {
            match self.cache.get(&n) {
                Some(Some(r)) => {
                    let bytes =
                        codec::snapshot::encode_recipient(r).map_err(|x| ProjectionError::Corrupt(x.to_string()))?;
                    self.overlay.put(keys::recipient(n), bytes);
                }
                Some(None) => self.overlay.remove(keys::recipient(n)),
                None => {}
            }
        }
        Ok(())
    }
}
