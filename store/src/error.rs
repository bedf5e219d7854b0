//! Errors of the store, in the families that never mix: a refused append (the caller's problem:
//! a conflict to retry, a reused id), a damaged ledger (stop and verify), and I/O failures.

use std::fmt;

use crate::envelope::{Position, StreamId};

/// Opening, reading or verifying failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The directory holds no ledger.
    NotALedger(String),
    /// `create` found a ledger (or other files) already there.
    AlreadyExists(String),
    /// The ledger's contents contradict themselves at `position` (when known).
    Damaged { position: Option<Position>, reason: String },
    /// The operating system or sled failed (another process may hold the ledger).
    Io(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::NotALedger(dir) => write!(f, "{dir}: no ledger here (run `daicho init`)"),
            StoreError::AlreadyExists(dir) => write!(f, "{dir}: a ledger already exists here"),
            StoreError::Damaged { position: Some(p), reason } => write!(f, "ledger damaged at position {p}: {reason}"),
            StoreError::Damaged { position: None, reason } => write!(f, "ledger damaged: {reason}"),
            StoreError::Io(e) => write!(f, "storage error: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Corruption { at, .. } => {
                StoreError::Damaged { position: None, reason: format!("sled reports corruption at {at:?}") }
            }
            other => StoreError::Io(other.to_string()),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// An append was refused. Nothing of the request was written, except perhaps for
/// [`AppendError::Storage`] (see there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendError {
    /// The stream is not at the expected version: someone else appended first. Re-read, retry.
    WrongExpectedVersion { stream: StreamId, expected: String, actual: u64 },
    /// A keyed stream with this key exists already.
    StreamKeyTaken { stream: StreamId },
    /// No stream is registered under this key.
    StreamKeyUnknown,
    /// The log moved past the expected head: recompute and retry.
    HeadMoved { expected: Position, actual: Position },
    /// The request id was used before by a request with different content.
    RequestIdReused,
    /// An event id was used before by another request.
    EventIdReused { event_id: String },
    /// The request breaks a limit or a syntax rule (named).
    Invalid(String),
    /// An earlier storage failure stopped the writer; nothing is accepted until a restart.
    Stopped,
    /// Storage failed while committing this request; the writer has stopped. Whether the
    /// request was committed is known only after the store is reopened: a failed write or sync
    /// may still have left its frame whole on the disk, and recovery then applies it. Sending it
    /// again with the same request id after reopening is safe: it returns the first outcome if
    /// there was one, or commits it now.
    Storage(String),
}

impl fmt::Display for AppendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppendError::WrongExpectedVersion { stream, expected, actual } => {
                write!(f, "stream {stream} is at version {actual}, expected {expected}")
            }
            AppendError::StreamKeyTaken { stream } => write!(f, "the stream key is taken by {stream}"),
            AppendError::StreamKeyUnknown => write!(f, "no stream has this key"),
            AppendError::HeadMoved { expected, actual } => write!(f, "the log is at {actual}, not {expected}"),
            AppendError::RequestIdReused => write!(f, "the request id was used for different content"),
            AppendError::EventIdReused { event_id } => write!(f, "event id {event_id} was used by another request"),
            AppendError::Invalid(why) => write!(f, "invalid append: {why}"),
            AppendError::Stopped => write!(f, "the writer stopped after a storage failure; restart required"),
            AppendError::Storage(e) => write!(f, "storage failure, writer stopped: {e}"),
        }
    }
}

impl std::error::Error for AppendError {}
