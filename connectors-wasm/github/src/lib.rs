//! Webhook endpoint for GitHub: verifies `X-Hub-Signature-256` and normalizes deliveries into
//! `github.*` events.
//!
//! Secret: `webhook_secret`, the secret configured on the GitHub webhook. The signature is
//! checked by the host (`credentials.verify-hmac-sha256`), so the secret never enters the guest;
//! without it every delivery is refused (fail closed).
//!
//! Events: `github.push`, `github.workflow_run.<action>`, `github.release.<action>`,
//! `github.ping`, and `github.<event>[.<action>]` with GitHub's payload unchanged for anything
//! else. The idempotency key is the `X-GitHub-Delivery` id. Both payload content types GitHub
//! offers (`application/json` and `application/x-www-form-urlencoded`) are understood.

mod normalize;
mod signature;

use patchbay_sdk::webhook_endpoint::{
    DeliveryReceipt, IncomingRequest, NormalizedEvent, OutboundEvent, Verification, WebhookEndpoint,
};
use patchbay_sdk::{ConnectorError, CredentialCheck, HealthReport, Lifecycle, debug, secrets};

/// Name of the secret holding the webhook secret.
const WEBHOOK_SECRET: &str = "webhook_secret";
const NOT_CONFIGURED: &str = "webhook secret not configured";

struct GitHub;

impl Lifecycle for GitHub {
    fn health_check() -> Result<HealthReport, ConnectorError> {
        Ok(if secrets::has(WEBHOOK_SECRET) { HealthReport::healthy() } else { HealthReport::degraded(NOT_CONFIGURED) })
    }

    fn validate_credentials() -> Result<CredentialCheck, ConnectorError> {
        Ok(if secrets::has(WEBHOOK_SECRET) {
            CredentialCheck::valid()
        } else {
            CredentialCheck::invalid(NOT_CONFIGURED)
        })
    }
}

impl WebhookEndpoint for GitHub {
    fn verify(req: IncomingRequest) -> Result<Verification, ConnectorError> {
        if !secrets::has(WEBHOOK_SECRET) {
            return Ok(Verification::invalid(NOT_CONFIGURED));
        }
        let Some(header) = req.header("x-hub-signature-256") else {
            return Ok(Verification::invalid("missing X-Hub-Signature-256 header"));
        };
        let signature = match signature::parse(header) {
            Ok(signature) => signature,
            Err(reason) => return Ok(Verification::invalid(reason)),
        };
        match secrets::verify_hmac_sha256(WEBHOOK_SECRET, &req.body, &signature) {
            Ok(true) => Ok(Verification::valid(delivery_id(&req))),
            Ok(false) => Ok(Verification::invalid("signature mismatch")),
            // Removed between the two calls: still refuse.
            Err(e) if e.code() == "missing_credential" => Ok(Verification::invalid(NOT_CONFIGURED)),
            Err(e) => Err(e),
        }
    }

    fn transform(req: IncomingRequest) -> Result<Vec<NormalizedEvent>, ConnectorError> {
        let event = req
            .header("x-github-event")
            .ok_or_else(|| ConnectorError::permanent("invalid_payload", "missing X-GitHub-Event header"))?;
        let body = payload_json(&req)?;
        let normalized = normalize::normalize(event, &body)?;
        debug!("normalized a GitHub delivery"; event = event, events = normalized.len());

        let delivery = delivery_id(&req);
        let several = normalized.len() > 1;
        Ok(normalized
            .into_iter()
            .enumerate()
            .map(|(n, e)| NormalizedEvent {
                event_type: e.event_type,
                subject: e.subject,
                payload: e.payload,
                idempotency_key: delivery.as_ref().map(|id| if several { format!("{id}:{n}") } else { id.clone() }),
                occurred_at: e.occurred_at,
            })
            .collect())
    }

    fn deliver(_event: OutboundEvent) -> Result<DeliveryReceipt, ConnectorError> {
        Err(ConnectorError::unsupported("deliver"))
    }
}

patchbay_sdk::manifest!("connector.toml");
patchbay_sdk::export_webhook_endpoint!(GitHub);

/// `X-GitHub-Delivery`, GitHub's unique id for the delivery (kept across redeliveries).
fn delivery_id(req: &IncomingRequest) -> Option<String> {
    req.header("x-github-delivery").map(str::trim).filter(|id| !id.is_empty()).map(str::to_owned)
}

/// The JSON document of the delivery: the body itself, or the `payload` field of a
/// form-encoded body.
fn payload_json(req: &IncomingRequest) -> Result<String, ConnectorError> {
    let invalid = |message: &str| ConnectorError::permanent("invalid_payload", message);
    let body = std::str::from_utf8(&req.body).map_err(|_| invalid("the body is not valid UTF-8"))?;
    let form_encoded =
        req.header("content-type").is_some_and(|ct| ct.trim().starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return Ok(body.to_owned());
    }
    body.split('&')
        .find_map(|pair| pair.strip_prefix("payload="))
        .ok_or_else(|| invalid("the form body has no payload field"))
        .and_then(|value| percent_decode(value).ok_or_else(|| invalid("the payload field is badly encoded")))
}

/// Decodes one `application/x-www-form-urlencoded` value (`+` is a space).
fn percent_decode(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut input = value.bytes();
    while let Some(b) = input.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [input.next()?, input.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                bytes.push(u8::from_str_radix(hex, 16).ok()?);
            }
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)], body: &str) -> IncomingRequest {
        IncomingRequest {
            method: "POST".into(),
            path: "/hooks/github".into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
            received_at: 0,
        }
    }

    #[test]
    fn json_and_form_payloads() {
        let json = request(&[("content-type", "application/json")], r#"{"zen":"x"}"#);
        assert_eq!(payload_json(&json).expect("json"), r#"{"zen":"x"}"#);

        let form =
            request(&[("content-type", "application/x-www-form-urlencoded")], "payload=%7B%22zen%22%3A%22a+b%22%7D");
        assert_eq!(payload_json(&form).expect("form"), r#"{"zen":"a b"}"#);

        let broken = request(&[("content-type", "application/x-www-form-urlencoded")], "payload=%7");
        assert_eq!(payload_json(&broken).expect_err("bad").code(), "invalid_payload");
    }

    #[test]
    fn delivery_header() {
        let req = request(&[("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")], "{}");
        assert_eq!(delivery_id(&req).as_deref(), Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"));
        assert_eq!(delivery_id(&request(&[], "{}")), None);
    }
}
