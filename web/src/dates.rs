//! 日付の入力 (date and month fields): what a caseworker types, read by the domain's one parser
//! ([`daicho_domain::calendar::parse_written_date`] and `parse_written_month`), and the other
//! form shown beside the field: 和暦 for a Gregorian date, the ISO date for a 和暦 one.
//!
//! The server renders the other form of a value it already has (a form shown again after an
//! error, a filter in a page's address); `app.js` asks `POST /dates/read` as the caseworker
//! types, so the browser never holds a second parser or a copy of the era table.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use daicho_domain::billing::Month;
use daicho_domain::calendar::{EraTable, parse_written_date, parse_written_month};
use serde::Serialize;

use crate::App;
use crate::auth::CurrentUser;
use crate::error::AppResult;
use crate::pages::{FormPairs, values};

/// What kind of value a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A day.
    Date,
    /// A calendar month.
    Month,
}

/// A written date or month as the ledger reads it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Reading {
    /// `2026-04-01` or `2026-04`.
    pub iso: String,
    /// `令和8年4月1日` or `令和8年4月`.
    pub wareki: String,
    /// The form to show beside the field: the one the caseworker did not type.
    pub other: String,
}

/// Reads `raw` as a date or month; the error is the domain's message.
pub fn read(eras: &EraTable, kind: Kind, raw: &str) -> Result<Reading, String> {
    let (iso, wareki) = match kind {
        Kind::Date => {
            let d = parse_written_date(eras, raw).map_err(|e| e.message())?;
            (d.to_string(), eras.format(d).map_err(|e| e.message())?)
        }
        Kind::Month => {
            let (y, m) = parse_written_month(eras, raw).map_err(|e| e.message())?;
            (format!("{y:04}-{m:02}"), eras.format_month(y, m).map_err(|e| e.message())?)
        }
    };
    // Typed in the Western calendar (it starts with a digit): show the era form, and the
    // other way round.
    let western = raw.trim().chars().next().is_some_and(|c| c.is_ascii_digit() || ('０'..='９').contains(&c));
    let other = if western { wareki.clone() } else { iso.clone() };
    Ok(Reading { iso, wareki, other })
}

/// The other form of a value already typed, or nothing when it is empty or does not read.
pub fn echo(eras: &EraTable, kind: Kind, raw: &str) -> String {
    if raw.trim().is_empty() {
        return String::new();
    }
    read(eras, kind, raw).map(|r| r.other).unwrap_or_default()
}

/// A month as typed.
pub fn month(eras: &EraTable, raw: &str) -> Result<Month, String> {
    let (y, m) = parse_written_month(eras, raw).map_err(|e| e.message())?;
    Month::parse(&format!("{y:04}-{m:02}")).map_err(|e| e.message())
}

/// `2026-04-01（令和8年4月1日）` for a confirmation: both forms, whatever was typed.
pub fn both(eras: &EraTable, iso: &str) -> String {
    match iso.parse::<NaiveDate>().ok().and_then(|d| eras.format(d).ok()) {
        Some(w) => format!("{iso}（{w}）"),
        None => iso.to_owned(),
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Read(Reading),
    Refused { error: String },
}

/// `POST /dates/read` (`kind=date|month`, `v`): the reading of a value being typed, as JSON.
/// Any signed-in user; the value stays in the body (never in an address or a log).
pub async fn read_post(State(app): State<Arc<App>>, user: CurrentUser, form: FormPairs) -> AppResult<Response> {
    let v = values(form);
    user.check_csrf(v.get("csrf"))?;
    let kind = if v.get("kind") == Some("month") { Kind::Month } else { Kind::Date };
    let raw = v.get("v").unwrap_or("");
    let answer = if raw.chars().count() > 40 {
        Answer::Refused { error: "長すぎます".into() }
    } else {
        match read(&app.eras, kind, raw) {
            Ok(r) => Answer::Read(r),
            Err(error) => Answer::Refused { error },
        }
    };
    let body = serde_json::to_vec(&answer).map_err(crate::error::AppError::internal)?;
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_other_form_is_the_one_not_typed() {
        let eras = EraTable::builtin();
        assert_eq!(echo(&eras, Kind::Date, "2026-04-01"), "令和8年4月1日");
        assert_eq!(echo(&eras, Kind::Date, "２０２６－０４－０１"), "令和8年4月1日");
        assert_eq!(echo(&eras, Kind::Date, "R8.4.1"), "2026-04-01");
        assert_eq!(echo(&eras, Kind::Date, "平成31年5月1日"), "");
        assert_eq!(echo(&eras, Kind::Month, "令和元年5月"), "2019-05");
        assert_eq!(echo(&eras, Kind::Month, "2019-04"), "平成31年4月");
        assert!(read(&eras, Kind::Date, "昭和64年1月8日").unwrap_err().contains("昭和"));
        assert_eq!(both(&eras, "2019-05-01"), "2019-05-01（令和元年5月1日）");
        assert_eq!(month(&eras, "R8.10").map(|m| m.to_string()).as_deref(), Ok("2026-10"));
    }
}
