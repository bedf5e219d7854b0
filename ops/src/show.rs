//! `daicho show RECIPIENT [--as-of DATE] [--as-at POSITION] [--actor ID]`: a recipient on a date
//! as the ledger knew it at a position, as JSON, as the privacy policy lets the reader see it
//! (see `reader`): My Number masked; a DV-protected address hidden unless `--actor` names a
//! supervisor or administrator. The access is recorded before it is printed.

use std::io::Write;
use std::path::Path;

use chrono::NaiveDate;
use daicho_projections::asof::as_of;
use daicho_projections::recipient_number;
use daicho_store::Position;

use daicho_domain::privacy::Channel;

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE};
use crate::reader::Reader;

/// What `daicho show` is asked.
pub struct ShowRequest<'a> {
    pub data: &'a Path,
    /// The caller's recipient id.
    pub recipient: &'a str,
    pub on: NaiveDate,
    pub at: Option<u64>,
    /// The account whose role decides what is shown.
    pub actor: Option<&'a str>,
    /// The recorded date of the access record.
    pub today: NaiveDate,
}

/// Runs `show`.
pub fn run(request: &ShowRequest<'_>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let ShowRequest { data, recipient, on, at, actor, today } = *request;
    let ledger = match crate::cli::open_ledger(data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let reader = match Reader::new(data, &ledger, actor, "daicho show") {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_REJECTED;
        }
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
            let policy = reader.view(view.protection.clone(), Channel::Cli);
            let protected: &[u64] = if policy.shows_protected() { &[n] } else { &[] };
            if let Err(e) = reader.record(&[n], protected, today) {
                let _ = writeln!(err, "{e}");
                return EXIT_UNREADABLE;
            }
            let text = serde_json::to_string_pretty(&view.view(n, at, on, &policy)).unwrap_or_default();
            let _ = writeln!(out, "{text}");
            EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            EXIT_UNREADABLE
        }
    }
}
