//! 受給者画面 (the recipient page): basic information, certificates with their spans and PMH
//! status, the timeline of events, and the view of any past day as known at any past position.
//!
//! The view is computed from the log, like `daicho show`: person-level facts are those of events
//! recorded by the position that took effect by the date; certificates are those known at the
//! position. PMH status is the register's (now). What the user sees of the person (addresses,
//! places, the My Number) is the privacy policy's, from the person's protection at the head of
//! the log, whatever moment is shown.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::NaiveDate;
use daicho_app::ledger::Ledger;
use daicho_domain::calendar::legal_age;
use daicho_domain::config::Config;
use daicho_domain::event::{Event, EventBody};
use daicho_domain::evolve;
use daicho_domain::privacy::{self, Channel, Protection};
use daicho_domain::state::{Recipient, Residency, State as StreamState};
use daicho_domain::users::AccessAction;
use daicho_projections::Entry;
use daicho_projections::pmh::validate;
use daicho_store::{Envelope, StreamId};
use serde::Deserialize;

use super::{FormPairs, date_ja, end_ja, values};
use crate::app::{App, blocking, blocking_read, format_recorded};
use crate::auth::{CurrentUser, Permission};
use crate::describe;
use crate::error::{AppError, AppResult};
use crate::forms::FORMS;
use crate::render::{Nav, html};
use daicho_app::access::record;

/// Query of the recipient page (no personal data: a date, a position, a notice).
#[derive(Debug, Default, Deserialize)]
pub struct ViewQuery {
    /// 時点: the effective date to look at.
    pub as_of: Option<String>,
    /// 記録位置: the log position to look from.
    pub as_at: Option<String>,
    /// Set after recording: the position of the last event.
    pub recorded: Option<u64>,
    /// Set after a My Number link was sent for approval.
    pub requested: Option<u8>,
}

/// One span row.
pub struct SpanRow {
    pub valid_from: String,
    pub valid_to: String,
    pub payer_number: String,
    pub recipient_number: String,
    pub income_segment: String,
    pub copay: String,
    pub designated: String,
    pub disease: String,
    pub always_reimbursement: bool,
    pub on_date: bool,
    pub history_key: String,
    pub pmh_status: String,
    pub pmh_class: &'static str,
}

/// One certificate.
pub struct CertView {
    pub id: String,
    pub program: String,
    pub status: String,
    pub current: bool,
    pub reissues: usize,
    pub spans: Vec<SpanRow>,
    /// The print page, for those who may print and when a span is valid on or after the date.
    pub print: Option<String>,
}

/// One timeline row.
pub struct TimelineRow {
    pub position: u64,
    pub recorded_at: String,
    pub effective: String,
    pub label: &'static str,
    pub summary: String,
    pub actor: String,
    pub approver: String,
    pub command: String,
    pub rescinded: bool,
    pub after_view: bool,
}

/// A command the user can start from this page.
pub struct Action {
    pub kind: &'static str,
    pub title: &'static str,
}

/// The page.
#[derive(Template)]
#[template(path = "recipient.html")]
pub struct RecipientPage {
    pub nav: Nav,
    pub n: u64,
    pub reference: String,
    pub registered_on_date: bool,
    pub name: String,
    pub kana: String,
    pub birth_date: String,
    pub age: String,
    pub sex: String,
    pub address: String,
    pub address_hidden: bool,
    pub dv: bool,
    pub dv_since: String,
    pub my_number: String,
    pub has_my_number: bool,
    pub my_number_revealed: bool,
    pub can_reveal: bool,
    /// The reveal form asks for the password (not typed in this session a few minutes ago).
    pub reauth_needed: bool,
    pub residency: String,
    pub died_on: String,
    pub as_of: String,
    /// What the view date's field holds: the date, or what was typed when it did not read.
    pub as_of_field: String,
    /// The date in its other form.
    pub as_of_echo: String,
    pub as_at: u64,
    pub head: u64,
    pub is_past: bool,
    pub view_errors: Vec<super::ErrorLink>,
    pub certificates: Vec<CertView>,
    pub pmh_programs: Vec<(String, String)>,
    pub timeline: Vec<TimelineRow>,
    pub actions: Vec<Action>,
    pub notice: Option<String>,
    pub reveal_error: Option<String>,
    pub csrf: String,
    /// CP932 look-alikes PMH would show as "●", as code points (`氏名: U+FF5E → U+301C`).
    pub lookalikes: Vec<String>,
    /// The change of personal details that corrects them, as form fields, for the caseworker to
    /// confirm.
    pub correction_fields: Vec<(&'static str, String)>,
    pub correction_id: String,
}

impl RecipientPage {
    /// The errors of the view's date and position, at the top of the page.
    pub fn summary(&self) -> &[super::ErrorLink] {
        &self.view_errors
    }

    /// The error of the field whose element id is `id`.
    pub fn error(&self, id: &str) -> Option<&str> {
        self.view_errors.iter().find(|e| e.target == id).map(|e| e.message.as_str())
    }
}

/// The stream of internal recipient `n`.
pub fn stream_of(n: u64) -> AppResult<StreamId> {
    StreamId::parse(&format!("recipient-{n}")).ok_or(AppError::NotFound)
}

/// Everything the page needs from the ledger, read without the ledger lock.
pub struct Loaded {
    pub envelopes: Vec<Envelope>,
    pub events: Vec<Event>,
}

/// Reads and decodes recipient `n`'s stream; `NotFound` when it has none.
pub fn load(app: &App, n: u64) -> AppResult<Loaded> {
    let envelopes = app.store.read_stream(&stream_of(n)?).map_err(AppError::internal)?;
    if envelopes.is_empty() {
        return Err(AppError::NotFound);
    }
    let events = envelopes.iter().map(Ledger::event_of).collect::<Result<Vec<_>, _>>().map_err(AppError::internal)?;
    Ok(Loaded { envelopes, events })
}

/// The state of the stream after every event.
pub fn fold(events: &[Event]) -> StreamState {
    events.iter().fold(StreamState::default(), evolve)
}

/// Recipient `n` as recorded now.
pub fn current(app: &App, n: u64) -> AppResult<(Loaded, StreamState)> {
    let loaded = load(app, n)?;
    let state = fold(&loaded.events);
    Ok((loaded, state))
}

/// What `user` sees of the person whose whole stream (at the head) is `loaded`.
pub fn view_of(user: &CurrentUser, loaded: &Loaded, channel: Channel) -> privacy::View {
    user.view(Protection::of(&loaded.events), channel)
}

/// `hide_text`: PMH's text is not shown (it may quote a name or an address this view hides).
fn pmh_status(entry: Option<&Entry>, config: &Config, hide_text: bool) -> (String, &'static str) {
    let Some(entry) = entry else { return ("—".into(), "muted") };
    if let Some(r) = entry.refusal() {
        let text = if hide_text { "（支援措置中のため表示しません）" } else { r.message.as_str() };
        return if entry.pending() {
            (format!("PMHで不受理（第{}回）、訂正済み: 次回の連携で再送信", r.batch), "pending")
        } else {
            (format!("PMHで不受理（第{}回）: {} {text}。訂正するまで再送信しません", r.batch, r.code), "held")
        };
    }
    match (entry.current(), entry.exported()) {
        (Some(c), Some(x)) if c == x => ("送信済み".into(), "ok"),
        (Some(c), _) => {
            let reasons = validate(c, daicho_projections::pmh::program_of(config, c));
            if reasons.is_empty() {
                let what = if entry.exported().is_some() { "変更" } else { "新規" };
                (format!("未送信の{what}（次回の連携で送信）"), "pending")
            } else {
                let why: Vec<&str> = reasons.iter().map(|r| r.message()).collect();
                (format!("保留: {}", why.join("／")), "held")
            }
        }
        (None, Some(_)) => ("削除を次回送信".into(), "pending"),
        (None, None) => ("—".into(), "muted"),
    }
}

/// Builds and renders the page; records the access (and the reveal, when `reveal` has a
/// reason) before answering.
pub async fn render(
    app: &Arc<App>,
    user: CurrentUser,
    n: u64,
    query: ViewQuery,
    reveal: Option<String>,
    reveal_error: Option<String>,
) -> AppResult<Response> {
    let today = app.today();
    let u = user.clone();
    let reveal_reason = reveal.clone();
    let (page, protected_shown) = blocking_read(app, move |app| {
        let loaded = load(app, n)?;
        let head = app.store.head().position.0;
        let mut view_errors = Vec::new();
        let mut as_of_typed = None;
        let on = match query.as_of.as_deref().filter(|s| !s.is_empty()) {
            None => today,
            Some(raw) => match daicho_domain::calendar::parse_written_date(&app.eras, raw) {
                Ok(d) => d,
                Err(e) => {
                    view_errors.push(super::ErrorLink::field("as_of", "時点", &e.message()));
                    as_of_typed = Some(raw.to_owned());
                    today
                }
            },
        };
        let at = match query.as_at.as_deref().filter(|s| !s.is_empty()) {
            None => head,
            Some(raw) => match raw.parse::<u64>() {
                Ok(p) if p >= 1 && p <= head => p,
                _ => {
                    view_errors.push(super::ErrorLink::field(
                        "as_at",
                        "記録位置",
                        &format!("1から{head}までの数字で指定してください"),
                    ));
                    head
                }
            },
        };
        let (entries, last_batches, config) = {
            // Catch up under the ledger's lock, then read without it.
            let (reader, config) = {
                let mut ledger = app.ledger();
                let config = ledger.config().clone();
                (ledger.projections().map_err(AppError::internal)?.reader(), config)
            };
            let entries = reader.pmh_entries(n).map_err(AppError::internal)?;
            let mut batches = Vec::new();
            for p in config.programs() {
                batches.push((p.key.to_string(), reader.last_batch(p.key.as_str()).map_err(AppError::internal)?));
            }
            (entries, batches, config)
        };
        let known_events: Vec<&Event> =
            loaded.envelopes.iter().zip(&loaded.events).filter(|(e, _)| e.position.0 <= at).map(|(_, ev)| ev).collect();
        let known = known_events.iter().fold(StreamState::default(), |s, e| evolve(s, e));
        let person = known_events
            .iter()
            .filter(|e| e.effective <= on || matches!(e.body, EventBody::CommandRescinded { .. }))
            .fold(StreamState::default(), |s, e| evolve(s, e));
        let view = view_of(&u, &loaded, Channel::Screen);
        let mut page =
            build(app, &u, &view, n, &loaded, &known, &person, on, at, head, today, &config, &entries, &last_batches);
        page.view_errors = view_errors;
        if let Some(raw) = as_of_typed {
            // Shown as typed in its field, to be corrected; the page itself is today's.
            page.as_of_field = raw;
            page.as_of_echo = String::new();
        }
        if reveal_reason.is_some()
            && view.may_reveal()
            && let Some(m) = person.recipient().or(known.recipient()).and_then(|r| r.my_number.as_ref())
        {
            page.my_number = view.my_number(m, true);
            page.my_number_revealed = true;
        }
        page.reveal_error = reveal_error;
        page.notice = match (query.recorded, query.requested) {
            (Some(p), _) => Some(format!("記録しました（記録位置 {p}）。")),
            (None, Some(_)) => Some("個人番号の登録を承認依頼しました。係長が承認すると記録されます。".into()),
            _ => None,
        };
        Ok((page, view.shows_protected()))
    })
    .await?;
    let path = format!("/recipients/{n}");
    let mut records = vec![record(&user.id, vec![n], &path, AccessAction::Viewed, None)];
    if protected_shown {
        records.push(record(&user.id, vec![n], &path, AccessAction::ProtectedAddressShown, None));
    }
    if page.my_number_revealed {
        records.push(record(&user.id, vec![n], &path, AccessAction::MyNumberRevealed, reveal));
    }
    app.access.record(records, today).await.map_err(AppError::internal)?;
    Ok(html(&page))
}

#[allow(clippy::too_many_arguments)]
fn build(
    app: &App,
    user: &CurrentUser,
    view: &privacy::View,
    n: u64,
    loaded: &Loaded,
    known: &StreamState,
    person: &StreamState,
    on: NaiveDate,
    at: u64,
    head: u64,
    today: NaiveDate,
    config: &Config,
    entries: &[(u32, Entry)],
    last_batches: &[(String, Option<(u64, u64)>)],
) -> RecipientPage {
    let eras = &config.eras;
    let accounts = app.accounts();
    let p = person.recipient();
    let k = known.recipient();
    // Protected now is shown in every view, of the past too: the reader must know to be careful.
    let dv = view.protected_at_head() || p.is_some_and(|r| r.dv_support_since.is_some());
    let residency = p.map_or(String::new(), |r| match &r.residency {
        Residency::Resident { since } => format!("在住（{since}から）"),
        Residency::MovedOut { on, to } => format!("転出（{on}、{}へ）", view.place(to.as_str())),
    });
    let certificates = k
        .map(|r| {
            r.certificates
                .iter()
                .enumerate()
                .map(|(index, c)| {
                    let printable = user.can(Permission::Record)
                        && !view.hides(r.address.as_str())
                        && c.spans.iter().any(|s| s.period.contains(on) || s.period.from() > on);
                    let print = printable.then(|| format!("/recipients/{n}/certificates/{index}/print?as_of={on}"));
                    let status = match (&c.ended, c.span_on(on)) {
                        (Some(e), _) => format!("終了（{}、{}）", e.on, e.reason.label()),
                        (None, Some(_)) => "有効".to_owned(),
                        (None, None) if c.is_current_or_future_on(on) => "開始前".to_owned(),
                        (None, None) => "期間満了".to_owned(),
                    };
                    CertView {
                        print,
                        id: c.id.to_string(),
                        program: describe::program_name(config, c.program.as_str()),
                        current: c.span_on(on).is_some(),
                        status,
                        reissues: c.reissues.len(),
                        spans: c
                            .spans
                            .iter()
                            .map(|s| {
                                let entry = entries.iter().find(|(no, _)| *no == s.no.0).map(|(_, e)| e);
                                let (pmh_status, pmh_class) = pmh_status(entry, config, view.hides_protected());
                                let t = &s.terms;
                                SpanRow {
                                    valid_from: s.period.from().to_string(),
                                    valid_to: end_ja(s.period.to()),
                                    payer_number: t.payer_number.map_or_else(|| "—".into(), |p| p.as_string()),
                                    recipient_number: t.recipient_number.to_string(),
                                    income_segment: t
                                        .income_segment
                                        .as_ref()
                                        .map_or_else(|| "—".into(), |x| x.to_string()),
                                    copay: t.copay_cap.as_ref().map_or_else(|| "—".into(), describe::copay),
                                    designated: if t.designated_institutions.is_empty() {
                                        "—".into()
                                    } else {
                                        t.designated_institutions
                                            .iter()
                                            .map(ToString::to_string)
                                            .collect::<Vec<_>>()
                                            .join("、")
                                    },
                                    disease: t.disease.as_ref().map_or_else(|| "—".into(), |x| x.to_string()),
                                    always_reimbursement: t.always_reimbursement,
                                    on_date: s.period.contains(on),
                                    history_key: daicho_domain::ids::HistoryKey::derive(
                                        daicho_domain::ids::RecipientId(n),
                                        s.no,
                                    )
                                    .to_string(),
                                    pmh_status,
                                    pmh_class,
                                }
                            })
                            .collect(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let rescinded: Vec<&str> =
        known.history().iter().filter(|e| e.rescinded_by.is_some()).map(|e| e.command.as_str()).collect();
    let timeline = loaded
        .envelopes
        .iter()
        .zip(&loaded.events)
        .rev()
        .map(|(env, ev)| TimelineRow {
            position: env.position.0,
            recorded_at: format_recorded(env.recorded_at_us),
            effective: ev.effective.to_string(),
            label: ev.label(),
            summary: describe::event(ev, config, view),
            actor: accounts.display_name(&env.actor),
            approver: env.approver.as_deref().map(|a| accounts.display_name(a)).unwrap_or_default(),
            command: ev.command.to_string(),
            rescinded: rescinded.contains(&ev.command.as_str()),
            after_view: env.position.0 > at,
        })
        .collect();
    let pmh_programs = last_batches
        .iter()
        .filter(|(key, _)| k.is_some_and(|r| r.certificates.iter().any(|c| c.program.as_str() == key)))
        .map(|(key, b)| {
            let text = match b {
                Some((to, batch)) => format!("第{batch}回連携（記録位置 {to} まで）"),
                None => "未連携".to_owned(),
            };
            (describe::program_name(config, key), text)
        })
        .collect();
    let actions = if user.can(Permission::Record) && k.is_some() {
        FORMS
            .iter()
            .filter(|f| f.kind != "register_recipient")
            .map(|f| Action { kind: f.kind, title: f.title })
            .collect()
    } else {
        Vec::new()
    };
    let basic = p.or(k);
    // Offered in the present view only, to someone who may record, for what they may see.
    let (lookalikes, correction_fields) = match p {
        Some(r) if on == today && at == head && user.can(Permission::Record) => lookalike_corrections(r, view),
        _ => (Vec::new(), Vec::new()),
    };
    RecipientPage {
        nav: Nav::new(user, &app.municipality, "search"),
        n,
        reference: k.map(|r| r.id.to_string()).unwrap_or_default(),
        registered_on_date: p.is_some(),
        name: basic.map(|r| r.name.to_string()).unwrap_or_default(),
        kana: basic.map(|r| r.kana.to_string()).unwrap_or_default(),
        birth_date: basic.map(|r| date_ja(eras, r.birth_date)).unwrap_or_default(),
        age: basic.map(|r| format!("{}歳", legal_age(r.birth_date, on))).unwrap_or_default(),
        sex: basic.map(|r| describe::sex(r.sex).to_owned()).unwrap_or_default(),
        address: basic.map(|r| view.place(r.address.as_str()).to_owned()).unwrap_or_default(),
        address_hidden: basic.is_some_and(|r| view.hides(r.address.as_str())),
        dv,
        dv_since: p.and_then(|r| r.dv_support_since).map(|d| d.to_string()).unwrap_or_default(),
        my_number: basic
            .and_then(|r| r.my_number.as_ref())
            .map(|m| view.my_number(m, false))
            .unwrap_or_else(|| "未登録".into()),
        has_my_number: basic.is_some_and(|r| r.my_number.is_some()),
        my_number_revealed: false,
        can_reveal: view.may_reveal(),
        reauth_needed: !app.sessions.recently_authenticated(&user.session, app.settings.reauth_window),
        residency,
        died_on: p.and_then(|r| r.died_on).map(|d| d.to_string()).unwrap_or_default(),
        as_of: on.to_string(),
        as_of_field: on.to_string(),
        as_of_echo: crate::dates::echo(eras, crate::dates::Kind::Date, &on.to_string()),
        as_at: at,
        head,
        is_past: on != today || at != head,
        view_errors: Vec::new(),
        certificates,
        pmh_programs,
        timeline,
        actions,
        notice: None,
        reveal_error: None,
        csrf: user.csrf.clone(),
        correction_id: if correction_fields.is_empty() {
            String::new()
        } else {
            super::commands::new_id().unwrap_or_default()
        },
        lookalikes,
        correction_fields,
    }
}

/// The CP932 look-alikes in a recipient's name, kana and (when `view` shows it) address that
/// PMH would show as "●": what each becomes, by code point, and the fields of the change of
/// personal details that corrects them. Nothing is changed until a person confirms it.
fn lookalike_corrections(r: &Recipient, view: &privacy::View) -> (Vec<String>, Vec<(&'static str, String)>) {
    let mut notes = Vec::new();
    let mut fields = Vec::new();
    let shown_address = (!view.hides(r.address.as_str())).then_some(r.address.as_str());
    for (field, label, text) in [
        ("name", "氏名", Some(r.name.as_str())),
        ("kana", "氏名カナ", Some(r.kana.as_str())),
        ("address", "住所", shown_address),
    ] {
        let Some(text) = text else { continue };
        let Some(fixed) = daicho_domain::text::with_jis_lookalikes(text) else { continue };
        for (a, b) in text.chars().zip(fixed.chars()).filter(|(a, b)| a != b) {
            notes.push(format!("{label}: U+{:04X} → U+{:04X}", u32::from(a), u32::from(b)));
        }
        fields.push((field, fixed));
    }
    (notes, fields)
}

/// `GET /recipients/{n}`.
pub async fn show(
    State(app): State<Arc<App>>,
    user: CurrentUser,
    Path(n): Path<u64>,
    Query(query): Query<ViewQuery>,
) -> AppResult<Response> {
    user.require(Permission::View)?;
    render(&app, user, n, query, None, None).await
}

/// Longest reason for showing a My Number.
pub const REASON_CHARS_MAX: usize = 200;

/// `POST /recipients/{n}/reveal`: shows the My Number in full, with a stated reason (logged).
pub async fn reveal(
    State(app): State<Arc<App>>,
    user: CurrentUser,
    Path(n): Path<u64>,
    form: FormPairs,
) -> AppResult<Response> {
    let v = values(form);
    user.check_csrf(v.get("csrf"))?;
    user.require(Permission::Reveal)?;
    let reason = v.trimmed("reason").to_owned();
    let query = ViewQuery {
        as_of: v.get("as_of").map(str::to_owned),
        as_at: v.get("as_at").map(str::to_owned),
        ..ViewQuery::default()
    };
    if reason.is_empty() || reason.chars().count() > REASON_CHARS_MAX || reason.chars().any(char::is_control) {
        let message = format!("表示する理由を{REASON_CHARS_MAX}文字以内で入力してください（改行は使えません）");
        return render(&app, user, n, query, None, Some(message)).await;
    }
    // A reveal asks for the password again, unless it was typed in this session a few minutes ago.
    if !app.sessions.recently_authenticated(&user.session, app.settings.reauth_window) {
        let password = v.get("password").unwrap_or("").to_owned();
        if password.is_empty() {
            let message = "表示するには、パスワードをもう一度入力してください".to_owned();
            return render(&app, user, n, query, None, Some(message)).await;
        }
        let Ok(permit) = app.password_hashes.clone().try_acquire_owned() else {
            return Err(AppError::Busy("ただいま混み合っています。少し待ってからやり直してください。".into()));
        };
        let throttle = app.throttle.attempt(
            user.id.as_str(),
            "reauthentication",
            &app.settings.throttle_limits(),
            app.settings.clock.now(),
        );
        if throttle.is_err() {
            let message = "パスワードの誤りが続いたため、しばらく表示できません".to_owned();
            return render(&app, user, n, query, None, Some(message)).await;
        }
        let id = user.id.to_string();
        let ok = blocking(&app, move |app| {
            let _permit = permit;
            let hash = app.accounts().get(&id).map(|a| a.password_hash.clone()).unwrap_or_default();
            Ok(password.chars().count() <= daicho_app::accounts::PASSWORD_CHARS_MAX
                && daicho_app::accounts::verify_password(&hash, &password))
        })
        .await?;
        if !ok {
            tracing::info!(user = %user.id, "reauthentication failed");
            return render(&app, user, n, query, None, Some("パスワードが正しくありません".to_owned())).await;
        }
        app.throttle.succeeded(user.id.as_str(), "reauthentication");
        app.sessions.reauthenticated(&user.session);
    }
    render(&app, user, n, query, Some(reason), None).await
}
