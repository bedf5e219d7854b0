//! Two caseworkers change one recipient at once. The race is forced, not hoped for: a hook in
//! `execute` holds the first writer between reading the recipient's stream and appending to it
//! until the second has written. The loser is told to reload and nothing of theirs is written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use daicho_app::CONFLICT_MESSAGE;
use daicho_tests::web::{Server, fixture, make_ledger};
use daicho_web::Settings;

fn start() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    make_ledger(dir.path(), 5).unwrap();
    let server = Server::start(dir.path(), Settings::default()).unwrap();
    (dir, server)
}

/// Makes the first writer that reaches the hook wait there; returns (reached, release).
fn hold_first_writer(server: &Server) -> (mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (reached_tx, reached_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let reached_tx = Mutex::new(reached_tx);
    let release_rx = Mutex::new(release_rx);
    let first = AtomicBool::new(true);
    server.app.set_before_append(Some(Arc::new(move |_| {
        if first.swap(false, Ordering::SeqCst) {
            reached_tx.lock().unwrap().send(()).unwrap();
            // Waits for the test's word, not for a clock.
            let _ = release_rx.lock().unwrap().recv();
        }
    })));
    (reached_rx, release_tx)
}

/// The fixture's 高橋 次郎 (`WEB-D`) as his stream has him: (name, address).
fn person_d(server: &Server) -> (String, String) {
    let reference = daicho_domain::ids::RecipientRef::parse("WEB-D").unwrap();
    let loaded = server.app.ledger().load(&reference).unwrap();
    let r = loaded.state.recipient().unwrap();
    (r.name.to_string(), r.address.to_string())
}

#[test]
fn the_caseworker_who_loses_the_race_is_told_to_reload_and_nothing_of_theirs_is_written() {
    let (_dir, server) = start();
    let f = fixture(&server).unwrap();
    let path = format!("/recipients/{}/do/change_personal_details", f.d);
    let mine = [("effective", "2026-11-15"), ("address", "さくら市東町1-1")];
    let theirs = [("effective", "2026-11-15"), ("address", "さくら市西町2-2")];
    let mut one = server.login("case1").unwrap();
    let mut two = server.login("case2").unwrap();

    // Both open the confirmation of their change: each page carries the version it was made at.
    let confirm_one = one.command(&path, "race-one", "check", &mine).unwrap();
    let confirm_two = two.command(&path, "race-two", "check", &theirs).unwrap();
    let seen = confirm_one.input_value("seen").expect("the confirmation carries the version it shows");
    assert_eq!(confirm_two.input_value("seen"), Some(seen.clone()));

    let (reached, release) = hold_first_writer(&server);
    let one_confirms = {
        let (path, seen) = (path.clone(), seen.clone());
        std::thread::spawn(move || {
            let mut fields = mine.to_vec();
            fields.push(("seen", &seen));
            let page = one.command(&path, "race-one", "confirm", &fields).unwrap();
            (one, page)
        })
    };
    // case1 has read the stream and decided; it waits between reading and appending.
    reached.recv_timeout(Duration::from_secs(120)).expect("case1 reached the append");
    let before = server.app.store.head().position.0;
    let mut fields = theirs.to_vec();
    fields.push(("seen", &seen));
    let won = two.command(&path, "race-two", "confirm", &fields).unwrap();
    assert_eq!(won.status, 303, "case2 records: {}", won.body);
    let after_two = server.app.store.head().position.0;
    assert!(after_two > before, "case2's change is written");

    release.send(()).unwrap();
    let (mut one, lost) = one_confirms.join().unwrap();
    assert_eq!(lost.status, 200);
    assert!(lost.has(CONFLICT_MESSAGE), "case1 is told to reload: {}", lost.body);
    // Nothing of case1's: the head is where case2 left it, the command id is unknown to the
    // store, and the address is case2's.
    assert_eq!(server.app.store.head().position.0, after_two);
    assert!(server.app.store.request("race-one").unwrap().is_none());
    assert_eq!(person_d(&server).1, "さくら市西町2-2");

    // Reloading and confirming again decides on the record as it is now, and records.
    server.app.set_before_append(None);
    let again = one.command(&path, "race-one", "check", &mine).unwrap();
    let seen_now = again.input_value("seen").unwrap();
    assert_ne!(seen_now, seen);
    let mut fields = mine.to_vec();
    fields.push(("seen", &seen_now));
    assert_eq!(one.command(&path, "race-one", "confirm", &fields).unwrap().status, 303);
    assert_eq!(person_d(&server).1, "さくら市東町1-1");
}

#[test]
fn a_write_that_confirmed_no_version_is_decided_again_after_losing_the_race_and_recorded() {
    // An approval (or the CLI) decides on the record as it is: a lost race is retried, not shown.
    let (_dir, server) = start();
    let f = fixture(&server).unwrap();
    let path = format!("/recipients/{}/do/change_personal_details", f.d);
    let mut one = server.login("case1").unwrap();
    let mut two = server.login("case2").unwrap();
    let (reached, release) = hold_first_writer(&server);
    let one_records = {
        let path = path.clone();
        std::thread::spawn(move || {
            one.command(&path, "retry-one", "confirm", &[("effective", "2026-11-15"), ("name", "高橋 二郎")]).unwrap()
        })
    };
    reached.recv_timeout(Duration::from_secs(120)).expect("case1 reached the append");
    let r = two.command(&path, "retry-two", "confirm", &[("effective", "2026-11-15"), ("address", "さくら市西町2-2")]);
    assert_eq!(r.unwrap().status, 303);
    release.send(()).unwrap();
    let r = one_records.join().unwrap();
    assert_eq!(r.status, 303, "retried and recorded: {}", r.body);
    // Both changes hold: the retry was decided on case2's record, not on the one case1 read.
    assert_eq!(person_d(&server), ("高橋 二郎".to_owned(), "さくら市西町2-2".to_owned()));
}
