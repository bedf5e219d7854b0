//! 自治体設定 (municipality configuration): the programs a municipality runs, as data.
//!
//! Read from TOML (the demo さくら市 file is bundled as [`DEMO_TOML`]) into validated types. A
//! configuration that parses is internally consistent: program keys and PMH certificate type
//! ids are unique, payer numbers pass their check digit, belong to the municipality's
//! prefecture and carry the program's 法別番号 (national) or a prefectural 80-99 code (local).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Deserialize;

use crate::calendar::{AgeLimit, Era, EraTable};
use crate::error::ValueError;
use crate::numbers::{MunicipalityCode, PayerNumber, RecipientNumberRule};

/// The bundled demo configuration for the fictional さくら市 (東京都, 実施機関番号 999).
pub const DEMO_TOML: &str = include_str!("../data/sakura.toml");

/// Names of 法別番号 and 分類番号 (data from PMH.md).
const CATALOGUE_TOML: &str = include_str!("../data/catalogue.toml");

/// A name that a spreadsheet would run as a formula (it reaches the fee statement's CSV files).
const FORMULA_PROBLEM: &str = "先頭に = + - @ は使えません（表計算ソフトで数式として扱われるため）";

/// 制度キー (program key): names a program in commands and files; `[a-z][a-z0-9_]{0,31}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProgramKey(String);

impl ProgramKey {
    /// Parses a key: a lower-case ASCII letter, then up to 31 lower-case letters, digits or `_`.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let mut bytes = raw.bytes();
        let Some(first) = bytes.next() else {
            return Err(ValueError::Required);
        };
        if raw.len() > 32 {
            return Err(ValueError::TooLong { chars_max: 32 });
        }
        if !first.is_ascii_lowercase() || !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(ValueError::Format {
                expected: "半角英小文字で始まる英小文字・数字・_ の32文字以内"
            });
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProgramKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// National (法別番号) or local (地単公費 分類番号) program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProgramKind {
    /// A national public-expense program; `law_code` is its 法別番号 ("15").
    National { law_code: String },
    /// A local program (地方単独医療費助成); `category` is its 分類番号 ("001").
    Local { category: String },
}

/// How a program's records are sent to PMH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmhMode {
    /// 全件連携: every current record each time.
    Full,
    /// 差分履歴連携: records changed since the last send, named by history keys.
    DiffHistory,
}

impl PmhMode {
    /// The name used in configuration and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            PmhMode::Full => "full",
            PmhMode::DiffHistory => "diff_history",
        }
    }
}

/// 制度 (program): one subsidy scheme as configured by the municipality.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// Key used in commands.
    pub key: ProgramKey,
    /// Japanese name (こども医療費助成).
    pub name: String,
    /// National or local.
    pub kind: ProgramKind,
    /// `orgSpecificCertificateTypeId` registered in PMH's program master.
    pub pmh_certificate_type_id: String,
    /// Full or diff-history.
    pub pmh_mode: PmhMode,
    /// Name printed on the certificate and sent as `certificationName`.
    pub certificate_name: String,
    /// 公費負担者番号 the program may use (a payer number belongs to one certificate version).
    pub payer_numbers: Vec<PayerNumber>,
    /// Whether every certificate version must carry a payer number (PMH's program master
    /// requires one for national programs; some local programs print none). Default true.
    pub payer_number_required: bool,
    /// How recipient numbers are checked.
    pub recipient_number_rule: RecipientNumberRule,
    /// Age limit, if any.
    pub age_limit: Option<AgeLimit>,
    /// How many days ahead a grant or renewal may be decided (effective date and first day).
    pub advance_days: u32,
    /// Days allowed between the end of a span and the start of its renewal (0: contiguous).
    pub renewal_gap_days: u32,
    /// 実施主体 department responsible (for statements), if set.
    pub department: Option<String>,
    /// How its paper certificate is printed.
    pub certificate: CertificateTemplate,
}

/// Paper size of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaperSize {
    /// A4 portrait.
    A4,
    /// A folded card, 128 mm x 91 mm (the common 受給者証 card).
    Card,
}

impl PaperSize {
    /// Code in the configuration (`a4`, `card`).
    pub fn code(self) -> &'static str {
        match self {
            PaperSize::A4 => "a4",
            PaperSize::Card => "card",
        }
    }
}

/// An item on the face of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaceItem {
    PayerNumber,
    RecipientNumber,
    Name,
    Kana,
    BirthDate,
    Sex,
    Address,
    Validity,
    CopayCap,
    IncomeSegment,
    DesignatedInstitutions,
    Disease,
    IssueDate,
    Issuer,
    Notes,
    Contact,
}

impl FaceItem {
    /// Every item, in the default print order.
    pub const ALL: [FaceItem; 16] = [
        FaceItem::PayerNumber,
        FaceItem::RecipientNumber,
        FaceItem::Name,
        FaceItem::Kana,
        FaceItem::BirthDate,
        FaceItem::Sex,
        FaceItem::Address,
        FaceItem::Validity,
        FaceItem::CopayCap,
        FaceItem::IncomeSegment,
        FaceItem::DesignatedInstitutions,
        FaceItem::Disease,
        FaceItem::IssueDate,
        FaceItem::Issuer,
        FaceItem::Notes,
        FaceItem::Contact,
    ];

    /// Code in the configuration.
    pub fn code(self) -> &'static str {
        match self {
            FaceItem::PayerNumber => "payer_number",
            FaceItem::RecipientNumber => "recipient_number",
            FaceItem::Name => "name",
            FaceItem::Kana => "kana",
            FaceItem::BirthDate => "birth_date",
            FaceItem::Sex => "sex",
            FaceItem::Address => "address",
            FaceItem::Validity => "validity",
            FaceItem::CopayCap => "copay_cap",
            FaceItem::IncomeSegment => "income_segment",
            FaceItem::DesignatedInstitutions => "designated_institutions",
            FaceItem::Disease => "disease",
            FaceItem::IssueDate => "issue_date",
            FaceItem::Issuer => "issuer",
            FaceItem::Notes => "notes",
            FaceItem::Contact => "contact",
        }
    }

    /// The label printed beside the value.
    pub fn label(self) -> &'static str {
        match self {
            FaceItem::PayerNumber => "公費負担者番号",
            FaceItem::RecipientNumber => "公費受給者番号",
            FaceItem::Name => "氏名",
            FaceItem::Kana => "フリガナ",
            FaceItem::BirthDate => "生年月日",
            FaceItem::Sex => "性別",
            FaceItem::Address => "住所",
            FaceItem::Validity => "有効期間",
            FaceItem::CopayCap => "自己負担上限額",
            FaceItem::IncomeSegment => "所得区分",
            FaceItem::DesignatedInstitutions => "指定医療機関",
            FaceItem::Disease => "疾病名",
            FaceItem::IssueDate => "交付日",
            FaceItem::Issuer => "交付者",
            FaceItem::Notes => "医療機関の方へ",
            FaceItem::Contact => "問い合わせ先",
        }
    }

    /// Parses a code.
    pub fn parse(code: &str) -> Option<FaceItem> {
        FaceItem::ALL.into_iter().find(|i| i.code() == code)
    }
}

/// A program's certificate as printed: size, items in print order, and the fixed texts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateTemplate {
    pub size: PaperSize,
    pub items: Vec<FaceItem>,
    /// 交付者 (for example さくら市長).
    pub issuer: String,
    /// Notes for clinics.
    pub notes: String,
    /// Contact (department and telephone).
    pub contact: String,
}

/// The municipality running the ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Municipality {
    /// Name (さくら市).
    pub name: String,
    /// 全国地方公共団体コード.
    pub code: MunicipalityCode,
    /// 実施機関番号 in its payer numbers (3 digits).
    pub institution_number: String,
}

/// Names of 都道府県番号, 法別番号 and 分類番号.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    /// 都道府県番号 -> name (東京都).
    pub prefectures: BTreeMap<String, String>,
    /// 法別番号 -> name.
    pub law_codes: BTreeMap<String, String>,
    /// 分類番号 -> name.
    pub categories: BTreeMap<String, String>,
}

/// A whole, validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The municipality.
    pub municipality: Municipality,
    programs: Vec<Program>,
    /// Eras for printing dates: the built-in table plus any `[[era]]` entries.
    pub eras: EraTable,
    /// Names of law codes and categories.
    pub catalogue: Catalogue,
    /// How the municipality works with PMH (the `[pmh]` section).
    pub pmh: PmhSettings,
}

/// The `[pmh]` section: how the municipality works with PMH.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmhSettings {
    /// Days after which a batch with no registration results recorded is flagged on the PMH
    /// page (`results_due_days`, default [`PmhSettings::RESULTS_DUE_DAYS`]).
    pub results_due_days: u32,
    /// `[pmh.schedule]`: the batches `daicho serve` makes itself every day.
    pub schedule: Option<PmhSchedule>,
    /// `[pmh.delivery]`: where scheduled batches are delivered.
    pub delivery: Option<PmhDelivery>,
}

/// `[pmh.schedule]`: every day at `time` (Japan time) a batch of each program of `programs`
/// (all when empty), in `mode` (each program's own when `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmhSchedule {
    pub time: chrono::NaiveTime,
    pub programs: Vec<ProgramKey>,
    pub mode: Option<PmhMode>,
}

/// `[pmh.delivery]`: a folder the Digital Agency's API連携バッチ (or another program) reads;
/// each file written under a temporary name, synced, then renamed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmhDelivery {
    /// An absolute path.
    pub folder: std::path::PathBuf,
    /// Which of a batch's data files: `json`, `csv`.
    pub files: Vec<String>,
    /// The files' mode (owner read-write; group read or read-write at most).
    pub file_mode: u32,
    /// The file name without its extension: `{program}`, `{mode}`, `{from}`, `{to}`, `{batch}`,
    /// `{date}` (YYYYMMDD) and the characters `A-Za-z0-9_.-`.
    pub name: String,
}

impl PmhDelivery {
    /// The default name: daicho's own file names.
    pub const NAME: &'static str = "{program}_{mode}_{from}-{to}";
    /// The name tokens.
    pub const TOKENS: [&'static str; 6] = ["{program}", "{mode}", "{from}", "{to}", "{batch}", "{date}"];
}

impl PmhSettings {
    /// The default of `results_due_days`.
    pub const RESULTS_DUE_DAYS: u32 = 7;
    /// The largest `results_due_days` accepted.
    pub const RESULTS_DUE_DAYS_MAX: u32 = 365;
}

impl Default for PmhSettings {
    fn default() -> Self {
        PmhSettings { results_due_days: Self::RESULTS_DUE_DAYS, schedule: None, delivery: None }
    }
}

/// Why a configuration was refused: every problem found, each with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// `(place, message)` pairs, for example `("program[2].payer_numbers[0]", "...")`.
    pub problems: Vec<(String, String)>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (place, message)) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{place}: {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    municipality: RawMunicipality,
    #[serde(default)]
    program: Vec<RawProgram>,
    #[serde(default)]
    era: Vec<RawEra>,
    pmh: Option<RawPmh>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPmh {
    results_due_days: Option<u32>,
    schedule: Option<RawSchedule>,
    delivery: Option<RawDelivery>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    time: String,
    #[serde(default)]
    programs: Vec<String>,
    mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDelivery {
    folder: String,
    files: Option<Vec<String>>,
    file_mode: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMunicipality {
    name: String,
    code: String,
    institution_number: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProgram {
    key: String,
    name: String,
    kind: String,
    law_code: Option<String>,
    category: Option<String>,
    pmh_certificate_type_id: String,
    pmh_mode: String,
    certificate_name: String,
    payer_numbers: Vec<String>,
    payer_number_required: Option<bool>,
    recipient_number: Option<String>,
    age_limit: Option<RawAgeLimit>,
    advance_days: Option<u32>,
    renewal_gap_days: Option<u32>,
    department: Option<String>,
    certificate: Option<RawCertificate>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    size: Option<String>,
    items: Option<Vec<String>>,
    issuer: Option<String>,
    notes: Option<String>,
    contact: Option<String>,
}

/// Longest fixed text on a certificate (issuer, notes, contact), in characters.
pub const CERTIFICATE_TEXT_CHARS_MAX: usize = 400;

/// Default notes for clinics.
pub const DEFAULT_CERTIFICATE_NOTES: &str =
    "医療機関等で受診する際は、健康保険の資格確認書類（マイナ保険証等）とともにこの受給者証を提示してください。";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgeLimit {
    rule: String,
    age: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEra {
    name: String,
    initial: char,
    first_day: String,
    code: u8,
}

/// Collects problems while validating.
struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, place: impl Into<String>, message: impl Into<String>) {
        self.0.push((place.into(), message.into()));
    }

    fn value<T>(&mut self, place: impl Into<String>, result: Result<T, ValueError>) -> Option<T> {
        result.map_err(|e| self.add(place, e.message())).ok()
    }
}

fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

/// A text of the configuration PMH would show with "●" somewhere: where it is (its path in the
/// file) and the characters, as `U+XXXX`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmhTextWarning {
    pub field: String,
    pub characters: Vec<String>,
}

impl Program {
    /// The texts of this program sent to PMH (the certificate's name, the card's fixed texts it
    /// prints) that hold characters PMH shows as "●".
    pub fn pmh_warnings(&self) -> Vec<PmhTextWarning> {
        let t = &self.certificate;
        let printed = |item: FaceItem| t.items.contains(&item);
        [
            ("certificate_name", &self.certificate_name, true),
            ("certificate.issuer", &t.issuer, printed(FaceItem::Issuer)),
            ("certificate.notes", &t.notes, printed(FaceItem::Notes)),
            ("certificate.contact", &t.contact, printed(FaceItem::Contact)),
        ]
        .into_iter()
        // Only what is sent: a text the card does not print is not in the feed.
        .filter(|(_, _, sent)| *sent)
        .filter_map(|(field, text, _)| {
            // Line breaks are sent as spaces.
            let characters: Vec<String> = crate::text::pmh_unrepresentable(&text.replace('\n', " "))
                .iter()
                .map(|u| format!("U+{:04X}", u32::from(u.ch)))
                .collect();
            (!characters.is_empty()).then(|| PmhTextWarning { field: field.to_owned(), characters })
        })
        .collect()
    }
}

impl Config {
    /// The bundled demo configuration (さくら市).
    pub fn demo() -> Result<Config, ConfigError> {
        Config::from_toml(DEMO_TOML)
    }

    /// Parses and validates a configuration file's text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let single = |place: &str, message: String| ConfigError { problems: vec![(place.to_owned(), message)] };
        let raw: RawConfig = toml::from_str(text).map_err(|e| single("TOML", e.to_string()))?;
        let catalogue: Catalogue =
            toml::from_str(CATALOGUE_TOML).map_err(|e| single("catalogue.toml", e.to_string()))?;
        let mut problems = Problems(Vec::new());

        let code = problems.value("municipality.code", MunicipalityCode::parse(&raw.municipality.code));
        if !is_digits(&raw.municipality.institution_number, 3) {
            problems.add("municipality.institution_number", "半角数字3桁で指定してください");
        }
        if let Some(code) = &code
            && !catalogue.prefectures.contains_key(&code.prefecture())
        {
            problems.add("municipality.code", "都道府県番号（01〜47）が正しくありません");
        }
        if raw.municipality.name.trim().is_empty() {
            problems.add("municipality.name", "入力してください");
        }
        if crate::text::formula_like(raw.municipality.name.trim()) {
            problems.add("municipality.name", FORMULA_PROBLEM);
        }
        if raw.program.is_empty() {
            problems.add("program", "制度を1つ以上設定してください");
        }

        let prefecture = code.map(|c| c.prefecture());
        let municipality_name = raw.municipality.name.trim().to_owned();
        let mut programs = Vec::new();
        let mut keys = BTreeSet::new();
        let mut type_ids = BTreeSet::new();
        let mut payers = BTreeSet::new();
        for (i, p) in raw.program.into_iter().enumerate() {
            let at = |field: &str| format!("program[{i}].{field}");
            let key = problems.value(at("key"), ProgramKey::parse(&p.key));
            if let Some(key) = &key
                && !keys.insert(key.clone())
            {
                problems.add(at("key"), "制度キーが重複しています");
            }
            let type_id = p.pmh_certificate_type_id;
            if type_id.is_empty() || type_id.len() > 50 || !type_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                problems.add(at("pmh_certificate_type_id"), "半角英数字50文字以内で指定してください");
            } else if !type_ids.insert(type_id.clone()) {
                problems.add(at("pmh_certificate_type_id"), "PMHの証種別IDが重複しています");
            }
            if p.name.trim().is_empty() {
                problems.add(at("name"), "入力してください");
            }
            for (field, text) in [
                ("name", Some(&p.name)),
                ("certificate_name", Some(&p.certificate_name)),
                ("department", p.department.as_ref()),
            ] {
                if text.is_some_and(|t| crate::text::formula_like(t.trim())) {
                    problems.add(at(field), FORMULA_PROBLEM);
                }
            }
            if p.certificate_name.trim().is_empty() || p.certificate_name.chars().count() > 100 {
                problems.add(at("certificate_name"), "1〜100文字で指定してください");
            }
            let kind = match (p.kind.as_str(), p.law_code, p.category) {
                ("national", Some(law), None) => {
                    let ok = is_digits(&law, 2) && ("01".."80").contains(&law.as_str());
                    if !ok {
                        problems.add(at("law_code"), "法別番号は01〜79の半角数字2桁です");
                    }
                    Some(ProgramKind::National { law_code: law })
                }
                ("local", None, Some(category)) => {
                    if !catalogue.categories.contains_key(&category) {
                        problems.add(at("category"), "地単公費の分類番号（001〜013）を指定してください");
                    }
                    Some(ProgramKind::Local { category })
                }
                ("national", _, _) => {
                    problems.add(at("kind"), "national の制度には law_code だけを指定してください");
                    None
                }
                ("local", _, _) => {
                    problems.add(at("kind"), "local の制度には category だけを指定してください");
                    None
                }
                _ => {
                    problems.add(at("kind"), "national または local を指定してください");
                    None
                }
            };
            let pmh_mode = match p.pmh_mode.as_str() {
                "full" => Some(PmhMode::Full),
                "diff_history" => Some(PmhMode::DiffHistory),
                _ => {
                    problems.add(at("pmh_mode"), "full または diff_history を指定してください");
                    None
                }
            };
            let rule = match (p.recipient_number.as_deref(), &kind) {
                (Some("checked"), _) | (None, Some(ProgramKind::National { .. })) => {
                    Some(RecipientNumberRule::Checked7)
                }
                (Some("free"), _) | (None, _) => Some(RecipientNumberRule::Free),
                (Some(_), _) => {
                    problems.add(at("recipient_number"), "checked または free を指定してください");
                    None
                }
            };
            let payer_number_required = p.payer_number_required.unwrap_or(true);
            if p.payer_numbers.is_empty() && payer_number_required {
                problems.add(at("payer_numbers"), "公費負担者番号を1つ以上指定してください");
            }
            let mut payer_numbers = Vec::new();
            for (j, raw_payer) in p.payer_numbers.iter().enumerate() {
                let place = at(&format!("payer_numbers[{j}]"));
                let Some(payer) = problems.value(place.clone(), PayerNumber::parse(raw_payer)) else {
                    continue;
                };
                if !payers.insert(payer) {
                    problems.add(place.clone(), "公費負担者番号が他の制度と重複しています");
                }
                if prefecture.as_ref().is_some_and(|pref| *pref != payer.prefecture()) {
                    problems.add(place.clone(), "都道府県番号が自治体コードと一致しません");
                }
                match &kind {
                    Some(ProgramKind::National { law_code }) if *law_code != payer.law_code() => {
                        problems.add(place.clone(), "法別番号が制度の law_code と一致しません");
                    }
                    Some(ProgramKind::Local { .. }) if !("80"..="99").contains(&payer.law_code().as_str()) => {
                        problems.add(place.clone(), "地単公費の法別番号は80〜99です");
                    }
                    _ => {}
                }
                payer_numbers.push(payer);
            }
            let age_limit = match p.age_limit {
                None => Some(None),
                Some(RawAgeLimit { rule, age }) => {
                    if !(1..=120).contains(&age) {
                        problems.add(at("age_limit.age"), "年齢は1〜120で指定してください");
                    }
                    match rule.as_str() {
                        "fiscal_year_end_after" => Some(Some(AgeLimit::FiscalYearEndAfter { age })),
                        "month_end_after" => Some(Some(AgeLimit::MonthEndAfter { age })),
                        "under_age" => Some(Some(AgeLimit::UnderAge { age })),
                        _ => {
                            problems.add(
                                at("age_limit.rule"),
                                "fiscal_year_end_after, month_end_after, under_age のいずれかを指定してください",
                            );
                            None
                        }
                    }
                }
            };
            let advance_days = p.advance_days.unwrap_or(60);
            let renewal_gap_days = p.renewal_gap_days.unwrap_or(0);
            if advance_days > 366 {
                problems.add(at("advance_days"), "366日以内で指定してください");
            }
            if renewal_gap_days > 366 {
                problems.add(at("renewal_gap_days"), "366日以内で指定してください");
            }
            let certificate = certificate_template(
                p.certificate.unwrap_or_default(),
                kind.as_ref(),
                &municipality_name,
                &mut |field, message| problems.add(at(&format!("certificate.{field}")), message),
            );
            if let (Some(key), Some(kind), Some(pmh_mode), Some(rule), Some(age_limit), Some(certificate)) =
                (key, kind, pmh_mode, rule, age_limit, certificate)
            {
                programs.push(Program {
                    key,
                    name: p.name,
                    kind,
                    pmh_certificate_type_id: type_id,
                    pmh_mode,
                    certificate_name: p.certificate_name,
                    payer_numbers,
                    payer_number_required,
                    recipient_number_rule: rule,
                    age_limit,
                    advance_days,
                    renewal_gap_days,
                    department: p.department,
                    certificate,
                });
            }
        }

        let mut eras = Vec::new();
        for (i, e) in raw.era.into_iter().enumerate() {
            let first_day = problems.value(format!("era[{i}].first_day"), crate::calendar::parse_date(&e.first_day));
            if let Some(first_day) = first_day {
                eras.push(Era { name: e.name, initial: e.initial, first_day, code: e.code });
            }
        }
        let eras = EraTable::with_additions(eras).map_err(|m| problems.add("era", m)).ok();
        let mut pmh = PmhSettings::default();
        let raw_pmh = raw.pmh.unwrap_or(RawPmh { results_due_days: None, schedule: None, delivery: None });
        if let Some(days) = raw_pmh.results_due_days {
            if (1..=PmhSettings::RESULTS_DUE_DAYS_MAX).contains(&days) {
                pmh.results_due_days = days;
            } else {
                problems.add("pmh.results_due_days", "1〜365の日数で指定してください");
            }
        }
        if let Some(s) = raw_pmh.schedule {
            let time = chrono::NaiveTime::parse_from_str(&s.time, "%H:%M")
                .map_err(|_| problems.add("pmh.schedule.time", "時刻を HH:MM（24時間、日本時間）で指定してください"))
                .ok();
            let mut keys = Vec::new();
            for (i, k) in s.programs.iter().enumerate() {
                match ProgramKey::parse(k).ok().filter(|k| programs.iter().any(|p: &Program| p.key == *k)) {
                    Some(k) if !keys.contains(&k) => keys.push(k),
                    Some(_) => problems.add(format!("pmh.schedule.programs[{i}]"), "制度が重複しています"),
                    None => problems.add(format!("pmh.schedule.programs[{i}]"), "設定にない制度です"),
                }
            }
            let mode = match s.mode.as_deref() {
                None => Some(None),
                Some("diff") => Some(Some(PmhMode::DiffHistory)),
                Some("full") => Some(Some(PmhMode::Full)),
                Some(_) => {
                    problems.add("pmh.schedule.mode", "diff または full を指定してください（省略: 制度ごとの方式）");
                    None
                }
            };
            if let (Some(time), Some(mode)) = (time, mode) {
                pmh.schedule = Some(PmhSchedule { time, programs: keys, mode });
            }
        }
        if let Some(d) = raw_pmh.delivery {
            let folder = std::path::PathBuf::from(&d.folder);
            let mut ok = true;
            if !folder.is_absolute() || d.folder.chars().any(char::is_control) {
                problems.add("pmh.delivery.folder", "絶対パスで指定してください");
                ok = false;
            }
            let files = d.files.unwrap_or_else(|| vec!["json".to_owned()]);
            if files.is_empty() || files.iter().any(|f| f != "json" && f != "csv") {
                problems.add("pmh.delivery.files", "\"json\"、\"csv\" から1つ以上指定してください");
                ok = false;
            }
            let file_mode = match d.file_mode.as_deref() {
                None => Some(0o600),
                Some(m) => u32::from_str_radix(m, 8).ok().filter(|m| matches!(*m, 0o600 | 0o640 | 0o660)),
            };
            if file_mode.is_none() {
                problems.add(
                    "pmh.delivery.file_mode",
                    "\"0600\"、\"0640\"、\"0660\" のいずれかです（他人が読める権限は付けられません）",
                );
                ok = false;
            }
            let name = d.name.unwrap_or_else(|| PmhDelivery::NAME.to_owned());
            let mut rest = name.clone();
            for t in PmhDelivery::TOKENS {
                rest = rest.replace(t, "");
            }
            // Two programs' batches can end at the same positions: the program must be named.
            let unique = name.contains("{batch}")
                || (name.contains("{program}") && name.contains("{from}") && name.contains("{to}"));
            if name.is_empty()
                || !rest.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
                || name.starts_with('.')
                || !unique
            {
                problems.add(
                    "pmh.delivery.name",
                    "{program} {mode} {from} {to} {batch} {date} と英数字・_.- で指定し、{batch} か、{program} と {from} と {to} を含めてください",
                );
                ok = false;
            }
            if let (true, Some(file_mode)) = (ok, file_mode) {
                pmh.delivery = Some(PmhDelivery { folder, files, file_mode, name });
            }
        }

        match (problems.0.is_empty(), code, eras) {
            (true, Some(code), Some(eras)) => Ok(Config {
                municipality: Municipality {
                    name: raw.municipality.name,
                    code,
                    institution_number: raw.municipality.institution_number,
                },
                programs,
                eras,
                catalogue,
                pmh,
            }),
            _ => Err(ConfigError { problems: problems.0 }),
        }
    }

    /// All programs, in file order.
    pub fn programs(&self) -> &[Program] {
        &self.programs
    }

    /// The program named `key`.
    pub fn program(&self, key: &ProgramKey) -> Option<&Program> {
        self.program_by_key(key.as_str())
    }

    /// The program whose key is `key` (a key as read models store it).
    pub fn program_by_key(&self, key: &str) -> Option<&Program> {
        self.programs.iter().find(|p| p.key.as_str() == key)
    }

    /// The name of the municipality's prefecture (東京都).
    pub fn prefecture_name(&self) -> Option<&str> {
        self.catalogue.prefectures.get(&self.municipality.code.prefecture()).map(String::as_str)
    }

    /// The Japanese name of a program's 法別番号 or 分類番号, if catalogued.
    pub fn kind_label(&self, program: &Program) -> Option<&str> {
        match &program.kind {
            ProgramKind::National { law_code } => self.catalogue.law_codes.get(law_code),
            ProgramKind::Local { category } => self.catalogue.categories.get(category),
        }
        .map(String::as_str)
    }
}

/// The certificate template of a program: the configured one, or by default an A4 sheet with
/// every item (national programs) or a card without address and clinics (local programs).
fn certificate_template(
    raw: RawCertificate,
    kind: Option<&ProgramKind>,
    municipality: &str,
    problem: &mut dyn FnMut(String, &str),
) -> Option<CertificateTemplate> {
    let local = matches!(kind, Some(ProgramKind::Local { .. }));
    let mut ok = true;
    let size = match raw.size.as_deref() {
        None if local => PaperSize::Card,
        None | Some("a4") => PaperSize::A4,
        Some("card") => PaperSize::Card,
        Some(_) => {
            problem("size".into(), "a4 または card を指定してください");
            ok = false;
            PaperSize::A4
        }
    };
    let items = match raw.items {
        None if local => FaceItem::ALL
            .into_iter()
            .filter(|i| !matches!(i, FaceItem::Address | FaceItem::DesignatedInstitutions | FaceItem::Disease))
            .collect(),
        None => FaceItem::ALL.to_vec(),
        Some(codes) => {
            let mut items = Vec::new();
            for (j, code) in codes.iter().enumerate() {
                match FaceItem::parse(code) {
                    Some(i) if items.contains(&i) => {
                        problem(format!("items[{j}]"), "同じ項目が重複しています");
                        ok = false;
                    }
                    Some(i) => items.push(i),
                    None => {
                        problem(
                            format!("items[{j}]"),
                            "券面の項目名ではありません（payer_number, name, validity など）",
                        );
                        ok = false;
                    }
                }
            }
            if items.is_empty() {
                problem("items".into(), "項目を1つ以上指定してください");
                ok = false;
            }
            items
        }
    };
    let mut text = |field: &str, value: Option<String>, default: String| {
        let v = value.unwrap_or(default);
        if v.chars().count() > CERTIFICATE_TEXT_CHARS_MAX || v.chars().any(|c| c.is_control() && c != '\n') {
            problem(field.into(), "400文字以内で、改行以外の制御文字を含めずに指定してください");
            ok = false;
        }
        v
    };
    let issuer = text("issuer", raw.issuer, format!("{municipality}長"));
    let notes = text("notes", raw.notes, DEFAULT_CERTIFICATE_NOTES.to_owned());
    let contact = text("contact", raw.contact, String::new());
    ok.then_some(CertificateTemplate { size, items, issuer, notes, contact })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ProgramKey {
        ProgramKey::parse(s).unwrap()
    }

    #[test]
    fn the_demo_configuration_has_the_promised_programs() {
        let config = Config::demo().unwrap();
        assert_eq!(config.municipality.name, "さくら市");
        assert_eq!(config.municipality.code.to_string(), "139998");
        assert_eq!(config.municipality.institution_number, "999");
        let expected = [
            ("kodomo", "88139993", PmhMode::DiffHistory, RecipientNumberRule::Free),
            ("hitorioya", "81139990", PmhMode::DiffHistory, RecipientNumberRule::Free),
            ("shogai", "80139991", PmhMode::Full, RecipientNumberRule::Free),
            ("kosei", "15139991", PmhMode::DiffHistory, RecipientNumberRule::Checked7),
            ("ikusei", "16139990", PmhMode::DiffHistory, RecipientNumberRule::Checked7),
            ("yoiku", "23139991", PmhMode::DiffHistory, RecipientNumberRule::Checked7),
        ];
        assert_eq!(config.programs().len(), expected.len());
        for (k, payer, mode, rule) in expected {
            let p = config.program(&key(k)).unwrap();
            assert_eq!(p.payer_numbers.iter().map(|n| n.to_string()).collect::<Vec<_>>(), vec![payer], "{k}");
            assert_eq!((p.pmh_mode, p.recipient_number_rule), (mode, rule), "{k}");
        }
        let kodomo = config.program(&key("kodomo")).unwrap();
        assert_eq!(kodomo.kind, ProgramKind::Local { category: "001".into() });
        assert_eq!(kodomo.age_limit, Some(AgeLimit::FiscalYearEndAfter { age: 18 }));
        assert_eq!(config.kind_label(kodomo), Some("こども"));
        let ikusei = config.program(&key("ikusei")).unwrap();
        assert_eq!(ikusei.kind, ProgramKind::National { law_code: "16".into() });
        assert_eq!(ikusei.age_limit, Some(AgeLimit::UnderAge { age: 18 }));
        assert_eq!(config.program(&key("yoiku")).unwrap().age_limit, Some(AgeLimit::UnderAge { age: 1 }));
        assert_eq!(config.program(&key("kosei")).unwrap().age_limit, None);
        assert_eq!(config.kind_label(config.program(&key("kosei")).unwrap()), Some("障害者総合支援法 更生医療"));
        assert_eq!(kodomo.advance_days, 60);
    }

    fn with_program(program: &str) -> Result<Config, ConfigError> {
        Config::from_toml(&format!(
            "[municipality]\nname = \"さくら市\"\ncode = \"139998\"\ninstitution_number = \"999\"\n\n[[program]]\n{program}"
        ))
    }

    const BASE: &str = "key = \"kosei\"\nname = \"更生医療\"\nkind = \"national\"\nlaw_code = \"15\"\n\
        pmh_certificate_type_id = \"X1\"\npmh_mode = \"diff_history\"\ncertificate_name = \"受給者証\"\n";

    fn problem_places(result: Result<Config, ConfigError>) -> Vec<String> {
        result.unwrap_err().problems.into_iter().map(|(place, _)| place).collect()
    }

    #[test]
    fn a_minimal_national_program_defaults_to_checked_numbers() {
        let config = with_program(&format!("{BASE}payer_numbers = [\"15139991\"]\n")).unwrap();
        assert_eq!(config.programs()[0].recipient_number_rule, RecipientNumberRule::Checked7);
    }

    #[test]
    fn payer_numbers_must_fit_the_program_and_municipality() {
        // Bad check digit.
        assert_eq!(
            problem_places(with_program(&format!("{BASE}payer_numbers = [\"15139992\"]\n"))),
            ["program[0].payer_numbers[0]"]
        );
        // 法別番号 16 in a law-code-15 program.
        assert_eq!(
            problem_places(with_program(&format!("{BASE}payer_numbers = [\"16139990\"]\n"))),
            ["program[0].payer_numbers[0]"]
        );
        // Prefecture 01 in a Tokyo municipality (54016027 is valid, but 法別 54 and 北海道).
        let places = problem_places(with_program(&format!("{BASE}payer_numbers = [\"54016027\"]\n")));
        assert_eq!(places, ["program[0].payer_numbers[0]", "program[0].payer_numbers[0]"]);
    }

    #[test]
    fn certificates_default_by_kind_and_can_be_configured() {
        let config = Config::demo().unwrap();
        let kosei = &config.program(&key("kosei")).unwrap().certificate;
        assert_eq!(kosei.size, PaperSize::A4);
        assert_eq!(kosei.items, FaceItem::ALL.to_vec());
        assert_eq!(kosei.issuer, "さくら市長");
        let kodomo = &config.program(&key("kodomo")).unwrap().certificate;
        assert_eq!(kodomo.size, PaperSize::Card);
        assert!(!kodomo.items.contains(&FaceItem::Address));

        let custom = with_program(&format!(
            "{BASE}payer_numbers = [\"15139991\"]\n[program.certificate]\nsize = \"card\"\n\
             items = [\"name\", \"validity\", \"payer_number\"]\ncontact = \"障害福祉課 03-0000-0000\"\n"
        ))
        .unwrap();
        let t = &custom.programs()[0].certificate;
        assert_eq!(t.size, PaperSize::Card);
        assert_eq!(t.items, [FaceItem::Name, FaceItem::Validity, FaceItem::PayerNumber]);
        assert_eq!(t.contact, "障害福祉課 03-0000-0000");

        let bad = with_program(&format!(
            "{BASE}payer_numbers = [\"15139991\"]\n[program.certificate]\nsize = \"b5\"\n\
             items = [\"name\", \"shoe_size\", \"name\"]\n"
        ));
        assert_eq!(
            problem_places(bad),
            ["program[0].certificate.size", "program[0].certificate.items[1]", "program[0].certificate.items[2]"]
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_place() {
        let text = "key = \"Bad Key\"\nname = \"\"\nkind = \"local\"\ncategory = \"099\"\n\
            pmh_certificate_type_id = \"has space\"\npmh_mode = \"sometimes\"\ncertificate_name = \"証\"\n\
            payer_numbers = []\nage_limit = { rule = \"whenever\", age = 0 }\n";
        let places = problem_places(with_program(text));
        for expected in [
            "program[0].key",
            "program[0].name",
            "program[0].category",
            "program[0].pmh_certificate_type_id",
            "program[0].pmh_mode",
            "program[0].payer_numbers",
            "program[0].age_limit.age",
            "program[0].age_limit.rule",
        ] {
            assert!(places.iter().any(|p| p == expected), "{expected} missing from {places:?}");
        }
    }

    #[test]
    fn duplicates_and_unknown_fields_are_refused() {
        let twice =
            format!("{BASE}payer_numbers = [\"15139991\"]\n\n[[program]]\n{BASE}payer_numbers = [\"15139991\"]\n");
        let places = problem_places(with_program(&twice));
        assert!(places.contains(&"program[1].key".to_owned()));
        assert!(places.contains(&"program[1].pmh_certificate_type_id".to_owned()));
        assert!(places.contains(&"program[1].payer_numbers[0]".to_owned()));
        let typo = format!("{BASE}payer_numbers = [\"15139991\"]\npmh_mod = \"full\"\n");
        assert_eq!(problem_places(with_program(&typo)), ["TOML"]);
    }

    #[test]
    fn eras_can_be_added_by_configuration() {
        let text = format!(
            "{BASE}payer_numbers = [\"15139991\"]\n\n[[era]]\nname = \"新元号\"\ninitial = \"N\"\nfirst_day = \"2040-01-01\"\ncode = 6\n"
        );
        let config = with_program(&text).unwrap();
        assert_eq!(config.eras.format("2040-02-03".parse().unwrap()).unwrap(), "新元号元年2月3日");
    }

    #[test]
    fn prefecture_numbers_from_numbers_md() {
        let config = Config::demo().unwrap();
        let prefectures = &config.catalogue.prefectures;
        assert_eq!(prefectures.len(), 47);
        let expected = [
            ("01", "北海道"),
            ("13", "東京都"),
            ("26", "京都府"),
            ("27", "大阪府"),
            ("30", "和歌山県"),
            ("47", "沖縄県"),
        ];
        for (code, name) in expected {
            assert_eq!(prefectures[code], name);
        }
        let codes: Vec<&String> = prefectures.keys().collect();
        assert_eq!(codes.first().map(|s| s.as_str()), Some("01"));
        assert_eq!(codes.last().map(|s| s.as_str()), Some("47"));
        assert_eq!(config.prefecture_name(), Some("東京都"));
        // The prefecture digits of a payer number name a prefecture: 54016027 is 北海道's.
        let payer = crate::numbers::PayerNumber::parse("54016027").unwrap();
        assert_eq!(prefectures[&payer.prefecture()], "北海道");
        // A municipality code outside 01-47 is refused (481000 has a valid check digit).
        let text = DEMO_TOML.replace("code = \"139998\"", "code = \"481009\"");
        assert!(problem_places(Config::from_toml(&text)).contains(&"municipality.code".to_owned()));
    }

    #[test]
    fn the_pmh_section_sets_the_days_results_are_due_within_bounds() {
        assert_eq!(Config::demo().unwrap().pmh.results_due_days, PmhSettings::RESULTS_DUE_DAYS);
        let with = |days: &str| format!("{DEMO_TOML}\n[pmh]\nresults_due_days = {days}\n");
        assert_eq!(Config::from_toml(&with("3")).unwrap().pmh.results_due_days, 3);
        for bad in ["0", "366"] {
            assert_eq!(problem_places(Config::from_toml(&with(bad))), ["pmh.results_due_days"], "{bad}");
        }
        let unknown = format!("{DEMO_TOML}\n[pmh]\nresult_days = 3\n");
        assert!(Config::from_toml(&unknown).is_err(), "an unknown key is refused");
    }

    #[test]
    fn the_daily_schedule_and_its_delivery_folder_are_checked() {
        let text = format!(
            "{DEMO_TOML}\n[pmh.schedule]\ntime = \"06:30\"\nprograms = [\"kodomo\", \"kosei\"]\nmode = \"diff\"\n\
             [pmh.delivery]\nfolder = \"/srv/pmh/outbox\"\nfile_mode = \"0640\"\nname = \"{{program}}-{{batch}}\"\n"
        );
        let pmh = Config::from_toml(&text).unwrap().pmh;
        let schedule = pmh.schedule.unwrap();
        assert_eq!(schedule.time, chrono::NaiveTime::from_hms_opt(6, 30, 0).unwrap());
        assert_eq!(schedule.programs.len(), 2);
        assert_eq!(schedule.mode, Some(PmhMode::DiffHistory));
        let delivery = pmh.delivery.unwrap();
        assert_eq!(
            (delivery.file_mode, delivery.files.as_slice(), delivery.name.as_str()),
            (0o640, &["json".to_owned()][..], "{program}-{batch}")
        );
        let bad = format!(
            "{DEMO_TOML}\n[pmh.schedule]\ntime = \"25:00\"\nprograms = [\"nope\"]\nmode = \"sometimes\"\n\
             [pmh.delivery]\nfolder = \"outbox\"\nfiles = [\"xml\"]\nfile_mode = \"0644\"\nname = \"../{{program}}\"\n"
        );
        assert_eq!(
            problem_places(Config::from_toml(&bad)),
            [
                "pmh.schedule.time",
                "pmh.schedule.programs[0]",
                "pmh.schedule.mode",
                "pmh.delivery.folder",
                "pmh.delivery.files",
                "pmh.delivery.file_mode",
                "pmh.delivery.name"
            ]
        );
        for name in ["{{program}}", "{{from}}-{{to}}"] {
            let not_unique = format!("{DEMO_TOML}\n[pmh.delivery]\nfolder = \"/srv/x\"\nname = \"{name}\"\n");
            assert_eq!(problem_places(Config::from_toml(&not_unique)), ["pmh.delivery.name"], "{name}");
        }
    }

    #[test]
    fn program_keys() {
        assert!(ProgramKey::parse("kodomo").is_ok());
        assert!(ProgramKey::parse("k2_a").is_ok());
        assert_eq!(ProgramKey::parse("2k").unwrap_err().code(), "format");
        assert_eq!(ProgramKey::parse("Kodomo").unwrap_err().code(), "format");
        assert_eq!(ProgramKey::parse("").unwrap_err().code(), "required");
        assert_eq!(ProgramKey::parse(&"a".repeat(33)).unwrap_err().code(), "too_long");
    }
}
