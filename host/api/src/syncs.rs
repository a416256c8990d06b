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
use crate::cursor::{self, List};
use crate::extract::{Json, Path, Query};
use crate::views::{EntityView, ItemErrorView, MappingView, RecordView, RunView, ScheduleView};
use crate::{ApiError, ApiResult, short_param};

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
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Earlier paging, still served: runs created before this run (`next_before`).
    before: Option<String>,
    limit: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct RunPage {
    runs: Vec<RunView>,
    next_cursor: Option<String>,
    /// The last run's id when more follow (for `before`).
    next_before: Option<String>,
}

/// A page's start from `cursor` and from the parameter of earlier paging (`before`, `after`,
/// `since`): each says "rows after this position", so given both, both apply — the page starts
/// after the one further along the list's order (`further(a, b)` is `true` when `a` is).
fn combine<K>(cursor: Option<K>, legacy: Option<K>, further: impl Fn(&K, &K) -> bool) -> Option<K> {
    match (cursor, legacy) {
        (Some(c), Some(l)) => Some(if further(&l, &c) { l } else { c }),
        (c, l) => c.or(l),
    }
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
    let mut page = cursor::request(List::Runs, q.cursor.as_deref(), q.limit)?;
    let before = match q.before.as_deref().filter(|b| !b.is_empty()) {
        // The run must exist: its position is looked up (404 naming it when it does not).
        Some(id) => syncs.run(&key.tenant, id).await.map(|r| Some((r.created_at, r.id)))?,
        None => None,
    };
    // Newest first: further along is older.
    page.after = combine(page.after, before, |a, b| a < b);
    let filter = RunFilter {
        installation: short_param("installation", q.installation, 128)?,
        entity: short_param("entity", q.entity, 256)?,
        status,
        page,
    };
    let rows = syncs.runs(&key.tenant, &filter).await?;
    let now = now_ms();
    let next_cursor = cursor::next(List::Runs, &rows, |r| (r.created_at, r.id.clone()));
    Ok(Json(RunPage {
        runs: rows.items.iter().map(|r| RunView::new(r, now)).collect(),
        next_cursor,
        next_before: rows.last_if_more().map(|r| r.id.clone()),
    }))
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
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Earlier paging, still served: errors numbered above this (`next_after`).
    after: Option<i64>,
    limit: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct ErrorPage {
    run: String,
    failed: i64,
    errors: Vec<ItemErrorView>,
    next_cursor: Option<String>,
    /// The last error's number (for `after`; where to resume as errors are added).
    next_after: Option<i64>,
}

pub(crate) async fn errors(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<View>,
    Path(id): Path<String>,
    Query(q): Query<ErrorsQuery>,
) -> ApiResult<Json<ErrorPage>> {
    let mut request = cursor::request(List::ItemErrors, q.cursor.as_deref(), q.limit)?;
    request.after = combine(request.after, q.after, |a, b| a > b);
    let page = syncs.item_errors(&key.tenant, &id, &request).await?;
    Ok(Json(ErrorPage {
        run: page.run.id.clone(),
        failed: page.run.counts.failed,
        next_cursor: cursor::next(List::ItemErrors, &page.errors, |e| e.n),
        next_after: page.errors.items.last().map(|e| e.n),
        errors: page.errors.items.iter().map(ItemErrorView::from).collect(),
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
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// A change sequence number (`next_since`): changes after it.
    since: Option<i64>,
    limit: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct ChangePage {
    installation: String,
    entity: String,
    changes: Vec<RecordView>,
    next_cursor: Option<String>,
    next_since: i64,
    has_more: bool,
}

/// The change feed of an entity: records in change order after a position; each record appears
/// once, at its latest change. Page with `cursor=<next_cursor>` until it is null, or (as before
/// cursors) with `since=<next_since>` until `has_more` is false; `next_since` is also where to
/// resume for later changes.
pub(crate) async fn records(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<View>,
    Path((id, entity)): Path<(String, String)>,
    Query(q): Query<RecordsQuery>,
) -> ApiResult<Json<ChangePage>> {
    let mut page = cursor::request(List::Changes, q.cursor.as_deref(), q.limit)?;
    // Every cursor that matches the documented pattern is a position; one before the first
    // change (a negative number, only ever made up) starts at the beginning. A negative `since`
    // is the caller's mistake and gets its 400.
    page.after = combine(page.after.map(|a: i64| a.max(0)), q.since, |a, b| a > b);
    let since = page.after.unwrap_or(0);
    let rows = syncs.changes(&key.tenant, &id, &entity, &page).await?;
    Ok(Json(ChangePage {
        installation: id,
        entity,
        next_cursor: cursor::next(List::Changes, &rows, |r| r.seq),
        next_since: rows.items.last().map_or(since, |r| r.seq),
        has_more: rows.more,
        changes: rows.items.iter().map(RecordView::from).collect(),
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
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    limit: Option<u32>,
}

#[derive(Serialize)]
pub(crate) struct ScheduleList {
    schedules: Vec<ScheduleView>,
    next_cursor: Option<String>,
}

pub(crate) async fn list_schedules(
    State(syncs): State<Arc<Syncs>>,
    key: TenantKey<View>,
    Query(q): Query<SchedulesQuery>,
) -> ApiResult<Json<ScheduleList>> {
    let installation = short_param("installation", q.installation, 128)?;
    let page = cursor::request(List::Schedules, q.cursor.as_deref(), q.limit)?;
    let rows = syncs.schedules(&key.tenant, installation.as_deref(), &page).await?;
    let next_cursor = cursor::next(List::Schedules, &rows, |s| (s.created_at, s.id.clone()));
    Ok(Json(ScheduleList { schedules: rows.items.iter().map(ScheduleView::from).collect(), next_cursor }))
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
