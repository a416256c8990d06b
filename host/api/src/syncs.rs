//! Data sync over HTTP: `/v1/syncs` (runs, progress, cancel, resume, item errors),
//! `/v1/schedules`, and per installation its `entities`, `records` (the change feed of the records
//! store) and field `mappings`. The rules live in [`patchbay_services::app::sync`].

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{KeyScope, Principal};
use super::{ApiError, ApiResult, page_limit};
use patchbay_core::now_ms;
use patchbay_services::app::App;
use patchbay_services::app::sync::{
    CreateSchedule, StartSync, UpdateSchedule, entity_view, error_view, mapping_view, record_view, run_view,
    schedule_view,
};
use patchbay_store::sync::{RunFilter, RunStatus};

pub async fn start(
    State(app): State<App>,
    p: Principal,
    body: Result<Json<StartSync>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Json(req) = body?;
    Ok((StatusCode::ACCEPTED, Json(app.start_sync(tenant, req).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    installation: Option<String>,
    entity: Option<String>,
    status: Option<String>,
    before: Option<String>,
    limit: Option<u32>,
}

pub async fn list(
    State(app): State<App>,
    p: Principal,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Query(q) = query?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("status={s:?} is not one of queued, running, succeeded, failed, cancelled"))
        })?),
    };
    let limit = page_limit(q.limit)?;
    let filter = RunFilter { installation: q.installation, entity: q.entity, status, before: q.before, limit };
    let rows = app.store.sync_runs(tenant, &filter).await?;
    let now = now_ms();
    let next = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.id.clone())).flatten();
    Ok(Json(json!({
        "runs": rows.iter().map(|r| run_view(r, now)).collect::<Vec<_>>(),
        "next_before": next,
    })))
}

async fn tenant_run(app: &App, tenant: &str, id: &str) -> ApiResult<patchbay_store::sync::RunRow> {
    app.store.sync_run(tenant, id).await?.ok_or_else(|| ApiError::not_found(format!("no sync run {id:?}")))
}

pub async fn get(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Path(id) = path?;
    Ok(Json(run_view(&tenant_run(&app, tenant, &id).await?, now_ms())))
}

pub async fn cancel(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Path(id) = path?;
    let run = app.store.cancel_sync_run(tenant, &id).await?;
    Ok(Json(run_view(&run, now_ms())))
}

pub async fn resume(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Path(id) = path?;
    let run = app.store.resume_sync_run(tenant, &id).await?;
    app.sync_wake.notify_one();
    Ok(Json(run_view(&run, now_ms())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorsQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

pub async fn errors(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ErrorsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Path(id) = path?;
    let Query(q) = query?;
    let run = tenant_run(&app, tenant, &id).await?;
    let rows = app.store.sync_errors(&run.id, q.after.unwrap_or(0), page_limit(q.limit)?).await?;
    Ok(Json(json!({
        "run": run.id,
        "failed": run.counts.failed,
        "errors": rows.iter().map(error_view).collect::<Vec<_>>(),
        "next_after": rows.last().map(|e| e.n),
    })))
}

pub async fn entities(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Path(id) = path?;
    let entities = app.sync_entities(tenant, &id).await?;
    Ok(Json(json!({ "entities": entities.iter().map(entity_view).collect::<Vec<_>>() })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    since: Option<i64>,
    limit: Option<u32>,
}

/// The change feed of an entity: records in change order after `since` (a `seq`); each record
/// appears once, at its latest change. Page with `since=<next_since>` until `has_more` is false.
pub async fn records(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<RecordsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Path((id, entity)) = path?;
    let Query(q) = query?;
    app.get_installation(tenant, &id).await?;
    let since = q.since.unwrap_or(0);
    if since < 0 {
        return Err(ApiError::bad_request(format!("since must be a change sequence number (>= 0), got {since}")));
    }
    let limit = page_limit(q.limit)?;
    let rows = app.store.record_changes(&id, &entity, since, limit).await?;
    let next = rows.last().map_or(since, |r| r.seq);
    Ok(Json(json!({
        "installation": id,
        "entity": entity,
        "changes": rows.iter().map(record_view).collect::<Vec<_>>(),
        "next_since": next,
        "has_more": rows.len() == limit as usize,
    })))
}

pub async fn record(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Path((id, entity, external_id)) = path?;
    app.get_installation(tenant, &id).await?;
    let row =
        app.store.record(&id, &entity, &external_id).await?.ok_or_else(|| {
            ApiError::not_found(format!("no record {external_id:?} in {entity} of installation {id}"))
        })?;
    Ok(Json(record_view(&row)))
}

pub async fn get_mapping(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Path((id, entity)) = path?;
    app.get_installation(tenant, &id).await?;
    let row = app
        .store
        .sync_mapping(&id, &entity)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no mapping for {entity} of installation {id}")))?;
    Ok(Json(mapping_view(&id, &row)))
}

pub async fn put_mapping(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Path((id, entity)) = path?;
    let Json(body) = body?;
    Ok(Json(app.put_mapping(tenant, &id, &entity, &body).await?))
}

pub async fn delete_mapping(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<StatusCode> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Path((id, entity)) = path?;
    app.get_installation(tenant, &id).await?;
    if !app.store.delete_sync_mapping(&id, &entity).await? {
        return Err(ApiError::not_found(format!("no mapping for {entity} of installation {id}")));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn create_schedule(
    State(app): State<App>,
    p: Principal,
    body: Result<Json<CreateSchedule>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Json(req) = body?;
    Ok((StatusCode::CREATED, Json(app.create_schedule(tenant, req).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulesQuery {
    installation: Option<String>,
}

pub async fn list_schedules(
    State(app): State<App>,
    p: Principal,
    query: Result<Query<SchedulesQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Query(q) = query?;
    let rows = app.store.sync_schedules(tenant, q.installation.as_deref()).await?;
    Ok(Json(json!({ "schedules": rows.iter().map(schedule_view).collect::<Vec<_>>() })))
}

pub async fn get_schedule(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::View)?;
    let Path(id) = path?;
    let row = app
        .store
        .sync_schedule(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no schedule {id:?}")))?;
    Ok(Json(schedule_view(&row)))
}

pub async fn update_schedule(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<UpdateSchedule>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Path(id) = path?;
    let Json(req) = body?;
    Ok(Json(app.update_schedule(tenant, &id, req).await?))
}

pub async fn delete_schedule(
    State(app): State<App>,
    p: Principal,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<StatusCode> {
    let tenant = p.tenant(KeyScope::Manage)?;
    let Path(id) = path?;
    if !app.store.delete_sync_schedule(tenant, &id).await? {
        return Err(ApiError::not_found(format!("no schedule {id:?}")));
    }
    Ok(StatusCode::NO_CONTENT)
}
