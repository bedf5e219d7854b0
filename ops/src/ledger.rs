//! 台帳 (the ledger on disk): the store plus the configuration recorded in it, and the
//! [`Backend`] that `apply` (and later the web UI) submits commands through.
//!
//! A data directory holds `store/` (the event store). The municipality configuration is the
//! latest `configuration_set` event of the system stream `config`. Recipient streams are keyed
//! streams of category `recipient`, keyed by the caller's recipient id: `recipient-<n>`, where
//! `n` is the ledger's internal recipient number.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use daicho_domain::codec::{self, CONFIGURATION_SET};
use daicho_domain::command::{Command, Fingerprint};
use daicho_domain::config::Config;
use daicho_domain::event::{Event, EventBody};
use daicho_domain::ids::{CommandId, RecipientRef};
use daicho_domain::numbers::MyNumber;
use daicho_domain::{MyNumberHolder, State, evolve};
use daicho_store::{
    AppendError, AppendRequest, Envelope, ExpectedVersion, NewEvent, Position, Store, StoreError, StreamId, Target,
};

use crate::submit::{Appended, Backend, BackendError, Loaded};

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
    /// Anything else, described.
    Other(String),
}

impl std::fmt::Display for LedgerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LedgerError::Store(e) => write!(f, "{e}"),
            LedgerError::Config(e) => write!(f, "設定が正しくありません: {e}"),
            LedgerError::Other(e) => f.write_str(e),
        }
    }
}

impl From<StoreError> for LedgerError {
    fn from(e: StoreError) -> Self {
        LedgerError::Store(e)
    }
}

/// The store directory inside a data directory.
pub fn store_dir(data: &Path) -> PathBuf {
    data.join("store")
}

/// An open ledger.
pub struct Ledger {
    store: Store,
    config: Config,
    /// Who holds which My Number; built on first use (see [`Ledger::holder`]).
    holders: Option<HashMap<MyNumber, StreamId>>,
}

/// SHA-256 of the configuration text: the digest of the `init` request.
fn text_digest(text: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes()).into()
}

impl Ledger {
    /// Creates a ledger in `data` with the configuration `toml` (validated first).
    pub fn init(data: &Path, toml: &str, today: NaiveDate) -> Result<Ledger, LedgerError> {
        let config = Config::from_toml(toml).map_err(|e| LedgerError::Config(e.to_string()))?;
        let store = Store::create(&store_dir(data))?;
        let encoded = codec::encode_configuration(toml).map_err(|e| LedgerError::Config(e.to_string()))?;
        let request = AppendRequest {
            target: Target::Stream {
                stream: StreamId::parse(CONFIG_STREAM).ok_or_else(|| LedgerError::Other("config stream id".into()))?,
                expected: ExpectedVersion::NoStream,
            },
            request_id: "init".into(),
            request_digest: text_digest(toml),
            actor: "daicho-init".into(),
            approver: None,
            expected_head: None,
            events: vec![NewEvent {
                event_id: "init#0".into(),
                event_type: encoded.event_type.into(),
                schema_version: encoded.schema_version,
                effective: today,
                payload: encoded.payload,
            }],
        };
        store.append_blocking(request).map_err(|e| LedgerError::Other(e.to_string()))?;
        Ok(Ledger { store, config, holders: None })
    }

    /// Opens the ledger in `data`.
    pub fn open(data: &Path) -> Result<Ledger, LedgerError> {
        let store = Store::open(&store_dir(data))?;
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
        Ok(Ledger { store, config, holders: None })
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

    /// Builds the My Number index by scanning the log for links and corrections, keeping only
    /// numbers a stream still holds after folding (rescinds and corrections considered).
    ///
    /// Interim: the register projection will keep this index (as a keyed hash) incrementally.
    fn build_holders(&self) -> Result<HashMap<MyNumber, StreamId>, BackendError> {
        let mut streams = std::collections::BTreeSet::new();
        for item in self.store.read_from(Position(1)) {
            let e = item.map_err(|e| BackendError(e.to_string()))?;
            if matches!(e.event_type.as_str(), "my_number_linked" | "my_number_corrected") {
                streams.insert(e.stream);
            }
        }
        let mut holders = HashMap::new();
        for stream in streams {
            let state = Ledger::fold(&self.store.read_stream(&stream).map_err(|e| BackendError(e.to_string()))?)?;
            if let Some(n) = state.recipient().and_then(|r| r.my_number.clone()) {
                holders.insert(n, stream);
            }
        }
        Ok(holders)
    }
}

fn store_err(e: StoreError) -> BackendError {
    BackendError(e.to_string())
}

impl Backend for Ledger {
    fn prior(&mut self, id: &CommandId) -> Result<Option<(Fingerprint, u64)>, BackendError> {
        Ok(self.store.request(id.as_str()).map_err(store_err)?.map(|r| (Fingerprint(r.digest), r.outcome.last.0)))
    }

    fn load(&mut self, recipient: &RecipientRef) -> Result<Loaded, BackendError> {
        let Some(stream) = self.store.stream_for_key(RECIPIENT_CATEGORY, recipient.as_str()).map_err(store_err)? else {
            return Ok(Loaded { state: State::default(), stream: None, version: 0 });
        };
        let envelopes = self.store.read_stream(&stream).map_err(store_err)?;
        let version = envelopes.last().map_or(0, |e| e.stream_version);
        Ok(Loaded { state: Ledger::fold(&envelopes)?, stream: Some(stream.to_string()), version })
    }

    fn holder(&mut self, my_number: &MyNumber, recipient: &RecipientRef) -> Result<MyNumberHolder, BackendError> {
        if self.holders.is_none() {
            self.holders = Some(self.build_holders()?);
        }
        let mine = self.store.stream_for_key(RECIPIENT_CATEGORY, recipient.as_str()).map_err(store_err)?;
        Ok(match self.holders.as_ref().and_then(|h| h.get(my_number)) {
            None => MyNumberHolder::Nobody,
            Some(s) if Some(s) == mine.as_ref() => MyNumberHolder::ThisRecipient,
            Some(_) => MyNumberHolder::Another,
        })
    }

    fn append(&mut self, loaded: &Loaded, cmd: &Command, events: &[Event]) -> Result<Appended, BackendError> {
        let target = match &loaded.stream {
            Some(s) => Target::Stream {
                stream: StreamId::parse(s).ok_or_else(|| BackendError(format!("bad stream id {s}")))?,
                expected: ExpectedVersion::Exactly(loaded.version),
            },
            None => Target::NewKeyed { category: RECIPIENT_CATEGORY.into(), key: cmd.recipient.to_string() },
        };
        let mut new_events = Vec::with_capacity(events.len());
        for (i, e) in events.iter().enumerate() {
            let encoded = codec::encode(&e.body).map_err(|e| BackendError(e.to_string()))?;
            new_events.push(NewEvent {
                event_id: format!("{}#{i}", cmd.id),
                event_type: encoded.event_type.into(),
                schema_version: encoded.schema_version,
                effective: e.effective,
                payload: encoded.payload,
            });
        }
        let request = AppendRequest {
            target,
            request_id: cmd.id.to_string(),
            request_digest: cmd.fingerprint().0,
            actor: cmd.actor.to_string(),
            approver: cmd.body.approver().map(ToString::to_string),
            expected_head: None,
            events: new_events,
        };
        match self.store.append_blocking(request) {
            Ok(o) if o.already_applied => Ok(Appended::AlreadyApplied { last: o.last.0 }),
            Ok(o) => {
                if let Some(holders) = self.holders.as_mut() {
                    let linked = events.iter().any(|e| {
                        matches!(
                            e.body,
                            EventBody::MyNumberLinked { .. }
                                | EventBody::MyNumberCorrected { .. }
                                | EventBody::CommandRescinded { .. }
                        )
                    });
                    if linked {
                        let state = Ledger::fold(&self.store.read_stream(&o.stream).map_err(store_err)?)?;
                        holders.retain(|_, s| *s != o.stream);
                        if let Some(n) = state.recipient().and_then(|r| r.my_number.clone()) {
                            holders.insert(n, o.stream);
                        }
                    }
                }
                Ok(Appended::Written { last: o.last.0 })
            }
            Err(AppendError::WrongExpectedVersion { .. } | AppendError::StreamKeyTaken { .. }) => {
                Ok(Appended::Conflict)
            }
            Err(AppendError::RequestIdReused | AppendError::EventIdReused { .. }) => Ok(Appended::IdReused),
            Err(e) => Err(BackendError(e.to_string())),
        }
    }
}
