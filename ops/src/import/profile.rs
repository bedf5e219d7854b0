//! 取込プロファイル (import profile): how the columns of one legacy CSV layout map to the
//! fields of `register_recipient` and `grant_certificate`, read from TOML.
//!
//! ```toml
//! [import]
//! source = "vendor-a"            # the file's origin system: part of every idempotency key
//! encoding = "cp932"             # "utf-8", "cp932" or "auto"
//! header = true                  # the first row holds column names
//! date_formats = ["wareki", "%Y/%m/%d"]
//!
//! [columns]                      # field = column name (with a header) or 1-based number
//! recipient = "宛名番号"
//! name = "氏名"
//! ...
//!
//! [fixed]                        # the same value on every row, for a field with no column
//! program = "kodomo"
//!
//! [values.sex]                   # codes in the file -> codes of the command contract
//! "男" = "1"
//! ```
//!
//! Every problem is reported with its place (`columns.kana`, `import.encoding`), all at once.

use std::collections::BTreeMap;

use daicho_domain::certificate::{CapKind, CapUnit, OldCapSetting};
use daicho_domain::text::CapDefinition;
use serde::Deserialize;

/// Fields a column can feed, in the order a report lists them.
pub const FIELDS: [&str; 18] = [
    "recipient",
    "name",
    "kana",
    "birth_date",
    "sex",
    "address",
    "registered_on",
    "program",
    "certificate",
    "payer_number",
    "recipient_number",
    "valid_from",
    "valid_to",
    "income_segment",
    "copay_cap_yen",
    "copay_cap_rate",
    "disease",
    "designated_institutions",
];

/// Fields every row needs (the basic items of a registration).
const REQUIRED: [&str; 6] = ["recipient", "name", "kana", "birth_date", "sex", "address"];

/// Fields that make a row a grant too: all of them, or none.
const GRANT: [&str; 3] = ["payer_number", "recipient_number", "valid_from"];

/// Fields whose cells are dates.
pub const DATE_FIELDS: [&str; 4] = ["birth_date", "registered_on", "valid_from", "valid_to"];

/// Fields whose file codes may be translated through `[values.<field>]`.
const CODED: [&str; 3] = ["sex", "program", "income_segment"];

/// The character set of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8, with or without a BOM.
    Utf8,
    /// CP932 (Windows Shift_JIS).
    Cp932,
    /// UTF-8 when the file starts with a BOM or its first 64 KiB are UTF-8, else CP932.
    Auto,
}

/// Where a field is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ColumnRef {
    /// By the header's name.
    Name(String),
    /// By 1-based number.
    Number(usize),
}

/// One way dates are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DateFormat {
    /// 和暦: 平成25年1月1日, H25.1.1, 4250101.
    Wareki,
    /// A chrono format such as `%Y/%m/%d` or `%Y%m%d` (`iso` is `%Y-%m-%d`).
    Pattern(String),
}

/// A validated profile.
#[derive(Clone, Debug)]
pub struct Profile {
    /// The origin system (1-16 of `a-z0-9-`): part of every idempotency key.
    pub source: String,
    /// The character set.
    pub encoding: Encoding,
    /// Whether the first row holds column names.
    pub header: bool,
    /// Field delimiter.
    pub delimiter: u8,
    /// Date formats, tried in order.
    pub date_formats: Vec<DateFormat>,
    /// What the file is (shown in the summary).
    pub description: Option<String>,
    /// Values of fields that have no column, the same on every row.
    pub fixed: BTreeMap<String, String>,
    /// Columns by field.
    pub columns: BTreeMap<String, ColumnRef>,
    /// Code translations by field.
    pub values: BTreeMap<String, BTreeMap<String, String>>,
    /// How the cells of `copay_cap_yen` and `copay_cap_rate` become a self-pay cap.
    pub copay_cap: CapProfile,
    /// Separator of several designated institutions in one cell.
    pub institutions_separator: String,
}

/// The parts of a self-pay cap that a legacy file does not carry: the same on every row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapProfile {
    /// 種別 (contract name: limit, fixed, free).
    pub kind: String,
    /// The unit of the amount and the rate (month, day, visit).
    pub unit: String,
    /// 負担定義, if any.
    pub definition: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    import: RawImport,
    columns: BTreeMap<String, toml::Value>,
    #[serde(default)]
    fixed: BTreeMap<String, String>,
    #[serde(default)]
    values: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImport {
    source: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default = "auto")]
    encoding: String,
    #[serde(default = "yes")]
    header: bool,
    #[serde(default = "comma")]
    delimiter: String,
    #[serde(default = "iso")]
    date_formats: Vec<String>,
    #[serde(default = "month")]
    copay_cap_unit: String,
    #[serde(default)]
    copay_cap_kind: Option<String>,
    #[serde(default)]
    copay_cap_definition: Option<String>,
    /// The abolished 外来/入院/合算 choice of profiles written before PMH's common layout:
    /// read as the 負担定義 an old cap upcasts to.
    #[serde(default)]
    copay_cap_setting: Option<String>,
    #[serde(default = "ideographic_comma")]
    institutions_separator: String,
}

fn auto() -> String {
    "auto".into()
}
fn yes() -> bool {
    true
}
fn comma() -> String {
    ",".into()
}
fn iso() -> Vec<String> {
    vec!["iso".into()]
}
fn month() -> String {
    "month".into()
}
fn ideographic_comma() -> String {
    "、".into()
}

/// Problems of a profile, each with its place.
#[derive(Debug, Default)]
pub struct ProfileError {
    /// (place, Japanese message).
    pub problems: Vec<(String, String)>,
}

impl Profile {
    /// Reads and validates a profile.
    pub fn from_toml(text: &str) -> Result<Profile, ProfileError> {
        let raw: RawProfile = toml::from_str(text).map_err(|e| ProfileError {
            problems: vec![("(TOML)".into(), format!("プロファイルを読めません: {}", e.message()))],
        })?;
        let mut problems = Vec::new();
        let mut problem = |place: &str, message: String| problems.push((place.to_owned(), message));
        let RawImport {
            source,
            description,
            encoding,
            header,
            delimiter,
            date_formats,
            copay_cap_unit,
            copay_cap_kind,
            copay_cap_definition,
            copay_cap_setting,
            institutions_separator,
        } = raw.import;
        let source_ok = (1..=16).contains(&source.len())
            && source.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !source_ok {
            problem("import.source", "英小文字・数字・ハイフンの1〜16文字で指定してください".into());
        }
        let encoding = match encoding.to_ascii_lowercase().as_str() {
            "utf-8" | "utf8" => Encoding::Utf8,
            "cp932" | "shift_jis" | "sjis" | "windows-31j" => Encoding::Cp932,
            "auto" => Encoding::Auto,
            _ => {
                problem("import.encoding", "utf-8、cp932、auto のいずれかを指定してください".into());
                Encoding::Auto
            }
        };
        let delimiter = match delimiter.as_bytes() {
            [b] if b.is_ascii() && !b.is_ascii_alphanumeric() && *b != b'"' => *b,
            _ => {
                problem("import.delimiter", "区切り文字は半角記号1文字（, や タブ）で指定してください".into());
                b','
            }
        };
        let mut formats = Vec::new();
        if date_formats.is_empty() {
            problem("import.date_formats", "日付の書式を1つ以上指定してください".into());
        }
        for (i, f) in date_formats.iter().enumerate() {
            match f.as_str() {
                "wareki" => formats.push(DateFormat::Wareki),
                "iso" => formats.push(DateFormat::Pattern("%Y-%m-%d".into())),
                p if p.contains("%Y") && p.contains("%m") && p.contains("%d") => {
                    formats.push(DateFormat::Pattern(p.to_owned()));
                }
                _ => problem(
                    &format!("import.date_formats[{i}]"),
                    "wareki、iso、または %Y・%m・%d を含む書式を指定してください".into(),
                ),
            }
        }
        if !CapUnit::ALL.iter().any(|u| u.as_str() == copay_cap_unit) {
            problem("import.copay_cap_unit", "month、day、visit のいずれかを指定してください".into());
        }
        if let Some(kind) = &copay_cap_kind
            && !CapKind::ALL.iter().any(|k| k.as_str() == kind)
        {
            problem("import.copay_cap_kind", "limit、fixed、free のいずれかを指定してください".into());
        }
        // A profile written before PMH's layout (neither a kind nor a definition) keeps what it
        // always meant: its setting, outpatient when absent, as 負担定義. So its rows give the
        // same commands as before and import again as 取込済み.
        let old_form = copay_cap_kind.is_none() && copay_cap_definition.is_none();
        let copay_cap_setting = copay_cap_setting.or_else(|| old_form.then(|| "outpatient".to_owned()));
        let old_setting = match copay_cap_setting.as_deref() {
            None => None,
            Some("outpatient") => Some(OldCapSetting::Outpatient.label()),
            Some("inpatient") => Some(OldCapSetting::Inpatient.label()),
            Some("combined") => Some(OldCapSetting::Combined.label()),
            Some(_) => {
                problem(
                    "import.copay_cap_setting",
                    "outpatient、inpatient、combined のいずれかを指定してください".into(),
                );
                None
            }
        };
        if old_setting.is_some() && copay_cap_definition.is_some() {
            problem(
                "import.copay_cap_setting",
                "copay_cap_setting は廃止された指定です。copay_cap_definition だけを指定してください".into(),
            );
        }
        if let Some(d) = &copay_cap_definition
            && let Err(e) = CapDefinition::parse(d)
        {
            problem("import.copay_cap_definition", e.message());
        }
        let copay_cap = CapProfile {
            kind: copay_cap_kind.unwrap_or_else(|| CapKind::Limit.as_str().to_owned()),
            unit: copay_cap_unit,
            definition: copay_cap_definition.or(old_setting.map(str::to_owned)),
        };
        if institutions_separator.is_empty() {
            problem("import.institutions_separator", "区切り文字を指定してください".into());
        }
        let mut columns = BTreeMap::new();
        for (field, value) in raw.columns {
            let place = format!("columns.{field}");
            if field == "my_number" {
                problem(
                    &place,
                    "個人番号は取り込みません。住民記録との照合と別の職員の承認を経て、画面から登録してください".into(),
                );
                continue;
            }
            if !FIELDS.contains(&field.as_str()) {
                problem(&place, format!("取り込める項目ではありません（{}）", FIELDS.join("、")));
                continue;
            }
            let column = match value {
                toml::Value::String(name) if !name.trim().is_empty() => {
                    if !header {
                        problem(&place, "見出し行がない（header = false）ときは列番号で指定してください".into());
                    }
                    ColumnRef::Name(name.trim().to_owned())
                }
                toml::Value::Integer(n) if n >= 1 => match usize::try_from(n) {
                    Ok(n) => ColumnRef::Number(n),
                    Err(_) => {
                        problem(&place, "列番号が大きすぎます".into());
                        continue;
                    }
                },
                _ => {
                    problem(&place, "列名（文字列）または1から始まる列番号で指定してください".into());
                    continue;
                }
            };
            columns.insert(field, column);
        }
        for field in REQUIRED {
            if !columns.contains_key(field) {
                problem(&format!("columns.{field}"), "必須の項目です".into());
            }
        }
        for (field, value) in &raw.fixed {
            let place = format!("fixed.{field}");
            if !FIELDS.contains(&field.as_str()) || REQUIRED.contains(&field.as_str()) {
                problem(&place, "固定値にできるのは制度・証・番号・期間などの認定の項目です".into());
            } else if columns.contains_key(field) {
                problem(&place, "列と固定値の両方に指定されています".into());
            } else if value.trim().is_empty() {
                problem(&place, "値を指定してください".into());
            }
        }
        let given = |f: &str| columns.contains_key(f) || raw.fixed.contains_key(f);
        let grant_fields = GRANT.iter().filter(|f| given(f)).count();
        if grant_fields != 0 && grant_fields != GRANT.len() {
            problem("columns", format!("認定も取り込むときは {} をすべて指定してください", GRANT.join("、")));
        }
        if grant_fields != 0 && !given("program") {
            problem("fixed.program", "制度を fixed.program か columns.program で指定してください".into());
        }
        if grant_fields == 0 {
            for field in FIELDS.iter().skip(7).filter(|f| given(f)) {
                problem(&format!("columns.{field}"), "認定（公費負担者番号など）を取り込まないときは使えません".into());
            }
        }
        for field in raw.values.keys() {
            if !CODED.contains(&field.as_str()) {
                problem(&format!("values.{field}"), format!("読み替えできるのは {} です", CODED.join("、")));
            }
        }
        if !problems.is_empty() {
            return Err(ProfileError { problems });
        }
        Ok(Profile {
            source,
            encoding,
            header,
            delimiter,
            date_formats: formats,
            description,
            fixed: raw.fixed,
            columns,
            values: raw.values,
            copay_cap,
            institutions_separator,
        })
    }

    /// Whether rows also grant a certificate.
    pub fn grants(&self) -> bool {
        self.columns.contains_key("payer_number") || self.fixed.contains_key("payer_number")
    }

    /// The file's code translated for `field`: unchanged when the profile has no table for the
    /// field, `None` when the table lacks the code.
    pub fn translate<'a>(&'a self, field: &str, raw: &'a str) -> Option<&'a str> {
        match self.values.get(field) {
            None => Some(raw),
            Some(table) => table.get(raw).map(String::as_str),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[import]\nsource = \"hand\"\n[columns]\nrecipient = 1\nname = 2\nkana = 3\n\
                           birth_date = 4\nsex = 5\naddress = 6\n";

    fn places(text: &str) -> Vec<String> {
        Profile::from_toml(text).unwrap_err().problems.into_iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn a_minimal_profile_registers_only() {
        let p = Profile::from_toml(MINIMAL).unwrap();
        assert!(!p.grants());
        assert_eq!(p.encoding, Encoding::Auto);
        assert_eq!(p.date_formats, vec![DateFormat::Pattern("%Y-%m-%d".into())]);
        assert_eq!(p.columns.get("kana"), Some(&ColumnRef::Number(3)));
    }

    #[test]
    fn every_problem_is_named_by_place() {
        let text = "[import]\nsource = \"Vendor A\"\nencoding = \"latin1\"\ndate_formats = [\"wareki\", \"%d\"]\n\
                    [columns]\nrecipient = 1\nname = \"氏名\"\nkana = 0\nmy_number = 7\nfoo = 8\npayer_number = 9\n\
                    [values.address]\n\"x\" = \"y\"\n";
        let got = places(text);
        for expected in [
            "import.source",
            "import.encoding",
            "import.date_formats[1]",
            "columns.kana",
            "columns.my_number",
            "columns.foo",
            "columns.birth_date",
            "columns.sex",
            "columns.address",
            "columns",
            "values.address",
        ] {
            assert!(got.iter().any(|p| p == expected), "{expected} missing from {got:?}");
        }
        // A column name needs a header row.
        let no_header = MINIMAL
            .replace("source = \"hand\"", "source = \"hand\"\nheader = false")
            .replace("name = 2", "name = \"氏名\"");
        assert_eq!(places(&no_header), vec!["columns.name"]);
    }

    #[test]
    fn grants_need_a_program_and_all_their_columns() {
        let grant = format!("{MINIMAL}payer_number = 7\nrecipient_number = 8\nvalid_from = 9\n");
        assert_eq!(places(&grant), vec!["fixed.program"]);
        let fixed = format!("{grant}[fixed]\nprogram = \"kodomo\"\n");
        assert!(Profile::from_toml(&fixed).unwrap().grants());
        let both = format!("{grant}program = 10\n[fixed]\nprogram = \"kodomo\"\nname = \"x\"\n");
        assert_eq!(places(&both), vec!["fixed.name", "fixed.program"]);
        let fixed_payer = format!(
            "{MINIMAL}recipient_number = 8\nvalid_from = 9\n[fixed]\nprogram = \"kodomo\"\npayer_number = \"88139993\"\n"
        );
        assert!(Profile::from_toml(&fixed_payer).unwrap().grants());
        let partial = format!("{MINIMAL}payer_number = 7\ndisease = 10\n");
        let got = places(&partial);
        assert!(got.contains(&"columns".to_owned()), "{got:?}");
        let disease_only = format!("{MINIMAL}disease = 10\n");
        assert_eq!(places(&disease_only), vec!["columns.disease"]);
    }
}
