//! Command-line interface: argument parsing and dispatch to subcommands.
//!
//! Exit statuses follow the command contract: 0 when every line was accepted (or already
//! applied), 1 when any line was rejected or a configuration is invalid, 2 when a file could
//! not be read.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use daicho_app::{Actor, Request};
use daicho_domain::config::{Config, DEMO_TOML, PmhMode};

/// 台帳 daicho: ledger of medical-subsidy recipients.
#[derive(Parser, Debug)]
#[command(name = "daicho", version, about, long_about = None)]
struct Cli {
    /// The ledger's data directory.
    #[arg(long, global = true, env = "DAICHO_DATA", default_value = "daicho-data")]
    data: PathBuf,
    /// Decide and record as of this date (YYYY-MM-DD) instead of today in Japan: for tests,
    /// trials and demos of the past, never for a ledger in use.
    #[arg(long, global = true, env = "DAICHO_TODAY")]
    today: Option<NaiveDate>,
    /// Page cache of the event log, in MiB (default: 128).
    #[arg(long, global = true, env = "DAICHO_LOG_CACHE_MIB", value_parser = clap::value_parser!(u64).range(8..=1_048_576))]
    log_cache_mib: Option<u64>,
    /// Page cache of the read models (the register), in MiB (default: 512 for `serve`, 256 for
    /// other commands).
    #[arg(long, global = true, env = "DAICHO_READ_CACHE_MIB", value_parser = clap::value_parser!(u64).range(8..=1_048_576))]
    read_cache_mib: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a JSON Lines command file against the rules, in memory, writing nothing.
    ///
    /// Prints one JSON line per input line, in order: accepted (with the events it would record)
    /// or rejected (with the rule's code and a Japanese message naming the line and field).
    Check {
        /// The command file (one JSON object per line; `-` for standard input).
        file: PathBuf,
        /// Municipality configuration (TOML). Default: the bundled さくら市 demo.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Create a ledger in the data directory, with a municipality configuration.
    ///
    /// Without --config, the bundled さくら市 demo configuration. Refuses to touch an existing
    /// ledger.
    Init {
        /// Municipality configuration (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Record a JSON Lines command file in the ledger.
    ///
    /// One JSON result line per input line, in order: accepted (with its position), already
    /// applied (with its original position) or rejected (nothing written). Exit status 0: all
    /// accepted or already applied; 1: some line rejected; 2: the file could not be read or the
    /// ledger could not be written.
    Apply {
        /// The command file (`-` for standard input).
        file: PathBuf,
    },
    /// Import a legacy CSV (UTF-8 or CP932) through a column profile, row by row.
    ///
    /// Every row is decided by the same rules as `apply` and is recorded whole or not at all.
    /// Writes a report (line, result, position, code, column, reason) to FILE.report.csv.
    /// Importing the same file again records nothing. Exit status 0: no row rejected; 1: some
    /// row rejected, or the profile or header is wrong; 2: a file or the ledger failed.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// The column profile (TOML); examples in examples/import/.
        #[arg(long)]
        profile: PathBuf,
        /// The report to write (must not exist). Default: FILE.report.csv.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Decide every row and write the report, recording nothing.
        #[arg(long)]
        dry_run: bool,
        /// Who imports (the actor of every recorded command).
        #[arg(long)]
        actor: String,
    },
    /// Write a backup of the ledger and the access log to one file, while the server runs or not.
    ///
    /// The logs up to their heads when the backup starts, as stored records (independent of
    /// sled's files), with a SHA-256 and a manifest. Restore with `daicho restore`.
    Backup {
        /// The backup file to write (must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Build a new data directory (--data, empty or absent) from a backup file.
    ///
    /// Checks the hash chain of every record as it writes it, verifies the whole ledger, and
    /// rebuilds the register.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
    },
    /// Health: head, projection lag, last verify, last backup, last PMH batches, disk use.
    Status {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify the whole ledger: hash chain, positions, stream versions, indexes, payloads.
    ///
    /// Names the first bad position. Exit status 0: intact; 1: damaged; 2: unreadable.
    Verify,
    /// Municipality configuration: print the demo, check a file, record a new one, show the
    /// one in force.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Rebuild a projection from the whole log (default: all of them).
    ///
    /// With --catch-up, only apply the events it has not seen yet (what every command that reads
    /// it does first): after a large `apply` or `import`, before the server starts.
    Rebuild {
        /// Projection name (register).
        name: Option<String>,
        /// Catch up instead of rebuilding (a projection that does not match the log is rebuilt).
        #[arg(long)]
        catch_up: bool,
    },
    /// Show a recipient on a date as the ledger knew it at a position, as JSON.
    Show {
        /// The caller's recipient id.
        recipient: String,
        /// The effective date to look at (YYYY-MM-DD). Default: today.
        #[arg(long)]
        as_of: Option<NaiveDate>,
        /// The log position to look from. Default: the head.
        #[arg(long)]
        as_at: Option<u64>,
        /// The account whose role decides what is shown (default: what a viewer sees); the
        /// access is recorded under the OS user.
        #[arg(long)]
        actor: Option<String>,
    },
    /// The register (or one recipient) on a date as the ledger knew it at a past moment.
    ///
    /// Prints one JSON line per recipient known then (My Number masked, a DV-protected address
    /// hidden unless --actor names a supervisor or administrator), or one recipient's view.
    Replay {
        /// A log position, or a time: 2026-11-20T17:00:00+09:00, or 2026-11-20 17:00 (Japan time).
        #[arg(long, value_parser = crate::audit::parse_as_at)]
        as_at: crate::audit::AsAt,
        /// The effective date to look at (YYYY-MM-DD). Default: today.
        #[arg(long)]
        as_of: Option<NaiveDate>,
        /// Only this recipient (the caller's id).
        #[arg(long)]
        recipient: Option<String>,
        /// The account whose role decides what is shown (default: what a viewer sees); the
        /// access is recorded under the OS user.
        #[arg(long)]
        actor: Option<String>,
    },
    /// Paper certificates as PDF (embedded IPAex font).
    Certificate {
        #[command(subcommand)]
        action: CertificateAction,
    },
    /// Audit tools.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Load a synthetic さくら市 (realistic recipients and years of events) into the ledger.
    ///
    /// Creates the ledger with the demo configuration if there is none. The same seed gives the
    /// same municipality.
    Demo {
        /// How many recipients.
        #[arg(long, default_value_t = 2000)]
        recipients: u64,
        /// Seed of the generator.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print the generated commands as JSON Lines instead of recording them.
        #[arg(long)]
        jsonl: bool,
    },
    /// The monthly PMH operating-fee statement (運営費明細), closing a month, the fee schedule.
    ///
    /// Writes billing-YYYY-MM-detail.csv (one line per counted recipient and program, then the
    /// adjustments of closed months), -summary.csv, .json and .html (12-month trend chart) into
    /// an empty OUT directory. An open month is a draft at the head; a closed month is computed
    /// again at its closing position and checked against the recorded hashes.
    Billing(BillingArgs),
    /// PMH (Public Medical Hub) files.
    Pmh {
        #[command(subcommand)]
        action: PmhAction,
    },
    /// Serve the caseworker web UI.
    ///
    /// With --demo and no ledger in the data directory, first loads a synthetic さくら市 and adds
    /// one user per role (viewer, caseworker, supervisor, admin, auditor), printing their
    /// passwords once.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Create a demo ledger and demo users when there are none.
        #[arg(long)]
        demo: bool,
        /// Recipients of the demo ledger.
        #[arg(long, default_value_t = 2000)]
        recipients: u64,
        /// Minutes without a request before a session ends.
        #[arg(long, default_value_t = 30)]
        idle_minutes: u64,
        /// Hours after login before a session ends.
        #[arg(long, default_value_t = 8)]
        absolute_hours: u64,
        /// Mark cookies Secure (set when a TLS proxy serves the UI).
        #[arg(long)]
        secure_cookies: bool,
    },
    /// Users of the web UI (run while the server is stopped).
    User {
        #[command(subcommand)]
        action: UserCommand,
        /// Who makes the change (recorded in the log).
        #[arg(long, default_value = "daicho-cli", global = true)]
        actor: String,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Add a user; prints a generated password once.
    Add {
        /// Login id (letters, digits, . _ -).
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// viewer, caseworker, supervisor, admin or auditor.
        #[arg(long)]
        role: String,
    },
    /// Disable a user (they can no longer log in).
    Disable { id: String },
    /// Give a user a new generated password; prints it once.
    ResetPassword { id: String },
    /// List users: id, name, role, state.
    List,
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Print the bundled さくら市 demo configuration.
    Demo,
    /// Validate a configuration file, naming every problem by place.
    Check { file: PathBuf },
    /// Record a new configuration in the ledger (in force from the next command).
    Set {
        file: PathBuf,
        /// Who records it.
        #[arg(long, default_value = "daicho-cli")]
        actor: String,
    },
    /// Print the configuration in force in the ledger.
    Current,
}

#[derive(Subcommand, Debug)]
enum CertificateAction {
    /// One recipient's certificate, for a day (default today).
    Print {
        /// The caller's recipient id.
        recipient: String,
        /// The certificate's id (受給者証ID).
        certificate: String,
        /// Print the span valid on this day (or the next to start). Default: today.
        #[arg(long)]
        as_of: Option<NaiveDate>,
        /// The PDF to write (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// The account printing (a DV-protected person's certificate needs a supervisor or
        /// administrator); the access is recorded under the OS user.
        #[arg(long)]
        actor: Option<String>,
    },
    /// Every certificate renewed with a new span starting between two dates, one per page.
    Batch {
        /// First and last start day of the renewed spans.
        #[arg(long, num_args = 2, value_names = ["FROM", "TO"])]
        renewed_between: Vec<NaiveDate>,
        /// The PDF to write (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// The account printing (a DV-protected person's certificate needs a supervisor or
        /// administrator); the access is recorded under the OS user.
        #[arg(long)]
        actor: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum AuditAction {
    /// Write a range of the log for independent checking: events.jsonl and manifest.json.
    ///
    /// scripts/verify-bundle DIR recomputes the hash chain with Python's standard library only.
    /// The bundle holds personal data: handle it like the ledger.
    Bundle {
        /// First position (default 1).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last position (default: the head).
        #[arg(long)]
        to: Option<u64>,
        /// Output directory (must be empty or absent).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct BillingArgs {
    #[command(subcommand)]
    action: Option<BillingAction>,
    /// The month (YYYY-MM).
    #[arg(long, required = true)]
    month: Option<String>,
    /// persons-overlapping (default), persons-month-end or certificates-overlapping.
    #[arg(long)]
    policy: Option<String>,
    /// Output directory (empty or absent). Default: billing-YYYY-MM.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Close the month: final statement, recorded with its totals and file hashes.
    #[arg(long, requires = "actor")]
    close: bool,
    /// Who closes it (an enabled supervisor or administrator account).
    #[arg(long)]
    actor: Option<String>,
}

#[derive(Subcommand, Debug)]
enum BillingAction {
    /// The fee schedule: list it, or record an entry with --unit-yen and --from-month.
    Schedule {
        /// Yen per counted recipient and month.
        #[arg(long, requires_all = ["from_month", "actor"])]
        unit_yen: Option<u32>,
        /// First month at this price (YYYY-MM).
        #[arg(long, requires = "unit_yen")]
        from_month: Option<String>,
        /// Who records it (an enabled administrator account).
        #[arg(long)]
        actor: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum PmhAction {
    /// Export PMH records: every program in its configured mode, or as chosen.
    ///
    /// Writes <program>_<mode>_<from>-<to>.json and .csv per program with records,
    /// manifest.json, and rejects.csv when records were held back, into an empty OUT directory,
    /// and records each batch in the log. With --batch N, regenerates batch N instead.
    Export {
        /// Output directory (must be empty or absent).
        #[arg(long)]
        out: PathBuf,
        /// diff or full. Default: each program's configured mode.
        #[arg(long, value_parser = parse_mode)]
        mode: Option<PmhMode>,
        /// Only this program (repeatable).
        #[arg(long)]
        program: Vec<String>,
        /// Regenerate a past batch, byte for byte.
        #[arg(long, conflicts_with_all = ["mode", "program"])]
        batch: Option<u64>,
        /// Who records it.
        #[arg(long, default_value = "daicho-cli")]
        actor: String,
    },
    /// Every record held back (保留) now, per program.
    ///
    /// A diff batch's manifest.json and rejects.csv list only the records held back since the
    /// program's previous batch (or changed since), and count all of them; this lists them all.
    /// Prints the counts; with --out, writes the list as CSV (a new file, owner-only).
    Held {
        /// Only this program (repeatable).
        #[arg(long)]
        program: Vec<String>,
        /// Write the list as CSV here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Read PMH's registration results (the error CSV of 医療費助成情報登録結果確認).
    ///
    /// Ties each row to the batch that wrote the file it names and to the record of its history
    /// key, and records the records PMH refused: they are not sent again until corrected. Rows
    /// naming anything daicho did not send are listed (exit 1); a malformed file records
    /// nothing.
    Results {
        /// The results CSV.
        file: PathBuf,
        /// Column profile (TOML); default: examples/pmh/results-profile.toml, built in.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// A batch this file answers though no row names it (a file without errors: every
        /// record of the batch was accepted). Repeatable.
        #[arg(long)]
        batch: Vec<u64>,
        /// Who records it.
        #[arg(long, default_value = "daicho-cli")]
        actor: String,
    },
    /// Reconcile (突合) with what PMH holds: the CSV of 医療費助成情報照会.
    ///
    /// Compares each record with what daicho sent, per history key and column; lists first the
    /// records whose My Number differs (a possible registration of the wrong person), then
    /// those missing at PMH, those PMH holds that daicho did not send, and other differences.
    /// Records nothing. Exit 1 when anything differs.
    Reconcile {
        /// PMH's inquiry CSV (the complete download of each program it holds).
        file: PathBuf,
        /// Column profile (TOML); default: examples/pmh/inquiry-profile.toml, built in.
        #[arg(long)]
        profile: Option<PathBuf>,
        /// Write the report as CSV here (a new file, owner-only).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn parse_mode(s: &str) -> Result<PmhMode, String> {
    match s {
        "diff" | "diff_history" => Ok(PmhMode::DiffHistory),
        "full" => Ok(PmhMode::Full),
        _ => Err("diff または full".into()),
    }
}

pub use daicho_app::clock::today_in_japan;

/// Says why a write failed on `err`; the exit status (1: refused by a rule or lost a race,
/// 2: storage or I/O failed).
pub(crate) fn failed(err: &mut dyn Write, e: &daicho_app::Failure) -> u8 {
    let _ = writeln!(err, "{e}");
    match e {
        daicho_app::Failure::Infrastructure(_) => EXIT_UNREADABLE,
        _ => EXIT_REJECTED,
    }
}

/// Opens the ledger in `data`, or says why not on `err` and gives the exit status.
pub fn open_ledger(data: &std::path::Path, err: &mut dyn Write) -> Result<daicho_app::ledger::Ledger, u8> {
    daicho_app::ledger::Ledger::open(data).map_err(|e| {
        let _ = writeln!(err, "{}: 台帳を開けません: {e}", data.display());
        EXIT_UNREADABLE
    })
}

/// The stream of the recipient the caller calls `id`, or says why not on `err` and gives the
/// exit status.
pub fn recipient_stream(
    ledger: &daicho_app::ledger::Ledger,
    id: &str,
    err: &mut dyn Write,
) -> Result<daicho_store::StreamId, u8> {
    match ledger.store().stream_for_key(daicho_app::ledger::RECIPIENT_CATEGORY, id) {
        Ok(Some(s)) => Ok(s),
        Ok(None) => {
            let _ = writeln!(err, "受給者が見つかりません");
            Err(EXIT_REJECTED)
        }
        Err(e) => {
            let _ = writeln!(err, "{e}");
            Err(EXIT_UNREADABLE)
        }
    }
}

/// The process umask: nothing for group and others.
pub const PRIVATE_UMASK: u32 = 0o077;

/// Exit status: every line accepted (or already applied), or the subcommand succeeded.
pub const EXIT_OK: u8 = 0;
/// Exit status: some line was rejected, or the input is invalid.
pub const EXIT_REJECTED: u8 = 1;
/// Exit status: a file could not be read or written, or the arguments are wrong.
pub const EXIT_UNREADABLE: u8 = 2;

/// Runs the CLI with `args`, writing results to `out` and diagnostics to `err`; returns the exit
/// status.
pub fn main<I, T>(args: I, out: &mut dyn Write, err: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // Every file and directory this process creates is its owner's only (the ledger, PMH
    // files with full My Numbers, backups): group and others get nothing.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(PRIVATE_UMASK));
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = write!(err, "{e}");
            return if e.use_stderr() { EXIT_UNREADABLE } else { EXIT_OK };
        }
    };
    // The day decided and recorded on: today in Japan unless `--today` fixes it.
    let today = cli.today.unwrap_or_else(today_in_japan);
    let defaults = match cli.command {
        Command::Serve { .. } => daicho_app::ledger::Memory::SERVE,
        _ => daicho_app::ledger::Memory::BATCH,
    };
    daicho_app::ledger::Memory {
        log_cache_mib: cli.log_cache_mib.unwrap_or(defaults.log_cache_mib),
        read_cache_mib: cli.read_cache_mib.unwrap_or(defaults.read_cache_mib),
    }
    .install();
    match cli.command {
        Command::Check { file, config } => {
            let config = match load_config(config.as_ref(), err) {
                Ok(c) => c,
                Err(code) => return code,
            };
            crate::check::run(&file, &config, today, out, err)
        }
        Command::Init { config } => init(&cli.data, config.as_ref(), today, out, err),
        Command::Apply { file } => crate::apply::run(&cli.data, &file, today, out, err),
        Command::Verify => crate::verify::run(&cli.data, out, err),
        Command::Backup { out: file } => crate::backup::backup(&cli.data, &file, out, err),
        Command::Restore { from } => crate::backup::restore(&cli.data, &from, out, err),
        Command::Status { json } => crate::backup::status(&cli.data, json, out, err),
        Command::Import { file, profile, report, dry_run, actor } => {
            let request = crate::import::ImportRequest {
                data: &cli.data,
                profile: &profile,
                file: &file,
                report: report.as_deref(),
                dry_run,
                actor: &actor,
                today,
            };
            crate::import::run(&request, out, err)
        }
        Command::Demo { recipients, seed, jsonl: true } => {
            for i in 1..=recipients {
                for line in crate::synth::history(seed, i, today) {
                    if writeln!(out, "{line}").is_err() {
                        return EXIT_UNREADABLE;
                    }
                }
            }
            EXIT_OK
        }
        Command::Demo { recipients, seed, jsonl: false } => {
            crate::demo::run(&cli.data, recipients, seed, today, out, err)
        }
        Command::Replay { as_at, as_of, recipient, actor } => {
            let request = crate::audit::ReplayRequest {
                data: &cli.data,
                at: &as_at,
                on: as_of.unwrap_or(today),
                recipient: recipient.as_deref(),
                actor: actor.as_deref(),
                today,
            };
            crate::audit::replay(&request, out, err)
        }
        Command::Certificate {
            action: CertificateAction::Print { recipient, certificate, as_of, out: file, actor },
        } => {
            let request = crate::certificate::PrintRequest {
                data: &cli.data,
                recipient: &recipient,
                certificate: &certificate,
                on: as_of.unwrap_or(today),
                today,
                out_file: &file,
                actor: actor.as_deref(),
            };
            crate::certificate::print(&request, out, err)
        }
        Command::Certificate { action: CertificateAction::Batch { renewed_between, out: file, actor } } => {
            match renewed_between[..] {
                [from, to] => {
                    let request = crate::certificate::BatchRequest {
                        data: &cli.data,
                        from,
                        to,
                        today,
                        out_file: &file,
                        actor: actor.as_deref(),
                    };
                    crate::certificate::batch(&request, out, err)
                }
                _ => EXIT_UNREADABLE,
            }
        }
        Command::Audit { action: AuditAction::Bundle { from, to, out: dir } } => {
            crate::audit::bundle(&cli.data, (from, to), today, &dir, out, err)
        }
        Command::Rebuild { name, catch_up } => crate::rebuild::run(&cli.data, name.as_deref(), catch_up, out, err),
        Command::Show { recipient, as_of, as_at, actor } => {
            let request = crate::show::ShowRequest {
                data: &cli.data,
                recipient: &recipient,
                on: as_of.unwrap_or(today),
                at: as_at,
                actor: actor.as_deref(),
                today,
            };
            crate::show::run(&request, out, err)
        }
        Command::Billing(BillingArgs {
            action: Some(BillingAction::Schedule { unit_yen, from_month, actor }), ..
        }) => {
            let set = unit_yen.zip(from_month.as_deref());
            crate::billing::schedule(&cli.data, set, actor.as_deref(), today, out, err)
        }
        Command::Billing(BillingArgs { action: None, month, policy, out: dir, close, actor }) => {
            let request = crate::billing::StatementRequest {
                data: &cli.data,
                month: month.as_deref().unwrap_or_default(),
                policy: policy.as_deref(),
                out_dir: dir.as_deref(),
                close,
                actor: actor.as_deref(),
                today,
            };
            crate::billing::statement(&request, out, err)
        }
        Command::Pmh { action: PmhAction::Export { out: dir, batch: Some(n), .. } } => {
            crate::pmh::regenerate(&cli.data, n, &dir, out, err)
        }
        Command::Pmh { action: PmhAction::Reconcile { file, profile, out: report } } => {
            crate::pmh::reconcile(&cli.data, &file, profile.as_deref(), report.as_deref(), out, err)
        }
        Command::Pmh { action: PmhAction::Results { file, profile, batch, actor } } => {
            let request = crate::pmh::ResultsRequest {
                data: &cli.data,
                file: &file,
                profile: profile.as_deref(),
                covers: &batch,
                today,
                actor: &actor,
            };
            crate::pmh::results(&request, out, err)
        }
        Command::Pmh { action: PmhAction::Export { out: dir, mode, program, batch: None, actor } } => {
            let request = crate::pmh::ExportRequest {
                data: &cli.data,
                out_dir: &dir,
                mode,
                programs: &program,
                today,
                actor: &actor,
            };
            crate::pmh::export(&request, out, err)
        }
        Command::Pmh { action: PmhAction::Held { program, out: report } } => {
            crate::pmh::held(&cli.data, &program, report.as_deref(), out, err)
        }
        Command::Serve { listen, demo, recipients, idle_minutes, absolute_hours, secure_cookies } => {
            init_logging();
            let request = crate::serve::ServeRequest {
                data: &cli.data,
                listen,
                demo,
                recipients,
                idle_minutes,
                absolute_hours,
                secure_cookies,
                today: cli.today,
            };
            crate::serve::run(&request, today, out, err)
        }
        Command::User { action, actor } => {
            use crate::serve::UserAction;
            let action = match &action {
                UserCommand::Add { id, name, role } => UserAction::Add { id, name, role },
                UserCommand::Disable { id } => UserAction::Disable { id },
                UserCommand::ResetPassword { id } => UserAction::ResetPassword { id },
                UserCommand::List => UserAction::List,
            };
            crate::serve::user(&cli.data, &action, (&actor, today), out, err)
        }
        Command::Config { action: ConfigAction::Demo } => {
            let _ = out.write_all(DEMO_TOML.as_bytes());
            EXIT_OK
        }
        Command::Config { action: ConfigAction::Current } => match daicho_app::ledger::Ledger::open(&cli.data) {
            Ok(ledger) => match ledger.store().read_stream(&daicho_app::ledger::config_stream()) {
                Ok(events) => {
                    let text = events
                        .last()
                        .and_then(|e| daicho_domain::codec::decode_configuration(e.schema_version, &e.payload).ok());
                    let _ = out.write_all(text.unwrap_or_default().as_bytes());
                    EXIT_OK
                }
                Err(e) => {
                    let _ = writeln!(err, "{e}");
                    EXIT_UNREADABLE
                }
            },
            Err(e) => {
                let _ = writeln!(err, "{}: 台帳を開けません: {e}", cli.data.display());
                EXIT_UNREADABLE
            }
        },
        Command::Config { action: ConfigAction::Set { file, actor } } => {
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    let _ = writeln!(err, "{}: 設定ファイルを読めません: {e}", file.display());
                    return EXIT_UNREADABLE;
                }
            };
            if load_config(Some(&file), err).is_err() {
                return EXIT_REJECTED;
            }
            match daicho_app::App::open(&cli.data) {
                Ok(app) => match app.execute(&Actor::Operator(actor), Request::Configuration { toml: &text }, today) {
                    Ok(outcome) => {
                        let position = match outcome {
                            daicho_app::Outcome::Recorded { position, .. } => position.0,
                            _ => 0,
                        };
                        let _ = writeln!(out, "設定を記録しました（位置 {position}）");
                        EXIT_OK
                    }
                    Err(e) => failed(err, &e),
                },
                Err(e) => {
                    let _ = writeln!(err, "{}: 台帳を開けません: {e}", cli.data.display());
                    EXIT_UNREADABLE
                }
            }
        }
        Command::Config { action: ConfigAction::Check { file: path } } => match load_config(Some(&path), err) {
            Ok(config) => {
                let _ = writeln!(
                    out,
                    "{}: 設定は有効です（{}、制度{}件）",
                    path.display(),
                    config.municipality.name,
                    config.programs().len()
                );
                // Valid, but PMH would show some sent texts with "●": say where, never refuse.
                for (i, p) in config.programs().iter().enumerate() {
                    for w in p.pmh_warnings() {
                        let _ = writeln!(
                            err,
                            "警告: program[{i}].{} ({}): {} はPMHで「●」と表示されます",
                            w.field,
                            p.key,
                            w.characters.join(" ")
                        );
                    }
                }
                EXIT_OK
            }
            Err(code) => code,
        },
    }
}

/// Server logs to standard error: who logged in, what was recorded where; never personal data.
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// `daicho init`.
fn init(
    data: &std::path::Path,
    config: Option<&PathBuf>,
    today: NaiveDate,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    // Validate before creating anything, so a bad file leaves no half-made ledger.
    let loaded = match load_config(config, err) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let text = match config {
        None => DEMO_TOML.to_owned(),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                let _ = writeln!(err, "{}: 設定ファイルを読めません: {e}", path.display());
                return EXIT_UNREADABLE;
            }
        },
    };
    if daicho_app::ledger::store_dir(data).exists() {
        let _ = writeln!(err, "{}: 台帳が既にあります。上書きしません", data.display());
        return EXIT_REJECTED;
    }
    match daicho_app::ledger::Ledger::init(data, &text, today) {
        Ok(ledger) => {
            let head = ledger.store().head();
            let _ = writeln!(
                out,
                "{}: 台帳を作成しました（{}、制度{}件）。先頭 位置 {} ハッシュ {}",
                data.display(),
                loaded.municipality.name,
                loaded.programs().len(),
                head.position,
                head.hash.short()
            );
            EXIT_OK
        }
        Err(e) => {
            let _ = writeln!(err, "{}: 台帳を作成できません: {e}", data.display());
            EXIT_UNREADABLE
        }
    }
}

/// Reads and validates a configuration; on failure reports to `err` and returns the exit code.
fn load_config(path: Option<&PathBuf>, err: &mut dyn Write) -> Result<Config, u8> {
    let (name, text) = match path {
        None => ("(demo)".to_owned(), DEMO_TOML.to_owned()),
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => (path.display().to_string(), text),
            Err(e) => {
                let _ = writeln!(err, "{}: 設定ファイルを読めません: {e}", path.display());
                return Err(EXIT_UNREADABLE);
            }
        },
    };
    Config::from_toml(&text).map_err(|e| {
        for (place, message) in &e.problems {
            let _ = writeln!(err, "{name}: {place}: {message}");
        }
        EXIT_REJECTED
    })
}
