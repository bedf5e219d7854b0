//! The pages: one module per screen. Handlers check the permission first, do their work on a
//! blocking thread, record access, then render.

pub mod account;
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

/// One line of the error summary at the top of a form (入力内容の確認): a link to the field in
/// error (`target` is its element id; empty for an error that belongs to no field).
pub struct ErrorLink {
    pub target: String,
    pub label: String,
    pub message: String,
}

impl ErrorLink {
    /// The error of the field whose element id is `target`.
    pub fn field(target: &str, label: &str, message: &str) -> ErrorLink {
        ErrorLink { target: target.to_owned(), label: label.to_owned(), message: message.to_owned() }
    }
}

/// The summary of a page whose errors are `(field name, message)` pairs, in the order of
/// `fields` (`(name, label)`; each field's element id is `f-NAME`), then the rest.
pub fn summary_of(errors: &[(String, String)], fields: &[(&str, &str)]) -> Vec<ErrorLink> {
    let mut links: Vec<ErrorLink> = fields
        .iter()
        .flat_map(|(name, label)| {
            errors
                .iter()
                .filter(move |(f, _)| f == name)
                .map(move |(_, m)| ErrorLink::field(&format!("f-{name}"), label, m))
        })
        .collect();
    links.extend(errors.iter().filter(|(f, _)| !fields.iter().any(|(name, _)| name == f)).map(|(_, m)| ErrorLink {
        target: String::new(),
        label: String::new(),
        message: m.clone(),
    }));
    links
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

pub(crate) use daicho_app::files::file_sha256;

/// An open file as a streamed body, with its length (a full PMH batch or a fee statement's
/// detail of a large municipality is hundreds of megabytes: it is never held in memory).
pub(crate) async fn file_body(file: tokio::fs::File) -> crate::error::AppResult<(axum::body::Body, u64)> {
    let len = file.metadata().await.map_err(crate::error::AppError::internal)?.len();
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match tokio::io::AsyncReadExt::read(&mut file, &mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(axum::body::Bytes::from(buf)), Some(file)))
            }
            // The error ends the stream (and the response).
            Err(e) => Some((Err(e), None)),
        }
    });
    Ok((axum::body::Body::from_stream(chunks), len))
}

/// A download response: the streamed body with its length, type and file name. The type
/// follows the name: `.json`, `.html`, else CSV (UTF-8).
pub(crate) fn attachment(body: axum::body::Body, len: u64, file: &str) -> Response {
    let content_type = if file.ends_with(".json") {
        "application/json"
    } else if file.ends_with(".html") {
        "text/html; charset=utf-8"
    } else {
        "text/csv; charset=utf-8"
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
