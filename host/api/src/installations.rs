//! `/v1/installations`: a tenant's installed connectors, their credentials, calls, logs and
//! provider budget.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use patchbay_core::log::Level;
use patchbay_runtime::dynamic::DynamicOutcome;
use patchbay_services::installations::{
    CreateInstallation, Installations, UniqueKeys, UpdateInstallation, call_error, connector_error,
};
use patchbay_services::logs::Logs;
use patchbay_services::quota::QuotaMode;
use patchbay_store::{InstallationFilter, LogQuery, PageRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{Credentials, Manage, TenantKey, View};
use crate::cursor::{self, List};
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::views::{CredentialsView, InstallationView, LogEntryView, LogPage, QuotaView};
use crate::{ApiError, ApiResult, short_param, time_param};

#[derive(Serialize)]
pub(crate) struct InstallationList {
    installations: Vec<InstallationView>,
    next_cursor: Option<String>,
}

/// Installation statuses (`patchbay_store::INITIAL_STATUS` and what health checks set).
const STATUSES: [&str; 2] = ["active", "error"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InstallationsQuery {
    /// Installations of this connector (its id).
    connector: Option<String>,
    /// `active` or `error`.
    status: Option<String>,
    /// Installations whose name starts with this (case-sensitive).
    name: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1..=1000, default 100.
    limit: Option<u32>,
}

pub(crate) async fn create(
    State(installations): State<Arc<Installations>>,
    key: TenantKey<Manage>,
    Json(req): Json<CreateInstallation>,
) -> ApiResult<(StatusCode, Json<InstallationView>)> {
    let d = installations.create_as(&key.tenant, req, key.credentials).await?;
    Ok((StatusCode::CREATED, Json(InstallationView::from(&d))))
}

/// `GET /v1/installations`: a page of the tenant's installations, oldest first (creation time,
/// then id).
pub(crate) async fn list(
    State(installations): State<Arc<Installations>>,
    key: TenantKey<View>,
    Query(q): Query<InstallationsQuery>,
) -> ApiResult<Json<InstallationList>> {
    if let Some(s) = q.status.as_deref().filter(|s| !STATUSES.contains(s)) {
        return Err(ApiError::bad_request(format!("unknown status {s:?}; statuses: {}", STATUSES.join(", "))));
    }
    let filter = InstallationFilter {
        connector: short_param("connector", q.connector, 128)?,
        status: q.status,
        name_prefix: short_param("name", q.name, 100)?.filter(|n| !n.is_empty()),
    };
    let page = cursor::request(List::Installations, q.cursor.as_deref(), q.limit)?;
    let list = installations.list(&key.tenant, &filter, &page).await?;
    let next_cursor = cursor::next(List::Installations, &list, |d| (d.row.created_at_ms, d.row.id.clone()));
    Ok(Json(InstallationList { installations: list.items.iter().map(InstallationView::from).collect(), next_cursor }))
}

pub(crate) async fn get(
    State(installations): State<Arc<Installations>>,
    key: TenantKey<View>,
    Path(id): Path<String>,
) -> ApiResult<Json<InstallationView>> {
    Ok(Json(InstallationView::from(&installations.details(&key.tenant, &id).await?)))
}

pub(crate) async fn update(
    State(installations): State<Arc<Installations>>,
    key: TenantKey<Manage>,
    Path(id): Path<String>,
    Json(req): Json<UpdateInstallation>,
) -> ApiResult<Json<InstallationView>> {
    Ok(Json(InstallationView::from(&installations.update_as(&key.tenant, &id, req, key.credentials).await?)))
}

pub(crate) async fn delete(
    State(installations): State<Arc<Installations>>,
    key: TenantKey<Manage>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    installations.delete(&key.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn put_credentials(
    State(installations): State<Arc<Installations>>,
    key: TenantKey<Credentials>,
    Path(id): Path<String>,
    Json(UniqueKeys(fields)): Json<UniqueKeys>,
) -> ApiResult<Json<CredentialsView>> {
    Ok(Json(installations.put_credentials(&key.tenant, &id, &fields).await?.into()))
}

pub(crate) async fn get_credentials(
    State(installations): State<Arc<Installations>>,
    key: TenantKey<Credentials>,
    Path(id): Path<String>,
) -> ApiResult<Json<CredentialsView>> {
    Ok(Json(installations.credentials(&key.tenant, &id).await?.into()))
}

pub(crate) async fn delete_credentials(
    State(installations): State<Arc<Installations>>,
    key: TenantKey<Credentials>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    installations.delete_credentials(&key.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How long an invoke waits for the provider budget unless the caller prefers otherwise.
pub(crate) const DEFAULT_QUOTA_WAIT: Duration = Duration::from_secs(30);

/// The caller's choice over budget, from `Prefer: wait=N` (RFC 7240): wait up to N seconds
/// (at most 300); `wait=0` fails fast. Without it: wait up to [`DEFAULT_QUOTA_WAIT`].
pub(crate) fn quota_mode(headers: &HeaderMap) -> Result<QuotaMode, ApiError> {
    for value in headers.get_all("prefer") {
        let text = value.to_str().map_err(|_| ApiError::bad_request("the Prefer header is not text"))?;
        for pref in text.split(',') {
            let Some(secs) = pref.split(';').next().and_then(|p| p.trim().strip_prefix("wait=")) else { continue };
            let secs: u64 = secs.trim().trim_matches('"').parse().map_err(|_| {
                ApiError::bad_request(format!("Prefer: wait={secs:?} is not a whole number of seconds"))
            })?;
            return Ok(if secs == 0 {
                QuotaMode::FailFast
            } else {
                QuotaMode::Wait(Duration::from_secs(secs.min(300)))
            });
        }
    }
    Ok(QuotaMode::Wait(DEFAULT_QUOTA_WAIT))
}

/// `GET /v1/installations/{id}/quota`: the provider budget the installation draws from.
pub(crate) async fn quota(
    State(installations): State<Arc<Installations>>,
    key: TenantKey<View>,
    Path(id): Path<String>,
) -> ApiResult<Json<QuotaView>> {
    Ok(Json(installations.quota(&key.tenant, &id).await?.into()))
}

pub(crate) async fn invoke(
    State(installations): State<Arc<Installations>>,
    key: TenantKey<Manage>,
    headers: HeaderMap,
    Path((id, operation)): Path<(String, String)>,
    OptionalJson(input): OptionalJson<Value>,
) -> ApiResult<Response> {
    let quota = quota_mode(&headers)?;
    let (resolved, report) = installations.invoke(&key.tenant, &id, &operation, input, quota).await?;
    let mut resp = match report.outcome {
        Ok(DynamicOutcome::Ok(v)) => (StatusCode::OK, axum::Json(v)).into_response(),
        Ok(DynamicOutcome::ConnectorError { kind, error }) => {
            ApiError::from(connector_error(&kind, &error)).into_response()
        }
        Err(e) => ApiError::from(call_error(&e)).into_response(),
    };
    let h = resp.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(HeaderName::from_static(name), v);
        }
    };
    let v = &resolved.prepared.version;
    set("x-patchbay-connector", format!("{}@{}", v.connector_id, v.version));
    set("x-patchbay-duration-ms", format!("{:.3}", report.duration.as_secs_f64() * 1000.0));
    if let Some(f) = report.fuel_consumed {
        set("x-patchbay-fuel", f.to_string());
    }
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogsQuery {
    /// Minimum level: trace, debug, info, warn, error.
    level: Option<String>,
    /// RFC 3339 time, unix milliseconds, or a relative age like `15m`.
    since: Option<String>,
    /// `next_cursor` (or `tail_cursor`) of the previous page; an entry id still works (the
    /// cursors of earlier versions).
    cursor: Option<String>,
    /// 1..=1000, default 100.
    limit: Option<u32>,
}

/// `GET /v1/installations/{id}/logs`: a page of the operation log, oldest first (entry id).
pub(crate) async fn logs(
    State(logs): State<Arc<Logs>>,
    key: TenantKey<View>,
    Path(id): Path<String>,
    Query(q): Query<LogsQuery>,
) -> ApiResult<Json<LogPage>> {
    let min_level = match q.level.as_deref() {
        None => None,
        Some(l) => Some(Level::parse_any_case(l).ok_or_else(|| {
            ApiError::bad_request(format!("unknown level {l:?}; levels: trace, debug, info, warn, error"))
        })?),
    };
    let since_ms = time_param("since", q.since.as_deref())?;
    // Before opaque cursors, a log's cursor was the last entry's id in decimal.
    let legacy = q.cursor.as_deref().and_then(|c| c.parse::<i64>().ok());
    let page = match legacy {
        Some(id) => PageRequest::after(Some(id), crate::page_limit(q.limit)?),
        None => cursor::request(List::Logs, q.cursor.as_deref(), q.limit)?,
    };
    let started = page.after;
    let records = logs.list(&key.tenant, &id, &LogQuery { min_level, since_ms, page }).await?;
    let next_cursor = cursor::next(List::Logs, &records, |r| r.id);
    let tail = records.items.last().map(|r| r.id).or(started);
    Ok(Json(LogPage {
        entries: records.items.iter().map(LogEntryView::from).collect(),
        next_cursor,
        tail_cursor: tail.map(|n| cursor::encode(List::Logs, &n)),
    }))
}
