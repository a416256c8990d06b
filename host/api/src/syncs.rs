//! Data sync over HTTP: `/v1/syncs` (runs, progress, cancel, resume, item errors),
//! `/v1/schedules`, and per installation its `entities`, `records` (the change feed of the records
//! store) and field `mappings`. The rules live in `patchbay_services::syncs`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use patchbay_core::now_ms;
use patchbay_services::syncs::{CreateSchedule, StartSync, Syncs, UpdateSchedule};
use patchbay_store::sync::{RunFilter, RunStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::auth::{Manage, TenantKey, View};
use crate::extract::{Json, Path, Query};
use crate::views::{EntityView, ItemErrorView, MappingView, RecordView, RunView, ScheduleView};
use crate::{ApiError, ApiResult, page_limit};

pub(crate) async fn start(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<Manage>,
    Json(req): Json<StartSync>,
) -> ApiResult<(StatusCode, Json<RunView>)> {
    let run = syncs.start(&key.tenant, req).await?;
    Ok((StatusCode::ACCEPTED, Json(RunView::new(&run, now_ms()))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunsQuery {
    installation: Option<String>,
    entity: Option<String>,
    status: Option<String>,
    before: Option<String>,
    limit: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct RunPage {
    runs: Vec<RunView>,
    next_before: Option<String>,
}

pub(crate) async fn list(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<View>,
    Query(q): Query<RunsQuery>,
) -> ApiResult<Json<RunPage>> {
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!("status={s:?} is not one of queued, running, succeeded, failed, cancelled"))
        })?),
    };
    let limit = page_limit(q.limit)?;
    let filter = RunFilter { installation: q.installation, entity: q.entity, status, before: q.before, limit };
    let rows = syncs.runs(&key.tenant, &filter).await?;
    let now = now_ms();
    let next = (rows.len() == limit as usize).then(|| rows.last().map(|r| r.id.clone())).flatten();
    Ok(Json(RunPage { runs: rows.iter().map(|r| RunView::new(r, now)).collect(), next_before: next }))
}

pub(crate) async fn get(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<View>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunView>> {
    Ok(Json(RunView::new(&syncs.run(&key.tenant, &id).await?, now_ms())))
}

pub(crate) async fn cancel(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<Manage>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunView>> {
    Ok(Json(RunView::new(&syncs.cancel(&key.tenant, &id).await?, now_ms())))
}

pub(crate) async fn resume(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<Manage>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunView>> {
    Ok(Json(RunView::new(&syncs.resume(&key.tenant, &id).await?, now_ms())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ErrorsQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct ErrorPage {
    run: String,
    failed: i64,
    errors: Vec<ItemErrorView>,
    next_after: Option<i64>,
}

pub(crate) async fn errors(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<View>,
    Path(id): Path<String>,
    Query(q): Query<ErrorsQuery>,
) -> ApiResult<Json<ErrorPage>> {
    let limit = page_limit(q.limit)?;
    let page = syncs.item_errors(&key.tenant, &id, q.after.unwrap_or(0), limit).await?;
    Ok(Json(ErrorPage {
        run: page.run.id.clone(),
        failed: page.run.counts.failed,
        next_after: page.errors.last().map(|e| e.n),
        errors: page.errors.iter().map(ItemErrorView::from).collect(),
    }))
}

#[derive(Serialize)]
pub(crate) struct EntityList {
    entities: Vec<EntityView>,
}

/// Runs the connector (which may make outbound calls and fetch tokens), so it needs `manage`.
pub(crate) async fn entities(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<Manage>,
    Path(id): Path<String>,
) -> ApiResult<Json<EntityList>> {
    let entities = syncs.entities(&key.tenant, &id).await?;
    Ok(Json(EntityList { entities: entities.iter().map(EntityView::from).collect() }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordsQuery {
    since: Option<i64>,
    limit: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct ChangePage {
    installation: String,
    entity: String,
    changes: Vec<RecordView>,
    next_since: i64,
    has_more: bool,
}

/// The change feed of an entity: records in change order after `since` (a `seq`); each record
/// appears once, at its latest change. Page with `since=<next_since>` until `has_more` is false.
pub(crate) async fn records(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<View>,
    Path((id, entity)): Path<(String, String)>,
    Query(q): Query<RecordsQuery>,
) -> ApiResult<Json<ChangePage>> {
    let since = q.since.unwrap_or(0);
    let limit = page_limit(q.limit)?;
    let rows = syncs.changes(&key.tenant, &id, &entity, since, limit).await?;
    let next_since = rows.last().map_or(since, |r| r.seq);
    Ok(Json(ChangePage {
        installation: id,
        entity,
        has_more: rows.len() == limit as usize,
        changes: rows.iter().map(RecordView::from).collect(),
        next_since,
    }))
}

pub(crate) async fn record(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<View>,
    Path((id, entity, external_id)): Path<(String, String, String)>,
) -> ApiResult<Json<RecordView>> {
    Ok(Json(RecordView::from(&syncs.record(&key.tenant, &id, &entity, &external_id).await?)))
}

pub(crate) async fn get_mapping(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<View>,
    Path((id, entity)): Path<(String, String)>,
) -> ApiResult<Json<MappingView>> {
    Ok(Json(MappingView::new(&id, &syncs.mapping(&key.tenant, &id, &entity).await?)))
}

pub(crate) async fn put_mapping(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<Manage>,
    Path((id, entity)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> ApiResult<Json<MappingView>> {
    Ok(Json(MappingView::new(&id, &syncs.put_mapping(&key.tenant, &id, &entity, &body).await?)))
}

pub(crate) async fn delete_mapping(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<Manage>,
    Path((id, entity)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    syncs.delete_mapping(&key.tenant, &id, &entity).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn create_schedule(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<Manage>,
    Json(req): Json<CreateSchedule>,
) -> ApiResult<(StatusCode, Json<ScheduleView>)> {
    let s = syncs.create_schedule(&key.tenant, req).await?;
    Ok((StatusCode::CREATED, Json(ScheduleView::from(&s))))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SchedulesQuery {
    installation: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct ScheduleList {
    schedules: Vec<ScheduleView>,
}

pub(crate) async fn list_schedules(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<View>,
    Query(q): Query<SchedulesQuery>,
) -> ApiResult<Json<ScheduleList>> {
    let rows = syncs.schedules(&key.tenant, q.installation.as_deref()).await?;
    Ok(Json(ScheduleList { schedules: rows.iter().map(ScheduleView::from).collect() }))
}

pub(crate) async fn get_schedule(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<View>,
    Path(id): Path<String>,
) -> ApiResult<Json<ScheduleView>> {
    Ok(Json(ScheduleView::from(&syncs.schedule(&key.tenant, &id).await?)))
}

pub(crate) async fn update_schedule(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<Manage>,
    Path(id): Path<String>,
    Json(req): Json<UpdateSchedule>,
) -> ApiResult<Json<ScheduleView>> {
    Ok(Json(ScheduleView::from(&syncs.update_schedule(&key.tenant, &id, req).await?)))
}

pub(crate) async fn delete_schedule(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<Manage>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    syncs.delete_schedule(&key.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
