//! 運営費明細 (the monthly PMH operating-fee statement): choose a month and a counting policy,
//! see the statement and its 12-month chart, download its files, close the month
//! (supervisors), and set the fee schedule (administrators).
//!
//! The statement is computed on each view: a draft at the head for an open month, the closed
//! statement at its closing position for a closed one (the same bytes as when it was closed).

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use daicho_app::billing::{BillingError, StatementFiles, file_names};
use daicho_domain::billing::{self, BillingRejection, Month, Policy};
use daicho_domain::users::AccessAction;
use daicho_projections::fee::{Adjustment, Status, SummaryRow};
use daicho_projections::fee_report::trend_svg;
use serde::Deserialize;

use super::{FormPairs, attachment, file_body, file_sha256, see_other, values};
use crate::app::{App, blocking, format_recorded, random_hex};
use crate::auth::{CurrentUser, Permission};
use crate::error::{AppError, AppResult};
use crate::render::{Nav, html};
use daicho_app::access::record;
use daicho_app::{Failure, Outcome, Refusal, Request};

/// One policy's count on the page.
pub struct PolicyRow {
    pub code: &'static str,
    pub label: &'static str,
    pub count: u64,
    pub billed: bool,
}

/// The page.
#[derive(Template)]
#[template(path = "billing.html")]
pub struct BillingPage {
    pub nav: Nav,
    pub month: String,
    pub month_label: String,
    pub month_error: Option<String>,
    /// The month in its other form (和暦).
    pub month_echo: String,
    /// The schedule form's start month as typed (after an error) and its other form.
    pub from_month: String,
    pub from_echo: String,
    pub unit_typed: String,
    /// The schedule form's field in error (`from`, `unit` or none).
    pub schedule_field: &'static str,
    pub policy_error: Option<String>,
    pub policy: &'static str,
    pub policies: Vec<(&'static str, &'static str, bool)>,
    pub notice: Option<String>,
    pub close_error: Option<String>,
    pub schedule_error: Option<String>,
    /// Everything below is absent when the month could not be read.
    pub statement: Option<StatementView>,
    pub schedule: Vec<(String, u32)>,
    pub closed: Vec<(String, &'static str, i64, String, String)>,
    pub can_close: bool,
    pub can_schedule: bool,
}

/// The statement as shown.
pub struct StatementView {
    pub closed: bool,
    pub position: u64,
    pub chain_head: String,
    pub recorded_at: String,
    pub unit_yen: Option<u32>,
    pub counts: Vec<PolicyRow>,
    pub units: u64,
    pub month_yen: u64,
    pub summary: Vec<SummaryRow>,
    pub detail_lines: u64,
    pub adjustments: Vec<Adjustment>,
    pub adjustment_note: Option<String>,
    pub adjustment_yen: i64,
    pub total_yen: i64,
    pub chart: String,
    pub files: Vec<(String, String)>,
    pub matches_closed: Option<bool>,
    pub closable: bool,
}

/// The query of `GET /billing`.
#[derive(Debug, Default, Deserialize)]
pub struct Choice {
    month: Option<String>,
    policy: Option<String>,
    closed: Option<u8>,
    scheduled: Option<u8>,
}

/// What went wrong with a form, by field.
#[derive(Default)]
struct Messages {
    month: Option<String>,
    close: Option<String>,
    schedule: Option<String>,
    notice: Option<String>,
    /// The schedule's start month as typed, kept after an error.
    from_month: String,
    unit: String,
    /// The schedule form's field in error: `from` or `unit` (none: the whole entry).
    schedule_field: &'static str,
    policy: Option<String>,
}

fn default_month(app: &App) -> Month {
    Month::of(app.today()).prev()
}

impl BillingPage {
    /// The error summary at the top of the page.
    pub fn summary(&self) -> Vec<super::ErrorLink> {
        let mut links = Vec::new();
        if let Some(e) = &self.month_error {
            links.push(super::ErrorLink::field("f-month", "対象月", e));
        }
        if let Some(e) = &self.policy_error {
            links.push(super::ErrorLink::field("f-policy", "計上方針", e));
        }
        if let Some(e) = &self.schedule_error {
            match self.schedule_field {
                "from" => links.push(super::ErrorLink::field("f-from", "開始月", e)),
                "unit" => links.push(super::ErrorLink::field("f-unit", "単価", e)),
                _ => links
                    .push(super::ErrorLink { target: String::new(), label: "料金表".into(), message: e.clone() }),
            }
        }
        links
    }
}

fn parse_policy(raw: Option<&str>) -> Result<Option<Policy>, String> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(p) => Policy::parse(p).map(Some).map_err(|_| "計上方針を選んでください".to_owned()),
    }
}

fn month_message(e: &str) -> String {
    format!("対象月: {e}")
}

fn render_page(
    app: &App,
    user: &CurrentUser,
    month_raw: &str,
    policy: Option<Policy>,
    mut messages: Messages,
) -> AppResult<BillingPage> {
    let month = crate::dates::month(&app.eras, month_raw);
    if let Err(e) = &month {
        messages.month = Some(month_message(e));
    }
    // Catch up under the lock; compute without it (a large register takes seconds to scan).
    let fees = app.ledger().fee_reader().map_err(AppError::internal)?;
    let log = fees.log().map_err(AppError::internal)?;
    let statement = match month {
        Ok(m) => match fees.statement(m, policy) {
            Ok(files) => Some((m, files)),
            Err(BillingError::Rejected(r)) => {
                messages.month = Some(r.to_string());
                None
            }
            Err(e) => return Err(AppError::internal(e)),
        },
        Err(_) => None,
    };
    let accounts = app.accounts();
    let closed = log
        .closed
        .iter()
        .rev()
        .map(|(m, c)| {
            let (actor, _, at) = log.closed_by.get(m).cloned().unwrap_or_default();
            (m.to_string(), c.policy.code(), c.total_yen, accounts.display_name(&actor), format_recorded(at))
        })
        .collect();
    let today = app.today();
    let billed_policy = statement.as_ref().map(|(_, f)| f.statement.policy);
    let view = statement.map(|(m, f): (Month, StatementFiles)| {
        let s = f.statement;
        let closed = s.status == Status::Closed;
        StatementView {
            closed,
            position: s.position,
            chain_head: s.chain_head.clone(),
            recorded_at: format_recorded(s.recorded_at_us),
            unit_yen: s.unit_yen,
            counts: Policy::ALL
                .iter()
                .zip(&s.counts)
                .map(|(p, (_, c))| PolicyRow {
                    code: p.code(),
                    label: p.label_ja(),
                    count: *c,
                    billed: p.code() == s.policy,
                })
                .collect(),
            units: s.units,
            month_yen: s.month_yen,
            chart: trend_svg(&s),
            summary: s.summary,
            detail_lines: s.detail_lines,
            adjustments: s.adjustments,
            adjustment_note: s.adjustment_note,
            adjustment_yen: s.adjustment_yen,
            total_yen: s.total_yen,
            files: f.files.into_iter().map(|x| (x.name, x.sha256)).collect(),
            matches_closed: f.matches_closed,
            closable: !closed && m.last_day() < today && s.unit_yen.is_some(),
        }
    });
    let policy_code = billed_policy.or(policy.map(Policy::code)).unwrap_or(Policy::PersonsOverlapping.code());
    Ok(BillingPage {
        nav: Nav::new(user, &app.municipality, "billing"),
        // The month as read (a 和暦 month shows as YYYY-MM, its era form beside it), or what
        // was typed when it does not read.
        month: month.as_ref().map_or_else(|_| month_raw.trim().to_owned(), Month::to_string),
        month_echo: month
            .as_ref()
            .ok()
            .and_then(|m| crate::dates::read(&app.eras, crate::dates::Kind::Month, &m.to_string()).ok())
            .map(|r| r.wareki)
            .unwrap_or_default(),
        from_month: messages.from_month.clone(),
        from_echo: crate::dates::echo(&app.eras, crate::dates::Kind::Month, &messages.from_month),
        unit_typed: messages.unit.clone(),
        schedule_field: messages.schedule_field,
        policy_error: messages.policy.clone(),
        month_label: month.map(Month::label_ja).unwrap_or_default(),
        month_error: messages.month,
        policy: policy_code,
        policies: Policy::ALL.iter().map(|p| (p.code(), p.label_ja(), p.code() == policy_code)).collect(),
        notice: messages.notice,
        close_error: messages.close,
        schedule_error: messages.schedule,
        statement: view,
        schedule: log.schedule.entries().map(|(m, y)| (m.to_string(), y)).collect(),
        closed,
        can_close: user.can(Permission::BillingClose),
        can_schedule: user.can(Permission::FeeSchedule),
    })
}

/// `GET /billing`.
pub async fn page(State(app): State<Arc<App>>, user: CurrentUser, Query(choice): Query<Choice>) -> AppResult<Response> {
    user.require(Permission::BillingView)?;
    let u = user.clone();
    let page = blocking(&app, move |app| {
        let month = choice.month.clone().unwrap_or_else(|| default_month(app).to_string());
        let mut messages = Messages::default();
        let policy = parse_policy(choice.policy.as_deref()).unwrap_or_else(|e| {
            messages.policy = Some(e);
            None
        });
        messages.notice = match (choice.closed, choice.scheduled) {
            (Some(_), _) => Some("月を締めました。この明細は確定し、今後変わりません。".into()),
            (None, Some(_)) => Some("料金表を記録しました。".into()),
            _ => None,
        };
        render_page(app, &u, &month, policy, messages)
    })
    .await?;
    Ok(html(&page))
}

/// `POST /billing/close`: close the month under the chosen policy.
pub async fn close(State(app): State<Arc<App>>, user: CurrentUser, form: FormPairs) -> AppResult<Response> {
    let v = values(form);
    user.check_csrf(v.get("csrf"))?;
    user.require(Permission::BillingClose)?;
    let month_raw = v.trimmed("month").to_owned();
    let policy_raw = v.get("policy").map(str::to_owned);
    let today = app.today();
    let u = user.clone();
    let outcome = blocking(&app, move |app| {
        let policy = parse_policy(policy_raw.as_deref()).ok().flatten().unwrap_or(Policy::PersonsOverlapping);
        let month = match crate::dates::month(&app.eras, &month_raw) {
            Ok(m) => m,
            Err(e) => {
                let messages = Messages { month: Some(month_message(&e)), ..Messages::default() };
                return Ok(Err(render_page(app, &u, &month_raw, Some(policy), messages)?));
            }
        };
        let closed = app.execute(&u.actor(), Request::CloseMonth { month, policy, dir: None }, today);
        match closed {
            Ok(outcome) => {
                let position = match outcome {
                    Outcome::MonthClosed { position, .. } => position,
                    other => return Err(AppError::internal(format!("unexpected outcome {other:?}"))),
                };
                tracing::info!(user = %u.id, month = %month, position = position.0, "billing month closed");
                Ok(Ok(format!("/billing?month={month}&closed=1")))
            }
            Err(Failure::Infrastructure(e)) => Err(AppError::internal(e)),
            Err(Failure::Rejected(Refusal::Forbidden { .. })) => Err(AppError::Forbidden),
            Err(e) => {
                let messages = Messages { close: Some(e.to_string()), ..Messages::default() };
                Ok(Err(render_page(app, &u, &month_raw, Some(policy), messages)?))
            }
        }
    })
    .await?;
    Ok(match outcome {
        Ok(location) => see_other(&location),
        Err(page) => html(&page),
    })
}

/// `POST /billing/schedule`: a fee schedule entry (administrators).
pub async fn schedule(State(app): State<Arc<App>>, user: CurrentUser, form: FormPairs) -> AppResult<Response> {
    let v = values(form);
    user.check_csrf(v.get("csrf"))?;
    user.require(Permission::FeeSchedule)?;
    let month_raw = v.trimmed("month").to_owned();
    let from_raw = v.trimmed("from_month").to_owned();
    let unit_raw = v.trimmed("unit_yen").to_owned();
    let today = app.today();
    let u = user.clone();
    let outcome = blocking(&app, move |app| {
        // Back to the month shown, as read (never the raw text in a redirect).
        let back = crate::dates::month(&app.eras, &month_raw).unwrap_or_else(|_| default_month(app)).to_string();
        let from = crate::dates::month(&app.eras, &from_raw);
        let unit = unit_raw.parse::<u32>().ok().filter(|y| *y <= daicho_domain::codec::UNIT_YEN_MAX);
        let mut field = "";
        let problem = match (&from, unit) {
            (Err(e), _) => {
                field = "from";
                Some(format!("開始月: {e}"))
            }
            (_, None) => {
                field = "unit";
                Some(BillingRejection::UnitTooLarge.to_string())
            }
            (Ok(from), Some(unit)) => {
                match app.execute(&u.actor(), Request::FeeSchedule { from: *from, unit_yen: unit }, today) {
                    Ok(_) => {
                        tracing::info!(user = %u.id, from = %from, unit, "fee schedule set");
                        None
                    }
                    Err(Failure::Infrastructure(e)) => return Err(AppError::internal(e)),
                    Err(Failure::Rejected(Refusal::Forbidden { .. })) => return Err(AppError::Forbidden),
                    Err(e) => Some(e.to_string()),
                }
            }
        };
        match problem {
            None => Ok(Ok(format!("/billing?month={back}&scheduled=1"))),
            Some(message) => {
                let messages = Messages {
                    schedule: Some(message),
                    from_month: from_raw,
                    unit: unit_raw,
                    schedule_field: field,
                    ..Messages::default()
                };
                Ok(Err(render_page(app, &u, &back, None, messages)?))
            }
        }
    })
    .await?;
    Ok(match outcome {
        Ok(location) => see_other(&location),
        Err(page) => html(&page),
    })
}

/// The query of a download.
#[derive(Debug, Default, Deserialize)]
pub struct DownloadChoice {
    policy: Option<String>,
}

/// `GET /billing/{month}/{file}`: a file of the month's statement (logged), streamed from disk.
/// A closed month's files are kept in `DATA/exports/billing-YYYY-MM/` and served when they
/// hash as recorded at the closing; otherwise (missing, changed, or a draft) the statement is
/// made afresh into a directory of its own, and a closed month's is then kept.
pub async fn download(
    State(app): State<Arc<App>>,
    user: CurrentUser,
    Path((month_raw, file)): Path<(String, String)>,
    Query(choice): Query<DownloadChoice>,
) -> AppResult<Response> {
    user.require(Permission::BillingView)?;
    let month = Month::parse(&month_raw).map_err(|_| AppError::NotFound)?;
    if !file_names(month).contains(&file) {
        return Err(AppError::NotFound);
    }
    let policy = parse_policy(choice.policy.as_deref()).map_err(AppError::BadRequest)?;
    let name = file.clone();
    let opened = blocking(&app, move |app| {
        let (fees, head) = {
            let mut ledger = app.ledger();
            let fees = ledger.fee_reader().map_err(AppError::internal)?;
            (fees, app.store.head().position.0)
        };
        let kept = app.exports.join(format!("billing-{month}"));
        // A draft is kept for the head it was made at: its other files, and the same download
        // again, are served without computing the statement again.
        let policy_code = policy.map_or("default", |p| p.code());
        let draft_prefix = format!("draft-{month}-");
        let draft = app.exports.join(format!("{draft_prefix}{policy_code}-{head}"));
        if let Some(closed) = fees.log().map_err(AppError::internal)?.closed.get(&month) {
            billing::statement_policy(month, policy, Some(closed.policy))
                .map_err(|r| AppError::BadRequest(r.to_string()))?;
            let recorded = closed.files.iter().find(|(n, _)| *n == name).map(|(_, sha)| sha);
            if recorded.is_some_and(|sha| file_sha256(&kept.join(&name)).is_ok_and(|h| h == *sha)) {
                return std::fs::File::open(kept.join(&name)).map_err(AppError::internal);
            }
        }
        if draft.join(&name).is_file() {
            return std::fs::File::open(draft.join(&name)).map_err(AppError::internal);
        }
        // One statement computed at a time: each reads the whole register.
        let _computing = match app.statements.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(AppError::Busy("ほかの利用者の明細を作成中です。終わってからやり直してください。".into()));
            }
        };
        let tmp = app.exports.join(format!(".billing-{}", random_hex(8)?));
        std::fs::create_dir_all(&tmp).map_err(AppError::internal)?;
        let made = match fees.statement_into(month, policy, &tmp) {
            Ok(files) => files,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(match e {
                    BillingError::Rejected(r) => AppError::BadRequest(r.to_string()),
                    e => AppError::internal(e),
                });
            }
        };
        // Open before the directory goes: an open file stays readable.
        let opened = std::fs::File::open(tmp.join(&name)).map_err(AppError::internal);
        match made.matches_closed {
            Some(true) => {
                let _ = std::fs::remove_dir_all(&kept);
                if std::fs::rename(&tmp, &kept).is_err() {
                    let _ = std::fs::remove_dir_all(&tmp);
                }
            }
            Some(false) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(AppError::internal(format!(
                    "billing {month}: the closed statement made again does not hash as recorded"
                )));
            }
            None => {
                // Drafts of this month made at an earlier head are out of date.
                if let Ok(entries) = std::fs::read_dir(&app.exports) {
                    for e in entries.filter_map(Result::ok) {
                        if e.file_name().to_string_lossy().starts_with(&draft_prefix) {
                            let _ = std::fs::remove_dir_all(e.path());
                        }
                    }
                }
                if std::fs::rename(&tmp, &draft).is_err() {
                    let _ = std::fs::remove_dir_all(&tmp);
                }
            }
        }
        opened
    })
    .await?;
    let (body, len) = file_body(tokio::fs::File::from_std(opened)).await?;
    let page = format!("/billing/{month}/{file}");
    app.access
        .record(vec![record(&user.id, Vec::new(), &page, AccessAction::Downloaded, None)], app.today())
        .await
        .map_err(AppError::internal)?;
    Ok(attachment(body, len, &file))
}
