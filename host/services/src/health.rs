//! Installation health: each installation's `lifecycle.health-check` runs on a schedule (one host
//! per installation and interval, through a lease) and on demand, under a timeout; the result is
//! stored with its time.
//!
//! Statuses: `healthy`, `degraded` (the connector says so), `unhealthy` (the connector says so,
//! returns an error, traps or times out) and `unconfigured` (it cannot run: credentials missing,
//! OAuth not connected or waiting for re-authorization). `FAILURES_FOR_ERROR` unhealthy checks
//! in a row set the installation's status to `error`; the next healthy or degraded check sets it
//! back to `active`. Scheduled checks start one interval after an installation is created.
//! A change of health status (not the first result) emits `installation.health_changed`, a change of
//! the installation's status `installation.status_changed`. A check draws from the provider
//! budget like any call; over budget it does not run (the last result stands).

use std::sync::Arc;
use std::time::{Duration, Instant};

use patchbay_core::error::{Conflict, Error, ErrorKind};
use patchbay_core::now_ms;
use patchbay_runtime::bindings::ConnectorError;
use patchbay_runtime::bindings::connector::exports::patchbay::connector::lifecycle::HealthStatus;
use patchbay_runtime::{Runtime, calls};
use patchbay_store::health::{HealthRow, HealthWrite};
use patchbay_store::{InstallationFilter, InstallationRow, Page, PageRequest, Store};
use serde_json::json;

use crate::changes::ChangeLog;
use crate::events::host_event;
use crate::installations::Installations;
use crate::metrics::Metrics;
use crate::oauth::Tokens;
use crate::quota::QuotaMode;
use crate::routing::Router;

/// Consecutive unhealthy checks that put an installation in `error`.
pub(crate) const FAILURES_FOR_ERROR: i64 = 3;
/// How long a host may run a scheduled check before another may take it.
const HEALTH_LEASE_MS: i64 = 120_000;

/// Health checking settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HealthConfig {
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

/// Counts of a tenant's installations by health status, and the overall status.
pub struct HealthSummary {
    /// `unhealthy` if any installation is, else `degraded` if any is degraded or unconfigured,
    /// else `healthy`.
    pub overall: &'static str,
    /// (status, count) for `healthy`, `degraded`, `unhealthy`, `unconfigured`, `unchecked`.
    pub counts: Vec<(&'static str, i64)>,
    /// A page of the installations, oldest first, each with its last check (`None`: never
    /// checked).
    pub installations: Page<(InstallationRow, Option<HealthRow>)>,
}

/// What health checking needs from the rest of the host.
pub(crate) struct HealthDeps {
    pub store: Store,
    pub installations: Arc<Installations>,
    pub tokens: Arc<Tokens>,
    pub runtime: Runtime,
    pub router: Arc<Router>,
    pub metrics: Arc<Metrics>,
    pub changes: Arc<ChangeLog>,
    pub config: HealthConfig,
}

/// Installation health: checks now, on a schedule, and what they found.
pub struct Health {
    store: Store,
    installations: Arc<Installations>,
    tokens: Arc<Tokens>,
    runtime: Runtime,
    router: Arc<Router>,
    metrics: Arc<Metrics>,
    changes: Arc<ChangeLog>,
    config: HealthConfig,
}

impl Health {
    pub(crate) fn new(d: HealthDeps) -> Self {
        Self {
            store: d.store,
            installations: d.installations,
            tokens: d.tokens,
            runtime: d.runtime,
            router: d.router,
            metrics: d.metrics,
            changes: d.changes,
            config: d.config,
        }
    }

    /// Runs the installation's health check now and stores the result; answers the stored row.
    pub async fn check(&self, tenant: &str, installation: &str) -> Result<HealthRow, Error> {
        let row = self.installations.get(tenant, installation).await?;
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
        let interval_ms = i64::try_from(self.config.interval.as_millis()).unwrap_or(i64::MAX);
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
            events.push(host_event(
                tenant,
                installation,
                "installation.health_changed",
                json!({ "installation": installation, "from": before, "to": stored.status, "message": stored.message }),
            ));
        }
        if let Some((from, to)) = status_change {
            events.push(host_event(
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
            self.changes.record(
                tenant,
                installation,
                format!("status {from} → {to} after health checks"),
                vec![("consecutive_failures".into(), consecutive_failures.to_string())],
            );
        }
        Ok(stored)
    }

    /// One check: resolve (unconfigured when that fails for want of credentials), call under the
    /// timeout, and after an `unauthorized` of an OAuth connector refresh and call once more.
    async fn run_health_check(&self, tenant: &str, installation: &str) -> Finding {
        let mut refreshed = false;
        loop {
            let r = match self.installations.resolve(tenant, installation).await {
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
                && let Err(e) = b.acquire(QuotaMode::FailFast).await
            {
                return Finding { status: "skipped", message: Some(e.to_string()), retry_after: Some(e.retry_after) };
            }
            let call = calls::health_check(&self.runtime, &p.component, &p.installation);
            let report = match tokio::time::timeout(self.config.timeout, call).await {
                Ok(report) => report,
                Err(_) => {
                    return Finding::new(
                        "unhealthy",
                        format!("the health check timed out after {} ms", self.config.timeout.as_millis()),
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
                        && let Err(e) = self.tokens.refresh_token(tenant, installation, ctx, p.oauth_version).await
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

    /// The installation's last check (`None`: never checked).
    pub async fn last(&self, tenant: &str, installation: &str) -> Result<Option<HealthRow>, Error> {
        self.installations.get(tenant, installation).await?;
        Ok(self.store.health(tenant, installation).await?.filter(|h| h.checked_at > 0))
    }

    /// Counts of all a tenant's installations by health status, and a page of the
    /// installations (oldest first) with their last check.
    pub async fn summary(&self, tenant: &str, page: &PageRequest<(i64, String)>) -> Result<HealthSummary, Error> {
        let installations = self.installations.rows(tenant, &InstallationFilter::default(), page).await?;
        let ids: Vec<&str> = installations.items.iter().map(|i| i.id.as_str()).collect();
        let checks = self.store.health_of(tenant, &ids).await?;
        let mut counts: Vec<(&'static str, i64)> =
            ["healthy", "degraded", "unhealthy", "unconfigured", "unchecked"].into_iter().map(|k| (k, 0)).collect();
        for (status, n) in self.store.health_counts(tenant).await? {
            if let Some((_, count)) = counts.iter_mut().find(|(k, _)| *k == status) {
                *count += n;
            }
        }
        let list = installations.map(|i| {
            let h = checks.iter().find(|c| c.installation == i.id && c.checked_at > 0).cloned();
            (i, h)
        });
        let count = |k: &str| counts.iter().find(|(c, _)| *c == k).map_or(0, |(_, n)| *n);
        let overall = if count("unhealthy") > 0 {
            "unhealthy"
        } else if count("degraded") + count("unconfigured") > 0 {
            "degraded"
        } else {
            "healthy"
        };
        Ok(HealthSummary { overall, counts, installations: list })
    }

    /// One pass of the scheduler: checks the due installations this host could lease.
    pub(crate) async fn run_due(&self, owner: &str) -> Result<usize, Error> {
        if self.config.interval.is_zero() {
            return Ok(0);
        }
        let interval_ms = i64::try_from(self.config.interval.as_millis()).unwrap_or(i64::MAX);
        let due = self.store.claim_health_checks(owner, HEALTH_LEASE_MS, interval_ms, 16).await?;
        let n = due.len();
        let checks = due.into_iter().map(|(tenant, id)| async move {
            if let Err(e) = self.check(&tenant, &id).await {
                tracing::info!(tenant, installation = id, "scheduled health check failed: {}", e.message());
            }
        });
        futures::future::join_all(checks).await;
        Ok(n)
    }
}

/// Runs [`Health::run_due`] every `tick` until the process ends.
pub(crate) fn spawn_scheduler(health: Arc<Health>, tick: Duration) {
    let owner = format!("{}/health", crate::dispatch::worker::owner_name());
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if let Err(e) = health.run_due(&owner).await {
                tracing::warn!("health scheduler: {}", e.message());
            }
        }
    });
}
