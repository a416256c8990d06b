//! `/v1/connectors`: uploading components (public catalog for the operator, private for a tenant),
//! browsing the catalog, version details with their operations, and deprecation.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{KeyScope, Principal};
use super::{ApiError, ApiResult, optional_json};
use patchbay_services::app::App;
use patchbay_services::app::catalog::{connector_view, version_summary};
use patchbay_store::{ConnectorFilter, PublishOutcome, Viewer};

fn viewer(p: &Principal) -> ApiResult<Viewer> {
    match p {
        Principal::Operator => Ok(Viewer::Operator),
        Principal::Tenant { .. } => Ok(Viewer::Tenant(p.tenant(KeyScope::View)?.to_string())),
    }
}

pub async fn upload(
    State(app): State<App>,
    p: Principal,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let owner = match &p {
        Principal::Operator => None,
        Principal::Tenant { .. } => Some(p.tenant(KeyScope::Manage)?.to_string()),
    };
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.split(';').next().map(str::trim) != Some("application/wasm") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "upload the component as the request body with `Content-Type: application/wasm`",
        ));
    }
    let bytes = read_upload(&headers, body, app.package_limits.max_bytes).await?;
    if bytes.is_empty() {
        return Err(ApiError::invalid("malformed_wasm", "the request body is empty; send the .wasm component"));
    }
    let published = app.publish(owner.as_deref(), bytes.to_vec()).await?;
    let status = match published.outcome {
        PublishOutcome::Created => StatusCode::CREATED,
        PublishOutcome::Unchanged => StatusCode::OK,
    };
    Ok((status, Json(app.version_view(&published.version).await?)))
}

/// Reads an upload of at most `max` bytes (see [`super::body::read_capped`]).
async fn read_upload(headers: &HeaderMap, body: Body, max: usize) -> ApiResult<Vec<u8>> {
    super::body::read_capped(headers, body, max, || {
        format!("the component is larger than this host's cap of {} MiB", max / (1024 * 1024))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    category: Option<String>,
    search: Option<String>,
}

pub async fn list(
    State(app): State<App>,
    p: Principal,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let viewer = viewer(&p)?;
    let Query(q) = query?;
    if let Some(c) = &q.category {
        c.parse::<patchbay_registry::Category>().map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let list = app.store.list_connectors(viewer, &ConnectorFilter { category: q.category, search: q.search }).await?;
    Ok(Json(json!({ "connectors": list.iter().map(connector_view).collect::<Vec<_>>() })))
}

pub async fn get(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let viewer = viewer(&p)?;
    let Path(id) = path?;
    let c = app
        .store
        .connector(viewer.clone(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no connector {id:?}")))?;
    let versions = app.store.versions(viewer, &id).await?;
    let mut view = connector_view(&c);
    if let Some(o) = view.as_object_mut() {
        o.insert("versions".into(), Value::Array(versions.iter().map(version_summary).collect()));
    }
    Ok(Json(view))
}

pub async fn version(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let viewer = viewer(&p)?;
    let Path((id, version)) = path?;
    let v = app
        .store
        .version(viewer, &id, &version)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no version {version:?} of connector {id:?}")))?;
    Ok(Json(app.version_view(&v).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Deprecate {
    /// `YYYY-MM-DD` after which the version may be removed.
    sunset: Option<String>,
    message: Option<String>,
}

pub async fn deprecate(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let owner = match &p {
        Principal::Operator => None,
        Principal::Tenant { .. } => Some(p.tenant(KeyScope::Manage)?.to_string()),
    };
    let Path((id, version)) = path?;
    let req: Deprecate = optional_json(&body)?;
    if let Some(s) = &req.sunset
        && !patchbay_core::timefmt::valid_date(s)
    {
        return Err(ApiError::invalid("invalid_sunset", format!("sunset {s:?} is not a date like 2027-06-30")));
    }
    let v = app.store.deprecate_version(owner.as_deref(), &id, &version, req.sunset, req.message).await?;
    Ok(Json(version_summary(&v)))
}
