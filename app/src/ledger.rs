//! 台帳 (the ledger on disk): the store plus the configuration recorded in it, and the
//! [`Backend`] that `apply` (and later the web UI) submits commands through.
//!
//! A data directory holds `store/` (the event store). The municipality configuration is the
//! latest `configuration_set` event of the system stream `config`. Recipient streams are keyed
//! streams of category `recipient`, keyed by the caller's recipient id: `recipient-<n>`, where
//! `n` is the ledger's internal recipient number.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use daicho_domain::codec::{self, CONFIGURATION_SET};
use daicho_domain::command::{Command, Fingerprint};
use daicho_domain::config::{Config, PmhMode, ProgramKey};
use daicho_domain::event::Event;
use daicho_domain::ids::{CommandId, RecipientRef};
use daicho_domain::numbers::MyNumber;
use daicho_domain::{MyNumberHolder, State, evolve};
use daicho_projections::{ProjectionError, Projections, recipient_number};
use daicho_store::{AppendError, Envelope, Position, Store, StoreError, StreamId};

use crate::append::{RETRIES_MAX, System, lost_race, recipient_request, text_digest};

use crate::files::{DiskFile, FinishFile, sync_dir};
use crate::submit::{Appended, BackendError, Loaded};
use daicho_projections::export::Batch;

/// The system stream of PMH batches (its stream version is the batch number).
pub const PMH_STREAM: &str = "pmh";

/// A recorded PMH batch, as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedBatch {
    /// Batch number.
    pub number: u64,
    /// What the event says.
    pub batch: codec::PmhBatch,
    /// When recorded, microseconds since the Unix epoch.
    pub recorded_at_us: i64,
    /// Who recorded it.
    pub actor: String,
    /// The event's position.
    pub position: u64,
    /// The event's effective date (the day the batch was made, for PMH its upload day).
    pub effective: NaiveDate,
}

/// The category of recipient streams.
pub const RECIPIENT_CATEGORY: &str = "recipient";
/// The system stream holding the configuration.
pub const CONFIG_STREAM: &str = "config";

/// Why a ledger could not be opened or created.
#[derive(Debug)]
pub enum LedgerError {
    /// From the store.
    Store(StoreError),
    /// The configuration recorded (or given) is invalid.
    Config(String),
    /// The data directory can be read or entered by users other than its owner.
    Exposed { mode: u32 },
    /// The store refused or failed an append.
    Append(AppendError),
    /// The register projection failed.
    Projection(ProjectionError),
    /// A file of ours could not be written (the path and why).
    Io(String),
    /// Others kept writing while a batch was computed: nothing recorded; try again.
    Conflict,
    /// No PMH batch with this number is recorded.
    NoSuchBatch(u64),
    /// A value this program made or read back is not what it should be (a bug, or a damaged log).
    Other(String),
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerError::Store(e) => write!(f, "{e}"),
            LedgerError::Config(e) => write!(f, "設定が正しくありません: {e}"),
            LedgerError::Exposed { mode } => write!(
                f,
                "データディレクトリの権限が {mode:04o} で、所有者以外も読めます。個人情報を守るため開きません。\
                 `chmod 700` でこのディレクトリを所有者だけのものにしてから、やり直してください"
            ),
            LedgerError::Append(e) => write!(f, "{e}"),
            LedgerError::Projection(e) => write!(f, "{e}"),
            LedgerError::Io(e) | LedgerError::Other(e) => f.write_str(e),
            LedgerError::Conflict => f.write_str("the log kept moving; nothing was recorded"),
            LedgerError::NoSuchBatch(n) => write!(f, "バッチ {n} は記録されていません"),
        }
    }
}

impl From<ProjectionError> for LedgerError {
    fn from(e: ProjectionError) -> Self {
        LedgerError::Projection(e)
    }
}

impl From<StoreError> for LedgerError {
    fn from(e: StoreError) -> Self {
        LedgerError::Store(e)
    }
}

/// The system stream of the configuration.
pub fn config_stream() -> StreamId {
    StreamId::parse(CONFIG_STREAM).unwrap_or_else(|| unreachable!("static stream id"))
}

/// The store directory inside a data directory.
pub fn store_dir(data: &Path) -> PathBuf {
    data.join("store")
}

/// The control socket of a running server inside a data directory (`daicho.sock`, mode 0600):
/// the CLI's `status` and `backup` ask the server through it.
pub fn control_socket(data: &Path) -> PathBuf {
    data.join("daicho.sock")
}

/// The read-model directory inside a data directory.
pub fn projections_dir(data: &Path) -> PathBuf {
    data.join("readmodel")
}

/// Where releases before the read-model engine kept their projections (a sled database):
/// derived data, removed when the ledger is opened.
pub fn legacy_projections_dir(data: &Path) -> PathBuf {
    data.join("projections")
}

/// How much memory the ledger's caches may take: the log's (sled's page cache, per store) and
/// the read models' (redb's). Set once per process from the operator's flags
/// (`--log-cache-mib`, `--read-cache-mib`), with defaults for the server and for batch
/// commands; `daicho status` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Memory {
    pub log_cache_mib: u64,
    pub read_cache_mib: u64,
}

/// The read models' cache of ledgers opened from now on, in MiB (see [`Memory::install`]).
static READ_CACHE_MIB: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(Memory::BATCH.read_cache_mib);

impl Memory {
    /// The server's defaults: pages and searches read the register at random.
    pub const SERVE: Memory = Memory { log_cache_mib: 128, read_cache_mib: 512 };
    /// Batch commands' defaults: they read the log and the register in order.
    pub const BATCH: Memory = Memory { log_cache_mib: 128, read_cache_mib: 256 };

    /// Makes this the setting of every ledger the process opens from now on (each cache at
    /// least 8 MiB).
    pub fn install(self) {
        daicho_store::set_cache_bytes(self.log_cache_mib.max(8) << 20);
        READ_CACHE_MIB.store(self.read_cache_mib.max(8), std::sync::atomic::Ordering::Relaxed);
    }

    /// The setting in force.
    pub fn current() -> Memory {
        Memory {
            log_cache_mib: daicho_store::cache_bytes() >> 20,
            read_cache_mib: READ_CACHE_MIB.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// Opens the read models of `data`, removing those of an earlier release first.
fn open_projections(data: &Path) -> Result<Projections, LedgerError> {
    let legacy = legacy_projections_dir(data);
    if legacy.exists() {
        std::fs::remove_dir_all(&legacy)
            .map_err(|e| LedgerError::Other(format!("removing the projections of an earlier release: {e}")))?;
    }
    let cache = usize::try_from(Memory::current().read_cache_mib << 20).unwrap_or(usize::MAX);
    Ok(Projections::open(&projections_dir(data), cache)?)
}

/// An open ledger.
pub struct Ledger {
    store: Store,
    config: Config,
    projections: Projections,
}

/// The mode of a data directory and of every directory in it: the owner's only.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Creates `dir` (and its parents) for the owner only, and makes it so if it exists.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(PRIVATE_DIR_MODE).create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(PRIVATE_DIR_MODE))
}

/// Refuses a data directory that others may read or enter.
pub fn check_private(data: &Path) -> Result<(), LedgerError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data).map_err(|e| LedgerError::Store(e.into()))?.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 { Err(LedgerError::Exposed { mode }) } else { Ok(()) }
}

/// Files and directories under `data` that group or others may access (relative paths with
/// their modes), at most `max` of them.
pub fn exposed_files(data: &Path, max: usize) -> Vec<(String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(root: &Path, dir: &Path, max: usize, out: &mut Vec<(String, u32)>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if out.len() >= max {
                return;
            }
            let Ok(meta) = e.path().symlink_metadata() else { continue };
            let mode = meta.permissions().mode() & 0o7777;
            // A socket is reached only through its directory; its own mode is set when bound.
            if mode & 0o077 != 0 && !meta.file_type().is_symlink() {
                let name = e.path().strip_prefix(root).map_or_else(|_| e.path(), Path::to_path_buf);
                out.push((name.display().to_string(), mode));
            }
            if meta.is_dir() {
                walk(root, &e.path(), max, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(data, data, max, &mut out);
    out
}

impl Ledger {
    /// Creates a ledger in `data` with the configuration `toml` (validated first). The data
    /// directory is made the owner's only.
    pub fn init(data: &Path, toml: &str, today: NaiveDate) -> Result<Ledger, LedgerError> {
        let config = Config::from_toml(toml).map_err(|e| LedgerError::Config(e.to_string()))?;
        private_dir(data).map_err(|e| LedgerError::Store(e.into()))?;
        let store = Store::create(&store_dir(data))?;
        let encoded = codec::encode_configuration(toml).map_err(|e| LedgerError::Config(e.to_string()))?;
        let system = System {
            stream: CONFIG_STREAM,
            version: Some(0),
            id: "init",
            digest: text_digest(toml),
            actor: "daicho-init",
            expected_head: None,
            effective: today,
        };
        store
            .append_blocking(system.request(vec![encoded]).map_err(LedgerError::Other)?)
            .map_err(LedgerError::Append)?;
        let projections = open_projections(data)?;
        Ok(Ledger { store, config, projections })
    }

    /// Opens the ledger in `data`; refuses a data directory that others may read.
    pub fn open(data: &Path) -> Result<Ledger, LedgerError> {
        let store = Store::open(&store_dir(data))?;
        check_private(data)?;
        let config_stream =
            StreamId::parse(CONFIG_STREAM).ok_or_else(|| LedgerError::Other("config stream id".into()))?;
        let last = store
            .read_stream(&config_stream)?
            .pop()
            .ok_or_else(|| LedgerError::Config("no configuration recorded".into()))?;
        if last.event_type != CONFIGURATION_SET {
            return Err(LedgerError::Config(format!("unexpected event {} in the config stream", last.event_type)));
        }
        let toml = codec::decode_configuration(last.schema_version, &last.payload)
            .map_err(|e| LedgerError::Config(e.to_string()))?;
        let config = Config::from_toml(&toml).map_err(|e| LedgerError::Config(e.to_string()))?;
        let projections = open_projections(data)?;
        Ok(Ledger { store, config, projections })
    }

    /// The projections, caught up to the log's head (rebuilt first if they do not match it).
    pub fn projections(&mut self) -> Result<&mut Projections, LedgerError> {
        let mut quiet = |_: u64, _: u64| {};
        match self.projections.catch_up(&self.store, None, &mut quiet) {
            Ok(_) => {}
            Err(ProjectionError::Stale(_)) => {
                self.projections.rebuild(&self.store, None, &mut quiet)?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(&mut self.projections)
    }

    /// The projections as they are, without catching up.
    pub fn projections_unsynced(&mut self) -> &mut Projections {
        &mut self.projections
    }

    /// Records a new configuration (validated first); it is in force from the next command.
    pub(crate) fn set_config(&mut self, toml: &str, actor: &str, today: NaiveDate) -> Result<u64, LedgerError> {
        let config = Config::from_toml(toml).map_err(|e| LedgerError::Config(e.to_string()))?;
        let stream = StreamId::parse(CONFIG_STREAM).ok_or_else(|| LedgerError::Other("config stream id".into()))?;
        let version = self.store.stream_version(&stream)?;
        let encoded = codec::encode_configuration(toml).map_err(|e| LedgerError::Config(e.to_string()))?;
        let id = format!("config-v{}", version + 1);
        let system = System {
            stream: CONFIG_STREAM,
            version: Some(version),
            id: &id,
            digest: text_digest(toml),
            actor,
            expected_head: None,
            effective: today,
        };
        let outcome = self
            .store
            .append_blocking(system.request(vec![encoded]).map_err(LedgerError::Other)?)
            .map_err(|e| if lost_race(&e) { LedgerError::Conflict } else { LedgerError::Append(e) })?;
        self.config = config;
        Ok(outcome.last.0)
    }

    /// Computes a program's PMH batch at the head and records it, anchored at that head (if the
    /// log moves meanwhile, computes again), streaming the batch's data files into the
    /// directory `dir` (flat memory for any size). Returns the batch number (`None` when there
    /// was nothing to send: nothing is recorded then) and the batch. The files are durable
    /// (fsync) before the batch is recorded; when nothing is sent, or an attempt is recomputed,
    /// its files are removed.
    pub(crate) fn record_pmh_batch_into(
        &mut self,
        key: &ProgramKey,
        mode: Option<PmhMode>,
        today: NaiveDate,
        actor: &str,
        dir: &Path,
    ) -> Result<(Option<u64>, Batch), LedgerError> {
        let mut open = |name: &str| DiskFile::create(&dir.join(name));
        let (number, batch, writers) = self.record_with(key, mode, today, actor, &mut open)?;
        if number.is_none() {
            writers.into_iter().for_each(|(_, w)| w.discard());
        } else {
            sync_dir(dir).map_err(LedgerError::Io)?;
        }
        Ok((number, batch))
    }

    fn record_with<W: FinishFile>(
        &mut self,
        key: &ProgramKey,
        mode: Option<PmhMode>,
        today: NaiveDate,
        actor: &str,
        open: &mut dyn FnMut(&str) -> std::io::Result<W>,
    ) -> Result<(Option<u64>, Batch, Written<W>), LedgerError> {
        let stream = StreamId::parse(PMH_STREAM).ok_or_else(|| LedgerError::Other("pmh stream id".into()))?;
        for _ in 0..RETRIES_MAX {
            let head = self.store.head();
            let projections = self.projections()?;
            let config = projections.config().cloned().ok_or_else(|| LedgerError::Other("no configuration".into()))?;
            let program = config.program(key).ok_or_else(|| LedgerError::Other(format!("{key}: no such program")))?;
            // A program registered with PMH in full mode is always sent in full: a diff batch is
            // not defined for it. `--mode full` may resend a diff-history program in full.
            let mode = if program.pmh_mode == PmhMode::Full { PmhMode::Full } else { mode.unwrap_or(program.pmh_mode) };
            let (batch, writers) = projections.write_batch(&config, program, mode, head.position.0, open)?;
            // Nothing to send (an empty full replacement that clears the program is sent).
            if batch.files.is_empty() {
                return Ok((None, batch, writers));
            }
            let mut finished = Vec::with_capacity(writers.len());
            for (name, w) in writers {
                finished.push((name, w.finish_file().map_err(|e| LedgerError::Io(format!("batch file: {e}")))?));
            }
            let version = self.store.stream_version(&stream)?;
            let event = codec::PmhBatch {
                program: key.clone(),
                mode,
                from_position: batch.from_position,
                to_position: batch.to_position,
                records: batch.records,
                deleted: batch.deleted,
                held_back: u32::try_from(batch.held_back.len()).unwrap_or(u32::MAX),
                files: batch.files.iter().map(|f| (f.name.clone(), f.sha256.clone())).collect(),
            };
            let encoded = codec::encode_pmh_batch(&event).map_err(|e| LedgerError::Other(e.to_string()))?;
            let id = format!("pmh-{key}-{}-{}", daicho_projections::export::mode_name(mode), head.position);
            let system = System {
                stream: PMH_STREAM,
                version: Some(version),
                id: &id,
                digest: text_digest(&format!("{event:?}")),
                actor,
                expected_head: Some(head.position),
                effective: today,
            };
            match self.store.append_blocking(system.request(vec![encoded]).map_err(LedgerError::Other)?) {
                Ok(o) => return Ok((Some(o.stream_version), batch, finished)),
                Err(e) if lost_race(&e) => {
                    for (_, w) in finished {
                        w.discard();
                    }
                    continue;
                }
                Err(e) => {
                    for (_, w) in finished {
                        w.discard();
                    }
                    return Err(LedgerError::Append(e));
                }
            }
        }
        Err(LedgerError::Conflict)
    }

    /// Every recorded PMH batch, oldest first.
    pub fn pmh_batches(&self) -> Result<Vec<RecordedBatch>, LedgerError> {
        let stream = StreamId::parse(PMH_STREAM).ok_or_else(|| LedgerError::Other("pmh stream id".into()))?;
        let mut out = Vec::new();
        for e in self.store.read_stream(&stream)? {
            let batch =
                codec::decode_pmh_batch(e.schema_version, &e.payload).map_err(|x| LedgerError::Other(x.to_string()))?;
            out.push(RecordedBatch {
                number: e.stream_version,
                batch,
                recorded_at_us: e.recorded_at_us,
                actor: e.actor,
                position: e.position.0,
                effective: e.effective,
            });
        }
        Ok(out)
    }

    /// Regenerates batch `number` from the log alone (a temporary register built up to its
    /// position), in memory. The files must hash as recorded: compare with
    /// [`RecordedBatch::batch`]. For large batches use [`Ledger::regenerate_pmh_batch_into`].
    pub fn regenerate_pmh_batch(&self, number: u64) -> Result<(RecordedBatch, Batch), LedgerError> {
        let (recorded, mut batch, writers) = self.regenerate_with(number, &mut |_| Ok(Vec::new()))?;
        for (file, (_, bytes)) in batch.files.iter_mut().zip(writers) {
            file.bytes = Some(bytes);
        }
        Ok((recorded, batch))
    }

    /// As [`Ledger::regenerate_pmh_batch`], streaming the data files into `dir` (made durable).
    pub fn regenerate_pmh_batch_into(&self, number: u64, dir: &Path) -> Result<(RecordedBatch, Batch), LedgerError> {
        let mut open = |name: &str| DiskFile::create(&dir.join(name));
        let (recorded, batch, writers) = self.regenerate_with(number, &mut open)?;
        if batch.files.is_empty() {
            writers.into_iter().for_each(|(_, w)| w.discard());
        } else {
            for (_, w) in writers {
                w.finish_file().map_err(|e| LedgerError::Io(format!("batch file: {e}")))?;
            }
            sync_dir(dir).map_err(LedgerError::Io)?;
        }
        Ok((recorded, batch))
    }

    fn regenerate_with<W: FinishFile>(
        &self,
        number: u64,
        open: &mut dyn FnMut(&str) -> std::io::Result<W>,
    ) -> Result<(RecordedBatch, Batch, Written<W>), LedgerError> {
        let recorded =
            self.pmh_batches()?.into_iter().find(|b| b.number == number).ok_or(LedgerError::NoSuchBatch(number))?;
        let mut temp = Projections::temporary()?;
        temp.catch_up(&self.store, Some(daicho_store::Position(recorded.batch.to_position)), &mut |_, _| {})?;
        let config = temp.config().cloned().ok_or_else(|| LedgerError::Other("no configuration".into()))?;
        let program = config
            .program(&recorded.batch.program)
            .ok_or_else(|| LedgerError::Other(format!("{}: no such program", recorded.batch.program)))?;
        let (mut batch, writers) =
            temp.write_batch(&config, program, recorded.batch.mode, recorded.batch.to_position, open)?;
        // A diff recorded before 2026-12-04 (manifest format 1) listed every record it held
        // back: its companions list them all again, in recipient order as they did then.
        let listed_all = u64::from(recorded.batch.held_back) == u64::from(batch.held_total);
        if listed_all && batch.held_back.len() < recorded.batch.held_back as usize {
            let (mut all, _) = temp.reader().pmh_held(program, usize::MAX)?;
            all.sort_by_key(|(h, _)| h.recipient);
            batch.held_back = all.into_iter().map(|(h, _)| h).collect();
        }
        Ok((recorded, batch, writers))
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Decodes a recipient envelope into a domain event.
    pub fn event_of(envelope: &Envelope) -> Result<Event, BackendError> {
        let at = |e: String| BackendError(format!("position {}: {e}", envelope.position));
        let body = codec::decode(&envelope.event_type, envelope.schema_version, &envelope.payload)
            .map_err(|e| at(e.to_string()))?;
        let command = CommandId::parse(&envelope.correlation_id).map_err(|e| at(e.code().to_owned()))?;
        Ok(Event { command, effective: envelope.effective, body })
    }

    fn fold(envelopes: &[Envelope]) -> Result<State, BackendError> {
        envelopes.iter().try_fold(State::default(), |state, e| Ok(evolve(state, &Ledger::event_of(e)?)))
    }
}

fn store_err(e: StoreError) -> BackendError {
    BackendError(e.to_string())
}

/// Reads of recipient streams that deciding a command needs.
impl Ledger {
    /// The earlier request with this id: its fingerprint and last position.
    pub fn prior(&self, id: &CommandId) -> Result<Option<(Fingerprint, Position)>, BackendError> {
        prior(&self.store, id)
    }

    /// The recipient's stream, folded.
    pub fn load(&self, recipient: &RecipientRef) -> Result<Loaded, BackendError> {
        load(&self.store, recipient)
    }

    /// Who holds a My Number now (the register is caught up first).
    pub fn holder(&mut self, my_number: &MyNumber, recipient: &RecipientRef) -> Result<MyNumberHolder, BackendError> {
        let holder = self.projections().map_err(|e| BackendError(e.to_string()))?.my_number_holder(my_number);
        let holder = holder.map_err(|e| BackendError(e.to_string()))?;
        let mine = self.store.stream_for_key(RECIPIENT_CATEGORY, recipient.as_str()).map_err(store_err)?;
        let mine = mine.as_ref().and_then(|s| recipient_number(s.as_str()));
        Ok(match holder {
            None => MyNumberHolder::Nobody,
            Some(n) if Some(n) == mine => MyNumberHolder::ThisRecipient,
            Some(_) => MyNumberHolder::Another,
        })
    }
}

/// The earlier request with this id in `store`: its fingerprint and last position.
pub(crate) fn prior(store: &Store, id: &CommandId) -> Result<Option<(Fingerprint, Position)>, BackendError> {
    Ok(store.request(id.as_str()).map_err(store_err)?.map(|r| (Fingerprint(r.digest), r.outcome.last)))
}

/// The recipient's stream in `store`, folded.
pub(crate) fn load(store: &Store, recipient: &RecipientRef) -> Result<Loaded, BackendError> {
    let Some(stream) = store.stream_for_key(RECIPIENT_CATEGORY, recipient.as_str()).map_err(store_err)? else {
        return Ok(Loaded { state: State::default(), stream: None, version: 0 });
    };
    let envelopes = store.read_stream(&stream).map_err(store_err)?;
    let version = envelopes.last().map_or(0, |e| e.stream_version);
    Ok(Loaded { state: Ledger::fold(&envelopes)?, stream: Some(stream.to_string()), version })
}

/// Appends the events `cmd` was decided to on the recipient stream loaded at `version`; with
/// `head`, only if the log's head is still there.
pub(crate) fn append(
    store: &Store,
    version: u64,
    head: Option<Position>,
    cmd: &Command,
    events: &[Event],
) -> Result<Appended, BackendError> {
    let mut request = recipient_request(cmd, events, version).map_err(BackendError)?;
    request.expected_head = head;
    match store.append_blocking(request) {
        Ok(o) if o.already_applied => Ok(Appended::AlreadyApplied { last: o.last }),
        Ok(o) => Ok(Appended::Written { last: o.last }),
        Err(e) if lost_race(&e) => Ok(Appended::Conflict),
        Err(AppendError::RequestIdReused | AppendError::EventIdReused { .. }) => Ok(Appended::IdReused),
        Err(e) => Err(BackendError(e.to_string())),
    }
}

/// A batch's data files as written: (name, writer), JSON first.
type Written<W> = Vec<(String, W)>;
