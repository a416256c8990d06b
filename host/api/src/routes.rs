//! `/v1/routes`: the tenant's routing rules (see [`patchbay_services::routing`] for what they mean).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::auth::{KeyScope, Principal};
use super::{ApiError, ApiResult};
use patchbay_services::app::App;
use patchbay_services::app::routes::{CreateRoute, UpdateRoute, route_view};

pub async fn create(
    State(app): State<App>,
    p: Principal,
    body: Result<Json<CreateRoute>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Json(req) = body?;
    Ok((StatusCode::CREATED, Json(app.create_route(tenant, req).await?)))
}

pub async fn list(State(app): State<App>, p: Principal) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let rows = app.store.routes(tenant, false).await?;
    Ok(Json(json!({ "routes": rows.iter().map(route_view).collect::<Vec<_>>() })))
}

pub async fn get(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Path(id) = path?;
    let row = app.store.route(tenant, &id).await?.ok_or_else(|| ApiError::not_found(format!("no route {id:?}")))?;
    Ok(Json(route_view(&row)))
}

pub async fn update(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<UpdateRoute>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Path(id) = path?;
    let Json(req) = body?;
    Ok(Json(app.update_route(tenant, &id, req).await?))
}

pub async fn delete(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Path(id) = path?;
    app.delete_route(tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
