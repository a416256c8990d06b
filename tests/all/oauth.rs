//! Host-owned OAuth 2.0 end to end: the real binary over HTTP, the `oauth-notify` test
//! connectors and the local authorization server (`patchbay_tests::oauth`), on SQLite and
//! PostgreSQL. The authorization-code flow with PKCE, refresh ahead of expiry and after a 401,
//! refresh-token rotation, single-flight refresh (in one host and across hosts), a revoked grant
//! turning into `reauth_required`, the client-credentials grant and the precise errors.

use std::collections::HashMap;
use std::time::Duration;

use patchbay_store::Backend;
use patchbay_tests::oauth::{CLIENT_ID, CLIENT_SECRET, OAuthServer};
use patchbay_tests::{components, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::server::{Resp, Server, notification};

on_both_backends!(
    the_code_flow_with_pkce_connects_and_the_connector_sees_only_the_access_token,
    tokens_refresh_ahead_of_expiry_and_after_a_401_with_rotation,
    concurrent_refreshes_make_one_token_request,
    a_revoked_grant_requires_reauthorization_and_says_so_in_the_outbox,
    repeated_refresh_failures_require_reauthorization,
    the_client_credentials_grant_obtains_its_own_tokens,
    bad_oauth_requests_are_refused_precisely,
    oauth_requests_cannot_reach_blocked_addresses_in_any_spelling,
    config_values_cannot_rewrite_the_oauth_or_allowed_origin,
);

/// Scheduler ticks fast enough for refresh-ahead tests.
pub const ENV: &[(&str, &str)] = &[("PATCHBAY_SCHEDULER_TICK_MS", "100"), ("RUST_LOG", "warn")];

fn wasm(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Uploads `component` for the tenant, installs it against `auth` and sets the client
/// credentials; returns the installation id.
pub async fn install(s: &Server, token: &str, component: &str, auth: &OAuthServer, name: &str) -> String {
    let r = s.upload(token, wasm(component)).await;
    assert!(matches!(r.status, StatusCode::CREATED | StatusCode::OK), "{r:?}");
    let connector = if component == components::OAUTH_NOTIFY_CC { "oauth-notify-cc" } else { "oauth-notify" };
    let r = s
        .post(
            "/v1/installations",
            token,
            json!({ "connector": connector, "name": name, "config": { "base_url": auth.base_url() } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            Method::PUT,
            &format!("/v1/installations/{id}/credentials"),
            token,
            Some(json!({ "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    id
}

fn query(url: &str) -> HashMap<String, String> {
    url::Url::parse(url).unwrap().query_pairs().into_owned().collect()
}

/// A browser without cookies: follows the authorize URL's redirect to the host's callback and
/// returns the callback's status and page.
pub async fn authorize(s: &Server, token: &str, id: &str) -> (StatusCode, String) {
    let r = s.post(&format!("/v1/installations/{id}/oauth/start"), token, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = browser.get(r.body["authorize_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(&format!("{}/oauth/callback?", s.url)), "{location}");
    let page = browser.get(&location).send().await.unwrap();
    (page.status(), page.text().await.unwrap())
}

async fn send(s: &Server, token: &str, id: &str, text: &str) -> Resp {
    s.post(&format!("/v1/installations/{id}/invoke/send"), token, notification(text, text)).await
}

async fn oauth_status(s: &Server, token: &str, id: &str) -> Value {
    let r = s.get(&format!("/v1/installations/{id}/oauth"), token).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    r.body
}

async fn the_code_flow_with_pkce_connects_and_the_connector_sees_only_the_access_token(backend: Backend) {
    let auth = OAuthServer::start().await;
    let s = Server::start_with(backend, ENV).await;
    let token = s.tenant("acme").await;
    let id = install(&s, &token, components::OAUTH_NOTIFY, &auth, "notify").await;

    // Not connected yet: calls say what to do.
    let r = send(&s, &token, &id, "too early").await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "oauth_not_connected"), "{r:?}");
    assert!(r.message().contains("oauth/start"), "{r:?}");
    assert_eq!(oauth_status(&s, &token, &id).await["connected"], false);

    let (status, page) = authorize(&s, &token, &id).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("is connected"), "{page}");

    // The authorization request: code flow, our redirect URI, scopes, state and an S256 challenge.
    let asked = auth.authorizations();
    assert_eq!(asked.len(), 1);
    let a = &asked[0];
    assert_eq!(a["response_type"], "code");
    assert_eq!(a["client_id"], CLIENT_ID);
    assert_eq!(a["redirect_uri"], format!("{}/oauth/callback", s.url));
    assert_eq!(a["scope"], "notify profile");
    assert_eq!(a["code_challenge_method"], "S256");
    assert!(a["state"].len() >= 43, "{a:?}");
    // The exchange carried the verifier (the server checked it against the challenge) and
    // authenticated with HTTP Basic, not in the body.
    let forms = auth.token_forms();
    assert_eq!(forms.len(), 1);
    assert_eq!(forms[0]["grant_type"], "authorization_code");
    assert!(forms[0]["code_verifier"].len() >= 43);
    assert!(!forms[0].contains_key("client_secret"), "{:?}", forms[0].keys());

    let r = send(&s, &token, &id, "hello").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(auth.notifications(), vec!["hello".to_string()]);
    // The component saw the access token under its oauth2 key, and nothing else of OAuth.
    assert_eq!(r.body["id"], "sees:account", "{r:?}");

    let st = oauth_status(&s, &token, &id).await;
    assert_eq!(
        (st["connected"].clone(), st["status"].clone(), st["version"].clone()),
        (json!(true), json!("active"), json!(1))
    );
    assert_eq!(st["has_refresh_token"], true);
    assert_eq!(st["scope"], "notify profile");
    let text = st.to_string();
    assert!(!text.contains("access_token") && !text.contains("refresh_token\":\""), "{text}");
    // Credentials stay masked; the token credential is not a credential the tenant sets.
    let r = s.get(&format!("/v1/installations/{id}/credentials"), &token).await;
    assert_eq!(r.body["credentials"]["client_secret"], "••••••••", "{r:?}");
    assert_eq!(r.body["missing"], json!([]), "{r:?}");
    let r = s
        .call(
            Method::PUT,
            &format!("/v1/installations/{id}/credentials"),
            &token,
            Some(json!({ "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "account": "stolen-token" })),
        )
        .await;
    assert_eq!((r.status, r.code()), (StatusCode::UNPROCESSABLE_ENTITY, "invalid_credentials"), "{r:?}");
    assert!(r.message().contains("oauth/start"), "{r:?}");

    // The callback URL works once.
    let browser = reqwest::Client::new();
    let again =
        browser.get(format!("{}/oauth/callback?code=x&state={}", s.url, asked[0]["state"])).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(again.headers()["cache-control"], "no-store");
    assert!(again.text().await.unwrap().contains("already used"));
}

async fn tokens_refresh_ahead_of_expiry_and_after_a_401_with_rotation(backend: Backend) {
    let auth = OAuthServer::start().await;
    auth.set_expires_in(3);
    let s = Server::start_with(backend, ENV).await;
    let token = s.tenant("acme").await;
    let id = install(&s, &token, components::OAUTH_NOTIFY, &auth, "notify").await;
    assert_eq!(authorize(&s, &token, &id).await.0, StatusCode::OK);

    // The background refresher replaces a 3 s token at half its life, well before it expires,
    // and the next refresh presents the rotated refresh token.
    eventually("two refreshes ahead of expiry", Duration::from_secs(60), || async {
        (auth.token_requests("refresh_token") >= 2).then_some(())
    })
    .await;
    let forms: Vec<_> = auth.token_forms().into_iter().filter(|f| f["grant_type"] == "refresh_token").collect();
    assert_ne!(forms[0]["refresh_token"], forms[1]["refresh_token"], "the rotated refresh token was not used");
    assert!(!auth.refresh_token_is_live(&forms[0]["refresh_token"]));
    let st = oauth_status(&s, &token, &id).await;
    assert!(st["version"].as_i64().unwrap() >= 3, "{st}");
    // Calls keep working across refreshes without a single 401 reaching them.
    for i in 0..3 {
        let r = send(&s, &token, &id, &format!("m{i}")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }

    // Long-lived tokens from now on: no more background refreshes...
    auth.set_expires_in(3600);
    let st = refresh(&s, &token, &id, None).await;
    assert_eq!(st.status, StatusCode::OK, "{st:?}");
    let before = auth.token_requests("refresh_token");
    // ...and the provider invalidates the access token: the connector gets 401, the host
    // refreshes once and the call succeeds on the retry.
    auth.invalidate_access_tokens();
    let r = send(&s, &token, &id, "after 401").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(auth.token_requests("refresh_token"), before + 1);
    assert_eq!(auth.notifications().last().map(String::as_str), Some("after 401"));
    let r = s.get(&format!("/v1/installations/{id}/logs?limit=200"), &token).await;
    assert!(r.body.to_string().contains("reported 401"), "{r:?}");
}

async fn refresh(s: &Server, token: &str, id: &str, version: Option<i64>) -> Resp {
    let body = match version {
        Some(v) => json!({ "version": v }),
        None => json!({}),
    };
    s.post(&format!("/v1/installations/{id}/oauth/refresh"), token, body).await
}

async fn concurrent_refreshes_make_one_token_request(backend: Backend) {
    let auth = OAuthServer::start().await;
    let hosts = Server::cluster(backend, if backend == Backend::Postgres { 2 } else { 1 }, ENV).await;
    let s = &hosts[0];
    let token = s.tenant("acme").await;
    let id = install(s, &token, components::OAUTH_NOTIFY, &auth, "notify").await;
    assert_eq!(authorize(s, &token, &id).await.0, StatusCode::OK);
    assert_eq!(oauth_status(s, &token, &id).await["version"], 1);

    // Every host is asked, several times at once, to replace version 1 while the provider takes
    // its time: exactly one refresh request reaches it, and everybody gets version 2.
    auth.token_delay(Duration::from_millis(600));
    let mut calls = Vec::new();
    for _ in 0..3 {
        for h in &hosts {
            calls.push(refresh(h, &token, &id, Some(1)));
        }
    }
    let answers = futures::future::join_all(calls).await;
    for r in &answers {
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["version"], 2, "{r:?}");
    }
    assert_eq!(auth.token_requests("refresh_token"), 1);
    // Every host then calls with the new token.
    auth.token_delay(Duration::ZERO);
    for h in &hosts {
        let r = send(h, &token, &id, "from every host").await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    assert_eq!(auth.token_requests("refresh_token"), 1);
}

async fn a_revoked_grant_requires_reauthorization_and_says_so_in_the_outbox(backend: Backend) {
    let auth = OAuthServer::start().await;
    let s = Server::start_with(backend, ENV).await;
    let token = s.tenant("acme").await;
    let id = install(&s, &token, components::OAUTH_NOTIFY, &auth, "notify").await;
    assert_eq!(authorize(&s, &token, &id).await.0, StatusCode::OK);

    // The user removes the app at the provider: the access token dies, the refresh is refused.
    auth.revoke_all();
    let r = send(&s, &token, &id, "after revocation").await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "reauth_required"), "{r:?}");
    let r = s.get(&format!("/v1/installations/{id}"), &token).await;
    assert_eq!(r.body["status"], "reauth_required", "{r:?}");
    let st = oauth_status(&s, &token, &id).await;
    assert_eq!(st["status"], "reauth_required");
    assert!(st["last_error"].as_str().unwrap().contains("invalid_grant"), "{st}");
    let r = s.get("/v1/events?type=installation.reauth_required", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let events = r.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{r:?}");
    assert_eq!(events[0]["source_installation"], id);
    // Later calls fail fast without asking the provider again.
    let refreshes = auth.token_requests("refresh_token");
    let r = send(&s, &token, &id, "still revoked").await;
    assert_eq!(r.code(), "reauth_required");
    assert_eq!(auth.token_requests("refresh_token"), refreshes);

    // Authorizing again brings the installation back.
    assert_eq!(authorize(&s, &token, &id).await.0, StatusCode::OK);
    let r = s.get(&format!("/v1/installations/{id}"), &token).await;
    assert_eq!(r.body["status"], "active", "{r:?}");
    let r = send(&s, &token, &id, "back").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");

    // Disconnecting revokes the refresh token at the provider and forgets the grant.
    let r = s.call(Method::DELETE, &format!("/v1/installations/{id}/oauth"), &token, None).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["revoked"], true, "{r:?}");
    assert_eq!(auth.revocations().len(), 1);
    assert_eq!(oauth_status(&s, &token, &id).await["connected"], false);
    let r = send(&s, &token, &id, "disconnected").await;
    assert_eq!(r.code(), "oauth_not_connected", "{r:?}");
    // Connected again, the grant starts over at version 1 and calls use its token, not the
    // revoked one this host saw last at the same version.
    assert_eq!(authorize(&s, &token, &id).await.0, StatusCode::OK);
    assert_eq!(oauth_status(&s, &token, &id).await["version"], 1);
    let r = send(&s, &token, &id, "reconnected").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(auth.notifications().last().map(String::as_str), Some("reconnected"));
}

async fn repeated_refresh_failures_require_reauthorization(backend: Backend) {
    let auth = OAuthServer::start().await;
    // Only the refreshes this test asks for: the background refresher (which would retry a failed
    // refresh 30 s later on its own, using up a failure) ticks once at start, then not for 10 min.
    let s = Server::start_with(backend, &[("PATCHBAY_SCHEDULER_TICK_MS", "600000")]).await;
    let token = s.tenant("acme").await;
    let id = install(&s, &token, components::OAUTH_NOTIFY, &auth, "notify").await;
    assert_eq!(authorize(&s, &token, &id).await.0, StatusCode::OK);

    // The token endpoint is down: each failure is counted and the grant stays usable...
    auth.fail_next(3);
    for n in 1..=2 {
        let r = refresh(&s, &token, &id, None).await;
        assert_eq!((r.status, r.code()), (StatusCode::BAD_GATEWAY, "oauth_unavailable"), "{r:?}");
        assert!(r.message().contains("HTTP 503"), "{r:?}");
        let st = oauth_status(&s, &token, &id).await;
        assert_eq!((st["status"].clone(), st["failures"].clone()), (json!("active"), json!(n)), "{st}");
        let r = send(&s, &token, &id, &format!("still working {n}")).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
    }
    // ...until the third failure in a row.
    let r = refresh(&s, &token, &id, None).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "reauth_required"), "{r:?}");
    let r = s.get(&format!("/v1/installations/{id}"), &token).await;
    assert_eq!(r.body["status"], "reauth_required", "{r:?}");
    let r = s.get("/v1/events?type=installation.reauth_required", &token).await;
    let events = r.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{r:?}");
    assert_eq!(events[0]["payload"]["reason"], "unavailable", "{r:?}");
    assert_eq!(auth.token_requests("refresh_token"), 3);
}

async fn the_client_credentials_grant_obtains_its_own_tokens(backend: Backend) {
    let auth = OAuthServer::start().await;
    let s = Server::start_with(backend, ENV).await;
    let token = s.tenant("acme").await;
    let id = install(&s, &token, components::OAUTH_NOTIFY_CC, &auth, "service").await;

    let r = s.post(&format!("/v1/installations/{id}/oauth/start"), &token, json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "oauth_no_authorization"), "{r:?}");
    // The first call obtains a token; `client_secret_post` puts the client in the body.
    let r = send(&s, &token, &id, "service call").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.body["id"], "sees:account", "{r:?}");
    let forms = auth.token_forms();
    assert_eq!(forms.len(), 1);
    assert_eq!(forms[0]["grant_type"], "client_credentials");
    assert_eq!(forms[0]["client_secret"], CLIENT_SECRET);
    assert_eq!(forms[0]["scope"], "notify");
    let r = send(&s, &token, &id, "second").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(auth.token_requests("client_credentials"), 1);
    // A 401 gets a new token the same way.
    auth.invalidate_access_tokens();
    let r = send(&s, &token, &id, "third").await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(auth.token_requests("client_credentials"), 2);
    assert_eq!(oauth_status(&s, &token, &id).await["grant_type"], "client_credentials");
}

async fn bad_oauth_requests_are_refused_precisely(backend: Backend) {
    let auth = OAuthServer::start().await;
    let s = Server::start_with(backend, ENV).await;
    let token = s.tenant("acme").await;
    let id = install(&s, &token, components::OAUTH_NOTIFY, &auth, "notify").await;

    // Another tenant cannot see or start it.
    let other = s.tenant("globex").await;
    let r = s.post(&format!("/v1/installations/{id}/oauth/start"), &other, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{r:?}");
    // A view-only key cannot start a flow.
    let viewer = s.key("acme", &["view"]).await;
    let r = s.post(&format!("/v1/installations/{id}/oauth/start"), &viewer, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    // Without the client id the flow cannot start.
    let r = s.call(Method::DELETE, &format!("/v1/installations/{id}/credentials"), &token, None).await;
    assert!(r.status.is_success(), "{r:?}");
    let r = s.post(&format!("/v1/installations/{id}/oauth/start"), &token, json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "oauth_not_configured"), "{r:?}");
    assert!(r.message().contains("client_id"), "{r:?}");
    // Refreshing or disconnecting a grant that does not exist.
    let r = refresh(&s, &token, &id, Some(1)).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "oauth_not_connected"), "{r:?}");
    let r = s.call(Method::DELETE, &format!("/v1/installations/{id}/oauth"), &token, None).await;
    assert_eq!((r.status, r.code()), (StatusCode::NOT_FOUND, "oauth_not_connected"), "{r:?}");
    let r = s.post(&format!("/v1/installations/{id}/oauth/refresh"), &token, json!({ "versoin": 1 })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(r.message().contains("versoin"), "{r:?}");

    // A connector without [oauth2].
    let r = s
        .post(
            "/v1/installations",
            &token,
            json!({ "connector": "notify-webhook", "name": "plain", "config": { "webhook_url": "https://hooks.example/x" } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let plain = r.body["id"].as_str().unwrap();
    let r = s.post(&format!("/v1/installations/{plain}/oauth/start"), &token, json!({})).await;
    assert_eq!((r.status, r.code()), (StatusCode::CONFLICT, "not_oauth"), "{r:?}");

    // Callbacks that do not match a request.
    let browser = reqwest::Client::new();
    for (q, needle) in [("", "no state"), ("?state=nope&code=x", "unknown"), ("?state=", "no state")] {
        let r = browser.get(format!("{}/oauth/callback{q}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{q}");
        assert!(r.text().await.unwrap().contains(needle), "{q}");
    }
    // The user refuses at the provider: the page says so and nothing is stored.
    let r = s
        .call(
            Method::PUT,
            &format!("/v1/installations/{id}/credentials"),
            &token,
            Some(json!({ "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = s.post(&format!("/v1/installations/{id}/oauth/start"), &token, json!({})).await;
    let state = query(r.body["authorize_url"].as_str().unwrap())["state"].clone();
    let r = browser
        .get(format!("{}/oauth/callback?error=access_denied&error_description=no%20thanks&state={state}", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let page = r.text().await.unwrap();
    assert!(page.contains("access_denied") && page.contains("no thanks"), "{page}");
    assert_eq!(oauth_status(&s, &token, &id).await["connected"], false);
    // A code the provider does not know: the exchange fails and the page says why.
    let r = s.post(&format!("/v1/installations/{id}/oauth/start"), &token, json!({})).await;
    let state = query(r.body["authorize_url"].as_str().unwrap())["state"].clone();
    let r = browser.get(format!("{}/oauth/callback?code=forged&state={state}", s.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert!(r.text().await.unwrap().contains("invalid_grant"));
    // HTML in provider-supplied text is escaped.
    let r = s.post(&format!("/v1/installations/{id}/oauth/start"), &token, json!({})).await;
    let state = query(r.body["authorize_url"].as_str().unwrap())["state"].clone();
    let r = browser
        .get(format!("{}/oauth/callback?error=%3Cscript%3Ex%3C/script%3E&state={state}", s.url))
        .send()
        .await
        .unwrap();
    let page = r.text().await.unwrap();
    assert!(!page.contains("<script>") && page.contains("&lt;script&gt;"), "{page}");
}

/// Finding: token requests went through a client whose guard only checked names it resolved, so an
/// IP literal reached loopback with the client id and secret. On a host with the default (strict)
/// network policy, no spelling of a blocked address gets a request out, and the caller reads the
/// host's words, not the destination's.
async fn oauth_requests_cannot_reach_blocked_addresses_in_any_spelling(backend: Backend) {
    let auth = OAuthServer::start().await;
    let port = url::Url::parse(&auth.base_url()).unwrap().port().unwrap();
    let strict: Vec<(&str, &str)> = ENV.iter().copied().chain([("PATCHBAY_EGRESS_ALLOW_NETWORKS", "")]).collect();
    let s = Server::start_with(backend, &strict).await;
    let token = s.tenant("acme").await;
    let r = s.upload(&token, wasm(components::OAUTH_NOTIFY_CC)).await;
    assert!(r.status.is_success(), "{r:?}");
    for (i, base) in [
        format!("http://127.0.0.1:{port}"),
        format!("http://2130706433:{port}"),
        format!("http://0x7f.0.0.1:{port}"),
        format!("http://127.1:{port}"),
        format!("http://[::ffff:127.0.0.1]:{port}"),
        format!("http://[::ffff:0:7f00:1]:{port}"),
        format!("http://localhost:{port}"),
        "http://169.254.169.254".to_string(),
    ]
    .into_iter()
    .enumerate()
    {
        let r = s
            .post(
                "/v1/installations",
                &token,
                json!({ "connector": "oauth-notify-cc", "name": format!("cc{i}"), "config": { "base_url": base } }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{base}: {r:?}");
        let id = r.body["id"].as_str().unwrap().to_string();
        let r = s
            .call(
                Method::PUT,
                &format!("/v1/installations/{id}/credentials"),
                &token,
                Some(json!({ "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        let r = send(&s, &token, &id, "hello").await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNPROCESSABLE_ENTITY, "oauth_destination_blocked"),
            "{base}: {r:?}"
        );
        assert!(r.message().contains("blocked"), "{base}: {r:?}");
        assert!(!r.body.to_string().contains(CLIENT_SECRET), "{base}: {r:?}");
    }
    assert_eq!(auth.token_requests("client_credentials"), 0, "no token request may leave the host");
    assert!(auth.token_forms().is_empty());
}

/// Finding: `{{config.KEY}}` was pasted raw, so `shop = "evil.example/?"` turned
/// `https://{{config.shop}}.myshopify.com` into an allowance for `evil.example`. A template fills a
/// value: a value that is not one is refused at install and at PATCH, naming the key, and the
/// OAuth endpoints are checked the same way.
async fn config_values_cannot_rewrite_the_oauth_or_allowed_origin(backend: Backend) {
    let s = Server::start_with(backend, ENV).await;
    let token = s.tenant("acme").await;
    let r = s.upload(&token, wasm(components::OAUTH_NOTIFY_CC)).await;
    assert!(r.status.is_success(), "{r:?}");
    for bad in ["https://evil.example/?x=", "https://evil.example#", "https://u:p@evil.example", "ftp://evil.example"] {
        let r = s
            .post(
                "/v1/installations",
                &token,
                json!({ "connector": "oauth-notify-cc", "name": "cc", "config": { "base_url": bad } }),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {r:?}");
        assert!(r.message().contains("base_url"), "{bad}: {r:?}");
    }
    let r = s
        .post(
            "/v1/installations",
            &token,
            json!({ "connector": "oauth-notify-cc", "name": "cc", "config": { "base_url": "https://api.example.com" } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = s
        .call(
            Method::PATCH,
            &format!("/v1/installations/{id}"),
            &token,
            Some(json!({ "config": { "base_url": "https://evil.example/?" } })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert!(r.message().contains("base_url"), "{r:?}");
    let r = s.get(&format!("/v1/installations/{id}"), &token).await;
    assert_eq!(r.body["config"]["base_url"], "https://api.example.com", "the refused PATCH changed nothing: {r:?}");
}
