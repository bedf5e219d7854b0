//! 合成自治体 (synthetic municipality): realistic life histories for さくら市, generated from a
//! seed, for the demo and for benchmarks.
//!
//! Each recipient gets a profile (child on こども医療費, possibly 育成医療 or 養育医療; single
//! parent; adult with a disability; adult on 更生医療), a kana name, an address in the city, a
//! My Number (unique, valid check digit), and years of events: yearly renewals, mid-year
//! changes, moves within the city, move-outs, deaths, DV support measures, loss of eligibility,
//! reissues, and the occasional mistake rescinded. Commands are written as contract JSON and
//! later decided one by one; the same seed gives the same municipality.

use chrono::{Datelike, Days, NaiveDate};
use serde_json::{Value, json};

/// A small deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    /// Seeded; the same seed gives the same sequence.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[usize::try_from(self.below(items.len() as u64)).unwrap_or(0)]
    }
}

const FAMILY: [(&str, &str); 40] = [
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山田", "ヤマダ"),
    ("佐々木", "ササキ"),
    ("山口", "ヤマグチ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
    ("木村", "キムラ"),
    ("林", "ハヤシ"),
    ("斎藤", "サイトウ"),
    ("清水", "シミズ"),
    ("山崎", "ヤマザキ"),
    ("森", "モリ"),
    ("池田", "イケダ"),
    ("橋本", "ハシモト"),
    ("阿部", "アベ"),
    ("石川", "イシカワ"),
    ("山下", "ヤマシタ"),
    ("中島", "ナカジマ"),
    ("石井", "イシイ"),
    ("小川", "オガワ"),
    ("前田", "マエダ"),
    ("岡田", "オカダ"),
    ("長谷川", "ハセガワ"),
    ("藤田", "フジタ"),
    ("後藤", "ゴトウ"),
    ("近藤", "コンドウ"),
    ("村上", "ムラカミ"),
    ("遠藤", "エンドウ"),
    ("青木", "アオキ"),
    ("坂本", "サカモト"),
];
/// Variant kanji some families insist on: PMH shows them as "●" (a warning in the demo).
const FAMILY_VARIANT: [(&str, &str); 2] = [("髙橋", "タカハシ"), ("𠮷田", "ヨシダ")];
const GIVEN_MALE: [(&str, &str); 20] = [
    ("蓮", "レン"),
    ("陽翔", "ハルト"),
    ("湊", "ミナト"),
    ("蒼", "アオイ"),
    ("樹", "イツキ"),
    ("大翔", "ヒロト"),
    ("悠真", "ユウマ"),
    ("朝陽", "アサヒ"),
    ("一郎", "イチロウ"),
    ("健", "ケン"),
    ("誠", "マコト"),
    ("浩", "ヒロシ"),
    ("翔太", "ショウタ"),
    ("拓也", "タクヤ"),
    ("大輔", "ダイスケ"),
    ("直樹", "ナオキ"),
    ("修", "オサム"),
    ("茂", "シゲル"),
    ("勇気", "ユウキ"),
    ("隆", "タカシ"),
];
const GIVEN_FEMALE: [(&str, &str); 20] = [
    ("陽葵", "ヒマリ"),
    ("凛", "リン"),
    ("結菜", "ユイナ"),
    ("芽依", "メイ"),
    ("紬", "ツムギ"),
    ("葵", "アオイ"),
    ("さくら", "サクラ"),
    ("美咲", "ミサキ"),
    ("花子", "ハナコ"),
    ("恵子", "ケイコ"),
    ("由美", "ユミ"),
    ("京子", "キョウコ"),
    ("陽菜", "ヒナ"),
    ("千尋", "チヒロ"),
    ("真由美", "マユミ"),
    ("優子", "ユウコ"),
    ("久美子", "クミコ"),
    ("明美", "アケミ"),
    ("ハル", "ハル"),
    ("翔子", "ショウコ"),
];
const TOWNS: [&str; 16] = [
    "本町",
    "緑町",
    "桜台",
    "中央",
    "東町",
    "西町",
    "北町",
    "南町",
    "若葉",
    "花見川",
    "青葉台",
    "旭町",
    "栄町",
    "泉",
    "港",
    "城山",
];
const ELSEWHERE: [&str; 8] = ["横浜市", "川崎市", "千葉市", "さいたま市", "八王子市", "町田市", "府中市", "大阪市"];
const HOSPITALS: [&str; 6] =
    ["さくら市立病院", "さくら中央病院", "桜台クリニック", "緑町整形外科", "東町眼科", "さくら薬局本町店"];
const DISEASES: [&str; 5] = ["心臓機能障害", "腎臓機能障害", "肢体不自由", "視覚障害", "聴覚障害"];

/// Monthly self-pay caps used for 更生医療 and 育成医療.
const CAPS: [i64; 4] = [2500, 5000, 10000, 20000];
/// 自立支援医療's cap: a tenth of the cost, up to a monthly amount.
fn cap(yen: i64) -> serde_json::Value {
    json!({"kind": "limit", "definition": "医療費の1割", "rate_month": 10, "yen_month": yen})
}

/// Income segments.
const SEGMENTS: [&str; 4] = ["一般1", "一般2", "低所得1", "低所得2"];

/// The day the history of the synthetic municipality starts.
pub fn history_start() -> NaiveDate {
    NaiveDate::from_ymd_opt(2016, 4, 1).unwrap_or_default()
}

/// Every this many recipients, the linked My Number is corrected the next day.
const CORRECTED_EVERY: u64 = 53;
/// The correcting numbers are those of recipients this far on (no municipality has so many).
const CORRECTED_OFFSET: u64 = 50_000_000;
/// Every this many of the recipients who move out come back 60 days later.
const MOVED_BACK_EVERY: u64 = 7;

/// A valid My Number, unique for each `i`.
pub fn my_number(i: u64) -> String {
    let body = format!("{:011}", 40_000_000_000u64 + i);
    let weights = [6u32, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2];
    let sum: u32 = body.bytes().zip(weights).map(|(b, w)| u32::from(b - b'0') * w).sum();
    let r = sum % 11;
    format!("{body}{}", if r <= 1 { 0 } else { 11 - r })
}

fn add_days(d: NaiveDate, n: u64) -> NaiveDate {
    d.checked_add_days(Days::new(n)).unwrap_or(d)
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

/// The next 31 March on or after `d`.
fn fiscal_end(d: NaiveDate) -> NaiveDate {
    let this = ymd(d.year(), 3, 31);
    if d <= this { this } else { ymd(d.year() + 1, 3, 31) }
}

/// The last day a program allows for someone born on `birth` (the demo configuration's limits).
fn age_limit(program: &str, birth: NaiveDate) -> Option<NaiveDate> {
    use daicho_domain::calendar::AgeLimit;
    match program {
        "kodomo" => AgeLimit::FiscalYearEndAfter { age: 18 }.last_day(birth),
        "ikusei" => AgeLimit::UnderAge { age: 18 }.last_day(birth),
        "yoiku" => AgeLimit::UnderAge { age: 1 }.last_day(birth),
        _ => None,
    }
}

/// Payer and a valid recipient number per program.
fn numbers(program: &str, i: u64) -> (&'static str, String) {
    let checked = |i: u64| {
        let body = format!("{:06}", i % 1_000_000);
        let d: Vec<u32> = body.bytes().map(|b| u32::from(b - b'0')).collect();
        let sum: u32 = d
            .iter()
            .rev()
            .enumerate()
            .map(|(k, x)| {
                let p = x * if k % 2 == 0 { 2 } else { 1 };
                p / 10 + p % 10
            })
            .sum();
        format!("{body}{}", (10 - sum % 10) % 10)
    };
    match program {
        "kodomo" => ("88139993", format!("K{i:07}")),
        "hitorioya" => ("81139990", format!("H{i:07}")),
        "shogai" => ("80139991", format!("S{i:07}")),
        "kosei" => ("15139991", checked(i)),
        "ikusei" => ("16139990", checked(i + 500_000)),
        _ => ("23139991", checked(i + 700_000)),
    }
}

/// The command history of recipient number `i` (1-based), as contract JSON, in order. `today`
/// bounds every date; commands that the rules then refuse are simply not recorded by the loader.
pub fn history(seed: u64, i: u64, today: NaiveDate) -> Vec<Value> {
    let mut rng = Rng::new(seed ^ i.wrapping_mul(0x100_0000_01B3));
    let r = format!("D{i:07}");
    let mut out = Vec::new();
    let mut k = 0u32;
    let mut push = |mut v: Value, effective: NaiveDate, out: &mut Vec<Value>| {
        k += 1;
        let o = v.as_object_mut().unwrap_or_else(|| unreachable!("commands are objects"));
        o.insert("id".into(), json!(format!("demo-{i}-{k}")));
        let actor = ["kubo", "ono", "mori2"][usize::from(k.is_multiple_of(3)) + usize::from(k.is_multiple_of(5))];
        o.insert("actor".into(), json!(actor));
        o.insert("recipient".into(), json!(r));
        o.insert("effective".into(), json!(effective.to_string()));
        out.push(v);
    };
    // Profile.
    let roll = rng.below(100);
    let (profile, birth) = match roll {
        0..=44 => ("child", add_days(ymd(2008, 4, 2), rng.below(365 * 18))),
        45..=59 => ("single_parent", add_days(ymd(1978, 1, 1), rng.below(365 * 22))),
        60..=74 => ("disabled", add_days(ymd(1950, 1, 1), rng.below(365 * 50))),
        _ => ("kosei", add_days(ymd(1940, 1, 1), rng.below(365 * 45))),
    };
    if birth >= today {
        return out;
    }
    let male = rng.chance(50);
    let family = if rng.chance(1) { *rng.pick(&FAMILY_VARIANT) } else { *rng.pick(&FAMILY) };
    let given = if male { *rng.pick(&GIVEN_MALE) } else { *rng.pick(&GIVEN_FEMALE) };
    let name = format!("{} {}", family.0, given.0);
    let kana = format!("{} {}", family.1, given.1);
    let mut address =
        format!("さくら市{}{}-{}-{}", rng.pick(&TOWNS), 1 + rng.below(5), 1 + rng.below(30), 1 + rng.below(20));
    let sex = if male { "1" } else { "2" };
    // When the person enters the ledger.
    let earliest = history_start().max(add_days(birth, 14));
    let span_days = (today - earliest).num_days().max(1) as u64;
    let registered = add_days(earliest, rng.below(span_days * 2 / 3 + 1));
    if registered > today {
        return out;
    }
    push(
        json!({"type": "register_recipient", "name": name, "kana": kana, "birth_date": birth.to_string(), "sex": sex, "address": address}),
        registered,
        &mut out,
    );
    if rng.chance(95) {
        let on = add_days(registered, 1 + rng.below(30)).min(today);
        let record = json!({"name": name, "birth_date": birth.to_string(), "sex": sex, "address": address});
        push(
            json!({"type": "link_my_number", "my_number": my_number(i), "approver": "mori", "resident_record": record}),
            on,
            &mut out,
        );
        // Now and then a wrong number is corrected the next day (decided by the number, not
        // the generator, so every other history stays as it was).
        if i.is_multiple_of(CORRECTED_EVERY) {
            push(
                json!({"type": "link_my_number", "my_number": my_number(i + CORRECTED_OFFSET), "approver": "mori",
                       "resident_record": record}),
                add_days(on, 1).min(today),
                &mut out,
            );
        }
    }
    let programs: Vec<&str> = match profile {
        "child" => {
            let mut p = vec!["kodomo"];
            if rng.chance(4) {
                p.push("ikusei");
            }
            if (registered - birth).num_days() < 200 && rng.chance(15) {
                p.push("yoiku");
            }
            p
        }
        "single_parent" => vec!["hitorioya"],
        "disabled" => {
            if rng.chance(40) {
                vec!["shogai", "kosei"]
            } else {
                vec!["shogai"]
            }
        }
        _ => vec!["kosei"],
    };
    // Certificates, with yearly spans where the program renews.
    let mut certs: Vec<String> = Vec::new();
    for (c, program) in programs.iter().enumerate() {
        let cert = format!("{}{i:07}{c}", &program[..1].to_uppercase());
        let (payer, number) = numbers(program, i * 3 + c as u64);
        let from = add_days(registered, rng.below(20)).min(today);
        let mut grant = json!({"type": "grant_certificate", "certificate": cert, "program": program,
                               "payer_number": payer, "recipient_number": number, "valid_from": from.to_string()});
        let yearly = matches!(*program, "kodomo" | "kosei" | "hitorioya" | "ikusei");
        let mut to = if yearly { fiscal_end(from) } else { today };
        if *program == "hitorioya" {
            to = if from.month() >= 8 { ymd(from.year() + 1, 7, 31) } else { ymd(from.year(), 7, 31) };
        }
        if let Some(limit) = age_limit(program, birth) {
            if from > limit {
                continue;
            }
            to = to.min(limit);
        }
        if yearly {
            grant["valid_to"] = json!(to.to_string());
        }
        let mut cap_index = rng.below(4);
        let mut segment_index = rng.below(4);
        if *program == "kosei" || *program == "ikusei" {
            let yen = CAPS[usize::try_from(cap_index).unwrap_or(0)];
            let segment = SEGMENTS[usize::try_from(segment_index).unwrap_or(0)];
            grant["copay_cap"] = cap(yen);
            grant["income_segment"] = json!(segment);
            grant["designated_institutions"] = json!([rng.pick(&HOSPITALS)]);
            grant["disease"] = json!(rng.pick(&DISEASES));
        }
        if *program == "shogai" && rng.chance(10) {
            grant["always_reimbursement"] = json!(true);
        }
        push(grant, from, &mut out);
        certs.push(cert.clone());
        if !yearly {
            continue;
        }
        // Renewals, decided a few weeks ahead, until today or the age limit refuses them.
        let mut renewals = 0;
        while to < today && renewals < 12 {
            let next_from = add_days(to, 1);
            let mut next_to = if *program == "hitorioya" {
                ymd(next_from.year() + 1, 7, 31)
            } else {
                ymd(next_from.year() + 1, 3, 31)
            };
            if let Some(limit) = age_limit(program, birth) {
                if next_from > limit {
                    break;
                }
                next_to = next_to.min(limit);
            }
            // Decided a few weeks ahead, but never before the certificate itself was granted.
            let decided =
                next_from.checked_sub_days(Days::new(10 + rng.below(20))).unwrap_or(next_from).max(from).min(today);
            let mut renew = json!({"type": "renew_certificate", "certificate": cert, "valid_from": next_from.to_string(), "valid_to": next_to.to_string()});
            if (*program == "kosei" || *program == "ikusei") && rng.chance(30) {
                segment_index = (segment_index + 1 + rng.below(3)) % 4;
                renew["income_segment"] = json!(SEGMENTS[usize::try_from(segment_index).unwrap_or(0)]);
            }
            push(renew, decided, &mut out);
            // A change of cap and income segment in the middle of some years.
            if (*program == "kosei" || *program == "ikusei") && rng.chance(20) {
                let mid = add_days(next_from, 60 + rng.below(200));
                if mid < today && mid < next_to {
                    // Always a real change: another cap than the current one.
                    cap_index = (cap_index + 1 + rng.below(3)) % 4;
                    segment_index = (segment_index + 1 + rng.below(3)) % 4;
                    let yen = CAPS[usize::try_from(cap_index).unwrap_or(0)];
                    let segment = SEGMENTS[usize::try_from(segment_index).unwrap_or(0)];
                    push(
                        json!({"type": "change_certificate", "certificate": cert, "income_segment": segment,
                               "copay_cap": cap(yen)}),
                        mid,
                        &mut out,
                    );
                }
            }
            to = next_to;
            renewals += 1;
        }
    }
    // Life events after the certificates.
    let mut when = add_days(registered, 30 + rng.below(365));
    if when < today && rng.chance(12) {
        let before = address.clone();
        while address == before {
            address =
                format!("さくら市{}{}-{}-{}", rng.pick(&TOWNS), 1 + rng.below(5), 1 + rng.below(30), 1 + rng.below(20));
        }
        push(json!({"type": "change_personal_details", "address": address}), when, &mut out);
        when = add_days(when, 30 + rng.below(200));
    }
    if when < today
        && rng.chance(4)
        && let Some(cert) = certs.first()
    {
        push(json!({"type": "reissue_certificate", "certificate": cert, "reason": "lost"}), today, &mut out);
    }
    if when < today && rng.chance(1) {
        // A mistaken address change, rescinded the next day.
        let id = format!("demo-{i}-{}", out.len() + 1);
        push(json!({"type": "change_personal_details", "address": "さくら市本町99-99"}), when, &mut out);
        push(
            json!({"type": "rescind", "target": id, "reason": "別の受給者の届出を誤って入力"}),
            add_days(when, 1).min(today),
            &mut out,
        );
        when = add_days(when, 10);
    }
    if when < today && rng.chance(1) {
        push(json!({"type": "start_dv_support"}), when, &mut out);
        let end = add_days(when, 100 + rng.below(600));
        if end < today && rng.chance(50) {
            push(json!({"type": "end_dv_support"}), end, &mut out);
        }
    }
    if profile == "single_parent"
        && when < today
        && rng.chance(3)
        && let Some(cert) = certs.first()
    {
        push(json!({"type": "end_certificate", "certificate": cert, "reason": "income"}), when, &mut out);
    }
    let late = add_days(when, rng.below(900));
    if late < today {
        if (profile == "kosei" || profile == "disabled") && rng.chance(3) {
            push(json!({"type": "record_death"}), late, &mut out);
        } else if rng.chance(3) {
            let to = rng.pick(&ELSEWHERE);
            push(json!({"type": "move_out", "to": to}), late, &mut out);
            // Some come back (again decided by the number).
            let back = add_days(late, 60);
            if i.is_multiple_of(MOVED_BACK_EVERY) && back < today {
                push(json!({"type": "move_in", "address": address, "from": to}), back, &mut out);
            }
        }
    }
    out
}
