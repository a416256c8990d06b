//! The reference connectors written in Python (`notify-discord`, componentize-py) and JavaScript
//! (`notify-ntfy`, componentize-js), end to end through the real binary like the Rust ones:
//! upload, install, invoke against a local server speaking the provider's wire format (from
//! Discord's and ntfy's public API docs), logs, error paths and hostile input.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use patchbay_store::Backend;
use patchbay_tests::components;
use serde_json::{Value, json};

use crate::server::{Resp, Server};

fn wasm(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What a provider stand-in received: (method, path, authorization header, JSON body).
type Seen = Arc<Mutex<Vec<(String, String, Option<String>, Value)>>>;

#[derive(Clone, Default)]
struct Provider {
    seen: Seen,
}

impl Provider {
    fn record(&self, method: &str, path: String, headers: &HeaderMap, body: Value) {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
        self.seen.lock().unwrap().push((method.to_string(), path, auth, body));
    }

    fn seen(&self) -> Vec<(String, String, Option<String>, Value)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

/// Discord's webhook endpoints: Execute Webhook (`POST /api/webhooks/{id}/{token}?wait=true`
/// answers the message object), Get Webhook with Token, Get Webhook Message. Errors are
/// `{"code", "message"}`; a rate limit is 429 with `retry_after` in seconds. Webhook `1` with
/// token `good` exists; the token `flood` is rate limited.
async fn discord() -> (String, Provider) {
    let p = Provider::default();
    async fn execute(
        State(p): State<Provider>,
        Path((id, token)): Path<(String, String)>,
        Query(q): Query<std::collections::HashMap<String, String>>,
        headers: HeaderMap,
        Json(body): Json<Value>,
    ) -> Response {
        p.record("POST", format!("/api/webhooks/{id}/{token}"), &headers, body.clone());
        if token == "flood" {
            let mut r = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"message": "You are being rate limited.", "retry_after": 0.75, "global": false})),
            )
                .into_response();
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            return r;
        }
        if id != "1" || token != "good" {
            return (StatusCode::UNAUTHORIZED, Json(json!({"message": "Invalid Webhook Token", "code": 50027})))
                .into_response();
        }
        let empty =
            body["content"].as_str().is_none_or(str::is_empty) && body["embeds"].as_array().is_none_or(Vec::is_empty);
        if empty {
            return (StatusCode::BAD_REQUEST, Json(json!({"message": "Cannot send an empty message", "code": 50006})))
                .into_response();
        }
        assert_eq!(q.get("wait").map(String::as_str), Some("true"), "the message id needs wait=true");
        let n = p.seen().len();
        Json(json!({"id": format!("11{n:017}"), "type": 0, "channel_id": "42", "webhook_id": id, "content": body["content"]}))
            .into_response()
    }
    async fn webhook(
        State(p): State<Provider>,
        Path((id, token)): Path<(String, String)>,
        headers: HeaderMap,
    ) -> Response {
        p.record("GET", format!("/api/webhooks/{id}/{token}"), &headers, Value::Null);
        if id == "1" && token == "good" {
            Json(json!({"id": "1", "type": 1, "name": "Deploys", "channel_id": "42", "token": token})).into_response()
        } else {
            (StatusCode::UNAUTHORIZED, Json(json!({"message": "Invalid Webhook Token", "code": 50027}))).into_response()
        }
    }
    async fn message(
        State(p): State<Provider>,
        Path((id, token, message)): Path<(String, String, String)>,
        headers: HeaderMap,
    ) -> Response {
        p.record("GET", format!("/api/webhooks/{id}/{token}/messages/{message}"), &headers, Value::Null);
        if message.starts_with("11") {
            Json(json!({"id": message, "type": 0, "channel_id": "42"})).into_response()
        } else {
            (StatusCode::NOT_FOUND, Json(json!({"message": "Unknown Message", "code": 10008}))).into_response()
        }
    }
    let router = axum::Router::new()
        .route("/api/webhooks/{id}/{token}", post(execute).get(webhook))
        .route("/api/webhooks/{id}/{token}/messages/{message}", get(message))
        .with_state(p.clone());
    (serve(router).await, p)
}

/// ntfy's JSON publishing (`POST /` with `{"topic", "message", "title", "tags", "priority",
/// "click"}` answers the message with its `id`), `GET /v1/health` and `GET /v1/account`. Errors
/// are `{"code", "http", "error"}`. Topics starting with `private` need the token `tk_good`;
/// the topic `flood` is rate limited.
async fn ntfy() -> (String, Provider) {
    let p = Provider::default();
    async fn publish(State(p): State<Provider>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
        p.record("POST", "/".into(), &headers, body.clone());
        let topic = body["topic"].as_str().unwrap_or_default().to_string();
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if topic == "flood" {
            let e = json!({"code": 42901, "http": 429, "error": "limit reached: too many requests, please be nice"});
            return (StatusCode::TOO_MANY_REQUESTS, Json(e)).into_response();
        }
        if topic.starts_with("private") && auth != "Bearer tk_good" {
            return (StatusCode::FORBIDDEN, Json(json!({"code": 40301, "http": 403, "error": "forbidden"})))
                .into_response();
        }
        Json(json!({"id": "sPs71M8A2T", "time": 1_700_000_000, "expires": 1_700_043_200, "event": "message",
            "topic": topic, "message": body["message"]}))
        .into_response()
    }
    async fn account(State(p): State<Provider>, headers: HeaderMap) -> Response {
        p.record("GET", "/v1/account".into(), &headers, Value::Null);
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some("Bearer tk_good") => Json(json!({"username": "phil", "role": "user"})).into_response(),
            _ => (StatusCode::UNAUTHORIZED, Json(json!({"code": 40101, "http": 401, "error": "unauthorized"})))
                .into_response(),
        }
    }
    let router = axum::Router::new()
        .route("/", post(publish))
        .route("/v1/health", get(|| async { Json(json!({"healthy": true})) }))
        .route("/v1/account", get(account))
        .with_state(p.clone());
    (serve(router).await, p)
}

async fn install(s: &Server, token: &str, connector: &str, name: &str, config: Value) -> String {
    let r = s.post("/v1/installations", token, json!({ "connector": connector, "name": name, "config": config })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.body["id"].as_str().unwrap().to_string()
}

async fn invoke(s: &Server, token: &str, id: &str, op: &str, input: Value) -> Resp {
    s.post(&format!("/v1/installations/{id}/invoke/{op}"), token, input).await
}

fn notification(subject: Option<&str>, text: &str) -> Value {
    json!({ "notification": {
        "to": [{"address": "#deploys"}], "cc": [], "bcc": [], "subject": subject, "text": text, "attachments": [],
        "categories": ["rocket"], "metadata": [], "idempotency-key": "k-1"
    }})
}

/// Polls a version until its compile has ended; returns the version.
pub(crate) async fn wait_compiled(s: &Server, token: &str, id: &str, version: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let r = s.get(&format!("/v1/connectors/{id}/versions/{version}"), token).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        if r.body["state"] != "compiling" {
            return r.body;
        }
        assert!(r.body["compiling"]["elapsed_ms"].as_i64().is_some(), "progress is visible: {r:?}");
        assert!(std::time::Instant::now() < deadline, "still compiling: {r:?}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// Uploads a component — a Python or JavaScript one takes longer to compile than an upload
/// waits, so the answer is 202 `compiling` — installs it at once, finds its calls refused
/// clearly until the compile ends, and checks what the catalog lists then: the hub's
/// operations and lifecycle, never a toolchain's own exports (componentize-py exports `init`).
/// Returns the installation.
async fn upload_and_install(s: &Server, path: &str, id: &str, tenant: &str, name: &str, config: Value) -> String {
    let r = s.upload(&s.operator, wasm(path)).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert_eq!((r.body["connector"].as_str(), r.body["state"].as_str()), (Some(id), Some("compiling")), "{r:?}");
    assert_eq!(r.body["operations"], json!([]), "{r:?}");
    let inst = install(s, tenant, id, name, config).await;
    let early = invoke(s, tenant, &inst, "health-check", json!({})).await;
    let version = wait_compiled(s, tenant, id, "0.1.0").await;
    assert_eq!(version["state"], "ready", "{version}");
    assert_eq!(early.status, StatusCode::CONFLICT, "{early:?}");
    assert_eq!(early.code(), "version_compiling", "{early:?}");
    assert!(early.message().contains("still compiling"), "{early:?}");
    let mut ops: Vec<String> = version["operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["qualified_name"].as_str().unwrap().to_string())
        .collect();
    ops.sort();
    assert_eq!(
        ops,
        ["lifecycle.health-check", "lifecycle.validate-credentials", "notifications.get-status", "notifications.send"],
        "{version}"
    );
    inst
}

fn logs_text(r: &Resp) -> String {
    r.body["entries"].as_array().unwrap().iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_discord_connector_end_to_end() {
    let s = Server::start_with(Backend::Sqlite, &[("PATCHBAY_UPLOAD_WAIT_MS", "500")]).await;
    let (base, discord) = discord().await;
    let acme = s.tenant("acme").await;
    let hook = format!("{base}/api/webhooks/1/good");
    let config = json!({ "webhook_url": hook, "username": "patchbay" });
    let id = upload_and_install(&s, components::NOTIFY_DISCORD, "notify-discord", &acme, "deploys", config).await;

    // componentize-py's `init` export is not an operation.
    let r = invoke(&s, &acme, &id, "init", json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    assert!(r.message().contains("unknown operation"), "{r:?}");

    let r = invoke(&s, &acme, &id, "health-check", json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["status"], "healthy", "{r:?}");
    let r = invoke(&s, &acme, &id, "validate-credentials", json!({})).await;
    assert_eq!((r.body["valid"].clone(), r.body["account"].clone()), (json!(true), json!("Deploys")), "{r:?}");

    // A subject makes an embed; mentions are never parsed.
    let r = invoke(&s, &acme, &id, "send", notification(Some("Deploy finished"), "v1.2 is live @everyone")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let message_id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["accepted"], json!(["#deploys"]));
    let (_, path, _, body) = discord.seen().into_iter().rfind(|(m, ..)| m == "POST").unwrap();
    assert_eq!(path, "/api/webhooks/1/good");
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    assert_eq!(body["embeds"][0]["title"], "Deploy finished");
    assert_eq!(body["embeds"][0]["description"], "v1.2 is live @everyone");
    assert_eq!(body["username"], "patchbay");
    // Multi-byte text longer than a message may be becomes a clipped embed, not a 400.
    let long = "é".repeat(3000);
    let r = invoke(&s, &acme, &id, "send", notification(None, &long)).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let (_, _, _, body) = discord.seen().into_iter().rfind(|(m, ..)| m == "POST").unwrap();
    assert_eq!(body["embeds"][0]["description"].as_str().unwrap().chars().count(), 3000);

    let r = invoke(&s, &acme, &id, "get-status", json!({ "message-id": message_id })).await;
    assert_eq!(r.body["status"], "delivered", "{r:?}");
    let r = invoke(&s, &acme, &id, "get-status", json!({ "message-id": "999" })).await;
    assert_eq!(r.body["status"], "unknown", "{r:?}");

    // Hostile input: an id that would change the request's path never leaves the sandbox.
    let before = discord.seen().len();
    let r = invoke(&s, &acme, &id, "get-status", json!({ "message-id": "../../../webhooks/2/other" })).await;
    assert_eq!(r.code(), "connector_error", "{r:?}");
    assert!(format!("{r:?}").contains("invalid_input"), "{r:?}");
    assert_eq!(discord.seen().len(), before);

    // Error paths: a rate limit carries Discord's retry_after, a bad token is unauthorized, an
    // empty notification is refused before any request.
    let flood =
        install(&s, &acme, "notify-discord", "flood", json!({ "webhook_url": format!("{base}/api/webhooks/1/flood") }))
            .await;
    let r = invoke(&s, &acme, &flood, "send", notification(None, "hi")).await;
    assert_eq!(r.code(), "connector_error", "{r:?}");
    assert!(format!("{r:?}").contains("rate") && format!("{r:?}").contains("750"), "{r:?}");
    let bad =
        install(&s, &acme, "notify-discord", "bad", json!({ "webhook_url": format!("{base}/api/webhooks/1/nope") }))
            .await;
    let r = invoke(&s, &acme, &bad, "send", notification(None, "hi")).await;
    assert!(format!("{r:?}").contains("unauthorized") && format!("{r:?}").contains("discord_50027"), "{r:?}");
    let r = invoke(&s, &acme, &bad, "validate-credentials", json!({})).await;
    assert_eq!(r.body["valid"], false, "{r:?}");
    let r = invoke(&s, &acme, &id, "send", notification(None, "  ")).await;
    assert!(format!("{r:?}").contains("invalid_input"), "{r:?}");

    // The guest's own log lines and the host's HTTP lines are in the installation's log.
    let r = s.get(&format!("/v1/installations/{id}/logs"), &acme).await;
    let text = logs_text(&r);
    assert!(text.contains("Discord accepted the message"), "{text}");
    assert!(text.contains("/api/webhooks/1/good"), "{text}");
    // Another tenant cannot reach the installation.
    let globex = s.tenant("globex").await;
    let r = invoke(&s, &globex, &id, "send", notification(None, "hi")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_ntfy_connector_end_to_end() {
    let s = Server::start_with(Backend::Sqlite, &[("PATCHBAY_UPLOAD_WAIT_MS", "500")]).await;
    let (base, ntfy) = ntfy().await;
    let acme = s.tenant("acme").await;
    let config = json!({ "server_url": base, "topic": "private-alerts" });
    let id = upload_and_install(&s, components::NOTIFY_NTFY, "notify-ntfy", &acme, "alerts", config).await;
    let r = s
        .call(
            axum::http::Method::PUT,
            &format!("/v1/installations/{id}/credentials"),
            &acme,
            Some(json!({ "token": "tk_good" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");

    let r = invoke(&s, &acme, &id, "health-check", json!({})).await;
    assert_eq!(r.body["status"], "healthy", "{r:?}");
    let r = invoke(&s, &acme, &id, "validate-credentials", json!({})).await;
    assert_eq!((r.body["valid"].clone(), r.body["account"].clone()), (json!(true), json!("phil")), "{r:?}");

    let mut n = notification(Some("Deploy finished"), "v1.2 is live");
    n["notification"]["metadata"] = json!([["priority", "5"], ["click", "https://ci.example/runs/7"]]);
    let r = invoke(&s, &acme, &id, "send", n).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["id"], "sPs71M8A2T");
    assert_eq!(r.body["accepted"], json!(["private-alerts"]));
    let (_, _, auth, body) = ntfy.seen().into_iter().rfind(|(m, ..)| m == "POST").unwrap();
    // The host put the secret in; the log and the answer never show it.
    assert_eq!(auth.as_deref(), Some("Bearer tk_good"));
    assert_eq!(
        body,
        json!({"topic": "private-alerts", "message": "v1.2 is live", "title": "Deploy finished", "priority": 5,
            "tags": ["rocket"], "click": "https://ci.example/runs/7"})
    );

    // Error paths: hostile metadata is refused before any request; ntfy's 403 and 429 map to
    // their kinds; get-status is unsupported.
    let before = ntfy.seen().len();
    let mut n = notification(None, "x");
    n["notification"]["metadata"] = json!([["click", "javascript:alert(1)"]]);
    let r = invoke(&s, &acme, &id, "send", n).await;
    assert!(format!("{r:?}").contains("invalid_input"), "{r:?}");
    let mut n = notification(None, "x");
    n["notification"]["metadata"] = json!([["priority", "9"]]);
    let r = invoke(&s, &acme, &id, "send", n).await;
    assert!(format!("{r:?}").contains("priority"), "{r:?}");
    assert_eq!(ntfy.seen().len(), before);
    let r = invoke(&s, &acme, &id, "get-status", json!({ "message-id": "sPs71M8A2T" })).await;
    assert!(format!("{r:?}").contains("unsupported"), "{r:?}");

    let open = install(&s, &acme, "notify-ntfy", "open", json!({ "server_url": base, "topic": "private-other" })).await;
    let r = invoke(&s, &acme, &open, "send", notification(None, "hi")).await;
    assert!(format!("{r:?}").contains("unauthorized") && format!("{r:?}").contains("ntfy_40301"), "{r:?}");
    let flood = install(&s, &acme, "notify-ntfy", "flood", json!({ "server_url": base, "topic": "flood" })).await;
    let r = invoke(&s, &acme, &flood, "send", notification(None, "hi")).await;
    assert!(format!("{r:?}").contains("rate"), "{r:?}");
    // A topic that would change the URL is refused by the connector.
    let odd = install(&s, &acme, "notify-ntfy", "odd", json!({ "server_url": base, "topic": "a/../b" })).await;
    let r = invoke(&s, &acme, &odd, "health-check", json!({})).await;
    assert_eq!(r.body["status"], "unhealthy", "{r:?}");
    // A server_url pointing at the metadata address is blocked by the host even if allowed.
    let meta =
        install(&s, &acme, "notify-ntfy", "meta", json!({ "server_url": "http://169.254.169.254", "topic": "t" }))
            .await;
    let r = invoke(&s, &acme, &meta, "send", notification(None, "hi")).await;
    assert!(format!("{r:?}").contains("address_blocked") || format!("{r:?}").contains("blocked"), "{r:?}");

    let r = s.get(&format!("/v1/installations/{id}/logs"), &acme).await;
    let text = logs_text(&r);
    assert!(text.contains("ntfy published the message"), "{text}");
    assert!(!text.contains("tk_good"), "a secret reached the log: {text}");
}
