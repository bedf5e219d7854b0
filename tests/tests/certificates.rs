//! Paper certificates end to end: `daicho certificate print` and `batch` write PDFs with the
//! embedded IPAex font; poppler's pdftotext must find the name, the numbers and the 和暦 dates,
//! and pdftoppm's rendering must have the size of the reference image of its template
//! (`tests/data/certificate-{a4,card}.png`, rendered at 50 dpi).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use daicho_tests::cli::{daicho, repo};

fn ledger(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("ledger");
    assert_eq!(daicho(&data, &["init"]).0, 0);
    let (code, _, err) = daicho(&data, &["apply", repo().join("examples/sakura.jsonl").to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    data
}

fn pdftotext(pdf: &Path) -> String {
    let out = Command::new("pdftotext")
        .args(["-layout", pdf.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (Debian's poppler-utils, installed by scripts/setup)");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Pages of the PDF rendered at 50 dpi; the PNG files' paths.
fn pdftoppm(pdf: &Path, prefix: &Path) -> Vec<std::path::PathBuf> {
    let status = Command::new("pdftoppm")
        .args(["-png", "-r", "50", pdf.to_str().unwrap(), prefix.to_str().unwrap()])
        .status()
        .expect("pdftoppm (poppler-utils)");
    assert!(status.success());
    let dir = prefix.parent().unwrap();
    let stem = prefix.file_name().unwrap().to_str().unwrap().to_owned();
    let mut pages: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with(&format!("{stem}-")))
        .collect();
    pages.sort();
    pages
}

/// Width and height from a PNG's IHDR.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[1..4], b"PNG", "{}", path.display());
    (u32::from_be_bytes(b[16..20].try_into().unwrap()), u32::from_be_bytes(b[20..24].try_into().unwrap()))
}

/// The rendering has the reference's size and is not blank (at least a third of its bytes).
fn like_reference(png: &Path, template: &str) {
    let reference = repo().join(format!("tests/data/certificate-{template}.png"));
    if std::env::var("DAICHO_BLESS").is_ok_and(|v| v == "1") && !reference.exists() {
        std::fs::copy(png, &reference).unwrap();
    }
    assert_eq!(png_size(png), png_size(&reference), "{template}: page size differs from the reference");
    let (got, want) = (std::fs::metadata(png).unwrap().len(), std::fs::metadata(&reference).unwrap().len());
    assert!(got * 3 > want, "{template}: {got} bytes against {want}: the page looks blank");
}

#[test]
fn print_writes_the_face_in_era_dates_on_the_templates_paper() {
    let tmp = tempfile::tempdir().unwrap();
    let data = ledger(tmp.path());

    // こども医療費 (local program): a card, reissued (再交付), born in 令和元年.
    let card = tmp.path().join("card.pdf");
    let (code, out, err) = daicho(
        &data,
        &["certificate", "print", "R0001", "K0001", "--as-of", "2026-11-20", "--out", card.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1ページ"), "{out}");
    let text = pdftotext(&card);
    for want in [
        "さくら市こども医療証",
        "佐藤 陽菜",
        "88139993",
        "0012345",
        "令和元年8月14日",
        "令和6年4月1日から",
        "再交付",
        "照合コード",
    ] {
        assert!(text.contains(want), "{want} not in the card:\n{text}");
    }
    assert!(!text.contains("住所"), "the card template has no address");
    let pages = pdftoppm(&card, &tmp.path().join("card"));
    assert_eq!(pages.len(), 1);
    like_reference(&pages[0], "card");

    // 更生医療 (national): A4 with every item; on the day asked, the part of the renewed span
    // after the mid-span change of 2026-07-01.
    let a4 = tmp.path().join("a4.pdf");
    let (code, _, err) = daicho(
        &data,
        &["certificate", "print", "R0002", "J0001", "--as-of", "2026-11-20", "--out", a4.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let text = pdftotext(&a4);
    for want in
        ["鈴木 一郎", "15139991", "1234566", "昭和33年3月3日", "令和8年7月1日から 令和9年3月31日まで", "さくら市長"]
    {
        assert!(text.contains(want), "{want} not in the A4 certificate:\n{text}");
    }
    assert!(!text.contains("再交付"));
    let pages = pdftoppm(&a4, &tmp.path().join("a4"));
    like_reference(&pages[0], "a4");

    // Refusals write nothing.
    let (code, _, err) = daicho(&data, &["certificate", "print", "R0002", "J0001", "--out", a4.to_str().unwrap()]);
    assert_eq!(code, 2, "an existing file is not overwritten: {err}");
    let none = tmp.path().join("none.pdf");
    let (code, _, err) = daicho(&data, &["certificate", "print", "R9999", "J0001", "--out", none.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = daicho(
        &data,
        &["certificate", "print", "R0002", "J0001", "--as-of", "2030-01-01", "--out", none.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(err.contains("有効な期間がない"), "{err}");
    assert!(!none.exists());
}

#[test]
fn batch_prints_every_renewal_starting_in_the_range() {
    let tmp = tempfile::tempdir().unwrap();
    let data = ledger(tmp.path());
    // Without an account of a role that may see protected addresses, R0003 (under a DV support
    // measure) is left out, and the operator is told.
    let pdf = tmp.path().join("viewer-batch.pdf");
    let (code, out, err) = daicho(
        &data,
        &["certificate", "batch", "--renewed-between", "2026-04-01", "2026-08-31", "--out", pdf.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1ページ"), "{out}");
    assert!(err.contains("支援措置の対象者 1人分は印刷していません"), "{err}");
    assert!(!pdftotext(&pdf).contains("令和8年8月1日から"));
    let (code, _, err) = daicho(&data, &["user", "add", "boss", "--name", "係長", "--role", "supervisor"]);
    assert_eq!(code, 0, "{err}");
    let pdf = tmp.path().join("renewed.pdf");
    let (code, out, err) = daicho(
        &data,
        &[
            "certificate",
            "batch",
            "--renewed-between",
            "2026-04-01",
            "2026-08-31",
            "--out",
            pdf.to_str().unwrap(),
            "--actor",
            "boss",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2ページ"), "{out}");
    let pages = pdftoppm(&pdf, &tmp.path().join("renewed"));
    assert_eq!(pages.len(), 2);
    let text = pdftotext(&pdf);
    assert!(text.contains("鈴木 一郎") && text.contains("令和8年4月1日から"), "{text}");
    assert!(text.contains("令和8年8月1日から"), "{text}");
    // Nothing renewed in the range: no file.
    let empty = tmp.path().join("empty.pdf");
    let (code, _, _) = daicho(
        &data,
        &["certificate", "batch", "--renewed-between", "2026-09-01", "2026-12-31", "--out", empty.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(!empty.exists());
}
