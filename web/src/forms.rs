//! 入力画面 (command forms): one form per command type of the contract, described as data.
//!
//! A submitted form becomes the contract's JSON object, which the domain parses exactly as it
//! parses a line of `daicho apply`: the same rules, the same Japanese messages. Errors come back
//! with the contract's field names and are mapped to the form's fields (`copay_cap.yen_month` is the
//! form's `copay_yen_month`). The web adds nothing to the rules; it only arranges them for people.

use daicho_domain::certificate::DESIGNATED_INSTITUTIONS_MAX;
use daicho_domain::command::{Command, FieldError, InputError, parse_command_value};
use daicho_domain::text::{Address, DiseaseName, IncomeSegment, Kana, Note, PersonName, PlaceName};
use serde_json::{Map, Value};

/// How a field is entered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// One line of text.
    Text,
    /// A date (`YYYY-MM-DD`).
    Date,
    /// One of fixed options.
    Select(&'static [(&'static str, &'static str)]),
    /// A program of the configuration.
    Program,
    /// A certificate of the recipient.
    Certificate,
    /// A command of the recipient (rescind target).
    Command,
    /// A checkbox (`on` when checked).
    Checkbox,
    /// Several lines, one value each.
    Lines,
}

/// One field of a form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Form field name.
    pub name: &'static str,
    /// Japanese label.
    pub label: &'static str,
    /// How it is entered.
    pub input: Input,
    /// Whether the form marks it required (the domain decides).
    pub required: bool,
    /// Longest value, in characters (0: not a text).
    pub chars_max: usize,
    /// A hint shown under the field.
    pub hint: &'static str,
}

const fn field(name: &'static str, label: &'static str, input: Input, required: bool) -> Field {
    Field { name, label, input, required, chars_max: 0, hint: "" }
}

const fn text(name: &'static str, label: &'static str, required: bool, chars_max: usize) -> Field {
    Field { name, label, input: Input::Text, required, chars_max, hint: "" }
}

const fn hinted(f: Field, hint: &'static str) -> Field {
    Field { hint, ..f }
}

/// 性別 options.
pub const SEX: &[(&str, &str)] = &[("1", "男"), ("2", "女"), ("9", "適用不能")];
const LOSS: &[(&str, &str)] =
    &[("age_limit", "年齢到達"), ("income", "所得超過"), ("withdrawal", "辞退"), ("other", "その他")];
const REISSUE: &[(&str, &str)] = &[("lost", "紛失"), ("damaged", "破損・汚損"), ("other", "その他")];
const CAP_KIND: &[(&str, &str)] = &[("limit", "上限額"), ("fixed", "定額"), ("free", "負担なし")];
const TRI: &[(&str, &str)] = &[("true", "する"), ("false", "しない")];

const EFFECTIVE: Field = field("effective", "効力発生日", Input::Date, true);
const RECIPIENT: Field = hinted(
    Field {
        name: "recipient",
        label: "宛名番号（受給者ID）",
        input: Input::Text,
        required: true,
        chars_max: 64,
        hint: "",
    },
    "住民記録システムの宛名番号など。半角英数字と . _ -",
);
const NAME: Field = text("name", "氏名", true, PersonName::CHARS_MAX);
const KANA: Field = hinted(text("kana", "氏名カナ", true, Kana::CHARS_MAX), "全角カタカナ");
const BIRTH: Field = field("birth_date", "生年月日", Input::Date, true);
const SEX_FIELD: Field = field("sex", "性別", Input::Select(SEX), true);
const ADDRESS: Field = text("address", "住所", true, Address::CHARS_MAX);
const MY_NUMBER: Field = hinted(
    Field { name: "my_number", label: "個人番号", input: Input::Text, required: true, chars_max: 12, hint: "" },
    "12桁（チェックデジットを確認します）",
);
const CERTIFICATE: Field = field("certificate", "受給者証", Input::Certificate, true);
const PAYER: Field = hinted(
    Field {
        name: "payer_number",
        label: "公費負担者番号",
        input: Input::Text,
        required: false,
        chars_max: 8,
        hint: "",
    },
    "8桁",
);
const RECIPIENT_NUMBER: Field = text("recipient_number", "公費受給者番号", true, 30);
const INCOME: Field = text("income_segment", "所得区分", false, IncomeSegment::CHARS_MAX);
const COPAY_KIND: Field = hinted(
    field("copay_kind", "自己負担上限額の種別", Input::Select(CAP_KIND), false),
    "上限額: 負担率の負担を金額まで／定額: 金額を負担／負担なし",
);
const COPAY_DEFINITION: Field = hinted(
    text("copay_definition", "負担定義", false, daicho_domain::text::CapDefinition::CHARS_MAX),
    "医療機関に表示する説明（例: 医療費の2割）",
);
const fn cap_yen(name: &'static str, label: &'static str) -> Field {
    hinted(Field { name, label, input: Input::Text, required: false, chars_max: 9, hint: "" }, "整数（円）")
}
const fn cap_rate(name: &'static str, label: &'static str) -> Field {
    hinted(Field { name, label, input: Input::Text, required: false, chars_max: 4, hint: "" }, "0〜100（%）")
}
const COPAY_RATE_DAY: Field = cap_rate("copay_rate_day", "負担率（日）");
const COPAY_RATE_MONTH: Field = cap_rate("copay_rate_month", "負担率（月）");
const COPAY_RATE_VISIT: Field = cap_rate("copay_rate_visit", "負担率（回）");
const COPAY_YEN_DAY: Field = cap_yen("copay_yen_day", "金額（日額）");
const COPAY_YEN_MONTH: Field = cap_yen("copay_yen_month", "金額（月額）");
const COPAY_YEN_VISIT: Field = cap_yen("copay_yen_visit", "金額（1回）");
/// The self-pay cap's fields, in the order of PMH's common layout.
const COPAY_FIELDS: [Field; 8] = [
    COPAY_KIND,
    COPAY_DEFINITION,
    COPAY_RATE_DAY,
    COPAY_RATE_MONTH,
    COPAY_RATE_VISIT,
    COPAY_YEN_DAY,
    COPAY_YEN_MONTH,
    COPAY_YEN_VISIT,
];
const DESIGNATED: Field = hinted(
    Field {
        name: "designated_institutions",
        label: "指定医療機関",
        input: Input::Lines,
        required: false,
        chars_max: daicho_domain::text::InstitutionName::CHARS_MAX,
        hint: "",
    },
    "1行に1機関（20機関まで）",
);
const DISEASE: Field = text("disease", "疾病名", false, DiseaseName::CHARS_MAX);
const ALWAYS: Field = field("always_reimbursement", "常時償還払い", Input::Checkbox, false);

/// One command's form.
#[derive(Clone, Copy, Debug)]
pub struct Form {
    /// The contract's `type`.
    pub kind: &'static str,
    /// Page title.
    pub title: &'static str,
    /// A sentence under the title.
    pub intro: &'static str,
    /// Fields, in order.
    pub fields: &'static [Field],
    /// Whether the command needs a supervisor's approval before it is recorded.
    pub needs_approval: bool,
}

const CLEAR_PAYER: Field = field("clear_payer_number", "公費負担者番号を削除する", Input::Checkbox, false);
const CHANGED_RECIPIENT_NUMBER: Field = Field { required: false, ..RECIPIENT_NUMBER };
const CLEAR_INCOME: Field = field("clear_income_segment", "所得区分を削除する", Input::Checkbox, false);
const CLEAR_COPAY: Field = field("clear_copay_cap", "自己負担上限額を削除する", Input::Checkbox, false);
const CHANGED_DESIGNATED: Field = hinted(DESIGNATED, "変更するときだけ、変更後のすべての機関を1行に1機関");
const CLEAR_DESIGNATED: Field =
    field("clear_designated_institutions", "指定医療機関をすべて削除する", Input::Checkbox, false);
const CLEAR_DISEASE: Field = field("clear_disease", "疾病名を削除する", Input::Checkbox, false);
const CHANGED_ALWAYS: Field = field("always_reimbursement", "常時償還払い", Input::Select(TRI), false);
const VALID_FROM: Field = field("valid_from", "有効期間開始日", Input::Date, true);
const VALID_TO: Field = field("valid_to", "有効期間終了日", Input::Date, false);

/// A renewal: the new span, and the terms that change (empty: unchanged).
const RENEW_FIELDS: &[Field] = &[
    EFFECTIVE,
    CERTIFICATE,
    VALID_FROM,
    VALID_TO,
    PAYER,
    CLEAR_PAYER,
    CHANGED_RECIPIENT_NUMBER,
    INCOME,
    CLEAR_INCOME,
    COPAY_FIELDS[0],
    COPAY_FIELDS[1],
    COPAY_FIELDS[2],
    COPAY_FIELDS[3],
    COPAY_FIELDS[4],
    COPAY_FIELDS[5],
    COPAY_FIELDS[6],
    COPAY_FIELDS[7],
    CLEAR_COPAY,
    CHANGED_DESIGNATED,
    CLEAR_DESIGNATED,
    DISEASE,
    CLEAR_DISEASE,
    CHANGED_ALWAYS,
];

/// A change: the terms that change from the effective date (empty: unchanged).
const CHANGE_FIELDS: &[Field] = &[
    field("effective", "変更日", Input::Date, true),
    CERTIFICATE,
    PAYER,
    CLEAR_PAYER,
    CHANGED_RECIPIENT_NUMBER,
    INCOME,
    CLEAR_INCOME,
    COPAY_FIELDS[0],
    COPAY_FIELDS[1],
    COPAY_FIELDS[2],
    COPAY_FIELDS[3],
    COPAY_FIELDS[4],
    COPAY_FIELDS[5],
    COPAY_FIELDS[6],
    COPAY_FIELDS[7],
    CLEAR_COPAY,
    CHANGED_DESIGNATED,
    CLEAR_DESIGNATED,
    DISEASE,
    CLEAR_DISEASE,
    CHANGED_ALWAYS,
];

/// Every form, in the order of the menu.
pub const FORMS: &[Form] = &[
    Form {
        kind: "register_recipient",
        title: "基本情報登録",
        intro: "新しい受給者の基本情報を登録します。",
        fields: &[RECIPIENT, field("effective", "登録日", Input::Date, true), NAME, KANA, BIRTH, SEX_FIELD, ADDRESS],
        needs_approval: false,
    },
    Form {
        kind: "link_my_number",
        title: "個人番号の登録・訂正",
        intro: "住民記録の基本4情報と照合して個人番号を登録します。係長の承認後に記録されます。",
        fields: &[
            EFFECTIVE,
            MY_NUMBER,
            text("resident_name", "住民記録の氏名", true, PersonName::CHARS_MAX),
            field("resident_birth_date", "住民記録の生年月日", Input::Date, true),
            field("resident_sex", "住民記録の性別", Input::Select(SEX), true),
            text("resident_address", "住民記録の住所", true, Address::CHARS_MAX),
        ],
        needs_approval: true,
    },
    Form {
        kind: "change_personal_details",
        title: "氏名・住所等の変更",
        intro: "変更する項目だけ入力してください。",
        fields: &[
            EFFECTIVE,
            Field { required: false, ..NAME },
            Field { required: false, ..KANA },
            Field { required: false, ..ADDRESS },
        ],
        needs_approval: false,
    },
    Form {
        kind: "move_in",
        title: "転入",
        intro: "転入を記録します。受給者証の交付は別に行います。",
        fields: &[
            field("effective", "転入日", Input::Date, true),
            ADDRESS,
            text("from", "転入元市区町村", true, PlaceName::CHARS_MAX),
        ],
        needs_approval: false,
    },
    Form {
        kind: "move_out",
        title: "転出",
        intro: "転出日で有効な受給者証の有効期間が終了します。",
        fields: &[
            field("effective", "転出日", Input::Date, true),
            text("to", "転出先市区町村", true, PlaceName::CHARS_MAX),
        ],
        needs_approval: false,
    },
    Form {
        kind: "record_death",
        title: "死亡",
        intro: "死亡日で有効な受給者証の有効期間が終了します。",
        fields: &[field("effective", "死亡日", Input::Date, true)],
        needs_approval: false,
    },
    Form {
        kind: "start_dv_support",
        title: "支援措置の開始",
        intro: "DV等支援措置の対象とします。住所は権限のない職員に表示されず、PMHには非開示で送信されます。",
        fields: &[field("effective", "開始日", Input::Date, true)],
        needs_approval: false,
    },
    Form {
        kind: "end_dv_support",
        title: "支援措置の終了",
        intro: "DV等支援措置を終了します。",
        fields: &[field("effective", "終了日", Input::Date, true)],
        needs_approval: false,
    },
    Form {
        kind: "grant_certificate",
        title: "認定・新規交付",
        intro: "受給者証を新しく交付します。",
        fields: &[
            field("effective", "決定日", Input::Date, true),
            field("program", "制度", Input::Program, true),
            hinted(
                Field {
                    name: "certificate",
                    label: "受給者証ID",
                    input: Input::Text,
                    required: true,
                    chars_max: 64,
                    hint: "",
                },
                "自動で付番した値のままで構いません。半角英数字と . _ -",
            ),
            VALID_FROM,
            hinted(VALID_TO, "空欄: 期限なし（年齢上限のある制度はその日まで）"),
            PAYER,
            RECIPIENT_NUMBER,
            INCOME,
            COPAY_FIELDS[0],
            COPAY_FIELDS[1],
            COPAY_FIELDS[2],
            COPAY_FIELDS[3],
            COPAY_FIELDS[4],
            COPAY_FIELDS[5],
            COPAY_FIELDS[6],
            COPAY_FIELDS[7],
            DESIGNATED,
            DISEASE,
            ALWAYS,
        ],
        needs_approval: false,
    },
    Form {
        kind: "renew_certificate",
        title: "更新",
        intro: "現在の有効期間の翌日から始まる新しい有効期間を登録します。変わる項目だけ入力してください。",
        fields: RENEW_FIELDS,
        needs_approval: false,
    },
    Form {
        kind: "change_certificate",
        title: "変更",
        intro: "効力発生日から内容を変更します。変わる項目だけ入力してください。",
        fields: CHANGE_FIELDS,
        needs_approval: false,
    },
    Form {
        kind: "end_certificate",
        title: "資格喪失",
        intro: "効力発生日を最終日として資格を喪失させます。",
        fields: &[
            field("effective", "喪失日（最終日）", Input::Date, true),
            CERTIFICATE,
            field("reason", "喪失理由", Input::Select(LOSS), true),
        ],
        needs_approval: false,
    },
    Form {
        kind: "reissue_certificate",
        title: "再交付",
        intro: "受給者証を再交付します。資格の内容は変わりません。",
        fields: &[EFFECTIVE, CERTIFICATE, field("reason", "再交付理由", Input::Select(REISSUE), true)],
        needs_approval: false,
    },
    Form {
        kind: "rescind",
        title: "取消",
        intro: "誤って記録した処理を取り消します。取り消した記録も履歴に残ります。個人番号の登録・訂正の取消は、入力者とは別の係長が承認した時点で記録されます。",
        fields: &[
            EFFECTIVE,
            field("target", "取り消す処理", Input::Command, true),
            text("reason", "取消理由", true, Note::CHARS_MAX),
        ],
        needs_approval: false,
    },
];

/// The form of a command type.
pub fn form(kind: &str) -> Option<&'static Form> {
    FORMS.iter().find(|f| f.kind == kind)
}

/// Submitted values, in order (a name may repeat; the first wins).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Values(pub Vec<(String, String)>);

impl Values {
    /// The value of `name`, if sent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The value of `name`, trimmed of spaces (ASCII and 全角), or "".
    pub fn trimmed(&self, name: &str) -> &str {
        self.get(name).unwrap_or("").trim_matches(|c| c == ' ' || c == '\u{3000}')
    }

    fn checked(&self, name: &str) -> bool {
        self.get(name) == Some("on")
    }
}

/// A field error ready for the form: the form's field (or `None` for the whole form) and the
/// Japanese message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormError {
    /// Form field name; `None`: about the form as a whole.
    pub field: Option<String>,
    /// Japanese message.
    pub message: String,
}

/// The common fields the server fills in (never from the person).
pub struct Context<'a> {
    /// Idempotency key (carried by the form).
    pub id: &'a str,
    /// The logged-in user.
    pub actor: &'a str,
    /// The recipient's caller id; `None` for a registration (the form gives it).
    pub recipient: Option<&'a str>,
    /// The approver, when approving a link.
    pub approver: Option<&'a str>,
    /// The eras date fields are read with (the configuration's).
    pub eras: &'a daicho_domain::calendar::EraTable,
}

fn put_text(map: &mut Map<String, Value>, key: &str, value: &str) {
    if !value.is_empty() {
        map.insert(key.to_owned(), Value::String(value.to_owned()));
    }
}

/// The contract's JSON object for `form` with the submitted `values`, and errors found while
/// arranging it (a field of the web form that the contract cannot express).
pub fn to_json(form: &Form, values: &Values, ctx: &Context<'_>) -> (Value, Vec<FormError>) {
    let mut errors = Vec::new();
    let mut m = Map::new();
    m.insert("id".into(), Value::String(ctx.id.to_owned()));
    m.insert("type".into(), Value::String(form.kind.to_owned()));
    m.insert("actor".into(), Value::String(ctx.actor.to_owned()));
    match ctx.recipient {
        Some(r) => put_text(&mut m, "recipient", r),
        None => put_text(&mut m, "recipient", values.trimmed("recipient")),
    }
    // Dates as caseworkers write them (和暦 or ISO, full-width digits too) become the
    // contract's ISO dates; one that is not a date is an error on its field, with its reason.
    let date = |name: &str, v: &str, errors: &mut Vec<FormError>| -> String {
        if v.is_empty() {
            return String::new();
        }
        match daicho_domain::calendar::parse_written_date(ctx.eras, v) {
            Ok(d) => d.to_string(),
            Err(e) => {
                errors.push(FormError { field: Some(name.to_owned()), message: e.message() });
                String::new()
            }
        }
    };
    let effective = date("effective", values.trimmed("effective"), &mut errors);
    put_text(&mut m, "effective", &effective);
    let change = matches!(form.kind, "renew_certificate" | "change_certificate");
    let mut resident = Map::new();
    let mut copay = Map::new();
    for f in form.fields {
        let written;
        let v = if f.input == Input::Date && f.name != "effective" {
            written = date(f.name, values.trimmed(f.name), &mut errors);
            written.as_str()
        } else {
            values.trimmed(f.name)
        };
        match f.name {
            "recipient" | "effective" => {}
            "resident_name" | "resident_birth_date" | "resident_sex" | "resident_address" => {
                put_text(&mut resident, f.name.trim_start_matches("resident_"), v);
            }
            "copay_kind" => put_text(&mut copay, "kind", v),
            "copay_definition" => put_text(&mut copay, "definition", v),
            name if name.starts_with("copay_yen_") || name.starts_with("copay_rate_") => {
                if !v.is_empty() {
                    // 1,000 (an amount) and 20% (a rate) as typed; anything else goes on as text
                    // and the contract names it (整数で指定してください) on this field.
                    let rate = name.starts_with("copay_rate_");
                    let digits = match v.strip_suffix(['%', '％']) {
                        Some(d) if rate => d.to_owned(),
                        _ if rate => v.to_owned(),
                        _ => v.chars().filter(|c| *c != ',').collect(),
                    };
                    let n = digits.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(v.to_owned()));
                    copay.insert(name.trim_start_matches("copay_").to_owned(), n);
                }
            }
            "designated_institutions" => {
                let lines: Vec<Value> = values
                    .get(f.name)
                    .unwrap_or("")
                    .lines()
                    .map(|l| l.trim_matches(|c| c == ' ' || c == '\u{3000}' || c == '\r'))
                    .filter(|l| !l.is_empty())
                    .map(|l| Value::String(l.to_owned()))
                    .collect();
                if lines.len() > DESIGNATED_INSTITUTIONS_MAX {
                    errors.push(FormError {
                        field: Some(f.name.to_owned()),
                        message: format!("{DESIGNATED_INSTITUTIONS_MAX}件以内で入力してください"),
                    });
                } else if !lines.is_empty() {
                    m.insert(f.name.into(), Value::Array(lines));
                }
            }
            "always_reimbursement" if change => match v {
                "" => {}
                "true" => {
                    m.insert(f.name.into(), Value::Bool(true));
                }
                "false" => {
                    m.insert(f.name.into(), Value::Bool(false));
                }
                _ => errors.push(FormError {
                    field: Some(f.name.to_owned()),
                    message: "「する」「しない」のどちらかを選んでください".into(),
                }),
            },
            "always_reimbursement" => {
                if values.checked(f.name) {
                    m.insert(f.name.into(), Value::Bool(true));
                } else if !v.is_empty() {
                    errors.push(FormError {
                        field: Some(f.name.to_owned()),
                        message: "チェックボックスの値が正しくありません".into(),
                    });
                }
            }
            name if name.starts_with("clear_") => {
                let target = name.trim_start_matches("clear_");
                if !v.is_empty() && !values.checked(name) {
                    errors.push(FormError {
                        field: Some(name.to_owned()),
                        message: "チェックボックスの値が正しくありません".into(),
                    });
                } else if values.checked(name) {
                    let has_value = match target {
                        "copay_cap" => COPAY_FIELDS.iter().any(|f| !values.trimmed(f.name).is_empty()),
                        other => !values.trimmed(other).is_empty(),
                    };
                    if has_value {
                        errors.push(FormError {
                            field: Some(name.to_owned()),
                            message: "削除する項目に値が入力されています。どちらかにしてください".into(),
                        });
                    } else if target == "designated_institutions" {
                        m.insert(target.to_owned(), Value::Array(Vec::new()));
                    } else {
                        m.insert(target.to_owned(), Value::Null);
                    }
                }
            }
            name => put_text(&mut m, name, v),
        }
    }
    if form.kind == "link_my_number" {
        m.insert("resident_record".into(), Value::Object(resident));
        if let Some(a) = ctx.approver {
            m.insert("approver".into(), Value::String(a.to_owned()));
        } else {
            // Until a supervisor approves, a placeholder stands in (for the preview only: a link
            // is recorded only on approval, with the approver's id).
            m.insert("approver".into(), Value::String(PENDING_APPROVER.to_owned()));
        }
    }
    if form.kind == "rescind"
        && let Some(a) = ctx.approver
    {
        // The rescind of a My Number link: approved like the link (a stand-in until then).
        m.insert("approver".into(), Value::String(a.to_owned()));
    }
    if !copay.is_empty() {
        m.insert("copay_cap".into(), Value::Object(copay));
    }
    (Value::Object(m), errors)
}

/// The approver of a link not yet approved (never recorded).
pub const PENDING_APPROVER: &str = "pending-approval";

/// The form field a contract field's error belongs to.
pub fn form_field(contract_field: &str) -> Option<String> {
    let base = contract_field.split_once('[').map_or(contract_field, |(b, _)| b);
    let mapped = match base {
        "id" | "type" | "actor" | "approver" => return None,
        "copay_cap" => "copay_kind".to_owned(),
        other if other.starts_with("copay_cap.") => format!("copay_{}", other.trim_start_matches("copay_cap.")),
        "resident_record" => "resident_name".to_owned(),
        other => match other.strip_prefix("resident_record.") {
            Some(rest) => format!("resident_{rest}"),
            None => other.to_owned(),
        },
    };
    Some(mapped)
}

fn message_of(e: &FieldError) -> String {
    match e.field.split_once('[') {
        Some((_, rest)) => {
            let line = rest.trim_end_matches(']').parse::<usize>().map_or(0, |i| i + 1);
            format!("{line}行目: {}", e.error.message())
        }
        None => e.error.message(),
    }
}

/// Parses the form into a command; errors mapped to the form's fields.
pub fn parse(form: &Form, values: &Values, ctx: &Context<'_>) -> Result<Command, Vec<FormError>> {
    let (json, mut errors) = to_json(form, values, ctx);
    match parse_command_value(json) {
        Ok(cmd) if errors.is_empty() => Ok(cmd),
        Ok(_) => Err(errors),
        Err(InputError::Fields(fields)) => {
            for e in &fields {
                // An error on the whole resident record means it was empty: name its first field.
                let field = form_field(&e.field);
                if errors.iter().any(|x| x.field == field && field.is_some()) {
                    continue;
                }
                errors.push(FormError { field, message: message_of(e) });
            }
            Err(errors)
        }
        Err(other) => {
            errors.push(FormError { field: None, message: other.message() });
            Err(errors)
        }
    }
}

/// The form field a rule's rejection is about, when it is about one.
pub fn rejection_field(code: &str, kind: &str) -> Option<&'static str> {
    Some(match code {
        "effective_date_in_future"
        | "effective_date_too_far_ahead"
        | "date_before_birth"
        | "date_before_residency_change"
        | "no_span_on_date" => "effective",
        "valid_from_too_far_ahead" | "renewal_not_contiguous" => "valid_from",
        "birth_date_in_future" => "birth_date",
        "my_number_in_use" | "my_number_unchanged" => "my_number",
        "unknown_program" => "program",
        "payer_number_not_in_program" | "payer_number_required" => "payer_number",
        "recipient_number_invalid" => "recipient_number",
        "invalid_period" | "age_limit_reached" | "beyond_age_limit"
            if kind == "grant_certificate" || kind == "renew_certificate" =>
        {
            "valid_to"
        }
        "unknown_certificate" | "certificate_ended" | "certificate_not_current" | "open_ended_span" => "certificate",
        "unknown_target"
        | "target_already_rescinded"
        | "cannot_rescind_rescind"
        | "rescind_conflicts_with_later_events"
        | "approval_required" => "target",
        "protected_address_withheld" | "dv_support_restricted" if kind == "rescind" => "target",
        "protected_address_withheld" if kind == "move_out" => "to",
        "protected_address_withheld" => "address",
        "recipient_already_registered" if kind == "register_recipient" => "recipient",
        _ => return None,
    })
}

/// The form field of a basic-item mismatch (`basic_info_mismatch` names the items in Japanese).
pub fn mismatch_field(item: &str) -> Option<&'static str> {
    Some(match item {
        "氏名" => "resident_name",
        "生年月日" => "resident_birth_date",
        "性別" => "resident_sex",
        "住所" => "resident_address",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> Values {
        Values(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    static ERAS: std::sync::LazyLock<daicho_domain::calendar::EraTable> =
        std::sync::LazyLock::new(daicho_domain::calendar::EraTable::builtin);

    fn ctx() -> Context<'static> {
        Context { id: "w-1", actor: "sato", recipient: Some("R1"), approver: None, eras: &ERAS }
    }

    #[test]
    fn every_contract_type_has_a_form() {
        for t in [
            "register_recipient",
            "link_my_number",
            "change_personal_details",
            "move_in",
            "move_out",
            "record_death",
            "start_dv_support",
            "end_dv_support",
            "grant_certificate",
            "renew_certificate",
            "change_certificate",
            "end_certificate",
            "reissue_certificate",
            "rescind",
        ] {
            assert!(form(t).is_some(), "{t}");
        }
        assert_eq!(FORMS.len(), 14);
        // The const-built field lists hold what they should.
        let renew = form("renew_certificate").unwrap();
        let names: Vec<&str> = renew.fields.iter().map(|f| f.name).collect();
        assert_eq!(&names[..4], ["effective", "certificate", "valid_from", "valid_to"]);
        assert!(names.contains(&"always_reimbursement") && names.contains(&"clear_disease"));
        let change = form("change_certificate").unwrap();
        assert_eq!(change.fields.iter().filter(|f| f.name == "effective").count(), 1);
        assert_eq!(change.fields.last().unwrap().name, "always_reimbursement");
        // Every clear box names a field of its form.
        for f in FORMS {
            for c in f.fields.iter().filter(|c| c.name.starts_with("clear_")) {
                let target = c.name.trim_start_matches("clear_");
                let target = if target == "copay_cap" { "copay_kind" } else { target };
                assert!(f.fields.iter().any(|x| x.name == target), "{}: {}", f.kind, c.name);
            }
        }
    }

    #[test]
    fn a_grant_form_becomes_a_command() {
        let f = form("grant_certificate").unwrap();
        let v = values(&[
            ("effective", "2026-04-01"),
            ("program", "kodomo"),
            ("valid_from", "2026-04-01"),
            ("payer_number", "88139998"),
            ("recipient_number", "1234567"),
            ("copay_kind", "limit"),
            ("copay_definition", "外来"),
            ("copay_yen_month", "1,000"),
            ("copay_rate_month", "20%"),
            ("designated_institutions", "さくら病院\r\n\r\n 桜クリニック \n"),
            ("always_reimbursement", "on"),
            ("certificate", "C1"),
        ]);
        let (json, errors) = to_json(f, &v, &ctx());
        assert!(errors.is_empty());
        assert_eq!(
            json["copay_cap"],
            serde_json::json!({"kind": "limit", "definition": "外来", "yen_month": 1000, "rate_month": 20})
        );
        assert_eq!(json["designated_institutions"], serde_json::json!(["さくら病院", "桜クリニック"]));
        assert_eq!(json["always_reimbursement"], true);
        assert!(json.get("valid_to").is_none());
    }

    #[test]
    fn nested_errors_land_on_form_fields() {
        let f = form("grant_certificate").unwrap();
        let v = values(&[
            ("effective", "2026-02-30"),
            ("program", "kodomo"),
            ("valid_from", "2026-04-01"),
            ("recipient_number", "1234567"),
            ("copay_yen_month", "千円"),
            ("copay_rate_day", "101"),
            ("copay_yen_visit", "200%"),
            ("copay_rate_visit", "1,0"),
            ("designated_institutions", "病院\n<b>x</b>"),
            ("certificate", "C1"),
        ]);
        let errors = parse(f, &v, &ctx()).unwrap_err();
        let on = |name: &str| errors.iter().find(|e| e.field.as_deref() == Some(name)).map(|e| e.message.clone());
        assert!(on("effective").unwrap().contains("存在しない日付"));
        assert!(on("copay_yen_month").unwrap().contains("整数"), "{errors:?}");
        assert!(on("copay_rate_day").unwrap().contains("100以下"), "{errors:?}");
        // An amount takes no percent sign and a rate no thousands separator.
        assert!(on("copay_yen_visit").unwrap().contains("整数"), "{errors:?}");
        assert!(on("copay_rate_visit").unwrap().contains("整数"), "{errors:?}");
        assert!(on("copay_kind").is_some(), "{errors:?}");
        assert!(on("designated_institutions").unwrap().starts_with("2行目"), "{errors:?}");
    }

    #[test]
    fn clearing_and_setting_the_same_term_is_refused() {
        let f = form("change_certificate").unwrap();
        let v =
            values(&[("effective", "2026-04-01"), ("certificate", "C1"), ("disease", "x"), ("clear_disease", "on")]);
        let errors = parse(f, &v, &ctx()).unwrap_err();
        assert_eq!(errors[0].field.as_deref(), Some("clear_disease"));
        let v = values(&[("effective", "2026-04-01"), ("certificate", "C1"), ("clear_disease", "on")]);
        let (json, errors) = to_json(f, &v, &ctx());
        assert!(errors.is_empty());
        assert_eq!(json["disease"], Value::Null);
    }

    #[test]
    fn a_link_carries_the_resident_record_and_a_stand_in_approver() {
        let f = form("link_my_number").unwrap();
        let v = values(&[
            ("effective", "2026-04-01"),
            ("my_number", "123456789018"),
            ("resident_name", "山田 太郎"),
            ("resident_birth_date", "2015-01-01"),
            ("resident_sex", "1"),
            ("resident_address", ""),
        ]);
        let errors = parse(f, &v, &ctx()).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field.as_deref(), Some("resident_address"));
        let (json, _) = to_json(f, &v, &ctx());
        assert_eq!(json["approver"], PENDING_APPROVER);
        let (json, _) = to_json(f, &v, &Context { approver: Some("boss"), ..ctx() });
        assert_eq!(json["approver"], "boss");
        assert_eq!(json["resident_record"]["name"], "山田 太郎");
    }

    #[test]
    fn markup_is_a_field_error() {
        let f = form("move_out").unwrap();
        let v = values(&[("effective", "2026-04-01"), ("to", "<script>alert(1)</script>")]);
        let errors = parse(f, &v, &ctx()).unwrap_err();
        assert_eq!(errors[0].field.as_deref(), Some("to"));
        assert!(errors[0].message.contains("使えない記号"));
    }
}
