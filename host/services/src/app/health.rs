//! Installation health: each installation's `lifecycle.health-check` runs on a schedule (one host
//! per installation and interval, through a lease) and on demand, under a timeout; the result is
//! stored with its time.
//!
//! Statuses: `healthy`, `degraded` (the connector says so), `unhealthy` (the connector says so,
//! returns an error, traps or times out) and `unconfigured` (it cannot run: credentials missing,
//! OAuth not connected or waiting for re-authorization). [`FAILURES_FOR_ERROR`] unhealthy checks
//! in a row set the installation's status to `error`; the next healthy or degraded check sets it
//! back to `active`. Scheduled checks start one interval after an installation is created.
//! A change of health status (not the first result) emits `installation.health_changed`, a change of
//! the installation's status `installation.status_changed`. A check draws from the provider
//! budget like any call; over budget it does not run (the last result stands).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::App;
use patchbay_core::error::{Conflict, Error, ErrorKind};
use patchbay_core::now_ms;
use patchbay_core::timefmt::rfc3339;
use patchbay_runtime::bindings::ConnectorError;
use patchbay_runtime::bindings::connector::exports::patchbay::connector::lifecycle::HealthStatus;
use patchbay_runtime::calls;
use patchbay_store::NewEvent;
use patchbay_store::health::{HealthRow, HealthWrite};

/// Consecutive unhealthy checks that put an installation in `error`.
pub const FAILURES_FOR_ERROR: i64 = 3;
/// How long a host may run a scheduled check before another may take it.
const HEALTH_LEASE_MS: i64 = 120_000;

/// Health checking settings.
#[derive(Debug, Clone, Copy)]
pub struct HealthConfig {
    /// Time between scheduled checks; zero: only on demand.
    pub interval: Duration,
    /// Time one check may take.
    pub timeout: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self { interval: Duration::from_secs(300), timeout: Duration::from_secs(10) }
    }
}

/// What one check found.
struct Finding {
    status: &'static str,
    message: Option<String>,
    /// `skipped` (over the provider budget): when a check could run.
    retry_after: Option<Duration>,
}

impl Finding {
    fn new(status: &'static str, message: impl Into<String>) -> Self {
        Self { status, message: Some(message.into()), retry_after: None }
    }
}

fn connector_error_text(e: &ConnectorError) -> String {
    match e {
        ConnectorError::Retryable(f) => format!("retryable: {}: {}", f.code, f.message),
        ConnectorError::Permanent(f) => format!("permanent: {}: {}", f.code, f.message),
        ConnectorError::RateLimited(r) => format!("rate limited (retry after {} ms): {}", r.retry_after_ms, r.message),
        ConnectorError::Unauthorized(f) => format!("unauthorized: {}: {}", f.code, f.message),
    }
}

impl App {
    /// Runs the installation's health check now and stores the result; answers the stored view.
    pub async fn check_health(&self, tenant: &str, installation: &str) -> Result<Value, Error> {
        let row = self.get_installation(tenant, installation).await?;
        let started = Instant::now();
        let finding = self.run_health_check(tenant, installation).await;
        if finding.status == "skipped" {
            // Over the provider budget: the check did not run; the last result stands.
            return Err(Error::new(
                ErrorKind::QuotaExceeded { retry_after: finding.retry_after },
                format!("the health check was not run: {}", finding.message.unwrap_or_default()),
            ));
        }
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let previous = self.store.health(tenant, installation).await?;
        let failures_before = previous.as_ref().map(|p| p.consecutive_failures).unwrap_or(0);
        let consecutive_failures = match finding.status {
            "unhealthy" => failures_before + 1,
            "unconfigured" => failures_before,
            _ => 0,
        };
        let now = now_ms();
        let interval_ms = i64::try_from(self.health.interval.as_millis()).unwrap_or(i64::MAX);
        let next_check_at = if interval_ms == 0 { i64::MAX } else { now.saturating_add(interval_ms) };
        let stored = HealthRow {
            tenant: tenant.to_string(),
            installation: installation.to_string(),
            status: finding.status.to_string(),
            message: finding.message.map(|m| m.chars().take(500).collect()),
            checked_at: now,
            duration_ms,
            consecutive_failures,
            next_check_at,
        };
        let status_change = if consecutive_failures >= FAILURES_FOR_ERROR && row.status == "active" {
            Some(("active", "error"))
        } else if matches!(finding.status, "healthy" | "degraded") && row.status == "error" {
            Some(("error", "active"))
        } else {
            None
        };
        let mut events = Vec::new();
        // The first result of an installation is not a change.
        let before = previous.as_ref().filter(|p| p.checked_at > 0).map(|p| p.status.as_str());
        if let Some(before) = before
            && before != stored.status
        {
            events.push(self.host_event(
                tenant,
                installation,
                "installation.health_changed",
                json!({ "installation": installation, "from": before, "to": stored.status, "message": stored.message }),
            ));
        }
        if let Some((from, to)) = status_change {
            events.push(self.host_event(
                tenant,
                installation,
                "installation.status_changed",
                json!({ "installation": installation, "from": from, "to": to,
                        "consecutive_failures": consecutive_failures, "message": stored.message }),
            ));
        }
        let deliveries = self.router.route_events(&events, now).await?;
        self.store
            .save_health(HealthWrite { row: &stored, status_change, events: &events, deliveries: &deliveries })
            .await?;
        self.metrics.health_check(&stored.status);
        if let Some((from, to)) = status_change {
            self.record_change(
                tenant,
                installation,
                format!("status {from} → {to} after health checks"),
                vec![("consecutive_failures".into(), consecutive_failures.to_string())],
            );
        }
        Ok(health_view(installation, Some(&stored)))
    }

    /// One check: resolve (unconfigured when that fails for want of credentials), call under the
    /// timeout, and after an `unauthorized` of an OAuth connector refresh and call once more.
    async fn run_health_check(&self, tenant: &str, installation: &str) -> Finding {
        let mut refreshed = false;
        loop {
            let r = match self.resolve(tenant, installation).await {
                Ok(r) => r,
                Err(e) => {
                    let unconfigured = matches!(
                        e.kind(),
                        ErrorKind::ReauthRequired
                            | ErrorKind::Conflict(
                                Conflict::OAuthNotConnected
                                    | Conflict::OAuthNotConfigured
                                    | Conflict::InstallationDisabled
                            )
                    );
                    let status = if unconfigured { "unconfigured" } else { "unhealthy" };
                    return Finding::new(status, e.message());
                }
            };
            let p = &r.prepared;
            // (An OAuth connector's client credentials were needed to obtain its token already.)
            let missing: Vec<&str> = match &p.oauth {
                Some(_) => Vec::new(),
                None => p
                    .manifest
                    .credentials
                    .iter()
                    .filter(|f| f.required && p.installation.secrets.get(&f.key).is_none())
                    .map(|f| f.key.as_str())
                    .collect(),
            };
            if !missing.is_empty() {
                return Finding::new("unconfigured", format!("missing credential(s): {}", missing.join(", ")));
            }
            if let Some(b) = &p.budget
                && let Err(e) = b.acquire(crate::quota::QuotaMode::FailFast).await
            {
                return Finding { status: "skipped", message: Some(e.to_string()), retry_after: Some(e.retry_after) };
            }
            let call = calls::health_check(&self.runtime, &p.component, &p.installation);
            let report = match tokio::time::timeout(self.health.timeout, call).await {
                Ok(report) => report,
                Err(_) => {
                    return Finding::new(
                        "unhealthy",
                        format!("the health check timed out after {} ms", self.health.timeout.as_millis()),
                    );
                }
            };
            return match report.outcome {
                Ok(Ok(h)) => Finding {
                    status: match h.status {
                        HealthStatus::Healthy => "healthy",
                        HealthStatus::Degraded => "degraded",
                        HealthStatus::Unhealthy => "unhealthy",
                    },
                    message: h.message,
                    retry_after: None,
                },
                Ok(Err(ConnectorError::Unauthorized(_))) if p.oauth.is_some() && !refreshed => {
                    refreshed = true;
                    if let Some(ctx) = &p.oauth
                        && let Err(e) = self.refresh_token(tenant, installation, ctx, p.oauth_version).await
                    {
                        let status =
                            if matches!(e.kind(), ErrorKind::ReauthRequired) { "unconfigured" } else { "unhealthy" };
                        return Finding::new(status, e.message());
                    }
                    continue;
                }
                Ok(Err(e)) => Finding::new("unhealthy", connector_error_text(&e)),
                Err(e) => Finding::new("unhealthy", e.to_string()),
            };
        }
    }

    pub(crate) fn host_event(&self, tenant: &str, installation: &str, event_type: &str, payload: Value) -> NewEvent {
        let id = patchbay_core::new_id("evt");
        NewEvent {
            idempotency_key: id.clone(),
            id,
            tenant: tenant.to_string(),
            source_installation: installation.to_string(),
            event_type: event_type.to_string(),
            subject: Some(installation.to_string()),
            payload: payload.to_string(),
            created_at_ms: now_ms(),
        }
    }

    /// The installation's last check.
    pub async fn health_of(&self, tenant: &str, installation: &str) -> Result<Value, Error> {
        self.get_installation(tenant, installation).await?;
        let h = self.store.health(tenant, installation).await?;
        Ok(health_view(installation, h.as_ref()))
    }

    /// A tenant's installations with their status and last check, and counts by health status.
    pub async fn health_summary(&self, tenant: &str) -> Result<Value, Error> {
        let installations = self.store.list_installations(tenant).await?;
        let checks = self.store.tenant_health(tenant).await?;
        let mut counts = serde_json::Map::new();
        for k in ["healthy", "degraded", "unhealthy", "unconfigured", "unchecked"] {
            counts.insert(k.into(), json!(0));
        }
        let mut list = Vec::with_capacity(installations.len());
        for i in &installations {
            let h = checks.iter().find(|c| c.installation == i.id && c.checked_at > 0);
            let key = h.map(|h| h.status.as_str()).unwrap_or("unchecked");
            if let Some(n) = counts.get_mut(key) {
                *n = json!(n.as_i64().unwrap_or(0) + 1);
            }
            let mut v = health_view(&i.id, h);
            v["name"] = json!(i.name);
            v["connector"] = json!(i.connector_id);
            v["installation_status"] = json!(i.status);
            v["enabled"] = json!(i.enabled);
            list.push(v);
        }
        let overall = if counts["unhealthy"].as_i64().unwrap_or(0) > 0 {
            "unhealthy"
        } else if counts["degraded"].as_i64().unwrap_or(0) + counts["unconfigured"].as_i64().unwrap_or(0) > 0 {
            "degraded"
        } else {
            "healthy"
        };
        Ok(json!({ "status": overall, "counts": counts, "installations": list }))
    }

    /// One pass of the scheduler: checks the due installations this host could lease.
    pub async fn run_due_health_checks(&self, owner: &str) -> Result<usize, Error> {
        if self.health.interval.is_zero() {
            return Ok(0);
        }
        let interval_ms = i64::try_from(self.health.interval.as_millis()).unwrap_or(i64::MAX);
        let due = self.store.claim_health_checks(owner, HEALTH_LEASE_MS, interval_ms, 16).await?;
        let n = due.len();
        let checks = due.into_iter().map(|(tenant, id)| async move {
            if let Err(e) = self.check_health(&tenant, &id).await {
                tracing::info!(tenant, installation = id, "scheduled health check failed: {}", e.message());
            }
        });
        futures::future::join_all(checks).await;
        Ok(n)
    }
}

fn health_view(installation: &str, h: Option<&HealthRow>) -> Value {
    match h.filter(|h| h.checked_at > 0) {
        None => json!({ "installation": installation, "health": Value::Null, "checked_at": Value::Null }),
        Some(h) => json!({
            "installation": installation,
            "health": h.status,
            "message": h.message,
            "checked_at": rfc3339(h.checked_at),
            "duration_ms": h.duration_ms,
            "consecutive_failures": h.consecutive_failures,
            "next_check_at": (h.next_check_at < i64::MAX / 2).then(|| rfc3339(h.next_check_at)),
        }),
    }
}

/// Runs [`App::run_due_health_checks`] every `tick` until the process ends.
pub fn spawn_scheduler(app: App, tick: Duration) {
    let owner = format!("{}/health", crate::dispatch::worker::owner_name());
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(e) = app.run_due_health_checks(&owner).await {
                tracing::warn!("health scheduler: {}", e.message());
            }
        }
    });
}
