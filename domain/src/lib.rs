//! daicho-domain: the pure rules of the ledger of medical-subsidy recipients (医療費助成受給者台帳).
//!
//! Value types parse raw input once and cannot hold invalid values; the municipality's programs
//! are data ([`config`]); [`decide`] holds every business rule and [`evolve`] applies events
//! without judging. This crate does no I/O and knows nothing about sled, axum or the clock:
//! today's date and looked-up facts come in through [`Context`].

pub mod billing;
pub mod calendar;
pub mod certificate;
pub mod codec;
pub mod command;
pub mod config;
mod decide;
pub mod error;
pub mod event;
pub mod ids;
pub mod money;
pub mod numbers;
pub mod period;
pub mod privacy;
mod rejection;
pub mod state;
pub mod text;
pub mod users;

pub use decide::{Context, Decision, MyNumberHolder, decide, rescind_needs_approval};
pub use rejection::Rejection;
pub use state::{State, evolve};
