//! Retention policies: `/v1/retention` for a tenant's own (read with `view`, set with `manage`)
//! and `/v1/tenants/{tenant}/retention` for the operator. A `PUT` body replaces the tenant's
//! overrides: `{"events": {"max_age": "7d", "max_count": 100000}, "logs": null, …}`; what it
//! leaves out (or sets to `null`) follows the operator's defaults. See docs/retention.md.

use std::sync::Arc;

use patchbay_services::retention::Retention;
use serde_json::{Map, Value};

use crate::ApiResult;
use crate::auth::{Manage, Operator, TenantKey, View};
use crate::extract::{Json, Path};
use crate::views::RetentionView;
use axum::extract::State;

/// `GET /v1/retention`: the caller's tenant's policy.
pub(crate) async fn get_own(
    State(retention): State<Arc<Retention>>,
    key: TenantKey<View>,
) -> ApiResult<Json<RetentionView>> {
    Ok(Json(RetentionView::from(&retention.policy(&key.tenant).await?)))
}

/// `PUT /v1/retention`: replaces the caller's tenant's overrides.
pub(crate) async fn put_own(
    State(retention): State<Arc<Retention>>,
    key: TenantKey<Manage>,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<Json<RetentionView>> {
    Ok(Json(RetentionView::from(&retention.set_policy(&key.tenant, &Value::Object(body)).await?)))
}

/// `GET /v1/tenants/{tenant}/retention`: a tenant's policy, for the operator.
pub(crate) async fn get_tenant(
    State(retention): State<Arc<Retention>>,
    _: Operator,
    Path(tenant): Path<String>,
) -> ApiResult<Json<RetentionView>> {
    Ok(Json(RetentionView::from(&retention.tenant_policy(&tenant).await?)))
}

/// `PUT /v1/tenants/{tenant}/retention`: replaces a tenant's overrides, for the operator (within
/// the same limits).
pub(crate) async fn put_tenant(
    State(retention): State<Arc<Retention>>,
    _: Operator,
    Path(tenant): Path<String>,
    Json(body): Json<Map<String, Value>>,
) -> ApiResult<Json<RetentionView>> {
    Ok(Json(RetentionView::from(&retention.set_tenant_policy(&tenant, &Value::Object(body)).await?)))
}
