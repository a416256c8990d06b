//! `/v1/tenants`: the operator creates tenants and hands out their API keys.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use patchbay_services::access::Access;
use serde::{Deserialize, Serialize};

use crate::ApiResult;
use crate::auth::Operator;
use crate::extract::{Json, OptionalJson, Path};
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
}

pub(crate) async fn create(
    State(access): State<Arc<Access>>,
    _: Operator,
    Json(req): Json<CreateTenant>,
) -> ApiResult<(StatusCode, Json<TenantView>)> {
    let t = access.create_tenant(&req.id, req.name).await?;
    Ok((StatusCode::CREATED, Json(TenantView::from(&t))))
}

pub(crate) async fn list(State(access): State<Arc<Access>>, _: Operator) -> ApiResult<Json<TenantList>> {
    let tenants = access.tenants().await?;
    Ok(Json(TenantList { tenants: tenants.iter().map(TenantView::from).collect() }))
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

pub(crate) async fn list_keys(
    State(access): State<Arc<Access>>,
    _: Operator,
    Path(tenant): Path<String>,
) -> ApiResult<Json<KeyList>> {
    let keys = access.keys(&tenant).await?;
    Ok(Json(KeyList { keys: keys.iter().map(KeyView::from).collect() }))
}

pub(crate) async fn revoke_key(
    State(access): State<Arc<Access>>,
    _: Operator,
    Path((tenant, key)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    access.revoke_key(&tenant, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}
