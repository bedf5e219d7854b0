//! The output of `check` and `apply`: one JSON line per input line, and the line reader both use.

use std::io::{BufRead, Read};

use daicho_domain::command::{Command, InputError, TextWarning};
use daicho_domain::ids::CommandId;
use serde::Serialize;
use serde_json::Value;

/// Longest accepted line, in bytes; a longer line is rejected without being held in memory.
pub const LINE_BYTES_MAX: usize = 64 * 1024;

/// What happened to one line.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Recorded at `position` (the position of its last event).
    Accepted { id: CommandId, position: u64, events: Vec<&'static str>, warnings: Vec<Notice> },
    /// Recorded before with the same content: nothing written now; its original position.
    AlreadyApplied { id: CommandId, position: u64 },
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
    /// Whether the line counts as rejected for the exit status.
    pub fn is_rejected(&self) -> bool {
        matches!(self, Outcome::Rejected { .. })
    }

    /// The output line of the contract, with the input line number.
    pub fn to_json_line(&self, line: usize) -> String {
        let empty: &[Notice] = &[];
        let out = match self {
            Outcome::Accepted { id, position, events, warnings } => Line {
                line,
                id: Some(id.as_str()),
                outcome: "accepted",
                position: Some(*position),
                events: Some(events),
                code: None,
                message: None,
                errors: empty,
                warnings,
            },
            Outcome::AlreadyApplied { id, position } => Line {
                line,
                id: Some(id.as_str()),
                outcome: "already_applied",
                position: Some(*position),
                events: None,
                code: None,
                message: None,
                errors: empty,
                warnings: empty,
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
                warnings: empty,
            },
        };
        // A struct of strings and numbers always serializes; keep a valid line if it did not.
        serde_json::to_string(&out).unwrap_or_else(|_| format!("{{\"line\":{line},\"outcome\":\"rejected\"}}"))
    }
}

/// A line that is not a command. The id is echoed only when it is a well-formed id.
pub fn input_rejection(line: &str, e: &InputError) -> Outcome {
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

/// A line-level refusal (unreadable, blank, too long).
pub fn line_rejection(code: &'static str, message: String) -> Outcome {
    Outcome::Rejected { id: None, code, message, errors: Vec::new() }
}

/// Characters PMH would show as "●", per field (see [`Command::warnings`]).
pub fn warnings(cmd: &Command) -> Vec<Notice> {
    cmd.warnings()
        .into_iter()
        .map(|w| Notice { field: w.field.to_owned(), code: TextWarning::CODE, message: w.message() })
        .collect()
}

/// One line of input, read without holding an over-long line in memory.
pub enum InputLine<'a> {
    /// A line of text.
    Text(&'a str),
    /// A refused line (already an outcome).
    Refused(Outcome),
}

/// Reads lines with [`LINE_BYTES_MAX`], a UTF-8 BOM on the first line, CRLF, blank lines and
/// invalid UTF-8 handled; calls `each(line_no, line)` until the input ends.
pub fn for_each_line(
    reader: &mut dyn BufRead,
    mut each: impl FnMut(usize, InputLine<'_>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    for line_no in 1.. {
        let outcome = match next_line(reader, &mut buf)? {
            None => return Ok(()),
            Some(false) => line_rejection("line_too_long", format!("1行は{LINE_BYTES_MAX}バイトまでです")),
            Some(true) => {
                let bytes = if line_no == 1 { buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&buf) } else { &buf };
                match std::str::from_utf8(bytes) {
                    Err(_) => line_rejection("invalid_utf8", "UTF-8として読めない文字があります".to_owned()),
                    Ok(text) if text.trim().is_empty() => line_rejection("empty_line", "空行です".to_owned()),
                    Ok(text) => {
                        each(line_no, InputLine::Text(text))?;
                        continue;
                    }
                }
            }
        };
        each(line_no, InputLine::Refused(outcome))?;
    }
    Ok(())
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
