//! Files holding personal data are their owner's only (hardening issue, item 2): a demo ledger,
//! its PMH files (full My Numbers), batches generated in the web UI, and a backup; a data
//! directory that others can read is refused with how to fix it, and `status` names any file
//! more open than the owner's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use daicho_tests::cli::daicho as cli;
use daicho_tests::web::{Server, add_test_users};
use daicho_web::Settings;

/// Every path under `root` (itself included) that group or others may access.
fn open_to_others(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.permissions().mode() & 0o077 != 0 {
            out.push(format!("{} {:o}", p.display(), meta.permissions().mode() & 0o7777));
        }
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    out
}

#[test]
fn a_demo_ledger_its_pmh_files_and_a_backup_are_the_owners_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, _, err) = cli(&data, &["demo", "--recipients", "30"]);
    assert_eq!(code, 0, "{err}");
    let pmh = dir.path().join("pmh");
    let (code, _, err) = cli(&data, &["pmh", "export", "--out", pmh.to_str().unwrap(), "--actor", "op"]);
    assert_eq!(code, 0, "{err}");
    let backup = dir.path().join("ledger.backup");
    let (code, _, err) = cli(&data, &["backup", "--out", backup.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    // A batch generated and downloaded in the web UI is kept in DATA/exports.
    add_test_users(&data).unwrap();
    {
        let server = Server::start(&data, Settings::default()).unwrap();
        let mut c = server.login("super1").unwrap();
        assert_eq!(c.post_form("/pmh/generate", &[("program", "kodomo")]).unwrap().status, 303);
    }
    assert!(data.join("exports").is_dir(), "the web UI kept no batch files");
    for root in [&data, &pmh, &backup] {
        let open = open_to_others(root);
        assert!(open.is_empty(), "readable by group or others: {open:?}");
    }
    let (code, out, _) = cli(&data, &["status"]);
    assert_eq!(code, 0);
    assert!(out.contains("ファイルの権限: すべて所有者のみ"), "{out}");
}

#[test]
fn a_data_directory_others_can_read_is_refused_and_status_names_open_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert_eq!(cli(&data, &["init"]).0, 0);
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for args in [vec!["status"], vec!["verify"], vec!["show", "R0001"]] {
        let (code, _, err) = cli(&data, &args);
        assert_eq!(code, 2, "{args:?} opened a data directory others can read");
        assert!(err.contains("0755") && err.contains("chmod 700"), "{args:?}: {err}");
    }
    let refused = Server::start(&data, Settings::default()).err().unwrap_or_default();
    assert!(refused.contains("chmod 700"), "the server started: {refused}");
    // Made private again, it opens; a file inside opened up is named by `status`.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let checkpoint = data.join("store").join("sled").join("conf");
    std::fs::set_permissions(&checkpoint, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out, err) = cli(&data, &["status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("警告: store/sled/conf の権限が 0644 です"), "{out}");
}
