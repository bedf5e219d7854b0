//! The register projection: rebuilding from position 1 gives exactly the bytes that
//! incremental application gave, over a synthetic history of more than 10,000 events with PMH
//! batches and rescinds in the middle.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use daicho::demo::load;
use daicho_app::ledger::Ledger;
use daicho_projections::{KeyValue, Projections};
use daicho_store::Position;

fn today() -> chrono::NaiveDate {
    daicho_tests::cli::TODAY.parse().unwrap()
}

fn export(data: &Path, out: &Path, mode: Option<&str>) {
    let today = daicho_tests::cli::TODAY;
    let mut args = vec![
        "daicho",
        "--data",
        data.to_str().unwrap(),
        "--today",
        today,
        "pmh",
        "export",
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(m) = mode {
        args.extend(["--mode", m]);
    }
    let mut o = Vec::new();
    let mut e = Vec::new();
    assert_eq!(daicho::cli::main(args, &mut o, &mut e), 0, "{}", String::from_utf8_lossy(&e));
}

/// `daicho config set` with `toml`.
fn set_config(data: &Path, toml: &str) {
    let file = data.parent().unwrap().join("config.toml");
    std::fs::write(&file, toml).unwrap();
    let args = vec!["daicho", "--data", data.to_str().unwrap(), "config", "set", file.to_str().unwrap()];
    let (mut o, mut e) = (Vec::new(), Vec::new());
    assert_eq!(daicho::cli::main(args, &mut o, &mut e), 0, "{}", String::from_utf8_lossy(&e));
}

/// Per program of the export into `out`: records sent that are not withdrawals, records held
/// back, and of those the ones the batch lists.
fn sent_and_held(out: &Path) -> std::collections::BTreeMap<String, (u64, u64, usize)> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let count = |b: &serde_json::Value, k: &str| b[k].as_u64().unwrap();
    manifest["batches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let sent = count(b, "records") - count(b, "deleted");
            let listed = b["heldBack"].as_array().map_or(0, Vec::len);
            (b["program"].as_str().unwrap().to_owned(), (sent, count(b, "heldBackTotal"), listed))
        })
        .collect()
}

/// Records PMH's results refusing every `every`-th record of each data file of the export in
/// `out` (a results CSV of the default profile); returns how many were refused.
fn refuse(data: &Path, out: &Path, every: usize) -> usize {
    let mut csv = String::from("ファイル名,履歴キー,エラーコード,エラー内容\n");
    let mut names: Vec<_> = std::fs::read_dir(out).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    for name in names {
        let name = name.to_str().unwrap().to_owned();
        if !name.ends_with(".json") || name == "manifest.json" {
            continue;
        }
        let records: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(out.join(&name)).unwrap()).unwrap();
        for r in records.iter().step_by(every) {
            csv.push_str(&format!("{name},{},E0101,記載内容に誤りがあります\n", r["historyKey"].as_str().unwrap()));
        }
    }
    let profile = daicho_app::pmh_results::Profile::default_profile().unwrap();
    let mut ledger = Ledger::open(data).unwrap();
    let report = ledger.record_pmh_results(csv.as_bytes(), &profile, &[], today(), "mori").unwrap();
    assert!(report.unmatched.is_empty(), "{:?}", report.unmatched);
    report.batches.iter().map(|(_, _, n)| n).sum()
}

/// The dump without the My Number index, whose keys depend on each database's own secret;
/// and the number of index entries.
fn comparable(dump: Vec<KeyValue>) -> (Vec<KeyValue>, usize) {
    let index = dump.iter().filter(|(k, _)| k.first() == Some(&b'X')).count();
    (dump.into_iter().filter(|(k, _)| k.first() != Some(&b'X')).collect(), index)
}

#[test]
fn rebuilding_gives_the_same_bytes_as_incremental_application() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    let mut ledger = Ledger::init(&data, daicho_domain::config::DEMO_TOML, today()).unwrap();
    let config = ledger.config().clone();
    // First half of the municipality, then the live projection catches up and a batch goes out.
    let first = load(ledger.store(), &config, 7, 1, 600, today(), &mut |_| {}).unwrap();
    ledger.projections().unwrap();
    drop(ledger);
    export(&data, &tmp.path().join("e1"), None);
    // PMH refuses some of what it was sent: they wait for a correction (which the second half
    // brings to some of them).
    let refused_first = refuse(&data, &tmp.path().join("e1"), 7);
    assert!(refused_first > 20, "{refused_first}");
    // A configuration under which every こども医療費 record fails validation (its recipient
    // numbers carry no check digit): which pending records are held back follows it.
    let strict = daicho_domain::config::DEMO_TOML.replacen(
        "certificate_name = \"さくら市こども医療証\"\npayer_numbers = [\"88139993\"]\nrecipient_number = \"free\"",
        "certificate_name = \"さくら市こども医療証\"\npayer_numbers = [\"88139993\"]\nrecipient_number = \"checked\"",
        1,
    );
    assert_ne!(strict, daicho_domain::config::DEMO_TOML);
    set_config(&data, &strict);
    // Second half, then a full export of everything and another diff.
    let mut ledger = Ledger::open(&data).unwrap();
    let second = load(ledger.store(), &config, 7, 601, 1200, today(), &mut |_| {}).unwrap();
    assert_eq!(first.refused + second.refused, 0);
    ledger.projections().unwrap();
    drop(ledger);
    export(&data, &tmp.path().join("e2"), None);
    let strict = sent_and_held(&tmp.path().join("e2"));
    // Back to the demo configuration: the こども records pending are sendable again.
    set_config(&data, daicho_domain::config::DEMO_TOML);
    export(&data, &tmp.path().join("e3"), Some("full"));
    // And some of the full batches (a full replacement, and full resends of diff-history
    // programs).
    assert!(refuse(&data, &tmp.path().join("e3"), 11) > 20);
    export(&data, &tmp.path().join("e4"), None);
    let full = sent_and_held(&tmp.path().join("e3"));
    let after = sent_and_held(&tmp.path().join("e4"));
    assert_eq!(strict["kodomo"].0, 0, "the strict configuration sends no こども record: {strict:?}");
    assert!(strict["kodomo"].1 > 100, "it holds them back: {strict:?}");
    assert!(full["kodomo"].0 > 100, "the demo configuration sends them again: {full:?}");
    assert!(after["kodomo"].1 < strict["kodomo"].1, "fewer held back: {after:?} after {strict:?}");
    assert_eq!(strict["kodomo"].2 as u64, strict["kodomo"].1, "held back by a new configuration: all listed");
    // A diff lists only what no batch listed as it is now; the others stay held and counted.
    let (total, listed) = after.values().fold((0, 0), |(t, l), (_, total, listed)| (t + total, l + *listed as u64));
    assert!(total > 0 && listed < total, "held back {total}, listed {listed}: {after:?}");
    let mut ledger = Ledger::open(&data).unwrap();
    let store = ledger.store().clone();
    let head = store.head().position;
    assert!(head.0 > 10_000, "a history of more than 10,000 events: {head}");
    let rescinds =
        store.read_from(Position(1)).filter(|e| e.as_ref().unwrap().event_type == "command_rescinded").count();
    assert!(rescinds > 0, "the history must contain rescinds");
    let incremental = comparable(ledger.projections().unwrap().dump().unwrap());
    drop(ledger);
    let refused_now = incremental.0.iter().filter(|(k, _)| k.first() == Some(&b'F')).count();
    assert!(refused_now > 10, "records stay refused at the end: {refused_now}");
    let listed_now = incremental.0.iter().filter(|(k, _)| k.first() == Some(&b'L')).count();
    assert!(listed_now > 10, "records stay held back, listed by a batch, at the end: {listed_now}");

    // A: rebuilt in one go, by the bulk rebuild (each recipient's stream folded on its own, the
    // PMH batches applied to it between its events).
    let mut rebuilt = Projections::temporary().unwrap();
    rebuilt.rebuild(&store, None, &mut |_, _| {}).unwrap();
    let rebuilt = comparable(rebuilt.dump().unwrap());

    // A': rebuilt into a file, spilling the partitions to files every 64 kB of events.
    let spilled_dir = tmp.path().join("spilled");
    let mut spilled = Projections::open(&spilled_dir, daicho_projections::DEFAULT_CACHE_BYTES).unwrap();
    spilled.set_spill_bytes(64 << 10);
    spilled.rebuild(&store, None, &mut |_, _| {}).unwrap();
    let spilled = comparable(spilled.dump().unwrap());
    assert!(!spilled_dir.join(Projections::SPILL_DIR).exists(), "the spill files are removed");

    // B: applied in small, uneven steps, closing and reopening the database between steps, so
    // every cache starts cold; the PMH batches' effects in parts of 5 writes (as a large
    // municipality's full batch is applied in parts of 100,000).
    let stepwise_dir = tmp.path().join("stepwise");
    let mut at = 0u64;
    let mut step = 1u64;
    while at < head.0 {
        at = (at + step).min(head.0);
        step = step * 7 % 1913 + 1;
        let mut p = Projections::open(&stepwise_dir, daicho_projections::DEFAULT_CACHE_BYTES).unwrap();
        p.set_batch_part(5);
        p.catch_up(&store, Some(Position(at)), &mut |_, _| {}).unwrap();
    }
    let stepwise =
        comparable(Projections::open(&stepwise_dir, daicho_projections::DEFAULT_CACHE_BYTES).unwrap().dump().unwrap());

    assert!(incremental.0.len() > 1000);
    assert_eq!(rebuilt.1, incremental.1, "My Number index sizes");
    assert_eq!(stepwise.1, incremental.1, "My Number index sizes");
    assert_eq!(spilled.1, incremental.1, "My Number index sizes");
    assert!(
        spilled.0 == incremental.0,
        "a spilling rebuild differs from incremental application: {}",
        first_difference(&spilled.0, &incremental.0)
    );
    assert!(
        rebuilt.0 == incremental.0,
        "rebuild differs from incremental application: {}",
        first_difference(&rebuilt.0, &incremental.0)
    );
    assert!(
        stepwise.0 == incremental.0,
        "stepwise application differs from incremental application: {}",
        first_difference(&stepwise.0, &incremental.0)
    );
}

/// The first key where two dumps differ, and how (for the failure message).
fn first_difference(a: &[KeyValue], b: &[KeyValue]) -> String {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.0 == y.0 => {
                return format!(
                    "key {:?}: values differ\n{:?}\n{:?}",
                    String::from_utf8_lossy(&x.0),
                    String::from_utf8_lossy(&x.1),
                    String::from_utf8_lossy(&y.1)
                );
            }
            (Some(x), Some(y)) if x.0 < y.0 => {
                return format!("key {:?} only in the first", String::from_utf8_lossy(&x.0));
            }
            (Some(_), Some(y)) => return format!("key {:?} only in the second", String::from_utf8_lossy(&y.0)),
            (Some(x), None) => return format!("key {:?} only in the first", String::from_utf8_lossy(&x.0)),
            (None, Some(y)) => return format!("key {:?} only in the second", String::from_utf8_lossy(&y.0)),
            (None, None) => break,
        }
    }
    "no difference".into()
}
