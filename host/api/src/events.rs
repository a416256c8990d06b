//! `/v1/events`: the tenant's event log — events emitted by its connectors (and, later, received
//! by its webhooks) with each delivery and every attempt.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{KeyScope, Principal};
use super::{ApiError, ApiResult, page_limit, time_param};
use patchbay_core::timefmt::rfc3339;
use patchbay_services::app::App;
use patchbay_store::{AttemptRow, DeliveryRow, DeliveryStatus, EventFilter, EventRow};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
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

fn event_view(e: &EventRow) -> Value {
    json!({
        "id": e.id,
        "type": e.event_type,
        "subject": e.subject,
        "source_installation": e.source_installation,
        "payload": serde_json::from_str::<Value>(&e.payload).unwrap_or_else(|_| Value::String(e.payload.clone())),
        "idempotency_key": e.idempotency_key,
        "ingress_id": e.ingress_id,
        "created_at": rfc3339(e.created_at_ms),
    })
}

fn delivery_view(d: &DeliveryRow, attempts: &[AttemptRow]) -> Value {
    json!({
        "id": d.id,
        "route_id": d.route_id,
        "destination_installation": d.destination_installation,
        "operation": d.operation,
        "idempotency_key": d.idempotency_key,
        "status": d.status.as_str(),
        "attempts": attempts.iter().map(|a| json!({
            "attempt": a.attempt,
            "started_at": rfc3339(a.started_at_ms),
            "duration_ms": a.duration_ms,
            "outcome": a.outcome.as_str(),
            "error": a.error,
        })).collect::<Vec<_>>(),
        "next_attempt_at": (d.status == DeliveryStatus::Pending).then(|| rfc3339(d.next_attempt_at_ms)),
        "last_error": d.last_error,
    })
}

pub async fn list(
    State(app): State<App>,
    p: Principal,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Query(q) = query?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<DeliveryStatus>().map_err(|_| {
            ApiError::bad_request(format!("unknown status {s:?}; statuses: pending, leased, delivered, dead"))
        })?),
    };
    let limit = page_limit(q.limit)?;
    let filter = EventFilter {
        event_type: q.event_type,
        status,
        installation: q.installation,
        since_ms: time_param("since", q.since.as_deref())?,
        until_ms: time_param("until", q.until.as_deref())?,
        after_id: q.cursor.filter(|c| !c.is_empty()),
        limit,
    };
    let events = app.store.list_events(tenant, &filter).await?;
    let next = if events.len() as u32 == limit { events.last().map(|e| e.id.clone()) } else { None };
    Ok(Json(json!({ "events": events.iter().map(event_view).collect::<Vec<_>>(), "next_cursor": next })))
}

pub async fn get(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Path(id) = path?;
    let (event, deliveries) =
        app.store.event(tenant, &id).await?.ok_or_else(|| ApiError::not_found(format!("no event {id:?}")))?;
    let mut view = event_view(&event);
    if let Some(o) = view.as_object_mut() {
        o.insert("deliveries".into(), Value::Array(deliveries.iter().map(|(d, a)| delivery_view(d, a)).collect()));
    }
    Ok(Json(view))
}

/// `POST /v1/deliveries/{id}/redrive`: a dead delivery goes back to pending, due now, with a
/// fresh retry schedule (its attempts stay in its history).
pub async fn redrive_one(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Path(id) = path?;
    if !app.store.redrive(tenant, &id, patchbay_core::now_ms()).await? {
        let d =
            app.store.delivery(tenant, &id).await?.ok_or_else(|| ApiError::not_found(format!("no delivery {id:?}")))?;
        return Err(ApiError::conflict(format!(
            "delivery {id} is {}; only dead deliveries can be redriven",
            d.status.as_str()
        ))
        .with_code("not_dead"));
    }
    app.store.wake_dispatchers();
    let d = app.store.delivery(tenant, &id).await?.ok_or_else(|| ApiError::not_found(format!("no delivery {id:?}")))?;
    let attempts = app.store.delivery_attempts(tenant, &id).await?;
    Ok(Json(json!({ "redriven": true, "delivery": delivery_view(&d, &attempts) })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RedriveAll {
    installation: Option<String>,
    route: Option<String>,
}

/// `POST /v1/deliveries/redrive` with `{"installation": …}` and/or `{"route": …}`: every dead
/// delivery to that installation / of that route goes back to pending.
pub async fn redrive_all(State(app): State<App>, p: Principal, body: axum::body::Bytes) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let req: RedriveAll = super::optional_json(&body)?;
    if req.installation.is_none() && req.route.is_none() {
        return Err(ApiError::invalid(
            "invalid_body",
            "name the dead letters to redrive: {\"installation\": ID} and/or {\"route\": ID}",
        ));
    }
    if let Some(i) = &req.installation {
        app.get_installation(tenant, i).await?;
    }
    if let Some(r) = &req.route
        && app.store.route(tenant, r).await?.is_none()
        && !app.store.route_has_deliveries(tenant, r).await?
    {
        return Err(ApiError::not_found(format!("no route {r:?}")));
    }
    let n = app
        .store
        .redrive_dead(tenant, req.installation.as_deref(), req.route.as_deref(), patchbay_core::now_ms())
        .await?;
    if n > 0 {
        app.store.wake_dispatchers();
    }
    Ok(Json(json!({ "redriven": n })))
}
