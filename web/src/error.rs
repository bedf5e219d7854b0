//! Errors of a request, and the pages they become.
//!
//! An internal failure is logged (with `tracing`, never with personal data: our error texts
//! name positions and rules, not values) and shown as a generic Japanese page; details stay in
//! the server log.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::render::{ErrorPage, html};

/// Why a request failed.
#[derive(Debug)]
pub enum AppError {
    /// No valid session: log in first.
    Unauthenticated,
    /// The password was issued by someone else: choose one first.
    PasswordChangeRequired,
    /// The role may not do this.
    Forbidden,
    /// No such page or recipient.
    NotFound,
    /// The request is malformed (a message in Japanese, safe to show).
    BadRequest(String),
    /// The form's CSRF token is missing or wrong.
    CsrfMismatch,
    /// Too much at once (a bounded resource is full): try again shortly. The message is safe to
    /// show.
    Busy(String),
    /// Someone else changed the record first; nothing of this request was written.
    Conflict,
    /// A failure of ours: logged, shown generically.
    Internal(String),
}

impl From<daicho_app::Failure> for AppError {
    fn from(e: daicho_app::Failure) -> Self {
        use daicho_app::{Failure, Refusal};
        match e {
            Failure::Rejected(Refusal::Forbidden { .. }) => AppError::Forbidden,
            Failure::Rejected(r) => AppError::BadRequest(r.to_string()),
            Failure::Conflict => AppError::Conflict,
            Failure::Infrastructure(m) => AppError::Internal(m),
        }
    }
}

impl AppError {
    /// An internal error from anything displayable.
    pub fn internal(e: impl std::fmt::Display) -> AppError {
        AppError::Internal(e.to_string())
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Unauthenticated => f.write_str("unauthenticated"),
            AppError::PasswordChangeRequired => f.write_str("password change required"),
            AppError::Forbidden => f.write_str("forbidden"),
            AppError::NotFound => f.write_str("not found"),
            AppError::BadRequest(m) => write!(f, "bad request: {m}"),
            AppError::CsrfMismatch => f.write_str("csrf token mismatch"),
            AppError::Busy(m) => write!(f, "busy: {m}"),
            AppError::Conflict => f.write_str("conflict"),
            AppError::Internal(m) => write!(f, "internal: {m}"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            AppError::Unauthenticated => {
                return (StatusCode::SEE_OTHER, [(header::LOCATION, "/login")]).into_response();
            }
            AppError::PasswordChangeRequired => {
                return (StatusCode::SEE_OTHER, [(header::LOCATION, "/account/password")]).into_response();
            }
            AppError::Forbidden => {
                (StatusCode::FORBIDDEN, "権限がありません", "この操作を行う権限がありません。".to_owned())
            }
            AppError::NotFound => {
                (StatusCode::NOT_FOUND, "見つかりません", "指定されたページまたは受給者は見つかりません。".to_owned())
            }
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, "入力が正しくありません", m.clone()),
            AppError::CsrfMismatch => (
                StatusCode::FORBIDDEN,
                "送信を受け付けられません",
                "画面の有効期限が切れたか、ほかのサイトからの送信です。画面を開き直してから操作してください。"
                    .to_owned(),
            ),
            AppError::Busy(m) => (StatusCode::TOO_MANY_REQUESTS, "混み合っています", m.clone()),
            AppError::Conflict => {
                (StatusCode::CONFLICT, "更新が重なりました", format!("{}。", daicho_app::CONFLICT_MESSAGE))
            }
            AppError::Internal(detail) => {
                tracing::error!(error = %detail, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "システムエラー",
                    "処理を完了できませんでした。画面を開き直して記録の有無を確かめてください。繰り返す場合は管理者に連絡してください。"
                        .to_owned(),
                )
            }
        };
        let mut response = html(&ErrorPage { title, message: &message });
        *response.status_mut() = status;
        response
    }
}

/// Results of handlers.
pub type AppResult<T> = Result<T, AppError>;
