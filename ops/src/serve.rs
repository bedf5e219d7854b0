//! `daicho serve`: the caseworker web UI on the ledger in the data directory, and `daicho user`:
//! accounts from the command line (while the server is stopped: the store is opened by one
//! process at a time).
//!
//! `serve --demo` makes a fresh machine useful in one command: when the data directory holds no
//! ledger it loads the synthetic さくら市 and adds one user per role, printing their generated
//! passwords once.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chrono::NaiveDate;
use daicho_app::ledger::store_dir;
use daicho_app::{Actor, Outcome, Request};
use daicho_domain::users::Role;
use daicho_web::{App, Settings};

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE};

/// What `serve` was asked.
pub struct ServeRequest<'a> {
    pub data: &'a Path,
    pub listen: SocketAddr,
    pub demo: bool,
    pub recipients: u64,
    pub idle_minutes: u64,
    pub absolute_hours: u64,
    pub secure_cookies: bool,
    pub today: Option<NaiveDate>,
}

/// The demo's users: id, name, role.
pub const DEMO_USERS: [(&str, &str, Role); 5] = [
    ("etsuran", "閲覧 花子", Role::Viewer),
    ("kubo", "久保 美咲", Role::Caseworker),
    ("mori", "森 健一", Role::Supervisor),
    ("kanri", "管理 太郎", Role::Admin),
    ("kansa", "監査 一郎", Role::Auditor),
];

/// Adds the demo users (when the ledger has no users yet); returns (id, role, password).
pub fn add_demo_users(app: &daicho_app::App, today: NaiveDate) -> Result<Vec<(String, Role, String)>, String> {
    if !app.accounts().is_empty() {
        return Ok(Vec::new());
    }
    let operator = Actor::Operator("daicho-demo".into());
    let mut out = Vec::new();
    for (id, name, role) in DEMO_USERS {
        match app.execute(&operator, Request::AddUser { id, name, role }, today).map_err(|e| e.to_string())? {
            Outcome::Password(pw) => out.push((id.to_owned(), role, pw)),
            other => return Err(format!("unexpected outcome {other:?}")),
        }
    }
    Ok(out)
}

/// `daicho serve`.
pub fn run(req: &ServeRequest<'_>, today: NaiveDate, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let fresh = !store_dir(req.data).exists();
    if fresh && !req.demo {
        let _ = writeln!(
            err,
            "{}: 台帳がありません。daicho init で作成するか、--demo でデモの台帳を作成してください",
            req.data.display()
        );
        return EXIT_REJECTED;
    }
    if fresh {
        let code = crate::demo::run(req.data, req.recipients, 1, today, out, err);
        if code != EXIT_OK {
            return code;
        }
    }
    if req.demo {
        let created = daicho_app::App::open(req.data).and_then(|app| add_demo_users(&app, today));
        match created {
            Ok(users) if !users.is_empty() => {
                let _ = writeln!(out, "デモの利用者（パスワードはこの一度だけ表示します）:");
                for (id, role, pw) in &users {
                    let _ = writeln!(out, "  {id:<8} {:<6} {pw}", role.label());
                }
            }
            Ok(_) => {
                let _ = writeln!(
                    out,
                    "デモの利用者は作成済みです（{}）。パスワードを忘れた場合は、停止してから daicho user reset-password ID を実行してください。",
                    DEMO_USERS.map(|(id, _, _)| id).join(", ")
                );
            }
            Err(e) => {
                let _ = writeln!(err, "{}: 利用者を作成できません: {e}", req.data.display());
                return EXIT_UNREADABLE;
            }
        }
    }
    let settings = Settings {
        idle_timeout: Duration::from_secs(req.idle_minutes.max(1) * 60),
        absolute_timeout: Duration::from_secs(req.absolute_hours.max(1) * 3600),
        secure_cookies: req.secure_cookies,
        today: req.today,
        // The demo prints its users' passwords to be used as they are.
        force_password_change: !req.demo,
        ..Settings::default()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(err, "起動できません: {e}");
            return EXIT_UNREADABLE;
        }
    };
    let app = match App::open(req.data, settings) {
        Ok(app) => app,
        Err(e) => {
            let _ = writeln!(err, "{}: 台帳を開けません: {e}", req.data.display());
            return EXIT_UNREADABLE;
        }
    };
    if app.accounts().is_empty() {
        let _ = writeln!(
            err,
            "利用者がいません。daicho user add ID --name 氏名 --role admin で管理者を追加してから起動してください"
        );
        return EXIT_REJECTED;
    }
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::bind(req.listen).await {
            Ok(l) => l,
            Err(e) => {
                let _ = writeln!(err, "{} で待ち受けできません: {e}", req.listen);
                return EXIT_UNREADABLE;
            }
        };
        let addr = listener.local_addr().map_or_else(|_| req.listen.to_string(), |a| a.to_string());
        let _ = writeln!(out, "台帳 {}: http://{addr}/ で待ち受けています（Ctrl-C で終了）", app.municipality);
        let _ = out.flush();
        tracing::info!(listen = %addr, "serving");
        // Ctrl-C, or SIGTERM from a service manager: finish the requests in flight, then stop.
        let shutdown = async {
            #[cfg(unix)]
            {
                let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
                match term {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            }
            #[cfg(not(unix))]
            {
                let _ = tokio::signal::ctrl_c().await;
            }
            tracing::info!("stopping");
        };
        // `daicho backup` and `daicho status` reach the running server through this socket.
        #[cfg(unix)]
        let control =
            daicho_web::control::bind(req.data).map(|l| tokio::spawn(daicho_web::control::serve(l, app.clone())));
        // The daily PMH batches of `[pmh.schedule]`, on Japan time.
        let scheduler = tokio::spawn(daicho_web::run_schedule(app.clone()));
        let served = daicho_web::serve(listener, app, shutdown).await;
        scheduler.abort();
        #[cfg(unix)]
        if let Some(control) = control {
            control.abort();
            let _ = std::fs::remove_file(daicho_app::ledger::control_socket(req.data));
        }
        match served {
            Ok(()) => EXIT_OK,
            Err(e) => {
                let _ = writeln!(err, "サーバーが停止しました: {e}");
                EXIT_UNREADABLE
            }
        }
    })
}

/// What `daicho user` was asked.
pub enum UserAction<'a> {
    Add { id: &'a str, name: &'a str, role: &'a str },
    Disable { id: &'a str },
    ResetPassword { id: &'a str },
    List,
}

/// `daicho user …`.
pub fn user(
    data: &Path,
    action: &UserAction<'_>,
    (actor, today): (&str, NaiveDate),
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let ledger = match crate::cli::open_ledger(data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let app = match daicho_app::App::of(ledger, data) {
        Ok(app) => app,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_UNREADABLE;
        }
    };
    let operator = Actor::Operator(actor.to_owned());
    let password = |outcome: Outcome| match outcome {
        Outcome::Password(pw) => pw,
        _ => String::new(),
    };
    let result = match action {
        UserAction::Add { id, name, role } => match Role::parse(role) {
            Err(e) => {
                let _ = writeln!(err, "--role: {}", e.message());
                return EXIT_REJECTED;
            }
            Ok(role) => app.execute(&operator, Request::AddUser { id, name, role }, today).map(|o| {
                let pw = password(o);
                format!("利用者 {id} を追加しました（{}）。初期パスワード（一度だけ表示）: {pw}", role.label())
            }),
        },
        UserAction::Disable { id } => {
            app.execute(&operator, Request::DisableUser { id }, today).map(|_| format!("利用者 {id} を無効にしました"))
        }
        UserAction::ResetPassword { id } => app
            .execute(&operator, Request::ResetPassword { id }, today)
            .map(|o| format!("利用者 {id} の新しいパスワード（一度だけ表示）: {}", password(o))),
        UserAction::List => {
            for a in app.accounts().all() {
                let state = if a.disabled { "無効" } else { "有効" };
                let _ = writeln!(out, "{}\t{}\t{}\t{state}", a.id, a.name, a.role.code());
            }
            return EXIT_OK;
        }
    };
    match result {
        Ok(message) => {
            let _ = writeln!(out, "{message}");
            EXIT_OK
        }
        Err(e) => crate::cli::failed(err, &e),
    }
}
