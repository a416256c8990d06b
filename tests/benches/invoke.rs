//! API-path benchmark: an installation's operation invoked the way `POST
//! /v1/installations/{id}/invoke/{operation}` does it — resolve the installation from the store,
//! open its sealed credentials, convert JSON to WIT values, run a fresh sandbox, convert back —
//! on the embedded SQLite store, measured directly and over HTTP, and with a provider budget
//! (token buckets) in the path.
//!
//! `cargo bench -p patchbay-tests --bench invoke` (`PATCHBAY_BENCH_ITERATIONS` sets the calls per row).

use std::time::Duration;

use patchbay_benches::invoking;
use patchbay_services::Host;
use patchbay_services::config::{Overrides, Settings};
use serde_json::json;

struct NoEnv;

impl patchbay_services::config::Env for NoEnv {
    fn var(&self, _: &str) -> Option<String> {
        None
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn report(label: &str, mut samples: Vec<Duration>, wall: Duration) {
    samples.sort();
    println!(
        "{label:<34} p50={:>8.1} µs  p99={:>8.1} µs  {:>7.0} calls/s",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.len() as f64 / wall.as_secs_f64()
    );
}

fn main() -> anyhow::Result<()> {
    let iterations: usize =
        std::env::var("PATCHBAY_BENCH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000);
    let dir = tempfile::tempdir()?;
    let settings = Settings::load(
        Overrides { config: None, listen: Some("127.0.0.1:0".into()), data_dir: Some(dir.path().to_path_buf()) },
        &NoEnv,
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let (app, _) = Host::open(&settings).await?;
        app.access.create_tenant("bench", None).await?;
        let id = invoking::setup(&app).await?;
        let (samples, wall) = invoking::in_process(&app, &id, iterations).await?;
        report("invoke health-check (in process)", samples, wall);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = patchbay_api::router(app.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let (_, key_token) = app.access.create_key("bench", Some("bench".into()), None).await?;
        let url = format!("http://{addr}/v1/installations/{id}/invoke/health-check");
        let (samples, wall) = invoking::over_http(&url, &key_token, 1, iterations).await?;
        report("invoke health-check (HTTP API)", samples, wall);
        // The same over 32 connections at once.
        let (samples, wall) = invoking::over_http(&url, &key_token, 32, iterations).await?;
        report("invoke health-check (HTTP, 32 conns)", samples, wall);

        // The same installation drawing from a provider budget large enough never to refuse:
        // what admission (token buckets) adds to a call.
        let update = serde_json::from_value(json!({
            "limits": { "rate_limits": [
                { "requests": 1_000_000_000u32, "per_seconds": 1 },
                { "requests": 1_000_000_000u32, "per_seconds": 3600 }
            ] }
        }))?;
        app.installations.update("bench", &id, update).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let (samples, wall) = invoking::in_process(&app, &id, iterations).await?;
        report("invoke with a provider budget", samples, wall);
        app.flush().await;
        anyhow::Ok(())
    })
}
