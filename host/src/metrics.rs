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

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

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
}

/// One finished call, as the metrics see it.
pub struct CallSample<'a> {
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
    pub fn record(&self, s: &CallSample<'_>) {
        let mut m = match self.inner.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        *m.calls.entry((s.connector.into(), s.operation.into(), s.outcome.into())).or_default() += 1;
        if s.outcome != "ok" {
            *m.errors.entry((s.connector.into(), s.outcome.into())).or_default() += 1;
        }
        let secs = s.duration.as_secs_f64();
        let h = m.durations.entry(s.connector.into()).or_default();
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
        if let Some(f) = s.fuel {
            *m.fuel.entry(s.connector.into()).or_default() += f;
        }
        if s.http_requests > 0 {
            *m.egress.entry(s.connector.into()).or_default() += u64::from(s.http_requests);
        }
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self, components_cached: usize) -> String {
        let m = match self.inner.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
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
            let c = esc(c);
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "patchbay_call_duration_seconds_bucket{{connector=\"{c}\",le=\"{le}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(out, "patchbay_call_duration_seconds_bucket{{connector=\"{c}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "patchbay_call_duration_seconds_sum{{connector=\"{c}\"}} {}", h.sum);
            let _ = writeln!(out, "patchbay_call_duration_seconds_count{{connector=\"{c}\"}} {}", h.count);
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
        out
    }
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
        let text = m.render(3);
        assert!(
            text.contains("patchbay_calls_total{connector=\"notify-webhook\",operation=\"send\",outcome=\"ok\"} 1")
        );
        assert!(text.contains("patchbay_call_errors_total{connector=\"notify-webhook\",kind=\"retryable\"} 1"));
        assert!(text.contains("patchbay_call_duration_seconds_bucket{connector=\"notify-webhook\",le=\"0.0025\"} 1"));
        assert!(text.contains("patchbay_call_duration_seconds_bucket{connector=\"notify-webhook\",le=\"+Inf\"} 2"));
        assert!(text.contains("patchbay_call_fuel_total{connector=\"notify-webhook\"} 200"));
        assert!(text.contains("patchbay_egress_requests_total{connector=\"notify-webhook\"} 2"));
        assert!(text.contains("patchbay_components_cached 3"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
