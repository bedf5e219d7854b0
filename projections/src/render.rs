//! The PMH files' bytes, written record by record into buffers without building the record's
//! structure first: a full export renders millions of records, and the structured path (a
//! `serde` value per record, a `String` per CSV cell) cost more than reading them.
//!
//! The bytes are exactly those of the structured definition kept in `pmh`'s tests (the field
//! order and omissions of PMH.md, `serde_json`'s string escapes, the CSV quoting of
//! [`crate::pmh::csv_field`]); a test compares the two on records with every optional item set and
//! unset and texts that need escapes, and on strings with every ASCII control character (the
//! golden files check whole batches).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;

use chrono::NaiveDate;
use daicho_domain::calendar::EraTable;
use daicho_domain::config::{FaceItem, Program};
use daicho_domain::period::PMH_OPEN_END;

use crate::pmh::{CARD_TITLE, Outgoing, PmhRecord, card_label, csv_header};

/// Renders a program's records (one renderer per batch: it keeps the program's constant texts
/// and the 和暦 form of the dates seen so far).
pub struct Render<'a> {
    program: &'a Program,
    eras: &'a EraTable,
    /// Card items in print order with their labels (notes and contact only when set).
    items: Vec<(FaceItem, &'static str)>,
    notes: String,
    contact: String,
    open_end: String,
    wareki: HashMap<String, String>,
    /// The current record's card values, end to end, and where each is.
    values: String,
    spans: Vec<Range<usize>>,
}

/// Dates in the 和暦 memo at most; above, it starts again.
const WAREKI_MAX: usize = 65_536;

impl<'a> Render<'a> {
    pub fn new(program: &'a Program, eras: &'a EraTable) -> Render<'a> {
        let t = &program.certificate;
        let items = t
            .items
            .iter()
            .filter(|i| match i {
                FaceItem::Notes => !t.notes.is_empty(),
                FaceItem::Contact => !t.contact.is_empty(),
                _ => true,
            })
            .map(|i| (*i, card_label(*i)))
            .collect();
        Render {
            program,
            eras,
            items,
            notes: t.notes.replace('\n', " "),
            contact: t.contact.replace('\n', " "),
            open_end: PMH_OPEN_END.to_string(),
            wareki: HashMap::new(),
            values: String::new(),
            spans: Vec::new(),
        }
    }

    /// The card's values of `r` ([`crate::pmh::details`]) into `self.values`.
    fn card_values(&mut self, r: &PmhRecord) {
        self.values.clear();
        self.spans.clear();
        let start = self.values.len();
        self.values.push_str(&self.program.certificate_name);
        self.spans.push(start..self.values.len());
        for i in 0..self.items.len() {
            let start = self.values.len();
            match self.items[i].0 {
                FaceItem::PayerNumber => self.values.push_str(r.payer_number.as_deref().unwrap_or("")),
                FaceItem::RecipientNumber => self.values.push_str(&r.recipient_number),
                FaceItem::Name => self.values.push_str(&r.name),
                FaceItem::Kana => self.values.push_str(&r.kana),
                FaceItem::BirthDate => self.push_wareki(&r.birth_date),
                FaceItem::Sex => self.values.push_str(match r.sex.as_str() {
                    "1" => "男",
                    "2" => "女",
                    _ => "",
                }),
                FaceItem::Address => self.values.push_str(&r.address),
                FaceItem::Validity => {
                    self.push_wareki(&r.valid_from);
                    self.values.push_str("から");
                    if r.valid_to != self.open_end {
                        self.push_wareki(&r.valid_to);
                        self.values.push_str("まで");
                    }
                }
                FaceItem::CopayCap => self.values.push_str(r.copay.as_ref().map_or("", |c| c.card.as_str())),
                FaceItem::IncomeSegment => self.values.push_str(r.income_segment.as_deref().unwrap_or("")),
                FaceItem::DesignatedInstitutions => {
                    for (k, d) in r.designated.iter().enumerate() {
                        if k > 0 {
                            self.values.push('、');
                        }
                        self.values.push_str(d);
                    }
                }
                FaceItem::Disease => self.values.push_str(r.disease.as_deref().unwrap_or("")),
                FaceItem::IssueDate => self.push_wareki(&r.issued),
                FaceItem::Issuer => self.values.push_str(&self.program.certificate.issuer),
                FaceItem::Notes => self.values.push_str(&self.notes),
                FaceItem::Contact => self.values.push_str(&self.contact),
            }
            self.spans.push(start..self.values.len());
        }
    }

    /// `iso` in 和暦 (the ISO text itself when it is no date of the era table).
    fn push_wareki(&mut self, iso: &str) {
        if let Some(w) = self.wareki.get(iso) {
            self.values.push_str(w);
            return;
        }
        let w = iso.parse::<NaiveDate>().ok().and_then(|d| self.eras.format(d).ok()).unwrap_or_else(|| iso.to_owned());
        self.values.push_str(&w);
        if self.wareki.len() >= WAREKI_MAX {
            self.wareki.clear();
        }
        self.wareki.insert(iso.to_owned(), w);
    }

    /// Appends `o`'s JSON object to `json` (no separator, no line break) and its CSV line
    /// (CRLF included) to `csv`.
    pub fn record(&mut self, o: &Outgoing<'_>, json: &mut Vec<u8>, csv: &mut Vec<u8>) {
        let r = o.record;
        self.card_values(r);
        let p = self.program;
        let mut history_key = String::with_capacity(24);
        let _ = write!(history_key, "{}", r.history_key());

        // JSON, in the order and with the omissions of PMH.md.
        let j = json;
        j.extend_from_slice(b"{\"orgSpecificCertificateTypeId\":");
        json_str(j, &p.pmh_certificate_type_id);
        json_field(j, "myNumber", r.my_number.as_deref());
        j.extend_from_slice(b",\"basicFiveInfo\":{\"name\":");
        json_str(j, &r.name);
        json_field(j, "nameKana", Some(&r.kana));
        json_field(j, "address", Some(&r.address));
        json_field(j, "dateOfBirth", Some(&r.birth_date));
        json_field(j, "sex", Some(&r.sex));
        j.extend_from_slice(b"},\"isNotDisclosed\":");
        json_bool(j, r.not_disclosed);
        json_field(j, "medicalSubsidyInsurerNumber", r.payer_number.as_deref());
        json_field(j, "certificationName", Some(&p.certificate_name));
        json_field(j, "medicalSubsidyRecipientNumber", Some(&r.recipient_number));
        json_field(j, "certificationSubKey", Some(&r.certificate));
        json_field(j, "incomeSegment", r.income_segment.as_deref());
        if !r.designated.is_empty() {
            j.extend_from_slice(b",\"designatedMedicalInstitutions\":\"");
            for (k, d) in r.designated.iter().enumerate() {
                if k > 0 {
                    j.push(b';');
                }
                json_str_body(j, d);
            }
            j.push(b'"');
        }
        j.extend_from_slice(b",\"isAlwaysReimbursement\":");
        j.extend_from_slice(if r.always_reimbursement { b"\"1\"" } else { b"\"0\"" });
        if let Some(c) = &r.copay {
            j.extend_from_slice(b",\"maxCopaymentAmount\":{\"category\":");
            json_str(j, &c.kind);
            json_field(j, "burdenDefinition", c.definition.as_deref());
            let rates = c.rate.map(|v| v.map(i64::from));
            for (kind, values) in [("burdenRate", rates), ("amount", c.yen)] {
                for (unit, value) in ["PerDay", "PerMonth", "PerVisit"].iter().zip(values) {
                    if let Some(v) = value {
                        j.extend_from_slice(b",\"");
                        j.extend_from_slice(kind.as_bytes());
                        j.extend_from_slice(unit.as_bytes());
                        j.extend_from_slice(b"\":");
                        push_int(j, v);
                    }
                }
            }
            j.push(b'}');
        }
        json_field(j, "validFrom", Some(&r.valid_from));
        json_field(j, "validTo", Some(&r.valid_to));
        json_field(j, "historyKey", Some(&history_key));
        j.extend_from_slice(b",\"isDeleted\":");
        json_bool(j, o.deleted);
        j.extend_from_slice(b",\"certificationDetail\":[");
        for (k, span) in self.spans.iter().enumerate() {
            if k > 0 {
                j.push(b',');
            }
            let name = if k == 0 { CARD_TITLE } else { self.items[k - 1].1 };
            j.extend_from_slice(b"{\"name\":");
            json_str(j, name);
            j.extend_from_slice(b",\"value\":");
            json_str(j, &self.values[span.clone()]);
            j.push(b'}');
        }
        j.extend_from_slice(b"]}");

        // CSV, in the order of the header (`pmh::csv_header`).
        let c = csv;
        let flag = |b: bool| if b { "1" } else { "0" };
        let cells: [&str; 12] = [
            &p.pmh_certificate_type_id,
            r.my_number.as_deref().unwrap_or(""),
            &r.name,
            &r.kana,
            &r.birth_date,
            &r.sex,
            &r.address,
            flag(r.not_disclosed),
            r.payer_number.as_deref().unwrap_or(""),
            &p.certificate_name,
            &r.recipient_number,
            &r.certificate,
        ];
        for (k, cell) in cells.iter().enumerate() {
            if k > 0 {
                c.push(b',');
            }
            csv_cell(c, cell);
        }
        // 区分, 所得区分, 追加条件
        c.push(b',');
        c.push(b',');
        csv_cell(c, r.income_segment.as_deref().unwrap_or(""));
        c.push(b',');
        // 指定医療機関情報: the names joined with ';', quoted as one cell when one needs it.
        c.push(b',');
        let designated_needs_quotes = r.designated.iter().any(|d| needs_quotes(d));
        if designated_needs_quotes {
            c.push(b'"');
        }
        for (k, d) in r.designated.iter().enumerate() {
            if k > 0 {
                c.push(b';');
            }
            if designated_needs_quotes { quoted_body(c, d) } else { c.extend_from_slice(d.as_bytes()) }
        }
        if designated_needs_quotes {
            c.push(b'"');
        }
        c.push(b',');
        c.extend_from_slice(flag(r.always_reimbursement).as_bytes());
        let cap = r.copay.as_ref();
        c.push(b',');
        csv_cell(c, cap.map_or("", |x| x.kind.as_str()));
        c.push(b',');
        csv_cell(c, cap.and_then(|x| x.definition.as_deref()).unwrap_or(""));
        for i in 0..3 {
            c.push(b',');
            if let Some(v) = cap.and_then(|x| x.rate[i]) {
                push_int(c, i64::from(v));
            }
        }
        for i in 0..3 {
            c.push(b',');
            if let Some(v) = cap.and_then(|x| x.yen[i]) {
                push_int(c, v);
            }
        }
        for cell in [r.valid_from.as_str(), r.valid_to.as_str(), history_key.as_str(), flag(o.deleted)] {
            c.push(b',');
            csv_cell(c, cell);
        }
        for span in &self.spans {
            c.push(b',');
            csv_cell(c, &self.values[span.clone()]);
        }
        c.extend_from_slice(b"\r\n");
    }
}

/// Bytes buffered per file before they are handed to its writer.
const FLUSH_BYTES: usize = 1 << 20;

/// Where a [`FilesWriter`] hands a filled buffer: it takes the bytes and leaves the buffer empty
/// (a writer writes them; the export's pipe swaps in a spare buffer and passes the full one to
/// the thread that hashes and writes the file, so no byte is copied for it).
pub trait Sink {
    fn take(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()>;
}

/// A file in memory.
impl Sink for Vec<u8> {
    fn take(&mut self, buf: &mut Vec<u8>) -> std::io::Result<()> {
        self.append(buf);
        Ok(())
    }
}

/// Writes a batch's two files, the JSON array and the CSV document, record by record: each
/// record is rendered into a buffer, and the buffers go to the sinks in large pieces.
pub struct FilesWriter<'a, J: Sink, C: Sink> {
    render: Render<'a>,
    json: J,
    csv: C,
    json_buf: Vec<u8>,
    csv_buf: Vec<u8>,
    first: bool,
}

impl<'a, J: Sink, C: Sink> FilesWriter<'a, J, C> {
    /// Starts both documents: `[` and a line break; the BOM and the header row.
    pub fn new(program: &'a Program, eras: &'a EraTable, json: J, csv: C) -> Self {
        let mut csv_buf = Vec::with_capacity(FLUSH_BYTES + 8192);
        csv_buf.extend_from_slice("\u{FEFF}".as_bytes());
        for (k, h) in csv_header(program).iter().enumerate() {
            if k > 0 {
                csv_buf.push(b',');
            }
            csv_cell(&mut csv_buf, h);
        }
        csv_buf.extend_from_slice(b"\r\n");
        let mut json_buf = Vec::with_capacity(FLUSH_BYTES + 8192);
        json_buf.extend_from_slice(b"[\n");
        FilesWriter { render: Render::new(program, eras), json, csv, json_buf, csv_buf, first: true }
    }

    /// Appends one record to both files.
    pub fn record(&mut self, o: &Outgoing<'_>) -> std::io::Result<()> {
        if !self.first {
            self.json_buf.extend_from_slice(b",\n");
        }
        self.first = false;
        self.render.record(o, &mut self.json_buf, &mut self.csv_buf);
        if self.json_buf.len() >= FLUSH_BYTES {
            self.json.take(&mut self.json_buf)?;
        }
        if self.csv_buf.len() >= FLUSH_BYTES {
            self.csv.take(&mut self.csv_buf)?;
        }
        Ok(())
    }

    /// Ends the JSON array, hands over what is buffered and returns the sinks.
    pub fn finish(mut self) -> std::io::Result<(J, C)> {
        self.json_buf.extend_from_slice(b"\n]\n");
        self.json.take(&mut self.json_buf)?;
        self.csv.take(&mut self.csv_buf)?;
        Ok((self.json, self.csv))
    }
}

/// `,"name":"value"`; nothing when there is no value (an absent item is left out, never `null`).
fn json_field(out: &mut Vec<u8>, name: &str, value: Option<&str>) {
    if let Some(v) = value {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        json_str(out, v);
    }
}

fn json_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

fn push_int(out: &mut Vec<u8>, v: i64) {
    let mut digits = [0u8; 20];
    let mut n = v.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// A JSON string, escaped as `serde_json` escapes it.
pub(crate) fn json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    json_str_body(out, s);
    out.push(b'"');
}

/// The inside of a JSON string: `"` and `\` escaped, control characters as `\b \t \n \f \r` or
/// `\u00xx` (lower-case hex), nothing else (non-ASCII text stays as it is).
fn json_str_body(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[from..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x09 => out.extend_from_slice(b"\\t"),
            0x0A => out.extend_from_slice(b"\\n"),
            0x0C => out.extend_from_slice(b"\\f"),
            0x0D => out.extend_from_slice(b"\\r"),
            _ => out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xF)]]),
        }
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
}

fn needs_quotes(s: &str) -> bool {
    s.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
}

/// `s` with `"` doubled (the inside of a quoted cell).
fn quoted_body(out: &mut Vec<u8>, s: &str) {
    for (k, part) in s.split('"').enumerate() {
        if k > 0 {
            out.extend_from_slice(b"\"\"");
        }
        out.extend_from_slice(part.as_bytes());
    }
}

/// One CSV cell, as [`crate::pmh::csv_field`] writes it.
fn csv_cell(out: &mut Vec<u8>, s: &str) {
    if needs_quotes(s) {
        out.push(b'"');
        quoted_body(out, s);
        out.push(b'"');
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut cases: Vec<String> = (0u8..0x80).map(|b| format!("a{}b", char::from(b))).collect();
        cases.extend(["", "\"\\\"", "桜\u{7f}\u{2028}\u{1F600}x", "\\u0000", "末尾\n"].map(str::to_owned));
        for s in cases {
            let mut mine = Vec::new();
            json_str(&mut mine, &s);
            assert_eq!(String::from_utf8(mine).unwrap(), serde_json::to_string(&s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn cells_are_quoted_as_csv_field_quotes_them() {
        for s in ["", "a", "a,b", "say \"hi\"", "\"", "line\r\nbreak", "lf\n", "桜,\"市\""] {
            let mut reference = String::new();
            crate::pmh::csv_field(&mut reference, s);
            let mut mine = Vec::new();
            csv_cell(&mut mine, s);
            assert_eq!(String::from_utf8(mine).unwrap(), reference, "{s:?}");
        }
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for v in [0, 7, -7, 10, 99_999, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            push_int(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }
}
