//! `daicho backup`, `restore` and `status`: a ledger round-trips through a backup file with the
//! same chain head and the same projections; a backup taken while the web UI records commands
//! restores to a ledger that verifies; a damaged file restores nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use daicho_app::ledger::Ledger;
use daicho_tests::cli::daicho;
use daicho_tests::web::{Server, fixture, make_ledger};
use daicho_web::Settings;

/// The register projection without the My Number index, whose keys are keyed hashes under a
/// secret each projections database draws for itself; and how many index entries there are.
fn projection(data: &Path) -> (Vec<daicho_projections::KeyValue>, usize) {
    let mut ledger = Ledger::open(data).unwrap();
    let all = ledger.projections().unwrap().dump().unwrap();
    let index = all.iter().filter(|(k, _)| k.first() == Some(&b'X')).count();
    (all.into_iter().filter(|(k, _)| k.first() != Some(&b'X')).collect(), index)
}

fn verify_line(data: &Path) -> String {
    let (status, out, err) = daicho(data, &["verify"]);
    assert_eq!(status, 0, "{out}{err}");
    out
}

#[test]
fn a_ledger_round_trips_with_the_same_head_and_projections() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    make_ledger(&data, 300).unwrap();
    // A PMH batch too, so exported records and batch marks are in the projection.
    let exports = tmp.path().join("pmh");
    let (status, _, err) = daicho(&data, &["pmh", "export", "--out", exports.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    let original = verify_line(&data);
    let file = tmp.path().join("daicho.backup");
    let (status, out, err) = daicho(&data, &["backup", "--out", file.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("退避しました"), "{out}");
    // A second backup to the same file is refused.
    assert_eq!(daicho(&data, &["backup", "--out", file.to_str().unwrap()]).0, 2);
    let (_, status_text, _) = daicho(&data, &["status"]);
    assert!(status_text.contains("最終退避: ") && !status_text.contains("最終退避: なし"), "{status_text}");

    let copy = tmp.path().join("restored");
    let (status, out, err) = daicho(&copy, &["restore", "--from", file.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    // Same chain head (verify prints position and hash), same projections.
    let head =
        |s: &str| s.lines().find(|l| l.starts_with("検証OK")).map(|l| l.split("先頭").nth(1).unwrap().to_owned());
    assert_eq!(head(&verify_line(&copy)), head(&original));
    let (a, a_index) = projection(&data);
    let (b, b_index) = projection(&copy);
    assert_eq!(a.len(), b.len());
    assert!(a == b, "the restored projection differs");
    assert_eq!(a_index, b_index);
    assert!(a_index > 0, "linked My Numbers are indexed");
    // Same answers from the CLI.
    for id in ["D0000001", "D0000150", "D0000300"] {
        assert_eq!(daicho(&data, &["show", id]).1, daicho(&copy, &["show", id]).1);
    }
    // Restoring over a ledger is refused.
    let (status, _, err) = daicho(&copy, &["restore", "--from", file.to_str().unwrap()]);
    assert_eq!(status, 1, "{err}");
}

#[test]
fn a_damaged_backup_restores_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    make_ledger(&data, 20).unwrap();
    let file = tmp.path().join("b");
    assert_eq!(daicho(&data, &["backup", "--out", file.to_str().unwrap()]).0, 0);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    let bad = tmp.path().join("bad");
    std::fs::write(&bad, &bytes).unwrap();
    let copy = tmp.path().join("restored");
    let (status, _, err) = daicho(&copy, &["restore", "--from", bad.to_str().unwrap()]);
    assert_eq!(status, 1, "{err}");
    assert!(err.contains("復元できません"), "{err}");
    assert!(!copy.exists(), "nothing half-made is left");
    // A file cut short, too.
    std::fs::write(&bad, &std::fs::read(&file).unwrap()[..middle]).unwrap();
    assert_eq!(daicho(&copy, &["restore", "--from", bad.to_str().unwrap()]).0, 1);
    assert!(!copy.exists());
}

#[test]
fn a_backup_taken_while_the_server_records_commands_restores_to_a_ledger_that_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("ledger");
    make_ledger(&data, 50).unwrap();
    let server = Server::start(&data, Settings::default()).unwrap();
    fixture(&server).unwrap();
    // A caseworker keeps recording (address changes of the fixture's first recipient) while
    // the operator takes backups through the running server's control socket.
    let writer = {
        let mut c = server.login("case1").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let path = "/recipients/new".to_owned();
        let handle = std::thread::spawn(move || {
            let mut n = 0u32;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) && n < 400 {
                n += 1;
                let fields = [
                    ("recipient", format!("BK-{n}")),
                    ("effective", "2026-11-01".to_owned()),
                    ("name", "退避 試験".to_owned()),
                    ("kana", "タイヒ シケン".to_owned()),
                    ("birth_date", "1990-01-01".to_owned()),
                    ("sex", "1".to_owned()),
                    ("address", "さくら市本町1-1-1".to_owned()),
                ];
                let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                c.record(&path, &format!("bk-{n}"), &fields).unwrap();
            }
            n
        });
        (stop, handle)
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut files = Vec::new();
    for i in 0..2 {
        let file = tmp.path().join(format!("live-{i}.backup"));
        let (status, out, err) = daicho(&data, &["backup", "--out", file.to_str().unwrap()]);
        assert_eq!(status, 0, "{err}");
        files.push((file, out));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (_, status_text, _) = daicho(&data, &["status"]);
    assert!(status_text.contains("サーバー稼働中"), "{status_text}");
    writer.0.store(true, std::sync::atomic::Ordering::Relaxed);
    let recorded = writer.1.join().unwrap();
    assert!(recorded > 2, "appends ran during the backups ({recorded})");
    let store = server.app.store.clone();
    let mut positions = Vec::new();
    for (i, (file, out)) in files.iter().enumerate() {
        let copy = tmp.path().join(format!("restored-{i}"));
        let (status, restored, err) = daicho(&copy, &["restore", "--from", file.to_str().unwrap()]);
        assert_eq!(status, 0, "{restored}{err}");
        // The restored head is a position of the live log, with the live log's hash there.
        let line = restored.lines().find(|l| l.starts_with("復元しました: ledger")).unwrap();
        let position: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
        let hash = line.split_whitespace().nth(5).unwrap();
        let live = store.get(daicho_store::Position(position)).unwrap().unwrap();
        assert_eq!(live.hash.to_hex(), hash, "{out}");
        assert!(restored.contains("復元しました: access"), "the access log is in the backup: {restored}");
        positions.push(position);
    }
    assert!(positions[0] < positions[1], "the log moved between the two backups: {positions:?}");
    drop(server);
}

/// SHA-256 (hex) of every file in `dir` but the manifest, by name.
fn file_hashes(dir: &Path) -> std::collections::BTreeMap<String, String> {
    use sha2::Digest;
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name != "manifest.json" {
            let digest = sha2::Sha256::digest(std::fs::read(&path).unwrap());
            out.insert(name, digest.iter().map(|b| format!("{b:02x}")).collect());
        }
    }
    out
}

/// Restores the backup `file` into a new directory and checks it verifies to `head` (as the
/// fixture's `.expected` first line has it).
fn restore_fixture(file: &Path, head: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("restored");
    let (status, out, err) = daicho(&data, &["restore", "--from", file.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    let verified = verify_line(&data);
    let line = verified.lines().find(|l| l.starts_with("検証OK")).unwrap();
    assert_eq!(format!("head{}", line.split("先頭").nth(1).unwrap()), head);
    (tmp, data)
}

/// Every recorded batch of `data` made again from the log into `work/batch-N`: its number and
/// its files' hashes.
fn regenerate_every_batch(data: &Path, work: &Path) -> Vec<(u64, std::collections::BTreeMap<String, String>)> {
    let mut out = Vec::new();
    for n in 1.. {
        let dir = work.join(format!("batch-{n}"));
        let (status, _, _) =
            daicho(data, &["pmh", "export", "--batch", &n.to_string(), "--out", dir.to_str().unwrap()]);
        if status != 0 {
            break;
        }
        out.push((n, file_hashes(&dir)));
    }
    out
}

#[test]
fn a_backup_of_the_release_before_the_read_model_engine_restores_with_the_same_head_files_and_statement() {
    // Made once by tests/fixtures/make-backup-fixture with the release before the read models
    // moved to redb (b1c4aa6): its PMH batches (diff, then full) and a closed month, and what
    // that release computed from them.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let expected = std::fs::read_to_string(fixtures.join("backup-1.expected")).unwrap();
    let mut lines = expected.lines();
    let head = lines.next().unwrap().to_owned();
    let mut batches = std::collections::BTreeMap::new();
    let mut statement = std::collections::BTreeMap::new();
    for line in lines {
        let [dir, name, sha] = line.split(' ').collect::<Vec<_>>()[..] else { panic!("{line}") };
        let into = if dir == "billing-2026-10" { &mut statement } else { &mut batches };
        into.insert(name.to_owned(), sha.to_owned());
    }
    assert!(batches.len() >= 4 && !statement.is_empty(), "{expected}");

    let (tmp, data) = restore_fixture(&fixtures.join("backup-1.daicho-backup"), &head);
    // Every batch regenerates byte for byte.
    let mut regenerated = std::collections::BTreeMap::new();
    for (_, files) in regenerate_every_batch(&data, tmp.path()) {
        regenerated.extend(files);
    }
    assert_eq!(regenerated, batches);
    // The closed month comes out as closed.
    let out = tmp.path().join("billing");
    let (status, text, err) = daicho(&data, &["billing", "--month", "2026-10", "--out", out.to_str().unwrap()]);
    assert_eq!(status, 0, "{text}{err}");
    assert_eq!(file_hashes(&out), statement);
}

#[test]
fn batches_of_the_first_manifest_format_regenerate_with_every_record_they_held_back() {
    // Made once by tests/fixtures/make-backup-fixture-2 with a release of manifest format 1
    // (02e6d89), where every diff listed every record held back: two diffs of each program, a
    // change between them, and each batch made again by that release.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let expected = std::fs::read_to_string(fixtures.join("backup-2.expected")).unwrap();
    let mut lines = expected.lines();
    let head = lines.next().unwrap().to_owned();
    let mut want = std::collections::BTreeMap::new();
    for line in lines {
        let [dir, name, sha] = line.split(' ').collect::<Vec<_>>()[..] else { panic!("{line}") };
        want.insert(format!("{dir}/{name}"), sha.to_owned());
    }
    // The second diffs of kodomo and kosei listed the records of the first again.
    assert_eq!(want.get("batch-6/rejects.csv"), want.get("batch-1/rejects.csv"), "{expected}");
    assert!(want.contains_key("batch-8/rejects.csv"), "{expected}");

    let (tmp, data) = restore_fixture(&fixtures.join("backup-2.daicho-backup"), &head);
    let mut got = std::collections::BTreeMap::new();
    for (n, files) in regenerate_every_batch(&data, tmp.path()) {
        got.extend(
            files
                .into_iter()
                .filter(|(name, _)| name != "manifest.json")
                .map(|(name, sha)| (format!("batch-{n}/{name}"), sha)),
        );
    }
    assert_eq!(got, want);
}

#[test]
fn data_directories_of_the_earlier_store_formats_open_upgraded_with_the_same_heads() {
    // Made once by tests/fixtures/make-store-format-N-fixture with the last release of the
    // store format `daicho-store-N` (052da05 for 1, 3828fd0 for 2): the two logs, without read
    // models.
    for format in [1, 2] {
        opens_upgraded_with_the_same_heads(format);
    }
}

fn opens_upgraded_with_the_same_heads(format: u8) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let expected = std::fs::read_to_string(fixtures.join(format!("store-format-{format}.expected"))).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let archive = fixtures.join(format!("store-format-{format}.tar.gz"));
    let unpacked = std::process::Command::new("tar")
        .args(["-xzf", archive.to_str().unwrap(), "-C", data.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(unpacked.success());
    let heads = |data: &Path| -> String {
        verify_line(data)
            .lines()
            .filter(|l| l.contains("検証OK"))
            .map(|l| format!("head{}\n", l.split("先頭").nth(1).unwrap()))
            .collect()
    };
    assert_eq!(heads(&data), expected);
    for log in ["store", "access"] {
        for leftover in ["sled.format-1", "upgrade"] {
            assert!(!data.join(log).join(leftover).exists(), "{log}/{leftover}");
        }
    }
    // The register is rebuilt from the upgraded log, and new commands go on after its head.
    let (status, out, err) = daicho(
        &data,
        &["user", "add", "after-upgrade", "--name", "更新 後", "--role", "caseworker", "--actor", "fixture-admin"],
    );
    assert_eq!(status, 0, "{out}{err}");
    let after = heads(&data);
    assert_ne!(after, expected);
    let position = |text: &str| -> u64 { text.split_whitespace().nth(2).unwrap().parse().unwrap() };
    assert_eq!(position(&after), position(&expected) + 1);
    let (status, out, err) = daicho(&data, &["status"]);
    assert_eq!(status, 0, "{out}{err}");
}
