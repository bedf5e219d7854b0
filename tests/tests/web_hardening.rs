//! The hardening issue's attacks on a running server, each as it was made and the answer that
//! shows it refused: parallel password guesses, a stranger locking an owner out, hashing without
//! bound, forged log lines, and refusals of the outer layers without the security headers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use daicho_tests::web::{PASSWORD, Server, make_ledger};
use daicho_web::Settings;

fn start(settings: Settings) -> (tempfile::TempDir, Server) {
    logs();
    let dir = tempfile::tempdir().unwrap();
    make_ledger(dir.path(), 3).unwrap();
    let server = Server::start(dir.path(), settings).unwrap();
    (dir, server)
}

/// Everything the servers of this test binary logged (one global subscriber, installed once).
fn logs() -> &'static Mutex<Vec<u8>> {
    static LOG: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    struct Sink;
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            logs().lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let log = LOG.get_or_init(|| Mutex::new(Vec::new()));
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = tracing_subscriber::fmt().with_ansi(false).with_writer(|| Sink).try_init();
    });
    log
}

#[test]
fn item1_parallel_wrong_passwords_cannot_pass_the_limit_together() {
    let (_dir, server) = start(Settings { account_failures_max: 5, ..Settings::default() });
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..30)
            .map(|_| {
                s.spawn(|| {
                    let mut c = server.client();
                    c.post("/login", &[("user", "case1"), ("password", "wrong-guess")]).unwrap().status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let guessed = statuses.iter().filter(|s| **s == 401).count();
    assert!(guessed <= 5, "{guessed} of 30 parallel guesses had their password checked: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
}

#[test]
fn item1_a_login_beyond_the_hashing_permits_is_refused_at_once() {
    let (_dir, server) = start(Settings { password_hashes_max: 2, ..Settings::default() });
    // Two logins hashing now (held by the test), a third is answered without hashing.
    let held = server.app.password_hashes.clone().try_acquire_many_owned(2).unwrap();
    let r = server.client().post("/login", &[("user", "case1"), ("password", PASSWORD)]).unwrap();
    assert_eq!(r.status, 429);
    assert!(r.has("混み合っています"), "{}", r.body);
    assert!(r.header("retry-after").is_some());
    drop(held);
    assert!(server.login("case1").is_ok(), "a login fails once permits are free");
}

#[test]
fn item1_a_stranger_cannot_lock_the_owner_out() {
    let settings = Settings { account_failures_max: 5, account_delay_max: Duration::ZERO, ..Settings::default() };
    let (_dir, server) = start(settings);
    let mut stranger = server.client_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)));
    let statuses: Vec<u16> = (0..10)
        .map(|_| stranger.post("/login", &[("user", "case1"), ("password", "wrong-guess")]).unwrap().status)
        .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses[5..], [429; 5], "the stranger's address is not locked for this account");
    // The owner, from the usual address, logs in.
    assert!(server.login("case1").is_ok(), "the owner is locked out by a stranger's failures");
}

#[test]
fn item3_typed_ids_and_passwords_never_reach_the_log() {
    let (_dir, server) = start(Settings::default());
    let forged = "nobody\n2026-12-01T00:00:00.000000Z  INFO daicho_web::pages::login: login user=kanri";
    let mut c = server.client();
    assert_eq!(c.post("/login", &[("user", forged), ("password", "hunter2-secret")]).unwrap().status, 401);
    // A password typed into the id field.
    assert_eq!(c.post("/login", &[("user", "tr0ub4dor-and-3"), ("password", "x")]).unwrap().status, 401);
    // A real id with a wrong password is logged as itself.
    assert_eq!(c.post("/login", &[("user", "case2"), ("password", "x")]).unwrap().status, 401);
    let text = String::from_utf8(logs().lock().unwrap().clone()).unwrap();
    assert!(!text.contains("nobody"), "typed id logged:\n{text}");
    assert!(!text.contains("login user=kanri"), "forged line in the log:\n{text}");
    assert!(!text.contains("hunter2") && !text.contains("tr0ub4dor"), "a password in the log:\n{text}");
    assert!(text.lines().any(|l| l.contains("login failed") && l.contains("case2")), "{text}");
}

#[test]
fn item6_refusals_of_the_outer_layers_carry_the_security_headers() {
    let (_dir, server) = start(Settings { secure_cookies: true, ..Settings::default() });
    let mut c = server.client();
    let cross_site =
        c.request("POST", "/login", Some("user=a&password=b"), &[("Sec-Fetch-Site", "cross-site")]).unwrap();
    let big = "x=".to_owned() + &"a".repeat(daicho_web::BODY_BYTES_MAX + 10);
    let too_large = c.request("POST", "/login", Some(&big), &[("Sec-Fetch-Site", "same-origin")]).unwrap();
    let page = c.get("/login").unwrap();
    for (what, r, status) in [("csrf", &cross_site, 403), ("body limit", &too_large, 413), ("page", &page, 200)] {
        assert_eq!(r.status, status, "{what}");
        assert!(r.header("content-security-policy").is_some_and(|v| v.contains("default-src 'self'")), "{what}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{what}");
        assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
        assert!(r.header("strict-transport-security").is_some_and(|v| v.contains("max-age=")), "{what}: no HSTS");
    }
    // Without TLS, no HSTS (it would lock browsers out of a plain-HTTP install).
    let (_dir, plain) = start(Settings::default());
    assert_eq!(plain.client().get("/login").unwrap().header("strict-transport-security"), None);
}

#[test]
fn item5_healthz_answers_from_its_cache_while_the_ledger_is_busy() {
    let (_dir, server) = start(Settings::default());
    let mut c = server.client();
    assert_eq!(c.get("/healthz").unwrap().status, 200);
    // The ledger is held (a long recording, a batch): /healthz still answers.
    let held = server.app.ledger();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut again = server.client();
    let probe = std::thread::spawn(move || tx.send(again.get("/healthz").map(|r| r.status)).unwrap());
    let answer = rx.recv_timeout(Duration::from_secs(30));
    drop(held);
    probe.join().unwrap();
    assert_eq!(answer.ok().and_then(Result::ok), Some(200), "/healthz waited for the ledger lock");
}

#[test]
fn item5_an_access_log_search_reads_a_bounded_number_of_records() {
    let (_dir, server) = start(Settings { access_scanned_max: 5, ..Settings::default() });
    let mut viewer = server.login("viewer1").unwrap();
    for _ in 0..8 {
        assert_eq!(viewer.get("/recipients/1").unwrap().status, 200);
    }
    let mut admin = server.login("admin1").unwrap();
    let r = admin.get("/admin/access?user=nobody").unwrap();
    assert_eq!(r.status, 200);
    assert!(r.has("新しい順に5件まで調べました"), "the scan did not stop: {}", r.body);
    // What the bound reaches is found.
    let r = admin.get("/admin/access?user=viewer1").unwrap();
    assert!(r.has("/recipients/1"), "the newest records are not listed");
}

#[test]
fn item5_one_chain_walk_at_a_time() {
    let (_dir, server) = start(Settings::default());
    let mut auditor = server.login("audit1").unwrap();
    let running = server.app.verifying.clone().try_acquire_owned().unwrap();
    let r = auditor.post_form("/audit/verify", &[]).unwrap();
    assert_eq!(r.status, 429);
    assert!(r.has("確認中"), "{}", r.body);
    drop(running);
    assert_eq!(auditor.post_form("/audit/verify", &[]).unwrap().status, 200);
}

#[test]
fn item5_connections_beyond_the_limit_wait_for_one_to_close() {
    let (_dir, server) = start(Settings { connections_max: 1, ..Settings::default() });
    // One idle connection holds the only place.
    let idle = std::net::TcpStream::connect(server.addr).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut c = server.client();
    let waiting = std::thread::spawn(move || tx.send(c.get("/login").map(|r| r.status)).unwrap());
    assert!(rx.recv_timeout(Duration::from_secs(2)).is_err(), "a second connection was served beside the first");
    drop(idle);
    assert_eq!(rx.recv_timeout(Duration::from_secs(60)).unwrap(), Ok(200));
    waiting.join().unwrap();
}

/// An account an administrator adds through the web UI: its id and the generated password.
fn issued_account(server: &Server, id: &str) -> String {
    let mut admin = server.login("admin1").unwrap();
    let r = admin.post_form("/admin/users", &[("id", id), ("name", "新人 一"), ("role", "caseworker")]).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // The generated password is shown once.
    let shown = r.body.split("id=\"new-password\">").nth(1).and_then(|c| c.split('<').next());
    shown.unwrap_or_else(|| panic!("no generated password on the page: {}", r.body)).to_owned()
}

#[test]
fn item7_an_issued_password_must_be_changed_before_anything_else() {
    let (_dir, server) = start(Settings::default());
    let issued = issued_account(&server, "newcomer");
    let mut c = server.client();
    assert_eq!(c.post("/login", &[("user", "newcomer"), ("password", &issued)]).unwrap().status, 303);
    for path in ["/search", "/recipients/1", "/recipients/new"] {
        let r = c.get(path).unwrap();
        assert_eq!((r.status, r.header("location")), (303, Some("/account/password")), "{path} before the change");
    }
    let page = c.get("/account/password").unwrap();
    assert!(page.has("管理者が発行したパスワード"), "{}", page.body);
    let csrf = page.csrf().unwrap();
    let change = |c: &mut daicho_tests::web::Client, current: &str, new: &str, again: &str| {
        c.post("/account/password", &[("csrf", &csrf), ("current", current), ("new", new), ("again", again)]).unwrap()
    };
    assert!(
        change(&mut c, "wrong-password", "a-brand-new-password", "a-brand-new-password")
            .has("現在のパスワードが正しくありません")
    );
    assert!(change(&mut c, &issued, "short", "short").has("文字以上"));
    assert!(change(&mut c, &issued, "a-brand-new-password", "a-different-one!!").has("一致しません"));
    assert_eq!(change(&mut c, &issued, "a-brand-new-password", "a-brand-new-password").status, 303);
    assert_eq!(c.get("/search").unwrap().status, 200, "still sent to the password page after the change");
    // The issued password no longer works; the chosen one does, with no change asked again.
    let mut fresh = server.client();
    assert_eq!(fresh.post("/login", &[("user", "newcomer"), ("password", &issued)]).unwrap().status, 401);
    assert_eq!(
        fresh.post("/login", &[("user", "newcomer"), ("password", "a-brand-new-password")]).unwrap().status,
        303
    );
    assert_eq!(fresh.get("/search").unwrap().status, 200);
}

#[test]
fn item7_the_demo_keeps_its_printed_passwords() {
    let (_dir, server) = start(Settings { force_password_change: false, ..Settings::default() });
    let issued = issued_account(&server, "demo-user");
    let mut c = server.client();
    assert_eq!(c.post("/login", &[("user", "demo-user"), ("password", &issued)]).unwrap().status, 303);
    assert_eq!(c.get("/search").unwrap().status, 200);
}

#[test]
fn item7_a_reveal_asks_for_the_password_again() {
    let (_dir, server) = start(Settings::default());
    let mut super1 = server.login("super1").unwrap();
    // A recipient with a My Number (the demo links numbers to most).
    let n = (1..=3)
        .find(|n| super1.get(&format!("/recipients/{n}")).unwrap().has("個人番号を表示"))
        .expect("a recipient with a My Number");
    let path = format!("/recipients/{n}/reveal");
    let page = super1.get(&format!("/recipients/{n}")).unwrap();
    assert!(page.has("name=\"password\""), "the reveal form does not ask for the password");
    let without = super1.post_form(&path, &[("reason", "窓口で本人確認のため")]).unwrap();
    assert!(
        without.has("パスワードをもう一度入力してください") && without.has("個人番号を表示"),
        "revealed without it"
    );
    let wrong = super1.post_form(&path, &[("reason", "窓口で本人確認のため"), ("password", "wrong")]).unwrap();
    assert!(wrong.has("パスワードが正しくありません"));
    let right = super1.post_form(&path, &[("reason", "窓口で本人確認のため"), ("password", PASSWORD)]).unwrap();
    assert!(right.has("表示を記録しました"), "not revealed with the password");
    // For a few minutes after, the password is not asked again.
    let again = super1.post_form(&path, &[("reason", "再確認")]).unwrap();
    assert!(again.has("表示を記録しました"));
}
