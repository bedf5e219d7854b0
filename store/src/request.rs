//! What an append asks for and what it gets back.

use chrono::NaiveDate;

use crate::envelope::{Position, StreamId};

/// Limits, named with the qualifier last.
pub mod limits {
    /// Events in one append request.
    pub const EVENTS_PER_REQUEST_MAX: usize = 64;
    /// Requests committed together by one group commit.
    pub const BATCH_REQUESTS_MAX: usize = 512;
    /// Requests waiting for the writer before callers wait to enqueue.
    pub const QUEUE_REQUESTS_MAX: usize = 4096;
    /// Payload of one event.
    pub const PAYLOAD_BYTES_MAX: usize = 64 * 1024;
    /// Event ids, request ids, actors, event types.
    pub const ID_BYTES_MAX: usize = 128;
    /// Keys of keyed streams.
    pub const KEY_BYTES_MAX: usize = 256;
    /// Categories of keyed streams.
    pub const CATEGORY_BYTES_MAX: usize = 32;
}

/// The version a stream must be at for an append to proceed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Whatever it is.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be exactly at this version (0: must not exist).
    Exactly(u64),
}

impl ExpectedVersion {
    pub(crate) fn describe(self) -> String {
        match self {
            ExpectedVersion::Any => "any".into(),
            ExpectedVersion::NoStream => "no stream".into(),
            ExpectedVersion::Exactly(v) => v.to_string(),
        }
    }

    pub(crate) fn allows(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exactly(v) => actual == v,
        }
    }
}

/// Where the events go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// An existing stream (or a new one with a chosen id), at an expected version.
    Stream { stream: StreamId, expected: ExpectedVersion },
    /// A new stream `<category>-<n>` with the next number of the category, registered under a
    /// unique `key` (for example the caller's id of a recipient). Refused if the key is taken.
    NewKeyed { category: String, key: String },
    /// The stream registered under `key`, at an expected version. With it, a caller can send a
    /// stream's later requests before learning the number its first one was given.
    Key { category: String, key: String, expected: ExpectedVersion },
}

/// One event to append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique id of the event.
    pub event_id: String,
    /// Event type (`[a-z0-9_]`).
    pub event_type: String,
    /// Schema version of the payload.
    pub schema_version: u16,
    /// Valid time.
    pub effective: NaiveDate,
    /// Opaque payload.
    pub payload: Vec<u8>,
}

/// An append: events for one stream, all or nothing, idempotent by `request_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendRequest {
    /// Where.
    pub target: Target,
    /// Idempotency key of the request (the correlation id of its events).
    pub request_id: String,
    /// Content digest: the same id with the same digest returns the first outcome; with another
    /// digest it is refused.
    pub request_digest: [u8; 32],
    /// Who.
    pub actor: String,
    /// Who approved, if anyone.
    pub approver: Option<String>,
    /// Append only if the log's head is still exactly here (for records computed from the whole
    /// log at that position, such as an export batch). `None`: wherever it is.
    pub expected_head: Option<Position>,
    /// The events, in order.
    pub events: Vec<NewEvent>,
}

/// What an accepted append did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The stream written (for a keyed stream, the id it was given).
    pub stream: StreamId,
    /// Position of the first event.
    pub first: Position,
    /// Position of the last event.
    pub last: Position,
    /// Version of the stream after the last event.
    pub stream_version: u64,
    /// True when the request had been applied before: nothing was written now.
    pub already_applied: bool,
}

/// A request recorded before, found by its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// Its digest.
    pub digest: [u8; 32],
    /// Its outcome.
    pub outcome: AppendOutcome,
}

impl RequestRecord {
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let o = &self.outcome;
        let mut v = Vec::with_capacity(56 + o.stream.as_str().len());
        v.extend_from_slice(&self.digest);
        v.extend_from_slice(&o.first.0.to_be_bytes());
        v.extend_from_slice(&o.last.0.to_be_bytes());
        v.extend_from_slice(&o.stream_version.to_be_bytes());
        v.extend_from_slice(o.stream.as_str().as_bytes());
        v
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<RequestRecord> {
        let digest: [u8; 32] = bytes.get(..32)?.try_into().ok()?;
        let num = |at: usize| Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
        let stream = StreamId::parse(std::str::from_utf8(bytes.get(56..)?).ok()?)?;
        Some(RequestRecord {
            digest,
            outcome: AppendOutcome {
                stream,
                first: Position(num(32)?),
                last: Position(num(40)?),
                stream_version: num(48)?,
                already_applied: true,
            },
        })
    }
}
