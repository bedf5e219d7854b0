//! The privacy policy from the outside (issue: one privacy policy for every channel): every way
//! to view a person, as every role, for a person protected now, one protected and moved away,
//! and one whose protection ended; then each attack of the issue as it was made, and the answer
//! that shows it refused. A real server on a real ledger, and the CLI in-process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use daicho_app::access::AccessFilter;
use daicho_tests::cli::daicho as cli;
use daicho_tests::web::{Client, Server, USERS, add_test_users};
use daicho_web::Settings;

// Addresses and places, each a secret of its own.
/// P: the address at registration (before the measure, but P is protected now).
const P_OLD: &str = "さくら市旧町1-1";
/// P: the address in force when the measure started.
const P_NEW: &str = "さくら市新町2-2";
/// M: the address before moving out under the measure.
const M_HOME: &str = "さくら市港町3-3";
/// M: where M moved to.
const M_TO: &str = "ひみつ市";
/// E: the first address, replaced before the measure: never covered.
const E_FIRST: &str = "さくら市東町4-4";
/// E: the address while protected: covered after the measure ended too.
const E_SHELTER: &str = "さくら市西町5-5";
/// E: the address after the measure ended: not covered.
const E_AFTER: &str = "さくら市北町6-6";
/// O: never protected.
const O_HOME: &str = "さくら市南町7-7";

/// Whether the policy covers `secret` (for roles that may not see protected addresses).
fn covered(secret: &str) -> bool {
    ![E_FIRST, E_AFTER, O_HOME].contains(&secret)
}

/// Every secret of one person.
fn secrets_of(person: &str) -> &'static [&'static str] {
    match person {
        "P" => &[P_OLD, P_NEW],
        "M" => &[M_HOME, M_TO],
        "E" => &[E_FIRST, E_SHELTER, E_AFTER],
        _ => &[O_HOME],
    }
}

fn line(v: serde_json::Value) -> String {
    let mut v = v;
    let o = v.as_object_mut().unwrap();
    o.entry("actor").or_insert("case1".into());
    v.to_string()
}

/// The commands of the four people.
fn commands() -> String {
    use serde_json::json;
    let reg = |id: &str, r: &str, name: &str, kana: &str, address: &str| {
        line(json!({"id": id, "type": "register_recipient", "recipient": r, "effective": "2026-01-10",
                    "name": name, "kana": kana, "birth_date": "1985-02-02", "sex": "2", "address": address}))
    };
    let grant = |id: &str, r: &str| {
        line(json!({"id": id, "type": "grant_certificate", "recipient": r, "effective": "2026-03-20",
                    "certificate": format!("K-{r}"), "program": "kosei", "payer_number": "15139991",
                    "recipient_number": "1234566", "valid_from": "2026-04-01", "valid_to": "2027-03-31"}))
    };
    let change = |id: &str, r: &str, day: &str, address: &str| {
        line(json!({"id": id, "type": "change_personal_details", "recipient": r, "effective": day, "address": address}))
    };
    // PMH needs the My Number: linked (approved) before anything else changes the address.
    let link = |id: &str, r: &str, number: &str, name: &str, address: &str| {
        line(json!({"id": id, "type": "link_my_number", "recipient": r, "effective": "2026-01-15",
                    "my_number": number, "approver": "super1",
                    "resident_record": {"name": name, "birth_date": "1985-02-02", "sex": "2", "address": address}}))
    };
    let dv = |id: &str, r: &str, day: &str, kind: &str| {
        line(json!({"id": id, "type": kind, "recipient": r, "effective": day}))
    };
    [
        reg("p1", "R-P", "保護 花子", "ホゴ ハナコ", P_OLD),
        link("p0", "R-P", "222222222225", "保護 花子", P_OLD),
        grant("p2", "R-P"),
        change("p3", "R-P", "2026-05-01", P_NEW),
        dv("p4", "R-P", "2026-06-01", "start_dv_support"),
        reg("m1", "R-M", "転出 順子", "テンシュツ ジュンコ", M_HOME),
        dv("m2", "R-M", "2026-06-01", "start_dv_support"),
        line(json!({"id": "m3", "type": "move_out", "recipient": "R-M", "effective": "2026-10-31", "to": M_TO})),
        reg("e1", "R-E", "終了 恵子", "シュウリョウ ケイコ", E_FIRST),
        link("e0", "R-E", "333333333332", "終了 恵子", E_FIRST),
        grant("e2", "R-E"),
        change("e3", "R-E", "2026-03-01", E_SHELTER),
        dv("e4", "R-E", "2026-04-01", "start_dv_support"),
        dv("e5", "R-E", "2026-09-01", "end_dv_support"),
        change("e6", "R-E", "2026-10-01", E_AFTER),
        reg("o1", "R-O", "普通 和子", "フツウ カズコ", O_HOME),
        link("o0", "R-O", "444444444440", "普通 和子", O_HOME),
        grant("o2", "R-O"),
    ]
    .join("\n")
        + "\n"
}

/// A ledger with the test users and the four people; the position of each command by id.
fn ledger(dir: &Path) -> BTreeMap<String, u64> {
    assert_eq!(cli(dir, &["init"]).0, 0);
    add_test_users(dir).unwrap();
    let file = dir.join("people.jsonl");
    std::fs::write(&file, commands()).unwrap();
    let (code, out, err) = cli(dir, &["apply", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["id"].as_str().unwrap().to_owned(), v["position"].as_u64().unwrap())
        })
        .collect()
}

/// The internal number of the recipient the caller calls `reference`.
fn internal(server: &Server, reference: &str) -> u64 {
    let stream = server.app.store.stream_for_key("recipient", reference).unwrap().unwrap();
    stream.as_str().strip_prefix("recipient-").unwrap().parse().unwrap()
}

fn privileged(role: &str) -> bool {
    matches!(role, "supervisor" | "admin")
}

/// Asserts exactly which secrets of `person` a response shows: never a covered one unless the
/// role may see protected addresses and the channel is not a list; every one of `shown`.
#[track_caller]
fn assert_shows(what: &str, role: &str, person: &str, body: &str, list: bool, shown: &[&str]) {
    for secret in secrets_of(person) {
        let is_shown = body.contains(secret);
        let may_see = privileged(role) && !list;
        if covered(secret) && !may_see {
            assert!(!is_shown, "{what}: {role} sees {secret} of {person}");
        }
        if shown.contains(secret) {
            assert!(is_shown, "{what}: {role} does not see {secret} of {person}");
        }
    }
}

/// The secrets of `person` that `role` sees where every one of them is shown (a timeline).
fn all_visible(role: &str, person: &str) -> Vec<&'static str> {
    secrets_of(person).iter().copied().filter(|s| !covered(s) || privileged(role)).collect()
}

/// The address `person` had at registration and has now, as `role` sees them outside lists.
fn addresses(role: &str, person: &str) -> (Option<&'static str>, Option<&'static str>) {
    let (first, now) = match person {
        "P" => (P_OLD, P_NEW),
        "M" => (M_HOME, M_HOME),
        "E" => (E_FIRST, E_AFTER),
        _ => (O_HOME, O_HOME),
    };
    let sees = |a: &'static str| (!covered(a) || privileged(role)).then_some(a);
    (sees(first), sees(now))
}

/// The role of a test user.
fn role_of(user: &str) -> &'static str {
    USERS.iter().find(|(id, _, _)| *id == user).map(|(_, _, r)| r.code()).unwrap()
}

/// One user of each role.
const ONE_PER_ROLE: [&str; 5] = ["viewer1", "case1", "super1", "admin1", "audit1"];

fn actions_of(server: &Server, user: &str, n: u64) -> Vec<(String, String)> {
    let filter = AccessFilter { user: Some(user.to_owned()), recipient: Some(n), ..AccessFilter::default() };
    server
        .app
        .access
        .search(&filter, 1000)
        .unwrap()
        .into_iter()
        .map(|e| (e.record.action.code().to_owned(), e.record.page))
        .collect()
}

#[test]
fn every_channel_shows_each_role_exactly_what_the_policy_allows() {
    let dir = tempfile::tempdir().unwrap();
    let positions = ledger(dir.path());
    let server = Server::start(dir.path(), Settings::default()).unwrap();
    let n: BTreeMap<&str, u64> = [("P", "R-P"), ("M", "R-M"), ("E", "R-E"), ("O", "R-O")]
        .into_iter()
        .map(|(k, r)| (k, internal(&server, r)))
        .collect();
    let head = server.app.store.head().position.0;
    // A pending My Number link for P, entered by a caseworker (seen on /approvals).
    let mut case2 = server.login("case2").unwrap();
    let path = format!("/recipients/{}/do/link_my_number", n["P"]);
    let id = case2.get(&path).unwrap().input_value("id").unwrap();
    let requested = case2
        .record(
            &path,
            &id,
            &[
                ("effective", "2026-11-20"),
                ("my_number", "123456789018"),
                ("resident_name", "保護 花子"),
                ("resident_birth_date", "1985-02-02"),
                ("resident_sex", "2"),
                ("resident_address", P_NEW),
            ],
        )
        .unwrap();
    assert!(requested.contains("requested=1"), "{requested}");
    // A PMH batch of 更生医療 to download.
    let mut super2 = server.login("super2").unwrap();
    let generated = super2.post_form("/pmh/generate", &[("program", "kosei")]).unwrap();
    assert_eq!(generated.status, 303);
    let location = generated.header("location").unwrap().to_owned();
    let listed = super2.get(&location).unwrap();
    let csv_link = listed
        .body
        .split("href=\"")
        .map(|h| h.split('"').next().unwrap())
        .find(|h| h.starts_with("/pmh/batches/") && h.ends_with(".csv"))
        .unwrap_or_else(|| {
            panic!("no csv link: {}", listed.body.lines().filter(|l| l.contains("batches")).collect::<String>())
        })
        .to_owned();

    for user in ONE_PER_ROLE {
        let role = role_of(user);
        let mut c: Client = server.login(user).unwrap();
        for person in ["P", "M", "E", "O"] {
            let page = format!("/recipients/{}", n[person]);
            // The present, with the timeline of every address ever recorded.
            let now = c.get(&page).unwrap();
            assert_eq!(now.status, 200, "{user} {page}");
            assert_shows("recipient page", role, person, &now.body, false, &all_visible(role, person));
            // Past views (the timeline lists every event, so every visible secret is on them).
            let first = positions[&format!("{}1", person.to_lowercase())];
            let at = c.get(&format!("{page}?as_at={first}")).unwrap();
            assert_eq!(at.status, 200);
            assert_shows("as_at before the measure", role, person, &at.body, false, &all_visible(role, person));
            let on = c.get(&format!("{page}?as_of=2026-02-01")).unwrap();
            assert_shows("as_of before the measure", role, person, &on.body, false, &all_visible(role, person));
            // The audit difference between the registration and the head: the address, where
            // it changed, on both sides.
            let diff = c.get(&format!("/audit?recipient={}&a={first}&b={head}&on=2026-11-20", n[person])).unwrap();
            if matches!(role, "supervisor" | "admin" | "auditor") {
                assert_eq!(diff.status, 200, "{user} audit");
                let (a, b) = addresses(role, person);
                let changed: Vec<&str> = if a != b { a.into_iter().chain(b).collect() } else { Vec::new() };
                assert_shows("audit difference", role, person, &diff.body, false, &changed);
            } else {
                assert_eq!(diff.status, 403, "{user} audit");
            }
            // The print page of the certificate, for those who record.
            if person != "M" {
                let print = c.get(&format!("{page}/certificates/0/print?as_of=2026-11-20")).unwrap();
                let may_print = matches!(role, "caseworker" | "supervisor" | "admin")
                    && (privileged(role) || person == "E" || person == "O");
                assert_eq!(print.status == 200, may_print, "{user} print {person}: {}", print.status);
                if print.status == 200 {
                    let (_, now) = addresses(role, person);
                    assert_shows("certificate", role, person, &print.body, false, &[now.unwrap()]);
                }
            }
        }
        // Search results: a list never shows a covered address, to anyone.
        for (person, kana) in
            [("P", "ホゴ ハナコ"), ("M", "テンシュツ ジュンコ"), ("E", "シュウリョウ ケイコ"), ("O", "フツウ カズコ")]
        {
            let found = c.post_form("/search", &[("by", "kana"), ("q", kana)]).unwrap();
            assert_eq!(found.status, 200);
            let current = match person {
                "E" => vec![E_AFTER],
                "O" => vec![O_HOME],
                _ => vec![],
            };
            assert_shows("search results", role, person, &found.body, true, &current);
        }
        // Approvals: only approvers; the registered and the typed address through the policy.
        let approvals = c.get("/approvals").unwrap();
        if privileged(role) {
            assert_eq!(approvals.status, 200);
            assert!(approvals.has(P_NEW), "{user}: an approver cannot compare the address");
            let actions = actions_of(&server, user, n["P"]);
            assert!(
                actions.iter().any(|(a, p)| a == "protected_address_shown" && p == "/approvals"),
                "{user}: approvals showed a protected address unlogged: {actions:?}"
            );
        } else {
            assert_eq!(approvals.status, 403, "{user} approvals");
        }
        // The PMH feed carries everything, to those who may download it.
        let csv = c.get(&csv_link).unwrap();
        if privileged(role) {
            assert_eq!(csv.status, 200, "{user} csv");
            assert!(csv.has(P_NEW) && csv.has(O_HOME), "the feed lacks an address");
        } else {
            assert_eq!(csv.status, 403, "{user} csv");
        }
        // What the recipient page of P recorded: a protected view for the privileged only.
        let actions = actions_of(&server, user, n["P"]);
        let protected = actions.iter().any(|(a, p)| a == "protected_address_shown" && p.starts_with("/recipients/"));
        assert_eq!(protected, privileged(role), "{user}: {actions:?}");
        if matches!(role, "supervisor" | "admin") {
            assert!(
                actions.iter().any(|(a, p)| a == "protected_address_shown" && p == "/audit"),
                "{user}: {actions:?}"
            );
        }
    }
    drop(server);

    // The CLI: `show` and `replay`, as each role's account, and with none (a viewer's view).
    for actor in ONE_PER_ROLE.iter().map(|u| Some(*u)).chain([None]) {
        let role = actor.map_or("viewer", role_of);
        let with_actor = |mut args: Vec<String>| {
            if let Some(a) = actor {
                args.extend(["--actor".to_owned(), a.to_owned()]);
            }
            args
        };
        for (person, reference) in [("P", "R-P"), ("M", "R-M"), ("E", "R-E"), ("O", "R-O")] {
            let first = positions[&format!("{}1", person.to_lowercase())];
            let (then, now) = addresses(role, person);
            let s = |x: &str| x.to_owned();
            for (args, shown) in [
                (vec![s("show"), s(reference)], now),
                (vec![s("show"), s(reference), s("--as-at"), first.to_string()], then),
                (vec![s("show"), s(reference), s("--as-of"), s("2026-02-01")], then),
                (vec![s("replay"), s("--as-at"), first.to_string(), s("--recipient"), s(reference)], then),
            ] {
                let args = with_actor(args);
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let (code, out, err) = cli(dir.path(), &argv);
                assert_eq!(code, 0, "{argv:?}: {err}");
                assert_shows(&format!("{argv:?}"), role, person, &out, false, &shown.into_iter().collect::<Vec<_>>());
            }
        }
        let args = with_actor(vec!["replay".to_owned(), "--as-at".to_owned(), head.to_string()]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = cli(dir.path(), &argv);
        assert_eq!(code, 0, "{err}");
        // The whole register is a list: what is covered is hidden from every role.
        for person in ["P", "M", "E", "O"] {
            let (_, now) = addresses("viewer", person);
            assert_shows("replay of the register", role, person, &out, true, &now.into_iter().collect::<Vec<_>>());
        }
    }
}

// ---- The attacks of the issue, one by one ------------------------------------------------------

struct World {
    dir: tempfile::TempDir,
    positions: BTreeMap<String, u64>,
    server: Option<Server>,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let positions = ledger(dir.path());
        let server = Some(Server::start(dir.path(), Settings::default()).unwrap());
        World { dir, positions, server }
    }

    fn server(&self) -> &Server {
        self.server.as_ref().unwrap()
    }

    fn n(&self, reference: &str) -> u64 {
        internal(self.server(), reference)
    }

    fn head(&self) -> u64 {
        self.server().app.store.head().position.0
    }

    fn login(&self, user: &str) -> Client {
        self.server().login(user).unwrap()
    }

    /// Stops the server (the CLI needs the ledger to itself).
    fn stop(&mut self) {
        self.server = None;
    }
}

/// The link form's fields for `number`, with the resident record of P and `address`.
fn link_fields<'a>(number: &'a str, name: &'a str, address: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("effective", "2026-11-20"),
        ("my_number", number),
        ("resident_name", name),
        ("resident_birth_date", "1985-02-02"),
        ("resident_sex", "2"),
        ("resident_address", address),
    ]
}

/// The messages of a form page: the summary's items and the field errors, in order.
fn errors(r: &Response) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(summary) = r.body.split("id=\"form-errors\">").nth(1).and_then(|s| s.split("</div>").next()) {
        out.extend(summary.split("<li>").skip(1).filter_map(|li| li.split("</li>").next()).map(str::to_owned));
    }
    out.extend(
        r.body
            .split("class=\"error field-error\"")
            .skip(1)
            .filter_map(|x| x.split('>').nth(1)?.split("</p").next())
            .map(str::to_owned),
    );
    out
}

use daicho_tests::web::Response;

#[test]
fn item1_past_views_and_audit_differences_hide_what_is_protected_now() {
    let w = World::new();
    let p = w.n("R-P");
    // A position after P_NEW was recorded, before the measure started; a day before it.
    let before_measure = w.positions["p3"];
    let mut viewer = w.login("viewer1");
    let mut case1 = w.login("case1");
    for c in [&mut viewer, &mut case1] {
        let at = c.get(&format!("/recipients/{p}?as_at={before_measure}")).unwrap();
        assert_eq!(at.status, 200);
        assert!(!at.has(P_NEW) && !at.has(P_OLD), "as_at shows the protected address");
        assert!(at.has("支援措置"), "the reader is not told why");
        let on = c.get(&format!("/recipients/{p}?as_of=2026-05-15")).unwrap();
        assert!(!on.has(P_NEW) && !on.has(P_OLD), "as_of shows the protected address");
    }
    let mut auditor = w.login("audit1");
    let diff =
        auditor.get(&format!("/audit?recipient={p}&a={}&b={}&on=2026-11-20", w.positions["p1"], w.head())).unwrap();
    assert_eq!(diff.status, 200);
    assert!(!diff.has(P_NEW) && !diff.has(P_OLD), "the audit difference shows the protected address");
    // A supervisor sees it in the past view, and the access log says a protected address was
    // shown, not a plain view.
    let mut super1 = w.login("super1");
    let at = super1.get(&format!("/recipients/{p}?as_at={before_measure}")).unwrap();
    assert!(at.has(P_NEW));
    let actions = actions_of(w.server(), "super1", p);
    assert!(actions.iter().any(|(a, _)| a == "protected_address_shown"), "{actions:?}");
}

#[test]
fn item2_guessing_a_protected_address_gets_one_answer_whatever_the_guess() {
    let w = World::new();
    let p = w.n("R-P");
    let mut case1 = w.login("case1");
    // link_my_number with the right and a wrong resident address: the same answer.
    let path = format!("/recipients/{p}/do/link_my_number");
    let mut answers = Vec::new();
    for guess in [P_NEW, "さくら市違町9-9"] {
        let id = case1.get(&path).unwrap().input_value("id").unwrap();
        let r = case1.command(&path, &id, "check", &link_fields("555555555557", "保護 花子", guess)).unwrap();
        assert_eq!(r.status, 200);
        assert!(!r.has("一致しません"), "the check compared the guess: {:?}", errors(&r));
        answers.push((r.has("（確認）"), errors(&r)));
    }
    assert_eq!(answers[0], answers[1], "the answer depends on the guess");
    // change_personal_details with address = the stored one, and another.
    let path = format!("/recipients/{p}/do/change_personal_details");
    let mut answers = Vec::new();
    for guess in [P_NEW, "さくら市違町9-9"] {
        let id = case1.get(&path).unwrap().input_value("id").unwrap();
        let r = case1.command(&path, &id, "check", &[("effective", "2026-11-20"), ("address", guess)]).unwrap();
        assert!(!r.has("変更される項目がありません"), "no-change confirmed the guess");
        assert!(!r.has(P_NEW) || guess == P_NEW, "a message repeats the stored address");
        answers.push(errors(&r));
    }
    assert_eq!(answers[0], answers[1], "the answer depends on the guess");
    assert!(answers[0].iter().any(|e| e.contains("住所を閲覧できる職員")), "{:?}", answers[0]);
    // After a measure ended, a covered place is still not to be guessed: a move-out to the
    // place E lived while protected, or an address change to it, gets the answer any other gets.
    let e = w.n("R-E");
    for (kind, field) in [("move_out", "to"), ("change_personal_details", "address")] {
        let path = format!("/recipients/{e}/do/{kind}");
        let mut answers = Vec::new();
        for guess in [E_SHELTER, "さくら市違町9-9"] {
            let id = case1.get(&path).unwrap().input_value("id").unwrap();
            let r = case1.command(&path, &id, "check", &[("effective", "2026-11-20"), (field, guess)]).unwrap();
            assert!(!r.has("（確認）"), "{kind}: a caseworker records a place of a protected person");
            answers.push(errors(&r));
        }
        assert_eq!(answers[0], answers[1], "{kind}: the answer depends on the guess");
    }
}

#[test]
fn review_a_caseworker_alone_neither_ends_a_measure_nor_undoes_one() {
    let w = World::new();
    let p = w.n("R-P");
    let mut case1 = w.login("case1");
    let before = w.head();
    let path = format!("/recipients/{p}/do/end_dv_support");
    let id = case1.get(&path).unwrap().input_value("id").unwrap();
    let r = case1.command(&path, &id, "confirm", &[("effective", "2026-11-20")]).unwrap();
    assert_ne!(r.status, 303, "a caseworker ended a DV support measure");
    assert!(r.has("係長または管理者が記録します"), "{:?}", errors(&r));
    let path = format!("/recipients/{p}/do/rescind");
    let id = case1.get(&path).unwrap().input_value("id").unwrap();
    let r = case1
        .command(&path, &id, "confirm", &[("effective", "2026-11-20"), ("target", "p4"), ("reason", "誤り")])
        .unwrap();
    assert_ne!(r.status, 303, "a caseworker rescinded a DV support measure");
    assert_eq!(w.head(), before);
    // A supervisor ends it.
    let mut super1 = w.login("super1");
    let path = format!("/recipients/{p}/do/end_dv_support");
    let id = super1.get(&path).unwrap().input_value("id").unwrap();
    super1.record(&path, &id, &[("effective", "2026-11-20")]).unwrap();
    assert!(w.head() > before);
}

#[test]
fn item3_a_move_out_destination_is_hidden_like_the_address() {
    let w = World::new();
    let m = w.n("R-M");
    for user in ["viewer1", "case1", "audit1"] {
        let page = w.login(user).get(&format!("/recipients/{m}")).unwrap();
        assert_eq!(page.status, 200);
        assert!(!page.has(M_TO), "{user} sees the destination");
        assert!(page.has("転出"), "{user} is not told of the move-out");
    }
    assert!(w.login("super1").get(&format!("/recipients/{m}")).unwrap().has(M_TO));
}

#[test]
fn item4_every_view_of_a_person_is_in_the_access_log() {
    let mut w = World::new();
    let (p, o) = (w.n("R-P"), w.n("R-O"));
    let mut case1 = w.login("case1");
    // The command form and the confirmation page show the name and the certificates.
    let path = format!("/recipients/{o}/do/change_personal_details");
    let id = case1.get(&path).unwrap().input_value("id").unwrap();
    let r = case1.command(&path, &id, "check", &[("effective", "2026-11-20"), ("name", "普通 和美")]).unwrap();
    assert!(r.has("（確認）"), "{:?}", errors(&r));
    let views = actions_of(w.server(), "case1", o).into_iter().filter(|(a, pg)| a == "viewed" && *pg == path).count();
    assert_eq!(views, 2, "the form and the confirmation are not in the access log");
    // A request for P by case1, and super1's own request for O.
    let link = format!("/recipients/{p}/do/link_my_number");
    let id = case1.get(&link).unwrap().input_value("id").unwrap();
    case1.record(&link, &id, &link_fields("555555555557", "保護 花子", P_NEW)).unwrap();
    let mut super1 = w.login("super1");
    let own = format!("/recipients/{o}/do/link_my_number");
    let id = super1.get(&own).unwrap().input_value("id").unwrap();
    super1.record(&own, &id, &link_fields("123456789018", "普通 和子", O_HOME)).unwrap();
    let approvals = super1.get("/approvals").unwrap();
    assert!(approvals.has(P_NEW) && approvals.has("普通 和子"));
    let of_p = actions_of(w.server(), "super1", p);
    assert!(of_p.iter().any(|(a, pg)| a == "protected_address_shown" && pg == "/approvals"), "{of_p:?}");
    assert!(of_p.iter().any(|(a, pg)| a == "viewed" && pg == "/approvals"), "{of_p:?}");
    let of_o = actions_of(w.server(), "super1", o);
    assert!(of_o.iter().any(|(a, pg)| a == "viewed" && pg == "/approvals"), "one's own request unlogged: {of_o:?}");
    // An audit difference that shows a protected address says so.
    let diff =
        super1.get(&format!("/audit?recipient={p}&a={}&b={}&on=2026-11-20", w.positions["p1"], w.head())).unwrap();
    assert_eq!(diff.status, 200);
    let of_p = actions_of(w.server(), "super1", p);
    assert!(of_p.iter().any(|(a, pg)| a == "protected_address_shown" && pg == "/audit"), "{of_p:?}");
    // CLI reads record the OS user and every person shown.
    let head = w.head().to_string();
    w.stop();
    let data = w.dir.path();
    let pdf = data.join("o.pdf");
    for args in [
        vec!["show", "R-O"],
        vec!["replay", "--as-at", head.as_str()],
        vec!["certificate", "print", "R-O", "K-R-O", "--as-of", "2026-11-20", "--out", pdf.to_str().unwrap()],
    ] {
        let (code, _, err) = cli(data, &args);
        assert_eq!(code, 0, "{args:?}: {err}");
    }
    let log = daicho_app::access::AccessLog::open(data).unwrap();
    let cli_records: Vec<_> = log
        .search(&AccessFilter::default(), 1000)
        .unwrap()
        .into_iter()
        .filter(|e| e.record.user.as_str().starts_with("os.") && e.record.page.starts_with("daicho "))
        .collect();
    let pages: Vec<&str> = cli_records.iter().map(|e| e.record.page.as_str()).collect();
    for command in ["daicho show", "daicho replay", "daicho certificate print"] {
        assert!(pages.contains(&command), "{command} wrote no access record: {pages:?}");
    }
    assert!(cli_records.iter().filter(|e| e.record.page != "daicho replay").all(|e| e.record.recipients == vec![o]));
    let replayed = cli_records.iter().find(|e| e.record.page == "daicho replay").unwrap();
    assert!(!replayed.record.recipients.is_empty(), "replay names nobody");
}

#[test]
fn item5_an_approval_records_exactly_what_the_supervisor_saw() {
    let w = World::new();
    let (o, e) = (w.n("R-O"), w.n("R-E"));
    let mut case1 = w.login("case1");
    let path_o = format!("/recipients/{o}/do/link_my_number");
    let id = case1.get(&path_o).unwrap().input_value("id").unwrap();
    case1.record(&path_o, &id, &link_fields("555555555557", "普通 和子", O_HOME)).unwrap();
    let mut super1 = w.login("super1");
    let shown = super1.get("/approvals").unwrap();
    assert!(shown.has("555555555557"));
    // The attack: the same request id posted again, for another recipient and number.
    let path_e = format!("/recipients/{e}/do/link_my_number");
    let again = case1.command(&path_e, &id, "confirm", &link_fields("123456789018", "終了 恵子", E_AFTER)).unwrap();
    assert_ne!(again.status, 303, "a second request under the same key was accepted");
    assert!(again.has("既に承認待ち"), "{:?}", errors(&again));
    // What super1 approves is what super1 was shown: a tampered digest is refused...
    let (request, digest) = shown.approvals(o).into_iter().next().unwrap();
    let before = w.head();
    let refused = super1.post_form(&format!("/approvals/{request}/approve"), &[("digest", "0000")]).unwrap();
    assert!(refused.has("承認しませんでした"), "status {}", refused.status);
    assert_eq!(w.head(), before);
    // ...the digest of the page records it, on O, with O's number.
    let done = super1.post_form(&format!("/approvals/{request}/approve"), &[("digest", &digest.unwrap())]).unwrap();
    assert_eq!(done.status, 303, "{:?}", errors(&done));
    assert!(super1.get(&format!("/recipients/{o}")).unwrap().has("********5557"));
    assert!(!super1.get(&format!("/recipients/{e}")).unwrap().has("********9018"), "E got the number");
    // A request of the page changed after it was shown is refused too: a name change of the
    // recipient between showing and approving.
    let id = case1.get(&path_e).unwrap().input_value("id").unwrap();
    case1.record(&path_e, &id, &link_fields("123456789018", "終了 恵子", E_AFTER)).unwrap();
    let shown = super1.get("/approvals").unwrap();
    let (request, digest) = shown.approvals(e).into_iter().next().unwrap();
    let rename = format!("/recipients/{e}/do/change_personal_details");
    let id = case1.get(&rename).unwrap().input_value("id").unwrap();
    case1.record(&rename, &id, &[("effective", "2026-11-20"), ("name", "終了 恵美")]).unwrap();
    let before = w.head();
    let r = super1.post_form(&format!("/approvals/{request}/approve"), &[("digest", &digest.unwrap())]).unwrap();
    assert!(r.has("承認しませんでした"), "status {}", r.status);
    assert_eq!(w.head(), before);
}

#[test]
fn item6_rescinding_a_my_number_link_needs_a_second_person() {
    let mut w = World::new();
    let p = w.n("R-P");
    let mut case1 = w.login("case1");
    let path = format!("/recipients/{p}/do/rescind");
    let id = case1.get(&path).unwrap().input_value("id").unwrap();
    let fields = [("effective", "2026-11-20"), ("target", "p0"), ("reason", "別人の番号")];
    let check = case1.command(&path, &id, "check", &fields).unwrap();
    assert!(check.has("承認を依頼する"), "the rescind of a link does not ask for approval: {:?}", errors(&check));
    let before = w.head();
    let location = case1.record(&path, &id, &fields).unwrap();
    assert!(location.contains("requested=1"), "{location}");
    assert_eq!(w.head(), before, "the rescind was recorded without a second person");
    // A supervisor approves it; it is recorded with both.
    let mut super1 = w.login("super1");
    let shown = super1.get("/approvals").unwrap();
    assert!(shown.has("個人番号の登録・訂正の取消") && shown.has("222222222225"));
    let (request, digest) = shown.approvals(p).into_iter().next().unwrap();
    let r = super1.post_form(&format!("/approvals/{request}/approve"), &[("digest", &digest.unwrap())]).unwrap();
    assert_eq!(r.status, 303, "{:?}", errors(&r));
    let last = w
        .server()
        .app
        .store
        .read_stream(&w.server().app.store.stream_for_key("recipient", "R-P").unwrap().unwrap())
        .unwrap();
    let last = last.last().unwrap();
    assert_eq!(last.event_type, "command_rescinded");
    assert_eq!((last.actor.as_str(), last.approver.as_deref()), ("case1", Some("super1")));
    // Through the CLI too: a rescind of a link without an approver is refused.
    w.stop();
    let file = w.dir.path().join("rescind.jsonl");
    std::fs::write(
        &file,
        r#"{"id":"x1","type":"rescind","actor":"case1","recipient":"R-E","effective":"2026-11-20","target":"e0","reason":"誤り"}"#,
    )
    .unwrap();
    let (code, out, _) = cli(w.dir.path(), &["apply", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("approval_required"), "{out}");
}
