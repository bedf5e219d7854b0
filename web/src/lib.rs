//! daicho-web: the caseworker web UI and JSON API (axum + askama).
//!
//! Not built yet: see issue "The caseworker web UI". The crate exists so the workspace has its
//! agreed shape; it has no code and no dependencies until that issue.
