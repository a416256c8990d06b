//! The API's response bodies: one serialisable struct per resource, built from what the services
//! return. Times are RFC 3339 strings; stored JSON columns are parsed back into JSON; absent
//! optional members are `null`, as the API has always answered.

use patchbay_core::timefmt::rfc3339;
use patchbay_runtime::calls::Entity;
use patchbay_runtime::dynamic::{self, OperationInfo};
use patchbay_services::catalog::{ConnectorDetails, VersionDetails};
use patchbay_services::health::HealthSummary;
use patchbay_services::installations::{CredentialsStatus, InstallationDetails, QuotaStatus};
use patchbay_services::oauth::{Authorization, GrantStatus, Revocation};
use patchbay_services::syncs::progress;
use patchbay_store::health::HealthRow;
use patchbay_store::sync::{ErrorRow, MappingRow, RecordRow, RunRow, ScheduleRow};
use patchbay_store::{
    ApiKey, AttemptRow, ConnectorSummary, DeliveryRow, DeliveryStatus, EventRow, LogRecord, RouteRow, Tenant,
    VersionRow,
};
use serde::Serialize;
use serde_json::{Map, Value};

/// Stored JSON text as JSON (`fallback` when it does not parse).
fn parsed(text: &str, fallback: impl FnOnce() -> Value) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| fallback())
}

/// `GET /healthz`.
#[derive(Serialize)]
pub(crate) struct Liveness {
    pub status: &'static str,
    pub database: &'static str,
    pub version: &'static str,
}

/// A tenant.
#[derive(Serialize)]
pub(crate) struct TenantView {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        Self { id: t.id.clone(), name: t.name.clone(), created_at: rfc3339(t.created_at_ms) }
    }
}

/// An API key (its token only when just created).
#[derive(Serialize)]
pub(crate) struct KeyView {
    pub id: String,
    pub tenant: Option<String>,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub revoked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.clone(),
            tenant: k.tenant.clone(),
            name: k.name.clone(),
            scopes: k.scopes.clone(),
            created_at: rfc3339(k.created_at_ms),
            revoked: k.revoked,
            token: None,
        }
    }
}

/// When and why a version was deprecated.
#[derive(Serialize)]
pub(crate) struct Deprecation {
    pub deprecated_at: String,
    pub sunset: Option<String>,
    pub message: Option<String>,
}

fn deprecation(v: &VersionRow) -> Option<Deprecation> {
    v.deprecated_at_ms.map(|at| Deprecation {
        deprecated_at: rfc3339(at),
        sunset: v.sunset.clone(),
        message: v.deprecation_message.clone(),
    })
}

/// A version without its operations.
#[derive(Serialize)]
pub(crate) struct VersionSummary {
    pub connector: String,
    pub owner: Option<String>,
    pub version: String,
    pub digest: String,
    pub size: i64,
    pub signed_by: Option<String>,
    pub published_at: String,
    pub deprecation: Option<Deprecation>,
    /// `compiling`, `ready` or `failed`.
    pub state: &'static str,
    /// Why the compile failed; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_message: Option<String>,
    /// While compiling: when the compile started and how long it has run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compiling: Option<Compiling>,
}

/// A compile in progress.
#[derive(Serialize)]
pub(crate) struct Compiling {
    pub started_at: String,
    pub elapsed_ms: i64,
}

impl From<&VersionRow> for VersionSummary {
    fn from(v: &VersionRow) -> Self {
        Self {
            connector: v.connector_id.clone(),
            owner: v.owner.clone(),
            version: v.version.clone(),
            digest: format!("sha256:{}", v.digest),
            size: v.size,
            signed_by: v.signed_by.clone(),
            published_at: rfc3339(v.published_at_ms),
            deprecation: deprecation(v),
            state: v.state.as_str(),
            state_message: v.state_message.clone(),
            compiling: match (v.state, v.state_at_ms) {
                (patchbay_store::VersionState::Compiling, Some(t)) => {
                    Some(Compiling { started_at: rfc3339(t), elapsed_ms: (patchbay_core::clock::now_ms() - t).max(0) })
                }
                _ => None,
            },
        }
    }
}

/// A version with its manifest and every operation its world exports (input and output as
/// JSON Schema).
#[derive(Serialize)]
pub(crate) struct VersionView {
    #[serde(flatten)]
    pub summary: VersionSummary,
    pub manifest: Value,
    pub operations: Vec<Value>,
}

impl From<&VersionDetails> for VersionView {
    fn from(d: &VersionDetails) -> Self {
        Self {
            summary: VersionSummary::from(&d.version),
            manifest: parsed(&d.version.manifest_json, || Value::Null),
            operations: d.operations.iter().map(operation_schema).collect(),
        }
    }
}

fn operation_schema(op: &OperationInfo) -> Value {
    dynamic::operation_schema(op)
}

/// A connector in the catalog; `versions` are names in listings and summaries in details.
#[derive(Serialize)]
pub(crate) struct ConnectorView<V> {
    pub id: String,
    pub owner: Option<String>,
    pub visibility: &'static str,
    pub title: String,
    pub description: String,
    pub category: String,
    pub provider: String,
    pub bundle: Option<String>,
    pub latest_version: String,
    pub versions: Vec<V>,
}

impl<V> ConnectorView<V> {
    fn with(c: &ConnectorSummary, versions: Vec<V>) -> Self {
        Self {
            id: c.id.clone(),
            owner: c.owner.clone(),
            visibility: if c.owner.is_some() { "private" } else { "public" },
            title: c.title.clone(),
            description: c.description.clone(),
            category: c.category.clone(),
            provider: c.provider.clone(),
            bundle: c.bundle_id.clone(),
            latest_version: c.latest_version.clone(),
            versions,
        }
    }
}

impl From<&ConnectorSummary> for ConnectorView<String> {
    fn from(c: &ConnectorSummary) -> Self {
        Self::with(c, c.versions.clone())
    }
}

impl From<&ConnectorDetails> for ConnectorView<VersionSummary> {
    fn from(d: &ConnectorDetails) -> Self {
        Self::with(&d.summary, d.versions.iter().map(VersionSummary::from).collect())
    }
}

/// A deprecated API version an installation uses.
#[derive(Serialize)]
pub(crate) struct ApiVersionDeprecation {
    pub api_version: String,
    pub sunset: Option<patchbay_registry::Date>,
}

/// An installation.
#[derive(Serialize)]
pub(crate) struct InstallationView {
    pub id: String,
    pub name: String,
    pub connector: String,
    pub connector_owner: Option<String>,
    pub version: String,
    pub api_version: Option<String>,
    pub enabled: bool,
    pub status: String,
    pub config: Value,
    pub limits: Value,
    pub credentials_from: Option<String>,
    pub revision: i64,
    pub created_at: String,
    pub updated_at: String,
    pub deprecation: Option<Deprecation>,
    pub api_version_deprecation: Option<ApiVersionDeprecation>,
    pub webhook_url: Option<String>,
}

impl From<&InstallationDetails> for InstallationView {
    fn from(d: &InstallationDetails) -> Self {
        let row = &d.row;
        let config = match serde_json::from_str(&row.config_json) {
            Ok(Value::Object(m)) => Value::Object(m),
            _ => Value::Object(Map::new()),
        };
        Self {
            id: row.id.clone(),
            name: row.name.clone(),
            connector: row.connector_id.clone(),
            connector_owner: row.connector_owner.clone(),
            version: row.version.clone(),
            api_version: row.api_version.clone(),
            enabled: row.enabled,
            status: row.status.clone(),
            config,
            limits: parsed(&row.limits_json, || Value::Object(Map::new())),
            credentials_from: row.credentials_from.clone(),
            revision: row.revision,
            created_at: rfc3339(row.created_at_ms),
            updated_at: rfc3339(row.updated_at_ms),
            deprecation: d.version.as_ref().and_then(deprecation),
            api_version_deprecation: d
                .api_version_deprecation
                .as_ref()
                .map(|(id, sunset)| ApiVersionDeprecation { api_version: id.clone(), sunset: *sunset }),
            webhook_url: d.webhook_url.clone(),
        }
    }
}

/// An installation's credentials: secrets masked, plain text shown.
#[derive(Serialize)]
pub(crate) struct CredentialsView {
    pub installation: String,
    pub credentials: Map<String, Value>,
    pub missing: Vec<String>,
    pub credentials_from: Option<String>,
}

impl From<CredentialsStatus> for CredentialsView {
    fn from(c: CredentialsStatus) -> Self {
        Self {
            installation: c.installation,
            credentials: c.credentials,
            missing: c.missing,
            credentials_from: c.credentials_from,
        }
    }
}

/// One operation-log entry.
#[derive(Serialize)]
pub(crate) struct LogEntryView {
    pub id: i64,
    pub at: String,
    pub level: &'static str,
    pub source: String,
    pub message: String,
    pub fields: Map<String, Value>,
}

impl From<&LogRecord> for LogEntryView {
    fn from(r: &LogRecord) -> Self {
        Self {
            id: r.id,
            at: rfc3339(r.at_ms),
            level: r.level.as_str(),
            source: r.source.clone(),
            message: r.message.clone(),
            fields: r.fields.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect(),
        }
    }
}

/// A page of an operation log.
#[derive(Serialize)]
pub(crate) struct LogPage {
    pub entries: Vec<LogEntryView>,
    /// The next page; `None` when no entry follows yet.
    pub next_cursor: Option<String>,
    /// Where to resume for entries appended later (following the log): after the last entry
    /// returned, or where the request started when it returned none.
    pub tail_cursor: Option<String>,
}

/// Every host's counts of a bucket's current window.
#[derive(Serialize)]
pub(crate) struct ClusterUsage {
    pub used: i64,
    pub refused: i64,
    pub remaining: i64,
}

/// One token bucket of a provider budget.
#[derive(Serialize)]
pub(crate) struct BucketView {
    pub requests: u32,
    pub per_seconds: u32,
    pub burst: u32,
    pub available: u32,
    pub window_start: String,
    pub used: u64,
    pub refused: u64,
    pub all_hosts: Option<ClusterUsage>,
}

/// The provider budget an installation draws from.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum QuotaView {
    /// No rate limits apply.
    Unlimited { installation: String, provider: String, limited: bool, buckets: Vec<BucketView> },
    Limited {
        installation: String,
        provider: String,
        limited: bool,
        /// `installation` (its `limits.rate_limits`) or `manifest`.
        source: &'static str,
        buckets: Vec<BucketView>,
        paused_for_ms: Option<u64>,
        provider_429s: u64,
        next_call_in_ms: u64,
    },
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<QuotaStatus> for QuotaView {
    fn from(q: QuotaStatus) -> Self {
        let Some(b) = q.budget else {
            return QuotaView::Unlimited {
                installation: q.installation,
                provider: q.provider,
                limited: false,
                buckets: Vec::new(),
            };
        };
        QuotaView::Limited {
            installation: q.installation,
            provider: q.provider,
            limited: true,
            source: if b.from_installation { "installation" } else { "manifest" },
            buckets: b
                .buckets
                .into_iter()
                .map(|(s, all)| BucketView {
                    requests: s.requests,
                    per_seconds: s.per_seconds,
                    burst: s.burst,
                    available: s.available,
                    window_start: rfc3339(s.window_start_ms),
                    used: s.used,
                    refused: s.refused,
                    all_hosts: all.map(|c| ClusterUsage { used: c.used, refused: c.refused, remaining: c.remaining }),
                })
                .collect(),
            paused_for_ms: b.paused_for.map(millis),
            provider_429s: b.provider_429s,
            next_call_in_ms: millis(b.next_call_in),
        }
    }
}

/// An installation's OAuth grant (never a token).
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum GrantView {
    NotConnected { installation: String, grant_type: &'static str, connected: bool },
    Connected(Box<ConnectedGrant>),
}

/// A stored grant.
#[derive(Serialize)]
pub(crate) struct ConnectedGrant {
    pub installation: String,
    pub grant_type: String,
    pub connected: bool,
    pub status: String,
    pub version: i64,
    pub scope: Option<String>,
    pub token_type: Option<String>,
    pub has_refresh_token: bool,
    pub expires_at: Option<String>,
    pub refresh_at: Option<String>,
    pub obtained_at: String,
    pub refreshed_at: String,
    pub failures: i64,
    pub last_error: Option<String>,
}

impl From<GrantStatus> for GrantView {
    fn from(s: GrantStatus) -> Self {
        match s.grant {
            None => {
                GrantView::NotConnected { installation: s.installation, grant_type: s.grant_type, connected: false }
            }
            Some(g) => GrantView::Connected(Box::new(ConnectedGrant {
                installation: s.installation,
                grant_type: g.grant_type,
                connected: true,
                status: g.status,
                version: g.version,
                scope: g.scope,
                token_type: g.token_type,
                has_refresh_token: g.refresh_token.is_some(),
                expires_at: g.expires_at.map(rfc3339),
                refresh_at: g.refresh_at.map(rfc3339),
                obtained_at: rfc3339(g.obtained_at),
                refreshed_at: rfc3339(g.refreshed_at),
                failures: g.failures,
                last_error: g.last_error,
            })),
        }
    }
}

/// A started authorization.
#[derive(Serialize)]
pub(crate) struct AuthorizationView {
    pub installation: String,
    pub authorize_url: String,
    pub redirect_uri: String,
    pub pkce: bool,
    pub expires_at: String,
}

impl From<Authorization> for AuthorizationView {
    fn from(a: Authorization) -> Self {
        Self {
            installation: a.installation,
            authorize_url: a.authorize_url,
            redirect_uri: a.redirect_uri,
            pkce: a.pkce,
            expires_at: rfc3339(a.expires_at_ms),
        }
    }
}

/// A disconnected installation: `revoked` is `true`, `false` or `"failed: <why>"`.
#[derive(Serialize)]
pub(crate) struct DisconnectView {
    pub installation: String,
    pub connected: bool,
    pub revoked: Value,
}

impl DisconnectView {
    pub(crate) fn new(installation: String, r: Revocation) -> Self {
        let revoked = match r {
            Revocation::Done(done) => Value::Bool(done),
            Revocation::Failed(e) => Value::String(format!("failed: {e}")),
        };
        Self { installation, connected: false, revoked }
    }
}

/// An installation's last health check.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum HealthView {
    Unchecked {
        installation: String,
        health: Option<String>,
        checked_at: Option<String>,
    },
    Checked {
        installation: String,
        health: String,
        message: Option<String>,
        checked_at: String,
        duration_ms: i64,
        consecutive_failures: i64,
        next_check_at: Option<String>,
    },
}

impl HealthView {
    pub(crate) fn new(installation: &str, h: Option<&HealthRow>) -> Self {
        match h.filter(|h| h.checked_at > 0) {
            None => HealthView::Unchecked { installation: installation.to_string(), health: None, checked_at: None },
            Some(h) => HealthView::Checked {
                installation: installation.to_string(),
                health: h.status.clone(),
                message: h.message.clone(),
                checked_at: rfc3339(h.checked_at),
                duration_ms: h.duration_ms,
                consecutive_failures: h.consecutive_failures,
                next_check_at: (h.next_check_at < i64::MAX / 2).then(|| rfc3339(h.next_check_at)),
            },
        }
    }
}

/// One installation in a tenant's health summary.
#[derive(Serialize)]
pub(crate) struct HealthEntry {
    #[serde(flatten)]
    pub health: HealthView,
    pub name: String,
    pub connector: String,
    pub installation_status: String,
    pub enabled: bool,
}

/// `GET /v1/health`.
#[derive(Serialize)]
pub(crate) struct HealthSummaryView {
    pub status: &'static str,
    pub counts: Map<String, Value>,
    pub installations: Vec<HealthEntry>,
    pub next_cursor: Option<String>,
}

impl From<&HealthSummary> for HealthSummaryView {
    fn from(s: &HealthSummary) -> Self {
        Self {
            status: s.overall,
            counts: s.counts.iter().map(|(k, n)| ((*k).to_string(), Value::from(*n))).collect(),
            installations: s
                .installations
                .items
                .iter()
                .map(|(i, h)| HealthEntry {
                    health: HealthView::new(&i.id, h.as_ref()),
                    name: i.name.clone(),
                    connector: i.connector_id.clone(),
                    installation_status: i.status.clone(),
                    enabled: i.enabled,
                })
                .collect(),
            next_cursor: None,
        }
    }
}

/// An event.
#[derive(Serialize)]
pub(crate) struct EventView {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub subject: Option<String>,
    pub source_installation: String,
    pub payload: Value,
    pub idempotency_key: String,
    pub ingress_id: Option<String>,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<Vec<DeliveryView>>,
}

impl From<&EventRow> for EventView {
    fn from(e: &EventRow) -> Self {
        Self {
            id: e.id.clone(),
            event_type: e.event_type.clone(),
            subject: e.subject.clone(),
            source_installation: e.source_installation.clone(),
            payload: parsed(&e.payload, || Value::String(e.payload.clone())),
            idempotency_key: e.idempotency_key.clone(),
            ingress_id: e.ingress_id.clone(),
            created_at: rfc3339(e.created_at_ms),
            deliveries: None,
        }
    }
}

/// One attempt of a delivery.
#[derive(Serialize)]
pub(crate) struct AttemptView {
    pub attempt: i64,
    pub started_at: String,
    pub duration_ms: i64,
    pub outcome: &'static str,
    pub error: Option<String>,
}

/// A delivery with its attempts.
#[derive(Serialize)]
pub(crate) struct DeliveryView {
    pub id: String,
    pub route_id: Option<String>,
    pub destination_installation: String,
    pub operation: String,
    pub idempotency_key: String,
    pub status: &'static str,
    pub attempts: Vec<AttemptView>,
    pub next_attempt_at: Option<String>,
    pub last_error: Option<String>,
}

impl DeliveryView {
    pub(crate) fn new(d: &DeliveryRow, attempts: &[AttemptRow]) -> Self {
        Self {
            id: d.id.clone(),
            route_id: d.route_id.clone(),
            destination_installation: d.destination_installation.clone(),
            operation: d.operation.clone(),
            idempotency_key: d.idempotency_key.clone(),
            status: d.status.as_str(),
            attempts: attempts
                .iter()
                .map(|a| AttemptView {
                    attempt: a.attempt,
                    started_at: rfc3339(a.started_at_ms),
                    duration_ms: a.duration_ms,
                    outcome: a.outcome.as_str(),
                    error: a.error.clone(),
                })
                .collect(),
            next_attempt_at: (d.status == DeliveryStatus::Pending).then(|| rfc3339(d.next_attempt_at_ms)),
            last_error: d.last_error.clone(),
        }
    }
}

/// A routing rule.
#[derive(Serialize)]
pub(crate) struct RouteView {
    pub id: String,
    pub name: String,
    pub event_types: Vec<String>,
    pub source_installation: Option<String>,
    pub filter: Option<Value>,
    pub destination_installation: String,
    pub operation: String,
    pub payload_template: Option<Value>,
    pub retry_schedule: Option<Vec<u64>>,
    pub enabled: bool,
    pub revision: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&RouteRow> for RouteView {
    fn from(r: &RouteRow) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            event_types: r.event_types.clone(),
            source_installation: r.source_installation.clone(),
            filter: r.filter.clone(),
            destination_installation: r.destination_installation.clone(),
            operation: r.operation.clone(),
            payload_template: r.payload_template.clone(),
            retry_schedule: r.retry_schedule.clone(),
            enabled: r.enabled,
            revision: r.revision,
            created_at: rfc3339(r.created_at_ms),
            updated_at: rfc3339(r.updated_at_ms),
        }
    }
}

/// An entity a data-sync connector offers.
#[derive(Serialize)]
pub(crate) struct EntityView {
    pub name: String,
    pub label: Option<String>,
    pub primary_key: Vec<String>,
    pub cursor_field: Option<String>,
    pub supports_incremental: bool,
    pub supports_write: bool,
    pub json_schema: Option<Value>,
}

impl From<&Entity> for EntityView {
    fn from(e: &Entity) -> Self {
        Self {
            name: e.name.clone(),
            label: e.label.clone(),
            primary_key: e.primary_key.clone(),
            cursor_field: e.cursor_field.clone(),
            supports_incremental: e.supports_incremental,
            supports_write: e.supports_write,
            json_schema: e.json_schema.as_deref().and_then(|s| serde_json::from_str::<Value>(s).ok()),
        }
    }
}

/// Where an export's records come from.
#[derive(Serialize)]
pub(crate) struct SourceView {
    pub installation: String,
    pub entity: String,
}

fn source(s: &Option<(String, String)>) -> Option<SourceView> {
    s.as_ref().map(|(i, e)| SourceView { installation: i.clone(), entity: e.clone() })
}

/// A run's counters and how fast it goes.
#[derive(Serialize)]
pub(crate) struct ProgressView {
    pub fetched: i64,
    pub created: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub deleted: i64,
    pub failed: i64,
    pub batches: i64,
    pub total: Option<i64>,
    pub percent: Option<f64>,
    pub rate_per_sec: f64,
    pub eta_secs: Option<i64>,
    pub running_ms: i64,
}

/// A sync run with its progress at `now`.
#[derive(Serialize)]
pub(crate) struct RunView {
    pub id: String,
    pub installation: String,
    pub entity: String,
    pub direction: &'static str,
    pub mode: &'static str,
    pub source: Option<SourceView>,
    pub status: &'static str,
    pub trigger: String,
    pub schedule: Option<String>,
    pub progress: ProgressView,
    pub cursor: Option<String>,
    pub attempts: i64,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub updated_at: String,
}

impl RunView {
    pub(crate) fn new(r: &RunRow, now: i64) -> Self {
        let p = progress(r, now);
        Self {
            id: r.id.clone(),
            installation: r.installation.clone(),
            entity: r.entity.clone(),
            direction: r.direction.as_str(),
            mode: r.mode.as_str(),
            source: source(&r.source),
            status: r.status.as_str(),
            trigger: r.trigger.clone(),
            schedule: r.schedule_id.clone(),
            progress: ProgressView {
                fetched: r.counts.fetched,
                created: r.counts.created,
                updated: r.counts.updated,
                unchanged: r.counts.unchanged,
                deleted: r.counts.deleted,
                failed: r.counts.failed,
                batches: r.batches,
                total: r.total,
                percent: p.percent,
                rate_per_sec: p.rate_per_sec,
                eta_secs: p.eta_secs,
                running_ms: p.running_ms,
            },
            cursor: r.cursor.clone(),
            attempts: r.attempts,
            error: r.error.clone(),
            cancel_requested: r.cancel_requested,
            created_at: rfc3339(r.created_at),
            started_at: r.started_at.map(rfc3339),
            finished_at: r.finished_at.map(rfc3339),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

/// An item error of a run.
#[derive(Serialize)]
pub(crate) struct ItemErrorView {
    pub n: i64,
    pub external_id: Option<String>,
    pub message: String,
    pub at: String,
}

impl From<&ErrorRow> for ItemErrorView {
    fn from(e: &ErrorRow) -> Self {
        Self { n: e.n, external_id: e.external_id.clone(), message: e.message.clone(), at: rfc3339(e.created_at) }
    }
}

/// A stored record, at its last change.
#[derive(Serialize)]
pub(crate) struct RecordView {
    pub seq: i64,
    pub id: String,
    pub external_id: String,
    pub op: String,
    pub deleted: bool,
    pub data: Value,
    pub first_seen_at: String,
    pub last_seen_at: String,
    pub changed_at: String,
    pub deleted_at: Option<String>,
}

impl From<&RecordRow> for RecordView {
    fn from(r: &RecordRow) -> Self {
        Self {
            seq: r.seq,
            id: r.local_id.clone(),
            external_id: r.external_id.clone(),
            op: r.op.clone(),
            deleted: r.op == "deleted",
            data: parsed(&r.payload, || Value::Null),
            first_seen_at: rfc3339(r.first_seen_at),
            last_seen_at: rfc3339(r.last_seen_at),
            changed_at: rfc3339(r.changed_at),
            deleted_at: r.deleted_at.map(rfc3339),
        }
    }
}

/// A field mapping of an entity.
#[derive(Serialize)]
pub(crate) struct MappingView {
    pub installation: String,
    pub entity: String,
    pub mapping: Value,
    pub revision: i64,
    pub updated_at: String,
}

impl MappingView {
    pub(crate) fn new(installation: &str, m: &MappingRow) -> Self {
        Self {
            installation: installation.to_string(),
            entity: m.entity.clone(),
            mapping: parsed(&m.mapping, || Value::Null),
            revision: m.revision,
            updated_at: rfc3339(m.updated_at),
        }
    }
}

/// A sync schedule.
#[derive(Serialize)]
pub(crate) struct ScheduleView {
    pub id: String,
    pub installation: String,
    pub entity: String,
    pub direction: &'static str,
    pub mode: &'static str,
    pub source: Option<SourceView>,
    pub interval_secs: Option<i64>,
    pub cron: Option<String>,
    pub enabled: bool,
    pub next_run_at: String,
    pub last_run: Option<String>,
    pub last_fired_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&ScheduleRow> for ScheduleView {
    fn from(s: &ScheduleRow) -> Self {
        Self {
            id: s.id.clone(),
            installation: s.installation.clone(),
            entity: s.entity.clone(),
            direction: s.direction.as_str(),
            mode: s.mode.as_str(),
            source: source(&s.source),
            interval_secs: s.interval_secs,
            cron: s.cron.clone(),
            enabled: s.enabled,
            next_run_at: rfc3339(s.next_run_at),
            last_run: s.last_run_id.clone(),
            last_fired_at: s.last_fired_at.map(rfc3339),
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
        }
    }
}

/// An age and a count of a retention class (`null`: no limit of that kind, or not set).
#[derive(Serialize)]
pub(crate) struct RetentionLimits {
    pub max_age: Option<String>,
    pub max_count: Option<u64>,
}

impl From<patchbay_services::retention::ClassPolicy> for RetentionLimits {
    fn from(p: patchbay_services::retention::ClassPolicy) -> Self {
        RetentionLimits {
            max_age: p.max_age_secs.map(patchbay_services::retention::format_age),
            max_count: p.max_count,
        }
    }
}

/// A tenant's retention policy, by class: what the tenant set (`policy`, the `PUT` body's shape),
/// what applies (`effective`), the operator's `defaults` and the `limits` a tenant may set up to.
#[derive(Serialize)]
pub(crate) struct RetentionView {
    pub tenant: String,
    pub policy: std::collections::BTreeMap<&'static str, RetentionLimits>,
    pub effective: std::collections::BTreeMap<&'static str, RetentionLimits>,
    pub defaults: std::collections::BTreeMap<&'static str, RetentionLimits>,
    pub limits: std::collections::BTreeMap<&'static str, RetentionLimits>,
}

impl From<&patchbay_services::retention::PolicyView> for RetentionView {
    fn from(p: &patchbay_services::retention::PolicyView) -> Self {
        let by_class = |f: &dyn Fn(&patchbay_services::retention::ClassView) -> RetentionLimits| {
            p.classes.iter().map(|c| (c.class.as_str(), f(c))).collect()
        };
        RetentionView {
            tenant: p.tenant.clone(),
            policy: by_class(&|c| c.set.into()),
            effective: by_class(&|c| c.effective.into()),
            defaults: by_class(&|c| c.default.into()),
            limits: by_class(&|c| c.limit.into()),
        }
    }
}
