//! Counters for `/metrics`, written in Prometheus' text format by hand: the
//! handful we need does not justify a metrics crate.

use crate::load_shedding::LoadShedding;
use crate::memory_budget::MemoryBudget;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Envelope item types Sentry SDKs send that booboo accepts without storing.
const IGNORED_ITEM_TYPES: &[&str] = &[
    "transaction",
    "session",
    "sessions",
    "client_report",
    "attachment",
    "check_in",
    "user_report",
    "feedback",
    "profile",
    "profile_chunk",
    "replay_event",
    "replay_recording",
    "replay_video",
    "span",
    "log",
    "otel_log",
    "statsd",
    "metric_buckets",
    "trace_metric",
];

/// Upper bounds of the store latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 9] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

#[derive(Default)]
pub struct Metrics {
    accepted: AtomicU64,
    duplicates: AtomicU64,
    handshakes: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// Events counted on their issue but whose payload was not stored, by reason.
    not_stored: Mutex<BTreeMap<&'static str, u64>>,
    ignored_items: Mutex<BTreeMap<&'static str, u64>>,
    batches: AtomicU64,
    batched_events: AtomicU64,
    largest_batch: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
    sign_ins_refused: Mutex<BTreeMap<&'static str, u64>>,
    pruned: Mutex<BTreeMap<&'static str, u64>>,
    prune_failures: AtomicU64,
    /// Payloads and issues the retention task removed or lightened, by reason.
    retention: Mutex<BTreeMap<&'static str, u64>>,
    retention_failures: AtomicU64,
    /// Alert delivery attempts by outcome and channel kind.
    alerts_sent: Mutex<BTreeMap<&'static str, u64>>,
    alerts_failed: Mutex<BTreeMap<&'static str, u64>>,
    alerts_retried: Mutex<BTreeMap<&'static str, u64>>,
    /// Set by `serve`: the memory budget whose use `/metrics` shows.
    memory_budget: OnceLock<Arc<MemoryBudget>>,
    /// Episodes of refusing events because the server must shed load.
    shedding: LoadShedding,
}

impl Metrics {
    /// Shows the budget's use and limit from now on.
    pub fn watch_memory_budget(&self, budget: Arc<MemoryBudget>) {
        let _ = self.memory_budget.set(budget);
    }

    /// Whether, why and since when the server is shedding load; every
    /// refusal is noted here by `Rejection::respond`.
    pub fn shedding(&self) -> &LoadShedding {
        &self.shedding
    }

    pub fn event_accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    pub fn duplicate_accepted(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    pub fn handshake_accepted(&self) {
        self.handshakes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one rejected request under its reason.
    pub fn rejected(&self, reason: &'static str) {
        *self.rejected.lock().unwrap_or_else(|p| p.into_inner()).entry(reason).or_default() += 1;
    }

    /// Counts one event counted on its issue without its payload (over a
    /// quota: `rate_limit` or `spike_guard`).
    pub fn event_not_stored(&self, reason: &'static str) {
        *self.not_stored.lock().unwrap_or_else(|p| p.into_inner()).entry(reason).or_default() += 1;
    }

    pub fn not_stored_count(&self, reason: &str) -> u64 {
        self.not_stored.lock().unwrap_or_else(|p| p.into_inner()).get(reason).copied().unwrap_or(0)
    }

    pub fn rejected_count(&self, reason: &str) -> u64 {
        self.rejected.lock().unwrap_or_else(|p| p.into_inner()).get(reason).copied().unwrap_or(0)
    }

    /// Counts one envelope item that was accepted but not stored (sessions,
    /// transactions, attachments…). Types outside Sentry's known list count
    /// as `other`, so a client cannot grow the label set.
    pub fn envelope_item_ignored(&self, item_type: &str) {
        let label = IGNORED_ITEM_TYPES.iter().copied().find(|t| *t == item_type).unwrap_or("other");
        *self.ignored_items.lock().unwrap_or_else(|p| p.into_inner()).entry(label).or_default() += 1;
    }

    pub fn ignored_item_count(&self, label: &str) -> u64 {
        self.ignored_items.lock().unwrap_or_else(|p| p.into_inner()).get(label).copied().unwrap_or(0)
    }

    /// Counts a sign-in refused by a limit (`address` or `account`) before
    /// its password was checked.
    pub fn sign_in_refused(&self, limit: &'static str) {
        *self.sign_ins_refused.lock().unwrap_or_else(|p| p.into_inner()).entry(limit).or_default() += 1;
    }

    /// Counts rows the pruning task deleted, by kind.
    pub fn pruned(&self, kind: &'static str, rows: u64) {
        *self.pruned.lock().unwrap_or_else(|p| p.into_inner()).entry(kind).or_default() += rows;
    }

    /// An alert reached its channel (`kind`: webhook, slack, discord, email).
    pub fn alert_sent(&self, kind: &'static str) {
        *self.alerts_sent.lock().unwrap_or_else(|p| p.into_inner()).entry(kind).or_default() += 1;
    }

    /// An alert was given up after 24 hours of failed attempts.
    pub fn alert_failed(&self, kind: &'static str) {
        *self.alerts_failed.lock().unwrap_or_else(|p| p.into_inner()).entry(kind).or_default() += 1;
    }

    /// An attempt failed and the alert will be tried again.
    pub fn alert_retried(&self, kind: &'static str) {
        *self.alerts_retried.lock().unwrap_or_else(|p| p.into_inner()).entry(kind).or_default() += 1;
    }

    /// The alert lines of `/metrics`; `pending` (by channel kind) is read
    /// from the outbox, so it is the same on every node.
    pub fn render_alerts(&self, pending: &[(String, i64)]) -> String {
        let mut out = String::new();
        for (name, help, map) in [
            (
                "booboo_alert_deliveries_sent_total",
                "Alerts delivered by this node, by channel kind.",
                &self.alerts_sent,
            ),
            (
                "booboo_alert_deliveries_failed_total",
                "Alerts given up after 24 hours of failed attempts, by channel kind.",
                &self.alerts_failed,
            ),
            (
                "booboo_alert_deliveries_retried_total",
                "Failed alert attempts that will be retried, by channel kind.",
                &self.alerts_retried,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (kind, count) in map.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                let _ = writeln!(out, "{name}{{channel=\"{kind}\"}} {count}");
            }
        }
        let _ = writeln!(out, "# HELP booboo_alert_deliveries_pending Alerts waiting in the outbox, by channel kind.");
        let _ = writeln!(out, "# TYPE booboo_alert_deliveries_pending gauge");
        for (kind, count) in pending {
            let _ = writeln!(out, "booboo_alert_deliveries_pending{{channel=\"{kind}\"}} {count}");
        }
        out
    }

    /// Counts what a retention pass did, by reason (`count`, `age`, `disk`,
    /// `issue_age`, `lightened`).
    pub fn retention(&self, reason: &'static str, rows: u64) {
        *self.retention.lock().unwrap_or_else(|p| p.into_inner()).entry(reason).or_default() += rows;
    }

    pub fn retention_failed(&self) {
        self.retention_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn prune_failed(&self) {
        self.prune_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn batch_committed(&self, size: usize, took: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batched_events.fetch_add(size as u64, Ordering::Relaxed);
        self.largest_batch.fetch_max(size as u64, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.latency_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn render(&self, queue_depth: usize, queue_capacity: usize) -> String {
        let mut out = String::new();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(out, "# HELP booboo_events_accepted_total Events stored and acknowledged.");
        let _ = writeln!(out, "# TYPE booboo_events_accepted_total counter");
        let _ = writeln!(out, "booboo_events_accepted_total {}", get(&self.accepted));
        let _ =
            writeln!(out, "# HELP booboo_events_duplicate_total Retried events acknowledged without storing twice.");
        let _ = writeln!(out, "# TYPE booboo_events_duplicate_total counter");
        let _ = writeln!(out, "booboo_events_duplicate_total {}", get(&self.duplicates));
        let _ = writeln!(out, "# HELP booboo_handshakes_total Client handshakes recorded.");
        let _ = writeln!(out, "# TYPE booboo_handshakes_total counter");
        let _ = writeln!(out, "booboo_handshakes_total {}", get(&self.handshakes));
        let _ = writeln!(out, "# HELP booboo_events_rejected_total Requests refused, by reason.");
        let _ = writeln!(out, "# TYPE booboo_events_rejected_total counter");
        for (reason, count) in self.rejected.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "booboo_events_rejected_total{{reason=\"{reason}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "# HELP booboo_events_not_stored_total Events counted on their issue but whose payload was not stored \
             (over a quota), by reason."
        );
        let _ = writeln!(out, "# TYPE booboo_events_not_stored_total counter");
        for (reason, count) in self.not_stored.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "booboo_events_not_stored_total{{reason=\"{reason}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "# HELP booboo_envelope_items_ignored_total Sentry envelope items accepted but not stored, by type."
        );
        let _ = writeln!(out, "# TYPE booboo_envelope_items_ignored_total counter");
        for (item_type, count) in self.ignored_items.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "booboo_envelope_items_ignored_total{{type=\"{item_type}\"}} {count}");
        }
        let _ = writeln!(out, "# HELP booboo_ingest_queue_depth Events waiting for the writer.");
        let _ = writeln!(out, "# TYPE booboo_ingest_queue_depth gauge");
        let _ = writeln!(out, "booboo_ingest_queue_depth {queue_depth}");
        let _ = writeln!(out, "# TYPE booboo_ingest_queue_capacity gauge");
        let _ = writeln!(out, "booboo_ingest_queue_capacity {queue_capacity}");
        if let Some(budget) = self.memory_budget.get() {
            let _ = writeln!(
                out,
                "# HELP booboo_inflight_bytes Bytes of request bodies and queued events held (--max-inflight-bytes)."
            );
            let _ = writeln!(out, "# TYPE booboo_inflight_bytes gauge");
            let _ = writeln!(out, "booboo_inflight_bytes {}", budget.used());
            let _ = writeln!(out, "# TYPE booboo_inflight_bytes_limit gauge");
            let _ = writeln!(out, "booboo_inflight_bytes_limit {}", budget.limit());
        }
        let _ = writeln!(out, "# HELP booboo_batches_total Transactions committed by the writer.");
        let _ = writeln!(out, "# TYPE booboo_batches_total counter");
        let _ = writeln!(out, "booboo_batches_total {}", get(&self.batches));
        let _ = writeln!(
            out,
            "# HELP booboo_batch_events_total Events in committed batches (divide by batches for the mean size)."
        );
        let _ = writeln!(out, "# TYPE booboo_batch_events_total counter");
        let _ = writeln!(out, "booboo_batch_events_total {}", get(&self.batched_events));
        let _ = writeln!(out, "# TYPE booboo_batch_size_max gauge");
        let _ = writeln!(out, "booboo_batch_size_max {}", get(&self.largest_batch));
        let _ = writeln!(out, "# HELP booboo_store_batch_seconds Time to store and commit one batch.");
        let _ = writeln!(out, "# TYPE booboo_store_batch_seconds histogram");
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            let _ =
                writeln!(out, "booboo_store_batch_seconds_bucket{{le=\"{bound}\"}} {}", get(&self.latency_buckets[i]));
        }
        let _ = writeln!(out, "booboo_store_batch_seconds_bucket{{le=\"+Inf\"}} {}", get(&self.latency_count));
        let _ = writeln!(out, "booboo_store_batch_seconds_sum {}", get(&self.latency_micros) as f64 / 1e6);
        let _ = writeln!(out, "booboo_store_batch_seconds_count {}", get(&self.latency_count));
        let _ = writeln!(
            out,
            "# HELP booboo_sign_ins_refused_total Sign-ins refused by a limit before any password check, by limit."
        );
        let _ = writeln!(out, "# TYPE booboo_sign_ins_refused_total counter");
        for (limit, count) in self.sign_ins_refused.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "booboo_sign_ins_refused_total{{limit=\"{limit}\"}} {count}");
        }
        let _ = writeln!(out, "# HELP booboo_pruned_total Expired rows deleted by the pruning task, by kind.");
        let _ = writeln!(out, "# TYPE booboo_pruned_total counter");
        for (kind, count) in self.pruned.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "booboo_pruned_total{{kind=\"{kind}\"}} {count}");
        }
        let _ = writeln!(out, "# HELP booboo_prune_failures_total Pruning passes that failed (the next one retries).");
        let _ = writeln!(out, "# TYPE booboo_prune_failures_total counter");
        let _ = writeln!(out, "booboo_prune_failures_total {}", get(&self.prune_failures));
        let _ = writeln!(
            out,
            "# HELP booboo_retention_total Event payloads removed (count, age, disk), issues removed (issue_age) and payloads lightened by retention."
        );
        let _ = writeln!(out, "# TYPE booboo_retention_total counter");
        for (reason, count) in self.retention.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "booboo_retention_total{{reason=\"{reason}\"}} {count}");
        }
        let _ = writeln!(
            out,
            "# HELP booboo_retention_failures_total Retention passes that failed (the next one retries)."
        );
        let _ = writeln!(out, "# TYPE booboo_retention_failures_total counter");
        let _ = writeln!(out, "booboo_retention_failures_total {}", get(&self.retention_failures));
        out
    }
}
