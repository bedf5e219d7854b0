//! The fixtures of the earlier store formats, shared by the integration tests and `upgrade.rs`'s
//! unit tests: `daicho-store-1` (made by tests/fixtures/make-store-format-1-fixture with 052da05,
//! the last release of that format) and `daicho-store-2` (make-store-format-2-fixture with
//! 3828fd0).

use std::path::Path;

/// Unpacks the `store/` and `access/` logs of the fixture of format `format` into `into`.
pub fn unpack_format(format: u8, into: &Path) {
    let archive = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/fixtures/store-format-{format}.tar.gz"));
    std::fs::create_dir_all(into).unwrap();
    let status = std::process::Command::new("tar")
        .args(["-xzf", archive.to_str().unwrap(), "-C", into.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Unpacks the format-1 fixture into `into`.
pub fn unpack_format_1(into: &Path) {
    unpack_format(1, into);
}

/// The head (position, hash in hex) of the fixture's `store/` log, as its release's `verify`
/// printed it.
#[allow(dead_code)]
pub fn format_head(format: u8) -> (u64, String) {
    let expected = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../tests/fixtures/store-format-{format}.expected")),
    )
    .unwrap();
    let first = expected.lines().next().unwrap();
    let parts: Vec<&str> = first.split_whitespace().collect();
    (parts[2].parse().unwrap(), parts[4].to_owned())
}
