//! Egress is deny-by-default: declared destinations only, no blocked networks, checked on every
//! redirect hop, bounded in time and size, and every request logged without its query.

use std::time::Duration;

use patchbay_core::log::Source;
use patchbay_tests::components;
use serde_json::{Value, json};

use crate::harness::{Host, TestServer, hostile, installation};

async fn fetch(host: &Host, inst: &patchbay_runtime::Installation, req: Value) -> Value {
    let c = host.load(components::HOSTILE);
    hostile(host, &c, inst, "http", &req.to_string()).await.outcome.unwrap().unwrap()
}

fn error_of(v: &Value) -> &str {
    assert_eq!(v["ok"], false, "expected a failed request: {v}");
    v["error"].as_str().unwrap()
}

#[tokio::test]
async fn undeclared_destination_is_refused_before_connecting() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let inst = installation("e1").allow("https://api.stripe.com").build();
    let v = fetch(&host, &inst, json!({"url": server.url("/x")})).await;
    assert_eq!(error_of(&v), "destination-not-allowed");
    assert!(v["message"].as_str().unwrap().contains("https://api.stripe.com"), "{v}");
    assert!(server.received().is_empty(), "nothing may reach the server");
}

#[tokio::test]
async fn allowed_destination_is_reached_and_logged_without_query() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let inst = installation("e2").allow("http://127.0.0.1:*").build();
    let v = fetch(&host, &inst, json!({"url": server.url("/hello?token=abc123")})).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["status"], 200);
    assert_eq!(v["body"], "hello");
    let http: Vec<_> = host.logs(&inst).into_iter().filter(|e| e.source == Source::Http).collect();
    assert_eq!(http.len(), 1);
    let f = |k: &str| http[0].fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
    assert_eq!(f("method"), "GET");
    assert_eq!(f("host"), format!("127.0.0.1:{}", server.addr.port()));
    assert_eq!(f("path"), "/hello");
    assert_eq!(f("status"), "200");
    assert_eq!(f("bytes"), "5");
    assert!(f("ms").parse::<u64>().is_ok());
    assert!(!host.log_text(&inst).contains("abc123"), "queries are not logged");
}

#[tokio::test]
async fn loopback_is_blocked_unless_the_operator_allows_it() {
    let server = TestServer::start().await;
    let host = Host::new(&[]);
    let inst = installation("e3").allow("http://127.0.0.1:*").allow("http://localhost:*").build();
    let v = fetch(&host, &inst, json!({"url": server.url("/x")})).await;
    assert_eq!(error_of(&v), "address-blocked");
    assert!(v["message"].as_str().unwrap().contains("loopback"), "{v}");
    // A name that resolves to loopback is checked after resolution.
    let v = fetch(&host, &inst, json!({"url": format!("http://localhost:{}/x", server.addr.port())})).await;
    assert_eq!(error_of(&v), "address-blocked", "{v}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn metadata_endpoint_is_blocked_even_when_declared() {
    let host = Host::new(&["127.0.0.1/32"]);
    let inst = installation("e4").allow("http://169.254.169.254").allow("http://[::ffff:a9fe:a9fe]").build();
    let v = fetch(&host, &inst, json!({"url": "http://169.254.169.254/latest/meta-data/"})).await;
    assert_eq!(error_of(&v), "address-blocked");
    assert!(v["message"].as_str().unwrap().contains("metadata"), "{v}");
    let v = fetch(&host, &inst, json!({"url": "http://[::ffff:169.254.169.254]/latest/meta-data/"})).await;
    assert_eq!(error_of(&v), "address-blocked", "{v}");
}

#[tokio::test]
async fn every_redirect_hop_is_checked() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let inst = installation("e5").allow("http://127.0.0.1:*").build();
    // To an undeclared host.
    let to = url::form_urlencoded::byte_serialize(b"https://evil.example.com/steal").collect::<String>();
    let v =
        fetch(&host, &inst, json!({"url": server.url(&format!("/redirect?to={to}")), "follow_redirects": true})).await;
    assert_eq!(error_of(&v), "destination-not-allowed", "{v}");
    // To the metadata address.
    let to = url::form_urlencoded::byte_serialize(b"http://169.254.169.254/latest").collect::<String>();
    let inst2 = installation("e5b").allow("http://127.0.0.1:*").allow("http://169.254.169.254").build();
    let v =
        fetch(&host, &inst2, json!({"url": server.url(&format!("/redirect?to={to}")), "follow_redirects": true})).await;
    assert_eq!(error_of(&v), "address-blocked", "{v}");
    // Allowed hop is followed.
    let to = url::form_urlencoded::byte_serialize(server.url("/final").as_bytes()).collect::<String>();
    let v =
        fetch(&host, &inst, json!({"url": server.url(&format!("/redirect?to={to}")), "follow_redirects": true})).await;
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(server.received().last().unwrap().path, "/final");
    // Without follow_redirects the 302 is returned as is.
    let v = fetch(&host, &inst, json!({"url": server.url(&format!("/redirect?to={to}"))})).await;
    assert_eq!(v["status"], 302, "{v}");
}

#[tokio::test]
async fn response_size_is_capped() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let inst = installation("e6").allow("http://127.0.0.1:*").limits(|l| l.http.max_response_bytes = 64 * 1024).build();
    let v = fetch(&host, &inst, json!({"url": server.url("/big?n=1000000")})).await;
    assert_eq!(error_of(&v), "response-too-large", "{v}");
    let v = fetch(&host, &inst, json!({"url": server.url("/big?n=1000")})).await;
    assert_eq!(v["status"], 200, "{v}");
}

#[tokio::test]
async fn requests_time_out() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let inst = installation("e7").allow("http://127.0.0.1:*").build();
    let started = std::time::Instant::now();
    let v = fetch(&host, &inst, json!({"url": server.url("/slow?ms=30000"), "timeout_ms": 200})).await;
    assert_eq!(error_of(&v), "timeout", "{v}");
    // Far below the server's 30 s: the 200 ms timeout ended the request (generous for loaded CI).
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn request_count_per_call_is_bounded() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let inst = installation("e8").allow("http://127.0.0.1:*").limits(|l| l.http.max_requests_per_call = 3).build();
    let v = fetch(&host, &inst, json!({"url": server.url("/x"), "repeat": 5})).await;
    assert_eq!(error_of(&v), "too-many-requests", "{v}");
    assert_eq!(server.received().len(), 3);
}

#[tokio::test]
async fn non_http_schemes_and_user_info_are_refused() {
    let host = Host::new(&["127.0.0.1/32"]);
    let inst = installation("e9").allow("http://127.0.0.1:*").build();
    let v = fetch(&host, &inst, json!({"url": "file:///etc/passwd"})).await;
    assert_eq!(error_of(&v), "invalid-request", "{v}");
    let v = fetch(&host, &inst, json!({"url": "http://user:pw@127.0.0.1:1/"})).await;
    assert_eq!(error_of(&v), "invalid-request", "{v}");
}

/// Test mode: requests are answered from fixtures — matched on the request as the guest sent it,
/// secrets as placeholders — and never reach the network; every check before the network still
/// refuses what it refuses live; a request no fixture matches fails and says so.
#[tokio::test]
async fn fixtures_answer_instead_of_the_network_after_every_check() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let fixtures = json!([
        {"name": "hello", "request": {"method": "GET", "url": server.url("/hello"),
            "headers": {"authorization": "Bearer {{secret:token}}"}},
         "response": {"status": 201, "headers": [["x-from", "fixture"]], "body": "recorded"}},
        {"name": "meta", "request": {"method": "GET", "url": "http://169.254.169.254/*"},
         "response": {"status": 200, "body": "should never answer"}},
        {"name": "elsewhere", "request": {"method": "GET", "url": "https://api.stripe.com/*"},
         "response": {"status": 200, "body": "should never answer"}}
    ]);
    let inst = installation("fx")
        .allow("http://127.0.0.1:*")
        .allow("http://169.254.169.254")
        .secret("token", "tk_live_value")
        .fixtures(&fixtures.to_string())
        .build();
    let auth = json!([["authorization", "Bearer {{secret:token}}"]]);
    let v = fetch(&host, &inst, json!({"url": server.url("/hello"), "headers": auth})).await;
    assert_eq!(
        (v["ok"].clone(), v["status"].clone(), v["body"].clone()),
        (json!(true), json!(201), json!("recorded")),
        "{v}"
    );
    // No header, so no match: the request fails instead of going out.
    let v = fetch(&host, &inst, json!({"url": server.url("/hello")})).await;
    assert_eq!(error_of(&v), "connection-failed");
    assert!(v["message"].as_str().unwrap().contains("no fixture matches GET 127.0.0.1/hello"), "{v}");
    // The checks before the network still apply: the address policy and the allowed hosts.
    let v = fetch(&host, &inst, json!({"url": "http://169.254.169.254/latest/meta-data/"})).await;
    assert_eq!(error_of(&v), "address-blocked", "{v}");
    let v = fetch(&host, &inst, json!({"url": "https://api.stripe.com/v1/charges"})).await;
    assert_eq!(error_of(&v), "destination-not-allowed", "{v}");
    assert!(server.received().is_empty(), "test mode never reaches the network");
    // Logged as test mode, with the fixture's name, without the secret.
    let log = host.log_text(&inst);
    assert!(log.contains("-> 201 (fixture hello)") && log.contains("mode=test"), "{log}");
    assert!(!log.contains("tk_live_value"), "{log}");
}
