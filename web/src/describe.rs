//! Japanese wording of domain values for screens: events in a timeline, terms of a certificate,
//! amounts. My Numbers are always masked here; addresses and places go through the privacy
//! policy's view of the person.

use daicho_domain::certificate::TermsChange;
use daicho_domain::config::Config;
use daicho_domain::event::{Event, EventBody};
use daicho_domain::privacy;
use daicho_domain::text::Sex;

pub use daicho_projections::certificate::copay;

/// 性別 label.
pub fn sex(s: Sex) -> &'static str {
    s.label()
}

/// The program's name, or its key when the configuration no longer has it.
pub fn program_name(config: &Config, key: &str) -> String {
    config.programs().iter().find(|p| p.key.as_str() == key).map_or_else(|| key.to_owned(), |p| p.name.clone())
}

fn changes(c: &TermsChange) -> Vec<String> {
    let mut out = Vec::new();
    let mut set = |label: &str, v: Option<Option<String>>| match v {
        None => {}
        Some(None) => out.push(format!("{label}を削除")),
        Some(Some(v)) => out.push(format!("{label} {v}")),
    };
    set("公費負担者番号", c.payer_number.map(|p| p.map(|p| p.as_string())));
    set("公費受給者番号", c.recipient_number.as_ref().map(|r| Some(r.to_string())));
    set("自己負担上限額", c.copay_cap.as_ref().map(|x| x.as_ref().map(copay)));
    set("所得区分", c.income_segment.as_ref().map(|s| s.as_ref().map(ToString::to_string)));
    set(
        "指定医療機関",
        c.designated_institutions.as_ref().map(|l| {
            if l.is_empty() { None } else { Some(l.iter().map(ToString::to_string).collect::<Vec<_>>().join("、")) }
        }),
    );
    set("疾病名", c.disease.as_ref().map(|s| s.as_ref().map(ToString::to_string)));
    set("常時償還払い", c.always_reimbursement.map(|b| Some(if b { "する" } else { "しない" }.to_owned())));
    out
}

/// One line describing an event, as `view` lets its reader see the person.
pub fn event(e: &Event, config: &Config, view: &privacy::View) -> String {
    match &e.body {
        EventBody::RecipientRegistered { recipient, info } => format!(
            "受給者ID {recipient}、{}（{}）、{}生、{}、住所 {}",
            info.name,
            info.kana,
            info.birth_date,
            info.sex.label(),
            view.place(info.address.as_str())
        ),
        EventBody::MyNumberLinked { my_number, .. } => format!("個人番号 {}", my_number.masked()),
        EventBody::MyNumberCorrected { my_number, .. } => format!("訂正後の個人番号 {}", my_number.masked()),
        EventBody::PersonalDetailsChanged { name, kana, address: addr } => {
            let mut parts = Vec::new();
            if let Some(n) = name {
                parts.push(format!("氏名 {n}"));
            }
            if let Some(k) = kana {
                parts.push(format!("カナ {k}"));
            }
            if let Some(a) = addr {
                parts.push(format!("住所 {}", view.place(a.as_str())));
            }
            parts.join("、")
        }
        EventBody::MovedIn { address: a, from } => {
            format!("{}から転入、住所 {}", view.place(from.as_str()), view.place(a.as_str()))
        }
        EventBody::MovedOut { to } => format!("{}へ転出", view.place(to.as_str())),
        EventBody::Died | EventBody::DvSupportStarted | EventBody::DvSupportEnded => String::new(),
        EventBody::CertificateGranted { certificate, program, period, terms, .. } => {
            let mut s = format!(
                "{} 受給者証 {certificate}、有効期間 {}〜{}、受給者番号 {}",
                program_name(config, program.as_str()),
                period.from(),
                super::pages::end_ja(period.to()),
                terms.recipient_number
            );
            if let Some(c) = &terms.copay_cap {
                s.push_str(&format!("、{}", copay(c)));
            }
            s
        }
        EventBody::CertificateRenewed { certificate, period, changes: c, .. } => {
            let mut parts = vec![format!(
                "受給者証 {certificate}、有効期間 {}〜{}",
                period.from(),
                super::pages::end_ja(period.to())
            )];
            parts.extend(changes(c));
            parts.join("、")
        }
        EventBody::CertificateChanged { certificate, changes: c, .. } => {
            let mut parts = vec![format!("受給者証 {certificate}")];
            parts.extend(changes(c));
            parts.join("、")
        }
        EventBody::CertificateEnded { certificate, reason } => {
            format!("受給者証 {certificate}（理由: {}）", reason.label())
        }
        EventBody::CertificateReissued { certificate, reason } => {
            format!("受給者証 {certificate}（理由: {}）", reason.label())
        }
        EventBody::CommandRescinded { target, reason } => format!("処理 {target} を取消（理由: {reason}）"),
    }
}
