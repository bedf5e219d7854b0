//! daicho-store: the event store (sled, durable group commit, hash chain, versioned envelopes).
//!
//! Not built yet: see issue "The event store on sled". The crate exists so the workspace has its
//! agreed shape; it has no code and no dependencies until that issue.
