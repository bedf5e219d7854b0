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
    let today = daicho_tests::cli::TODAY.parse().unwrap();
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
    // Every event type of a recipient's stream: the codec's list, less the system streams'.
    use daicho_domain::codec::{self, CURRENT_VERSIONS};
    let system = [
        codec::CONFIGURATION_SET,
        codec::PMH_BATCH_EXPORTED,
        codec::PMH_RESULTS_RECORDED,
        codec::FEE_SCHEDULE_SET,
        codec::BILLING_MONTH_CLOSED,
        codec::USER_ADDED,
        codec::USER_PASSWORD_SET,
        codec::USER_DISABLED,
        codec::ACCESS_RECORDED,
    ];
    let recipient_types: Vec<&str> = CURRENT_VERSIONS.iter().map(|(t, _)| *t).filter(|t| !system.contains(t)).collect();
    assert_eq!(recipient_types.len(), 15, "{recipient_types:?}");
    for kind in recipient_types {
        assert!(types.contains(kind), "the synthetic municipality never produces {kind}: {types:?}");
    }
    // Every recipient has a My Number unique to it.
    assert_ne!(daicho::synth::my_number(1), daicho::synth::my_number(2));
    assert!(daicho_domain::numbers::MyNumber::parse(&daicho::synth::my_number(123_456)).is_ok());
}
