//! Health endpoints: `/v1/installations/{id}/health` (the last check; POST runs one now) and
//! `/v1/health` (a tenant's installations by health).

use std::sync::Arc;

use axum::extract::State;
use patchbay_services::health::Health;

use crate::ApiResult;
use crate::auth::{Manage, TenantKey, View};
use crate::cursor::{self, List};
use crate::extract::{Json, Path, Query};
use crate::tenants::PageQuery;
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

/// `GET /v1/health`: counts of all the tenant's installations by health, and a page of the
/// installations (oldest first: creation time, then id) with their last check.
pub(crate) async fn summary(
    State(health): State<Arc<Health>>,
    key: TenantKey<View>,
    Query(q): Query<PageQuery>,
) -> ApiResult<Json<HealthSummaryView>> {
    let page = cursor::request(List::Health, q.cursor.as_deref(), q.limit)?;
    let summary = health.summary(&key.tenant, &page).await?;
    let next_cursor = cursor::next(List::Health, &summary.installations, |(i, _)| (i.created_at_ms, i.id.clone()));
    Ok(Json(HealthSummaryView { next_cursor, ..HealthSummaryView::from(&summary) }))
}
