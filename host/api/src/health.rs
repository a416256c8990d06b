//! Health endpoints: `/v1/installations/{id}/health` (the last check; POST runs one now) and
//! `/v1/health` (a tenant's installations by health).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde_json::Value;

use super::ApiResult;
use super::auth::{KeyScope, Principal};
use patchbay_services::app::App;

/// `GET /v1/installations/{id}/health`: the last check.
pub async fn last(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Path(id) = path?;
    Ok(Json(app.health_of(tenant, &id).await?))
}

/// `POST /v1/installations/{id}/health`: checks now.
pub async fn check(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Path(id) = path?;
    Ok(Json(app.check_health(tenant, &id).await?))
}

/// `GET /v1/health`: the tenant's installations by health.
pub async fn summary(State(app): State<App>, p: Principal) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    Ok(Json(app.health_summary(tenant).await?))
}
