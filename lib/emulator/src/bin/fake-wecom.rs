//! `fake-wecom`: the fake WeCom HTTPS API ([`WeWorkFinanceSdk_C::api`]) as a process, for drills
//! by hand with the real vendor SDK.
//!
//! ```text
//! fake-wecom [--listen 127.0.0.1:0] [--scenario s.toml] [--faults f.toml] [--proxy-auth user:pass] [--log requests.jsonl]
//!            [--callback-url http://127.0.0.1:8081/callback/{corpid} --callback-token T --callback-aes-key K]
//! ```
//! Prints `listening on ADDR` once bound; give the daemon `[sdk] proxy = "http://ADDR"`. Runs
//! until killed. With `--callback-*`, each line `grow <corpid> <n>` on stdin makes `n` new records
//! of the corp appear and POSTs a signed `msgaudit_notify` to the URL (`{corpid}` replaced), as
//! WeCom does; it prints `grown <corpid> <seq> callback <status>`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use WeWorkFinanceSdk_C::api::{load_faults, ApiOptions, FakeApi};
use WeWorkFinanceSdk_C::{Emulator, Scenario};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-wecom: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut opts = ApiOptions::default();
    let mut scenario = None;
    let (mut cb_url, mut cb_token, mut cb_key) = (None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => opts.listen = value()?.parse::<SocketAddr>().map_err(|e| format!("--listen: {e}"))?,
            "--scenario" => scenario = Some(PathBuf::from(value()?)),
            "--faults" => opts.faults = load_faults(&PathBuf::from(value()?))?,
            "--proxy-auth" => opts.proxy_auth = Some(value()?),
            "--log" => opts.log_file = Some(PathBuf::from(value()?)),
            "--callback-url" => cb_url = Some(value()?),
            "--callback-token" => cb_token = Some(value()?),
            "--callback-aes-key" => cb_key = Some(value()?),
            other => return Err(format!("unknown argument {other:?} (see the module docs)")),
        }
    }
    let scenario = match scenario {
        Some(p) => Scenario::load(&p).map_err(|e| e.to_string())?,
        None => Scenario::demo(),
    };
    let emu = Emulator::new(scenario).map_err(|e| e.to_string())?;
    let api = FakeApi::start(emu, opts).map_err(|e| e.to_string())?;
    println!("listening on {}", api.addr());
    if let (Some(url), Some(token), Some(key)) = (cb_url, cb_token, cb_key) {
        use std::io::BufRead as _;
        for (n, line) in std::io::stdin().lock().lines().map_while(Result::ok).enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let ["grow", corpid, count] = words.as_slice() else {
                eprintln!("fake-wecom: expected `grow <corpid> <n>`");
                continue;
            };
            let target = WeWorkFinanceSdk_C::callback::CallbackTarget {
                url: url.replace("{corpid}", corpid),
                token: token.clone(),
                encoding_aes_key: key.clone(),
                corpid: (*corpid).to_string(),
            };
            match api.grow_and_notify(&target, count.parse().unwrap_or(1), n as u64) {
                Ok((seq, status)) => println!("grown {corpid} {seq} callback {status}"),
                Err(e) => eprintln!("fake-wecom: {e}"),
            }
        }
    }
    loop {
        std::thread::park();
    }
}
