//! Host memory while calls return large byte lists: 32 concurrent calls each return 4 MiB
//! (`list<u8>`, base64 in the JSON result), and every result is kept until the last call ends.
//! Prints the process's resident memory before and its peak during the calls, the calls' wall
//! time, and for comparison what the same bytes cost as wasmtime `Val`s (one per byte), the form
//! dynamic calls used to lift them in.
//!
//! `cargo bench -p patchbay-benches --bench bytes` (`PATCHBAY_BENCH_CALLS`, default 32;
//! `PATCHBAY_BENCH_BYTES`, default 4 MiB). Linux only (reads `/proc/self/status`).

use std::time::Instant;

use patchbay_core::Scope;
use patchbay_runtime::capability::credentials::Secrets;
use patchbay_runtime::dynamic::{DynamicOutcome, find_operation, json_to_val};
use patchbay_runtime::{Installation, Limits, Runtime, RuntimeConfig, Services};
use serde_json::{Value, json};

/// A field of `/proc/self/status` in MiB (`VmRSS`, `VmHWM`).
fn status_mib(field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/self/status"))?;
    let kb: f64 = line.split_whitespace().nth(1).unwrap_or("0").parse()?;
    Ok(kb / 1024.0)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> anyhow::Result<()> {
    let calls = env("PATCHBAY_BENCH_CALLS", 32);
    let bytes = env("PATCHBAY_BENCH_BYTES", 4 << 20);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async {
        let config = RuntimeConfig {
            max_calls_per_tenant: u32::try_from(calls)?,
            max_concurrent_calls: u32::try_from(calls)?.max(128),
            ..RuntimeConfig::default()
        };
        let runtime = Runtime::new(config, Services::in_memory())?;
        let c = runtime.load_async(std::fs::read(patchbay_tests::components::KINDS)?).await?;
        let inst = Installation::new(
            Scope::new("bench", "bytes"),
            "kinds@0",
            Default::default(),
            Secrets::new(),
            &[],
            Limits::default(),
        )?;
        // One call first, so compiling and the first instance do not count.
        patchbay_runtime::dynamic::invoke_export(&runtime, &c, &inst, "make-bytes", json!({"n": 16})).await?;
        let before = status_mib("VmRSS:")?;
        // Reset the peak (VmHWM) to the current resident size.
        std::fs::write("/proc/self/clear_refs", "5")?;
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(calls);
        for _ in 0..calls {
            let (runtime, c, inst) = (runtime.clone(), c.clone(), inst.clone());
            tasks.push(tokio::spawn(async move {
                let report =
                    patchbay_runtime::dynamic::invoke_export(&runtime, &c, &inst, "make-bytes", json!({"n": bytes}))
                        .await?;
                match report.outcome {
                    Ok(DynamicOutcome::Ok(Value::String(b64))) => Ok(b64),
                    other => anyhow::bail!("make-bytes ended otherwise: {:?}", other.map(|_| ())),
                }
            }));
        }
        let mut results = Vec::with_capacity(calls);
        for t in tasks {
            results.push(t.await??);
        }
        let elapsed = started.elapsed();
        let peak = status_mib("VmHWM:")?;
        let total: usize = results.iter().map(String::len).sum();
        println!(
            "{calls} concurrent calls, each returning {:.1} MiB as base64 ({:.1} MiB of JSON in all):",
            bytes as f64 / 1048576.0,
            total as f64 / 1048576.0
        );
        println!(
            "  resident before {before:.0} MiB, peak during {peak:.0} MiB (+{:.0} MiB, {:.1} MiB per call); {:.0} ms",
            peak - before,
            (peak - before) / calls as f64,
            elapsed.as_secs_f64() * 1e3
        );
        // The same bytes as wasmtime `Val`s: what lifting them one value per byte held.
        let ty = find_operation(c.exported_functions(), "sum-bytes")?.params[0].1.clone();
        let one = results.pop().unwrap_or_default();
        drop(results);
        let before = status_mib("VmRSS:")?;
        std::fs::write("/proc/self/clear_refs", "5")?;
        let vals = json_to_val(&ty, &Value::String(one))?;
        let peak = status_mib("VmHWM:")?;
        drop(vals);
        println!(
            "  for comparison, one result's {:.1} MiB as wasmtime Vals (one per byte): +{:.0} MiB",
            bytes as f64 / 1048576.0,
            peak - before
        );
        Ok(())
    })
}
