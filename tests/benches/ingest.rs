//! Webhook ingest throughput and webhook → connector delivery latency, beside an axum
//! hello-world on the same machine in the same run.
//!
//! - **hello world**: `POST /` answered `ok` by a bare axum router: the ceiling of the HTTP stack
//!   and of this load generator.
//! - **ingest**: signed GitHub-style webhooks to `POST /hooks/{hook_id}` of a host in this
//!   process: HMAC verified on the raw body, the github connector's `transform` in a fresh sandbox,
//!   one route matched, and the raw request + event + delivery committed before the 200 (the
//!   dispatcher is off here, so only ingest is measured). SQLite always; PostgreSQL when
//!   `DATABASE_URL` is set.
//! - **latency**: one webhook at a time through a route to the notify-webhook connector, which
//!   posts to a local sink; from sending the webhook to the sink receiving the connector's
//!   request, and from the webhook's 200 to that moment.
//!
//! `cargo bench -p patchbay-benches --bench ingest`. `PATCHBAY_BENCH_SECS` (default 5) sets each
//! throughput run's length, `PATCHBAY_BENCH_CONNECTIONS` (default 64) the concurrent
//! keep-alive connections.

use std::time::{Duration, Instant};

use hyper::body::Bytes;
use patchbay_benches::webhooks::{Shot, env_num, host, load, percentile, push_body, setup, sink, webhook_shot};
use patchbay_store::Backend;
use serde_json::Value;

/// Where one request's time goes, sequentially in process (no HTTP, no contention): the whole
/// ingest, the connector's `transform` alone, and the durable write alone.
async fn breakdown(backend: Backend, n: usize) -> anyhow::Result<()> {
    let (app, _addr, _dir) = host(backend, false).await?;
    let (_, sink_url) = sink().await?;
    let path = setup(&app, &sink_url).await?;
    let hook = path.trim_start_matches("/hooks/").to_string();
    let shot = webhook_shot(&path);
    let mut whole = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let (headers, body) = shot.request(i as u64);
        let req = patchbay_services::ingress::InboundWebhook {
            hook_id: hook.clone(),
            method: "POST".into(),
            path: path.clone(),
            headers,
            body: body.to_vec(),
            received_at_ms: patchbay_core::now_ms(),
        };
        let t = Instant::now();
        app.ingress.ingest(req).await?;
        if i >= 100 {
            whole.push(t.elapsed());
        }
    }
    whole.sort();
    let r = app
        .installations
        .resolve("bench", &app.store().installation_by_hook(&hook).await?.map(|r| r.id).unwrap_or_default())
        .await?;
    let mut wasm = Vec::with_capacity(n);
    for i in 0..n {
        let (headers, body) = shot.request((n + 100 + i) as u64);
        let req = patchbay_runtime::calls::IncomingRequest {
            method: "POST".into(),
            path: path.clone(),
            headers,
            body: body.to_vec(),
            received_at: 0,
        };
        let t = Instant::now();
        let report = patchbay_runtime::calls::webhook_ingress(
            app.runtime(),
            &r.prepared.component,
            &r.prepared.installation,
            req,
            false,
        )
        .await;
        report.outcome.map_err(|e| anyhow::anyhow!("{e}"))?;
        wasm.push(t.elapsed());
    }
    wasm.sort();
    println!(
        "{:<44} p50={:>7.1} µs  p99={:>7.1} µs   (transform in a fresh sandbox: p50={:.1} µs)",
        format!("one ingest, sequential, {backend}"),
        percentile(&whole, 0.5) * 1e3,
        percentile(&whole, 0.99) * 1e3,
        percentile(&wasm, 0.5) * 1e3,
    );
    app.flush().await;
    Ok(())
}

async fn latency(backend: Backend, n: usize) -> anyhow::Result<()> {
    let (arrivals, sink_url) = sink().await?;
    let (app, addr, _dir) = host(backend, true).await?;
    let path = setup(&app, &sink_url).await?;
    let shot = webhook_shot(&path);
    let client = reqwest::Client::new();
    let url = format!("http://{addr}{path}");
    let mut total = Vec::with_capacity(n);
    let mut after_ack = Vec::with_capacity(n);
    for i in 0..n + 50 {
        let sent = Instant::now();
        let (headers, body) = shot.request(i as u64);
        let mut req = client.post(&url).body(body);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let r = req.send().await?;
        anyhow::ensure!(r.status().is_success(), "webhook answered {}", r.status());
        let v: Value = r.json().await?;
        let acked = Instant::now();
        let event = v["events"][0].as_str().unwrap_or_default().to_string();
        let prefix = format!("{event}.");
        let deadline = Instant::now() + Duration::from_secs(10);
        let arrived = loop {
            let found =
                arrivals.lock().ok().and_then(|m| m.iter().find(|(k, _)| k.starts_with(&prefix)).map(|(_, t)| *t));
            if let Some(t) = found {
                break t;
            }
            anyhow::ensure!(Instant::now() < deadline, "event {event} was not delivered");
            tokio::task::yield_now().await;
        };
        if let Ok(mut m) = arrivals.lock() {
            m.clear();
        }
        if i >= 50 {
            total.push(arrived.saturating_duration_since(sent));
            after_ack.push(arrived.saturating_duration_since(acked));
        }
    }
    total.sort();
    after_ack.sort();
    println!(
        "{:<44} p50={:>7.3} ms  p99={:>7.3} ms   (after the 200: p50={:.3} ms p99={:.3} ms)",
        format!("webhook → connector → sink, {backend} ({n})"),
        percentile(&total, 0.5),
        percentile(&total, 0.99),
        percentile(&after_ack, 0.5),
        percentile(&after_ack, 0.99),
    );
    app.flush().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let secs = env_num("PATCHBAY_BENCH_SECS", 5);
    let connections = env_num("PATCHBAY_BENCH_CONNECTIONS", 64) as usize;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let hello = axum::Router::new().route("/", axum::routing::post(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, hello).await });
        let body = Bytes::from(push_body("hello"));
        let shot =
            Shot { path: "/".into(), headers: vec![("content-type", "application/json".into())], vary: None, body };
        let (rps, failed) = load(addr, shot, connections, secs).await;
        println!("{:<44} {rps:>9.0} req/s  ({failed} failed)", "axum hello-world POST");

        let mut backends = vec![Backend::Sqlite];
        if std::env::var("DATABASE_URL").is_ok() {
            backends.push(Backend::Postgres);
        }
        for backend in backends.iter().copied() {
            let (_, sink_url) = sink().await?;
            let (app, addr, _dir) = host(backend, false).await?;
            let path = setup(&app, &sink_url).await?;
            // Warm up: compile caches, prepared installation, connections.
            let _ = load(addr, webhook_shot(&path), 4, 1).await;
            let (rps, failed) = load(addr, webhook_shot(&path), connections, secs).await;
            let depth = app.store().outbox_depth().await?;
            println!(
                "{:<44} {rps:>9.0} events/s  ({failed} failed; {} deliveries queued)",
                format!("verified + durable webhook ingest, {backend}"),
                depth.pending
            );
            app.flush().await;
        }
        for backend in backends.iter().copied() {
            breakdown(backend, 2000).await?;
        }
        for backend in backends {
            latency(backend, 500).await?;
        }
        anyhow::Ok(())
    })
}
