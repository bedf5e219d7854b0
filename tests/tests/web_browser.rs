//! The web UI in a real browser: headless Chromium driven through chromedriver (both from
//! Debian, installed by `scripts/setup`), against a real server on 127.0.0.1 over a real ledger.
//!
//! One scenario walks a working day: log in, search, open a recipient, grant a certificate
//! (with a field error first, then the confirmation page), record a move-out, see the PMH
//! preview change and generate a batch as a supervisor, watch a forged form on another origin
//! be refused, log out. On failure the screenshot and page source are written to
//! `target/browser-failures/`; screenshots of the main pages go to `target/browser-pages/`
//! for a person to look at.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daicho_tests::web::{PASSWORD, Server, fixture, make_ledger};
use daicho_web::Settings;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

type R<T> = Result<T, String>;

fn target_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target").join(name);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// chromedriver on a free port of 127.0.0.1, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(program: &str, candidates: &[&str]) -> R<String> {
    candidates.iter().find(|c| Path::new(c).exists()).map(|c| (*c).to_owned()).ok_or_else(|| {
        format!("{program} not found in {candidates:?}: run scripts/setup (it installs chromium and chromium-driver)")
    })
}

fn start_driver() -> R<Driver> {
    let exe = find("chromedriver", &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"])?;
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let child = Command::new(exe)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("chromedriver: {e}"))?;
    let driver = Driver { child, port };
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(20) {
            return Err("chromedriver did not start listening within 20 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(driver)
}

async fn browser(driver: &Driver, profile: &Path) -> R<Client> {
    let binary = find("chromium", &["/usr/lib/chromium/chromium", "/usr/bin/chromium"])?;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": binary,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--window-size=1280,1000", "--lang=ja-JP",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .map_err(|e| format!("webdriver session: {e}"))
}

/// A page on another origin (same site, another port) with a form that posts to `action`.
fn forged_page(action: String, fields: Vec<(String, String)>) -> R<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let inputs: String =
        fields.iter().map(|(k, v)| format!("<input type=\"hidden\" name=\"{k}\" value=\"{v}\">")).collect();
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>prize</title></head><body>\
         <form method=\"post\" action=\"{action}\">{inputs}<button id=\"go\" type=\"submit\">受け取る</button></form>\
         </body></html>"
    );
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten().take(4) {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    Ok(port)
}

struct Ui<'a> {
    c: &'a Client,
    base: String,
}

impl Ui<'_> {
    async fn go(&self, path: &str) -> R<()> {
        self.c.goto(&format!("{}{path}", self.base)).await.map_err(|e| format!("goto {path}: {e}"))
    }

    async fn path(&self) -> R<String> {
        let url = self.c.current_url().await.map_err(|e| e.to_string())?;
        Ok(match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        })
    }

    async fn source(&self) -> R<String> {
        self.c.source().await.map_err(|e| e.to_string())
    }

    /// The text is on the page, looked for until the page has it or 200 looks (about 5 s) have
    /// not found it: a navigation the browser reports done may still be painting.
    async fn expect_text(&self, text: &str) -> R<()> {
        for _ in 0..200 {
            if self.source().await?.contains(text) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(format!("{text:?} not on {}", self.path().await?))
    }

    /// Types into a text field, or sets a date or select field (whose typing is locale-bound).
    async fn fill(&self, name: &str, value: &str) -> R<()> {
        let el = self
            .c
            .find(Locator::Css(&format!("[name=\"{name}\"]:not([type=hidden])")))
            .await
            .map_err(|e| format!("field {name}: {e}"))?;
        let kind = el.attr("type").await.map_err(|e| e.to_string())?.unwrap_or_default();
        let tag = el.tag_name().await.map_err(|e| e.to_string())?;
        if kind == "date" || tag == "select" {
            self.c
                .execute(
                    "const e = document.querySelector(`[name=\"${arguments[0]}\"]:not([type=hidden])`); e.value = arguments[1];",
                    vec![json!(name), json!(value)],
                )
                .await
                .map_err(|e| format!("set {name}: {e}"))?;
        } else {
            el.clear().await.map_err(|e| e.to_string())?;
            el.send_keys(value).await.map_err(|e| format!("type into {name}: {e}"))?;
        }
        Ok(())
    }

    /// Clicks `el` and waits until the page it was on has been replaced by the next one.
    async fn navigate_by(&self, el: fantoccini::elements::Element, what: &str) -> R<()> {
        let old = self.c.find(Locator::Css("html")).await.map_err(|e| e.to_string())?;
        el.click().await.map_err(|e| format!("click {what}: {e}"))?;
        let started = Instant::now();
        while old.tag_name().await.is_ok() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("clicking {what} did not lead to another page"));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        loop {
            let state = self.c.execute("return document.readyState", vec![]).await.map_err(|e| e.to_string())?;
            if state == json!("complete") {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("the page after {what} did not finish loading"));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn click(&self, css: &str) -> R<()> {
        let el = self.c.find(Locator::Css(css)).await.map_err(|e| format!("{css}: {e}"))?;
        self.navigate_by(el, css).await
    }

    /// Presses the button labelled `text` (the first one, in page order).
    async fn press(&self, text: &str) -> R<()> {
        let buttons = self.c.find_all(Locator::Css("button")).await.map_err(|e| e.to_string())?;
        for b in buttons {
            if b.text().await.map_err(|e| e.to_string())?.trim() == text {
                return self.navigate_by(b, text).await;
            }
        }
        Err(format!("no button {text:?} on {}", self.path().await?))
    }

    async fn shot(&self, name: &str) -> R<()> {
        let png = self.c.screenshot().await.map_err(|e| e.to_string())?;
        std::fs::write(target_dir("browser-pages").join(format!("{name}.png")), png).map_err(|e| e.to_string())
    }

    async fn login(&self, user: &str) -> R<()> {
        self.go("/login").await?;
        self.fill("user", user).await?;
        self.fill("password", PASSWORD).await?;
        self.press("ログイン").await?;
        let path = self.path().await?;
        if path == "/search" { Ok(()) } else { Err(format!("login of {user} ended on {path}")) }
    }

    /// Logs out from `path` (a page with the navigation).
    async fn logout_from(&self, path: &str) -> R<()> {
        self.go(path).await?;
        self.logout().await
    }

    async fn logout(&self) -> R<()> {
        self.press("ログアウト").await?;
        let path = self.path().await?;
        if path == "/login" { Ok(()) } else { Err(format!("logout ended on {path}")) }
    }
}

async fn scenario(ui: &Ui<'_>, server: &Server) -> R<()> {
    let f = fixture(server)?;
    let head = || server.app.store.head().position.0;

    // Anonymous: every page leads to the login page; Tab reaches the skip link first.
    ui.go("/search").await?;
    if ui.path().await? != "/login" {
        return Err("an anonymous visit to /search was not sent to /login".into());
    }
    ui.shot("login").await?;

    // Log in as a caseworker and search by kana (prefix, spaces and small kana ignored).
    ui.login("case1").await?;
    ui.fill("by", "kana").await?;
    ui.fill("q", "やまだ").await?;
    ui.press("検索").await?;
    ui.expect_text("山田 太郎").await?;
    ui.shot("search").await?;
    ui.click(&format!("a[href=\"/recipients/{}\"]", f.a)).await?;
    ui.expect_text("C-A1").await?;
    ui.shot("recipient").await?;

    // Grant a certificate to D: a wrong payer number first, shown next to its field.
    ui.go(&format!("/recipients/{}/do/grant_certificate", f.d)).await?;
    for (name, value) in [
        ("effective", "2026-11-01"),
        ("program", "kosei"),
        ("certificate", "C-D1"),
        ("valid_from", "2026-11-01"),
        ("valid_to", "2027-10-31"),
        ("payer_number", "15139992"),
        ("recipient_number", "1234566"),
        ("income_segment", "一般"),
    ] {
        ui.fill(name, value).await?;
    }
    let before = head();
    ui.press("確認へ進む").await?;
    let field_error =
        ui.c.find(Locator::Css("#err-payer_number"))
            .await
            .map_err(|_| "no error next to the payer number".to_owned())?;
    let message = field_error.text().await.map_err(|e| e.to_string())?;
    if !message.contains("検証番号") && !message.contains("チェック") {
        return Err(format!("unexpected payer number message {message:?}"));
    }
    ui.shot("form-error").await?;
    ui.fill("payer_number", "15139991").await?;
    ui.press("確認へ進む").await?;
    ui.expect_text("（確認）").await?;
    ui.expect_text("C-D1").await?;
    ui.shot("confirm").await?;
    if head() != before {
        return Err("something was recorded before confirming".into());
    }
    ui.press("記録する").await?;
    let path = ui.path().await?;
    if !path.starts_with(&format!("/recipients/{}?recorded=", f.d)) {
        return Err(format!("after recording: {path}"));
    }
    ui.expect_text("C-D1").await?;
    if head() <= before {
        return Err("the grant was not recorded".into());
    }
    // Move A out.
    ui.go(&format!("/recipients/{}/do/move_out", f.a)).await?;
    ui.fill("effective", "2026-11-15").await?;
    ui.fill("to", "横浜市").await?;
    ui.press("確認へ進む").await?;
    // A double click: the second click fires before the page has gone, so the browser may send
    // the form twice; the idempotency key it carries makes it one recording.
    let before = head();
    let old = ui.c.find(Locator::Css("html")).await.map_err(|e| e.to_string())?;
    ui.c.execute("const b = document.querySelector('button[value=confirm]'); b.click(); b.click();", vec![])
        .await
        .map_err(|e| e.to_string())?;
    let started = Instant::now();
    while old.tag_name().await.is_ok() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    ui.go(&format!("/recipients/{}", f.a)).await?;
    ui.expect_text("2026-11-01〜2026-11-15").await?;
    if head() != before + 1 {
        return Err(format!("a double-clicked move-out recorded {} events", head() - before));
    }
    // The certificate print page, from the button on the recipient page.
    ui.go(&format!("/recipients/{}", f.d)).await?;
    ui.click("a.button[href*='/certificates/0/print']").await?;
    ui.expect_text("令和8年11月1日から").await?;
    ui.shot("certificate").await?;
    ui.logout_from(&format!("/recipients/{}", f.d)).await?;

    // A supervisor sees what the next PMH batch would send, generates it, and the preview empties.
    ui.login("super1").await?;
    ui.go("/pmh").await?;
    let cell = ui.c.find(Locator::Css("#program-kosei td[data-records]")).await.map_err(|e| e.to_string())?;
    let pending: u32 =
        cell.attr("data-records").await.map_err(|e| e.to_string())?.unwrap_or_default().parse().unwrap_or(0);
    if pending == 0 {
        return Err("the PMH preview shows nothing to send for 更生医療".into());
    }
    ui.shot("pmh").await?;
    ui.click("#program-kosei form button").await?;
    ui.expect_text("連携ファイルを作成しました").await?;
    let cell = ui.c.find(Locator::Css("#program-kosei td[data-records]")).await.map_err(|e| e.to_string())?;
    if cell.attr("data-records").await.map_err(|e| e.to_string())?.as_deref() != Some("0") {
        return Err("after generating, the preview still has records to send".into());
    }

    // The audit page: both hash chains check out while the server runs.
    ui.go("/audit").await?;
    ui.press("ハッシュチェーンを今すぐ確認する").await?;
    if ui.source().await?.matches("data-chain-ok=\"true\"").count() != 2 {
        return Err("the audit page does not report both chains intact".into());
    }
    ui.shot("audit").await?;

    // The fee statement of last month, with its chart (the demo charges from 2027-04).
    ui.go("/billing?month=2026-10").await?;
    ui.expect_text("計上方針ごとの件数").await?;
    if !ui.source().await?.contains("<svg") {
        return Err("the fee statement has no trend chart".into());
    }
    ui.shot("billing").await?;

    // A forged form on another origin (with even the right token) is refused and records nothing.
    ui.go("/search").await?;
    let csrf =
        ui.c.find(Locator::Css("input[name=csrf]"))
            .await
            .map_err(|e| e.to_string())?
            .attr("value")
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
    let evil = forged_page(
        format!("{}/recipients/{}/do/move_out", ui.base, f.c),
        vec![
            ("csrf".into(), csrf),
            ("id".into(), "w-forged".into()),
            ("step".into(), "confirm".into()),
            ("effective".into(), "2026-11-16".into()),
            ("to".into(), "どこか".into()),
        ],
    )?;
    let before = head();
    ui.c.goto(&format!("http://127.0.0.1:{evil}/")).await.map_err(|e| e.to_string())?;
    ui.click("#go").await?;
    let landed = ui.path().await?;
    if landed != format!("/recipients/{}/do/move_out", f.c) {
        return Err(format!("the forged form did not reach the server (on {landed})"));
    }
    let body = ui.source().await?;
    if head() != before {
        return Err("the forged cross-origin form recorded a move-out".into());
    }
    if body.contains("記録しました") {
        return Err("the forged form reached a success page".into());
    }
    // The real page still works afterwards.
    ui.go(&format!("/recipients/{}", f.c)).await?;
    ui.expect_text("田中 花子").await?;

    // Log out: the session is gone.
    ui.logout().await?;
    ui.go(&format!("/recipients/{}", f.c)).await?;
    if ui.path().await? != "/login" {
        return Err("after logout a recipient page was still shown".into());
    }
    Ok(())
}

#[test]
fn a_working_day_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    make_ledger(dir.path(), 30).unwrap();
    let server = Server::start(dir.path(), Settings::default()).unwrap();
    let driver = start_driver().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let result: R<()> = rt.block_on(async {
        let client = browser(&driver, profile.path()).await?;
        let ui = Ui { c: &client, base: server.base() };
        let outcome = scenario(&ui, &server).await;
        if outcome.is_err() {
            let dir = target_dir("browser-failures");
            if let Ok(png) = client.screenshot().await {
                let _ = std::fs::write(dir.join("failure.png"), png);
            }
            if let Ok(src) = client.source().await {
                let _ = std::fs::write(dir.join("failure.html"), src);
            }
        }
        let _ = client.close().await;
        outcome
    });
    if let Err(e) = result {
        panic!("{e} (screenshot and source in target/browser-failures/)");
    }
}
