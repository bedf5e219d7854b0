//! `daicho verify`: walk the whole hash chain and every index, re-decode every payload, and name
//! the first bad position. Exit status 0 when the ledger is intact, 1 when it is damaged, 2 when
//! it cannot be read at all.

use std::io::Write;
use std::path::Path;

use daicho_domain::codec;
use daicho_domain::ids::CommandId;
use daicho_store::verify::{VerifyOptions, verify_dir};

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE};
use daicho_app::ledger::store_dir;

/// Runs `verify`: the ledger's log, then (when the web UI has written one) the access log.
pub fn run(data: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    if data.exists()
        && let Err(e) = daicho_app::ledger::check_private(data)
    {
        let _ = writeln!(err, "{}: {e}", data.display());
        return crate::cli::EXIT_UNREADABLE;
    }
    let mut payload = |e: &daicho_store::Envelope| -> Result<(), String> {
        codec::decode_any(&e.event_type, e.schema_version, &e.payload).map_err(|e| e.to_string())?;
        if e.stream.as_str() != daicho_app::ledger::CONFIG_STREAM {
            CommandId::parse(&e.correlation_id).map_err(|_| "correlation id is not a command id".to_owned())?;
        }
        Ok(())
    };
    let code = verify_one(&store_dir(data), "", &mut payload, out, err);
    let access = daicho_app::access::access_dir(data);
    if code != EXIT_OK || !access.exists() {
        return code;
    }
    let mut payload = |e: &daicho_store::Envelope| -> Result<(), String> {
        if e.event_type != codec::ACCESS_RECORDED {
            return Err(format!("{} in the access log", e.event_type));
        }
        codec::decode_access(e.schema_version, &e.payload).map(|_| ()).map_err(|e| e.to_string())
    };
    verify_one(&access, "閲覧記録 ", &mut payload, out, err)
}

/// Verifies the store in `dir`, reporting with `label` before each line.
fn verify_one(
    dir: &Path,
    label: &str,
    payload: &mut dyn FnMut(&daicho_store::Envelope) -> Result<(), String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let mut progress = |n: u64| {
        let _ = writeln!(err, "{label}検証中… {n}件");
    };
    let options = VerifyOptions { payload, progress: &mut progress, update_checkpoint: true };
    match verify_dir(dir, options) {
        Err(e) => {
            let _ = writeln!(out, "{label}検証できません: {e}");
            if matches!(e, daicho_store::StoreError::Damaged { .. }) { EXIT_REJECTED } else { EXIT_UNREADABLE }
        }
        Ok(report) => match report.problem {
            None => {
                let _ = writeln!(
                    out,
                    "{label}検証OK: {}件の事象、{}ストリーム。先頭 位置 {} ハッシュ {}",
                    report.events_verified, report.streams, report.recorded_head.position, report.recorded_head.hash
                );
                EXIT_OK
            }
            Some(problem) => {
                match problem.position {
                    Some(p) => {
                        let _ = writeln!(out, "{label}不整合: 位置 {p} （{}）", problem.reason);
                    }
                    None => {
                        let _ = writeln!(out, "{label}不整合: {}", problem.reason);
                    }
                }
                let _ = writeln!(out, "{label}位置 {} までは正常でした。", report.events_verified);
                EXIT_REJECTED
            }
        },
    }
}
