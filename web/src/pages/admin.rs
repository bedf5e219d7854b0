//! 利用者管理 (users) and アクセス記録 (the access log), for administrators (and auditors, who
//! may read the access log).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::NaiveDate;
use daicho_domain::users::Role;
use serde::Deserialize;

use super::{FormPairs, values};
use crate::app::{App, blocking, format_recorded};
use crate::auth::{CurrentUser, Permission};
use crate::error::{AppError, AppResult};
use crate::render::{Nav, html};
use daicho_app::access::AccessFilter;
use daicho_app::{CONFLICT_MESSAGE, Failure, Outcome, Refusal, Request};

/// One account as listed.
pub struct UserRow {
    pub id: String,
    pub name: String,
    pub role: &'static str,
    pub disabled: bool,
    pub is_me: bool,
}

/// The users page.
#[derive(Template)]
#[template(path = "users.html")]
pub struct UsersPage {
    pub nav: Nav,
    pub users: Vec<UserRow>,
    pub roles: Vec<(&'static str, &'static str, bool)>,
    pub new_id: String,
    pub new_name: String,
    pub errors: Vec<(String, String)>,
    pub notice: Option<String>,
    /// A generated password, shown once: (user id, password).
    pub password: Option<(String, String)>,
}

impl UsersPage {
    /// The error summary at the top of the page.
    pub fn summary(&self) -> Vec<super::ErrorLink> {
        super::summary_of(&self.errors, &[("id", "利用者ID"), ("name", "氏名"), ("role", "役割")])
    }

    /// The error of a field.
    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| f == field).map(|(_, m)| m.as_str())
    }
}

fn users_page(app: &App, user: &CurrentUser) -> UsersPage {
    let accounts = app.accounts();
    UsersPage {
        nav: Nav::new(user, &app.municipality, "users"),
        users: accounts
            .all()
            .map(|a| UserRow {
                id: a.id.to_string(),
                name: a.name.clone(),
                role: a.role.label(),
                disabled: a.disabled,
                is_me: a.id == user.id,
            })
            .collect(),
        roles: Role::ALL.iter().map(|r| (r.code(), r.label(), *r == Role::Caseworker)).collect(),
        new_id: String::new(),
        new_name: String::new(),
        errors: Vec::new(),
        notice: None,
        password: None,
    }
}

/// `GET /admin/users`.
pub async fn users(State(app): State<Arc<App>>, user: CurrentUser) -> AppResult<Response> {
    user.require(Permission::Users)?;
    Ok(html(&users_page(&app, &user)))
}

/// A refused account change as (the field it is about, the message); a failure of ours as an
/// error.
fn account_error(e: Failure) -> AppResult<(Option<&'static str>, String)> {
    match e {
        Failure::Rejected(Refusal::Account(r)) => Ok((r.field(), r.to_string())),
        Failure::Rejected(Refusal::Forbidden { .. }) => Err(AppError::Forbidden),
        Failure::Rejected(r) => Ok((None, r.to_string())),
        Failure::Conflict => Ok((None, CONFLICT_MESSAGE.to_owned())),
        Failure::Infrastructure(m) => Err(AppError::internal(m)),
    }
}

/// A generated password from an account change.
fn password(outcome: Outcome) -> AppResult<String> {
    match outcome {
        Outcome::Password(p) => Ok(p),
        other => Err(AppError::internal(format!("unexpected outcome {other:?}"))),
    }
}

/// `POST /admin/users`: adds a user with a generated password, shown once.
pub async fn add(State(app): State<Arc<App>>, user: CurrentUser, form: FormPairs) -> AppResult<Response> {
    let v = values(form);
    user.check_csrf(v.get("csrf"))?;
    user.require(Permission::Users)?;
    let id = v.trimmed("id").to_owned();
    let name = v.trimmed("name").to_owned();
    let role = Role::parse(v.get("role").unwrap_or(""));
    let u = user.clone();
    let page = blocking(&app, move |app| {
        let mut page = users_page(app, &u);
        let role = match role {
            Ok(r) => r,
            Err(_) => {
                page.errors.push(("role".into(), "役割を選んでください".into()));
                page.new_id = id;
                page.new_name = name;
                return Ok(page);
            }
        };
        let result = app.execute(&u.actor(), Request::AddUser { id: &id, name: &name, role }, app.today());
        let result = match result {
            Ok(outcome) => Ok(password(outcome)?),
            Err(e) => Err(e),
        };
        match result {
            Ok(password) => {
                tracing::info!(admin = %u.id, user = %id, role = role.code(), "user added");
                let mut page = users_page(app, &u);
                page.notice = Some(format!("利用者 {id} を追加しました。"));
                page.password = Some((id, password));
                Ok(page)
            }
            Err(e) => {
                let (field, message) = account_error(e)?;
                page.errors.push((field.unwrap_or("form").to_owned(), message));
                page.new_id = id;
                page.new_name = name;
                for r in &mut page.roles {
                    r.2 = r.0 == role.code();
                }
                Ok(page)
            }
        }
    })
    .await?;
    Ok(html(&page))
}

/// `POST /admin/users/{id}/disable`.
pub async fn disable(
    State(app): State<Arc<App>>,
    user: CurrentUser,
    Path(id): Path<String>,
    form: FormPairs,
) -> AppResult<Response> {
    let v = values(form);
    user.check_csrf(v.get("csrf"))?;
    user.require(Permission::Users)?;
    let u = user.clone();
    let page = blocking(&app, move |app| {
        if id == u.id.as_str() {
            let mut page = users_page(app, &u);
            page.errors.push(("form".into(), "ご自身は無効にできません".into()));
            return Ok(page);
        }
        let result = app.execute(&u.actor(), Request::DisableUser { id: &id }, app.today()).map(|_| ());
        let mut page = match result {
            Ok(()) => {
                app.sessions.remove_user(&id);
                tracing::info!(admin = %u.id, user = %id, "user disabled");
                let mut page = users_page(app, &u);
                page.notice = Some(format!("利用者 {id} を無効にしました。"));
                page
            }
            Err(e) => {
                let (_, message) = account_error(e)?;
                let mut page = users_page(app, &u);
                page.errors.push(("form".into(), message));
                page
            }
        };
        page.nav.current = "users";
        Ok(page)
    })
    .await?;
    Ok(html(&page))
}

/// `POST /admin/users/{id}/password`: a new generated password, shown once; the user's
/// sessions end.
pub async fn reset(
    State(app): State<Arc<App>>,
    user: CurrentUser,
    Path(id): Path<String>,
    form: FormPairs,
) -> AppResult<Response> {
    let v = values(form);
    user.check_csrf(v.get("csrf"))?;
    user.require(Permission::Users)?;
    let u = user.clone();
    let page = blocking(&app, move |app| {
        let result = app.execute(&u.actor(), Request::ResetPassword { id: &id }, app.today());
        let result = match result {
            Ok(outcome) => Ok(password(outcome)?),
            Err(e) => Err(e),
        };
        match result {
            Ok(password) => {
                app.sessions.remove_user(&id);
                tracing::info!(admin = %u.id, user = %id, "password reset");
                let mut page = users_page(app, &u);
                page.notice = Some(format!("利用者 {id} のパスワードを再発行しました。"));
                page.password = Some((id, password));
                Ok(page)
            }
            Err(e) => {
                let (_, message) = account_error(e)?;
                let mut page = users_page(app, &u);
                page.errors.push(("form".into(), message));
                Ok(page)
            }
        }
    })
    .await?;
    Ok(html(&page))
}

/// Access log filter (staff ids, internal numbers and dates: no personal data in the URL).
#[derive(Debug, Default, Deserialize)]
pub struct AccessQuery {
    pub user: Option<String>,
    pub recipient: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Recipients listed per access record (a search page names up to 50).
pub const ACCESS_RECIPIENTS_SHOWN: usize = 5;

/// One access record as listed.
pub struct AccessRow {
    pub position: u64,
    pub at: String,
    pub user: String,
    /// The recipients shown (at most [`ACCESS_RECIPIENTS_SHOWN`]; the filtered one first).
    pub recipients: Vec<u64>,
    /// How many more the record names.
    pub more: usize,
    pub page: String,
    pub action: &'static str,
    pub reason: String,
}

/// The access log page.
#[derive(Template)]
#[template(path = "access.html")]
pub struct AccessPage {
    pub nav: Nav,
    pub user: String,
    pub recipient: String,
    pub from: String,
    pub to: String,
    /// The dates in their other forms.
    pub from_echo: String,
    pub to_echo: String,
    pub errors: Vec<(String, String)>,
    pub rows: Vec<AccessRow>,
    pub limit: usize,
    /// The search stopped after this many records, newest first, with older ones unread.
    pub scan_stopped: Option<usize>,
}

impl AccessPage {
    /// The error summary at the top of the search form.
    pub fn summary(&self) -> Vec<super::ErrorLink> {
        super::summary_of(
            &self.errors,
            &[
                ("user", "利用者ID"),
                ("recipient", "受給者の内部番号"),
                ("from", "期間（から）"),
                ("to", "期間（まで）"),
            ],
        )
    }

    /// The error of a field.
    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| f == field).map(|(_, m)| m.as_str())
    }
}

/// Records shown at most.
pub const ACCESS_ROWS_MAX: usize = 500;

fn day_start_us(d: NaiveDate) -> Option<i64> {
    d.and_hms_opt(0, 0, 0)?.and_local_timezone(daicho_app::clock::JST).single().map(|t| t.timestamp_micros())
}

/// `GET /admin/access`.
pub async fn access(
    State(app): State<Arc<App>>,
    user: CurrentUser,
    Query(q): Query<AccessQuery>,
) -> AppResult<Response> {
    user.require(Permission::AccessLog)?;
    let mut errors = Vec::new();
    let mut filter = AccessFilter::default();
    let text = |s: &Option<String>| s.as_deref().unwrap_or("").trim().to_owned();
    let (u, r, from, to) = (text(&q.user), text(&q.recipient), text(&q.from), text(&q.to));
    if !u.is_empty() {
        filter.user = Some(u.clone());
    }
    if !r.is_empty() {
        match r.parse::<u64>() {
            Ok(n) => filter.recipient = Some(n),
            Err(_) => errors.push(("recipient".to_owned(), "内部番号（数字）で入力してください".to_owned())),
        }
    }
    for (name, raw, slot, offset) in [("from", &from, &mut filter.from_us, 0), ("to", &to, &mut filter.until_us, 1)] {
        if raw.is_empty() {
            continue;
        }
        match daicho_domain::calendar::parse_written_date(&app.eras, raw) {
            Ok(d) => *slot = d.checked_add_days(chrono::Days::new(offset)).and_then(day_start_us),
            Err(e) => errors.push((name.to_owned(), e.message())),
        }
    }
    let u2 = user.clone();
    let page = blocking(&app, move |app| {
        let scanned_max = app.settings.access_scanned_max;
        let mut scan_stopped = None;
        let rows = if errors.is_empty() {
            let accounts = app.accounts();
            let (found, stopped) =
                app.access.search_bounded(&filter, ACCESS_ROWS_MAX, scanned_max).map_err(AppError::internal)?;
            scan_stopped = stopped.then_some(scanned_max);
            found
                .into_iter()
                .map(|mut e| {
                    let mut recipients = std::mem::take(&mut e.record.recipients);
                    if let Some(n) = filter.recipient {
                        recipients.sort_by_key(|r| *r != n);
                    }
                    let more = recipients.len().saturating_sub(ACCESS_RECIPIENTS_SHOWN);
                    recipients.truncate(ACCESS_RECIPIENTS_SHOWN);
                    (e, recipients, more)
                })
                .map(|(e, recipients, more)| AccessRow {
                    position: e.position,
                    at: format_recorded(e.recorded_at_us),
                    user: accounts.display_name(e.record.user.as_str()),
                    recipients,
                    more,
                    page: e.record.page,
                    action: e.record.action.label(),
                    reason: e.record.reason.unwrap_or_default(),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(AccessPage {
            nav: Nav::new(&u2, &app.municipality, "access"),
            user: u,
            recipient: r,
            from_echo: crate::dates::echo(&app.eras, crate::dates::Kind::Date, &from),
            to_echo: crate::dates::echo(&app.eras, crate::dates::Kind::Date, &to),
            from,
            to,
            errors,
            rows,
            limit: ACCESS_ROWS_MAX,
            scan_stopped,
        })
    })
    .await?;
    Ok(html(&page))
}
