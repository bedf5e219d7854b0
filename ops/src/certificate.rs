//! `daicho certificate print` and `daicho certificate batch`: paper certificates as PDF, one
//! page per certificate, with the embedded IPAex font (see `projections::pdf`).
//!
//! `print` makes one recipient's certificate for a day (default today); `batch` makes every
//! certificate renewed with a new span starting between two dates (the yearly mass renewal),
//! in internal-number order, each for its new span. Rescinded renewals are not printed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::NaiveDate;
use daicho_domain::event::EventBody;
use daicho_domain::ids::CertificateRef;
use daicho_domain::{State, evolve};
use daicho_projections::certificate::{Face, face};
use daicho_projections::ledger::Ledger;
use daicho_projections::pdf::{font_path, load_font, render};
use daicho_projections::recipient_number;
use daicho_store::{Envelope, Position, StreamId};

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE, open_ledger};

/// A recipient's stream folded: the state and the last envelope (position and hash printed).
fn folded(ledger: &Ledger, stream: &StreamId) -> Result<(State, Envelope), String> {
    let envelopes = ledger.store().read_stream(stream).map_err(|e| e.to_string())?;
    let mut state = State::default();
    for e in &envelopes {
        state = evolve(state, &Ledger::event_of(e).map_err(|x| x.to_string())?);
    }
    let last = envelopes.last().cloned().ok_or("empty stream")?;
    Ok((state, last))
}

fn write_pdf(faces: &[Face], out_file: &Path) -> Result<usize, String> {
    if out_file.exists() {
        return Err(format!("{}: 既にあります（別の名前を指定してください）", out_file.display()));
    }
    let font = load_font(&font_path())?;
    let bytes = render(faces, &font)?;
    let mut f = std::fs::File::create(out_file).map_err(|e| format!("{}: {e}", out_file.display()))?;
    f.write_all(&bytes).and_then(|_| f.sync_all()).map_err(|e| format!("{}: {e}", out_file.display()))?;
    Ok(bytes.len())
}

/// What `daicho certificate print` is asked.
pub struct PrintRequest<'a> {
    pub data: &'a Path,
    /// The caller's recipient id.
    pub recipient: &'a str,
    /// The certificate's id.
    pub certificate: &'a str,
    /// The day whose span is printed.
    pub on: NaiveDate,
    /// The issue date.
    pub today: NaiveDate,
    pub out_file: &'a Path,
}

/// `daicho certificate print RECIPIENT CERTIFICATE --out FILE.pdf [--as-of DATE]`.
pub fn print(request: &PrintRequest<'_>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let PrintRequest { data, recipient, certificate, on, today, out_file } = *request;
    let ledger = match open_ledger(data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let stream = match crate::cli::recipient_stream(&ledger, recipient, err) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (state, last) = match folded(&ledger, &stream) {
        Ok(x) => x,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_UNREADABLE;
        }
    };
    let found = CertificateRef::parse(certificate)
        .ok()
        .and_then(|id| state.recipient().and_then(|r| r.certificate(&id).map(|c| (r, c))));
    let Some((r, c)) = found else {
        let _ = writeln!(err, "この受給者にその受給者証はありません");
        return EXIT_REJECTED;
    };
    let face = match face(ledger.config(), r, c, on, today, last.position.0, &last.hash.to_hex()) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "{}", e.message());
            return EXIT_REJECTED;
        }
    };
    match write_pdf(&[face], out_file) {
        Ok(bytes) => {
            let _ = writeln!(out, "受給者証を書き出しました（1ページ、{bytes}バイト）");
            EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            EXIT_UNREADABLE
        }
    }
}

/// `daicho certificate batch --renewed-between FROM TO --out FILE.pdf`.
pub fn batch(
    data: &Path,
    from: NaiveDate,
    to: NaiveDate,
    today: NaiveDate,
    out_file: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    if from > to {
        let _ = writeln!(err, "--renewed-between {from} {to}: 開始日が終了日より後です");
        return EXIT_REJECTED;
    }
    let ledger = match open_ledger(data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // Renewals whose new span starts in the range, by recipient: (certificate, span start).
    let mut renewed: BTreeMap<u64, (StreamId, Vec<(CertificateRef, NaiveDate)>)> = BTreeMap::new();
    for item in ledger.store().read_from(Position(1)) {
        let e = match item {
            Ok(e) => e,
            Err(x) => {
                let _ = writeln!(err, "{x}");
                return EXIT_UNREADABLE;
            }
        };
        if e.event_type != "certificate_renewed" {
            continue;
        }
        let Ok(event) = Ledger::event_of(&e) else { continue };
        if let EventBody::CertificateRenewed { certificate, period, .. } = event.body
            && (from..=to).contains(&period.from())
            && let Some(n) = recipient_number(e.stream.as_str())
        {
            renewed.entry(n).or_insert_with(|| (e.stream.clone(), Vec::new())).1.push((certificate, period.from()));
        }
    }
    let mut faces = Vec::new();
    for (stream, certificates) in renewed.into_values() {
        let (state, last) = match folded(&ledger, &stream) {
            Ok(x) => x,
            Err(e) => {
                let _ = writeln!(err, "{e}");
                return EXIT_UNREADABLE;
            }
        };
        let Some(r) = state.recipient() else { continue };
        for (id, start) in certificates {
            // A rescinded renewal leaves no span starting that day.
            let Some(c) = r.certificate(&id).filter(|c| c.spans.iter().any(|s| s.period.from() == start)) else {
                continue;
            };
            if let Ok(f) = face(ledger.config(), r, c, start, today, last.position.0, &last.hash.to_hex()) {
                faces.push(f);
            }
        }
    }
    if faces.is_empty() {
        let _ = writeln!(err, "{from}〜{to} に始まる更新はありません（ファイルは作成していません）");
        return EXIT_REJECTED;
    }
    match write_pdf(&faces, out_file) {
        Ok(bytes) => {
            let _ = writeln!(out, "更新分の受給者証を書き出しました（{}ページ、{bytes}バイト）", faces.len());
            EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            EXIT_UNREADABLE
        }
    }
}
