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
//! `cargo bench -p patchbay-tests --bench ingest`. `PATCHBAY_BENCH_SECS` (default 5) sets each
//! throughput run's length, `PATCHBAY_BENCH_CONNECTIONS` (default 64) the concurrent
//! keep-alive connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use patchbay_crypto::webhook::sign_github;
use patchbay_services::Host;
use patchbay_services::config::{Overrides, Settings};
use patchbay_store::Backend;
use patchbay_tests::MapEnv;
use serde_json::{Value, json};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// One request to send: path, extra headers (the counter is appended to header `vary`), body.
#[derive(Clone)]
struct Shot {
    path: String,
    headers: Vec<(&'static str, String)>,
    vary: Option<&'static str>,
    body: Bytes,
}

/// Posts `shot` over `connections` keep-alive HTTP/1.1 connections for `secs`; returns
/// successful requests per second (and the count of failures).
async fn load(addr: SocketAddr, shot: Shot, connections: usize, secs: u64) -> (f64, u64) {
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (ok, failed, counter, shot) = (ok.clone(), failed.clone(), counter.clone(), shot.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(stream) = tokio::net::TcpStream::connect(addr).await else { return };
            let _ = stream.set_nodelay(true);
            let Ok((mut sender, conn)) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
            else {
                return;
            };
            tokio::spawn(conn);
            while Instant::now() < deadline {
                let mut req = hyper::Request::post(shot.path.as_str()).header("host", "bench");
                for (k, v) in &shot.headers {
                    req = req.header(*k, v.as_str());
                }
                if let Some(name) = shot.vary {
                    req = req.header(name, format!("d-{}", counter.fetch_add(1, Ordering::Relaxed)));
                }
                let Ok(req) = req.body(Full::new(shot.body.clone())) else { return };
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let good = resp.status().is_success();
                        let _ = resp.into_body().collect().await;
                        if good { &ok } else { &failed }.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (ok.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(), failed.load(Ordering::Relaxed))
}

/// A host in this process on `backend`, serving its API; `dispatch` turns the dispatcher on.
async fn host(backend: Backend, dispatch: bool) -> anyhow::Result<(Host, SocketAddr, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut env = HashMap::new();
    env.insert("PATCHBAY_EGRESS_ALLOW_NETWORKS", "127.0.0.1/32".to_string());
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => {
            let db = patchbay_tests::db::fresh_database(Backend::Postgres).await;
            let url = db.url.clone();
            // The schema outlives the bench run; it is dropped with the next fresh_database
            // sweep or by hand. Keep it alive for the process.
            std::mem::forget(db);
            Some(url)
        }
    };
    if let Some(url) = &database {
        env.insert("DATABASE_URL", url.clone());
    }
    let settings = Settings::load(
        Overrides { config: None, listen: Some(addr.to_string()), data_dir: Some(dir.path().to_path_buf()) },
        &MapEnv(env),
    )?;
    let (app, startup) = Host::open(&settings).await?;
    if dispatch {
        let config = patchbay_services::dispatch::worker::DispatchConfig::default();
        app.spawn_dispatcher(config, Some(&startup.database));
    }
    let router = patchbay_api::router(app.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((app, addr, dir))
}

const SECRET: &str = "bench-webhook-secret";

/// Tenant, github source with its secret, notify-webhook destination to `sink`, one route.
/// Returns the webhook path.
async fn setup(app: &Host, sink: &str) -> anyhow::Result<String> {
    app.access.create_tenant("bench", None).await?;
    let gh: patchbay_services::installations::CreateInstallation =
        serde_json::from_value(json!({ "connector": "github", "name": "src" }))?;
    let gh = app.installations.create("bench", gh).await?;
    let gh_id = gh.row.id.clone();
    app.installations
        .put_credentials(
            "bench",
            &gh_id,
            json!({ "webhook_secret": SECRET }).as_object().unwrap_or(&Default::default()),
        )
        .await?;
    let dest: patchbay_services::installations::CreateInstallation = serde_json::from_value(
        json!({ "connector": "notify-webhook", "name": "dest", "config": { "webhook_url": sink } }),
    )?;
    let dest = app.installations.create("bench", dest).await?;
    let route: patchbay_services::routes::CreateRoute = serde_json::from_value(json!({
        "name": "all", "event_types": ["github.*"], "destination_installation": dest.row.id,
        "operation": "send",
        "payload_template": {"notification": {"to": [], "cc": [], "bcc": [], "attachments": [], "categories": [],
            "metadata": [], "text": "{{delivery.idempotency_key}}"}},
    }))?;
    app.routes.create("bench", route).await?;
    let url = app.installations.webhook_url("bench", &gh_id).await?;
    let path = url.split_once("/hooks/").map(|(_, h)| format!("/hooks/{h}")).unwrap_or_default();
    Ok(path)
}

fn push_body() -> String {
    json!({
        "ref": "refs/heads/main", "after": "5f0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b",
        "repository": {"full_name": "acme/widgets", "id": 1}, "pusher": {"name": "octocat"},
        "head_commit": {"id": "5f0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b", "message": "Fix the frobnicator",
            "timestamp": "2026-11-20T10:00:00Z"},
        "commits": [],
    })
    .to_string()
}

fn webhook_shot(path: &str) -> Shot {
    let body = push_body();
    Shot {
        path: path.to_string(),
        headers: vec![
            ("content-type", "application/json".into()),
            ("x-github-event", "push".into()),
            ("x-hub-signature-256", sign_github(SECRET, body.as_bytes())),
        ],
        vary: Some("x-github-delivery"),
        body: Bytes::from(body),
    }
}

/// The sink the notify-webhook connector posts to: records when each key arrived.
type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

async fn sink() -> anyhow::Result<(Arrivals, String)> {
    let arrivals: Arrivals = Arc::default();
    let a = arrivals.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let a = a.clone();
        async move {
            let at = Instant::now();
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(k) = v["text"].as_str()
                && let Ok(mut m) = a.lock()
            {
                m.insert(k.to_string(), at);
            }
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((arrivals, format!("http://{addr}/effects")))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Where one request's time goes, sequentially in process (no HTTP, no contention): the whole
/// ingest, the connector's `transform` alone, and the durable write alone.
async fn breakdown(backend: Backend, n: usize) -> anyhow::Result<()> {
    let (app, _addr, _dir) = host(backend, false).await?;
    let (_, sink_url) = sink().await?;
    let path = setup(&app, &sink_url).await?;
    let hook = path.trim_start_matches("/hooks/").to_string();
    let shot = webhook_shot(&path);
    let headers: Vec<(String, String)> = shot
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .chain([("x-github-event".to_string(), "push".to_string())])
        .collect();
    let mut whole = Vec::with_capacity(n);
    for i in 0..n + 100 {
        let mut h = headers.clone();
        h.push(("x-github-delivery".into(), format!("b-{i}")));
        let req = patchbay_services::ingress::InboundWebhook {
            hook_id: hook.clone(),
            method: "POST".into(),
            path: path.clone(),
            headers: h,
            body: shot.body.to_vec(),
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
        let mut h = headers.clone();
        h.push(("x-github-delivery".into(), format!("w-{i}")));
        let req = patchbay_runtime::calls::IncomingRequest {
            method: "POST".into(),
            path: path.clone(),
            headers: h,
            body: shot.body.to_vec(),
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
        let mut req = client.post(&url).body(shot.body.clone()).header("x-github-delivery", format!("lat-{i}"));
        for (k, v) in &shot.headers {
            req = req.header(*k, v.as_str());
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
        let body = Bytes::from(push_body());
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
