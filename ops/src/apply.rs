//! `daicho apply FILE.jsonl`: record a command file in the ledger, following the contract of
//! ../shared/domain/LIFE_EVENTS.md: one JSON result line per input line, in order; a rejected
//! line writes nothing; exit status 0 (all accepted or already applied), 1 (some line
//! rejected), 2 (the file could not be read, or the ledger could not be written: the lines
//! after that are not processed).

use std::io::Write;
use std::path::Path;

use chrono::NaiveDate;

use daicho_app::submit::{BackendError, Submitted};
use daicho_app::{Actor, App, Failure, Outcome, Refusal, Request};
use daicho_domain::command::Command;

use crate::check::run_lines;

/// Runs `apply`.
pub fn run(data: &Path, path: &Path, today: NaiveDate, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let ledger = match crate::cli::open_ledger(data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let app = match App::of(ledger, data) {
        Ok(app) => app,
        Err(e) => {
            let _ = writeln!(err, "{}: 台帳を開けません: {e}", data.display());
            return crate::cli::EXIT_UNREADABLE;
        }
    };
    let operator = Actor::Operator("daicho-apply".into());
    let mut decide = |cmd: &Command| {
        Ok(match app.execute(&operator, Request::Recipient { command: cmd, seen: None }, today) {
            Ok(Outcome::Recorded { position, events }) => Submitted::Accepted { position, events },
            Ok(Outcome::AlreadyApplied { position }) => Submitted::AlreadyApplied { position },
            Ok(other) => return Err(BackendError(format!("unexpected outcome {other:?}"))),
            Err(Failure::Rejected(Refusal::Rule(r))) => Submitted::Rejected(r),
            Err(Failure::Conflict) => Submitted::Conflict,
            Err(e) => return Err(BackendError(e.to_string())),
        })
    };
    let (status, good, bad) = run_lines(path, &mut decide, out, err);
    let head = app.store.head();
    let _ = writeln!(
        err,
        "{}: 受理・適用済み {good}件、却下 {bad}件。台帳の先頭: 位置 {} ハッシュ {}",
        path.display(),
        head.position,
        head.hash.short()
    );
    status
}
