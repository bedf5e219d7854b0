//! `daicho billing`: the monthly PMH operating-fee statement (運営費明細), closing a month, and
//! the fee schedule (料金表).
//!
//! - `daicho billing --month M [--policy P] [--out DIR]`: a draft at the head for an open
//!   month; for a closed month, the closed statement again (byte for byte, checked against the
//!   hashes recorded when it was closed).
//! - `--close --actor ID`: close the month (a supervisor's or administrator's account).
//! - `daicho billing schedule --unit-yen N --from-month M --actor ID`: record a fee schedule
//!   entry (an administrator's account); `daicho billing schedule` lists the schedule.

use std::io::Write;
use std::path::Path;

use chrono::NaiveDate;
use daicho_app::billing::{BillingError, StatementFiles, default_dir};
use daicho_app::ledger::Ledger;
use daicho_app::{Actor, App, Failure, Outcome, Request};
use daicho_domain::billing::{self, Month, Policy};
use daicho_domain::ids::UserId;

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE, failed, open_ledger};

/// What `daicho billing` is asked to do.
pub struct StatementRequest<'a> {
    pub data: &'a Path,
    pub month: &'a str,
    pub policy: Option<&'a str>,
    pub out_dir: Option<&'a Path>,
    pub close: bool,
    pub actor: Option<&'a str>,
    pub today: NaiveDate,
}

/// The `--actor` of a billing write: an enabled account (what it may do is `execute`'s to say).
fn billing_actor(ledger: &Ledger, actor: Option<&str>, what: &str) -> Result<Actor, String> {
    let Some(actor) = actor else {
        return Err(format!("--actor: {what}には担当者のIDが必要です"));
    };
    let role = crate::reader::enabled_account(ledger, actor)?;
    let id = UserId::parse(actor).map_err(|e| format!("--actor: {}", e.message()))?;
    Ok(Actor::User { id, role })
}

fn refused(err: &mut dyn Write, e: &BillingError) -> u8 {
    let _ = writeln!(err, "{e}");
    match e {
        BillingError::Other(_) => EXIT_UNREADABLE,
        _ => EXIT_REJECTED,
    }
}

fn report(out: &mut dyn Write, dir: &Path, f: &StatementFiles) {
    let s = &f.statement;
    let status = match s.status {
        daicho_projections::fee::Status::Draft => "試算",
        daicho_projections::fee::Status::Closed => "確定",
    };
    let _ = writeln!(
        out,
        "{} {}（位置 {}、計上方針 {}）: 当月 {}件 {}円、調整 {}件 {}円、請求額 {}円",
        s.month,
        status,
        s.position,
        s.policy,
        s.units,
        s.month_yen,
        s.adjustments.len(),
        s.adjustment_yen,
        s.total_yen
    );
    let counts: Vec<String> = s.counts.iter().map(|(p, c)| format!("{p} {c}")).collect();
    let _ = writeln!(out, "方針別の件数: {}", counts.join("、"));
    if s.unit_yen.is_none() {
        let _ = writeln!(out, "料金表の開始前の月のため課金されません");
    }
    for file in &f.files {
        let _ = writeln!(out, "{}\t{}", dir.join(&file.name).display(), file.sha256);
    }
}

/// `daicho billing --month ...`.
pub fn statement(request: &StatementRequest<'_>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let month = match Month::parse(request.month) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(err, "--month: {}", e.message());
            return EXIT_REJECTED;
        }
    };
    let policy = match request.policy.map(Policy::parse).transpose() {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(err, "--policy: {}", e.message());
            return EXIT_REJECTED;
        }
    };
    let ledger = match open_ledger(request.data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let actor = if request.close {
        match billing_actor(&ledger, request.actor, "月の締め") {
            Ok(a) => Some(a),
            Err(e) => {
                let _ = writeln!(err, "{e}");
                return EXIT_REJECTED;
            }
        }
    } else {
        None
    };
    let app = match App::of(ledger, request.data) {
        Ok(app) => app,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_UNREADABLE;
        }
    };
    let dir = request.out_dir.map(Path::to_path_buf).unwrap_or_else(|| default_dir(month));
    // Refuse a closing that cannot succeed before touching the output directory.
    if request.close
        && let Err(r) = billing::ended(month, request.today)
    {
        return refused(err, &r.into());
    }
    if let Err(e) = daicho_app::files::empty_output_dir(&dir) {
        let _ = writeln!(err, "{e}");
        return EXIT_UNREADABLE;
    }
    let result = match &actor {
        Some(actor) => {
            let close =
                Request::CloseMonth { month, policy: policy.unwrap_or(Policy::PersonsOverlapping), dir: Some(&dir) };
            match app.execute(actor, close, request.today) {
                Ok(Outcome::MonthClosed { files, position }) => Ok((*files, Some(position))),
                Ok(other) => Err(Failure::Infrastructure(format!("unexpected outcome {other:?}"))),
                Err(e) => Err(e),
            }
        }
        None => app.ledger().fee_statement_into(month, policy, &dir).map(|files| (files, None)).map_err(Failure::from),
    };
    match result {
        Ok((files, closed_at)) => {
            report(out, &dir, &files);
            if let Some(position) = closed_at {
                let _ = writeln!(out, "{} を締めました（締めの記録: 位置 {position}）", month.label_ja());
            }
            match files.matches_closed {
                Some(true) => {
                    let _ = writeln!(out, "締め済みの明細を再作成しました。締めの時に記録したハッシュと一致します");
                }
                Some(false) => {
                    let _ = writeln!(err, "締め済みの明細を再作成しましたが、記録したハッシュと一致しません");
                    return EXIT_REJECTED;
                }
                None => {}
            }
            EXIT_OK
        }
        Err(e) => {
            // Nothing was recorded; remove what an incomplete statement left (the directory was
            // empty or new).
            if let Ok(entries) = std::fs::read_dir(&dir) {
                for entry in entries.flatten() {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            if let Ok(mut entries) = std::fs::read_dir(&dir)
                && entries.next().is_none()
            {
                let _ = std::fs::remove_dir(&dir);
            }
            failed(err, &e)
        }
    }
}

/// `daicho billing schedule`: list, or record an entry.
pub fn schedule(
    data: &Path,
    set: Option<(u32, &str)>,
    actor: Option<&str>,
    today: NaiveDate,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let ledger = match open_ledger(data, err) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let actor = match set.map(|_| billing_actor(&ledger, actor, "料金表の設定")).transpose() {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_REJECTED;
        }
    };
    let app = match App::of(ledger, data) {
        Ok(app) => app,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_UNREADABLE;
        }
    };
    if let (Some((unit_yen, from)), Some(actor)) = (set, actor) {
        let from = match Month::parse(from) {
            Ok(m) => m,
            Err(e) => {
                let _ = writeln!(err, "--from-month: {}", e.message());
                return EXIT_REJECTED;
            }
        };
        match app.execute(&actor, Request::FeeSchedule { from, unit_yen }, today) {
            Ok(outcome) => {
                let position = match outcome {
                    Outcome::Recorded { position, .. } => position.0,
                    _ => 0,
                };
                let _ = writeln!(out, "{}から1人1か月{unit_yen}円（位置 {position}）", from.label_ja());
            }
            Err(e) => return failed(err, &e),
        }
    }
    let log = app.ledger().billing_log();
    match log {
        Ok(log) => {
            if log.schedule.first_month().is_none() {
                let _ = writeln!(out, "料金表はまだありません（課金されません）");
            }
            for (month, yen) in log.schedule.entries() {
                let _ = writeln!(out, "{month}\t{yen}円");
            }
            for (month, c) in &log.closed {
                let _ = writeln!(out, "{month}\t締め済み\t{}\t請求額 {}円", c.policy, c.total_yen);
            }
            EXIT_OK
        }
        Err(e) => refused(err, &e),
    }
}
