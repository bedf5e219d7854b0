//! Audit tools: `daicho audit bundle` writes a range of the log for auditors to check without
//! trusting daicho, and `daicho replay` prints the register as it was known at a past moment.
//!
//! A bundle is a directory with `events.jsonl` (one envelope per line: every envelope field, the
//! payload's bytes in hex and decoded as JSON, the previous hash and the hash) and
//! `manifest.json` (the range, counts per event type, the first previous hash and the last
//! hash, the chain head when the bundle was made, and the SHA-256 of `events.jsonl`).
//! `scripts/verify-bundle` (Python, standard library only) recomputes the chain from it, using
//! the canonical envelope bytes documented in ARCHITECTURE.md.
//!
//! A bundle holds personal data (names, addresses, My Numbers in the payloads): it is to be
//! handled like the ledger itself. Its file names carry none.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use daicho_app::ledger::Ledger;
use daicho_domain::codec;
use daicho_projections::asof::as_of;
use daicho_projections::export::Hashing;
use daicho_projections::recipient_number;
use daicho_store::{Envelope, Position, StreamId};
use serde::Serialize;
use serde_json::{Value, json};

use daicho_domain::privacy::Channel;

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE};
use crate::reader::Reader;
use daicho_app::files::empty_output_dir as prepare_out;
use daicho_app::files::{DiskFile, FinishFile};

/// Format name written into every bundle manifest.
pub const BUNDLE_FORMAT: &str = "daicho-audit-bundle-1";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 3339 in UTC with microseconds (the recorded time as stored).
fn rfc3339(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

/// One line of `events.jsonl`.
fn line(e: &Envelope) -> Value {
    let payload = codec::json::payload_json(&e.event_type, e.schema_version, &e.payload)
        .unwrap_or_else(|err| json!({ "undecodable": err.to_string() }));
    json!({
        "position": e.position.0,
        "stream": e.stream.as_str(),
        "streamVersion": e.stream_version,
        "streamKey": e.stream_key,
        "eventId": e.event_id,
        "eventType": e.event_type,
        "schemaVersion": e.schema_version,
        "recordedAt": rfc3339(e.recorded_at_us),
        "recordedAtUs": e.recorded_at_us,
        "effective": e.effective.to_string(),
        "actor": e.actor,
        "approver": e.approver,
        "correlationId": e.correlation_id,
        "requestDigest": hex(&e.request_digest),
        "payloadHex": hex(&e.payload),
        "payload": payload,
        "prevHash": e.prev_hash.to_hex(),
        "hash": e.hash.to_hex(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BundleManifest {
    format: &'static str,
    municipality: String,
    from_position: u64,
    to_position: u64,
    events: u64,
    event_types: BTreeMap<String, u64>,
    first_prev_hash: String,
    last_hash: String,
    chain_head: Value,
    files: Vec<Value>,
}

/// `daicho audit bundle --from P --to P --out DIR`.
///
/// A bundle holds every person of its range raw (it is the log, not a view): the OS user is
/// recorded in the access log as having seen each of them, before the command reports the
/// bundle written; if that record cannot be written, the bundle is removed.
pub fn bundle(
    data: &Path,
    (from, to): (u64, Option<u64>),
    today: NaiveDate,
    out_dir: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let ledger = match crate::cli::open_ledger(data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let reader = match Reader::new(data, &ledger, None, "daicho audit bundle") {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_REJECTED;
        }
    };
    let store = ledger.store();
    let head = store.head();
    let to = to.unwrap_or(head.position.0);
    if from == 0 || from > to || to > head.position.0 {
        let _ =
            writeln!(err, "--from {from} --to {to}: 1 ≦ from ≦ to ≦ 先頭の位置 {} で指定してください", head.position);
        return EXIT_REJECTED;
    }
    if let Err(e) = prepare_out(out_dir) {
        let _ = writeln!(err, "{e}");
        return EXIT_UNREADABLE;
    }
    let written = write_bundle(&ledger, from, to, out_dir).and_then(|(m, people)| {
        let people: Vec<u64> = people.into_iter().collect();
        match reader.record(&people, &[], today) {
            Ok(()) => Ok(m),
            Err(e) => {
                let _ = std::fs::remove_dir_all(out_dir);
                Err(e)
            }
        }
    });
    match written {
        Ok(m) => {
            let _ = writeln!(
                out,
                "監査用の記録を書き出しました: 位置 {}〜{}、{}件。最後のハッシュ {}",
                m.from_position, m.to_position, m.events, m.last_hash
            );
            EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            EXIT_UNREADABLE
        }
    }
}

/// Writes the bundle; returns its manifest and the internal numbers of the people in it.
fn write_bundle(
    ledger: &Ledger,
    from: u64,
    to: u64,
    out_dir: &Path,
) -> Result<(BundleManifest, std::collections::BTreeSet<u64>), String> {
    let mut people = std::collections::BTreeSet::new();
    let store = ledger.store();
    let head = store.head();
    let path = out_dir.join("events.jsonl");
    let file = DiskFile::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = Hashing::new(file);
    let mut types: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_prev = None;
    let mut last_hash = String::new();
    let mut count = 0u64;
    for item in store.read_from(Position(from)) {
        let e = item.map_err(|e| e.to_string())?;
        if e.position.0 > to {
            break;
        }
        if first_prev.is_none() {
            first_prev = Some(e.prev_hash.to_hex());
        }
        serde_json::to_writer(&mut w, &line(&e)).map_err(|e| e.to_string())?;
        w.write_all(b"\n").map_err(|e| e.to_string())?;
        *types.entry(e.event_type.clone()).or_default() += 1;
        people.extend(recipient_number(e.stream.as_str()));
        last_hash = e.hash.to_hex();
        count += 1;
    }
    w.flush().map_err(|e| e.to_string())?;
    let (inner, sha256, len) = w.done();
    inner.finish_file().map_err(|e| format!("{}: {e}", path.display()))?;
    let manifest = BundleManifest {
        format: BUNDLE_FORMAT,
        municipality: ledger.config().municipality.name.clone(),
        from_position: from,
        to_position: to,
        events: count,
        event_types: types,
        first_prev_hash: first_prev.unwrap_or_default(),
        last_hash,
        chain_head: json!({ "position": head.position.0, "hash": head.hash.to_hex() }),
        files: vec![json!({ "name": "events.jsonl", "sha256": sha256, "bytes": len })],
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    daicho_app::files::write_synced(out_dir, "manifest.json", &bytes)?;
    daicho_app::files::sync_dir(out_dir)?;
    Ok((manifest, people))
}

/// A moment of knowledge: a position, or a time (the last position recorded at or before it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AsAt {
    Position(u64),
    Time(DateTime<Utc>),
}

/// Parses `--as-at`: digits are a position; otherwise RFC 3339 (`2026-11-20T17:00:00+09:00`),
/// or a date and time without offset, read as Japan time.
pub fn parse_as_at(s: &str) -> Result<AsAt, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map(AsAt::Position).map_err(|_| "位置が大きすぎます".to_owned());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(AsAt::Time(t.with_timezone(&Utc)));
    }
    for format in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, format)
            && let Some(t) = t.and_local_timezone(daicho_app::clock::JST).single()
        {
            return Ok(AsAt::Time(t.with_timezone(&Utc)));
        }
    }
    Err("位置（数字）または日時（2026-11-20T17:00:00+09:00、2026-11-20 17:00 は日本時間）で指定してください".into())
}

/// The last position recorded at or before `t` (0: none), by walking the log: recorded times
/// come from the clock, which is not trusted to be monotonic.
fn position_at(ledger: &Ledger, t: DateTime<Utc>) -> Result<u64, String> {
    let limit = t.timestamp_micros();
    let mut last = 0;
    for item in ledger.store().read_from(Position(1)) {
        let e = item.map_err(|e| e.to_string())?;
        if e.recorded_at_us <= limit {
            last = e.position.0;
        }
    }
    Ok(last)
}

/// What `daicho replay` is asked.
pub struct ReplayRequest<'a> {
    pub data: &'a Path,
    pub at: &'a AsAt,
    pub on: NaiveDate,
    /// Only this recipient (the caller's id).
    pub recipient: Option<&'a str>,
    /// The account whose role decides what is shown.
    pub actor: Option<&'a str>,
    /// The recorded date of the access records.
    pub today: NaiveDate,
}

/// `daicho replay --as-at POSITION|TIME [--as-of DATE] [--recipient ID] [--actor ID]`: the register
/// (one JSON line per recipient, in internal-number order) or one recipient, on `on` as known at
/// the moment, as the privacy policy lets the reader see it, as in `daicho show`. Each part of
/// the output is in the access log before it is printed.
pub fn replay(request: &ReplayRequest<'_>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let ReplayRequest { data, at, on, recipient, actor, today } = *request;
    let ledger = match crate::cli::open_ledger(data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let reader = match Reader::new(data, &ledger, actor, "daicho replay") {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_REJECTED;
        }
    };
    let head = ledger.store().head().position.0;
    let position = match at {
        AsAt::Position(p) if *p > head => {
            let _ = writeln!(err, "--as-at {p}: 先頭の位置 {head} より後です");
            return EXIT_REJECTED;
        }
        AsAt::Position(p) => *p,
        AsAt::Time(t) => match position_at(&ledger, *t) {
            Ok(p) => p,
            Err(e) => {
                let _ = writeln!(err, "{e}");
                return EXIT_UNREADABLE;
            }
        },
    };
    let at = Position(position);
    let streams: Vec<StreamId> = match recipient {
        Some(id) => match crate::cli::recipient_stream(&ledger, id, err) {
            Ok(s) => vec![s],
            Err(code) => return code,
        },
        None => match recipient_streams(&ledger, position) {
            Ok(s) => s,
            Err(e) => {
                let _ = writeln!(err, "{e}");
                return EXIT_UNREADABLE;
            }
        },
    };
    let mut shown = 0u64;
    // Views wait here until their access records are durable.
    let mut part: Vec<(u64, String, bool)> = Vec::new();
    let flush = |part: &mut Vec<(u64, String, bool)>, out: &mut dyn Write| -> Result<(), String> {
        let ns: Vec<u64> = part.iter().map(|(n, _, _)| *n).collect();
        let protected: Vec<u64> = part.iter().filter(|(_, _, p)| *p).map(|(n, _, _)| *n).collect();
        reader.record(&ns, &protected, today)?;
        for (_, text, _) in part.drain(..) {
            let _ = writeln!(out, "{text}");
        }
        Ok(())
    };
    for stream in streams {
        let n = recipient_number(stream.as_str()).unwrap_or(0);
        let view = match as_of(ledger.store(), &stream, at, on) {
            Ok(v) => v,
            Err(e) => {
                let _ = writeln!(err, "{e}");
                return EXIT_UNREADABLE;
            }
        };
        if view.known.is_none() {
            // Not yet registered as known at that position.
            continue;
        }
        // The whole register is a list: no protected place in it, for anyone.
        let channel = if recipient.is_some() { Channel::Cli } else { Channel::List };
        let policy = reader.view(view.protection.clone(), channel);
        let text = if recipient.is_some() {
            serde_json::to_string_pretty(&view.view(n, at, on, &policy))
        } else {
            serde_json::to_string(&view.view(n, at, on, &policy))
        };
        part.push((n, text.unwrap_or_default(), policy.shows_protected()));
        shown += 1;
        if part.len() == crate::reader::RECIPIENTS_PER_RECORD_MAX
            && let Err(e) = flush(&mut part, out)
        {
            let _ = writeln!(err, "{e}");
            return EXIT_UNREADABLE;
        }
    }
    if let Err(e) = flush(&mut part, out) {
        let _ = writeln!(err, "{e}");
        return EXIT_UNREADABLE;
    }
    if recipient.is_some() && shown == 0 {
        let _ = writeln!(err, "位置 {position} の時点では、この受給者は記録されていません");
        return EXIT_REJECTED;
    }
    let _ = writeln!(err, "位置 {position} の時点の記録で、{on} の状態を {shown}人分表示しました");
    EXIT_OK
}

/// The recipient streams that have events at or before `position`, by internal number.
fn recipient_streams(ledger: &Ledger, position: u64) -> Result<Vec<StreamId>, String> {
    let mut seen: BTreeMap<u64, StreamId> = BTreeMap::new();
    for item in ledger.store().read_from(Position(1)) {
        let e = item.map_err(|e| e.to_string())?;
        if e.position.0 > position {
            break;
        }
        if let Some(n) = recipient_number(e.stream.as_str()) {
            seen.entry(n).or_insert(e.stream);
        }
    }
    Ok(seen.into_values().collect())
}
