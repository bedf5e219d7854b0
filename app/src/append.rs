//! The one append builder (追記要求) and the one retry rule of the application layer. Every
//! request this crate sends to the store is made here: recipient commands, configuration, PMH
//! batches, billing, users and access records.

use chrono::NaiveDate;
use daicho_domain::codec;
use daicho_domain::command::Command;
use daicho_domain::event::Event;
use daicho_store::{AppendError, AppendRequest, ExpectedVersion, NewEvent, Position, StreamId, Target};

use crate::ledger::RECIPIENT_CATEGORY;

/// Attempts of one write that keeps meeting concurrent writers before it is given up (and
/// reported as a conflict). Used by every retry loop of this crate.
pub const RETRIES_MAX: usize = 20;

/// SHA-256 of a text: the digest of a system request.
pub(crate) fn text_digest(text: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).into()
}

/// Where a recipient's next events go: a new stream keyed by the caller's recipient id when it
/// has none (`version` 0), else that keyed stream at exactly `version`.
pub fn recipient_target(key: &str, version: u64) -> Target {
    if version == 0 {
        Target::NewKeyed { category: RECIPIENT_CATEGORY.into(), key: key.to_owned() }
    } else {
        Target::Key {
            category: RECIPIENT_CATEGORY.into(),
            key: key.to_owned(),
            expected: ExpectedVersion::Exactly(version),
        }
    }
}

/// The request that records the `events` `cmd` was decided to on a recipient stream at
/// `version`: one event id per event (`<command id>#<n>`), the command's fingerprint as digest.
pub fn recipient_request(cmd: &Command, events: &[Event], version: u64) -> Result<AppendRequest, String> {
    let mut new_events = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let encoded = codec::encode(&e.body).map_err(|e| e.to_string())?;
        new_events.push(NewEvent {
            event_id: format!("{}#{i}", cmd.id),
            event_type: encoded.event_type.into(),
            schema_version: encoded.schema_version,
            effective: e.effective,
            payload: encoded.payload,
        });
    }
    Ok(AppendRequest {
        target: recipient_target(cmd.recipient.as_str(), version),
        request_id: cmd.id.to_string(),
        request_digest: cmd.fingerprint().0,
        actor: cmd.actor.to_string(),
        approver: cmd.body.approver().map(ToString::to_string),
        expected_head: None,
        events: new_events,
    })
}

/// A request to a system stream (`config`, `pmh`, `billing`, `users`, `access`).
pub(crate) struct System<'a> {
    /// The stream.
    pub stream: &'a str,
    /// Its version as read, or `None` to append whatever it holds (access records).
    pub version: Option<u64>,
    /// The request id; event ids are `<id>#<n>`.
    pub id: &'a str,
    /// What makes a retry of the same request recognisable.
    pub digest: [u8; 32],
    /// Who.
    pub actor: &'a str,
    /// Refused if the log's head has moved past this (a batch or statement computed there).
    pub expected_head: Option<Position>,
    /// The events' effective date.
    pub effective: NaiveDate,
}

impl System<'_> {
    /// The request recording `encoded`, in order.
    pub fn request(&self, encoded: Vec<codec::Encoded>) -> Result<AppendRequest, String> {
        let stream = StreamId::parse(self.stream).ok_or_else(|| format!("stream id {}", self.stream))?;
        let expected = self.version.map_or(ExpectedVersion::Any, ExpectedVersion::Exactly);
        Ok(AppendRequest {
            target: Target::Stream { stream, expected },
            request_id: self.id.to_owned(),
            request_digest: self.digest,
            actor: self.actor.to_owned(),
            approver: None,
            expected_head: self.expected_head,
            events: encoded
                .into_iter()
                .enumerate()
                .map(|(i, e)| NewEvent {
                    event_id: format!("{}#{i}", self.id),
                    event_type: e.event_type.to_owned(),
                    schema_version: e.schema_version,
                    effective: self.effective,
                    payload: e.payload,
                })
                .collect(),
        })
    }
}

/// Whether an append lost a race (someone wrote first: read again and retry) rather than failed.
pub(crate) fn lost_race(e: &AppendError) -> bool {
    matches!(
        e,
        AppendError::WrongExpectedVersion { .. } | AppendError::StreamKeyTaken { .. } | AppendError::HeadMoved { .. }
    )
}
