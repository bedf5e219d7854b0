//! The fee statement's files besides the detail CSV: the summary CSV, the JSON, and the HTML
//! report with its 12-month SVG trend chart. Every byte is a function of the [`Statement`] (no
//! clock, no locale), so a closed month renders the same files whenever it is run again.

use std::fmt::Write as _;

use crate::fee::Statement;
use daicho_domain::text::spreadsheet_safe;

use crate::pmh::csv_document;

/// A file of a statement: name and SHA-256 (hex).
pub type FileHash = (String, String);

fn yen(v: i64) -> String {
    let digits = v.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0 { format!("-{out}") } else { out }
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn signed(v: i64) -> String {
    if v > 0 { format!("+{v}") } else { v.to_string() }
}

/// The summary CSV: per program, payer number and department; the month's total; the
/// adjustments per closed month; the amount due.
pub fn summary_csv(s: &Statement) -> Vec<u8> {
    let unit = s.unit_yen.map(|u| u.to_string()).unwrap_or_default();
    let mut rows = vec![
        ["区分", "対象月", "制度", "制度名", "公費負担者番号", "実施主体担当課", "計上数", "単価(円)", "金額(円)"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for r in &s.summary {
        rows.push(vec![
            "当月".into(),
            s.month.clone(),
            r.program.clone(),
            spreadsheet_safe(&r.program_name).into_owned(),
            r.payer_number.clone(),
            spreadsheet_safe(&r.department).into_owned(),
            r.units.to_string(),
            unit.clone(),
            r.yen.to_string(),
        ]);
    }
    rows.push(vec![
        "当月計".into(),
        s.month.clone(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        s.units.to_string(),
        unit.clone(),
        s.month_yen.to_string(),
    ]);
    let mut by_month: std::collections::BTreeMap<&str, (i64, i64, u32)> = std::collections::BTreeMap::new();
    for a in &s.adjustments {
        let e = by_month.entry(a.closed_month.as_str()).or_insert((0, 0, a.unit_yen));
        e.0 += a.units;
        e.1 += a.yen;
    }
    for (m, (units, amount, unit_yen)) in by_month {
        rows.push(vec![
            "調整".into(),
            m.to_owned(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            units.to_string(),
            unit_yen.to_string(),
            amount.to_string(),
        ]);
    }
    rows.push(vec![
        "請求額".into(),
        s.month.clone(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        s.total_yen.to_string(),
    ]);
    csv_document(&rows)
}

/// The statement as JSON, naming the CSV files it goes with.
pub fn statement_json(s: &Statement, csv_files: &[FileHash]) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        #[serde(flatten)]
        statement: &'a Statement,
        files: Vec<serde_json::Value>,
    }
    let files = csv_files.iter().map(|(name, sha)| serde_json::json!({"name": name, "sha256": sha})).collect();
    let mut out = serde_json::to_vec_pretty(&Doc { statement: s, files })?;
    out.push(b'\n');
    Ok(out)
}

/// The 12-month trend chart: bars for the units counted, a line for the yen. Closed months
/// (as billed) are drawn solid, computed ones lighter.
pub fn trend_svg(s: &Statement) -> String {
    let (w, h, left, right, top, bottom) = (720.0_f64, 260.0_f64, 64.0, 64.0, 24.0, 40.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let n = s.trend.len().max(1) as f64;
    let max_units = s.trend.iter().map(|p| p.units).max().unwrap_or(0).max(1) as f64;
    let max_yen = s.trend.iter().map(|p| p.yen).max().unwrap_or(0).max(1) as f64;
    let slot = plot_w / n;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="直近12か月の計上数と金額の推移">"#
    );
    let _ = write!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#999"/>"##
    );
    let _ = write!(
        svg,
        r##"<text x="4" y="16" font-size="12" fill="#1f4e79">計上数（棒） 最大 {}</text>"##,
        max_units as u64
    );
    let _ = write!(
        svg,
        r##"<text x="{}" y="16" font-size="12" fill="#c0392b" text-anchor="end">金額（線） 最大 {}円</text>"##,
        w - 4.0,
        yen(max_yen as i64)
    );
    let mut points = Vec::new();
    for (i, p) in s.trend.iter().enumerate() {
        let x = left + slot * i as f64;
        let bar_h = plot_h * p.units as f64 / max_units;
        let fill = if p.closed { "#1f4e79" } else { "#8fb3d9" };
        let _ = write!(
            svg,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{fill}"><title>{} {}件 {}円{}</title></rect>"#,
            x + slot * 0.15,
            top + plot_h - bar_h,
            slot * 0.7,
            bar_h,
            esc(&p.month),
            p.units,
            yen(p.yen as i64),
            if p.closed { "（締め済み）" } else { "" }
        );
        let label = p.month.get(2..).unwrap_or(&p.month).replace('-', "/");
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#333">{}</text>"##,
            x + slot / 2.0,
            h - bottom + 16.0,
            esc(&label)
        );
        points.push(format!("{:.1},{:.1}", x + slot / 2.0, top + plot_h - plot_h * p.yen as f64 / max_yen));
    }
    let _ = write!(svg, r##"<polyline points="{}" fill="none" stroke="#c0392b" stroke-width="2"/>"##, points.join(" "));
    for pt in &points {
        let (x, y) = pt.split_once(',').unwrap_or(("0", "0"));
        let _ = write!(svg, r##"<circle cx="{x}" cy="{y}" r="3" fill="#c0392b"/>"##);
    }
    svg.push_str("</svg>");
    svg
}

/// The HTML report (one self-contained page, printable).
pub fn statement_html(s: &Statement, csv_files: &[FileHash]) -> String {
    let mut h = String::new();
    let status = match s.status {
        crate::fee::Status::Draft => "試算（未確定）",
        crate::fee::Status::Closed => "確定（締め済み）",
    };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\"><title>PMH運営費明細 {month}</title>\
<style>body{{font-family:'IPAexGothic','Noto Sans CJK JP',sans-serif;margin:2em;color:#222}}\
table{{border-collapse:collapse;margin:0.5em 0 1.5em}}th,td{{border:1px solid #999;padding:0.25em 0.6em}}\
td.n{{text-align:right}}th{{background:#eef}}caption{{text-align:left;font-weight:bold}}\
.meta td:first-child{{background:#f6f6f6}}</style></head><body>\n",
        month = esc(&s.month)
    );
    let _ = writeln!(h, "<h1>PMH運営費明細 {}（{}）</h1>", esc(&month_label(&s.month)), status);
    let _ = write!(h, "<table class=\"meta\"><caption>この明細の根拠</caption>");
    let row = |h: &mut String, k: &str, v: &str| {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v));
    };
    row(&mut h, "自治体", &s.municipality);
    row(&mut h, "対象月", &s.month);
    row(&mut h, "状態", status);
    row(&mut h, "計上方針", &format!("{}（{}）", s.policy, s.policy_label));
    row(&mut h, "台帳の位置", &s.position.to_string());
    row(&mut h, "チェーンヘッド（SHA-256）", &s.chain_head);
    let schedule = if s.fee_schedule.is_empty() {
        "なし（課金されません）".to_owned()
    } else {
        s.fee_schedule.iter().map(|(m, y)| format!("{m}から{y}円")).collect::<Vec<_>>().join("、")
    };
    row(&mut h, "料金表", &schedule);
    row(
        &mut h,
        "当月の単価",
        &s.unit_yen.map(|u| format!("{u}円／人・月")).unwrap_or_else(|| "料金表の開始前のため課金なし".into()),
    );
    for (name, sha) in csv_files {
        row(&mut h, name, sha);
    }
    h.push_str("</table>\n");

    h.push_str(
        "<table><caption>計上方針ごとの件数（当月）</caption><tr><th>方針</th><th>件数</th><th>金額(円)</th></tr>",
    );
    for (policy, count) in &s.counts {
        let mark = if *policy == s.policy { "（請求に使用）" } else { "" };
        let amount = s.unit_yen.map(|u| yen((*count as i64) * i64::from(u))).unwrap_or_else(|| "0".into());
        let _ = write!(
            h,
            "<tr><td>{}{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(policy),
            mark,
            count,
            amount
        );
    }
    h.push_str("</table>\n");

    h.push_str("<table><caption>集計（制度・公費負担者番号・実施主体担当課ごと）</caption><tr><th>制度</th><th>公費負担者番号</th><th>実施主体担当課</th><th>計上数</th><th>金額(円)</th></tr>");
    for r in &s.summary {
        let _ = write!(
            h,
            "<tr><td>{}（{}）</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(&r.program_name),
            esc(&r.program),
            esc(&r.payer_number),
            esc(&r.department),
            r.units,
            yen(r.yen as i64)
        );
    }
    let _ = writeln!(
        h,
        "<tr><th colspan=\"3\">当月計</th><td class=\"n\">{}</td><td class=\"n\">{}</td></tr></table>",
        s.units,
        yen(s.month_yen as i64)
    );

    h.push_str("<table><caption>調整（締め済みの月への、締め後の記録による増減）</caption><tr><th>対象月</th><th>受給者内部番号</th><th>制度</th><th>増減</th><th>金額(円)</th><th>理由</th><th>原因事象</th><th>方針別の増減（月内・月末・受給者証）</th></tr>");
    if s.adjustments.is_empty() {
        let note = s.adjustment_note.clone().unwrap_or_else(|| "調整はありません".into());
        let _ = write!(h, "<tr><td colspan=\"8\">{}</td></tr>", esc(&note));
    }
    for a in &s.adjustments {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>位置 {}（{}）</td><td>{} / {} / {}</td></tr>",
            esc(&a.closed_month),
            a.recipient,
            esc(&a.program),
            signed(a.units),
            yen(a.yen),
            esc(&a.reason),
            a.source_position,
            esc(&a.source_event),
            signed(a.by_policy[0]),
            signed(a.by_policy[1]),
            signed(a.by_policy[2])
        );
    }
    let _ = writeln!(
        h,
        "<tr><th colspan=\"4\">調整計</th><td class=\"n\">{}</td><td colspan=\"3\"></td></tr></table>",
        yen(s.adjustment_yen)
    );
    let _ = writeln!(
        h,
        "<p><strong>請求額: {}円</strong>（当月 {}円 + 調整 {}円）</p>",
        yen(s.total_yen),
        yen(s.month_yen as i64),
        yen(s.adjustment_yen)
    );
    h.push_str("<h2>直近12か月の推移</h2>\n");
    h.push_str(&trend_svg(s));
    h.push_str("\n<p>濃い棒は締め済み（請求どおり）、薄い棒はこの位置での試算です。明細行（受給者ごと）は明細CSVにあります。個人番号と住所は含みません。</p>\n</body></html>\n");
    h
}

/// 2026-10 as 2026年10月.
pub fn month_label(month: &str) -> String {
    daicho_domain::billing::Month::parse(month).map(|m| m.label_ja()).unwrap_or_else(|_| month.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yen_groups_thousands_and_keeps_the_sign() {
        assert_eq!(yen(0), "0");
        assert_eq!(yen(64_000), "64,000");
        assert_eq!(yen(768_000), "768,000");
        assert_eq!(yen(-1_234_567), "-1,234,567");
    }
}
