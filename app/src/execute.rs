//! `execute` (実行): every write of daicho goes through [`App::execute`]. It checks who may do
//! it (the role policy), decides it, appends it with the one append builder and retries a lost
//! race, and answers in one of three families that never mix:
//!
//! - [`Failure::Rejected`]: a rule refused it ([`Refusal`], a Japanese message shown next to
//!   the field or on the CLI's line); nothing written;
//! - [`Failure::Conflict`]: someone else changed the record first, and retrying did not help (or
//!   the user confirmed a state that is no longer there); nothing written; shown as
//!   [`CONFLICT_MESSAGE`];
//! - [`Failure::Infrastructure`]: storage or I/O failed; logged with detail by the caller, shown
//!   generically.
//!
//! Recipient commands take no lock across deciding and appending: the append names the stream
//! version it decided on, and a command that links a My Number also names the log's head at
//! which the holder of that number was looked up, so a concurrent link of the same number to
//! someone else makes the append fail and the command be decided again.

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use daicho_domain::billing::{BillingRejection, Month, Policy};
use daicho_domain::command::{Command, Fingerprint};
use daicho_domain::config::{PmhMode, ProgramKey};
use daicho_domain::event::Event;
use daicho_domain::ids::{CommandId, RecipientRef, UserId};
use daicho_domain::numbers::MyNumber;
use daicho_domain::users::{AccountRejection, Role};
use daicho_domain::{MyNumberHolder, Rejection};
use daicho_projections::export::Batch;
use daicho_store::Position;

use crate::App;
use crate::accounts::{self, AccountError};
use crate::billing::{BillingError, StatementFiles};
use crate::ledger::{self, LedgerError};
use crate::pending::{PendingLink, PendingLinks};
use crate::policy::{Permission, allows, roles_with};
use crate::submit::{Appended, Backend, BackendError, Decider, Loaded, Preview, Submitted, preview, submit_as};

/// What a user who lost a race is told (nothing of theirs was written).
pub const CONFLICT_MESSAGE: &str = "他の職員がこの記録を更新しました。再読み込みしてください";

/// Who asks for a write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Actor {
    /// The operator: the owner of the ledger's files at the CLI (`apply`, `config set`, `demo`,
    /// `users`), under the name given.
    Operator(String),
    /// A user with an account and a role (the web UI; the CLI with `--actor`).
    User { id: UserId, role: Role },
}

impl Actor {
    /// The name recorded as the actor.
    pub fn name(&self) -> &str {
        match self {
            Actor::Operator(name) => name,
            Actor::User { id, .. } => id.as_str(),
        }
    }

    /// Who decides a recipient command.
    pub fn decider(&self) -> Decider {
        match self {
            Actor::Operator(_) => Decider::Operator,
            Actor::User { role, .. } => Decider::User(*role),
        }
    }

    /// Refused unless the actor has `permission` (the operator has every one).
    fn require(&self, permission: Permission) -> Result<(), Failure> {
        match self {
            Actor::Operator(_) => Ok(()),
            Actor::User { role, .. } if allows(*role, permission) => Ok(()),
            Actor::User { .. } => Err(Failure::Rejected(Refusal::Forbidden { needs: roles_with(permission) })),
        }
    }
}

/// A write.
#[derive(Debug)]
pub enum Request<'a> {
    /// A recipient command. `seen`: the stream version the user confirmed the command on (the
    /// web's confirmation page); `None` decides on whatever is there (the CLI).
    Recipient { command: &'a Command, seen: Option<u64> },
    /// A new municipality configuration (operator only).
    Configuration { toml: &'a str },
    /// A program's PMH batch at the head, its data files streamed into `dir`.
    PmhBatch { program: &'a ProgramKey, mode: Option<PmhMode>, dir: &'a Path },
    /// PMH's registration results file (its bytes) read through `profile`; `covers`: batches
    /// it answers besides those its rows name.
    PmhResults { file: &'a [u8], profile: &'a crate::pmh_results::Profile, covers: &'a [u64] },
    /// A fee schedule entry (料金表).
    FeeSchedule { from: Month, unit_yen: u32 },
    /// Closing a billing month; its files written into `dir` (or only hashed).
    CloseMonth { month: Month, policy: Policy, dir: Option<&'a Path> },
    /// A new user with a generated password.
    AddUser { id: &'a str, name: &'a str, role: Role },
    /// A user disabled.
    DisableUser { id: &'a str },
    /// A user given a new generated password.
    ResetPassword { id: &'a str },
    /// The actor's own new password.
    ChangeOwnPassword { current: &'a str, new: &'a str },
    /// A request for approval (a My Number link or correction, or the rescind of one), entered
    /// by the actor; a second submit of the same form finds the first.
    AskApproval { link: PendingLink },
    /// A request approved: its command (actor: who asked; approver: the actor) recorded, then the
    /// request removed. `seen`: the stream version the approver's page was checked against.
    Approve { request: &'a str, command: &'a Command, seen: Option<u64> },
    /// A request sent back (removed).
    SendBack { request: &'a str },
}

/// What a write did.
#[derive(Debug)]
pub enum Outcome {
    /// Recorded; the position of its last event.
    Recorded { position: Position, events: Vec<Event> },
    /// Recorded before with the same content: nothing written; its original last position.
    AlreadyApplied { position: Position },
    /// A PMH batch: its number (`None`: nothing to send, nothing recorded) and files.
    Batch { number: Option<u64>, batch: Box<Batch> },
    /// PMH's results read: what was recorded and what was not tied to a record sent.
    PmhResults(Box<crate::pmh_results::Report>),
    /// A month closed: its statement files and the position of the closing event.
    MonthClosed { files: Box<StatementFiles>, position: Position },
    /// A generated password, to be shown once.
    Password(String),
    /// A request for approval stored (or found stored, from the same form): its id.
    Requested { id: String },
    /// Done, nothing to report.
    Done,
}

/// Why a write was not done. Nothing was written in any case.
#[derive(Debug)]
pub enum Failure {
    /// A rule refused it.
    Rejected(Refusal),
    /// Someone else changed it first.
    Conflict,
    /// Storage or I/O failed (details for the log, never shown).
    Infrastructure(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Rejected(r) => write!(f, "{r}"),
            Failure::Conflict => f.write_str(CONFLICT_MESSAGE),
            Failure::Infrastructure(e) => f.write_str(e),
        }
    }
}

/// A rule's refusal: a closed set, each with a Japanese message naming no person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The actor's role may not do this; these roles may.
    Forbidden { needs: Vec<Role> },
    /// A recipient command refused by a rule of the domain.
    Rule(Rejection),
    /// A billing rule.
    Billing(BillingRejection),
    /// An account rule (the id is taken, unknown, or a value is not acceptable); it names the
    /// form field it is about (`AccountRejection::field`).
    Account(AccountRejection),
    /// The configuration is invalid.
    Config(String),
    /// A PMH results file is malformed: each problem by line and column.
    ResultsFile(Vec<crate::pmh_results::FileProblem>),
    /// No PMH batch with this number is recorded.
    NoSuchBatch(u64),
    /// The form's request waits for approval already, with other values.
    AlreadyRequested,
    /// No such request waits for approval.
    NoSuchRequest,
    /// The one who asked can no longer record (disabled, or their role changed).
    RequesterCannotRecord,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Forbidden { needs } if needs.is_empty() => f.write_str("この操作を行う権限がありません"),
            Refusal::Forbidden { needs } => write!(
                f,
                "この操作には{}の権限が必要です",
                needs.iter().map(|r| r.label()).collect::<Vec<_>>().join("または")
            ),
            Refusal::Rule(r) => f.write_str(&r.message()),
            Refusal::Billing(e) => write!(f, "{e}"),
            Refusal::Account(r) => write!(f, "{r}"),
            Refusal::Config(m) => f.write_str(m),
            Refusal::ResultsFile(problems) => write!(
                f,
                "登録結果ファイルを読めません。何も記録していません: {}",
                problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("、")
            ),
            Refusal::NoSuchBatch(n) => write!(f, "バッチ {n} は記録されていません"),
            Refusal::AlreadyRequested => f.write_str(
                "この画面の依頼は既に承認待ちです。内容を変えるときは、受給者画面から入力し直してください。",
            ),
            Refusal::NoSuchRequest => f.write_str("この依頼は承認待ちにありません（承認または差し戻し済みです）。"),
            Refusal::RequesterCannotRecord => {
                f.write_str("依頼した職員の利用者IDが無効になっているため、承認できません。差し戻してください。")
            }
        }
    }
}

impl From<BackendError> for Failure {
    fn from(e: BackendError) -> Self {
        Failure::Infrastructure(e.0)
    }
}

impl From<LedgerError> for Failure {
    fn from(e: LedgerError) -> Self {
        match e {
            LedgerError::Config(m) => Failure::Rejected(Refusal::Config(m)),
            LedgerError::Conflict => Failure::Conflict,
            other => Failure::Infrastructure(other.to_string()),
        }
    }
}

impl From<crate::pmh_results::ResultsError> for Failure {
    fn from(e: crate::pmh_results::ResultsError) -> Self {
        use crate::pmh_results::ResultsError as E;
        match e {
            E::File(problems) => Failure::Rejected(Refusal::ResultsFile(problems)),
            E::NoSuchBatch(n) => Failure::Rejected(Refusal::NoSuchBatch(n)),
            E::Conflict => Failure::Conflict,
            E::TooLarge => Failure::Rejected(Refusal::ResultsFile(vec![crate::pmh_results::FileProblem {
                line: 0,
                column: None,
                message: "不受理の件数が多すぎて一度に記録できません。ファイルを分けて読み込んでください".into(),
            }])),
            E::Ledger(e) => e.into(),
        }
    }
}

impl From<BillingError> for Failure {
    fn from(e: BillingError) -> Self {
        match e {
            BillingError::Rejected(rule) => Failure::Rejected(Refusal::Billing(rule)),
            BillingError::Conflict => Failure::Conflict,
            BillingError::Other(m) => Failure::Infrastructure(m),
        }
    }
}

impl From<AccountError> for Failure {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Rejected(rule) => Failure::Rejected(Refusal::Account(rule)),
            AccountError::Conflict => Failure::Conflict,
            AccountError::Failed(m) => Failure::Infrastructure(m),
        }
    }
}

/// Called between reading a recipient's stream and appending to it: a seam for tests that force
/// two writers to meet there. `None` in production.
pub type BeforeAppend = Arc<dyn Fn(&RecipientRef) + Send + Sync>;

/// The seams of [`App`].
#[derive(Default)]
pub(crate) struct Hooks {
    pub(crate) before_append: Mutex<Option<BeforeAppend>>,
    /// Held while a request for approval is looked up and stored, or sent back.
    pub(crate) pending: Mutex<()>,
}

impl App {
    /// Sets (or clears) the hook called between reading and appending a recipient command.
    pub fn set_before_append(&self, hook: Option<BeforeAppend>) {
        *self.hooks.before_append.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = hook;
    }

    /// Does one write as `actor` on `today`.
    pub fn execute(&self, actor: &Actor, request: Request<'_>, today: NaiveDate) -> Result<Outcome, Failure> {
        match request {
            Request::Recipient { command, seen } => self.recipient(actor, command, seen, today),
            Request::Configuration { toml } => {
                if !matches!(actor, Actor::Operator(_)) {
                    return Err(Failure::Rejected(Refusal::Forbidden { needs: Vec::new() }));
                }
                for _ in 0..crate::append::RETRIES_MAX {
                    let mut ledger = self.ledger();
                    match ledger.set_config(toml, actor.name(), today) {
                        Err(LedgerError::Conflict) => continue,
                        recorded => {
                            let position = Position(recorded?);
                            self.set_config(ledger.config().clone());
                            return Ok(Outcome::Recorded { position, events: Vec::new() });
                        }
                    }
                }
                Err(Failure::Conflict)
            }
            Request::PmhBatch { program, mode, dir } => {
                actor.require(Permission::PmhExport)?;
                let (number, batch) = self.ledger().record_pmh_batch_into(program, mode, today, actor.name(), dir)?;
                Ok(Outcome::Batch { number, batch: Box::new(batch) })
            }
            Request::PmhResults { file, profile, covers } => {
                actor.require(Permission::PmhExport)?;
                let report = self.ledger().record_pmh_results(file, profile, covers, today, actor.name())?;
                Ok(Outcome::PmhResults(Box::new(report)))
            }
            Request::FeeSchedule { from, unit_yen } => {
                actor.require(Permission::FeeSchedule)?;
                for _ in 0..crate::append::RETRIES_MAX {
                    match self.ledger().set_fee_schedule(from, unit_yen, actor.name(), today) {
                        Err(BillingError::Conflict) => continue,
                        recorded => return Ok(Outcome::Recorded { position: Position(recorded?), events: Vec::new() }),
                    }
                }
                Err(Failure::Conflict)
            }
            Request::CloseMonth { month, policy, dir } => {
                actor.require(Permission::BillingClose)?;
                let (files, position) = self.ledger().close_fee_month(month, policy, today, actor.name(), dir)?;
                Ok(Outcome::MonthClosed { files: Box::new(files), position: Position(position) })
            }
            Request::AddUser { id, name, role } => {
                actor.require(Permission::Users)?;
                self.accounts_write(|a, store| accounts::add_user(a, store, (actor.name(), today), id, name, role))
                    .map(Outcome::Password)
            }
            Request::DisableUser { id } => {
                actor.require(Permission::Users)?;
                self.accounts_write(|a, store| accounts::disable_user(a, store, (actor.name(), today), id))
                    .map(|()| Outcome::Done)
            }
            Request::ResetPassword { id } => {
                actor.require(Permission::Users)?;
                self.accounts_write(|a, store| accounts::reset_password(a, store, (actor.name(), today), id))
                    .map(Outcome::Password)
            }
            Request::AskApproval { link } => self.ask_approval(actor, link),
            Request::Approve { request, command, seen } => self.approve(actor, (request, seen), command, today),
            Request::SendBack { request } => {
                actor.require(Permission::Approve)?;
                let pending = self.pending()?;
                let _one = self.hooks.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                pending
                    .get(request)
                    .map_err(Failure::Infrastructure)?
                    .ok_or(Failure::Rejected(Refusal::NoSuchRequest))?;
                pending.remove(request).map_err(Failure::Infrastructure)?;
                Ok(Outcome::Done)
            }
            Request::ChangeOwnPassword { current, new } => {
                let Actor::User { id, .. } = actor else {
                    return Err(Failure::Rejected(Refusal::Forbidden { needs: Vec::new() }));
                };
                self.accounts_write(|a, store| {
                    accounts::change_own_password(a, store, (id.as_str(), today), current, new)
                })
                .map(|()| Outcome::Done)
            }
        }
    }

    /// What a recipient command would do now, decided as `actor` without recording anything
    /// (the web's confirmation step).
    /// A command that will need an approver is previewed by the one who enters it.
    pub fn preview(&self, actor: &Actor, command: &Command, today: NaiveDate) -> Result<Preview, Failure> {
        if let Actor::User { id, .. } = actor {
            actor.require(Permission::Record)?;
            if command.actor != *id {
                return Err(Failure::Rejected(Refusal::Forbidden { needs: Vec::new() }));
            }
        }
        let config = self.config();
        Ok(preview(&mut Live::new(self), &config, today, command, actor.decider())?)
    }

    fn recipient(
        &self,
        actor: &Actor,
        command: &Command,
        seen: Option<u64>,
        today: NaiveDate,
    ) -> Result<Outcome, Failure> {
        self.may_record(actor, command)?;
        let config = self.config();
        match submit_as(&mut Live::new(self), &config, today, command, actor.decider(), seen)? {
            Submitted::Accepted { position, events } => Ok(Outcome::Recorded { position, events }),
            Submitted::AlreadyApplied { position } => Ok(Outcome::AlreadyApplied { position }),
            Submitted::Rejected(r) => Err(Failure::Rejected(Refusal::Rule(r))),
            Submitted::Conflict => Err(Failure::Conflict),
        }
    }

    fn ask_approval(&self, actor: &Actor, link: PendingLink) -> Result<Outcome, Failure> {
        let Actor::User { id, .. } = actor else {
            return Err(Failure::Rejected(Refusal::Forbidden { needs: Vec::new() }));
        };
        actor.require(Permission::Record)?;
        if link.requested_by != id.as_str() {
            return Err(Failure::Rejected(Refusal::Forbidden { needs: Vec::new() }));
        }
        let pending = self.pending()?;
        // One request at a time, so two submits of one form cannot both miss the other.
        let _one = self.hooks.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(existing) = pending.by_form(&link.requested_by, &link.form_key).map_err(Failure::Infrastructure)? {
            return if (existing.recipient, &existing.kind, &existing.fields)
                == (link.recipient, &link.kind, &link.fields)
            {
                Ok(Outcome::Requested { id: existing.id })
            } else {
                Err(Failure::Rejected(Refusal::AlreadyRequested))
            };
        }
        match pending.insert(&link) {
            Ok(()) => Ok(Outcome::Requested { id: link.id }),
            // The id is the server's own random one: a clash is ours, not the user's.
            Err(e) => Err(Failure::Infrastructure(format!("pending request: {e:?}"))),
        }
    }

    /// Records an approved request as its approver and removes it. Approving twice records once
    /// (the command id is the request's).
    fn approve(
        &self,
        actor: &Actor,
        (request, seen): (&str, Option<u64>),
        command: &Command,
        today: NaiveDate,
    ) -> Result<Outcome, Failure> {
        let pending = self.pending()?;
        let link =
            pending.get(request).map_err(Failure::Infrastructure)?.ok_or(Failure::Rejected(Refusal::NoSuchRequest))?;
        if command.id.as_str() != link.id || command.actor.as_str() != link.requested_by {
            return Err(Failure::Rejected(Refusal::Forbidden { needs: Vec::new() }));
        }
        let outcome = self.recipient(actor, command, seen, today)?;
        pending.remove(request).map_err(Failure::Infrastructure)?;
        Ok(outcome)
    }

    /// The pending approvals (opened by the web server).
    pub fn pending(&self) -> Result<&PendingLinks, Failure> {
        self.pending.get().ok_or_else(|| Failure::Infrastructure("pending approvals are not open".into()))
    }

    /// A user records commands as themselves; one that needs an approver is recorded by that
    /// approver, who may approve, for someone else who may record.
    fn may_record(&self, actor: &Actor, command: &Command) -> Result<(), Failure> {
        let Actor::User { id, .. } = actor else { return Ok(()) };
        match command.body.approver() {
            Some(approver) => {
                actor.require(Permission::Approve)?;
                if approver != id {
                    return Err(Failure::Rejected(Refusal::Forbidden { needs: roles_with(Permission::Approve) }));
                }
                // The one who asked (never the approver: the domain refuses that) may record.
                let accounts = self.accounts();
                let requester = accounts.get(command.actor.as_str()).filter(|a| !a.disabled);
                if !requester.is_some_and(|a| allows(a.role, Permission::Record)) {
                    return Err(Failure::Rejected(Refusal::RequesterCannotRecord));
                }
            }
            None => {
                actor.require(Permission::Record)?;
                if command.actor != *id {
                    return Err(Failure::Rejected(Refusal::Forbidden { needs: Vec::new() }));
                }
            }
        }
        Ok(())
    }

    /// Runs an account change, reloading the accounts and trying again when another change
    /// came first.
    fn accounts_write<T>(
        &self,
        mut f: impl FnMut(&mut accounts::Accounts, &daicho_store::Store) -> Result<T, AccountError>,
    ) -> Result<T, Failure> {
        let mut accounts = self.accounts_mut();
        for _ in 0..crate::append::RETRIES_MAX {
            match f(&mut accounts, &self.store) {
                Err(AccountError::Conflict) => {
                    *accounts = accounts::Accounts::load(&self.store)?;
                }
                other => return Ok(other?),
            }
        }
        Err(Failure::Conflict)
    }
}

/// Recipient streams as `execute` reads and appends them: straight on the store, the ledger
/// locked only to look up who holds a My Number.
struct Live<'a> {
    app: &'a App,
    /// The head at which a My Number's holder was looked up: the append must find it unmoved.
    holder_head: Option<Position>,
}

impl<'a> Live<'a> {
    fn new(app: &'a App) -> Live<'a> {
        Live { app, holder_head: None }
    }
}

impl Backend for Live<'_> {
    fn prior(&mut self, id: &CommandId) -> Result<Option<(Fingerprint, Position)>, BackendError> {
        ledger::prior(&self.app.store, id)
    }

    fn load(&mut self, recipient: &RecipientRef) -> Result<Loaded, BackendError> {
        self.holder_head = None;
        ledger::load(&self.app.store, recipient)
    }

    fn holder(&mut self, my_number: &MyNumber, recipient: &RecipientRef) -> Result<MyNumberHolder, BackendError> {
        // Read before the register catches up: at worst older than what the register saw, so
        // the append is refused more often, never less.
        self.holder_head = Some(self.app.store.head().position);
        self.app.ledger().holder(my_number, recipient)
    }

    fn append(&mut self, loaded: &Loaded, cmd: &Command, events: &[Event]) -> Result<Appended, BackendError> {
        let hook = self.app.hooks.before_append.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some(hook) = hook {
            hook(&cmd.recipient);
        }
        ledger::append(&self.app.store, loaded.version, self.holder_head, cmd, events)
    }
}
