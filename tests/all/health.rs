//! Installation health end to end: on-demand and scheduled checks of the `oauth-notify` test
//! connector against the local provider, the statuses (unconfigured, healthy, unhealthy by
//! answer and by timeout), three failures putting the installation in `error` and recovery
//! taking it out, the events of each change, and the tenant summary — on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use patchbay_store::Backend;
use patchbay_tests::oauth::OAuthServer;
use patchbay_tests::{components, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::oauth::{authorize, install};
use crate::quotas::set_rate_limits;
use crate::server::Server;

on_both_backends!(health_checks_move_installations_through_their_statuses, health_checks_run_on_their_schedule);

async fn check(s: &Server, token: &str, id: &str) -> Value {
    let r = s.post(&format!("/v1/installations/{id}/health"), token, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body
}

async fn events(s: &Server, token: &str, kind: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/events?type={kind}"), token).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let mut list = r.body["events"].as_array().unwrap().clone();
    list.reverse();
    list
}

async fn status_of(s: &Server, token: &str, id: &str) -> String {
    let r = s.get(&format!("/v1/installations/{id}"), token).await;
    r.body["status"].as_str().unwrap().to_string()
}

async fn health_checks_move_installations_through_their_statuses(backend: Backend) {
    let auth = OAuthServer::start().await;
    // A timeout roomy enough for a healthy check on a loaded machine, far below the provider's
    // delay in the check that must time out.
    let env = [("PATCHBAY_HEALTH_INTERVAL_SECS", "0"), ("PATCHBAY_HEALTH_TIMEOUT_MS", "5000")];
    let s = Server::start_with(backend, &env).await;
    let token = s.tenant("acme").await;
    let id = install(&s, &token, components::OAUTH_NOTIFY, &auth, "notify").await;
    // More checks than the connector's provider budget (5 per minute) allows.
    let r = set_rate_limits(&s, &token, &id, json!([{ "requests": 1000, "per_seconds": 1 }])).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s.get(&format!("/v1/installations/{id}/health"), &token).await;
    assert_eq!(r.body["health"], Value::Null, "{r:?}");

    // Not connected to its provider: unconfigured, not a failure.
    let h = check(&s, &token, &id).await;
    assert_eq!(h["health"], "unconfigured", "{h}");
    assert!(h["message"].as_str().unwrap().contains("not connected"), "{h}");
    assert_eq!(h["consecutive_failures"], 0);

    assert_eq!(authorize(&s, &token, &id).await.0, StatusCode::OK);
    let h = check(&s, &token, &id).await;
    assert_eq!((h["health"].clone(), h["message"].clone()), (json!("healthy"), json!("user-1")), "{h}");
    assert!(h["checked_at"].is_string());

    // The provider fails: three unhealthy checks in a row put the installation in error.
    auth.set_api_status(Some(503));
    for n in 1..=3 {
        let h = check(&s, &token, &id).await;
        assert_eq!(h["health"], "unhealthy", "{h}");
        assert_eq!(h["consecutive_failures"], n, "{h}");
        let expected = if n < 3 { "active" } else { "error" };
        assert_eq!(status_of(&s, &token, &id).await, expected, "after {n} failures");
    }
    let summary = s.get("/v1/health", &token).await;
    assert_eq!(summary.body["status"], "unhealthy", "{summary:?}");
    assert_eq!(summary.body["counts"]["unhealthy"], 1, "{summary:?}");
    assert_eq!(summary.body["installations"][0]["installation_status"], "error", "{summary:?}");

    // Recovery clears the error.
    auth.set_api_status(None);
    let h = check(&s, &token, &id).await;
    assert_eq!((h["health"].clone(), h["consecutive_failures"].clone()), (json!("healthy"), json!(0)), "{h}");
    assert_eq!(status_of(&s, &token, &id).await, "active");

    // A check that takes longer than the timeout is unhealthy and says why.
    auth.api_delay(Duration::from_secs(120));
    let started = Instant::now();
    let h = check(&s, &token, &id).await;
    assert_eq!(h["health"], "unhealthy", "{h}");
    assert!(h["message"].as_str().unwrap().contains("timed out after 5000 ms"), "{h}");
    assert!(started.elapsed() < Duration::from_secs(60), "the timeout did not cut the check short");
    auth.api_delay(Duration::ZERO);

    // Every change was announced, in order.
    let changes: Vec<(Value, Value)> = events(&s, &token, "installation.health_changed")
        .await
        .iter()
        .map(|e| (e["payload"]["from"].clone(), e["payload"]["to"].clone()))
        .collect();
    assert_eq!(
        changes,
        vec![
            (json!("unconfigured"), json!("healthy")),
            (json!("healthy"), json!("unhealthy")),
            (json!("unhealthy"), json!("healthy")),
            (json!("healthy"), json!("unhealthy")),
        ]
    );
    let statuses: Vec<(Value, Value)> = events(&s, &token, "installation.status_changed")
        .await
        .iter()
        .map(|e| (e["payload"]["from"].clone(), e["payload"]["to"].clone()))
        .collect();
    assert_eq!(statuses, vec![(json!("active"), json!("error")), (json!("error"), json!("active"))]);

    // Another tenant sees none of it.
    let other = s.tenant("globex").await;
    let r = s.post(&format!("/v1/installations/{id}/health"), &other, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    let r = s.get("/v1/health", &other).await;
    assert_eq!(r.body["installations"], json!([]), "{r:?}");
}

async fn health_checks_run_on_their_schedule(backend: Backend) {
    let auth = OAuthServer::start().await;
    let env = [("PATCHBAY_HEALTH_INTERVAL_SECS", "1"), ("PATCHBAY_SCHEDULER_TICK_MS", "100")];
    let s = Server::start_with(backend, &env).await;
    let token = s.tenant("acme").await;
    let id = install(&s, &token, components::OAUTH_NOTIFY, &auth, "notify").await;
    let r = set_rate_limits(&s, &token, &id, json!([{ "requests": 1000, "per_seconds": 1 }])).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(authorize(&s, &token, &id).await.0, StatusCode::OK);
    // The scheduler checks on its own, again and again, without anyone asking.
    let path = format!("/v1/installations/{id}/health");
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    eventually("three scheduled healthy checks", Duration::from_secs(60), || async {
        let r = s.get(&path, &token).await;
        let mut seen = seen.lock().unwrap();
        if r.body["health"] == "healthy" {
            seen.insert(r.body["checked_at"].as_str().unwrap().to_string());
        }
        if seen.len() >= 3 { Ok(()) } else { Err(format!("{seen:?}, last {r:?}")) }
    })
    .await;
    let calls = auth.api_calls();
    assert!(calls >= 3, "{calls}");
}
