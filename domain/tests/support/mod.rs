//! Shared test helper: commands as contract JSON, decided and applied through the public API.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use chrono::NaiveDate;
use daicho_domain::command::{Command, parse_command_value};
use daicho_domain::config::Config;
use daicho_domain::event::Event;
use daicho_domain::state::Recipient;
use daicho_domain::{Context, Decision, MyNumberHolder, Rejection, State, decide, evolve};
use serde_json::{Value, json};

/// The recorded date used by every scenario.
pub const TODAY: &str = "2026-11-22";

pub fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

pub fn config() -> Config {
    Config::demo().unwrap()
}

/// Fills the contract's common fields that a scenario leaves out: `actor` "caseworker1",
/// `recipient` "R1", `effective` 2026-04-01 (`id` is given by [`Scenario`]).
pub fn with_defaults(mut v: Value) -> Value {
    let obj = v.as_object_mut().unwrap();
    obj.entry("actor").or_insert(json!("caseworker1"));
    obj.entry("recipient").or_insert(json!("R1"));
    obj.entry("effective").or_insert(json!("2026-04-01"));
    v
}

pub fn command(v: Value) -> Command {
    parse_command_value(with_defaults(v)).unwrap_or_else(|e| panic!("test command does not parse: {e}"))
}

thread_local! {
    /// The rejection codes `decide` answered on this thread (see [`rejections_observed`]).
    static OBSERVED: std::cell::RefCell<std::collections::BTreeSet<&'static str>> = Default::default();
}

/// Notes that `decide` answered with `r` on this thread.
pub fn observed(r: &Rejection) {
    OBSERVED.with(|o| o.borrow_mut().insert(r.code()));
}

/// Runs `f` and returns the rejection codes `decide` answered on this thread meanwhile.
pub fn rejections_observed(f: impl FnOnce()) -> std::collections::BTreeSet<&'static str> {
    OBSERVED.with(|o| o.borrow_mut().clear());
    f();
    OBSERVED.with(|o| std::mem::take(&mut *o.borrow_mut()))
}

/// A recipient stream and the lookups a caller would make.
pub struct Scenario {
    pub config: Config,
    pub state: State,
    pub today: NaiveDate,
    pub holder: MyNumberHolder,
    /// Whether the decider may see DV-protected addresses (a supervisor or the operator).
    pub sees_protected: bool,
    next_id: usize,
}

impl Scenario {
    pub fn new() -> Self {
        Scenario {
            config: config(),
            state: State::default(),
            today: date(TODAY),
            holder: MyNumberHolder::Nobody,
            sees_protected: true,
            next_id: 0,
        }
    }

    /// The command of `v`, with the next id when it has none.
    pub fn with_id(&mut self, mut v: Value) -> Command {
        self.next_id += 1;
        let obj = v.as_object_mut().unwrap();
        obj.entry("id").or_insert(json!(format!("cmd-{}", self.next_id)));
        command(v)
    }

    pub fn decide(&self, cmd: &Command) -> Result<Decision, Rejection> {
        let ctx = Context {
            today: self.today,
            config: &self.config,
            prior: None,
            my_number_holder: self.holder,
            sees_protected_addresses: self.sees_protected,
        };
        let decided = decide(&self.state, cmd, &ctx);
        if let Err(r) = &decided {
            observed(r);
        }
        decided
    }

    /// Decides and applies; returns the events or the rejection.
    pub fn run(&mut self, v: Value) -> Result<Vec<Event>, Rejection> {
        let cmd = self.with_id(v);
        match self.decide(&cmd)? {
            Decision::Record(events) => {
                for e in &events {
                    self.state = evolve(std::mem::take(&mut self.state), e);
                }
                Ok(events)
            }
            Decision::AlreadyApplied => Ok(Vec::new()),
        }
    }

    /// Applies `given`, each of which must be accepted.
    #[track_caller]
    pub fn given(mut self, given: &[Value]) -> Self {
        for (i, v) in given.iter().enumerate() {
            if let Err(r) = self.run(v.clone()) {
                panic!("given[{i}] ({}) was rejected: {} {}", v["type"], r.code(), r.message());
            }
        }
        self
    }

    pub fn recipient(&self) -> &Recipient {
        self.state.recipient().expect("registered")
    }
}

/// Given `given`, when `when`: expect the rejection `code`, with a message, and the same answer
/// when asked again (`decide` is pure). That nothing is written for a rejection is the store's
/// to show (the CLI and web tests compare the log's head).
#[track_caller]
pub fn rejects(given: &[Value], when: Value, code: &str) {
    let mut s = Scenario::new().given(given);
    let cmd = s.with_id(when);
    let first = s.decide(&cmd);
    match &first {
        Ok(decision) => panic!("expected rejection {code}, got {decision:?}"),
        Err(r) => {
            assert_eq!(r.code(), code, "message: {}", r.message());
            assert!(!r.message().is_empty());
        }
    }
    assert_eq!(s.decide(&cmd), first, "decide gave another answer to the same question");
}

/// Given `given`, when `when`: expect acceptance; returns the events and the scenario after.
#[track_caller]
pub fn accepts(given: &[Value], when: Value) -> (Vec<Event>, Scenario) {
    let mut s = Scenario::new().given(given);
    match s.run(when) {
        Ok(events) => (events, s),
        Err(r) => panic!("expected acceptance, got {}: {}", r.code(), r.message()),
    }
}

// ---- Contract JSON for the usual commands -------------------------------------------------

/// A child born 2015-06-10, registered 2026-04-01.
pub fn register() -> Value {
    json!({"type": "register_recipient", "name": "山田 太郎", "kana": "ヤマダ タロウ", "birth_date": "2015-06-10",
           "sex": "1", "address": "さくら市本町1-2-3"})
}

/// An adult born 1960-01-15.
pub fn register_adult() -> Value {
    json!({"type": "register_recipient", "name": "佐藤 花子", "kana": "サトウ ハナコ", "birth_date": "1960-01-15",
           "sex": "2", "address": "さくら市桜台4-5-6", "effective": "2025-01-10"})
}

/// こども医療費 for the child, 2026-04-01 to 2027-03-31.
pub fn grant_kodomo(cert: &str) -> Value {
    json!({"type": "grant_certificate", "certificate": cert, "program": "kodomo", "payer_number": "88139993",
           "recipient_number": "K000123", "valid_from": "2026-04-01", "valid_to": "2027-03-31"})
}

/// 更生医療 for the adult, 2025-04-01 to 2026-03-31, with a monthly cap.
pub fn grant_kosei(cert: &str) -> Value {
    json!({"type": "grant_certificate", "certificate": cert, "program": "kosei", "payer_number": "15139991",
           "recipient_number": "1234566", "valid_from": "2025-04-01", "valid_to": "2026-03-31",
           "effective": "2025-03-20", "income_segment": "A",
           "copay_cap": {"yen": 5000, "unit": "month", "setting": "combined"},
           "designated_institutions": ["さくら市立病院"], "disease": "心臓機能障害"})
}

/// Merges `extra` into `base`.
pub fn with(mut base: Value, extra: Value) -> Value {
    let obj = base.as_object_mut().unwrap();
    for (k, v) in extra.as_object().unwrap() {
        obj.insert(k.clone(), v.clone());
    }
    base
}

/// A resident record matching [`register`].
pub fn matching_record() -> Value {
    json!({"name": "山田 太郎", "birth_date": "2015-06-10", "sex": "1", "address": "さくら市本町1-2-3"})
}

pub fn link(my_number: &str) -> Value {
    json!({"type": "link_my_number", "my_number": my_number, "approver": "supervisor1",
           "resident_record": matching_record()})
}
