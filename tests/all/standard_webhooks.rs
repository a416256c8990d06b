//! The `standard-webhooks` reference connector: deliveries from the real server checked by the
//! reference `standardwebhooks` library from npm (run under node), how subscriber answers map to
//! error kinds, and inbound verification and normalization through the component.
//!
//! Node and npm are required: without them these tests fail rather than skip. `tests/node` is
//! installed with `npm ci` into the cargo target directory (once, then reused), so the repository
//! stays clean.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use patchbay_crypto::webhook::{Scheme, Verifier, new_standard_webhooks_secret};
use patchbay_runtime::calls::invoke_json;
use patchbay_store::Backend;
use patchbay_tests::components;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::connectors::incoming;
use crate::harness::{Host, Recorded, TestServer, installation};
use crate::server::Server;

/// `tests/node` with its dependencies installed (`npm ci`), once per content of its files and
/// target directory: a later run (or another test process) finds the install and uses it.
///
/// The install runs in a fresh directory of its own, so that two test processes installing at
/// once never wipe each other's `node_modules`, is retried with a backoff (the npm registry is on
/// the network; `--prefer-offline` uses npm's cache when it can), and is then renamed into place
/// whole, ready marker included: a directory under its final name is always complete.
fn node_verifier() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    const FILES: [&str; 3] = ["package.json", "package-lock.json", "verify-standard-webhooks.mjs"];
    const READY: &str = ".patchbay-installed";
    DIR.get_or_init(|| {
        for tool in ["node", "npm"] {
            // npm can fail transiently (its log and cache directories are shared by every npm on
            // the machine): a few tries, then the reason.
            let mut last = String::new();
            let found = (0..3).any(|attempt| {
                if attempt > 0 {
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
                match Command::new(tool).arg("--version").output() {
                    Ok(o) if o.status.success() => true,
                    Ok(o) => {
                        last = format!("{}: {}", o.status, String::from_utf8_lossy(&o.stderr));
                        false
                    }
                    Err(e) => {
                        last = e.to_string();
                        false
                    }
                }
            });
            assert!(found, "`{tool}` is required to check deliveries with the npm `standardwebhooks` library: {last}");
        }
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("node");
        let files: Vec<(&str, Vec<u8>)> = FILES
            .iter()
            .map(|f| (*f, std::fs::read(source.join(f)).unwrap_or_else(|e| panic!("reading tests/node/{f}: {e}"))))
            .collect();
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        for (name, bytes) in &files {
            digest.update(name.as_bytes());
            digest.update(&(bytes.len() as u64).to_le_bytes());
            digest.update(bytes);
        }
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("standard-webhooks-npm");
        let dir = root.join(hex::encode(&digest.finish().as_ref()[..8]));
        if dir.join(READY).is_file() {
            return dir;
        }
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("creating {}: {e}", root.display()));
        let staging = tempfile::Builder::new()
            .prefix(".installing-")
            .tempdir_in(&root)
            .unwrap_or_else(|e| panic!("a directory to install in under {}: {e}", root.display()));
        for (name, bytes) in &files {
            std::fs::write(staging.path().join(name), bytes).unwrap_or_else(|e| panic!("writing {name}: {e}"));
        }
        let mut failures = Vec::new();
        for attempt in 1..=4u32 {
            let out = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts", "--prefer-offline"])
                .current_dir(staging.path())
                .output()
                .unwrap_or_else(|e| panic!("running npm: {e}"));
            if out.status.success() {
                break;
            }
            failures.push(format!("attempt {attempt}: {}", String::from_utf8_lossy(&out.stderr).trim()));
            assert!(attempt < 4, "npm ci in {} failed:\n{}", staging.path().display(), failures.join("\n"));
            std::thread::sleep(std::time::Duration::from_secs(2u64.pow(attempt)));
        }
        std::fs::write(staging.path().join(READY), b"").unwrap_or_else(|e| panic!("writing {READY}: {e}"));
        let staged = staging.keep();
        match std::fs::rename(&staged, &dir) {
            Ok(()) => dir,
            // Another process moved its install into place first: use that one.
            Err(_) if dir.join(READY).is_file() => {
                let _ = std::fs::remove_dir_all(&staged);
                dir
            }
            Err(e) => panic!("moving {} to {}: {e}", staged.display(), dir.display()),
        }
    })
}

/// What the npm verifier said: its exit code and one JSON result per request.
struct NodeVerdict {
    code: Option<i32>,
    results: Vec<Value>,
    stderr: String,
}

/// Runs `verify-standard-webhooks.mjs` on `requests` with `secret`.
fn verify_with_npm(secret: &str, requests: &[Recorded]) -> NodeVerdict {
    let dir = node_verifier();
    let requests: Vec<Value> = requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let headers: serde_json::Map<String, Value> = ["webhook-id", "webhook-timestamp", "webhook-signature"]
                .iter()
                .filter_map(|h| r.header(h).map(|v| (h.to_string(), Value::String(v))))
                .collect();
            json!({ "name": format!("request {i}"), "headers": headers, "body_base64": STANDARD.encode(&r.body) })
        })
        .collect();
    let input = json!({ "secret": secret, "requests": requests }).to_string();
    let mut child = Command::new("node")
        .arg("verify-standard-webhooks.mjs")
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let results = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("verifier printed {l:?}: {e}")))
        .collect();
    NodeVerdict { code: out.status.code(), results, stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
}

/// The `deliver` input for one outbound event.
fn event(id: &str, event_type: &str, payload: &str, timestamp_ms: u64, attempt: u32) -> Value {
    json!({ "event": {
        "id": id, "event-type": event_type, "payload": payload, "timestamp": timestamp_ms,
        "attempt": attempt, "idempotency-key": format!("idem-{id}"),
    }})
}

/// Installs standard-webhooks as `name` for `token` with subscriber `url` and, when given,
/// `signing_secret`.
async fn install(s: &Server, token: &str, name: &str, url: &str, signing_secret: Option<&str>) -> String {
    let r = s
        .post(
            "/v1/installations",
            token,
            json!({ "connector": "standard-webhooks", "name": name, "config": { "url": url } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let id = r.body["id"].as_str().unwrap().to_string();
    if let Some(secret) = signing_secret {
        let path = format!("/v1/installations/{id}/credentials");
        let r = s.call(Method::PUT, &path, token, Some(json!({ "signing_secret": secret }))).await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["credentials"]["signing_secret"], "••••••••");
    }
    id
}

/// Deliveries from the real server carry exactly the Standard Webhooks body and headers, and the
/// reference npm library verifies every one of them; a tampered body or another secret fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_verify_with_the_npm_standardwebhooks_library() {
    node_verifier();
    let s = Server::start(Backend::Sqlite).await;
    let sink = TestServer::start().await;
    let r = s.get("/v1/connectors/standard-webhooks", &s.operator).await;
    assert_eq!(r.status, StatusCode::OK, "the reference connector is in the catalog: {r:?}");

    let acme = s.tenant("acme").await;
    let secret = new_standard_webhooks_secret().unwrap();
    let id = install(&s, &acme, "subscriber", &sink.url("/hooks/sw"), Some(&secret)).await;

    let unicode = json!({
        "name": "Zoë Ångström", "city": "Zürich", "emoji": "🚀✨", "cjk": "日本語のテキスト", "rtl": "שלום",
        "escapes": "line\nbreak \"quoted\" \\ tab\t \u{2028}", "nested": { "list": [1, 2.5, null, true] }
    })
    .to_string();
    const INVOICE_ID: &str = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
    const INVOICE: &str = r#"{"invoice":"in_1","amount":4200}"#;
    // Escapes and spacing as the producer wrote them: the body carries the payload's bytes.
    const RAW: &str = "{ \"text\" : \"caf\\u00e9 \\ud83d\\ude80\",\n  \"n\": 12.5 }";
    let sent: Vec<(&str, &str, String, u64, u32)> = vec![
        (INVOICE_ID, "invoice.paid", INVOICE.into(), 1_767_225_600_123, 1),
        ("msg_unicode_01", "contact.créé", unicode, 951_782_400_000, 1),
        ("msg_raw_02", "note.added", RAW.into(), 1_700_000_000_000, 1),
        ("msg_array_03", "batch.ready", "[1,\"two\",{\"three\":3}]".into(), 1_700_000_000_000, 1),
        // A retry keeps the webhook-id; only the attempt's timestamp and signature change.
        (INVOICE_ID, "invoice.paid", INVOICE.into(), 1_767_225_600_123, 2),
    ];
    let before = patchbay_core::now_ms() / 1000;
    for (event_id, event_type, payload, ts, attempt) in &sent {
        let r = s
            .post(
                &format!("/v1/installations/{id}/invoke/deliver"),
                &acme,
                event(event_id, event_type, payload, *ts, *attempt),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{r:?}");
        assert_eq!(r.body["status"], 200, "{r:?}");
        assert!(r.header("x-patchbay-connector").unwrap().starts_with("standard-webhooks@"));
    }
    let after = patchbay_core::now_ms() / 1000;

    let got = sink.received();
    assert_eq!(got.len(), sent.len());
    let expected_times = ["2026-01-01T00:00:00.123Z", "2000-02-29T00:00:00.000Z", "2023-11-14T22:13:20.000Z"];
    let host_verifier = Verifier::new(Scheme::StandardWebhooks, &[secret.as_str()]).unwrap();
    for (req, (event_id, event_type, payload, ts, _)) in got.iter().zip(&sent) {
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/hooks/sw"));
        assert_eq!(req.header("content-type").as_deref(), Some("application/json"));
        assert_eq!(req.header("webhook-id").as_deref(), Some(*event_id));
        assert_eq!(req.header("idempotency-key"), Some(format!("idem-{event_id}")));
        let attempt_ts: i64 = req.header("webhook-timestamp").unwrap().parse().unwrap();
        assert!((before..=after).contains(&attempt_ts), "{attempt_ts} not in {before}..={after}");
        let signature = req.header("webhook-signature").unwrap();
        assert!(signature.starts_with("v1,") && !signature.contains(' '), "{signature}");

        let body = std::str::from_utf8(&req.body).unwrap();
        let rfc3339 = match *ts {
            1_767_225_600_123 => expected_times[0],
            951_782_400_000 => expected_times[1],
            _ => expected_times[2],
        };
        assert_eq!(body, format!(r#"{{"type":"{event_type}","timestamp":"{rfc3339}","data":{payload}}}"#));
        host_verifier
            .verify(&req.headers, &req.body, patchbay_core::now_ms() / 1000)
            .unwrap_or_else(|e| panic!("{event_id}: {e}"));
    }

    let verdict = verify_with_npm(&secret, &got);
    assert_eq!(verdict.code, Some(0), "{:?}\n{}", verdict.results, verdict.stderr);
    assert_eq!(verdict.results.len(), sent.len());
    for (result, (_, event_type, payload, _, _)) in verdict.results.iter().zip(&sent) {
        assert_eq!(result["ok"], true, "{result}");
        assert_eq!(result["payload"]["type"], *event_type, "{result}");
        assert_eq!(result["payload"]["data"], serde_json::from_str::<Value>(payload).unwrap(), "{result}");
    }
    assert_eq!(verdict.results[1]["payload"]["data"]["cjk"], "日本語のテキスト");
    assert_eq!(verdict.results[2]["payload"]["data"]["text"], "café 🚀");

    // The verifier can fail: one changed byte, or another secret, is rejected.
    let mut tampered = got.clone();
    tampered[0].body = String::from_utf8(tampered[0].body.to_vec()).unwrap().replace("4200", "4201").into();
    let verdict = verify_with_npm(&secret, &tampered);
    assert_eq!(verdict.code, Some(1), "{:?}", verdict.results);
    assert_eq!(verdict.results[0]["ok"], false, "{:?}", verdict.results);
    assert!(verdict.results[0]["error"].as_str().unwrap().contains("No matching signature"), "{:?}", verdict.results);
    assert!(verdict.results[1..].iter().all(|r| r["ok"] == true), "{:?}", verdict.results);

    let other = new_standard_webhooks_secret().unwrap();
    let verdict = verify_with_npm(&other, &got);
    assert_eq!(verdict.code, Some(1), "{:?}", verdict.results);
    assert!(verdict.results.iter().all(|r| r["ok"] == false), "{:?}", verdict.results);

    // The secret never reaches the operation log.
    let r = s.get(&format!("/v1/installations/{id}/logs?limit=1000"), &acme).await;
    let text = r.body.to_string();
    assert!(text.contains("/hooks/sw"), "{text}");
    assert!(!text.contains(secret.trim_start_matches("whsec_")), "the signing secret reached the log");
}

/// The subscriber's answer decides the error kind: 429 rate-limited with its Retry-After, 410
/// permanent `gone`, 5xx retryable, other 4xx (401 included) permanent naming the status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_maps_subscriber_answers_to_error_kinds() {
    let s = Server::start(Backend::Sqlite).await;
    let sink = TestServer::start().await;
    let acme = s.tenant("acme").await;
    let secret = new_standard_webhooks_secret().unwrap();
    let id = install(&s, &acme, "subscriber", &sink.url("/status/429"), Some(&secret)).await;
    let deliver = |n: u32| {
        let (s, acme, id) = (&s, acme.clone(), id.clone());
        async move {
            s.post(&format!("/v1/installations/{id}/invoke/deliver"), &acme, event("msg_k1", "a.b", "{}", 0, n)).await
        }
    };
    let point_at = |path: &'static str| {
        let (s, acme, id, url) = (&s, acme.clone(), id.clone(), sink.url(path));
        async move {
            let r = s
                .call(
                    Method::PATCH,
                    &format!("/v1/installations/{id}"),
                    &acme,
                    Some(json!({ "config": { "url": url } })),
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{r:?}");
        }
    };

    let r = deliver(1).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    assert_eq!(r.body["error"]["kind"], "rate-limited", "{r:?}");
    assert_eq!(r.body["error"]["details"]["retry-after-ms"], 7000, "{r:?}");
    assert_eq!(r.header("retry-after"), Some("7"));

    point_at("/status/410").await;
    let r = deliver(2).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.body["error"]["kind"], "permanent", "{r:?}");
    assert_eq!(r.body["error"]["details"]["code"], "gone", "{r:?}");

    for path in ["/status/500", "/status/503"] {
        point_at(path).await;
        let r = deliver(3).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{path}: {r:?}");
        assert_eq!(r.body["error"]["kind"], "retryable", "{path}: {r:?}");
    }

    for (path, code) in [("/status/401", "http_401"), ("/status/404", "http_404"), ("/status/301", "http_301")] {
        point_at(path).await;
        let r = deliver(4).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {r:?}");
        assert_eq!(r.body["error"]["kind"], "permanent", "{path}: {r:?}");
        assert_eq!(r.body["error"]["details"]["code"], code, "{path}: {r:?}");
        assert!(r.message().contains(&code[5..]), "the message names the status: {r:?}");
    }

    // Every attempt was signed and sent, each to the URL configured at the time.
    let got = sink.received();
    let paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        ["/status/429", "/status/410", "/status/500", "/status/503", "/status/401", "/status/404", "/status/301"]
    );
    let verifier = Verifier::new(Scheme::StandardWebhooks, &[secret.as_str()]).unwrap();
    for req in &got {
        verifier
            .verify(&req.headers, &req.body, patchbay_core::now_ms() / 1000)
            .unwrap_or_else(|e| panic!("{}: {e}", req.path));
    }

    // Without a signing secret nothing is sent.
    let unsigned = install(&s, &acme, "unsigned", &sink.url("/hooks/sw"), None).await;
    let r = s
        .post(&format!("/v1/installations/{unsigned}/invoke/deliver"), &acme, event("msg_k2", "a.b", "{}", 0, 1))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{r:?}");
    assert_eq!(r.body["error"]["details"]["code"], "missing_credential", "{r:?}");
    assert_eq!(sink.received().len(), got.len(), "an unsigned delivery reached the subscriber");
}

/// The published vector (tests/vectors/webhooks.json).
const SW_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const SW_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const SW_TS: u64 = 1_649_367_553;
const SW_BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
const SW_SIG: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

/// The manifest embedded in the built component declares the `standard-webhooks` scheme over
/// `webhook_secret`, so the host's own verifier (built from it) accepts the published vector.
#[test]
fn manifest_lets_the_host_verify_inbound_requests() {
    let wasm = std::fs::read(components::STANDARD_WEBHOOKS).unwrap();
    let manifest = patchbay_registry::inspect(&wasm, &patchbay_registry::PackageLimits::default()).unwrap().manifest;
    assert_eq!(manifest.id, "standard-webhooks");
    assert_eq!(manifest.category, patchbay_registry::Category::WebhookEndpoint);
    assert_eq!(manifest.allowed_hosts, ["{{config.url}}"]);
    let spec = manifest.webhook.expect("a [webhook] table");
    assert_eq!(
        (spec.scheme, spec.secret.as_str()),
        (patchbay_registry::WebhookScheme::StandardWebhooks, "webhook_secret")
    );
    let verifier = Verifier::from_spec(&spec, &[SW_SECRET]).unwrap();
    let ts = SW_TS.to_string();
    let headers = [("webhook-id", SW_ID), ("webhook-timestamp", ts.as_str()), ("webhook-signature", SW_SIG)];
    let verified = verifier.verify(&headers[..], SW_BODY.as_bytes(), SW_TS as i64).unwrap();
    assert_eq!(verified.webhook_id.as_deref(), Some(SW_ID));
    assert!(verifier.verify(&headers[..], b"{}", SW_TS as i64).is_err());
}

/// `verify` through the component: the host checks the HMAC (`verify-hmac-sha256-with`), the
/// connector the headers, the window (against the request's arrival time) and the signature list.
#[tokio::test]
async fn verify_checks_the_published_vector_window_and_rotation() {
    let host = Host::new(&[]);
    let c = host.load(components::STANDARD_WEBHOOKS);
    let verify = |secret: Option<&str>, signature: &str, body: &str, received_secs: u64| {
        let mut b = installation("sw");
        if let Some(secret) = secret {
            b = b.secret("webhook_secret", secret);
        }
        let inst = b.build();
        let ts = SW_TS.to_string();
        let mut input =
            incoming(&[("webhook-id", SW_ID), ("webhook-timestamp", &ts), ("webhook-signature", signature)], body);
        input["req"]["received-at"] = json!(received_secs * 1000);
        let (host, c) = (&host, c.clone());
        async move { invoke_json(&host.runtime, &c, &inst, "webhooks.verify", input).await.unwrap().outcome.unwrap() }
    };

    let ok = verify(Some(SW_SECRET), SW_SIG, SW_BODY, SW_TS + 120).await;
    assert_eq!(ok, json!({"ok": {"valid": SW_ID}}));
    let rotated = format!("v1,bm90IHRoZSByaWdodCBvbmU= v1a,ZWQyNTUxOQ== {SW_SIG}");
    assert_eq!(verify(Some(SW_SECRET), &rotated, SW_BODY, SW_TS).await, json!({"ok": {"valid": SW_ID}}));

    let tampered = verify(Some(SW_SECRET), SW_SIG, &SW_BODY.replace("test_user", "admin"), SW_TS).await;
    assert_eq!(tampered, json!({"ok": {"invalid": "no signature matched"}}));
    let late = verify(Some(SW_SECRET), SW_SIG, SW_BODY, SW_TS + 301).await;
    assert!(late["ok"]["invalid"].as_str().unwrap().contains("±300 s"), "{late}");
    let fresh = new_standard_webhooks_secret().unwrap();
    let other = verify(Some(fresh.as_str()), SW_SIG, SW_BODY, SW_TS).await;
    assert_eq!(other, json!({"ok": {"invalid": "no signature matched"}}));
    // Fail closed without a secret; a secret that is not whsec_ base64 is a connector error.
    let unconfigured = verify(None, SW_SIG, SW_BODY, SW_TS).await;
    assert_eq!(unconfigured, json!({"ok": {"invalid": "webhook secret not configured"}}));
    let broken = verify(Some("whsec_***"), SW_SIG, SW_BODY, SW_TS).await;
    assert_eq!(broken["err"]["permanent"]["code"], "invalid_credential_request", "{broken}");
    assert!(broken["err"]["permanent"]["message"].as_str().unwrap().contains("`webhook_secret`"), "{broken}");
}

/// `transform` turns a Standard Webhooks body into one event; a malformed body is a permanent
/// `invalid_payload` error.
#[tokio::test]
async fn transform_normalizes_a_standard_webhooks_body() {
    let host = Host::new(&[]);
    let c = host.load(components::STANDARD_WEBHOOKS);
    let inst = installation("sw").build();
    let transform = |headers: &[(&str, &str)], body: &str| {
        let input = incoming(headers, body);
        let (host, c, inst) = (&host, c.clone(), &inst);
        async move { invoke_json(&host.runtime, &c, inst, "webhooks.transform", input).await.unwrap().outcome.unwrap() }
    };

    let body = r#"{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81eb52","fullName":"John Smith","city":"Zürich"}}"#;
    let out = transform(&[("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")], body).await;
    assert_eq!(
        out,
        json!({"ok": [{
            "event-type": "contact.created",
            "subject": null,
            "payload": r#"{"id":"1f81eb52","fullName":"John Smith","city":"Zürich"}"#,
            "idempotency-key": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            "occurred-at": 1_667_507_170_344u64,
        }]}),
        "{out}"
    );

    for (bad, reason) in [
        ("{\"data\":{}}", "no `type`"),
        ("[\"not\", \"an object\"]", "not a JSON object"),
        ("{\"type\":\"a.b\",\"timestamp\":\"last tuesday\",\"data\":{}}", "RFC 3339"),
        ("{truncated", "not valid JSON"),
    ] {
        let out = transform(&[("webhook-id", "msg_x")], bad).await;
        assert_eq!(out["err"]["permanent"]["code"], "invalid_payload", "{bad}: {out}");
        assert!(out["err"]["permanent"]["message"].as_str().unwrap().contains(reason), "{bad}: {out}");
    }
}

/// `validate-credentials` has the host key an HMAC with each secret (`hmac-sha256-with`), so a
/// secret that is not `whsec_` base64 is reported without the guest ever reading it.
#[tokio::test]
async fn validate_credentials_checks_the_secrets_through_the_host() {
    let host = Host::new(&[]);
    let c = host.load(components::STANDARD_WEBHOOKS);
    let check = |secrets: &[(&str, &str)]| {
        let mut b = installation("sw");
        for (k, v) in secrets {
            b = b.secret(k, v);
        }
        let inst = b.build();
        let (host, c) = (&host, c.clone());
        async move {
            invoke_json(&host.runtime, &c, &inst, "validate-credentials", json!({})).await.unwrap().outcome.unwrap()
        }
    };
    let good = new_standard_webhooks_secret().unwrap();
    let ok = check(&[("signing_secret", good.as_str()), ("webhook_secret", SW_SECRET)]).await;
    assert_eq!(ok["ok"]["valid"], true, "{ok}");
    let bad = check(&[("signing_secret", "whsec_!!not-base64!!")]).await;
    assert_eq!(bad["ok"]["valid"], false, "{bad}");
    let message = bad["ok"]["message"].as_str().unwrap();
    assert!(message.contains("`signing_secret`") && message.contains("whsec_<base64>"), "{message}");
    assert!(!message.contains("not-base64"), "the value leaked: {message}");
    let none = check(&[]).await;
    assert_eq!(none["ok"]["valid"], false, "{none}");
}
