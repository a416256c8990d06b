//! End-to-end tests of the admin API: the real binary over HTTP, on SQLite and on PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use patchbay_store::Backend;
use patchbay_tests::components;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::TestServer;
use crate::server::{Server, notification, with_custom_section};

on_both_backends!(
    upload_install_invoke_and_read_logs,
    other_tenants_resources_are_404,
    upgrade_under_concurrent_calls_loses_none,
    bad_uploads_are_refused_precisely,
    bad_requests_get_precise_errors,
    restart_and_online_key_rotation_keep_credentials,
    emitted_events_are_durable_and_tenant_scoped,
    every_list_pages_with_opaque_cursors,
);

const SECRET: &str = "tok-3b1f5e0c9a7d4411-notify";

fn wasm(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn manifest(id: &str, version: &str, category: &str) -> String {
    format!(
        "id = \"{id}\"\ntitle = \"Test {id}\"\ndescription = \"A test connector\"\ncategory = \"{category}\"\n\
         provider = \"tests\"\nversion = \"{version}\"\n"
    )
}

/// Installs notify-webhook for `token`'s tenant pointing at the test server; returns its id.
async fn install_notify(s: &Server, token: &str, web: &TestServer, name: &str) -> String {
    let r = s
        .post(
            "/v1/installations",
            token,
            json!({ "connector": "notify-webhook", "name": name,
                    "config": { "webhook_url": format!("http://{}/slack", web.addr) } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.body["id"].as_str().unwrap().to_string()
}

async fn upload_install_invoke_and_read_logs(backend: Backend) {
    let s = Server::start(backend).await;
    let web = TestServer::start().await;

    let r = s.get("/healthz", "").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // The reference connectors are in the catalog from the first start.
    let r = s.get("/v1/connectors", &s.operator).await;
    let ids: Vec<&str> = r.body["connectors"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"notify-webhook") && ids.contains(&"github"), "{ids:?}");

    let acme = s.tenant("acme").await;
    // The operator re-publishing the same bytes changes nothing.
    let r = s.upload(&s.operator, wasm(components::NOTIFY_WEBHOOK)).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // A tenant upload is a private connector.
    let r = s.upload(&acme, wasm(components::NOTIFY_WEBHOOK)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["owner"], "acme");
    let send = r.body["operations"].as_array().unwrap().iter().find(|o| o["name"] == "send").cloned();
    let send = send.expect("send operation listed");
    assert_eq!(send["input"]["type"], "object", "{send}");
    assert!(r.body["digest"].as_str().unwrap().starts_with("sha256:"));

    let r = s.get("/v1/connectors?category=notification-provider&search=webhook", &acme).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["connectors"].as_array().unwrap().len(), 1, "{r:?}");

    let id = install_notify(&s, &acme, &web, "alerts").await;
    let r = s
        .call(Method::PUT, &format!("/v1/installations/{id}/credentials"), &acme, Some(json!({ "token": SECRET })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["credentials"]["token"], "••••••••");
    let r = s.get(&format!("/v1/installations/{id}/credentials"), &acme).await;
    assert_eq!(r.body["credentials"]["token"], "••••••••");
    assert!(!r.body.to_string().contains(SECRET));

    let r = s.post(&format!("/v1/installations/{id}/invoke/send"), &acme, notification("deploy finished", "k-1")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["accepted"], json!(["webhook"]));
    assert!(r.header("x-patchbay-connector").unwrap().starts_with("notify-webhook@"));
    let got = web.requests.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/slack");
    assert_eq!(got[0].header("authorization").as_deref(), Some(format!("Bearer {SECRET}").as_str()));

    let r = s.get(&format!("/v1/installations/{id}/logs"), &acme).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(r.body.to_string().contains("credentials replaced"), "{r:?}");
    let entries = r.body["entries"].as_array().unwrap();
    let http = entries.iter().find(|e| e["source"] == "http").unwrap_or_else(|| panic!("no http entry: {r:?}"));
    let line = http.to_string();
    assert!(line.contains("/slack") && line.contains("200"), "{line}");
    assert!(!r.body.to_string().contains(SECRET), "a secret reached the log: {r:?}");

    // Paging: one entry at a time follows the cursor to the end, where `next_cursor` is null and
    // `tail_cursor` is where later entries will start.
    let mut cursor = String::new();
    let mut seen = 0;
    let tail = loop {
        let r = s.get(&format!("/v1/installations/{id}/logs?limit=1&cursor={cursor}"), &acme).await;
        seen += r.body["entries"].as_array().unwrap().len();
        match r.body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break r.body["tail_cursor"].as_str().unwrap().to_string(),
        }
    };
    assert_eq!(seen, entries.len());
    let r = s.get(&format!("/v1/installations/{id}/logs?cursor={tail}"), &acme).await;
    assert_eq!((&r.body["entries"], r.body["tail_cursor"].as_str()), (&json!([]), Some(tail.as_str())), "{r:?}");
    // The entry ids earlier versions used as cursors still work.
    let second = entries[1]["id"].as_i64().unwrap();
    let r = s.get(&format!("/v1/installations/{id}/logs?cursor={}", entries[0]["id"]), &acme).await;
    assert_eq!(r.body["entries"][0]["id"], second, "{r:?}");
    let r = s.get(&format!("/v1/installations/{id}/logs?level=error"), &acme).await;
    assert!(r.body["entries"].as_array().unwrap().iter().all(|e| e["level"] == "error"), "{r:?}");
    let r = s.get(&format!("/v1/installations/{id}/logs?since=2999-01-01T00:00:00Z"), &acme).await;
    assert_eq!(r.body["entries"], json!([]));

    let r = s.get("/metrics", &s.operator).await;
    let text = r.body.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("patchbay_calls_total{connector=\"notify-webhook\",operation=\"send\",outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(text.contains("patchbay_egress_requests_total{connector=\"notify-webhook\"} 1"), "{text}");
    let r = s.get("/metrics", &acme).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // A connector error comes back with its kind.
    let r = s
        .call(
            Method::PATCH,
            &format!("/v1/installations/{id}"),
            &acme,
            Some(json!({ "config": { "webhook_url": format!("http://{}/status/429", web.addr) } })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s.post(&format!("/v1/installations/{id}/invoke/send"), &acme, notification("again", "k-2")).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    assert_eq!(r.body["error"]["kind"], "rate-limited");
    assert_eq!(r.header("retry-after"), Some("7"));

    let r = s.get("/openapi.json", "").await;
    assert_eq!(r.body["openapi"], "3.1.0");
}

async fn other_tenants_resources_are_404(backend: Backend) {
    let s = Server::start(backend).await;
    let web = TestServer::start().await;
    let acme = s.tenant("acme").await;
    let globex = s.tenant("globex").await;
    let id = install_notify(&s, &acme, &web, "alerts").await;
    let r = s.upload(&acme, wasm(components::NOTIFY_WEBHOOK)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");

    let inst = format!("/v1/installations/{id}");
    let checks: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, inst.clone(), None),
        (Method::PATCH, inst.clone(), Some(json!({ "enabled": false }))),
        (Method::GET, format!("{inst}/credentials"), None),
        (Method::PUT, format!("{inst}/credentials"), Some(json!({ "token": "x" }))),
        (Method::DELETE, format!("{inst}/credentials"), None),
        (Method::POST, format!("{inst}/invoke/send"), Some(notification("x", "k"))),
        (Method::POST, format!("{inst}/invoke/health-check"), None),
        (Method::GET, format!("{inst}/logs"), None),
        (Method::DELETE, inst.clone(), None),
    ];
    for (method, path, body) in checks {
        let r = s.call(method.clone(), &path, &globex, body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}: {r:?}");
        assert_eq!(r.code(), "not_found");
    }
    // acme's private connector is invisible to globex.
    let r = s.get("/v1/connectors", &globex).await;
    assert!(r.body["connectors"].as_array().unwrap().iter().all(|c| c["owner"].is_null()), "{r:?}");
    let r = s.get("/v1/installations", &globex).await;
    assert_eq!(r.body["installations"], json!([]));
    // A body naming another tenant changes nothing: the tenant comes from the key.
    let r = s
        .post("/v1/installations", &globex, json!({ "connector": "notify-webhook", "name": "x", "tenant": "acme" }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(r.message().contains("tenant"), "{r:?}");
    // Still there for its owner.
    let r = s.get(&inst, &acme).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["enabled"], true);
}

async fn upgrade_under_concurrent_calls_loses_none(backend: Backend) {
    let s = Arc::new(Server::start(backend).await);
    let web = TestServer::start().await;
    let acme = s.tenant("acme").await;
    let r = s.upload(&s.operator, wasm(components::NOTIFY_WEBHOOK_V2)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["version"], "0.2.0");
    let r = s
        .post(
            "/v1/installations",
            &acme,
            json!({ "connector": "notify-webhook", "version": "0.1.0", "name": "alerts",
                    "config": { "webhook_url": format!("http://{}/slack", web.addr) } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();

    const WORKERS: usize = 4;
    const CALLS: usize = 15;
    let ok = Arc::new(AtomicUsize::new(0));
    let versions = Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (s, acme, id, ok, versions) = (s.clone(), acme.clone(), id.clone(), ok.clone(), versions.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..CALLS {
                let r = s
                    .post(&format!("/v1/installations/{id}/invoke/send"), &acme, notification("x", &format!("{w}-{i}")))
                    .await;
                assert_eq!(r.status, StatusCode::OK, "{r:?}");
                versions.lock().unwrap().insert(r.header("x-patchbay-connector").unwrap().to_string());
                ok.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    // Once calls are flowing on 0.1.0, flip between the versions while the rest run. A worker
    // that fails ends early: its panic is raised here at once instead of the loops waiting for
    // calls that never come.
    async fn raise_failures(tasks: &mut Vec<tokio::task::JoinHandle<()>>) {
        while let Some(i) = tasks.iter().position(|t| t.is_finished()) {
            tasks.swap_remove(i).await.unwrap();
        }
    }
    let deadline = std::time::Instant::now() + patchbay_tests::scaled(std::time::Duration::from_secs(120));
    while ok.load(Ordering::SeqCst) < 4 {
        raise_failures(&mut tasks).await;
        assert!(std::time::Instant::now() < deadline, "no calls went through");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    // The first flip, and a call that surely starts after it: the new version serves it.
    let r = s.call(Method::PATCH, &format!("/v1/installations/{id}"), &acme, Some(json!({ "version": "0.2.0" }))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s.post(&format!("/v1/installations/{id}/invoke/send"), &acme, notification("x", "after-flip")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.header("x-patchbay-connector"), Some("notify-webhook@0.2.0"), "{r:?}");
    let mut flips = 1;
    while ok.load(Ordering::SeqCst) < WORKERS * CALLS {
        raise_failures(&mut tasks).await;
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {} calls after {flips} flips",
            ok.load(Ordering::SeqCst),
            WORKERS * CALLS
        );
        let v = if flips % 2 == 0 { "0.2.0" } else { "0.1.0" };
        let r = s.call(Method::PATCH, &format!("/v1/installations/{id}"), &acme, Some(json!({ "version": v }))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        flips += 1;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(ok.load(Ordering::SeqCst), WORKERS * CALLS);
    assert_eq!(web.requests.lock().unwrap().len(), WORKERS * CALLS + 1, "every call reached the webhook exactly once");
    // The first calls ran before any flip.
    let seen = versions.lock().unwrap().clone();
    assert!(seen.contains("notify-webhook@0.1.0"), "{seen:?} after {flips} flips");
    // 0.2.0 declares API versions: the default was chosen on upgrade; a deprecated one shows its sunset.
    let r = s.call(Method::PATCH, &format!("/v1/installations/{id}"), &acme, Some(json!({ "version": "0.2.0" }))).await;
    assert_eq!(r.body["api_version"], "2025-06", "{r:?}");
    let r = s
        .call(Method::PATCH, &format!("/v1/installations/{id}"), &acme, Some(json!({ "api_version": "2024-01" })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["api_version_deprecation"]["sunset"], "2027-01-31", "{r:?}");
    let r = s
        .call(Method::PATCH, &format!("/v1/installations/{id}"), &acme, Some(json!({ "api_version": "2099-01" })))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(r.message().contains("2025-06"), "{r:?}");
    // The timeline records the changes (never values).
    let r = s.get(&format!("/v1/installations/{id}/logs?limit=1000"), &acme).await;
    let text = r.body.to_string();
    assert!(text.contains("installed notify-webhook@0.1.0") && text.contains("0.1.0 -> 0.2.0"), "{text}");
    // Rollback is a PATCH back, effective on the next call.
    let r = s.call(Method::PATCH, &format!("/v1/installations/{id}"), &acme, Some(json!({ "version": "0.1.0" }))).await;
    assert_eq!(r.body["version"], "0.1.0");
    let r = s.post(&format!("/v1/installations/{id}/invoke/send"), &acme, notification("x", "last")).await;
    assert_eq!(r.header("x-patchbay-connector"), Some("notify-webhook@0.1.0"));
    // Disabled installations refuse calls.
    let r = s.call(Method::PATCH, &format!("/v1/installations/{id}"), &acme, Some(json!({ "enabled": false }))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s.post(&format!("/v1/installations/{id}/invoke/send"), &acme, notification("x", "off")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    assert_eq!(r.code(), "installation_disabled");
    // A deprecated version shows its sunset date.
    let r = s
        .post(
            "/v1/connectors/notify-webhook/versions/0.1.0/deprecate",
            &s.operator,
            json!({ "sunset": "2027-06-30", "message": "use 0.2.0" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s.get(&format!("/v1/installations/{id}"), &acme).await;
    assert_eq!(r.body["deprecation"]["sunset"], "2027-06-30", "{r:?}");
    let r = s.get("/v1/connectors/notify-webhook/versions/0.1.0", &acme).await;
    assert_eq!(r.body["deprecation"]["sunset"], "2027-06-30", "{r:?}");
}

async fn bad_uploads_are_refused_precisely(backend: Backend) {
    let s = Server::start_with(backend, &[("PATCHBAY_MAX_COMPONENT_MIB", "1")]).await;
    let op = s.operator.clone();
    let expect = |r: &crate::server::Resp, status: StatusCode, code: &str, text: &str| {
        assert_eq!(r.status, status, "{r:?}");
        assert_eq!(r.code(), code, "{r:?}");
        assert!(r.message().contains(text), "message should mention {text:?}: {r:?}");
    };
    let r = s.upload(&op, b"not wasm at all".to_vec()).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "malformed_wasm", "");
    let r = s.upload(&op, vec![0u8; 1536 * 1024]).await;
    expect(&r, StatusCode::PAYLOAD_TOO_LARGE, "too_large", "1 MiB");
    // A core module is not a component.
    let r = s.upload(&op, b"\0asm\x01\0\0\0".to_vec()).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "not_a_component", "");
    let r = s.upload(&op, wasm(components::TRIVIAL)).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "missing_manifest", "patchbay:manifest");
    let bad = format!("{}colour = \"blue\"\n", manifest("x-sync", "1.0.0", "data-sync"));
    let r = s.upload(&op, with_custom_section(wasm(components::HOSTILE), "patchbay:manifest", bad.as_bytes())).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_manifest", "colour");
    let bad = manifest("x-sync", "one", "data-sync");
    let r = s.upload(&op, with_custom_section(wasm(components::HOSTILE), "patchbay:manifest", bad.as_bytes())).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_manifest", "version");
    // The manifest says payment gateway; the component exports the data-sync world.
    let wrong = manifest("x-pay", "1.0.0", "payment-gateway");
    let r = s.upload(&op, with_custom_section(wasm(components::HOSTILE), "patchbay:manifest", wrong.as_bytes())).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "world_mismatch", "payment-gateway");
    // Published versions are immutable.
    let good = manifest("x-sync", "1.0.0", "data-sync");
    let first = with_custom_section(wasm(components::HOSTILE), "patchbay:manifest", good.as_bytes());
    let r = s.upload(&op, first.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let r = s.upload(&op, first.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let other = with_custom_section(first, "build-info", b"rebuilt");
    let r = s.upload(&op, other).await;
    expect(&r, StatusCode::CONFLICT, "conflict", "1.0.0");
    // Wrong content type, missing and bad tokens, missing scope.
    let r = s.post("/v1/connectors", &op, json!({})).await;
    expect(&r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "application/wasm");
    let r = s.get("/v1/connectors", "").await;
    expect(&r, StatusCode::UNAUTHORIZED, "unauthorized", "Authorization");
    let r = s.get("/v1/connectors", "pbk_0123456789ab_nope").await;
    expect(&r, StatusCode::UNAUTHORIZED, "unauthorized", "invalid");
    s.post("/v1/tenants", &op, json!({ "id": "acme" })).await;
    let viewer = s.key("acme", &["view"]).await;
    let r = s.upload(&viewer, wasm(components::NOTIFY_WEBHOOK)).await;
    expect(&r, StatusCode::FORBIDDEN, "forbidden", "manage");
    // Nothing half-written: the catalog holds exactly what was accepted.
    let r = s.get("/v1/connectors/x-sync", &op).await;
    assert_eq!(r.body["versions"].as_array().unwrap().len(), 1, "{r:?}");
    let r = s.get("/v1/connectors/x-pay", &op).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
}

async fn bad_requests_get_precise_errors(backend: Backend) {
    let s = Server::start(backend).await;
    let web = TestServer::start().await;
    let acme = s.tenant("acme").await;
    let expect = |r: &crate::server::Resp, status: StatusCode, code: &str, text: &str| {
        assert_eq!(r.status, status, "{r:?}");
        assert_eq!(r.code(), code, "{r:?}");
        assert!(r.message().contains(text), "message should mention {text:?}: {r:?}");
    };
    let r = s.post("/v1/tenants", &s.operator, json!({ "id": "acme" })).await;
    expect(&r, StatusCode::CONFLICT, "conflict", "acme");
    let r = s.post("/v1/tenants", &s.operator, json!({ "id": "Bad Id" })).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_id", "Bad Id");
    let r = s.post("/v1/tenants", &acme, json!({ "id": "evil" })).await;
    expect(&r, StatusCode::FORBIDDEN, "forbidden", "operator");
    let r = s.post("/v1/tenants/acme/keys", &s.operator, json!({ "scopes": ["admin"] })).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_scopes", "admin");
    // Left out, scopes default to all; `null` is not a list of scopes and grants nothing.
    let r = s.post("/v1/tenants/acme/keys", &s.operator, json!({ "name": null, "scopes": null })).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", "null");
    // A body that may be left out is left out only by JSON's white space: a form feed (white
    // space to Rust's ASCII set, not to JSON) is a syntax error, not "all scopes".
    for body in [&b"\x0c"[..], b" \x0b", b"\xc2\xa0"] {
        let r = s.post_raw("/v1/tenants/acme/keys", &s.operator, body).await;
        expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", "expected a JSON object");
    }
    let r = s.post_raw("/v1/tenants/acme/keys", &s.operator, b" \r\n\t").await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    // A cursor that is not one of the list's is the caller's mistake, named in the message.
    let r = s.get("/v1/events?cursor=nope", &acme).await;
    expect(&r, StatusCode::BAD_REQUEST, "bad_request", "cursor=\"nope\"");

    let install = |body: Value| {
        let s = &s;
        let acme = acme.clone();
        async move { s.post("/v1/installations", &acme, body).await }
    };
    let r = install(json!({ "connector": "nope", "name": "a" })).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "unknown_connector", "nope");
    let r = install(json!({ "connector": "notify-webhook", "name": "a" })).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", "webhook_url");
    let r =
        install(json!({ "connector": "notify-webhook", "name": "a", "config": { "webhook_url": "ftp://x" } })).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", "http");
    let r = install(json!({ "connector": "notify-webhook", "name": "a", "config": { "webhook_url": "https://x.test", "colour": "red" } })).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", "colour");
    let r = install(json!({ "connector": "notify-webhook", "name": "a", "version": "9.9.9", "config": { "webhook_url": "https://x.test" } })).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "unknown_version", "9.9.9");
    let r = install(json!({ "connector": "notify-webhook", "name": "a", "limits": { "timeout_ms": 0 } , "config": { "webhook_url": "https://x.test" } })).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_limits", "timeout_ms");
    // A whole number written with a fraction is that integer (JSON Schema's `integer`).
    let r = install(json!({ "connector": "notify-webhook", "name": "a", "limits": { "timeout_ms": 0.0 } , "config": { "webhook_url": "https://x.test" } })).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_limits", "timeout_ms");
    let r = install(json!({ "connector": "notify-webhook", "name": "a", "limits": { "timeout_ms": 100.5 } , "config": { "webhook_url": "https://x.test" } })).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", "timeout_ms");
    // More memory than the host gives any call is refused, not silently cut to the cap.
    let r = install(json!({ "connector": "notify-webhook", "name": "a", "limits": { "memory_mib": 257 } , "config": { "webhook_url": "https://x.test" } })).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_limits", "1..=256 (the host's per-call memory cap)");
    let r = install(json!({ "connector": "notify-webhook", "nam": "a" })).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", "nam");
    let r = s.call(Method::POST, "/v1/installations", &acme, None).await;
    assert!(r.status.is_client_error(), "{r:?}");

    let id = install_notify(&s, &acme, &web, "alerts").await;
    let r = install(
        json!({ "connector": "notify-webhook", "name": "alerts", "config": { "webhook_url": "https://x.test" } }),
    )
    .await;
    expect(&r, StatusCode::CONFLICT, "conflict", "alerts");
    let r = s
        .call(Method::PUT, &format!("/v1/installations/{id}/credentials"), &acme, Some(json!({ "pasword": "x" })))
        .await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_credentials", "pasword");
    let r = s.post(&format!("/v1/installations/{id}/invoke/launch"), &acme, json!({})).await;
    expect(&r, StatusCode::NOT_FOUND, "unknown_operation", "send");
    let r =
        s.post(&format!("/v1/installations/{id}/invoke/send"), &acme, json!({ "notification": { "text": 5 } })).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", "notification");
    let r = s.get(&format!("/v1/installations/{id}/logs?level=loud"), &acme).await;
    expect(&r, StatusCode::BAD_REQUEST, "bad_request", "loud");
    let r = s.get(&format!("/v1/installations/{id}/logs?since=yesterday"), &acme).await;
    expect(&r, StatusCode::BAD_REQUEST, "bad_request", "yesterday");
    let r =
        s.call(Method::PATCH, &format!("/v1/installations/{id}"), &acme, Some(json!({ "api_version": "v9" }))).await;
    expect(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_api_version", "v9");
    // A failed PATCH changed nothing.
    let r = s.get(&format!("/v1/installations/{id}"), &acme).await;
    assert_eq!(r.body["revision"], 1, "{r:?}");
    let r = s.get("/v1/nothing-here", &acme).await;
    expect(&r, StatusCode::NOT_FOUND, "not_found", "openapi");
}

async fn restart_and_online_key_rotation_keep_credentials(backend: Backend) {
    let s = Server::start(backend).await;
    let web = TestServer::start().await;
    let acme = s.tenant("acme").await;
    let id = install_notify(&s, &acme, &web, "alerts").await;
    let r = s
        .call(Method::PUT, &format!("/v1/installations/{id}/credentials"), &acme, Some(json!({ "token": SECRET })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let key_file = s.data_dir().join("master.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // Rotate while the host keeps serving.
    let mut cmd = std::process::Command::new(patchbay_tests::patchbay_bin());
    cmd.args(["keys", "rotate", "--data-dir"]).arg(s.data_dir()).env_remove("PATCHBAY_MASTER_KEY");
    match backend {
        Backend::Sqlite => cmd.env_remove("DATABASE_URL"),
        Backend::Postgres => cmd.env("DATABASE_URL", s.database_url()),
    };
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("re-encrypted 1 credential"), "{text}");

    let r = s.post(&format!("/v1/installations/{id}/invoke/send"), &acme, notification("after rotation", "k-1")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let s = s.restart().await;
    let r = s.post(&format!("/v1/installations/{id}/invoke/send"), &acme, notification("after restart", "k-2")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let got = web.requests.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    for g in &got {
        assert_eq!(g.header("authorization").as_deref(), Some(format!("Bearer {SECRET}").as_str()));
    }
    // The restarted host kept its catalog without duplicating the reference connectors.
    let r = s.get("/v1/connectors/notify-webhook", &acme).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // New credentials, and deleted ones, apply to the very next call.
    let r = s
        .call(
            Method::PUT,
            &format!("/v1/installations/{id}/credentials"),
            &acme,
            Some(json!({ "token": "second-token-8f2a" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s.post(&format!("/v1/installations/{id}/invoke/send"), &acme, notification("new token", "k-3")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s.call(Method::DELETE, &format!("/v1/installations/{id}/credentials"), &acme, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
    let r = s.get(&format!("/v1/installations/{id}/credentials"), &acme).await;
    assert_eq!(r.body["credentials"], json!({}), "{r:?}");
    let r = s.post(&format!("/v1/installations/{id}/invoke/send"), &acme, notification("no token", "k-4")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let got = web.requests.lock().unwrap().clone();
    assert_eq!(got[2].header("authorization").as_deref(), Some("Bearer second-token-8f2a"));
    assert_eq!(got[3].header("authorization"), None);
}

/// The CLI drives the same API: tenant, key, connector push/ls, install, invoke, logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_covers_the_first_five_minutes() {
    let s = Server::start(Backend::Sqlite).await;
    let web = TestServer::start().await;
    let cli = |token: &str, args: &[&str]| {
        let out = std::process::Command::new(patchbay_tests::patchbay_bin())
            .args(args)
            .env("PATCHBAY_URL", &s.url)
            .env("PATCHBAY_TOKEN", token)
            .env("SLACK_TOKEN", SECRET)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let op = s.operator.clone();
    let (code, out, err) = cli(&op, &["tenant", "create", "acme"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) = cli(&op, &["key", "create", "acme", "--scopes", "view,manage,credentials"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let key: Value = serde_json::from_str(&out).unwrap();
    let token = key["token"].as_str().unwrap().to_string();
    let (code, out, err) = cli(&token, &["connector", "push", components::NOTIFY_WEBHOOK_V2]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("\"0.2.0\"") && out.contains("send"), "{out}");
    let (code, out, _) = cli(&token, &["connector", "ls"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("notify-webhook") && out.contains("private") && out.contains("public"), "{out}");
    // Listings read every page (here pages of 2); `--limit` reads one and says where the next starts.
    let (code, out, err) = cli(&token, &["connector", "ls", "--page-size", "2"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let all = s.get("/v1/connectors", &token).await;
    let listed = |out: &str| {
        out.lines().skip(1).map(|l| l.split_whitespace().next().unwrap_or("").to_string()).collect::<Vec<_>>()
    };
    let ids: Vec<String> =
        all.body["connectors"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    assert!(ids.len() > 2, "{ids:?}");
    assert_eq!(listed(&out), ids);
    let (code, out, err) = cli(&token, &["connector", "ls", "--limit", "2"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(listed(&out), ids[..2]);
    let cursor = err.trim().strip_prefix("more: --cursor ").unwrap_or_else(|| panic!("{err}")).to_string();
    let (code, out, err) = cli(&token, &["connector", "ls", "--cursor", &cursor, "--limit", "1000"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(listed(&out), ids[2..]);
    assert!(err.is_empty(), "the last page: {err}");
    for t in ["beta", "gamma", "delta"] {
        let (code, out, err) = cli(&op, &["tenant", "create", t]);
        assert_eq!(code, Some(0), "{out}{err}");
    }
    let (code, out, err) = cli(&op, &["tenant", "ls", "--page-size", "1"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let tenants: Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = tenants["tenants"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!((ids, &tenants["next_cursor"]), (vec!["acme", "beta", "delta", "gamma"], &Value::Null));
    let (code, out, err) = cli(&op, &["tenant", "ls", "--limit", "3"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["tenants"].as_array().unwrap().len(), 3);
    assert!(page["next_cursor"].is_string(), "{page}");
    let url = format!("webhook_url=http://{}/slack", web.addr);
    let (code, out, err) = cli(
        &token,
        &["install", "notify-webhook", "--name", "alerts", "--config", &url, "--credential", "token=env:SLACK_TOKEN"],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let inst: Value = serde_json::from_str(&out).unwrap();
    let id = inst["id"].as_str().unwrap().to_string();
    let input = notification("from the cli", "cli-1").to_string();
    let (code, out, err) = cli(&token, &["invoke", &id, "send", "--input", &input]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("webhook"), "{out}");
    let got = web.requests.lock().unwrap().clone();
    assert_eq!(got[0].header("authorization").as_deref(), Some(format!("Bearer {SECRET}").as_str()));
    let (code, out, err) = cli(&token, &["logs", &id]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("/slack") && !out.contains(SECRET), "{out}");
    // Errors are one line with the API's code; a connector error exits 2.
    let (code, _, err) = cli(&token, &["invoke", &id, "nope"]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("error: unknown_operation"), "{err}");
    let bad = format!("webhook_url=http://{}/status/500", web.addr);
    let (code, out, err) = cli(&token, &["install", "notify-webhook", "--name", "broken", "--config", &bad]);
    assert_eq!(code, Some(0), "{out}{err}");
    let broken: Value = serde_json::from_str(&out).unwrap();
    let (code, _, err) = cli(&token, &["invoke", broken["id"].as_str().unwrap(), "send", "--input", &input]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("connector_error (retryable)"), "{err}");
}

/// With signatures required, only components signed by a trusted publisher key are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_signatures_are_enforced() {
    let key = patchbay_registry::generate_keypair().unwrap();
    let trusted = key.trusted_entry();
    let s = Server::start_with(
        Backend::Sqlite,
        &[("PATCHBAY_REQUIRE_SIGNATURES", "true"), ("PATCHBAY_TRUSTED_KEYS", trusted.as_str())],
    )
    .await;
    let wasm = wasm(components::NOTIFY_WEBHOOK_V2);
    let r = s.upload(&s.operator, wasm.clone()).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.code(), "signature_required");
    let stranger = patchbay_registry::generate_keypair().unwrap();
    let (pair, id) = patchbay_registry::keypair_from_pkcs8(&stranger.pkcs8).unwrap();
    let r = s.upload(&s.operator, patchbay_registry::sign(&wasm, &pair, &id)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.code(), "bad_signature");
    let (pair, id) = patchbay_registry::keypair_from_pkcs8(&key.pkcs8).unwrap();
    let r = s.upload(&s.operator, patchbay_registry::sign(&wasm, &pair, &id)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["signed_by"], id.to_string());
}

/// `PATCHBAY_ADMIN_TOKEN` is the operator token (nothing is generated or printed); an installation
/// created disabled refuses calls until enabled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_token_from_environment() {
    let s = Server::start_with(Backend::Sqlite, &[("PATCHBAY_ADMIN_TOKEN", "operator-secret-from-env")]).await;
    assert!(s.operator.is_empty(), "no token is generated when one is configured");
    let r = s.post("/v1/tenants", "operator-secret-from-env", json!({ "id": "acme" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let r = s.post("/v1/tenants", "operator-secret-from-en", json!({ "id": "other" })).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    let r = s.post("/v1/tenants/acme/keys", "operator-secret-from-env", json!({ "scopes": ["view", "manage"] })).await;
    let acme = r.body["token"].as_str().unwrap().to_string();
    let r = s
        .post(
            "/v1/installations",
            &acme,
            json!({ "connector": "notify-webhook", "name": "off", "enabled": false,
                    "config": { "webhook_url": "https://hooks.example.com/x" } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    assert_eq!(r.body["enabled"], false);
    assert_eq!(r.body["revision"], 1, "created disabled in one write");
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = s.post(&format!("/v1/installations/{id}/invoke/health-check"), &acme, json!({})).await;
    assert_eq!(r.code(), "installation_disabled", "{r:?}");
    // Without the `credentials` scope the credentials are out of reach.
    let r = s.get(&format!("/v1/installations/{id}/credentials"), &acme).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    let r = s.call(Method::PATCH, &format!("/v1/installations/{id}"), &acme, Some(json!({ "enabled": true }))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s.post(&format!("/v1/installations/{id}/invoke/health-check"), &acme, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["status"], "healthy", "{r:?}");
}

/// `patchbay logs --follow` keeps printing entries as calls happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_streams_new_entries() {
    use std::io::BufRead;
    let s = Server::start(Backend::Sqlite).await;
    let web = TestServer::start().await;
    let acme = s.tenant("acme").await;
    let id = install_notify(&s, &acme, &web, "alerts").await;
    let mut child = std::process::Command::new(patchbay_tests::patchbay_bin())
        .args(["logs", &id, "--follow"])
        .env("PATCHBAY_URL", &s.url)
        .env("PATCHBAY_TOKEN", &acme)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    for i in 0..2 {
        let r =
            s.post(&format!("/v1/installations/{id}/invoke/send"), &acme, notification("x", &format!("f-{i}"))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let deadline = std::time::Instant::now() + patchbay_tests::scaled(std::time::Duration::from_secs(60));
        loop {
            let line =
                rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())).expect("a log line");
            if line.contains("http") && line.contains("/slack") {
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Bundle members share one set of credentials: an installation may name another installation of
/// the same bundle (same tenant) as its credentials source, and falls through to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_members_share_credentials() {
    let s = Server::start(Backend::Sqlite).await;
    let acme = s.tenant("acme").await;
    let globex = s.tenant("globex").await;
    let bundle_manifest = |id: &str, with_bundle: bool| {
        let mut m = manifest(id, "1.0.0", "data-sync");
        m.push_str(
            "\n[[credentials]]\nkey = \"api_key\"\nlabel = \"API key\"\ntype = \"secret\"\nrequired = true\nguest_readable = true\n",
        );
        if with_bundle {
            m.push_str("\n[bundle]\nid = \"suite\"\ntitle = \"Suite\"\n");
        }
        m
    };
    for (id, bundled) in [("suite-crm", true), ("suite-billing", true), ("loner", false)] {
        let wasm = with_custom_section(
            wasm(components::HOSTILE),
            "patchbay:manifest",
            bundle_manifest(id, bundled).as_bytes(),
        );
        let r = s.upload(&s.operator, wasm).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    let install = |token: String, connector: &'static str, from: Option<String>| {
        let s = &s;
        async move {
            let mut body = json!({ "connector": connector, "name": connector });
            if let Some(f) = from {
                body["credentials_from"] = json!(f);
            }
            s.post("/v1/installations", &token, body).await
        }
    };
    let crm = install(acme.clone(), "suite-crm", None).await;
    assert_eq!(crm.status, StatusCode::CREATED, "{crm:?}");
    let crm = crm.body["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            Method::PUT,
            &format!("/v1/installations/{crm}/credentials"),
            &acme,
            Some(json!({ "api_key": "shared-key-123456" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let billing = install(acme.clone(), "suite-billing", Some(crm.clone())).await;
    assert_eq!(billing.status, StatusCode::CREATED, "{billing:?}");
    let billing = billing.body["id"].as_str().unwrap().to_string();
    let read = json!({ "req": { "entity": "read-secret", "mode": "full", "cursor": "api_key", "limit": 1 } });
    let r = s.post(&format!("/v1/installations/{billing}/invoke/read-batch"), &acme, read.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let data: Value = serde_json::from_str(r.body["records"][0]["data"].as_str().unwrap()).unwrap();
    // The guest read the shared value; what leaves the sandbox is scrubbed of it.
    assert_eq!((&data["ok"], &data["value"]), (&json!(true), &json!("[REDACTED]")), "{r:?}");
    assert!(!r.body.to_string().contains("shared-key-123456"), "{r:?}");
    // Only members of the same bundle, and only the tenant's own installations.
    let r = install(acme.clone(), "loner", Some(crm.clone())).await;
    assert_eq!(r.code(), "invalid_credentials_from", "{r:?}");
    let r = install(globex.clone(), "suite-billing", Some(crm.clone())).await;
    assert_eq!(r.code(), "invalid_credentials_from", "{r:?}");

    // Finding: a key without the `credentials` scope uploaded its own connector declaring the
    // same bundle and borrowed the secret. Borrowing needs the scope...
    let manager = s.key("acme", &["view", "manage"]).await;
    let r = install(manager.clone(), "suite-billing", Some(crm.clone())).await;
    assert_eq!((r.status, r.code()), (StatusCode::FORBIDDEN, "forbidden"), "{r:?}");
    assert!(r.message().contains("credentials"), "{r:?}");
    // ...and the same publisher: the tenant's own upload claiming the operator's bundle cannot.
    let wasm = with_custom_section(
        wasm(components::HOSTILE),
        "patchbay:manifest",
        bundle_manifest("suite-impostor", true).as_bytes(),
    );
    let r = s.upload(&acme, wasm).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let r = install(acme.clone(), "suite-impostor", Some(crm.clone())).await;
    assert_eq!(r.code(), "invalid_credentials_from", "{r:?}");
    assert!(r.message().contains("publisher"), "{r:?}");
}

/// Without `PATCHBAY_EGRESS_ALLOW_NETWORKS`, connectors cannot reach private networks, even a
/// destination their manifest allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_networks_stay_blocked_by_default() {
    let s = Server::start_with(Backend::Sqlite, &[("PATCHBAY_EGRESS_ALLOW_NETWORKS", "")]).await;
    let web = TestServer::start().await;
    let acme = s.tenant("acme").await;
    let id = install_notify(&s, &acme, &web, "alerts").await;
    let r = s.post(&format!("/v1/installations/{id}/invoke/send"), &acme, notification("x", "k")).await;
    assert_eq!(r.code(), "connector_error", "{r:?}");
    assert!(web.requests.lock().unwrap().is_empty(), "nothing reached 127.0.0.1");
    let r = s.get(&format!("/v1/installations/{id}/logs"), &acme).await;
    assert!(r.body.to_string().contains("127.0.0.1"), "the refusal is in the log: {r:?}");
}

/// Events a connector emits land in the durable event log, once per idempotency key, visible to
/// its tenant only.
async fn emitted_events_are_durable_and_tenant_scoped(backend: Backend) {
    let s = Server::start(backend).await;
    let acme = s.tenant("acme").await;
    let globex = s.tenant("globex").await;
    let wasm = with_custom_section(
        wasm(components::HOSTILE),
        "patchbay:manifest",
        manifest("emitter", "1.0.0", "data-sync").as_bytes(),
    );
    let r = s.upload(&s.operator, wasm).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let r = s.post("/v1/installations", &acme, json!({ "connector": "emitter", "name": "emitter" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let emit = |key: &str| {
        let arg = json!({ "event_type": "expense.created", "subject": "exp-1", "payload": { "amount": 42 }, "idempotency_key": key });
        json!({ "req": { "entity": "emit", "mode": "full", "cursor": arg.to_string(), "limit": 1 } })
    };
    let mut ids = Vec::new();
    for key in ["k-1", "k-1", "k-2"] {
        let r = s.post(&format!("/v1/installations/{id}/invoke/read-batch"), &acme, emit(key)).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let data: Value = serde_json::from_str(r.body["records"][0]["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["ok"], true, "{data}");
        ids.push(data["ids"][0].as_str().unwrap().to_string());
    }
    assert_eq!(ids[0], ids[1], "a repeated idempotency key returns the first event");
    assert_ne!(ids[0], ids[2]);

    let r = s.get("/v1/events?type=expense.created", &acme).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let events = r.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{r:?}");
    assert_eq!(events[0]["payload"]["amount"], 42);
    assert_eq!(events[0]["source_installation"], id);
    let r = s.get(&format!("/v1/events/{}", ids[0]), &acme).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["idempotency_key"], "k-1");
    assert_eq!(r.body["deliveries"], json!([]));
    let r = s.get("/v1/events?limit=1", &acme).await;
    let cursor = r.body["next_cursor"].as_str().unwrap().to_string();
    let r = s.get(&format!("/v1/events?limit=1&cursor={cursor}"), &acme).await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1, "{r:?}");
    // Another tenant sees nothing.
    let r = s.get("/v1/events", &globex).await;
    assert_eq!(r.body["events"], json!([]), "{r:?}");
    let r = s.get(&format!("/v1/events/{}", ids[0]), &globex).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let r = s.get("/v1/events?status=lost", &acme).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
}

/// Every page of `path` (items under `key`) with pages of `limit`: the ids in order. Each page but
/// the last is full and has a `next_cursor`; the last has none.
async fn walk(s: &Server, token: &str, path: &str, key: &str, limit: usize) -> Vec<String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let (mut ids, mut cursor) = (Vec::new(), String::new());
    loop {
        let r = s.get(&format!("{path}{sep}limit={limit}&cursor={cursor}"), token).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {r:?}");
        let page = r.body[key].as_array().unwrap_or_else(|| panic!("{path}: {r:?}"));
        assert!(page.len() <= limit, "{path}: {r:?}");
        ids.extend(page.iter().map(|x| x["id"].as_str().unwrap().to_string()));
        match r.body["next_cursor"].as_str() {
            Some(c) => {
                assert_eq!(page.len(), limit, "{path}: only a full page has a next page: {r:?}");
                cursor = c.to_string();
            }
            None => return ids,
        }
    }
}

/// The ids of one page of everything (at most 1000).
async fn all_ids(s: &Server, token: &str, path: &str, key: &str) -> Vec<String> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let r = s.get(&format!("{path}{sep}limit=1000"), token).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {r:?}");
    assert_eq!(r.body["next_cursor"], Value::Null, "{path}: {r:?}");
    r.body[key].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_string()).collect()
}

async fn every_list_pages_with_opaque_cursors(backend: Backend) {
    let s = Server::start(backend).await;
    let acme = s.tenant("acme").await;
    let globex = s.tenant("globex").await;
    let op = s.operator.clone();
    let notify = |name: &str| json!({ "connector": "notify-webhook", "name": name, "config": { "webhook_url": "https://hooks.example.com/x" } });
    let csv = |name: &str| json!({ "connector": "csv-source", "name": name, "config": { "url": "http://127.0.0.1:9/rows.csv" } });
    let mut created = Vec::new();
    for (i, name) in ["alpha-1", "alpha-2", "beta-1", "Alpha-3", "é-nfc", "gamma"].iter().enumerate() {
        let r = s.post("/v1/installations", &acme, if i % 3 == 2 { csv(name) } else { notify(name) }).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        created.push(r.body["id"].as_str().unwrap().to_string());
    }
    let r = s.post("/v1/installations", &globex, notify("alpha-1")).await;
    let globex_installation = r.body["id"].as_str().unwrap().to_string();
    for (i, dest) in created.iter().enumerate().filter(|(i, _)| i % 3 != 2) {
        let r = s
            .post(
                "/v1/routes",
                &acme,
                json!({ "name": format!("route-{i}"), "event_types": ["*"],
                "destination_installation": dest, "operation": "send" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    for id in [&created[2], &created[5]] {
        let r = s
            .post(
                "/v1/schedules",
                &acme,
                json!({ "installation": id, "entity": "rows", "interval_secs": 3600, "enabled": false }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
        let r = s.post("/v1/syncs", &acme, json!({ "installation": id, "entity": "rows" })).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    }
    for _ in 0..3 {
        s.key("acme", &["view"]).await;
    }

    // Every list: pages of 1, 2 and 3 hold every row exactly once, in the order of one big page.
    let logs_path = format!("/v1/installations/{}/logs", created[0]);
    let lists = [
        ("/v1/installations", "installations", &acme),
        ("/v1/routes", "routes", &acme),
        ("/v1/schedules", "schedules", &acme),
        ("/v1/syncs", "runs", &acme),
        ("/v1/connectors", "connectors", &acme),
        ("/v1/tenants", "tenants", &op),
        ("/v1/tenants/acme/keys", "keys", &op),
        ("/v1/events", "events", &acme),
        (logs_path.as_str(), "entries", &acme),
    ];
    for (path, key, token) in &lists {
        // (Log entries have numeric ids; `upload_install_invoke_and_read_logs` walks a log.)
        if *key != "entries" {
            let all = all_ids(&s, token, path, key).await;
            for limit in [1, 2, 3] {
                assert_eq!(walk(&s, token, path, key, limit).await, all, "{path} in pages of {limit}");
            }
        }
        // Limits out of range and malformed or foreign cursors are precise 400s naming the parameter.
        for bad in ["limit=0", "limit=1001", "limit=-1", "limit=ten"] {
            let r = s.get(&format!("{path}?{bad}"), token).await;
            assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "bad_request"), "{path}?{bad}: {r:?}");
            assert!(r.message().contains("limit"), "{path}?{bad}: {r:?}");
        }
        let foreign = if *key == "routes" { "in10000000000000000696e735f31" } else { "ro10000000000000000726f5f31" };
        for bad in ["nope", "in1zz", foreign, "in1000000000000000g", "ev1%E2%82%AC"] {
            let r = s.get(&format!("{path}?cursor={bad}"), token).await;
            assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "bad_request"), "{path}?cursor={bad}: {r:?}");
            assert!(r.message().starts_with("cursor="), "{path}: {r:?}");
        }
    }
    // The health summary pages its installations; its counts cover them all.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = s.get(&format!("/v1/health?limit=4&cursor={cursor}"), &acme).await;
        assert_eq!(r.body["counts"]["unchecked"], 6, "{r:?}");
        seen.extend(
            r.body["installations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["installation"].as_str().unwrap_or_else(|| i["id"].as_str().unwrap()).to_string()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, created, "oldest first");
    // Installations are listed oldest first (creation time, then id).
    assert_eq!(all_ids(&s, &acme, "/v1/installations", "installations").await, created);

    // Filters: connector, status, name prefix (case-sensitive, NFC), with precise 400s.
    let names = |q: &'static str| {
        let s = &s;
        let acme = acme.clone();
        async move {
            let r = s.get(&format!("/v1/installations?{q}"), &acme).await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {r:?}");
            r.body["installations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(names("connector=csv-source").await, ["beta-1", "gamma"]);
    assert_eq!(names("connector=csv-source&name=g").await, ["gamma"]);
    assert_eq!(names("name=alpha").await, ["alpha-1", "alpha-2"]);
    assert_eq!(names("name=alpha-1").await, ["alpha-1"]);
    assert_eq!(names("name=Alpha").await, ["Alpha-3"]);
    assert_eq!(names("name=alpha-1x").await, Vec::<String>::new());
    assert_eq!(names("name=e%CC%81").await, ["é-nfc"], "a decomposed é matches the stored NFC one");
    assert_eq!(names("status=active&limit=1000").await.len(), 6);
    assert_eq!(names("status=error").await, Vec::<String>::new());
    let r = s.get("/v1/installations?name=alpha-1", &globex).await;
    assert_eq!(r.body["installations"].as_array().unwrap().len(), 1, "{r:?}");
    let (long_name, long_connector) = (format!("name={}", "é".repeat(101)), format!("connector={}", "x".repeat(129)));
    for (q, text) in
        [("status=broken", "status"), (&*long_name, "name"), (&*long_connector, "connector"), ("colour=red", "colour")]
    {
        let r = s.get(&format!("/v1/installations?{q}"), &acme).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_REQUEST, "bad_request"), "{q}: {r:?}");
        assert!(r.message().contains(text), "{q}: {r:?}");
    }
    // Rows inserted and deleted between pages: those there all along are listed once each, in
    // order; the cursor stays valid after the row it was taken from is deleted.
    let r = s.get("/v1/installations?limit=2", &acme).await;
    let mut ids: Vec<String> =
        r.body["installations"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect();
    let cursor = r.body["next_cursor"].as_str().unwrap().to_string();
    for gone in [&created[1], &created[3]] {
        let r = s.call(Method::DELETE, &format!("/v1/installations/{gone}"), &acme, None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{r:?}");
    }
    let r = s.post("/v1/installations", &acme, notify("late")).await;
    let late = r.body["id"].as_str().unwrap().to_string();
    let mut cursor = Some(cursor);
    while let Some(c) = cursor {
        let r = s.get(&format!("/v1/installations?limit=2&cursor={c}"), &acme).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        ids.extend(r.body["installations"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()));
        cursor = r.body["next_cursor"].as_str().map(str::to_string);
    }
    let expected: Vec<String> = [&created[0], &created[1], &created[2], &created[4], &created[5], &late]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(ids, expected);

    // Another tenant's cursor positions within the caller's own rows only: nothing of acme's.
    let r = s.get("/v1/installations?limit=1", &acme).await;
    let acme_cursor = r.body["next_cursor"].as_str().unwrap().to_string();
    let r = s.get(&format!("/v1/installations?cursor={acme_cursor}"), &globex).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let listed: Vec<&str> =
        r.body["installations"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert!(listed.iter().all(|id| *id == globex_installation), "{r:?}");
    let r = s.get("/v1/events?cursor=ev10000000000000000657674", &globex).await;
    assert_eq!((r.status, &r.body["events"]), (StatusCode::OK, &json!([])), "{r:?}");

    // Earlier paging parameters still work beside the cursor.
    let runs = all_ids(&s, &acme, "/v1/syncs", "runs").await;
    let r = s.get("/v1/syncs?limit=1", &acme).await;
    assert_eq!(r.body["next_before"], json!(runs[0]), "{r:?}");
    let r = s.get(&format!("/v1/syncs?before={}", runs[0]), &acme).await;
    assert_eq!(r.body["runs"][0]["id"], json!(runs[1]), "{r:?}");
    let r = s.get("/v1/syncs?before=run_nope", &acme).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
}

/// `patchbay bench` measures any export of any component with the input, configuration, secrets
/// and egress `patchbay run` takes, and refuses to measure calls that fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_measures_any_connector_and_operation() {
    let bench = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(patchbay_tests::patchbay_bin())
                .arg("bench")
                .args(&args)
                .output()
                .expect("patchbay bench");
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        })
    };
    // The trivial component's health check needs no host import: the floor is a bare call.
    let (ok, out, err) = bench(vec![components::TRIVIAL.into(), "--iterations".into(), "40".into()]).await.unwrap();
    assert!(ok, "{err}");
    assert!(
        out.contains("fresh-sandbox call of `health-check`") && out.contains("bare wasmtime (same engine config)"),
        "{out}"
    );
    assert!(out.contains("patchbay (capabilities + limits)") && out.contains("threads=2"), "{out}");

    // notify-webhook's health check reads its configuration through the host (a bare call would
    // trap): the floor is instantiation alone, and the answer says what the check found.
    let (ok, out, err) =
        bench(vec![components::NOTIFY_WEBHOOK.into(), "--iterations".into(), "40".into()]).await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("bare wasmtime instantiate, no call"), "{out}");
    assert!(out.contains("webhook_url"), "the unconfigured check names what is missing: {out}");

    // A real operation: `send` posting to a local incoming webhook, every call a request.
    let web = TestServer::start().await;
    let input = notification("bench", "k-1").to_string();
    let args = |hook: &str| -> Vec<String> {
        let mut a: Vec<String> = [components::NOTIFY_WEBHOOK, "send", "--iterations", "20", "--input"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend([input.clone(), "--config".into(), format!("webhook_url={hook}")]);
        a.extend([
            "--allow-host".into(),
            format!("http://{}", web.addr),
            "--allow-network".into(),
            "127.0.0.1/32".into(),
        ]);
        a
    };
    let (ok, out, err) = bench(args(&web.url("/slack"))).await.unwrap();
    assert!(ok, "{err}");
    assert!(out.contains("fresh-sandbox call of `send`"), "{out}");
    // The probe, a warm-up of 20 and 2 thread counts × (20 rounded up to the 10 rounds) calls.
    let sent = web.received().iter().filter(|r| r.path == "/slack").count();
    assert!(sent >= 1 + 20 + 20 + 40, "{sent} requests reached the webhook");

    // A call that fails is not measured: the connector's error is named.
    let (ok, _, err) = bench(args(&web.url("/status/404"))).await.unwrap();
    assert!(!ok);
    assert!(err.contains("`send` failed, nothing measured") && err.contains("404"), "{err}");
    // Nor one the component does not export, nor bad input.
    let (ok, _, err) = bench(vec![components::TRIVIAL.into(), "nope".into()]).await.unwrap();
    assert!(!ok && err.contains("nope"), "{err}");
    let (ok, _, err) = bench(vec![components::TRIVIAL.into(), "--input".into(), "{".into()]).await.unwrap();
    assert!(!ok && err.contains("--input is not valid JSON"), "{err}");
}
