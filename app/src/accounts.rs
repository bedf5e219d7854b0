//! 利用者 (accounts): who may log in, with which role. Users are events of the system stream
//! `users` in the ledger's own log (added, password set, disabled), so who could do what, and
//! since when, is as auditable as the register. Passwords are argon2id hashes (PHC strings);
//! a password itself is never stored or logged.
//!
//! Used by the web UI (login, user administration) and by `daicho user …`.

use std::collections::BTreeMap;

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::NaiveDate;
use daicho_domain::codec;
use daicho_domain::ids::UserId;
use daicho_domain::users::{self, AccountRejection, Role, UserEvent};
use daicho_store::{AppendError, Store, StreamId};

use crate::append::System;
use sha2::{Digest, Sha256};

/// The system stream of users.
pub const USERS_STREAM: &str = "users";

pub use daicho_domain::users::{NAME_CHARS_MAX, PASSWORD_CHARS_MAX, PASSWORD_CHARS_MIN, check_password};

/// One account as the log has it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Login id.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Disabled accounts cannot log in.
    pub disabled: bool,
    /// The password was issued by someone else (an administrator, the CLI): the user must
    /// choose their own before anything else.
    pub must_change: bool,
}

/// Every account, folded from the `users` stream.
#[derive(Clone, Debug, Default)]
pub struct Accounts {
    by_id: BTreeMap<String, Account>,
    version: u64,
}

/// Why an account operation failed.
#[derive(Debug)]
pub enum AccountError {
    /// A rule refused it (`daicho_domain::users`).
    Rejected(AccountRejection),
    /// Someone else changed the accounts first: reload and try again.
    Conflict,
    /// Storage or hashing failed.
    Failed(String),
}

impl std::fmt::Display for AccountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccountError::Rejected(r) => write!(f, "{r}"),
            AccountError::Conflict => f.write_str("ほかの操作と重なりました。もう一度操作してください"),
            AccountError::Failed(m) => write!(f, "記録できませんでした: {m}"),
        }
    }
}

impl std::error::Error for AccountError {}

impl From<AccountRejection> for AccountError {
    fn from(r: AccountRejection) -> Self {
        AccountError::Rejected(r)
    }
}

fn users_stream() -> Result<StreamId, AccountError> {
    StreamId::parse(USERS_STREAM).ok_or_else(|| AccountError::Failed("users stream id".into()))
}

impl Accounts {
    /// Folds the `users` stream.
    pub fn load(store: &Store) -> Result<Accounts, AccountError> {
        let mut accounts = Accounts::default();
        for e in store.read_stream(&users_stream()?).map_err(|e| AccountError::Failed(e.to_string()))? {
            let event = codec::decode_user(&e.event_type, e.schema_version, &e.payload)
                .map_err(|x| AccountError::Failed(format!("position {}: {x}", e.position)))?;
            accounts.apply(&event, &e.actor);
            accounts.version = e.stream_version;
        }
        Ok(accounts)
    }

    /// Applies `event`, recorded by `actor`: a password someone else set must be changed.
    fn apply(&mut self, event: &UserEvent, actor: &str) {
        match event {
            UserEvent::Added { user, name, role, password_hash } => {
                self.by_id.insert(
                    user.to_string(),
                    Account {
                        id: user.clone(),
                        name: name.clone(),
                        role: *role,
                        password_hash: password_hash.clone(),
                        disabled: false,
                        must_change: actor != user.as_str(),
                    },
                );
            }
            UserEvent::PasswordSet { user, password_hash } => {
                if let Some(a) = self.by_id.get_mut(user.as_str()) {
                    a.password_hash = password_hash.clone();
                    a.must_change = actor != user.as_str();
                }
            }
            UserEvent::Disabled { user } => {
                if let Some(a) = self.by_id.get_mut(user.as_str()) {
                    a.disabled = true;
                }
            }
        }
    }

    /// The account with this id.
    pub fn get(&self, id: &str) -> Option<&Account> {
        self.by_id.get(id)
    }

    /// Display name of a user id (the id itself when unknown, as for actors of imports).
    pub fn display_name(&self, id: &str) -> String {
        self.by_id.get(id).map_or_else(|| id.to_owned(), |a| format!("{}（{}）", a.name, a.id))
    }

    /// Every account, by id.
    pub fn all(&self) -> impl Iterator<Item = &Account> {
        self.by_id.values()
    }

    /// Whether any account exists.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Records a user event (checked against the accounts as they are) and applies it.
    pub fn record(
        &mut self,
        store: &Store,
        actor: &str,
        event: UserEvent,
        today: NaiveDate,
    ) -> Result<(), AccountError> {
        let user = match &event {
            UserEvent::Added { user, .. } | UserEvent::PasswordSet { user, .. } | UserEvent::Disabled { user } => user,
        };
        users::decide_user(&event, self.by_id.get(user.as_str()).map(|a| a.disabled))?;
        let encoded = codec::encode_user(&event).map_err(|e| AccountError::Failed(e.to_string()))?;
        let id = format!("users-v{}", self.version + 1);
        let system = System {
            stream: USERS_STREAM,
            version: Some(self.version),
            id: &id,
            digest: Sha256::digest(&encoded.payload).into(),
            actor,
            expected_head: None,
            effective: today,
        };
        match store.append_blocking(system.request(vec![encoded]).map_err(AccountError::Failed)?) {
            Ok(o) => {
                self.apply(&event, actor);
                self.version = o.stream_version;
                Ok(())
            }
            Err(AppendError::WrongExpectedVersion { .. } | AppendError::RequestIdReused) => Err(AccountError::Conflict),
            Err(e) => Err(AccountError::Failed(e.to_string())),
        }
    }
}

/// Hashes a password with argon2id (default parameters: 19 MiB, 2 passes) and a random salt.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AccountError::Failed(format!("random: {e}")))?;
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Failed(format!("argon2: {e}")))
}

/// Whether `password` matches the PHC string `hash`.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordVerifier::<str>::verify_password(&Argon2::default(), password.as_bytes(), hash).is_ok()
}

/// A generated password: 16 characters from an alphabet without look-alikes (no 0/O, 1/l/I),
/// about 90 bits.
pub fn generate_password() -> Result<String, AccountError> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut out = String::with_capacity(16);
    while out.len() < 16 {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| AccountError::Failed(format!("random: {e}")))?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        for x in b {
            if usize::from(x) < limit && out.len() < 16 {
                out.push(char::from(ALPHABET[usize::from(x) % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

/// Adds a user with a generated password; returns the password (show it once).
pub fn add_user(
    accounts: &mut Accounts,
    store: &Store,
    (actor, today): (&str, NaiveDate),
    id: &str,
    name: &str,
    role: Role,
) -> Result<String, AccountError> {
    let user = UserId::parse(id).map_err(AccountRejection::IdInvalid)?;
    let password = generate_password()?;
    let password_hash = hash_password(&password)?;
    let event = UserEvent::Added { user, name: name.trim().to_owned(), role, password_hash };
    accounts.record(store, actor, event, today)?;
    Ok(password)
}

/// Gives a user a new generated password; returns it (show it once).
pub fn reset_password(
    accounts: &mut Accounts,
    store: &Store,
    (actor, today): (&str, NaiveDate),
    id: &str,
) -> Result<String, AccountError> {
    let user = UserId::parse(id).map_err(|_| AccountRejection::Unknown)?;
    let password = generate_password()?;
    let password_hash = hash_password(&password)?;
    accounts.record(store, actor, UserEvent::PasswordSet { user, password_hash }, today)?;
    Ok(password)
}

/// The user `id` chooses a new password, knowing the current one; recorded with the user as
/// the actor, so it need not be changed again.
pub fn change_own_password(
    accounts: &mut Accounts,
    store: &Store,
    (id, today): (&str, NaiveDate),
    current: &str,
    new: &str,
) -> Result<(), AccountError> {
    let account = accounts.get(id).filter(|a| !a.disabled).ok_or(AccountRejection::Unknown)?;
    if current.chars().count() > PASSWORD_CHARS_MAX || !verify_password(&account.password_hash, current) {
        return Err(AccountRejection::CurrentPasswordWrong.into());
    }
    users::check_new_password(&account.id, current, new)?;
    let password_hash = hash_password(new)?;
    let user = account.id.clone();
    accounts.record(store, id, UserEvent::PasswordSet { user, password_hash }, today)
}

/// Disables a user.
pub fn disable_user(
    accounts: &mut Accounts,
    store: &Store,
    (actor, today): (&str, NaiveDate),
    id: &str,
) -> Result<(), AccountError> {
    let user = UserId::parse(id).map_err(|_| AccountRejection::Unknown)?;
    accounts.record(store, actor, UserEvent::Disabled { user }, today)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse battery"));
        assert!(!verify_password(&h, "correct horse batterx"));
        assert!(!verify_password("not a phc string", "x"));
    }

    #[test]
    fn generated_passwords_differ_and_avoid_look_alikes() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.chars().count(), 16);
        assert_ne!(a, b);
        assert!(!a.contains(['0', 'O', '1', 'l', 'I']));
        assert!(check_password(&a).is_ok());
    }

    #[test]
    fn short_and_control_passwords_are_refused() {
        assert!(check_password("short").is_err());
        assert!(check_password("twelve chars\n!").is_err());
        assert!(check_password("twelve chars").is_ok());
    }

    #[test]
    fn users_are_events_and_fold_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let mut accounts = Accounts::load(&store).unwrap();
        let admin = ("admin", NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
        let pw = add_user(&mut accounts, &store, admin, "sato", "佐藤 花子", Role::Caseworker).unwrap();
        assert!(matches!(
            add_user(&mut accounts, &store, admin, "sato", "別人", Role::Viewer),
            Err(AccountError::Rejected(AccountRejection::IdTaken))
        ));
        assert!(matches!(
            add_user(&mut accounts, &store, admin, "x y", "名前", Role::Viewer),
            Err(AccountError::Rejected(AccountRejection::IdInvalid(_)))
        ));
        let pw2 = reset_password(&mut accounts, &store, admin, "sato").unwrap();
        disable_user(&mut accounts, &store, admin, "sato").unwrap();
        assert!(matches!(
            disable_user(&mut accounts, &store, admin, "sato"),
            Err(AccountError::Rejected(AccountRejection::AlreadyDisabled))
        ));
        let reloaded = Accounts::load(&store).unwrap();
        let a = reloaded.get("sato").unwrap();
        assert_eq!(a.role, Role::Caseworker);
        assert!(a.disabled);
        assert!(verify_password(&a.password_hash, &pw2));
        assert!(!verify_password(&a.password_hash, &pw));
        assert!(matches!(
            disable_user(&mut accounts, &store, admin, "nobody"),
            Err(AccountError::Rejected(AccountRejection::Unknown))
        ));
        // The events carry the day they were decided on, not the wall clock's.
        let events = store.read_stream(&users_stream().unwrap()).unwrap();
        assert!(events.iter().all(|e| e.effective == admin.1));
    }
}
