//! [`Syncs`]: data sync behind `/v1/syncs`, `/v1/schedules` and the installations' `entities`,
//! `records` and `mappings` — validation of what a tenant asks for (checked against the
//! connector's own entity list) and a run's [`Progress`] (counters, rate, percent, ETA). The runs
//! themselves execute in [`crate::sync`].

use std::sync::Arc;

use patchbay_core::error::{Error, ErrorKind, Field, Unknown, Unsupported};
use patchbay_core::{new_id, now_ms};
use patchbay_runtime::calls::{self, Entity};
use patchbay_runtime::{Hub, Runtime};
use patchbay_store::sync::{
    Direction, ErrorRow, MappingRow, NewRun, NewSchedule, RecordRow, RunFilter, RunRow, RunStatus, ScheduleRow,
    SyncMode,
};
use patchbay_store::{Page, PageRequest, Store};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Notify;

use crate::installations::{Installations, call_error};
use crate::sync::cron::Schedule;
use crate::sync::mapping::Mapping;

/// The records an export writes: another installation's entity in the records store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRef {
    /// The installation whose records are exported.
    pub installation: String,
    /// The entity of those records.
    pub entity: String,
}

/// `POST /v1/syncs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartSync {
    /// The data-sync installation to run.
    pub installation: String,
    /// An entity its connector offers.
    pub entity: String,
    /// `import` (the default) or `export`.
    #[serde(default)]
    pub direction: Option<String>,
    /// `full` (the default) or `incremental`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Exports only.
    #[serde(default)]
    pub source: Option<SourceRef>,
}

/// `POST /v1/schedules`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSchedule {
    /// The data-sync installation to run.
    pub installation: String,
    /// An entity its connector offers.
    pub entity: String,
    /// `import` (the default) or `export`.
    #[serde(default)]
    pub direction: Option<String>,
    /// `full` (the default) or `incremental`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Exports only: the records to write.
    #[serde(default)]
    pub source: Option<SourceRef>,
    /// Fixed interval between runs, in seconds; give this or `cron`.
    #[serde(default)]
    pub interval_secs: Option<u64>,
    /// Five-field cron expression, in UTC; give this or `interval_secs`.
    #[serde(default)]
    pub cron: Option<String>,
    /// Whether the schedule queues runs (default `true`).
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// `PATCH /v1/schedules/{id}`: absent fields stay. Giving `interval_secs` or `cron` replaces the
/// timing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSchedule {
    /// A new mode: `full` or `incremental`.
    #[serde(default)]
    pub mode: Option<String>,
    /// A new fixed interval, in seconds.
    #[serde(default)]
    pub interval_secs: Option<u64>,
    /// A new cron expression, in UTC.
    #[serde(default)]
    pub cron: Option<String>,
    /// Whether the schedule queues runs.
    #[serde(default)]
    pub enabled: Option<bool>,
}

fn parse_direction(v: Option<&str>) -> Result<Direction, Error> {
    match v {
        None => Ok(Direction::Import),
        Some(s) => Direction::parse(s).ok_or_else(|| {
            Error::invalid(Field::Sync, format!("direction: {s:?} is not one of \"import\", \"export\""))
        }),
    }
}

fn parse_mode(v: Option<&str>) -> Result<SyncMode, Error> {
    match v {
        None => Ok(SyncMode::Full),
        Some(s) => SyncMode::parse(s)
            .ok_or_else(|| Error::invalid(Field::Sync, format!("mode: {s:?} is not one of \"full\", \"incremental\""))),
    }
}

/// A stream to sync, checked: the installation is a data-sync connector with that entity, which
/// supports what is asked.
struct Stream {
    direction: Direction,
    mode: SyncMode,
    source: Option<(String, String)>,
}

/// Data sync for the API: streams checked against the connector, runs, schedules, mappings and
/// the records store's change feed.
pub struct Syncs {
    store: Store,
    installations: Arc<Installations>,
    runtime: Runtime,
    /// Wakes this host's sync worker (a run was queued here).
    wake: Arc<Notify>,
}

/// A page of a run's item errors.
pub struct ItemErrors {
    /// The run the errors belong to.
    pub run: RunRow,
    /// The errors, in order of their number.
    pub errors: Page<ErrorRow>,
}

impl Syncs {
    pub(crate) fn new(store: Store, installations: Arc<Installations>, runtime: Runtime, wake: Arc<Notify>) -> Self {
        Self { store, installations, runtime, wake }
    }

    /// A page of the tenant's runs, newest first.
    pub async fn runs(&self, tenant: &str, filter: &RunFilter) -> Result<Page<RunRow>, Error> {
        Ok(self.store.sync_runs(tenant, filter).await?)
    }

    /// One run.
    pub async fn run(&self, tenant: &str, id: &str) -> Result<RunRow, Error> {
        self.store.sync_run(tenant, id).await?.ok_or_else(|| Error::not_found(format!("no sync run {id:?}")))
    }

    /// Asks a run to stop (a queued one stops at once).
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<RunRow, Error> {
        Ok(self.store.cancel_sync_run(tenant, id).await?)
    }

    /// Queues a failed or cancelled run again, from its last committed cursor.
    pub async fn resume(&self, tenant: &str, id: &str) -> Result<RunRow, Error> {
        let run = self.store.resume_sync_run(tenant, id).await?;
        self.wake.notify_one();
        Ok(run)
    }

    /// A page of a run's item errors, after error number `page.after`.
    pub async fn item_errors(&self, tenant: &str, id: &str, page: &PageRequest<i64>) -> Result<ItemErrors, Error> {
        let run = self.run(tenant, id).await?;
        let errors = self.store.sync_errors(&run.id, page).await?;
        Ok(ItemErrors { run, errors })
    }

    /// A page of the change feed of an entity: records changed after the sequence number
    /// `page.after` (0 when `None`), each once at its latest change.
    pub async fn changes(
        &self,
        tenant: &str,
        installation: &str,
        entity: &str,
        page: &PageRequest<i64>,
    ) -> Result<Page<RecordRow>, Error> {
        self.installations.get(tenant, installation).await?;
        if let Some(since) = page.after.filter(|s| *s < 0) {
            return Err(Error::bad_request(format!("since must be a change sequence number (>= 0), got {since}")));
        }
        Ok(self.store.record_changes_page(installation, entity, page).await?)
    }

    /// One stored record by its external id.
    pub async fn record(
        &self,
        tenant: &str,
        installation: &str,
        entity: &str,
        external_id: &str,
    ) -> Result<RecordRow, Error> {
        self.installations.get(tenant, installation).await?;
        self.store.record(installation, entity, external_id).await?.ok_or_else(|| {
            Error::not_found(format!("no record {external_id:?} in {entity} of installation {installation}"))
        })
    }

    /// The field mapping of an entity.
    pub async fn mapping(&self, tenant: &str, installation: &str, entity: &str) -> Result<MappingRow, Error> {
        self.installations.get(tenant, installation).await?;
        self.store
            .sync_mapping(installation, entity)
            .await?
            .ok_or_else(|| Error::not_found(format!("no mapping for {entity} of installation {installation}")))
    }

    /// Removes the field mapping of an entity.
    pub async fn delete_mapping(&self, tenant: &str, installation: &str, entity: &str) -> Result<(), Error> {
        self.installations.get(tenant, installation).await?;
        if !self.store.delete_sync_mapping(installation, entity).await? {
            return Err(Error::not_found(format!("no mapping for {entity} of installation {installation}")));
        }
        Ok(())
    }

    /// A page of the tenant's schedules (of one installation, when given), oldest first.
    pub async fn schedules(
        &self,
        tenant: &str,
        installation: Option<&str>,
        page: &PageRequest<(i64, String)>,
    ) -> Result<Page<ScheduleRow>, Error> {
        Ok(self.store.sync_schedules(tenant, installation, page).await?)
    }

    /// One schedule.
    pub async fn schedule(&self, tenant: &str, id: &str) -> Result<ScheduleRow, Error> {
        self.store.sync_schedule(tenant, id).await?.ok_or_else(|| Error::not_found(format!("no schedule {id:?}")))
    }

    /// Removes a schedule (runs it fired stay).
    pub async fn delete_schedule(&self, tenant: &str, id: &str) -> Result<(), Error> {
        if !self.store.delete_sync_schedule(tenant, id).await? {
            return Err(Error::not_found(format!("no schedule {id:?}")));
        }
        Ok(())
    }

    /// The entities the installation's connector offers (one `list-entities` call).
    pub async fn entities(&self, tenant: &str, installation: &str) -> Result<Vec<Entity>, Error> {
        let r = self.installations.resolve(tenant, installation).await?;
        let p = &r.prepared;
        if p.component.hub != Some(Hub::DataSync) {
            return Err(Error::new(
                ErrorKind::Unsupported(Unsupported::NotASyncConnector),
                format!(
                    "installation {installation} runs {}@{}, a {} connector; syncs need a data-sync connector",
                    p.version.connector_id,
                    p.version.version,
                    p.component.hub.map_or("base", |h| h.world())
                ),
            ));
        }
        let report = calls::list_entities(&self.runtime, &p.component, &p.installation).await;
        match report.outcome {
            Ok(Ok(entities)) => Ok(entities),
            Ok(Err(e)) => Err(Error::new(
                ErrorKind::Connector { kind: None, retry_after: None },
                format!("the connector could not list its entities: {}", connector_message(&e)),
            )),
            Err(e) => Err(call_error(&e)),
        }
    }

    /// Checks a stream against the connector's entity list and the source installation.
    async fn check_stream(
        &self,
        tenant: &str,
        installation: &str,
        entity: &str,
        direction: Option<&str>,
        mode: Option<&str>,
        source: Option<&SourceRef>,
    ) -> Result<Stream, Error> {
        let direction = parse_direction(direction)?;
        let mode = parse_mode(mode)?;
        if entity.is_empty() {
            return Err(Error::invalid(Field::Sync, "entity: must not be empty"));
        }
        let entities = self.entities(tenant, installation).await?;
        let Some(e) = entities.iter().find(|e| e.name == entity) else {
            return Err(Error::unknown(
                Unknown::Entity,
                format!(
                    "entity: the connector has no entity {entity:?} (entities: {})",
                    entities.iter().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            ));
        };
        let source = match (direction, source) {
            (Direction::Import, None) => None,
            (Direction::Import, Some(_)) => {
                return Err(Error::invalid(Field::Sync, "source: only exports take a source"));
            }
            (Direction::Export, None) => {
                return Err(Error::invalid(
                    Field::Sync,
                    "source: an export needs {\"installation\", \"entity\"} naming the records to write",
                ));
            }
            (Direction::Export, Some(s)) => {
                if self.store.installation(tenant, &s.installation).await?.is_none() {
                    return Err(Error::invalid(
                        Field::Sync,
                        format!("source.installation: no installation {:?}", s.installation),
                    ));
                }
                if s.entity.is_empty() {
                    return Err(Error::invalid(Field::Sync, "source.entity: must not be empty"));
                }
                Some((s.installation.clone(), s.entity.clone()))
            }
        };
        if direction == Direction::Export && !e.supports_write {
            return Err(Error::new(
                ErrorKind::Unsupported(Unsupported::SyncMode),
                format!("direction: entity {entity:?} of this connector cannot be written (supports-write is false)"),
            ));
        }
        if direction == Direction::Import && mode == SyncMode::Incremental && !e.supports_incremental {
            return Err(Error::new(
                ErrorKind::Unsupported(Unsupported::SyncMode),
                format!("mode: entity {entity:?} of this connector has no incremental reads; use \"full\""),
            ));
        }
        Ok(Stream { direction, mode, source })
    }

    /// Queues a run; the worker starts it at once.
    pub async fn start(&self, tenant: &str, req: StartSync) -> Result<RunRow, Error> {
        let s = self
            .check_stream(
                tenant,
                &req.installation,
                &req.entity,
                req.direction.as_deref(),
                req.mode.as_deref(),
                req.source.as_ref(),
            )
            .await?;
        let run = self
            .store
            .create_sync_run(&NewRun {
                id: new_id("run"),
                tenant: tenant.to_string(),
                installation: req.installation.clone(),
                entity: req.entity.clone(),
                direction: s.direction,
                mode: s.mode,
                source: s.source,
                trigger: "api",
                schedule_id: None,
            })
            .await?;
        self.wake.notify_one();
        Ok(run)
    }

    /// Checks and stores a field mapping; returns its view.
    pub async fn put_mapping(
        &self,
        tenant: &str,
        installation: &str,
        entity: &str,
        body: &Value,
    ) -> Result<MappingRow, Error> {
        self.installations.get(tenant, installation).await?;
        if entity.is_empty() {
            return Err(Error::invalid(Field::Mapping, "entity: must not be empty"));
        }
        let mapping = Mapping::parse(body).map_err(|e| Error::invalid(Field::Mapping, e.to_string()))?;
        let row = self.store.put_sync_mapping(tenant, installation, entity, &mapping.to_json().to_string()).await?;
        Ok(row)
    }

    /// Checks and stores a schedule.
    pub async fn create_schedule(&self, tenant: &str, req: CreateSchedule) -> Result<ScheduleRow, Error> {
        let schedule = Schedule::parse(req.interval_secs, req.cron.as_deref())
            .map_err(|e| Error::invalid(Field::Schedule, e.to_string()))?;
        let s = self
            .check_stream(
                tenant,
                &req.installation,
                &req.entity,
                req.direction.as_deref(),
                req.mode.as_deref(),
                req.source.as_ref(),
            )
            .await?;
        let now = now_ms();
        let row = self
            .store
            .create_sync_schedule(&NewSchedule {
                id: new_id("sch"),
                tenant: tenant.to_string(),
                installation: req.installation,
                entity: req.entity,
                direction: s.direction,
                mode: s.mode,
                source: s.source,
                interval_secs: req.interval_secs.map(|i| i64::try_from(i).unwrap_or(i64::MAX)),
                cron: schedule.cron().map(|c| c.as_str().to_string()),
                enabled: req.enabled.unwrap_or(true),
                next_run_at: schedule.next_after(now),
            })
            .await?;
        Ok(row)
    }

    /// Changes a schedule's timing, mode or switch.
    pub async fn update_schedule(&self, tenant: &str, id: &str, req: UpdateSchedule) -> Result<ScheduleRow, Error> {
        let row = self.schedule(tenant, id).await?;
        let mode = match req.mode.as_deref() {
            Some(m) => parse_mode(Some(m))?,
            None => row.mode,
        };
        let (interval, cron) = if req.interval_secs.is_some() || req.cron.is_some() {
            (req.interval_secs, req.cron.clone())
        } else {
            (row.interval_secs.and_then(|i| u64::try_from(i).ok()), row.cron.clone())
        };
        let schedule =
            Schedule::parse(interval, cron.as_deref()).map_err(|e| Error::invalid(Field::Schedule, e.to_string()))?;
        if mode == SyncMode::Incremental && mode != row.mode && row.direction == Direction::Import {
            self.check_stream(tenant, &row.installation, &row.entity, None, Some("incremental"), None).await?;
        }
        let enabled = req.enabled.unwrap_or(row.enabled);
        let row = self
            .store
            .update_sync_schedule(
                tenant,
                id,
                mode,
                interval.map(|i| i64::try_from(i).unwrap_or(i64::MAX)),
                schedule.cron().map(|c| c.as_str()),
                enabled,
                schedule.next_after(now_ms()),
            )
            .await?;
        Ok(row)
    }
}

/// A connector error's message, for API errors.
fn connector_message(e: &patchbay_runtime::bindings::ConnectorError) -> String {
    use patchbay_runtime::bindings::ConnectorError as E;
    match e {
        E::Retryable(f) => format!("retryable: {}", f.message),
        E::Permanent(f) => format!("permanent ({}): {}", f.code, f.message),
        E::RateLimited(r) => format!("rate-limited (retry after {} ms): {}", r.retry_after_ms, r.message),
        E::Unauthorized(f) => format!("unauthorized: {}", f.message),
    }
}

/// How far a run got at a moment: its counters, records per second over its running time, and
/// percent and ETA when the connector gave a total.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Time spent running: committed leases plus the lease in progress.
    pub running_ms: i64,
    /// Records fetched per second of running time, to one decimal.
    pub rate_per_sec: f64,
    /// Fetched of the total, to one decimal, at most 100.
    pub percent: Option<f64>,
    /// Seconds left at the current rate (runs still going, with a total).
    pub eta_secs: Option<i64>,
}

/// A run's [`Progress`] at `now`.
pub fn progress(r: &RunRow, now: i64) -> Progress {
    let running_ms = match (r.status, r.started_at) {
        (RunStatus::Running, Some(_)) => r.active_ms + (now - r.updated_at).clamp(0, 60_000),
        _ => r.active_ms,
    }
    .max(0);
    let rate = if running_ms > 0 { r.counts.fetched as f64 * 1000.0 / running_ms as f64 } else { 0.0 };
    let percent = r.total.filter(|t| *t > 0).map(|t| ((r.counts.fetched as f64 / t as f64) * 100.0).min(100.0));
    let eta_secs = match (r.total, r.status) {
        (Some(t), RunStatus::Running | RunStatus::Queued) if rate > 0.0 => {
            Some(((t - r.counts.fetched).max(0) as f64 / rate).ceil() as i64)
        }
        _ => None,
    };
    Progress {
        running_ms,
        rate_per_sec: (rate * 10.0).round() / 10.0,
        percent: percent.map(|p| (p * 10.0).round() / 10.0),
        eta_secs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use patchbay_store::sync::Counts;

    fn running(fetched: i64, total: Option<i64>, active_ms: i64, now: i64) -> RunRow {
        RunRow {
            id: "run_1".into(),
            tenant: "t".into(),
            installation: "ins_1".into(),
            entity: "items".into(),
            direction: Direction::Import,
            mode: SyncMode::Full,
            source: None,
            status: RunStatus::Running,
            trigger: "api".into(),
            schedule_id: None,
            start_cursor: None,
            cursor: None,
            batches: 1,
            counts: Counts { fetched, created: fetched, ..Counts::default() },
            total,
            attempts: 0,
            error: None,
            cancel_requested: false,
            lease_owner: Some("h".into()),
            lease_until: Some(now + 60_000),
            next_attempt_at: now + 60_000,
            active_ms,
            created_at: now - 5_000,
            started_at: Some(now - 2_000),
            finished_at: None,
            updated_at: now,
        }
    }

    #[test]
    fn progress_has_rate_percent_and_eta_when_the_total_is_known() {
        let now = 1_700_000_000_000;
        let p = progress(&running(250, Some(1000), 1000, now), now);
        assert_eq!(p.rate_per_sec, 250.0);
        assert_eq!(p.percent, Some(25.0));
        assert_eq!(p.eta_secs, Some(3));
        // Time since the last write counts as running time.
        let p = progress(&running(250, Some(1000), 500, now - 500), now);
        assert_eq!(p.running_ms, 1000);
        // Without a total: a rate, no percent or ETA.
        let p = progress(&running(250, None, 1000, now), now);
        assert_eq!((p.percent, p.eta_secs), (None, None));
        // Finished runs have no ETA; more records than announced stay at 100 %.
        let mut done = running(1200, Some(1000), 2000, now);
        done.status = RunStatus::Succeeded;
        let p = progress(&done, now);
        assert_eq!((p.percent, p.eta_secs), (Some(100.0), None));
    }
}
