//! Provider budgets end to end: token buckets per (tenant, provider) from the manifest's
//! `[[rate_limits]]` or an installation's override, shared by invokes and health checks,
//! `Prefer: wait=N` choosing between waiting and failing fast, a provider's 429 pausing the
//! budget for every installation of the tenant, and the quota view — on SQLite and PostgreSQL.

use std::time::Duration;

use patchbay_core::timefmt::parse_rfc3339;
use patchbay_store::{Backend, Store};
use patchbay_tests::oauth::OAuthServer;
use patchbay_tests::sources::{Dataset, SourceServer};
use patchbay_tests::{components, eventually};
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
    let ds = Dataset::new(200, 200, 3);
    let src = SourceServer::start(ds.clone());
    let shop = crate::sync::install(&s, &token, "rest-source", "shop", crate::sync::rest_config(&src, 100)).await;
    // One call per 5 s, far longer than any batch takes, so batches must wait whatever the
    // machine's speed...
    let r = set_rate_limits(&s, &token, &shop, json!([{ "requests": 1, "per_seconds": 5, "burst": 1 }])).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    // ...starting with the first: a call right before the run takes the only token.
    let read = json!({ "req": { "entity": "items", "mode": "full", "cursor": null, "limit": 1 } });
    let r = invoke(&s, &token, &shop, "read-batch", read, 0).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");

    let run = crate::sync::sync(&s, &token, json!({ "installation": shop, "entity": "items" })).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["progress"]["created"], 200, "{run}");
    // Every batch took a token (and so did the call before the run); the budget refused the
    // first batch at least, which then waited for its token. The windows are 5 s long, so count
    // over all of them in the database.
    let batches = run["progress"]["batches"].as_i64().unwrap();
    let pool = database(&s).await;
    let sql = "SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT), CAST(COALESCE(SUM(refused), 0) AS BIGINT) \
               FROM quota_usage WHERE tenant = 'acme' AND provider = 'any json rest api'";
    eventually("the sync's budget usage in the database", Duration::from_secs(30), || async {
        let (used, refused): (i64, i64) = sqlx::query_as(sql).fetch_one(&pool).await.unwrap();
        if used > batches && refused >= 1 {
            Ok(())
        } else {
            Err(format!("used {used}, refused {refused}, batches {batches} (+1 call before the run)"))
        }
    })
    .await;
}

/// The URL of the server's database (SQLite file or PostgreSQL schema).
fn database_url(s: &Server) -> String {
    match s.backend {
        Backend::Sqlite => format!("sqlite://{}", s.data_dir().join("patchbay.db").display()),
        Backend::Postgres => s.database_url().to_string(),
    }
}

/// A connection to the server's database.
async fn database(s: &Server) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&database_url(s)).await.unwrap()
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
    let (delivered, limited) = eventually("every delivery to be attempted", Duration::from_secs(60), || async {
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
            Ok((delivered, limited))
        } else {
            Err(format!("{delivered} delivered, {} rate-limited", limited.len()))
        }
    })
    .await;
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
    // A pause far longer than the test: it never runs out while the test looks at it.
    auth.rate_limit_next(1, 120);
    let r = send(&hosts[0], &acme, &a, "refused", 0).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    // The pause travels through the database (flushed and read every 100 ms here).
    let path = format!("/v1/installations/{a}/quota");
    eventually("host 2 to apply the pause host 1 recorded", Duration::from_secs(30), || async {
        let q = hosts[1].get(&path, &acme).await;
        if q.body["paused_for_ms"].as_u64().is_some_and(|ms| ms > 0) { Ok(()) } else { Err(format!("{q:?}")) }
    })
    .await;
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
    invoke(s, token, id, "send", notification(text, text), wait).await
}

/// `POST /v1/installations/{id}/invoke/{operation}` with `Prefer: wait=<wait>`.
async fn invoke(s: &Server, token: &str, id: &str, operation: &str, input: Value, wait: u64) -> Resp {
    invoke_at(&s.url, token, id, operation, input, wait).await
}

/// [`invoke`] on the server at `url` (for a spawned task, which cannot borrow the server).
async fn invoke_at(url: &str, token: &str, id: &str, operation: &str, input: Value, wait: u64) -> Resp {
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/installations/{id}/invoke/{operation}"))
        .bearer_auth(token)
        .header("prefer", format!("wait={wait}"))
        .json(&input)
        .send()
        .await
        .unwrap();
    Resp::read(resp).await
}

/// `GET /v1/installations/{id}/quota`.
async fn quota(s: &Server, token: &str, id: &str) -> Resp {
    let q = s.get(&format!("/v1/installations/{id}/quota"), token).await;
    assert_eq!(q.status, StatusCode::OK, "{q:?}");
    q
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
    // oauth-notify's manifest: 5 requests per 60 s for each tenant, one token back every 12 s,
    // counted per epoch-aligned minute.
    let (acme, a) = connected(&s, "acme", &auth).await;
    let (globex, g) = connected(&s, "globex", &auth).await;

    // Everything below that counts usage happens in one counting window: start with at least
    // 40 s of it left (the part that depends on it takes about 15 s), and check every count is
    // of that window, so that a slow run says so instead of failing on the numbers.
    let w0 = patchbay_tests::window_headroom(Duration::from_secs(60), Duration::from_secs(40)).await;
    let in_window = |q: &Resp| {
        let start = q.body["buckets"][0]["window_start"].as_str().and_then(parse_rfc3339);
        assert_eq!(start, Some(w0), "window guard failed: the test outran the minute it started in: {q:?}");
    };

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

    // Health checks draw from the same budget. (Everything about acme alone comes first, well
    // before its next token, 12 s after the burst.)
    let r = s.post(&format!("/v1/installations/{a}/health"), &acme, json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::TOO_MANY_REQUESTS, "quota_exceeded"), "{r:?}");
    let q = quota(&s, &acme, &a).await;
    in_window(&q);
    assert_eq!((q.body["limited"].clone(), q.body["source"].clone()), (json!(true), json!("manifest")), "{q:?}");
    let b = &q.body["buckets"][0];
    assert_eq!(
        (b["requests"].clone(), b["per_seconds"].clone(), b["used"].clone(), b["available"].clone()),
        (json!(5), json!(60), json!(5), json!(0)),
        "{q:?}"
    );
    // 7 of the burst and the health check.
    assert_eq!(b["refused"], 8, "{q:?}");

    // A call that is willing to wait queues for the next token...
    let waiting = {
        let (url, acme, a) = (s.url.clone(), acme.clone(), a.clone());
        tokio::spawn(async move { invoke_at(&url, &acme, &a, "send", notification("patient", "patient"), 60).await })
    };
    // ...which it has found missing once it is counted as refused (and then it waits).
    eventually("the waiting call to be refused once by acme's budget", Duration::from_secs(30), || async {
        let q = quota(&s, &acme, &a).await;
        in_window(&q);
        if q.body["buckets"][0]["refused"] == 9 { Ok(()) } else { Err(format!("{q:?}")) }
    })
    .await;
    assert!(!waiting.is_finished(), "the waiting call should be queued for acme's next token");
    // Another tenant of the same provider has a budget of its own and is not held up.
    let r = send(&s, &globex, &g, "globex", 0).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert!(
        !waiting.is_finished(),
        "acme's waiting call ended before globex's call did: it should wait for acme's next token, 12 s after the burst"
    );
    assert_eq!(auth.notifications().iter().filter(|n| *n == "globex").count(), 1);
    let r = s.post(&format!("/v1/installations/{g}/health"), &globex, json!({})).await;
    assert_eq!(r.body["health"], "healthy", "{r:?}");
    let q = quota(&s, &globex, &g).await;
    in_window(&q);
    assert_eq!(q.body["buckets"][0]["used"], 2, "{q:?}");

    // The waiting call gets acme's next token: 6 calls admitted in the window.
    let r = waiting.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(auth.notifications().iter().filter(|n| *n == "patient").count(), 1);
    let q = quota(&s, &acme, &a).await;
    in_window(&q);
    let b = &q.body["buckets"][0];
    assert_eq!((b["used"].clone(), b["available"].clone()), (json!(6), json!(0)), "{q:?}");
    let refused_here = b["refused"].as_i64().unwrap();
    assert!(refused_here >= 9, "{q:?}");

    // Usage reaches the database (summed over hosts) within about a second. Summed over every
    // window first, which no window boundary can split...
    let pool = database(&s).await;
    let sql = "SELECT CAST(COALESCE(SUM(used), 0) AS BIGINT), CAST(COALESCE(SUM(refused), 0) AS BIGINT) \
               FROM quota_usage WHERE tenant = 'acme' AND provider = 'test oauth provider' AND per_seconds = 60";
    let (used, all_refused) = eventually("acme's usage in the database", Duration::from_secs(30), || async {
        let (used, refused): (i64, i64) = sqlx::query_as(sql).fetch_one(&pool).await.unwrap();
        if used >= 6 && refused >= refused_here {
            Ok((used, refused))
        } else {
            Err(format!("used {used}, refused {refused}"))
        }
    })
    .await;
    assert_eq!((used, all_refused), (6, refused_here), "the database counts what the host counted");
    // ...then as `v_quota_status` shows it: the window of the test.
    let store = Store::connect(&database_url(&s)).await.unwrap();
    let rows = store.quota_status("acme", "test oauth provider").await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.window_start, w0, "window guard failed: {row:?}");
    assert_eq!(
        (row.per_seconds, row.requests, row.used, row.refused, row.remaining, row.paused_until),
        (60, 5, 6, refused_here, 0, None),
        "{row:?}"
    );
    let q = quota(&s, &acme, &a).await;
    in_window(&q);
    assert_eq!(q.body["buckets"][0]["all_hosts"]["used"], 6, "{q:?}");
    assert!(patchbay_core::now_ms() < w0 + 60_000, "window guard failed: the test outran its minute");

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

    // The provider says 429 with Retry-After: 15 to one installation's call (long enough for
    // everything below to happen during the pause)...
    auth.rate_limit_next(1, 15);
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
    let paused_for = q.body["paused_for_ms"].as_u64().unwrap();
    assert!(paused_for > 0 && paused_for <= 15_000, "{q:?}");
    // A caller willing to wait goes through once the pause is over.
    let r = send(&s, &acme, &b, "after the pause", 60).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(auth.notifications().last().map(String::as_str), Some("after the pause"));
}
