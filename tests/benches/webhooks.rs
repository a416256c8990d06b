//! What the webhook benchmarks (`ingest`, `soak`) share: an HTTP/1.1 load generator over
//! keep-alive connections, a host in this process serving its API, the GitHub → notify-webhook
//! setup with one route, signed push webhooks, and the sink the connector posts to.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// An environment variable read as a number, or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Makes the `n`th request's extra headers and body.
pub type Vary = Arc<dyn Fn(u64) -> (Vec<(&'static str, String)>, Bytes) + Send + Sync>;

/// One request to send: path, headers, body, or what makes each request's own.
#[derive(Clone)]
pub struct Shot {
    /// Request path.
    pub path: String,
    /// Headers sent with every request.
    pub headers: Vec<(&'static str, String)>,
    /// Extra headers and the body of the `n`th request; `body` for every request when `None`.
    pub vary: Option<Vary>,
    /// The request body when `vary` is `None`.
    pub body: Bytes,
}

impl Shot {
    /// The `n`th request's headers (every one of them) and body.
    pub fn request(&self, n: u64) -> (Vec<(String, String)>, Bytes) {
        let mut headers: Vec<_> = self.headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        let body = match &self.vary {
            Some(vary) => {
                let (more, body) = vary(n);
                headers.extend(more.into_iter().map(|(k, v)| (k.to_string(), v)));
                body
            }
            None => self.body.clone(),
        };
        (headers, body)
    }
}

/// Requests answered 2xx and otherwise, counted while a load runs.
#[derive(Default)]
pub struct Tally {
    /// Requests answered with a 2xx status.
    pub ok: AtomicU64,
    /// Requests answered otherwise, or whose connection failed.
    pub failed: AtomicU64,
    stop: AtomicBool,
}

impl Tally {
    /// Tells the connections of [`drive`] to stop after their current request.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Posts `shot` over `connections` keep-alive HTTP/1.1 connections until `tally` is stopped,
/// counting answers in `tally`; returns when every connection has stopped.
pub async fn drive(addr: SocketAddr, shot: Shot, connections: usize, tally: Arc<Tally>) {
    let counter = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (tally, counter, shot) = (tally.clone(), counter.clone(), shot.clone());
        tasks.push(tokio::spawn(async move {
            let Ok(stream) = tokio::net::TcpStream::connect(addr).await else { return };
            let _ = stream.set_nodelay(true);
            let Ok((mut sender, conn)) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
            else {
                return;
            };
            tokio::spawn(conn);
            while !tally.stop.load(Ordering::Relaxed) {
                let mut req = hyper::Request::post(shot.path.as_str()).header("host", "bench");
                for (k, v) in &shot.headers {
                    req = req.header(*k, v.as_str());
                }
                let body = match &shot.vary {
                    Some(vary) => {
                        let (headers, body) = vary(counter.fetch_add(1, Ordering::Relaxed));
                        for (k, v) in headers {
                            req = req.header(k, v);
                        }
                        body
                    }
                    None => shot.body.clone(),
                };
                let Ok(req) = req.body(Full::new(body)) else { return };
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let good = resp.status().is_success();
                        let _ = resp.into_body().collect().await;
                        if good { &tally.ok } else { &tally.failed }.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Posts `shot` over `connections` keep-alive HTTP/1.1 connections for `secs`; returns
/// successful requests per second (and the count of failures).
pub async fn load(addr: SocketAddr, shot: Shot, connections: usize, secs: u64) -> (f64, u64) {
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let stopper = tally.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stopper.stop();
    });
    drive(addr, shot, connections, tally.clone()).await;
    (tally.ok.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(), tally.failed.load(Ordering::Relaxed))
}

/// What a benchmark host keeps on disk: its data directory and, on PostgreSQL, its schema. Both
/// are removed when this is dropped (keep it for as long as the host runs): a large-store run
/// leaves tens of gigabytes otherwise.
pub struct Scratch {
    dir: tempfile::TempDir,
    db: Option<patchbay_tests::db::TestDb>,
}

impl Scratch {
    /// A new data directory, with a fresh PostgreSQL schema when `backend` is PostgreSQL.
    pub async fn new(backend: Backend) -> anyhow::Result<Scratch> {
        let db = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(patchbay_tests::db::fresh_database(Backend::Postgres).await),
        };
        Ok(Scratch { dir: tempfile::tempdir()?, db })
    }

    /// The data directory.
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The PostgreSQL URL of the schema, if any.
    pub fn database_url(&self) -> Option<String> {
        self.db.as_ref().map(|db| db.url.clone())
    }
}

/// A host in this process on `backend`, serving its API; `dispatch` turns the dispatcher on.
pub async fn host(backend: Backend, dispatch: bool) -> anyhow::Result<(Host, SocketAddr, Scratch)> {
    let dir = Scratch::new(backend).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut env = HashMap::new();
    env.insert("PATCHBAY_EGRESS_ALLOW_NETWORKS", "127.0.0.1/32".to_string());
    let database = dir.database_url();
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

/// The GitHub webhook secret [`setup`] configures.
pub const SECRET: &str = "bench-webhook-secret";

/// Tenant, github source with its secret, notify-webhook destination to `sink`, one route.
/// Returns the webhook path.
pub async fn setup(app: &Host, sink: &str) -> anyhow::Result<String> {
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

/// A GitHub push event body; `id` makes it (and so its signature) differ from every other's.
pub fn push_body(id: &str) -> String {
    json!({
        "ref": "refs/heads/main", "after": id,
        "repository": {"full_name": "acme/widgets", "id": 1}, "pusher": {"name": "octocat"},
        "head_commit": {"id": id, "message": "Fix the frobnicator",
            "timestamp": "2026-11-20T10:00:00Z"},
        "commits": [],
    })
    .to_string()
}

/// Signed push webhooks to `path`, each a different push with its own delivery id (GitHub's
/// scheme signs no timestamp, so the host also deduplicates on the signed body: repeating one
/// body would measure duplicate answers).
pub fn webhook_shot(path: &str) -> Shot {
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let vary: Vary = Arc::new(move |n| {
        let id = format!("{run:x}-{n:x}");
        let body = push_body(&id);
        let headers = vec![
            ("x-hub-signature-256", sign_github(SECRET, body.as_bytes())),
            ("x-github-delivery", format!("d-{id}")),
        ];
        (headers, Bytes::from(body))
    });
    Shot {
        path: path.to_string(),
        headers: vec![("content-type", "application/json".into()), ("x-github-event", "push".into())],
        vary: Some(vary),
        body: Bytes::new(),
    }
}

/// The sink the notify-webhook connector posts to: when each key arrived.
pub type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

/// Starts the sink; returns its arrivals (kept while `record` says so) and its URL.
pub async fn sink_with(record: bool) -> anyhow::Result<(Arrivals, Arc<AtomicU64>, String)> {
    let arrivals: Arrivals = Arc::default();
    let received = Arc::new(AtomicU64::new(0));
    let (a, n) = (arrivals.clone(), received.clone());
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let (a, n) = (a.clone(), n.clone());
        async move {
            let at = Instant::now();
            n.fetch_add(1, Ordering::Relaxed);
            if record {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if let Some(k) = v["text"].as_str()
                    && let Ok(mut m) = a.lock()
                {
                    m.insert(k.to_string(), at);
                }
            }
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((arrivals, received, format!("http://{addr}/effects")))
}

/// The sink, recording when each key arrived.
pub async fn sink() -> anyhow::Result<(Arrivals, String)> {
    let (arrivals, _, url) = sink_with(true).await?;
    Ok((arrivals, url))
}

/// The `p` quantile of sorted durations, in milliseconds.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Webhooks to `path` at `rate` per second for `secs`, open loop: each of `connections`
/// keep-alive connections sends on its own schedule (a late answer makes the next ones go at
/// once). Returns, for every event the sink received within 10 s after the last one was sent, the
/// time from the webhook's 200 to the sink receiving the connector's request, and how many
/// webhooks were accepted.
pub async fn paced(
    addr: SocketAddr,
    shot: Shot,
    arrivals: Arrivals,
    rate: u64,
    secs: u64,
    connections: usize,
) -> anyhow::Result<(Vec<Duration>, usize)> {
    let counter = Arc::new(AtomicU64::new(0));
    let total = rate * secs;
    let period = Duration::from_secs_f64(connections as f64 / rate as f64);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (counter, shot) = (counter.clone(), shot.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            // Connections start spread over one period.
            tokio::time::sleep(period.mul_f64(c as f64 / connections as f64)).await;
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut acked = Vec::new();
            loop {
                ticks.tick().await;
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let (headers, body) = shot.request(n);
                let mut req = hyper::Request::post(shot.path.as_str()).header("host", "bench");
                for (k, v) in &headers {
                    req = req.header(k.as_str(), v.as_str());
                }
                let resp = sender.send_request(req.body(Full::new(body))?).await?;
                let at = Instant::now();
                anyhow::ensure!(resp.status().is_success(), "webhook answered {}", resp.status());
                let v: Value = serde_json::from_slice(&resp.into_body().collect().await?.to_bytes())?;
                if let Some(event) = v["events"][0].as_str() {
                    acked.push((event.to_string(), at));
                }
            }
            anyhow::Ok(acked)
        }));
    }
    let mut acked = HashMap::new();
    for t in tasks {
        acked.extend(t.await??);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut latencies = Vec::with_capacity(acked.len());
    loop {
        let arrived: HashMap<String, Instant> = arrivals
            .lock()
            .map(|m| m.iter().filter_map(|(k, t)| k.split_once('.').map(|(e, _)| (e.to_string(), *t))).collect())
            .unwrap_or_default();
        if arrived.len() >= acked.len() || Instant::now() > deadline {
            for (event, at) in &acked {
                if let Some(t) = arrived.get(event) {
                    latencies.push(t.saturating_duration_since(*at));
                }
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    latencies.sort();
    Ok((latencies, acked.len()))
}
