//! The application state shared by every request: the ledger, the access log, the accounts,
//! sessions, login throttling and the pending My Number links.
//!
//! The ledger (store, configuration, register) sits behind one mutex: commands, catch-up of the
//! register and its queries run one at a time on a blocking thread. Reads of the log itself
//! (timelines, as-of views) use a clone of the store and take no lock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::NaiveDate;
use daicho_app::ledger::Ledger;

use crate::auth::{Sessions, Throttle};
use crate::error::{AppError, AppResult};

pub use daicho_app::clock::{format_recorded, now};

/// Settings of the web server.
#[derive(Clone, Debug)]
pub struct Settings {
    /// A session ends after this long without a request.
    pub idle_timeout: Duration,
    /// A session ends this long after login, whatever happens.
    pub absolute_timeout: Duration,
    /// Mark cookies `Secure` (and name them `__Host-…`): set when served over TLS.
    pub secure_cookies: bool,
    /// Decide commands as of this day instead of today in Japan (tests and demos of the past).
    pub today: Option<NaiveDate>,
    /// The clock of session timeouts, re-authentication and the login throttle (the system's;
    /// tests move a manual one).
    pub clock: daicho_app::clock::Monotonic,
    /// Failed logins of one account from one address before that pair is locked for
    /// [`Settings::lockout`]; past as many from anywhere, each attempt of the account waits
    /// (doubling from a second up to [`Settings::account_delay_max`]).
    pub account_failures_max: u32,
    /// Failed logins from one address before it is locked.
    pub address_failures_max: u32,
    /// How long a lock lasts, and the window in which failures are counted.
    pub lockout: Duration,
    /// The longest wait an account's failures impose on its next attempt.
    pub account_delay_max: Duration,
    /// Password hashes computed at once (argon2id takes 19 MiB each); a login beyond them is
    /// answered 429 at once.
    pub password_hashes_max: usize,
    /// Access records one search of the access-log page reads at most, newest first.
    pub access_scanned_max: usize,
    /// Connections served at once; more wait in the listen queue.
    pub connections_max: usize,
    /// Page views and searches whose blocking part (log, register) runs at once; more wait their
    /// turn in arrival order. Two per core: enough to overlap reads from the disk, few enough
    /// that a burst is served first come, first served rather than all at once.
    pub workers_max: usize,
    /// Live sessions at most; a login beyond them is refused until some end.
    pub sessions_max: usize,
    /// How long the health figures of `/healthz` and the health page are reused.
    pub health_ttl: Duration,
    /// A password issued by an administrator (or the CLI) must be changed at the first login.
    /// Off only for `serve --demo`, whose printed passwords are the demo's.
    pub force_password_change: bool,
    /// How long after typing the password again a user may reveal My Numbers.
    pub reauth_window: Duration,
}

impl Settings {
    /// The login throttle's limits.
    pub fn throttle_limits(&self) -> crate::auth::ThrottleLimits {
        crate::auth::ThrottleLimits {
            pair_failures_max: self.account_failures_max,
            address_failures_max: self.address_failures_max,
            account_failures_max: self.account_failures_max,
            account_delay_max: self.account_delay_max,
            window: self.lockout,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(8 * 3600),
            secure_cookies: false,
            today: None,
            clock: daicho_app::clock::Monotonic::system(),
            account_failures_max: 5,
            address_failures_max: 20,
            lockout: Duration::from_secs(15 * 60),
            account_delay_max: Duration::from_secs(30),
            password_hashes_max: 4,
            access_scanned_max: 200_000,
            connections_max: 512,
            workers_max: 2 * std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            sessions_max: 10_000,
            health_ttl: Duration::from_secs(10),
            force_password_change: true,
            reauth_window: Duration::from_secs(5 * 60),
        }
    }
}

/// Everything a request can reach: the application layer's [`daicho_app::App`] (ledger, store,
/// accounts, access log, `execute`), reached through `Deref`, and what only the web has.
pub struct App {
    core: daicho_app::App,
    /// Logged-in sessions.
    pub sessions: Sessions,
    /// Failed-login counters.
    pub throttle: Throttle,
    /// Permits to compute a password hash (see [`Settings::password_hashes_max`]).
    pub password_hashes: Arc<tokio::sync::Semaphore>,
    /// One walk of both hash chains at a time (`/audit/verify`).
    pub verifying: Arc<tokio::sync::Semaphore>,
    /// One fee statement computed at a time for downloads (each reads the whole register).
    pub statements: Mutex<()>,
    /// Connections served at once (see [`Settings::connections_max`]).
    pub connections: Arc<tokio::sync::Semaphore>,
    /// Blocking parts of page views and searches run at once (see [`Settings::workers_max`]);
    /// fair: first come, first served.
    pub workers: Arc<tokio::sync::Semaphore>,
    /// The last health figures and when they were collected (see [`Settings::health_ttl`]).
    health: Mutex<Option<(std::time::Instant, daicho_app::health::Health)>>,
    /// Settings.
    pub settings: Settings,
    /// Where generated PMH files are kept (`DATA/exports`).
    pub exports: PathBuf,
    /// The daily PMH runs (`[pmh.schedule]`).
    pub scheduler: Mutex<daicho_app::schedule::Scheduler>,
    /// Municipality name for page headers.
    pub municipality: String,
    /// A hash checked when a login names an unknown user, so that both take as long.
    pub dummy_hash: String,
    /// The eras date fields are read with (the configuration's), kept out of the ledger lock.
    pub eras: daicho_domain::calendar::EraTable,
    /// The access log's store, opened with the server: a server that cannot record accesses
    /// does not start.
    pub access_store: daicho_store::Store,
}

impl App {
    /// Opens everything in the data directory `data` (which must hold a ledger).
    pub fn open(data: &Path, settings: Settings) -> Result<Arc<App>, String> {
        let mut ledger = Ledger::open(data).map_err(|e| e.to_string())?;
        // Bring the register up to date now rather than on the first request.
        ledger.projections().map_err(|e| e.to_string())?;
        let municipality = ledger.config().municipality.name.clone();
        let eras = ledger.config().eras.clone();
        let core = daicho_app::App::of(ledger, data)?.with_pending()?;
        let access_store = core.access.store().map_err(|e| format!("アクセス記録を開けません: {e}"))?.clone();
        let dummy_hash = daicho_app::accounts::hash_password(&random_hex(16).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(App {
            core,
            sessions: Sessions::new(settings.clock.clone()),
            throttle: Throttle::default(),
            password_hashes: Arc::new(tokio::sync::Semaphore::new(settings.password_hashes_max.max(1))),
            verifying: Arc::new(tokio::sync::Semaphore::new(1)),
            statements: Mutex::new(()),
            connections: Arc::new(tokio::sync::Semaphore::new(settings.connections_max.max(1))),
            workers: Arc::new(tokio::sync::Semaphore::new(settings.workers_max.max(1))),
            health: Mutex::new(None),
            settings,
            exports: data.join("exports"),
            scheduler: Mutex::new(daicho_app::schedule::Scheduler::new(&data.join("exports"))),
            municipality,
            dummy_hash,
            eras,
            access_store,
        }))
    }

    /// Today in Japan (or the configured day).
    pub fn today(&self) -> NaiveDate {
        self.settings.today.unwrap_or_else(|| now().date_naive())
    }

    /// The health figures, reused when at most `max_age` old; collected again (one request at
    /// a time) when older. Only the ledger's part takes the ledger lock; the walk of the data
    /// directory runs without it.
    pub fn health(&self, max_age: Duration) -> Result<daicho_app::health::Health, String> {
        let mut cached = self.health.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, h)) = cached.as_ref()
            && at.elapsed() <= max_age
        {
            return Ok(h.clone());
        }
        let mut h = {
            let mut ledger = self.ledger();
            daicho_app::health::Health::of_ledger(&self.data, &mut ledger, Some(&self.access_store))?
        };
        h.measure_disk(&self.data);
        *cached = Some((std::time::Instant::now(), h.clone()));
        Ok(h)
    }

    /// How many My Number links wait for approval.
    pub fn pending_count(&self) -> usize {
        self.pending().ok().and_then(|p| p.all().ok()).map_or(0, |l| l.len())
    }
}

impl std::ops::Deref for App {
    type Target = daicho_app::App;
    fn deref(&self) -> &daicho_app::App {
        &self.core
    }
}

/// Runs `f` on a blocking thread with the app (sled, argon2 and fsync must not block the async
/// workers).
pub async fn blocking<T, F>(app: &Arc<App>, f: F) -> AppResult<T>
where
    T: Send + 'static,
    F: FnOnce(&App) -> AppResult<T> + Send + 'static,
{
    let app = app.clone();
    tokio::task::spawn_blocking(move || f(&app)).await.map_err(|e| AppError::internal(format!("task: {e}")))?
}

/// As [`blocking`], for the reads every caseworker makes all day (a recipient's page, a
/// search): at most [`Settings::workers_max`] at once, served in arrival order. Long jobs (a
/// PMH batch, a statement, a verification) and logins do not take part, so they neither wait
/// behind a burst of page views nor hold their turns.
pub async fn blocking_read<T, F>(app: &Arc<App>, f: F) -> AppResult<T>
where
    T: Send + 'static,
    F: FnOnce(&App) -> AppResult<T> + Send + 'static,
{
    let app = app.clone();
    // The permit goes with the work: a request given up still holds it until its work ends.
    let permit = app.workers.clone().acquire_owned().await.map_err(|e| AppError::internal(format!("workers: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let done = f(&app);
        drop(permit);
        done
    })
    .await
    .map_err(|e| AppError::internal(format!("task: {e}")))?
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> AppResult<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| AppError::internal(format!("random: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
