//! The `daicho` binary: parse arguments, run, exit with the command's status. Everything else is
//! in the library (`daicho::cli`), which tests call directly.

use std::process::ExitCode;

/// mimalloc rather than the C library's allocator: folds, scans and pages allocate and free
/// millions of small strings across threads, where glibc's malloc took about 40 % of a rebuild
/// (ARCHITECTURE.md, "Memory allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Unlocked handles: `serve` logs from worker threads, which would wait forever on a lock
    // held here for the life of the process.
    ExitCode::from(daicho::cli::main(std::env::args_os(), &mut std::io::stdout(), &mut std::io::stderr()))
}
