//! Caseworker tasks end to end over HTTP on a real ledger: recording with a confirmation step,
//! double submits, My Number linking with a second person's approval, reveals and protected
//! addresses in the access log, PMH batches, and the `daicho user` commands.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use daicho_app::access::AccessFilter;
use daicho_tests::cli::daicho as cli;
use daicho_tests::web::{Server, fixture, make_ledger, recipient_in};
use daicho_web::Settings;

fn head(server: &Server) -> u64 {
    server.app.store.head().position.0
}

/// Access records of `user` about `recipient`, as action codes with reasons.
fn access_of(server: &Server, user: &str, recipient: Option<u64>) -> Vec<(String, Option<String>)> {
    let filter = AccessFilter { user: Some(user.to_owned()), recipient, ..AccessFilter::default() };
    server
        .app
        .access
        .search(&filter, 500)
        .unwrap()
        .into_iter()
        .map(|e| (e.record.action.code().to_owned(), e.record.reason))
        .collect()
}

fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    make_ledger(dir.path(), 30).unwrap();
    let server = Server::start(dir.path(), Settings::default()).unwrap();
    (dir, server)
}

#[test]
fn grant_with_confirmation_and_a_double_submit_records_once() {
    let (_dir, server) = start();
    let f = fixture(&server).unwrap();
    let mut c = server.login("case1").unwrap();
    let path = format!("/recipients/{}/do/grant_certificate", f.d);
    let form = c.get(&path).unwrap();
    assert_eq!(form.status, 200);
    // The form carries a fresh idempotency key.
    let id = form.input_value("id").unwrap();
    assert!(id.starts_with("w-"), "{id}");
    assert_ne!(c.get(&path).unwrap().input_value("id"), Some(id.clone()), "two forms share a key");
    let fields = [
        ("effective", "2026-11-01"),
        ("program", "kosei"),
        ("certificate", "C-D1"),
        ("valid_from", "2026-11-01"),
        ("valid_to", "2027-10-31"),
        ("payer_number", "15139991"),
        ("recipient_number", "1234566"),
        ("income_segment", "一般"),
        ("copay_kind", "limit"),
        ("copay_definition", "医療費の1割"),
        ("copay_rate_month", "10"),
        ("copay_yen_month", "5000"),
    ];
    let before = head(&server);
    // The check step shows what will change, the PMH record included, and records nothing.
    let check = c.command(&path, &id, "check", &fields).unwrap();
    assert_eq!(check.status, 200);
    assert!(
        check.has("（確認）"),
        "no confirmation page: {}",
        check.body.lines().filter(|l| l.contains("error")).collect::<Vec<_>>().join("\n")
    );
    assert!(check.has("C-D1") && check.has("15139991"), "the confirmation does not show the certificate");
    // The PMH record to be sent: the new span's history key (R<recipient>S<span>) as a new record.
    assert!(
        check.has(&format!("R{}S", f.d)),
        "the confirmation does not show the PMH record to be sent: {}",
        check.body
    );
    assert_eq!(head(&server), before);
    // Confirm twice (a double click, a reload): one recording, the same answer.
    let first = c.record(&path, &id, &fields).unwrap();
    let after = head(&server);
    assert!(after > before);
    let second = c.record(&path, &id, &fields).unwrap();
    assert_eq!(head(&server), after, "the second submit recorded again");
    assert_eq!(recipient_in(&first), Some(f.d));
    assert_eq!(recipient_in(&second), Some(f.d));
    // The recipient page shows the certificate and who recorded it.
    let page = c.get(&format!("/recipients/{}", f.d)).unwrap();
    assert!(page.has("C-D1") && page.has("担当 一"), "certificate or actor missing");
    // The same key with other content is refused, not silently applied.
    let other = [("valid_to", "2027-03-31"), ("certificate", "C-D1")];
    let mut changed: Vec<(&str, &str)> =
        fields.iter().copied().filter(|(k, _)| !other.iter().any(|(o, _)| o == k)).collect();
    changed.extend_from_slice(&other);
    let r = c.command(&path, &id, "confirm", &changed).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.has(&daicho_domain::Rejection::IdempotencyKeyReused.message()), "the re-use is not refused by name");
    assert_eq!(head(&server), after);

    // Moving out ends the certificate's span; the page as of the day before still shows it open.
    let out = format!("/recipients/{}/do/move_out", f.d);
    let id = c.get(&out).unwrap().input_value("id").unwrap();
    c.record(&out, &id, &[("effective", "2026-11-18"), ("to", "横浜市")]).unwrap();
    let page = c.get(&format!("/recipients/{}", f.d)).unwrap();
    assert!(page.has("転出"), "the move-out is not on the timeline");
    assert!(page.has("2026-11-01〜2026-11-18"), "the span does not end on the move-out date");
    let past = c.get(&format!("/recipients/{}?as_at={after}", f.d)).unwrap();
    assert_eq!(past.status, 200);
    assert!(
        past.has("2026-11-01〜2027-10-31") && !past.has("2026-11-01〜2026-11-18"),
        "the view as known at an earlier position applies a later event"
    );
    assert!(past.has("表示時点より後"), "later events are not marked as such");
}

#[test]
fn my_number_link_needs_a_different_supervisor_and_reveals_are_logged() {
    let (_dir, server) = start();
    let f = fixture(&server).unwrap();
    let mut case1 = server.login("case1").unwrap();
    let path = format!("/recipients/{}/do/link_my_number", f.a);
    let id = case1.get(&path).unwrap().input_value("id").unwrap();
    let fields = [
        ("effective", "2026-11-20"),
        ("my_number", "123456789018"),
        ("resident_name", "山田 太郎"),
        // Typed in 和暦, as the resident record's certificate reads: compared as the date it is.
        ("resident_birth_date", "昭和55年5月5日"),
        ("resident_sex", "1"),
        ("resident_address", "さくら市本町1-1-1"),
    ];
    let before = head(&server);
    let requested = case1.record(&path, &id, &fields).unwrap();
    assert!(requested.contains("requested=1"), "{requested}");
    assert_eq!(head(&server), before, "a link was recorded without approval");
    // Caseworkers cannot approve at all.
    assert_eq!(case1.get("/approvals").unwrap().status, 403);
    assert_eq!(case1.post_form(&format!("/approvals/{id}/approve"), &[]).unwrap().status, 403);

    // A supervisor's own request waits for another supervisor.
    let mut super1 = server.login("super1").unwrap();
    let own_path = format!("/recipients/{}/do/link_my_number", f.d);
    let own_id = super1.get(&own_path).unwrap().input_value("id").unwrap();
    super1
        .record(
            &own_path,
            &own_id,
            &[
                ("effective", "2026-11-20"),
                ("my_number", "111111111118"),
                ("resident_name", "高橋 次郎"),
                ("resident_birth_date", "1970-07-07"),
                ("resident_sex", "1"),
                ("resident_address", "さくら市本町1-1-1"),
            ],
        )
        .unwrap();
    // Requests are named by the server, never by the form's key.
    let list = super1.get("/approvals").unwrap();
    let own = list.approvals(f.d);
    assert_eq!(own.len(), 1);
    let (own_request, own_digest) = own[0].clone();
    assert_ne!(own_request, own_id, "the request id is the client's");
    assert_eq!(own_digest, None, "one's own request has an approve button");
    let r = super1.post_form(&format!("/approvals/{own_request}/approve"), &[("digest", "x")]).unwrap();
    assert!(r.has("ご自身が入力した依頼は承認できません"), "status {}", r.status);
    assert_eq!(head(&server), before);

    // The four details of case1's request all match the register (the 和暦 birth date too).
    let of_a =
        list.body.split("<article class=\"approval\">").find(|a| a.contains(&format!("href=\"/recipients/{}\"", f.a)));
    assert!(of_a.is_some_and(|a| !a.contains("不一致") && a.matches("一致").count() >= 4), "{:?}", of_a);
    // super1 approves case1's request, having seen the full number (which is logged).
    assert!(list.has("123456789018"));
    let (request, digest) = list.approvals(f.a)[0].clone();
    assert_ne!(request, id);
    assert!(access_of(&server, "super1", Some(f.a)).iter().any(|(a, _)| a == "my_number_revealed"));
    let r = super1.post_form(&format!("/approvals/{request}/approve"), &[("digest", &digest.unwrap())]).unwrap();
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(head(&server) > before);
    let mut super2 = server.login("super2").unwrap();
    let (_, digest) = super2.get("/approvals").unwrap().approvals(f.d)[0].clone();
    let r = super2.post_form(&format!("/approvals/{own_request}/approve"), &[("digest", &digest.unwrap())]).unwrap();
    assert_eq!(r.status, 303);

    // The timeline names both; the number is masked until revealed with a reason.
    let page = super1.get(&format!("/recipients/{}", f.a)).unwrap();
    assert!(page.has("担当 一") && page.has("係長 一"), "actor and approver not on the timeline");
    assert!(page.has("********9018") && !page.has("123456789018"), "My Number not masked");
    let r = super1
        .post_form(
            &format!("/recipients/{}/reveal", f.a),
            &[("reason", "窓口で本人確認のため"), ("password", daicho_tests::web::PASSWORD)],
        )
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(r.has("123456789018"));
    let reveals: Vec<_> = access_of(&server, "super1", Some(f.a))
        .into_iter()
        .filter(|(a, reason)| a == "my_number_revealed" && reason.as_deref() == Some("窓口で本人確認のため"))
        .collect();
    assert_eq!(reveals.len(), 1, "the reveal and its reason are not in the access log");
    // A caseworker sees the mask and has no reveal button.
    let page = case1.get(&format!("/recipients/{}", f.a)).unwrap();
    assert!(page.has("********9018") && !page.has("123456789018") && !page.has("/reveal"));
    // The number never appears in the access log page or a URL.
    let mut admin = server.login("admin1").unwrap();
    let log = admin.get("/admin/access?user=super1").unwrap();
    assert_eq!(log.status, 200);
    assert!(log.has("窓口で本人確認のため") && !log.has("123456789018"));
}

#[test]
fn protected_addresses_are_hidden_from_caseworkers_and_logged_when_shown() {
    let (_dir, server) = start();
    let f = fixture(&server).unwrap();
    let page = format!("/recipients/{}", f.c);
    let mut case1 = server.login("case1").unwrap();
    let r = case1.get(&page).unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.has("さくら市本町1-1-1"), "a caseworker sees a DV-protected address");
    assert!(r.has("支援措置対象"));
    assert!(!access_of(&server, "case1", Some(f.c)).iter().any(|(a, _)| a == "protected_address_shown"));
    // Search results never list it, whoever searches.
    let mut super1 = server.login("super1").unwrap();
    let found = super1.post_form("/search", &[("by", "kana"), ("q", "タナカ ハナコ")]).unwrap();
    assert!(found.has("田中 花子") && !found.has("さくら市本町1-1-1"));
    // The listing is in the access log: one record naming every recipient the page showed.
    let listed =
        server.app.access.search(&AccessFilter { user: Some("super1".into()), ..AccessFilter::default() }, 10).unwrap();
    let search_records: Vec<_> = listed.iter().filter(|e| e.record.page == "/search").collect();
    assert_eq!(search_records.len(), 1);
    assert!(search_records[0].record.recipients.contains(&f.c));
    // A supervisor sees it on the recipient page, and that is logged.
    let r = super1.get(&page).unwrap();
    assert!(r.has("さくら市本町1-1-1"));
    assert!(access_of(&server, "super1", Some(f.c)).iter().any(|(a, _)| a == "protected_address_shown"));
    // An ordinary recipient's address is visible to the caseworker; the view is logged.
    let r = case1.get(&format!("/recipients/{}", f.a)).unwrap();
    assert!(r.has("さくら市本町1-1-1"));
    assert!(access_of(&server, "case1", Some(f.a)).iter().any(|(a, _)| a == "viewed"));
    // The auditor finds these records by user and by recipient.
    let mut audit = server.login("audit1").unwrap();
    let log = audit.get(&format!("/admin/access?recipient={}", f.c)).unwrap();
    assert_eq!(log.status, 200);
    let label = daicho_domain::users::AccessAction::ProtectedAddressShown.label();
    assert!(log.has("super1") && log.has(label), "the protected-address record is not listed");
    assert!(!log.has("さくら市本町1-1-1"), "the access log shows the address itself");
}

#[test]
fn pmh_batches_are_generated_downloaded_and_logged() {
    let (_dir, server) = start();
    fixture(&server).unwrap();
    let mut super1 = server.login("super1").unwrap();
    let page = super1.get("/pmh").unwrap();
    assert_eq!(page.status, 200);
    assert!(page.has("kosei") || page.has("更生医療"));
    let r = super1.post_form("/pmh/generate", &[("program", "kosei")]).unwrap();
    assert_eq!(r.status, 303, "{}", r.body);
    let location = r.header("location").unwrap().to_owned();
    let n: u64 = location.strip_prefix("/pmh?generated=").unwrap().parse().unwrap();
    let page = super1.get(&location).unwrap();
    let manifest_link = format!("/pmh/batches/{n}/manifest.json");
    assert!(page.has(&manifest_link), "the batch is not listed with its files: {}", page.body);
    let manifest = super1.get(&manifest_link).unwrap();
    assert_eq!(manifest.status, 200);
    assert!(manifest.header("content-disposition").unwrap().contains("attachment"));
    let json: serde_json::Value = serde_json::from_str(&manifest.body).unwrap();
    // Every file in the manifest downloads with the SHA-256 it states.
    let files = json["batches"][0]["files"].as_array().unwrap();
    assert!(!files.is_empty());
    for file in files {
        let name = file["name"].as_str().unwrap();
        let body = super1.get(&format!("/pmh/batches/{n}/{name}")).unwrap();
        assert_eq!(body.status, 200, "{name}");
        let raw = std::fs::read(server.data.join("exports").join(format!("batch-{n}")).join(name)).unwrap();
        use sha2::Digest;
        let sha: String = sha2::Sha256::digest(&raw).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(file["sha256"].as_str(), Some(sha.as_str()), "{name}");
    }
    assert!(access_of(&server, "super1", None).iter().any(|(a, _)| a == "downloaded"));
    // A file gone from the disk is made again from the log, identical to what was recorded.
    let json_name = files[0]["name"].as_str().unwrap();
    let on_disk = server.data.join("exports").join(format!("batch-{n}")).join(json_name);
    let before = std::fs::read(&on_disk).unwrap();
    std::fs::remove_file(&on_disk).unwrap();
    let again = super1.get(&format!("/pmh/batches/{n}/{json_name}")).unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(again.header("content-length"), Some(before.len().to_string().as_str()));
    assert_eq!(std::fs::read(&on_disk).unwrap(), before);
    // A file altered on disk is not served as it is: it is replaced by the recorded content.
    std::fs::write(&on_disk, b"[]").unwrap();
    let again = super1.get(&format!("/pmh/batches/{n}/{json_name}")).unwrap();
    assert_eq!(again.body.len(), before.len());
    assert_eq!(std::fs::read(&on_disk).unwrap(), before);
    // Nothing changed since: a second diff batch has nothing to send.
    let r = super1.post_form("/pmh/generate", &[("program", "kosei")]).unwrap();
    assert_eq!(r.header("location"), Some("/pmh?nothing=1"));
    // A file a batch does not have is not served.
    assert_eq!(super1.get(&format!("/pmh/batches/{n}/..%2Fsecret")).unwrap().status, 404);
}

#[test]
fn user_commands_add_disable_and_reset_passwords() {
    let dir = tempfile::tempdir().unwrap();
    make_ledger(dir.path(), 5).unwrap();
    let data = dir.path();
    let (code, out, err) = cli(data, &["user", "add", "sato", "--name", "佐藤 花子", "--role", "caseworker"]);
    assert_eq!(code, 0, "{err}");
    let password = out.rsplit(": ").next().unwrap().trim().to_owned();
    assert!(password.len() >= 16, "{out}");
    // Refusals name the problem and change nothing.
    let (code, _, err) = cli(data, &["user", "add", "sato", "--name", "佐藤 花子", "--role", "caseworker"]);
    assert_ne!(code, 0);
    assert!(!err.is_empty());
    let (code, _, err) = cli(data, &["user", "add", "ito", "--name", "伊藤", "--role", "boss"]);
    assert_ne!(code, 0);
    assert!(err.contains("--role"), "{err}");
    let (code, out, _) = cli(data, &["user", "list"]);
    assert_eq!(code, 0);
    assert!(out.contains("sato\t佐藤 花子\tcaseworker\t有効") && !out.lines().any(|l| l.starts_with("ito\t")), "{out}");

    // The printed password logs in; a reset replaces it; a disabled user cannot log in.
    {
        let server = Server::start(data, Settings::default()).unwrap();
        let mut c = server.client();
        assert_eq!(c.post("/login", &[("user", "sato"), ("password", &password)]).unwrap().status, 303);
    }
    let (code, out, _) = cli(data, &["user", "reset-password", "sato"]);
    assert_eq!(code, 0);
    let new_password = out.rsplit(": ").next().unwrap().trim().to_owned();
    assert_ne!(new_password, password);
    {
        let server = Server::start(data, Settings::default()).unwrap();
        let mut c = server.client();
        assert_eq!(c.post("/login", &[("user", "sato"), ("password", &password)]).unwrap().status, 401);
        assert_eq!(c.post("/login", &[("user", "sato"), ("password", &new_password)]).unwrap().status, 303);
    }
    assert_eq!(cli(data, &["user", "disable", "sato"]).0, 0);
    let (_, out, _) = cli(data, &["user", "list"]);
    assert!(out.contains("sato\t佐藤 花子\tcaseworker\t無効"));
    let server = Server::start(data, Settings::default()).unwrap();
    let mut c = server.client();
    assert_eq!(c.post("/login", &[("user", "sato"), ("password", &new_password)]).unwrap().status, 401);
}

#[test]
fn an_admin_adds_a_user_whose_password_is_shown_once_and_resets_it() {
    let (_dir, server) = start();
    let mut admin = server.login("admin1").unwrap();
    // Bad input comes back next to its field, and adds nobody.
    let r =
        admin.post_form("/admin/users", &[("id", "bad id!"), ("name", "佐藤 花子"), ("role", "caseworker")]).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.has("id=\"err-id\""), "no field error for a bad id");
    let r = admin.post_form("/admin/users", &[("id", "sato"), ("name", "佐藤 花子"), ("role", "caseworker")]).unwrap();
    assert_eq!(r.status, 200);
    let start = r.body.find("id=\"new-password\">").unwrap() + "id=\"new-password\">".len();
    let password = r.body[start..start + r.body[start..].find('<').unwrap()].to_owned();
    assert!(password.len() >= 16);
    // Shown once: the list does not show it again.
    assert!(!admin.get("/admin/users").unwrap().has(&password));
    let mut sato = server.client();
    assert_eq!(sato.post("/login", &[("user", "sato"), ("password", &password)]).unwrap().status, 303);
    // An issued password is changed first.
    assert_eq!(sato.get("/recipients/new").unwrap().header("location"), Some("/account/password"));
    let csrf = sato.get("/account/password").unwrap().csrf().unwrap();
    let chosen = [
        ("csrf", csrf.as_str()),
        ("current", &password),
        ("new", "sato-chose-this-one"),
        ("again", "sato-chose-this-one"),
    ];
    assert_eq!(sato.post("/account/password", &chosen).unwrap().status, 303);
    assert_eq!(sato.get("/recipients/new").unwrap().status, 200, "a caseworker may record");
    // The same id again is refused.
    let r = admin.post_form("/admin/users", &[("id", "sato"), ("name", "佐藤 花子"), ("role", "viewer")]).unwrap();
    assert!(r.has("id=\"err-id\""));
    // A reset ends the user's session and replaces the password.
    let r = admin.post_form("/admin/users/sato/password", &[]).unwrap();
    assert!(r.has("id=\"new-password\""));
    assert_eq!(sato.get("/search").unwrap().status, 303, "the session survived a password reset");
    assert_eq!(server.client().post("/login", &[("user", "sato"), ("password", &password)]).unwrap().status, 401);
    // An admin cannot disable themself.
    let r = admin.post_form("/admin/users/admin1/disable", &[]).unwrap();
    assert!(r.has("ご自身は無効にできません"));
    assert_eq!(admin.get("/admin/users").unwrap().status, 200);
}

#[test]
fn verify_checks_the_access_log_too() {
    let dir = tempfile::tempdir().unwrap();
    make_ledger(dir.path(), 10).unwrap();
    {
        let server = Server::start(dir.path(), Settings::default()).unwrap();
        let mut c = server.login("case1").unwrap();
        for n in 1..=3 {
            assert_eq!(c.get(&format!("/recipients/{n}")).unwrap().status, 200);
        }
    }
    let (code, out, err) = cli(dir.path(), &["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("閲覧記録 検証OK: 3件の事象"), "{out}");
}

#[test]
fn the_audit_page_checks_both_chains_and_compares_two_positions() {
    let (_dir, server) = start();
    let f = fixture(&server).unwrap();
    let mut case1 = server.login("case1").unwrap();
    let before = head(&server);
    let path = format!("/recipients/{}/do/change_personal_details", f.a);
    let id = case1.get(&path).unwrap().input_value("id").unwrap();
    case1.record(&path, &id, &[("effective", "2026-11-15"), ("address", "さくら市桜町2-2-2")]).unwrap();
    let after = head(&server);

    let mut audit = server.login("audit1").unwrap();
    let page = audit.get("/audit").unwrap();
    assert_eq!(page.status, 200);
    assert!(page.has(&after.to_string()) && page.has("未実施"), "head or verify status missing");
    let checked = audit.post_form("/audit/verify", &[]).unwrap();
    assert_eq!(checked.status, 200);
    assert_eq!(checked.body.matches("data-chain-ok=\"true\"").count(), 2, "both chains pass");
    assert!(checked.has(&format!("位置 1〜{after} の {after}件を確認しました")));

    // What changed for A between the two positions, on the 20th.
    let diff = audit.get(&format!("/audit?recipient={}&a={before}&b={after}&on=2026-11-20", f.a)).unwrap();
    assert_eq!(diff.status, 200);
    assert!(diff.has("さくら市本町1-1-1") && diff.has("さくら市桜町2-2-2"), "the address change is not shown");
    assert!(diff.has("personal_details_changed") && diff.has("担当 一"), "the event between is not listed");
    assert!(access_of(&server, "audit1", Some(f.a)).iter().any(|(a, _)| a == "viewed"), "the view is not logged");
    // On a day before the change took effect, nothing differs.
    let same = audit.get(&format!("/audit?recipient={}&a={before}&b={after}&on=2026-11-10", f.a)).unwrap();
    assert!(same.has("違いはありません"));
    // Bad input is named next to its field.
    let bad = audit.get(&format!("/audit?recipient={}&a=abc&b={}", f.a, after + 100)).unwrap();
    assert_eq!(bad.status, 200);
    assert!(bad.has("id=\"err-a\"") && bad.has("id=\"err-b\""));
    // A DV-protected address stays hidden from the auditor here too.
    let dv = audit.get(&format!("/audit?recipient={}&a=1&b={after}", f.c)).unwrap();
    assert!(!dv.has("さくら市本町1-1-1"), "the auditor sees a protected address");
}

#[test]
fn a_certificate_prints_with_era_dates_its_position_and_a_reissue_mark() {
    let (_dir, server) = start();
    let f = fixture(&server).unwrap();
    let mut case1 = server.login("case1").unwrap();
    let page = case1.get(&format!("/recipients/{}", f.a)).unwrap();
    let link = format!("/recipients/{}/certificates/0/print?as_of=2026-11-20", f.a);
    assert!(page.has(&link.replace('&', "&amp;")) || page.has(&link), "no print button");
    let print = case1.get(&link).unwrap();
    assert_eq!(print.status, 200);
    for text in [
        "自立支援医療受給者証(更生医療)",
        "山田 太郎",
        "15139991",
        "1234566",
        "昭和55年5月5日",
        "令和8年11月1日から 令和8年11月30日まで",
        "令和8年11月20日",
        "さくら市長",
    ] {
        assert!(print.has(text), "{text} missing from the certificate");
    }
    assert!(!print.has("再交付") && !print.has("/logout"), "a first issue has no reissue mark and no navigation");
    // The position and code tie the paper to the log.
    let stream = daicho_store::StreamId::parse(&format!("recipient-{}", f.a)).unwrap();
    let last = server.app.store.read_stream(&stream).unwrap().pop().unwrap();
    let code = daicho_projections::certificate::verification_code(&last.hash.to_hex());
    assert!(print.has(&format!("記録位置 {}", last.position.0)) && print.has(&code), "position or code missing");
    assert!(access_of(&server, "case1", Some(f.a)).len() >= 2, "the print view is not logged");

    // After a reissue the face says so.
    let path = format!("/recipients/{}/do/reissue_certificate", f.a);
    let id = case1.get(&path).unwrap().input_value("id").unwrap();
    case1.record(&path, &id, &[("effective", "2026-11-20"), ("certificate", "C-A1"), ("reason", "lost")]).unwrap();
    let again = case1.get(&link).unwrap();
    assert!(again.has("再交付"), "no reissue mark");
    // A viewer may not print; a day with no valid span is refused with a reason.
    let mut viewer = server.login("viewer1").unwrap();
    assert_eq!(viewer.get(&link).unwrap().status, 403);
    let late = case1.get(&format!("/recipients/{}/certificates/0/print?as_of=2027-01-01", f.a)).unwrap();
    assert_eq!(late.status, 400);
    assert!(late.has("有効な期間がない"));

    // A DV-protected person's certificate shows the address: only those who may see it print.
    let grant = format!("/recipients/{}/do/grant_certificate", f.c);
    let id = case1.get(&grant).unwrap().input_value("id").unwrap();
    case1
        .record(
            &grant,
            &id,
            &[
                ("effective", "2026-11-10"),
                ("program", "kosei"),
                ("certificate", "C-C1"),
                ("valid_from", "2026-11-10"),
                ("valid_to", "2027-11-09"),
                ("payer_number", "15139991"),
                ("recipient_number", "1234566"),
            ],
        )
        .unwrap();
    let protected = format!("/recipients/{}/certificates/0/print", f.c);
    assert!(!case1.get(&format!("/recipients/{}", f.c)).unwrap().has("/certificates/0/print"), "print button shown");
    assert_eq!(case1.get(&protected).unwrap().status, 403);
    let mut super1 = server.login("super1").unwrap();
    let r = super1.get(&protected).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.has("さくら市本町1-1-1"));
    assert!(access_of(&server, "super1", Some(f.c)).iter().any(|(a, _)| a == "protected_address_shown"));
}

#[test]
fn the_health_page_and_healthz_say_how_the_ledger_is() {
    let (_dir, server) = start();
    fixture(&server).unwrap();
    let mut admin = server.login("admin1").unwrap();
    let page = admin.get("/admin/health").unwrap();
    assert_eq!(page.status, 200);
    let head = server.app.store.head();
    assert!(page.has(&format!("位置 {}", head.position)), "{}", page.body);
    assert!(page.has(&head.hash.to_hex()));
    assert!(page.has("まだ退避していません"));
    assert!(page.has("まだ検証していません"));
    // A backup and a verify show up on the page.
    let elsewhere = tempfile::tempdir().unwrap();
    let file = elsewhere.path().join("health.backup");
    let (status, _, err) = cli(&server.data, &["backup", "--out", file.to_str().unwrap()]);
    assert_eq!(status, 0, "{err}");
    let page = admin.get("/admin/health").unwrap();
    assert!(page.has(&file.display().to_string()), "{}", page.body);
    let r = admin.post_form("/audit/verify", &[]).unwrap();
    assert!(r.status == 200 || r.status == 303, "{}", r.status);
    // /healthz: no login, JSON, nothing personal.
    let mut anonymous = server.client();
    let h = anonymous.get("/healthz").unwrap();
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_str(&h.body).unwrap();
    assert_eq!(json["status"], "ok");
    assert!(json["registerLag"].is_u64(), "{json}");
    assert_eq!(json["backedUp"], true);
    for personal in ["山田", "さくら市", &head.hash.to_hex()[..16]] {
        assert!(!h.body.contains(personal), "{personal} in /healthz");
    }
    // The menu shows the page to administrators only.
    assert!(admin.get("/search").unwrap().has("/admin/health"));
    assert!(!server.login("super1").unwrap().get("/search").unwrap().has("/admin/health"));
}

#[test]
fn a_supervisor_sees_the_fee_statement_closes_a_month_and_downloads_its_files() {
    let (_dir, server) = start();
    fixture(&server).unwrap();
    // The demo charges from 2027-04; an administrator sets 2 yen from 2026-04 to bill the past.
    let mut admin = server.login("admin1").unwrap();
    let before = admin.get("/billing?month=2026-10").unwrap();
    assert!(before.has("2027-04から 1人1か月 2円"), "{}", before.body);
    assert!(before.has("料金表の開始前"));
    let bad = admin.post_form("/billing/schedule", &[("from_month", "2026/04"), ("unit_yen", "2")]).unwrap();
    assert_eq!(bad.status, 200);
    assert!(bad.has("id=\"err-schedule\""), "{}", bad.body);
    let r = admin.post_form("/billing/schedule", &[("from_month", "2026-04"), ("unit_yen", "2")]).unwrap();
    assert_eq!(r.status, 303);
    // Send everything to PMH (only what PMH has counts).
    let mut sup = server.login("super1").unwrap();
    for program in ["kodomo", "hitorioya", "shogai", "kosei", "ikusei", "yoiku"] {
        let r = sup.post_form("/pmh/generate", &[("program", program)]).unwrap();
        assert_eq!(r.status, 303);
    }
    let page = sup.get("/billing?month=2026-10").unwrap();
    assert_eq!(page.status, 200);
    assert!(page.has("試算・未確定") && page.has("<svg") && page.has("2026-04から 1人1か月 2円"), "{}", page.body);
    let units: u64 = between(&page.body, "<td class=\"num\" id=\"units\">", "<").parse().unwrap();
    assert!(units > 0, "the demo municipality has recipients in October");
    let yen: u64 = between(&page.body, "<td class=\"num\" id=\"month-yen\">", "<").parse().unwrap();
    assert_eq!(yen, units * 2);
    // The auditor reads it but cannot close; nobody can close a month that has not ended.
    let auditor = server.login("audit1").unwrap().get("/billing?month=2026-10").unwrap();
    assert!(auditor.has("試算・未確定") && !auditor.has("action=\"/billing/close\""));
    let early = sup.post_form("/billing/close", &[("month", "2026-11")]).unwrap();
    assert_eq!(early.status, 200);
    assert!(early.has("id=\"err-close\"") && early.has("まだ終わっていない"), "{}", early.body);
    let head = server.app.store.head().position;

    // Close October.
    let r = sup.post_form("/billing/close", &[("month", "2026-10"), ("policy", "persons-overlapping")]).unwrap();
    assert_eq!(r.status, 303);
    assert_eq!(server.app.store.head().position.0, head.0 + 1, "one billing_month_closed event");
    let closed = sup.get("/billing?month=2026-10&closed=1").unwrap();
    assert!(closed.has("確定・締め済み") && closed.has("記録したファイルのハッシュと一致します"), "{}", closed.body);
    // The detail CSV downloads with the hash the page shows; its lines sum to the month.
    let name = "billing-2026-10-detail.csv";
    let csv = sup.get(&format!("/billing/2026-10/{name}?policy=persons-overlapping")).unwrap();
    assert_eq!(csv.status, 200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(csv.body.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
    };
    assert!(closed.has(&sha), "the page names the file's SHA-256");
    let counted: u64 = csv
        .body
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("当月"))
        .map(|l| l.split(',').nth(7).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(counted, units);
    // The closed month's files are kept; a kept file that no longer hashes as recorded is made
    // again from the log, byte for byte.
    let kept = server.app.exports.join("billing-2026-10").join(name);
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), csv.body);
    std::fs::write(&kept, "改ざん").unwrap();
    let again = sup.get(&format!("/billing/2026-10/{name}")).unwrap();
    assert_eq!((again.status, &again.body), (200, &csv.body));
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), csv.body);
    // October was closed under one policy: its files under another do not exist.
    let other = sup.get(&format!("/billing/2026-10/{name}?policy=certificates-overlapping")).unwrap();
    assert_eq!(other.status, 400);
    // A draft is kept for the head it was made at, so its other files are not computed again,
    // and replaced once the head moves; no temporary directory is left behind.
    let draft = sup.get("/billing/2026-11/billing-2026-11.json").unwrap();
    assert_eq!((draft.status, draft.header("content-type")), (200, Some("application/json")));
    assert!(draft.has("\"status\": \"draft\""), "{}", draft.body);
    let exports = |prefix: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&server.app.exports)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(prefix))
            .collect();
        names.sort();
        names
    };
    let first = exports("draft-2026-11");
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(sup.get("/billing/2026-11/billing-2026-11-summary.csv").unwrap().status, 200);
    assert_eq!(exports("draft-2026-11"), first, "the same draft was made again");
    let r = admin.post_form("/billing/schedule", &[("from_month", "2027-06"), ("unit_yen", "3")]).unwrap();
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(sup.get("/billing/2026-11/billing-2026-11.json").unwrap().status, 200);
    let second = exports("draft-2026-11");
    assert!(second.len() == 1 && second != first, "{first:?} then {second:?}");
    assert!(exports(".").is_empty(), "{:?}", exports("."));
    assert_eq!(sup.get("/billing/2026-10/manifest.json").unwrap().status, 404);
    // The download is logged; a second closing is refused with the reason.
    let downloads =
        server.app.access.search(&AccessFilter { user: Some("super1".into()), ..AccessFilter::default() }, 50);
    assert!(downloads.unwrap().iter().any(|r| r.record.page.contains(name)));
    let twice = sup.post_form("/billing/close", &[("month", "2026-10")]).unwrap();
    assert!(twice.has("締め済みです"), "{}", twice.body);
    // No statement page shows a name, a My Number or an address.
    for page in [&page, &closed, &csv] {
        for personal in ["山田", "田中 花子", "123456789018", "本町1-1-1"] {
            assert!(!page.has(personal), "personal data on a statement");
        }
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).map(|i| i + start.len()).unwrap_or(0);
    let rest = &text[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

#[test]
fn a_windows_lookalike_is_offered_as_a_correction_a_caseworker_confirms() {
    let (_dir, server) = start();
    let f = fixture(&server).unwrap();
    let mut c = server.login("case1").unwrap();
    // An address typed on a Windows machine: ～ U+FF5E, which PMH shows as "●".
    let change = format!("/recipients/{}/do/change_personal_details", f.d);
    c.record(&change, "la-1", &[("effective", "2026-11-15"), ("address", "さくら市本町1～2")]).unwrap();
    let page = c.get(&format!("/recipients/{}", f.d)).unwrap();
    assert!(page.has("PMHで「●」になる文字があります") && page.has("住所: U+FF5E → U+301C"), "{}", page.body);
    assert_eq!(page.input_value("address").as_deref(), Some("さくら市本町1〜2"));
    // Nothing changes by itself: the offer leads to the confirmation page, and only confirming
    // records it.
    let before = head(&server);
    let fields = ["id", "step", "effective", "address"].map(|k| (k, page.input_value(k).unwrap()));
    let form: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let confirm = c.post_form(&change, &form).unwrap();
    assert_eq!(confirm.status, 200);
    assert!(confirm.has("さくら市本町1〜2"), "{}", confirm.body);
    assert_eq!(head(&server), before, "the offer wrote nothing");
    let mut confirmed: Vec<(&str, String)> = form.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
    confirmed.retain(|(k, _)| *k != "step");
    confirmed.push(("step", "confirm".into()));
    confirmed.push(("seen", confirm.input_value("seen").unwrap()));
    let pairs: Vec<(&str, &str)> = confirmed.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(c.post_form(&change, &pairs).unwrap().status, 303);
    assert!(head(&server) > before);
    let page = c.get(&format!("/recipients/{}", f.d)).unwrap();
    assert!(!page.has("PMHで「●」になる文字があります"), "corrected: no offer any more");
    assert!(page.has("さくら市本町1〜2"));
    // A viewer is offered nothing; a protected address is offered only to who may see it.
    let mut boss = server.login("super1").unwrap();
    boss.record(
        &format!("/recipients/{}/do/change_personal_details", f.c),
        "la-2",
        &[("effective", "2026-11-15"), ("address", "ひみつ町3～4")],
    )
    .unwrap();
    let hidden = c.get(&format!("/recipients/{}", f.c)).unwrap();
    assert!(!hidden.has("PMHで「●」になる文字があります") && !hidden.has("ひみつ町"), "{}", hidden.body);
    assert!(boss.get(&format!("/recipients/{}", f.c)).unwrap().has("住所: U+FF5E → U+301C"));
    let mut viewer = server.login("viewer1").unwrap();
    viewer.record(&change, "la-3", &[("effective", "2026-11-16"), ("name", "高橋 次郎～")]).unwrap_err();
    c.record(&change, "la-4", &[("effective", "2026-11-16"), ("name", "高橋 次郎～")]).unwrap();
    assert!(!viewer.get(&format!("/recipients/{}", f.d)).unwrap().has("直した内容を確認する"));
}

#[test]
fn pmh_results_are_uploaded_refused_records_listed_and_a_bad_file_refused_beside_its_field() {
    let (_dir, server) = start();
    fixture(&server).unwrap();
    let mut super1 = server.login("super1").unwrap();
    let r = super1.post_form("/pmh/generate", &[("program", "kosei")]).unwrap();
    let location = r.header("location").unwrap().to_owned();
    let n: u64 = location.strip_prefix("/pmh?generated=").unwrap().parse().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&super1.get(&format!("/pmh/batches/{n}/manifest.json")).unwrap().body).unwrap();
    let json = manifest["batches"][0]["files"][0]["name"].as_str().unwrap().to_owned();
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&super1.get(&format!("/pmh/batches/{n}/{json}")).unwrap().body).unwrap();
    let key = records[0]["historyKey"].as_str().unwrap().to_owned();
    let page = super1.get("/pmh").unwrap();
    assert!(page.has("結果待ち"), "a batch without results waits for them");

    // A malformed file: the page says why beside the file field, and nothing is recorded.
    let bad = format!("ファイル名,履歴キー,エラーコード,エラー内容\r\n{json},{key},,理由\r\n");
    let r = super1.post_multipart("/pmh/results", &[], ("file", "results.csv", bad.as_bytes())).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.has("id=\"results-file-error\"") && r.has("aria-invalid=\"true\""), "{}", r.body);
    assert!(r.has("2行目「エラーコード」列") && r.has("何も記録していません"), "{}", r.body);
    assert!(r.has("結果待ち"), "nothing recorded");

    // A good file: the record is listed as refused, the batch as answered, the recipient page
    // says so; a row naming a record never sent is listed.
    let good = format!(
        "ファイル名,履歴キー,エラーコード,エラー内容\r\n{json},{key},E0101,個人番号が一致しません\r\n{json},R99999S1,E0101,x\r\n"
    );
    let r = super1.post_multipart("/pmh/results", &[], ("file", "results.csv", good.as_bytes())).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.has(&format!("第{n}回（kosei）: PMHで不受理 1件")), "{}", r.body);
    assert!(r.has("R99999S1: 台帳が送った記録にない履歴キーです"), "{}", r.body);
    assert!(r.has("受領: 不受理 1件") && r.has("data-refused=\"1\""), "{}", r.body);
    let recipient = key.trim_start_matches('R').split('S').next().unwrap().to_owned();
    let page = super1.get(&format!("/recipients/{recipient}")).unwrap();
    assert!(page.has(&format!("PMHで不受理（第{n}回）")), "{}", page.body);
    // A caseworker may not upload.
    let mut case1 = server.login("case1").unwrap();
    let r = case1.post_multipart("/pmh/results", &[], ("file", "results.csv", good.as_bytes())).unwrap();
    assert_eq!(r.status, 403, "{}", r.body);
    // Without the session's token nothing is read.
    let mut forged = server.login("super1").unwrap();
    forged.csrf().unwrap();
    let r = forged
        .request_bytes(
            "POST",
            "/pmh/results",
            Some((
                "multipart/form-data; boundary=x",
                b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\r\nx\r\n--x--\r\n",
            )),
            &[("Sec-Fetch-Site", "same-origin")],
        )
        .unwrap();
    assert_eq!(r.status, 403);
}

#[test]
fn pmh_reconciliation_lists_a_wrong_my_number_first_and_gives_the_report_as_csv() {
    let (_dir, server) = start();
    fixture(&server).unwrap();
    let mut super1 = server.login("super1").unwrap();
    let r = super1.post_form("/pmh/generate", &[("program", "kosei")]).unwrap();
    let n: u64 = r.header("location").unwrap().strip_prefix("/pmh?generated=").unwrap().parse().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_str(&super1.get(&format!("/pmh/batches/{n}/manifest.json")).unwrap().body).unwrap();
    let csv_name = manifest["batches"][0]["files"][1]["name"].as_str().unwrap().to_owned();
    let sent = super1.get(&format!("/pmh/batches/{n}/{csv_name}")).unwrap().body;
    // PMH's inquiry: what was sent, but the first record with another person's My Number.
    let mut lines: Vec<String> = sent.trim_start_matches('\u{feff}').lines().map(str::to_owned).collect();
    assert!(lines.len() >= 2, "{sent}");
    let header: Vec<&str> = lines[0].split(',').collect();
    let my_number = header.iter().position(|h| *h == "マイナンバー").unwrap();
    let mut first: Vec<String> = lines[1].split(',').map(str::to_owned).collect();
    assert!(!first[my_number].is_empty(), "the fixture's record has a My Number");
    let theirs = if first[my_number] == "123456789018" { "111111111118" } else { "123456789018" };
    first[my_number] = theirs.to_owned();
    lines[1] = first.join(",");
    let inquiry = lines.join("\r\n") + "\r\n";

    let page = super1
        .post_multipart("/pmh/reconcile", &[("format", "page")], ("file", "inquiry.csv", inquiry.as_bytes()))
        .unwrap();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.has("個人番号相違（別人登録の疑い）: 1件"), "{}", page.body);
    assert!(page.has("id=\"reconcile-findings\""), "{}", page.body);
    assert!(!page.has(theirs), "no My Number in full on the page");
    let csv = super1
        .post_multipart("/pmh/reconcile", &[("format", "csv")], ("file", "inquiry.csv", inquiry.as_bytes()))
        .unwrap();
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-disposition").unwrap().contains("attachment"));
    assert!(csv.body.lines().nth(1).unwrap().starts_with("個人番号相違（別人登録の疑い）,2,"), "{}", csv.body);
    assert!(access_of(&server, "super1", None).iter().any(|(a, _)| a == "downloaded"));
    // A malformed file: the problem beside the field.
    let bad = super1.post_multipart("/pmh/reconcile", &[], ("file", "inquiry.csv", "履歴キー\r\n".as_bytes())).unwrap();
    assert!(bad.has("id=\"reconcile-file-error\"") && bad.has("見出し行にこの列がありません"), "{}", bad.body);
    // An auditor may reconcile (it records nothing); a caseworker may not.
    let mut audit1 = server.login("audit1").unwrap();
    let r = audit1.post_multipart("/pmh/reconcile", &[], ("file", "inquiry.csv", inquiry.as_bytes())).unwrap();
    assert_eq!(r.status, 200);
    let mut case1 = server.login("case1").unwrap();
    let r = case1.post_multipart("/pmh/reconcile", &[], ("file", "inquiry.csv", inquiry.as_bytes())).unwrap();
    assert_eq!(r.status, 403);
}
