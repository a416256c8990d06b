//! Notification provider that posts to Slack/Mattermost-style incoming webhooks.
//!
//! Configuration: `webhook_url` (required, the incoming-webhook URL), optional `username`,
//! `icon_emoji` and `channel` overrides. Secret: optional `token`, sent as
//! `authorization: Bearer {{secret:token}}` for webhook proxies that require it.
//!
//! Responses follow Slack's incoming-webhook documentation: `200 ok` is delivery; `400
//! invalid_payload`/`no_text`, `403 action_prohibited`, `404 no_service`/`channel_not_found` and
//! `410 channel_is_archived` are permanent (the code is passed on); 429 is rate-limited with
//! `Retry-After`; 5xx is retryable. Incoming webhooks have no idempotency keys, so a retried
//! delivery may post twice.

mod message;

use message::Overrides;
use patchbay_sdk::http::{Request, Response};
use patchbay_sdk::notification_provider::{Notification, NotificationProvider, Receipt, StatusReport};
use patchbay_sdk::{ConnectorError, CredentialCheck, HealthReport, Lifecycle, config, debug, secrets, warn};

/// Configuration key of the webhook URL.
const WEBHOOK_URL: &str = "webhook_url";
/// Optional secret sent as a bearer token.
const TOKEN: &str = "token";

struct NotifyWebhook;

impl Lifecycle for NotifyWebhook {
    fn health_check() -> Result<HealthReport, ConnectorError> {
        Ok(match webhook_url() {
            Ok(_) => HealthReport::healthy(),
            Err(e) => HealthReport::unhealthy(e.message()),
        })
    }

    fn validate_credentials() -> Result<CredentialCheck, ConnectorError> {
        Ok(match webhook_url() {
            Ok(_) => CredentialCheck::valid().with_message("incoming webhooks cannot be validated without posting"),
            Err(e) => CredentialCheck::invalid(e.message()),
        })
    }
}

impl NotificationProvider for NotifyWebhook {
    fn send(notification: Notification) -> Result<Receipt, ConnectorError> {
        let url = webhook_url()?;
        if !notification.attachments.is_empty() {
            warn!("incoming webhooks cannot carry attachments; {} dropped", notification.attachments.len());
        }
        let overrides = Overrides {
            username: config::get("username"),
            icon_emoji: config::get("icon_emoji"),
            channel: config::get("channel"),
        };
        let body = message::build(&notification, overrides)?;

        let mut request = Request::post(url).json(&body)?;
        if secrets::has(TOKEN) {
            request = request.bearer(TOKEN);
        }
        let response = request.send()?;
        check(&response)?;
        debug!("webhook accepted the message"; status = response.status);

        let mut accepted: Vec<String> = [&notification.to, &notification.cc, &notification.bcc]
            .into_iter()
            .flatten()
            .map(|r| r.address.clone())
            .collect();
        if accepted.is_empty() {
            accepted.push("webhook".to_owned());
        }
        Ok(Receipt { id: None, accepted, rejected: vec![] })
    }

    fn get_status(_message_id: String) -> Result<StatusReport, ConnectorError> {
        Err(ConnectorError::unsupported("get-status"))
    }
}

patchbay_sdk::manifest!("connector.toml");
patchbay_sdk::export_notification_provider!(NotifyWebhook);

/// The configured webhook URL, checked to be an absolute `http(s)` URL.
fn webhook_url() -> Result<String, ConnectorError> {
    config::require_http_url(WEBHOOK_URL)
}

/// Maps the webhook's answer: 2xx is success; Slack's plain-text error codes on 400/403/404/410
/// are permanent with that code; everything else goes through the SDK's status mapping
/// (429 rate-limited, 401 unauthorized, 408/5xx retryable, other 4xx permanent).
fn check(response: &Response) -> Result<(), ConnectorError> {
    if response.is_success() {
        let body = response.text();
        if body.trim() != "ok" && !body.trim().is_empty() {
            debug!("unexpected success body"; status = response.status, body = body.trim());
        }
        return Ok(());
    }
    let body = response.text();
    let code = body.trim();
    match response.status {
        400 | 403 | 404 | 410 if is_slack_code(code) => Err(ConnectorError::permanent(
            code,
            format!("the webhook refused the message (HTTP {}: {code})", response.status),
        )),
        _ => Err(response.to_error()),
    }
}

/// Slack answers errors with a bare snake_case code such as `invalid_payload`.
fn is_slack_code(body: &str) -> bool {
    !body.is_empty()
        && body.len() <= 64
        && body.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str, headers: &[(&str, &str)]) -> Response {
        Response {
            status,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn slack_responses() {
        assert!(check(&response(200, "ok", &[])).is_ok());
        assert!(check(&response(204, "", &[])).is_ok());

        for (status, code) in [
            (400, "invalid_payload"),
            (400, "no_text"),
            (403, "action_prohibited"),
            (404, "no_service"),
            (410, "channel_is_archived"),
        ] {
            let err = check(&response(status, code, &[])).expect_err("error");
            assert!(matches!(err, ConnectorError::Permanent(_)), "{status}");
            assert_eq!(err.code(), code);
        }

        let limited = check(&response(429, "rate_limited", &[("retry-after", "30")])).expect_err("error");
        assert_eq!(limited, ConnectorError::rate_limited(30_000, limited.message()));

        let unavailable = check(&response(503, "<html>busy</html>", &[])).expect_err("error");
        assert!(matches!(unavailable, ConnectorError::Retryable(_)));

        let other = check(&response(404, "<html>Not Found</html>", &[])).expect_err("error");
        assert_eq!(other.code(), "http_404");
    }
}
