//! Rendering: askama templates to responses, the navigation every page shares, security headers,
//! and the app's own static files (no CDN: municipal terminals have no internet).

use askama::Template;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};

use crate::app::App;
use crate::auth::{CurrentUser, Permission};

/// Renders a template; a template error is a 500 without detail.
pub fn html<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(body) => Html(body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "画面を表示できませんでした").into_response()
        }
    }
}

/// The header of every page of a logged-in user.
#[derive(Clone, Debug)]
pub struct Nav {
    pub municipality: String,
    pub user_name: String,
    pub role: &'static str,
    pub csrf: String,
    pub can_record: bool,
    pub can_approve: bool,
    pub can_pmh: bool,
    pub can_users: bool,
    pub can_access_log: bool,
    pub can_audit: bool,
    pub can_health: bool,
    pub can_billing: bool,
    /// Which menu item is current.
    pub current: &'static str,
}

impl Nav {
    /// The navigation for `user` on the page `current`.
    pub fn new(user: &CurrentUser, municipality: &str, current: &'static str) -> Nav {
        Nav {
            municipality: municipality.to_owned(),
            user_name: user.name.clone(),
            role: user.role.label(),
            csrf: user.csrf.clone(),
            can_record: user.can(Permission::Record),
            can_approve: user.can(Permission::Approve),
            can_pmh: user.can(Permission::PmhView),
            can_health: user.can(Permission::Health),
            can_users: user.can(Permission::Users),
            can_access_log: user.can(Permission::AccessLog),
            can_audit: user.can(Permission::Audit),
            can_billing: user.can(Permission::BillingView),
            current,
        }
    }

    /// `aria-current` for a menu item.
    pub fn aria(&self, item: &str) -> &'static str {
        if self.current == item { "page" } else { "false" }
    }
}

/// An error page (no navigation: it may be shown to someone not logged in).
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Adds the security headers to every response; `no-store` to everything but static files.
pub async fn security_headers(State(app): State<Arc<App>>, request: Request<Body>, next: Next) -> Response {
    let is_static = request.uri().path().starts_with("/static/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    if app.settings.secure_cookies {
        // Served over TLS: browsers are told never to come back over plain HTTP.
        h.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    }
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert("cross-origin-opener-policy", HeaderValue::from_static("same-origin"));
    h.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    if is_static {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=3600"));
    } else {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

const APP_CSS: &str = include_str!("../static/app.css");
const PRINT_CSS: &str = include_str!("../static/print.css");
const APP_JS: &str = include_str!("../static/app.js");

/// `/static/app.css`.
pub async fn app_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response()
}

/// `/static/print.css` (certificate print pages).
pub async fn print_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], PRINT_CSS).into_response()
}

/// `/static/app.js`.
pub async fn app_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS).into_response()
}
