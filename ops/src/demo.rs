//! `daicho demo --recipients N`: a synthetic さくら市 in the ledger, fast.
//!
//! Each recipient's history ([`crate::synth::history`]) is decided command by command with the
//! real `decide` against the recipient's own state (My Numbers are unique by construction, so no
//! cross-recipient lookup is needed), and the accepted commands are queued to the store without
//! waiting: the registration creates the keyed stream, later commands name it by key with exact
//! expected versions. The store commits them in order, many per device sync.

use std::collections::VecDeque;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use chrono::NaiveDate;
use daicho_domain::command::parse_command_value;
use daicho_domain::config::Config;
use daicho_domain::{Context, Decision, State, decide, evolve};
use daicho_store::Store;

use crate::cli::{EXIT_OK, EXIT_REJECTED, EXIT_UNREADABLE};
use crate::synth::history;
use daicho_app::bulk::{self, Queued};
use daicho_app::ledger::{Ledger, RECIPIENT_CATEGORY};
use daicho_app::{Actor, Request};

/// Appends queued before the loader waits for the oldest.
pub const QUEUE_APPENDS_MAX: usize = 4096;

/// What a load did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Recipients registered.
    pub recipients: u64,
    /// Commands recorded.
    pub commands: u64,
    /// Events written.
    pub events: u64,
    /// Generated commands the rules refused (not recorded).
    pub refused: u64,
    /// The refusals by rejection code.
    pub refused_by: std::collections::BTreeMap<&'static str, u64>,
}

/// The demo fee schedule: from FY2027, 2 yen per counted recipient and month.
pub const DEMO_FEE_FROM: &str = "2027-04";
/// See [`DEMO_FEE_FROM`].
pub const DEMO_FEE_YEN: u32 = 2;

/// Loads recipients `first..=last` of the synthetic municipality `seed` into `store`.
pub fn load(
    store: &Store,
    config: &Config,
    seed: u64,
    first: u64,
    last: u64,
    today: NaiveDate,
    progress: &mut dyn FnMut(u64),
) -> Result<Loaded, String> {
    let ctx = Context::new(today, config);
    let mut queue: VecDeque<Queued> = VecDeque::new();
    let mut loaded = Loaded::default();
    for i in first..=last {
        let mut state = State::default();
        let mut version = 0u64;
        for raw in history(seed, i, today) {
            let cmd = parse_command_value(raw).map_err(|e| format!("recipient {i}: generated command: {e}"))?;
            let events = match decide(&state, &cmd, &ctx) {
                Ok(Decision::Record(events)) => events,
                Ok(Decision::AlreadyApplied) => continue,
                Err(r) => {
                    loaded.refused += 1;
                    *loaded.refused_by.entry(r.code()).or_default() += 1;
                    continue;
                }
            };
            queue.push_back(bulk::queue(store, &cmd, &events, version)?);
            if queue.len() >= QUEUE_APPENDS_MAX
                && let Some(p) = queue.pop_front()
            {
                p.wait().map_err(|e| format!("append: {e}"))?;
            }
            version += events.len() as u64;
            loaded.events += events.len() as u64;
            loaded.commands += 1;
            state = events.iter().fold(state, evolve);
        }
        if version > 0 {
            loaded.recipients += 1;
        }
        progress(i - first + 1);
    }
    for p in queue {
        p.wait().map_err(|e| format!("append: {e}"))?;
    }
    Ok(loaded)
}

/// `daicho demo`: creates the ledger if needed and loads the synthetic municipality.
pub fn run(data: &Path, recipients: u64, seed: u64, today: NaiveDate, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let ledger = if daicho_app::ledger::store_dir(data).exists() {
        Ledger::open(data)
    } else {
        Ledger::init(data, daicho_domain::config::DEMO_TOML, today)
    };
    let ledger = match ledger {
        Ok(l) => l,
        Err(e) => {
            let _ = writeln!(err, "{}: 台帳を開けません: {e}", data.display());
            return EXIT_UNREADABLE;
        }
    };
    match ledger.store().stream_for_key(RECIPIENT_CATEGORY, "D0000001") {
        Ok(None) => {}
        Ok(Some(_)) => {
            let _ = writeln!(err, "{}: この台帳には既にデモの受給者がいます", data.display());
            return EXIT_REJECTED;
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return EXIT_UNREADABLE;
        }
    }
    let terminal = std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut progress = |done: u64| {
        if terminal && (done.is_multiple_of(1000) || done == recipients) {
            eprint!("\rデモデータ作成中 {done}/{recipients}人   ");
        }
    };
    let config = ledger.config().clone();
    let result = load(ledger.store(), &config, seed, 1, recipients, today, &mut progress);
    if terminal {
        eprintln!();
    }
    match result {
        Ok(l) => {
            let secs = started.elapsed().as_secs_f64();
            let _ = writeln!(
                out,
                "デモデータ: 受給者 {}人、指示 {}件、事象 {}件（{secs:.1}秒、{:.0}件/秒）。規則で却下された生成指示 {}件",
                l.recipients,
                l.commands,
                l.events,
                l.events as f64 / secs.max(0.001),
                l.refused
            );
            for (code, n) in &l.refused_by {
                let _ = writeln!(out, "  却下 {code}: {n}件");
            }
            // The operating fee: about 2 yen per recipient and month from April 2027 (FY2027).
            let log = ledger.billing_log();
            match log {
                Ok(log) if log.schedule.first_month().is_none() => {
                    let from = daicho_domain::billing::Month::parse(DEMO_FEE_FROM);
                    let recorded = from.map_err(|e| e.message()).and_then(|from| {
                        let app = daicho_app::App::of(ledger, data)?;
                        let schedule = Request::FeeSchedule { from, unit_yen: DEMO_FEE_YEN };
                        app.execute(&Actor::Operator("daicho-demo".into()), schedule, today).map_err(|e| e.to_string())
                    });
                    if let Err(e) = recorded {
                        let _ = writeln!(err, "料金表を記録できません: {e}");
                        return EXIT_UNREADABLE;
                    }
                    let _ = writeln!(out, "料金表: {DEMO_FEE_FROM}から1人1か月{DEMO_FEE_YEN}円");
                }
                Ok(_) => {}
                Err(e) => {
                    let _ = writeln!(err, "{e}");
                    return EXIT_UNREADABLE;
                }
            }
            EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(err, "デモデータを作成できません: {e}");
            EXIT_UNREADABLE
        }
    }
}
