//! daicho (ops): the operator CLI as a library, so tests can run it in-process.
//!
//! Entry point: [`cli::main`]. Subcommands live in their own modules.

pub mod check;
pub mod cli;
