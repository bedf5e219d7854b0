//! The `daicho` binary: parse arguments, run, exit with the command's status. Everything else is
//! in the library (`daicho::cli`), which tests call directly.

use std::process::ExitCode;

fn main() -> ExitCode {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    ExitCode::from(daicho::cli::main(std::env::args_os(), &mut stdout.lock(), &mut stderr.lock()))
}
