//! 監査 (audit), for supervisors, administrators and auditors: the state of both hash chains (the
//! ledger's log and the access log), a check of both on demand, and what changed in one
//! recipient's record between two positions of the log.
//!
//! The on-demand check walks each chain from position 1 to the head seen when it starts,
//! recomputing every hash and decoding every payload, while the server keeps running. It does
//! not take the ledger lock, so it cannot compare the indexes with the log (appends may land
//! meanwhile): that is `daicho verify`, with the server stopped, whose last result (the verified
//! checkpoint) the page shows.

use std::sync::Arc;
use std::time::Instant;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use daicho_domain::codec;
use daicho_domain::privacy::Channel;
use daicho_domain::users::AccessAction;
use daicho_projections::asof::as_of;
use daicho_store::{Checkpoint, Hash, Position, Store};

use serde::Deserialize;
use serde_json::Value;

use super::recipient::stream_of;
use super::{FormPairs, values};
use crate::app::{App, blocking, format_recorded};
use crate::auth::{CurrentUser, Permission};
use crate::error::{AppError, AppResult};
use crate::render::{Nav, html};
use daicho_app::access::record;

/// One chain's status.
pub struct ChainRow {
    pub label: &'static str,
    pub head_position: u64,
    pub head_hash: String,
    pub head_at: String,
    /// The last `daicho verify`: position and time, or "未実施".
    pub verified: String,
    /// The result of the check just run, if any: (passed, message).
    pub checked: Option<(bool, String)>,
}

/// One field that differs between the two positions.
pub struct DiffRow {
    pub field: String,
    pub at_a: String,
    pub at_b: String,
}

/// One event recorded between the two positions.
pub struct EventRow {
    pub position: u64,
    pub recorded_at: String,
    pub event_type: String,
    pub effective: String,
    pub actor: String,
    pub approver: String,
}

/// The difference for one recipient.
pub struct DiffView {
    pub n: u64,
    pub a: u64,
    pub b: u64,
    pub on: String,
    pub rows: Vec<DiffRow>,
    pub events: Vec<EventRow>,
}

/// The audit page.
#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub nav: Nav,
    pub chains: Vec<ChainRow>,
    pub recipient: String,
    pub a: String,
    pub b: String,
    pub on: String,
    /// The date in its other form.
    pub on_echo: String,
    pub errors: Vec<(String, String)>,
    pub diff: Option<DiffView>,
}

impl AuditPage {
    /// The error summary at the top of the comparison form.
    pub fn summary(&self) -> Vec<super::ErrorLink> {
        super::summary_of(
            &self.errors,
            &[("recipient", "受給者の内部番号"), ("a", "記録位置A"), ("b", "記録位置B"), ("on", "時点")],
        )
    }

    /// The error of a field.
    pub fn error(&self, field: &str) -> Option<&str> {
        self.errors.iter().find(|(f, _)| f == field).map(|(_, m)| m.as_str())
    }
}

/// The comparison asked for (internal numbers, positions and a date: nothing personal).
#[derive(Debug, Default, Deserialize)]
pub struct DiffQuery {
    pub recipient: Option<String>,
    pub a: Option<String>,
    pub b: Option<String>,
    pub on: Option<String>,
}

fn chain_row(label: &'static str, store: &Store) -> ChainRow {
    let head = store.head();
    let verified = match Checkpoint::read(store.dir()) {
        Ok(Some(cp)) => format!("位置 {} まで（{}）", cp.position, format_recorded(cp.verified_at_us)),
        Ok(None) => "未実施".to_owned(),
        Err(_) => "検証記録を読めません".to_owned(),
    };
    ChainRow {
        label,
        head_position: head.position.0,
        head_hash: head.hash.to_hex(),
        head_at: if head.position.0 == 0 { String::new() } else { format_recorded(head.recorded_at_us) },
        verified,
        checked: None,
    }
}

/// Walks `store`'s chain up to the head seen at the start; the first problem, if any.
pub fn check_chain(store: &Store, payload: &dyn Fn(&daicho_store::Envelope) -> Result<(), String>) -> (bool, String) {
    let started = Instant::now();
    let head = store.head();
    let mut prev = Hash::default();
    let mut expected = 1u64;
    for item in store.read_from(Position(1)) {
        let e = match item {
            Ok(e) => e,
            Err(err) => return (false, format!("位置 {expected}: 読めません（{err}）")),
        };
        if e.position > head.position {
            break;
        }
        if e.position.0 != expected {
            return (false, format!("位置 {expected}: 記録がありません"));
        }
        if e.prev_hash != prev {
            return (false, format!("位置 {expected}: 直前のハッシュとつながっていません"));
        }
        if !e.hash_is_valid() {
            return (false, format!("位置 {expected}: 内容がハッシュと一致しません（改ざんの疑い）"));
        }
        if let Err(why) = payload(&e) {
            return (false, format!("位置 {expected}: 内容を読めません（{why}）"));
        }
        prev = e.hash;
        expected += 1;
    }
    if expected - 1 != head.position.0 || prev != head.hash {
        return (false, format!("先頭（位置 {}）まで続いていません", head.position));
    }
    (
        true,
        format!(
            "位置 1〜{} の {}件を確認しました（{:.1}秒）",
            head.position,
            head.position,
            started.elapsed().as_secs_f64()
        ),
    )
}

fn ledger_payload(e: &daicho_store::Envelope) -> Result<(), String> {
    codec::decode_any(&e.event_type, e.schema_version, &e.payload).map(|_| ()).map_err(|x| x.to_string())
}

fn access_payload(e: &daicho_store::Envelope) -> Result<(), String> {
    codec::decode_access(e.schema_version, &e.payload).map(|_| ()).map_err(|x| x.to_string())
}

/// Flattens a JSON view into `path = text` pairs.
fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                flatten(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, x, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), x, out);
            }
        }
        Value::Null => out.push((prefix.to_owned(), "—".to_owned())),
        Value::String(s) => out.push((prefix.to_owned(), s.clone())),
        other => out.push((prefix.to_owned(), other.to_string())),
    }
}

fn page(app: &App, user: &CurrentUser) -> AuditPage {
    AuditPage {
        nav: Nav::new(user, &app.municipality, "audit"),
        chains: vec![chain_row("台帳（事象ログ）", &app.store), chain_row("アクセス記録", &app.access_store)],
        recipient: String::new(),
        a: String::new(),
        b: String::new(),
        on: app.today().to_string(),
        on_echo: crate::dates::echo(&app.eras, crate::dates::Kind::Date, &app.today().to_string()),
        errors: Vec::new(),
        diff: None,
    }
}

/// `GET /audit`: the chains, and the difference for one recipient when asked.
pub async fn show(State(app): State<Arc<App>>, user: CurrentUser, Query(q): Query<DiffQuery>) -> AppResult<Response> {
    user.require(Permission::Audit)?;
    let u = user.clone();
    let (page, shown) = blocking(&app, move |app| {
        let mut page = page(app, &u);
        let text = |s: &Option<String>| s.as_deref().unwrap_or("").trim().to_owned();
        let (r, a, b, on) = (text(&q.recipient), text(&q.a), text(&q.b), text(&q.on));
        if r.is_empty() && a.is_empty() && b.is_empty() {
            return Ok((page, None));
        }
        let head = app.store.head().position.0;
        let mut position = |field: &str, raw: &str| match raw.parse::<u64>() {
            Ok(p) if p <= head => Some(p),
            _ => {
                page.errors.push((field.to_owned(), format!("0から{head}までの数字で入力してください")));
                None
            }
        };
        let (pa, pb) = (position("a", &a), position("b", &b));
        let n = match r.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                page.errors.push(("recipient".to_owned(), "内部番号（数字）で入力してください".to_owned()));
                None
            }
        };
        let day = if on.is_empty() {
            Some(app.today())
        } else {
            match daicho_domain::calendar::parse_written_date(&app.eras, &on) {
                Ok(d) => Some(d),
                Err(e) => {
                    page.errors.push(("on".to_owned(), e.message()));
                    None
                }
            }
        };
        page.recipient = r;
        page.a = a;
        page.b = b;
        page.on_echo = crate::dates::echo(&app.eras, crate::dates::Kind::Date, &on);
        page.on = on;
        let (Some(n), Some(pa), Some(pb), Some(day)) = (n, pa, pb, day) else { return Ok((page, None)) };
        let stream = stream_of(n)?;
        // Both sides through the policy, from the person's protection at the head.
        let mut protected_shown = false;
        let mut view_at = |p: u64| -> AppResult<Value> {
            let v = as_of(&app.store, &stream, Position(p), day).map_err(AppError::internal)?;
            let policy = u.view(v.protection.clone(), Channel::Screen);
            protected_shown |= policy.shows_protected();
            serde_json::to_value(v.view(n, Position(p), day, &policy)).map_err(AppError::internal)
        };
        let (va, vb) = (view_at(pa)?, view_at(pb)?);
        if vb.get("registered") != Some(&Value::Bool(true)) && va.get("registered") != Some(&Value::Bool(true)) {
            return Err(AppError::NotFound);
        }
        let (mut fa, mut fb) = (Vec::new(), Vec::new());
        flatten("", &va, &mut fa);
        flatten("", &vb, &mut fb);
        let mut fields: Vec<String> = fa.iter().chain(&fb).map(|(k, _)| k.clone()).collect();
        fields.sort();
        fields.dedup();
        let get = |f: &[(String, String)], k: &str| {
            f.iter().find(|(x, _)| x == k).map_or_else(|| "—".to_owned(), |(_, v)| v.clone())
        };
        let rows = fields
            .into_iter()
            .filter(|k| k != "as_at_position")
            .map(|k| DiffRow { at_a: get(&fa, &k), at_b: get(&fb, &k), field: k })
            .filter(|r| r.at_a != r.at_b)
            .collect();
        let (lo, hi) = (pa.min(pb), pa.max(pb));
        let accounts = app.accounts();
        let events = app
            .store
            .read_stream(&stream)
            .map_err(AppError::internal)?
            .into_iter()
            .filter(|e| e.position.0 > lo && e.position.0 <= hi)
            .map(|e| EventRow {
                position: e.position.0,
                recorded_at: format_recorded(e.recorded_at_us),
                event_type: e.event_type.clone(),
                effective: e.effective.to_string(),
                actor: accounts.display_name(&e.actor),
                approver: e.approver.as_deref().map(|x| accounts.display_name(x)).unwrap_or_default(),
            })
            .collect();
        drop(accounts);
        page.diff = Some(DiffView { n, a: pa, b: pb, on: day.to_string(), rows, events });
        Ok((page, Some((n, protected_shown))))
    })
    .await?;
    if let Some((n, protected_shown)) = shown {
        let mut records = vec![record(&user.id, vec![n], "/audit", AccessAction::Viewed, None)];
        if protected_shown {
            records.push(record(&user.id, vec![n], "/audit", AccessAction::ProtectedAddressShown, None));
        }
        app.access.record(records, app.today()).await.map_err(AppError::internal)?;
    }
    Ok(html(&page))
}

/// `POST /audit/verify`: walks both chains now.
pub async fn verify(State(app): State<Arc<App>>, user: CurrentUser, form: FormPairs) -> AppResult<Response> {
    let v = values(form);
    user.check_csrf(v.get("csrf"))?;
    user.require(Permission::Audit)?;
    // One walk of the chains at a time: each reads the whole of both logs.
    let Ok(permit) = app.verifying.clone().try_acquire_owned() else {
        return Err(AppError::Busy(
            "ほかの利用者がハッシュチェーンを確認中です。終わってからやり直してください。".into(),
        ));
    };
    let u = user.clone();
    let page = blocking(&app, move |app| {
        let _permit = permit;
        let mut page = page(app, &u);
        page.chains[0].checked = Some(check_chain(&app.store, &ledger_payload));
        page.chains[1].checked = Some(check_chain(&app.access_store, &access_payload));
        tracing::info!(
            user = %u.id,
            ledger_ok = page.chains[0].checked.as_ref().is_some_and(|c| c.0),
            access_ok = page.chains[1].checked.as_ref().is_some_and(|c| c.0),
            "hash chains checked"
        );
        Ok(page)
    })
    .await?;
    Ok(html(&page))
}
