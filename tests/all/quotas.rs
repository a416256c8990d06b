//! Provider budgets end to end: token buckets per (tenant, provider) from the manifest's
//! `[[rate_limits]]` or an installation's override, shared by invokes and health checks,
//! `Prefer: wait=N` choosing between waiting and failing fast, a provider's 429 pausing the
//! budget for every installation of the tenant, and the quota view — on SQLite and PostgreSQL.

use std::time::Duration;

use patchbay_store::{Backend, Store};
use patchbay_tests::components;
use patchbay_tests::oauth::OAuthServer;
use patchbay_tests::sources::{Dataset, SourceServer};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::hooks::{GH_SECRET, install_github, notify_route, post_github, push_body};
use crate::oauth::{authorize, install};
use crate::server::{Resp, Server, notification};

on_both_backends!(
    a_burst_cannot_exceed_its_budget_nor_delay_another_tenant,
    a_provider_429_pauses_the_budget_for_every_installation,
    deliveries_over_budget_back_off_like_after_a_providers_429,
    sync_batches_wait_for_the_budget,
);

async fn sync_batches_wait_for_the_budget(backend: Backend) {
    let env = [("PATCHBAY_HEALTH_INTERVAL_SECS", "0"), ("PATCHBAY_SYNC_BATCH_SIZE", "100")];
    let s = Server::start_with(backend, &env).await;
    let token = s.tenant("acme").await;
    let ds = Dataset::new(500, 200, 3);
    let src = SourceServer::start(ds.clone());
    let shop = crate::sync::install(&s, &token, "rest-source", "shop", crate::sync::rest_config(&src, 100)).await;
    let r = set_rate_limits(&s, &token, &shop, json!([{ "requests": 4, "per_seconds": 1, "burst": 1 }])).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");

    let run = crate::sync::sync(&s, &token, json!({ "installation": shop, "entity": "items" })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["progress"]["created"], 500, "{run}");
    // Every batch took a token; with a burst of one, most of them had to wait for it. The
    // windows are a second long, so count over all of them in the database.
    let batches = run["progress"]["batches"].as_i64().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", s.data_dir().join("patchbay.db").display()),
        Backend::Postgres => s.database_url().to_string(),
    };
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (used, refused): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT), CAST(COALESCE(SUM(refused), 0) AS BIGINT) \
             FROM quota_usage WHERE tenant = 'acme' AND provider = 'any json rest api'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if used >= batches && refused >= 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "used {used}, refused {refused}, batches {batches}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn deliveries_over_budget_back_off_like_after_a_providers_429(backend: Backend) {
    let auth = OAuthServer::start().await;
    let s = Server::start_with(backend, &[("PATCHBAY_HEALTH_INTERVAL_SECS", "0")]).await;
    let (t, dest) = connected(&s, "acme", &auth).await;
    let r = set_rate_limits(&s, &t, &dest, json!([{ "requests": 2, "per_seconds": 3600 }])).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let (gh, url) = install_github(&s, &t, "repo", Some(GH_SECRET)).await;
    let r = s.post("/v1/routes", &t, notify_route("to-oauth", &gh, &dest)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");

    // Four pushes become four deliveries; the budget admits two.
    let mut events = Vec::new();
    for n in 1..=4 {
        let r = post_github(&url, Some(GH_SECRET), &format!("d-{n}"), &push_body(n)).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        events.push(r.body["events"][0].as_str().unwrap().to_string());
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (delivered, limited) = loop {
        let mut delivered = 0;
        let mut limited = Vec::new();
        for e in &events {
            let r = s.get(&format!("/v1/events/{e}"), &t).await;
            let d = r.body["deliveries"][0].clone();
            if d["status"] == "delivered" {
                delivered += 1;
            } else if let Some(a) = d["attempts"].as_array().and_then(|a| a.last()) {
                limited.push((d.clone(), a.clone()));
            }
        }
        if delivered + limited.len() == 4 {
            break (delivered, limited);
        }
        assert!(std::time::Instant::now() < deadline, "deliveries did not all run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(delivered, 2);
    for (d, attempt) in &limited {
        assert_eq!(d["status"], "pending", "{d}");
        assert_eq!(attempt["outcome"], "rate-limited", "{d}");
        assert!(attempt["error"].as_str().unwrap().contains("quota_exceeded"), "{d}");
        // Retried when the budget has a token again (within the hour), not at once.
        assert!(d["next_attempt_at"].is_string(), "{d}");
    }
    assert_eq!(auth.notifications().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_429_seen_by_one_host_pauses_the_budget_on_every_host() {
    let auth = OAuthServer::start().await;
    let env = [("PATCHBAY_HEALTH_INTERVAL_SECS", "0"), ("PATCHBAY_SCHEDULER_TICK_MS", "100")];
    let hosts = Server::cluster(Backend::Postgres, 2, &env).await;
    let (acme, a) = connected(&hosts[0], "acme", &auth).await;
    let r = set_rate_limits(&hosts[0], &acme, &a, json!([{ "requests": 100, "per_seconds": 1 }])).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // Both hosts have called once (each has the budget in memory).
    for h in &hosts {
        assert_eq!(send(h, &acme, &a, "warm", 0).await.status, StatusCode::OK);
    }
    auth.rate_limit_next(1, 8);
    let r = send(&hosts[0], &acme, &a, "refused", 0).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    // The pause travels through the database (flushed and read every 100 ms here).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = auth.api_calls();
    let r = send(&hosts[1], &acme, &a, "other host", 0).await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"), "{r:?}");
    assert!(r.message().contains("paused by the provider"), "{r:?}");
    assert_eq!(auth.api_calls(), calls);
}

/// Sets an installation's `limits.rate_limits`.
pub(crate) async fn set_rate_limits(s: &Server, token: &str, id: &str, limits: Value) -> Resp {
    let body = json!({ "limits": { "rate_limits": limits } });
    s.call(Method::PATCH, &format!("/v1/installations/{id}"), token, Some(body)).await
}

/// `send` with `Prefer: wait=<wait>`.
async fn send(s: &Server, token: &str, id: &str, text: &str, wait: u64) -> Resp {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/installations/{id}/invoke/send", s.url))
        .bearer_auth(token)
        .header("prefer", format!("wait={wait}"))
        .json(&notification(text, text))
        .send()
        .await
        .unwrap();
    Resp::read(resp).await
}

async fn connected(s: &Server, tenant: &str, auth: &OAuthServer) -> (String, String) {
    let token = s.tenant(tenant).await;
    let id = install(s, &token, components::OAUTH_NOTIFY, auth, "notify").await;
    assert_eq!(authorize(s, &token, &id).await.0, StatusCode::OK);
    (token, id)
}

async fn a_burst_cannot_exceed_its_budget_nor_delay_another_tenant(backend: Backend) {
    let auth = OAuthServer::start().await;
    let s = Server::start_with(backend, &[("PATCHBAY_HEALTH_INTERVAL_SECS", "0")]).await;
    // oauth-notify's manifest: 5 requests per 60 s for each tenant.
    let (acme, a) = connected(&s, "acme", &auth).await;
    let (globex, g) = connected(&s, "globex", &auth).await;

    // A burst of 12 calls that prefer not to wait: exactly 5 reach the provider.
    let texts: Vec<String> = (0..12).map(|i| format!("burst {i}")).collect();
    let burst: Vec<_> = texts.iter().map(|t| send(&s, &acme, &a, t, 0)).collect();
    let answers = futures::future::join_all(burst).await;
    let ok = answers.iter().filter(|r| r.status == StatusCode::OK).count();
    assert_eq!(ok, 5, "{answers:?}");
    for r in answers.iter().filter(|r| r.status != StatusCode::OK) {
        assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"), "{r:?}");
        assert!(r.message().contains("5 requests per 60 s"), "{r:?}");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{r:?}");
    }
    assert_eq!(auth.notifications().iter().filter(|n| n.starts_with("burst")).count(), 5);

    // A call that is willing to wait queues for the next token...
    let waiting = {
        let (url, acme, a) = (s.url.clone(), acme.clone(), a.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .post(format!("{url}/v1/installations/{a}/invoke/send"))
                .bearer_auth(&acme)
                .header("prefer", "wait=60")
                .json(&notification("patient", "patient"))
                .send()
                .await
                .map(|r| r.status())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...while another tenant of the same provider has a budget of its own and is not held up.
    let r = send(&s, &globex, &g, "globex", 0).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(!waiting.is_finished(), "the waiting call should still be queued for acme's budget");
    assert_eq!(auth.notifications().iter().filter(|n| *n == "globex").count(), 1);

    // Health checks draw from the same budget.
    let r = s.post(&format!("/v1/installations/{a}/health"), &acme, json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"), "{r:?}");
    let r = s.post(&format!("/v1/installations/{g}/health"), &globex, json!({})).await;
    assert_eq!(r.body["health"], "healthy", "{r:?}");

    let q = s.get(&format!("/v1/installations/{a}/quota"), &acme).await;
    assert_eq!(q.status, StatusCode::OK, "{q:?}");
    assert_eq!((q.body["limited"].clone(), q.body["source"].clone()), (json!(true), json!("manifest")), "{q:?}");
    let b = &q.body["buckets"][0];
    assert_eq!(
        (b["requests"].clone(), b["per_seconds"].clone(), b["used"].clone()),
        (json!(5), json!(60), json!(5)),
        "{q:?}"
    );
    assert!(b["refused"].as_u64().unwrap() >= 8, "{q:?}");
    assert_eq!(b["available"], 0, "{q:?}");
    let q = s.get(&format!("/v1/installations/{g}/quota"), &globex).await;
    assert_eq!(q.body["buckets"][0]["used"], 2, "{q:?}");
    waiting.abort();

    // Usage reaches the database (summed over hosts) within about a second: `v_quota_status`.
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", s.data_dir().join("patchbay.db").display()),
        Backend::Postgres => s.database_url().to_string(),
    };
    let store = Store::connect(&url).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let row = loop {
        let rows = store.quota_status("acme", "test oauth provider").await.unwrap();
        if let Some(r) = rows.first().filter(|r| r.used == 5 && r.refused >= 8) {
            break r.clone();
        }
        assert!(std::time::Instant::now() < deadline, "usage not flushed: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!((row.per_seconds, row.requests, row.remaining, row.paused_until), (60, 5, 0, None), "{row:?}");
    let q = s.get(&format!("/v1/installations/{a}/quota"), &acme).await;
    assert_eq!(q.body["buckets"][0]["all_hosts"]["used"], 5, "{q:?}");

    // An installation may override the manifest's budget; nonsense is refused precisely.
    let r = set_rate_limits(&s, &globex, &g, json!([{ "requests": 0, "per_seconds": 1 }])).await;
    assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_limits"), "{r:?}");
    assert!(r.message().contains("limits.rate_limits[0].requests: must be at least 1"), "{r:?}");
    let r = set_rate_limits(&s, &globex, &g, json!([{ "requests": 1, "per_seconds": 3600 }])).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let q = s.get(&format!("/v1/installations/{g}/quota"), &globex).await;
    assert_eq!(
        (q.body["source"].clone(), q.body["buckets"][0]["requests"].clone()),
        (json!("installation"), json!(1)),
        "{q:?}"
    );
    let r = send(&s, &globex, &g, "bad prefer", 0).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = send(&s, &globex, &g, "over", 0).await;
    assert_eq!(r.code(), "quota_exceeded", "{r:?}");
    assert!(r.message().contains("1 requests per 3600 s"), "{r:?}");
    let bad = reqwest::Client::new()
        .post(format!("{}/v1/installations/{g}/invoke/send", s.url))
        .bearer_auth(&globex)
        .header("prefer", "wait=soon")
        .json(&notification("x", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

async fn a_provider_429_pauses_the_budget_for_every_installation(backend: Backend) {
    let auth = OAuthServer::start().await;
    let s = Server::start_with(backend, &[("PATCHBAY_HEALTH_INTERVAL_SECS", "0")]).await;
    let (acme, a) = connected(&s, "acme", &auth).await;
    let b = install(&s, &acme, components::OAUTH_NOTIFY, &auth, "second").await;
    assert_eq!(authorize(&s, &acme, &b).await.0, StatusCode::OK);
    for id in [&a, &b] {
        let r = set_rate_limits(&s, &acme, id, json!([{ "requests": 100, "per_seconds": 1 }])).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }

    // The provider says 429 with Retry-After: 2 to one installation's call...
    auth.rate_limit_next(1, 2);
    let r = send(&s, &acme, &a, "refused", 0).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    // ...and the whole (tenant, provider) budget pauses: the other installation fails fast too,
    // without the provider seeing the call.
    let calls = auth.api_calls();
    let r = send(&s, &acme, &b, "during the pause", 0).await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"), "{r:?}");
    assert!(r.message().contains("paused by the provider"), "{r:?}");
    assert_eq!(auth.api_calls(), calls);
    let q = s.get(&format!("/v1/installations/{b}/quota"), &acme).await;
    assert_eq!(q.body["provider_429s"], 1, "{q:?}");
    assert!(q.body["paused_for_ms"].as_u64().unwrap() > 0, "{q:?}");
    // A caller willing to wait goes through once the pause is over.
    let r = send(&s, &acme, &b, "after the pause", 10).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(auth.notifications().last().map(String::as_str), Some("after the pause"));
}
