//! Running the `daicho` CLI in-process, as the integration tests do.

use std::path::{Path, PathBuf};

/// The repository's root (for shipped examples and scripts).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Runs `daicho --data DATA ARGS...`; returns the exit status, stdout and stderr.
pub fn daicho(data: &Path, args: &[&str]) -> (u8, String, String) {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let data = data.to_string_lossy().into_owned();
    let argv = ["daicho", "--data", data.as_str()].into_iter().chain(args.iter().copied());
    let status = daicho::cli::main(argv, &mut out, &mut err);
    (status, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
}
