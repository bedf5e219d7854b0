//! The synthetic municipality is fully valid (every generated command passes the rules) and
//! reaches every kind of event: the demo and the benchmarks rest on it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use daicho_domain::command::parse_command_value;
use daicho_domain::config::Config;
use daicho_domain::{Context, Decision, State, decide, evolve};

#[test]
fn every_generated_command_is_accepted_and_every_event_type_occurs() {
    let config = Config::demo().unwrap();
    let today = daicho::cli::today_in_japan();
    let ctx = Context::new(today, &config);
    let mut types = BTreeSet::new();
    let mut commands = 0;
    for seed in [1u64, 2, 3] {
        for i in 1..=1500 {
            let mut state = State::default();
            for raw in daicho::synth::history(seed, i, today) {
                let cmd = parse_command_value(raw.clone()).unwrap();
                match decide(&state, &cmd, &ctx) {
                    Ok(Decision::Record(events)) => {
                        for e in &events {
                            types.insert(e.type_name());
                        }
                        state = events.iter().fold(state, evolve);
                        commands += 1;
                    }
                    other => panic!("seed {seed}, recipient {i}: {raw} gave {other:?}"),
                }
            }
        }
    }
    assert!(commands > 30_000, "{commands}");
    for kind in [
        "recipient_registered",
        "my_number_linked",
        "personal_details_changed",
        "moved_out",
        "died",
        "dv_support_started",
        "dv_support_ended",
        "certificate_granted",
        "certificate_renewed",
        "certificate_changed",
        "certificate_ended",
        "certificate_reissued",
        "command_rescinded",
    ] {
        assert!(types.contains(kind), "the synthetic municipality never produces {kind}: {types:?}");
    }
    // Every recipient has a My Number unique to it.
    assert_ne!(daicho::synth::my_number(1), daicho::synth::my_number(2));
    assert!(daicho_domain::numbers::MyNumber::parse(&daicho::synth::my_number(123_456)).is_ok());
}
