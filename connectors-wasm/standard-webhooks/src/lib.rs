//! Webhook endpoint for [Standard Webhooks](https://www.standardwebhooks.com/): delivers events to
//! a subscriber as signed webhooks, and verifies and normalizes Standard Webhooks it receives.
//!
//! Configuration: `url`, the subscriber's endpoint (allowed as `{{config.url}}`). Secrets, both
//! `whsec_<base64>`: `signing_secret` signs deliveries, `webhook_secret` verifies inbound
//! requests. Neither ever enters the guest: the host computes and checks the HMACs
//! (`credentials.hmac-sha256-with` / `verify-hmac-sha256-with`, key encoding
//! `standard-webhooks`).
//!
//! - `deliver` POSTs `{"type", "timestamp", "data"}` with `webhook-id` (the event id, the same on
//!   every attempt), `webhook-timestamp` (this attempt), `webhook-signature: v1,<base64>` over
//!   `{id}.{timestamp}.{body}`, and the event's `idempotency-key`; see [`outbound`] for how the
//!   answer is read.
//! - `verify` checks the `webhook-*` headers against `webhook_secret` (±300 s, several
//!   signatures for rotation; see [`inbound`]). The manifest also declares the
//!   `standard-webhooks` scheme, so a host that verifies inbound requests itself does the same
//!   check before the connector runs.
//! - `transform` turns the body into one event: `type` → event type, `data` → payload,
//!   `timestamp` → occurred-at, `webhook-id` → idempotency key.

mod base64;
mod inbound;
mod outbound;

use patchbay_sdk::http::Request;
use patchbay_sdk::secrets::{self, KeyEncoding};
use patchbay_sdk::webhook_endpoint::{
    DeliveryReceipt, IncomingRequest, NormalizedEvent, OutboundEvent, Verification, WebhookEndpoint,
};
use patchbay_sdk::{ConnectorError, CredentialCheck, HealthReport, Lifecycle, config, debug, time};

/// Configuration key of the subscriber URL.
const URL: &str = "url";
/// Secret signing outbound deliveries.
const SIGNING_SECRET: &str = "signing_secret";
/// Secret verifying inbound requests.
const WEBHOOK_SECRET: &str = "webhook_secret";
/// Request timeout for deliveries; the spec recommends 15 to 30 s.
const DELIVERY_TIMEOUT_MS: u32 = 15_000;

struct StandardWebhooks;

impl Lifecycle for StandardWebhooks {
    fn health_check() -> Result<HealthReport, ConnectorError> {
        let url = config::get(URL);
        Ok(match (url, secrets::has(SIGNING_SECRET), secrets::has(WEBHOOK_SECRET)) {
            (Some(_), _, _) if subscriber_url().is_err() => {
                HealthReport::unhealthy(format!("`{URL}` must be an absolute http(s) URL"))
            }
            (Some(_), false, _) => {
                HealthReport::degraded(format!("`{SIGNING_SECRET}` is not set, so deliveries cannot be signed"))
            }
            (None, _, false) => HealthReport::degraded(format!(
                "neither `{URL}` (outbound deliveries) nor `{WEBHOOK_SECRET}` (inbound webhooks) is configured"
            )),
            _ => HealthReport::healthy(),
        })
    }

    /// Each secret that is set must be a usable `whsec_` key; the host checks it by keying an
    /// HMAC, so the value is never read here.
    fn validate_credentials() -> Result<CredentialCheck, ConnectorError> {
        let set: Vec<&str> = [SIGNING_SECRET, WEBHOOK_SECRET].into_iter().filter(|s| secrets::has(s)).collect();
        if set.is_empty() {
            return Ok(CredentialCheck::invalid(format!("neither `{SIGNING_SECRET}` nor `{WEBHOOK_SECRET}` is set")));
        }
        for name in &set {
            match secrets::hmac_sha256_with(name, KeyEncoding::StandardWebhooks, b"patchbay credential check") {
                Ok(_) => {}
                Err(e) if e.code() == "invalid_credential_request" => return Ok(CredentialCheck::invalid(e.message())),
                Err(e) => return Err(e),
            }
        }
        Ok(CredentialCheck::valid().with_message(format!("usable whsec_ secrets: {}", set.join(", "))))
    }
}

impl WebhookEndpoint for StandardWebhooks {
    fn verify(req: IncomingRequest) -> Result<Verification, ConnectorError> {
        if !secrets::has(WEBHOOK_SECRET) {
            return Ok(Verification::invalid("webhook secret not configured"));
        }
        // The host's arrival time is the clock; a caller that gives none gets the wall clock.
        let now_ms = if req.received_at > 0 { req.received_at } else { time::now_ms() };
        let verification = inbound::verify(&req, now_ms / 1000, |content, tag| {
            secrets::verify_hmac_sha256_with(WEBHOOK_SECRET, KeyEncoding::StandardWebhooks, content, tag)
        });
        match verification {
            // Removed between the two calls: still refuse.
            Err(e) if e.code() == "missing_credential" => Ok(Verification::invalid("webhook secret not configured")),
            other => other,
        }
    }

    fn transform(req: IncomingRequest) -> Result<Vec<NormalizedEvent>, ConnectorError> {
        let event = inbound::transform(&req)?;
        debug!("normalized a Standard Webhooks message"; event_type = event.event_type);
        Ok(vec![event])
    }

    fn deliver(event: OutboundEvent) -> Result<DeliveryReceipt, ConnectorError> {
        let url = subscriber_url()?;
        outbound::check_id(&event.id)?;
        let body = outbound::body(&event)?;
        let timestamp = time::now_ms() / 1000;
        let content = outbound::signed_content(&event.id, timestamp, &body);
        let tag = secrets::hmac_sha256_with(SIGNING_SECRET, KeyEncoding::StandardWebhooks, &content)?;

        let response = Request::post(url)
            .header("content-type", "application/json")
            .header("webhook-id", event.id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", outbound::signature_header(&tag))
            .header("idempotency-key", event.idempotency_key.as_str())
            .body(body)
            .timeout_ms(DELIVERY_TIMEOUT_MS)
            .send()?;
        debug!("subscriber answered"; status = response.status, attempt = event.attempt);
        outbound::outcome(response.status, &response.headers, &response.body)
    }
}

patchbay_sdk::manifest!("connector.toml");
patchbay_sdk::export_webhook_endpoint!(StandardWebhooks);

/// The configured subscriber URL, checked to be an absolute `http(s)` URL.
fn subscriber_url() -> Result<String, ConnectorError> {
    config::require_http_url(URL)
}
