//! `demo`: the emulator's demo corp pulled and decrypted end to end, with no setup at all.
//!
//! It opens the built-in demo corp (DEMO-ONLY keys, made-up records) through the same
//! [`FinanceSdk`] trait the daemon uses — the in-process emulator by default, or any drop-in
//! `libWeWorkFinanceSdk_C.so` given with `--sdk` — pulls every page from seq 0, decrypts each
//! record natively with the corp's keyring, and prints what arrives: a line per record (first
//! ones), then a count per msgtype. With `--follow` it keeps polling and shows live growth.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;

use super::CliError;
use crate::crypto::{self, keyring::Keyring};
use crate::message;
use crate::sdk::{dynlib::VendorSdk, emulated::EmulatedSdk, FinanceSdk, NetOptions, SdkSession};
use crate::secret::Secret;

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Load this drop-in SDK library (e.g. the emulator's `.so`) instead of the in-process emulator.
    #[arg(long)]
    pub sdk: Option<PathBuf>,
    /// Records per GetChatData call (1..=1000).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
    /// How many records to print one line each (the rest are only counted).
    #[arg(long, default_value_t = 20)]
    pub show: usize,
    /// Keep polling for new records for this long after the backlog (e.g. `10s`), printing them.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub follow: Option<Duration>,
}

/// Counts of one demo run.
#[derive(Debug, Default)]
struct Tally {
    records: u64,
    decrypted: u64,
    failed: u64,
    last_seq: u64,
    /// True once the backlog is done: every new record is then printed.
    following: bool,
    by_type: BTreeMap<String, u64>,
}

/// Runs `demo`.
pub fn run(args: &DemoArgs) -> Result<(), CliError> {
    let sdk: Box<dyn FinanceSdk> = match &args.sdk {
        Some(path) => Box::new(VendorSdk::load(path).map_err(|e| CliError::Config(e.to_string()))?),
        None => Box::new(EmulatedSdk::new(Arc::new(emulator::Emulator::demo()))),
    };
    let keyring = demo_keyring()?;
    println!("demo corp {} through {}", emulator::DEMO_CORPID, sdk.describe());
    println!("keyring: publickey_ver {:?} (DEMO-ONLY keys, see lib/emulator/keys/README.md)", keyring.versions());
    let mut session = sdk
        .open(emulator::DEMO_CORPID, &Secret::new(emulator::DEMO_SECRET))
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    let net = NetOptions::default();
    let mut tally = Tally::default();
    let started = Instant::now();
    pull_until_caught_up(session.as_mut(), &net, &keyring, args, &mut tally)?;
    let backlog_time = started.elapsed();
    if let Some(follow) = args.follow {
        println!("-- following live growth for {} --", humantime::format_duration(follow));
        tally.following = true;
        let until = Instant::now() + follow;
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(500));
            pull_until_caught_up(session.as_mut(), &net, &keyring, args, &mut tally)?;
        }
    }
    println!("-- summary --");
    for (msgtype, n) in &tally.by_type {
        println!("{msgtype:>20} {n:>6}");
    }
    println!(
        "{} records pulled up to seq {} ({} decrypted, {} undecryptable); backlog took {:.2?}",
        tally.records, tally.last_seq, tally.decrypted, tally.failed, backlog_time
    );
    Ok(())
}

fn demo_keyring() -> Result<Keyring, CliError> {
    let mut keyring = Keyring::default();
    for ver in 1..=3 {
        let pem = emulator::demo_private_key_pem(ver)
            .ok_or_else(|| CliError::Runtime(format!("the emulator has no demo key {ver}")))?;
        let key = crypto::keys::parse_private_key(pem.as_bytes()).map_err(|e| CliError::Runtime(e.to_string()))?;
        keyring.insert(ver, key);
    }
    Ok(keyring)
}

fn pull_until_caught_up(
    session: &mut dyn SdkSession,
    net: &NetOptions,
    keyring: &Keyring,
    args: &DemoArgs,
    tally: &mut Tally,
) -> Result<(), CliError> {
    loop {
        let page = match session.get_chat_data(tally.last_seq, args.limit, net) {
            Ok(page) => page,
            Err(e) if e.is_retryable() => {
                eprintln!("retrying after: {e}");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            Err(e) => return Err(CliError::Runtime(e.to_string())),
        };
        let n = page.records.len();
        for record in &page.records {
            tally.records += 1;
            tally.last_seq = tally.last_seq.max(record.seq);
            let shown = tally.following || tally.records <= args.show as u64;
            match crypto::decrypt_record(
                keyring,
                record.publickey_ver,
                &record.encrypt_random_key,
                &record.encrypt_chat_msg,
            ) {
                Ok(plain) => {
                    tally.decrypted += 1;
                    let summary = message::summarize(&plain).unwrap_or_default();
                    *tally.by_type.entry(summary.msgtype.clone()).or_default() += 1;
                    if shown {
                        println!(
                            "seq {:>5} v{} {:<18} {:<10} from {:<14} {}",
                            record.seq,
                            record.publickey_ver,
                            summary.msgtype,
                            summary.action,
                            summary.from,
                            summary.text.unwrap_or_default().replace(char::is_control, " ")
                        );
                    }
                }
                Err(e) => {
                    tally.failed += 1;
                    *tally.by_type.entry("(undecryptable)".into()).or_default() += 1;
                    if shown {
                        println!("seq {:>5} v{} undecryptable: {e}", record.seq, record.publickey_ver);
                    }
                }
            }
        }
        if n < args.limit as usize {
            return Ok(());
        }
    }
}
