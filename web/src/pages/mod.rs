//! The pages: one module per screen. Handlers check the permission first, do their work on a
//! blocking thread, record access, then render.

pub mod admin;
pub mod approvals;
pub mod audit;
pub mod billing;
pub mod certificate;
pub mod commands;
pub mod health;
pub mod login;
pub mod pmh;
pub mod recipient;
pub mod search;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use daicho_domain::calendar::EraTable;

use crate::forms::Values;

/// A 303 redirect (after a POST that changed something, or to log in).
pub fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// A form body as pairs, in order.
pub type FormPairs = axum::Form<Vec<(String, String)>>;

/// The pairs as [`Values`].
pub fn values(pairs: FormPairs) -> Values {
    Values(pairs.0)
}

/// `2026-04-01（令和8年4月1日）`, or the ISO date alone when the era table cannot say.
pub fn date_ja(eras: &EraTable, d: NaiveDate) -> String {
    match eras.format(d) {
        Ok(w) => format!("{d}（{w}）"),
        Err(_) => d.to_string(),
    }
}

/// The end of a validity span as shown: open-ended spans say so.
pub fn end_ja(d: Option<NaiveDate>) -> String {
    d.map_or_else(|| "期限なし".to_owned(), |d| d.to_string())
}
