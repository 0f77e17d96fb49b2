//! The daemon binary as a child process, for the tests that run it (`run` with the emulator),
//! and small helpers around it: HTTP GET of its endpoints ([`get`]) and any HTTP/1.1 request
//! with headers and a JSON body ([`request`]), editor-like file replacement, a free port.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Writes `text` to `path` the way editors do: a temp file renamed over it.
pub fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The pids of `pid`'s children (forked by any of its threads), e.g. a daemon's sdk-workers.
pub fn children(pid: u32) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| s.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The daemon as a child process; killed when dropped. Logs go to files (a full pipe would
/// block the daemon).
pub struct Daemon {
    pub child: Child,
    pub stderr: PathBuf,
}

impl Daemon {
    /// `run --config <config>` with the emulator scenario `<dir>/scenario.toml`; logs go to
    /// `<dir>/stderr-<run>.log` and `stdout-<run>.log`.
    pub fn start(dir: &Path, config: &Path, run: usize, env: &[(&str, &str)]) -> Daemon {
        let stderr = dir.join(format!("stderr-{run}.log"));
        let stdout = dir.join(format!("stdout-{run}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_wework-msgaudit"))
            .args(["run", "--config", config.to_str().unwrap()])
            .env("WWF_EMULATOR_SCENARIO", dir.join("scenario.toml"))
            .envs(env.iter().copied())
            .env_remove("WEWORK_MSGAUDIT_LOG")
            .stdout(Stdio::from(std::fs::File::create(stdout).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()))
            .spawn()
            .unwrap();
        Daemon { child, stderr }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the daemon exited ({status}):\n{}", self.log());
        }
    }

    /// SIGTERM, then the exit status and how long the exit took.
    pub fn terminate(&mut self, deadline: Duration) -> (std::process::ExitStatus, Duration) {
        let t0 = Instant::now();
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, t0.elapsed());
            }
            assert!(t0.elapsed() < deadline, "no exit {deadline:?} after SIGTERM:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` → (status code, body).
pub fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, body.to_string()))
}

/// An HTTP answer: the status, the headers (names lowercased, in order) and the body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (panics, with the body, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }
}

/// One HTTP/1.1 request over a fresh connection (`Connection: close`): `method path` with
/// `headers` (e.g. `Cookie`, `X-CSRF-Token`) and `json` as the body when given. `None` when the
/// server cannot be reached or the answer is cut short; every read times out after 30 s, so a
/// hung server fails the caller instead of hanging it. A chunked body is decoded.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    json: Option<&serde_json::Value>,
) -> Option<Answer> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(30))).ok()?;
    let body = json.map(|j| j.to_string()).unwrap_or_default();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if json.is_some() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if json.is_some() || !matches!(method, "GET" | "HEAD") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body.as_bytes()).ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut answer = Answer { status, headers, body: raw[split + 4..].to_vec() };
    if answer.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        answer.body = dechunk(&answer.body)?;
    } else if let Some(n) = answer.header("content-length").and_then(|n| n.parse::<usize>().ok()) {
        if answer.body.len() != n {
            return None;
        }
    }
    Some(answer)
}

/// A chunked body decoded; `None` when it is cut short.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&raw[..line_end]).ok()?.split(';').next()?.trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// `GET /status` parsed, when it answers 200 with JSON; `None` otherwise (not listening yet, or
/// an answer cut short by a kill).
pub fn status_json(port: u16) -> Option<serde_json::Value> {
    let (code, body) = get(port, "/status")?;
    (code == 200).then(|| serde_json::from_str(&body).ok())?
}

/// Writes the scenario (`<dir>/scenario.toml`: the DEMO-ONLY keys 1..=3, `records` each, the
/// `[corp.faults]` lines in `faults`) and the corps file (`<dir>/corps.toml`, keys in
/// `<dir>/keys/`, with `limits` when given) of the corps `corpids`, secrets `s-<index>`.
pub fn write_corps(dir: &Path, corpids: &[String], seed: u64, records: u64, faults: &str, limits: Option<u32>) {
    let mut scenario = format!("seed = {seed}\n");
    let mut corps = String::new();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    for ver in 1..=3 {
        std::fs::write(dir.join(format!("keys/v{ver}.pem")), emulator::demo_private_key_pem(ver).unwrap()).unwrap();
    }
    for (i, c) in corpids.iter().enumerate() {
        scenario.push_str(&format!("[[corp]]\ncorpid = \"{c}\"\nsecret = \"s-{i}\"\nrecords = {records}\n"));
        for ver in 1..=3 {
            let pem = emulator::demo_private_key_pem(ver).unwrap();
            scenario.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
        }
        if !faults.is_empty() {
            scenario.push_str(&format!("[corp.faults]\n{faults}"));
        }
        corps.push_str(&format!("[[corp]]\ncorpid = \"{c}\"\nsecret = \"s-{i}\"\n"));
        if let Some(limits) = limits {
            corps.push_str(&format!("limits = {limits}\n"));
        }
        for ver in 1..=3 {
            corps.push_str(&format!("[[corp.key]]\nver = {ver}\nfile = \"keys/v{ver}.pem\"\n"));
        }
    }
    std::fs::write(dir.join("scenario.toml"), scenario).unwrap();
    std::fs::write(dir.join("corps.toml"), corps).unwrap();
}

/// Writes `<dir>/config.toml` for a daemon that loads the real SDK at `sdk` and reaches the fake
/// WeCom API through `proxy` (with `proxy_password` when given), corps from `<dir>/corps.toml`,
/// media under `<dir>/msgfile`, short backoffs. Returns (config, media root).
pub fn real_sdk_config(
    dir: &Path,
    db_url: &str,
    sdk: &Path,
    proxy: &str,
    proxy_password: Option<&str>,
    limit: u32,
    max_attempts: u32,
) -> (PathBuf, PathBuf) {
    let root = dir.join("msgfile");
    let config = dir.join("config.toml");
    let password = proxy_password.map(|p| format!("proxy_password = \"{p}\"\n")).unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "[database]\nurl = \"{db_url}\"\n\
             [sdk]\nlibrary = \"{sdk}\"\nthreads = 2\ntimeout = \"5s\"\nproxy = \"{proxy}\"\n{password}\
             [pull]\nlimit = {limit}\npoll_interval = \"300ms\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n\
             [corps]\ntable = false\nfile = \"{corps}\"\nreload_interval = \"1h\"\n\
             [media]\nroot = \"{root}\"\nsweep_interval = \"500ms\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n\
             max_attempts = {max_attempts}\n",
            sdk = sdk.display(),
            corps = dir.join("corps.toml").display(),
            root = root.display(),
        ),
    )
    .unwrap();
    (config, root)
}
