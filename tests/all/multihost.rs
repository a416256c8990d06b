//! At-least-once delivery with exactly-once effects across hosts and crashes.
//!
//! Three `patchbay serve` processes share one PostgreSQL database; 10 000 signed webhooks go in
//! (spread over the hosts, retried on another host when one fails, as senders do), a route sends
//! each event through the notify-webhook connector to a local sink that applies effects by
//! idempotency key. One host is killed with SIGKILL mid-flight. Every event must be delivered
//! (its key seen by the sink), none lost, and no event stored twice; redeliveries after the kill
//! are allowed and counted (they reach the sink with the same key, so the effect happens once).
//! The same with one host on SQLite, killed and restarted.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use patchbay_crypto::webhook::sign_github;
use patchbay_store::Backend;
use patchbay_tests::{eventually, scaled};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::server::Server;

const EVENTS: usize = 10_000;
const SECRET: &str = "multi-host-secret-5e1d";

/// The sink: effects applied once per idempotency key; every request counted.
#[derive(Default)]
struct Sink {
    effects: Mutex<HashMap<String, usize>>,
    requests: AtomicUsize,
}

async fn sink_handler(State(sink): State<Arc<Sink>>, body: axum::body::Bytes) -> &'static str {
    sink.requests.fetch_add(1, Ordering::Relaxed);
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(key) = v["text"].as_str() {
        *sink.effects.lock().unwrap().entry(key.to_string()).or_default() += 1;
    }
    "ok"
}

async fn start_sink() -> (Arc<Sink>, String) {
    let sink = Arc::new(Sink::default());
    let app = axum::Router::new().fallback(sink_handler).with_state(sink.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (sink, format!("http://{addr}/effects"))
}

/// Sets up the tenant, the github source, the notify destination and the route; returns the
/// webhook path (`/hooks/…`, the same on every host) and the tenant's token.
async fn setup(s: &Server, sink_url: &str) -> (String, String) {
    let t = s.tenant("acme").await;
    let r = s.post("/v1/installations", &t, json!({ "connector": "github", "name": "src" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let gh = r.body["id"].as_str().unwrap().to_string();
    let url = r.body["webhook_url"].as_str().unwrap().to_string();
    let path = url.strip_prefix(&s.url).unwrap().to_string();
    let r = s
        .call(
            reqwest::Method::PUT,
            &format!("/v1/installations/{gh}/credentials"),
            &t,
            Some(json!({ "webhook_secret": SECRET })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s
        .post(
            "/v1/installations",
            &t,
            json!({ "connector": "notify-webhook", "name": "sink", "config": { "webhook_url": sink_url } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let dest = r.body["id"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/v1/routes",
            &t,
            json!({
                "name": "all-to-sink",
                "event_types": ["github.*"],
                "destination_installation": dest,
                "operation": "send",
                "payload_template": {"notification": {
                    "to": [], "cc": [], "bcc": [], "attachments": [], "categories": [], "metadata": [],
                    "text": "{{delivery.idempotency_key}}"
                }},
                "retry_schedule": [0, 1, 1, 2, 5, 10],
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    (path, t)
}

/// One host as the sender sees it: its base URL and whether it is believed up.
struct Target {
    base: Mutex<String>,
    up: AtomicBool,
}

/// Sends all webhooks with `workers` concurrent senders, each retrying a failed request on the
/// next live host. Returns the event id each webhook was answered with.
async fn send_all(targets: Arc<Vec<Target>>, path: String, sent: Arc<AtomicUsize>) -> Vec<String> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let next = Arc::new(AtomicUsize::new(0));
    let answers: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(vec![None; EVENTS]));
    let mut tasks = Vec::new();
    for w in 0..48 {
        let (http, targets, path, next, answers, sent) =
            (http.clone(), targets.clone(), path.clone(), next.clone(), answers.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let mut turn = w;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= EVENTS {
                    return;
                }
                let body = json!({
                    "ref": "refs/heads/main", "after": format!("{i:040x}"),
                    "repository": {"full_name": "acme/widgets"}, "pusher": {"name": "octocat"},
                    "head_commit": {"id": format!("{i:040x}"), "message": format!("commit {i}")}, "commits": [],
                })
                .to_string();
                let signature = sign_github(SECRET, body.as_bytes());
                let started = Instant::now();
                loop {
                    assert!(started.elapsed() < scaled(Duration::from_secs(120)), "webhook {i} never accepted");
                    turn += 1;
                    let t = &targets[turn % targets.len()];
                    if !t.up.load(Ordering::Relaxed) {
                        continue;
                    }
                    let base = t.base.lock().unwrap().clone();
                    let resp = http
                        .post(format!("{base}{path}"))
                        .header("content-type", "application/json")
                        .header("x-github-event", "push")
                        .header("x-github-delivery", format!("delivery-{i}"))
                        .header("x-hub-signature-256", &signature)
                        .body(body.clone())
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == StatusCode::OK => {
                            let v: Value = r.json().await.unwrap();
                            let id = v["events"][0].as_str().unwrap().to_string();
                            answers.lock().unwrap()[i] = Some(id);
                            sent.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        // A dead or restarting host: the sender tries again elsewhere.
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let answers = answers.lock().unwrap();
    answers.iter().map(|a| a.clone().unwrap()).collect()
}

/// Waits until the sink saw every expected key, then checks the books.
async fn check_books(s: &Server, token: &str, sink: &Sink, event_ids: &[String], route: &str) {
    let expected: HashSet<String> = event_ids.iter().map(|e| format!("{e}.{route}")).collect();
    assert_eq!(expected.len(), EVENTS, "every webhook made its own event (none stored twice)");
    eventually("every effect at the sink", Duration::from_secs(300), || async {
        let seen = sink.effects.lock().unwrap().len();
        if seen >= EVENTS {
            Ok(())
        } else {
            let requests = sink.requests.load(Ordering::Relaxed);
            Err(format!("{seen} of {EVENTS} effects, {requests} sink requests; {}", outbox(s).await))
        }
    })
    .await;
    let effects = sink.effects.lock().unwrap().clone();
    let keys: HashSet<String> = effects.keys().cloned().collect();
    let missing: Vec<_> = expected.difference(&keys).take(5).collect();
    let unexpected: Vec<_> = keys.difference(&expected).take(5).collect();
    assert!(missing.is_empty() && unexpected.is_empty(), "missing {missing:?}, unexpected {unexpected:?}");
    let redelivered: usize = effects.values().map(|n| n - 1).sum();
    eprintln!(
        "{EVENTS} events: {} distinct effects, {} sink requests ({redelivered} redeliveries after the crash)",
        keys.len(),
        sink.requests.load(Ordering::Relaxed)
    );
    // The database agrees: 10 000 events, nothing pending, leased or dead.
    let mut count = 0;
    let mut cursor = String::new();
    loop {
        let r = s.get(&format!("/v1/events?limit=1000&cursor={cursor}"), token).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let page = r.body["events"].as_array().unwrap().len();
        count += page;
        match r.body["next_cursor"].as_str() {
            Some(c) if page > 0 => cursor = c.to_string(),
            _ => break,
        }
    }
    assert_eq!(count, EVENTS, "events stored");
    eventually("the outbox to settle", Duration::from_secs(60), || async {
        let text = outbox(s).await;
        let settled = ["pending", "leased", "dead"]
            .iter()
            .all(|st| text.contains(&format!("patchbay_outbox_deliveries{{status=\"{st}\"}} 0")));
        if settled { Ok(()) } else { Err(text) }
    })
    .await;
}

/// The outbox lines of the host's metrics (deliveries by status).
async fn outbox(s: &Server) -> String {
    let m = s.get("/metrics", &s.operator).await;
    let text = m.body.as_str().unwrap_or_default();
    text.lines().filter(|l| l.starts_with("patchbay_outbox_deliveries")).collect::<Vec<_>>().join(", ")
}

/// Waits until the senders have had a third of the webhooks accepted (failing at once if they
/// stopped early).
async fn a_third_sent(sent: &AtomicUsize, sender: &tokio::task::JoinHandle<Vec<String>>) {
    eventually("a third of the webhooks to be accepted", Duration::from_secs(300), || async {
        let n = sent.load(Ordering::Relaxed);
        assert!(n >= EVENTS / 3 || !sender.is_finished(), "the senders stopped after {n} webhooks");
        if n >= EVENTS / 3 { Ok(()) } else { Err(format!("{n} accepted")) }
    })
    .await;
}

async fn route_id(s: &Server, token: &str) -> String {
    let r = s.get("/v1/routes", token).await;
    r.body["routes"][0]["id"].as_str().unwrap().to_string()
}

const HOST_ENV: &[(&str, &str)] = &[("PATCHBAY_DISPATCH_LEASE_SECS", "5"), ("RUST_LOG", "error")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_on_postgres_survive_a_sigkill() {
    let _turn = crate::HEAVY.lock().await;
    let mut hosts = Server::cluster(Backend::Postgres, 3, HOST_ENV).await;
    let (sink, sink_url) = start_sink().await;
    let (path, token) = setup(&hosts[0], &sink_url).await;
    let route = route_id(&hosts[0], &token).await;
    let targets: Arc<Vec<Target>> =
        Arc::new(hosts.iter().map(|h| Target { base: Mutex::new(h.url.clone()), up: AtomicBool::new(true) }).collect());
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = tokio::spawn(send_all(targets.clone(), path, sent.clone()));
    // Mid-flight: webhooks arriving at all three, deliveries leased by all three.
    a_third_sent(&sent, &sender).await;
    hosts[1].kill();
    targets[1].up.store(false, Ordering::Relaxed);
    eprintln!(
        "killed host 2 after {} webhooks and {} effects",
        sent.load(Ordering::Relaxed),
        sink.effects.lock().unwrap().len()
    );
    let event_ids = sender.await.unwrap();
    check_books(&hosts[0], &token, &sink, &event_ids, &route).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_host_on_sqlite_survives_sigkill_and_restart() {
    let _turn = crate::HEAVY.lock().await;
    let s = Server::start_with(Backend::Sqlite, HOST_ENV).await;
    let (sink, sink_url) = start_sink().await;
    let (path, token) = setup(&s, &sink_url).await;
    let route = route_id(&s, &token).await;
    let targets = Arc::new(vec![Target { base: Mutex::new(s.url.clone()), up: AtomicBool::new(true) }]);
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = tokio::spawn(send_all(targets.clone(), path, sent.clone()));
    a_third_sent(&sent, &sender).await;
    let mut s = s;
    s.kill();
    eprintln!(
        "killed the host after {} webhooks and {} effects",
        sent.load(Ordering::Relaxed),
        sink.effects.lock().unwrap().len()
    );
    // Senders keep retrying against the dead address until the host is back.
    let s = s.restart().await;
    *targets[0].base.lock().unwrap() = s.url.clone();
    let event_ids = sender.await.unwrap();
    check_books(&s, &token, &sink, &event_ids, &route).await;
}
