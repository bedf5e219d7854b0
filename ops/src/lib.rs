//! daicho (ops): the operator CLI as a library, so tests can run it in-process.
//!
//! Entry point: [`cli::main`]. Subcommands live in their own modules. Commands are decided and
//! recorded by `daicho_app::submit`, against the ledger (`daicho_app::ledger`)
//! or in memory ([`check`]).

pub mod apply;
pub mod audit;
pub mod backup;
pub mod billing;
pub mod certificate;
pub mod check;
pub mod cli;
pub mod demo;
pub mod import;
pub mod outcome;
pub mod pmh;
pub mod reader;
pub mod rebuild;
pub mod serve;
pub mod show;
pub mod synth;
pub mod verify;
