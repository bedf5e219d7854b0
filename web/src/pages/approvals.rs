//! 承認待ち (approvals): My Number links and corrections entered by a caseworker, and rescinds of
//! them, approved or sent back by a supervisor who is not the one who entered them. The approver
//! sees the full number to check it against the documents: that is a reveal, and it is logged.
//!
//! What is approved is exactly what was shown: each approve button carries a digest of its
//! request as the page showed it (the numbers, the ledger's and the resident record's items, the
//! rescind's target), and the approval is refused when the request or the ledger now shows
//! something else.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use daicho_app::{CONFLICT_MESSAGE, Failure, Outcome, Refusal, Request};
use daicho_domain::event::EventBody;
use daicho_domain::ids::CommandId;
use daicho_domain::numbers::MyNumber;
use daicho_domain::privacy::Channel;
use daicho_domain::users::AccessAction;
use sha2::{Digest, Sha256};

use super::recipient::{current, view_of};
use super::{FormPairs, see_other, values};
use crate::app::{App, blocking, format_recorded};
use crate::auth::{CurrentUser, Permission};
use crate::error::{AppError, AppResult};
use crate::forms::{self, Context, Values};
use crate::render::{Nav, html};
use daicho_app::access::record;
use daicho_app::pending::PendingLink;

/// One pending request as shown.
pub struct Row {
    pub id: String,
    pub n: u64,
    /// What is asked: 個人番号の登録, 個人番号の訂正, or the 取消 of one.
    pub what: &'static str,
    pub recipient_label: String,
    pub requested_by: String,
    pub requested_at: String,
    pub own: bool,
    pub my_number: String,
    /// (label, registered value, resident-record value, same).
    pub items: Vec<(&'static str, String, String, bool)>,
    /// (label, value): the rescind's target and reason.
    pub details: Vec<(&'static str, String)>,
    /// Digest of everything above, as shown (hex).
    pub digest: String,
    /// Whether a protected address was shown.
    protected_shown: bool,
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

/// The row of `link` as `user` sees it; `None` when its recipient is gone (a rescinded
/// registration).
fn row(app: &App, user: &CurrentUser, link: &PendingLink) -> AppResult<Option<Row>> {
    // A date as the request holds it, read as the form read it (ISO; a request stored before
    // dates were kept as ISO may hold 和暦).
    let iso = |typed: &str| {
        daicho_domain::calendar::parse_written_date(&app.eras, typed)
            .map_or_else(|_| typed.to_owned(), |d| d.to_string())
    };
    let accounts = app.accounts().clone();
    let v = Values(link.fields.clone());
    let (loaded, state) = current(app, link.recipient)?;
    let Some(r) = state.recipient() else { return Ok(None) };
    let view = view_of(user, &loaded, Channel::Screen);
    let own = link.requested_by == user.id.as_str();
    // The approver sees the number in full (a reveal, logged); one's own request masked.
    let number = |raw: &str| MyNumber::parse(raw).map_or_else(|_| "（入力誤り）".into(), |m| view.my_number(&m, !own));
    let (what, my_number, items, details) = if link.kind == "rescind" {
        let target = CommandId::parse(v.trimmed("target")).ok();
        let entry = target.as_ref().and_then(|t| state.entry(t));
        let undone = entry
            .and_then(|e| {
                e.events.iter().find_map(|ev| match &ev.body {
                    EventBody::MyNumberLinked { my_number, .. } | EventBody::MyNumberCorrected { my_number, .. } => {
                        Some((ev.effective, ev.label(), view.my_number(my_number, !own)))
                    }
                    _ => None,
                })
            })
            .map(|(effective, label, m)| (format!("{effective} {label}（処理 {}）", v.trimmed("target")), m));
        let (target_text, m) = match undone {
            Some((text, m)) => (text, m),
            None => ("（対象の記録がありません）".to_owned(), "—".to_owned()),
        };
        let details = vec![
            ("取り消す処理", target_text),
            ("取消理由", v.trimmed("reason").to_owned()),
            ("発生日", iso(v.trimmed("effective"))),
        ];
        ("個人番号の登録・訂正の取消", m, Vec::new(), details)
    } else {
        let mut items: Vec<(&'static str, String, String, bool)> = [
            ("氏名", r.name.to_string(), v.trimmed("resident_name").to_owned()),
            ("生年月日", r.birth_date.to_string(), iso(v.trimmed("resident_birth_date"))),
            ("性別", r.sex.code().to_owned(), v.trimmed("resident_sex").to_owned()),
        ]
        .into_iter()
        .map(|(label, a, b)| {
            let same = a == b;
            (label, a, b, same)
        })
        .collect();
        // The typed address is a guess at a possibly protected one: both sides through the policy.
        let typed = v.trimmed("resident_address"); // privacy: shown only through view.place below
        let same = r.address.as_str() == typed; // privacy: compared, not shown
        items.push(("住所", view.place(r.address.as_str()).to_owned(), view.place(typed).to_owned(), same));
        // Whether this records a first number or replaces one, and which: part of what is approved.
        let (what, current) = match &r.my_number {
            None => ("個人番号の登録", "未登録".to_owned()),
            Some(m) => ("個人番号の訂正", view.my_number(m, false)),
        };
        (what, number(v.trimmed("my_number")), items, vec![("現在の個人番号", current)])
    };
    let mut out = Row {
        id: link.id.clone(),
        n: link.recipient,
        what,
        recipient_label: format!("{}（受給者ID {}）", r.name, r.id),
        requested_by: accounts.display_name(&link.requested_by),
        requested_at: format_recorded(link.requested_at_us),
        own,
        my_number,
        items,
        details,
        digest: String::new(),
        protected_shown: view.shows_protected(),
    };
    out.digest = digest(&out, link);
    Ok(Some(out))
}

/// SHA-256 over what the row shows and what will be recorded, each part length-prefixed.
fn digest(row: &Row, link: &PendingLink) -> String {
    let mut h = Sha256::new();
    let mut part = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    for s in [row.id.as_str(), &row.n.to_string(), row.what, &row.recipient_label, &row.requested_by, &row.my_number] {
        part(s);
    }
    for (label, a, b, same) in &row.items {
        for s in [*label, a.as_str(), b.as_str(), if *same { "1" } else { "0" }] {
            part(s);
        }
    }
    for (label, value) in &row.details {
        part(label);
        part(value);
    }
    part(&link.kind);
    for (k, v) in &link.fields {
        part(k);
        part(v);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

async fn render(
    app: &Arc<App>,
    user: CurrentUser,
    notice: Option<String>,
    error: Option<String>,
) -> AppResult<Response> {
    let u = user.clone();
    let rows = blocking(app, move |app| {
        let mut rows = Vec::new();
        for link in app.pending()?.all().map_err(AppError::internal)? {
            if let Some(r) = row(app, &u, &link)? {
                rows.push(r);
            }
        }
        Ok(rows)
    })
    .await?;
    // Every person shown is in one record; each number shown in full, and each protected address
    // shown, in one of its own.
    let mut records = Vec::new();
    if !rows.is_empty() {
        records.push(record(&user.id, rows.iter().map(|r| r.n).collect(), "/approvals", AccessAction::Viewed, None));
    }
    for r in rows.iter().filter(|r| !r.own) {
        records.push(record(
            &user.id,
            vec![r.n],
            "/approvals",
            AccessAction::MyNumberRevealed,
            Some("承認のための確認".into()),
        ));
    }
    for r in rows.iter().filter(|r| r.protected_shown) {
        records.push(record(&user.id, vec![r.n], "/approvals", AccessAction::ProtectedAddressShown, None));
    }
    app.access.record(records, app.today()).await.map_err(AppError::internal)?;
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

/// Shown when the approved page no longer matches the request or the ledger.
pub const CHANGED_SINCE_SHOWN: &str =
    "表示した後に依頼または台帳の内容が変わったため、承認しませんでした。表示し直した内容を確認してください。";

/// `POST /approvals/{id}/approve`: records the request with the caseworker as actor and the
/// supervisor as approver, when the page it was approved on showed what it holds now.
pub async fn approve(
    State(app): State<Arc<App>>,
    user: CurrentUser,
    Path(id): Path<String>,
    form: FormPairs,
) -> AppResult<Response> {
    let v = values(form);
    user.check_csrf(v.get("csrf"))?;
    user.require(Permission::Approve)?;
    let shown_digest = v.trimmed("digest").to_owned();
    let today = app.today();
    let u = user.clone();
    let result = blocking(&app, move |app| {
        let link = app.pending()?.get(&id).map_err(AppError::internal)?.ok_or(AppError::NotFound)?;
        if link.requested_by == u.id.as_str() {
            return Ok(Err("ご自身が入力した依頼は承認できません。別の係長に依頼してください。".to_owned()));
        }
        let Some(shown) = row(app, &u, &link)? else { return Err(AppError::NotFound) };
        if shown.digest != shown_digest {
            tracing::warn!(approver = %u.id, recipient = link.recipient, "approval of a request not as shown refused");
            return Ok(Err(CHANGED_SINCE_SHOWN.to_owned()));
        }
        let (loaded, state) = current(app, link.recipient)?;
        // What the digest was checked against: a change recorded after this is a conflict.
        let seen = loaded.envelopes.last().map_or(0, |e| e.stream_version);
        let r = state.recipient().ok_or(AppError::NotFound)?;
        let form = forms::form(&link.kind).ok_or(AppError::NotFound)?;
        let reference = r.id.to_string();
        let config = app.config();
        let ctx = Context {
            id: &link.id,
            actor: &link.requested_by,
            recipient: Some(&reference),
            approver: Some(u.id.as_str()),
            eras: &config.eras,
        };
        let cmd = match forms::parse(form, &Values(link.fields.clone()), &ctx) {
            Ok(cmd) => cmd,
            Err(errors) => {
                let m: Vec<String> = errors.iter().map(|e| e.message.clone()).collect();
                return Ok(Err(format!("依頼の内容に誤りがあります: {}", m.join("／"))));
            }
        };
        match app.execute(&u.actor(), Request::Approve { request: &link.id, command: &cmd, seen: Some(seen) }, today) {
            Ok(Outcome::Recorded { position, .. } | Outcome::AlreadyApplied { position }) => {
                tracing::info!(approver = %u.id, recipient = link.recipient, position = position.0, "request approved");
                Ok(Ok(position))
            }
            Ok(other) => Err(AppError::internal(format!("unexpected outcome {other:?}"))),
            Err(Failure::Rejected(Refusal::Rule(r))) => Ok(Err(format!("記録できません: {}", r.message()))),
            Err(Failure::Rejected(r @ (Refusal::RequesterCannotRecord | Refusal::NoSuchRequest))) => {
                Ok(Err(r.to_string()))
            }
            Err(Failure::Conflict) => Ok(Err(format!("{CONFLICT_MESSAGE}。"))),
            Err(e) => Err(e.into()),
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
        match app.execute(&u.actor(), Request::SendBack { request: &id }, app.today()) {
            Ok(_) => {}
            Err(Failure::Rejected(Refusal::NoSuchRequest)) => return Err(AppError::NotFound),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(user = %u.id, "request sent back");
        Ok(())
    })
    .await?;
    Ok(see_other("/approvals?returned=1"))
}
