//! ログイン・ログアウト.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use askama::Template;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::{FormPairs, see_other, values};
use crate::app::{App, blocking};
use crate::auth::{CurrentUser, Refused, clear_cookie, session_cookie, session_token};
use crate::error::AppResult;
use crate::render::html;
use daicho_app::accounts::verify_password;

/// The login page.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub municipality: String,
    pub user: String,
    pub message: Option<String>,
}

/// The client's address, when the server knows it (not behind a proxy that hides it).
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())))
    }
}

/// `GET /login`.
pub async fn page(State(app): State<Arc<App>>) -> Response {
    html(&LoginPage { municipality: app.municipality.clone(), user: String::new(), message: None })
}

fn with_status(mut r: Response, status: StatusCode) -> Response {
    *r.status_mut() = status;
    r
}

/// 429 with `Retry-After`.
fn busy(r: Response, retry_after_secs: u64) -> Response {
    let mut r = with_status(r, StatusCode::TOO_MANY_REQUESTS);
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Logged instead of an id that names no account (what was typed is never logged).
const UNKNOWN_USER: &str = "(unknown)";

/// `POST /login`: takes a hashing permit, counts the attempt in the throttle, then checks the
/// password (a verification runs even for an unknown user, so timing does not tell which ids
/// exist); on success a new session replaces any the browser had.
pub async fn login(
    State(app): State<Arc<App>>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    form: FormPairs,
) -> AppResult<Response> {
    let v = values(form);
    let user = v.trimmed("user").chars().take(64).collect::<String>();
    let password = v.get("password").unwrap_or("").to_owned();
    let page = |message: &str| LoginPage {
        municipality: app.municipality.clone(),
        user: user.clone(),
        message: Some(message.to_owned()),
    };
    let addr = addr.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    // Only ids that exist reach the log, never what was typed (a newline, a password).
    let known = app.accounts().get(&user).map(|a| a.id.clone());
    let who = known.as_ref().map_or(UNKNOWN_USER, |u| u.as_str()).to_owned();
    // A bounded number of hashes at once: each takes 19 MiB; the excess waits for nothing.
    let Ok(permit) = app.password_hashes.clone().try_acquire_owned() else {
        tracing::warn!(user = %who, "login refused: too many at once");
        return Ok(busy(html(&page("ただいま混み合っています。少し待ってからやり直してください。")), 1));
    };
    // Counted before the hash, so parallel attempts cannot pass the limit together.
    match app.throttle.attempt(&user, &addr, &app.settings.throttle_limits(), app.settings.clock.now()) {
        Ok(()) => {}
        Err(Refused::Locked) => {
            tracing::warn!(user = %who, "login refused: too many failures");
            let minutes = app.settings.lockout.as_secs().div_ceil(60);
            let message = format!(
                "ログインの失敗が続いたため、{minutes}分間ログインできません。しばらくしてからやり直してください。"
            );
            return Ok(busy(html(&page(&message)), app.settings.lockout.as_secs()));
        }
        Err(Refused::Wait(wait)) => {
            tracing::warn!(user = %who, "login delayed: failures of the account");
            let seconds = wait.as_secs().max(1);
            let message = format!("この利用者IDのログインの失敗が続いています。{seconds}秒後にやり直してください。");
            return Ok(busy(html(&page(&message)), seconds));
        }
    }
    let id = user.clone();
    let ok = blocking(&app, move |app| {
        let _permit = permit;
        let account = app.accounts().get(&id).filter(|a| !a.disabled).cloned();
        Ok(match account {
            Some(a) if password.chars().count() <= daicho_app::accounts::PASSWORD_CHARS_MAX => {
                verify_password(&a.password_hash, &password)
            }
            _ => {
                let _ = verify_password(&app.dummy_hash, &password);
                false
            }
        })
    })
    .await?;
    if !ok {
        tracing::info!(user = %who, "login failed");
        return Ok(with_status(html(&page("利用者IDまたはパスワードが正しくありません。")), StatusCode::UNAUTHORIZED));
    }
    app.throttle.succeeded(&user, &addr);
    if let Some(old) = session_token(&headers, app.settings.secure_cookies) {
        app.sessions.remove(&old);
    }
    let s = &app.settings;
    let token = app.sessions.create(&user, s.idle_timeout, s.absolute_timeout, s.sessions_max)?;
    tracing::info!(user = %who, "login");
    let mut r = see_other("/search");
    if let Ok(v) = HeaderValue::from_str(&session_cookie(&token, app.settings.secure_cookies)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `POST /logout`.
pub async fn logout(
    State(app): State<Arc<App>>,
    user: CurrentUser,
    headers: HeaderMap,
    form: FormPairs,
) -> AppResult<Response> {
    let v = values(form);
    user.check_csrf(v.get("csrf"))?;
    if let Some(token) = session_token(&headers, app.settings.secure_cookies) {
        app.sessions.remove(&token);
    }
    tracing::info!(user = %user.id, "logout");
    let mut r = see_other("/login");
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(app.settings.secure_cookies)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}
