//! `daicho verify`: walk the whole hash chain and every index, re-decode every payload, and name
//! the first bad position. Exit status 0 when the ledger is intact, 1 when it is damaged, 2 when
//! it cannot be read at all.

use std::io::Write;
use std::path::Path;

use daicho_domain::codec;
use daicho_domain::ids::CommandId;
use daicho_store::verify::{VerifyOptions, verify_dir};

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE};
use daicho_projections::ledger::store_dir;

/// Runs `verify`.
pub fn run(data: &Path, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let mut payload = |e: &daicho_store::Envelope| -> Result<(), String> {
        codec::decode_any(&e.event_type, e.schema_version, &e.payload).map_err(|e| e.to_string())?;
        if e.stream.as_str() != daicho_projections::ledger::CONFIG_STREAM {
            CommandId::parse(&e.correlation_id).map_err(|_| "correlation id is not a command id".to_owned())?;
        }
        Ok(())
    };
    let mut progress = |n: u64| {
        let _ = writeln!(err, "検証中… {n}件");
    };
    let options = VerifyOptions { payload: &mut payload, progress: &mut progress, update_checkpoint: true };
    match verify_dir(&store_dir(data), options) {
        Err(e) => {
            let _ = writeln!(out, "検証できません: {e}");
            if matches!(e, daicho_store::StoreError::Damaged { .. }) { EXIT_REJECTED } else { EXIT_UNREADABLE }
        }
        Ok(report) => match report.problem {
            None => {
                let _ = writeln!(
                    out,
                    "検証OK: {}件の事象、{}ストリーム。先頭 位置 {} ハッシュ {}",
                    report.events_verified, report.streams, report.recorded_head.position, report.recorded_head.hash
                );
                EXIT_OK
            }
            Some(problem) => {
                match problem.position {
                    Some(p) => {
                        let _ = writeln!(out, "不整合: 位置 {p} （{}）", problem.reason);
                    }
                    None => {
                        let _ = writeln!(out, "不整合: {}", problem.reason);
                    }
                }
                let _ = writeln!(out, "位置 {} までは正常でした。", report.events_verified);
                EXIT_REJECTED
            }
        },
    }
}
