//! Request safety of the web UI over a real server: the role x route matrix, CSRF, security
//! headers, sessions (rotation, timeouts, cookies, throttling, logout, disabled users).
//!
//! The matrix lists every route of the router; a route added to `web/src/lib.rs` without a row
//! here fails `every_route_is_in_the_matrix`. Payloads are harmless (empty forms, unknown ids),
//! so the matrix also shows that none of them moves the log head.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use daicho_tests::web::{Client, Fixture, PASSWORD, Server, fixture, make_ledger};
use daicho_web::Settings;

/// Who calls: anonymous, or a test user (see `daicho_tests::web::USERS`).
const CALLERS: [Option<&str>; 6] =
    [None, Some("viewer1"), Some("case1"), Some("super1"), Some("admin1"), Some("audit1")];

/// One row: method, route pattern (as in the router), concrete path, form, and the status per
/// caller in [`CALLERS`] order (anonymous, viewer, caseworker, supervisor, admin, auditor).
struct Row {
    method: &'static str,
    route: &'static str,
    path: &'static str,
    form: &'static [(&'static str, &'static str)],
    expect: [u16; 6],
}

const ANY: [u16; 6] = [303, 200, 200, 200, 200, 200];
const RECORD: [u16; 6] = [303, 403, 200, 200, 200, 403];
const APPROVE_MISSING: [u16; 6] = [303, 403, 403, 404, 404, 403];
const PMH: [u16; 6] = [303, 403, 403, 200, 200, 200];
const ADMIN: [u16; 6] = [303, 403, 403, 403, 200, 403];
const ADMIN_MISSING: [u16; 6] = [303, 403, 403, 403, 200, 403];
const ACCESS: [u16; 6] = [303, 403, 403, 403, 200, 200];
const AUDIT: [u16; 6] = [303, 403, 403, 200, 200, 200];

const MATRIX: &[Row] = &[
    Row { method: "GET", route: "/", path: "/", form: &[], expect: ANY },
    Row { method: "GET", route: "/login", path: "/login", form: &[], expect: [200; 6] },
    // A wrong password: the login page again, 401, whoever asks.
    Row {
        method: "POST",
        route: "/login",
        path: "/login",
        form: &[("user", "nobody"), ("password", "wrong")],
        expect: [401; 6],
    },
    Row { method: "GET", route: "/account/password", path: "/account/password", form: &[], expect: ANY },
    // A wrong current password: the page again with a message, nothing recorded.
    Row {
        method: "POST",
        route: "/account/password",
        path: "/account/password",
        form: &[("current", "wrong"), ("new", "another-long-password"), ("again", "another-long-password")],
        expect: ANY,
    },
    Row { method: "GET", route: "/search", path: "/search", form: &[], expect: ANY },
    Row { method: "POST", route: "/search", path: "/search", form: &[("by", "kana"), ("q", "ヤマダ")], expect: ANY },
    Row { method: "GET", route: "/recipients/new", path: "/recipients/new", form: &[], expect: RECORD },
    // An empty registration at the check step: the form again with field errors.
    Row {
        method: "POST",
        route: "/recipients/new",
        path: "/recipients/new",
        form: &[("id", "w-matrix-new"), ("step", "check")],
        expect: RECORD,
    },
    Row { method: "GET", route: "/recipients/{n}", path: "/recipients/{a}", form: &[], expect: ANY },
    Row {
        method: "GET",
        route: "/recipients/{n}",
        path: "/recipients/999999",
        form: &[],
        expect: [303, 404, 404, 404, 404, 404],
    },
    // No reason given: the page again with a message, nothing revealed.
    Row {
        method: "POST",
        route: "/recipients/{n}/reveal",
        path: "/recipients/{a}/reveal",
        form: &[("reason", "")],
        expect: [303, 403, 403, 200, 200, 403],
    },
    Row {
        method: "GET",
        route: "/recipients/{n}/do/{kind}",
        path: "/recipients/{a}/do/move_out",
        form: &[],
        expect: RECORD,
    },
    Row {
        method: "GET",
        route: "/recipients/{n}/do/{kind}",
        path: "/recipients/{a}/do/no_such_command",
        form: &[],
        expect: [303, 403, 404, 404, 404, 403],
    },
    Row {
        method: "POST",
        route: "/recipients/{n}/do/{kind}",
        path: "/recipients/{a}/do/move_out",
        form: &[("id", "w-matrix-out"), ("step", "check")],
        expect: RECORD,
    },
    Row {
        method: "GET",
        route: "/recipients/{n}/certificates/{index}/print",
        path: "/recipients/{a}/certificates/0/print",
        form: &[],
        expect: RECORD,
    },
    Row {
        method: "GET",
        route: "/recipients/{n}/certificates/{index}/print",
        path: "/recipients/{a}/certificates/7/print",
        form: &[],
        expect: [303, 403, 404, 404, 404, 403],
    },
    Row { method: "GET", route: "/approvals", path: "/approvals", form: &[], expect: [303, 403, 403, 200, 200, 403] },
    Row {
        method: "POST",
        route: "/approvals/{id}/approve",
        path: "/approvals/no-such-request/approve",
        form: &[],
        expect: APPROVE_MISSING,
    },
    Row {
        method: "POST",
        route: "/approvals/{id}/reject",
        path: "/approvals/no-such-request/reject",
        form: &[],
        expect: APPROVE_MISSING,
    },
    Row { method: "GET", route: "/pmh", path: "/pmh", form: &[], expect: PMH },
    Row {
        method: "POST",
        route: "/pmh/generate",
        path: "/pmh/generate",
        form: &[("program", "no-such-program")],
        expect: [303, 403, 403, 400, 400, 403],
    },
    Row {
        method: "GET",
        route: "/pmh/batches/{n}/{file}",
        path: "/pmh/batches/999/manifest.json",
        form: &[],
        expect: [303, 403, 403, 404, 404, 403],
    },
    Row { method: "GET", route: "/billing", path: "/billing", form: &[], expect: AUDIT },
    // A bad month: the page again with the message.
    Row { method: "GET", route: "/billing", path: "/billing?month=2026-13", form: &[], expect: AUDIT },
    Row {
        method: "POST",
        route: "/billing/close",
        path: "/billing/close",
        form: &[("month", "")],
        expect: [303, 403, 403, 200, 200, 403],
    },
    Row {
        method: "POST",
        route: "/billing/schedule",
        path: "/billing/schedule",
        form: &[("from_month", ""), ("unit_yen", "")],
        expect: ADMIN,
    },
    Row {
        method: "GET",
        route: "/billing/{month}/{file}",
        path: "/billing/2026-10/no-such-file.csv",
        form: &[],
        expect: [303, 403, 403, 404, 404, 404],
    },
    Row { method: "GET", route: "/admin/users", path: "/admin/users", form: &[], expect: ADMIN },
    // No role chosen: the page again with a field error.
    Row {
        method: "POST",
        route: "/admin/users",
        path: "/admin/users",
        form: &[("id", ""), ("role", "")],
        expect: ADMIN,
    },
    Row {
        method: "POST",
        route: "/admin/users/{id}/disable",
        path: "/admin/users/nobody/disable",
        form: &[],
        expect: ADMIN_MISSING,
    },
    Row {
        method: "POST",
        route: "/admin/users/{id}/password",
        path: "/admin/users/nobody/password",
        form: &[],
        expect: ADMIN_MISSING,
    },
    Row { method: "GET", route: "/admin/access", path: "/admin/access", form: &[], expect: ACCESS },
    Row { method: "GET", route: "/admin/health", path: "/admin/health", form: &[], expect: ADMIN },
    // For monitoring: no login, no personal data.
    Row { method: "GET", route: "/healthz", path: "/healthz", form: &[], expect: [200; 6] },
    // A form that is not multipart: refused as unreadable (400) for those who may upload, and
    // not read at all for the others.
    Row {
        method: "POST",
        route: "/pmh/results",
        path: "/pmh/results",
        form: &[("file", "x")],
        expect: [303, 403, 403, 400, 400, 403],
    },
    Row {
        method: "POST",
        route: "/pmh/reconcile",
        path: "/pmh/reconcile",
        form: &[("file", "x")],
        expect: [303, 403, 403, 400, 400, 400],
    },
    Row { method: "GET", route: "/audit", path: "/audit", form: &[], expect: AUDIT },
    // A comparison with bad positions: the page again with field errors.
    Row { method: "GET", route: "/audit", path: "/audit?recipient=x&a=&b=", form: &[], expect: AUDIT },
    Row { method: "POST", route: "/audit/verify", path: "/audit/verify", form: &[], expect: AUDIT },
    // The reading of a date being typed (JSON), for any signed-in user.
    Row {
        method: "POST",
        route: "/dates/read",
        path: "/dates/read",
        form: &[("kind", "date"), ("v", "令和8年4月1日")],
        expect: ANY,
    },
    Row { method: "GET", route: "/static/app.css", path: "/static/app.css", form: &[], expect: [200; 6] },
    Row { method: "GET", route: "/static/app.js", path: "/static/app.js", form: &[], expect: [200; 6] },
    Row { method: "GET", route: "/static/print.css", path: "/static/print.css", form: &[], expect: [200; 6] },
    // Unknown paths: 404 for everyone (the fallback needs no session).
    Row { method: "GET", route: "(fallback)", path: "/no/such/page", form: &[], expect: [404; 6] },
    // Last, as it ends the session.
    Row { method: "POST", route: "/logout", path: "/logout", form: &[], expect: [303; 6] },
];

fn start(settings: Settings) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    make_ledger(dir.path(), 30).unwrap();
    let server = Server::start(dir.path(), settings).unwrap();
    (dir, server)
}

fn head(server: &Server) -> (u64, String) {
    let h = server.app.store.head();
    (h.position.0, format!("{:?}", h.hash))
}

fn concrete(path: &str, f: &Fixture) -> String {
    path.replace("{a}", &f.a.to_string())
}

fn call(c: &mut Client, row: &Row, path: &str) -> daicho_tests::web::Response {
    match row.method {
        "GET" => c.get(path).unwrap(),
        _ if row.route == "/login" => c.post(path, row.form).unwrap(),
        _ => {
            // Logged-in callers send their session's token, so the matrix tests roles, not CSRF.
            let token = c.csrf().unwrap_or_default();
            let mut form: Vec<(&str, &str)> = vec![("csrf", &token)];
            form.extend_from_slice(row.form);
            c.post(path, &form).unwrap()
        }
    }
}

#[test]
fn every_route_as_every_role() {
    // Each caller fails one login on purpose; keep the throttle out of the way.
    let (_dir, server) = start(Settings { account_failures_max: 100, ..Settings::default() });
    let f = fixture(&server).unwrap();
    let before = head(&server);
    let mut failures = Vec::new();
    for (i, caller) in CALLERS.iter().enumerate() {
        let mut c = match caller {
            None => server.client(),
            Some(u) => server.login(u).unwrap(),
        };
        for row in MATRIX {
            let path = concrete(row.path, &f);
            let r = call(&mut c, row, &path);
            let want = row.expect[i];
            if r.status != want {
                failures.push(format!("{} {path} as {:?}: want {want}, got {}", row.method, caller, r.status));
            }
            if want == 303 && caller.is_none() && r.header("location") != Some("/login") {
                failures.push(format!("{} {path} anonymous: not sent to /login", row.method));
            }
        }
    }
    assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(head(&server), before, "a matrix request changed the log");
}

#[test]
fn every_route_is_in_the_matrix() {
    let source = include_str!("../../web/src/lib.rs");
    let mut missing = Vec::new();
    for line in source.lines().filter(|l| l.trim_start().starts_with(".route(\"")) {
        let route = line.split('"').nth(1).unwrap_or_default();
        for (method, marker) in [("GET", "get("), ("POST", "post(")] {
            if line.contains(marker) && !MATRIX.iter().any(|r| r.route == route && r.method == method) {
                missing.push(format!("{method} {route}"));
            }
        }
    }
    assert!(source.contains(".fallback("), "the router's fallback moved");
    assert!(missing.is_empty(), "routes without a matrix row: {missing:?}");
}

#[test]
fn cross_site_and_tokenless_posts_are_refused_and_get_changes_nothing() {
    let (_dir, server) = start(Settings::default());
    let f = fixture(&server).unwrap();
    let mut c = server.login("case1").unwrap();
    let token = c.csrf().unwrap();
    let path = format!("/recipients/{}/do/move_out", f.a);
    let form = |t: &str| {
        daicho_tests::web::urlencode(&[
            ("csrf", t),
            ("id", "w-csrf"),
            ("step", "confirm"),
            ("effective", "2026-11-15"),
            ("to", "横浜市"),
        ])
    };
    let before = head(&server);
    // A browser posting from another site says so in Sec-Fetch-Site, or at least in Origin.
    let attempts: [(&str, Vec<(&str, &str)>); 5] = [
        ("Sec-Fetch-Site cross-site", vec![("Sec-Fetch-Site", "cross-site")]),
        ("Sec-Fetch-Site same-site", vec![("Sec-Fetch-Site", "same-site")]),
        ("Origin of another site", vec![("Origin", "http://evil.example")]),
        ("cross-site with a stolen token", vec![("Sec-Fetch-Site", "cross-site"), ("Origin", "http://evil.example")]),
        ("Origin null", vec![("Origin", "null")]),
    ];
    for (what, headers) in attempts {
        let r = c.request("POST", &path, Some(&form(&token)), &headers).unwrap();
        assert_eq!(r.status, 403, "{what}");
    }
    // Same origin but without the session's token, or with another session's token.
    let other = server.login("case2").unwrap().csrf().unwrap();
    for (what, t) in [("no token", ""), ("wrong token", "0000"), ("another session's token", other.as_str())] {
        let r = c.request("POST", &path, Some(&form(t)), &[("Sec-Fetch-Site", "same-origin")]).unwrap();
        assert_eq!(r.status, 403, "{what}");
        assert!(r.has("送信を受け付けられません"), "{what}: the page says why");
    }
    assert_eq!(head(&server), before, "a refused POST recorded something");
    // A GET with the same parameters only shows the form.
    let query = form(&token);
    let r = c.get(&format!("{path}?{query}")).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(head(&server), before, "a GET recorded something");
    // The same POST from our own page records.
    let r = c.request("POST", &path, Some(&form(&token)), &[("Sec-Fetch-Site", "same-origin")]).unwrap();
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(head(&server).0 > before.0);
}

#[test]
fn every_response_carries_the_security_headers() {
    let (_dir, server) = start(Settings::default());
    let f = fixture(&server).unwrap();
    let mut c = server.login("super1").unwrap();
    let mut anon = server.client();
    let pages = [
        format!("/recipients/{}", f.a),
        "/search".to_owned(),
        "/pmh".to_owned(),
        "/approvals".to_owned(),
        format!("/recipients/{}/do/move_out", f.a),
        "/no/such/page".to_owned(),
    ];
    let mut responses: Vec<(String, daicho_tests::web::Response)> =
        pages.iter().map(|p| (p.clone(), c.get(p).unwrap())).collect();
    responses.push(("/login".into(), anon.get("/login").unwrap()));
    responses.push(("/static/app.css".into(), anon.get("/static/app.css").unwrap()));
    for (path, r) in &responses {
        let csp = r.header("content-security-policy").unwrap_or_default();
        for directive in ["default-src 'self'", "frame-ancestors 'none'", "form-action 'self'", "base-uri 'none'"] {
            assert!(csp.contains(directive), "{path}: CSP {csp:?} lacks {directive}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{path}: {csp}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{path}");
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        let cache = r.header("cache-control").unwrap_or_default();
        if path.starts_with("/static/") {
            assert!(cache.starts_with("private"), "{path}: {cache}");
        } else {
            assert_eq!(cache, "no-store", "{path}");
        }
    }
    // Pages load nothing from elsewhere: every src/href is local.
    let (_, page) = &responses[0];
    for attr in ["src=\"", "href=\""] {
        for (i, _) in page.body.match_indices(attr) {
            let value = &page.body[i + attr.len()..];
            let value = &value[..value.find('"').unwrap_or(0)];
            assert!(value.starts_with('/') || value.starts_with('?') || value.starts_with('#'), "{value}");
        }
    }
    assert!(!page.body.contains("<script>") && !page.body.contains(" style=\""), "inline script or style");
}

#[test]
fn sessions_rotate_expire_and_end() {
    // The server's clock moves only when the test moves it: no sleeping for timeouts.
    let clock = daicho_app::clock::Monotonic::manual();
    let settings = Settings {
        idle_timeout: Duration::from_secs(15 * 60),
        absolute_timeout: Duration::from_secs(8 * 3600),
        clock: clock.clone(),
        ..Settings::default()
    };
    let (_dir, server) = start(settings);

    // The cookie: HttpOnly, SameSite=Strict, not Secure unless configured.
    let mut c = server.client();
    let r = c.post("/login", &[("user", "viewer1"), ("password", PASSWORD)]).unwrap();
    assert_eq!(r.status, 303);
    let cookie = r.header("set-cookie").unwrap().to_owned();
    assert!(cookie.starts_with("daicho_session="), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    let first = c.session().unwrap().to_owned();

    // Logging in again replaces the session, and the old token no longer works.
    let r = c.post("/login", &[("user", "viewer1"), ("password", PASSWORD)]).unwrap();
    assert_eq!(r.status, 303);
    let second = c.session().unwrap().to_owned();
    assert_ne!(first, second, "session id not rotated at login");
    let mut old = server.client();
    let r = old.request("GET", "/search", None, &[("Cookie", &format!("daicho_session={first}"))]).unwrap();
    assert_eq!(r.status, 303, "the old session still works");

    // Idle timeout: activity keeps the session (each request within 15 minutes of the last,
    // 42 minutes in all), silence ends it.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(14 * 60));
        assert_eq!(c.get("/search").unwrap().status, 200, "an active session expired early");
    }
    clock.advance(Duration::from_secs(15 * 60 + 1));
    assert_eq!(c.get("/search").unwrap().status, 303, "idle timeout not applied");

    // Absolute timeout: even an active session ends, 8 hours after its login.
    let mut c = server.login("viewer1").unwrap();
    for _ in 0..(8 * 60 / 14) {
        clock.advance(Duration::from_secs(14 * 60));
        assert_eq!(c.get("/search").unwrap().status, 200);
    }
    clock.advance(Duration::from_secs(14 * 60));
    assert_eq!(c.get("/search").unwrap().status, 303, "absolute timeout not applied");

    // Logout ends the session on the server, not only in the browser.
    let mut c = server.login("viewer1").unwrap();
    let token = c.session().unwrap().to_owned();
    let csrf = c.csrf().unwrap();
    let r = c.post("/logout", &[("csrf", &csrf)]).unwrap();
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let mut replay = server.client();
    let r = replay.request("GET", "/search", None, &[("Cookie", &format!("daicho_session={token}"))]).unwrap();
    assert_eq!(r.status, 303, "a logged-out session still works");
}

#[test]
fn secure_cookies_when_configured() {
    let (_dir, server) = start(Settings { secure_cookies: true, ..Settings::default() });
    let mut c = server.client();
    let r = c.post("/login", &[("user", "viewer1"), ("password", PASSWORD)]).unwrap();
    assert_eq!(r.status, 303);
    let cookie = r.header("set-cookie").unwrap();
    assert!(cookie.starts_with("__Host-daicho_session="), "{cookie}");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
}

#[test]
fn failed_logins_are_throttled_per_account_and_per_address() {
    let (_dir, server) = start(Settings { account_failures_max: 3, address_failures_max: 6, ..Settings::default() });
    let mut c = server.client();
    for _ in 0..3 {
        assert_eq!(c.post("/login", &[("user", "case1"), ("password", "guess")]).unwrap().status, 401);
    }
    // Locked: even the right password is refused, and says for how long.
    let r = c.post("/login", &[("user", "case1"), ("password", PASSWORD)]).unwrap();
    assert_eq!(r.status, 429);
    assert!(r.has("分間ログインできません"));
    // Other accounts still log in from this address...
    assert!(server.login("case2").is_ok());
    // ...until the address has failed too often, over any accounts.
    for user in ["x1", "x2", "x3"] {
        assert_eq!(c.post("/login", &[("user", user), ("password", "guess")]).unwrap().status, 401);
    }
    let r = c.post("/login", &[("user", "super1"), ("password", PASSWORD)]).unwrap();
    assert_eq!(r.status, 429, "address throttle not applied");
}

#[test]
fn a_disabled_user_loses_the_session_and_cannot_log_in() {
    let (_dir, server) = start(Settings::default());
    let mut victim = server.login("case2").unwrap();
    assert_eq!(victim.get("/search").unwrap().status, 200);
    let mut admin = server.login("admin1").unwrap();
    let r = admin.post_form("/admin/users/case2/disable", &[]).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.has("無効にしました"));
    assert_eq!(victim.get("/search").unwrap().status, 303);
    assert!(server.login("case2").is_err());
}
