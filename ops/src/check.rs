//! `daicho check`: decide a JSON Lines command file in memory, exactly as `apply` does against
//! a ledger (same `submit`), and write nothing.
//!
//! The in-memory backend keeps what the store keeps: one state per recipient, the fingerprint
//! and last position of every accepted command id, and who holds which My Number. Positions
//! are numbered from 1 as if the file were applied to an empty ledger.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use chrono::NaiveDate;
use daicho_domain::command::{Command, Fingerprint, parse_command_line};
use daicho_domain::config::Config;
use daicho_domain::event::Event;
use daicho_domain::ids::{CommandId, RecipientRef};
use daicho_domain::numbers::MyNumber;
use daicho_domain::{MyNumberHolder, State, evolve};

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE};
use crate::outcome::{InputLine, Outcome, for_each_line, input_rejection, warnings};
use daicho_app::submit::{Appended, Backend, BackendError, Loaded, Submitted};
use daicho_store::Position;

/// A ledger in memory.
#[derive(Default)]
pub struct MemoryBackend {
    streams: HashMap<RecipientRef, State>,
    requests: HashMap<CommandId, (Fingerprint, Position)>,
    my_numbers: HashMap<MyNumber, RecipientRef>,
    position: u64,
}

impl MemoryBackend {
    /// The state of a recipient.
    pub fn state(&self, recipient: &RecipientRef) -> Option<&State> {
        self.streams.get(recipient)
    }
}

impl Backend for MemoryBackend {
    fn prior(&mut self, id: &CommandId) -> Result<Option<(Fingerprint, Position)>, BackendError> {
        Ok(self.requests.get(id).copied())
    }

    fn load(&mut self, recipient: &RecipientRef) -> Result<Loaded, BackendError> {
        let state = self.streams.get(recipient).cloned().unwrap_or_default();
        let version = state.history().iter().map(|e| e.events.len() as u64).sum();
        Ok(Loaded { stream: self.streams.contains_key(recipient).then(|| recipient.to_string()), state, version })
    }

    fn holder(&mut self, my_number: &MyNumber, recipient: &RecipientRef) -> Result<MyNumberHolder, BackendError> {
        Ok(match self.my_numbers.get(my_number) {
            None => MyNumberHolder::Nobody,
            Some(r) if r == recipient => MyNumberHolder::ThisRecipient,
            Some(_) => MyNumberHolder::Another,
        })
    }

    fn append(&mut self, loaded: &Loaded, cmd: &Command, events: &[Event]) -> Result<Appended, BackendError> {
        let state = events.iter().fold(loaded.state.clone(), evolve);
        self.position += events.len() as u64;
        self.requests.insert(cmd.id.clone(), (cmd.fingerprint(), Position(self.position)));
        self.my_numbers.retain(|_, r| *r != cmd.recipient);
        if let Some(n) = state.recipient().and_then(|r| r.my_number.clone()) {
            self.my_numbers.insert(n, cmd.recipient.clone());
        }
        self.streams.insert(cmd.recipient.clone(), state);
        Ok(Appended::Written { last: Position(self.position) })
    }
}

/// How a command is decided: against the ledger (`apply`: `execute`) or in memory (`check`).
pub type Decide<'a> = dyn FnMut(&Command) -> Result<Submitted, BackendError> + 'a;

/// Decides one line.
pub fn submit_line(decide: &mut Decide<'_>, line: &str) -> Result<Outcome, BackendError> {
    let cmd = match parse_command_line(line) {
        Ok(cmd) => cmd,
        Err(e) => return Ok(input_rejection(line, &e)),
    };
    Ok(match decide(&cmd)? {
        Submitted::Accepted { position, events } => Outcome::Accepted {
            id: cmd.id.clone(),
            position: position.0,
            events: events.iter().map(Event::type_name).collect(),
            warnings: warnings(&cmd),
        },
        Submitted::AlreadyApplied { position } => Outcome::AlreadyApplied { id: cmd.id.clone(), position: position.0 },
        Submitted::Rejected(r) => {
            Outcome::Rejected { id: Some(cmd.id.to_string()), code: r.code(), message: r.message(), errors: Vec::new() }
        }
        // Retried and still lost (another writer kept changing this recipient): nothing written,
        // and the line says so; running the file again decides it on the record as it is then.
        Submitted::Conflict => Outcome::Rejected {
            id: Some(cmd.id.to_string()),
            code: "concurrent_conflict",
            message: "同じ受給者が同時に更新され続けたため記録しませんでした。もう一度実行してください".into(),
            errors: Vec::new(),
        },
    })
}

/// Opens `path` (`-` for standard input) for reading lines.
pub fn open_input(path: &Path) -> std::io::Result<Box<dyn BufRead>> {
    if path == Path::new("-") {
        Ok(Box::new(BufReader::new(std::io::stdin())))
    } else {
        Ok(Box::new(BufReader::new(File::open(path)?)))
    }
}

/// Runs every line of `path` through `backend`, printing one outcome per line; returns the exit
/// status and the counts (accepted or already applied, rejected).
pub fn run_lines(path: &Path, decide: &mut Decide<'_>, out: &mut dyn Write, err: &mut dyn Write) -> (u8, usize, usize) {
    let mut reader = match open_input(path) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "{}: ファイルを読めません: {e}", path.display());
            return (EXIT_UNREADABLE, 0, 0);
        }
    };
    let (mut good, mut bad) = (0usize, 0usize);
    let mut failure: Option<String> = None;
    let result = for_each_line(&mut *reader, |line_no, line| {
        let outcome = match line {
            InputLine::Refused(outcome) => outcome,
            InputLine::Text(text) => match submit_line(decide, text) {
                Ok(outcome) => outcome,
                Err(e) => {
                    failure = Some(format!("{line_no}行目で台帳に記録できませんでした: {e}"));
                    return Err(std::io::Error::other("ledger failure"));
                }
            },
        };
        if outcome.is_rejected() {
            bad += 1;
        } else {
            good += 1;
        }
        writeln!(out, "{}", outcome.to_json_line(line_no))
    });
    if let Some(f) = failure {
        let _ = writeln!(err, "{}: {f}（この行以降は処理していません）", path.display());
        return (EXIT_UNREADABLE, good, bad);
    }
    if let Err(e) = result {
        let _ = writeln!(err, "{}: 読み込み中に失敗しました: {e}", path.display());
        return (EXIT_UNREADABLE, good, bad);
    }
    (if bad == 0 { EXIT_OK } else { EXIT_REJECTED }, good, bad)
}

/// `daicho check FILE`.
pub fn run(path: &Path, config: &Config, today: NaiveDate, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let mut backend = MemoryBackend::default();
    let mut decide = |cmd: &Command| daicho_app::submit::submit(&mut backend, config, today, cmd);
    let (status, good, bad) = run_lines(path, &mut decide, out, err);
    if status != EXIT_UNREADABLE {
        let _ = writeln!(err, "{}: 受理 {good}件、却下 {bad}件（確認のみ。何も記録していません）", path.display());
    }
    status
}
