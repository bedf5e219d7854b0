//! `daicho show RECIPIENT [--as-of DATE] [--as-at POSITION]`: a recipient on a date as the ledger
//! knew it at a position, as JSON. My Number is masked; a DV-protected address is not shown.

use std::io::Write;
use std::path::Path;

use chrono::NaiveDate;
use daicho_projections::asof::as_of;
use daicho_projections::recipient_number;
use daicho_store::Position;

use crate::cli::{EXIT_OK, EXIT_UNREADABLE};

/// Runs `show`.
pub fn run(
    data: &Path,
    recipient: &str,
    on: NaiveDate,
    at: Option<u64>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let ledger = match crate::cli::open_ledger(data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let store = ledger.store();
    let stream = match crate::cli::recipient_stream(&ledger, recipient, err) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let head = store.head().position;
    let at = Position(at.unwrap_or(head.0).min(head.0));
    let n = recipient_number(stream.as_str()).unwrap_or(0);
    match as_of(store, &stream, at, on) {
        Ok(view) => {
            let text = serde_json::to_string_pretty(&view.view(n, at, on, false)).unwrap_or_default();
            let _ = writeln!(out, "{text}");
            EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            EXIT_UNREADABLE
        }
    }
}
