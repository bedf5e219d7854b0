//! 表示方針 (the privacy policy): what a viewer of each role sees of a person in each channel.
//! Every page, list, print, CSV and CLI printer gets a person's address, places and My Number
//! through [`view`]; a tidy test refuses code in those printers that reads them directly.
//!
//! **Protection is decided at the head of the log.** A person protected by a DV support
//! measure (支援措置) now has every address and place hidden, in every view of the present
//! and of the past, whatever state the view shows. After a measure ends, the addresses and
//! places that were the person's while a measure was in force (the one in force when it
//! started, and every one recorded during it) stay hidden. A measure that was later rescinded
//! still protects what it covered: a rescind can undo a mistake, but it must not become a way
//! to read the address it hid. Only roles that may see protected addresses see them, and never
//! in lists (a list shows many people at once, on a screen others can see).
//!
//! The PMH feed is the one channel that carries everything, by law: PMH itself withholds the
//! records of a protected person from clinics (`isNotDisclosed`). Audit bundles are envelopes,
//! not views, and stay raw for auditors.
//!
//! Not this module's business: who may open which page (the web's role table), or the access
//! log (the callers write it, asking [`View::shows_protected`] whether the view showed a
//! protected value).

use std::collections::BTreeSet;

use chrono::NaiveDate;

use crate::event::{Event, EventBody};
use crate::ids::CommandId;
use crate::numbers::MyNumber;
use crate::state::State;
use crate::users::Role;

/// Shown instead of an address or place the viewer may not see.
pub const HIDDEN: &str = "（支援措置のため非表示）";

/// Where a person's data is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// One person on a screen of the web UI: the recipient page (present or past), its
    /// timeline, command forms and confirmations, approvals, the audit difference.
    Screen,
    /// Several people at once: search results, lists.
    List,
    /// Paper: certificate print pages and PDFs.
    Print,
    /// Operator CLI output (`show`, `replay`, `certificate`).
    Cli,
    /// The PMH feed (JSON, CSV): everything PMH needs, with `isNotDisclosed` for PMH.
    PmhFeed,
}

/// Whether `role` may see the address of a protected person (logged when shown).
pub fn sees_protected_addresses(role: Role) -> bool {
    matches!(role, Role::Supervisor | Role::Admin)
}

/// Whether `role` may show a My Number in full (with a reason; logged).
pub fn may_reveal_my_number(role: Role) -> bool {
    matches!(role, Role::Supervisor | Role::Admin)
}

/// What the log, at its head, says a person's protection covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Protection {
    now: bool,
    /// A measure was ever recorded (even one later rescinded).
    ever: bool,
    places: BTreeSet<String>,
}

impl Protection {
    /// No protection: a person who has never had a DV support measure.
    pub fn none() -> Protection {
        Protection::default()
    }

    /// The protection of a person from their whole stream as recorded at the head of the log,
    /// in log order. Rescinded events count too (see the module comment).
    pub fn of<'a>(events: impl IntoIterator<Item = &'a Event>) -> Protection {
        let events: Vec<&Event> = events.into_iter().collect();
        let state = events.iter().fold(State::default(), |s, e| crate::evolve(s, e));
        Protection::of_state(&state)
    }

    /// The protection of a person from their stream folded to the head of the log (its history
    /// keeps rescinded commands' events).
    ///
    /// A measure covers, from its start until an end that was not later rescinded: the address
    /// and destination in force when it started (both as last recorded and as in force after
    /// the rescinds recorded so far), every address and place recorded during it, and every one
    /// recorded at any time whose effective date falls within it.
    pub fn of_state(state: &State) -> Protection {
        let now = state.recipient().is_some_and(|r| r.dv_support_since.is_some());
        // An end rescinded by the head never ended its measure.
        let rescinded: BTreeSet<&CommandId> =
            state.history().iter().filter(|h| h.rescinded_by.is_some()).map(|h| &h.command).collect();
        let mut places = BTreeSet::new();
        let (mut ever, mut during) = (false, false);
        // Rescinds seen so far, in log order.
        let mut undone: BTreeSet<&CommandId> = BTreeSet::new();
        let mut addresses: Vec<(&CommandId, String)> = Vec::new();
        let mut destinations: Vec<(&CommandId, Option<String>)> = Vec::new();
        // Measures by effective date, and every place with its effective date.
        let mut periods: Vec<(NaiveDate, Option<NaiveDate>)> = Vec::new();
        let mut dated: Vec<(NaiveDate, String)> = Vec::new();
        for h in state.history() {
            let c = &h.command;
            for e in &h.events {
                let seen: Vec<String> = match &e.body {
                    EventBody::RecipientRegistered { info, .. } => {
                        addresses.push((c, info.address.to_string()));
                        vec![info.address.to_string()]
                    }
                    EventBody::PersonalDetailsChanged { address: Some(a), .. } => {
                        addresses.push((c, a.to_string()));
                        vec![a.to_string()]
                    }
                    EventBody::MovedIn { address: a, from } => {
                        addresses.push((c, a.to_string()));
                        destinations.push((c, None));
                        vec![a.to_string(), from.to_string()]
                    }
                    EventBody::MovedOut { to } => {
                        destinations.push((c, Some(to.to_string())));
                        vec![to.to_string()]
                    }
                    EventBody::CommandRescinded { target, .. } => {
                        undone.insert(target);
                        Vec::new()
                    }
                    EventBody::DvSupportStarted => {
                        ever = true;
                        during = true;
                        periods.push((e.effective, None));
                        let active = |c: &&CommandId| !undone.contains(*c);
                        let in_force = [
                            addresses.last().map(|(_, a)| a.clone()),
                            addresses.iter().rev().find(|(c, _)| active(c)).map(|(_, a)| a.clone()),
                            destinations.last().and_then(|(_, d)| d.clone()),
                            destinations.iter().rev().find(|(c, _)| active(c)).and_then(|(_, d)| d.clone()),
                        ];
                        places.extend(in_force.into_iter().flatten());
                        Vec::new()
                    }
                    EventBody::DvSupportEnded => {
                        if !rescinded.contains(c) {
                            during = false;
                            if let Some(p) = periods.last_mut() {
                                p.1 = Some(e.effective);
                            }
                        }
                        Vec::new()
                    }
                    _ => Vec::new(),
                };
                dated.extend(seen.iter().map(|v| (e.effective, v.clone())));
                if during {
                    places.extend(seen);
                }
            }
        }
        for (day, value) in dated {
            if periods.iter().any(|(from, to)| day >= *from && to.is_none_or(|t| day <= t)) {
                places.insert(value);
            }
        }
        Protection { now, ever, places }
    }

    /// Whether a DV support measure is in force at the head.
    pub fn is_protected_at_head(&self) -> bool {
        self.now
    }

    /// Whether the protection covers this address or place.
    pub fn covers(&self, place: &str) -> bool {
        self.now || self.places.contains(place)
    }

    /// Whether the person has any protection, now or of the past.
    pub fn any(&self) -> bool {
        self.now || self.ever || !self.places.is_empty()
    }
}

/// What one viewer sees of one person in one channel: the answer of [`view`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    protection: Protection,
    sees_protected: bool,
    may_reveal: bool,
    channel: Channel,
}

/// The privacy policy: what a viewer of `role` sees in `channel` of a person whose protection
/// (at the head of the log) is `protection`.
pub fn view(protection: Protection, role: Role, channel: Channel) -> View {
    let (sees_protected, may_reveal) = match channel {
        Channel::PmhFeed => (true, true),
        Channel::List => (false, false),
        Channel::Screen | Channel::Print | Channel::Cli => (sees_protected_addresses(role), may_reveal_my_number(role)),
    };
    View { protection, sees_protected, may_reveal, channel }
}

impl View {
    /// An address or place (住所, 転出先, 転入元) as the viewer may see it.
    pub fn place<'a>(&self, value: &'a str) -> &'a str {
        if self.hides(value) { HIDDEN } else { value }
    }

    /// Whether `value` is hidden from this viewer.
    pub fn hides(&self, value: &str) -> bool {
        !self.sees_protected && self.protection.covers(value)
    }

    /// Whether the viewer is shown the values the protection covers (an access record
    /// `protected_address_shown` is due when such a view shows the person's places).
    pub fn shows_protected(&self) -> bool {
        self.sees_protected && self.protection.any() && self.channel != Channel::PmhFeed
    }

    /// Whether everything the protection covers is hidden from this viewer.
    pub fn hides_protected(&self) -> bool {
        !self.sees_protected && self.protection.any()
    }

    /// Whether the person is protected now (shown as a fact to every role: a caseworker must
    /// know to be careful).
    pub fn protected_at_head(&self) -> bool {
        self.protection.is_protected_at_head()
    }

    /// The My Number: in full only when `reveal` was asked (with a reason, by the caller) and
    /// the role may reveal; otherwise masked.
    pub fn my_number(&self, m: &MyNumber, reveal: bool) -> String {
        if (reveal || self.channel == Channel::PmhFeed) && self.may_reveal { m.reveal() } else { m.masked() }
    }

    /// Whether a reveal asked for would be granted.
    pub fn may_reveal(&self) -> bool {
        self.may_reveal && self.channel != Channel::List
    }

    /// The protection this view was made from.
    pub fn protection(&self) -> &Protection {
        &self.protection
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::BasicInfo;
    use crate::ids::{CommandId, RecipientRef};
    use crate::text::{Address, Kana, PersonName, PlaceName, Sex};

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 4, d).unwrap_or_default()
    }

    fn ev(n: u32, body: EventBody) -> Event {
        Event { command: CommandId::parse(&format!("c{n}")).unwrap(), effective: day(n), body }
    }

    fn registered(address: &str) -> Event {
        ev(
            1,
            EventBody::RecipientRegistered {
                recipient: RecipientRef::parse("R1").unwrap(),
                info: BasicInfo {
                    name: PersonName::parse("山田 花子").unwrap(),
                    kana: Kana::parse("ヤマダ ハナコ").unwrap(),
                    birth_date: NaiveDate::from_ymd_opt(1990, 1, 1).unwrap(),
                    sex: Sex::parse("2").unwrap(),
                    address: Address::parse(address).unwrap(),
                },
            },
        )
    }

    fn moved(n: u32, address: &str) -> Event {
        ev(
            n,
            EventBody::PersonalDetailsChanged {
                name: None,
                kana: None,
                address: Some(Address::parse(address).unwrap()),
            },
        )
    }

    fn moved_out(n: u32, to: &str) -> Event {
        ev(n, EventBody::MovedOut { to: PlaceName::parse(to).unwrap() })
    }

    #[test]
    fn a_person_never_protected_shows_everything_to_everyone() {
        let p = Protection::of(&[registered("本町1-1")]);
        for role in Role::ALL {
            let v = view(p.clone(), role, Channel::Screen);
            assert_eq!(v.place("本町1-1"), "本町1-1");
            assert!(!v.shows_protected());
        }
    }

    #[test]
    fn protected_at_head_hides_every_place_of_the_past_too() {
        let events = [registered("本町1-1"), moved(2, "緑町2-2"), ev(3, EventBody::DvSupportStarted)];
        let p = Protection::of(&events);
        assert!(p.is_protected_at_head());
        for role in [Role::Viewer, Role::Caseworker, Role::Auditor] {
            let v = view(p.clone(), role, Channel::Screen);
            assert_eq!(v.place("本町1-1"), HIDDEN, "{role:?}");
            assert_eq!(v.place("緑町2-2"), HIDDEN, "{role:?}");
            assert_eq!(v.place("anything"), HIDDEN, "{role:?}");
        }
        for role in [Role::Supervisor, Role::Admin] {
            let v = view(p.clone(), role, Channel::Screen);
            assert_eq!(v.place("本町1-1"), "本町1-1");
            assert!(v.shows_protected());
            // Lists hide it from them too.
            assert_eq!(view(p.clone(), role, Channel::List).place("本町1-1"), HIDDEN);
        }
    }

    #[test]
    fn after_a_measure_ends_what_it_covered_stays_hidden() {
        let events = [
            registered("本町1-1"),
            moved(2, "緑町2-2"),
            ev(3, EventBody::DvSupportStarted),
            moved(4, "桜台3-3"),
            ev(5, EventBody::DvSupportEnded),
            moved(6, "東町4-4"),
        ];
        let p = Protection::of(&events);
        assert!(!p.is_protected_at_head());
        let v = view(p.clone(), Role::Caseworker, Channel::Screen);
        assert_eq!(v.place("本町1-1"), "本町1-1", "before the measure: not covered");
        assert_eq!(v.place("緑町2-2"), HIDDEN, "in force when it started");
        assert_eq!(v.place("桜台3-3"), HIDDEN, "recorded during it");
        assert_eq!(v.place("東町4-4"), "東町4-4", "after it ended");
        assert!(v.hides_protected());
        assert!(view(p, Role::Supervisor, Channel::Screen).shows_protected());
    }

    #[test]
    fn a_destination_is_covered_like_an_address() {
        let events = [registered("本町1-1"), ev(2, EventBody::DvSupportStarted), moved_out(3, "ひみつ市")];
        let p = Protection::of(&events);
        assert_eq!(view(p, Role::Viewer, Channel::Screen).place("ひみつ市"), HIDDEN);
        // A move-out before the measure: the destination in force when it started is covered.
        let events = [
            registered("本町1-1"),
            moved_out(2, "ひみつ市"),
            ev(3, EventBody::DvSupportStarted),
            ev(4, EventBody::DvSupportEnded),
        ];
        let v = view(Protection::of(&events), Role::Viewer, Channel::Screen);
        assert_eq!(v.place("ひみつ市"), HIDDEN);
        assert_eq!(v.place("本町1-1"), HIDDEN);
    }

    #[test]
    fn a_rescinded_measure_still_protects_what_it_covered() {
        let events = [
            registered("本町1-1"),
            ev(2, EventBody::DvSupportStarted),
            ev(
                3,
                EventBody::CommandRescinded {
                    target: CommandId::parse("c2").unwrap(),
                    reason: crate::text::Note::parse("誤り").unwrap(),
                },
            ),
        ];
        let p = Protection::of(&events);
        assert!(!p.is_protected_at_head());
        assert_eq!(view(p, Role::Caseworker, Channel::Screen).place("本町1-1"), HIDDEN);
    }

    fn rescind(n: u32, target: u32) -> Event {
        ev(
            n,
            EventBody::CommandRescinded {
                target: CommandId::parse(&format!("c{target}")).unwrap(),
                reason: crate::text::Note::parse("誤り").unwrap(),
            },
        )
    }

    #[test]
    fn an_end_that_was_rescinded_never_ended_its_measure() {
        let events = [
            registered("本町1-1"),
            ev(2, EventBody::DvSupportStarted),
            ev(3, EventBody::DvSupportEnded),
            rescind(4, 3),
            moved(5, "緑町5-5"),
            ev(6, EventBody::DvSupportEnded),
        ];
        let p = Protection::of(&events);
        assert!(!p.is_protected_at_head());
        assert_eq!(view(p, Role::Caseworker, Channel::Screen).place("緑町5-5"), HIDDEN);
    }

    #[test]
    fn the_address_in_force_at_a_start_is_covered_after_rescinds_too() {
        // A change rescinded before the measure: the address in force is the first one.
        let events = [
            registered("本町1-1"),
            moved(2, "緑町2-2"),
            rescind(3, 2),
            ev(4, EventBody::DvSupportStarted),
            ev(5, EventBody::DvSupportEnded),
        ];
        let v = view(Protection::of(&events), Role::Viewer, Channel::Screen);
        assert_eq!(v.place("本町1-1"), HIDDEN);
        assert_eq!(v.place("緑町2-2"), HIDDEN);
        // A move-in rescinded before the measure: the person is away, at the destination.
        let events = [
            registered("本町1-1"),
            moved_out(2, "ひみつ市"),
            ev(
                3,
                EventBody::MovedIn {
                    address: Address::parse("桜台3-3").unwrap(),
                    from: PlaceName::parse("ひみつ市").unwrap(),
                },
            ),
            rescind(4, 3),
            ev(5, EventBody::DvSupportStarted),
            ev(6, EventBody::DvSupportEnded),
        ];
        assert_eq!(view(Protection::of(&events), Role::Viewer, Channel::Screen).place("ひみつ市"), HIDDEN);
    }

    #[test]
    fn a_place_recorded_later_but_effective_during_a_measure_is_covered() {
        let late = Event {
            command: CommandId::parse("late").unwrap(),
            effective: day(5),
            body: EventBody::PersonalDetailsChanged {
                name: None,
                kana: None,
                address: Some(Address::parse("西町9-9").unwrap()),
            },
        };
        let events =
            [registered("本町1-1"), ev(2, EventBody::DvSupportStarted), ev(10, EventBody::DvSupportEnded), late];
        let v = view(Protection::of(&events), Role::Viewer, Channel::Screen);
        assert_eq!(v.place("西町9-9"), HIDDEN);
        assert!(v.hides_protected());
    }

    #[test]
    fn my_number_is_full_only_when_revealed_by_a_permitted_role_or_in_the_feed() {
        let m = MyNumber::parse("123456789018").unwrap();
        for role in Role::ALL {
            let v = view(Protection::none(), role, Channel::Screen);
            assert_eq!(v.my_number(&m, false), m.masked());
            let full = may_reveal_my_number(role);
            assert_eq!(v.my_number(&m, true) == m.reveal(), full, "{role:?}");
            assert_eq!(view(Protection::none(), role, Channel::List).my_number(&m, true), m.masked());
        }
        assert_eq!(view(Protection::none(), Role::Viewer, Channel::PmhFeed).my_number(&m, false), m.reveal());
    }
}
