//! The configuration caches (host/services/src/config_cache.rs) across hosts: a change made
//! through host A applies on host B within the staleness bound — a revoked key is refused, a
//! disabled installation refuses calls, a changed route routes by the new rule, a rotated
//! webhook secret verifies and the old one no longer does, a new connector version runs — while
//! another tenant's cached entries keep answering with that tenant's own data. On PostgreSQL A
//! and B are two `patchbay serve` processes on one database, and the watcher's `LISTEN`
//! connections are killed to check that changes still apply; on SQLite one host, where every
//! change applies at once.

use std::time::Duration;

use patchbay_store::Backend;
use patchbay_tests::{components, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::harness::TestServer;
use crate::hooks::{install_github, install_notify_at, notify_route, post_github, push_body};
use crate::server::{Resp, Server, notification, with_custom_section};

on_both_backends!(changes_through_one_host_apply_on_the_others);

/// The longest a test waits for a change to show on another host: well past the 1 s bound, so
/// that a loaded machine does not fail the test; a passing run returns as soon as it applies.
const APPLIES_WITHIN: Duration = Duration::from_secs(10);

/// Waits until `probe` answers `Ok` on `backend`: on SQLite (one host, the change made through
/// it) the first answer must already be the new one.
async fn applies<F, Fut>(backend: Backend, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    if backend == Backend::Sqlite {
        if let Err(e) = probe().await {
            panic!("{what}: not applied at once on the host that made the change: {e}");
        }
        return;
    }
    eventually(what, APPLIES_WITHIN, probe).await
}

fn expect(r: &Resp, status: StatusCode) -> Result<(), String> {
    if r.status == status { Ok(()) } else { Err(format!("{r:?}")) }
}

fn manifest(version: &str) -> String {
    format!(
        "id = \"cache-probe\"\ntitle = \"Cache probe\"\ndescription = \"A test connector\"\n\
         category = \"data-sync\"\nprovider = \"tests\"\nversion = \"{version}\"\n"
    )
}

/// The id in a token (`pbk_<id>_<secret>`).
fn key_id(token: &str) -> String {
    token.split('_').nth(1).unwrap().to_string()
}

/// The same hook on another host: the webhook URL's path under `host`'s address.
fn on(host: &Server, a: &Server, url: &str) -> String {
    format!("{}{}", host.url, url.strip_prefix(&a.url).unwrap())
}

async fn changes_through_one_host_apply_on_the_others(backend: Backend) {
    let _turn = crate::HEAVY.lock().await;
    let hosts = match backend {
        Backend::Postgres => Server::cluster(backend, 2, &[]).await,
        Backend::Sqlite => vec![Server::start(backend).await],
    };
    let (a, b) = (&hosts[0], hosts.last().unwrap());
    let web = TestServer::start().await;
    let acme = a.tenant("acme").await;
    let globex = a.tenant("globex").await;
    let acme_spare = a.key("acme", &["view", "manage"]).await;

    // Both tenants: a notify-webhook installation of the same name, a github source with a
    // webhook secret, and (acme) two destinations with a route to the first.
    let notify = install_notify_at(a, &acme, &web, "n1", "/slack").await;
    let g_notify = install_notify_at(a, &globex, &web, "n1", "/slack").await;
    let (gh, gh_url) = install_github(a, &acme, "src", Some("secret-one-4c1d")).await;
    let (_, g_gh_url) = install_github(a, &globex, "src", Some("globex-secret-77aa")).await;
    let d1 = install_notify_at(a, &acme, &web, "d1", "/slack").await;
    let d2 = install_notify_at(a, &acme, &web, "d2", "/slack").await;
    let r = a.post("/v1/routes", &acme, notify_route("to-dest", &gh, &d1)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let route = r.body["id"].as_str().unwrap().to_string();
    for version in ["1.0.0", "2.0.0"] {
        let wasm = with_custom_section(
            std::fs::read(components::HOSTILE).unwrap(),
            "patchbay:manifest",
            manifest(version).as_bytes(),
        );
        let r = a.upload(&acme, wasm).await;
        assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    }
    let r = a
        .post("/v1/installations", &acme, json!({ "connector": "cache-probe", "name": "probe", "version": "1.0.0" }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let probe = r.body["id"].as_str().unwrap().to_string();

    // B has everything cached: keys, installations, hooks, rules, the version.
    let (gh_b, g_gh_b) = (on(b, a, &gh_url), on(b, a, &g_gh_url));
    let send = |id: &str| format!("/v1/installations/{id}/invoke/send");
    let routed_to = |event: String, token: String| async move {
        let r = b.get(&format!("/v1/events/{event}"), &token).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        r.body["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["destination_installation"].clone())
            .collect::<Vec<Value>>()
    };
    let mut delivery = 0;
    let mut post_push = |url: String, secret: &'static str| {
        delivery += 1;
        let id = format!("cache-{delivery}");
        async move { post_github(&url, Some(secret), &id, &push_body(delivery)).await }
    };
    for token in [&acme, &acme_spare, &globex] {
        let r = b.get("/v1/installations", token).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    let r = b.post(&send(&notify), &acme, notification("warm", "w-1")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = b.post(&send(&g_notify), &globex, notification("warm", "w-2")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = b.call(Method::POST, &format!("/v1/installations/{probe}/invoke/health-check"), &acme, None).await;
    assert_eq!(r.header("x-patchbay-connector"), Some("cache-probe@1.0.0"), "{r:?}");
    let r = post_push(gh_b.clone(), "secret-one-4c1d").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let event = r.body["events"][0].as_str().unwrap().to_string();
    assert_eq!(routed_to(event, acme.clone()).await, vec![json!(d1)]);
    assert_eq!(post_push(g_gh_b.clone(), "globex-secret-77aa").await.status, StatusCode::OK);

    // A route changed on A: B routes the next event by the new rule.
    let r = a
        .call(Method::PATCH, &format!("/v1/routes/{route}"), &acme, Some(json!({ "destination_installation": d2 })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    applies(backend, "B routes by the changed rule", || {
        let post = post_push(gh_b.clone(), "secret-one-4c1d");
        let (acme, d2) = (acme.clone(), d2.clone());
        async move {
            let r = post.await;
            expect(&r, StatusCode::OK)?;
            let to = routed_to(r.body["events"][0].as_str().unwrap().to_string(), acme).await;
            if to == vec![json!(d2)] { Ok(()) } else { Err(format!("routed to {to:?}")) }
        }
    })
    .await;

    // The webhook secret rotated on A: B verifies with the new one, and no longer the old one.
    let r = a
        .call(
            Method::PUT,
            &format!("/v1/installations/{gh}/credentials"),
            &acme,
            Some(json!({ "webhook_secret": "secret-two-9e0b" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    applies(backend, "B verifies with the new secret", || {
        let post = post_push(gh_b.clone(), "secret-two-9e0b");
        async move { expect(&post.await, StatusCode::OK) }
    })
    .await;
    let r = post_push(gh_b.clone(), "secret-one-4c1d").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");

    // A new connector version on A: B runs it.
    let r =
        a.call(Method::PATCH, &format!("/v1/installations/{probe}"), &acme, Some(json!({ "version": "2.0.0" }))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    applies(backend, "B runs the new version", || async {
        let r = b.call(Method::POST, &format!("/v1/installations/{probe}/invoke/health-check"), &acme, None).await;
        match r.header("x-patchbay-connector") {
            Some("cache-probe@2.0.0") => Ok(()),
            other => Err(format!("{other:?}: {r:?}")),
        }
    })
    .await;

    // An installation disabled on A: B refuses to invoke it.
    let r =
        a.call(Method::PATCH, &format!("/v1/installations/{notify}"), &acme, Some(json!({ "enabled": false }))).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    applies(backend, "B refuses the disabled installation", || async {
        let r = b.post(&send(&notify), &acme, notification("x", "off")).await;
        if r.code() == "installation_disabled" { Ok(()) } else { Err(format!("{r:?}")) }
    })
    .await;

    // A key revoked on A: B refuses it; the tenant's other key still works.
    let spare_id = key_id(&acme_spare);
    let r = a.call(Method::DELETE, &format!("/v1/tenants/acme/keys/{spare_id}"), &a.operator, None).await;
    assert!(r.status.is_success(), "{r:?}");
    applies(backend, "B refuses the revoked key", || async {
        expect(&b.get("/v1/installations", &acme_spare).await, StatusCode::UNAUTHORIZED)
    })
    .await;
    assert_eq!(b.get("/v1/installations", &acme).await.status, StatusCode::OK);

    // Through all of acme's changes, globex's cached entries answered with globex's own data,
    // and acme's never reached globex's key.
    let r = b.post(&send(&g_notify), &globex, notification("still", "g-2")).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(post_push(g_gh_b.clone(), "globex-secret-77aa").await.status, StatusCode::OK);
    let r = b.get("/v1/installations", &globex).await;
    let ids: Vec<&str> =
        r.body["installations"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&g_notify.as_str()) && !ids.contains(&notify.as_str()), "{r:?}");
    for path in [send(&notify), format!("/v1/installations/{probe}/invoke/health-check")] {
        let r = b.post(&path, &globex, notification("x", "steal")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    }
    let r = post_push(g_gh_b.clone(), "secret-two-9e0b").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "acme's secret opens globex's hook: {r:?}");

    // B tells operators that its caches are served, and that changes dropped entries.
    let metrics = b.get("/metrics", &b.operator).await.body;
    let text = metrics.as_str().unwrap_or_default();
    assert!(text.contains("\npatchbay_config_cache_fresh 1\n"), "{text}");
    let invalidations = text
        .lines()
        .find_map(|l| l.strip_prefix("patchbay_config_cache_invalidations_total "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(invalidations.is_some_and(|n| n >= 5), "{invalidations:?}");

    if backend == Backend::Postgres {
        listener_loss_leaves_no_cache_stale(a, b, &acme).await;
    }
}

/// Kills every `LISTEN` connection of the cluster's watchers: a change still applies on B within
/// the bound (the poll, then the reconnect's flush), and the listeners come back.
async fn listener_loss_leaves_no_cache_stale(a: &Server, b: &Server, acme: &str) {
    let names = [a.pid(), b.pid()].map(|p| format!("{}-{p}", patchbay_store::CONFIG_LISTENER_NAME));
    let listening = || listening(names.to_vec());
    assert_eq!(listening().await, 2, "each host listens");
    let key = a.key("acme", &["view"]).await;
    assert_eq!(b.get("/v1/installations", &key).await.status, StatusCode::OK);
    let mut pg = sqlx::PgConnection::connect(&patchbay_tests::db::postgres_url()).await.unwrap();
    let killed: Vec<bool> =
        sqlx::query_scalar("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ANY($1)")
            .bind(names.to_vec())
            .fetch_all(&mut pg)
            .await
            .unwrap();
    assert_eq!(killed, vec![true, true]);
    let id = key_id(&key);
    let r = a.call(Method::DELETE, &format!("/v1/tenants/acme/keys/{id}"), &a.operator, None).await;
    assert!(r.status.is_success(), "{r:?}");
    eventually("B refuses the key revoked while its listener was down", APPLIES_WITHIN, || async {
        expect(&b.get("/v1/installations", &key).await, StatusCode::UNAUTHORIZED)
    })
    .await;
    assert_eq!(b.get("/v1/installations", acme).await.status, StatusCode::OK);
    eventually("both listeners to reconnect", APPLIES_WITHIN, || async {
        let n = listening().await;
        if n == 2 { Ok(()) } else { Err(format!("{n} listening")) }
    })
    .await;
}

/// How many of the connections named `names` are open.
async fn listening(names: Vec<String>) -> i64 {
    let mut pg = sqlx::PgConnection::connect(&patchbay_tests::db::postgres_url()).await.unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = ANY($1)")
        .bind(names)
        .fetch_one(&mut pg)
        .await
        .unwrap()
}
