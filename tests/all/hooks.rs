//! Webhook ingress → routes → outbox → dispatcher, end to end: the real binary over HTTP, a
//! signed GitHub-style webhook in, a local HTTP server standing in for the destination.

use std::time::Duration;

use patchbay_crypto::webhook::sign_github;
use patchbay_store::Backend;
use patchbay_tests::eventually;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::TestServer;
use crate::server::{Resp, Server};

on_both_backends!(webhooks_are_verified_recorded_routed_and_delivered, failed_deliveries_retry_dead_letter_and_redrive,);

pub(crate) const GH_SECRET: &str = "gh-secret-8d2f1c7e";

/// A push delivery as GitHub sends it.
pub(crate) fn push_body(n: usize) -> String {
    json!({
        "ref": "refs/heads/main",
        "after": format!("{n:040x}"),
        "repository": {"full_name": "acme/widgets", "id": 1},
        "pusher": {"name": "octocat"},
        "head_commit": {"id": format!("{n:040x}"), "message": format!("commit {n}"), "timestamp": "2026-11-20T10:00:00Z"},
        "commits": [],
    })
    .to_string()
}

/// Posts a webhook with GitHub's headers, signed with `secret` (unsigned when `None`).
pub(crate) async fn post_github(url: &str, secret: Option<&str>, delivery: &str, body: &str) -> Resp {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .body(body.to_string());
    if let Some(s) = secret {
        req = req.header("x-hub-signature-256", sign_github(s, body.as_bytes()));
    }
    Resp::read(req.send().await.unwrap()).await
}

/// Installs the github connector with its secret; returns (installation id, webhook URL).
pub(crate) async fn install_github(s: &Server, token: &str, name: &str, secret: Option<&str>) -> (String, String) {
    let r = s.post("/v1/installations", token, json!({ "connector": "github", "name": name })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let url = r.body["webhook_url"].as_str().expect("webhook-endpoint installations have a webhook_url").to_string();
    assert!(url.starts_with(&format!("{}/hooks/hk_", s.url)), "{url}");
    if let Some(secret) = secret {
        let r = s
            .call(
                reqwest::Method::PUT,
                &format!("/v1/installations/{id}/credentials"),
                token,
                Some(json!({ "webhook_secret": secret })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    (id, url)
}

/// Installs notify-webhook posting to `path` of the test server.
pub(crate) async fn install_notify_at(s: &Server, token: &str, web: &TestServer, name: &str, path: &str) -> String {
    let r = s
        .post(
            "/v1/installations",
            token,
            json!({ "connector": "notify-webhook", "name": name, "config": { "webhook_url": web.url(path) } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    r.body["id"].as_str().unwrap().to_string()
}

/// A route from `source`'s `github.*` events to `dest`'s `send`, carrying the idempotency key in
/// the text so the test server can count effects.
pub(crate) fn notify_route(name: &str, source: &str, dest: &str) -> Value {
    json!({
        "name": name,
        "event_types": ["github.*"],
        "source_installation": source,
        "destination_installation": dest,
        "operation": "send",
        "payload_template": {"notification": {
            "to": [], "cc": [], "bcc": [], "attachments": [], "categories": [], "metadata": [],
            "text": "{{event.type}} {{event.payload.head_commit.message}} key={{delivery.idempotency_key}}"
        }},
    })
}

/// Polls an event until every delivery reached a final status (or `want` for all of them).
async fn wait_deliveries(s: &Server, token: &str, event: &str, want: &str) -> Value {
    let path = format!("/v1/events/{event}");
    eventually(&format!("every delivery of {event} to become {want}"), Duration::from_secs(60), || async {
        let r = s.get(&path, token).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let ds = r.body["deliveries"].as_array().cloned().unwrap_or_default();
        if !ds.is_empty() && ds.iter().all(|d| d["status"] == want) { Ok(r.body) } else { Err(r.body.to_string()) }
    })
    .await
}

async fn webhooks_are_verified_recorded_routed_and_delivered(backend: Backend) {
    let s = Server::start(backend).await;
    let web = TestServer::start().await;
    let t = s.tenant("acme").await;
    let (gh, url) = install_github(&s, &t, "repo-hooks", None).await;

    // No secret yet: refused, never accepted unverified, and in the same words as a wrong
    // signature, so a sender cannot tell whether a secret is configured.
    let body = push_body(1);
    let r = post_github(&url, Some(GH_SECRET), "d-1", &body).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    assert!(r.message().contains("no signature matched"), "{r:?}");
    let unsigned = post_github(&url, None, "d-1", &body).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED, "{unsigned:?}");
    let unconfigured = (r.status, r.body.clone(), unsigned.body.clone());

    let r = s
        .call(
            reqwest::Method::PUT,
            &format!("/v1/installations/{gh}/credentials"),
            &t,
            Some(json!({ "webhook_secret": GH_SECRET })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // With the secret set, a wrong signature and a missing one answer exactly as before.
    let wrong = post_github(&url, Some("not-the-secret"), "d-1", &body).await;
    let unsigned = post_github(&url, None, "d-1", &body).await;
    assert_eq!(unconfigured, (wrong.status, wrong.body.clone(), unsigned.body.clone()));
    let chat = install_notify_at(&s, &t, &web, "chat", "/slack").await;
    let audit = install_notify_at(&s, &t, &web, "audit", "/audit").await;
    let r = s.post("/v1/routes", &t, notify_route("pushes-to-chat", &gh, &chat)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    // A second route with a payload filter: fan-out, each delivery on its own.
    let mut audit_route = notify_route("main-to-audit", &gh, &audit);
    audit_route["filter"] =
        json!({"ref": "refs/heads/main", "repository": {"prefix": "acme/"}, "pusher.name": "octocat"});
    let r = s.post("/v1/routes", &t, audit_route).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let mut skipped = notify_route("tags-only", &gh, &audit);
    skipped["filter"] = json!({"ref": {"prefix": "refs/tags/"}});
    assert_eq!(s.post("/v1/routes", &t, skipped).await.status, StatusCode::CREATED);

    // Wrong signature and no signature: 401 with a reason.
    let r = post_github(&url, Some("not-the-secret"), "d-1", &body).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    assert!(r.message().contains("no signature matched"), "{r:?}");
    let r = post_github(&url, None, "d-1", &body).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    assert!(r.message().to_ascii_lowercase().contains("x-hub-signature-256"), "{r:?}");

    // Verified: 200 once recorded, with the event ids.
    let r = post_github(&url, Some(GH_SECRET), "d-1", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["received"], true);
    let events = r.body["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1, "{r:?}");
    let event = events[0].as_str().unwrap().to_string();

    // The same delivery again (GitHub redelivers with the same X-GitHub-Delivery): the first
    // answer, not an error, and nothing new stored.
    let again = post_github(&url, Some(GH_SECRET), "d-1", &body).await;
    assert_eq!(again.status, StatusCode::OK, "{again:?}");
    assert_eq!(again.body, r.body);
    assert_eq!(again.header("x-patchbay-duplicate"), Some("true"));
    // Finding: the delivery id is not signed and GitHub signs no timestamp, so the same signed
    // body under new delivery ids was new events each time. It is the same request.
    for replay in ["d-replay-1", "d-replay-2", "d-replay-3"] {
        let r = post_github(&url, Some(GH_SECRET), replay, &body).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body, again.body, "{replay}");
        assert_eq!(r.header("x-patchbay-duplicate"), Some("true"), "{replay}");
    }

    let detail = wait_deliveries(&s, &t, &event, "delivered").await;
    assert_eq!(detail["type"], "github.push");
    assert_eq!(detail["source_installation"], gh.as_str());
    let ds = detail["deliveries"].as_array().unwrap();
    assert_eq!(ds.len(), 2, "two routes matched, the tag route did not: {detail}");
    for d in ds {
        let attempts = d["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{d}");
        assert_eq!(attempts[0]["outcome"], "ok");
        assert!(attempts[0]["duration_ms"].as_i64().unwrap() >= 0);
        assert_eq!(d["idempotency_key"].as_str().unwrap(), format!("{event}.{}", d["route_id"].as_str().unwrap()));
    }
    // Each destination got exactly one effect, carrying its own idempotency key.
    let got = web.received();
    for (path, dest) in [("/slack", &chat), ("/audit", &audit)] {
        let hits: Vec<_> = got.iter().filter(|r| r.path == path).collect();
        assert_eq!(hits.len(), 1, "{path}: {hits:?}");
        let text = String::from_utf8_lossy(&hits[0].body).to_string();
        let d = ds.iter().find(|d| d["destination_installation"] == dest.as_str()).unwrap();
        assert!(text.contains(&format!("key={}", d["idempotency_key"].as_str().unwrap())), "{text}");
        assert!(text.contains("github.push commit 1"), "{text}");
    }

    // The event log: filter by type glob, installation and status.
    let r = s.get(&format!("/v1/events?type=github.*&installation={gh}&status=delivered"), &t).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1, "{r:?}");
    let r = s.get("/v1/events?type=stripe.*", &t).await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 0, "{r:?}");

    // Another tenant cannot see it, and its webhook URL is not this one.
    let other = s.tenant("globex").await;
    assert_eq!(s.get(&format!("/v1/events/{event}"), &other).await.status, StatusCode::NOT_FOUND);

    // Rotation: the old address stops working, the new one works.
    let r = s.post(&format!("/v1/installations/{gh}/webhook/rotate"), &t, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let new_url = r.body["webhook_url"].as_str().unwrap().to_string();
    assert_ne!(new_url, url);
    assert_eq!(post_github(&url, Some(GH_SECRET), "d-2", &push_body(2)).await.status, StatusCode::NOT_FOUND);
    let r = post_github(&new_url, Some(GH_SECRET), "d-2", &push_body(2)).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s.get(&format!("/v1/installations/{gh}"), &t).await;
    assert_eq!(r.body["webhook_url"], new_url.as_str());

    // Metrics count webhooks, deliveries and the outbox.
    let m = s.get("/metrics", &s.operator).await;
    let text = m.body.as_str().unwrap_or_default().to_string();
    assert!(text.contains("patchbay_webhooks_total{result=\"stored\"} 2"), "{text}");
    assert!(text.contains("patchbay_webhooks_total{result=\"duplicate\"} 4"), "{text}");
    assert!(text.contains("patchbay_webhooks_total{result=\"rejected_401\"} 6"), "{text}");
    assert!(text.contains("patchbay_deliveries_total{outcome=\"ok\"}"), "{text}");
    assert!(text.contains("patchbay_outbox_deliveries{status=\"dead\"} 0"), "{text}");
    // Every delivery went from the ingest straight to this host's dispatcher: none was claimed.
    assert!(text.contains("patchbay_deliveries_started_total{path=\"handoff\"}"), "{text}");
    assert!(!text.contains("path=\"claim\""), "{text}");
}

async fn failed_deliveries_retry_dead_letter_and_redrive(backend: Backend) {
    let s = Server::start(backend).await;
    let web = TestServer::start().await;
    let t = s.tenant("acme").await;
    let (gh, url) = install_github(&s, &t, "repo-hooks", Some(GH_SECRET)).await;
    // Fails twice with 503, then accepts: retried on a (short) custom schedule.
    let flaky = install_notify_at(&s, &t, &web, "flaky", "/flaky/2/a").await;
    let mut route = notify_route("to-flaky", &gh, &flaky);
    route["retry_schedule"] = json!([0, 0, 0]);
    assert_eq!(s.post("/v1/routes", &t, route).await.status, StatusCode::CREATED);
    // Permanently refused (Slack's 404 no_service → permanent): straight to the dead letter.
    let dead = install_notify_at(&s, &t, &web, "gone", "/status/404").await;
    let r = s.post("/v1/routes", &t, notify_route("to-gone", &gh, &dead)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let dead_route = r.body["id"].as_str().unwrap().to_string();
    // Always 503 with a one-step schedule: exhausted, dead.
    let down = install_notify_at(&s, &t, &web, "down", "/status/503").await;
    let mut route = notify_route("to-down", &gh, &down);
    route["retry_schedule"] = json!([0]);
    assert_eq!(s.post("/v1/routes", &t, route).await.status, StatusCode::CREATED);

    let r = post_github(&url, Some(GH_SECRET), "d-9", &push_body(9)).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let event = r.body["events"][0].as_str().unwrap().to_string();
    let path = format!("/v1/events/{event}");
    let detail = eventually("the three deliveries to end", Duration::from_secs(60), || async {
        let r = s.get(&path, &t).await;
        let ds = r.body["deliveries"].as_array().cloned().unwrap_or_default();
        if ds.len() == 3 && ds.iter().all(|d| d["status"] == "delivered" || d["status"] == "dead") {
            Ok(r.body)
        } else {
            Err(r.body.to_string())
        }
    })
    .await;
    let by_dest = |id: &str| {
        detail["deliveries"].as_array().unwrap().iter().find(|d| d["destination_installation"] == id).unwrap().clone()
    };
    let d = by_dest(&flaky);
    assert_eq!(d["status"], "delivered", "{d}");
    let outcomes: Vec<&str> =
        d["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["retryable", "retryable", "ok"], "{d}");
    assert!(d["attempts"][0]["error"].as_str().unwrap().contains("503"), "{d}");
    let d = by_dest(&dead);
    assert_eq!(d["status"], "dead", "{d}");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "permanent errors are not retried: {d}");
    assert_eq!(d["attempts"][0]["outcome"], "permanent");
    let d = by_dest(&down);
    assert_eq!(d["status"], "dead", "{d}");
    assert_eq!(d["attempts"].as_array().unwrap().len(), 1, "{d}");

    let r = s.get("/v1/events?status=dead", &t).await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1, "{r:?}");
    let m = s.get("/metrics", &s.operator).await;
    let text = m.body.as_str().unwrap_or_default().to_string();
    assert!(text.contains("patchbay_outbox_deliveries{status=\"dead\"} 2"), "{text}");
    assert!(text.contains("patchbay_deliveries_total{outcome=\"dead\"} 2"), "{text}");

    // Redrive: a delivery that is not dead is refused; an unknown one is 404.
    let delivered = by_dest(&flaky)["id"].as_str().unwrap().to_string();
    let r = s.post(&format!("/v1/deliveries/{delivered}/redrive"), &t, json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
    let r = s.post("/v1/deliveries/dlv_nope/redrive", &t, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let r = s.post("/v1/deliveries/redrive", &t, json!({})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    let r = s.post("/v1/deliveries/redrive", &t, json!({"route": "rte_nope"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");

    // Fix the destinations, then redrive one delivery and all dead letters of a route.
    let fixed = json!({ "config": { "webhook_url": web.url("/slack") } });
    for id in [&dead, &down] {
        let r = s.call(reqwest::Method::PATCH, &format!("/v1/installations/{id}"), &t, Some(fixed.clone())).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    let one = by_dest(&down)["id"].as_str().unwrap().to_string();
    let r = s.post(&format!("/v1/deliveries/{one}/redrive"), &t, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s.post("/v1/deliveries/redrive", &t, json!({"route": dead_route})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["redriven"], 1);
    let detail = wait_deliveries(&s, &t, &event, "delivered").await;
    let d = detail["deliveries"].as_array().unwrap().iter().find(|d| d["destination_installation"] == dead).unwrap();
    let outcomes: Vec<&str> =
        d["attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["permanent", "ok"], "the history stays: {d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_requests_are_refused_precisely() {
    let s = Server::start_with(Backend::Sqlite, &[("PATCHBAY_WEBHOOK_MAX_KIB", "4")]).await;
    let t = s.tenant("acme").await;
    let (_, url) = install_github(&s, &t, "repo-hooks", Some(GH_SECRET)).await;
    // Unknown or malformed hook ids.
    let base = format!("{}/hooks/", s.url);
    for bad in ["hk_0000000000000000000000000000000000000000000000000000000000000000", "x", "hk_%2e%2e"] {
        let r = post_github(&format!("{base}{bad}"), Some(GH_SECRET), "d", &push_body(1)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{bad}: {r:?}");
        assert_eq!(r.code(), "unknown_hook");
    }
    // Over the cap: 413, also when signed.
    let big = json!({"ref": "x".repeat(5000)}).to_string();
    let r = post_github(&url, Some(GH_SECRET), "d-big", &big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{r:?}");
    // Authentic but not JSON: the connector cannot read it → 400 naming why.
    let r = post_github(&url, Some(GH_SECRET), "d-bad", "{not json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{r:?}");
    assert_eq!(r.code(), "webhook_rejected");
    // A signature over other bytes (one changed byte) fails: verification is on the raw body.
    let body = push_body(3);
    let sig = sign_github(GH_SECRET, body.as_bytes());
    let tampered = body.replacen("octocat", "octocot", 1);
    let r = Resp::read(
        reqwest::Client::new()
            .post(&url)
            .header("x-github-event", "push")
            .header("x-github-delivery", "d-3")
            .header("x-hub-signature-256", sig)
            .body(tampered)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    // Nothing was recorded for any of these.
    let r = s.get("/v1/events", &t).await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 0, "{r:?}");
    // A connector that does not receive webhooks has no address and cannot rotate one.
    let web = TestServer::start().await;
    let chat = install_notify_at(&s, &t, &web, "chat", "/slack").await;
    let r = s.get(&format!("/v1/installations/{chat}"), &t).await;
    assert_eq!(r.body["webhook_url"], Value::Null);
    let r = s.post(&format!("/v1/installations/{chat}/webhook/rotate"), &t, json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_are_validated_and_scoped() {
    let s = Server::start(Backend::Sqlite).await;
    let web = TestServer::start().await;
    let t = s.tenant("acme").await;
    let (gh, _) = install_github(&s, &t, "repo-hooks", Some(GH_SECRET)).await;
    let chat = install_notify_at(&s, &t, &web, "chat", "/slack").await;
    let good = notify_route("r1", &gh, &chat);
    let cases: Vec<(Value, StatusCode, &str)> = vec![
        (json!({"event_types": []}), StatusCode::UNPROCESSABLE_ENTITY, "event_types"),
        (json!({"event_types": ["bad type"]}), StatusCode::UNPROCESSABLE_ENTITY, "event_types[0]"),
        (json!({"operation": "sned"}), StatusCode::UNPROCESSABLE_ENTITY, "operation"),
        (json!({"destination_installation": "ins_nope"}), StatusCode::UNPROCESSABLE_ENTITY, "destination_installation"),
        (json!({"source_installation": "ins_nope"}), StatusCode::UNPROCESSABLE_ENTITY, "source_installation"),
        (json!({"filter": {"amount": {"between": [1, 2]}}}), StatusCode::UNPROCESSABLE_ENTITY, "filter.amount"),
        (
            json!({"payload_template": {"text": "{{secrets.token}}"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "payload_template.text",
        ),
        (json!({"retry_schedule": []}), StatusCode::UNPROCESSABLE_ENTITY, "retry_schedule"),
        (json!({"name": ""}), StatusCode::UNPROCESSABLE_ENTITY, "name"),
    ];
    for (patch, status, path) in cases {
        let mut body = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = s.post("/v1/routes", &t, body).await;
        assert_eq!(r.status, status, "{patch}: {r:?}");
        assert!(r.body["error"]["path"] == path || r.message().contains(path), "{patch}: {r:?}");
    }
    let mut unknown = good.clone();
    unknown["colour"] = json!("red");
    let r = s.post("/v1/routes", &t, unknown).await;
    assert!(r.status.is_client_error() && r.message().contains("colour"), "{r:?}");

    let r = s.post("/v1/routes", &t, good.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(s.post("/v1/routes", &t, good.clone()).await.status, StatusCode::CONFLICT);
    let r = s
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/routes/{id}"),
            &t,
            Some(json!({"enabled": false, "filter": {"a": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["enabled"], false);
    assert_eq!(r.body["revision"], 2);
    let r = s.call(reqwest::Method::PATCH, &format!("/v1/routes/{id}"), &t, Some(json!({"filter": null}))).await;
    assert_eq!(r.body["filter"], Value::Null, "{r:?}");
    // A failed PATCH changes nothing.
    let r = s.call(reqwest::Method::PATCH, &format!("/v1/routes/{id}"), &t, Some(json!({"operation": "nope"}))).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    let r = s.get(&format!("/v1/routes/{id}"), &t).await;
    assert_eq!(r.body["operation"], "send");
    assert_eq!(r.body["revision"], 3);

    // Another tenant's view: 404 everywhere, and its own list is empty.
    let other = s.tenant("globex").await;
    assert_eq!(s.get(&format!("/v1/routes/{id}"), &other).await.status, StatusCode::NOT_FOUND);
    let r = s.call(reqwest::Method::DELETE, &format!("/v1/routes/{id}"), &other, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(s.get("/v1/routes", &other).await.body["routes"].as_array().unwrap().len(), 0);
    // A route to another tenant's installation is refused.
    let (ogh, _) = install_github(&s, &other, "theirs", None).await;
    let r = s.post("/v1/routes", &other, notify_route("steal", &ogh, &chat)).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    // View scope may read, not write.
    let viewer = s.key("acme", &["view"]).await;
    assert_eq!(s.get("/v1/routes", &viewer).await.body["routes"].as_array().unwrap().len(), 1);
    assert_eq!(s.post("/v1/routes", &viewer, good.clone()).await.status, StatusCode::FORBIDDEN);

    let r = s.call(reqwest::Method::DELETE, &format!("/v1/routes/{id}"), &t, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(s.get(&format!("/v1/routes/{id}"), &t).await.status, StatusCode::NOT_FOUND);
}

/// Events a connector emits through the `events` capability are routed like webhook events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emitted_events_are_routed_once() {
    let s = Server::start(Backend::Sqlite).await;
    let web = TestServer::start().await;
    let t = s.tenant("acme").await;
    let manifest = "id = \"emitter\"\ntitle = \"Emitter\"\ndescription = \"Emits events\"\ncategory = \"data-sync\"\n\
                    provider = \"tests\"\nversion = \"1.0.0\"\n";
    let wasm = crate::server::with_custom_section(
        std::fs::read(patchbay_tests::components::HOSTILE).unwrap(),
        "patchbay:manifest",
        manifest.as_bytes(),
    );
    assert_eq!(s.upload(&s.operator, wasm).await.status, StatusCode::CREATED);
    let r = s.post("/v1/installations", &t, json!({ "connector": "emitter", "name": "emitter" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let emitter = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(r.body["webhook_url"], Value::Null, "only webhook endpoints get an address");
    let chat = install_notify_at(&s, &t, &web, "chat", "/slack").await;
    let r = s
        .post(
            "/v1/routes",
            &t,
            json!({
                "name": "big-expenses", "event_types": ["expense.*"], "source_installation": emitter,
                "filter": {"amount": {"gte": 40}},
                "destination_installation": chat, "operation": "send",
                "payload_template": {"notification": {"to": [], "cc": [], "bcc": [], "attachments": [],
                    "categories": [], "metadata": [], "text": "{{event.subject}}: {{event.payload.amount}}"}},
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let emit = |key: &str, amount: u32| {
        let arg = json!({ "event_type": "expense.created", "subject": format!("exp-{key}"), "payload": { "amount": amount }, "idempotency_key": key });
        json!({ "req": { "entity": "emit", "mode": "full", "cursor": arg.to_string(), "limit": 1 } })
    };
    let mut ids = Vec::new();
    for (key, amount) in [("k-1", 42), ("k-1", 42), ("k-2", 10)] {
        let r = s.post(&format!("/v1/installations/{emitter}/invoke/read-batch"), &t, emit(key, amount)).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let data: Value = serde_json::from_str(r.body["records"][0]["data"].as_str().unwrap()).unwrap();
        ids.push(data["ids"][0].as_str().unwrap().to_string());
    }
    let detail = wait_deliveries(&s, &t, &ids[0], "delivered").await;
    assert_eq!(detail["deliveries"].as_array().unwrap().len(), 1, "a repeated key adds no delivery: {detail}");
    let r = s.get(&format!("/v1/events/{}", ids[2]), &t).await;
    assert_eq!(r.body["deliveries"], json!([]), "filtered out: {r:?}");
    let hits: Vec<_> = web.received().into_iter().filter(|r| r.path == "/slack").collect();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(String::from_utf8_lossy(&hits[0].body).contains("exp-k-1: 42"), "{hits:?}");
}

/// Standard Webhooks in (verified by the host, ±300 s window), routed with the default template
/// to another standard-webhooks installation's `deliver`, out as a signed Standard Webhook whose
/// `webhook-id` is the event id and whose `idempotency-key` is the delivery's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_webhooks_in_and_out() {
    use patchbay_crypto::webhook::{Scheme, Verifier, sign_standard_webhooks};
    let s = Server::start(Backend::Postgres).await;
    let web = TestServer::start().await;
    let t = s.tenant("acme").await;
    let inbound_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let outbound_secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let r = s.post("/v1/installations", &t, json!({ "connector": "standard-webhooks", "name": "in" })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let inbound = r.body["id"].as_str().unwrap().to_string();
    let url = r.body["webhook_url"].as_str().unwrap().to_string();
    let creds = |id: &str, body: Value| {
        let path = format!("/v1/installations/{id}/credentials");
        let t = t.clone();
        let s = &s;
        async move { s.call(reqwest::Method::PUT, &path, &t, Some(body)).await }
    };
    assert_eq!(creds(&inbound, json!({ "webhook_secret": inbound_secret })).await.status, StatusCode::OK);
    let r = s
        .post(
            "/v1/installations",
            &t,
            json!({ "connector": "standard-webhooks", "name": "out", "config": { "url": web.url("/subscriber") } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let outbound = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(creds(&outbound, json!({ "signing_secret": outbound_secret })).await.status, StatusCode::OK);
    let r = s
        .post(
            "/v1/routes",
            &t,
            json!({ "name": "fan-out", "event_types": ["invoice.*"], "source_installation": inbound,
                    "destination_installation": outbound, "operation": "deliver" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");

    let body = json!({"type": "invoice.paid", "timestamp": "2026-11-22T10:00:00Z", "data": {"invoice": "in_1", "amount": 990}}).to_string();
    let send = |id: &'static str, ts: i64, body: String, secret: &'static str| {
        let url = url.clone();
        async move {
            let sig = sign_standard_webhooks(secret, id, ts, body.as_bytes()).unwrap();
            let req = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig)
                .body(body);
            Resp::read(req.send().await.unwrap()).await
        }
    };
    // Outside the replay window (either way) and a wrong secret: 401 with the reason.
    let r = send("msg_old", (patchbay_core::now_ms() / 1000) - 400, body.clone(), inbound_secret).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    assert!(r.message().contains("300"), "{r:?}");
    let r = send("msg_future", (patchbay_core::now_ms() / 1000) + 400, body.clone(), inbound_secret).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    let r = send("msg_1", patchbay_core::now_ms() / 1000, body.clone(), outbound_secret).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    // Authentic: recorded, and the same webhook-id again replays the answer.
    let r = send("msg_1", patchbay_core::now_ms() / 1000, body.clone(), inbound_secret).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let again = send("msg_1", patchbay_core::now_ms() / 1000, body.clone(), inbound_secret).await;
    assert_eq!(again.body, r.body);
    let event = r.body["events"][0].as_str().unwrap().to_string();
    let detail = wait_deliveries(&s, &t, &event, "delivered").await;
    assert_eq!(detail["type"], "invoice.paid");
    assert_eq!(detail["idempotency_key"], "msg_1");
    let key = detail["deliveries"][0]["idempotency_key"].as_str().unwrap().to_string();

    let got: Vec<_> = web.received().into_iter().filter(|r| r.path == "/subscriber").collect();
    assert_eq!(got.len(), 1, "{got:?}");
    let req = &got[0];
    assert_eq!(req.header("webhook-id").as_deref(), Some(event.as_str()));
    assert_eq!(req.header("idempotency-key").as_deref(), Some(key.as_str()));
    let sent: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(sent["type"], "invoice.paid");
    assert_eq!(sent["data"], json!({"invoice": "in_1", "amount": 990}));
    let headers: Vec<(String, String)> =
        req.headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string())).collect();
    Verifier::new(Scheme::StandardWebhooks, &[outbound_secret])
        .unwrap()
        .verify(headers.as_slice(), &req.body, patchbay_core::now_ms() / 1000)
        .expect("the delivery is signed with the subscriber's secret");
}
