//! `/v1/tenants`: the operator creates tenants and hands out their API keys.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use patchbay_services::access::Access;
use serde::{Deserialize, Serialize};

use crate::ApiResult;
use crate::auth::Operator;
use crate::cursor::{self, List};
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::views::{KeyView, TenantView};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTenant {
    id: String,
    /// Default (left out or `null`): the id.
    name: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct TenantList {
    tenants: Vec<TenantView>,
    next_cursor: Option<String>,
}

/// `?cursor=&limit=` of a list without filters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1..=1000, default 100.
    pub limit: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    /// Left out or `null`: no name.
    name: Option<String>,
    /// Default (left out): all of `view`, `manage`, `credentials`; `null` is refused.
    #[serde(default, deserialize_with = "crate::extract::present")]
    scopes: Option<Vec<String>>,
}

#[derive(Serialize)]
pub(crate) struct KeyList {
    keys: Vec<KeyView>,
    next_cursor: Option<String>,
}

pub(crate) async fn create(
    State(access): State<Arc<Access>>,
    _: Operator,
    Json(req): Json<CreateTenant>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    let t = access.create_tenant(&req.id, req.name).await?;
    Ok((StatusCode::CREATED, Json(TenantView::from(&t))))
}

/// `GET /v1/tenants`: a page of the tenants, by id.
pub(crate) async fn list(
    State(access): State<Arc<Access>>,
    _: Operator,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<TenantList>> {
    let page = cursor::request(List::Tenants, q.cursor.as_deref(), q.limit)?;
    let tenants = access.tenants(&page).await?;
    let next_cursor = cursor::next(List::Tenants, &tenants, |t| t.id.clone());
    Ok(Json(TenantList { tenants: tenants.items.iter().map(TenantView::from).collect(), next_cursor }))
}

pub(crate) async fn create_key(
    State(access): State<Arc<Access>>,
    _: Operator,
    Path(tenant): Path<String>,
    OptionalJson(req): OptionalJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<KeyView>)> {
    let (key, token) = access.create_key(&tenant, req.name, req.scopes).await?;
    Ok((StatusCode::CREATED, Json(KeyView { token: Some(token), ..KeyView::from(&key) })))
}

/// `GET /v1/tenants/{tenant}/keys`: a page of a tenant's keys, oldest first (creation time, then
/// id).
pub(crate) async fn list_keys(
    State(access): State<Arc<Access>>,
    _: Operator,
    Path(tenant): Path<String>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<KeyList>> {
    let page = cursor::request(List::Keys, q.cursor.as_deref(), q.limit)?;
    let keys = access.keys(&tenant, &page).await?;
    let next_cursor = cursor::next(List::Keys, &keys, |k| (k.created_at_ms, k.id.clone()));
    Ok(Json(KeyList { keys: keys.items.iter().map(KeyView::from).collect(), next_cursor }))
}

pub(crate) async fn revoke_key(
    State(access): State<Arc<Access>>,
    _: Operator,
    Path((tenant, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    access.revoke_key(&tenant, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
