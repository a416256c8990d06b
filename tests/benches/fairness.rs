//! Fair sharing under a flood: one tenant keeps 4× the host's call slots busy with calls that
//! loop until their deadline, while another tenant makes short calls (a 10 ms loop). Prints the
//! other tenant's p50/p99 latency without a tenant share (every call draws from one pool, as
//! before) and with the default 25 % share.
//!
//! `cargo bench -p patchbay-benches --bench fairness` (`PATCHBAY_BENCH_ITERATIONS`: the other
//! tenant's calls per configuration, default 200).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use patchbay_core::Scope;
use patchbay_runtime::capability::credentials::Secrets;
use patchbay_runtime::{Installation, Limits, Runtime, RuntimeConfig, Services};
use serde_json::json;

const SLOTS: u32 = 16;

fn installation(tenant: &str, timeout: Duration) -> anyhow::Result<Installation> {
    let limits = Limits { timeout, ..Limits::default() };
    Ok(Installation::new(Scope::new(tenant, "bench"), "hostile@0", Default::default(), Secrets::new(), &[], limits)?)
}

fn behaviour(name: &str) -> serde_json::Value {
    json!({"req": { "entity": name, "mode": "full", "cursor": "", "limit": 1 }})
}

async fn scenario(per_tenant: u32, iterations: usize) -> anyhow::Result<(Duration, Duration, Duration)> {
    let config =
        RuntimeConfig { max_concurrent_calls: SLOTS, max_calls_per_tenant: per_tenant, ..RuntimeConfig::default() };
    let rt = Runtime::new(config, Services::in_memory())?;
    let c = rt.load_async(std::fs::read(patchbay_tests::components::HOSTILE)?).await?;
    let flood = installation("flooder", Duration::from_millis(500))?;
    let quick = installation("neighbour", Duration::from_millis(10))?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut flooders = Vec::new();
    for _ in 0..(4 * SLOTS) {
        let (rt, c, flood, stop) = (rt.clone(), c.clone(), flood.clone(), stop.clone());
        flooders.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ =
                    patchbay_runtime::dynamic::invoke(&rt, &c, &flood, "read-batch", behaviour("infinite-loop")).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        let report =
            patchbay_runtime::dynamic::invoke(&rt, &c, &quick, "read-batch", behaviour("infinite-loop")).await?;
        // The call runs until its 10 ms deadline; anything else is a broken measurement.
        if !matches!(report.outcome, Err(patchbay_runtime::CallError::DeadlineExceeded { .. })) {
            anyhow::bail!("the measured call ended otherwise: {:?}", report.outcome.map(|_| ()));
        }
        samples.push(started.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        let _ = f.await;
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    Ok((at(0.5), at(0.99), *samples.last().unwrap_or(&Duration::ZERO)))
}

fn main() -> anyhow::Result<()> {
    let iterations = std::env::var("PATCHBAY_BENCH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    println!(
        "flood: {} looping calls (500 ms deadline) of one tenant on {SLOTS} slots; the other tenant's 10 ms calls:",
        4 * SLOTS
    );
    for (label, share) in [("one pool (no tenant share)", SLOTS), ("tenant share 25 %", SLOTS / 4)] {
        let (p50, p99, max) = rt.block_on(scenario(share, iterations))?;
        println!(
            "  {label:<28} p50 {:>8.1} ms  p99 {:>8.1} ms  max {:>8.1} ms",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
