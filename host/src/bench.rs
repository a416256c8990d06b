//! Fresh-sandbox call benchmark: patchbay's real call path (capabilities linked, limits, fuel,
//! operation log) beside a bare wasmtime instantiate + call of the same component.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use crate::bindings::connector::ConnectorPre;
use crate::capability::credentials::Secrets;
use crate::capability::log::MemoryOperationLog;
use crate::runtime::calls;
use crate::{Installation, Limits, Runtime, RuntimeConfig, Scope, Services};

/// Latency figures for one configuration.
#[derive(Debug, Clone)]
pub struct Figures {
    pub label: String,
    pub threads: usize,
    pub calls: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub calls_per_sec: f64,
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<34} threads={} calls={:>7}  p50={:>7.2} µs  p99={:>8.2} µs  {:>9.0} calls/s",
            self.label,
            self.threads,
            self.calls,
            self.p50.as_secs_f64() * 1e6,
            self.p99.as_secs_f64() * 1e6,
            self.calls_per_sec
        )
    }
}

/// All figures of one run.
#[derive(Debug, Clone)]
pub struct Report {
    pub rows: Vec<Figures>,
    pub pooling: bool,
}

impl Report {
    /// p50 of the patchbay path over the bare path, per thread count.
    pub fn ratios(&self) -> Vec<(usize, f64)> {
        let mut out = Vec::new();
        for t in [1, 2] {
            let pb = self.rows.iter().find(|r| r.threads == t && r.label.starts_with("patchbay"));
            let bare = self.rows.iter().find(|r| r.threads == t && r.label.starts_with("bare"));
            if let (Some(p), Some(b)) = (pb, bare) {
                out.push((t, p.p50.as_secs_f64() / b.p50.as_secs_f64()));
            }
        }
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fresh-sandbox call of `health-check` (instantiate + call + drop), pooling={}", self.pooling)?;
        for r in &self.rows {
            writeln!(f, "  {r}")?;
        }
        for (t, ratio) in self.ratios() {
            writeln!(f, "  patchbay/bare p50 ratio, {t} thread(s): {ratio:.2}x")?;
        }
        Ok(())
    }
}

fn figures(label: &str, threads: usize, mut samples: Vec<Duration>, wall: Duration) -> Figures {
    samples.sort_unstable();
    let pick = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q) as usize).copied().unwrap_or_default();
    Figures {
        label: label.to_string(),
        threads,
        calls: samples.len(),
        p50: pick(0.50),
        p99: pick(0.99),
        calls_per_sec: samples.len() as f64 / wall.as_secs_f64(),
    }
}

async fn patchbay_path(rt: &Runtime, wasm: &[u8], threads: usize, iterations: usize) -> anyhow::Result<Figures> {
    let component = rt.load(wasm)?;
    let inst = Arc::new(Installation::new(
        Scope::new("bench", "bench"),
        "bench@0.0.0",
        Default::default(),
        Secrets::new(),
        &[],
        Limits::default(),
    )?);
    // Warm up (pool slots, caches).
    for _ in 0..500 {
        calls::health_check(rt, &component, &inst).await.outcome?.map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let wall = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..threads {
        let (rt, component, inst) = (rt.clone(), component.clone(), inst.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(iterations);
            for _ in 0..iterations {
                let t = Instant::now();
                let r = calls::health_check(&rt, &component, &inst).await;
                samples.push(t.elapsed());
                if r.outcome.is_err() {
                    return Err(anyhow::anyhow!("call failed: {:?}", r.outcome.err()));
                }
            }
            Ok(samples)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(figures("patchbay (capabilities + limits)", threads, all, wall.elapsed()))
}

/// Bare wasmtime on an engine configured exactly like the runtime's (pool, epochs, fuel):
/// `Store<()>`, no capabilities linked, no limits beyond what the engine requires.
async fn bare_path(rc: &RuntimeConfig, wasm: &[u8], threads: usize, iterations: usize) -> anyhow::Result<Figures> {
    let (engine, _) = crate::runtime::engine::build(rc).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::runtime::engine::start_ticker(&engine, rc.epoch_tick);
    let fuel = rc.fuel_metering;
    let component = Component::new(&engine, wasm).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut linker = Linker::<()>::new(&engine);
    linker.define_unknown_imports_as_traps(&component).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pre = ConnectorPre::new(linker.instantiate_pre(&component).map_err(|e| anyhow::anyhow!("{e}"))?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    async fn run_one(pre: &ConnectorPre<()>, fuel: bool) -> anyhow::Result<()> {
        let mut store = Store::new(pre.engine(), ());
        store.set_epoch_deadline(u64::MAX / 2);
        if fuel {
            store.set_fuel(u64::MAX).map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let world = pre.instantiate_async(&mut store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        world
            .patchbay_connector_lifecycle()
            .call_health_check(&mut store)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(())
    }
    for _ in 0..500 {
        run_one(&pre, fuel).await?;
    }
    let wall = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..threads {
        let pre = pre.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(iterations);
            for _ in 0..iterations {
                let t = Instant::now();
                run_one(&pre, fuel).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(samples)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(figures("bare wasmtime (same engine config)", threads, all, wall.elapsed()))
}

/// Runs both paths on 1 and 2 threads. The component must export `lifecycle.health-check`
/// (and, for the bare path, import nothing it calls).
pub async fn run(wasm: &[u8], iterations: usize) -> anyhow::Result<Report> {
    let services = Services { oplog: Arc::new(MemoryOperationLog::new(1_000)), ..Services::in_memory() };
    let config = RuntimeConfig { max_concurrent_calls: 64, ..RuntimeConfig::default() };
    let rt = Runtime::new(config.clone(), services)?;
    let mut rows = Vec::new();
    for threads in [1, 2] {
        rows.push(bare_path(&config, wasm, threads, iterations).await?);
        rows.push(patchbay_path(&rt, wasm, threads, iterations).await?);
    }
    Ok(Report { rows, pooling: rt.pooling() })
}
