//! Data-sync measurements the `sync` and `table` benchmarks share: a host with its sync worker,
//! a rest-source installation reading the sample source, a timed full import, the connector
//! alone and the batch commits alone.

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

/// A host in this process on `backend` with its sync worker (no API listener is needed).
/// The worker's task is returned so the store-only phase can stop it (it would claim that
/// phase's run).
pub async fn host(
    backend: Backend,
    batch: u32,
    all_change_events: bool,
) -> anyhow::Result<(Host, crate::webhooks::Scratch, Option<tokio::task::JoinHandle<()>>)> {
    let dir = crate::webhooks::Scratch::new(backend).await?;
    let mut env = HashMap::new();
    env.insert("PATCHBAY_EGRESS_ALLOW_NETWORKS", "127.0.0.1/32".to_string());
    if let Some(url) = dir.database_url() {
        env.insert("DATABASE_URL", url);
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

/// A rest-source installation `name` of tenant `bench` (which must exist) reading `src`; returns
/// its id.
pub async fn setup(app: &Host, src: &SourceServer, name: &str) -> anyhow::Result<String> {
    let req = serde_json::from_value(json!({
        "connector": "rest-source", "name": name,
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
pub async fn timed_sync(app: &Host, inst: &str) -> anyhow::Result<(f64, i64, i64, i64)> {
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
pub async fn connector_only(app: &Host, inst: &str, batch: u32) -> anyhow::Result<f64> {
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

/// Batch commits alone: `n` prepared records of `bytes` each into `entity` (new to the
/// installation); returns records/s.
pub async fn store_only(
    app: &Host,
    inst: &str,
    entity: &str,
    ds: &Dataset,
    n: usize,
    batch: usize,
) -> anyhow::Result<f64> {
    let run = NewRun {
        id: patchbay_core::new_id("run"),
        tenant: "bench".into(),
        installation: inst.into(),
        entity: entity.into(),
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
            entity,
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
