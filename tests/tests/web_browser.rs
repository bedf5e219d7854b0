//! The web UI in a real browser: headless Chromium driven through chromedriver (both from
//! Debian, installed by `scripts/setup`), against a real server on 127.0.0.1 over a real ledger.
//!
//! One scenario walks a working day: log in, search, open a recipient, grant a certificate
//! (with a field error first, then the confirmation page), record a move-out, see the PMH
//! preview change and generate a batch as a supervisor, watch a forged form on another origin
//! be refused, log out. Two more run in a browser whose language is English (`--lang=en-US`):
//! the grant form by keyboard alone (tab order, error summary and focus, the Japanese calendar),
//! and a walk over every page of every role at 1280 and 1024 pixels that fails on content wider
//! than its box, a native date field, an unlabelled field or a page that prints its menu. On
//! failure the screenshot and page source are written to `target/browser-failures/`;
//! screenshots of every page go to `target/browser-pages/` for a person to look at.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use daicho_tests::web::{PASSWORD, Server, fixture, make_ledger};
use daicho_web::Settings;
use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
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

async fn browser(driver: &Driver, profile: &Path, lang: &str) -> R<Client> {
    let binary = find("chromium", &["/usr/lib/chromium/chromium", "/usr/bin/chromium"])?;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": binary,
            "prefs": { "intl.accept_languages": lang },
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--window-size=1280,1000", format!("--lang={lang}"),
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

    /// Types into a text field, or sets a select field.
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

    /// Presses a chord on the keyboard (modifiers first, released in reverse), as a person
    /// would, to whatever has the focus.
    async fn keys(&self, chord: &[char]) -> R<()> {
        let mut seq = KeyActions::new("keyboard".into());
        for k in chord {
            seq = seq.then(KeyAction::Down { value: *k });
        }
        for k in chord.iter().rev() {
            seq = seq.then(KeyAction::Up { value: *k });
        }
        self.c.perform_actions(seq).await.map_err(|e| format!("keys {chord:?}: {e}"))
    }

    async fn key(&self, k: Key) -> R<()> {
        self.keys(&[k.into()]).await
    }

    /// Clicks the element `css` (that stays on the page).
    async fn click_on(&self, css: &str) -> R<()> {
        let el = self.c.find(Locator::Css(css)).await.map_err(|e| format!("{css}: {e}"))?;
        el.click().await.map_err(|e| format!("click {css}: {e}"))
    }

    /// Types text into the focused element.
    async fn type_text(&self, text: &str) -> R<()> {
        let el = self.c.active_element().await.map_err(|e| e.to_string())?;
        el.send_keys(text).await.map_err(|e| format!("typing {text:?}: {e}"))
    }

    /// What has the focus: its id, else its tag and text.
    async fn focused(&self) -> R<String> {
        let v = self
            .c
            .execute(
                "const e = document.activeElement; if (!e || e === document.body) return 'body'; \
                 return e.id || (e.tagName.toLowerCase() + ':' + (e.getAttribute('href') || e.textContent.trim()));",
                vec![],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }

    /// A script's answer as text.
    async fn eval(&self, script: &str) -> R<String> {
        let v = self.c.execute(script, vec![]).await.map_err(|e| format!("{script}: {e}"))?;
        Ok(match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        })
    }

    /// Waits until `script` answers `want` (about 5 s at most).
    async fn wait_eval(&self, script: &str, want: &str) -> R<()> {
        let mut last = String::new();
        for _ in 0..200 {
            last = self.eval(script).await?;
            if last == want {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(format!("{script} answered {last:?}, not {want:?}"))
    }

    /// Presses a key that leaves the page, and waits for the next one to load.
    async fn key_to_next_page(&self, k: &[char], what: &str) -> R<()> {
        let old = self.c.find(Locator::Css("html")).await.map_err(|e| e.to_string())?;
        self.keys(k).await?;
        let started = Instant::now();
        while old.tag_name().await.is_ok() {
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("{what} did not lead to another page"));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        self.wait_eval("return document.readyState", "complete").await
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

/// Runs `scenario` in a fresh Chromium whose language is `lang`, against a server on a new
/// ledger of 30 demo recipients; on failure the screenshot and source go to
/// `target/browser-failures/NAME.*`.
fn in_browser(name: &str, lang: &str, scenario: impl AsyncFnOnce(&Ui<'_>, &Server) -> R<()>) {
    // One browser at a time: two cores do not run three Chromiums and their servers without
    // keys arriving before a page is ready for them.
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    make_ledger(dir.path(), 30).unwrap();
    let server = Server::start(dir.path(), Settings::default()).unwrap();
    let driver = start_driver().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let result: R<()> = rt.block_on(async {
        let client = browser(&driver, profile.path(), lang).await?;
        let ui = Ui { c: &client, base: server.base() };
        let outcome = scenario(&ui, &server).await;
        if outcome.is_err() {
            let dir = target_dir("browser-failures");
            if let Ok(png) = client.screenshot().await {
                let _ = std::fs::write(dir.join(format!("{name}.png")), png);
            }
            if let Ok(src) = client.source().await {
                let _ = std::fs::write(dir.join(format!("{name}.html")), src);
            }
        }
        let _ = client.close().await;
        outcome
    });
    if let Err(e) = result {
        panic!("{e} (screenshot and source in target/browser-failures/{name}.*)");
    }
}

#[test]
fn a_working_day_in_a_real_browser() {
    in_browser("working-day", "ja-JP", async |ui, server| scenario(ui, server).await);
}

/// The grant form by keyboard alone, in a browser whose language is English: the tab order is
/// the form's order (no stop on the calendar buttons), a failed submit puts the focus on the
/// error summary whose link leads to the field, the calendar opens, moves and chooses by keys
/// and speaks Japanese, and 「/」 leads to the search field from any page.
#[test]
fn the_grant_form_by_keyboard_alone_in_an_english_browser() {
    in_browser("keyboard", "en-US", async |ui, server| {
        let f = fixture(server)?;
        let head = || server.app.store.head().position.0;
        // The browser really is English: what it would format by itself would be en-US.
        ui.go("/login").await?;
        let lang = ui.eval("return navigator.language").await?;
        if !lang.starts_with("en") {
            return Err(format!("the browser's language is {lang}, not English"));
        }
        // Log in by keys: the user field has the focus.
        if ui.focused().await? != "user" {
            return Err(format!("the login page starts on {}", ui.focused().await?));
        }
        ui.type_text("case1").await?;
        ui.key(Key::Tab).await?;
        ui.type_text(PASSWORD).await?;
        ui.key_to_next_page(&[Key::Enter.into()], "Enter on the password").await?;
        if ui.path().await? != "/search" || ui.focused().await? != "q" {
            return Err(format!("after logging in: {} with the focus on {}", ui.path().await?, ui.focused().await?));
        }
        // 「/」 from a recipient page: the search field.
        ui.go(&format!("/recipients/{}", f.a)).await?;
        ui.key_to_next_page(&['/'], "the / key").await?;
        if ui.path().await? != "/search" || ui.focused().await? != "q" {
            return Err(format!("/ led to {} with the focus on {}", ui.path().await?, ui.focused().await?));
        }

        // The grant form: Tab, the skip link, Enter, then the form from its first link.
        ui.go(&format!("/recipients/{}/do/grant_certificate", f.d)).await?;
        // The skip link is the page's first stop. (A busy headless Chromium may give the first
        // Tab of a fresh page to its own window, whence the next one enters the page.)
        let first = ui.eval("return document.querySelector('a[href], button, input:not([type=hidden]), select, textarea').getAttribute('href') || ''").await?;
        if first != "#main" {
            return Err(format!("the first stop of the page is {first:?}, not the skip link"));
        }
        ui.key(Key::Tab).await?;
        if ui.focused().await? == "body" {
            ui.key(Key::Tab).await?;
        }
        if ui.focused().await? != "a:#main" {
            return Err(format!("Tab reached {}, not the skip link", ui.focused().await?));
        }
        ui.key(Key::Enter).await?;
        let order: Vec<String> = serde_json::from_str(
            &ui.eval(
                "return JSON.stringify([...document.querySelectorAll('form.command input:not([type=hidden]), \
                 form.command select, form.command textarea')].map(e => e.id))",
            )
            .await?,
        )
        .map_err(|e| e.to_string())?;
        // Every field has a label tied to it.
        let unlabelled = ui
            .eval(
                "return [...document.querySelectorAll('form.command [id^=f-]')].filter(e => \
                 !document.querySelector(`label[for=\"${e.id}\"]`) && !e.closest('label')).map(e => e.id).join(' ')",
            )
            .await?;
        if !unlabelled.is_empty() {
            return Err(format!("fields without a label: {unlabelled}"));
        }
        let typed = [
            ("f-effective", "R8.11.1"),
            ("f-certificate", "C-D1"),
            ("f-valid_from", "令和8年11月1日"),
            ("f-valid_to", "2027-10-31"),
            ("f-payer_number", "15139992"),
            ("f-recipient_number", "1234566"),
            ("f-income_segment", "一般"),
        ];
        let mut visited = Vec::new();
        for _ in 0..80 {
            ui.key(Key::Tab).await?;
            let at = ui.focused().await?;
            if at.starts_with("button:") {
                visited.push(at);
                break;
            }
            if let Some((_, v)) = typed.iter().find(|(id, _)| *id == at) {
                ui.type_text(v).await?;
            }
            if at == "f-program" {
                for _ in 0..10 {
                    if ui.eval("return document.activeElement.value").await? == "kosei" {
                        break;
                    }
                    ui.key(Key::Down).await?;
                }
            }
            visited.push(at);
        }
        let fields_visited: Vec<&String> = visited.iter().filter(|v| v.starts_with("f-")).collect();
        let expected: Vec<&String> = order.iter().collect();
        if fields_visited != expected {
            return Err(format!("Tab went {visited:?}; the form's fields are {order:?}"));
        }
        if visited.iter().any(|v| v.contains("暦")) {
            return Err(format!("Tab stopped on a calendar button: {visited:?}"));
        }
        if visited.last().map(String::as_str) != Some("button:確認へ進む") {
            return Err(format!("Tab did not end on the submit button: {visited:?}"));
        }
        // Enter on the button: the payer number's check digit is wrong.
        let before = head();
        ui.key_to_next_page(&[Key::Enter.into()], "Enter on 確認へ進む").await?;
        if ui.focused().await? != "form-errors" {
            return Err(format!("after the failed submit the focus is on {}", ui.focused().await?));
        }
        let links = ui
            .eval("return [...document.querySelectorAll('#form-errors a')].map(a => a.getAttribute('href')).join(' ')")
            .await?;
        if links != "#f-payer_number" {
            return Err(format!("the error summary links to {links:?}"));
        }
        let described =
            ui.eval("return document.getElementById('f-payer_number').getAttribute('aria-describedby')").await?;
        if !described.split(' ').any(|d| d == "err-payer_number") {
            return Err(format!("the payer number field is described by {described:?}"));
        }
        // What was typed is kept, the other form of each date beside it.
        for (id, v) in typed {
            let kept = ui.eval(&format!("return document.getElementById('{id}').value")).await?;
            if kept != v {
                return Err(format!("{id} came back as {kept:?}, typed {v:?}"));
            }
        }
        ui.wait_eval("return document.getElementById('echo-f-effective').textContent", "2026-11-01").await?;
        ui.key(Key::Tab).await?;
        ui.key(Key::Enter).await?;
        if ui.focused().await? != "f-payer_number" {
            return Err(format!("the summary's link led to {}", ui.focused().await?));
        }
        ui.keys(&[Key::Control.into(), 'a']).await?;
        ui.type_text("15139991").await?;
        ui.key_to_next_page(&[Key::Enter.into()], "Enter in the payer number").await?;
        ui.expect_text("（確認）").await?;
        ui.expect_text("2026-11-01（令和8年11月1日）").await?;
        if head() != before {
            return Err("something was recorded before confirming".into());
        }
        let mut on = String::new();
        for _ in 0..60 {
            ui.key(Key::Tab).await?;
            on = ui.focused().await?;
            if on == "button:記録する" {
                break;
            }
        }
        if on != "button:記録する" {
            return Err("Tab never reached 記録する on the confirmation".into());
        }
        ui.key_to_next_page(&[Key::Enter.into()], "Enter on 記録する").await?;
        if !ui.path().await?.starts_with(&format!("/recipients/{}?recorded=", f.d)) || head() <= before {
            return Err(format!("the grant was not recorded (on {})", ui.path().await?));
        }

        // The calendar, by keys, in Japanese.
        ui.go(&format!("/recipients/{}/do/move_out", f.d)).await?;
        ui.click_on("#f-effective").await?;
        // (The form starts with today in it: replaced, as a click leaves the caret in it.)
        ui.keys(&[Key::Control.into(), 'a']).await?;
        ui.type_text("2026-11-25").await?;
        ui.wait_eval("return document.getElementById('echo-f-effective').textContent", "令和8年11月25日").await?;
        ui.keys(&[Key::Alt.into(), Key::Down.into()]).await?;
        ui.wait_eval("return document.activeElement.dataset.value || ''", "2026-11-25").await?;
        let title = ui.eval("return document.querySelector('.cal-title').textContent").await?;
        let weekdays =
            ui.eval("return [...document.querySelectorAll('.cal-grid th')].map(t => t.textContent).join('')").await?;
        if title != "2026年11月" || weekdays != "日月火水木金土" {
            return Err(format!("the calendar reads {title:?} / {weekdays:?}"));
        }
        let text = ui.eval("return document.querySelector('.cal').innerText").await?;
        if ["Nov", "Mon", "Sun", "Today"].iter().any(|w| text.contains(w)) {
            return Err(format!("the calendar speaks English: {text:?}"));
        }
        ui.key(Key::Right).await?;
        ui.wait_eval("return document.activeElement.dataset.value || ''", "2026-11-26").await?;
        ui.key(Key::PageDown).await?;
        ui.wait_eval("return document.activeElement.dataset.value || ''", "2026-12-26").await?;
        ui.wait_eval("return document.querySelector('.cal-title').textContent", "2026年12月").await?;
        ui.key(Key::Enter).await?;
        ui.wait_eval("return document.activeElement.id + ' ' + document.activeElement.value", "f-effective 2026-12-26")
            .await?;
        ui.wait_eval("return document.getElementById('echo-f-effective').textContent", "令和8年12月26日").await?;
        ui.wait_eval("return String(document.querySelector('.cal') === null)", "true").await?;
        // Escape closes it and gives the focus back.
        ui.keys(&[Key::Alt.into(), Key::Down.into()]).await?;
        ui.wait_eval("return String(document.querySelector('.cal') !== null)", "true").await?;
        ui.key(Key::Escape).await?;
        ui.wait_eval(
            "return document.activeElement.id + ' ' + String(document.querySelector('.cal') === null)",
            "f-effective true",
        )
        .await?;
        // An impossible era date typed: the message beside it as the field is left.
        ui.keys(&[Key::Control.into(), 'a']).await?;
        ui.type_text("令和元年4月30日").await?;
        ui.key(Key::Tab).await?;
        ui.wait_eval("return document.getElementById('echo-f-effective').textContent", "令和の期間にない日付です")
            .await?;

        // The month picker of the fee statement, as a supervisor.
        ui.logout_from("/search").await?;
        ui.login("super1").await?;
        ui.go("/billing?month=2026-10").await?;
        ui.click_on("#f-month").await?;
        ui.keys(&[Key::Alt.into(), Key::Down.into()]).await?;
        ui.wait_eval("return document.activeElement.dataset.value || ''", "2026-10").await?;
        ui.wait_eval("return document.querySelector('.cal-title').textContent", "2026年").await?;
        ui.key(Key::Right).await?;
        ui.key(Key::Enter).await?;
        ui.wait_eval("return document.activeElement.id + ' ' + document.activeElement.value", "f-month 2026-11")
            .await?;
        ui.wait_eval("return document.getElementById('echo-f-month').textContent", "令和8年11月").await?;
        Ok(())
    });
}

/// Elements whose content is wider than their box and that do not scroll, and a page that
/// scrolls sideways. Inputs scroll their own text; visually hidden helpers are clipped on
/// purpose.
const OVERFLOW_JS: &str = r#"
const out = [];
const root = document.documentElement;
if (root.scrollWidth > root.clientWidth + 1) out.push(`the page scrolls sideways (${root.scrollWidth} > ${root.clientWidth})`);
for (const el of document.body.querySelectorAll('*')) {
  if (el instanceof SVGElement || ['INPUT', 'TEXTAREA', 'SELECT', 'OPTION', 'SCRIPT'].includes(el.tagName)) continue;
  if (el.closest('.visually-hidden, .skip')) continue;
  const cs = getComputedStyle(el);
  if (['inline', 'none', 'contents'].includes(cs.display)) continue;
  if (cs.overflowX === 'auto' || cs.overflowX === 'scroll') continue;
  if (el.scrollWidth > el.clientWidth + 1) {
    const what = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className ? '.' + String(el.className).replace(/ /g, '.') : '');
    out.push(`${what} (${el.scrollWidth} > ${el.clientWidth}): ${el.textContent.trim().slice(0, 40)}`);
  }
}
return JSON.stringify(out);
"#;

/// What a page must hold whatever the role: Japanese dates only (no native date or month
/// field, whose format follows the browser's language), a label for every field, and every
/// description a field names present.
const PAGE_RULES_JS: &str = r#"
const out = [];
for (const e of document.querySelectorAll('input[type=date], input[type=month], input[type=datetime-local], input[type=week]'))
  out.push(`a native ${e.type} field ${e.name}`);
for (const e of document.querySelectorAll('input:not([type=hidden]):not([type=submit]), select, textarea')) {
  const labelled = (e.id && document.querySelector(`label[for="${e.id}"]`)) || e.closest('label') || e.getAttribute('aria-label');
  if (!labelled) out.push(`field ${e.name || e.id} has no label`);
}
for (const e of document.querySelectorAll('[aria-describedby]'))
  for (const id of e.getAttribute('aria-describedby').split(/\s+/).filter(Boolean))
    if (!document.getElementById(id)) out.push(`${e.name || e.id} is described by a missing #${id}`);
return JSON.stringify(out);
"#;

/// One page of the walk: how to reach it.
enum Visit {
    Get(String),
    /// A search for kana, by the search form.
    Search(&'static str),
    /// A command form sent with these values (a field error, or the confirmation).
    Submit(String, Vec<(&'static str, &'static str)>),
}

/// Every page of every role at 1280 and 1024 pixels: a screenshot of each
/// (`target/browser-pages/ROLE-PAGE-WIDTH.png`), no content wider than its box, no native
/// date field, every field labelled; and each page printed (its print styles leave the menus
/// and controls off the paper and keep the heading).
#[test]
fn every_page_of_every_role_at_two_widths_without_overflow() {
    in_browser("pages", "en-US", async |ui, server| {
        let f = fixture(server)?;
        let head = server.app.store.head().position.0;
        let shots = target_dir("browser-pages");
        let mut problems: Vec<String> = Vec::new();
        let mut printed = std::collections::BTreeSet::new();
        let mut count = 0;
        // The detector does see an overflow: a box too narrow for words that may not wrap.
        ui.go("/login").await?;
        ui.eval(
            "const d = document.createElement('div'); d.style.width = '40px'; d.style.whiteSpace = 'nowrap'; \
             d.textContent = 'あいうえおかきくけこ'; document.querySelector('main').appendChild(d); return ''",
        )
        .await?;
        let seen: Vec<String> = serde_json::from_str(&ui.eval(OVERFLOW_JS).await?).map_err(|e| e.to_string())?;
        if !seen.iter().any(|p| p.contains("あいうえお")) {
            return Err(format!("the overflow check missed a planted overflow: {seen:?}"));
        }
        for role in ["anonymous", "viewer1", "case1", "super1", "admin1", "audit1"] {
            let mut visits: Vec<(String, Visit)> = Vec::new();
            if role == "anonymous" {
                visits.push(("login".into(), Visit::Get("/login".into())));
            } else {
                ui.login(role).await?;
                // The menu's pages, then the recipients (one under a DV measure, one moved out),
                // each command form of a recipient, a form with errors, a confirmation, the
                // certificate, the statement and the audit comparison where the role may.
                let nav: Vec<String> = serde_json::from_str(
                    &ui.eval("return JSON.stringify([...document.querySelectorAll('header a[href^=\"/\"]')].map(a => a.getAttribute('href')))").await?,
                )
                .map_err(|e| e.to_string())?;
                for href in nav {
                    let name = href.trim_start_matches('/').replace('/', "-");
                    visits.push((name, Visit::Get(href)));
                }
                visits.push(("search-results".into(), Visit::Search("やまだ")));
                for (name, n) in [("recipient", f.a), ("recipient-dv", f.c), ("recipient-moved", f.b)] {
                    visits.push((name.into(), Visit::Get(format!("/recipients/{n}"))));
                }
                visits.push((
                    "recipient-past".into(),
                    Visit::Get(format!("/recipients/{}?as_of=2026-11-05&as_at=3", f.a)),
                ));
                ui.go(&format!("/recipients/{}", f.a)).await?;
                let actions: Vec<String> = serde_json::from_str(
                    &ui.eval("return JSON.stringify([...document.querySelectorAll('ul.actions a, a.button')].map(a => a.getAttribute('href')))").await?,
                )
                .map_err(|e| e.to_string())?;
                for href in &actions {
                    let name =
                        href.rsplit('/').find(|s| !s.is_empty() && s.parse::<u64>().is_err()).unwrap_or("action");
                    let name = if href.contains("/print") { "certificate".to_owned() } else { format!("form-{name}") };
                    visits.push((name, Visit::Get(href.clone())));
                }
                if actions.iter().any(|a| a.ends_with("/do/move_out")) {
                    let path = format!("/recipients/{}/do/move_out", f.a);
                    visits.push((
                        "form-errors".into(),
                        Visit::Submit(path.clone(), vec![("effective", "平成31年5月1日"), ("to", "")]),
                    ));
                    visits.push((
                        "confirm".into(),
                        Visit::Submit(path, vec![("effective", "令和8年11月20日"), ("to", "横浜市")]),
                    ));
                }
                visits.push(("billing-2026-10".into(), Visit::Get("/billing?month=2026-10".into())));
                visits.push(("audit-diff".into(), Visit::Get(format!("/audit?recipient={}&a=1&b={head}", f.a))));
                visits.push(("not-found".into(), Visit::Get("/recipients/999999".into())));
            }
            for (name, visit) in visits {
                match &visit {
                    Visit::Get(path) => ui.go(path).await?,
                    Visit::Search(q) => {
                        ui.go("/search").await?;
                        ui.fill("by", "kana").await?;
                        ui.fill("q", q).await?;
                        ui.press("検索").await?;
                    }
                    Visit::Submit(path, values) => {
                        ui.go(path).await?;
                        for (k, v) in values {
                            ui.fill(k, v).await?;
                        }
                        ui.press("確認へ進む").await?;
                    }
                }
                let at = ui.path().await?;
                let rules: Vec<String> =
                    serde_json::from_str(&ui.eval(PAGE_RULES_JS).await?).map_err(|e| e.to_string())?;
                problems.extend(rules.into_iter().map(|p| format!("{role} {name} ({at}): {p}")));
                for width in [1280u32, 1024] {
                    ui.c.set_window_size(width, 900).await.map_err(|e| e.to_string())?;
                    // The viewport is the width asked (the window's frame, if any, added).
                    let inner: u32 = ui.eval("return String(window.innerWidth)").await?.parse().unwrap_or(width);
                    if inner != width {
                        ui.c.set_window_size(width + (width - inner.min(width)), 900)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    let found: Vec<String> =
                        serde_json::from_str(&ui.eval(OVERFLOW_JS).await?).map_err(|e| e.to_string())?;
                    problems.extend(found.into_iter().map(|p| format!("{role} {name} at {width}px ({at}): {p}")));
                    let png = ui.c.screenshot().await.map_err(|e| e.to_string())?;
                    std::fs::write(shots.join(format!("{role}-{name}-{width}.png")), png).map_err(|e| e.to_string())?;
                    count += 1;
                }
                // On paper: the heading, without the menu or the buttons.
                if printed.insert(name.clone()) && !at.contains("/print") {
                    let pdf =
                        ui.c.print(fantoccini::wd::PrintConfiguration::default())
                            .await
                            .map_err(|e| format!("print {name}: {e}"))?;
                    let file = shots.join(format!("print-{name}.pdf"));
                    std::fs::write(&file, pdf).map_err(|e| e.to_string())?;
                    let text = Command::new("pdftotext")
                        .args(["-enc", "UTF-8"])
                        .arg(&file)
                        .arg("-")
                        .output()
                        .map_err(|e| format!("pdftotext (scripts/setup installs poppler-utils): {e}"))?;
                    let text = String::from_utf8_lossy(&text.stdout).to_string();
                    let h1 = ui.eval("const h = document.querySelector('h1'); return h ? h.innerText : ''").await?;
                    let first_word = h1.split_whitespace().next().unwrap_or("");
                    if text.contains("ログアウト") || text.contains("本文へ移動") {
                        problems.push(format!("{name} ({at}) prints the menu"));
                    }
                    if !first_word.is_empty() && !text.replace(['\n', ' '], "").contains(&first_word.replace(' ', "")) {
                        problems.push(format!("{name} ({at}) prints without its heading {h1:?}"));
                    }
                }
            }
            if role != "anonymous" {
                ui.logout_from("/search").await?;
            }
        }
        if count < 150 {
            problems.push(format!("only {count} screenshots were taken"));
        }
        if problems.is_empty() { Ok(()) } else { Err(format!("{} problems:\n{}", problems.len(), problems.join("\n"))) }
    });
}
