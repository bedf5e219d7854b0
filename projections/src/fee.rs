//! 運営費明細 (the monthly PMH operating-fee statement), computed from the register.
//!
//! The register keeps, per history record, its **fee history** (one `V` value per recipient,
//! by span): what the record's
//! fee-relevant content (program, certificate, payer number, span) was from each log position
//! on, whether it was withdrawn (the span no longer exists), and the position of the batch that
//! first sent it to PMH. So a statement can be computed as the ledger knew things at any
//! position, which is what makes a closed month reproducible byte for byte.
//!
//! A record counts at position P when PMH had been sent it in a batch at or before P and the
//! ledger, at P, still has it (not withdrawn): its span as known at P decides the months it
//! overlaps. Which persons then count in a month is `daicho_domain::billing`'s [`Policy`].
//!
//! Adjustments (調整): when every charged month before the statement's month is closed, the
//! statement compares each closed month as known at the last close with the same month as
//! known now; every person whose count changed gets an adjustment line naming the closed month,
//! the reason and the source event. Only persons with a fee-history entry after the last close
//! are compared, so the cost follows the changes, not the register.

use std::collections::BTreeMap;
use std::io::Write;

use daicho_domain::billing::{FeeRecord, FeeSchedule, Month, Policy, count_person, units_of};
use daicho_domain::codec::{MonthClosed, date_to_days, days_to_date};
use daicho_domain::config::Config;
use daicho_domain::text::spreadsheet_safe;
use serde::{Deserialize, Serialize};

use crate::pmh::CsvWriter;
use crate::query::Reader;
use crate::register::Fees;
use crate::{ProjectionError, keys};

/// One step of a record's fee history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum FeeVersion {
    /// From this position on, the record is this (dates as days since 1970-01-01).
    Content { program: String, certificate: String, payer: Option<String>, from: i32, to: i32 },
    /// From this position on, the record no longer exists (withdrawn).
    Removed,
    /// At this position a batch first sent the record to PMH.
    Exported,
    /// At this position a full replacement, uploaded on the day `on` (days since 1970-01-01), left
    /// the record out (held back): PMH had it until the day before, and no longer has it, though
    /// the ledger does. A later `Exported` sends it again.
    Unexported { on: i32 },
    /// At this position PMH's results said it refused the record that the `Exported` at
    /// position `exported_at` (the batch that first sent it) recorded: that one never happened.
    Refused { exported_at: u64 },
}

impl FeeVersion {
    /// The version of the record of `span`: its program, certificate, payer number and period
    /// (taken from the certificate, without making the record).
    pub(crate) fn of_span(cert: &daicho_domain::state::Certificate, span: &daicho_domain::state::Span) -> FeeVersion {
        FeeVersion::Content {
            program: cert.program.to_string(),
            certificate: cert.id.to_string(),
            payer: span.terms.payer_number.map(|p| p.as_string()),
            from: date_to_days(span.period.from()),
            to: date_to_days(span.period.end()),
        }
    }
}

pub(crate) type FeeHistory = Vec<(u64, FeeVersion)>;

pub(crate) fn fees_bytes(h: &Fees) -> Result<Vec<u8>, ProjectionError> {
    bincode::serde::encode_to_vec(h, bincode::config::standard())
        .map(|raw| crate::packed::pack(&raw))
        .map_err(|e| ProjectionError::Corrupt(e.to_string()))
}

pub(crate) fn fees_from(bytes: &[u8]) -> Result<Fees, ProjectionError> {
    bincode::serde::decode_from_slice(&crate::packed::unpack(bytes)?, bincode::config::standard())
        .map(|(h, _)| h)
        .map_err(|e| ProjectionError::Corrupt(e.to_string()))
}

/// The records of one person that count at position `at`.
fn records_at(spans: &[(u32, FeeHistory)], at: u64) -> Vec<FeeRecord<'_>> {
    let mut out = Vec::new();
    for (span, history) in spans {
        // Exports PMH's results undid (as known at `at`).
        let void: Vec<u64> = history
            .iter()
            .filter(|(p, _)| *p <= at)
            .filter_map(|(_, v)| match v {
                FeeVersion::Refused { exported_at } => Some(*exported_at),
                _ => None,
            })
            .collect();
        let mut content = None;
        let mut exported = false;
        // PMH stopped having it on this day (a full replacement held it back): it counts until
        // the day before, for the months PMH did have it.
        let mut until: Option<i32> = None;
        for (position, version) in history {
            if *position > at {
                break;
            }
            match version {
                FeeVersion::Content { .. } => content = Some(version),
                FeeVersion::Removed => content = None,
                FeeVersion::Exported if void.contains(position) => {}
                FeeVersion::Exported => {
                    exported = true;
                    until = None;
                }
                FeeVersion::Unexported { on } => until = Some(*on - 1),
                FeeVersion::Refused { .. } => {}
            }
        }
        if let (true, Some(FeeVersion::Content { program, certificate, payer, from, to })) = (exported, content) {
            let to = until.map_or(*to, |u| u.min(*to));
            if to < *from {
                continue;
            }
            let (Ok(from), Ok(to)) = (days_to_date(*from), days_to_date(to)) else { continue };
            out.push(FeeRecord { span: *span, program, certificate, payer_number: payer.as_deref(), from, to });
        }
    }
    out
}

/// Whether a statement is a draft or the closed (final) one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 試算: may still change.
    Draft,
    /// 確定: the month is (being) closed at this position.
    Closed,
}

/// What a statement is computed from: the log as known at `position`.
pub struct Basis<'a> {
    /// The month billed.
    pub month: Month,
    /// The counting policy billed.
    pub policy: Policy,
    /// Draft or closed.
    pub status: Status,
    /// The log position.
    pub position: u64,
    /// The chain hash at `position` (hex).
    pub chain_head: String,
    /// When `position` was recorded, microseconds since the Unix epoch.
    pub recorded_at_us: i64,
    /// The configuration in force at `position`.
    pub config: &'a Config,
    /// The fee schedule as recorded up to `position`.
    pub schedule: &'a FeeSchedule,
    /// Months closed at `position`.
    pub closed: &'a BTreeMap<Month, MonthClosed>,
}

/// One row of the summary: a program, payer number and department.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SummaryRow {
    pub program: String,
    pub program_name: String,
    pub payer_number: String,
    pub department: String,
    pub units: u64,
    pub yen: u64,
}

/// An adjustment for a closed month.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Adjustment {
    /// The closed month adjusted.
    pub closed_month: String,
    /// Internal recipient number.
    pub recipient: u64,
    pub program: String,
    pub payer_number: String,
    pub department: String,
    /// Change of units under the closed month's policy.
    pub units: i64,
    pub unit_yen: u32,
    pub yen: i64,
    /// Change under each policy (persons-overlapping, persons-month-end, certificates-overlapping).
    pub by_policy: [i64; 3],
    /// Why, in Japanese.
    pub reason: String,
    /// The latest event that changed the person's records since the last close.
    pub source_position: u64,
    pub source_event: String,
}

/// One month of the trend chart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TrendPoint {
    pub month: String,
    pub units: u64,
    pub yen: u64,
    /// From a closed month's record (as billed) rather than computed.
    pub closed: bool,
}

/// A computed statement (everything but the current month's detail lines, which stream).
#[derive(Clone, Debug, Serialize)]
pub struct Statement {
    pub format: &'static str,
    pub month: String,
    pub status: Status,
    pub policy: &'static str,
    pub policy_label: &'static str,
    pub position: u64,
    pub chain_head: String,
    pub recorded_at_us: i64,
    pub municipality: String,
    pub fee_schedule: Vec<(String, u32)>,
    /// The month's unit price; `None`: before the first schedule entry, nothing is charged.
    pub unit_yen: Option<u32>,
    /// Units of the month under each policy, by policy name, in [`Policy::ALL`] order.
    pub counts: Vec<(&'static str, u64)>,
    pub units: u64,
    pub month_yen: u64,
    pub summary: Vec<SummaryRow>,
    pub detail_lines: u64,
    pub adjustments: Vec<Adjustment>,
    /// Why no adjustments are carried, if so.
    pub adjustment_note: Option<String>,
    pub adjustment_yen: i64,
    pub total_yen: i64,
    pub trend: Vec<TrendPoint>,
}

/// The header of the detail CSV.
pub const DETAIL_HEADER: [&str; 17] = [
    "区分",
    "対象月",
    "受給者内部番号",
    "制度",
    "制度名",
    "公費負担者番号",
    "実施主体担当課",
    "計上数",
    "単価(円)",
    "金額(円)",
    "計上理由",
    "履歴キー",
    "原因事象の位置",
    "原因事象",
    "増減_実人数_月内",
    "増減_実人数_月末",
    "増減_受給者証数",
];

fn policy_index(p: Policy) -> usize {
    Policy::ALL.iter().position(|x| *x == p).unwrap_or(0)
}

/// A person's fee history, grouped from the scan.
struct Person {
    n: u64,
    spans: Vec<(u32, FeeHistory)>,
}

/// Japanese for what a source event did, for adjustment lines.
pub fn reason_of(event_type: &str) -> &'static str {
    match event_type {
        "died" => "死亡の届出（締め後に記録）",
        "moved_out" => "転出（締め後に記録）",
        "moved_in" => "転入（締め後に記録）",
        "command_rescinded" => "取消（締め後に記録）",
        "certificate_ended" => "資格喪失（締め後に記録）",
        "certificate_changed" => "受給者証の変更（締め後に記録）",
        "certificate_granted" => "認定（締め後に記録）",
        "certificate_renewed" => "更新（締め後に記録）",
        "pmh_batch_exported" => "締め後にPMHへ初めて送信された履歴",
        _ => "締め後の記録による変更",
    }
}

impl Reader {
    /// The position the register has applied up to (everything at or before it is in the
    /// fee histories; later entries are ignored by a statement at it).
    pub fn applied_position(&self) -> Result<u64, ProjectionError> {
        Ok(self.db.get(keys::CHECKPOINT)?.and_then(|v| keys::u64_at(&v, 0)).unwrap_or(0))
    }

    /// Computes the statement of `basis.month`, writing its detail CSV (the month's lines, then
    /// the adjustment lines) to `detail`. `source` names the event type at a position (for
    /// adjustment lines).
    pub fn fee_statement<W: Write>(
        &self,
        basis: &Basis<'_>,
        detail: W,
        source: &dyn Fn(u64) -> String,
    ) -> Result<(Statement, W), ProjectionError> {
        let month = basis.month;
        let at = basis.position;
        let io = |e: std::io::Error| ProjectionError::Db(format!("statement: {e}"));
        let unit = basis.schedule.unit_for(month);
        // Adjustments of a closed month go to the first month after it that is not closed (its
        // "next open month"): they compare the closed month as known at the latest close among
        // the months from it up to this one, with now.
        let mut targets: Vec<(Month, &MonthClosed, u64)> = Vec::new();
        let mut elsewhere: BTreeMap<Month, Vec<Month>> = BTreeMap::new();
        for (c, closed) in basis.closed.range(..month) {
            let mut next = c.next();
            let mut q = closed.position;
            while let Some(later) = basis.closed.get(&next) {
                q = q.max(later.position);
                next = next.next();
            }
            if next == month {
                targets.push((*c, closed, q));
            } else if next < month {
                elsewhere.entry(next).or_default().push(*c);
            }
        }
        let adjustment_note = (!elsewhere.is_empty()).then(|| {
            elsewhere
                .iter()
                .map(|(open, closed)| {
                    let closed: Vec<String> = closed.iter().map(|m| m.label_ja()).collect();
                    format!("{}の調整は、未締めの{}の明細に計上します", closed.join("・"), open.label_ja())
                })
                .collect::<Vec<_>>()
                .join("。")
        });
        let compare_from = targets.iter().map(|(_, _, q)| *q).min();
        // Trend: the 12 months ending with this one.
        let mut trend_months = vec![month];
        for _ in 0..11 {
            let m = trend_months.last().copied().unwrap_or(month).prev();
            trend_months.push(m);
        }
        trend_months.reverse();
        let mut trend_units = vec![0u64; trend_months.len()];
        let mut counts = [0u64; 3];
        // Units by program, then payer number (the department follows from the program).
        let mut summary: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut adjustments: Vec<(Adjustment, u64)> = Vec::new();
        let mut csv = CsvWriter::new(detail).map_err(io)?;
        csv.row(&DETAIL_HEADER).map_err(io)?;
        let mut detail_lines = 0u64;
        let unit_text = unit.map(|u| u.to_string()).unwrap_or_default();
        let month_text = month.to_string();
        // Program name and 実施主体 department by program key; a key the configuration no longer
        // has (a program removed since) gets empty ones.
        let programs: BTreeMap<&str, (&str, &str)> = basis
            .config
            .programs()
            .iter()
            .map(|p| (p.key.as_str(), (p.name.as_str(), p.department.as_deref().unwrap_or_default())))
            .collect();
        let department = |program: &str| -> (&str, &str) { programs.get(program).copied().unwrap_or_default() };

        let mut handle = |person: &Person, csv: &mut CsvWriter<W>| -> Result<(), ProjectionError> {
            let now = records_at(&person.spans, at);
            if !now.is_empty() {
                for (i, m) in trend_months.iter().enumerate() {
                    trend_units[i] += u64::from(units_of(&now, *m, basis.policy));
                }
                for (i, p) in Policy::ALL.iter().enumerate() {
                    counts[i] += u64::from(units_of(&now, month, *p));
                }
                for line in count_person(&now, month, basis.policy) {
                    let (name, dept) = department(&line.program);
                    // Free text of the configuration, for people's spreadsheets; codes as they are.
                    let (name, dept) = (spreadsheet_safe(name), spreadsheet_safe(dept));
                    let payer = line.payer_number.as_deref().unwrap_or_default();
                    let by_payer = match summary.get_mut(line.program.as_str()) {
                        Some(m) => m,
                        None => summary.entry(line.program.clone()).or_default(),
                    };
                    match by_payer.get_mut(payer) {
                        Some(u) => *u += u64::from(line.units),
                        None => {
                            by_payer.insert(payer.to_owned(), u64::from(line.units));
                        }
                    }
                    let yen = u64::from(line.units) * u64::from(unit.unwrap_or(0));
                    let reason = match (&line.charged_to, basis.policy) {
                        (Some(other), _) => format!("他の制度（{other}）で計上"),
                        (None, Policy::PersonsOverlapping) => "月内に有効な履歴あり".to_owned(),
                        (None, Policy::PersonsMonthEnd) => "月末日に有効な履歴あり".to_owned(),
                        (None, Policy::CertificatesOverlapping) => format!("月内に有効な受給者証 {}件", line.units),
                    };
                    let keys: Vec<String> = line.spans.iter().map(|s| format!("R{}S{s}", person.n)).collect();
                    csv.row(&[
                        "当月",
                        &month_text,
                        &person.n.to_string(),
                        &line.program,
                        &name,
                        payer,
                        &dept,
                        &line.units.to_string(),
                        &unit_text,
                        &yen.to_string(),
                        &reason,
                        &keys.join(";"),
                        "",
                        "",
                        "",
                        "",
                        "",
                    ])
                    .map_err(io)?;
                    detail_lines += 1;
                }
            }
            let Some(min_q) = compare_from else { return Ok(()) };
            let changed_at = person
                .spans
                .iter()
                .flat_map(|(_, h)| h.iter().map(|(p, _)| *p))
                .filter(|p| *p > min_q && *p <= at)
                .max();
            let Some(source_position) = changed_at else { return Ok(()) };
            for (c, closed, q) in &targets {
                let then = records_at(&person.spans, *q);
                let by_policy: [i64; 3] =
                    Policy::ALL.map(|p| i64::from(units_of(&now, *c, p)) - i64::from(units_of(&then, *c, p)));
                let lines_now = count_person(&now, *c, closed.policy);
                let lines_then = count_person(&then, *c, closed.policy);
                let mut programs: BTreeMap<String, (i64, Option<String>)> = BTreeMap::new();
                for l in &lines_now {
                    let e = programs.entry(l.program.clone()).or_default();
                    e.0 += i64::from(l.units);
                    e.1.clone_from(&l.payer_number);
                }
                for l in &lines_then {
                    let e = programs.entry(l.program.clone()).or_default();
                    e.0 -= i64::from(l.units);
                    if e.1.is_none() {
                        e.1.clone_from(&l.payer_number);
                    }
                }
                let mut changed: Vec<(String, i64, Option<String>)> = programs
                    .iter()
                    .filter(|(_, (d, _))| *d != 0)
                    .map(|(p, (d, y))| (p.clone(), *d, y.clone()))
                    .collect();
                if changed.is_empty() {
                    if by_policy.iter().all(|d| *d == 0) {
                        continue;
                    }
                    // The billed count did not change, another policy's did: one line saying so.
                    let first = programs.iter().next().map(|(p, (_, y))| (p.clone(), 0, y.clone())).or_else(|| {
                        now.iter()
                            .chain(&then)
                            .next()
                            .map(|r| (r.program.to_owned(), 0, r.payer_number.map(str::to_owned)))
                    });
                    changed.extend(first);
                }
                for (i, (program, units, payer)) in changed.into_iter().enumerate() {
                    let dept = department(&program).1.to_owned();
                    adjustments.push((
                        Adjustment {
                            closed_month: c.to_string(),
                            recipient: person.n,
                            program,
                            payer_number: payer.unwrap_or_default(),
                            department: dept,
                            units,
                            unit_yen: closed.unit_yen,
                            yen: units * i64::from(closed.unit_yen),
                            by_policy: if i == 0 { by_policy } else { [0; 3] },
                            reason: String::new(),
                            source_position,
                            source_event: String::new(),
                        },
                        source_position,
                    ));
                }
            }
            Ok(())
        };

        self.db.warming(keys::FEE, || -> Result<(), ProjectionError> {
            for item in self.db.view()?.scan_prefix(&[keys::FEE])? {
                let (key, value) = item?;
                let Some(n) = keys::tail_recipient(&key) else { continue };
                let person = Person { n, spans: fees_from(&value)?.into_iter().collect() };
                handle(&person, &mut csv)?;
            }
            Ok(())
        })?;

        // Adjustment lines after the month's lines, with their source events named.
        let mut adjustment_list = Vec::with_capacity(adjustments.len());
        for (mut a, position) in adjustments {
            let event = source(position);
            a.reason = reason_of(&event).to_owned();
            a.source_event = event;
            let name = spreadsheet_safe(department(&a.program).0);
            let adjusted_department = spreadsheet_safe(&a.department);
            csv.row(&[
                "調整",
                &a.closed_month,
                &a.recipient.to_string(),
                &a.program,
                &name,
                &a.payer_number,
                &adjusted_department,
                &a.units.to_string(),
                &a.unit_yen.to_string(),
                &a.yen.to_string(),
                &a.reason,
                "",
                &a.source_position.to_string(),
                &a.source_event,
                &a.by_policy[0].to_string(),
                &a.by_policy[1].to_string(),
                &a.by_policy[2].to_string(),
            ])
            .map_err(io)?;
            adjustment_list.push(a);
        }
        let detail = csv.finish();

        let units = counts[policy_index(basis.policy)];
        let month_yen = units * u64::from(unit.unwrap_or(0));
        let adjustment_yen: i64 = adjustment_list.iter().map(|a| a.yen).sum();
        let summary: Vec<SummaryRow> = summary
            .into_iter()
            .flat_map(|(program, by_payer)| {
                by_payer.into_iter().map(move |(payer, units)| (program.clone(), payer, units))
            })
            .filter(|(_, _, u)| *u > 0)
            .map(|(program, payer_number, units)| {
                let (name, dept) = department(&program);
                SummaryRow {
                    program_name: name.to_owned(),
                    department: dept.to_owned(),
                    program,
                    payer_number,
                    units,
                    yen: units * u64::from(unit.unwrap_or(0)),
                }
            })
            .collect();
        let trend = trend_months
            .iter()
            .zip(trend_units)
            .map(|(m, computed)| match basis.closed.get(m) {
                Some(c) => TrendPoint {
                    month: m.to_string(),
                    units: c.counts[policy_index(c.policy)],
                    yen: c.month_yen,
                    closed: true,
                },
                None => TrendPoint {
                    month: m.to_string(),
                    units: computed,
                    yen: computed * u64::from(basis.schedule.unit_for(*m).unwrap_or(0)),
                    closed: false,
                },
            })
            .collect();
        let statement = Statement {
            format: "daicho-fee-statement-1",
            month: month.to_string(),
            status: basis.status,
            policy: basis.policy.code(),
            policy_label: basis.policy.label_ja(),
            position: at,
            chain_head: basis.chain_head.clone(),
            recorded_at_us: basis.recorded_at_us,
            municipality: basis.config.municipality.name.clone(),
            fee_schedule: basis.schedule.entries().map(|(m, y)| (m.to_string(), y)).collect(),
            unit_yen: unit,
            counts: Policy::ALL.iter().map(|p| p.code()).zip(counts).collect(),
            units,
            month_yen,
            summary,
            detail_lines,
            adjustments: adjustment_list,
            adjustment_note,
            adjustment_yen,
            total_yen: i64::try_from(month_yen).unwrap_or(i64::MAX) + adjustment_yen,
            trend,
        };
        Ok((statement, detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use daicho_domain::codec::date_to_days;

    fn day(s: &str) -> i32 {
        date_to_days(s.parse().unwrap_or_default())
    }

    fn content() -> FeeVersion {
        FeeVersion::Content {
            program: "kosei".into(),
            certificate: "J1".into(),
            payer: None,
            from: day("2026-04-01"),
            to: day("2027-03-31"),
        }
    }

    fn counted(history: FeeHistory, at: u64) -> Option<(NaiveDate, NaiveDate)> {
        let spans = vec![(1, history)];
        records_at(&spans, at).first().map(|r| (r.from, r.to))
    }

    #[test]
    fn a_refusal_undoes_only_the_export_it_names() {
        let first = vec![(1, content()), (10, FeeVersion::Exported)];
        assert!(counted(first.clone(), 10).is_some());
        // PMH refused what batch 10 first sent: never counted, as known from the refusal on.
        let mut refused = first.clone();
        refused.push((20, FeeVersion::Refused { exported_at: 10 }));
        assert_eq!(counted(refused.clone(), 20), None);
        assert!(counted(refused.clone(), 19).is_some(), "a statement made before the refusal stays as it was");
        // Sent again and accepted: counted again.
        refused.push((30, FeeVersion::Exported));
        assert!(counted(refused, 30).is_some());
        // Sent by batch 10, dropped by a replacement on 2026-09-01, sent again by batch 40 and
        // refused: the months PMH did have it still count, up to the day before the replacement.
        let mut history = first;
        history.push((25, FeeVersion::Unexported { on: day("2026-09-01") }));
        history.push((40, FeeVersion::Exported));
        history.push((50, FeeVersion::Refused { exported_at: 40 }));
        let until = "2026-08-31".parse().ok();
        assert_eq!(counted(history.clone(), 50).map(|(_, to)| to), until);
        assert_eq!(counted(history, 45).map(|(_, to)| to), "2027-03-31".parse().ok(), "before the refusal");
    }
}
