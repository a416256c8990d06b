//! The sync worker of a host: claims due runs (queued ones, and running ones whose host died) up
//! to its concurrency and executes them; and the scheduler, which fires due schedules.
//!
//! Every host runs both. Runs are claimed with leases in the database, so each run executes on
//! one host at a time; schedules fire inside one transaction that locks the due rows (`SKIP
//! LOCKED` on PostgreSQL), so each firing happens once whatever the number of hosts, and a stream
//! with an active run gets no second one. Runs queued through this host's API start at once (a
//! local wake-up); runs queued elsewhere are found within [`POLL`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use super::SyncEngine;
use super::cron::Schedule;
use super::engine::{SyncConfig, execute};
use patchbay_core::now_ms;
use patchbay_store::sync::ScheduleRow;

/// Longest sleep between looks at the database for due runs and schedules.
pub(crate) const POLL: Duration = Duration::from_secs(1);

/// Starts the worker and the scheduler; `None` when the concurrency is 0 (an API-only host).
pub(crate) fn spawn(engine: Arc<SyncEngine>, cfg: SyncConfig) -> Option<tokio::task::JoinHandle<()>> {
    if cfg.concurrency == 0 {
        return None;
    }
    tokio::spawn(schedule_loop(engine.clone()));
    Some(tokio::spawn(run_loop(engine, cfg)))
}

/// The next firing of a stored schedule after `now` (an unparseable stored schedule waits a day).
pub(crate) fn next_firing(s: &ScheduleRow, now: i64) -> i64 {
    let interval = s.interval_secs.and_then(|i| u64::try_from(i).ok());
    match Schedule::parse(interval, s.cron.as_deref()) {
        Ok(schedule) => schedule.next_after(now),
        Err(e) => {
            tracing::warn!(schedule = %s.id, "stored schedule does not parse: {e}");
            now.saturating_add(86_400_000)
        }
    }
}

async fn schedule_loop(engine: Arc<SyncEngine>) {
    loop {
        match engine.store.fire_sync_schedules(now_ms(), 64, next_firing).await {
            Ok(queued) if !queued.is_empty() => {
                for r in &queued {
                    tracing::info!(run = %r.id, installation = %r.installation, entity = %r.entity, "schedule queued a sync run");
                }
                engine.wake.notify_one();
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("firing sync schedules failed: {e}"),
        }
        let wait = match engine.store.next_schedule_due_at().await {
            Ok(Some(t)) => Duration::from_millis(u64::try_from(t.saturating_sub(now_ms())).unwrap_or(0)),
            _ => POLL,
        };
        tokio::time::sleep(wait.clamp(Duration::from_millis(20), POLL)).await;
    }
}

async fn run_loop(engine: Arc<SyncEngine>, cfg: SyncConfig) {
    let owner: Arc<str> = crate::dispatch::worker::owner_name().into();
    let slots = Arc::new(Semaphore::new(cfg.concurrency));
    let lease_ms = i64::try_from(cfg.lease.as_millis()).unwrap_or(i64::MAX);
    let wake: Arc<Notify> = engine.wake.clone();
    let cfg = Arc::new(cfg);
    match engine.store.release_sync_leases_on_start().await {
        Ok(n) if n > 0 => tracing::info!("resuming {n} sync run(s) interrupted by the last shutdown"),
        Ok(_) => {}
        Err(e) => tracing::warn!("releasing interrupted sync runs failed: {e}"),
    }
    tracing::info!(owner = %owner, "sync worker started");
    loop {
        match slots.clone().acquire_owned().await {
            Ok(p) => drop(p),
            Err(_) => return,
        }
        let free = u32::try_from(slots.available_permits()).unwrap_or(1).max(1);
        // Each claim gets an owner of its own: a run this host claims again (its lease ran out
        // while it was still executing here) must not pass the old execution's fence.
        let claim_owner: Arc<str> = format!("{owner}/{}", patchbay_core::new_id("c")).into();
        let claimed = match engine.store.claim_sync_runs(&claim_owner, now_ms(), lease_ms, free).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("claiming sync runs failed: {e}");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        if claimed.is_empty() {
            let wait = match engine.store.next_sync_due_at().await {
                Ok(Some(t)) => Duration::from_millis(u64::try_from(t.saturating_sub(now_ms())).unwrap_or(0)),
                _ => POLL,
            };
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait.clamp(Duration::from_millis(10), POLL)) => {}
            }
            continue;
        }
        for run in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            let (engine, owner, cfg) = (engine.clone(), claim_owner.clone(), cfg.clone());
            tokio::spawn(async move {
                execute(&engine, &owner, run, &cfg).await;
                drop(permit);
            });
        }
    }
}
