//! 職員 (users) of the ledger and their roles, and the access records kept about them.
//!
//! Users are facts in the log (system stream `users`): added with a role and a password hash,
//! given a new password, disabled. Passwords themselves are never stored or logged; the hash is
//! argon2id (computed where the clock and randomness live, the web crate).

use std::fmt;

use crate::error::ValueError;
use crate::ids::UserId;

/// What a user may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// 閲覧者: search and view recipients (My Number masked, DV addresses hidden).
    Viewer,
    /// 担当職員: a viewer who records life events.
    Caseworker,
    /// 係長: a caseworker who approves My Number links, reveals My Numbers and DV-protected
    /// addresses (logged), and exports to PMH.
    Supervisor,
    /// 管理者: everything, users and the access log included.
    Admin,
    /// 監査: views recipients and the audit pages; records nothing.
    Auditor,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [Role::Viewer, Role::Caseworker, Role::Supervisor, Role::Admin, Role::Auditor];

    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Caseworker => "caseworker",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    /// Japanese label.
    pub fn label(self) -> &'static str {
        match self {
            Role::Viewer => "閲覧者",
            Role::Caseworker => "担当職員",
            Role::Supervisor => "係長",
            Role::Admin => "管理者",
            Role::Auditor => "監査",
        }
    }

    /// Parses a code.
    pub fn parse(raw: &str) -> Result<Role, ValueError> {
        Role::ALL
            .into_iter()
            .find(|r| r.code() == raw)
            .ok_or(ValueError::UnknownCode { allowed: "viewer, caseworker, supervisor, admin, auditor" })
    }

    pub(crate) fn number(self) -> u8 {
        match self {
            Role::Viewer => 1,
            Role::Caseworker => 2,
            Role::Supervisor => 3,
            Role::Admin => 4,
            Role::Auditor => 5,
        }
    }

    pub(crate) fn from_number(n: u8) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.number() == n)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Something that happened to a user account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserEvent {
    /// A user was added.
    Added { user: UserId, name: String, role: Role, password_hash: String },
    /// A user got a new password.
    PasswordSet { user: UserId, password_hash: String },
    /// A user can no longer log in.
    Disabled { user: UserId },
}

/// What an access record says was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessAction {
    /// A page showing personal data was viewed.
    Viewed,
    /// A My Number was shown in full.
    MyNumberRevealed,
    /// The address of a DV-protected person was shown.
    ProtectedAddressShown,
    /// A PMH file (with personal data) was downloaded.
    Downloaded,
}

impl AccessAction {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            AccessAction::Viewed => "viewed",
            AccessAction::MyNumberRevealed => "my_number_revealed",
            AccessAction::ProtectedAddressShown => "protected_address_shown",
            AccessAction::Downloaded => "downloaded",
        }
    }

    /// Japanese label.
    pub fn label(self) -> &'static str {
        match self {
            AccessAction::Viewed => "閲覧",
            AccessAction::MyNumberRevealed => "個人番号の表示",
            AccessAction::ProtectedAddressShown => "支援措置対象者の住所の表示",
            AccessAction::Downloaded => "ダウンロード",
        }
    }

    pub(crate) fn number(self) -> u8 {
        match self {
            AccessAction::Viewed => 1,
            AccessAction::MyNumberRevealed => 2,
            AccessAction::ProtectedAddressShown => 3,
            AccessAction::Downloaded => 4,
        }
    }

    pub(crate) fn from_number(n: u8) -> Option<AccessAction> {
        [
            AccessAction::Viewed,
            AccessAction::MyNumberRevealed,
            AccessAction::ProtectedAddressShown,
            AccessAction::Downloaded,
        ]
        .into_iter()
        .find(|a| a.number() == n)
    }
}

/// One access record: who did what with whose personal data, on which page. The time is the
/// access log's recorded time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRecord {
    /// Who.
    pub user: UserId,
    /// Whose data (internal recipient numbers): one for a recipient page, every row shown for
    /// a search page, none for a page about no one (a PMH file).
    pub recipients: Vec<u64>,
    /// The page (a path without query: never personal data).
    pub page: String,
    /// What.
    pub action: AccessAction,
    /// The reason given (for reveals).
    pub reason: Option<String>,
}
