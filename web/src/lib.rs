//! daicho-web: the caseworker web UI (axum + askama), server-rendered Japanese pages that work
//! without JavaScript.
//!
//! Layers, outermost first: security headers on every response (the inner layers' refusals
//! included; HSTS when served over TLS); panics become a 500 page; a request timeout; a body
//! limit; CSRF protection by `Sec-Fetch-Site`/`Origin` (tower-http) on every non-GET request, in
//! addition to the per-session token every form carries. Handlers check
//! the session and the role, do their work on a blocking thread, append access records for any
//! personal data shown, then render.
//!
//! No state changes on GET: every route that records something is a POST.

mod app;
mod auth;
pub mod control;
mod dates;
mod describe;
mod error;
mod forms;
mod pages;
mod render;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::csrf::CsrfLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub use app::{App, Settings, now};
pub use auth::{Permission, allows};

/// Largest request body (forms are small; this bounds what a client can make us buffer), but
/// for the upload of PMH's results (`pages::pmh::UPLOAD_BYTES_MAX`).
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// A request taking longer than this is answered with 408 (a PMH batch of a large municipality
/// is the slowest thing a page does).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

async fn not_found() -> error::AppError {
    error::AppError::NotFound
}

/// Every route, with its layers.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(pages::search::home))
        .route("/login", get(pages::login::page).post(pages::login::login))
        .route("/logout", post(pages::login::logout))
        .route("/account/password", get(pages::account::form).post(pages::account::change))
        .route("/search", get(pages::search::form).post(pages::search::search))
        .route("/recipients/new", get(pages::commands::new_form).post(pages::commands::new_post))
        .route("/recipients/{n}", get(pages::recipient::show))
        .route("/recipients/{n}/reveal", post(pages::recipient::reveal))
        .route("/recipients/{n}/do/{kind}", get(pages::commands::command_form).post(pages::commands::command_post))
        .route("/recipients/{n}/certificates/{index}/print", get(pages::certificate::print))
        .route("/approvals", get(pages::approvals::list))
        .route("/approvals/{id}/approve", post(pages::approvals::approve))
        .route("/approvals/{id}/reject", post(pages::approvals::reject))
        .route("/pmh", get(pages::pmh::page))
        .route("/pmh/generate", post(pages::pmh::generate))
        .route("/pmh/batches/{n}/{file}", get(pages::pmh::download))
        .route("/billing", get(pages::billing::page))
        .route("/billing/close", post(pages::billing::close))
        .route("/billing/schedule", post(pages::billing::schedule))
        .route("/billing/{month}/{file}", get(pages::billing::download))
        .route("/admin/users", get(pages::admin::users).post(pages::admin::add))
        .route("/admin/users/{id}/disable", post(pages::admin::disable))
        .route("/admin/users/{id}/password", post(pages::admin::reset))
        .route("/admin/access", get(pages::admin::access))
        .route("/admin/health", get(pages::health::page))
        .route("/healthz", get(pages::health::healthz))
        .route("/audit", get(pages::audit::show))
        .route("/audit/verify", post(pages::audit::verify))
        .route("/dates/read", post(dates::read_post))
        .route("/static/app.css", get(render::app_css))
        .route("/static/app.js", get(render::app_js))
        .route("/static/print.css", get(render::print_css))
        // Every form but the one upload is small.
        .layer(RequestBodyLimitLayer::new(BODY_BYTES_MAX))
        .merge(
            Router::new()
                .route("/pmh/results", post(pages::pmh::results))
                .route("/pmh/reconcile", post(pages::pmh::reconcile))
                .layer(axum::extract::DefaultBodyLimit::max(pages::pmh::UPLOAD_BYTES_MAX))
                .layer(RequestBodyLimitLayer::new(pages::pmh::UPLOAD_BYTES_MAX + 64 * 1024)),
        )
        .fallback(not_found)
        .with_state(app.clone())
        .layer(CsrfLayer::new())
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
        .layer(CatchPanicLayer::new())
        // Outermost: every response carries the headers, the layers' own refusals too.
        .layer(axum::middleware::from_fn_with_state(app, render::security_headers))
}

/// Serves until `shutdown` completes, at most [`Settings::connections_max`] connections at once
/// (more wait in the listen queue until one closes).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // `tap_io` gives the limited listener axum's connect info (the client's address).
    let listener = limit::Limited { inner: listener, permits: app.connections.clone() }.tap_io(|_| {});
    axum::serve(listener, router(app).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// How often the server looks whether a scheduled PMH run is due.
pub const SCHEDULE_TICK: Duration = Duration::from_secs(30);

/// Runs the daily PMH batches of `[pmh.schedule]` for as long as the server runs: every
/// [`SCHEDULE_TICK`], on Japan time (a server started after a missed slot runs it at once).
pub async fn run_schedule(app: Arc<App>) {
    let mut interval = tokio::time::interval(SCHEDULE_TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let app = app.clone();
        let ran = tokio::task::spawn_blocking(move || {
            let mut scheduler = app.scheduler.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            scheduler.tick(&app, daicho_app::clock::now()).is_some()
        })
        .await;
        if let Err(e) = ran {
            tracing::error!(error = %e, "the pmh schedule stopped a run");
        }
    }
}

mod limit {
    //! A listener that holds a permit per open connection.

    use std::io;
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{OwnedSemaphorePermit, Semaphore};

    /// Accepts only while a permit is free.
    pub struct Limited {
        pub inner: TcpListener,
        pub permits: Arc<Semaphore>,
    }

    /// A connection and its permit, given back when it closes.
    pub struct LimitedIo {
        stream: TcpStream,
        _permit: OwnedSemaphorePermit,
    }

    impl axum::serve::Listener for Limited {
        type Io = LimitedIo;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                let Ok(permit) = self.permits.clone().acquire_owned().await else {
                    // The semaphore is never closed; wait as for an error.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                };
                match self.inner.accept().await {
                    Ok((stream, addr)) => return (LimitedIo { stream, _permit: permit }, addr),
                    Err(e) => {
                        // Out of file descriptors and the like: wait, as axum's own listener does.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                }
            }
        }

        fn local_addr(&self) -> io::Result<SocketAddr> {
            self.inner.local_addr()
        }
    }

    impl AsyncRead for LimitedIo {
        fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.stream).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for LimitedIo {
        fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.stream).poll_write(cx, buf)
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.stream).poll_flush(cx)
        }

        fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.stream).poll_shutdown(cx)
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
        }

        fn is_write_vectored(&self) -> bool {
            self.stream.is_write_vectored()
        }
    }
}
