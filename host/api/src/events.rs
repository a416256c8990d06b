//! `/v1/events`: the tenant's event log — events emitted by its connectors, received by its
//! webhooks and announced by the host — with each delivery and every attempt; and redriving
//! dead letters.

use std::sync::Arc;

use axum::extract::State;
use patchbay_services::events::Events;
use patchbay_store::{DeliveryStatus, EventFilter};
use serde::{Deserialize, Serialize};

use crate::auth::{Manage, TenantKey, View};
use crate::cursor::{self, List};
use crate::extract::{Json, OptionalJson, Path, Query};
use crate::views::{DeliveryView, EventView};
use crate::{ApiError, ApiResult, text_param, time_param};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Exact event type.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Events with a delivery in this status: pending, leased, delivered, dead.
    status: Option<String>,
    /// Events from this installation or delivered to it.
    installation: Option<String>,
    /// RFC 3339 time, unix milliseconds, or an age like `15m`.
    since: Option<String>,
    until: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// 1..=1000, default 100.
    limit: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct EventPage {
    events: Vec<EventView>,
    next_cursor: Option<String>,
}

/// `GET /v1/events`: a page of the tenant's events, newest first (creation time, then id).
pub(crate) async fn list(
    State(events): State<Arc<Events>>,
    key: TenantKey<View>,
    Query(q): Query<EventsQuery>,
) -> ApiResult<Json<EventPage>> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<DeliveryStatus>().map_err(|_| {
            ApiError::bad_request(format!("unknown status {s:?}; statuses: pending, leased, delivered, dead"))
        })?),
    };
    let filter = EventFilter {
        event_type: text_param("type", q.event_type, 256)?,
        status,
        installation: text_param("installation", q.installation, 128)?,
        since_ms: time_param("since", q.since.as_deref())?,
        until_ms: time_param("until", q.until.as_deref())?,
        // A position, not an event: it stays valid when retention prunes the event it was taken
        // from.
        page: cursor::request(List::Events, q.cursor.as_deref(), q.limit)?,
    };
    let rows = events.list(&key.tenant, &filter).await?;
    let next_cursor = cursor::next(List::Events, &rows, |e| (e.created_at_ms, e.id.clone()));
    Ok(Json(EventPage { events: rows.items.iter().map(EventView::from).collect(), next_cursor }))
}

pub(crate) async fn get(
    State(events): State<Arc<Events>>,
    key: TenantKey<View>,
    Path(id): Path<String>,
) -> ApiResult<Json<EventView>> {
    let d = events.get(&key.tenant, &id).await?;
    let deliveries = d.deliveries.iter().map(|(d, a)| DeliveryView::new(d, a)).collect();
    Ok(Json(EventView { deliveries: Some(deliveries), ..EventView::from(&d.event) }))
}

#[derive(Serialize)]
pub(crate) struct Redriven {
    redriven: bool,
    delivery: DeliveryView,
}

/// `POST /v1/deliveries/{id}/redrive`: a dead delivery goes back to pending, due now, with a
/// fresh retry schedule (its attempts stay in its history).
pub(crate) async fn redrive_one(
    State(events): State<Arc<Events>>,
    key: TenantKey<Manage>,
    Path(id): Path<String>,
) -> ApiResult<Json<Redriven>> {
    let (d, attempts) = events.redrive(&key.tenant, &id).await?;
    Ok(Json(Redriven { redriven: true, delivery: DeliveryView::new(&d, &attempts) }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RedriveAll {
    installation: Option<String>,
    route: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct RedrivenCount {
    redriven: u64,
}

/// `POST /v1/deliveries/redrive` with `{"installation": …}` and/or `{"route": …}`: every dead
/// delivery to that installation / of that route goes back to pending.
pub(crate) async fn redrive_all(
    State(events): State<Arc<Events>>,
    key: TenantKey<Manage>,
    OptionalJson(req): OptionalJson<RedriveAll>,
) -> ApiResult<Json<RedrivenCount>> {
    let redriven = events.redrive_all(&key.tenant, req.installation.as_deref(), req.route.as_deref()).await?;
    Ok(Json(RedrivenCount { redriven }))
}
