//! Shared test scaffolding: a recording HTTP server on 127.0.0.1, a runtime with inspectable
//! in-memory backends, and helpers to build installations and call the hostile component.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use patchbay_core::Scope;
use patchbay_core::log::LogEntry;
use patchbay_runtime::LoadedComponent;
use patchbay_runtime::capability::credentials::Secrets;
use patchbay_runtime::capability::events::MemoryEventSink;
use patchbay_runtime::capability::http::{Cidr, NetworkPolicy};
use patchbay_runtime::capability::log::MemoryOperationLog;
use patchbay_runtime::capability::state::MemoryStateStore;
use patchbay_runtime::{CallReport, Installation, Limits, Runtime, RuntimeConfig, Services};
use serde_json::Value;

/// One request the test server received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

/// A local HTTP server standing in for external services.
///
/// Routes: `/echo` reflects the request headers (body and `x-echo-authorization`); `/slack` answers `ok` like a Slack incoming webhook; `/status/<code>` answers that status
/// (429 with `Retry-After: 7`); `/flaky/<n>/<name>` answers 503 n times, then `ok`;
/// `/redirect?to=<url>` answers 302; `/big?n=<bytes>`; `/slow?ms=<ms>`;
/// anything else answers `hello`.
#[derive(Clone)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl TestServer {
    pub async fn start() -> Self {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let app = axum::Router::new().fallback(handle).with_state(requests.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn received(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

fn query_param(q: Option<&str>, key: &str) -> Option<String> {
    url::form_urlencoded::parse(q?.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

async fn handle(State(requests): State<Arc<Mutex<Vec<Recorded>>>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().map(str::to_string);
    requests.lock().unwrap().push(Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        query: query.clone(),
        headers: parts.headers.clone(),
        body,
    });
    let reply = |status: u16, body: Body| Response::builder().status(status).body(body).unwrap();
    if path == "/echo" {
        // Reflects the request headers, as httpbin-style services do.
        let headers: serde_json::Map<String, Value> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_str().unwrap_or("").to_string())))
            .collect();
        let mut r = reply(200, Body::from(Value::Object(headers).to_string()));
        if let Some(auth) = parts.headers.get("authorization") {
            r.headers_mut().insert("x-echo-authorization", auth.clone());
        }
        return r;
    }
    if path == "/slack" {
        return reply(200, Body::from("ok"));
    }
    if let Some(rest) = path.strip_prefix("/flaky/") {
        // `/flaky/<n>/<name>`: 503 for the first n requests to this path, then `ok`.
        let n: usize = rest.split('/').next().and_then(|n| n.parse().ok()).unwrap_or(1);
        let seen = requests.lock().unwrap().iter().filter(|r| r.path == path).count();
        return if seen <= n { reply(503, Body::from("try later")) } else { reply(200, Body::from("ok")) };
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let code: u16 = code.parse().unwrap_or(500);
        let mut r = reply(code, Body::from(format!("status {code}")));
        if code == 429 {
            r.headers_mut().insert("retry-after", "7".parse().unwrap());
        }
        return r;
    }
    if path == "/redirect" {
        let to = query_param(query.as_deref(), "to").unwrap_or_default();
        let mut r = reply(302, Body::empty());
        r.headers_mut().insert("location", to.parse().unwrap());
        return r;
    }
    if path == "/big" {
        let n: usize = query_param(query.as_deref(), "n").and_then(|n| n.parse().ok()).unwrap_or(1 << 20);
        return reply(200, Body::from(vec![b'x'; n]));
    }
    if path == "/slow" {
        let ms: u64 = query_param(query.as_deref(), "ms").and_then(|n| n.parse().ok()).unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        return reply(200, Body::from("slow"));
    }
    let _ = StatusCode::OK;
    reply(200, Body::from("hello"))
}

/// A runtime whose backends the test can inspect.
pub struct Host {
    pub runtime: Runtime,
    pub oplog: Arc<MemoryOperationLog>,
    pub state: Arc<MemoryStateStore>,
    pub events: Arc<MemoryEventSink>,
}

impl Host {
    /// Strict network policy except for the given networks.
    pub fn new(allow_networks: &[&str]) -> Self {
        Self::with_config(allow_networks, |_| {})
    }

    pub fn with_config(allow_networks: &[&str], tweak: impl FnOnce(&mut RuntimeConfig)) -> Self {
        let oplog = Arc::new(MemoryOperationLog::new(1_000_000));
        let state = Arc::new(MemoryStateStore::default());
        let events = Arc::new(MemoryEventSink::default());
        let services = Services { oplog: oplog.clone(), state: state.clone(), events: events.clone() };
        let nets: Vec<Cidr> = allow_networks.iter().map(|n| n.parse().unwrap()).collect();
        let mut config = RuntimeConfig {
            network: NetworkPolicy::allowing(nets),
            max_concurrent_calls: 16,
            ..RuntimeConfig::default()
        };
        tweak(&mut config);
        let runtime = Runtime::new(config, services).unwrap();
        Self { runtime, oplog, state, events }
    }

    pub fn load(&self, path: &str) -> Arc<LoadedComponent> {
        let wasm = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        self.runtime.load(&wasm).unwrap()
    }

    pub fn logs(&self, inst: &Installation) -> Vec<LogEntry> {
        self.oplog.entries(&inst.scope)
    }

    /// Every log entry rendered as one string, for "never contains" assertions.
    pub fn log_text(&self, inst: &Installation) -> String {
        self.logs(inst)
            .iter()
            .map(|e| {
                let f: Vec<String> = e.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{} {}", e.message, f.join(" "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Builds an installation.
pub struct InstallationBuilder {
    tenant: String,
    id: String,
    config: BTreeMap<String, String>,
    secrets: Secrets,
    allowed: Vec<String>,
    limits: Limits,
    readable: Vec<String>,
    fixtures: Option<Arc<patchbay_runtime::capability::http::fixtures::Fixtures>>,
}

pub fn installation(id: &str) -> InstallationBuilder {
    InstallationBuilder {
        tenant: "tenant-1".into(),
        id: id.into(),
        config: BTreeMap::new(),
        secrets: Secrets::new(),
        allowed: Vec::new(),
        limits: Limits { timeout: Duration::from_secs(10), ..Limits::default() },
        readable: Vec::new(),
        fixtures: None,
    }
}

impl InstallationBuilder {
    pub fn tenant(mut self, t: &str) -> Self {
        self.tenant = t.into();
        self
    }
    pub fn config(mut self, k: &str, v: &str) -> Self {
        self.config.insert(k.into(), v.into());
        self
    }
    pub fn secret(mut self, k: &str, v: &str) -> Self {
        self.secrets.insert(k, v);
        self
    }
    /// Lets the guest read secret `k` itself, as a manifest's `guest_readable` does.
    pub fn readable(mut self, k: &str) -> Self {
        self.readable.push(k.into());
        self
    }
    pub fn allow(mut self, pattern: &str) -> Self {
        self.allowed.push(pattern.into());
        self
    }
    pub fn limits(mut self, f: impl FnOnce(&mut Limits)) -> Self {
        f(&mut self.limits);
        self
    }
    /// Test mode: requests answered from these fixtures (JSON), never from the network.
    pub fn fixtures(mut self, json: &str) -> Self {
        let parsed = patchbay_runtime::capability::http::fixtures::Fixtures::parse(json).unwrap();
        self.fixtures = Some(Arc::new(parsed));
        self
    }
    pub fn build(self) -> Installation {
        Installation::new(
            Scope::new(self.tenant, self.id.clone()),
            "test@0.0.0",
            self.config,
            self.secrets,
            &self.allowed,
            self.limits,
        )
        .unwrap()
        .with_guest_readable(self.readable)
        .with_fixtures(self.fixtures)
    }
}

/// Calls the hostile component's `read-batch` with `entity = behaviour` and `cursor = arg`.
/// Returns the report, with the outcome reduced to the `data` JSON of the batch's first record
/// (`Err` strings for connector errors).
pub async fn hostile(
    host: &Host,
    c: &LoadedComponent,
    inst: &Installation,
    behaviour: &str,
    arg: &str,
) -> CallReport<Result<Value, String>> {
    let input = serde_json::json!({"req": { "entity": behaviour, "mode": "full", "cursor": arg, "limit": 1 }});
    let r = patchbay_runtime::calls::invoke_json(&host.runtime, c, inst, "read-batch", input).await.unwrap();
    r.map(|v| {
        if let Some(ok) = v.get("ok") {
            let data = ok["records"][0]["data"].as_str().unwrap_or("null");
            Ok(serde_json::from_str(data).unwrap_or(Value::String(data.to_string())))
        } else {
            Err(v.get("err").map(|e| e.to_string()).unwrap_or_else(|| v.to_string()))
        }
    })
}
