//! 処理の入力 (command forms): form, confirmation, record.
//!
//! 1. `GET` shows the form with a fresh idempotency key (`id`) in it.
//! 2. `POST` with `step=check` parses the form exactly as `daicho apply` parses a line and
//!    decides it against the recipient as recorded now, writing nothing. Field errors come back
//!    next to their fields; a rule's rejection at the top (and next to its field when it has one).
//!    Otherwise a confirmation page shows the values, the events that will be recorded and the
//!    PMH records that will change.
//! 3. `POST` with `step=confirm` decides again and records (a My Number link goes to a
//!    supervisor instead). The key travels with the form, so a double submit records once.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use daicho_app::submit::Preview;
use daicho_app::{CONFLICT_MESSAGE, Failure, Outcome as Executed, Refusal, Request};
use daicho_domain::command::{Command, CommandBody};
use daicho_domain::config::Config;
use daicho_domain::event::EventBody;
use daicho_domain::evolve;
use daicho_domain::ids::CommandId;
use daicho_domain::privacy::{Channel, Protection};
use daicho_domain::rescind_needs_approval;
use daicho_domain::state::State as StreamState;
use daicho_domain::users::AccessAction;
use daicho_projections::changes::RecordChange;
use daicho_projections::recipient_number;
use daicho_store::Position;

use super::recipient::current;
use super::{ErrorLink, FormPairs, see_other, values};
use crate::app::{App, blocking, random_hex};
use crate::auth::{CurrentUser, Permission};
use crate::error::{AppError, AppResult};
use crate::forms::{self, Context, Field, Form, FormError, Input, Values};
use crate::render::{Nav, html};
use crate::{dates, describe};
use daicho_app::access::record;
use daicho_app::pending::PendingLink;

/// One option of a select.
pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// One field as shown.
pub struct FieldView {
    pub name: &'static str,
    pub label: &'static str,
    pub input: &'static str,
    pub value: String,
    pub options: Vec<Opt>,
    pub checked: bool,
    pub error: Option<String>,
    pub hint: &'static str,
    pub required: bool,
    pub maxlength: usize,
    /// A date field's value in its other form (和暦 or ISO), when it reads.
    pub echo: String,
}

/// The form page.
#[derive(Template)]
#[template(path = "command_form.html")]
pub struct FormPage {
    pub nav: Nav,
    pub title: &'static str,
    pub intro: &'static str,
    pub action: String,
    pub recipient_label: String,
    pub back: String,
    pub fields: Vec<FieldView>,
    pub summary_links: Vec<ErrorLink>,
    pub id: String,
    pub needs_approval: bool,
}

impl FieldView {
    /// The ids that describe the field, for `aria-describedby`: its other form (a date), its
    /// error, its hint.
    pub fn described(&self) -> String {
        let mut ids = Vec::new();
        if self.input == "date" {
            ids.push(format!("echo-f-{}", self.name));
        }
        if self.error.is_some() {
            ids.push(format!("err-{}", self.name));
        }
        if !self.hint.is_empty() {
            ids.push(format!("hint-{}", self.name));
        }
        ids.join(" ")
    }
}

impl FormPage {
    /// The error summary at the top of the form.
    pub fn summary(&self) -> &[ErrorLink] {
        &self.summary_links
    }
}

/// One row of the confirmation.
pub struct ConfirmRow {
    pub label: &'static str,
    pub value: String,
    pub warnings: Vec<String>,
}

/// One PMH record change as shown.
pub struct ChangeRow {
    pub history_key: String,
    pub program: String,
    pub certificate: String,
    pub kind: &'static str,
    pub fields: String,
    pub period: String,
    pub outcome: String,
    pub held: bool,
}

/// The confirmation page.
#[derive(Template)]
#[template(path = "command_confirm.html")]
pub struct ConfirmPage {
    pub nav: Nav,
    pub title: &'static str,
    pub action: String,
    pub recipient_label: String,
    pub back: String,
    pub rows: Vec<ConfirmRow>,
    pub events: Vec<(String, String)>,
    pub changes: Vec<ChangeRow>,
    pub hidden: Vec<(String, String)>,
    pub needs_approval: bool,
}

/// What the form needs to know about the recipient.
struct Subject {
    n: Option<u64>,
    reference: Option<String>,
    label: String,
    state: StreamState,
    /// The person's protection at the head of the log.
    protection: Protection,
}

fn subject(app: &App, n: Option<u64>) -> AppResult<Subject> {
    let Some(n) = n else {
        return Ok(Subject {
            n: None,
            reference: None,
            label: String::new(),
            state: StreamState::default(),
            protection: Protection::none(),
        });
    };
    let (_, state) = current(app, n)?;
    let r = state.recipient().ok_or(AppError::NotFound)?;
    Ok(Subject {
        n: Some(n),
        reference: Some(r.id.to_string()),
        label: format!("{}（受給者ID {}）", r.name, r.id),
        protection: Protection::of_state(&state),
        state,
    })
}

/// Whether the command of this form waits for a second person: a My Number link, or the
/// rescind of one.
fn needs_approval(form: &Form, subject: &Subject, values: &Values) -> bool {
    form.needs_approval
        || (form.kind == "rescind"
            && CommandId::parse(values.trimmed("target")).is_ok_and(|t| rescind_needs_approval(&subject.state, &t)))
}

/// The access record of a form or confirmation page about recipient `n` (it shows the name
/// and the certificates).
async fn record_view(app: &App, user: &CurrentUser, n: Option<u64>, path: &str) -> AppResult<()> {
    let Some(n) = n else { return Ok(()) };
    let records = vec![record(&user.id, vec![n], path, AccessAction::Viewed, None)];
    app.access.record(records, app.today()).await.map_err(AppError::internal)
}

fn options(field: &Field, config: &Config, subject: &Subject, value: &str) -> Vec<Opt> {
    let mut out =
        vec![Opt { value: String::new(), label: "選択してください".into(), selected: value.is_empty() }];
    let mut push = |v: String, l: String| {
        let selected = v == value;
        out.push(Opt { value: v, label: l, selected });
    };
    match field.input {
        Input::Select(list) => {
            for (v, l) in list {
                push((*v).to_owned(), (*l).to_owned());
            }
        }
        Input::Program => {
            for p in config.programs() {
                push(p.key.to_string(), p.name.clone());
            }
        }
        Input::Certificate => {
            if let Some(r) = subject.state.recipient() {
                for c in &r.certificates {
                    let end = c.last_span().map(|s| super::end_ja(s.period.to())).unwrap_or_default();
                    let ended = c.ended.map(|e| format!("、{}で終了", e.reason.label())).unwrap_or_default();
                    push(
                        c.id.to_string(),
                        format!(
                            "{} {}（{}まで{ended}）",
                            describe::program_name(config, c.program.as_str()),
                            c.id,
                            end
                        ),
                    );
                }
            }
        }
        Input::Command => {
            for e in subject.state.history().iter().rev() {
                if e.rescinded_by.is_some()
                    || e.events.iter().any(|ev| matches!(ev.body, EventBody::CommandRescinded { .. }))
                {
                    continue;
                }
                let Some(first) = e.events.first() else { continue };
                push(e.command.to_string(), format!("{} {}（{}）", first.effective, first.label(), e.command));
            }
        }
        _ => {}
    }
    out
}

fn default_value(field: &Field, today: chrono::NaiveDate) -> String {
    match field.name {
        "effective" | "valid_from" if field.input == Input::Date => today.to_string(),
        _ => String::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn form_page(
    app: &App,
    user: &CurrentUser,
    form: &'static Form,
    subject: &Subject,
    values: &Values,
    errors: &[FormError],
    id: &str,
    config: &Config,
) -> FormPage {
    let fields: Vec<FieldView> = form
        .fields
        .iter()
        .map(|f| {
            let value = values.get(f.name).unwrap_or("").to_owned();
            let error = errors.iter().filter(|e| e.field.as_deref() == Some(f.name)).map(|e| e.message.clone()).next();
            FieldView {
                name: f.name,
                label: f.label,
                input: match f.input {
                    Input::Text => "text",
                    Input::Date => "date",
                    Input::Select(_) | Input::Program | Input::Certificate | Input::Command => "select",
                    Input::Checkbox => "checkbox",
                    Input::Lines => "textarea",
                },
                options: options(f, config, subject, &value),
                checked: value == "on",
                echo: if f.input == Input::Date {
                    dates::echo(&config.eras, dates::Kind::Date, &value)
                } else {
                    String::new()
                },
                value,
                error,
                hint: f.hint,
                required: f.required,
                maxlength: f.chars_max,
            }
        })
        .collect();
    let known: Vec<&str> = form.fields.iter().map(|f| f.name).collect();
    // The summary at the top: the fields in error in the form's order, each a link to its
    // field, then what belongs to no field of the form.
    let mut summary: Vec<ErrorLink> = fields
        .iter()
        .filter_map(|f| Some(ErrorLink::field(&format!("f-{}", f.name), f.label, f.error.as_deref()?)))
        .collect();
    summary.extend(errors.iter().filter(|e| e.field.as_deref().is_none_or(|f| !known.contains(&f))).map(|e| {
        ErrorLink { target: String::new(), label: e.field.clone().unwrap_or_default(), message: e.message.clone() }
    }));
    FormPage {
        nav: Nav::new(user, &app.municipality, if subject.n.is_none() { "new" } else { "search" }),
        title: form.title,
        intro: form.intro,
        action: action(form, subject.n),
        recipient_label: subject.label.clone(),
        back: back(subject.n),
        fields,
        summary_links: summary,
        id: id.to_owned(),
        needs_approval: form.needs_approval,
    }
}

fn action(form: &Form, n: Option<u64>) -> String {
    match n {
        Some(n) => format!("/recipients/{n}/do/{}", form.kind),
        None => "/recipients/new".to_owned(),
    }
}

fn back(n: Option<u64>) -> String {
    n.map_or_else(|| "/search".to_owned(), |n| format!("/recipients/{n}"))
}

/// A new idempotency key for a form.
pub fn new_id() -> AppResult<String> {
    Ok(format!("w-{}", random_hex(12)?))
}

/// The certificate id proposed for a grant.
fn new_certificate_id() -> AppResult<String> {
    Ok(format!("C-{}", random_hex(5)?.to_uppercase()))
}

/// `GET /recipients/new` and `GET /recipients/{n}/do/{kind}`.
async fn show_form(app: Arc<App>, user: CurrentUser, n: Option<u64>, kind: String) -> AppResult<Response> {
    user.require(Permission::Record)?;
    let form = forms::form(&kind).ok_or(AppError::NotFound)?;
    if (n.is_none()) != (form.kind == "register_recipient") {
        return Err(AppError::NotFound);
    }
    let today = app.today();
    let id = new_id()?;
    let certificate = new_certificate_id()?;
    let u = user.clone();
    let page = blocking(&app, move |app| {
        let subject = subject(app, n)?;
        let mut v: Vec<(String, String)> =
            form.fields.iter().map(|f| (f.name.to_owned(), default_value(f, today))).collect();
        if let Some(slot) = v.iter_mut().find(|(k, _)| k == "certificate")
            && form.kind == "grant_certificate"
        {
            slot.1 = certificate;
        }
        let config = app.ledger().config().clone();
        Ok(form_page(app, &u, form, &subject, &Values(v), &[], &id, &config))
    })
    .await?;
    record_view(&app, &user, n, &action(form, n)).await?;
    Ok(html(&page))
}

/// `GET /recipients/new`.
pub async fn new_form(State(app): State<Arc<App>>, user: CurrentUser) -> AppResult<Response> {
    show_form(app, user, None, "register_recipient".into()).await
}

/// `GET /recipients/{n}/do/{kind}`.
pub async fn command_form(
    State(app): State<Arc<App>>,
    user: CurrentUser,
    Path((n, kind)): Path<(u64, String)>,
) -> AppResult<Response> {
    show_form(app, user, Some(n), kind).await
}

/// `POST /recipients/new`.
pub async fn new_post(State(app): State<Arc<App>>, user: CurrentUser, form: FormPairs) -> AppResult<Response> {
    post(app, user, None, "register_recipient".into(), values(form)).await
}

/// `POST /recipients/{n}/do/{kind}`.
pub async fn command_post(
    State(app): State<Arc<App>>,
    user: CurrentUser,
    Path((n, kind)): Path<(u64, String)>,
    form: FormPairs,
) -> AppResult<Response> {
    post(app, user, Some(n), kind, values(form)).await
}

fn rejection_error(form: &Form, r: &daicho_domain::Rejection) -> Vec<FormError> {
    let mut out = vec![FormError { field: None, message: r.message() }];
    if let daicho_domain::Rejection::BasicInfoMismatch { fields } = r {
        for f in fields {
            let field = forms::mismatch_field(f).map(str::to_owned);
            out.push(FormError { field, message: format!("{f}が台帳の登録内容と一致しません") });
        }
    } else if let Some(f) = forms::rejection_field(r.code(), form.kind) {
        out.push(FormError { field: Some(f.to_owned()), message: r.message() });
        out.remove(0);
    }
    out
}

fn display(field: &Field, value: &str, change: bool, config: &Config, subject: &Subject) -> String {
    if value.is_empty() {
        return if change { "（変更なし）".into() } else { "—".into() };
    }
    match field.input {
        Input::Checkbox => "する".into(),
        Input::Select(_) | Input::Program | Input::Certificate | Input::Command => {
            options(field, config, subject, value)
                .into_iter()
                .find(|o| o.selected && !o.value.is_empty())
                .map_or_else(|| value.to_owned(), |o| o.label)
        }
        Input::Lines => value.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("、"),
        // Both forms, whatever was typed (the form reads it before the page is shown).
        Input::Date => match daicho_domain::calendar::parse_written_date(&config.eras, value) {
            Ok(d) => dates::both(&config.eras, &d.to_string()),
            Err(_) => value.to_owned(),
        },
        _ if field.name == "my_number" => match daicho_domain::numbers::MyNumber::parse(value) {
            Ok(m) => m.masked(),
            Err(_) => "（入力誤り）".into(),
        },
        _ => value.to_owned(),
    }
}

fn change_rows(changes: &[RecordChange], config: &Config) -> Vec<ChangeRow> {
    changes
        .iter()
        .map(|c| ChangeRow {
            history_key: c.history_key.clone(),
            program: describe::program_name(config, &c.program),
            certificate: c.certificate.clone(),
            kind: c.kind.label(),
            fields: c.fields.join("、"),
            period: format!("{}〜{}", c.valid_from, c.valid_to),
            outcome: if !c.held.is_empty() {
                format!("保留（{}）", c.held.iter().map(|h| h.message()).collect::<Vec<_>>().join("／"))
            } else if c.sent {
                "次回の連携で送信".into()
            } else {
                "送信なし（PMHの内容と同じ、または未送信）".into()
            },
            held: !c.held.is_empty(),
        })
        .collect()
}

enum Outcome {
    Form(FormPage),
    Confirm(ConfirmPage),
    Redirect(String),
}

/// Handles a form post.
async fn post(app: Arc<App>, user: CurrentUser, n: Option<u64>, kind: String, values: Values) -> AppResult<Response> {
    user.check_csrf(values.get("csrf"))?;
    user.require(Permission::Record)?;
    let form = forms::form(&kind).ok_or(AppError::NotFound)?;
    if (n.is_none()) != (form.kind == "register_recipient") {
        return Err(AppError::NotFound);
    }
    let id = match values.get("id") {
        Some(id) if !id.is_empty() => id.to_owned(),
        _ => new_id()?,
    };
    let step = values.get("step").unwrap_or("check").to_owned();
    let today = app.today();
    let u = user.clone();
    let outcome = blocking(&app, move |app| {
        let subject = subject(app, n)?;
        let config = app.ledger().config().clone();
        let show_form =
            |errors: &[FormError]| Outcome::Form(form_page(app, &u, form, &subject, &values, errors, &id, &config));
        if step == "edit" {
            return Ok(show_form(&[]));
        }
        let approval = needs_approval(form, &subject, &values);
        // A rescind waiting for approval is decided with a stand-in approver, as a link is.
        let approver = (approval && form.kind == "rescind").then_some(forms::PENDING_APPROVER);
        let ctx = Context {
            id: &id,
            actor: u.id.as_str(),
            recipient: subject.reference.as_deref(),
            approver,
            eras: &config.eras,
        };
        let cmd = match forms::parse(form, &values, &ctx) {
            Ok(cmd) => cmd,
            Err(errors) => return Ok(show_form(&errors)),
        };
        let actor = u.actor();
        let previewed = app.preview(&actor, &cmd, today)?;
        let (before, stream, version, events) = match previewed {
            Preview::Rejected(r) => return Ok(show_form(&rejection_error(form, &r))),
            Preview::AlreadyApplied { position } => {
                return Ok(Outcome::Redirect(done_location(app, &cmd, n, position)?));
            }
            Preview::Would { before, stream, version, events } => (before, stream, version, events),
        };
        if step == "confirm" {
            if approval {
                let n = n.ok_or(AppError::NotFound)?;
                // Dates are kept as the ISO dates they were read as (the approver compares them
                // with the resident record's, and the approval parses them again).
                let fields: Vec<(String, String)> = form
                    .fields
                    .iter()
                    .map(|f| {
                        let raw = values.get(f.name).unwrap_or("");
                        let value = match f.input {
                            Input::Date => daicho_domain::calendar::parse_written_date(&config.eras, raw)
                                .map_or_else(|_| raw.to_owned(), |d| d.to_string()),
                            _ => raw.to_owned(),
                        };
                        (f.name.to_owned(), value)
                    })
                    .collect();
                // A second submit of the same form finds its request; a request is never
                // replaced, and its id is the server's, not the form's.
                let link = PendingLink {
                    id: new_id()?,
                    form_key: id.clone(),
                    kind: form.kind.to_owned(),
                    recipient: n,
                    requested_by: u.id.to_string(),
                    requested_at_us: crate::app::now().timestamp_micros(),
                    fields,
                };
                match app.execute(&actor, Request::AskApproval { link }, today) {
                    Ok(_) => {}
                    Err(Failure::Rejected(r @ Refusal::AlreadyRequested)) => {
                        return Ok(show_form(&[FormError { field: None, message: r.to_string() }]));
                    }
                    Err(e) => return Err(e.into()),
                }
                tracing::info!(user = %u.id, recipient = n, kind = form.kind, "sent for approval");
                return Ok(Outcome::Redirect(format!("/recipients/{n}?requested=1")));
            }
            // The version the confirmation page was made at: a record changed since is a
            // conflict, not something to decide again behind the caseworker's back.
            let seen = match values.get("seen") {
                None | Some("") => None,
                Some(v) => {
                    Some(v.parse::<u64>().map_err(|_| AppError::BadRequest("画面を開き直してください。".into()))?)
                }
            };
            return match app.execute(&actor, Request::Recipient { command: &cmd, seen }, today) {
                Ok(Executed::Recorded { position, .. } | Executed::AlreadyApplied { position }) => {
                    Ok(Outcome::Redirect(done_location(app, &cmd, n, position)?))
                }
                Ok(other) => Err(AppError::internal(format!("unexpected outcome {other:?}"))),
                Err(Failure::Rejected(Refusal::Rule(r))) => Ok(show_form(&rejection_error(form, &r))),
                Err(Failure::Conflict) => {
                    tracing::info!(user = %u.id, command = %cmd.id, "lost a concurrent change; nothing written");
                    // The form again, as entered: confirming it again decides on the record as
                    // it is now.
                    Ok(show_form(&[FormError { field: None, message: format!("{CONFLICT_MESSAGE}。") }]))
                }
                Err(e) => Err(e.into()),
            };
        }
        let mut ledger = app.ledger();
        // The confirmation.
        let after = events.iter().fold(*before, evolve);
        let internal = stream.as_deref().and_then(recipient_number);
        let projections = ledger.projections().map_err(AppError::internal)?;
        let changes = projections.record_changes(&config, internal, after.recipient()).map_err(AppError::internal)?;
        drop(ledger);
        Ok(Outcome::Confirm(confirm_page(
            app,
            &u,
            form,
            &subject,
            &values,
            &cmd,
            &events,
            &changes,
            &config,
            (&id, version),
            approval,
        )))
    })
    .await?;
    if !matches!(outcome, Outcome::Redirect(_)) {
        record_view(&app, &user, n, &action(form, n)).await?;
    }
    Ok(match outcome {
        Outcome::Form(page) => html(&page),
        Outcome::Confirm(page) => html(&page),
        Outcome::Redirect(to) => see_other(&to),
    })
}

/// Where to go after recording: the recipient's page (found by its caller id for a new one).
fn done_location(app: &App, cmd: &Command, n: Option<u64>, position: Position) -> AppResult<String> {
    let n = match n {
        Some(n) => n,
        None => app
            .store
            .stream_for_key(daicho_app::ledger::RECIPIENT_CATEGORY, cmd.recipient.as_str())
            .map_err(AppError::internal)?
            .and_then(|s| recipient_number(s.as_str()))
            .ok_or_else(|| AppError::internal("recorded recipient has no stream"))?,
    };
    Ok(format!("/recipients/{n}?recorded={position}"))
}

#[allow(clippy::too_many_arguments)]
fn confirm_page(
    app: &App,
    user: &CurrentUser,
    form: &'static Form,
    subject: &Subject,
    values: &Values,
    cmd: &Command,
    events: &[daicho_domain::event::Event],
    changes: &[RecordChange],
    config: &Config,
    (id, version): (&str, u64),
    needs_approval: bool,
) -> ConfirmPage {
    let change = matches!(cmd.body, CommandBody::RenewCertificate { .. } | CommandBody::ChangeCertificate { .. })
        || matches!(cmd.body, CommandBody::ChangePersonalDetails { .. });
    let warnings = cmd.warnings();
    let rows = form
        .fields
        .iter()
        .filter(|f| !(f.input == Input::Checkbox && values.get(f.name) != Some("on") && f.name.starts_with("clear_")))
        .map(|f| {
            let raw = values.trimmed(f.name);
            let raw = if f.input == Input::Lines { values.get(f.name).unwrap_or("") } else { raw };
            ConfirmRow {
                label: f.label,
                value: display(f, raw, change && f.name != "effective" && f.name != "certificate", config, subject),
                warnings: warnings
                    .iter()
                    .filter(|w| forms::form_field(w.field).as_deref() == Some(f.name))
                    .map(|w| w.message())
                    .collect(),
            }
        })
        .collect();
    let view = user.view(subject.protection.clone(), Channel::Screen);
    let events =
        events.iter().map(|e| (format!("{} {}", e.effective, e.label()), describe::event(e, config, &view))).collect();
    let mut hidden: Vec<(String, String)> =
        form.fields.iter().map(|f| (f.name.to_owned(), values.get(f.name).unwrap_or("").to_owned())).collect();
    hidden.push(("id".into(), id.to_owned()));
    hidden.push(("seen".into(), version.to_string()));
    ConfirmPage {
        nav: Nav::new(user, &app.municipality, if subject.n.is_none() { "new" } else { "search" }),
        title: form.title,
        action: action(form, subject.n),
        recipient_label: subject.label.clone(),
        back: back(subject.n),
        rows,
        events,
        changes: change_rows(changes, config),
        hidden,
        needs_approval,
    }
}
