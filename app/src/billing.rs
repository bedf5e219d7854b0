//! 運営費 (the PMH operating fee) on the ledger: the fee schedule and closed months recorded in
//! the system stream `billing`, statements computed at a position, and closing a month.
//!
//! A statement of an open month is computed at the head (試算, a draft). Closing a month
//! computes it at the head as final, writes its files, and records `billing_month_closed` with
//! that position, the totals and the files' SHA-256, anchored at the head (if the log moved, it
//! computes again). A closed month is always computed at its recorded position, so its files
//! come out byte for byte the same, whatever was recorded since; later changes to it appear as
//! adjustment lines in the first open month.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use daicho_domain::billing::{self, BillingRejection, FeeSchedule, Month, Policy};
use daicho_domain::codec::{self, BillingEvent, CONFIGURATION_SET, MonthClosed};
use daicho_domain::config::Config;
use daicho_store::{Position, Store, StreamId};

use crate::append::{RETRIES_MAX, System, lost_race, text_digest};
use crate::ledger::{CONFIG_STREAM, Ledger};
use daicho_projections::export::Hashing;
use daicho_projections::fee::{Basis, Statement, Status};
use daicho_projections::fee_report::{statement_html, statement_json, summary_csv};
use daicho_projections::query::Reader;

/// The system stream of the fee schedule and closed months.
pub const BILLING_STREAM: &str = "billing";

/// Why a billing request was refused or failed. Messages are Japanese and name no person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillingError {
    /// A rule refused it (`daicho_domain::billing`).
    Rejected(BillingRejection),
    /// Others kept writing meanwhile: nothing recorded; try again.
    Conflict,
    /// Anything else (I/O, store), described.
    Other(String),
}

impl std::fmt::Display for BillingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BillingError::Rejected(r) => write!(f, "{r}"),
            BillingError::Conflict => f.write_str(crate::execute::CONFLICT_MESSAGE),
            BillingError::Other(e) => f.write_str(e),
        }
    }
}

impl From<BillingRejection> for BillingError {
    fn from(r: BillingRejection) -> Self {
        BillingError::Rejected(r)
    }
}

/// The closed months and their policies, as the rules need them.
fn closed_policies(log: &BillingLog) -> BTreeMap<Month, Policy> {
    log.closed.iter().map(|(m, c)| (*m, c.policy)).collect()
}

fn other(e: impl std::fmt::Display) -> BillingError {
    BillingError::Other(e.to_string())
}

fn billing_stream() -> Result<StreamId, BillingError> {
    StreamId::parse(BILLING_STREAM).ok_or_else(|| other("billing stream id"))
}

/// The `billing` stream as known at a position.
#[derive(Clone, Debug, Default)]
pub struct BillingLog {
    /// The fee schedule.
    pub schedule: FeeSchedule,
    /// Closed months.
    pub closed: BTreeMap<Month, MonthClosed>,
    /// Who closed each month and where the event is: (actor, event position, recorded at µs).
    pub closed_by: BTreeMap<Month, (String, u64, i64)>,
    /// The stream's version (for appending).
    pub version: u64,
}

/// Reads the `billing` stream up to position `at`.
pub fn billing_log(store: &Store, at: u64) -> Result<BillingLog, BillingError> {
    let mut log = BillingLog::default();
    for e in store.read_stream(&billing_stream()?).map_err(other)? {
        if e.position.0 > at {
            break;
        }
        log.version = e.stream_version;
        match codec::decode_billing(&e.event_type, e.schema_version, &e.payload).map_err(other)? {
            BillingEvent::FeeScheduleSet { from_month, unit_yen } => log.schedule.set(from_month, unit_yen),
            BillingEvent::MonthClosed(c) => {
                log.closed_by.insert(c.month, (e.actor.clone(), e.position.0, e.recorded_at_us));
                log.closed.insert(c.month, c);
            }
        }
    }
    Ok(log)
}

/// The configuration in force at position `at`.
pub fn config_at(store: &Store, at: u64) -> Result<Config, BillingError> {
    let stream = StreamId::parse(CONFIG_STREAM).ok_or_else(|| other("config stream id"))?;
    let last = store
        .read_stream(&stream)
        .map_err(other)?
        .into_iter()
        .take_while(|e| e.position.0 <= at)
        .filter(|e| e.event_type == CONFIGURATION_SET)
        .last()
        .ok_or_else(|| other("no configuration recorded"))?;
    let toml = codec::decode_configuration(last.schema_version, &last.payload).map_err(other)?;
    Config::from_toml(&toml).map_err(other)
}

/// The names of a month's statement files, in write order: detail CSV, summary CSV, JSON, HTML.
pub fn file_names(month: Month) -> [String; 4] {
    [
        format!("billing-{month}-detail.csv"),
        format!("billing-{month}-summary.csv"),
        format!("billing-{month}.json"),
        format!("billing-{month}.html"),
    ]
}

/// One file of a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementFile {
    pub name: String,
    pub sha256: String,
}

/// A statement with its files.
#[derive(Clone, Debug)]
pub struct StatementFiles {
    pub statement: Statement,
    pub files: Vec<StatementFile>,
    /// For a closed month: whether the files hash as recorded when it was closed.
    pub matches_closed: Option<bool>,
}

/// Where a statement's files go. The detail CSV of a large municipality is hundreds of
/// megabytes, so it is never held in memory: either written to a directory or only hashed.
enum Sink<'a> {
    /// Only hashed (a page showing the statement, a closing whose files are made on demand).
    Hash,
    Dir(&'a Path),
}

impl Ledger {
    /// The `billing` stream at the head.
    pub fn billing_log(&self) -> Result<BillingLog, BillingError> {
        billing_log(self.store(), self.store().head().position.0)
    }

    /// Records a fee schedule entry: `unit_yen` per counted unit and month from `from` on.
    /// Refused when it would change a closed month. Returns the event's position.
    pub(crate) fn set_fee_schedule(
        &mut self,
        from: Month,
        unit_yen: u32,
        actor: &str,
        today: NaiveDate,
    ) -> Result<u64, BillingError> {
        let log = self.billing_log()?;
        billing::decide_schedule(from, unit_yen, &closed_policies(&log))?;
        let event = BillingEvent::FeeScheduleSet { from_month: from, unit_yen };
        let id = format!("fee-schedule-{}", log.version + 1);
        self.append_billing(&event, &id, log.version, None, actor, today)
            .map_err(|e| e.unwrap_or(BillingError::Conflict))
    }

    fn append_billing(
        &self,
        event: &BillingEvent,
        id: &str,
        version: u64,
        expected_head: Option<Position>,
        actor: &str,
        today: NaiveDate,
    ) -> Result<u64, Option<BillingError>> {
        let encoded = codec::encode_billing(event).map_err(|e| Some(other(e)))?;
        let system = System {
            stream: BILLING_STREAM,
            version: Some(version),
            id,
            digest: text_digest(&format!("{event:?}")),
            actor,
            expected_head,
            effective: today,
        };
        match self.store().append_blocking(system.request(vec![encoded]).map_err(|e| Some(other(e)))?) {
            Ok(o) => Ok(o.last.0),
            Err(e) if lost_race(&e) => Err(None),
            Err(e) => Err(Some(other(e))),
        }
    }

    /// A reader for statements, caught up to the head now; it needs no lock on the ledger.
    pub fn fee_reader(&mut self) -> Result<FeeReader, BillingError> {
        let reader = self.projections().map_err(other)?.reader();
        Ok(FeeReader { store: self.store().clone(), reader })
    }

    /// The statement of `month`, its files written into `dir` (which must exist, empty): at its
    /// closing position when closed (then `policy` must be the one it was closed under, or
    /// none), else a draft at the head.
    pub fn fee_statement_into(
        &mut self,
        month: Month,
        policy: Option<Policy>,
        dir: &Path,
    ) -> Result<StatementFiles, BillingError> {
        self.fee_reader()?.statement_into(month, policy, dir)
    }

    /// Closes `month` under `policy`: computes its final statement at the head, writes the files
    /// (into `dir`, or only hashes them), and records `billing_month_closed`. Refused when the month
    /// has not ended by `today`, is closed, or is not charged.
    pub(crate) fn close_fee_month(
        &mut self,
        month: Month,
        policy: Policy,
        today: NaiveDate,
        actor: &str,
        dir: Option<&Path>,
    ) -> Result<(StatementFiles, u64), BillingError> {
        for _ in 0..RETRIES_MAX {
            let log = self.billing_log()?;
            let unit_yen = billing::decide_close(month, today, &log.schedule, &closed_policies(&log))?;
            let fees = self.fee_reader()?;
            let head = Position(fees.reader.applied_position().map_err(other)?);
            let sink = match dir {
                Some(d) => Sink::Dir(d),
                None => Sink::Hash,
            };
            let files = fees.compute(month, policy, Status::Closed, head.0, &sink)?;
            let s = &files.statement;
            let counts: [u64; 3] = [s.counts[0].1, s.counts[1].1, s.counts[2].1];
            let event = BillingEvent::MonthClosed(MonthClosed {
                month,
                policy,
                position: head.0,
                unit_yen,
                counts,
                month_yen: s.month_yen,
                adjustment_yen: s.adjustment_yen,
                total_yen: s.total_yen,
                files: files.files.iter().map(|f| (f.name.clone(), f.sha256.clone())).collect(),
            });
            let id = format!("billing-close-{month}");
            match self.append_billing(&event, &id, log.version, Some(head), actor, today) {
                Ok(position) => return Ok((files, position)),
                Err(None) => {
                    if let Some(d) = dir {
                        for f in &files.files {
                            let _ = std::fs::remove_file(d.join(&f.name));
                        }
                    }
                }
                Err(Some(e)) => return Err(e),
            }
        }
        Err(BillingError::Conflict)
    }
}

/// Computes statements from the register and the log without holding the ledger.
#[derive(Clone)]
pub struct FeeReader {
    store: Store,
    reader: Reader,
}

impl FeeReader {
    /// The `billing` stream at the position the register has applied.
    pub fn log(&self) -> Result<BillingLog, BillingError> {
        billing_log(&self.store, self.reader.applied_position().map_err(other)?)
    }

    /// The statement of `month`, its files only hashed: at its closing position when closed
    /// (then `policy` must be the one it was closed under, or none), else a draft at the
    /// position the register has applied.
    pub fn statement(&self, month: Month, policy: Option<Policy>) -> Result<StatementFiles, BillingError> {
        self.statement_of(month, policy, &Sink::Hash)
    }

    /// As [`FeeReader::statement`], writing the files into `dir` (which must exist, empty).
    pub fn statement_into(
        &self,
        month: Month,
        policy: Option<Policy>,
        dir: &Path,
    ) -> Result<StatementFiles, BillingError> {
        self.statement_of(month, policy, &Sink::Dir(dir))
    }

    fn statement_of(
        &self,
        month: Month,
        policy: Option<Policy>,
        sink: &Sink<'_>,
    ) -> Result<StatementFiles, BillingError> {
        let at = self.reader.applied_position().map_err(other)?;
        let log = billing_log(&self.store, at)?;
        let closed = log.closed.get(&month);
        let policy = billing::statement_policy(month, policy, closed.map(|c| c.policy))?;
        match closed {
            Some(c) => {
                let mut files = self.compute(month, c.policy, Status::Closed, c.position, sink)?;
                files.matches_closed = Some(
                    files.files.len() == c.files.len()
                        && files.files.iter().zip(&c.files).all(|(f, (name, sha))| f.name == *name && f.sha256 == *sha),
                );
                Ok(files)
            }
            None => self.compute(month, policy.unwrap_or(Policy::PersonsOverlapping), Status::Draft, at, sink),
        }
    }

    /// Computes a statement at `position` (the register must be caught up to it or beyond).
    fn compute(
        &self,
        month: Month,
        policy: Policy,
        status: Status,
        position: u64,
        sink: &Sink<'_>,
    ) -> Result<StatementFiles, BillingError> {
        let store = &self.store;
        let log = billing_log(store, position)?;
        let config = config_at(store, position)?;
        let at = store.get(Position(position)).map_err(other)?;
        let (chain_head, recorded_at_us) =
            at.map(|e| (e.hash.to_hex(), e.recorded_at_us)).ok_or_else(|| other("position beyond the head"))?;
        let basis = Basis {
            month,
            policy,
            status,
            position,
            chain_head,
            recorded_at_us,
            config: &config,
            schedule: &log.schedule,
            closed: &log.closed,
        };
        let source = |p: u64| store.get(Position(p)).ok().flatten().map(|e| e.event_type).unwrap_or_default();
        let names = file_names(month);
        let (statement, detail_hash) = match sink {
            Sink::Hash => {
                let (s, w) =
                    self.reader.fee_statement(&basis, Hashing::new(std::io::sink()), &source).map_err(other)?;
                let (_, sha, _) = w.done();
                (s, sha)
            }
            Sink::Dir(dir) => {
                let path = dir.join(&names[0]);
                let file = std::fs::File::create(&path).map_err(|e| other(format!("{}: {e}", path.display())))?;
                let out = Hashing::new(std::io::BufWriter::with_capacity(1 << 20, file));
                let (s, w) = self.reader.fee_statement(&basis, out, &source).map_err(other)?;
                let (buf, sha, _) = w.done();
                let file = buf.into_inner().map_err(|e| other(format!("{}: {e}", path.display())))?;
                file.sync_all().map_err(|e| other(format!("{}: {e}", path.display())))?;
                (s, sha)
            }
        };
        let summary = summary_csv(&statement);
        let csv_files = vec![(names[0].clone(), detail_hash), (names[1].clone(), sha_hex(&summary))];
        let json = statement_json(&statement, &csv_files).map_err(other)?;
        let html = statement_html(&statement, &csv_files).into_bytes();
        let mut files = vec![StatementFile { name: names[0].clone(), sha256: csv_files[0].1.clone() }];
        for (name, bytes) in [(&names[1], summary), (&names[2], json), (&names[3], html)] {
            if let Sink::Dir(dir) = sink {
                crate::files::write_synced(dir, name, &bytes).map_err(other)?;
            }
            files.push(StatementFile { name: name.clone(), sha256: sha_hex(&bytes) });
        }
        if let Sink::Dir(dir) = sink {
            crate::files::sync_dir(dir).map_err(other)?;
        }
        Ok(StatementFiles { statement, files, matches_closed: None })
    }
}

use crate::files::sha256_hex as sha_hex;

/// The default output directory of a month's statement.
pub fn default_dir(month: Month) -> PathBuf {
    PathBuf::from(format!("billing-{month}"))
}
