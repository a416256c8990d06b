//! `/v1/installations`: a tenant's installed connectors, their credentials, calls and logs.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::{KeyScope, Principal};
use super::{ApiError, ApiResult, page_limit, time_param};
use patchbay_core::log::Level;
use patchbay_core::timefmt::rfc3339;
use patchbay_runtime::dynamic::DynamicOutcome;
use patchbay_services::app::App;
use patchbay_services::app::installations::{CreateInstallation, UpdateInstallation, call_error, connector_error};
use patchbay_services::quota::QuotaMode;
use patchbay_store::LogQuery;

pub async fn create(
    State(app): State<App>,
    p: Principal,
    body: Result<Json<CreateInstallation>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Json(req) = body?;
    Ok((StatusCode::CREATED, Json(app.create_installation(tenant, req).await?)))
}

pub async fn list(State(app): State<App>, p: Principal) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let rows = app.store.list_installations(tenant).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(app.installation_view(r, None, None).await);
    }
    Ok(Json(json!({ "installations": out })))
}

pub async fn get(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Path(id) = path?;
    let row = app.get_installation(tenant, &id).await?;
    Ok(Json(app.installation_view(&row, None, None).await))
}

pub async fn update(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<UpdateInstallation>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Path(id) = path?;
    let Json(req) = body?;
    Ok(Json(app.update_installation(tenant, &id, req).await?))
}

pub async fn delete(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Path(id) = path?;
    if app.store.delete_installation(tenant, &id).await? {
        app.forget(tenant, &id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no installation {id:?}")))
    }
}

pub async fn put_credentials(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<Map<String, Value>>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::Credentials)?;
    let Path(id) = path?;
    let Json(fields) = body?;
    Ok(Json(app.put_credentials(tenant, &id, &fields).await?))
}

pub async fn get_credentials(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::Credentials)?;
    let Path(id) = path?;
    Ok(Json(app.credentials_view(tenant, &id).await?))
}

pub async fn delete_credentials(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let tenant = p.tenant(KeyScope::Credentials)?;
    let Path(id) = path?;
    app.delete_credentials(tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How long an invoke waits for the provider budget unless the caller prefers otherwise.
pub const DEFAULT_QUOTA_WAIT: Duration = Duration::from_secs(30);

/// The caller's choice over budget, from `Prefer: wait=N` (RFC 7240): wait up to N seconds
/// (at most 300); `wait=0` fails fast. Without it: wait up to [`DEFAULT_QUOTA_WAIT`].
pub fn quota_mode(headers: &HeaderMap) -> Result<QuotaMode, ApiError> {
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
pub async fn quota(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Path(id) = path?;
    Ok(Json(app.quota_view(tenant, &id).await?))
}

pub async fn invoke(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let quota = quota_mode(&headers)?;
    let Path((id, operation)) = path?;
    let input: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the request body is not JSON: {e}")))?
    };
    let (resolved, report) = app.invoke(tenant, &id, &operation, input, quota).await?;
    let mut resp = match report.outcome {
        Ok(DynamicOutcome::Ok(v)) => (StatusCode::OK, Json(v)).into_response(),
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
pub struct LogsQuery {
    /// Minimum level: trace, debug, info, warn, error.
    level: Option<String>,
    /// RFC 3339 time, unix milliseconds, or a relative age like `15m`.
    since: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1..=1000, default 100.
    limit: Option<u32>,
}

pub async fn logs(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Path(id) = path?;
    let Query(q) = query?;
    app.get_installation(tenant, &id).await?;
    let min_level = match q.level.as_deref() {
        None => None,
        Some(l) => Some(Level::parse_any_case(l).ok_or_else(|| {
            ApiError::bad_request(format!("unknown level {l:?}; levels: trace, debug, info, warn, error"))
        })?),
    };
    let since_ms = time_param("since", q.since.as_deref())?;
    let after_id = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid cursor {c:?}")))?),
    };
    let limit = page_limit(q.limit)?;
    app.flush().await;
    let records = app.store.logs(tenant, &id, &LogQuery { min_level, since_ms, after_id, limit }).await?;
    let next = records.last().map(|r| r.id).or(after_id);
    let entries: Vec<Value> = records
        .iter()
        .map(|r| {
            let fields: Map<String, Value> =
                r.fields.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
            json!({
                "id": r.id,
                "at": rfc3339(r.at_ms),
                "level": r.level.as_str(),
                "source": r.source,
                "message": r.message,
                "fields": fields,
            })
        })
        .collect();
    Ok(Json(json!({ "entries": entries, "next_cursor": next.map(|n| n.to_string()) })))
}
