//! The monthly PMH operating-fee statement (運営費明細) through the CLI: counting policies,
//! closing a month, re-running a closed month byte for byte, adjustments from events recorded
//! after closing, and what a statement never contains.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use daicho_tests::cli::daicho;
use serde_json::{Value, json};

struct Ledger {
    tmp: tempfile::TempDir,
    data: PathBuf,
    next: usize,
}

impl Ledger {
    /// A ledger with a supervisor `boss`, an administrator `root`, a caseworker `kubo`, and
    /// (unless `schedule` is false) 2 yen from 2026-04.
    fn new(schedule: bool) -> Ledger {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("ledger");
        let l = Ledger { tmp, data, next: 0 };
        assert_eq!(l.run(&["init"]).0, 0);
        for (id, role) in [("boss", "supervisor"), ("root", "admin"), ("kubo", "caseworker")] {
            let (status, _, err) = l.run(&["user", "add", id, "--name", id, "--role", role]);
            assert_eq!(status, 0, "{err}");
        }
        if schedule {
            let (status, out, err) =
                l.run(&["billing", "schedule", "--unit-yen", "2", "--from-month", "2026-04", "--actor", "root"]);
            assert_eq!(status, 0, "{out}{err}");
        }
        l
    }

    fn run(&self, args: &[&str]) -> (u8, String, String) {
        daicho(&self.data, args)
    }

    #[track_caller]
    fn apply(&mut self, commands: &[Value]) {
        let mut text = String::new();
        for c in commands {
            let mut c = c.clone();
            self.next += 1;
            let o = c.as_object_mut().unwrap();
            o.entry("id").or_insert(json!(format!("c{}", self.next)));
            o.entry("actor").or_insert(json!("kubo"));
            text.push_str(&serde_json::to_string(&c).unwrap());
            text.push('\n');
        }
        let file = self.tmp.path().join(format!("cmd{}.jsonl", self.next));
        std::fs::write(&file, text).unwrap();
        let (status, out, err) = self.run(&["apply", file.to_str().unwrap()]);
        assert_eq!(status, 0, "{out}{err}");
    }

    #[track_caller]
    fn export(&mut self) -> PathBuf {
        self.next += 1;
        let dir = self.tmp.path().join(format!("pmh{}", self.next));
        let (status, out, err) = self.run(&["pmh", "export", "--out", dir.to_str().unwrap()]);
        assert_eq!(status, 0, "{out}{err}");
        dir
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// `daicho billing --month M --out <name> EXTRA...`; must succeed.
    #[track_caller]
    fn billing(&self, month: &str, name: &str, extra: &[&str]) -> Statement {
        let dir = self.dir(name);
        let mut args = vec!["billing", "--month", month, "--out", dir.to_str().unwrap()];
        args.extend(extra);
        let (status, out, err) = self.run(&args);
        assert_eq!(status, 0, "{out}{err}");
        Statement::read(&dir, month, out)
    }
}

const ADDRESS: &str = "さくら市本町1-2-3";
const DV_ADDRESS: &str = "さくら市ひみつ町9-9";

fn person(r: &str, name: &str, birth: &str, number: &str, address: &str) -> Vec<Value> {
    vec![
        json!({"type": "register_recipient", "recipient": r, "effective": "2026-04-01", "name": name,
               "kana": "サクラ タロウ", "birth_date": birth, "sex": "1", "address": address}),
        json!({"type": "link_my_number", "recipient": r, "effective": "2026-04-02", "approver": "mori", "my_number": number,
               "resident_record": {"name": name, "birth_date": birth, "sex": "1", "address": address}}),
    ]
}

fn grant(r: &str, id: &str, cert: &str, program: &str, payer: &str, number: &str, from: &str) -> Value {
    json!({"id": id, "type": "grant_certificate", "recipient": r, "effective": from, "certificate": cert,
           "program": program, "payer_number": payer, "recipient_number": number, "valid_from": from})
}

/// Four persons: C1 (こども), C2 (こども and ひとり親: two programs), A1 (更生医療 for a year),
/// D1 (こども, under a DV support measure). All sent to PMH.
fn municipality() -> Ledger {
    let mut l = Ledger::new(true);
    let mut commands = Vec::new();
    commands.extend(person("C1", "桜 太郎", "2018-05-05", "123456789018", ADDRESS));
    commands.push(grant("C1", "g-c1", "K1", "kodomo", "88139993", "000101", "2026-04-01"));
    commands.extend(person("C2", "桜 次郎", "2016-02-02", "111111111118", ADDRESS));
    commands.push(grant("C2", "g-c2k", "K2", "kodomo", "88139993", "000102", "2026-04-01"));
    commands.push(grant("C2", "g-c2h", "H2", "hitorioya", "81139990", "000202", "2026-06-01"));
    commands.extend(person("A1", "桜 一郎", "1970-01-20", "983205673214", ADDRESS));
    let mut kosei = grant("A1", "g-a1", "J1", "kosei", "15139991", "1234566", "2026-04-01");
    kosei["valid_to"] = json!("2027-03-31");
    commands.push(kosei);
    commands.extend(person("D1", "桜 花子", "2019-07-07", "100000000013", DV_ADDRESS));
    commands.push(grant("D1", "g-d1", "K4", "kodomo", "88139993", "000104", "2026-04-01"));
    commands.push(json!({"type": "start_dv_support", "recipient": "D1", "effective": "2026-05-01"}));
    l.apply(&commands);
    l.export();
    l
}

/// A statement's files as read back.
struct Statement {
    dir: PathBuf,
    json: Value,
    detail: Vec<BTreeMap<String, String>>,
    summary: Vec<BTreeMap<String, String>>,
    out: String,
}

fn csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let text = text.strip_prefix('\u{feff}').unwrap();
    let mut lines = text.split("\r\n").filter(|l| !l.is_empty());
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_owned).collect();
    // No field of these files needs quoting except reasons, which contain no comma.
    lines.map(|l| header.iter().cloned().zip(l.split(',').map(str::to_owned)).collect()).collect()
}

impl Statement {
    fn read(dir: &Path, month: &str, out: String) -> Statement {
        Statement {
            dir: dir.to_path_buf(),
            json: serde_json::from_slice(&std::fs::read(dir.join(format!("billing-{month}.json"))).unwrap()).unwrap(),
            detail: csv(&dir.join(format!("billing-{month}-detail.csv"))),
            summary: csv(&dir.join(format!("billing-{month}-summary.csv"))),
            out,
        }
    }

    fn count(&self, policy: &str) -> i64 {
        self.json["counts"].as_array().unwrap().iter().find(|c| c[0] == policy).unwrap()[1].as_i64().unwrap()
    }

    fn lines(&self, kind: &str) -> Vec<&BTreeMap<String, String>> {
        self.detail.iter().filter(|l| l["区分"] == kind).collect()
    }

    /// Every file's bytes, by name.
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| {
                let p = e.unwrap().path();
                (p.file_name().unwrap().to_str().unwrap().to_owned(), std::fs::read(&p).unwrap())
            })
            .collect()
    }
}

fn num(s: &str) -> i64 {
    s.parse().unwrap()
}

/// Detail lines sum to the summary and the totals, in units and yen.
#[track_caller]
fn assert_sums(s: &Statement) {
    let month_units: i64 = s.lines("当月").iter().map(|l| num(&l["計上数"])).sum();
    let month_yen: i64 = s.lines("当月").iter().map(|l| num(&l["金額(円)"])).sum();
    let adjustment_yen: i64 = s.lines("調整").iter().map(|l| num(&l["金額(円)"])).sum();
    assert_eq!(month_units, s.json["units"].as_i64().unwrap());
    assert_eq!(month_yen, s.json["month_yen"].as_i64().unwrap());
    assert_eq!(adjustment_yen, s.json["adjustment_yen"].as_i64().unwrap());
    assert_eq!(month_yen + adjustment_yen, s.json["total_yen"].as_i64().unwrap());
    let summary_units: i64 = s.summary.iter().filter(|r| r["区分"] == "当月").map(|r| num(&r["計上数"])).sum();
    assert_eq!(summary_units, month_units);
    let due = s.summary.iter().find(|r| r["区分"] == "請求額").unwrap();
    assert_eq!(num(&due["金額(円)"]), month_yen + adjustment_yen);
    // Per program: the detail lines of a program sum to its summary rows.
    let mut by_program: BTreeMap<String, i64> = BTreeMap::new();
    for l in s.lines("当月") {
        *by_program.entry(l["制度"].clone()).or_default() += num(&l["計上数"]);
    }
    for r in s.summary.iter().filter(|r| r["区分"] == "当月") {
        assert_eq!(by_program.get(&r["制度"]).copied().unwrap_or(0), num(&r["計上数"]), "{}", r["制度"]);
    }
}

#[test]
fn closing_october_then_a_late_death_and_a_rescinded_grant_adjust_november_only() {
    let mut l = municipality();
    let draft = l.billing("2026-10", "oct-draft", &[]);
    assert_eq!(draft.json["status"], "draft");
    // Four persons; C2 holds two certificates.
    assert_eq!(
        (draft.count("persons-overlapping"), draft.count("persons-month-end"), draft.count("certificates-overlapping")),
        (4, 4, 5)
    );
    assert_eq!((draft.json["units"].as_i64(), draft.json["month_yen"].as_i64()), (Some(4), Some(8)));
    assert_sums(&draft);

    let (status, out, err) = l.run(&[
        "billing",
        "--month",
        "2026-10",
        "--out",
        l.dir("oct").to_str().unwrap(),
        "--close",
        "--actor",
        "boss",
    ]);
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("2026年10月 を締めました"), "{out}");
    let closed = Statement::read(&l.dir("oct"), "2026-10", out);
    assert_eq!(closed.json["status"], "closed");
    let closed_files = closed.files();
    assert_eq!(closed_files.len(), 4);

    // A death in October and a rescinded grant, recorded after closing.
    l.apply(&[
        json!({"id": "death-a1", "type": "record_death", "recipient": "A1", "effective": "2026-10-20"}),
        json!({"id": "undo-c1", "type": "rescind", "recipient": "C1", "target": "g-c1", "reason": "二重登録", "effective": "2026-11-20"}),
    ]);

    // October again: the same bytes, checked against the hashes recorded when it was closed.
    let again = l.billing("2026-10", "oct-again", &[]);
    assert!(again.out.contains("記録したハッシュと一致します"), "{}", again.out);
    assert_eq!(again.files(), closed_files);
    // ... also after the changes reached PMH.
    l.export();
    assert_eq!(l.billing("2026-10", "oct-third", &[]).files(), closed_files);

    // November carries the adjustments, with reasons and source events.
    let nov = l.billing("2026-11", "nov", &[]);
    assert_sums(&nov);
    let adjustments = nov.lines("調整");
    let death = adjustments.iter().find(|a| a["原因事象"] == "died").expect("the death adjusts October");
    assert_eq!(death["対象月"], "2026-10");
    // Still registered part of October: no change to persons-overlapping, one fewer at month end.
    assert_eq!((death["計上数"].as_str(), death["金額(円)"].as_str()), ("0", "0"));
    assert_eq!(
        (death["増減_実人数_月内"].as_str(), death["増減_実人数_月末"].as_str(), death["増減_受給者証数"].as_str()),
        ("0", "-1", "0")
    );
    assert!(death["計上理由"].contains("死亡"));
    let rescind =
        adjustments.iter().find(|a| a["原因事象"] == "command_rescinded").expect("the rescind adjusts October");
    assert_eq!((rescind["計上数"].as_str(), rescind["金額(円)"].as_str()), ("-1", "-2"));
    assert_eq!(rescind["制度"], "kodomo");
    assert_eq!(nov.json["adjustment_yen"], -2);
    // November itself: A1 died in October, C1's grant is gone.
    assert_eq!(nov.count("persons-overlapping"), 2);
    assert_eq!(nov.json["total_yen"], 2 * 2 - 2);
    // The trend shows October as billed.
    let trend = nov.json["trend"].as_array().unwrap();
    let october = trend.iter().find(|p| p["month"] == "2026-10").unwrap();
    assert_eq!((october["closed"].as_bool(), october["units"].as_i64()), (Some(true), Some(4)));
    let html = std::fs::read_to_string(nov.dir.join("billing-2026-11.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("死亡の届出"), "{html}");

    // On a day in November, November has not ended: it cannot be closed, and nothing is written.
    let dir = l.dir("nov-close");
    let (status, out, err) = l.run(&[
        "--today",
        "2026-11-20",
        "billing",
        "--month",
        "2026-11",
        "--out",
        dir.to_str().unwrap(),
        "--close",
        "--actor",
        "boss",
    ]);
    assert_eq!(status, 1, "{out}{err}");
    assert!(err.contains("まだ終わっていない"), "{err}");
    assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().next().is_none());
    // The month in progress (of the tests' day) can never be closed.
    let today: chrono::NaiveDate = daicho_tests::cli::TODAY.parse().unwrap();
    let current = format!("{}", today.format("%Y-%m"));
    let (status, _, err) =
        l.run(&["billing", "--month", &current, "--close", "--actor", "boss", "--out", l.dir("now").to_str().unwrap()]);
    assert_eq!(status, 1);
    assert!(err.contains("まだ終わっていない"), "{err}");
    // October cannot be closed twice.
    let (status, _, err) = l.run(&[
        "billing",
        "--month",
        "2026-10",
        "--close",
        "--actor",
        "boss",
        "--out",
        l.dir("twice").to_str().unwrap(),
    ]);
    assert_eq!(status, 1);
    assert!(err.contains("締め済み"), "{err}");
}

#[test]
fn a_person_in_two_programs_counts_once_per_person_and_twice_per_certificate() {
    let l = municipality();
    let persons = l.billing("2026-10", "persons", &[]);
    let c2: Vec<_> = persons.lines("当月").into_iter().filter(|x| x["受給者内部番号"] == "2").collect();
    assert_eq!(c2.len(), 2, "one line per program");
    let units: Vec<&str> = c2.iter().map(|x| x["計上数"].as_str()).collect();
    assert_eq!(units, ["1", "0"], "charged once, to the first program in key order (hitorioya)");
    assert_eq!(c2[0]["制度"], "hitorioya");
    assert!(c2[1]["計上理由"].contains("hitorioya"));
    assert_sums(&persons);
    // The summary is per program, payer number and 実施主体 department.
    let kodomo = persons.summary.iter().find(|r| r["区分"] == "当月" && r["制度"] == "kodomo").unwrap();
    assert_eq!((kodomo["公費負担者番号"].as_str(), kodomo["実施主体担当課"].as_str()), ("88139993", "こども家庭課"));
    assert_eq!(kodomo["計上数"], "2", "C1 and D1; C2 is charged to hitorioya");

    let month_end = l.billing("2026-10", "month-end", &["--policy", "persons-month-end"]);
    assert_eq!(month_end.json["policy"], "persons-month-end");
    assert_eq!(month_end.json["units"], 4);
    assert_sums(&month_end);

    let certificates = l.billing("2026-10", "certificates", &["--policy", "certificates-overlapping"]);
    let c2: Vec<_> = certificates.lines("当月").into_iter().filter(|x| x["受給者内部番号"] == "2").collect();
    assert_eq!(c2.iter().map(|x| x["計上数"].as_str()).collect::<Vec<_>>(), ["1", "1"]);
    assert_eq!(certificates.json["units"], 5);
    assert_eq!(certificates.json["month_yen"], 10);
    assert_sums(&certificates);
    // Every statement shows the other policies' counts too.
    for s in [&persons, &month_end, &certificates] {
        assert_eq!((s.count("persons-overlapping"), s.count("certificates-overlapping")), (4, 5));
    }
    // May: C2's ひとり親 starts in June, so C2 counts once under every policy.
    let may = l.billing("2026-05", "may", &["--policy", "certificates-overlapping"]);
    assert_eq!(may.json["units"], 4);
}

#[test]
fn a_dv_protected_recipient_counts_but_no_statement_reveals_an_address_or_a_number() {
    let l = municipality();
    let s = l.billing("2026-10", "dv", &[]);
    assert!(s.lines("当月").iter().any(|x| x["受給者内部番号"] == "4"), "D1 is counted like any other");
    for (name, bytes) in s.files() {
        let text = String::from_utf8(bytes).unwrap();
        for secret in
            [DV_ADDRESS, ADDRESS, "123456789018", "111111111118", "983205673214", "100000000013", "桜", "サクラ"]
        {
            assert!(!text.contains(secret), "{name} contains personal data");
        }
        assert!(!name.contains("C1") && !name.contains("D1"));
    }
}

#[test]
fn nothing_is_charged_before_the_first_schedule_and_closed_months_cannot_be_repriced() {
    let mut l = Ledger::new(false);
    l.apply(&person("C1", "桜 太郎", "2018-05-05", "123456789018", ADDRESS));
    l.apply(&[grant("C1", "g-c1", "K1", "kodomo", "88139993", "000101", "2026-04-01")]);
    // Not yet sent to PMH: nobody counts.
    let unsent = l.billing("2026-09", "unsent", &[]);
    assert_eq!(unsent.count("persons-overlapping"), 0);
    l.export();
    let free = l.billing("2026-09", "free", &[]);
    assert_eq!(free.count("persons-overlapping"), 1);
    assert_eq!((free.json["unit_yen"].is_null(), free.json["total_yen"].as_i64()), (true, Some(0)));
    assert!(free.out.contains("課金されません"));
    let (status, _, err) =
        l.run(&["billing", "--month", "2026-09", "--close", "--actor", "boss", "--out", l.dir("x").to_str().unwrap()]);
    assert_eq!(status, 1);
    assert!(err.contains("料金表の開始前"), "{err}");

    // Only an administrator sets the schedule; only a supervisor or an administrator closes.
    let (status, _, err) =
        l.run(&["billing", "schedule", "--unit-yen", "2", "--from-month", "2026-09", "--actor", "kubo"]);
    assert_eq!(status, 1);
    assert!(err.contains("管理者"), "{err}");
    let (status, out, err) =
        l.run(&["billing", "schedule", "--unit-yen", "2", "--from-month", "2026-09", "--actor", "root"]);
    assert_eq!(status, 0, "{out}{err}");
    let (status, _, err) =
        l.run(&["billing", "--month", "2026-09", "--close", "--actor", "kubo", "--out", l.dir("y").to_str().unwrap()]);
    assert_eq!(status, 1);
    assert!(err.contains("権限"), "{err}");
    let (status, out, err) = l.run(&[
        "billing",
        "--month",
        "2026-09",
        "--close",
        "--actor",
        "boss",
        "--out",
        l.dir("sep").to_str().unwrap(),
    ]);
    assert_eq!(status, 0, "{out}{err}");
    // A price from a closed month on would change it: refused, and nothing recorded.
    let (status, _, err) =
        l.run(&["billing", "schedule", "--unit-yen", "3", "--from-month", "2026-09", "--actor", "root"]);
    assert_eq!(status, 1);
    assert!(err.contains("締め済み"), "{err}");
    let (_, listed, _) = l.run(&["billing", "schedule"]);
    assert!(listed.contains("2026-09\t2円") && !listed.contains("3円"), "{listed}");
    // Bad input names the option.
    let (status, _, err) = l.run(&["billing", "--month", "2026-9"]);
    assert_eq!(status, 1);
    assert!(err.starts_with("--month"), "{err}");
    let (status, _, err) = l.run(&["billing", "--month", "2026-10", "--policy", "heads"]);
    assert_eq!(status, 1);
    assert!(err.starts_with("--policy"), "{err}");
}

#[test]
fn a_record_pmh_refused_is_not_billed_until_it_is_sent_again() {
    let mut l = municipality();
    assert_eq!(l.billing("2026-10", "before", &[]).json["units"], 4);
    // PMH refuses A1's 更生医療 record, which the first batch sent.
    let dir = std::fs::read_dir(l.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("pmh"))
        .unwrap();
    let json = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("kosei_") && n.ends_with(".json"))
        .unwrap();
    let records: Vec<Value> = serde_json::from_slice(&std::fs::read(dir.join(&json)).unwrap()).unwrap();
    let key = records[0]["historyKey"].as_str().unwrap().to_owned();
    let results = l.dir("results.csv");
    std::fs::write(
        &results,
        format!("ファイル名,履歴キー,エラーコード,エラー内容\n{json},{key},E0101,内容に誤りがあります\n"),
    )
    .unwrap();
    let (status, out, err) = l.run(&["pmh", "results", results.to_str().unwrap()]);
    assert_eq!(status, 0, "{out}{err}");
    let refused = l.billing("2026-10", "refused", &[]);
    assert_eq!(refused.json["units"], 3, "PMH never registered it: not billed");
    assert!(refused.lines("当月").iter().all(|x| x["制度"] != "kosei"), "{:?}", refused.detail);
    // Corrected and sent again: billed again.
    l.apply(&[json!({"type": "change_personal_details", "recipient": "A1", "effective": "2026-10-01",
                     "address": "さくら市緑町2-3"})]);
    l.export();
    assert_eq!(l.billing("2026-10", "resent", &[]).json["units"], 4);
}
