//! 受給者検索 (search): by name, kana, payer number, recipient number or My Number, a page at a
//! time. The query travels in a POST body, never in a URL (a name or a My Number in a URL ends up
//! in browser history and proxy logs). Listing recipients shows personal data: one access record
//! per recipient listed. Addresses of DV-protected recipients are never shown in lists.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use daicho_domain::numbers::MyNumber;
use daicho_domain::privacy::{Channel, Protection};
use daicho_domain::users::AccessAction;
use daicho_projections::query::SearchBy;

use super::recipient::{load, view_of};
use super::{FormPairs, values};
use crate::app::{App, blocking_read};
use crate::auth::{CurrentUser, Permission};
use crate::describe;
use crate::error::{AppError, AppResult};
use crate::render::{Nav, html};
use daicho_app::access::record;

/// Results per page.
pub const PAGE_SIZE: usize = 50;
/// Longest query, in characters.
pub const QUERY_CHARS_MAX: usize = 100;

/// What one can search by: form value and label.
pub const BY: &[(&str, &str)] = &[
    ("name", "氏名"),
    ("kana", "氏名カナ"),
    ("payer", "公費負担者番号"),
    ("recipient_number", "公費受給者番号"),
    ("my_number", "個人番号"),
];

/// One result row.
pub struct Row {
    pub n: u64,
    pub reference: String,
    pub name: String,
    pub kana: String,
    pub birth_date: String,
    pub address: String,
    pub protected: bool,
    pub programs: String,
}

/// The page.
#[derive(Template)]
#[template(path = "search.html")]
pub struct SearchPage {
    pub nav: Nav,
    pub by: String,
    pub q: String,
    pub error: Option<String>,
    pub searched: bool,
    pub rows: Vec<Row>,
    pub page: usize,
    pub more: bool,
    pub first: usize,
    pub options: Vec<(&'static str, &'static str, bool)>,
}

fn page_of(user: &CurrentUser, app: &App, by: &str, q: &str) -> SearchPage {
    SearchPage {
        nav: Nav::new(user, &app.municipality, "search"),
        by: by.to_owned(),
        q: q.to_owned(),
        error: None,
        searched: false,
        rows: Vec::new(),
        page: 0,
        more: false,
        first: 0,
        options: BY.iter().map(|(v, l)| (*v, *l, *v == by)).collect(),
    }
}

/// `GET /search`.
pub async fn form(State(app): State<Arc<App>>, user: CurrentUser) -> AppResult<Response> {
    user.require(Permission::View)?;
    Ok(html(&page_of(&user, &app, "kana", "")))
}

/// `GET /`: the search page.
pub async fn home(state: State<Arc<App>>, user: CurrentUser) -> AppResult<Response> {
    form(state, user).await
}

/// `POST /search`.
pub async fn search(State(app): State<Arc<App>>, user: CurrentUser, form: FormPairs) -> AppResult<Response> {
    let v = values(form);
    user.check_csrf(v.get("csrf"))?;
    user.require(Permission::View)?;
    let by_raw = v.get("by").unwrap_or("kana").to_owned();
    let q = v.trimmed("q").to_owned();
    let page_no = v.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(0).min(10_000);
    let by_known = BY.iter().any(|(k, _)| *k == by_raw);
    let by_shown = if by_known { by_raw.as_str() } else { "kana" };
    // A My Number is never written back into the page.
    let q_shown = if by_raw == "my_number" { "" } else { q.as_str() };
    let mut page = page_of(&user, &app, by_shown, q_shown);
    let by = if !by_known {
        Err("検索項目を選んでください".to_owned())
    } else if q.is_empty() {
        Err("検索する文字を入力してください".to_owned())
    } else if q.chars().count() > QUERY_CHARS_MAX {
        Err(format!("{QUERY_CHARS_MAX}文字以内で入力してください"))
    } else if q.chars().any(char::is_control) {
        Err("使えない文字（改行・タブ等）があります".to_owned())
    } else {
        match by_raw.as_str() {
            "name" => Ok(SearchBy::Name(q.clone())),
            "kana" => Ok(SearchBy::Kana(q.clone())),
            "payer" => Ok(SearchBy::PayerNumber(q.clone())),
            "recipient_number" => Ok(SearchBy::RecipientNumber(q.clone())),
            _ => MyNumber::parse(&q).map(SearchBy::MyNumber).map_err(|e| e.message()),
        }
    };
    let by = match by {
        Ok(by) => by,
        Err(message) => {
            page.error = Some(message);
            return Ok(html(&page));
        }
    };
    let today = app.today();
    let u = user.clone();
    let (rows, more) = blocking_read(&app, move |app| {
        // Catch up under the ledger's lock, then read without it: searches run side by side.
        let (reader, config) = {
            let mut ledger = app.ledger();
            let config = ledger.config().clone();
            (ledger.projections().map_err(AppError::internal)?.reader(), config)
        };
        let found = reader.search(&by, page_no * PAGE_SIZE, PAGE_SIZE).map_err(AppError::internal)?;
        let mut rows = Vec::with_capacity(found.recipients.len());
        for n in found.recipients {
            let Some(r) = reader.recipient(n).map_err(AppError::internal)? else { continue };
            // The person's protection at the head, from their stream (read only for those a
            // measure was ever recorded for); a list shows no protected address to anyone.
            let view = if reader.ever_protected(n).map_err(AppError::internal)? {
                view_of(&u, &load(app, n)?, Channel::List)
            } else {
                u.view(Protection::none(), Channel::List)
            };
            let mut programs: Vec<String> = r
                .certificates
                .iter()
                .filter(|c| c.span_on(today).is_some())
                .map(|c| describe::program_name(&config, c.program.as_str()))
                .collect();
            programs.dedup();
            rows.push(Row {
                n,
                reference: r.id.to_string(),
                name: r.name.to_string(),
                kana: r.kana.to_string(),
                birth_date: r.birth_date.to_string(),
                address: view.place(r.address.as_str()).to_owned(),
                protected: view.protected_at_head(),
                programs: programs.join("、"),
            });
        }
        Ok((rows, found.more))
    })
    .await?;
    // One record names every recipient the page lists.
    if !rows.is_empty() {
        let shown = rows.iter().map(|r| r.n).collect();
        let records = vec![record(&user.id, shown, "/search", AccessAction::Viewed, None)];
        app.access.record(records, today).await.map_err(AppError::internal)?;
    }
    page.searched = true;
    page.first = page_no * PAGE_SIZE + 1;
    page.rows = rows;
    page.page = page_no;
    page.more = more;
    Ok(html(&page))
}
