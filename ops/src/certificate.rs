//! `daicho certificate print` and `daicho certificate batch`: paper certificates as PDF, one
//! page per certificate, with the embedded IPAex font (see `projections::pdf`).
//!
//! `print` makes one recipient's certificate for a day (default today); `batch` makes every
//! certificate renewed with a new span starting between two dates (the yearly mass renewal),
//! in internal-number order, each for its new span. Rescinded renewals are not printed.
//!
//! A certificate shows the address: a person whose address the privacy policy hides from the
//! reader (see `reader`; `--actor` names a supervisor or administrator to print them) is refused
//! by `print` and left out of a `batch`, which says how many. Every person printed is in the
//! access log before the file is written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::NaiveDate;
use daicho_app::ledger::Ledger;
use daicho_domain::event::EventBody;
use daicho_domain::ids::CertificateRef;
use daicho_domain::privacy::{Channel, Protection};
use daicho_domain::{State, evolve};
use daicho_projections::certificate::{Face, Made, face};
use daicho_projections::pdf::{font_path, load_font, render};
use daicho_projections::recipient_number;
use daicho_store::{Envelope, Position, StreamId};

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE, open_ledger};
use crate::reader::Reader;

/// A recipient's stream folded: the state, the last envelope (position and hash printed) and
/// the person's protection.
fn folded(ledger: &Ledger, stream: &StreamId) -> Result<(State, Envelope, Protection), String> {
    let envelopes = ledger.store().read_stream(stream).map_err(|e| e.to_string())?;
    let mut state = State::default();
    for e in &envelopes {
        state = evolve(state, &Ledger::event_of(e).map_err(|x| x.to_string())?);
    }
    let last = envelopes.last().cloned().ok_or("empty stream")?;
    let protection = Protection::of_state(&state);
    Ok((state, last, protection))
}

/// Refused by `print` when the policy hides the person's address from the reader.
pub const ADDRESS_HIDDEN: &str = "支援措置の対象のため、この受給者証は住所を閲覧できる職員が印刷します（--actor に係長または管理者のIDを指定してください）";

fn write_pdf(faces: &[Face], out_file: &Path) -> Result<usize, String> {
    if out_file.exists() {
        return Err(format!("{}: 既にあります（別の名前を指定してください）", out_file.display()));
    }
    let font = load_font(&font_path())?;
    let bytes = render(faces, &font)?;
    let (dir, name) = match (out_file.parent(), out_file.file_name().and_then(|n| n.to_str())) {
        (Some(dir), Some(name)) => (if dir.as_os_str().is_empty() { Path::new(".") } else { dir }, name),
        _ => return Err(format!("{}: ファイル名が正しくありません", out_file.display())),
    };
    daicho_app::files::write_synced(dir, name, &bytes)?;
    daicho_app::files::sync_dir(dir)?;
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
    /// The account whose role decides what may be printed.
    pub actor: Option<&'a str>,
}

/// `daicho certificate print RECIPIENT CERTIFICATE --out FILE.pdf [--as-of DATE]`.
pub fn print(request: &PrintRequest<'_>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let PrintRequest { data, recipient, certificate, on, today, out_file, actor } = *request;
    let ledger = match open_ledger(data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let reader = match Reader::new(data, &ledger, actor, "daicho certificate print") {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_REJECTED;
        }
    };
    let stream = match crate::cli::recipient_stream(&ledger, recipient, err) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (state, last, protection) = match folded(&ledger, &stream) {
        Ok(x) => x,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_UNREADABLE;
        }
    };
    let view = reader.view(protection, Channel::Print);
    let found = CertificateRef::parse(certificate)
        .ok()
        .and_then(|id| state.recipient().and_then(|r| r.certificate(&id).map(|c| (r, c))));
    let Some((r, c)) = found else {
        let _ = writeln!(err, "この受給者にその受給者証はありません");
        return EXIT_REJECTED;
    };
    if view.hides(r.address.as_str()) {
        let _ = writeln!(err, "{ADDRESS_HIDDEN}");
        return EXIT_REJECTED;
    }
    let face = match face(
        ledger.config(),
        r,
        c,
        (on, today),
        Made { position: last.position.0, hash_hex: &last.hash.to_hex() },
        &view,
    ) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "{}", e.message());
            return EXIT_REJECTED;
        }
    };
    let n = recipient_number(stream.as_str()).unwrap_or(0);
    let protected: &[u64] = if view.shows_protected() { &[n] } else { &[] };
    if let Err(e) = reader.record(&[n], protected, today) {
        let _ = writeln!(err, "{e}");
        return EXIT_UNREADABLE;
    }
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

/// What `daicho certificate batch` is asked.
pub struct BatchRequest<'a> {
    pub data: &'a Path,
    /// First and last start day of the renewed spans.
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The issue date.
    pub today: NaiveDate,
    pub out_file: &'a Path,
    /// The account whose role decides what may be printed.
    pub actor: Option<&'a str>,
}

/// `daicho certificate batch --renewed-between FROM TO --out FILE.pdf [--actor ID]`.
pub fn batch(request: &BatchRequest<'_>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let BatchRequest { data, from, to, today, out_file, actor } = *request;
    if from > to {
        let _ = writeln!(err, "--renewed-between {from} {to}: 開始日が終了日より後です");
        return EXIT_REJECTED;
    }
    let ledger = match open_ledger(data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let reader = match Reader::new(data, &ledger, actor, "daicho certificate batch") {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_REJECTED;
        }
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
    let (mut printed, mut protected, mut withheld) = (Vec::new(), Vec::new(), 0usize);
    for (n, (stream, certificates)) in renewed {
        let (state, last, protection) = match folded(&ledger, &stream) {
            Ok(x) => x,
            Err(e) => {
                let _ = writeln!(err, "{e}");
                return EXIT_UNREADABLE;
            }
        };
        let Some(r) = state.recipient() else { continue };
        let view = reader.view(protection, Channel::Print);
        if view.hides(r.address.as_str()) {
            withheld += 1;
            continue;
        }
        let before = faces.len();
        for (id, start) in certificates {
            // A rescinded renewal leaves no span starting that day.
            let Some(c) = r.certificate(&id).filter(|c| c.spans.iter().any(|s| s.period.from() == start)) else {
                continue;
            };
            if let Ok(f) = face(
                ledger.config(),
                r,
                c,
                (start, today),
                Made { position: last.position.0, hash_hex: &last.hash.to_hex() },
                &view,
            ) {
                faces.push(f);
            }
        }
        if faces.len() > before {
            printed.push(n);
            if view.shows_protected() {
                protected.push(n);
            }
        }
    }
    if withheld > 0 {
        let _ = writeln!(
            err,
            "支援措置の対象者 {withheld}人分は印刷していません（--actor に係長または管理者のIDを指定すると印刷します）"
        );
    }
    if faces.is_empty() {
        let _ = writeln!(err, "{from}〜{to} に始まる更新はありません（ファイルは作成していません）");
        return EXIT_REJECTED;
    }
    if let Err(e) = reader.record(&printed, &protected, today) {
        let _ = writeln!(err, "{e}");
        return EXIT_UNREADABLE;
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
