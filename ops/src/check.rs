//! `daicho check`: decide a JSON Lines command file in memory, as `apply` will against a ledger,
//! and write nothing.
//!
//! The in-memory ledger keeps what `apply` will keep in the store: one state per recipient, the
//! fingerprint and first outcome of every accepted command id, and which recipient holds which
//! My Number. Positions are numbered from 1 as if the file were applied to an empty ledger.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE};
use chrono::NaiveDate;
use daicho_domain::command::{Command, CommandBody, Fingerprint, InputError, parse_command_line};
use daicho_domain::config::Config;
use daicho_domain::ids::{CommandId, RecipientRef};
use daicho_domain::numbers::MyNumber;
use daicho_domain::text::pmh_unrepresentable;
use daicho_domain::{Context, Decision, MyNumberHolder, Rejection, State, decide, evolve};
use serde::Serialize;
use serde_json::Value;

/// Longest accepted line, in bytes; a longer line is rejected without being held in memory.
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// What happened to one line.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Recorded (here: would be) at `position`, the position of its last event.
    Accepted { id: CommandId, position: u64, events: Vec<&'static str>, warnings: Vec<Notice> },
    /// Refused; nothing written.
    Rejected { id: Option<String>, code: &'static str, message: String, errors: Vec<Notice> },
}

/// A field-level error or warning.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Notice {
    /// Field name (dotted for nested fields).
    pub field: String,
    /// Stable code.
    pub code: &'static str,
    /// Japanese message.
    pub message: String,
}

/// One output line, fields in the contract's order.
#[derive(Serialize)]
struct Line<'a> {
    line: usize,
    id: Option<&'a str>,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    position: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<&'a [&'static str]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    #[serde(skip_serializing_if = "<[Notice]>::is_empty")]
    errors: &'a [Notice],
    #[serde(skip_serializing_if = "<[Notice]>::is_empty")]
    warnings: &'a [Notice],
}

impl Outcome {
    /// The output line of the contract, with the input line number.
    pub fn to_json_line(&self, line: usize) -> String {
        let out = match self {
            Outcome::Accepted { id, position, events, warnings } => Line {
                line,
                id: Some(id.as_str()),
                outcome: "accepted",
                position: Some(*position),
                events: Some(events),
                code: None,
                message: None,
                errors: &[],
                warnings,
            },
            Outcome::Rejected { id, code, message, errors } => Line {
                line,
                id: id.as_deref(),
                outcome: "rejected",
                position: None,
                events: None,
                code: Some(code),
                message: Some(message),
                errors,
                warnings: &[],
            },
        };
        // Serializing this struct of strings and numbers cannot fail; keep a valid line if it did.
        serde_json::to_string(&out).unwrap_or_else(|_| format!("{{\"line\":{line},\"outcome\":\"rejected\"}}"))
    }
}

/// An event log in memory: enough to decide a file of commands exactly as `apply` would.
pub struct MemoryLedger<'c> {
    config: &'c Config,
    today: NaiveDate,
    streams: HashMap<RecipientRef, State>,
    accepted: HashMap<CommandId, (Fingerprint, Outcome)>,
    my_numbers: HashMap<MyNumber, RecipientRef>,
    position: u64,
}

impl<'c> MemoryLedger<'c> {
    /// An empty ledger deciding as of `today`.
    pub fn new(config: &'c Config, today: NaiveDate) -> Self {
        Self {
            config,
            today,
            streams: HashMap::new(),
            accepted: HashMap::new(),
            my_numbers: HashMap::new(),
            position: 0,
        }
    }

    /// Decides one line of the contract.
    pub fn submit_line(&mut self, line: &str) -> Outcome {
        match parse_command_line(line) {
            Ok(cmd) => self.submit(&cmd),
            Err(e) => input_rejection(line, &e),
        }
    }

    /// Decides one command and, if accepted, applies its events.
    pub fn submit(&mut self, cmd: &Command) -> Outcome {
        let prior = self.accepted.get(&cmd.id).map(|(fingerprint, _)| *fingerprint);
        let holder = match &cmd.body {
            CommandBody::LinkMyNumber { my_number, .. } => match self.my_numbers.get(my_number) {
                None => MyNumberHolder::Nobody,
                Some(r) if *r == cmd.recipient => MyNumberHolder::ThisRecipient,
                Some(_) => MyNumberHolder::Another,
            },
            _ => MyNumberHolder::Nobody,
        };
        let ctx = Context { today: self.today, config: self.config, prior, my_number_holder: holder };
        let state = self.streams.remove(&cmd.recipient).unwrap_or_default();
        let decision = decide(&state, cmd, &ctx);
        let (state, outcome) = match decision {
            Err(rejection) => (state, rejected(cmd, &rejection)),
            Ok(Decision::AlreadyApplied) => {
                let first = self.accepted.get(&cmd.id).map(|(_, o)| o.clone());
                (state, first.unwrap_or_else(|| rejected(cmd, &Rejection::IdempotencyKeyReused)))
            }
            Ok(Decision::Record(events)) => {
                let names = events.iter().map(|e| e.type_name()).collect();
                let state = events.iter().fold(state, evolve);
                self.position += events.len() as u64;
                let outcome = Outcome::Accepted {
                    id: cmd.id.clone(),
                    position: self.position,
                    events: names,
                    warnings: warnings(cmd),
                };
                self.accepted.insert(cmd.id.clone(), (cmd.fingerprint(), outcome.clone()));
                self.index_my_number(&cmd.recipient, &state);
                (state, outcome)
            }
        };
        if state != State::default() {
            self.streams.insert(cmd.recipient.clone(), state);
        }
        outcome
    }

    fn index_my_number(&mut self, recipient: &RecipientRef, state: &State) {
        self.my_numbers.retain(|_, r| r != recipient);
        if let Some(n) = state.recipient().and_then(|r| r.my_number.clone()) {
            self.my_numbers.insert(n, recipient.clone());
        }
    }

    /// The state of a recipient stream.
    pub fn state(&self, recipient: &RecipientRef) -> Option<&State> {
        self.streams.get(recipient)
    }
}

fn rejected(cmd: &Command, r: &Rejection) -> Outcome {
    Outcome::Rejected { id: Some(cmd.id.to_string()), code: r.code(), message: r.message(), errors: Vec::new() }
}

/// A line that is not a command. The id is echoed only when it is a well-formed id.
fn input_rejection(line: &str, e: &InputError) -> Outcome {
    let id = serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_owned))
        .filter(|id| CommandId::parse(id).is_ok());
    let errors = match e {
        InputError::Fields(fields) => fields
            .iter()
            .map(|f| Notice { field: f.field.clone(), code: f.error.code(), message: f.error.message() })
            .collect(),
        _ => Vec::new(),
    };
    Outcome::Rejected { id, code: e.code(), message: e.message(), errors }
}

/// Characters PMH would show as "●", per field: a warning, not a rejection (the name is stored
/// as entered; the caseworker decides). Positions and code points only, never the text.
fn warnings(cmd: &Command) -> Vec<Notice> {
    let fields: Vec<(&str, &str)> = match &cmd.body {
        CommandBody::RegisterRecipient(info) => vec![("name", info.name.as_str()), ("address", info.address.as_str())],
        CommandBody::ChangePersonalDetails { name, address, .. } => {
            let mut f = Vec::new();
            if let Some(n) = name {
                f.push(("name", n.as_str()));
            }
            if let Some(a) = address {
                f.push(("address", a.as_str()));
            }
            f
        }
        CommandBody::RecordMoveIn { address, .. } => vec![("address", address.as_str())],
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for (field, text) in fields {
        for u in pmh_unrepresentable(text) {
            out.push(Notice {
                field: field.to_owned(),
                code: "pmh_unrepresentable",
                message: format!("{}文字目（U+{:04X}）はPMHで「●」と表示されます", u.position, u32::from(u.ch)),
            });
        }
    }
    out
}

/// Reads the next line (without its end-of-line) into `buf`, at most [`LINE_BYTES_MAX`] bytes;
/// `Ok(None)` at the end of input, `Ok(Some(false))` when the line was too long (and skipped).
fn next_line(reader: &mut dyn BufRead, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buf.clear();
    let limit = LINE_BYTES_MAX as u64 + 1;
    let n = reader.take(limit).read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') && buf.len() as u64 >= limit {
        // Too long: skip to the end of this line without keeping it.
        let mut sink = Vec::new();
        loop {
            sink.clear();
            let m = reader.take(LINE_BYTES_MAX as u64).read_until(b'\n', &mut sink)?;
            if m == 0 || sink.last() == Some(&b'\n') {
                break;
            }
        }
        return Ok(Some(false));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(true))
}

/// `daicho check FILE`: decide every line, print one JSON outcome per line.
pub fn run(path: &Path, config: &Config, today: NaiveDate, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let stdin;
    let mut reader: Box<dyn BufRead> = if path == Path::new("-") {
        stdin = std::io::stdin();
        Box::new(stdin.lock())
    } else {
        match File::open(path) {
            Ok(f) => Box::new(BufReader::new(f)),
            Err(e) => {
                let _ = writeln!(err, "{}: ファイルを読めません: {e}", path.display());
                return EXIT_UNREADABLE;
            }
        }
    };
    let mut ledger = MemoryLedger::new(config, today);
    let (mut accepted, mut rejected) = (0usize, 0usize);
    let mut buf = Vec::new();
    for line_no in 1.. {
        let outcome = match next_line(&mut reader, &mut buf) {
            Ok(None) => break,
            Err(e) => {
                let _ = writeln!(err, "{}: {line_no}行目を読めません: {e}", path.display());
                return EXIT_UNREADABLE;
            }
            Ok(Some(false)) => line_rejection("line_too_long", format!("1行は{LINE_BYTES_MAX}バイトまでです")),
            Ok(Some(true)) => {
                let bytes = if line_no == 1 { buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&buf) } else { &buf };
                match std::str::from_utf8(bytes) {
                    Err(_) => line_rejection("invalid_utf8", "UTF-8として読めない文字があります".to_owned()),
                    Ok(text) if text.trim().is_empty() => line_rejection("empty_line", "空行です".to_owned()),
                    Ok(text) => ledger.submit_line(text),
                }
            }
        };
        match outcome {
            Outcome::Accepted { .. } => accepted += 1,
            Outcome::Rejected { .. } => rejected += 1,
        }
        if writeln!(out, "{}", outcome.to_json_line(line_no)).is_err() {
            return EXIT_UNREADABLE;
        }
    }
    let _ = writeln!(err, "{}: 受理 {accepted}件、却下 {rejected}件（確認のみ。何も記録していません）", path.display());
    if rejected == 0 { EXIT_OK } else { EXIT_REJECTED }
}

fn line_rejection(code: &'static str, message: String) -> Outcome {
    Outcome::Rejected { id: None, code, message, errors: Vec::new() }
}
