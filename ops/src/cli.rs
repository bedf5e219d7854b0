//! Command-line interface: argument parsing and dispatch to subcommands.
//!
//! Exit statuses follow the command contract: 0 when every line was accepted (or already
//! applied), 1 when any line was rejected or a configuration is invalid, 2 when a file could
//! not be read.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use chrono::{FixedOffset, NaiveDate, Utc};
use clap::{Parser, Subcommand};
use daicho_domain::config::{Config, DEMO_TOML};

/// 台帳 daicho: ledger of medical-subsidy recipients.
#[derive(Parser, Debug)]
#[command(name = "daicho", version, about, long_about = None)]
struct Cli {
    /// The ledger's data directory.
    #[arg(long, global = true, env = "DAICHO_DATA", default_value = "daicho-data")]
    data: PathBuf,
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
        /// Decide as of this date (YYYY-MM-DD). Default: today in Japan.
        #[arg(long)]
        today: Option<NaiveDate>,
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
    /// Verify the whole ledger: hash chain, positions, stream versions, indexes, payloads.
    ///
    /// Names the first bad position. Exit status 0: intact; 1: damaged; 2: unreadable.
    Verify,
    /// Validate a municipality configuration file, or print the bundled demo one.
    Config {
        /// The file to validate. Without it, the demo configuration is printed.
        file: Option<PathBuf>,
    },
}

/// Japan Standard Time: UTC+9 all year (no daylight saving).
const JST: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => panic!("UTC+9 is a valid offset"),
};

/// Today's date in Japan: the recorded date of anything decided now.
pub fn today_in_japan() -> NaiveDate {
    Utc::now().with_timezone(&JST).date_naive()
}

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
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = write!(err, "{e}");
            return if e.use_stderr() { EXIT_UNREADABLE } else { EXIT_OK };
        }
    };
    match cli.command {
        Command::Check { file, config, today } => {
            let config = match load_config(config.as_ref(), err) {
                Ok(c) => c,
                Err(code) => return code,
            };
            crate::check::run(&file, &config, today.unwrap_or_else(today_in_japan), out, err)
        }
        Command::Init { config } => init(&cli.data, config.as_ref(), out, err),
        Command::Apply { file } => crate::apply::run(&cli.data, &file, today_in_japan(), out, err),
        Command::Verify => crate::verify::run(&cli.data, out, err),
        Command::Config { file: None } => {
            let _ = out.write_all(DEMO_TOML.as_bytes());
            EXIT_OK
        }
        Command::Config { file: Some(path) } => match load_config(Some(&path), err) {
            Ok(config) => {
                let _ = writeln!(
                    out,
                    "{}: 設定は有効です（{}、制度{}件）",
                    path.display(),
                    config.municipality.name,
                    config.programs().len()
                );
                EXIT_OK
            }
            Err(code) => code,
        },
    }
}

/// `daicho init`.
fn init(data: &std::path::Path, config: Option<&PathBuf>, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
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
    if crate::ledger::store_dir(data).exists() {
        let _ = writeln!(err, "{}: 台帳が既にあります。上書きしません", data.display());
        return EXIT_REJECTED;
    }
    match crate::ledger::Ledger::init(data, &text, today_in_japan()) {
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
