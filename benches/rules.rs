//! The cost of the content rules (src/rules) on ingest: one emulator corp (every msgtype,
//! text-heavy, no faults) pulled through the real pipeline into SQLite (a temp file), WITHOUT and
//! WITH a rule set of 1,000 rules and 10,000 keywords (plus a few regex, built-in and behaviour
//! rules, some of which hit: their hits are written in the batches), alternately (ABBA, twice),
//! each round with a fresh emulator and database; the best rate of each and their ratio.
//! Goal (issue 17): the rules cost < 10 % of ingest throughput.
//!
//! Also the evaluation alone over the stored rows (µs per record), to tell the matcher's cost
//! from the pipeline's noise.
//!
//! `cargo bench --bench rules`; `BENCH_RECORDS=N` (default 30,000) for another backlog.

#[path = "support/knobs.rs"]
mod knobs;
#[path = "../tests/common/pipeline.rs"]
mod pipeline_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pipeline_common::{corpid, open, specs, wait_for, Db};
use wework_msgaudit::actors::{Pipeline, PipelineConfig};
use wework_msgaudit::corps::Sources;
use wework_msgaudit::rules::{parse_file, Live, RuleSet};
use wework_msgaudit::sdk::emulated::EmulatedSdk;
use wework_msgaudit::store::{BatchHits, CorpId};

const DEFAULT_RECORDS: u64 = 30_000;
const RULES: usize = 1_000;
const KEYWORDS: usize = 10_000;

/// One corp, the DEMO-ONLY keys 1..=3, no faults.
fn scenario(records: u64) -> emulator::Scenario {
    let mut toml =
        format!("seed = 7\n[[corp]]\ncorpid = \"{}\"\nsecret = \"secret-0\"\nrecords = {records}\n", corpid(0));
    for ver in 1..=3 {
        let pem = emulator::demo_private_key_pem(ver).expect("demo key");
        toml.push_str(&format!("[[corp.key]]\nver = {ver}\nprivate_key_pem = '''{pem}'''\n"));
    }
    toml::from_str(&toml).expect("scenario parses")
}

/// A deterministic word of 2 to 5 CJK characters, or of 4 to 9 ASCII letters (one in four).
fn word(i: usize) -> String {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    if i % 4 == 0 {
        let n = 4 + (next() % 6) as usize;
        (0..n).map(|_| char::from(b'a' + (next() % 26) as u8)).collect()
    } else {
        let n = 2 + (next() % 4) as usize;
        (0..n).map(|_| char::from_u32(0x4E00 + (next() % 0x51A0) as u32).unwrap_or('字')).collect()
    }
}

/// 1,000 rules, 10,000 keywords in all (10 each, with the scopes varied), of which a few match
/// the emulator's texts; and a few regex, built-in and behaviour rules.
fn rules_toml() -> String {
    let scopes = [
        "",
        "chat = \"group\"\n",
        "conversation = \"external\"\n",
        "direction = \"to_customer\"\n",
        "msgtypes = [\"text\", \"mixed\", \"chatrecord\"]\n",
    ];
    let mut t = String::new();
    let keyword_rules = RULES - 10;
    for r in 0..keyword_rules {
        // Exactly KEYWORDS words over the keyword rules, 10 or 11 each.
        let mut words: Vec<String> =
            (r * KEYWORDS / keyword_rules..(r + 1) * KEYWORDS / keyword_rules).map(word).collect();
        if r == 7 {
            words.push("报价".into());
        }
        if r == 300 {
            words.push("合同".into());
        }
        let list = words.iter().map(|w| format!("{w:?}")).collect::<Vec<_>>().join(", ");
        t.push_str(&format!("[[rule]]\nname = \"kw{r}\"\nkeywords = [{list}]\n{}", scopes[r % scopes.len()]));
    }
    for r in 0..4 {
        t.push_str(&format!("[[rule]]\nname = \"re{r}\"\nregex = [\"(?i)wx(id)?[_-]?[a-z0-9]{{{}}}\"]\n", 6 + r));
    }
    t.push_str("[[rule]]\nname = \"phone\"\nbuiltin = [\"phone\"]\n");
    t.push_str("[[rule]]\nname = \"idcard\"\nbuiltin = [\"id_card\", \"bank_card\"]\n");
    t.push_str("[[rule]]\nname = \"links\"\nbuiltin = [\"url\", \"email\"]\nurl_domains = [\"pan.baidu.com\"]\n");
    t.push_str("[[rule]]\nname = \"cards\"\nbehaviour = [\"card\", \"weapp\", \"redpacket\"]\n");
    t.push_str("[[rule]]\nname = \"files\"\nbehaviour = [\"file\"]\nfile_extensions = [\"zip\", \"rar\"]\n");
    t.push_str("[[rule]]\nname = \"revoke\"\nbehaviour = [\"revoke\"]\nrevoke_within = \"2m\"\n");
    t
}

fn rule_set() -> RuleSet {
    let text = rules_toml();
    let file = parse_file(std::path::Path::new("bench-rules.toml"), &text).expect("rules parse");
    let started = Instant::now();
    let set = RuleSet::compile(&file.rules, 1 << 20).expect("rules compile");
    println!("compiled {} rules ({KEYWORDS}+ keywords) in {:.2?}", set.len(), started.elapsed());
    set
}

/// One ingest of `records` with `rules` (empty: none): records/s and the hits stored.
async fn round(records: u64, rules: Live) -> (f64, i64, Db) {
    let db = Db::sqlite().await;
    let store = open(&db).await;
    let emu = Arc::new(emulator::Emulator::new(scenario(records)).expect("emulator"));
    let sdk = Arc::new(EmulatedSdk::new(emu));
    let cfg = PipelineConfig { rules, ..pipeline_common::config() };
    let started = Instant::now();
    let pipeline =
        Pipeline::start(store, sdk, Sources { fixed: specs(1, 1000), ..Sources::default() }, &cfg).expect("starts");
    wait_for(&pipeline, &[(corpid(0), records)], Duration::from_secs(3600)).await;
    let elapsed = started.elapsed();
    pipeline.shutdown().await;
    let hits = db.int("SELECT CAST(COUNT(*) AS SIGNED INTEGER) FROM rule_hit", None).await;
    (records as f64 / elapsed.as_secs_f64(), hits, db)
}

/// The evaluation alone over the rows of `db`: µs per record (one thread).
async fn evaluate_only(db: &Db, set: &RuleSet) -> (f64, usize) {
    let store = open(db).await;
    let c = CorpId::new(&corpid(0)).expect("corpid");
    let mut rows = Vec::new();
    let mut after = 0;
    while let Some(page) = store.messages_after(&c, after, 1000, true).await.expect("read") {
        let Some(last) = page.last() else { break };
        after = last.seq;
        rows.extend(page);
    }
    let started = Instant::now();
    let mut hits = BatchHits::default();
    for r in &rows {
        set.evaluate(c.as_str(), r, &mut hits);
    }
    let per = started.elapsed().as_secs_f64() * 1e6 / rows.len().max(1) as f64;
    (per, hits.hits.len() + hits.revokes.len())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let records: u64 = knobs::number("BENCH_RECORDS", DEFAULT_RECORDS);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("rules bench: {records} records per round, {} cores, load average {}", num_cpus(), load.trim());
    let set = Arc::new(rule_set());
    let set_for_rounds = Arc::clone(&set);
    let with = move || {
        let live = Live::default();
        live.set(rule_set_clone(&set_for_rounds));
        live
    };
    actix_rt::System::new().block_on(async move {
        let (mut best_without, mut best_with) = (0f64, 0f64);
        let mut last_db = None;
        for (i, rules_on) in [false, true, true, false, false, true, true, false].into_iter().enumerate() {
            let (rate, hits, db) = round(records, if rules_on { with() } else { Live::default() }).await;
            println!(
                "  round {}: {} {rate:.1} records/s, {hits} hits stored",
                i + 1,
                if rules_on { "WITH 1,000 rules   " } else { "without rules      " }
            );
            if rules_on {
                best_with = best_with.max(rate);
                assert!(hits > 0, "the rule set must hit something");
                last_db = Some(db);
            } else {
                best_without = best_without.max(rate);
                assert_eq!(hits, 0);
                db.finish().await;
            }
        }
        let ratio = best_with / best_without;
        println!(
            "best without rules {best_without:.1} records/s, with {best_with:.1} records/s: ratio {ratio:.3} \
             (cost {:.1} %; goal < 10 %)",
            (1.0 - ratio) * 100.0
        );
        if let Some(db) = last_db {
            let (per, hits) = evaluate_only(&db, &set).await;
            println!("evaluation alone: {per:.2} µs per record on one thread ({hits} hits and revoke checks)");
            db.finish().await;
        }
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!("load average at the end: {}", load.trim());
    });
}

/// The set again (a [`Live`] owns its set; compiling twice is cheaper than sharing here).
fn rule_set_clone(_set: &Arc<RuleSet>) -> RuleSet {
    let text = rules_toml();
    let file = parse_file(std::path::Path::new("bench-rules.toml"), &text).expect("rules parse");
    RuleSet::compile(&file.rules, 1 << 20).expect("rules compile")
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
