//! The bad-input table: every field of every command form, given invalid values of each kind
//! that applies to it (empty, too long, wrong digits, wrong check digit, impossible dates, HTML
//! and script fragments, control characters, half-width kana, characters outside JIS X 0213).
//! Each must come back as a field error next to that field (or, where the rule says warning, a
//! warning on the confirmation page), and the log head must not move.
//!
//! The fields are read from the rendered forms, so a field added later is tested without
//! touching this table; a field this table cannot classify fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use daicho_tests::web::{Fixture, Server, fixture, make_ledger};
use daicho_web::Settings;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// A field error next to the field, nothing recorded.
    Error,
    /// The confirmation page with a "●" warning.
    Warning,
    /// The confirmation page, no warning (the value is valid for this field).
    Fine,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Category {
    Empty,
    TooLong,
    WrongDigits,
    WrongCheckDigit,
    ImpossibleDate,
    Markup,
    Control,
    HalfWidthKana,
    OutsideJis,
    /// A leading `=`: a spreadsheet would run it (CSV injection).
    Formula,
}

const CATEGORIES: [Category; 10] = [
    Category::Empty,
    Category::TooLong,
    Category::WrongDigits,
    Category::WrongCheckDigit,
    Category::ImpossibleDate,
    Category::Markup,
    Category::Control,
    Category::HalfWidthKana,
    Category::OutsideJis,
    Category::Formula,
];

/// What a field holds, decided by its name (and its form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// 宛名番号, 受給者証ID: `A-Za-z0-9._-`.
    Ident,
    /// A name or address sent to PMH: outside JIS X 0213 is a warning.
    PmhText,
    /// A name or address compared with the ledger (resident record): anything else mismatches.
    Resident,
    /// 氏名カナ.
    Kana,
    /// A municipality name or a note: free text kept in the ledger only.
    Free,
    MyNumber,
    PayerNumber,
    RecipientNumber,
    Yen,
    /// 負担率: whole percent, 0 to 100.
    Rate,
    Date,
    Select,
    Checkbox,
}

fn class(form: &str, field: &str, kind: &str) -> Option<Class> {
    Some(match (field, kind) {
        (_, "date") => Class::Date,
        (_, "select") => Class::Select,
        (_, "checkbox") => Class::Checkbox,
        ("recipient" | "certificate", "text") => Class::Ident,
        ("name" | "address", _) if form != "link_my_number" => Class::PmhText,
        ("income_segment" | "disease" | "designated_institutions", _) => Class::PmhText,
        ("resident_name" | "resident_address", _) => Class::Resident,
        ("kana", _) => Class::Kana,
        ("from" | "to" | "reason", "text") => Class::Free,
        ("my_number", _) => Class::MyNumber,
        ("payer_number", _) => Class::PayerNumber,
        ("recipient_number", _) => Class::RecipientNumber,
        (n, _) if n.starts_with("copay_yen_") => Class::Yen,
        (n, _) if n.starts_with("copay_rate_") => Class::Rate,
        ("copay_definition", _) => Class::PmhText,
        _ => return None,
    })
}

/// The bad value of a category for a field, and what must happen; `None`: not applicable.
fn case(class: Class, cat: Category, required: bool, maxlength: usize) -> Option<(String, Expect)> {
    use Category as C;
    use Class as K;
    use Expect::{Error, Fine, Warning};
    let long_text = |c: &str| c.repeat(maxlength.max(1) + 1);
    Some(match (cat, class) {
        (C::Empty, K::Checkbox) => return None,
        (C::Empty, _) if required => (String::new(), Error),
        (C::Empty, _) => return None,
        (C::TooLong, K::Checkbox) => return None,
        (C::TooLong, K::Date) => ("2026-11-200".into(), Error),
        (C::TooLong, K::Select) => ("a".repeat(200), Error),
        (C::TooLong, K::Ident) => ("a".repeat(65), Error),
        (C::TooLong, K::Kana) => (long_text("ア"), Error),
        (C::TooLong, K::MyNumber | K::PayerNumber | K::RecipientNumber | K::Yen) => (long_text("1"), Error),
        (C::TooLong, K::PmhText | K::Resident | K::Free) => (long_text("あ"), Error),
        (C::WrongDigits, K::MyNumber) => ("12345678901a".into(), Error),
        (C::WrongDigits, K::PayerNumber) => ("1513999a".into(), Error),
        (C::WrongDigits, K::RecipientNumber) => ("12345a6".into(), Error),
        (C::WrongDigits, K::Yen) => ("千円".into(), Error),
        (C::WrongDigits, K::Rate) => ("二割".into(), Error),
        (C::TooLong, K::Rate) => ("101".into(), Error),
        (C::WrongDigits, _) => return None,
        (C::WrongCheckDigit, K::MyNumber) => ("123456789012".into(), Error),
        (C::WrongCheckDigit, K::PayerNumber) => ("15139992".into(), Error),
        (C::WrongCheckDigit, K::RecipientNumber) => ("1234567".into(), Error),
        (C::WrongCheckDigit, _) => return None,
        (C::ImpossibleDate, K::Date) => ("2026-02-30".into(), Error),
        (C::ImpossibleDate, _) => return None,
        (C::Markup, K::Checkbox) => ("<b>on</b>".into(), Error),
        (C::Markup, _) => ("<script>alert(1)</script>".into(), Error),
        (C::Control, K::Checkbox) => ("on\u{7}".into(), Error),
        (C::Control, K::MyNumber | K::PayerNumber | K::RecipientNumber | K::Yen | K::Rate | K::Date) => {
            ("1234\u{7}5678".into(), Error)
        }
        (C::Control, _) => ("山田\u{7}太郎".into(), Error),
        (C::HalfWidthKana | C::OutsideJis, K::PmhText) => (sample(cat), Warning),
        (C::HalfWidthKana | C::OutsideJis, K::Free) => (sample(cat), Fine),
        (C::HalfWidthKana | C::OutsideJis, K::Checkbox) => (sample(cat), Error),
        (C::HalfWidthKana | C::OutsideJis, _) => (sample(cat), Error),
        (C::Formula, K::PmhText | K::Resident | K::Free) => ("=1+2".into(), Error),
        (C::Formula, _) => return None,
    })
}

fn sample(cat: Category) -> String {
    match cat {
        Category::HalfWidthKana => "ﾔﾏﾀﾞ".into(),
        Category::Formula => "=1+2".into(),
        _ => "髙橋𠮷".into(),
    }
}

/// A field as rendered: name, kind, required, maxlength.
#[derive(Debug)]
struct FieldInfo {
    name: String,
    kind: String,
    required: bool,
    maxlength: usize,
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    Some(tag[start..start + tag[start..].find('"')?].to_owned())
}

/// The fields of the command form in `html`.
fn fields(html: &str) -> Vec<FieldInfo> {
    let form = &html[html.find("class=\"stack command\"").unwrap_or(0)..];
    let form = &form[..form.find("</form>").unwrap_or(form.len())];
    let mut out = Vec::new();
    for (i, _) in form.match_indices('<') {
        let tag = &form[i..i + form[i..].find('>').unwrap_or(0)];
        let kind = if tag.starts_with("<input") && attr(tag, "data-date").is_some() {
            // A date is typed as text (和暦 or ISO) and marked for the calendar.
            "date".into()
        } else if tag.starts_with("<input") {
            attr(tag, "type").unwrap_or_else(|| "text".into())
        } else if tag.starts_with("<select") {
            "select".into()
        } else if tag.starts_with("<textarea") {
            "textarea".into()
        } else {
            continue;
        };
        let Some(name) = attr(tag, "name") else { continue };
        if kind == "hidden" {
            continue;
        }
        let label_start = form.find(&format!("for=\"f-{name}\"")).unwrap_or(0);
        let label = &form[label_start..label_start + form[label_start..].find("</label>").unwrap_or(0)];
        out.push(FieldInfo {
            required: label.contains("必須"),
            maxlength: attr(tag, "maxlength")
                .or_else(|| attr(tag, "data-line-maxlength"))
                .and_then(|m| m.parse().ok())
                .unwrap_or(0),
            name,
            kind,
        });
    }
    out
}

struct FormCase {
    kind: &'static str,
    /// The recipient (None: registration).
    recipient: fn(&Fixture) -> Option<u64>,
    /// A valid submission.
    baseline: &'static [(&'static str, &'static str)],
}

const CASES: &[FormCase] = &[
    FormCase {
        kind: "register_recipient",
        recipient: |_| None,
        baseline: &[
            ("recipient", "WEB-NEW"),
            ("effective", "2026-11-20"),
            ("name", "佐藤 花子"),
            ("kana", "サトウ ハナコ"),
            ("birth_date", "1990-01-01"),
            ("sex", "2"),
            ("address", "さくら市中町2-2-2"),
        ],
    },
    FormCase {
        kind: "link_my_number",
        recipient: |f| Some(f.a),
        baseline: &[
            ("effective", "2026-11-20"),
            ("my_number", "123456789018"),
            ("resident_name", "山田 太郎"),
            ("resident_birth_date", "1980-05-05"),
            ("resident_sex", "1"),
            ("resident_address", "さくら市本町1-1-1"),
        ],
    },
    FormCase {
        kind: "change_personal_details",
        recipient: |f| Some(f.a),
        baseline: &[
            ("effective", "2026-11-20"),
            ("name", "山田 次郎"),
            ("kana", "ヤマダ ジロウ"),
            ("address", "さくら市北町4-4-4"),
        ],
    },
    FormCase {
        kind: "move_in",
        recipient: |f| Some(f.b),
        baseline: &[("effective", "2026-11-20"), ("address", "さくら市西町3-3-3"), ("from", "横浜市")],
    },
    FormCase {
        kind: "move_out", recipient: |f| Some(f.a), baseline: &[("effective", "2026-11-20"), ("to", "川崎市")]
    },
    FormCase { kind: "record_death", recipient: |f| Some(f.a), baseline: &[("effective", "2026-11-20")] },
    FormCase { kind: "start_dv_support", recipient: |f| Some(f.a), baseline: &[("effective", "2026-11-20")] },
    FormCase { kind: "end_dv_support", recipient: |f| Some(f.c), baseline: &[("effective", "2026-11-20")] },
    FormCase {
        kind: "grant_certificate",
        recipient: |f| Some(f.d),
        baseline: &[
            ("effective", "2026-11-20"),
            ("program", "kosei"),
            ("certificate", "C-D1"),
            ("valid_from", "2026-11-20"),
            ("valid_to", "2027-11-19"),
            ("payer_number", "15139991"),
            ("recipient_number", "1234566"),
            ("income_segment", "一般"),
            ("copay_kind", "limit"),
            ("copay_definition", "医療費の1割"),
            ("copay_rate_month", "10"),
            ("copay_yen_month", "5000"),
            ("designated_institutions", "さくら市民病院"),
            ("disease", "心臓機能障害"),
        ],
    },
    FormCase {
        kind: "renew_certificate",
        recipient: |f| Some(f.a),
        baseline: &[
            ("effective", "2026-11-20"),
            ("certificate", "C-A1"),
            ("valid_from", "2026-12-01"),
            ("valid_to", "2027-11-30"),
            ("income_segment", "上位"),
            // A cap, so that its 負担定義 is tested as part of one (alone it is no cap).
            ("copay_kind", "fixed"),
            ("copay_yen_visit", "200"),
        ],
    },
    FormCase {
        kind: "change_certificate",
        recipient: |f| Some(f.a),
        baseline: &[
            ("effective", "2026-11-20"),
            ("certificate", "C-A1"),
            ("income_segment", "上位"),
            ("copay_kind", "limit"),
            ("copay_rate_month", "20"),
        ],
    },
    FormCase {
        kind: "end_certificate",
        recipient: |f| Some(f.a),
        baseline: &[("effective", "2026-11-20"), ("certificate", "C-A1"), ("reason", "income")],
    },
    FormCase {
        kind: "reissue_certificate",
        recipient: |f| Some(f.a),
        baseline: &[("effective", "2026-11-20"), ("certificate", "C-A1"), ("reason", "lost")],
    },
    FormCase {
        kind: "rescind",
        recipient: |f| Some(f.a),
        baseline: &[("effective", "2026-11-20"), ("target", "fx-a-grant"), ("reason", "入力誤り")],
    },
];

/// A server over a ledger of 20 demo recipients and the form tests' fixture.
fn start() -> (tempfile::TempDir, Server, Fixture) {
    let dir = tempfile::tempdir().unwrap();
    make_ledger(dir.path(), 20).unwrap();
    let server = Server::start(dir.path(), Settings::default()).unwrap();
    let fx = fixture(&server).unwrap();
    (dir, server, fx)
}

const WARNING_TEXT: &str = "PMHで「●」と表示されます";

#[test]
fn every_field_of_every_form_refuses_bad_input_and_writes_nothing() {
    let (_dir, server, fx) = start();
    let mut caseworker = server.login("case1").unwrap();
    // Ending a DV support measure is a supervisor's (privacy rules).
    let mut supervisor = server.login("super1").unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    assert_eq!(CASES.len(), 14, "one case per command type");
    for case in CASES {
        let c = if case.kind == "end_dv_support" { &mut supervisor } else { &mut caseworker };
        let path = match (case.recipient)(&fx) {
            Some(n) => format!("/recipients/{n}/do/{}", case.kind),
            None => "/recipients/new".to_owned(),
        };
        let page = c.get(&path).unwrap();
        assert_eq!(page.status, 200, "{path}");
        let form_fields = fields(&page.body);
        assert!(!form_fields.is_empty(), "{path}: no fields found");
        // The baseline is valid: it reaches the confirmation page.
        let id = format!("bad-{}", case.kind);
        let ok = c.command(&path, &id, "check", case.baseline).unwrap();
        if !ok.has("（確認）") {
            failures.push(format!("{}: baseline not accepted: {}", case.kind, errors_of(&ok.body)));
            continue;
        }
        for f in &form_fields {
            let cls = class(case.kind, &f.name, &f.kind)
                .unwrap_or_else(|| panic!("{}: field {} ({}) is not classified", case.kind, f.name, f.kind));
            // Dates as caseworkers write them: the baseline's own date in every written form is
            // read (the confirmation page), and impossible era dates are refused beside the field.
            let mut written: Vec<(String, Expect, &str)> = Vec::new();
            if cls == Class::Date {
                for v in ["平成31年5月1日", "令和元年4月30日", "昭和64年1月8日"] {
                    written.push((v.to_owned(), Expect::Error, "OutsideEra"));
                }
                let base = case.baseline.iter().find(|(k, _)| *k == f.name).map(|(_, v)| *v).unwrap_or("");
                written.extend(written_forms(base).into_iter().map(|v| (v, Expect::Fine, "Written")));
            }
            let categories =
                CATEGORIES.iter().filter_map(|cat| case_for(cls, *cat, f).map(|(v, e)| (v, e, cat_name(*cat))));
            for (value, expect, cat) in categories.collect::<Vec<_>>().into_iter().chain(written) {
                let mut submitted: Vec<(&str, &str)> =
                    case.baseline.iter().copied().filter(|(k, _)| *k != f.name).collect();
                submitted.push((&f.name, &value));
                let head = server.app.store.head();
                let pending = server.app.pending_count();
                let step = if expect == Expect::Error { "confirm" } else { "check" };
                let r = c.command(&path, &id, step, &submitted).unwrap();
                checked += 1;
                let what = format!("{} {} {cat} {value:?}", case.kind, f.name);
                if server.app.store.head() != head || server.app.pending_count() != pending {
                    failures.push(format!("{what}: something was recorded"));
                    continue;
                }
                let err_id = format!("id=\"err-{}\"", f.name);
                let fine = match expect {
                    Expect::Error => r.status == 200 && r.has(&err_id) && !r.has("（確認）"),
                    Expect::Warning => r.has("（確認）") && r.has(WARNING_TEXT),
                    Expect::Fine => r.has("（確認）") && !r.has(WARNING_TEXT),
                };
                if !fine {
                    failures.push(format!("{what}: expected {expect:?}, got {} {}", r.status, errors_of(&r.body)));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} cases failed:\n{}", failures.len(), failures.join("\n"));
    assert!(checked > 300, "only {checked} cases ran");
}

fn cat_name(cat: Category) -> &'static str {
    match cat {
        Category::Empty => "Empty",
        Category::TooLong => "TooLong",
        Category::WrongDigits => "WrongDigits",
        Category::WrongCheckDigit => "WrongCheckDigit",
        Category::ImpossibleDate => "ImpossibleDate",
        Category::Markup => "Markup",
        Category::Control => "Control",
        Category::HalfWidthKana => "HalfWidthKana",
        Category::OutsideJis => "OutsideJis",
        Category::Formula => "Formula",
    }
}

/// `iso` (a baseline's date) as caseworkers also write it: 令和8年4月1日, R8.4.1, R08.04.01, and
/// with an IME's full-width digits; none when the baseline has no date.
fn written_forms(iso: &str) -> Vec<String> {
    let Ok(date) = iso.parse::<chrono::NaiveDate>() else { return Vec::new() };
    let eras = daicho_domain::calendar::EraTable::builtin();
    let (Ok(long), Ok(w)) = (eras.format(date), eras.wareki(date)) else { return Vec::new() };
    let padded = format!("{}{:02}.{:02}.{:02}", w.era.initial, w.year, w.month, w.day);
    let wide = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_digit() || c == '-' { char::from_u32(c as u32 + 0xFEE0).unwrap_or(c) } else { c })
            .collect()
    };
    vec![long.clone(), w.short(), padded, wide(iso), wide(&long)]
}

fn case_for(cls: Class, cat: Category, f: &FieldInfo) -> Option<(String, Expect)> {
    case(cls, cat, f.required, f.maxlength)
}

fn errors_of(body: &str) -> String {
    body.lines().filter(|l| l.contains("class=\"error") || l.contains("<li>")).collect::<Vec<_>>().join(" | ")
}

/// The value of the input `id` in a page (`None` when there is no such input).
fn input_value_by_id(body: &str, id: &str) -> Option<String> {
    let at = body.find(&format!("id=\"{id}\""))?;
    let start = body[..at].rfind("<input")?;
    let tag = &body[start..start + body[start..].find('>')?];
    attr(tag, "value").map(|v| v.replace("&#x2f;", "/").replace("&#x2e;", "."))
}

/// The other form the page shows beside the date field `id`.
fn echo_of(body: &str, id: &str) -> String {
    let marker = format!("id=\"echo-{id}\"");
    body.find(&marker)
        .and_then(|at| {
            let rest = &body[at..];
            let open = rest.find('>')? + 1;
            Some(rest[open..open + rest[open..].find("</output>")?].to_owned())
        })
        .unwrap_or_default()
}

#[test]
fn every_date_field_reads_dates_as_caseworkers_write_them() {
    let (_dir, server, fx) = start();
    let mut admin = server.login("admin1").unwrap();
    let mut case1 = server.login("case1").unwrap();
    let enc = |s: &str| daicho_tests::web::urlencode(&[("v", s)]).trim_start_matches("v=").to_owned();
    // (page, the field's id, what it is asked with, the ISO form shown, the other form shown)
    let a = fx.a;
    let head = server.app.store.head().position.0.to_string();
    let fine = [
        ("/audit?recipient={a}&a={head}&b={head}&on=", "f-on", "令和8年4月1日", "令和8年4月1日", "2026-04-01"),
        ("/audit?recipient={a}&a={head}&b={head}&on=", "f-on", "2026-04-01", "2026-04-01", "令和8年4月1日"),
        ("/admin/access?from=", "f-from", "R8.4.1", "R8.4.1", "2026-04-01"),
        ("/admin/access?from=", "f-from", "H25.1.1", "H25.1.1", "2013-01-01"),
        ("/admin/access?to=", "f-to", "平成25年1月1日", "平成25年1月1日", "2013-01-01"),
        ("/admin/access?to=", "f-to", "令和元年5月1日", "令和元年5月1日", "2019-05-01"),
        ("/admin/access?to=", "f-to", "平成元年1月8日", "平成元年1月8日", "1989-01-08"),
        ("/admin/access?from=", "f-from", "Ｒ０８．０４．０１", "Ｒ０８．０４．０１", "2026-04-01"),
        ("/recipients/{a}?as_of=", "as_of", "R08.11.01", "2026-11-01", "令和8年11月1日"),
        ("/billing?month=", "f-month", "令和8年10月", "2026-10", "令和8年10月"),
        ("/billing?month=", "f-month", "R8.10", "2026-10", "令和8年10月"),
        ("/billing?month=", "f-month", "2026年10月", "2026-10", "令和8年10月"),
    ];
    for (page, id, typed, shown, other) in fine {
        let c = if page.starts_with("/recipients") { &mut case1 } else { &mut admin };
        let path = format!("{}{}", page.replace("{a}", &a.to_string()).replace("{head}", &head), enc(typed));
        let r = c.get(&path).unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert!(!r.body.contains(&format!("id=\"err-{}\"", id.trim_start_matches("f-"))), "{typed} refused on {page}");
        assert!(!r.body.contains("error-summary"), "{typed} on {page}: {}", errors_of(&r.body));
        assert_eq!(input_value_by_id(&r.body, id).as_deref(), Some(shown), "{typed} on {page}");
        assert_eq!(echo_of(&r.body, id), other, "{typed} on {page}");
    }
    // Impossible era dates: the message beside the field, in the summary, the typed value kept.
    let refused = [
        ("/audit?recipient={a}&a={head}&b={head}&on=", "f-on", "err-on", "平成31年5月1日", "平成"),
        ("/admin/access?from=", "f-from", "err-from", "令和元年4月30日", "令和"),
        ("/admin/access?to=", "f-to", "err-to", "昭和64年1月8日", "昭和"),
        ("/billing?month=", "f-month", "err-month", "平成31年5月", "平成"),
        ("/billing?month=", "f-month", "err-month", "2026-13", "存在しない"),
    ];
    for (page, id, err, typed, says) in refused {
        let path = format!("{}{}", page.replace("{a}", &a.to_string()).replace("{head}", &head), enc(typed));
        let r = admin.get(&path).unwrap();
        assert_eq!(r.status, 200, "{path}");
        let message = r.body.split(&format!("id=\"{err}\">")).nth(1).and_then(|s| s.split("</p>").next());
        assert!(message.is_some_and(|m| m.contains(says)), "{typed} on {page}: {:?}", message);
        assert!(r.body.contains(&format!("<a href=\"#{id}\">")), "{typed}: the summary does not link to {id}");
        assert_eq!(input_value_by_id(&r.body, id).as_deref(), Some(typed), "{typed} was not kept on {page}");
    }
    // A recipient viewed at an impossible date: the message, the typed value kept.
    let r = case1.get(&format!("/recipients/{a}?as_of={}", enc("昭和64年1月8日"))).unwrap();
    assert!(r.has("昭和の期間にない日付です"), "{}", errors_of(&r.body));
    assert_eq!(input_value_by_id(&r.body, "as_of").as_deref(), Some("昭和64年1月8日"));
    assert!(r.body.contains("<a href=\"#as_of\">"), "the summary does not link to the date");
    assert!(r.body.contains("id=\"err-as_of\""), "no message beside the date");

    // A command form: a 和暦 date goes to the confirmation with both forms shown, and back to
    // the form as typed; an impossible one stays in its field with the message beside it.
    let path = format!("/recipients/{}/do/move_out", fx.a);
    let before = server.app.store.head().position.0;
    let ok = case1.command(&path, "w-era-1", "check", &[("effective", "令和8年11月20日"), ("to", "横浜市")]).unwrap();
    assert!(ok.has("（確認）"), "{}", errors_of(&ok.body));
    assert!(ok.has("2026-11-20（令和8年11月20日）"), "the confirmation does not show both forms");
    let back = case1.command(&path, "w-era-1", "edit", &[("effective", "令和8年11月20日"), ("to", "横浜市")]).unwrap();
    assert_eq!(input_value_by_id(&back.body, "f-effective").as_deref(), Some("令和8年11月20日"));
    assert_eq!(echo_of(&back.body, "f-effective"), "2026-11-20");
    let bad = case1.command(&path, "w-era-2", "check", &[("effective", "令和元年4月30日"), ("to", "横浜市")]).unwrap();
    assert!(!bad.has("（確認）"));
    assert!(bad.body.split("id=\"err-effective\">").nth(1).is_some_and(|m| m.starts_with("令和の期間にない日付です")));
    assert_eq!(input_value_by_id(&bad.body, "f-effective").as_deref(), Some("令和元年4月30日"));
    assert_eq!(input_value_by_id(&bad.body, "f-to").as_deref(), Some("横浜市"), "other typed values are kept");
    assert!(bad.body.contains("<a href=\"#f-effective\">"), "the summary does not link to the field");
    assert_eq!(server.app.store.head().position.0, before, "nothing is recorded before confirming");

    // What the browser asks as the caseworker types: the same parser, as JSON.
    let token = case1.csrf().unwrap();
    for (kind, typed, want) in [
        ("date", "R8.4.1", "\"iso\":\"2026-04-01\""),
        ("date", "2026-04-01", "\"other\":\"令和8年4月1日\""),
        ("date", "平成31年5月1日", "\"error\":\"平成の期間にない日付です\""),
        ("month", "令和元年5月", "\"iso\":\"2019-05\""),
        ("month", "令和元年4月", "\"error\":\"令和の期間にない日付です\""),
    ] {
        let r = case1.post("/dates/read", &[("csrf", &token), ("kind", kind), ("v", typed)]).unwrap();
        assert_eq!(r.status, 200);
        assert!(r.body.contains(want), "{kind} {typed}: {}", r.body);
    }
    let r = case1.post("/dates/read", &[("csrf", &token), ("kind", "date"), ("v", "R8.4.1")]).unwrap();
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let long = "1".repeat(41);
    let r = case1.post("/dates/read", &[("csrf", &token), ("kind", "date"), ("v", &long)]).unwrap();
    assert!(r.body.contains("長すぎます") && !r.body.contains(&long), "{}", r.body);
    let forged = case1.post("/dates/read", &[("csrf", "wrong"), ("kind", "date"), ("v", "R8.4.1")]).unwrap();
    assert_eq!(forged.status, 403, "a reading without the session's token was answered");
    let anonymous = server.client().post("/dates/read", &[("kind", "date"), ("v", "R8.4.1")]).unwrap();
    assert_eq!(anonymous.status, 303, "a reading for no one was answered");
    // Dates beyond the ledger's last day (the last era has no end, the ledger has).
    let r = case1.post("/dates/read", &[("csrf", &token), ("kind", "date"), ("v", "R7982.1.1")]).unwrap();
    assert!(r.body.contains("\"error\":\"存在しない日付です\""), "{}", r.body);

    // The fee schedule form: each error on its own field, in the summary, the values kept.
    let billing = admin.get("/billing?month=2026-10").unwrap();
    let token = billing.csrf().unwrap();
    for (from, unit, field, label) in [("平成31年5月", "2", "f-from", "開始月"), ("R9.4", "100000", "f-unit", "単価")]
    {
        let r = admin
            .post(
                "/billing/schedule",
                &[("csrf", &token), ("month", "令和8年10月"), ("from_month", from), ("unit_yen", unit)],
            )
            .unwrap();
        assert_eq!(r.status, 200, "{from} {unit}");
        assert!(r.body.contains(&format!("<a href=\"#{field}\">{label}: ")), "{from} {unit}: {}", errors_of(&r.body));
        assert_eq!(input_value_by_id(&r.body, "f-from").as_deref(), Some(from));
        assert_eq!(input_value_by_id(&r.body, "f-unit").as_deref(), Some(unit));
        assert_eq!(input_value_by_id(&r.body, "f-month").as_deref(), Some("2026-10"), "the month shown was lost");
        let tag = r.body.split(&format!("id=\"{field}\"")).nth(1).and_then(|t| t.split('>').next()).unwrap_or("");
        assert!(tag.contains("aria-invalid=\"true\""), "{field} is not marked invalid");
    }
    // A schedule recorded with a 和暦 month goes back to the month shown, as read.
    let r = admin
        .post(
            "/billing/schedule",
            &[("csrf", &token), ("month", "令和8年10月"), ("from_month", "令和9年4月"), ("unit_yen", "2")],
        )
        .unwrap();
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/billing?month=2026-10&scheduled=1"));
}
