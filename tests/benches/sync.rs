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

use patchbay_benches::syncing::{connector_only, host, setup, store_only, timed_sync};
use patchbay_benches::webhooks::env_num;
use patchbay_store::Backend;
use patchbay_tests::sources::{Dataset, SourceServer};

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
                app.access.create_tenant("bench", None).await?;
                let inst = setup(&app, &src, "src").await?;
                let rps = store_only(&app, &inst, "store-only", &ds, n, batch as usize).await?;
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
                app.access.create_tenant("bench", None).await?;
                let inst = setup(&app, &src, "src").await?;
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
                let rps = store_only(&app, &inst, "store-only", &ds, n.min(100_000), batch as usize).await?;
                println!("{:<52} {rps:>9.0} records/s", format!("store only (batch commits, no events), {backend}"));
            }
        }
        Ok(())
    })
}
