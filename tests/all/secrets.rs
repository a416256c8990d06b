//! Secrets: a connector reaches only its own installation's values; injected secrets never enter
//! the guest or the logs; secrets are never sent in URLs or to other origins.

use patchbay_runtime::capability::state::StateStore;
use patchbay_tests::components;
use serde_json::{Value, json};

use crate::harness::{Host, TestServer, hostile, installation};

const SECRET_A: &str = "sk_live_AAAA_installation_a_secret";
const SECRET_B: &str = "sk_live_BBBB_installation_b_secret";

async fn run(host: &Host, inst: &patchbay_runtime::Installation, behaviour: &str, arg: &str) -> Value {
    let c = host.load(components::HOSTILE);
    hostile(host, &c, inst, behaviour, arg).await.outcome.unwrap().unwrap()
}

#[tokio::test]
async fn a_connector_cannot_read_another_installations_secret() {
    let host = Host::new(&[]);
    let a = installation("inst-a").secret("api_key", SECRET_A).readable("api_key").build();
    let _b = installation("inst-b").secret("api_key", SECRET_B).secret("other_key", SECRET_B).build();
    // Its own secret is readable through the plain `get` (its manifest says so); what the call
    // returns leaves the sandbox scrubbed, which shows the guest held exactly that value.
    let own = run(&host, &a, "read-secret", "api_key").await;
    assert_eq!(own["ok"], true, "{own}");
    assert_eq!(own["value"], "[REDACTED]", "{own}");
    // Every way of naming B's secret fails: there is no name that reaches another installation.
    for name in ["other_key", "inst-b/api_key", "../inst-b/api_key", "tenant-1:inst-b:api_key", "inst-b.api_key", "*"] {
        let v = run(&host, &a, "read-secret", name).await;
        assert_eq!(v["ok"], false, "{name}: {v}");
        assert_eq!(v["error"], "not-found", "{name}: {v}");
        assert!(!v.to_string().contains(SECRET_B));
    }
    // The same goes for state: B's keys are invisible to A.
    let b = installation("inst-b").tenant("tenant-2").build();
    let set = run(&host, &b, "state", &json!({"op": "set", "key": "token", "value": SECRET_B}).to_string()).await;
    assert_eq!(set["ok"], true, "{set}");
    assert_eq!(host.state.list_keys(&b.scope, "").await.unwrap(), vec!["token".to_string()]);
    let get = run(&host, &a, "state", &json!({"op": "get", "key": "token"}).to_string()).await;
    assert_eq!(get["value"], Value::Null, "{get}");
    let list = run(&host, &a, "state", &json!({"op": "list", "key": ""}).to_string()).await;
    assert_eq!(list["keys"], json!([]), "{list}");
}

#[tokio::test]
async fn injected_secret_reaches_the_server_but_not_the_guest_or_the_log() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let inst = installation("inj").secret("api_key", SECRET_A).allow("http://127.0.0.1:*").build();
    let req = json!({"url": server.url("/charge"), "headers": [["authorization", "Bearer {{secret:api_key}}"]]});
    let v = run(&host, &inst, "http", &req.to_string()).await;
    assert_eq!(v["status"], 200, "{v}");
    assert!(!v.to_string().contains(SECRET_A), "the guest saw the secret: {v}");
    let got = server.received();
    assert_eq!(got[0].header("authorization").as_deref(), Some(format!("Bearer {SECRET_A}").as_str()));
    assert!(!host.log_text(&inst).contains(SECRET_A));
}

#[tokio::test]
async fn a_destination_reflecting_the_injected_secret_cannot_hand_it_to_the_guest() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let inst = installation("echo").secret("api_key", SECRET_A).allow("http://127.0.0.1:*").build();
    let req = json!({"url": server.url("/echo"), "headers": [["authorization", "Bearer {{secret:api_key}}"]]});
    let v = run(&host, &inst, "http", &req.to_string()).await;
    assert_eq!(v["status"], 200, "{v}");
    // The server did receive the secret ...
    assert_eq!(server.received()[0].header("authorization").as_deref(), Some(format!("Bearer {SECRET_A}").as_str()));
    // ... but what it echoed back reaches the guest redacted, in the body and in the headers.
    assert!(!v.to_string().contains(SECRET_A), "{v}");
    let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["authorization"], "Bearer [REDACTED]");
    let echoed = v["headers"].as_array().unwrap().iter().find(|h| h[0] == "x-echo-authorization").unwrap();
    assert_eq!(echoed[1], "Bearer [REDACTED]");
}

#[tokio::test]
async fn unknown_placeholder_is_refused() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let inst = installation("inj2").allow("http://127.0.0.1:*").build();
    let req = json!({"url": server.url("/x"), "headers": [["authorization", "Bearer {{secret:nope}}"]]});
    let v = run(&host, &inst, "http", &req.to_string()).await;
    assert_eq!(v["error"], "invalid-request", "{v}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn secret_is_not_injected_toward_a_disallowed_destination() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let inst = installation("inj3").secret("api_key", SECRET_A).allow("https://api.stripe.com").build();
    let req = json!({"url": server.url("/x"), "headers": [["authorization", "Bearer {{secret:api_key}}"]]});
    let v = run(&host, &inst, "http", &req.to_string()).await;
    assert_eq!(v["error"], "destination-not-allowed", "{v}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn secret_headers_are_dropped_on_cross_origin_redirects() {
    let a = TestServer::start().await;
    let b = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let inst = installation("inj4").secret("api_key", SECRET_A).allow("http://127.0.0.1:*").build();
    let to = url::form_urlencoded::byte_serialize(b.url("/landing").as_bytes()).collect::<String>();
    let req = json!({
        "url": a.url(&format!("/redirect?to={to}")),
        "headers": [["x-api-key", "{{secret:api_key}}"], ["authorization", "Bearer {{secret:api_key}}"], ["x-trace", "t1"]],
        "follow_redirects": true
    });
    let v = run(&host, &inst, "http", &req.to_string()).await;
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(a.received()[0].header("x-api-key").as_deref(), Some(SECRET_A));
    let landed = &b.received()[0];
    assert_eq!(landed.header("x-api-key"), None);
    assert_eq!(landed.header("authorization"), None);
    assert_eq!(landed.header("x-trace").as_deref(), Some("t1"));
}

#[tokio::test]
async fn exfiltration_through_the_url_is_refused() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let inst = installation("exf").secret("api_key", SECRET_A).readable("api_key").allow("http://127.0.0.1:*").build();
    // The guest reads the secret and puts it in a query string to an allowed host.
    let v = run(&host, &inst, "exfiltrate-url", &server.url("/collect")).await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"], "invalid-request", "{v}");
    // Or asks the host to fill a placeholder in the URL.
    let v = run(&host, &inst, "placeholder-in-url", &server.url("/collect")).await;
    assert_eq!(v["error"], "invalid-request", "{v}");
    assert!(server.received().iter().all(|r| r.query.is_none()), "nothing may leave: {:?}", server.received());
    assert!(server.received().is_empty(), "nothing may leave: {:?}", server.received());
    // The attempt is logged, scrubbed.
    let log = host.log_text(&inst);
    assert!(log.contains("failed"), "{log}");
    assert!(!log.contains(SECRET_A), "{log}");
}

#[tokio::test]
async fn secrets_are_scrubbed_from_guest_logs_and_stdio() {
    let host = Host::new(&[]);
    let inst = installation("scrub").secret("api_key", SECRET_A).build();
    // `stdout` prints its argument to stdout and stderr.
    let v = run(&host, &inst, "stdout", &format!("leaking {SECRET_A} now")).await;
    assert_eq!(v["ok"], true);
    let log = host.log_text(&inst);
    assert!(log.contains("leaking [REDACTED] now"), "{log}");
    assert!(!log.contains(SECRET_A), "{log}");
}

#[tokio::test]
async fn events_are_emitted_validated_and_deduplicated() {
    let host = Host::new(&[]);
    let inst = installation("ev").build();
    let e = json!({"event_type": "order.paid", "subject": "ord_1", "payload": "{\"id\":1}", "idempotency_key": "k-1", "repeat": 2});
    let v = run(&host, &inst, "emit", &e.to_string()).await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["ids"][0], v["ids"][1], "same key, same id: {v}");
    let stored = host.events.events();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_type, "order.paid");
    assert_eq!(stored[0].scope, inst.scope);
    let bad = json!({"event_type": "Order Paid", "payload": "{}"});
    let v = run(&host, &inst, "emit", &bad.to_string()).await;
    assert_eq!(v["error"], "invalid", "{v}");
    let bad = json!({"event_type": "order.paid", "payload": "{not json"});
    let v = run(&host, &inst, "emit", &bad.to_string()).await;
    assert_eq!(v["error"], "invalid", "{v}");
}

/// Finding: `get-secret` handed any secret to the guest. Only a secret the manifest declares
/// `guest_readable` is; the host still uses the others for the connector.
#[tokio::test]
async fn a_secret_is_readable_by_the_guest_only_when_the_manifest_says_so() {
    let host = Host::new(&[]);
    let inst = installation("nr").secret("api_key", SECRET_A).secret("open", SECRET_B).readable("open").build();
    let v = run(&host, &inst, "read-secret", "api_key").await;
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"], "invalid", "{v}");
    assert!(v["message"].as_str().unwrap().contains("guest_readable"), "{v}");
    assert_eq!(v["has_secret"], true, "{v}");
    let v = run(&host, &inst, "read-secret", "open").await;
    assert_eq!(v["ok"], true, "{v}");
}

/// Finding: invoke output, events and state were not scrubbed, and the scrubber missed hex,
/// reversed, `\u`-escaped and offset-base64 forms. Every channel out of the sandbox is scrubbed.
#[tokio::test]
async fn no_channel_out_of_the_sandbox_carries_a_secret_in_any_encoding() {
    use base64::Engine as _;
    let host = Host::new(&[]);
    let inst = installation("ch").secret("api_key", SECRET_A).readable("api_key").build();
    let hex: String = SECRET_A.bytes().map(|b| format!("{b:02x}")).collect();
    let reversed: String = SECRET_A.chars().rev().collect();
    let escaped: String = SECRET_A.chars().map(|c| format!("\\u{:04x}", c as u32)).collect();
    let offset = base64::engine::general_purpose::STANDARD.encode(format!("user:{SECRET_A}"));
    for form in [SECRET_A.to_string(), hex.to_uppercase(), reversed, escaped, offset] {
        // State values.
        let set = run(&host, &inst, "state", &json!({"op": "set", "key": "k", "value": form}).to_string()).await;
        assert_eq!(set["ok"], true, "{set}");
        let stored = host.state.get(&inst.scope, "k").await.unwrap().unwrap_or_default();
        assert!(!stored.contains(&form) && stored.contains("[REDACTED]"), "state kept {form}: {stored}");
        // Emitted events.
        let emitted =
            run(&host, &inst, "emit", &json!({"event_type": "leak.test", "payload": {"v": form}}).to_string()).await;
        assert_eq!(emitted["ok"], true, "{emitted}");
        let last = host.events.events().pop().unwrap();
        assert!(!last.payload.contains(&form), "event kept {form}: {}", last.payload);
        // The call's output: a value that reached state some other way comes back scrubbed.
        let limits = patchbay_runtime::capability::state::StateLimits::default();
        host.state.set(&inst.scope, "raw", &form, &limits).await.unwrap();
        let got = run(&host, &inst, "state", &json!({"op": "get", "key": "raw"}).to_string()).await;
        assert_eq!(got["ok"], true, "{got}");
        assert!(!got.to_string().contains(&form), "output kept {form}: {got}");
    }
}
