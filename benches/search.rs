//! The search index on a synthetic but realistic Chinese chat corpus (sentences generated from a
//! word list: Chinese words, some Latin words, digits and emoji; no downloaded data).
//!
//! `cargo bench --bench search` (environment: `SEARCH_BENCH_N`, default 1,000,000 messages;
//! `SEARCH_BENCH_RECALL_N`, default 100,000; `SEARCH_BENCH_THREADS`, default 1 indexing thread,
//! as the daemon's default) prints:
//!
//! - build rate: records/s through `SearchIndex::add` (extraction from the record JSON included)
//!   and the final commit;
//! - index size, and per 1,000,000 messages;
//! - query latency p50/p99 (in that serving process) for a 2-character term with a time filter (a 7-day window of a year),
//!   newest first, 20 hits with snippets; also 1- and 3-character terms and a Latin word;
//! - RSS (VmRSS / VmHWM) after the build, and of a fresh process that only opens the index and
//!   serves the queries above (run as `--serve <dir>` by this bench);
//! - recall against a plain substring scan on the first `SEARCH_BENCH_RECALL_N` messages, for a
//!   mixed list of queries (1–4 CJK characters, Latin words, emoji).

#[path = "support/knobs.rs"]
mod knobs;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wework_msgaudit::message::Row;
use wework_msgaudit::search::extract::record_text;
use wework_msgaudit::search::index::dir_size;
use wework_msgaudit::search::tokenizer::is_cjk;
use wework_msgaudit::search::{search, SearchIndex, SearchRequest, WriterSettings};
use wework_msgaudit::store::CorpId;

const CHINESE: &[&str] = &[
    "我们",
    "你们",
    "他们",
    "今天",
    "明天",
    "昨天",
    "上午",
    "下午",
    "晚上",
    "客户",
    "合同",
    "价格",
    "报价",
    "发货",
    "收货",
    "地址",
    "电话",
    "微信",
    "支付",
    "付款",
    "退款",
    "发票",
    "订单",
    "产品",
    "质量",
    "问题",
    "解决",
    "方案",
    "会议",
    "开会",
    "讨论",
    "确认",
    "修改",
    "文件",
    "资料",
    "表格",
    "报告",
    "数据",
    "系统",
    "上线",
    "测试",
    "版本",
    "需求",
    "设计",
    "开发",
    "项目",
    "进度",
    "计划",
    "安排",
    "时间",
    "地点",
    "公司",
    "部门",
    "同事",
    "老板",
    "经理",
    "领导",
    "审批",
    "流程",
    "申请",
    "报销",
    "工资",
    "奖金",
    "请假",
    "加班",
    "出差",
    "酒店",
    "机票",
    "高铁",
    "北京",
    "上海",
    "深圳",
    "广州",
    "杭州",
    "成都",
    "武汉",
    "南京",
    "仓库",
    "库存",
    "物流",
    "快递",
    "包装",
    "样品",
    "折扣",
    "优惠",
    "活动",
    "促销",
    "市场",
    "销售",
    "业绩",
    "目标",
    "完成",
    "好的",
    "收到",
    "谢谢",
    "辛苦",
    "没问题",
    "可以",
    "不行",
    "马上",
    "稍等",
    "已经",
    "还没",
    "一下",
    "看看",
    "知道",
    "明白",
    "尽快",
    "麻烦",
    "帮忙",
    "处理",
    "反馈",
    "投诉",
    "售后",
    "维修",
    "更换",
    "保修",
    "合作",
    "签约",
    "续约",
    "到期",
    "提醒",
    "通知",
    "注意",
    "重要",
    "紧急",
    "的",
    "了",
    "吗",
    "呢",
    "吧",
    "啊",
    "在",
    "是",
    "有",
    "和",
    "把",
    "给",
    "跟",
    "从",
    "到",
    "也",
    "都",
    "就",
    "还",
    "这个",
    "那个",
    "什么",
    "怎么",
    "为什么",
    "多少",
    "几个",
    "一些",
    "所有",
    "每个",
    "然后",
    "但是",
    "因为",
    "所以",
    "如果",
    "或者",
    "而且",
    "虽然",
    "已读",
    "在线",
    "离线",
    "群聊",
    "私聊",
    "语音",
    "视频",
    "图片",
    "链接",
    "小程序",
];

const LATIN: &[&str] = &[
    "OK", "ok", "PDF", "Excel", "iPhone", "WeChat", "meeting", "price", "order", "ASAP", "CRM", "API", "2024", "10086",
];

const EMOJI: &[&str] = &["👍", "😂", "🙏", "🎉", "❤", "😊", "👌", "🔥"];

const PUNCT: &[&str] = &["，", "。", "！", "？", " ", "、", "～"];

/// A small deterministic generator (no dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }
}

/// One sentence of 3..=24 words: mostly Chinese, sometimes a Latin word, a number or an emoji.
fn sentence(rng: &mut Lcg) -> String {
    let n = 3 + rng.below(22);
    let mut s = String::new();
    for _ in 0..n {
        match rng.below(100) {
            0..=84 => s.push_str(rng.pick(CHINESE)),
            85..=91 => {
                s.push(' ');
                s.push_str(rng.pick(LATIN));
                s.push(' ');
            }
            92..=95 => s.push_str(rng.pick(EMOJI)),
            _ => s.push_str(&rng.below(1000).to_string()),
        }
        if rng.below(6) == 0 {
            s.push_str(rng.pick(PUNCT));
        }
    }
    s
}

const START_MS: u64 = 1_704_067_200_000; // 2024-01-01
const YEAR_MS: u64 = 365 * 86_400_000;

/// Message `i` of `n` (msgtimes spread over a year, in order; 80 % text, the rest link, file,
/// mixed and chatrecord records).
fn message(rng: &mut Lcg, i: u64, n: u64) -> Row {
    let msgtime = START_MS + i * (YEAR_MS / n.max(1));
    let (msgtype, payload) = match rng.below(100) {
        0..=79 => ("text", serde_json::json!({"text": {"content": sentence(rng)}})),
        80..=87 => (
            "link",
            serde_json::json!({"link": {"title": sentence(rng), "description": sentence(rng), "link_url": "https://example.com/a"}}),
        ),
        88..=93 => (
            "file",
            serde_json::json!({"file": {"filename": format!("{}.pdf", sentence(rng)), "sdkfileid": "x", "filesize": 1}}),
        ),
        94..=97 => (
            "mixed",
            serde_json::json!({"mixed": {"item": [
                {"type": "text", "content": serde_json::json!({"content": sentence(rng)}).to_string()},
                {"type": "image", "content": serde_json::json!({"sdkfileid": "y"}).to_string()},
            ]}}),
        ),
        _ => (
            "chatrecord",
            serde_json::json!({"chatrecord": {"title": "群聊的聊天记录", "item": [
                {"type": "ChatRecordText", "content": serde_json::json!({"content": sentence(rng)}).to_string()},
                {"type": "ChatRecordText", "content": serde_json::json!({"content": sentence(rng)}).to_string()},
            ]}}),
        ),
    };
    let from = format!("user{}", rng.below(500));
    let to = format!("user{}", rng.below(500));
    let mut obj = serde_json::json!({
        "msgid": format!("m{i}"), "action": "send", "from": from, "tolist": [to], "roomid": "",
        "msgtime": msgtime, "msgtype": msgtype,
    });
    if let (Some(o), serde_json::Value::Object(p)) = (obj.as_object_mut(), payload) {
        o.extend(p);
    }
    Row {
        msgid: format!("m{i}"),
        seq: i + 1,
        action: "send".into(),
        msgfrom: from,
        tolist: to,
        msgtype: msgtype.into(),
        msgtime,
        msgdata: obj.to_string(),
        ..Row::default()
    }
}

fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        status.lines().find(|l| l.starts_with(k)).map(|l| l[k.len()..].trim().to_string()).unwrap_or_default()
    };
    format!("VmRSS {}, VmHWM {}", get("VmRSS:"), get("VmHWM:"))
}

/// Builds an index of `n` messages in `dir`; returns (seconds, the rows' texts when `keep`).
fn build(dir: &std::path::Path, n: u64, threads: usize, keep: bool) -> (f64, Vec<String>) {
    let index = SearchIndex::open_writer(dir, WriterSettings { threads, memory_bytes: 256 << 20 }).unwrap();
    let corp = CorpId::new("wwbench").unwrap();
    let mut rng = Lcg(42);
    let mut texts = Vec::new();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..n {
        let row = message(&mut rng, i, n);
        if keep {
            texts.push(record_text(&row.msgtype, &row.msgdata));
        }
        batch.push(row);
        if batch.len() == 10_000 {
            index.add(&corp, &batch).unwrap();
            batch.clear();
        }
    }
    index.add(&corp, &batch).unwrap();
    index.commit(&BTreeMap::from([("wwbench".to_string(), n)])).unwrap();
    let secs = started.elapsed().as_secs_f64();
    index.wait_merging().unwrap();
    (secs, texts)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn latency(index: &SearchIndex, label: &str, terms: &[&str], window_ms: Option<u64>, rounds: usize) {
    let mut rng = Lcg(7);
    let mut times = Vec::with_capacity(rounds);
    let mut total_hits = 0usize;
    for r in 0..rounds {
        let q = terms[r % terms.len()];
        let (from_ms, to_ms) = match window_ms {
            Some(w) => {
                let from = START_MS + rng.next() % (YEAR_MS - w);
                (Some(from as i64), Some((from + w) as i64))
            }
            None => (None, None),
        };
        let req = SearchRequest { q: q.into(), from_ms, to_ms, limit: 20, ..SearchRequest::default() };
        let t = Instant::now();
        let res = search(index, &req).unwrap();
        times.push(t.elapsed());
        total_hits += res.total;
    }
    times.sort();
    println!(
        "  {label:<44} p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}  (avg {} matches)",
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1],
        total_hits / rounds.max(1)
    );
}

/// The serving half (`--serve <dir>`): opens the index read-only and measures queries.
fn serve(dir: &std::path::Path) {
    println!("RSS of the serving process before opening the index: {}", rss());
    let index = Arc::new(SearchIndex::open_reader(dir).unwrap());
    let two = ["客户", "合同", "发货", "微信", "退款", "会议", "北京", "收到", "价格", "报告"];
    let week = 7 * 86_400_000;
    latency(&index, "warm-up", &two, Some(week), 50);
    latency(&index, "2-char term, 7-day window, newest first", &two, Some(week), 1000);
    latency(&index, "2-char term, 30-day window, newest first", &two, Some(30 * 86_400_000), 500);
    latency(&index, "2-char term, no filter, newest first", &two, None, 300);
    latency(&index, "1-char term, 7-day window", &["的", "了", "货", "京", "款"], Some(week), 500);
    latency(
        &index,
        "3-char term, 7-day window (bigram phrase)",
        &["没问题", "为什么", "小程序", "合同价"],
        Some(week),
        500,
    );
    latency(&index, "4-char phrase, no filter", &["客户合同", "发货地址", "退款申请"], None, 200);
    latency(&index, "Latin word, 7-day window", &["iphone", "pdf", "wechat"], Some(week), 300);
    println!("RSS while serving (a process that only opened the index and ran these queries): {}", rss());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--serve") {
        serve(std::path::Path::new(&args[i + 1]));
        return;
    }
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let n = knobs::number("SEARCH_BENCH_N", 1_000_000);
    let recall_n = knobs::number("SEARCH_BENCH_RECALL_N", 100_000);
    let threads = knobs::number("SEARCH_BENCH_THREADS", 1) as usize;
    println!(
        "search bench: {n} messages, {threads} indexing thread(s), {} cores",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );

    // (1) build rate, size, RSS.
    let dir = tempfile::tempdir().unwrap();
    let (secs, _) = build(dir.path(), n, threads, false);
    let size = dir_size(dir.path());
    println!("build: {n} messages in {secs:.1}s = {:.0} records/s", n as f64 / secs);
    println!(
        "index size: {:.1} MiB = {:.1} MiB per 1,000,000 messages",
        size as f64 / 1048576.0,
        size as f64 / 1048576.0 * 1_000_000.0 / n as f64
    );
    println!("RSS after build: {}", rss());

    // (2) query latency and RSS while serving, in a fresh process that only opens the index and
    // queries it (this one still holds what the build allocated).
    let out =
        std::process::Command::new(std::env::current_exe().unwrap()).arg("--serve").arg(dir.path()).output().unwrap();
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.status.success(), "the serving process failed: {}", String::from_utf8_lossy(&out.stderr));
    drop(dir);

    // (3) recall against a substring scan.
    let dir = tempfile::tempdir().unwrap();
    let (_, texts) = build(dir.path(), recall_n, threads, true);
    let index = SearchIndex::open_reader(dir.path()).unwrap();
    let mut queries: Vec<String> =
        ["的", "货", "客户", "合同", "没问题", "客户合同", "好的收到", "北京上海", "为什么", "微信支付"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    let mut rng = Lcg(99);
    // Random 1..4-character CJK substrings of the corpus.
    while queries.len() < 60 {
        let t = &texts[rng.below(texts.len())];
        let chars: Vec<char> = t.chars().collect();
        if chars.is_empty() {
            continue;
        }
        let start = rng.below(chars.len());
        let len = 1 + rng.below(4);
        let piece: String = chars.iter().skip(start).take(len).collect();
        if piece.chars().count() == len && piece.chars().all(is_cjk) {
            queries.push(piece);
        }
    }
    queries.extend(["iPhone", "pdf", "WeChat", "ok", "2024", "10086", "👍", "🎉", "❤"].iter().map(|s| s.to_string()));
    let mut worst = 1.0f64;
    let mut substring_worst = 1.0f64;
    for q in &queries {
        let latin = q.chars().any(|c| c.is_ascii_alphanumeric());
        let lower = q.to_lowercase();
        let expected: Vec<u64> = texts
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                if latin {
                    // Words: case-insensitive, whole words (letters/digits runs, CJK breaks them).
                    t.split(|c: char| !c.is_alphanumeric() || is_cjk(c)).any(|w| w.to_lowercase() == lower)
                } else {
                    t.contains(q.as_str())
                }
            })
            .map(|(i, _)| i as u64 + 1)
            .collect();
        let substring: Vec<u64> = texts
            .iter()
            .enumerate()
            .filter(|(_, t)| t.to_lowercase().contains(&lower))
            .map(|(i, _)| i as u64 + 1)
            .collect();
        let mut got = Vec::new();
        loop {
            let page = search(
                &index,
                &SearchRequest { q: q.clone(), limit: 1000, offset: got.len(), ..SearchRequest::default() },
            )
            .unwrap();
            let k = page.hits.len();
            got.extend(page.hits.into_iter().map(|h| h.seq));
            if k == 0 || got.len() >= page.total {
                break;
            }
        }
        got.sort_unstable();
        let found = |want: &[u64]| want.iter().filter(|s| got.binary_search(s).is_ok()).count();
        let recall = if expected.is_empty() { 1.0 } else { found(&expected) as f64 / expected.len() as f64 };
        let sub_recall = if substring.is_empty() { 1.0 } else { found(&substring) as f64 / substring.len() as f64 };
        worst = worst.min(recall);
        substring_worst = substring_worst.min(sub_recall);
        if recall < 1.0
            || sub_recall < 1.0
            || queries.iter().position(|x| x == q).is_some_and(|i| !(10..60).contains(&i))
        {
            println!(
                "  {q:<10} expected {:>6} found {:>6} recall {:>6.2}%  (plain substring scan: {:>6} rows, recall {:>6.2}%)",
                expected.len(),
                found(&expected),
                recall * 100.0,
                substring.len(),
                sub_recall * 100.0
            );
        }
    }
    println!(
        "recall on {recall_n} messages over {} queries: worst {:.2}% (CJK and emoji: substring scan; Latin: whole words); \
         against a plain case-insensitive substring scan for every query: worst {:.2}%",
        queries.len(),
        worst * 100.0,
        substring_worst * 100.0
    );
}
