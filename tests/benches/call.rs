//! Fresh-sandbox call benchmark: prints p50/p99 and calls/s through patchbay's real call path on
//! 1 and 2 threads, beside a bare wasmtime instantiate + call of the same component.
//!
//! `cargo bench -p patchbay-tests --bench call` (set `PATCHBAY_BENCH_ITERATIONS` to change the
//! number of calls per configuration).

fn main() -> anyhow::Result<()> {
    let iterations = std::env::var("PATCHBAY_BENCH_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(50_000);
    let wasm = std::fs::read(patchbay_tests::components::TRIVIAL)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let report = rt.block_on(patchbay_dev::bench::run(&wasm, iterations))?;
    println!("{report}");
    Ok(())
}
