//! `daicho rebuild [NAME] [--catch-up]`: throw a projection away and apply the whole log again
//! (or only what it has not seen yet), with a progress line on a terminal, and report events
//! per second.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE};

/// The projections `rebuild` knows.
pub const NAMES: [&str; 1] = ["register"];

/// Runs `rebuild`.
pub fn run(data: &Path, name: Option<&str>, catch_up: bool, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    if let Some(n) = name
        && !NAMES.contains(&n)
    {
        let _ = writeln!(err, "{n}: そのような射影はありません（{}）", NAMES.join(", "));
        return EXIT_REJECTED;
    }
    let mut ledger = match crate::cli::open_ledger(data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_shown = Instant::now();
    let mut progress = |done: u64, total: u64| {
        if terminal && (last_shown.elapsed().as_millis() > 200 || done == total) {
            last_shown = Instant::now();
            let pct = (done * 100).checked_div(total).unwrap_or(100);
            eprint!("\r再構築中 {done}/{total}件 ({pct}%)   ");
        }
    };
    let store = ledger.store().clone();
    let from = ledger.projections_unsynced().checkpoint().map_or(daicho_store::Position(0), |(p, _)| p);
    let result = if catch_up {
        match ledger.projections_unsynced().catch_up(&store, None, &mut progress) {
            Err(daicho_projections::ProjectionError::Stale(_)) => {
                ledger.projections_unsynced().rebuild(&store, None, &mut progress)
            }
            other => other,
        }
    } else {
        ledger.projections_unsynced().rebuild(&store, None, &mut progress)
    };
    if terminal {
        eprintln!();
    }
    match result {
        Ok(position) => {
            let secs = started.elapsed().as_secs_f64();
            let applied = if catch_up { position.0.saturating_sub(from.0) } else { position.0 };
            let rate = if secs > 0.0 { applied as f64 / secs } else { 0.0 };
            let what = if catch_up { "追いつきました" } else { "再構築しました" };
            let _ = writeln!(out, "register: 位置 {position} まで{what}（{applied}件、{secs:.1}秒、{rate:.0}件/秒）");
            EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(err, "再構築に失敗しました: {e}");
            EXIT_UNREADABLE
        }
    }
}
