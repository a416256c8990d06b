//! GitHub webhook payloads to normalized `github.*` events.
//!
//! Field names follow GitHub's "Webhook events and payloads" documentation. `push`,
//! `workflow_run`, `release` and `ping` get a compact payload with the fields routing rules and
//! sinks usually need; any other event passes GitHub's payload through unchanged.

use patchbay_sdk::ConnectorError;
use patchbay_sdk::time::rfc3339_to_ms;
use serde_json::{Value, json};

/// One event before the delivery id is attached.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub event_type: String,
    pub subject: Option<String>,
    pub payload: String,
    pub occurred_at: Option<u64>,
}

/// Normalizes the JSON `body` of a delivery whose `X-GitHub-Event` is `event`.
pub fn normalize(event: &str, body: &str) -> Result<Vec<Normalized>, ConnectorError> {
    let root: Value = serde_json::from_str(body)
        .map_err(|e| ConnectorError::permanent("invalid_payload", format!("the body is not valid JSON: {e}")))?;
    if !root.is_object() {
        return Err(ConnectorError::permanent("invalid_payload", "the body is not a JSON object"));
    }
    let event = segment(event);
    let action = root["action"].as_str().map(segment);
    let repository = root["repository"]["full_name"].as_str().map(str::to_owned);

    let (event_type, payload, occurred_at) = match event.as_str() {
        "push" => ("github.push".to_owned(), push(&root), push_time(&root)),
        "workflow_run" => {
            let run = &root["workflow_run"];
            (
                with_action("github.workflow_run", action.as_deref()),
                workflow_run(&root),
                time_field(&run["updated_at"]).or_else(|| time_field(&run["created_at"])),
            )
        }
        "release" => {
            let release = &root["release"];
            (
                with_action("github.release", action.as_deref()),
                release_payload(&root),
                time_field(&release["published_at"]).or_else(|| time_field(&release["created_at"])),
            )
        }
        "ping" => (
            "github.ping".to_owned(),
            json!({ "zen": root["zen"], "hook_id": root["hook_id"], "repository": repository }),
            None,
        ),
        other => {
            let event_type = with_action(&format!("github.{other}"), action.as_deref());
            // Pass GitHub's document through byte for byte.
            return Ok(vec![Normalized {
                event_type,
                subject: repository,
                payload: body.to_owned(),
                occurred_at: None,
            }]);
        }
    };
    Ok(vec![Normalized { event_type, subject: repository, payload: payload.to_string(), occurred_at }])
}

fn push(root: &Value) -> Value {
    let head = &root["head_commit"];
    let head_commit = if head.is_object() {
        json!({
            "id": head["id"],
            "message": head["message"],
            "url": head["url"],
            "author": head["author"],
        })
    } else {
        // Branch deletions have no head commit.
        Value::Null
    };
    json!({
        "repository": root["repository"]["full_name"],
        "ref": root["ref"],
        "before": root["before"],
        "after": root["after"],
        "created": root["created"],
        "deleted": root["deleted"],
        "forced": root["forced"],
        "commit_count": root["commits"].as_array().map_or(0, Vec::len),
        "head_commit": head_commit,
        "pusher": root["pusher"],
        "compare": root["compare"],
        "sender": root["sender"]["login"],
    })
}

/// A push's time: `repository.pushed_at` (Unix seconds in push payloads), else the head
/// commit's timestamp.
fn push_time(root: &Value) -> Option<u64> {
    root["repository"]["pushed_at"]
        .as_u64()
        .and_then(|secs| secs.checked_mul(1000))
        .or_else(|| time_field(&root["head_commit"]["timestamp"]))
}

fn workflow_run(root: &Value) -> Value {
    let run = &root["workflow_run"];
    json!({
        "id": run["id"],
        "name": run["name"],
        "status": run["status"],
        "conclusion": run["conclusion"],
        "head_branch": run["head_branch"],
        "head_sha": run["head_sha"],
        "run_number": run["run_number"],
        "html_url": run["html_url"],
        "repository": root["repository"]["full_name"],
    })
}

fn release_payload(root: &Value) -> Value {
    let release = &root["release"];
    json!({
        "tag_name": release["tag_name"],
        "name": release["name"],
        "draft": release["draft"],
        "prerelease": release["prerelease"],
        "html_url": release["html_url"],
        "author": release["author"]["login"],
        "repository": root["repository"]["full_name"],
    })
}

fn time_field(value: &Value) -> Option<u64> {
    value.as_str().and_then(rfc3339_to_ms)
}

fn with_action(base: &str, action: Option<&str>) -> String {
    match action {
        Some(action) if !action.is_empty() => format!("{base}.{action}"),
        _ => base.to_owned(),
    }
}

/// A dotted-type segment: lower-case ASCII letters, digits and `_`; anything else becomes `_`.
fn segment(raw: &str) -> String {
    raw.trim()
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(event: &str, body: &Value) -> (Normalized, Value) {
        let mut events = normalize(event, &body.to_string()).expect("normalizes");
        assert_eq!(events.len(), 1);
        let event = events.remove(0);
        let payload = serde_json::from_str(&event.payload).expect("payload is JSON");
        (event, payload)
    }

    #[test]
    fn push_event() {
        let body = json!({
            "ref": "refs/heads/main",
            "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "after": "0000000000000000000000000000000000000001",
            "created": false, "deleted": false, "forced": true,
            "compare": "https://github.com/octo-org/octo-repo/compare/6113728f27ae...000000000001",
            "commits": [{"id": "a"}, {"id": "b"}],
            "head_commit": {
                "id": "0000000000000000000000000000000000000001",
                "message": "Fix all the bugs",
                "timestamp": "2024-02-29T04:34:56-08:00",
                "url": "https://github.com/octo-org/octo-repo/commit/0000000000000000000000000000000000000001",
                "author": {"name": "Mona", "email": "mona@example.com", "username": "octocat"},
            },
            "repository": {"full_name": "octo-org/octo-repo", "pushed_at": 1_709_210_096},
            "pusher": {"name": "octocat", "email": "mona@example.com"},
            "sender": {"login": "octocat"},
        });
        let (event, payload) = one("push", &body);
        assert_eq!(event.event_type, "github.push");
        assert_eq!(event.subject.as_deref(), Some("octo-org/octo-repo"));
        assert_eq!(event.occurred_at, Some(1_709_210_096_000));
        assert_eq!(payload["commit_count"], 2);
        assert_eq!(payload["forced"], true);
        assert_eq!(payload["head_commit"]["message"], "Fix all the bugs");
        assert_eq!(payload["head_commit"]["author"]["username"], "octocat");
        assert_eq!(payload["pusher"]["name"], "octocat");
        assert_eq!(payload["ref"], "refs/heads/main");
    }

    #[test]
    fn workflow_run_event() {
        let body = json!({
            "action": "completed",
            "workflow_run": {
                "id": 30433642, "name": "Build", "status": "completed", "conclusion": "success",
                "head_branch": "main", "head_sha": "acb5820ced9479c074f688cc328bf03f341a511d",
                "run_number": 562, "html_url": "https://github.com/octo-org/octo-repo/actions/runs/30433642",
                "created_at": "2024-02-29T12:00:00Z", "updated_at": "2024-02-29T12:34:56Z",
            },
            "repository": {"full_name": "octo-org/octo-repo"},
        });
        let (event, payload) = one("workflow_run", &body);
        assert_eq!(event.event_type, "github.workflow_run.completed");
        assert_eq!(event.occurred_at, Some(1_709_210_096_000));
        assert_eq!(payload["conclusion"], "success");
        assert_eq!(payload["run_number"], 562);
        assert_eq!(payload["repository"], "octo-org/octo-repo");
    }

    #[test]
    fn release_event() {
        let body = json!({
            "action": "published",
            "release": {
                "tag_name": "v1.0.0", "name": "One", "draft": false, "prerelease": false,
                "html_url": "https://github.com/octo-org/octo-repo/releases/v1.0.0",
                "author": {"login": "octocat"}, "published_at": "2024-02-29T12:34:56Z",
            },
            "repository": {"full_name": "octo-org/octo-repo"},
        });
        let (event, payload) = one("release", &body);
        assert_eq!(event.event_type, "github.release.published");
        assert_eq!(payload["tag_name"], "v1.0.0");
        assert_eq!(payload["author"], "octocat");
    }

    #[test]
    fn ping_and_unknown_events() {
        let (event, payload) = one("ping", &json!({"zen": "Keep it logically awesome.", "hook_id": 42}));
        assert_eq!(event.event_type, "github.ping");
        assert_eq!(payload["hook_id"], 42);

        let raw = r#"{"action":"opened","number":7,"repository":{"full_name":"o/r"}}"#;
        let events = normalize("pull_request", raw).expect("normalizes");
        assert_eq!(events[0].event_type, "github.pull_request.opened");
        assert_eq!(events[0].payload, raw);

        let events = normalize("Weird Event!", "{}").expect("normalizes");
        assert_eq!(events[0].event_type, "github.weird_event_");
    }

    #[test]
    fn malformed_json_is_permanent() {
        for body in ["{not json", "[1,2]", ""] {
            let err = normalize("push", body).expect_err("rejected");
            assert!(matches!(err, ConnectorError::Permanent(_)));
            assert_eq!(err.code(), "invalid_payload");
        }
    }
}
