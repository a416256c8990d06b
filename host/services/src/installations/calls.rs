//! Calls for installations: resolving an installation into what a call needs (cached by
//! revision), running an operation with JSON in and out (with one OAuth refresh after a 401),
//! taking a call from the provider budget, and what the budget looks like.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use patchbay_core::Scope;
use patchbay_core::error::{CallFailure, Conflict, Error, ErrorKind, Field, Missing};
use patchbay_core::outcome::ConnectorErrorKind;
use patchbay_registry::Manifest;
use patchbay_runtime::capability::credentials::Secrets;
use patchbay_runtime::capability::http::EgressBudget;
use patchbay_runtime::dynamic::{self, DynamicOutcome, InvokeError};
use patchbay_runtime::{CallError, CallReport, Installation, LoadedComponent};
use patchbay_store::quota::QuotaStatusRow;
use patchbay_store::{InstallationRow, VersionRow};
use serde_json::Value;

use super::Installations;
use super::rules::{LimitsSpec, parse_object, value_text};
use crate::catalog::manifest_of;
use crate::metrics::CallSample;
use crate::oauth::{CurrentToken, OAuthContext};
use crate::quota::{BucketStatus, Budget, QuotaExceeded, QuotaMode};

/// Most installations whose prepared call context is kept in memory.
const PREPARED_CACHE_MAX: usize = 10_000;

/// Everything a call needs, resolved from the store for one call.
pub struct Resolved {
    /// The installation as stored.
    pub row: InstallationRow,
    /// Its call context, possibly from the cache.
    pub prepared: Arc<Prepared>,
}

/// The part of a resolution that only changes with the installation's revision (and that of its
/// credentials source): cached between calls so a call costs one row lookup, not a decryption.
pub struct Prepared {
    revision: i64,
    source_revision: Option<i64>,
    /// The connector version the installation runs.
    pub version: VersionRow,
    /// That version's manifest.
    pub manifest: Manifest,
    /// The compiled component.
    pub component: Arc<LoadedComponent>,
    /// The runtime's context for calls: scope, configuration, secrets, egress policy and limits.
    pub installation: Installation,
    /// The secrets the connector sees, before an OAuth access token is added.
    secrets: Secrets,
    /// For connectors declaring `[oauth2]`: how the host obtains the token.
    pub oauth: Option<Arc<OAuthContext>>,
    /// The version of the access token in `installation`'s secrets...
    pub oauth_version: Option<i64>,
    /// ...and when its grant was authorized (versions start again after a reconnect).
    oauth_obtained_at: Option<i64>,
    /// The (tenant, provider) budget calls draw from, when rate limits apply.
    pub budget: Option<Arc<Budget>>,
}

impl Prepared {
    /// The same context with this access token under the connector's `oauth2` credential key.
    fn with_token(&self, token: &CurrentToken) -> Result<Prepared, Error> {
        let ctx = self.oauth.as_ref().ok_or_else(|| Error::internal("no OAuth context"))?;
        let mut secrets = self.secrets.clone();
        secrets.insert(ctx.token_key.clone(), token.access.expose());
        let i = &self.installation;
        let installation = Installation::new(
            i.scope.clone(),
            i.connector.clone(),
            i.config.clone(),
            secrets,
            &self.manifest.allowed_hosts,
            i.limits.clone(),
        )
        .map_err(|e| Error::invalid(Field::Config, e.to_string()))?
        .with_budget(self.budget.clone().map(|b| b as Arc<dyn EgressBudget>))
        .with_guest_readable(guest_readable(&self.manifest));
        Ok(Prepared {
            revision: self.revision,
            source_revision: self.source_revision,
            version: self.version.clone(),
            manifest: self.manifest.clone(),
            component: self.component.clone(),
            installation,
            secrets: self.secrets.clone(),
            oauth: self.oauth.clone(),
            oauth_version: Some(token.version),
            oauth_obtained_at: Some(token.obtained_at),
            budget: self.budget.clone(),
        })
    }
}

/// The credentials a connector's manifest lets it read itself.
fn guest_readable(manifest: &Manifest) -> Vec<String> {
    manifest.credentials.iter().filter(|f| f.guest_readable).map(|f| f.key.clone()).collect()
}

/// The provider budget an installation draws from.
pub struct QuotaStatus {
    /// `ins_<hex>`: the installation's id.
    pub installation: String,
    /// The connector's provider, whose budget this is.
    pub provider: String,
    /// `None` when no rate limits apply.
    pub budget: Option<BudgetStatus>,
}

/// A budget's buckets and pause.
pub struct BudgetStatus {
    /// Whether the limits are the installation's own (`limits.rate_limits`) or the manifest's.
    pub from_installation: bool,
    /// Each bucket as this host counts it, with every host's counts of the same window.
    pub buckets: Vec<(BucketStatus, Option<QuotaStatusRow>)>,
    /// How long a provider's 429 still pauses the budget.
    pub paused_for: Option<Duration>,
    /// Provider 429s seen.
    pub provider_429s: u64,
    /// Time until a call could run.
    pub next_call_in: Duration,
}

impl Installations {
    /// Resolves an installation for one call. Disabled installations refuse calls.
    ///
    /// The installation's row (and its credentials source's revision) come from the
    /// configuration cache, which drops them when the tenant's data changes on any host (see
    /// [`crate::config_cache`]); the rest is rebuilt only when a revision changed, so a PATCH or
    /// new credentials apply to the next call. An OAuth installation gets its current access
    /// token (refreshed first when it is about to expire).
    pub async fn resolve(&self, tenant: &str, id: &str) -> Result<Resolved, Error> {
        let (row, source_revision) = self.current_row(tenant, id).await?;
        if !row.enabled {
            return Err(Error::conflict(
                Conflict::InstallationDisabled,
                format!("installation {id} is disabled; enable it with PATCH {{\"enabled\": true}}"),
            ));
        }
        let mut prepared = self.prepared_with(&row, source_revision).await?;
        if let Some(ctx) = &prepared.oauth {
            let token = self.tokens.access_token(tenant, id, ctx).await?;
            if (prepared.oauth_obtained_at, prepared.oauth_version) != (Some(token.obtained_at), Some(token.version)) {
                prepared = Arc::new(prepared.with_token(&token)?);
                self.cache_prepared(&row, prepared.clone());
            }
        }
        Ok(Resolved { row, prepared })
    }

    /// The installation's row and its credentials source's revision: cached, or read and cached.
    async fn current_row(&self, tenant: &str, id: &str) -> Result<(InstallationRow, Option<i64>), Error> {
        let key = (tenant.to_string(), id.to_string());
        if let Some(hit) = self.rows.get(&key) {
            return Ok(hit);
        }
        let read_point = self.rows.read_point();
        let row = self.get(tenant, id).await?;
        let source_revision = self.source_revision(&row).await?;
        self.rows.put(key, tenant, read_point, (row.clone(), source_revision));
        Ok((row, source_revision))
    }

    /// The revision of the installation whose credentials `row` uses, if it uses another's.
    async fn source_revision(&self, row: &InstallationRow) -> Result<Option<i64>, Error> {
        Ok(match &row.credentials_from {
            Some(from) => self.store.installation(&row.tenant, from).await?.map(|r| r.revision),
            None => None,
        })
    }

    /// The installation's call context without an access token check: cached by revision.
    pub(crate) async fn prepared_for(&self, row: &InstallationRow) -> Result<Arc<Prepared>, Error> {
        let source_revision = self.source_revision(row).await?;
        self.prepared_with(row, source_revision).await
    }

    /// [`Installations::prepared_for`] with the credentials source's revision known.
    async fn prepared_with(&self, row: &InstallationRow, source_revision: Option<i64>) -> Result<Arc<Prepared>, Error> {
        let key = (row.tenant.clone(), row.id.clone());
        let cached = self.prepared.lock().map(|m| m.get(&key).cloned()).unwrap_or_default();
        if let Some(p) = cached
            && p.revision == row.revision
            && p.source_revision == source_revision
        {
            return Ok(p);
        }
        let prepared = Arc::new(self.prepare(row, source_revision).await?);
        self.cache_prepared(row, prepared.clone());
        Ok(prepared)
    }

    /// How the host obtains an OAuth installation's tokens; a conflict for other connectors.
    pub(crate) async fn oauth_context(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<(InstallationRow, Arc<OAuthContext>), Error> {
        let row = self.get(tenant, id).await?;
        let p = self.prepared_for(&row).await?;
        match &p.oauth {
            Some(ctx) => Ok((row, ctx.clone())),
            None => Err(Error::conflict(
                Conflict::NotOAuth,
                format!("the connector of installation {id} declares no [oauth2] credentials"),
            )),
        }
    }

    fn cache_prepared(&self, row: &InstallationRow, prepared: Arc<Prepared>) {
        if let Ok(mut m) = self.prepared.lock() {
            if m.len() >= PREPARED_CACHE_MAX {
                m.clear();
            }
            m.insert((row.tenant.clone(), row.id.clone()), prepared);
        }
    }

    async fn prepare(&self, row: &InstallationRow, source_revision: Option<i64>) -> Result<Prepared, Error> {
        let version = self.catalog.installed_version(row).await?;
        crate::catalog::Catalog::runnable(&version)?;
        let manifest = manifest_of(&version)?;
        let component = self.catalog.component(&version.digest).await?;
        let mut config: BTreeMap<String, String> = BTreeMap::new();
        for f in &manifest.config {
            if let Some(d) = &f.default {
                config.insert(f.key.clone(), d.clone());
            }
        }
        for (k, v) in parse_object(&row.config_json) {
            config.insert(k, value_text(&v));
        }
        if let Some(api) = &row.api_version {
            config.entry("api_version".into()).or_insert_with(|| api.clone());
        }
        let mut secrets = self.secrets(row, &manifest).await?;
        // The OAuth client's id and secret stay in the host; the token key is filled per call.
        let oauth = match (&manifest.oauth2, manifest.oauth2_field()) {
            (Some(spec), Some(field)) => {
                let ctx = OAuthContext {
                    spec: spec.clone(),
                    token_key: field.key.clone(),
                    config: config.clone(),
                    client_id: secrets.remove(spec.client_id_key()),
                    client_secret: secrets.remove(spec.client_secret_key()),
                };
                secrets.remove(&field.key);
                Some(Arc::new(ctx))
            }
            _ => None,
        };
        let limits: LimitsSpec = serde_json::from_str(&row.limits_json).unwrap_or_default();
        let rate_limits = limits.rate_limits.as_deref().unwrap_or(&manifest.rate_limits);
        let budget = self.quotas.budget(&row.tenant, &manifest.provider, rate_limits);
        let installation = Installation::new(
            Scope::new(row.tenant.as_str(), row.id.as_str()),
            format!("{}@{}", version.connector_id, version.version),
            config,
            secrets.clone(),
            &manifest.allowed_hosts,
            limits.to_limits(),
        )
        .map_err(|e| Error::invalid(Field::Config, e.to_string()))?
        .with_budget(budget.clone().map(|b| b as Arc<dyn EgressBudget>))
        .with_guest_readable(guest_readable(&manifest));
        Ok(Prepared {
            revision: row.revision,
            source_revision,
            version,
            manifest,
            component,
            installation,
            secrets,
            oauth,
            oauth_version: None,
            oauth_obtained_at: None,
            budget,
        })
    }

    /// Opens an installation's credentials (falling back to its bundle source for unset fields
    /// the connector declares: a source's other values, such as its OAuth client, stay there).
    async fn secrets(&self, row: &InstallationRow, manifest: &Manifest) -> Result<Secrets, Error> {
        let mut secrets = Secrets::new();
        let mut sources = vec![row.id.clone()];
        if let Some(from) = &row.credentials_from {
            sources.push(from.clone());
        }
        for source in sources {
            let borrowed = source != row.id;
            for f in self.store.credentials(&row.tenant, &source).await? {
                if secrets.get(&f.field).is_some() {
                    continue;
                }
                if borrowed && !manifest.credentials.iter().any(|c| c.key == f.field) {
                    continue;
                }
                let plain = self.keyring.open(&row.tenant, &source, &f.field, &f.ciphertext).map_err(|e| {
                    Error::internal(format!("credential {:?} of installation {source} cannot be opened: {e}", f.field))
                })?;
                secrets.insert(f.field.clone(), String::from_utf8_lossy(&plain).into_owned());
            }
        }
        Ok(secrets)
    }

    /// Runs one operation with JSON in and out, and records it in the metrics.
    pub async fn invoke(
        &self,
        tenant: &str,
        id: &str,
        operation: &str,
        input: Value,
        quota: QuotaMode,
    ) -> Result<(Resolved, CallReport<DynamicOutcome>), Error> {
        let r = self.resolve(tenant, id).await?;
        let report = self.invoke_resolved(&r, operation, input, quota).await?;
        Ok((r, report))
    }

    /// [`Installations::invoke`] on an installation already resolved. When an OAuth connector
    /// reports `unauthorized`, the access token it used is refreshed (unless another call already
    /// did) and the call runs once more.
    pub(crate) async fn invoke_resolved(
        &self,
        r: &Resolved,
        operation: &str,
        input: Value,
        quota: QuotaMode,
    ) -> Result<CallReport<DynamicOutcome>, Error> {
        self.admit(r, quota).await?;
        let Some(ctx) = &r.prepared.oauth else {
            return self.invoke_once(r, operation, input).await;
        };
        let report = self.invoke_once(r, operation, input.clone()).await?;
        let unauthorized = ConnectorErrorKind::Unauthorized.as_str();
        if !matches!(&report.outcome, Ok(DynamicOutcome::ConnectorError { kind, .. }) if kind == unauthorized) {
            return Ok(report);
        }
        let (tenant, id) = (r.row.tenant.as_str(), r.row.id.as_str());
        self.changes.record(tenant, id, "the connector reported 401; refreshing the access token".into(), vec![]);
        self.tokens.refresh_token(tenant, id, ctx, r.prepared.oauth_version).await?;
        let again = self.resolve(tenant, id).await?;
        self.invoke_once(&again, operation, input).await
    }

    async fn invoke_once(
        &self,
        r: &Resolved,
        operation: &str,
        input: Value,
    ) -> Result<CallReport<DynamicOutcome>, Error> {
        let p = &r.prepared;
        let report = dynamic::invoke(&self.runtime, &p.component, &p.installation, operation, input)
            .await
            .map_err(invoke_error)?;
        self.record_call(&p.version.connector_id, operation, &report);
        Ok(report)
    }

    /// Counts a call in the metrics, by outcome.
    pub(crate) fn record_call(&self, connector: &str, operation: &str, report: &CallReport<DynamicOutcome>) {
        let outcome = match &report.outcome {
            Ok(DynamicOutcome::Ok(_)) => "ok",
            Ok(DynamicOutcome::ConnectorError { kind, .. }) => kind.as_str(),
            Err(e) => e.kind(),
        };
        self.metrics.record(&CallSample {
            connector,
            operation,
            outcome,
            duration: report.duration,
            fuel: report.fuel_consumed,
            http_requests: report.http_requests,
        });
    }

    /// Takes one call from the installation's provider budget (if it has one).
    pub(crate) async fn admit(&self, r: &Resolved, mode: QuotaMode) -> Result<(), Error> {
        match &r.prepared.budget {
            Some(b) => b.acquire(mode).await.map_err(|e| quota_error(&e)),
            None => Ok(()),
        }
    }

    /// The provider budget an installation draws from: its buckets as this host counts them,
    /// beside every host's counts of the same windows (as of their last flush).
    pub async fn quota(&self, tenant: &str, id: &str) -> Result<QuotaStatus, Error> {
        let row = self.get(tenant, id).await?;
        let p = self.prepared_for(&row).await?;
        let limits: LimitsSpec = serde_json::from_str(&row.limits_json).unwrap_or_default();
        let Some(b) = &p.budget else {
            return Ok(QuotaStatus {
                installation: id.to_string(),
                provider: p.manifest.provider.clone(),
                budget: None,
            });
        };
        let (buckets, paused_for, provider_429s) = b.status();
        let cluster = self.store.quota_status(&b.tenant, &b.key).await?;
        let buckets = buckets
            .into_iter()
            .map(|s| {
                let all = cluster
                    .iter()
                    .find(|c| c.per_seconds == i64::from(s.per_seconds) && c.window_start == s.window_start_ms)
                    .cloned();
                (s, all)
            })
            .collect();
        Ok(QuotaStatus {
            installation: id.to_string(),
            provider: b.provider.clone(),
            budget: Some(BudgetStatus {
                from_installation: limits.rate_limits.is_some(),
                buckets,
                paused_for,
                provider_429s,
                next_call_in: b.next_free(),
            }),
        })
    }
}

fn invoke_error(e: InvokeError) -> Error {
    match e {
        InvokeError::UnknownOperation { .. } => Error::missing(Missing::Operation, e.to_string()),
        InvokeError::BadInput(m) => Error::invalid(Field::Input, m.to_string()).with("path", m.path.clone()),
        other => Error::internal(other.to_string()),
    }
}

/// A call refused for want of budget, with the time until it could run.
pub fn quota_error(e: &QuotaExceeded) -> Error {
    Error::new(ErrorKind::QuotaExceeded { retry_after: Some(e.retry_after) }, e.to_string())
}

/// A host-side call failure (deadline, limits, trap), with the runtime's kind of it.
pub fn call_error(e: &CallError) -> Error {
    let failure = match e {
        CallError::DeadlineExceeded { .. } => CallFailure::DeadlineExceeded,
        CallError::Host { .. } => CallFailure::HostUnavailable,
        _ => CallFailure::Failed,
    };
    Error::new(ErrorKind::Call(failure), e.to_string()).with("kind", e.kind())
}

/// A connector's own error (`kind` as the dynamic call reports it, `error` its payload).
pub fn connector_error(kind_text: &str, error: &Value) -> Error {
    let kind = ConnectorErrorKind::parse(kind_text);
    let retry_after = (kind == Some(ConnectorErrorKind::RateLimited))
        .then(|| Duration::from_millis(error.get("retry-after-ms").and_then(Value::as_u64).unwrap_or(1000)));
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("the connector failed ({kind_text})"));
    Error::new(ErrorKind::Connector { kind, retry_after }, message).with("details", error.clone())
}
