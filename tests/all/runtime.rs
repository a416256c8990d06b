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
