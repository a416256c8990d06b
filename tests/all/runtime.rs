//! Loading, caching and the basic call path.

use patchbay_runtime::calls::health_check;
use patchbay_runtime::{CacheHit, Hub};
use patchbay_tests::components;

use crate::harness::{Host, installation};

#[tokio::test]
async fn components_are_type_checked_and_hub_detected() {
    let host = Host::new(&[]);
    assert_eq!(host.load(components::GITHUB).hub, Some(Hub::WebhookEndpoint));
    assert_eq!(host.load(components::NOTIFY_WEBHOOK).hub, Some(Hub::NotificationProvider));
    assert_eq!(host.load(components::HOSTILE).hub, Some(Hub::DataSync));
    assert_eq!(host.load(components::TRIVIAL).hub, None);
}

#[tokio::test]
async fn garbage_and_core_modules_are_rejected_with_a_clear_error() {
    let host = Host::new(&[]);
    let err = host.runtime.load(b"definitely not wasm").err().unwrap();
    assert!(err.to_string().contains("not a valid WebAssembly component"), "{err}");
    // A core module (magic + version 1) is not a component.
    let err = host.runtime.load(b"\0asm\x01\0\0\0").err().unwrap();
    assert!(err.to_string().contains("not a valid WebAssembly component"), "{err}");
}

#[tokio::test]
async fn memory_cache_returns_the_same_component() {
    let host = Host::new(&[]);
    let a = host.load(components::TRIVIAL);
    let b = host.load(components::TRIVIAL);
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert_eq!(host.runtime.cached_components(), 1);
}

#[tokio::test]
async fn precompiled_artifacts_survive_a_restart_and_tampering_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = std::fs::read(components::TRIVIAL).unwrap();
    let cfg = |c: &mut patchbay_runtime::RuntimeConfig| c.cache_dir = Some(dir.path().to_path_buf());
    {
        let host = Host::with_config(&[], cfg);
        assert_eq!(host.runtime.load(&wasm).unwrap().loaded_from, CacheHit::Compiled);
    }
    {
        let host = Host::with_config(&[], cfg);
        let c = host.runtime.load(&wasm).unwrap();
        assert_eq!(c.loaded_from, CacheHit::Disk);
        let inst = installation("i").build();
        assert!(health_check(&host.runtime, &c, &inst).await.outcome.unwrap().is_ok());
    }
    // Flip one byte of the artifact: the tag no longer verifies and the host recompiles.
    let artifact = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .unwrap();
    let mut bytes = std::fs::read(&artifact).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    std::fs::write(&artifact, &bytes).unwrap();
    let host = Host::with_config(&[], cfg);
    assert_eq!(host.runtime.load(&wasm).unwrap().loaded_from, CacheHit::Compiled);
}

#[tokio::test]
async fn trivial_call_reports_fuel_and_logs_the_call() {
    let host = Host::new(&[]);
    let c = host.load(components::TRIVIAL);
    let inst = installation("i").build();
    let r = health_check(&host.runtime, &c, &inst).await;
    let fuel = r.fuel_consumed.unwrap();
    assert!(fuel > 0, "fuel should be counted");
    assert!(r.outcome.unwrap().is_ok());
    let logs = host.logs(&inst);
    assert!(logs.iter().any(|e| e.message == "call health-check completed"), "{logs:?}");
}

/// Finding: an upload was compiled before the world check, and a refused one stayed compiled in
/// memory and on disk. A component that cannot be accepted is refused before compiling when its
/// names show it, and nothing of a refused load is kept.
#[tokio::test]
async fn a_refused_component_leaves_nothing_cached() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::with_config(&[], |c| c.cache_dir = Some(dir.path().to_path_buf()));
    let artifacts = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "cwasm"))
            .count()
    };
    let wasm = std::fs::read(components::HOSTILE).unwrap();
    let err = host.runtime.load_for("t", wasm.clone(), Some(Hub::PaymentGateway)).await.err().unwrap();
    assert!(err.to_string().contains("payment-gateway"), "{err}");
    assert_eq!((host.runtime.cached_components(), artifacts()), (0, 0));
    // Garbage is refused by the compiler, and leaves nothing either.
    assert!(host.runtime.load_for("t", b"\0asm\x0d\0\x01\0junk".to_vec(), None).await.is_err());
    assert_eq!((host.runtime.cached_components(), artifacts()), (0, 0));
    // The right category is accepted and kept.
    let c = host.runtime.load_for("t", wasm.clone(), Some(Hub::DataSync)).await.unwrap();
    assert_eq!(c.loaded_from, CacheHit::Compiled);
    assert_eq!((host.runtime.cached_components(), artifacts()), (1, 1));
    // A cached component is still checked against what the caller expects.
    assert!(host.runtime.load_for("t", wasm, Some(Hub::PaymentGateway)).await.is_err());
}

/// Compiles have a timeout; a compile cut off by it keeps nothing, even when it finishes later.
#[tokio::test]
async fn a_compile_past_its_timeout_is_refused_and_keeps_nothing() {
    let host = Host::with_config(&[], |c| c.compile_timeout = std::time::Duration::from_millis(1));
    let wasm = std::fs::read(components::HOSTILE).unwrap();
    let err = host.runtime.load_for("t", wasm.clone(), None).await.err().unwrap();
    assert!(matches!(err, patchbay_runtime::LoadError::CompileTimeout(_)), "{err}");
    // The abandoned compile holds the tenant's compile slot until it ends; a later load of the
    // same bytes (after it) compiles again rather than finding the abandoned result.
    let again = host.runtime.load(&wasm).unwrap();
    assert_eq!(again.loaded_from, CacheHit::Compiled);
    assert_eq!(host.runtime.cached_components(), 1);
}

/// The compiled-component cache is bounded: past its size the least recently used component is
/// evicted, and a call holding an evicted component still completes; the next load compiles it
/// again.
#[tokio::test]
async fn the_memory_cache_is_bounded_and_eviction_keeps_calls_correct() {
    let host = Host::with_config(&[], |c| c.memory_cache_bytes = 1);
    let trivial = host.load(components::TRIVIAL);
    let hostile = host.load(components::HOSTILE);
    assert_eq!(host.runtime.cached_components(), 1, "only the newest is kept");
    // The evicted one is still usable by whoever holds it.
    let inst = installation("evicted").build();
    assert!(health_check(&host.runtime, &trivial, &inst).await.outcome.unwrap().is_ok());
    let reloaded = host.load(components::TRIVIAL);
    assert_eq!(reloaded.loaded_from, CacheHit::Compiled);
    assert!(!std::sync::Arc::ptr_eq(&reloaded, &trivial));
    drop(hostile);
}

/// Finding: calls of every tenant shared one pool, so one tenant's flood of looping calls
/// delayed everyone. A tenant waits behind its own share; another tenant's call starts at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_tenant_does_not_starve_another() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let host = Arc::new(Host::with_config(&[], |c| {
        c.max_concurrent_calls = 8;
        c.max_calls_per_tenant = 2;
    }));
    let c = host.load(components::HOSTILE);
    let flood =
        installation("looper").tenant("flooder").limits(|l| l.timeout = std::time::Duration::from_secs(3)).build();
    let finished = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (host, c, flood, finished) = (host.clone(), c.clone(), flood.clone(), finished.clone());
        tasks.push(tokio::spawn(async move {
            let _ = crate::harness::hostile(&host, &c, &flood, "infinite-loop", "").await;
            finished.fetch_add(1, Ordering::SeqCst);
        }));
    }
    // Let the flood take every slot it can.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let other = installation("quick").tenant("neighbour").build();
    let r = crate::harness::hostile(&host, &c, &other, "ok", "").await;
    assert_eq!(r.outcome.unwrap().unwrap()["ok"], true);
    assert_eq!(finished.load(Ordering::SeqCst), 0, "the neighbour's call waited for the flood");
    for t in tasks {
        t.abort();
    }
}
