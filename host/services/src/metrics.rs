//! Prometheus metrics for connector calls, rendered in the text exposition format at `/metrics`.
//!
//! Series are labelled by connector id (not tenant or installation, to keep cardinality bounded):
//!
//! - `patchbay_calls_total{connector,operation,outcome}` — `outcome` is `ok`, a connector error
//!   kind (`retryable`, `permanent`, `rate-limited`, `unauthorized`) or a host-side failure kind
//!   (`deadline_exceeded`, `trap`, ...).
//! - `patchbay_call_errors_total{connector,kind}` — every outcome other than `ok`.
//! - `patchbay_call_duration_seconds{connector}` — histogram of sandbox time per call.
//! - `patchbay_call_fuel_total{connector}` — fuel consumed (when metering is on).
//! - `patchbay_egress_requests_total{connector}` — outbound HTTP requests made by connectors.
//! - `patchbay_components_cached` — compiled components held in memory (gauge, set on render).
//! - `patchbay_webhooks_total{result}` — webhook requests recorded (`stored`) or answered as a
//!   repeat (`duplicate`); rejected ones count under `rejected_<status>`.
//! - `patchbay_deliveries_total{outcome}` — delivery attempts by outcome (`ok`, `retryable`,
//!   `permanent`, `rate-limited`, `unauthorized`, `error`), and `dead` for deliveries dead-lettered.
//! - `patchbay_deliveries_started_total{path}` — delivery attempts started, by how the dispatcher
//!   got them: `claim`ed from the outbox, or `handoff` from the webhook ingest that leased them
//!   to it as it wrote them (see `dispatch::Handoff`).
//! - `patchbay_delivery_latency_seconds` — histogram of event creation to successful delivery.
//! - `patchbay_sync_records_total{outcome}`, `patchbay_sync_batches_total`,
//!   `patchbay_sync_runs_total{status}` — sync throughput and run outcomes on this host.
//! - `patchbay_oauth_refreshes_total{outcome}` — token refreshes by outcome (`ok`, `failed`,
//!   `refused`).
//! - `patchbay_health_checks_total{status}` — health checks by resulting status.
//! - `patchbay_oplog_entries_total{result}` — operation log entries `written` or `dropped` (shed
//!   from a full queue or lost in a failed write; each installation's timeline says how many and
//!   when), and `patchbay_oplog_queued_entries` (gauge) waiting for the writer.
//! - `patchbay_retention_pruned_total{class}` — rows the retention sweeps on this host deleted,
//!   by class (`webhook_requests`, `events`, `logs`, `sync_errors`, `sync_changes`; events count
//!   alone, not their deliveries); `patchbay_retention_sweeps_total` — sweeps run on this host.
//! - `patchbay_outbox_deliveries{status}` — outbox depth by status (`pending`, `leased`, `dead`;
//!   gauge, read from the database on render).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use crate::oplog::OplogStats;

/// Upper bounds (seconds) of the duration histogram's buckets.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
struct Inner {
    calls: BTreeMap<(String, String, String), u64>,
    errors: BTreeMap<(String, String), u64>,
    durations: BTreeMap<String, Histogram>,
    fuel: BTreeMap<String, u64>,
    egress: BTreeMap<String, u64>,
    webhooks: BTreeMap<String, u64>,
    deliveries: BTreeMap<String, u64>,
    deliveries_started: BTreeMap<String, u64>,
    delivery_latency: Histogram,
    sync_records: BTreeMap<&'static str, u64>,
    sync_batches: u64,
    sync_runs: BTreeMap<String, u64>,
    oauth_refreshes: BTreeMap<String, u64>,
    health_checks: BTreeMap<String, u64>,
    retention_pruned: BTreeMap<&'static str, u64>,
    retention_sweeps: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, le) in BUCKETS.iter().enumerate() {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {}", self.counts[i]);
        }
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", self.count);
        let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

/// Outbox depth by status, read at render time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OutboxGauge {
    pub pending: u64,
    pub leased: u64,
    pub dead: u64,
}

/// One finished call, as the metrics see it.
pub(crate) struct CallSample<'a> {
    pub connector: &'a str,
    pub operation: &'a str,
    pub outcome: &'a str,
    pub duration: Duration,
    pub fuel: Option<u64>,
    pub http_requests: u32,
}

/// The process's metrics registry.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        }
    }

    /// Counts a webhook request by result (`stored`, `duplicate`, `rejected_401`, ...).
    pub(crate) fn webhook_received(&self, result: &str) {
        *self.lock().webhooks.entry(result.into()).or_default() += 1;
    }

    /// Counts a delivery attempt by outcome; `latency` (event creation to success) for
    /// successful ones.
    /// Counts a delivery attempt started, by how its dispatcher got it (`claim`, `handoff`).
    pub(crate) fn delivery_started(&self, path: &str) {
        *self.lock().deliveries_started.entry(path.into()).or_default() += 1;
    }

    pub(crate) fn delivery(&self, outcome: &str, latency: Option<Duration>) {
        let mut m = self.lock();
        *m.deliveries.entry(outcome.into()).or_default() += 1;
        if let Some(l) = latency {
            m.delivery_latency.observe(l.as_secs_f64());
        }
    }

    /// Counts a committed sync batch and its records by outcome.
    pub fn sync_batch(&self, c: &patchbay_store::sync::Counts) {
        let mut m = self.lock();
        m.sync_batches += 1;
        for (k, n) in [
            ("fetched", c.fetched),
            ("created", c.created),
            ("updated", c.updated),
            ("unchanged", c.unchanged),
            ("deleted", c.deleted),
            ("failed", c.failed),
        ] {
            *m.sync_records.entry(k).or_default() += u64::try_from(n).unwrap_or(0);
        }
    }

    /// Counts a sync run that ended on this host (`succeeded`, `failed`, `cancelled`, `abandoned`).
    pub(crate) fn sync_run_ended(&self, status: &str) {
        *self.lock().sync_runs.entry(status.into()).or_default() += 1;
    }

    /// Counts an OAuth token refresh by outcome (`ok`, `failed`, `refused`).
    pub(crate) fn oauth_refresh(&self, outcome: &str) {
        *self.lock().oauth_refreshes.entry(outcome.into()).or_default() += 1;
    }

    /// Counts a health check by resulting status.
    pub(crate) fn health_check(&self, status: &str) {
        *self.lock().health_checks.entry(status.into()).or_default() += 1;
    }

    /// Counts rows a retention sweep deleted of `class`.
    pub(crate) fn retention_pruned(&self, class: &'static str, rows: u64) {
        *self.lock().retention_pruned.entry(class).or_default() += rows;
    }

    /// Counts a finished retention sweep.
    pub(crate) fn retention_swept(&self) {
        self.lock().retention_sweeps += 1;
    }

    pub(crate) fn record(&self, s: &CallSample<'_>) {
        let mut m = self.lock();
        *m.calls.entry((s.connector.into(), s.operation.into(), s.outcome.into())).or_default() += 1;
        if s.outcome != "ok" {
            *m.errors.entry((s.connector.into(), s.outcome.into())).or_default() += 1;
        }
        m.durations.entry(s.connector.into()).or_default().observe(s.duration.as_secs_f64());
        if let Some(f) = s.fuel {
            *m.fuel.entry(s.connector.into()).or_default() += f;
        }
        if s.http_requests > 0 {
            *m.egress.entry(s.connector.into()).or_default() += u64::from(s.http_requests);
        }
    }

    /// The text exposition format (version 0.0.4).
    pub(crate) fn render(&self, components_cached: usize, outbox: Option<OutboxGauge>, oplog: OplogStats) -> String {
        let m = self.lock();
        let mut out = String::new();
        header(&mut out, "patchbay_calls_total", "counter", "Connector calls by outcome.");
        for ((c, op, outcome), n) in &m.calls {
            let _ = writeln!(
                out,
                "patchbay_calls_total{{connector=\"{}\",operation=\"{}\",outcome=\"{}\"}} {n}",
                esc(c),
                esc(op),
                esc(outcome)
            );
        }
        header(&mut out, "patchbay_call_errors_total", "counter", "Failed connector calls by error kind.");
        for ((c, kind), n) in &m.errors {
            let _ = writeln!(out, "patchbay_call_errors_total{{connector=\"{}\",kind=\"{}\"}} {n}", esc(c), esc(kind));
        }
        header(&mut out, "patchbay_call_duration_seconds", "histogram", "Sandbox time per connector call.");
        for (c, h) in &m.durations {
            h.render(&mut out, "patchbay_call_duration_seconds", &format!("connector=\"{}\"", esc(c)));
        }
        header(&mut out, "patchbay_call_fuel_total", "counter", "Fuel consumed by connector calls.");
        for (c, n) in &m.fuel {
            let _ = writeln!(out, "patchbay_call_fuel_total{{connector=\"{}\"}} {n}", esc(c));
        }
        header(&mut out, "patchbay_egress_requests_total", "counter", "Outbound HTTP requests made by connectors.");
        for (c, n) in &m.egress {
            let _ = writeln!(out, "patchbay_egress_requests_total{{connector=\"{}\"}} {n}", esc(c));
        }
        header(&mut out, "patchbay_components_cached", "gauge", "Compiled components held in memory.");
        let _ = writeln!(out, "patchbay_components_cached {components_cached}");
        header(
            &mut out,
            "patchbay_oplog_entries_total",
            "counter",
            "Operation log entries on this host: written, or dropped (shed from a full queue or lost in a failed write).",
        );
        let _ = writeln!(out, "patchbay_oplog_entries_total{{result=\"written\"}} {}", oplog.written);
        let _ = writeln!(out, "patchbay_oplog_entries_total{{result=\"dropped\"}} {}", oplog.dropped);
        header(&mut out, "patchbay_oplog_queued_entries", "gauge", "Operation log entries waiting to be written.");
        let _ = writeln!(out, "patchbay_oplog_queued_entries {}", oplog.queued);
        header(&mut out, "patchbay_webhooks_total", "counter", "Webhook requests by result.");
        for (r, n) in &m.webhooks {
            let _ = writeln!(out, "patchbay_webhooks_total{{result=\"{}\"}} {n}", esc(r));
        }
        header(&mut out, "patchbay_deliveries_total", "counter", "Delivery attempts by outcome.");
        for (o, n) in &m.deliveries {
            let _ = writeln!(out, "patchbay_deliveries_total{{outcome=\"{}\"}} {n}", esc(o));
        }
        header(
            &mut out,
            "patchbay_deliveries_started_total",
            "counter",
            "Delivery attempts started by how the dispatcher got them.",
        );
        for (p, n) in &m.deliveries_started {
            let _ = writeln!(out, "patchbay_deliveries_started_total{{path=\"{}\"}} {n}", esc(p));
        }
        header(&mut out, "patchbay_delivery_latency_seconds", "histogram", "Event creation to successful delivery.");
        m.delivery_latency.render(&mut out, "patchbay_delivery_latency_seconds", "");
        header(&mut out, "patchbay_sync_records_total", "counter", "Records of sync batches by outcome.");
        for (o, n) in &m.sync_records {
            let _ = writeln!(out, "patchbay_sync_records_total{{outcome=\"{o}\"}} {n}");
        }
        header(&mut out, "patchbay_sync_batches_total", "counter", "Sync batches committed.");
        let _ = writeln!(out, "patchbay_sync_batches_total {}", m.sync_batches);
        header(&mut out, "patchbay_sync_runs_total", "counter", "Sync runs ended on this host, by status.");
        for (s, n) in &m.sync_runs {
            let _ = writeln!(out, "patchbay_sync_runs_total{{status=\"{}\"}} {n}", esc(s));
        }
        header(
            &mut out,
            "patchbay_oauth_refreshes_total",
            "counter",
            "OAuth token refreshes on this host, by outcome.",
        );
        for (s, n) in &m.oauth_refreshes {
            let _ = writeln!(out, "patchbay_oauth_refreshes_total{{outcome=\"{}\"}} {n}", esc(s));
        }
        header(
            &mut out,
            "patchbay_health_checks_total",
            "counter",
            "Installation health checks on this host, by status.",
        );
        for (s, n) in &m.health_checks {
            let _ = writeln!(out, "patchbay_health_checks_total{{status=\"{}\"}} {n}", esc(s));
        }
        header(
            &mut out,
            "patchbay_retention_pruned_total",
            "counter",
            "Rows deleted by retention sweeps on this host, by class.",
        );
        for class in patchbay_store::RetentionClass::ALL {
            let n = m.retention_pruned.get(class.as_str()).copied().unwrap_or(0);
            let _ = writeln!(out, "patchbay_retention_pruned_total{{class=\"{class}\"}} {n}");
        }
        header(&mut out, "patchbay_retention_sweeps_total", "counter", "Retention sweeps run on this host.");
        let _ = writeln!(out, "patchbay_retention_sweeps_total {}", m.retention_sweeps);
        if let Some(o) = outbox {
            header(&mut out, "patchbay_outbox_deliveries", "gauge", "Outbox deliveries by status.");
            for (status, n) in [("pending", o.pending), ("leased", o.leased), ("dead", o.dead)] {
                let _ = writeln!(out, "patchbay_outbox_deliveries{{status=\"{status}\"}} {n}");
            }
        }
        out
    }
}

/// The configuration caches' lines: whether they are served, and how often entries were dropped.
pub(crate) fn render_config_caches(out: &mut String, fresh: bool, invalidations: u64) {
    header(
        out,
        "patchbay_config_cache_fresh",
        "gauge",
        "1 while the configuration caches are served (the change-log watcher synced within the staleness bound); 0 while every read goes to the database.",
    );
    let _ = writeln!(out, "patchbay_config_cache_fresh {}", u8::from(fresh));
    header(
        out,
        "patchbay_config_cache_invalidations_total",
        "counter",
        "Times cached entries of a tenant (or of everyone) were dropped after a change.",
    );
    let _ = writeln!(out, "patchbay_config_cache_invalidations_total {invalidations}");
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Escapes a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histogram() {
        let m = Metrics::default();
        let sample = |outcome, ms| CallSample {
            connector: "notify-webhook",
            operation: "send",
            outcome,
            duration: Duration::from_millis(ms),
            fuel: Some(100),
            http_requests: 1,
        };
        m.record(&sample("ok", 2));
        m.record(&sample("retryable", 300));
        m.webhook_received("stored");
        m.delivery("ok", Some(Duration::from_micros(700)));
        let oplog = OplogStats { appended: 12, written: 9, dropped: 3, queued: 0 };
        let text = m.render(3, Some(OutboxGauge { pending: 4, leased: 1, dead: 2 }), oplog);
        assert!(
            text.contains("patchbay_calls_total{connector=\"notify-webhook\",operation=\"send\",outcome=\"ok\"} 1")
        );
        assert!(text.contains("patchbay_call_errors_total{connector=\"notify-webhook\",kind=\"retryable\"} 1"));
        assert!(text.contains("patchbay_call_duration_seconds_bucket{connector=\"notify-webhook\",le=\"0.0025\"} 1"));
        assert!(text.contains("patchbay_call_duration_seconds_bucket{connector=\"notify-webhook\",le=\"+Inf\"} 2"));
        assert!(text.contains("patchbay_call_fuel_total{connector=\"notify-webhook\"} 200"));
        assert!(text.contains("patchbay_egress_requests_total{connector=\"notify-webhook\"} 2"));
        assert!(text.contains("patchbay_components_cached 3"));
        assert!(text.contains("patchbay_oplog_entries_total{result=\"dropped\"} 3"));
        assert!(text.contains("patchbay_oplog_entries_total{result=\"written\"} 9"));
        assert!(text.contains("patchbay_webhooks_total{result=\"stored\"} 1"));
        assert!(text.contains("patchbay_deliveries_total{outcome=\"ok\"} 1"));
        assert!(text.contains("patchbay_delivery_latency_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("patchbay_delivery_latency_seconds_count 1"));
        assert!(text.contains("patchbay_outbox_deliveries{status=\"dead\"} 2"));
        m.retention_pruned("events", 5);
        m.retention_swept();
        let text = m.render(0, None, OplogStats::default());
        assert!(text.contains("patchbay_retention_pruned_total{class=\"events\"} 5"), "{text}");
        assert!(text.contains("patchbay_retention_pruned_total{class=\"logs\"} 0"), "{text}");
        assert!(text.contains("patchbay_retention_sweeps_total 1"), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
