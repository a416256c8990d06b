//! The reference connectors: `github` (webhook-endpoint) and `notify-webhook` (notification-provider).

use patchbay_runtime::calls::invoke_json;
use patchbay_tests::components;
use serde_json::{Value, json};

use crate::harness::{Host, TestServer, installation};

/// The GitHub vector from `shared/vectors/webhooks.json`.
const GH_SECRET: &str = "It's a Secret to Everybody";
const GH_BODY: &str = "Hello, World!";
const GH_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

pub(crate) fn incoming(headers: &[(&str, &str)], body: &str) -> Value {
    json!({"req": {
        "method": "POST",
        "path": "/hooks/x",
        "headers": headers.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
        "body": body.as_bytes(),
        "received-at": 0,
    }})
}

async fn verify(host: &Host, secret: Option<&str>, headers: &[(&str, &str)], body: &str) -> Value {
    let c = host.load(components::GITHUB);
    let mut b = installation("gh");
    if let Some(s) = secret {
        b = b.secret("webhook_secret", s);
    }
    let inst = b.build();
    invoke_json(&host.runtime, &c, &inst, "webhooks.verify", incoming(headers, body)).await.unwrap().outcome.unwrap()
}

#[tokio::test]
async fn github_passes_the_published_vector() {
    let host = Host::new(&[]);
    let out =
        verify(&host, Some(GH_SECRET), &[("x-hub-signature-256", GH_SIG), ("x-github-delivery", "d-1")], GH_BODY).await;
    assert_eq!(out, json!({"ok": {"valid": "d-1"}}), "{out}");
}

#[tokio::test]
async fn github_rejects_bad_missing_and_unconfigured_signatures() {
    let host = Host::new(&[]);
    let tampered = verify(&host, Some(GH_SECRET), &[("x-hub-signature-256", GH_SIG)], "Hello, World?").await;
    assert!(tampered["ok"]["invalid"].is_string(), "{tampered}");
    let missing = verify(&host, Some(GH_SECRET), &[], GH_BODY).await;
    assert!(missing["ok"]["invalid"].is_string(), "{missing}");
    let garbage = verify(&host, Some(GH_SECRET), &[("x-hub-signature-256", "sha256=zz")], GH_BODY).await;
    assert!(garbage["ok"]["invalid"].is_string(), "{garbage}");
    // Fail closed without a secret.
    let unconfigured = verify(&host, None, &[("x-hub-signature-256", GH_SIG)], GH_BODY).await;
    assert!(unconfigured["ok"]["invalid"].as_str().unwrap().contains("secret"), "{unconfigured}");
}

async fn transform(
    host: &Host,
    c: &patchbay_runtime::LoadedComponent,
    inst: &patchbay_runtime::Installation,
    headers: &[(&str, &str)],
    body: &str,
) -> Value {
    invoke_json(&host.runtime, c, inst, "webhooks.transform", incoming(headers, body)).await.unwrap().outcome.unwrap()
}

#[tokio::test]
async fn github_transforms_push_workflow_run_and_release() {
    let host = Host::new(&[]);
    let c = host.load(components::GITHUB);
    let inst = installation("gh").secret("webhook_secret", "s3cr3t-value").build();
    let push = json!({
        "ref": "refs/heads/main", "before": "a1", "after": "b2", "created": false, "deleted": false, "forced": false,
        "compare": "https://github.com/o/r/compare/a1...b2",
        "repository": {"id": 1, "full_name": "octo/repo", "html_url": "https://github.com/octo/repo"},
        "pusher": {"name": "octocat", "email": "o@example.com"},
        "commits": [{"id": "b2", "message": "fix"}, {"id": "b1", "message": "feat"}],
        "head_commit": {"id": "b2", "message": "fix", "url": "https://github.com/o/r/commit/b2", "author": {"name": "Octo"}}
    })
    .to_string();
    let out = transform(&host, &c, &inst, &[("x-github-event", "push"), ("x-github-delivery", "del-1")], &push).await;
    let events = out["ok"].as_array().unwrap_or_else(|| panic!("{out}"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event-type"], "github.push");
    assert_eq!(events[0]["subject"], "octo/repo");
    assert_eq!(events[0]["idempotency-key"], "del-1");
    let payload: Value = serde_json::from_str(events[0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["ref"], "refs/heads/main");
    assert_eq!(payload["after"], "b2");

    let run = json!({
        "action": "completed",
        "workflow_run": {"id": 42, "name": "CI", "status": "completed", "conclusion": "success", "head_branch": "main",
                          "head_sha": "b2", "run_number": 7, "html_url": "https://github.com/o/r/actions/runs/42"},
        "repository": {"full_name": "octo/repo"}
    })
    .to_string();
    let out =
        transform(&host, &c, &inst, &[("x-github-event", "workflow_run"), ("x-github-delivery", "del-2")], &run).await;
    assert_eq!(out["ok"][0]["event-type"], "github.workflow_run.completed", "{out}");
    let payload: Value = serde_json::from_str(out["ok"][0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["conclusion"], "success");

    let rel = json!({
        "action": "published",
        "release": {"tag_name": "v1.0.0", "name": "One", "draft": false, "prerelease": false,
                     "html_url": "https://github.com/o/r/releases/v1.0.0", "author": {"login": "octocat"}},
        "repository": {"full_name": "octo/repo"}
    })
    .to_string();
    let out = transform(&host, &c, &inst, &[("x-github-event", "release"), ("x-github-delivery", "del-3")], &rel).await;
    assert_eq!(out["ok"][0]["event-type"], "github.release.published", "{out}");

    let bad = transform(&host, &c, &inst, &[("x-github-event", "push")], "{not json").await;
    assert!(bad["err"]["permanent"].is_object(), "{bad}");
}

fn notification(subject: &str, text: &str) -> Value {
    json!({"notification": {
        "to": [{"address": "#deploys", "name": null}], "cc": [], "bcc": [], "from": null, "reply_to": null,
        "subject": subject, "text": text, "html": null, "template_id": null, "template_data": null,
        "attachments": [], "categories": [], "send_at": null, "metadata": [], "idempotency_key": "k-1"
    }})
}

#[tokio::test]
async fn notify_webhook_posts_slack_style_json_with_injected_token() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let c = host.load(components::NOTIFY_WEBHOOK);
    let inst = installation("notify")
        .config("webhook_url", &server.url("/slack"))
        .secret("token", "xoxb-super-secret-token")
        .allow("{{config.webhook_url}}")
        .build();
    let r = invoke_json(&host.runtime, &c, &inst, "notifications.send", notification("Deploy", "v1.2 is live"))
        .await
        .unwrap();
    let out = r.outcome.unwrap();
    assert!(out["ok"].is_object(), "{out}");
    let got = server.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, "/slack");
    assert_eq!(got[0].header("authorization").as_deref(), Some("Bearer xoxb-super-secret-token"));
    assert!(got[0].header("content-type").unwrap().starts_with("application/json"));
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    let text = body["text"].as_str().unwrap();
    assert!(text.contains("Deploy") && text.contains("v1.2 is live"), "{body}");
    // The request is in the operation log; the token is not.
    let log = host.log_text(&inst);
    assert!(log.contains("POST 127.0.0.1"), "{log}");
    assert!(!log.contains("xoxb-super-secret-token"));
}

#[tokio::test]
async fn notify_webhook_maps_provider_errors() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let c = host.load(components::NOTIFY_WEBHOOK);
    for (path, kind) in [("/status/429", "rate-limited"), ("/status/404", "permanent"), ("/status/503", "retryable")] {
        let inst =
            installation("notify").config("webhook_url", &server.url(path)).allow("{{config.webhook_url}}").build();
        let out = invoke_json(&host.runtime, &c, &inst, "notifications.send", notification("s", "t"))
            .await
            .unwrap()
            .outcome
            .unwrap();
        assert!(out["err"][kind].is_object(), "{path}: {out}");
        if kind == "rate-limited" {
            assert_eq!(out["err"][kind]["retry-after-ms"], 7000, "{out}");
        }
    }
}

#[tokio::test]
async fn notify_webhook_cannot_reach_an_undeclared_destination() {
    let server = TestServer::start().await;
    let host = Host::new(&["127.0.0.1/32"]);
    let c = host.load(components::NOTIFY_WEBHOOK);
    // The manifest pattern is filled from config; with no allowed hosts nothing is reachable.
    let inst = installation("notify").config("webhook_url", &server.url("/slack")).build();
    let out = invoke_json(&host.runtime, &c, &inst, "notifications.send", notification("s", "t"))
        .await
        .unwrap()
        .outcome
        .unwrap();
    assert!(out["err"].is_object(), "{out}");
    assert!(server.received().is_empty());
}
