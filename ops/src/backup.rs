//! `daicho backup`, `daicho restore` and `daicho status`: the operator's safety net.
//!
//! While a server runs on the data directory it holds the database lock, so `backup` and
//! `status` ask it through its control socket (`daicho_app::ledger::control_socket`, served by
//! `daicho_web::control`); otherwise they open the
//! ledger themselves. `restore` builds a new data directory from a backup file: every record's
//! place in the hash chain is checked as it is written, then the whole ledger is verified (as
//! `daicho verify` does) and the register projection rebuilt.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use daicho_app::backup::{BackupNote, backup_to};
use daicho_app::health::{Health, human_bytes};
use daicho_app::ledger::{Ledger, store_dir};
use daicho_store::Store;
use serde_json::{Value, json};

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE};

/// Asks the server running on `data`, if there is one: `None` when nobody answers.
#[cfg(unix)]
fn ask_server(data: &Path, request: &Value) -> Option<Result<Value, String>> {
    let path = daicho_app::ledger::control_socket(data);
    let mut stream = std::os::unix::net::UnixStream::connect(&path).ok()?;
    let mut line = request.to_string();
    line.push('\n');
    if let Err(e) = stream.write_all(line.as_bytes()) {
        return Some(Err(format!("稼働中のサーバーに送れません: {e}")));
    }
    let mut answer = String::new();
    if let Err(e) = BufReader::new(stream).read_line(&mut answer) {
        return Some(Err(format!("稼働中のサーバーから応答がありません: {e}")));
    }
    let value: Value = match serde_json::from_str(&answer) {
        Ok(v) => v,
        Err(_) => return Some(Err("稼働中のサーバーの応答を読めません".into())),
    };
    if value["ok"] == true {
        Some(Ok(value))
    } else {
        Some(Err(value["error"].as_str().unwrap_or("失敗しました").to_owned()))
    }
}

#[cfg(not(unix))]
fn ask_server(_: &Path, _: &Value) -> Option<Result<Value, String>> {
    None
}

/// Opens the ledger and, when the data directory has one, the access log's store; or says why
/// not on `err` and gives the exit status.
fn open_local(data: &Path, err: &mut dyn Write) -> Result<(Ledger, Option<Store>), u8> {
    let ledger = crate::cli::open_ledger(data, err)?;
    let dir = daicho_app::access::access_dir(data);
    if !dir.exists() {
        return Ok((ledger, None));
    }
    match Store::open(&dir) {
        Ok(access) => Ok((ledger, Some(access))),
        Err(e) => {
            let _ = writeln!(err, "閲覧記録を開けません: {e}");
            Err(EXIT_UNREADABLE)
        }
    }
}

/// `daicho backup --out FILE`.
pub fn backup(data: &Path, file: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let target = match std::path::absolute(file) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "{}: {e}", file.display());
            return EXIT_UNREADABLE;
        }
    };
    let note = match ask_server(data, &json!({"op": "backup", "out": target})) {
        Some(Ok(answer)) => serde_json::from_value::<BackupNote>(answer["backup"].clone()).map_err(|e| e.to_string()),
        Some(Err(e)) => Err(e),
        None => {
            let (ledger, access) = match open_local(data, err) {
                Ok(opened) => opened,
                Err(code) => return code,
            };
            let mut logs = vec![("ledger", ledger.store())];
            if let Some(a) = &access {
                logs.push(("access", a));
            }
            let created = daicho_app::clock::now().to_rfc3339();
            backup_to(data, &logs, &ledger.config().municipality.name, &created, &target)
        }
    };
    match note {
        Ok(note) => {
            let logs: Vec<String> = note
                .logs
                .iter()
                .map(|l| format!("{} 位置 {} ハッシュ {}", l.name, l.head_position, &l.head_hash[..8]))
                .collect();
            let _ = writeln!(
                out,
                "{}: 退避しました（{}バイト、SHA-256 {}）。{}",
                note.file,
                note.bytes,
                note.file_sha256,
                logs.join("、")
            );
            EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(err, "退避できません: {e}");
            EXIT_UNREADABLE
        }
    }
}

/// `daicho restore --from FILE` into the (new) data directory.
pub fn restore(data: &Path, from: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let occupied = std::fs::read_dir(data).map(|mut d| d.next().is_some()).unwrap_or(false);
    if occupied {
        let _ = writeln!(
            err,
            "{}: 空でないディレクトリには復元しません。新しいディレクトリを指定してください",
            data.display()
        );
        return EXIT_REJECTED;
    }
    let file = match std::fs::File::open(from) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(err, "{}: 読めません: {e}", from.display());
            return EXIT_UNREADABLE;
        }
    };
    let mut input = BufReader::with_capacity(1 << 20, file);
    let dir_of = |name: &str| match name {
        "ledger" => Some(store_dir(data)),
        "access" => Some(daicho_app::access::access_dir(data)),
        _ => None,
    };
    let mut progress = |name: &str, n: u64, total: u64| {
        if n.is_multiple_of(100_000) || n == total {
            let _ = writeln!(err, "{name}: {n}/{total}件");
        }
    };
    let summary = match daicho_store::backup::restore_backup(&mut input, &dir_of, &mut progress) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_dir_all(data);
            let _ = writeln!(
                err,
                "{}: 復元できません（作りかけの {} は削除しました）: {e}",
                from.display(),
                data.display()
            );
            return if matches!(e, daicho_store::StoreError::Damaged { .. }) { EXIT_REJECTED } else { EXIT_UNREADABLE };
        }
    };
    // The whole ledger as `daicho verify` sees it: chain, indexes, every payload decoded.
    let mut verified = Vec::new();
    let code = crate::verify::run(data, &mut verified, err);
    let _ = out.write_all(&verified);
    if code != EXIT_OK {
        let _ = writeln!(err, "{}: 復元した台帳が検証を通りません", data.display());
        return code;
    }
    let rebuilt = Ledger::open(data)
        .map_err(|e| e.to_string())
        .and_then(|mut l| l.projections().map(|_| ()).map_err(|e| e.to_string()));
    if let Err(e) = rebuilt {
        let _ = writeln!(err, "{}: 投影を作れません（daicho rebuild で作り直せます）: {e}", data.display());
        return EXIT_UNREADABLE;
    }
    for part in &summary.parts {
        let _ = writeln!(out, "復元しました: {} 位置 {} ハッシュ {}", part.name, part.events, part.head);
    }
    EXIT_OK
}

/// `daicho status`.
pub fn status(data: &Path, as_json: bool, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let (health, serving) = match ask_server(data, &json!({"op": "status"})) {
        Some(Ok(answer)) => match serde_json::from_value::<Health>(answer["health"].clone()) {
            Ok(h) => (h, true),
            Err(e) => {
                let _ = writeln!(err, "稼働中のサーバーの応答を読めません: {e}");
                return EXIT_UNREADABLE;
            }
        },
        Some(Err(e)) => {
            let _ = writeln!(err, "{e}");
            return EXIT_UNREADABLE;
        }
        None => {
            let (mut ledger, access) = match open_local(data, err) {
                Ok(opened) => opened,
                Err(code) => return code,
            };
            match Health::collect(data, &mut ledger, access.as_ref()) {
                Ok(h) => (h, false),
                Err(e) => {
                    let _ = writeln!(err, "{e}");
                    return EXIT_UNREADABLE;
                }
            }
        }
    };
    if as_json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&health).unwrap_or_default());
        return EXIT_OK;
    }
    for line in health_lines(&health, serving) {
        let _ = writeln!(out, "{line}");
    }
    EXIT_OK
}

/// A time in µs since the epoch, in Japan.
pub fn jst_time(us: i64) -> String {
    daicho_app::clock::format_minute(us)
}

/// The status as lines of text.
fn health_lines(h: &Health, serving: bool) -> Vec<String> {
    let mut lines = vec![
        format!("台帳: {}（{}）", h.municipality, if serving { "サーバー稼働中" } else { "サーバー停止中" }),
        format!("先頭: 位置 {} ハッシュ {}（{}）", h.head_position, h.head_hash, jst_time(h.head_recorded_at_us)),
        format!("受給者台帳の投影: 位置 {}（遅れ {}件）", h.register_position, h.register_lag),
    ];
    if let Some(p) = h.access_position {
        lines.push(format!("閲覧記録: 位置 {p}"));
    }
    lines.push(match &h.last_verify {
        Some(v) => format!(
            "最終検証: 位置 {} ハッシュ {}（{}）",
            v.position,
            &v.hash[..8.min(v.hash.len())],
            jst_time(v.verified_at_us)
        ),
        None => "最終検証: なし（daicho verify を実行してください）".into(),
    });
    lines.push(match &h.last_backup {
        Some(b) => format!(
            "最終退避: {}（{}、{}、位置 {}）",
            b.created_at,
            b.file,
            human_bytes(b.bytes),
            b.logs.first().map_or(0, |l| l.head_position)
        ),
        None => "最終退避: なし（daicho backup --out FILE を実行してください）".into(),
    });
    if h.pmh.is_empty() {
        lines.push("PMH: まだ出力していません".into());
    }
    for p in &h.pmh {
        lines.push(format!(
            "PMH {}: 第{}回 {} 位置 {} まで {}件（{}）",
            p.program,
            p.batch,
            p.mode,
            p.to_position,
            p.records,
            jst_time(p.recorded_at_us)
        ));
    }
    lines.push(format!(
        "キャッシュ: 台帳 {} MiB、受給者台帳の投影 {} MiB（--log-cache-mib、--read-cache-mib で変更できます）",
        h.memory.log_cache_mib, h.memory.read_cache_mib
    ));
    let disk: Vec<String> = h.disk.iter().map(|(name, bytes)| format!("{name} {}", human_bytes(*bytes))).collect();
    lines.push(format!("ディスク使用量: {}", disk.join("、")));
    if h.exposed.is_empty() {
        lines.push("ファイルの権限: すべて所有者のみ".into());
    }
    for (path, mode) in &h.exposed {
        lines.push(format!(
            "警告: {path} の権限が {mode:04o} です（所有者以外も読めます。chmod go-rwx で直してください）"
        ));
    }
    lines
}
