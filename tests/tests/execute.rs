//! `App::execute`, the one door of every write, tried as an attacker would: writing as someone
//! else, with a role that may not, approving for the wrong person, and two writers linking one
//! My Number to two people at the same moment (forced with the hook between reading and
//! appending, not hoped for with sleeps).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use daicho_app::{Actor, App, Failure, Outcome, Refusal, Request};
use daicho_domain::billing::Month;
use daicho_domain::command::{Command, parse_command_value};
use daicho_domain::ids::UserId;
use daicho_domain::users::Role;
use daicho_tests::web::{make_ledger, today};
use serde_json::{Value, json};

fn open() -> (tempfile::TempDir, Arc<App>) {
    let dir = tempfile::tempdir().unwrap();
    make_ledger(dir.path(), 0).unwrap();
    let app = Arc::new(App::open(dir.path()).unwrap());
    (dir, app)
}

fn command(v: Value) -> Command {
    parse_command_value(v).unwrap()
}

fn user(id: &str, role: Role) -> Actor {
    Actor::User { id: UserId::parse(id).unwrap(), role }
}

fn operator() -> Actor {
    Actor::Operator("test-operator".into())
}

fn record(app: &App, actor: &Actor, cmd: &Command) -> Result<Outcome, Failure> {
    app.execute(actor, Request::Recipient { command: cmd, seen: None }, today())
}

fn register(id: &str, r: &str, name: &str, kana: &str, birth: &str, sex: &str, address: &str) -> Command {
    command(json!({"id": id, "type": "register_recipient", "actor": "case1", "recipient": r,
        "effective": "2026-04-01", "name": name, "kana": kana, "birth_date": birth, "sex": sex, "address": address}))
}

fn link(id: &str, r: &str, (name, birth, sex, address): (&str, &str, &str, &str), approver: &str) -> Command {
    command(json!({"id": id, "type": "link_my_number", "actor": "case1", "approver": approver, "recipient": r,
        "effective": "2026-04-10", "my_number": "123456789018",
        "resident_record": {"name": name, "birth_date": birth, "sex": sex, "address": address}}))
}

const TARO: (&str, &str, &str, &str) = ("山田 太郎", "2015-06-10", "1", "さくら市本町1-2-3");
const HANAKO: (&str, &str, &str, &str) = ("佐藤 花子", "1980-01-01", "2", "さくら市緑町4-5");

fn two_people(app: &App) {
    let (n, b, s, a) = TARO;
    record(app, &operator(), &register("r1", "R1", n, "ヤマダ タロウ", b, s, a)).unwrap();
    let (n, b, s, a) = HANAKO;
    record(app, &operator(), &register("r2", "R2", n, "サトウ ハナコ", b, s, a)).unwrap();
}

fn refused(result: Result<Outcome, Failure>) -> Refusal {
    match result {
        Err(Failure::Rejected(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn two_links_of_one_my_number_at_the_same_moment_record_one_and_refuse_the_other() {
    let (_dir, app) = open();
    two_people(&app);
    // The first writer to reach the append waits there until the second has written.
    let (reached_tx, reached_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (reached_tx, release_rx) = (Mutex::new(reached_tx), Mutex::new(release_rx));
    let first = AtomicBool::new(true);
    app.set_before_append(Some(Arc::new(move |_| {
        if first.swap(false, Ordering::SeqCst) {
            reached_tx.lock().unwrap().send(()).unwrap();
            let _ = release_rx.lock().unwrap().recv();
        }
    })));
    let a = {
        let app = app.clone();
        std::thread::spawn(move || record(&app, &operator(), &link("l1", "R1", TARO, "super1")))
    };
    reached_rx.recv_timeout(Duration::from_secs(120)).expect("the first link reached its append");
    // The first decided that nobody holds the number; the second decides the same and records.
    assert!(matches!(record(&app, &operator(), &link("l2", "R2", HANAKO, "super1")), Ok(Outcome::Recorded { .. })));
    release_tx.send(()).unwrap();
    // The first finds the log moved since it asked who holds the number, decides again, and is
    // refused: one number, one person.
    let r = refused(a.join().unwrap());
    assert_eq!(r, Refusal::Rule(daicho_domain::Rejection::MyNumberInUse), "{r}");
    assert!(app.store.request("l1").unwrap().is_none(), "nothing of the refused link is written");
    assert!(app.store.request("l2").unwrap().is_some());
}

#[test]
fn execute_decides_who_may_do_what_and_writes_nothing_it_refuses() {
    let (_dir, app) = open();
    two_people(&app);
    let head = || app.store.head().position;
    let before = head();
    let change = |id: &str, actor: &str| {
        command(json!({"id": id, "type": "change_personal_details", "actor": actor, "recipient": "R1",
            "effective": "2026-05-01", "address": "さくら市東町9-9"}))
    };

    // A caseworker records as themselves only; a viewer records nothing.
    assert!(matches!(
        refused(record(&app, &user("case1", Role::Caseworker), &change("c1", "case2"))),
        Refusal::Forbidden { .. }
    ));
    let needs = refused(record(&app, &user("viewer1", Role::Viewer), &change("c2", "viewer1")));
    assert!(matches!(&needs, Refusal::Forbidden { needs } if needs.contains(&Role::Caseworker)), "{needs}");
    // The fee schedule is an administrator's; the message names who may.
    let schedule = Request::FeeSchedule { from: Month::parse("2027-04").unwrap(), unit_yen: 2 };
    let r = refused(app.execute(&user("super1", Role::Supervisor), schedule, today()));
    assert_eq!(r, Refusal::Forbidden { needs: vec![Role::Admin] });
    assert!(r.to_string().contains("管理者"), "{r}");
    // The configuration is the operator's alone, whatever the role.
    let toml = daicho_domain::config::DEMO_TOML;
    assert!(matches!(
        refused(app.execute(&user("admin1", Role::Admin), Request::Configuration { toml }, today())),
        Refusal::Forbidden { .. }
    ));
    // A link is recorded only by the approver it names, who may approve.
    let by_other = refused(record(&app, &user("super2", Role::Supervisor), &link("l1", "R1", TARO, "super1")));
    assert!(matches!(by_other, Refusal::Forbidden { .. }));
    let by_caseworker = refused(record(&app, &user("case2", Role::Caseworker), &link("l2", "R1", TARO, "case2")));
    assert!(matches!(by_caseworker, Refusal::Forbidden { .. }));
    // ... and only for someone who may still record.
    app.execute(&operator(), Request::DisableUser { id: "case1" }, today()).unwrap();
    let after_disable = head();
    let r = refused(record(&app, &user("super1", Role::Supervisor), &link("l3", "R1", TARO, "super1")));
    assert_eq!(r, Refusal::RequesterCannotRecord);
    assert_eq!(head(), after_disable, "no refused write reached the log");
    assert_eq!(after_disable.0, before.0 + 1, "only the account change was recorded");

    // What may be done is done: the administrator sets the schedule, a supervisor approves.
    assert!(app.execute(&user("admin1", Role::Admin), schedule_of(2), today()).is_ok());
    let ok = record(
        &app,
        &user("super1", Role::Supervisor),
        &command(json!({"id": "l4", "type": "link_my_number",
        "actor": "case2", "approver": "super1", "recipient": "R1", "effective": "2026-04-10", "my_number": "123456789018",
        "resident_record": {"name": TARO.0, "birth_date": TARO.1, "sex": TARO.2, "address": TARO.3}})),
    );
    assert!(matches!(ok, Ok(Outcome::Recorded { .. })), "{ok:?}");
}

fn schedule_of(unit_yen: u32) -> Request<'static> {
    Request::FeeSchedule { from: Month::parse("2027-04").unwrap(), unit_yen }
}
