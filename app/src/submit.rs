//! Submitting one command: the same algorithm whether the ledger is the store (`apply`) or in
//! memory (`check`).
//!
//! 1. Idempotency: an earlier request with this id returns its first outcome (same fingerprint)
//!    or is refused (different fingerprint).
//! 2. Load the recipient's stream and fold it; look up who holds a My Number being linked.
//! 3. `decide`.
//! 4. Append with the stream's expected version; on a concurrent conflict, start again.

use chrono::NaiveDate;
use daicho_domain::command::{Command, CommandBody, Fingerprint};
use daicho_domain::config::Config;
use daicho_domain::event::Event;
use daicho_domain::ids::{CommandId, RecipientRef};
use daicho_domain::numbers::MyNumber;
use daicho_domain::users::Role;
use daicho_domain::{Context, Decision, MyNumberHolder, Rejection, State, decide};

use daicho_store::Position;

use crate::append::RETRIES_MAX;

/// What happened to a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitted {
    /// Recorded; the position of its last event, and the events.
    Accepted { position: Position, events: Vec<Event> },
    /// Recorded before with the same content: nothing written; its original last position.
    AlreadyApplied { position: Position },
    /// Refused by a rule; nothing written.
    Rejected(Rejection),
    /// The recipient's record changed since the user saw it (or kept changing while this was
    /// retried): nothing written; reload and decide again.
    Conflict,
}

/// A recipient stream as loaded.
pub struct Loaded {
    /// Folded state (default when the stream does not exist).
    pub state: State,
    /// Backend-specific handle of the stream (`None` when it does not exist).
    pub stream: Option<String>,
    /// Version of the stream.
    pub version: u64,
}

/// What an append did.
pub enum Appended {
    /// Written; the position of the last event.
    Written { last: Position },
    /// The request had been written before: its last position.
    AlreadyApplied { last: Position },
    /// Someone wrote to the stream first: load and decide again.
    Conflict,
    /// The command id is taken by a different request.
    IdReused,
}

/// An infrastructure failure: stop, report, do not retry blindly.
#[derive(Debug)]
pub struct BackendError(pub String);

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where commands are decided and recorded.
pub trait Backend {
    /// The earlier request with this id: its fingerprint and last position.
    fn prior(&mut self, id: &CommandId) -> Result<Option<(Fingerprint, Position)>, BackendError>;
    /// The recipient's stream, folded.
    fn load(&mut self, recipient: &RecipientRef) -> Result<Loaded, BackendError>;
    /// Who holds a My Number now.
    fn holder(&mut self, my_number: &MyNumber, recipient: &RecipientRef) -> Result<MyNumberHolder, BackendError>;
    /// Records the events of `cmd` on the loaded stream.
    fn append(&mut self, loaded: &Loaded, cmd: &Command, events: &[Event]) -> Result<Appended, BackendError>;
}

/// What a command would do now, decided without recording anything (the confirmation step of
/// the web UI). The same steps as [`submit`] up to `decide`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Preview {
    /// Recorded before with the same content: its last position.
    AlreadyApplied { position: Position },
    /// Refused by a rule.
    Rejected(Rejection),
    /// Would record these events on a stream whose state is `before` at `version`.
    Would { before: Box<State>, stream: Option<String>, version: u64, events: Vec<Event> },
}

enum Decided {
    AlreadyApplied(Position),
    Rejected(Rejection),
    Stale,
    Record(Box<Loaded>, Vec<Event>),
}

/// Who decides a command: the operator (CLI, import: the owner of the ledger's files) or a user
/// of the web UI with a role. It matters for DV-protected addresses (see `decide`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decider {
    /// `daicho apply`, `check`, `import`, `demo`.
    Operator,
    /// A web user; an approval is decided by the approver.
    User(Role),
}

impl Decider {
    fn sees_protected_addresses(self) -> bool {
        match self {
            Decider::Operator => true,
            Decider::User(role) => daicho_domain::privacy::sees_protected_addresses(role),
        }
    }
}

fn decide_once(
    backend: &mut dyn Backend,
    config: &Config,
    today: NaiveDate,
    cmd: &Command,
    decider: Decider,
    seen: Option<u64>,
) -> Result<Decided, BackendError> {
    if let Some((fingerprint, last)) = backend.prior(&cmd.id)? {
        return Ok(if fingerprint == cmd.fingerprint() {
            Decided::AlreadyApplied(last)
        } else {
            Decided::Rejected(Rejection::IdempotencyKeyReused)
        });
    }
    let loaded = backend.load(&cmd.recipient)?;
    if seen.is_some_and(|v| v != loaded.version) {
        return Ok(Decided::Stale);
    }
    let holder = match &cmd.body {
        CommandBody::LinkMyNumber { my_number, .. } => backend.holder(my_number, &cmd.recipient)?,
        _ => MyNumberHolder::Nobody,
    };
    let ctx = Context {
        today,
        config,
        prior: None,
        my_number_holder: holder,
        sees_protected_addresses: decider.sees_protected_addresses(),
    };
    Ok(match decide(&loaded.state, cmd, &ctx) {
        Err(r) => Decided::Rejected(r),
        // Not reachable with `prior: None`; refuse rather than guess.
        Ok(Decision::AlreadyApplied) => Decided::Rejected(Rejection::IdempotencyKeyReused),
        Ok(Decision::Record(events)) => Decided::Record(Box::new(loaded), events),
    })
}

/// Decides one command without recording it.
pub fn preview(
    backend: &mut dyn Backend,
    config: &Config,
    today: NaiveDate,
    cmd: &Command,
    decider: Decider,
) -> Result<Preview, BackendError> {
    Ok(match decide_once(backend, config, today, cmd, decider, None)? {
        Decided::AlreadyApplied(position) => Preview::AlreadyApplied { position },
        Decided::Rejected(r) => Preview::Rejected(r),
        // Not reachable without `seen`.
        Decided::Stale => Preview::Rejected(Rejection::IdempotencyKeyReused),
        Decided::Record(loaded, events) => {
            let Loaded { state, stream, version } = *loaded;
            Preview::Would { before: Box::new(state), stream, version, events }
        }
    })
}

/// Decides and records one command as the operator (CLI, import).
pub fn submit(
    backend: &mut dyn Backend,
    config: &Config,
    today: NaiveDate,
    cmd: &Command,
) -> Result<Submitted, BackendError> {
    submit_as(backend, config, today, cmd, Decider::Operator, None)
}

/// Decides and records one command as `decider`. With `seen` (the stream version the user
/// confirmed), a stream at another version is a conflict: the user decided on what is no longer
/// there. A concurrent append between reading and appending is retried; one that keeps losing
/// is a conflict too. Nothing is written on a conflict.
pub fn submit_as(
    backend: &mut dyn Backend,
    config: &Config,
    today: NaiveDate,
    cmd: &Command,
    decider: Decider,
    seen: Option<u64>,
) -> Result<Submitted, BackendError> {
    for _ in 0..RETRIES_MAX {
        let (loaded, events) = match decide_once(backend, config, today, cmd, decider, seen)? {
            Decided::AlreadyApplied(position) => return Ok(Submitted::AlreadyApplied { position }),
            Decided::Rejected(r) => return Ok(Submitted::Rejected(r)),
            Decided::Stale => return Ok(Submitted::Conflict),
            Decided::Record(loaded, events) => (loaded, events),
        };
        match backend.append(&loaded, cmd, &events)? {
            Appended::Written { last } => return Ok(Submitted::Accepted { position: last, events }),
            Appended::AlreadyApplied { last } => return Ok(Submitted::AlreadyApplied { position: last }),
            Appended::IdReused => return Ok(Submitted::Rejected(Rejection::IdempotencyKeyReused)),
            Appended::Conflict => continue,
        }
    }
    tracing::warn!(command = %cmd.id, "{RETRIES_MAX} concurrent conflicts in a row; given up");
    Ok(Submitted::Conflict)
}
