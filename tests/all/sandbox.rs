//! Hostile components are contained: each fails with a clear error, and the host keeps serving.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use patchbay_core::log::Source;
use patchbay_runtime::CallError;
use patchbay_runtime::calls::health_check;
use patchbay_tests::{components, eventually};

use crate::harness::{Host, hostile, installation};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_is_preempted_while_other_calls_keep_being_served() {
    // The property, not throughput: while more guests spin than there are worker threads, other
    // calls are still served (the loops yield at every epoch tick), and each loop is stopped by
    // its deadline. The deadline is long, so the trivial calls surely come before it even on a
    // loaded machine; no upper bound on how late a loop stops (the runtime's backstop bounds a
    // hang).
    const DEADLINE: Duration = Duration::from_secs(10);
    let host = Host::new(&[]);
    let bad = host.load(components::HOSTILE);
    let good = host.load(components::TRIVIAL);
    let looping = installation("loop").limits(|l| l.timeout = DEADLINE).build();
    let normal = installation("ok").build();

    let rt = host.runtime.clone();
    let started = Arc::new(AtomicUsize::new(0));
    let loops: Vec<_> = (0..4)
        .map(|_| {
            let (host_rt, bad, inst, started) = (rt.clone(), bad.clone(), looping.clone(), started.clone());
            tokio::spawn(async move {
                let input =
                    serde_json::json!({"req": {"entity": "infinite-loop", "mode": "full", "cursor": null, "limit": 1}});
                started.fetch_add(1, Ordering::SeqCst);
                patchbay_runtime::calls::invoke_json(&host_rt, &bad, &inst, "sync.read-batch", input).await.unwrap()
            })
        })
        .collect();
    // Four loops on two worker threads: once they have all started, give them a moment to be
    // inside the guest, spinning.
    eventually("the four loops to start", Duration::from_secs(60), || async {
        (started.load(Ordering::SeqCst) == 4).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Trivial calls, on the same worker threads as the loops, complete while no loop has ended.
    for _ in 0..3 {
        let (rt, good, normal) = (host.runtime.clone(), good.clone(), normal.clone());
        let r = tokio::spawn(async move { health_check(&rt, &good, &normal).await }).await.unwrap();
        assert!(r.outcome.unwrap().is_ok());
        assert!(loops.iter().all(|l| !l.is_finished()), "a loop ended before the trivial calls were served");
    }
    for l in loops {
        let r = l.await.unwrap();
        match r.outcome {
            Err(CallError::DeadlineExceeded { limit_ms }) => assert_eq!(limit_ms, 10_000),
            other => panic!("expected a deadline error, got {other:?}"),
        }
        assert!(r.duration >= DEADLINE, "stopped after {:?}", r.duration);
    }
    // The error is in the operation log too.
    let log = host.log_text(&looping);
    assert!(log.contains("deadline exceeded"), "{log}");
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_cap() {
    let host = Host::new(&[]);
    let c = host.load(components::HOSTILE);
    let inst = installation("mem").limits(|l| l.memory_bytes = 32 << 20).build();
    let r = hostile(&host, &c, &inst, "memory-bomb", "").await;
    match r.outcome {
        Err(CallError::MemoryLimitExceeded { limit, requested }) => {
            assert_eq!(limit, 32 << 20);
            assert!(requested > limit);
        }
        other => panic!("expected memory limit, got {other:?}"),
    }
    // The host is fine: the next call on the same component succeeds.
    let ok = hostile(&host, &c, &inst, "ok", "").await;
    assert!(ok.outcome.unwrap().is_ok());
}

#[tokio::test]
async fn deep_recursion_is_a_stack_overflow() {
    let host = Host::new(&[]);
    let c = host.load(components::HOSTILE);
    let inst = installation("rec").build();
    let r = hostile(&host, &c, &inst, "deep-recursion", "").await;
    assert!(matches!(r.outcome, Err(CallError::StackOverflow { .. })), "{:?}", r.outcome);
}

#[tokio::test]
async fn log_flood_is_bounded() {
    let host = Host::new(&[]);
    let c = host.load(components::HOSTILE);
    // A million host calls take a while in a debug build; the deadline only bounds a hang.
    let inst = installation("flood").limits(|l| l.timeout = Duration::from_secs(300)).build();
    let r = hostile(&host, &c, &inst, "log-flood", "").await;
    assert!(r.outcome.unwrap().is_ok());
    assert!(r.logs_dropped > 900_000, "dropped {}", r.logs_dropped);
    let logs = host.logs(&inst);
    let guest = logs.iter().filter(|e| e.source == Source::Guest).count();
    assert_eq!(guest, 1_000, "the per-call cap keeps 1000 guest entries");
    assert!(logs.iter().any(|e| e.message.contains("log entries dropped")));
}

#[tokio::test]
async fn huge_return_value_is_stopped_by_the_memory_cap() {
    let host = Host::new(&[]);
    let c = host.load(components::HOSTILE);
    let inst = installation("huge").limits(|l| l.memory_bytes = 64 << 20).build();
    let r = hostile(&host, &c, &inst, "huge-return", &(512u64 << 20).to_string()).await;
    assert!(matches!(r.outcome, Err(CallError::MemoryLimitExceeded { .. })), "{:?}", r.outcome);
    // A large but permitted result comes back whole.
    let r = hostile(&host, &c, &inst, "huge-return", &(4u64 << 20).to_string()).await;
    assert!(r.outcome.is_ok(), "{:?}", r.outcome.err());
}

#[tokio::test]
async fn fuel_budget_stops_a_loop() {
    let host = Host::new(&[]);
    let c = host.load(components::HOSTILE);
    let inst = installation("fuel").limits(|l| l.fuel = Some(5_000_000)).build();
    let r = hostile(&host, &c, &inst, "infinite-loop", "").await;
    assert!(matches!(r.outcome, Err(CallError::OutOfFuel { limit: 5_000_000 })), "{:?}", r.outcome);
    assert!(r.fuel_consumed.unwrap() >= 5_000_000);
}

#[tokio::test]
async fn guest_panic_is_a_trap_with_its_message() {
    let host = Host::new(&[]);
    let c = host.load(components::HOSTILE);
    let inst = installation("panic").build();
    let r = hostile(&host, &c, &inst, "panic", "boom-42").await;
    match r.outcome {
        Err(CallError::Trap { message }) => assert!(message.contains("boom-42"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[tokio::test]
async fn stdout_and_stderr_go_to_the_operation_log() {
    let host = Host::new(&[]);
    let c = host.load(components::HOSTILE);
    let inst = installation("stdio").build();
    let r = hostile(&host, &c, &inst, "stdout", "hello-stdio").await;
    assert!(r.outcome.unwrap().is_ok());
    let logs = host.logs(&inst);
    assert!(logs.iter().any(|e| e.source == Source::Stdout && e.message.contains("hello-stdio")), "{logs:?}");
    assert!(logs.iter().any(|e| e.source == Source::Stderr && e.message.contains("hello-stdio")), "{logs:?}");
}

#[tokio::test]
async fn wasi_is_locked_down() {
    // The host process has an environment and a filesystem; the guest sees neither.
    assert!(std::env::vars().count() > 0);
    let host = Host::new(&[]);
    let c = host.load(components::HOSTILE);
    let inst = installation("env").config("region", "eu").build();
    // A real listener the guest tries to reach around the http capability.
    let server = crate::harness::TestServer::start().await;
    let v = hostile(&host, &c, &inst, "environment", &server.addr.to_string()).await.outcome.unwrap().unwrap();
    assert_eq!(v["env"], serde_json::json!([]), "{v}");
    assert_eq!(v["args"], serde_json::json!([]), "{v}");
    assert_eq!(v["stdin"]["bytes"], 0, "{v}");
    for probe in ["read_etc_passwd", "read_relative", "list_root", "write_tmp", "tcp_connect", "udp_bind", "dns_lookup"]
    {
        assert_eq!(v[probe]["ok"], false, "{probe}: {v}");
    }
    assert!(!std::path::Path::new("/tmp/patchbay-escape").exists());
    assert!(server.received().is_empty(), "a raw socket reached the server");
    // Clocks are fine.
    assert!(v["clock_secs"].as_u64().unwrap() > 1_600_000_000, "{v}");
    // Configuration comes through the credentials capability instead.
    let v = hostile(&host, &c, &inst, "config", "").await.outcome.unwrap().unwrap();
    assert_eq!(v["config"], serde_json::json!([["region", "eu"]]), "{v}");
}

#[tokio::test]
async fn instance_and_table_caps_apply() {
    let host = Host::new(&[]);
    let c = host.load(components::HOSTILE);
    // A std component has several core instances; a cap of one refuses to instantiate it.
    let inst = installation("caps").limits(|l| l.max_instances = 1).build();
    let r = hostile(&host, &c, &inst, "ok", "").await;
    match r.outcome {
        Err(CallError::Instantiation { message }) => assert!(message.contains("instance"), "{message}"),
        other => panic!("expected an instantiation error, got {other:?}"),
    }
    let inst = installation("caps2").limits(|l| l.max_table_elements = 1).build();
    let r = hostile(&host, &c, &inst, "ok", "").await;
    assert!(r.outcome.is_err(), "a one-element table cap cannot hold the component's tables");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_beyond_the_pool_wait_for_a_slot_instead_of_failing() {
    let server = crate::harness::TestServer::start().await;
    let host = Host::with_config(&["127.0.0.1/32"], |c| c.max_concurrent_calls = 2);
    let c = host.load(components::HOSTILE);
    let inst = installation("busy").allow("http://127.0.0.1:*").build();
    let req = serde_json::json!({"url": server.url("/slow?ms=500")}).to_string();
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let (rt, c, inst, req) = (host.runtime.clone(), c.clone(), inst.clone(), req.clone());
            tokio::spawn(async move {
                let input = serde_json::json!({"req": {"entity": "http", "mode": "full", "cursor": req, "limit": 1}});
                patchbay_runtime::calls::invoke_json(&rt, &c, &inst, "sync.read-batch", input).await.unwrap()
            })
        })
        .collect();
    let mut queued = 0;
    for call in calls {
        let r = call.await.unwrap();
        assert!(r.outcome.is_ok(), "{:?}", r.outcome);
        if r.queued >= Duration::from_millis(100) {
            queued += 1;
        }
    }
    assert!(queued >= 8, "with 2 slots most of 12 calls wait: {queued}");
    assert_eq!(server.received().len(), 12);
}
