//! daicho-app: the application layer between the read models (`daicho-projections`) and the
//! two surfaces (the web UI, the operator CLI).
//!
//! - Every write goes through [`App::execute`] (`execute`): who may do it is decided there, from
//!   the one role table ([`policy`]); it appends through the one append builder ([`append`])
//!   and retries a lost race by one rule; it answers rejected / conflict / infrastructure, never
//!   a mixture. Bulk loading by the operator (`import`, `demo`) queues its appends through
//!   [`bulk`], with the same builder.
//! - [`ledger::Ledger`]: the store, the configuration recorded in it, the register.
//! - [`submit`]: the one algorithm that decides a recipient command, for the ledger and for
//!   `daicho check`'s ledger in memory.
//! - [`accounts`], [`access`], [`pending`]: users, the access log, approvals waiting.
//! - [`files`]: durable output files; [`pmh`]: a PMH batch's companion files and regeneration;
//!   [`clock`]: Japan time; [`billing`]: the operating fee on the ledger; [`health`];
//!   [`backup`]: backup files of the logs.

pub mod access;
pub mod accounts;
pub mod append;
pub mod backup;
pub mod billing;
pub mod bulk;
pub mod clock;
pub mod csv_records;
pub mod execute;
pub mod files;
pub mod health;
pub mod ledger;
pub mod pending;
pub mod pmh;
pub mod pmh_reconcile;
pub mod pmh_results;
pub mod policy;
pub mod schedule;
pub mod submit;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use daicho_domain::config::Config;

use daicho_store::Store;

pub use execute::{Actor, CONFLICT_MESSAGE, Failure, Outcome, Refusal, Request};

use crate::access::AccessLog;
use crate::accounts::Accounts;
use crate::ledger::Ledger;
use crate::pending::PendingLinks;

/// An open data directory: what writes and the reads around them need.
pub struct App {
    ledger: Mutex<Ledger>,
    /// The ledger's store, for reads without the lock.
    pub store: Store,
    /// The hash-chained access log.
    pub access: AccessLog,
    accounts: RwLock<Accounts>,
    /// The configuration in force, read by every command without the ledger's lock (a PMH
    /// batch or a month's close holds that lock for as long as it computes).
    config: RwLock<Arc<Config>>,
    /// Requests waiting for approval (`DATA/web/`), opened by the web server only.
    pending: OnceLock<PendingLinks>,
    /// The data directory.
    pub data: PathBuf,
    hooks: execute::Hooks,
}

impl App {
    /// Opens the ledger and the accounts in `data`; the access log opens when first used.
    pub fn open(data: &Path) -> Result<App, String> {
        App::of(Ledger::open(data).map_err(|e| e.to_string())?, data)
    }

    /// Wraps an open ledger of `data`.
    pub fn of(ledger: Ledger, data: &Path) -> Result<App, String> {
        let store = ledger.store().clone();
        let accounts = Accounts::load(&store).map_err(|e| e.to_string())?;
        let config = RwLock::new(Arc::new(ledger.config().clone()));
        let access = AccessLog::when_used(data);
        Ok(App {
            ledger: Mutex::new(ledger),
            store,
            access,
            accounts: RwLock::new(accounts),
            config,
            pending: OnceLock::new(),
            data: data.to_path_buf(),
            hooks: execute::Hooks::default(),
        })
    }

    /// Opens the requests waiting for approval (`DATA/web/`): the web server does, the CLI
    /// never needs them.
    pub fn with_pending(self) -> Result<App, String> {
        let pending = PendingLinks::open(&self.data)?;
        let _ = self.pending.set(pending);
        Ok(self)
    }

    /// The ledger, locked. A panic while it was held cannot have left it half-written (the
    /// store commits whole requests; the register commits whole chunks), so the lock is taken
    /// back rather than failing every later request.
    pub fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set_config(&self, config: Config) {
        *self.config.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(config);
    }

    /// The accounts, read.
    pub fn accounts(&self) -> RwLockReadGuard<'_, Accounts> {
        self.accounts.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn accounts_mut(&self) -> RwLockWriteGuard<'_, Accounts> {
        self.accounts.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
