//! Integration tests live in `tests/tests/`; this library holds what they share: [`cli`], the
//! CLI run in-process, and [`web`], the harness of the web UI tests (a real server over a real
//! ledger, and an HTTP client).

pub mod cli;
pub mod web;
