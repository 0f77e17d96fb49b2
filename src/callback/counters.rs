//! Per-process counts of callback requests by outcome and of events by kind, per corp: what
//! `/metrics` shows as `wework_msgaudit_callback_requests_total{corpid,outcome}` and
//! `wework_msgaudit_callback_events_total{corpid,event}`. Only corps the daemon knows get their
//! corpid as a label (a request for an unknown corp counts under `corpid=""`), and outcomes and
//! events are fixed labels, so a flood of made-up paths cannot grow the series.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The counters (kept in [`crate::actors::Stats`]).
#[derive(Debug, Default)]
pub struct Counters {
    requests: Mutex<BTreeMap<(String, &'static str), u64>>,
    events: Mutex<BTreeMap<(String, &'static str), u64>>,
}

/// One count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelCount {
    /// The corp ("" for requests to a corp the daemon does not know).
    pub corpid: String,
    /// The outcome or event kind.
    pub label: String,
    /// How many.
    pub count: u64,
}

/// A copy of the counters, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackTotals {
    /// Requests by corp and outcome.
    pub requests: Vec<LabelCount>,
    /// Events by corp and kind (accepted requests only).
    pub events: Vec<LabelCount>,
}

impl Counters {
    /// One request of `corpid` ended with `outcome`.
    pub fn request(&self, corpid: &str, outcome: &'static str) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((corpid.to_string(), outcome)).or_default() += 1;
        }
    }

    /// One event of `corpid` of kind `event` was accepted.
    pub fn event(&self, corpid: &str, event: &'static str) {
        if let Ok(mut m) = self.events.lock() {
            *m.entry((corpid.to_string(), event)).or_default() += 1;
        }
    }

    /// The count of `(corpid, outcome)` requests.
    pub fn requests_of(&self, corpid: &str, outcome: &str) -> u64 {
        self.requests
            .lock()
            .map(|m| m.iter().filter(|((c, o), _)| c == corpid && *o == outcome).map(|(_, n)| *n).sum())
            .unwrap_or(0)
    }

    /// The count of `(corpid, event)` events.
    pub fn events_of(&self, corpid: &str, event: &str) -> u64 {
        self.events
            .lock()
            .map(|m| m.iter().filter(|((c, e), _)| c == corpid && *e == event).map(|(_, n)| *n).sum())
            .unwrap_or(0)
    }

    /// A copy; `None` when nothing was counted (no callback listener, or no request yet).
    pub fn snapshot(&self) -> Option<CallbackTotals> {
        let copy = |m: &Mutex<BTreeMap<(String, &'static str), u64>>| -> Vec<LabelCount> {
            m.lock()
                .map(|m| {
                    m.iter()
                        .map(|((corpid, label), n)| LabelCount {
                            corpid: corpid.clone(),
                            label: (*label).to_string(),
                            count: *n,
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let totals = CallbackTotals { requests: copy(&self.requests), events: copy(&self.events) };
        (!totals.requests.is_empty() || !totals.events.is_empty()).then_some(totals)
    }
}
