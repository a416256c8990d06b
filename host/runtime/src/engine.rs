//! The one wasmtime [`Engine`] of a runtime and its epoch ticker.
//!
//! Configuration: async (host calls may await), epoch interruption (the ticker thread preempts
//! guests), optional fuel metering, component-model concurrency off (we do not use
//! component-model async, and calls are several times cheaper without it), and the pooling
//! allocator sized for the runtime's concurrency when the platform allows its address-space
//! reservations; otherwise on-demand allocation.

use std::thread;
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::RuntimeConfig;

/// Wasm stack a guest may use before a stack-overflow trap.
pub(crate) const MAX_WASM_STACK: usize = 1024 * 1024;

fn base_config(rc: &RuntimeConfig) -> Config {
    let mut c = Config::new();
    c.epoch_interruption(true);
    c.consume_fuel(rc.fuel_metering);
    c.concurrency_support(false);
    c.max_wasm_stack(MAX_WASM_STACK);
    c.async_stack_size(MAX_WASM_STACK + 1024 * 1024);
    c.parallel_compilation(true);
    c
}

fn pooling(rc: &RuntimeConfig) -> PoolingAllocationConfig {
    let slots = rc.max_concurrent_calls.max(1);
    let mut p = PoolingAllocationConfig::new();
    p.total_component_instances(slots)
        .total_core_instances(slots * 8)
        .total_memories(slots * 2)
        .total_tables(slots * 8)
        .total_stacks(slots)
        .max_core_instances_per_component(16)
        .max_memories_per_component(2)
        .max_tables_per_component(8)
        .max_memory_size(rc.max_memory_bytes)
        .max_unused_warm_slots(slots.min(64));
    keep_warm(&mut p);
    p
}

/// Reuse tuning for pool slots: reset the low pages of a memory or table with `memset` (guided by
/// `PAGEMAP_SCAN` where the kernel has it) instead of `madvise`, so a reused slot does not take a
/// page fault per page touched. Connector instances are small and short-lived, which is exactly
/// the case this helps; it also removes most contention on the kernel's memory-map lock when
/// several threads instantiate at once.
pub(crate) fn keep_warm(p: &mut PoolingAllocationConfig) {
    p.linear_memory_keep_resident(1024 * 1024).table_keep_resident(64 * 1024).pagemap_scan(wasmtime::Enabled::Auto);
}

/// Builds the engine; falls back to on-demand allocation if the pool cannot be reserved.
/// Returns the engine and whether pooling is in use.
pub fn build(rc: &RuntimeConfig) -> wasmtime::Result<(Engine, bool)> {
    if rc.pooling {
        let mut c = base_config(rc);
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(rc)));
        match Engine::new(&c) {
            Ok(e) => return Ok((e, true)),
            Err(e) => tracing::warn!("pooling allocator unavailable ({e}); using on-demand allocation"),
        }
    }
    Ok((Engine::new(&base_config(rc))?, false))
}

/// Starts the epoch ticker: one thread per engine that stops when the engine is dropped.
pub fn start_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    let spawned = thread::Builder::new().name("patchbay-epoch".into()).spawn(move || {
        loop {
            thread::sleep(tick);
            match weak.upgrade() {
                Some(e) => e.increment_epoch(),
                None => break,
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("could not start the epoch ticker: {e}; guests will only stop at their outer timeout");
    }
}
