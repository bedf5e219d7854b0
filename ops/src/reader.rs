//! 閲覧者 (the reader of a CLI command): who reads personal data through `show`, `replay` and
//! `certificate`, what the privacy policy lets them see, and the access records of what they
//! were shown.
//!
//! The operator is the OS user running the command; `--actor ID` names the account whose role
//! decides what is shown (an enabled account). Without it the CLI shows what a 閲覧者 (viewer)
//! sees: least privilege unless a person with the right asks for more, by name. Every command
//! that prints a person's data writes its access records (`DATA/access/`) before printing:
//! the user is the OS user (`os.<name>`), the page names the command and the account.

use std::path::Path;

use chrono::NaiveDate;
use daicho_app::access::AccessLog;
use daicho_app::accounts::Accounts;
use daicho_app::ledger::Ledger;
use daicho_domain::ids::UserId;
use daicho_domain::privacy::{self, Channel, Protection};
use daicho_domain::users::{AccessAction, AccessRecord, Role};

/// People named in one access record, at most (a record is one event of at most 64 KiB).
pub const RECIPIENTS_PER_RECORD_MAX: usize = 5_000;

/// The enabled account `actor` and its role, or why not (in Japanese, naming the option).
pub fn enabled_account(ledger: &Ledger, actor: &str) -> Result<Role, String> {
    let accounts = Accounts::load(ledger.store()).map_err(|e| e.to_string())?;
    match accounts.get(actor) {
        Some(a) if a.disabled => Err(format!("--actor: 利用者 {actor} は無効です")),
        Some(a) => Ok(a.role),
        None => Err(format!("--actor: 利用者 {actor} は登録されていません（daicho user add で登録します）")),
    }
}

/// The OS user running this process, as a user id of the access log: `os.<name>`.
pub fn os_user() -> Result<UserId, String> {
    let uid = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|rest| rest.split_whitespace().next().map(str::to_owned))
    });
    let name = uid.as_deref().and_then(|uid| {
        std::fs::read_to_string("/etc/passwd").ok().and_then(|p| {
            p.lines().find_map(|l| {
                let mut f = l.split(':');
                let (name, _, id) = (f.next()?, f.next()?, f.next()?);
                (id == uid).then(|| name.to_owned())
            })
        })
    });
    let name = name.unwrap_or_else(|| format!("uid{}", uid.unwrap_or_else(|| "unknown".into())));
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' })
        .take(61)
        .collect();
    UserId::parse(&format!("os.{clean}")).map_err(|e| format!("OS user: {}", e.message()))
}

/// The reader of one CLI command.
pub struct Reader {
    log: AccessLog,
    os_user: UserId,
    actor: Option<String>,
    role: Role,
    command: &'static str,
}

impl Reader {
    /// The reader of `command` (`daicho show`, ...) on the ledger in `data`, as the account
    /// `actor` when given; opens the access log.
    pub fn new(data: &Path, ledger: &Ledger, actor: Option<&str>, command: &'static str) -> Result<Reader, String> {
        let role = match actor {
            Some(a) => enabled_account(ledger, a)?,
            None => Role::Viewer,
        };
        let log = AccessLog::open(data).map_err(|e| format!("アクセス記録を開けません: {e}"))?;
        Ok(Reader { log, os_user: os_user()?, actor: actor.map(str::to_owned), role, command })
    }

    /// What this reader sees of a person with `protection` in `channel`.
    pub fn view(&self, protection: Protection, channel: Channel) -> privacy::View {
        privacy::view(protection, self.role, channel)
    }

    /// The page of the access records: the command, and the account when one was named.
    fn page(&self) -> String {
        match &self.actor {
            Some(a) => format!("{} --actor {a}", self.command),
            None => self.command.to_owned(),
        }
    }

    /// Writes, durably, that `shown` were printed, and that `protected` (among them) were
    /// printed with what their protection covers.
    pub fn record(&self, shown: &[u64], protected: &[u64], today: NaiveDate) -> Result<(), String> {
        if shown.is_empty() {
            return Ok(());
        }
        let page = self.page();
        let mut records = Vec::new();
        for (list, action) in [(shown, AccessAction::Viewed), (protected, AccessAction::ProtectedAddressShown)] {
            for part in list.chunks(RECIPIENTS_PER_RECORD_MAX) {
                records.push(AccessRecord {
                    user: self.os_user.clone(),
                    recipients: part.to_vec(),
                    page: page.clone(),
                    action,
                    reason: None,
                });
            }
        }
        self.log.record_blocking(&records, today).map_err(|e| format!("アクセス記録を書けません: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_user_is_a_valid_id_of_the_access_log() {
        let id = os_user().unwrap();
        assert!(id.as_str().starts_with("os."), "{id}");
        assert!(UserId::parse(id.as_str()).is_ok());
    }
}
