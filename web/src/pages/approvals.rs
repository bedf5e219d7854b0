//! 承認待ち (approvals): My Number links entered by a caseworker, approved or sent back by a
//! supervisor who is not the one who entered them. The approver sees the full number to check it
//! against the documents: that is a reveal, and it is logged.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use daicho_domain::numbers::MyNumber;
use daicho_domain::users::AccessAction;
use daicho_projections::submit::{Submitted, submit};

use super::recipient::{address_visible, current};
use super::{FormPairs, see_other, values};
use crate::access::record;
use crate::app::{App, blocking, format_recorded};
use crate::auth::{CurrentUser, Permission};
use crate::describe::HIDDEN_ADDRESS;
use crate::error::{AppError, AppResult};
use crate::forms::{self, Context, Values};
use crate::render::{Nav, html};

/// One pending link as shown.
pub struct Row {
    pub id: String,
    pub n: u64,
    pub recipient_label: String,
    pub requested_by: String,
    pub requested_at: String,
    pub own: bool,
    pub my_number: String,
    /// (label, registered value, resident-record value, same).
    pub items: Vec<(&'static str, String, String, bool)>,
}

/// The page.
#[derive(Template)]
#[template(path = "approvals.html")]
pub struct ApprovalsPage {
    pub nav: Nav,
    pub rows: Vec<Row>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

async fn render(
    app: &Arc<App>,
    user: CurrentUser,
    notice: Option<String>,
    error: Option<String>,
) -> AppResult<Response> {
    let u = user.clone();
    let rows = blocking(app, move |app| {
        let accounts = app.accounts().clone();
        let mut rows = Vec::new();
        for link in app.pending.all().map_err(AppError::internal)? {
            let v = Values(link.fields.clone());
            let (_, state) = current(app, link.recipient)?;
            let Some(r) = state.recipient() else { continue };
            let show_address = address_visible(&u, r);
            let address = |a: &str| if show_address { a.to_owned() } else { HIDDEN_ADDRESS.to_owned() };
            let items = vec![
                ("氏名", r.name.to_string(), v.trimmed("resident_name").to_owned()),
                ("生年月日", r.birth_date.to_string(), v.trimmed("resident_birth_date").to_owned()),
                ("性別", r.sex.code().to_owned(), v.trimmed("resident_sex").to_owned()),
                ("住所", r.address.to_string(), v.trimmed("resident_address").to_owned()),
            ]
            .into_iter()
            .map(|(label, a, b)| {
                let same = a == b;
                if label == "住所" { (label, address(&a), address(&b), same) } else { (label, a, b, same) }
            })
            .collect();
            rows.push(Row {
                id: link.id.clone(),
                n: link.recipient,
                recipient_label: format!("{}（受給者ID {}）", r.name, r.id),
                requested_by: accounts.display_name(&link.requested_by),
                requested_at: format_recorded(link.requested_at_us),
                own: link.requested_by == u.id.as_str(),
                my_number: MyNumber::parse(v.trimmed("my_number"))
                    .map_or_else(|_| "（入力誤り）".into(), |m| m.reveal()),
                items,
            });
        }
        Ok(rows)
    })
    .await?;
    let records = rows
        .iter()
        .filter(|r| !r.own)
        .map(|r| {
            record(&user.id, vec![r.n], "/approvals", AccessAction::MyNumberRevealed, Some("承認のための確認".into()))
        })
        .collect();
    app.access.record(records, app.today()).await.map_err(AppError::internal)?;
    let mut rows = rows;
    for r in rows.iter_mut().filter(|r| r.own) {
        // One's own request: shown masked (nothing to approve, nothing revealed).
        r.my_number = MyNumber::parse(&r.my_number).map_or_else(|_| r.my_number.clone(), |m| m.masked());
    }
    Ok(html(&ApprovalsPage { nav: Nav::new(&user, &app.municipality, "approvals"), rows, notice, error }))
}

/// Notices after a redirect (no personal data).
#[derive(Debug, Default, serde::Deserialize)]
pub struct Done {
    approved: Option<u64>,
    returned: Option<u8>,
}

/// `GET /approvals`.
pub async fn list(State(app): State<Arc<App>>, user: CurrentUser, Query(done): Query<Done>) -> AppResult<Response> {
    user.require(Permission::Approve)?;
    let notice = match (done.approved, done.returned) {
        (Some(p), _) => Some(format!("承認し、記録しました（記録位置 {p}）。")),
        (None, Some(_)) => Some("依頼を差し戻しました。".into()),
        _ => None,
    };
    render(&app, user, notice, None).await
}

/// `POST /approvals/{id}/approve`: records the link with the caseworker as actor and the
/// supervisor as approver.
pub async fn approve(
    State(app): State<Arc<App>>,
    user: CurrentUser,
    Path(id): Path<String>,
    form: FormPairs,
) -> AppResult<Response> {
    let v = values(form);
    user.check_csrf(v.get("csrf"))?;
    user.require(Permission::Approve)?;
    let today = app.today();
    let u = user.clone();
    let result = blocking(&app, move |app| {
        let link = app.pending.get(&id).map_err(AppError::internal)?.ok_or(AppError::NotFound)?;
        if link.requested_by == u.id.as_str() {
            return Ok(Err("ご自身が入力した依頼は承認できません。別の係長に依頼してください。".to_owned()));
        }
        let (_, state) = current(app, link.recipient)?;
        let r = state.recipient().ok_or(AppError::NotFound)?;
        let form = forms::form("link_my_number").ok_or(AppError::NotFound)?;
        let reference = r.id.to_string();
        let ctx = Context {
            id: &link.id,
            actor: &link.requested_by,
            recipient: Some(&reference),
            approver: Some(u.id.as_str()),
        };
        let cmd = match forms::parse(form, &Values(link.fields.clone()), &ctx) {
            Ok(cmd) => cmd,
            Err(errors) => {
                let m: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
                return Ok(Err(format!("依頼の内容に誤りがあります: {}", m.join("／"))));
            }
        };
        let mut ledger = app.ledger();
        let config = ledger.config().clone();
        match submit(&mut *ledger, &config, today, &cmd).map_err(AppError::internal)? {
            Submitted::Accepted { position, .. } | Submitted::AlreadyApplied { position } => {
                drop(ledger);
                app.pending.remove(&link.id).map_err(AppError::internal)?;
                tracing::info!(approver = %u.id, recipient = link.recipient, position, "my number link approved");
                Ok(Ok(position))
            }
            Submitted::Rejected(r) => Ok(Err(format!("記録できません: {}", r.message()))),
        }
    })
    .await?;
    match result {
        Ok(position) => Ok(see_other(&format!("/approvals?approved={position}"))),
        Err(error) => render(&app, user, None, Some(error)).await,
    }
}

/// `POST /approvals/{id}/reject`: sends the request back (it is removed; the caseworker enters
/// it again when corrected).
pub async fn reject(
    State(app): State<Arc<App>>,
    user: CurrentUser,
    Path(id): Path<String>,
    form: FormPairs,
) -> AppResult<Response> {
    let v = values(form);
    user.check_csrf(v.get("csrf"))?;
    user.require(Permission::Approve)?;
    let u = user.clone();
    blocking(&app, move |app| {
        app.pending.get(&id).map_err(AppError::internal)?.ok_or(AppError::NotFound)?;
        app.pending.remove(&id).map_err(AppError::internal)?;
        tracing::info!(user = %u.id, "my number link sent back");
        Ok(())
    })
    .await?;
    Ok(see_other("/approvals?returned=1"))
}
