//! Test connector for host-owned OAuth 2.0 credentials.
//!
//! `send` posts `{"text": ...}` to `{base_url}/api/notify` and `health-check` reads
//! `{base_url}/api/me`, both with `authorization: Bearer {{secret:account}}`: the host fills in
//! the access token after the destination check, so the token never enters this component.
//! A 401 becomes `unauthorized` (the host refreshes and retries), 429 `rate-limited`.
//! The receipt's id lists which secret names the component can see, so tests can show that
//! the client secret and the refresh token are not among them.

use patchbay_sdk::http::Request;
use patchbay_sdk::notification_provider::{Notification, NotificationProvider, Receipt, StatusReport};
use patchbay_sdk::{ConnectorError, CredentialCheck, HealthReport, Lifecycle, config, secrets};

/// The credential of type `oauth2`: the access token.
const TOKEN: &str = "account";

/// Names a careless host might lend; the receipt says which ones this component sees.
const PROBED: &[&str] = &["account", "client_id", "client_secret", "refresh_token", "oauth:refresh_token"];

struct OAuthNotify;

fn base_url() -> Result<String, ConnectorError> {
    Ok(config::require_http_url("base_url")?.trim_end_matches('/').to_string())
}

impl Lifecycle for OAuthNotify {
    fn health_check() -> Result<HealthReport, ConnectorError> {
        if !secrets::has(TOKEN) {
            return Ok(HealthReport::degraded("not connected"));
        }
        let response = Request::get(format!("{}/api/me", base_url()?)).bearer(TOKEN).send()?;
        match response.status {
            200..=299 => Ok(HealthReport::healthy().with_message(response.text())),
            500..=599 => Ok(HealthReport::unhealthy(format!("the provider answered HTTP {}", response.status))),
            _ => Err(response.to_error()),
        }
    }

    fn validate_credentials() -> Result<CredentialCheck, ConnectorError> {
        let response = Request::get(format!("{}/api/me", base_url()?)).bearer(TOKEN).send()?;
        if response.is_success() {
            Ok(CredentialCheck::valid().with_account(response.text()))
        } else {
            Ok(CredentialCheck::invalid(format!("HTTP {}", response.status)))
        }
    }
}

impl NotificationProvider for OAuthNotify {
    fn send(notification: Notification) -> Result<Receipt, ConnectorError> {
        let body = serde_json::json!({ "text": notification.text });
        let response = Request::post(format!("{}/api/notify", base_url()?)).bearer(TOKEN).json(&body)?.send()?;
        if !response.is_success() {
            return Err(response.to_error());
        }
        let seen: Vec<&str> = PROBED.iter().copied().filter(|n| secrets::has(n)).collect();
        Ok(Receipt { id: Some(format!("sees:{}", seen.join(","))), accepted: vec![response.text()], rejected: vec![] })
    }

    fn get_status(_message_id: String) -> Result<StatusReport, ConnectorError> {
        Err(ConnectorError::unsupported("get-status"))
    }
}

patchbay_sdk::manifest!("connector.toml");
patchbay_sdk::export_notification_provider!(OAuthNotify);
