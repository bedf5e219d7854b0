//! Support for tests of the web UI: a real server on 127.0.0.1 over a real ledger on disk, and a
//! small HTTP/1.1 client with a cookie jar (requests are plain enough that a client library
//! would add more than it saves).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use daicho_app::accounts::{Accounts, hash_password};
use daicho_app::ledger::Ledger;
use daicho_domain::users::{Role, UserEvent};
use daicho_web::{App, Settings};

/// The password every test user has.
pub const PASSWORD: &str = "correct-horse-battery";

/// Test users: one per role, and a second caseworker and supervisor.
pub const USERS: [(&str, &str, Role); 7] = [
    ("viewer1", "閲覧 一", Role::Viewer),
    ("case1", "担当 一", Role::Caseworker),
    ("case2", "担当 二", Role::Caseworker),
    ("super1", "係長 一", Role::Supervisor),
    ("super2", "係長 二", Role::Supervisor),
    ("admin1", "管理 一", Role::Admin),
    ("audit1", "監査 一", Role::Auditor),
];

/// The day tests decide commands on (fixed, so synthetic data and dates line up).
pub fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 20).unwrap_or_default()
}

/// Creates a ledger in `data` with `recipients` synthetic recipients and the test users.
pub fn make_ledger(data: &Path, recipients: u64) -> Result<(), String> {
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = daicho::demo::run(data, recipients, 1, today(), &mut out, &mut err);
    if code != 0 {
        return Err(String::from_utf8_lossy(&err).into_owned());
    }
    add_test_users(data)
}

/// Adds the test users (one per role, password [`PASSWORD`]) to the ledger in `data`.
pub fn add_test_users(data: &Path) -> Result<(), String> {
    let ledger = Ledger::open(data).map_err(|e| e.to_string())?;
    let mut accounts = Accounts::load(ledger.store()).map_err(|e| e.to_string())?;
    // One hash for all: argon2 is slow on purpose, and tests add seven users.
    let hash = hash_password(PASSWORD).map_err(|e| e.to_string())?;
    for (id, name, role) in USERS {
        let user = daicho_domain::ids::UserId::parse(id).map_err(|e| e.to_string())?;
        accounts
            // Recorded as chosen by each user (not issued by an administrator, which would make
            // the first login a password change).
            .record(
                ledger.store(),
                id,
                UserEvent::Added { user, name: name.to_owned(), role, password_hash: hash.clone() },
                today(),
            )
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub data: PathBuf,
    pub app: Arc<App>,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Server {
    /// Serves the ledger in `data` with `settings` (today fixed to [`today`] unless set).
    pub fn start(data: &Path, mut settings: Settings) -> Result<Server, String> {
        settings.today = settings.today.or(Some(today()));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let app = App::open(data, settings)?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // The control socket, as `daicho serve` has it (for `daicho backup` and `status`).
        {
            let _entered = runtime.enter();
            if let Some(listener) = daicho_web::control::bind(data) {
                runtime.spawn(daicho_web::control::serve(listener, app.clone()));
            }
        }
        let served = app.clone();
        runtime.spawn(async move {
            let _ = daicho_web::serve(listener, served, async {
                let _ = stopped.await;
            })
            .await;
        });
        Ok(Server { addr, data: data.to_path_buf(), app, runtime: Some(runtime), stop: Some(stop) })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client without a session.
    pub fn client(&self) -> Client {
        Client { addr: self.addr, source: None, cookies: BTreeMap::new(), csrf: None }
    }

    /// A client without a session whose connections come from `source` (any of 127.0.0.0/8:
    /// another machine, as the server sees it).
    pub fn client_from(&self, source: std::net::IpAddr) -> Client {
        Client { addr: self.addr, source: Some(source), cookies: BTreeMap::new(), csrf: None }
    }

    /// A client logged in as `user` (with [`PASSWORD`]).
    pub fn login(&self, user: &str) -> Result<Client, String> {
        let mut c = self.client();
        let r = c.post("/login", &[("user", user), ("password", PASSWORD)])?;
        if r.status != 303 {
            return Err(format!("login of {user}: status {}", r.status));
        }
        Ok(c)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
        let _ = std::fs::remove_file(daicho_web::control::socket_path(&self.data));
    }
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names in lower case; repeated headers joined with "\n".
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The value of the first `<input name="NAME" ... value="...">` (or `name` after `value`).
    pub fn input_value(&self, name: &str) -> Option<String> {
        let needle = format!("name=\"{name}\"");
        for (i, _) in self.body.match_indices(&needle) {
            let start = self.body[..i].rfind('<')?;
            let end = i + self.body[i..].find('>')?;
            let tag = &self.body[start..end];
            if !tag.starts_with("<input") {
                continue;
            }
            let v = tag.split("value=\"").nth(1)?;
            return Some(unescape(&v[..v.find('"')?]));
        }
        None
    }

    /// The CSRF token of the page.
    pub fn csrf(&self) -> Option<String> {
        self.input_value("csrf")
    }

    /// Whether the body contains `text`.
    pub fn has(&self, text: &str) -> bool {
        self.body.contains(text)
    }

    /// On the approvals page: the requests about recipient `n`, oldest first, each as its
    /// server-issued id and the digest its approve button carries (none on one's own request).
    pub fn approvals(&self, n: u64) -> Vec<(String, Option<String>)> {
        let link = format!("href=\"/recipients/{n}\"");
        self.body
            .split("<article class=\"approval\">")
            .skip(1)
            .filter(|a| a.contains(&link))
            .filter_map(|a| {
                let id = a.split("依頼ID ").nth(1)?.split('<').next()?.trim().to_owned();
                let digest =
                    Response { status: 200, headers: BTreeMap::new(), body: a.to_owned() }.input_value("digest");
                Some((id, digest))
            })
            .collect()
    }
}

fn unescape(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `application/x-www-form-urlencoded`.
pub fn urlencode(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(char::from(b)),
                b' ' => out.push('+'),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out
    }
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// A client with a cookie jar.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    source: Option<std::net::IpAddr>,
    cookies: BTreeMap<String, String>,
    csrf: Option<String>,
}

impl Client {
    /// The session's CSRF token (read once from the search page).
    pub fn csrf(&mut self) -> Result<String, String> {
        if let Some(t) = &self.csrf {
            return Ok(t.clone());
        }
        let t = self.get("/search")?.csrf().ok_or("no csrf token on /search")?;
        self.csrf = Some(t.clone());
        Ok(t)
    }

    /// Posts a form with the session's CSRF token added.
    pub fn post_form(&mut self, path: &str, form: &[(&str, &str)]) -> Result<Response, String> {
        let csrf = self.csrf()?;
        let mut all: Vec<(&str, &str)> = vec![("csrf", &csrf)];
        all.extend_from_slice(form);
        self.post(path, &all)
    }

    /// Posts a command form at `step` (`check` or `confirm`) with idempotency key `id`.
    pub fn command(&mut self, path: &str, id: &str, step: &str, fields: &[(&str, &str)]) -> Result<Response, String> {
        let mut all: Vec<(&str, &str)> = vec![("id", id), ("step", step)];
        all.extend_from_slice(fields);
        self.post_form(path, &all)
    }

    /// Records a command (confirm step); the redirect's location.
    pub fn record(&mut self, path: &str, id: &str, fields: &[(&str, &str)]) -> Result<String, String> {
        let r = self.command(path, id, "confirm", fields)?;
        if r.status != 303 {
            let errors: Vec<&str> = r.body.lines().filter(|l| l.contains("error")).collect();
            return Err(format!("{path} {id}: status {} {errors:?}", r.status));
        }
        r.header("location").map(str::to_owned).ok_or_else(|| "no location".to_owned())
    }

    /// `GET path`.
    pub fn get(&mut self, path: &str) -> Result<Response, String> {
        self.request("GET", path, None, &[])
    }

    /// `POST path` with a form, as a same-origin browser sends it.
    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Result<Response, String> {
        self.request("POST", path, Some(&urlencode(form)), &[("Sec-Fetch-Site", "same-origin")])
    }

    /// Posts `multipart/form-data` as a same-origin browser does: the session's CSRF token,
    /// `fields`, and one file part (field name, file name, bytes).
    pub fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        file: (&str, &str, &[u8]),
    ) -> Result<Response, String> {
        let boundary = "----daicho-test-boundary-7MA4YWxkTrZu0gW";
        let csrf = self.csrf()?;
        let mut body = Vec::new();
        for (k, v) in [("csrf", csrf.as_str())].into_iter().chain(fields.iter().copied()) {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").as_bytes(),
            );
        }
        let (name, filename, bytes) = file;
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: text/csv\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        self.request_bytes("POST", path, Some((&content_type, &body)), &[("Sec-Fetch-Site", "same-origin")])
    }

    /// A request with extra headers.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        let body = body.map(|b| ("application/x-www-form-urlencoded", b.as_bytes()));
        self.request_bytes(method, path, body, headers)
    }

    /// A request with a body of any type (content type, bytes) and extra headers.
    pub fn request_bytes(
        &mut self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        let mut s = match self.source {
            None => TcpStream::connect(self.addr).map_err(|e| e.to_string())?,
            Some(source) => connect_from(source, self.addr)?,
        };
        s.set_read_timeout(Some(Duration::from_secs(120))).map_err(|e| e.to_string())?;
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            req.push_str(&format!("Cookie: {}\r\n", jar.join("; ")));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some((content_type, b)) = body {
            req.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", b.len()));
        }
        req.push_str("\r\n");
        let mut raw_request = req.into_bytes();
        if let Some((_, b)) = body {
            raw_request.extend_from_slice(b);
        }
        s.write_all(&raw_request).map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
        let response = parse(&raw)?;
        if let Some(set) = response.header("set-cookie") {
            for line in set.split('\n') {
                let first = line.split(';').next().unwrap_or("");
                if let Some((k, v)) = first.split_once('=') {
                    if v.is_empty() || line.contains("Max-Age=0") {
                        self.cookies.remove(k.trim());
                    } else {
                        self.cookies.insert(k.trim().to_owned(), v.trim().to_owned());
                    }
                }
            }
        }
        Ok(response)
    }

    /// The session cookie's value, if any.
    pub fn session(&self) -> Option<&str> {
        self.cookies.get("daicho_session").map(String::as_str)
    }
}

/// A connection to `addr` from the local address `source` (std cannot bind before connecting).
fn connect_from(source: std::net::IpAddr, addr: SocketAddr) -> Result<TcpStream, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(|e| e.to_string())?;
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(addr).await
    });
    let stream = stream.map_err(|e| e.to_string())?.into_std().map_err(|e| e.to_string())?;
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    Ok(stream)
}

fn parse(raw: &[u8]) -> Result<Response, String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no header end")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|e| e.to_string())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("empty response")?;
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("bad status line")?;
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers
                .entry(k.trim().to_ascii_lowercase())
                .and_modify(|x| {
                    x.push('\n');
                    x.push_str(v.trim());
                })
                .or_insert_with(|| v.trim().to_owned());
        }
    }
    let mut body = raw[split + 4..].to_vec();
    if headers.get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        body = dechunk(&body)?;
    }
    Ok(Response { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size_text = std::str::from_utf8(&b[..line_end]).map_err(|e| e.to_string())?;
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).map_err(|e| e.to_string())?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(b.get(..size).ok_or("short chunk")?);
        b = b.get(size + 2..).ok_or("short chunk")?;
    }
}

/// The internal number in a location like `/recipients/12?recorded=40`.
pub fn recipient_in(location: &str) -> Option<u64> {
    location.strip_prefix("/recipients/")?.split(['?', '/']).next()?.parse().ok()
}

/// Recipients the form tests start from, recorded through the web UI by `case1`.
pub struct Fixture {
    /// 山田 太郎: registered, a 更生医療 certificate C-A1 (2026-11-01 to 2026-11-30).
    pub a: u64,
    /// 鈴木 一郎: registered, moved out.
    pub b: u64,
    /// 田中 花子: registered, under a DV support measure.
    pub c: u64,
    /// 高橋 次郎: registered, no certificate.
    pub d: u64,
    /// The id of A's grant.
    pub a_grant: &'static str,
}

/// Records the fixture recipients.
pub fn fixture(server: &Server) -> Result<Fixture, String> {
    let mut c = server.login("case1")?;
    let register = |c: &mut Client, id: &str, reference: &str, name: &str, kana: &str, birth: &str, sex: &str| {
        c.record(
            "/recipients/new",
            id,
            &[
                ("recipient", reference),
                ("effective", "2026-11-01"),
                ("name", name),
                ("kana", kana),
                ("birth_date", birth),
                ("sex", sex),
                ("address", "さくら市本町1-1-1"),
            ],
        )
        .and_then(|l| recipient_in(&l).ok_or_else(|| format!("no recipient in {l}")))
    };
    let a = register(&mut c, "fx-a", "WEB-A", "山田 太郎", "ヤマダ タロウ", "1980-05-05", "1")?;
    let b = register(&mut c, "fx-b", "WEB-B", "鈴木 一郎", "スズキ イチロウ", "1975-03-03", "1")?;
    let cc = register(&mut c, "fx-c", "WEB-C", "田中 花子", "タナカ ハナコ", "1988-08-08", "2")?;
    let d = register(&mut c, "fx-d", "WEB-D", "高橋 次郎", "タカハシ ジロウ", "1970-07-07", "1")?;
    c.record(
        &format!("/recipients/{a}/do/grant_certificate"),
        "fx-a-grant",
        &[
            ("effective", "2026-11-01"),
            ("program", "kosei"),
            ("certificate", "C-A1"),
            ("valid_from", "2026-11-01"),
            ("valid_to", "2026-11-30"),
            ("payer_number", "15139991"),
            ("recipient_number", "1234566"),
            ("income_segment", "一般"),
        ],
    )?;
    c.record(&format!("/recipients/{b}/do/move_out"), "fx-b-out", &[("effective", "2026-11-10"), ("to", "横浜市")])?;
    c.record(&format!("/recipients/{cc}/do/start_dv_support"), "fx-c-dv", &[("effective", "2026-11-05")])?;
    Ok(Fixture { a, b, c: cc, d, a_grant: "fx-a-grant" })
}
