//! `/v1/routes`: the tenant's routing rules (see `patchbay_services::routing` for what they mean).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use patchbay_services::routes::{CreateRoute, Routes, UpdateRoute};
use serde::Serialize;

use crate::ApiResult;
use crate::auth::{Manage, TenantKey, View};
use crate::cursor::{self, List};
use crate::extract::{Json, Path, Query};
use crate::tenants::PageQuery;
use crate::views::RouteView;

#[derive(Serialize)]
pub(crate) struct RouteList {
    routes: Vec<RouteView>,
    next_cursor: Option<String>,
}

pub(crate) async fn create(
    State(routes): State<Arc<Routes>>,
    key: TenantKey<Manage>,
    Json(req): Json<CreateRoute>,
) -> ApiResult<(StatusCode, Json<RouteView>)> {
    let r = routes.create(&key.tenant, req).await?;
    Ok((StatusCode::CREATED, Json(RouteView::from(&r))))
}

/// `GET /v1/routes`: a page of the tenant's routes, oldest first (creation time, then id).
pub(crate) async fn list(
    State(routes): State<Arc<Routes>>,
    key: TenantKey<View>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<RouteList>> {
    let page = cursor::request(List::Routes, q.cursor.as_deref(), q.limit)?;
    let rows = routes.list(&key.tenant, &page).await?;
    let next_cursor = cursor::next(List::Routes, &rows, |r| (r.created_at_ms, r.id.clone()));
    Ok(Json(RouteList { routes: rows.items.iter().map(RouteView::from).collect(), next_cursor }))
}

pub(crate) async fn get(
    State(routes): State<Arc<Routes>>,
    key: TenantKey<View>,
    Path(id): Path<String>,
) -> ApiResult<Json<RouteView>> {
    Ok(Json(RouteView::from(&routes.get(&key.tenant, &id).await?)))
}

pub(crate) async fn update(
    State(routes): State<Arc<Routes>>,
    key: TenantKey<Manage>,
    Path(id): Path<String>,
    Json(req): Json<UpdateRoute>,
) -> ApiResult<Json<RouteView>> {
    Ok(Json(RouteView::from(&routes.update(&key.tenant, &id, req).await?)))
}

pub(crate) async fn delete(
    State(routes): State<Arc<Routes>>,
    key: TenantKey<Manage>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    routes.delete(&key.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
