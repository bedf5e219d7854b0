//! Running the `daicho` CLI in-process, as the integration tests do.

use std::path::{Path, PathBuf};

/// The repository's root (for shipped examples and scripts).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The day the CLI decides and records on in tests (`--today`), unless a test gives its own: no
/// test depends on the date it runs on.
pub const TODAY: &str = "2026-12-01";

/// Runs `daicho --data DATA [--today TODAY] ARGS...`; returns the exit status, stdout and stderr.
pub fn daicho(data: &Path, args: &[&str]) -> (u8, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let data = data.to_string_lossy().into_owned();
    let today: &[&str] = if args.contains(&"--today") { &[] } else { &["--today", TODAY] };
    let argv = ["daicho", "--data", data.as_str()].into_iter().chain(today.iter().copied()).chain(args.iter().copied());
    let status = daicho::cli::main(argv, &mut out, &mut err);
    (status, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}
