//! Queries on the register: search, a recipient, who holds a My Number, PMH status.
//!
//! Searches return internal recipient numbers in index order (name or kana order, then number),
//! a page at a time; a page never holds more than [`SEARCH_RESULTS_MAX`].

use daicho_domain::numbers::MyNumber;
use daicho_domain::state::Recipient;
use daicho_domain::text::{kana_key, name_key};

use crate::db::Db;
use crate::keyed::hmac_sha256;
use crate::register::{Entry, entries_from};
use crate::{ProjectionError, Projections, keys};

/// Largest page of search results.
pub const SEARCH_RESULTS_MAX: usize = 200;

/// What to search by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchBy {
    /// 氏名: prefix of the name key.
    Name(String),
    /// 氏名カナ: prefix of the kana key (small and large kana, hiragana and spaces alike).
    Kana(String),
    /// 公費負担者番号: exact.
    PayerNumber(String),
    /// 公費受給者番号: exact.
    RecipientNumber(String),
    /// 個人番号: exact, through the keyed hash.
    MyNumber(MyNumber),
}

/// A page of results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    /// Internal recipient numbers.
    pub recipients: Vec<u64>,
    /// Whether more follow.
    pub more: bool,
}

/// A read-only handle on the register that needs no lock on the ledger: each query reads one
/// snapshot of the database, and every chunk of the fold is one transaction, so a query sees the
/// register between chunks, never inside one. Take it after catching up to see the head.
#[derive(Clone)]
pub struct Reader {
    pub(crate) db: Db,
    secret: [u8; 32],
}

impl Projections {
    /// A reader of the register as it is now and as it will be.
    pub fn reader(&self) -> Reader {
        Reader { db: self.db().clone(), secret: *self.secret() }
    }

    /// See [`Reader::search`].
    pub fn search(&self, by: &SearchBy, offset: usize, limit: usize) -> Result<Page, ProjectionError> {
        self.reader().search(by, offset, limit)
    }

    /// See [`Reader::recipient`].
    pub fn recipient(&self, n: u64) -> Result<Option<Recipient>, ProjectionError> {
        self.reader().recipient(n)
    }

    /// See [`Reader::my_number_holder`].
    pub fn my_number_holder(&self, n: &MyNumber) -> Result<Option<u64>, ProjectionError> {
        self.reader().my_number_holder(n)
    }

    /// See [`Reader::pmh_entries`].
    pub fn pmh_entries(&self, n: u64) -> Result<Vec<(u32, Entry)>, ProjectionError> {
        self.reader().pmh_entries(n)
    }

    /// See [`Reader::last_batch`].
    pub fn last_batch(&self, program: &str) -> Result<Option<(u64, u64)>, ProjectionError> {
        self.reader().last_batch(program)
    }

    /// See [`Reader::recipient_count`].
    pub fn recipient_count(&self) -> Result<usize, ProjectionError> {
        self.reader().recipient_count()
    }
}

impl Reader {
    fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// Searches; `offset` results are skipped, at most `limit` (capped) returned.
    pub fn search(&self, by: &SearchBy, offset: usize, limit: usize) -> Result<Page, ProjectionError> {
        let limit = limit.clamp(1, SEARCH_RESULTS_MAX);
        let prefix = match by {
            SearchBy::Name(q) => keys::text_prefix(keys::NAME, &name_key(q)),
            SearchBy::Kana(q) => keys::text_prefix(keys::KANA, &kana_key(q)),
            SearchBy::PayerNumber(q) => exact(keys::PAYER, q.trim()),
            SearchBy::RecipientNumber(q) => exact(keys::RECIPIENT_NUMBER, q.trim()),
            SearchBy::MyNumber(n) => {
                let mut k = vec![keys::MY_NUMBER];
                k.extend_from_slice(&hmac_sha256(self.secret(), n.reveal().as_bytes()));
                k
            }
        };
        // An empty name or kana query would list everyone: refuse it.
        if prefix.len() <= 1 {
            return Ok(Page { recipients: Vec::new(), more: false });
        }
        let mut recipients = Vec::with_capacity(limit);
        let mut more = false;
        for item in self.db.view()?.scan_prefix(&prefix)?.skip(offset) {
            let (key, _) = item?;
            if recipients.len() == limit {
                more = true;
                break;
            }
            if let Some(n) = keys::tail_recipient(&key) {
                recipients.push(n);
            }
        }
        Ok(Page { recipients, more })
    }

    /// The recipient numbered `n`, as the projection knows it now.
    pub fn recipient(&self, n: u64) -> Result<Option<Recipient>, ProjectionError> {
        match self.db.get(&keys::recipient(n))? {
            None => Ok(None),
            Some(bytes) => daicho_domain::codec::snapshot::decode_recipient(&crate::packed::unpack(&bytes)?)
                .map(Some)
                .map_err(|e| ProjectionError::Corrupt(e.to_string())),
        }
    }

    /// Who holds a My Number, if anyone.
    pub fn my_number_holder(&self, n: &MyNumber) -> Result<Option<u64>, ProjectionError> {
        Ok(self.search(&SearchBy::MyNumber(n.clone()), 0, 1)?.recipients.first().copied())
    }

    /// Whether a DV support measure was ever recorded for recipient `n` (then the privacy policy
    /// must read the person's stream; otherwise nothing of theirs is protected).
    pub fn ever_protected(&self, n: u64) -> Result<bool, ProjectionError> {
        self.db.view()?.contains(&keys::ever_protected(n))
    }

    /// The PMH entries of a recipient, by span number.
    pub fn pmh_entries(&self, n: u64) -> Result<Vec<(u32, Entry)>, ProjectionError> {
        match self.db.get(&keys::entries_of(n))? {
            None => Ok(Vec::new()),
            Some(bytes) => Ok(entries_from(&bytes)?.into_iter().collect()),
        }
    }

    /// The last batch of a program: its to-position and batch number.
    pub fn last_batch(&self, program: &str) -> Result<Option<(u64, u64)>, ProjectionError> {
        Ok(self.db.get(&keys::last_batch(program))?.and_then(|v| Some((keys::u64_at(&v, 0)?, keys::u64_at(&v, 8)?))))
    }

    /// The records of `program` whose last sending PMH refused, by recipient number in order,
    /// at most `limit` (with the number there are in all).
    pub fn pmh_refused(
        &self,
        program: &str,
        limit: usize,
    ) -> Result<(Vec<(u64, crate::register::RefusedRecord)>, usize), ProjectionError> {
        let mut out = Vec::new();
        let mut total = 0;
        for item in self.db.view()?.scan_prefix(&keys::program_prefix(keys::REFUSED, program))? {
            let (k, v) = item?;
            let Some(n) = keys::tail_recipient(&k) else { continue };
            for r in crate::register::refused_from(&v)? {
                total += 1;
                if out.len() < limit {
                    out.push((n, r));
                }
            }
        }
        Ok((out, total))
    }

    /// The records of `program` held back (保留) now, each with whether the program's next
    /// batch lists it; at most `limit`, and how many there are in all. Of a diff-history
    /// program: those no batch has listed as they are now first (the next diff lists them),
    /// then those listed before, each in recipient order. Of a full-mode program: every current
    /// record validation holds back (every full batch lists them all, and drops them from PMH,
    /// pending or not).
    pub fn pmh_held(
        &self,
        program: &daicho_domain::config::Program,
        limit: usize,
    ) -> Result<(Vec<(crate::export::Held, bool)>, usize), ProjectionError> {
        if program.pmh_mode == daicho_domain::config::PmhMode::Full {
            let held = self.batch_summary(program, daicho_domain::config::PmhMode::Full)?.held_back;
            let total = held.len();
            return Ok((held.into_iter().take(limit).map(|h| (h, true)).collect(), total));
        }
        let program = program.key.as_str();
        let mut out = Vec::new();
        let mut total: usize = 0;
        let view = self.db.view()?;
        for (marker, new) in [(keys::HELD, true), (keys::LISTED, false)] {
            for item in view.scan_prefix(&keys::program_prefix(marker, program))? {
                let (k, v) = item?;
                let Some(n) = keys::tail_recipient(&k) else { continue };
                if out.len() >= limit {
                    total = total.saturating_add(crate::register::held_count(&v)? as usize);
                    continue;
                }
                for h in crate::register::held_from(&v)? {
                    total = total.saturating_add(1);
                    if out.len() < limit {
                        let held = crate::export::Held {
                            recipient: n,
                            certificate: h.certificate,
                            history_key: h.history_key,
                            reasons: h.reasons.into_iter().map(Into::into).collect(),
                        };
                        out.push((held, new));
                    }
                }
            }
        }
        Ok((out, total))
    }

    /// Every entry of `program` that has a current record or differs from what PMH has (so
    /// every one PMH has), by recipient and span in order: `each(recipient, span, entry)`.
    pub fn for_each_pmh_entry(
        &self,
        program: &str,
        each: &mut dyn FnMut(u64, u32, &Entry) -> Result<(), ProjectionError>,
    ) -> Result<(), ProjectionError> {
        let view = self.db.view()?;
        let mut recipients = std::collections::BTreeSet::new();
        for marker in [keys::ACTIVE, keys::DIRTY] {
            for item in view.scan_prefix(&keys::program_prefix(marker, program))? {
                let (k, _) = item?;
                recipients.extend(keys::tail_recipient(&k));
            }
        }
        let recipients: Vec<u64> = recipients.into_iter().collect();
        for part in recipients.chunks(4096) {
            for (n, bytes) in crate::register::read_values(&view, keys::entries_of, part)? {
                for (span, entry) in entries_from(&bytes)? {
                    if entry.program == program {
                        each(n, span, &entry)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Number of recipients in the register.
    pub fn recipient_count(&self) -> Result<usize, ProjectionError> {
        let mut count = 0;
        for item in self.db.view()?.scan_prefix(&[keys::RECIPIENT])? {
            item?;
            count += 1;
        }
        Ok(count)
    }
}

fn exact(prefix: u8, value: &str) -> Vec<u8> {
    let mut k = keys::text_prefix(prefix, value);
    if !value.is_empty() {
        k.push(0);
    }
    k
}
