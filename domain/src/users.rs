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

/// Fewest characters of a password a person chooses.
pub const PASSWORD_CHARS_MIN: usize = 12;
/// Most characters of a password (argon2 hashes any length; this bounds the work).
pub const PASSWORD_CHARS_MAX: usize = 128;
/// Most characters of a user's display name.
pub const NAME_CHARS_MAX: usize = 50;

/// Why an account change is refused by a rule: a closed set, each with the form field it is
/// about and a Japanese message naming no person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountRejection {
    /// The user id is taken.
    IdTaken,
    /// The user id is not well formed (why).
    IdInvalid(ValueError),
    /// No such account.
    Unknown,
    /// The account is disabled already.
    AlreadyDisabled,
    /// No name given.
    NameMissing,
    /// The name is longer than [`NAME_CHARS_MAX`].
    NameTooLong,
    /// The name has a control character or markup.
    NameCharacters,
    /// The password is shorter than [`PASSWORD_CHARS_MIN`].
    PasswordTooShort,
    /// The password is longer than [`PASSWORD_CHARS_MAX`].
    PasswordTooLong,
    /// The password has a control character.
    PasswordCharacters,
    /// The current password given is not the account's.
    CurrentPasswordWrong,
    /// The new password is the current one.
    PasswordUnchanged,
    /// The new password is the user id.
    PasswordIsId,
}

impl AccountRejection {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            AccountRejection::IdTaken => "id_taken",
            AccountRejection::IdInvalid(_) => "id_invalid",
            AccountRejection::Unknown => "unknown_user",
            AccountRejection::AlreadyDisabled => "already_disabled",
            AccountRejection::NameMissing => "name_missing",
            AccountRejection::NameTooLong => "name_too_long",
            AccountRejection::NameCharacters => "name_characters",
            AccountRejection::PasswordTooShort => "password_too_short",
            AccountRejection::PasswordTooLong => "password_too_long",
            AccountRejection::PasswordCharacters => "password_characters",
            AccountRejection::CurrentPasswordWrong => "current_password_wrong",
            AccountRejection::PasswordUnchanged => "password_unchanged",
            AccountRejection::PasswordIsId => "password_is_id",
        }
    }

    /// The form field the refusal is about (`id`, `name`, `current`, `new`), if one.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            AccountRejection::IdTaken | AccountRejection::IdInvalid(_) => Some("id"),
            AccountRejection::NameMissing | AccountRejection::NameTooLong | AccountRejection::NameCharacters => {
                Some("name")
            }
            AccountRejection::CurrentPasswordWrong => Some("current"),
            AccountRejection::PasswordTooShort
            | AccountRejection::PasswordTooLong
            | AccountRejection::PasswordCharacters
            | AccountRejection::PasswordUnchanged
            | AccountRejection::PasswordIsId => Some("new"),
            AccountRejection::Unknown | AccountRejection::AlreadyDisabled => None,
        }
    }
}

impl fmt::Display for AccountRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountRejection::IdTaken => f.write_str("この利用者IDは使われています"),
            AccountRejection::IdInvalid(e) => write!(f, "利用者ID: {}（英数字と . _ - で64文字まで）", e.message()),
            AccountRejection::Unknown => f.write_str("この利用者IDはありません"),
            AccountRejection::AlreadyDisabled => f.write_str("この利用者は既に無効です"),
            AccountRejection::NameMissing => f.write_str("氏名を入力してください"),
            AccountRejection::NameTooLong => write!(f, "氏名は{NAME_CHARS_MAX}文字以内で入力してください"),
            AccountRejection::NameCharacters => f.write_str("氏名に使えない文字があります"),
            AccountRejection::PasswordTooShort => write!(f, "パスワードは{PASSWORD_CHARS_MIN}文字以上にしてください"),
            AccountRejection::PasswordTooLong => write!(f, "パスワードは{PASSWORD_CHARS_MAX}文字以内にしてください"),
            AccountRejection::PasswordCharacters => f.write_str("パスワードに制御文字は使えません"),
            AccountRejection::CurrentPasswordWrong => f.write_str("現在のパスワードが正しくありません"),
            AccountRejection::PasswordUnchanged => f.write_str("新しいパスワードは現在のものと別にしてください"),
            AccountRejection::PasswordIsId => f.write_str("利用者IDと同じパスワードは使えません"),
        }
    }
}

/// Checks a user's display name.
pub fn check_name(name: &str) -> Result<(), AccountRejection> {
    let n = name.trim();
    if n.is_empty() {
        return Err(AccountRejection::NameMissing);
    }
    if n.chars().count() > NAME_CHARS_MAX {
        return Err(AccountRejection::NameTooLong);
    }
    if n.chars().any(|c| c.is_control() || c == '<' || c == '>') {
        return Err(AccountRejection::NameCharacters);
    }
    Ok(())
}

/// Checks a password a person chose.
pub fn check_password(password: &str) -> Result<(), AccountRejection> {
    let n = password.chars().count();
    if n < PASSWORD_CHARS_MIN {
        return Err(AccountRejection::PasswordTooShort);
    }
    if n > PASSWORD_CHARS_MAX {
        return Err(AccountRejection::PasswordTooLong);
    }
    if password.chars().any(char::is_control) {
        return Err(AccountRejection::PasswordCharacters);
    }
    Ok(())
}

/// Checks the new password `user` chose in place of `current` (already verified).
pub fn check_new_password(user: &UserId, current: &str, new: &str) -> Result<(), AccountRejection> {
    check_password(new)?;
    if new == current {
        return Err(AccountRejection::PasswordUnchanged);
    }
    if new.trim().eq_ignore_ascii_case(user.as_str()) {
        return Err(AccountRejection::PasswordIsId);
    }
    Ok(())
}

/// Decides a user event against the account it is about: `Some(disabled)` when it exists.
pub fn decide_user(event: &UserEvent, existing: Option<bool>) -> Result<(), AccountRejection> {
    match (event, existing) {
        (UserEvent::Added { .. }, Some(_)) => Err(AccountRejection::IdTaken),
        (UserEvent::Added { name, .. }, None) => check_name(name),
        (UserEvent::PasswordSet { .. } | UserEvent::Disabled { .. }, None) => Err(AccountRejection::Unknown),
        (UserEvent::Disabled { .. }, Some(true)) => Err(AccountRejection::AlreadyDisabled),
        (UserEvent::PasswordSet { .. } | UserEvent::Disabled { .. }, Some(_)) => Ok(()),
    }
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
