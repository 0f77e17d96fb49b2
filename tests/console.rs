//! The review console in a real browser: Debian's `chromium` (headless) driven through
//! `chromedriver` with `fantoccini`, against the daemon binary serving two emulator corps (the
//! setup of `review_api::review_daemon_end_to_end`, with voice transcoding on).
//!
//! alice (reviewer of corp A) signs in; the conversation list appears; a conversation opens as
//! bubbles; a voice message's `<audio>` loads the MP3 with a duration > 0; an image loads and
//! opens full size; a 2-character Chinese search term's hit, clicked, lands highlighted in its
//! timeline; corp B is not offered, and its URL (console and API) answers "not found" / 404;
//! the columns stack at phone width; sign-out ends the session; the auditor sees alice's reads
//! and an intact chain. Screenshots of the main screens go to `target/console-screenshots/`
//! and each must be a real picture (decoded: many colours, not one).
//!
//! Every wait has a deadline; the whole browser session too. Without chromium/chromedriver the
//! test skips loudly, and fails under `CI=true` (scripts/setup.sh installs them).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::{free_port, request, write_corps, Answer, Daemon};
use common::pipeline::Db;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use wework_msgaudit::review::render;

const PW: &str = "a long enough password";
const RECORDS: u64 = 150;

/// `chromedriver` on a free port; killed when dropped.
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

/// The first of `names` found on `PATH` (or as a path).
fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        if name.starts_with('/') && Path::new(name).is_file() {
            return Some(PathBuf::from(name));
        }
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// chromium and chromedriver, or a loud skip (a failure under CI).
fn browser() -> Option<(PathBuf, PathBuf)> {
    let chromium = which(&["chromium", "chromium-browser", "/usr/lib/chromium/chromium"]);
    let driver = which(&["chromedriver", "/usr/lib/chromium/chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            common::skip_or_fail(
                "the review console's browser test",
                "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
            );
            None
        }
    }
}

fn start_driver(driver: &Path, log: &Path) -> Driver {
    let port = free_port();
    let child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::from(std::fs::File::create(log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let d = Driver { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Listening is enough (its HTTP keeps connections open: `request` would wait for the close).
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return d;
        }
        assert!(Instant::now() < deadline, "chromedriver never got ready: {}", std::fs::read_to_string(log).unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Where the screenshots go: `target/console-screenshots/` (CI keeps `target/`).
fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Decodes a PNG and checks it is a picture, not a blank: many colours, no single one covering
/// nearly all of it. Returns (width, height, distinct colours).
fn check_png(bytes: &[u8], what: &str) -> (u32, u32, usize) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap_or_else(|e| panic!("{what}: not a PNG: {e}"));
    let mut buf = vec![0; reader.output_buffer_size().expect("PNG size")];
    let info = reader.next_frame(&mut buf).unwrap_or_else(|e| panic!("{what}: PNG does not decode: {e}"));
    let px = info.color_type.samples();
    let data = &buf[..info.buffer_size()];
    let mut counts: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
    for p in data.chunks_exact(px) {
        *counts.entry(p).or_default() += 1;
    }
    let total = data.len() / px;
    let top = counts.values().copied().max().unwrap_or(0);
    assert!(counts.len() >= 16, "{what}: only {} colours: blank?", counts.len());
    assert!(top * 100 < total * 97, "{what}: one colour covers {top} of {total} pixels: blank?");
    (info.width, info.height, counts.len())
}

/// The browser side of the test, against the console at `base`.
struct Browser {
    c: Client,
    base: String,
    shots: PathBuf,
}

impl Browser {
    /// Evaluates `js` (a function body: `return …`).
    async fn js(&self, js: &str) -> Value {
        self.c.execute(js, vec![]).await.unwrap_or_else(|e| panic!("JS failed: {e}\n{js}"))
    }

    /// Evaluates async `js` (a function body that calls `done(value)`; given up after 20 s).
    async fn js_async(&self, js: &str, args: Vec<Value>) -> Value {
        let script = format!(
            "const done = arguments[arguments.length - 1]; const args = arguments; \
             setTimeout(() => done({{timeout: true}}), 20000); {js}"
        );
        self.c.execute_async(&script, args).await.unwrap_or_else(|e| panic!("async JS failed: {e}\n{js}"))
    }

    /// Waits until `cond` (a JS expression) is truthy; fails with `what` after `secs`.
    async fn until(&self, cond: &str, what: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let js = format!("return !!({cond});");
        loop {
            if self.js(&js).await == json!(true) {
                return;
            }
            if Instant::now() > deadline {
                let toast = self.js("return document.getElementById('toast')?.textContent").await;
                let _ = self.shot("failure").await;
                panic!("waited {secs} s for {what} ({cond}); toast: {toast}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let el = self.c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn type_in(&self, css: &str, text: &str) {
        let el = self.c.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// Saves a screenshot as `<name>.png` and checks it is not blank.
    async fn shot(&self, name: &str) -> PathBuf {
        let png = self.c.screenshot().await.unwrap();
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        check_png(&png, name);
        path
    }

    /// Navigates to the console's `#fragment` (a hash change: the app follows it).
    async fn go(&self, fragment: &str) {
        self.js(&format!("location.hash = {}; return 1;", json!(fragment))).await;
    }

    async fn fetch_status(&self, path: &str) -> u64 {
        let v = self.js_async("fetch(args[0]).then((r) => done(r.status), () => done(0));", vec![json!(path)]).await;
        v.as_u64().unwrap_or_else(|| panic!("fetch {path}: {v}"))
    }

    async fn sign_in(&self, name: &str) {
        self.until("!document.getElementById('login-view').hidden", "the sign-in form", 20).await;
        self.type_in("#username", name).await;
        self.type_in("#password", PW).await;
        self.click("#login-submit").await;
        self.until("document.getElementById('login-view').hidden", &format!("{name} signed in"), 20).await;
    }
}

/// What the seeded archive holds that the browser test looks for (found over the API).
struct Seed {
    a: String,
    b: String,
    b_key: String,
    voice: Value,
    image: Value,
    term: &'static str,
}

async fn console_in_a_browser(db: Db) {
    let Some((chromium, chromedriver)) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = ("wwconsoleA00000001".to_string(), "wwconsoleB00000002".to_string());
    write_corps(d, &[a.clone(), b.clone()], 7, RECORDS, "", None);
    let port = free_port();
    let config = d.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nlevel = \"info\"\n[database]\nurl = \"{db}\"\n[sdk]\nlibrary = \"emulator\"\nthreads = 2\n\
             [pull]\npoll_interval = \"300ms\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n\
             [corps]\ntable = false\nfile = \"{corps}\"\n\
             [media]\nroot = \"{media}\"\nsweep_interval = \"300ms\"\nbackoff_initial = \"100ms\"\n\
             backoff_max = \"1s\"\ntranscode = true\n\
             [search]\nenabled = true\ndir = \"{index}\"\npoll_interval = \"300ms\"\n\
             [review]\nlisten = \"127.0.0.1:{port}\"\n",
            db = db.url,
            corps = d.join("corps.toml").display(),
            media = d.join("msgfile").display(),
            index = d.join("index").display(),
        ),
    )
    .unwrap();
    let pw_file = d.join("pw");
    std::fs::write(&pw_file, format!("{PW}\n")).unwrap();
    let pw = pw_file.to_str().unwrap();
    for args in [
        vec!["user", "add", "alice", "--role", "reviewer", "--corp", &a, "--password-file", pw],
        vec!["user", "add", "carol", "--role", "reviewer", "--corp", &a, "--corp", &b, "--password-file", pw],
        vec!["user", "add", "audi", "--role", "auditor", "--password-file", pw],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
            .args(&args)
            .args(["--config", config.to_str().unwrap()])
            .env("WWF_EMULATOR_SCENARIO", d.join("scenario.toml"))
            .env("WEWORK_MSGAUDIT_LOG", "warn")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut daemon = Daemon::start(d, &config, 1, &[]);
    let seed = seed(&mut daemon, port, &a, &b);

    // One browser at a time (the SQLite and MariaDB runs share the machine's two cores).
    static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _one = ONE_BROWSER.lock().await;
    let driver = start_driver(&chromedriver, &d.join("chromedriver.log"));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,900", "--lang=zh-CN", "--no-first-run",
                     "--autoplay-policy=no-user-gesture-required"],
        }),
    );
    let mut builder = ClientBuilder::rustls().expect("a TLS setup for the WebDriver client");
    builder.capabilities(caps);
    let webdriver = format!("http://127.0.0.1:{}", driver.port);
    let connect = builder.connect(&webdriver);
    let c = tokio::time::timeout(Duration::from_secs(60), connect)
        .await
        .expect("chromedriver started no browser within 60 s")
        .expect("a browser session");
    let br = Browser { c, base: format!("http://127.0.0.1:{port}/"), shots: shots_dir() };
    let run = tokio::time::timeout(Duration::from_secs(240), drive(&br, &seed));
    let outcome = run.await;
    let _ = tokio::time::timeout(Duration::from_secs(20), br.c.clone().close()).await;
    drop(driver);
    outcome.unwrap_or_else(|_| panic!("the browser session took over 240 s:\n{}", daemon.log()));
    daemon.alive();
    let (status, _) = daemon.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", daemon.log());
    db.finish().await;
}

/// Waits (over the API, as carol, who reads both corps) until both corps are stored and
/// indexed, corp A has a downloaded image and a transcoded voice message, and a 2-character
/// Chinese term hits in corp A.
fn seed(daemon: &mut Daemon, port: u16, a: &str, b: &str) -> Seed {
    let deadline = Instant::now() + Duration::from_secs(240);
    let call = |cookie: &str, path: &str| -> Answer {
        request(port, "GET", path, &[("Cookie", cookie)], None).unwrap_or_else(|| panic!("GET {path}: no answer"))
    };
    let json_of = |cookie: &str, path: &str| -> Value {
        let r = call(cookie, path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    };
    let login = loop {
        daemon.alive();
        let body = json!({ "username": "carol", "password": PW });
        match request(port, "POST", "/api/login", &[], Some(&body)) {
            Some(r) if r.status == 200 => break r,
            _ => {}
        }
        assert!(Instant::now() < deadline, "the review server never answered:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(200));
    };
    let cookie = login.header("set-cookie").unwrap().split(';').next().unwrap().to_string();
    // The first done media item of a message of `msgtype` in corp A (with an MP3 for voice).
    let media_of = |msgtype: &str| -> Option<Value> {
        let hits = json_of(&cookie, &format!("/api/search?q=&corp={a}&msgtype={msgtype}&limit=50"));
        hits["hits"].as_array()?.iter().find_map(|h| {
            let m = json_of(&cookie, h["url"].as_str()?);
            let ok = m["media"]
                .as_array()?
                .iter()
                .any(|i| i["status"] == "done" && (msgtype != "voice" || i["mp3_url"].is_string()) && i["item"] == 0);
            ok.then_some(m)
        })
    };
    loop {
        daemon.alive();
        assert!(Instant::now() < deadline, "the corps never got ingested, indexed and downloaded:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(300));
        let corps = json_of(&cookie, "/api/corps");
        let stored = |c: &str| {
            corps["corps"].as_array().unwrap().iter().find(|x| x["corpid"] == c).and_then(|x| x["messages"].as_u64())
        };
        let indexed = |c: &str| json_of(&cookie, &format!("/api/search?q=&corp={c}&limit=1"))["total"].as_u64();
        if [a, b].iter().any(|c| stored(c).unwrap_or(0) < RECORDS || indexed(c) != stored(c)) {
            continue;
        }
        let (Some(voice), Some(image)) = (media_of("voice"), media_of("image")) else { continue };
        let term = ["合同", "会议", "报价", "周末", "收到", "客户", "项目", "明天"]
            .into_iter()
            .find(|t| {
                json_of(&cookie, &format!("/api/search?q={}&corp={a}&limit=1", render::enc(t)))["total"].as_u64()
                    > Some(0)
            })
            .expect("a 2-character Chinese term in corp A");
        let convs = json_of(&cookie, &format!("/api/corps/{b}/conversations?limit=1"));
        let b_key = convs["conversations"][0]["key"].as_str().unwrap().to_string();
        return Seed { a: a.into(), b: b.into(), b_key, voice, image, term };
    }
}

/// The browser session (see the module documentation).
async fn drive(br: &Browser, seed: &Seed) {
    let (a, b) = (&seed.a, &seed.b);
    br.c.goto(&br.base).await.unwrap();
    br.until("document.body.dataset.ready === '1'", "the console to start", 30).await;
    let html_lang = br.js("return document.documentElement.lang").await;
    assert_eq!(html_lang, "zh-CN", "Chinese first");
    assert_eq!(br.js("return document.getElementById('login-submit').textContent").await, "登录");
    br.shot("01-login").await;

    // alice: corp A only.
    br.sign_in("alice").await;
    br.until("document.querySelector('#convs .item.conv')", "the conversation list", 30).await;
    let offered = br.js("return [...document.querySelectorAll('#corp option')].map((o) => o.value)").await;
    assert_eq!(offered, json!([a]), "only corp A is offered");
    let people = br.js("return document.querySelectorAll('#people .item').length").await;
    assert!(people.as_u64() > Some(1), "people listed: {people}");
    br.shot("02-conversations").await;

    // A conversation as bubbles.
    br.click("#convs .item.conv:not([data-kind=undecryptable])").await;
    br.until("document.querySelectorAll('#tl-msgs .msg .bubble').length > 0", "bubbles", 30).await;
    let sides = br.js("return [...document.querySelectorAll('#tl-msgs .msg')].map((m) => m.className)").await;
    assert!(
        sides
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains("left") || s.as_str().unwrap().contains("right")),
        "{sides}"
    );
    assert!(br.js("return document.querySelectorAll('#tl-msgs .day').length").await.as_u64() > Some(0), "day rows");
    let export = br.js("return document.getElementById('export-csv').getAttribute('href')").await;
    assert!(export.as_str().unwrap().ends_with("/export?format=csv"), "{export}");
    br.shot("03-timeline").await;
    // A chat record expands inline (the emulator's demo has one).
    let opened = br
        .js("const b = [...document.querySelectorAll('#convs .item.conv')].find((b) => b.textContent.includes('[chatrecord]'));
             if (b) b.click(); return !!b")
        .await;
    if opened == json!(true) {
        br.until("document.querySelector('#tl-msgs .card.nested .nested-item')", "a chat record's items", 20).await;
        br.shot("03b-chatrecord").await;
    }
    // The export button's ZIP downloads (as the browser fetches it, with the session).
    let zip = br
        .js_async(
            "fetch(document.getElementById('export-csv').href)
               .then((r) => r.arrayBuffer().then((b) => done({status: r.status, type: r.headers.get('content-type'),
                 magic: [...new Uint8Array(b.slice(0, 2))]})), () => done(0));",
            vec![],
        )
        .await;
    assert_eq!(zip["status"], 200, "{zip}");
    assert_eq!(zip["magic"], json!([0x50, 0x4b]), "a ZIP: {zip}");

    // Voice: the <audio> loads the MP3 and knows its duration.
    let open_at = |m: &Value| {
        format!(
            "corp={}&conv={}&msg={}&t={}&s={}",
            a,
            m["conversation"].as_str().unwrap(),
            render::enc(m["msgid"].as_str().unwrap()),
            m["time"],
            m["seq"]
        )
    };
    br.go(&open_at(&seed.voice)).await;
    let voice_sel = format!("#tl-msgs [data-msgid={}] audio", json!(seed.voice["msgid"]));
    br.until(&format!("document.querySelector({})", json!(voice_sel)), "the voice message's <audio>", 30).await;
    let audio = br
        .js_async(
            "const a = document.querySelector(args[0]);
             const fin = () => done({duration: a.duration, ready: a.readyState, error: a.error && a.error.code,
                                     src: a.currentSrc});
             if (a.readyState >= 1) fin();
             else { a.addEventListener('loadedmetadata', fin); a.addEventListener('error', fin); a.load(); }",
            vec![json!(voice_sel)],
        )
        .await;
    let duration = audio["duration"].as_f64().unwrap_or(0.0);
    assert!(duration > 0.0 && duration.is_finite(), "the voice message plays: {audio}");
    assert!(audio["src"].as_str().unwrap().ends_with("?format=mp3"), "the MP3 is played: {audio}");
    assert!(br.js("return document.querySelector('#tl-msgs .msg.hit audio') !== null").await == json!(true));
    br.shot("04-voice").await;

    // An image: loaded in its fixed box, then full size.
    br.go(&open_at(&seed.image)).await;
    let img_sel = format!("#tl-msgs [data-msgid={}] .imgbox img", json!(seed.image["msgid"]));
    br.until(
        &format!(
            "(() => {{ const i = document.querySelector({}); return i && i.complete && i.naturalWidth > 0; }})()",
            json!(img_sel)
        ),
        "the image to load",
        30,
    )
    .await;
    let boxed = br
        .js(&format!(
            "const r = document.querySelector({}).parentElement.getBoundingClientRect(); return [r.width, r.height]",
            json!(img_sel)
        ))
        .await;
    assert_eq!(boxed, json!([200, 150]), "a fixed box: no layout shift");
    br.click(&format!("#tl-msgs [data-msgid={}] .imgbox", json!(seed.image["msgid"]))).await;
    br.until(
        "!document.getElementById('lightbox').hidden && document.getElementById('lightbox-img').naturalWidth > 0",
        "the full-size image",
        20,
    )
    .await;
    br.shot("05-image").await;
    br.click("#lightbox").await;
    br.until("document.getElementById('lightbox').hidden", "the full-size image to close", 10).await;

    // Search a 2-character term; the hit lands highlighted in its timeline.
    br.type_in("#q", seed.term).await;
    br.click("#search-go").await;
    br.until("document.querySelector('#convs .hit-item')", "search hits", 30).await;
    let bold =
        br.js("return [...document.querySelectorAll('#convs .hit-item .snippet b')].map((b) => b.textContent)").await;
    assert!(bold.as_array().unwrap().iter().any(|t| t.as_str().unwrap().contains(seed.term)), "highlighted: {bold}");
    let no_markup = br.js("return document.querySelectorAll('#convs .snippet *:not(b)').length").await;
    assert_eq!(no_markup, 0, "only <b> from a snippet");
    br.shot("06-search").await;
    let hit = br.js("return document.querySelector('#convs .hit-item').dataset.msgid").await;
    br.click("#convs .hit-item").await;
    let hit_sel = format!("#tl-msgs .msg.hit[data-msgid={hit}]");
    br.until(&format!("document.querySelector({})", json!(hit_sel)), "the hit highlighted in the timeline", 30).await;
    let visible = br
        .js(&format!(
            "const r = document.querySelector({}).getBoundingClientRect(), t = document.getElementById('timeline').getBoundingClientRect();
             return r.bottom > t.top && r.top < t.bottom",
            json!(hit_sel)
        ))
        .await;
    assert_eq!(visible, json!(true), "scrolled to the hit");
    br.shot("07-search-hit").await;

    // Corp B: not offered (above); its URL says "not found", its API answers 404.
    br.go(&format!("corp={b}&conv={}", seed.b_key)).await;
    br.until("document.getElementById('tl-title').textContent.includes('未找到')", "corp B refused", 20).await;
    assert_eq!(br.fetch_status(&format!("/api/corps/{b}/conversations")).await, 404);
    assert_eq!(br.fetch_status(&format!("/api/corps/{b}/conversations/{}/messages", seed.b_key)).await, 404);
    assert_eq!(br.fetch_status(&format!("/api/search?q=&corp={b}")).await, 404);

    // Phone width: the columns stack.
    br.go(&format!("corp={a}")).await;
    br.c.set_window_size(390, 844).await.unwrap();
    br.until("document.querySelector('#convs .item.conv')", "the list at phone width", 20).await;
    let stacked = br
        .js("const p = document.getElementById('col-people').getBoundingClientRect(),
                    c = document.getElementById('col-convs').getBoundingClientRect();
             return {stacked: c.top >= p.bottom - 1, width: innerWidth,
                     overflow: document.documentElement.scrollWidth > innerWidth + 1}")
        .await;
    assert_eq!(stacked["stacked"], json!(true), "columns stack at phone width: {stacked}");
    assert_eq!(stacked["overflow"], json!(false), "nothing wider than a phone: {stacked}");
    br.shot("08-phone").await;
    br.c.set_window_size(1400, 900).await.unwrap();

    // English on demand (kept in localStorage; the page reloads into the same session).
    br.click("#lang").await;
    br.until(
        "document.body.dataset.ready === '1' && document.getElementById('logout').textContent === 'Sign out'",
        "English labels",
        20,
    )
    .await;
    br.until("document.querySelector('#convs .item.conv')", "the list after the switch", 20).await;
    br.shot("10-english").await;
    br.click("#lang").await;
    br.until(
        "document.body.dataset.ready === '1' && document.getElementById('logout').textContent === '退出登录'",
        "Chinese labels again",
        20,
    )
    .await;

    // Sign-out ends the session.
    br.click("#logout").await;
    br.until("!document.getElementById('login-view').hidden", "the sign-in form after sign-out", 20).await;
    assert_eq!(br.fetch_status("/api/me").await, 401);

    // The auditor: alice's reads, an intact chain.
    br.sign_in("audi").await;
    br.until("document.getElementById('verify').classList.contains('ok')", "an intact access log", 30).await;
    let rows = br
        .js("return [...document.querySelectorAll('#log-rows tr')].map((r) => [...r.cells].map((c) => c.textContent))")
        .await;
    let rows = rows.as_array().unwrap();
    let of_alice = |action: &str| rows.iter().any(|r| r[2] == "alice" && r[3] == action);
    for action in ["login", "list_conversations", "open_conversation", "fetch_media", "search", "logout"] {
        assert!(of_alice(action), "alice's {action} in the access log: {rows:?}");
    }
    assert!(!rows.iter().any(|r| r[2] == "alice" && r[4] == b.as_str()), "no read of corp B by alice");
    br.shot("09-audit").await;
    br.click("#logout").await;
    br.until("!document.getElementById('login-view').hidden", "signed out", 20).await;
}

per_db!(tokio: console_browser => console_in_a_browser);
