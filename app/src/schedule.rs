//! 定時連携 (daily delivery): the batches `daicho serve` makes itself under `[pmh.schedule]`, and
//! their delivery to the folder of `[pmh.delivery]`.
//!
//! Every day at the configured time (Japan time) each scheduled program gets a batch, as the
//! PMH page would make it, by the operator actor [`SCHEDULE_ACTOR`]. A run is due when the
//! latest time slot at or before now has not been run for a program: a server down for days
//! runs once when it starts, not once per missed day. Which slot each program last ran for is
//! kept in `DATA/exports/schedule.json` (replaced atomically after each program), so a restart
//! in the middle of a run does the remaining programs only. A batch's files are delivered
//! under a temporary name (`.NAME.tmp`), synced, then renamed, so the batch program never
//! reads half a file; a `delivered` file in the batch's directory records it, and a recorded
//! scheduled batch not yet delivered (a crash between the two) is delivered at the next tick.
//!
//! The clock is the caller's: the server passes Japan time, tests a made-up one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, FixedOffset, NaiveDate};
use daicho_domain::config::{PmhDelivery, PmhMode, PmhSchedule, ProgramKey};
use daicho_projections::export::mode_name;

use crate::files;
use crate::pmh::{batch_dir, generate};
use crate::{Actor, App};

/// Who records scheduled batches.
pub const SCHEDULE_ACTOR: &str = "daicho-schedule";

/// The state file, in the exports directory.
pub const STATE_FILE: &str = "schedule.json";

/// The marker of a delivered batch, in its directory.
pub const DELIVERED_FILE: &str = "delivered";

/// The day of the latest slot of `schedule` at or before `now`.
pub fn slot_day(schedule: &PmhSchedule, now: DateTime<FixedOffset>) -> NaiveDate {
    let today = now.date_naive();
    if now.time() >= schedule.time { today } else { today - Duration::days(1) }
}

/// The next slot after `now`.
pub fn next_slot(schedule: &PmhSchedule, now: DateTime<FixedOffset>) -> chrono::NaiveDateTime {
    let today = now.date_naive();
    let day = if now.time() < schedule.time { today } else { today + Duration::days(1) };
    day.and_time(schedule.time)
}

/// What a tick did for one program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramRun {
    pub program: ProgramKey,
    /// The batch made (or found made and delivered now), `None`: nothing to send.
    pub batch: Option<u64>,
    /// Files delivered to the folder.
    pub delivered: Vec<String>,
    /// What failed (it is tried again at the next tick), for the log and the page; names no
    /// person.
    pub error: Option<String>,
}

/// What the last tick that had something due did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunStatus {
    /// The slot run for.
    pub day: NaiveDate,
    /// When (the caller's clock).
    pub at: DateTime<FixedOffset>,
    pub programs: Vec<ProgramRun>,
}

/// The slots each program last ran for, and from which batch on scheduled batches are
/// delivered, as kept in [`STATE_FILE`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct State {
    slots: BTreeMap<String, NaiveDate>,
    /// Scheduled batches after this number are delivered (set when a delivery folder is first
    /// configured: earlier batches were not meant for it); `None` while none is.
    #[serde(default)]
    delivery_after: Option<u64>,
}

/// The state file: default when there is none, an error when it cannot be read (a run then
/// waits for the operator rather than running everything again).
fn read_state(exports: &Path) -> Result<State, String> {
    let path = exports.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| {
            format!("{}: 定時連携の記録を読めません。内容を確かめるか、消してから再起動してください（消すと各制度は次の時刻から始まります）", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

fn write_state(exports: &Path, state: &State) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
    files::replace(exports, STATE_FILE, &bytes)
}

/// How long a program whose run failed waits before it is tried again.
pub const RETRY_AFTER: Duration = Duration::minutes(10);

/// The daily runs of one server.
pub struct Scheduler {
    exports: PathBuf,
    /// The last run's status, for the PMH page.
    pub last: Option<RunStatus>,
    /// Programs whose run failed, and when they are tried again.
    retry: BTreeMap<ProgramKey, DateTime<FixedOffset>>,
    /// The state file could not be read: said once in the log, not every tick.
    state_error: Option<String>,
}

impl Scheduler {
    /// A scheduler keeping its batches in `exports` (`DATA/exports`).
    pub fn new(exports: &Path) -> Scheduler {
        Scheduler { exports: exports.to_path_buf(), last: None, retry: BTreeMap::new(), state_error: None }
    }

    /// Runs what is due at `now`: returns what it did, or `None` when nothing was due (or no
    /// schedule is configured).
    pub fn tick(&mut self, app: &App, now: DateTime<FixedOffset>) -> Option<RunStatus> {
        let config = app.config();
        let schedule = config.pmh.schedule.as_ref()?;
        let day = slot_day(schedule, now);
        let programs: Vec<ProgramKey> = if schedule.programs.is_empty() {
            config.programs().iter().map(|p| p.key.clone()).collect()
        } else {
            schedule.programs.clone()
        };
        let mut state = match read_state(&self.exports) {
            Ok(s) => {
                self.state_error = None;
                s
            }
            Err(e) => {
                if self.state_error.as_ref() != Some(&e) {
                    tracing::error!(error = %e, "pmh schedule stopped");
                    self.state_error = Some(e);
                }
                return None;
            }
        };
        // A program new to the schedule starts at its next slot, not at once.
        let mut changed = false;
        for key in &programs {
            if !state.slots.contains_key(key.as_str()) {
                state.slots.insert(key.to_string(), day);
                changed = true;
            }
        }
        match (&config.pmh.delivery, state.delivery_after) {
            (Some(_), None) => {
                let last = app.ledger().pmh_batches().ok().and_then(|b| b.last().map(|b| b.number)).unwrap_or(0);
                state.delivery_after = Some(last);
                changed = true;
            }
            (None, Some(_)) => {
                state.delivery_after = None;
                changed = true;
            }
            _ => {}
        }
        if changed && let Err(e) = write_state(&self.exports, &state) {
            tracing::error!(error = %e, "pmh schedule: state not written");
            return None;
        }
        let mut runs = Vec::new();
        // Scheduled batches recorded but not delivered (a crash between the two) first.
        if let (Some(delivery), Some(after)) = (&config.pmh.delivery, state.delivery_after) {
            runs.extend(self.undelivered(app, delivery, after));
        }
        let actor = Actor::Operator(SCHEDULE_ACTOR.to_owned());
        for key in programs {
            if state.slots.get(key.as_str()).is_some_and(|d| *d >= day) {
                continue;
            }
            if self.retry.get(&key).is_some_and(|t| now < *t) {
                continue;
            }
            let mut run = ProgramRun { program: key.clone(), batch: None, delivered: Vec::new(), error: None };
            match generate(app, &actor, &key, schedule.mode, now.date_naive(), &self.exports) {
                Ok(made) => {
                    if let (Some((n, batch)), Some(delivery)) = (&made, &config.pmh.delivery) {
                        let files: Vec<&str> = batch.files.iter().map(|f| f.name.as_str()).collect();
                        let what = Delivery {
                            number: *n,
                            program: &batch.program,
                            mode: batch.mode,
                            positions: (batch.from_position, batch.to_position),
                            files,
                        };
                        match deliver(delivery, &batch_dir(&self.exports, *n), &what, now.date_naive()) {
                            Ok(names) => run.delivered = names,
                            Err(e) => run.error = Some(e),
                        }
                    }
                    run.batch = made.map(|(n, _)| n);
                    // The batch is recorded: this slot is done for the program (a failed
                    // delivery is tried again from its directory).
                    state.slots.insert(key.to_string(), day);
                    if let Err(e) = write_state(&self.exports, &state) {
                        run.error.get_or_insert(e);
                    }
                }
                Err(e) => {
                    run.error = Some(e.to_string());
                    self.retry.insert(key.clone(), now + RETRY_AFTER);
                }
            }
            if let Some(e) = &run.error {
                tracing::error!(program = %key, error = %e, "scheduled pmh batch failed");
            } else {
                tracing::info!(program = %key, batch = ?run.batch, files = run.delivered.len(), "scheduled pmh batch");
            }
            runs.push(run);
        }
        if runs.is_empty() {
            return None;
        }
        let status = RunStatus { day, at: now, programs: runs };
        self.last = Some(status.clone());
        Some(status)
    }

    /// Delivers every batch the scheduler recorded after batch `after` whose directory has no
    /// [`DELIVERED_FILE`] (its files made again from the log when the directory is gone).
    fn undelivered(&self, app: &App, delivery: &PmhDelivery, after: u64) -> Vec<ProgramRun> {
        let recorded = match app.ledger().pmh_batches() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "scheduled pmh delivery: batches unreadable");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for b in recorded.iter().filter(|b| b.actor == SCHEDULE_ACTOR && b.number > after) {
            let dir = batch_dir(&self.exports, b.number);
            if dir.join(DELIVERED_FILE).exists() {
                continue;
            }
            if let Err(e) = std::fs::create_dir_all(&dir) {
                out.push(ProgramRun {
                    program: b.batch.program.clone(),
                    batch: Some(b.number),
                    delivered: Vec::new(),
                    error: Some(format!("{}: {e}", dir.display())),
                });
                continue;
            }
            // The files as recorded, made again from the log when one is missing or altered.
            let intact =
                b.batch.files.iter().all(|(name, sha)| files::file_sha256(&dir.join(name)).is_ok_and(|h| h == *sha));
            let ready = if intact {
                Ok(())
            } else {
                match crate::pmh::regenerate_into(&app.ledger(), b.number, &dir) {
                    Ok(r) if r.matches => Ok(()),
                    Ok(_) => Err(format!("batch {}: regenerated files do not match their recorded hashes", b.number)),
                    Err(e) => Err(e.to_string()),
                }
            };
            let what = Delivery {
                number: b.number,
                program: &b.batch.program,
                mode: b.batch.mode,
                positions: (b.batch.from_position, b.batch.to_position),
                files: b.batch.files.iter().map(|(n, _)| n.as_str()).collect(),
            };
            let result = ready.and_then(|()| deliver(delivery, &dir, &what, b.effective));
            let (delivered, error) = match result {
                Ok(names) => (names, None),
                Err(e) => (Vec::new(), Some(e)),
            };
            out.push(ProgramRun { program: b.batch.program.clone(), batch: Some(b.number), delivered, error });
        }
        out
    }
}

/// A recorded batch to deliver: its number, program, mode, positions and data file names.
pub struct Delivery<'a> {
    pub number: u64,
    pub program: &'a ProgramKey,
    pub mode: PmhMode,
    pub positions: (u64, u64),
    pub files: Vec<&'a str>,
}

/// The delivered name of a batch's file with extension `ext`.
pub fn delivered_name(delivery: &PmhDelivery, b: &Delivery<'_>, day: NaiveDate, ext: &str) -> String {
    let name = delivery
        .name
        .replace("{program}", b.program.as_str())
        .replace("{mode}", mode_name(b.mode))
        .replace("{from}", &b.positions.0.to_string())
        .replace("{to}", &b.positions.1.to_string())
        .replace("{batch}", &b.number.to_string())
        .replace("{date}", &day.format("%Y%m%d").to_string());
    format!("{name}.{ext}")
}

/// The progress of a delivery, in the batch's directory: the names already in the folder.
pub const DELIVERING_FILE: &str = "delivering";

/// Copies a batch's data files of the configured kinds from `dir` into the delivery folder,
/// each under a temporary name, synced, renamed (one already delivered by an interrupted try
/// is not delivered again); then marks the batch delivered. Returns the names delivered.
pub fn deliver(delivery: &PmhDelivery, dir: &Path, b: &Delivery<'_>, day: NaiveDate) -> Result<Vec<String>, String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let folder = &delivery.folder;
    let meta = std::fs::metadata(folder).map_err(|e| format!("{}: 連携フォルダがありません: {e}", folder.display()))?;
    if !meta.is_dir() || meta.mode() & 0o002 != 0 {
        return Err(format!(
            "{}: 連携フォルダが誰でも書き込める（またはフォルダではない）ため置きません。権限を確かめてください",
            folder.display()
        ));
    }
    let done: Vec<String> = std::fs::read_to_string(dir.join(DELIVERING_FILE))
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default();
    let mut names = Vec::new();
    for file in &b.files {
        let Some(ext) = Path::new(file).extension().and_then(|e| e.to_str()) else { continue };
        if !delivery.files.iter().any(|f| f == ext) {
            continue;
        }
        let name = delivered_name(delivery, b, day, ext);
        if done.contains(&name) {
            names.push(name);
            continue;
        }
        let mut source =
            std::fs::File::open(dir.join(file)).map_err(|e| format!("{}: {e}", dir.join(file).display()))?;
        let tmp = folder.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(delivery.file_mode)
            .open(&tmp)
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        // The umask may have taken bits the configuration asks for.
        f.set_permissions(std::fs::Permissions::from_mode(delivery.file_mode))
            .and_then(|()| std::io::copy(&mut source, &mut f).map(drop))
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, folder.join(&name)).map_err(|e| format!("{}: {e}", folder.join(&name).display()))?;
        files::sync_dir(folder)?;
        names.push(name);
        files::replace(dir, DELIVERING_FILE, names.join("\n").as_bytes())?;
    }
    files::replace(dir, DELIVERED_FILE, names.join("\n").as_bytes())?;
    Ok(names)
}
