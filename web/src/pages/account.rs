//! パスワードの変更 (a user's own password): the only page, with logout, that a user whose
//! password was issued by an administrator can reach until they choose their own. Changing it
//! ends the user's other sessions.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::{FormPairs, see_other, values};
use crate::app::{App, blocking};
use crate::auth::CurrentUser;
use crate::error::{AppError, AppResult};
use crate::render::{Nav, html};
use daicho_app::accounts::PASSWORD_CHARS_MIN;
use daicho_app::{CONFLICT_MESSAGE, Failure, Request};

/// The page.
#[derive(Template)]
#[template(path = "account_password.html")]
pub struct PasswordPage {
    pub nav: Nav,
    pub must_change: bool,
    pub error: Option<String>,
    pub min: usize,
}

fn page(app: &App, user: &CurrentUser, error: Option<String>) -> PasswordPage {
    PasswordPage {
        nav: Nav::new(user, &app.municipality, "password"),
        must_change: user.must_change,
        error,
        min: PASSWORD_CHARS_MIN,
    }
}

/// `GET /account/password`.
pub async fn form(State(app): State<Arc<App>>, user: CurrentUser) -> AppResult<Response> {
    Ok(html(&page(&app, &user, None)))
}

/// `POST /account/password`: checks the current password (a hashing permit, like a login),
/// records the new one with the user as the actor.
pub async fn change(State(app): State<Arc<App>>, user: CurrentUser, form: FormPairs) -> AppResult<Response> {
    let v = values(form);
    user.check_csrf(v.get("csrf"))?;
    let (current, new, again) = (
        v.get("current").unwrap_or("").to_owned(),
        v.get("new").unwrap_or("").to_owned(),
        v.get("again").unwrap_or(""),
    );
    if new != again {
        return Ok(html(&page(&app, &user, Some("新しいパスワードが確認欄と一致しません".into()))));
    }
    let Ok(permit) = app.password_hashes.clone().try_acquire_owned() else {
        return Err(AppError::Busy("ただいま混み合っています。少し待ってからやり直してください。".into()));
    };
    let u = user.clone();
    let result = blocking(&app, move |app| {
        let _permit = permit;
        Ok(app.execute(&u.actor(), Request::ChangeOwnPassword { current: &current, new: &new }, app.today()))
    })
    .await?;
    match result {
        Ok(_) => {
            app.sessions.remove_others(user.id.as_str(), &user.session);
            tracing::info!(user = %user.id, "password changed by its user");
            Ok(see_other("/search"))
        }
        Err(Failure::Rejected(r)) => Ok(html(&page(&app, &user, Some(r.to_string())))),
        Err(Failure::Conflict) => Ok(html(&page(&app, &user, Some(CONFLICT_MESSAGE.to_owned())))),
        Err(e) => Err(e.into()),
    }
}
