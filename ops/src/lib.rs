//! daicho (ops): the operator CLI as a library, so tests can run it in-process.
//!
//! Entry point: [`cli::main`]. Subcommands live in their own modules; [`submit`] is the one
//! algorithm that decides and records a command, against the ledger ([`ledger`]) or in memory
//! ([`check`]).

pub mod apply;
pub mod check;
pub mod cli;
pub mod demo;
pub mod ledger;
pub mod outcome;
pub mod pmh;
pub mod rebuild;
pub mod show;
pub mod submit;
pub mod synth;
pub mod verify;
