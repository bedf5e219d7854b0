//! The format-1 fixture (made by tests/fixtures/make-store-format-1-fixture with 052da05, the
//! last release of that format), shared by the integration tests and `upgrade.rs`'s unit tests.

use std::path::Path;

/// Unpacks the fixture's `store/` and `access/` logs into `into`.
pub fn unpack_format_1(into: &Path) {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/store-format-1.tar.gz");
    std::fs::create_dir_all(into).unwrap();
    let status = std::process::Command::new("tar")
        .args(["-xzf", archive.to_str().unwrap(), "-C", into.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
}
