//! 受給者証の印刷 (certificate print page): one certificate's face as a page sized for the paper
//! (A4 or card, CSS `@page`), without navigation, ready for the browser's print dialog. It shows
//! personal data, so every view is in the access log.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use daicho_domain::users::AccessAction;
use daicho_projections::certificate::{Face, Made, face};
use serde::Deserialize;

use daicho_domain::privacy::Channel;

use super::recipient::{fold, load, view_of};
use crate::app::{App, blocking};
use crate::auth::{CurrentUser, Permission};
use crate::error::{AppError, AppResult};
use crate::render::html;
use daicho_app::access::record;

/// The print page.
#[derive(Template)]
#[template(path = "certificate.html")]
pub struct CertificatePage {
    pub face: Face,
    /// `a4` or `card` (the CSS page and layout).
    pub size: &'static str,
    pub back: String,
}

/// The day to print for (default: today).
#[derive(Debug, Default, Deserialize)]
pub struct PrintQuery {
    pub as_of: Option<String>,
}

/// `GET /recipients/{n}/certificates/{index}/print`.
pub async fn print(
    State(app): State<Arc<App>>,
    user: CurrentUser,
    Path((n, index)): Path<(u64, usize)>,
    Query(q): Query<PrintQuery>,
) -> AppResult<Response> {
    user.require(Permission::Record)?;
    let today = app.today();
    let on = match q.as_of.as_deref().filter(|s| !s.is_empty()) {
        None => today,
        Some(raw) => daicho_domain::calendar::parse_written_date(&app.eras, raw)
            .map_err(|e| AppError::BadRequest(format!("時点: {}", e.message())))?,
    };
    let u = user.clone();
    let page = blocking(&app, move |app| {
        let loaded = load(app, n)?;
        let state = fold(&loaded.events);
        let recipient = state.recipient().ok_or(AppError::NotFound)?;
        let certificate = recipient.certificates.get(index).ok_or(AppError::NotFound)?;
        // The face shows the address: when the policy hides it from this user, they do not
        // print (a certificate with a hidden address would be of no use, and would say why).
        let view = view_of(&u, &loaded, Channel::Print);
        if view.hides(recipient.address.as_str()) {
            return Err(AppError::Forbidden);
        }
        let protected = view.shows_protected();
        // The face is made from the stream as recorded: its last event is the position printed.
        let last = loaded.envelopes.last().ok_or(AppError::NotFound)?;
        let config = app.ledger().config().clone();
        let face = face(
            &config,
            recipient,
            certificate,
            (on, today),
            Made { position: last.position.0, hash_hex: &last.hash.to_hex() },
            &view,
        )
        .map_err(|e| AppError::BadRequest(e.message().to_owned()))?;
        Ok((CertificatePage { size: face.size.code(), face, back: format!("/recipients/{n}") }, protected))
    })
    .await?;
    let (page, protected) = page;
    let path = format!("/recipients/{n}/certificates/{index}/print");
    let mut records = vec![record(&user.id, vec![n], &path, AccessAction::Viewed, None)];
    if protected {
        records.push(record(&user.id, vec![n], &path, AccessAction::ProtectedAddressShown, None));
    }
    app.access.record(records, today).await.map_err(AppError::internal)?;
    tracing::info!(user = %user.id, recipient = n, certificate = index, "certificate print page");
    Ok(html(&page))
}
