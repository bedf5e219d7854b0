//! CSV records (RFC 4180) read as bytes, with the physical line each record starts on (shared by
//! the legacy import and the reading of PMH's result files).
//!
//! Cells stay bytes so that each can be decoded on its own (CP932 or UTF-8): a bad byte then
//! rejects one row, not the file. CP932 trail bytes (0x40-0xFC) never equal `"`, `,`, CR or LF,
//! so splitting before decoding is safe. Quoted cells may hold delimiters, doubled quotes and
//! line breaks; a record that never closes its quote is an error naming its first line.

use std::io::{self, BufRead};

/// Longest record: a quote left open would otherwise swallow the rest of the file.
pub const RECORD_BYTES_MAX: usize = 1024 * 1024;

/// One record.
#[derive(Debug, Default)]
pub struct Record {
    /// 1-based physical line where the record starts.
    pub line: u64,
    /// The cells, unquoted.
    pub cells: Vec<Vec<u8>>,
}

impl Record {
    /// Whether every cell is empty or blank (a spreadsheet's trailing `,,,,` row).
    pub fn is_blank(&self) -> bool {
        self.cells.iter().all(|c| c.iter().all(u8::is_ascii_whitespace))
    }
}

/// Why a record could not be read.
#[derive(Debug)]
pub enum RecordError {
    /// Reading failed.
    Io(io::Error),
    /// A quoted cell never closed (or the record passed [`RECORD_BYTES_MAX`]): its first line.
    Unclosed { line: u64 },
}

/// Reads records one at a time.
pub struct Records<R> {
    input: R,
    delimiter: u8,
    line: u64,
    bytes: u64,
    buf: Vec<u8>,
}

impl<R: BufRead> Records<R> {
    /// Records of `input`, cells separated by `delimiter`.
    pub fn new(input: R, delimiter: u8) -> Records<R> {
        Records { input, delimiter, line: 0, bytes: 0, buf: Vec::new() }
    }

    /// Bytes consumed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Reads the next record into `record`; false at the end of the input.
    pub fn next_into(&mut self, record: &mut Record) -> Result<bool, RecordError> {
        record.cells.clear();
        self.buf.clear();
        let start = self.line + 1;
        record.line = start;
        let mut cell = Vec::new();
        let mut quoted = false; // inside quotes
        let mut at_cell_start = true;
        loop {
            self.buf.clear();
            let n = self.input.read_until(b'\n', &mut self.buf).map_err(RecordError::Io)?;
            if n == 0 {
                // A record ends with its line; the input ending inside quotes is an open quote.
                return if quoted { Err(RecordError::Unclosed { line: start }) } else { Ok(false) };
            }
            self.line += 1;
            self.bytes += n as u64;
            let raw: &[u8] = &self.buf;
            let mut line = raw.strip_suffix(b"\n").unwrap_or(raw);
            line = line.strip_suffix(b"\r").unwrap_or(line);
            let ending = &raw[line.len()..];
            let mut i = 0;
            while i < line.len() {
                let b = line[i];
                if quoted {
                    if b == b'"' {
                        if line.get(i + 1) == Some(&b'"') {
                            cell.push(b'"');
                            i += 1;
                        } else {
                            quoted = false;
                        }
                    } else {
                        cell.push(b);
                    }
                } else if b == self.delimiter {
                    record.cells.push(std::mem::take(&mut cell));
                    at_cell_start = true;
                    i += 1;
                    continue;
                } else if b == b'"' && at_cell_start {
                    quoted = true;
                } else {
                    cell.push(b);
                }
                at_cell_start = false;
                i += 1;
            }
            if !quoted {
                record.cells.push(std::mem::take(&mut cell));
                return Ok(true);
            }
            // A line break inside quotes belongs to the cell; the record goes on.
            cell.extend_from_slice(ending);
            if cell.len() > RECORD_BYTES_MAX {
                return Err(RecordError::Unclosed { line: start });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &[u8]) -> Vec<(u64, Vec<String>)> {
        let mut r = Records::new(text, b',');
        let mut rec = Record::default();
        let mut out = Vec::new();
        while r.next_into(&mut rec).unwrap() {
            out.push((rec.line, rec.cells.iter().map(|c| String::from_utf8(c.clone()).unwrap()).collect()));
        }
        out
    }

    #[test]
    fn records_keep_their_first_line() {
        let got = all(b"a,b\r\n1,\"x,y\"\r\n2,\"two\r\nlines\"\r\n3,\"say \"\"hi\"\"\"\n4,\n");
        assert_eq!(
            got,
            vec![
                (1, vec!["a".into(), "b".into()]),
                (2, vec!["1".into(), "x,y".into()]),
                (3, vec!["2".into(), "two\r\nlines".into()]),
                (5, vec!["3".into(), "say \"hi\"".into()]),
                (6, vec!["4".into(), String::new()]),
            ]
        );
        // No final newline, and an empty line in the middle.
        assert_eq!(all(b"a\n\nb"), vec![(1, vec!["a".into()]), (2, vec![String::new()]), (3, vec!["b".into()])]);
    }

    #[test]
    fn cp932_bytes_pass_through_undecoded() {
        let text = b"\x8d\x82\x8b\xb4,\"\x88\xc9,\x81\x20\"\r\n";
        let mut r = Records::new(&text[..], b',');
        let mut rec = Record::default();
        assert!(r.next_into(&mut rec).unwrap());
        assert_eq!(rec.cells, vec![b"\x8d\x82\x8b\xb4".to_vec(), b"\x88\xc9,\x81\x20".to_vec()]);
        assert_eq!(r.bytes(), text.len() as u64);
    }

    #[test]
    fn an_unclosed_quote_names_its_first_line() {
        let mut r = Records::new(&b"a\n\"b,\nc\nd\n"[..], b',');
        let mut rec = Record::default();
        assert!(r.next_into(&mut rec).unwrap());
        assert!(matches!(r.next_into(&mut rec), Err(RecordError::Unclosed { line: 2 })));
    }
}
