//! 稼働状況 (health) for administrators, and `/healthz` for monitoring.
//!
//! `/healthz` needs no login and says only whether the ledger answers, how far the register
//! lags, and how long ago the last verify and backup were: no names, numbers or hashes.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use daicho_app::health::{Health, human_bytes};

use crate::app::{App, blocking, format_recorded, now};
use crate::auth::{CurrentUser, Permission};
use crate::error::AppResult;
use crate::render::{Nav, html};

/// The health page.
#[derive(Template)]
#[template(path = "health.html")]
pub struct HealthPage {
    pub nav: Nav,
    pub head_position: u64,
    pub head_hash: String,
    pub head_at: String,
    pub register_position: u64,
    pub register_lag: u64,
    pub access_position: Option<u64>,
    /// (position, hash, when).
    pub last_verify: Option<(u64, String, String)>,
    /// (when, file, size, position).
    pub last_backup: Option<(String, String, String, u64)>,
    /// (program, batch, mode, to position, records, when).
    pub pmh: Vec<(String, u64, String, u64, u32, String)>,
    pub disk: Vec<(String, String)>,
}

/// Fresh figures for the administrator's page; `/healthz` (no login) reuses them for
/// [`crate::Settings::health_ttl`].
fn collect(app: &App, fresh: bool) -> Result<Health, String> {
    app.health(if fresh { std::time::Duration::ZERO } else { app.settings.health_ttl })
}

/// `GET /admin/health`.
pub async fn page(State(app): State<Arc<App>>, user: CurrentUser) -> AppResult<Response> {
    user.require(Permission::Health)?;
    let h = blocking(&app, |app| collect(app, true).map_err(crate::error::AppError::internal)).await?;
    Ok(html(&HealthPage {
        nav: Nav::new(&user, &app.municipality, "health"),
        head_position: h.head_position,
        head_hash: h.head_hash,
        head_at: format_recorded(h.head_recorded_at_us),
        register_position: h.register_position,
        register_lag: h.register_lag,
        access_position: h.access_position,
        last_verify: h.last_verify.map(|v| (v.position, v.hash, format_recorded(v.verified_at_us))),
        last_backup: h.last_backup.map(|b| {
            let position = b.logs.first().map_or(0, |l| l.head_position);
            (b.created_at, b.file, human_bytes(b.bytes), position)
        }),
        pmh: h
            .pmh
            .into_iter()
            .map(|p| (p.program, p.batch, p.mode, p.to_position, p.records, format_recorded(p.recorded_at_us)))
            .collect(),
        disk: h.disk.into_iter().map(|(name, bytes)| (name, human_bytes(bytes))).collect(),
    }))
}

/// `GET /healthz`: 200 with a small JSON body when the ledger answers, 503 when it does not.
pub async fn healthz(State(app): State<Arc<App>>) -> Response {
    let health = tokio::task::spawn_blocking({
        let app = app.clone();
        move || collect(&app, false)
    })
    .await;
    let hours_since = |us: i64| (now().timestamp_micros() - us).max(0) / 3_600_000_000;
    let (status, body) = match health {
        Ok(Ok(h)) => (
            StatusCode::OK,
            serde_json::json!({
                "status": "ok",
                "registerLag": h.register_lag,
                "hoursSinceVerify": h.last_verify.map(|v| hours_since(v.verified_at_us)),
                "backedUp": h.last_backup.is_some(),
            }),
        ),
        _ => (StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"status": "error"})),
    };
    (status, [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], body.to_string())
        .into_response()
}
