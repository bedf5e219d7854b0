//! Certificates as PDF: one page per face, sized for its paper (A4 portrait or a 128 x 91 mm
//! card), with the Japanese font embedded as a subset (only the glyphs printed) so any viewer
//! and printer shows the same text, and a ToUnicode map so the text can be searched and
//! extracted (`pdftotext`). The font is IPAex Gothic from Debian's fonts-ipaexfont.
//!
//! Layout is plain and deterministic: the title (and 再交付 when reissued), a two-column table
//! of the face's items (values wrapped to the column), then the footer tying the paper to the
//! log. The same faces always give the same bytes.

use std::path::{Path, PathBuf};

use daicho_domain::config::PaperSize;
use pdf_writer::types::{CidFontType, FontFlags, SystemInfo};
use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

use crate::certificate::Face;

/// Where Debian's fonts-ipaexfont puts IPAex Gothic.
pub const IPAEX_GOTHIC: &str = "/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf";

/// The font file to embed: `DAICHO_FONT` when set, else IPAex Gothic.
pub fn font_path() -> PathBuf {
    std::env::var_os("DAICHO_FONT").map_or_else(|| PathBuf::from(IPAEX_GOTHIC), PathBuf::from)
}

/// Reads the font file, naming the package when it is missing.
pub fn load_font(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        format!(
            "{}: フォントを読めません（{e}）。Debian の fonts-ipaexfont を入れてください（scripts/setup）",
            path.display()
        )
    })
}

const MM: f32 = 72.0 / 25.4;

struct Layout {
    width: f32,
    height: f32,
    margin: f32,
    title: f32,
    body: f32,
    small: f32,
    label_share: f32,
}

fn layout(size: PaperSize) -> Layout {
    match size {
        PaperSize::A4 => Layout {
            width: 210.0 * MM,
            height: 297.0 * MM,
            margin: 18.0 * MM,
            title: 16.0,
            body: 10.5,
            small: 8.0,
            label_share: 0.28,
        },
        PaperSize::Card => Layout {
            width: 128.0 * MM,
            height: 91.0 * MM,
            margin: 4.0 * MM,
            title: 9.5,
            body: 6.5,
            small: 5.0,
            label_share: 0.28,
        },
    }
}

/// The embedded font: glyph ids are remapped to the subset's as text is laid out.
struct Font<'a> {
    face: ttf_parser::Face<'a>,
    remapper: subsetter::GlyphRemapper,
    /// (new glyph id, character, advance in 1/1000 em), in first-use order.
    used: Vec<(u16, char, f32)>,
}

impl Font<'_> {
    fn advance(&self, c: char) -> f32 {
        let gid = self.face.glyph_index(c).unwrap_or(ttf_parser::GlyphId(0));
        let units = f32::from(self.face.units_per_em().max(1));
        f32::from(self.face.glyph_hor_advance(gid).unwrap_or(0)) * 1000.0 / units
    }

    fn width(&self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.advance(c)).sum::<f32>() * size / 1000.0
    }

    /// The text as 2-byte CIDs (= subset glyph ids).
    fn encode(&mut self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() * 2);
        for c in text.chars() {
            let old = self.face.glyph_index(c).map_or(0, |g| g.0);
            let new = self.remapper.remap(old);
            if !self.used.iter().any(|(g, _, _)| *g == new) {
                let advance = self.advance(c);
                self.used.push((new, c, advance));
            }
            out.extend_from_slice(&new.to_be_bytes());
        }
        out
    }

    /// Splits `text` into lines no wider than `max`.
    fn wrap(&self, text: &str, size: f32, max: f32) -> Vec<String> {
        let mut lines = Vec::new();
        let mut line = String::new();
        for c in text.chars() {
            let mut candidate = line.clone();
            candidate.push(c);
            if !line.is_empty() && self.width(&candidate, size) > max {
                lines.push(std::mem::take(&mut line));
            }
            line.push(c);
        }
        lines.push(line);
        lines
    }
}

fn text(content: &mut Content, font: &mut Font<'_>, s: &str, size: f32, x: f32, y: f32) {
    let encoded = font.encode(s);
    content.begin_text();
    content.set_font(Name(b"F1"), size);
    content.set_text_matrix([1.0, 0.0, 0.0, 1.0, x, y]);
    content.show(Str(&encoded));
    content.end_text();
}

fn line(content: &mut Content, x1: f32, y1: f32, x2: f32, y2: f32) {
    content.move_to(x1, y1);
    content.line_to(x2, y2);
    content.stroke();
}

/// One page's content stream.
fn page(font: &mut Font<'_>, face: &Face) -> Vec<u8> {
    let l = layout(face.size);
    let mut c = Content::new();
    c.set_line_width(if face.size == PaperSize::A4 { 0.6 } else { 0.4 });
    let left = l.margin;
    let right = l.width - l.margin;
    let mut y = l.height - l.margin - l.title;
    text(&mut c, font, &face.title, l.title, left, y);
    if face.reissued {
        let mark = "再交付";
        let w = font.width(mark, l.title);
        text(&mut c, font, mark, l.title, right - w - 2.0, y);
        c.rect(right - w - 4.0, y - l.title * 0.25, w + 4.0, l.title * 1.25);
        c.stroke();
    }
    y -= l.title * 0.5;
    line(&mut c, left, y, right, y);
    y -= l.body * 0.8;
    let split = left + (right - left) * l.label_share;
    let pad = l.body * 0.4;
    let leading = l.body * 1.35;
    let top = y;
    line(&mut c, left, top, right, top);
    for item in &face.lines {
        let mut rows = Vec::new();
        for v in &item.lines {
            rows.extend(font.wrap(v, l.body, right - split - 2.0 * pad));
        }
        let height = leading * rows.len().max(1) as f32 + pad;
        let baseline = y - pad - l.body * 0.9;
        text(&mut c, font, item.label, l.body, left + pad, baseline);
        for (i, r) in rows.iter().enumerate() {
            text(&mut c, font, r, l.body, split + pad, baseline - leading * i as f32);
        }
        y -= height;
        line(&mut c, left, y, right, y);
    }
    line(&mut c, left, top, left, y);
    line(&mut c, split, top, split, y);
    line(&mut c, right, top, right, y);
    let footer =
        format!("受給者証ID {}　記録位置 {}　照合コード {}", face.certificate, face.position, face.verification_code);
    text(&mut c, font, &footer, l.small, left, y - l.small * 1.8);
    c.finish().to_vec()
}

/// Renders `faces` (one page each) with the TrueType font `font_data`.
pub fn render(faces: &[Face], font_data: &[u8]) -> Result<Vec<u8>, String> {
    let face = ttf_parser::Face::parse(font_data, 0).map_err(|e| format!("font: {e}"))?;
    let mut font = Font { face, remapper: subsetter::GlyphRemapper::new(), used: Vec::new() };
    let pages: Vec<(PaperSize, Vec<u8>)> = faces.iter().map(|f| (f.size, page(&mut font, f))).collect();

    let mut pdf = Pdf::new();
    let catalog = Ref::new(1);
    let tree = Ref::new(2);
    let type0 = Ref::new(3);
    let cid = Ref::new(4);
    let descriptor = Ref::new(5);
    let file = Ref::new(6);
    let cmap = Ref::new(7);
    let first_page = 8;
    let page_ref = |i: usize| Ref::new(first_page + 2 * i32::try_from(i).unwrap_or(0));
    let content_ref = |i: usize| Ref::new(first_page + 2 * i32::try_from(i).unwrap_or(0) + 1);

    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree).kids((0..pages.len()).map(page_ref)).count(i32::try_from(pages.len()).unwrap_or(i32::MAX));
    for (i, (size, stream)) in pages.iter().enumerate() {
        let l = layout(*size);
        let mut p = pdf.page(page_ref(i));
        p.media_box(Rect::new(0.0, 0.0, l.width, l.height));
        p.parent(tree);
        p.contents(content_ref(i));
        p.resources().fonts().pair(Name(b"F1"), type0);
        p.finish();
        pdf.stream(content_ref(i), stream);
    }

    let base = Name(b"DAICHO+IPAexGothic");
    let info = SystemInfo { registry: Str(b"Adobe"), ordering: Str(b"Identity"), supplement: 0 };
    pdf.type0_font(type0)
        .base_font(base)
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid)
        .to_unicode(cmap);
    let mut used = font.used.clone();
    used.sort_by_key(|(g, _, _)| *g);
    {
        let mut c = pdf.cid_font(cid);
        c.subtype(CidFontType::Type2).base_font(base).system_info(info).font_descriptor(descriptor);
        c.cid_to_gid_map_predefined(Name(b"Identity"));
        c.default_width(1000.0);
        let mut widths = c.widths();
        for (g, _, w) in &used {
            widths.consecutive(*g, [*w]);
        }
    }
    let f = &font.face;
    let units = f32::from(f.units_per_em().max(1));
    let scale = |v: i16| f32::from(v) * 1000.0 / units;
    let b = f.global_bounding_box();
    pdf.font_descriptor(descriptor)
        .name(base)
        .flags(FontFlags::SYMBOLIC)
        .bbox(Rect::new(scale(b.x_min), scale(b.y_min), scale(b.x_max), scale(b.y_max)))
        .italic_angle(0.0)
        .ascent(scale(f.ascender()))
        .descent(scale(f.descender()))
        .cap_height(scale(f.capital_height().unwrap_or(f.ascender())))
        .stem_v(80.0)
        .font_file2(file);
    let subset = subsetter::subset(font_data, 0, &font.remapper).map_err(|e| format!("font subset: {e}"))?;
    pdf.stream(file, &subset);
    let mut unicode = pdf_writer::types::UnicodeCmap::new(Name(b"Adobe-Identity-UCS"), info);
    for (g, ch, _) in &used {
        unicode.pair(*g, *ch);
    }
    let unicode = unicode.finish();
    pdf.cmap(cmap, &unicode);
    Ok(pdf.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_font_names_the_package() {
        let e = load_font(Path::new("/nonexistent/font.ttf")).unwrap_err();
        assert!(e.contains("fonts-ipaexfont"), "{e}");
    }

    #[test]
    fn text_wraps_to_the_column() {
        let Ok(data) = std::fs::read(IPAEX_GOTHIC) else {
            panic!("{IPAEX_GOTHIC} missing: run scripts/setup (fonts-ipaexfont)");
        };
        let face = ttf_parser::Face::parse(&data, 0).unwrap();
        let font = Font { face, remapper: subsetter::GlyphRemapper::new(), used: Vec::new() };
        // IPAex kanji are one em wide: 10 pt each.
        assert!((font.width("医療", 10.0) - 20.0).abs() < 0.01);
        let lines = font.wrap("医療機関等で受診する際は", 10.0, 45.0);
        assert_eq!(lines, ["医療機関", "等で受診", "する際は"]);
    }
}
