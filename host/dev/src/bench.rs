//! Fresh-sandbox call benchmark: patchbay's real call path (capabilities linked, limits, fuel,
//! operation log) beside a bare wasmtime instantiate + call of the same component. [`ingress`]
//! measures webhook ingress: a transaction per request against group commit.

pub mod ingress;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use patchbay_core::Scope;
use patchbay_runtime::LoadedComponent;
use patchbay_runtime::bindings::connector::ConnectorPre;
use patchbay_runtime::calls;
use patchbay_runtime::capability::credentials::Secrets;
use patchbay_runtime::capability::log::MemoryOperationLog;
use patchbay_runtime::{Installation, Limits, Runtime, RuntimeConfig, Services};

/// Latency figures for one configuration.
#[derive(Debug, Clone)]
pub struct Figures {
    /// Which path was measured: `bare wasmtime …` or `patchbay …`.
    pub label: String,
    /// Tasks calling at once.
    pub threads: usize,
    /// Calls measured.
    pub calls: usize,
    /// Median call latency.
    pub p50: Duration,
    /// 99th-percentile call latency.
    pub p99: Duration,
    /// Calls per second of wall time.
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
    /// One row per path and thread count.
    pub rows: Vec<Figures>,
    /// Whether the runtime used the pooling allocator.
    pub pooling: bool,
}

impl Report {
    /// p50 of the patchbay path over the bare path, per thread count.
    pub(crate) fn ratios(&self) -> Vec<(usize, f64)> {
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

/// One way of making a call: patchbay's path or the bare floor.
#[derive(Clone)]
enum Path {
    Patchbay { rt: Runtime, component: Arc<LoadedComponent>, inst: Installation },
    Bare { pre: ConnectorPre<()>, fuel: bool },
}

impl Path {
    async fn call(&self) -> anyhow::Result<()> {
        match self {
            Path::Patchbay { rt, component, inst } => {
                calls::health_check(rt, component, inst)
                    .await
                    .outcome
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            }
            Path::Bare { pre, fuel } => {
                let mut store = Store::new(pre.engine(), ());
                store.set_epoch_deadline(u64::MAX / 2);
                if *fuel {
                    store.set_fuel(u64::MAX).map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                let world = pre.instantiate_async(&mut store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                world
                    .patchbay_connector_lifecycle()
                    .call_health_check(&mut store)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            }
        }
        Ok(())
    }

    /// `iterations` calls on each of `threads` tasks; returns the latencies and the wall time.
    async fn round(&self, threads: usize, iterations: usize) -> anyhow::Result<(Vec<Duration>, Duration)> {
        let wall = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..threads {
            let path = self.clone();
            tasks.push(tokio::spawn(async move {
                let mut samples = Vec::with_capacity(iterations);
                for _ in 0..iterations {
                    let t = Instant::now();
                    path.call().await?;
                    samples.push(t.elapsed());
                }
                Ok::<_, anyhow::Error>(samples)
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await??);
        }
        Ok((all, wall.elapsed()))
    }
}

/// Bare wasmtime on an engine configured exactly like the runtime's (pool, epochs, fuel):
/// `Store<()>`, no capabilities linked, no limits beyond what the engine requires.
fn bare(rc: &RuntimeConfig, wasm: &[u8]) -> anyhow::Result<Path> {
    let (engine, _) = patchbay_runtime::engine::build(rc).map_err(|e| anyhow::anyhow!("{e}"))?;
    patchbay_runtime::engine::start_ticker(&engine, rc.epoch_tick);
    let component = Component::new(&engine, wasm).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut linker = Linker::<()>::new(&engine);
    linker.define_unknown_imports_as_traps(&component).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pre = ConnectorPre::new(linker.instantiate_pre(&component).map_err(|e| anyhow::anyhow!("{e}"))?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Path::Bare { pre, fuel: rc.fuel_metering })
}

/// Runs both paths on 1 and 2 threads, `iterations` calls per thread each. Rounds of the two paths
/// alternate so both see the same machine conditions. The component must export
/// `lifecycle.health-check` (and, for the bare path, import nothing it calls).
pub async fn run(wasm: &[u8], iterations: usize) -> anyhow::Result<Report> {
    const ROUNDS: usize = 10;
    let services = Services { oplog: Arc::new(MemoryOperationLog::new(1_000)), ..Services::in_memory() };
    let config = RuntimeConfig { max_concurrent_calls: 64, ..RuntimeConfig::default() };
    let rt = Runtime::new(config.clone(), services)?;
    let component = rt.load(wasm)?;
    let inst = Installation::new(
        Scope::new("bench", "bench"),
        "bench@0.0.0",
        Default::default(),
        Secrets::new(),
        &[],
        Limits::default(),
    )?;
    let paths = [
        ("bare wasmtime (same engine config)", bare(&config, wasm)?),
        ("patchbay (capabilities + limits)", Path::Patchbay { rt: rt.clone(), component, inst }),
    ];
    for (_, p) in &paths {
        p.round(1, 1_000).await?;
    }
    let mut rows = Vec::new();
    for threads in [1, 2] {
        let mut samples = [Vec::new(), Vec::new()];
        let mut wall = [Duration::ZERO; 2];
        let per_round = iterations.div_ceil(ROUNDS);
        for _ in 0..ROUNDS {
            for (i, (_, p)) in paths.iter().enumerate() {
                let (s, w) = p.round(threads, per_round).await?;
                samples[i].extend(s);
                wall[i] += w;
            }
        }
        for (i, (label, _)) in paths.iter().enumerate() {
            rows.push(figures(label, threads, std::mem::take(&mut samples[i]), wall[i]));
        }
    }
    Ok(Report { rows, pooling: rt.pooling() })
}
