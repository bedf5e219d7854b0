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

/// The slots each program last ran for, as kept in [`STATE_FILE`].
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct State {
    slots: BTreeMap<String, NaiveDate>,
}

fn read_state(exports: &Path) -> State {
    std::fs::read(exports.join(STATE_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
}

/// The daily runs of one server.
pub struct Scheduler {
    exports: PathBuf,
    /// The last run's status, for the PMH page.
    pub last: Option<RunStatus>,
}

impl Scheduler {
    /// A scheduler keeping its batches in `exports` (`DATA/exports`).
    pub fn new(exports: &Path) -> Scheduler {
        Scheduler { exports: exports.to_path_buf(), last: None }
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
        let mut state = read_state(&self.exports);
        let mut runs = Vec::new();
        // Scheduled batches recorded but not delivered (a crash between the two) first.
        if let Some(delivery) = &config.pmh.delivery {
            runs.extend(self.undelivered(app, delivery));
        }
        let actor = Actor::Operator(SCHEDULE_ACTOR.to_owned());
        for key in programs {
            if state.slots.get(key.as_str()).is_some_and(|d| *d >= day) {
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
                    let bytes = serde_json::to_vec_pretty(&state).unwrap_or_default();
                    if let Err(e) = files::replace(&self.exports, STATE_FILE, &bytes) {
                        run.error.get_or_insert(e);
                    }
                }
                Err(e) => run.error = Some(e.to_string()),
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

    /// Delivers every batch the scheduler recorded whose directory has no [`DELIVERED_FILE`].
    fn undelivered(&self, app: &App, delivery: &PmhDelivery) -> Vec<ProgramRun> {
        let recorded = match app.ledger().pmh_batches() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "scheduled pmh delivery: batches unreadable");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for b in recorded.iter().filter(|b| b.actor == SCHEDULE_ACTOR) {
            let dir = batch_dir(&self.exports, b.number);
            if !dir.is_dir() || dir.join(DELIVERED_FILE).exists() {
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

/// Copies a batch's data files of the configured kinds from `dir` into the delivery folder,
/// each under a temporary name, synced, renamed; then marks the batch delivered. Returns the
/// names delivered.
pub fn deliver(delivery: &PmhDelivery, dir: &Path, b: &Delivery<'_>, day: NaiveDate) -> Result<Vec<String>, String> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let folder = &delivery.folder;
    let mut names = Vec::new();
    for file in &b.files {
        let Some(ext) = Path::new(file).extension().and_then(|e| e.to_str()) else { continue };
        if !delivery.files.iter().any(|f| f == ext) {
            continue;
        }
        let bytes = std::fs::read(dir.join(file)).map_err(|e| format!("{}: {e}", dir.join(file).display()))?;
        let name = delivered_name(delivery, b, day, ext);
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
            .and_then(|()| f.write_all(&bytes))
            .and_then(|()| f.sync_all())
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, folder.join(&name)).map_err(|e| format!("{}: {e}", folder.join(&name).display()))?;
        files::sync_dir(folder)?;
        names.push(name);
    }
    files::replace(dir, DELIVERED_FILE, names.join("\n").as_bytes())?;
    Ok(names)
}
