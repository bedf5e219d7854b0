//! 運用窓口 (the control socket): how `daicho backup` and `daicho status` reach a running server.
//!
//! sled lets one process open a database, so while the server runs the CLI cannot open the
//! ledger itself. The server listens on a Unix socket in the data directory (`DATA/daicho.sock`,
//! mode 0600: only the account running the server can connect). A client sends one JSON line
//! and reads one JSON line back:
//!
//! - `{"op":"status"}` -> `{"ok":true,"health":{...}}`
//! - `{"op":"backup","out":"/abs/file"}` -> `{"ok":true,"backup":{...}}`; the server writes the
//!   file, so the path is the server's, and it must not exist yet.
//!
//! Failures answer `{"ok":false,"error":"..."}`. Requests are served one at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use daicho_app::backup::backup_to;
use daicho_app::health::Health;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::app::{App, now};

/// The socket's path for a data directory.
pub fn socket_path(data: &Path) -> PathBuf {
    daicho_app::ledger::control_socket(data)
}

/// A request line.
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Status,
    Backup { out: PathBuf },
}

/// Binds the control socket of `app` (replacing a stale one). `None` when it cannot be bound
/// (for example a path longer than a socket address allows): the server runs without it.
#[cfg(unix)]
pub fn bind(data: &Path) -> Option<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data);
    if path.exists() {
        // A socket nobody answers on was left by a server that did not stop cleanly.
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            tracing::warn!("another server answers on the control socket; not replacing it");
            return None;
        }
        let _ = std::fs::remove_file(&path);
    }
    match tokio::net::UnixListener::bind(&path) {
        Ok(listener) => {
            if std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).is_err() {
                let _ = std::fs::remove_file(&path);
                return None;
            }
            Some(listener)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no control socket: daicho backup and status need the server stopped");
            None
        }
    }
}

/// Serves control requests until the listener fails; the caller stops it with the server.
#[cfg(unix)]
pub async fn serve(listener: tokio::net::UnixListener, app: Arc<App>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { return };
        let (read, mut write) = stream.into_split();
        let mut line = String::new();
        let mut reader = BufReader::new(read).take(64 * 1024);
        if reader.read_line(&mut line).await.is_err() {
            continue;
        }
        let answer = match serde_json::from_str::<Request>(&line) {
            Err(_) => json!({"ok": false, "error": "要求を読めません"}),
            Ok(request) => {
                let app = app.clone();
                tokio::task::spawn_blocking(move || handle(&app, request))
                    .await
                    .unwrap_or_else(|_| json!({"ok": false, "error": "処理中に失敗しました"}))
            }
        };
        let mut text = answer.to_string();
        text.push('\n');
        let _ = write.write_all(text.as_bytes()).await;
    }
}

fn handle(app: &App, request: Request) -> Value {
    match request {
        Request::Status => {
            // Fresh figures; the data directory is walked without the ledger lock.
            let health = {
                let mut ledger = app.ledger();
                Health::of_ledger(&app.data, &mut ledger, Some(&app.access_store))
            };
            match health {
                Ok(mut health) => {
                    health.measure_disk(&app.data);
                    json!({"ok": true, "health": health})
                }
                Err(e) => json!({"ok": false, "error": e}),
            }
        }
        Request::Backup { out } => {
            if !out.is_absolute() {
                return json!({"ok": false, "error": "出力先は絶対パスで指定してください"});
            }
            let logs = [("ledger", &app.store), ("access", &app.access_store)];
            let created = now().to_rfc3339();
            match backup_to(&app.data, &logs, &app.municipality, &created, &out) {
                Ok(note) => {
                    tracing::info!(events = note.logs.first().map_or(0, |l| l.head_position), "backup written");
                    json!({"ok": true, "backup": note})
                }
                Err(e) => json!({"ok": false, "error": e}),
            }
        }
    }
}
