//! `daicho apply FILE.jsonl`: record a command file in the ledger, following the contract of
//! ../shared/domain/LIFE_EVENTS.md: one JSON result line per input line, in order; a rejected
//! line writes nothing; exit status 0 (all accepted or already applied), 1 (some line
//! rejected), 2 (the file could not be read, or the ledger could not be written: the lines
//! after that are not processed).

use std::io::Write;
use std::path::Path;

use chrono::NaiveDate;

use crate::check::run_lines;

/// Runs `apply`.
pub fn run(data: &Path, path: &Path, today: NaiveDate, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let mut ledger = match crate::cli::open_ledger(data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let config = ledger.config().clone();
    let (status, good, bad) = run_lines(path, &mut ledger, &config, today, out, err);
    let head = ledger.store().head();
    let _ = writeln!(
        err,
        "{}: 受理・適用済み {good}件、却下 {bad}件。台帳の先頭: 位置 {} ハッシュ {}",
        path.display(),
        head.position,
        head.hash.short()
    );
    status
}
