//! Fresh-sandbox call benchmark: patchbay's real call path (capabilities linked, limits, fuel,
//! operation log) for any operation of any component, beside the bare wasmtime floor of the same
//! component: instantiate + call where the call needs no host import, instantiate alone where it
//! does. [`ingress`] measures webhook ingress: a transaction per request against group commit.

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
use patchbay_runtime::capability::http::NetworkPolicy;
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
    /// The operation measured.
    pub operation: String,
    /// One row per path and thread count.
    pub rows: Vec<Figures>,
    /// Whether the runtime used the pooling allocator.
    pub pooling: bool,
    /// What the last call answered (JSON), to show that the calls did what was asked.
    pub answer: String,
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
        writeln!(
            f,
            "fresh-sandbox call of `{}` (instantiate + call + drop), pooling={}",
            self.operation, self.pooling
        )?;
        for r in &self.rows {
            writeln!(f, "  {r}")?;
        }
        writeln!(f, "  answer: {}", self.answer)?;
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

/// What to call: an operation (as `patchbay run` names it) with its JSON input, on
/// an installation, with the runtime's network policy.
pub struct Target {
    /// The export, e.g. `health-check` or `notifications.send`.
    pub operation: String,
    /// The export's parameters keyed by name (docs/json-mapping.md).
    pub input: serde_json::Value,
    /// Configuration, secrets, allowed hosts and limits the calls run with.
    pub installation: Installation,
    /// Networks the calls may reach.
    pub network: NetworkPolicy,
}

impl Target {
    /// `health-check` on an installation with nothing configured.
    pub fn health_check() -> anyhow::Result<Target> {
        let installation = Installation::new(
            Scope::new("bench", "bench"),
            "bench@0.0.0",
            Default::default(),
            Secrets::new(),
            &[],
            Limits::default(),
        )?;
        Ok(Target {
            operation: "health-check".into(),
            input: serde_json::json!({}),
            installation,
            network: NetworkPolicy::default(),
        })
    }
}

/// One way of making a call: patchbay's path or the bare floor.
#[derive(Clone)]
enum Path {
    /// The typed `health-check` call of the runtime.
    PatchbayHealth { rt: Runtime, component: Arc<LoadedComponent>, inst: Installation },
    /// Any export through the runtime's dynamic JSON path, as the API's invoke calls it.
    Patchbay {
        rt: Runtime,
        component: Arc<LoadedComponent>,
        inst: Installation,
        op: Arc<str>,
        input: serde_json::Value,
    },
    /// Bare wasmtime: instantiate, and call `health-check` when `call` (it needs no host import).
    Bare { pre: ConnectorPre<()>, fuel: bool, call: bool },
}

impl Path {
    /// One call; its answer as JSON. An error names the trap or the connector's error: a benchmark
    /// of failing calls measures nothing the caller wants.
    async fn call(&self) -> anyhow::Result<serde_json::Value> {
        match self {
            Path::PatchbayHealth { rt, component, inst } => {
                let report = calls::health_check(rt, component, inst)
                    .await
                    .outcome
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                    .map_err(|e| anyhow::anyhow!("the connector answered an error: {e:?}"))?;
                Ok(serde_json::Value::String(format!("{report:?}")))
            }
            Path::Patchbay { rt, component, inst, op, input } => {
                let answer = calls::invoke_json(rt, component, inst, op, input.clone())
                    .await?
                    .outcome
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                if let Some(err) = answer.get("err") {
                    anyhow::bail!("the connector answered an error: {err}");
                }
                Ok(answer)
            }
            Path::Bare { pre, fuel, call } => {
                let mut store = Store::new(pre.engine(), ());
                store.set_epoch_deadline(u64::MAX / 2);
                if *fuel {
                    store.set_fuel(u64::MAX).map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                let world = pre.instantiate_async(&mut store).await.map_err(|e| anyhow::anyhow!("{e}"))?;
                if *call {
                    world
                        .patchbay_connector_lifecycle()
                        .call_health_check(&mut store)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                }
                Ok(serde_json::Value::Null)
            }
        }
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
                    let _ = path.call().await?;
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
/// `Store<()>`, no capabilities linked (every import traps), no limits beyond what the engine
/// requires. It calls `health-check` when that is what is measured and the call works without
/// the host (one probe call says); otherwise it only instantiates — the floor of any call.
async fn bare(rc: &RuntimeConfig, wasm: &[u8], health: bool) -> anyhow::Result<(&'static str, Path)> {
    let (engine, _) = patchbay_runtime::engine::build(rc).map_err(|e| anyhow::anyhow!("{e}"))?;
    patchbay_runtime::engine::start_ticker(&engine, rc.epoch_tick);
    let component = Component::new(&engine, wasm).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut linker = Linker::<()>::new(&engine);
    linker.define_unknown_imports_as_traps(&component).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pre = ConnectorPre::new(linker.instantiate_pre(&component).map_err(|e| anyhow::anyhow!("{e}"))?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let fuel = rc.fuel_metering;
    if health && (Path::Bare { pre: pre.clone(), fuel, call: true }).call().await.is_ok() {
        return Ok(("bare wasmtime (same engine config)", Path::Bare { pre, fuel, call: true }));
    }
    Ok(("bare wasmtime instantiate, no call", Path::Bare { pre, fuel, call: false }))
}

/// Runs both paths for `health-check` with nothing configured (the trivial component's benchmark).
pub async fn run(wasm: &[u8], iterations: usize) -> anyhow::Result<Report> {
    run_target(wasm, Target::health_check()?, iterations).await
}

/// Runs both paths on 1 and 2 threads, `iterations` calls per thread count each. Rounds of the two
/// paths alternate so both see the same machine conditions. Fails before measuring when the call
/// traps or the connector answers an error, naming it.
pub async fn run_target(wasm: &[u8], target: Target, iterations: usize) -> anyhow::Result<Report> {
    const ROUNDS: usize = 10;
    let services = Services { oplog: Arc::new(MemoryOperationLog::new(1_000)), ..Services::in_memory() };
    let config = RuntimeConfig { max_concurrent_calls: 64, network: target.network, ..RuntimeConfig::default() };
    let rt = Runtime::new(config.clone(), services)?;
    let component = rt.load(wasm)?;
    let Target { operation, input, installation: inst, .. } = target;
    let health = operation == "health-check" && input.as_object().is_some_and(|o| o.is_empty());
    let patchbay = if health {
        Path::PatchbayHealth { rt: rt.clone(), component, inst }
    } else {
        Path::Patchbay { rt: rt.clone(), component, inst, op: Arc::from(operation.as_str()), input }
    };
    let answer = patchbay.call().await.map_err(|e| anyhow::anyhow!("`{operation}` failed, nothing measured: {e}"))?;
    let (bare_label, bare) = bare(&config, wasm, health).await?;
    let paths = [(bare_label, bare), ("patchbay (capabilities + limits)", patchbay)];
    for (_, p) in &paths {
        p.round(1, iterations.min(1_000)).await?;
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
    let mut answer = answer.to_string();
    if answer.len() > 200 {
        let cut = (0..=200).rev().find(|&i| answer.is_char_boundary(i)).unwrap_or(0);
        answer.truncate(cut);
        answer.push('…');
    }
    Ok(Report { operation, rows, pooling: rt.pooling(), answer })
}
