//! daicho-projections: folds from the event log to read models (register, PMH history records
//! and batches, billing, certificate data, as-of queries).
//!
//! Not built yet: see issue "Projections". The crate exists so the workspace has its agreed
//! shape; it has no code and no dependencies until that issue.
