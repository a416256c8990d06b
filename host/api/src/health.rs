//! Health endpoints: `/v1/installations/{id}/health` (the last check; POST runs one now) and
//! `/v1/health` (a tenant's installations by health).

use std::sync::Arc;

use axum::extract::State;
use patchbay_services::health::Health;

use crate::ApiResult;
use crate::auth::{Manage, TenantKey, View};
use crate::extract::{Json, Path};
use crate::views::{HealthSummaryView, HealthView};

/// `GET /v1/installations/{id}/health`: the last check.
pub(crate) async fn last(
    State(health): State<Arc<Health>>,
    key: TenantKey<View>,
    Path(id): Path<String>,
) -> ApiResult<Json<HealthView>> {
    let h = health.last(&key.tenant, &id).await?;
    Ok(Json(HealthView::new(&id, h.as_ref())))
}

/// `POST /v1/installations/{id}/health`: checks now.
pub(crate) async fn check(
    State(health): State<Arc<Health>>,
    key: TenantKey<Manage>,
    Path(id): Path<String>,
) -> ApiResult<Json<HealthView>> {
    let h = health.check(&key.tenant, &id).await?;
    Ok(Json(HealthView::new(&id, Some(&h))))
}

/// `GET /v1/health`: the tenant's installations by health.
pub(crate) async fn summary(
    State(health): State<Arc<Health>>,
    key: TenantKey<View>,
) -> ApiResult<Json<HealthSummaryView>> {
    Ok(Json(HealthSummaryView::from(&health.summary(&key.tenant).await?)))
}
