//! Sessions, login throttling, the logged-in user, and what each role may do.
//!
//! - A session is a random 256-bit token in an HttpOnly, SameSite=Strict cookie (Secure and
//!   `__Host-` prefixed when served over TLS). The server keeps only its SHA-256, with the user,
//!   a per-session CSRF token, and the login and last-request times; a login always starts a
//!   new session (the old token is dropped), and idle and absolute timeouts end it.
//! - Failed logins are counted per account and per client address; past the limit, logins are
//!   refused for the lockout period whatever the password.
//! - Sessions live in memory: restarting the server logs everyone out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use daicho_app::clock::Monotonic;
use daicho_domain::ids::UserId;
use daicho_domain::privacy::{self, Channel, Protection};
use daicho_domain::users::Role;
use sha2::{Digest, Sha256};

use crate::app::{App, random_hex};
use crate::error::{AppError, AppResult};

pub use daicho_app::policy::{Permission, allows};

/// One session.
#[derive(Clone, Debug)]
pub struct Session {
    /// Who.
    pub user: String,
    /// The token forms must carry.
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
    /// When the user last typed their password again in this session (before a reveal).
    reauthenticated: Option<Instant>,
}

/// Every live session, by token hash, timed by `clock`.
#[derive(Default)]
pub struct Sessions {
    inner: Mutex<HashMap<[u8; 32], Session>>,
    clock: Monotonic,
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// No sessions yet, timed by `clock`.
    pub fn new(clock: Monotonic) -> Sessions {
        Sessions { inner: Mutex::default(), clock }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a session for `user`; returns its token (for the cookie). Expired sessions are
    /// swept first; with `max` live ones, the login is refused ([`AppError::Busy`]).
    pub fn create(&self, user: &str, idle: Duration, absolute: Duration, max: usize) -> AppResult<String> {
        let token = random_hex(32)?;
        let now = self.clock.now();
        let session = Session {
            user: user.to_owned(),
            csrf: random_hex(32)?,
            created: now,
            last_seen: now,
            reauthenticated: None,
        };
        let mut map = self.map();
        map.retain(|_, s| now.duration_since(s.last_seen) <= idle && now.duration_since(s.created) <= absolute);
        if map.len() >= max {
            return Err(AppError::Busy(
                "ログイン中の利用者が上限に達しています。しばらくしてからやり直してください。".into(),
            ));
        }
        map.insert(token_hash(&token), session);
        Ok(token)
    }

    /// Live sessions (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.map().len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live session of `token`, touched; expired sessions are removed.
    pub fn get(&self, token: &str, idle: Duration, absolute: Duration) -> Option<Session> {
        let key = token_hash(token);
        let mut map = self.map();
        let now = self.clock.now();
        let s = map.get_mut(&key)?;
        if now.duration_since(s.last_seen) > idle || now.duration_since(s.created) > absolute {
            map.remove(&key);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    /// Ends the session of `token`.
    pub fn remove(&self, token: &str) {
        self.map().remove(&token_hash(token));
    }

    /// Ends every session of `user` (disabled, or given a new password).
    pub fn remove_user(&self, user: &str) {
        self.map().retain(|_, s| s.user != user);
    }

    /// Ends every session of `user` but the one with key `keep` (the user changed their password
    /// there).
    pub fn remove_others(&self, user: &str, keep: &[u8; 32]) {
        self.map().retain(|k, s| s.user != user || k == keep);
    }

    /// Notes that the password was typed again in session `key` now.
    pub fn reauthenticated(&self, key: &[u8; 32]) {
        if let Some(s) = self.map().get_mut(key) {
            s.reauthenticated = Some(self.clock.now());
        }
    }

    /// Whether the password was typed (at login or again) in session `key` within `window`.
    pub fn recently_authenticated(&self, key: &[u8; 32], window: Duration) -> bool {
        let now = self.clock.now();
        self.map().get(key).and_then(|s| s.reauthenticated).is_some_and(|t| now.duration_since(t) <= window)
    }
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    first: Instant,
    last: Instant,
}

/// The limits of the login throttle.
#[derive(Clone, Copy, Debug)]
pub struct ThrottleLimits {
    /// Failures of one account from one address before that pair is locked for `window`.
    pub pair_failures_max: u32,
    /// Failures from one address (over any accounts) before it is locked for `window`.
    pub address_failures_max: u32,
    /// Failures of one account (from any address) after which each attempt must wait, doubling
    /// from one second, up to `account_delay_max`: a stranger slows an account down but cannot
    /// lock its owner out.
    pub account_failures_max: u32,
    /// The longest wait an account's failures impose.
    pub account_delay_max: Duration,
    /// How long failures count, and how long a lock lasts.
    pub window: Duration,
}

/// Why an attempt is refused before its password is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The pair or the address is locked until the window passes.
    Locked,
    /// The account's failures ask for a wait of this long.
    Wait(Duration),
}

/// Failed-login counters: per account and address (`p:<id>|<ip>`), per address (`a:<ip>`) and
/// per account (`u:<id>`). An attempt is counted *before* its password is hashed
/// ([`Throttle::attempt`]), so parallel attempts cannot pass a limit together; a success forgets
/// the account's and the pair's counts.
#[derive(Default)]
pub struct Throttle {
    inner: Mutex<HashMap<String, Failures>>,
}

impl Throttle {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Checks and counts one attempt of `user` from `addr` at `now`.
    pub fn attempt(&self, user: &str, addr: &str, limits: &ThrottleLimits, now: Instant) -> Result<(), Refused> {
        let mut map = self.map();
        map.retain(|_, f| now.saturating_duration_since(f.first) <= limits.window);
        let (pair, address, account) = (format!("p:{user}|{addr}"), format!("a:{addr}"), format!("u:{user}"));
        let count = |k: &str| map.get(k).map_or(0, |f| f.count);
        if count(&pair) >= limits.pair_failures_max || count(&address) >= limits.address_failures_max {
            return Err(Refused::Locked);
        }
        if let Some(f) = map.get(&account).filter(|f| f.count >= limits.account_failures_max) {
            let doublings = (f.count - limits.account_failures_max).min(16);
            let wait = Duration::from_secs(1u64 << doublings).min(limits.account_delay_max);
            let ready = f.last + wait;
            if now < ready {
                return Err(Refused::Wait(ready - now));
            }
        }
        for k in [pair, address, account] {
            map.entry(k)
                .and_modify(|f| {
                    f.count += 1;
                    f.last = now;
                })
                .or_insert(Failures { count: 1, first: now, last: now });
        }
        Ok(())
    }

    /// Forgets the account's failures and the pair's, after a successful login (the address's
    /// count stays: one good password does not license guessing others).
    pub fn succeeded(&self, user: &str, addr: &str) {
        let mut map = self.map();
        map.remove(&format!("u:{user}"));
        map.remove(&format!("p:{user}|{addr}"));
        if let Some(f) = map.get_mut(&format!("a:{addr}")) {
            f.count = f.count.saturating_sub(1);
        }
    }
}

/// The name of the session cookie.
pub fn cookie_name(secure: bool) -> &'static str {
    if secure { "__Host-daicho_session" } else { "daicho_session" }
}

/// The session token in the request's cookies.
pub fn session_token(headers: &HeaderMap, secure: bool) -> Option<String> {
    let name = cookie_name(secure);
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `Set-Cookie` for a new session.
pub fn session_cookie(token: &str, secure: bool) -> String {
    let name = cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={token}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    let name = cookie_name(secure);
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// The logged-in user of a request.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    /// Login id.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// Role (as the accounts have it now, not as at login).
    pub role: Role,
    /// The session's CSRF token.
    pub csrf: String,
    /// The session's key (the SHA-256 of its token).
    pub session: [u8; 32],
    /// The password was issued by someone else and must be changed first.
    pub must_change: bool,
}

/// Paths a user whose password must be changed may still reach.
const WHILE_MUST_CHANGE: [&str; 2] = ["/account/password", "/logout"];

impl CurrentUser {
    /// The user as the actor of a write.
    pub fn actor(&self) -> daicho_app::Actor {
        daicho_app::Actor::User { id: self.id.clone(), role: self.role }
    }

    /// Refuses unless the role has `p`.
    pub fn require(&self, p: Permission) -> AppResult<()> {
        if allows(self.role, p) { Ok(()) } else { Err(AppError::Forbidden) }
    }

    /// Whether the role has `p`.
    pub fn can(&self, p: Permission) -> bool {
        allows(self.role, p)
    }

    /// What this user sees of a person with `protection` in `channel`: the privacy policy.
    pub fn view(&self, protection: Protection, channel: Channel) -> privacy::View {
        privacy::view(protection, self.role, channel)
    }

    /// Refuses unless `token` is this session's CSRF token (compared in constant time).
    pub fn check_csrf(&self, token: Option<&str>) -> AppResult<()> {
        let given = token.unwrap_or("").as_bytes();
        let want = self.csrf.as_bytes();
        let same = given.len() == want.len() && given.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if same { Ok(()) } else { Err(AppError::CsrfMismatch) }
    }
}

impl FromRequestParts<Arc<App>> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let token = session_token(&parts.headers, app.settings.secure_cookies).ok_or(AppError::Unauthenticated)?;
        let session = app
            .sessions
            .get(&token, app.settings.idle_timeout, app.settings.absolute_timeout)
            .ok_or(AppError::Unauthenticated)?;
        let accounts = app.accounts();
        let account = accounts.get(&session.user).filter(|a| !a.disabled).ok_or(AppError::Unauthenticated)?;
        let must_change = account.must_change && app.settings.force_password_change;
        if must_change && !WHILE_MUST_CHANGE.contains(&parts.uri.path()) {
            return Err(AppError::PasswordChangeRequired);
        }
        Ok(CurrentUser {
            id: account.id.clone(),
            name: account.name.clone(),
            role: account.role,
            csrf: session.csrf,
            session: token_hash(&token),
            must_change,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_or_old() {
        let clock = Monotonic::manual();
        let s = Sessions::new(clock.clone());
        let long = Duration::from_secs(60);
        let t = s.create("sato", long, long, 10).unwrap();
        assert!(s.get(&t, Duration::from_secs(60), Duration::from_secs(60)).is_some());
        clock.advance(Duration::from_millis(30));
        assert!(s.get(&t, Duration::from_millis(30), Duration::from_secs(60)).is_some(), "not yet idle");
        clock.advance(Duration::from_millis(31));
        assert!(s.get(&t, Duration::from_millis(30), Duration::from_secs(60)).is_none());
        let t = s.create("sato", long, long, 10).unwrap();
        clock.advance(Duration::from_millis(30));
        assert!(s.get(&t, Duration::from_secs(60), Duration::from_millis(10)).is_none());
        let t = s.create("sato", long, long, 10).unwrap();
        s.remove_user("sato");
        assert!(s.get(&t, Duration::from_secs(60), Duration::from_secs(60)).is_none());
    }

    fn limits() -> ThrottleLimits {
        ThrottleLimits {
            pair_failures_max: 3,
            address_failures_max: 10,
            account_failures_max: 3,
            account_delay_max: Duration::from_secs(8),
            window: Duration::from_secs(900),
        }
    }

    #[test]
    fn a_pair_locks_at_its_limit_and_is_forgotten_after_the_window() {
        let (t, l, t0) = (Throttle::default(), limits(), Instant::now());
        for i in 0..3 {
            assert_eq!(t.attempt("x", "1.1.1.1", &l, t0 + Duration::from_secs(20 * i)), Ok(()));
        }
        assert_eq!(t.attempt("x", "1.1.1.1", &l, t0 + Duration::from_secs(100)), Err(Refused::Locked));
        assert_eq!(t.attempt("x", "1.1.1.1", &l, t0 + Duration::from_secs(901)), Ok(()));
    }

    #[test]
    fn a_stranger_slows_an_account_down_but_cannot_lock_its_owner_out() {
        let (t, l, t0) = (Throttle::default(), limits(), Instant::now());
        // A stranger fails 3 times from one address, then is locked there.
        for i in 0..3 {
            assert_eq!(t.attempt("x", "6.6.6.6", &l, t0 + Duration::from_millis(i)), Ok(()));
        }
        assert_eq!(t.attempt("x", "6.6.6.6", &l, t0 + Duration::from_secs(1)), Err(Refused::Locked));
        // The owner, elsewhere, waits a second, not the window.
        let at = t0 + Duration::from_millis(2);
        assert_eq!(t.attempt("x", "10.0.0.1", &l, at), Err(Refused::Wait(Duration::from_secs(1))));
        assert_eq!(t.attempt("x", "10.0.0.1", &l, at + Duration::from_secs(1)), Ok(()));
        t.succeeded("x", "10.0.0.1");
        assert_eq!(t.attempt("x", "10.0.0.1", &l, at + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn an_accounts_wait_doubles_up_to_its_maximum() {
        let (t, l, t0) = (Throttle::default(), limits(), Instant::now());
        let mut now = t0;
        let mut waits = Vec::new();
        for i in 0..8u32 {
            let addr = format!("10.0.0.{i}");
            match t.attempt("x", &addr, &l, now) {
                Ok(()) => {}
                Err(Refused::Wait(w)) => {
                    waits.push(w.as_secs());
                    now += w;
                    assert_eq!(t.attempt("x", &addr, &l, now), Ok(()));
                }
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(waits, vec![1, 2, 4, 8, 8]);
    }

    #[test]
    fn parallel_attempts_cannot_pass_a_limit_together() {
        let t = std::sync::Arc::new(Throttle::default());
        let (l, t0) = (limits(), Instant::now());
        let passed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..30).map(|_| s.spawn(|| t.attempt("x", "6.6.6.6", &l, t0).is_ok())).collect();
            handles.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(passed, 3);
    }

    #[test]
    fn expired_sessions_are_swept_at_each_login_and_live_ones_are_bounded() {
        let s = Sessions::default();
        let long = Duration::from_secs(60);
        for _ in 0..3 {
            s.create("sato", long, long, 3).unwrap();
        }
        assert!(matches!(s.create("sato", long, long, 3), Err(AppError::Busy(_))));
        // A login with a zero idle timeout finds every earlier session expired: swept.
        s.create("sato", Duration::ZERO, long, 3).unwrap();
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn cookie_parsing_takes_only_well_formed_tokens() {
        let mut h = HeaderMap::new();
        let token = "a".repeat(64);
        h.insert("cookie", format!("other=1; daicho_session={token}").parse().unwrap());
        assert_eq!(session_token(&h, false), Some(token.clone()));
        assert_eq!(session_token(&h, true), None);
        h.insert("cookie", "daicho_session=<script>".parse().unwrap());
        assert_eq!(session_token(&h, false), None);
    }
}
