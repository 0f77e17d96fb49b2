//! `fake-wecom`: the fake WeCom HTTPS API ([`WeWorkFinanceSdk_C::api`]) as a process, for drills
//! by hand with the real vendor SDK.
//!
//! ```text
//! fake-wecom [--listen 127.0.0.1:0] [--scenario s.toml] [--faults f.toml] [--proxy-auth user:pass] [--log requests.jsonl]
//! ```
//! Prints `listening on ADDR` once bound; give the daemon `[sdk] proxy = "http://ADDR"`. Runs
//! until killed.

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
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => opts.listen = value()?.parse::<SocketAddr>().map_err(|e| format!("--listen: {e}"))?,
            "--scenario" => scenario = Some(PathBuf::from(value()?)),
            "--faults" => opts.faults = load_faults(&PathBuf::from(value()?))?,
            "--proxy-auth" => opts.proxy_auth = Some(value()?),
            "--log" => opts.log_file = Some(PathBuf::from(value()?)),
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
    loop {
        std::thread::park();
    }
}
