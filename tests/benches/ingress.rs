//! Webhook ingress benchmark: requests/s and rows/s of one transaction per request
//! (`Store::record_ingress`) against group commit (`GroupCommitter`) with 64, 256 and 1024
//! concurrent callers, on SQLite (`synchronous` NORMAL and FULL, in a temporary directory) and on
//! PostgreSQL (`DATABASE_URL`, a schema of its own). Each request is an ingress row with a ~500-byte
//! body, one event and one delivery; every row is verified against the tables afterwards.
//!
//! `cargo bench -p patchbay-tests --bench ingress`. `PATCHBAY_BENCH_REQUESTS` (default 200 000)
//! and `PATCHBAY_BENCH_SECONDS` (default 3) bound each row; `PATCHBAY_BENCH_BACKENDS`
//! (`sqlite,postgres`) picks the backends, `PATCHBAY_BENCH_ONLY` the rows whose mode contains it
//! (`group commit`, `tx per request`, `batch`), `PATCHBAY_BENCH_PG_WRITERS` (default 4) and
//! `PATCHBAY_BENCH_MAX_BATCH` (default 512) the group committer's writers on PostgreSQL and batch cap.

use std::time::Duration;

use patchbay_dev::bench::ingress::{Plan, run};
use patchbay_store::GroupCommitConfig;

fn main() -> anyhow::Result<()> {
    let env = |name: &str| std::env::var(name).ok();
    let requests = env("PATCHBAY_BENCH_REQUESTS").and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let seconds = env("PATCHBAY_BENCH_SECONDS").and_then(|v| v.parse().ok()).unwrap_or(3.0);
    let backends = env("PATCHBAY_BENCH_BACKENDS").unwrap_or_else(|| "sqlite,postgres".into());
    let dir = tempfile::tempdir()?;
    let plan = Plan {
        sqlite_dir: backends.contains("sqlite").then(|| dir.path().to_path_buf()),
        postgres_url: backends.contains("postgres").then(patchbay_tests::db::postgres_url),
        requests,
        budget: Duration::from_secs_f64(seconds),
        callers: vec![64, 256, 1024],
        group: GroupCommitConfig {
            postgres_writers: env("PATCHBAY_BENCH_PG_WRITERS").and_then(|v| v.parse().ok()).unwrap_or(4),
            max_batch: env("PATCHBAY_BENCH_MAX_BATCH").and_then(|v| v.parse().ok()).unwrap_or(512),
            ..GroupCommitConfig::default()
        },
        only: env("PATCHBAY_BENCH_ONLY"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(run(&plan))?;
    Ok(())
}
