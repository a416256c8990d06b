//! Data-sync throughput: records per second from a local REST source through the `rest-source`
//! WASM connector into the records store, on SQLite and (when `DATABASE_URL` is set) PostgreSQL.
//!
//! Everything runs in this process on the machine's cores: the source server generating ~1 KB
//! JSON records (`patchbay_tests::sources`), the host's sync worker calling `read-batch` in a
//! fresh sandbox per batch (cursor pagination, pages of 1000 records), and the store committing
//! each batch with its cursor. Printed per backend:
//!
//! - **first sync**: every record created (insert path), with a change event per record
//!   (`PATCHBAY_SYNC_CHANGE_EVENTS=all`) and with events only for routed changes (the default;
//!   the bench has no routes, so none).
//! - **re-sync**: the same records again, all unchanged (hash comparison, no rewrite).
//! - **connector only**: the `read-batch` calls alone, no store (the source + sandbox ceiling).
//! - **store only**: the batch commits alone with prepared records (the database ceiling).
//!
//! `cargo bench -p patchbay-tests --bench sync`. `PATCHBAY_BENCH_RECORDS` (default 200 000),
//! `PATCHBAY_BENCH_RECORD_BYTES` (default 1024), `PATCHBAY_BENCH_BATCH` (records per batch,
//! default 2000); `PATCHBAY_BENCH_STORE_ONLY=1` runs only the batch commits and
//! `PATCHBAY_BENCH_FIRST_ONLY=1` only the first sync with routed events (for profiling).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use patchbay_runtime::calls::{self, ReadMode, ReadRequest};
use patchbay_services::Host;
use patchbay_services::config::{Overrides, Settings};
use patchbay_services::sync::SyncConfig;
use patchbay_store::Backend;
use patchbay_store::sync::{ImportBatch, Lease, NewRun, RunStatus, SyncMode};
use patchbay_tests::MapEnv;
use patchbay_tests::sources::{Dataset, SourceServer};
use serde_json::json;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A host in this process on `backend` with its sync worker (no API listener is needed).
/// The worker's task is returned so the store-only phase can stop it (it would claim that
/// phase's run).
async fn host(
    backend: Backend,
    batch: u32,
    all_change_events: bool,
) -> anyhow::Result<(Host, tempfile::TempDir, Option<tokio::task::JoinHandle<()>>)> {
    let dir = tempfile::tempdir()?;
    let mut env = HashMap::new();
    env.insert("PATCHBAY_EGRESS_ALLOW_NETWORKS", "127.0.0.1/32".to_string());
    if backend == Backend::Postgres {
        let db = patchbay_tests::db::fresh_database(Backend::Postgres).await;
        env.insert("DATABASE_URL", db.url.clone());
        // The schema must outlive the run.
        std::mem::forget(db);
    }
    let settings = Settings::load(
        Overrides { config: None, listen: Some("127.0.0.1:0".into()), data_dir: Some(dir.path().to_path_buf()) },
        &MapEnv(env),
    )?;
    let (app, _) = Host::open(&settings).await?;
    let cfg = SyncConfig { batch_size: batch, concurrency: 1, all_change_events, ..Default::default() };
    let worker = app.spawn_sync(cfg);
    Ok((app, dir, worker))
}

/// Tenant `bench` with a rest-source installation reading `src`; returns its id.
async fn setup(app: &Host, src: &SourceServer) -> anyhow::Result<String> {
    app.access.create_tenant("bench", None).await?;
    let req = serde_json::from_value(json!({
        "connector": "rest-source", "name": "src",
        "config": {
            "base_url": src.base_url(), "path": "/rest/cursor", "entity": "items", "record_path": "data",
            "pagination": "cursor", "next_cursor_path": "meta.next_cursor", "total_path": "meta.total",
            "page_size": 1000,
        },
    }))?;
    let inst = app.installations.create("bench", req).await?;
    Ok(inst.row.id)
}

/// Runs one full import to its end; returns (seconds, records fetched, created, unchanged).
async fn timed_sync(app: &Host, inst: &str) -> anyhow::Result<(f64, i64, i64, i64)> {
    let req = serde_json::from_value(json!({ "installation": inst, "entity": "items" }))?;
    let started = Instant::now();
    let run = app.syncs.start("bench", req).await?;
    let id = run.id;
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some(r) = app.store().sync_run("bench", &id).await? else { anyhow::bail!("run {id} vanished") };
        if r.status.is_finished() {
            anyhow::ensure!(r.status == RunStatus::Succeeded, "run {id} ended {:?}: {:?}", r.status, r.error);
            return Ok((started.elapsed().as_secs_f64(), r.counts.fetched, r.counts.created, r.counts.unchanged));
        }
    }
}

/// `read-batch` alone, batch after batch to the end; returns records/s.
async fn connector_only(app: &Host, inst: &str, batch: u32) -> anyhow::Result<f64> {
    let r = app.installations.resolve("bench", inst).await?;
    let (c, i) = (&r.prepared.component, &r.prepared.installation);
    let mut cursor = None;
    let mut n = 0usize;
    let started = Instant::now();
    loop {
        let req = ReadRequest { entity: "items".into(), mode: ReadMode::Full, cursor: cursor.take(), limit: batch };
        let b = calls::read_batch(app.runtime(), c, i, req)
            .await
            .outcome
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        n += b.records.len();
        if b.done {
            return Ok(n as f64 / started.elapsed().as_secs_f64());
        }
        cursor = b.next_cursor;
    }
}

/// Batch commits alone: `n` prepared records of `bytes` each into a fresh entity; returns records/s.
async fn store_only(app: &Host, inst: &str, ds: &Dataset, n: usize, batch: usize) -> anyhow::Result<f64> {
    let run = NewRun {
        id: patchbay_core::new_id("run"),
        tenant: "bench".into(),
        installation: inst.into(),
        entity: "store-only".into(),
        direction: patchbay_store::sync::Direction::Import,
        mode: SyncMode::Full,
        source: None,
        trigger: "api",
        schedule_id: None,
    };
    // Claimed here with a long lease (the worker was stopped, so it cannot take it).
    app.store().create_sync_run(&run).await?;
    let claimed = loop {
        let c = app.store().claim_sync_runs("bench-store", patchbay_core::now_ms(), 3_600_000, 8).await?;
        if let Some(r) = c.into_iter().find(|r| r.id == run.id) {
            break r;
        }
    };
    let records: Vec<_> = (0..n)
        .map(|i| {
            let payload = ds.record_json(i);
            patchbay_store::sync::IncomingRecord {
                external_id: Dataset::id(i),
                hash: patchbay_services::sync::engine::content_hash(&payload),
                payload,
                deleted: false,
            }
        })
        .collect();
    let started = Instant::now();
    for (k, chunk) in records.chunks(batch).enumerate() {
        let cursor = k.to_string();
        let b = ImportBatch {
            lease: Lease { run_id: &claimed.id, owner: "bench-store", lease_ms: 3_600_000, active_ms: 0 },
            tenant: "bench",
            installation: inst,
            entity: "store-only",
            records: chunk,
            errors: &[],
            fetched: chunk.len() as i64,
            next_cursor: Some(&cursor),
            total: None,
            events: None,
        };
        app.store().commit_import_batch(&b).await?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let n = env_num("PATCHBAY_BENCH_RECORDS", 200_000) as usize;
    let bytes = env_num("PATCHBAY_BENCH_RECORD_BYTES", 1024) as usize;
    let batch = env_num("PATCHBAY_BENCH_BATCH", 2000) as u32;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let ds = Dataset::new(n, bytes, 42);
        let src = SourceServer::start(ds.clone());
        println!("{n} records of ~{bytes} bytes, {batch} per batch");
        let mut backends = vec![Backend::Sqlite];
        if std::env::var("DATABASE_URL").is_ok() {
            backends.push(Backend::Postgres);
        }
        if std::env::var("PATCHBAY_BENCH_STORE_ONLY").is_ok() {
            // Only the batch commits (for profiling the store).
            for backend in backends {
                let (app, _dir, worker) = host(backend, batch, false).await?;
                if let Some(w) = worker {
                    w.abort();
                }
                let inst = setup(&app, &src).await?;
                let rps = store_only(&app, &inst, &ds, n, batch as usize).await?;
                println!("{:<52} {rps:>9.0} records/s", format!("store only (batch commits, no events), {backend}"));
            }
            return Ok(());
        }
        // `PATCHBAY_BENCH_FIRST_ONLY=1`: only the first sync with routed events (for profiling).
        let first_only = std::env::var("PATCHBAY_BENCH_FIRST_ONLY").is_ok();
        let event_modes: &[bool] = if first_only { &[false] } else { &[true, false] };
        for backend in backends {
            // Change events for every change, then only for routed changes (the default).
            for &all_events in event_modes {
                let (app, _dir, worker) = host(backend, batch, all_events).await?;
                let inst = setup(&app, &src).await?;
                let what = if all_events { "events for all" } else { "events routed only" };
                let (secs, fetched, created, _) = timed_sync(&app, &inst).await?;
                anyhow::ensure!(created == n as i64 && fetched == n as i64, "created {created} of {n}");
                println!(
                    "{:<52} {:>9.0} records/s  ({secs:.2} s)",
                    format!("first sync, {what}, {backend}"),
                    n as f64 / secs
                );
                if first_only {
                    continue;
                }
                let (secs, _, _, unchanged) = timed_sync(&app, &inst).await?;
                anyhow::ensure!(unchanged == n as i64, "unchanged {unchanged} of {n}");
                println!(
                    "{:<52} {:>9.0} records/s  ({secs:.2} s)",
                    format!("re-sync, all unchanged, {backend}"),
                    n as f64 / secs
                );
                if all_events {
                    continue;
                }
                let rps = connector_only(&app, &inst, batch).await?;
                println!("{:<52} {rps:>9.0} records/s", format!("connector only (read-batch), {backend}"));
                if let Some(w) = worker {
                    w.abort();
                }
                let rps = store_only(&app, &inst, &ds, n.min(100_000), batch as usize).await?;
                println!("{:<52} {rps:>9.0} records/s", format!("store only (batch commits, no events), {backend}"));
            }
        }
        Ok(())
    })
}
