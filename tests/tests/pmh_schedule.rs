//! 定時連携: the daily PMH batches `daicho serve` makes under `[pmh.schedule]` and delivers to
//! `[pmh.delivery]`, driven by a made-up clock (no sleeping): a normal day, days the server was
//! down, and a restart in the middle of a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset, TimeZone};
use daicho_app::schedule::{SCHEDULE_ACTOR, Scheduler};
use daicho_tests::cli::daicho;
use serde_json::{Value, json};

/// Japan time.
fn at(day: u32, hour: u32, minute: u32) -> DateTime<FixedOffset> {
    daicho_app::clock::JST.with_ymd_and_hms(2026, 12, day, hour, minute, 0).unwrap()
}

struct Town {
    tmp: tempfile::TempDir,
    data: PathBuf,
    outbox: PathBuf,
    next: usize,
}

impl Town {
    fn new() -> Town {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("ledger");
        let outbox = tmp.path().join("outbox");
        std::fs::create_dir(&outbox).unwrap();
        let config = format!(
            "{}\n[pmh.schedule]\ntime = \"06:00\"\nprograms = [\"kodomo\", \"kosei\"]\n\n[pmh.delivery]\nfolder = \"{}\"\nfiles = [\"json\", \"csv\"]\nfile_mode = \"0640\"\nname = \"{{program}}_{{date}}_{{batch}}\"\n",
            daicho_domain::config::DEMO_TOML,
            outbox.display()
        );
        let file = tmp.path().join("city.toml");
        std::fs::write(&file, config).unwrap();
        let (status, out, err) = daicho(&data, &["init", "--config", file.to_str().unwrap()]);
        assert_eq!(status, 0, "{out}{err}");
        let mut t = Town { tmp, data, outbox, next: 0 };
        t.apply(&[
            json!({"type": "register_recipient", "recipient": "A1", "effective": "2026-04-01", "name": "桜 一郎",
                   "kana": "サクラ イチロウ", "birth_date": "1970-01-20", "sex": "1", "address": "さくら市本町1-2-3"}),
            json!({"type": "link_my_number", "recipient": "A1", "effective": "2026-04-02", "approver": "mori", "my_number": "111111111118",
                   "resident_record": {"name": "桜 一郎", "birth_date": "1970-01-20", "sex": "1", "address": "さくら市本町1-2-3"}}),
            json!({"type": "grant_certificate", "recipient": "A1", "effective": "2026-04-01", "certificate": "J1",
                   "program": "kosei", "payer_number": "15139991", "recipient_number": "1234566",
                   "valid_from": "2026-04-01", "valid_to": "2027-03-31", "income_segment": "A"}),
        ]);
        t
    }

    fn apply(&mut self, commands: &[Value]) {
        let mut text = String::new();
        for c in commands {
            let mut c = c.clone();
            self.next += 1;
            c["id"] = json!(format!("c{}", self.next));
            c["actor"] = json!("kubo");
            text.push_str(&format!("{c}\n"));
        }
        let file = self.tmp.path().join(format!("cmd{}.jsonl", self.next));
        std::fs::write(&file, text).unwrap();
        let (status, out, err) = daicho(&self.data, &["apply", file.to_str().unwrap()]);
        assert_eq!(status, 0, "{out}{err}");
    }

    fn move_house(&mut self, address: &str) {
        self.apply(&[json!({"type": "change_personal_details", "recipient": "A1", "effective": "2026-11-01", "address": address})]);
    }

    fn app(&self) -> daicho_app::App {
        daicho_app::App::open(&self.data).unwrap()
    }

    fn exports(&self) -> PathBuf {
        self.data.join("exports")
    }

    /// The scheduler's batches in the log: (number, program, effective day).
    fn scheduled(&self, app: &daicho_app::App) -> Vec<(u64, String, String)> {
        let batches = app.ledger().pmh_batches().unwrap();
        batches
            .into_iter()
            .filter(|b| b.actor == SCHEDULE_ACTOR)
            .map(|b| (b.number, b.batch.program.to_string(), b.effective.to_string()))
            .collect()
    }

    fn outbox(&self) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(&self.outbox).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_normal_day_runs_once_at_its_time_and_delivers_whole_files() {
    let mut town = Town::new();
    let app = town.app();
    let mut s = Scheduler::new(&town.exports());
    // A schedule starts at its next slot, not when it is switched on.
    assert!(s.tick(&app, at(3, 5, 59)).is_none(), "switched on at 05:59: nothing yet");
    assert!(town.scheduled(&app).is_empty());
    let first = s.tick(&app, at(3, 6, 0)).unwrap();
    assert_eq!(first.day.to_string(), "2026-12-03");
    assert!(first.programs.iter().all(|p| p.error.is_none()), "{first:?}");
    assert_eq!(town.scheduled(&app), [(1, "kosei".to_owned(), "2026-12-03".to_owned())], "kodomo had nothing to send");
    assert_eq!(town.outbox(), ["kosei_20261203_1.csv", "kosei_20261203_1.json"]);
    for name in town.outbox() {
        let delivered = std::fs::read(town.outbox.join(&name)).unwrap();
        let ext = name.rsplit('.').next().unwrap();
        let kept = std::fs::read_dir(town.exports().join("batch-1"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == ext) && !p.ends_with("manifest.json"))
            .unwrap();
        assert_eq!(delivered, std::fs::read(kept).unwrap(), "{name} is the batch's file, whole");
        assert_eq!(mode(&town.outbox.join(&name)), 0o640, "{name}: the configured mode");
    }
    // Nothing more until the next slot: 06:00 tomorrow.
    assert!(s.tick(&app, at(3, 7, 0)).is_none());
    drop(app);
    town.move_house("さくら市緑町2-3");
    let app = town.app();
    assert!(s.tick(&app, at(4, 5, 59)).is_none(), "a change waits for the slot");
    let run = s.tick(&app, at(4, 6, 0)).unwrap();
    assert_eq!(run.day.to_string(), "2026-12-04");
    assert_eq!(
        run.programs.iter().map(|p| (p.program.as_str(), p.batch)).collect::<Vec<_>>(),
        [("kodomo", None), ("kosei", Some(2))]
    );
    assert!(s.tick(&app, at(4, 6, 30)).is_none(), "once a day");
    assert!(s.tick(&app, at(5, 5, 0)).is_none(), "not before the next slot");
    assert_eq!(town.scheduled(&app).len(), 2);
    assert!(town.outbox().iter().all(|n| !n.starts_with('.')), "no temporary file left: {:?}", town.outbox());
}

#[test]
fn days_the_server_was_down_are_made_up_once_not_once_per_day() {
    let mut town = Town::new();
    let app = town.app();
    let mut s = Scheduler::new(&town.exports());
    assert!(s.tick(&app, at(2, 23, 0)).is_none(), "switched on");
    s.tick(&app, at(3, 6, 0)).unwrap();
    drop(app);
    town.move_house("さくら市緑町2-3");
    town.move_house("さくら市東町4-5");
    // Down from the 3rd after the run until the 7th at 09:00: one run, for the 7th.
    let app = town.app();
    let mut restarted = Scheduler::new(&town.exports());
    let run = restarted.tick(&app, at(7, 9, 0)).unwrap();
    assert_eq!(run.day.to_string(), "2026-12-07");
    assert_eq!(town.scheduled(&app).len(), 2, "{:?}", town.scheduled(&app));
    assert!(restarted.tick(&app, at(7, 9, 1)).is_none());
    drop(app);
    // Down over the 8th's slot, back on the 9th before 06:00: the 8th's run, then the 9th's.
    town.move_house("さくら市西町6-7");
    let app = town.app();
    let mut again = Scheduler::new(&town.exports());
    assert_eq!(again.tick(&app, at(9, 5, 0)).unwrap().day.to_string(), "2026-12-08");
    assert_eq!(town.scheduled(&app).len(), 3);
    assert!(again.tick(&app, at(9, 5, 30)).is_none());
    assert_eq!(again.tick(&app, at(9, 6, 0)).unwrap().day.to_string(), "2026-12-09");
}

#[test]
fn a_restart_in_the_middle_of_a_run_does_the_rest_and_delivers_what_was_recorded() {
    let mut town = Town::new();
    town.apply(&[
        json!({"type": "register_recipient", "recipient": "C1", "effective": "2026-04-01", "name": "桜 太郎",
               "kana": "サクラ タロウ", "birth_date": "2018-05-05", "sex": "1", "address": "さくら市本町1-2-3"}),
        json!({"type": "link_my_number", "recipient": "C1", "effective": "2026-04-02", "approver": "mori", "my_number": "123456789018",
               "resident_record": {"name": "桜 太郎", "birth_date": "2018-05-05", "sex": "1", "address": "さくら市本町1-2-3"}}),
        json!({"type": "grant_certificate", "recipient": "C1", "effective": "2026-04-01", "certificate": "K1",
               "program": "kodomo", "payer_number": "88139993", "recipient_number": "000123", "valid_from": "2026-04-01"}),
    ]);
    let app = town.app();
    let mut s = Scheduler::new(&town.exports());
    assert!(s.tick(&app, at(2, 23, 0)).is_none(), "switched on");
    // The delivery folder is gone when the run starts: both batches are recorded, neither
    // delivered; the run says so.
    std::fs::remove_dir(&town.outbox).unwrap();
    let run = s.tick(&app, at(3, 6, 0)).unwrap();
    assert_eq!(run.programs.len(), 2);
    assert!(run.programs.iter().all(|p| p.batch.is_some() && p.error.is_some()), "{run:?}");
    assert_eq!(town.scheduled(&app).len(), 2);
    // Restarted with the folder back: the recorded batches are delivered, none made again.
    std::fs::create_dir(&town.outbox).unwrap();
    let mut restarted = Scheduler::new(&town.exports());
    let run = restarted.tick(&app, at(3, 6, 1)).unwrap();
    assert!(run.programs.iter().all(|p| p.error.is_none() && p.delivered.len() == 2), "{run:?}");
    assert_eq!(town.scheduled(&app).len(), 2, "nothing recorded twice");
    assert_eq!(town.outbox().len(), 4, "{:?}", town.outbox());
    assert!(restarted.tick(&app, at(3, 6, 2)).is_none(), "delivered once");
    drop(app);

    // A run stopped after its first program (the state file says so): the next tick does the
    // second only.
    town.move_house("さくら市緑町2-3");
    town.apply(&[json!({"type": "change_personal_details", "recipient": "C1", "effective": "2026-11-01", "address": "さくら市緑町2-3"})]);
    std::fs::write(
        town.exports().join("schedule.json"),
        r#"{"slots":{"kodomo":"2026-12-04","kosei":"2026-12-03"},"delivery_after":0}"#,
    )
    .unwrap();
    let app = town.app();
    let mut resumed = Scheduler::new(&town.exports());
    let run = resumed.tick(&app, at(4, 6, 5)).unwrap();
    assert_eq!(run.programs.iter().map(|p| p.program.as_str()).collect::<Vec<_>>(), ["kosei"], "{run:?}");
    assert_eq!(town.scheduled(&app).len(), 3);
}

#[test]
fn an_unreadable_state_file_or_a_world_writable_folder_stops_rather_than_guesses() {
    let town = Town::new();
    let app = town.app();
    let mut s = Scheduler::new(&town.exports());
    assert!(s.tick(&app, at(2, 23, 0)).is_none(), "switched on");
    // A damaged state file: nothing runs (it would otherwise run every program again).
    std::fs::write(town.exports().join("schedule.json"), "{not json").unwrap();
    assert!(s.tick(&app, at(3, 6, 0)).is_none());
    assert!(town.scheduled(&app).is_empty());
    std::fs::remove_file(town.exports().join("schedule.json")).unwrap();
    assert!(s.tick(&app, at(3, 6, 0)).is_none(), "a fresh state starts at the next slot");
    // A folder anyone may write to: the batch is made, not delivered, and the run says why.
    std::fs::set_permissions(&town.outbox, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = s.tick(&app, at(4, 6, 0)).unwrap();
    let kosei = run.programs.iter().find(|p| p.program.as_str() == "kosei").unwrap();
    assert!(kosei.batch.is_some() && kosei.error.as_deref().is_some_and(|e| e.contains("誰でも書き込める")), "{run:?}");
    assert!(town.outbox().is_empty());
    // Fixed: delivered at the next tick, once.
    std::fs::set_permissions(&town.outbox, std::fs::Permissions::from_mode(0o750)).unwrap();
    let run = s.tick(&app, at(4, 6, 1)).unwrap();
    assert!(run.programs.iter().all(|p| p.error.is_none()), "{run:?}");
    assert_eq!(town.outbox().len(), 2);
    assert!(s.tick(&app, at(4, 6, 2)).is_none());
}
