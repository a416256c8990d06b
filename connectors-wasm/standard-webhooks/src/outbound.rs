//! Outbound deliveries: the Standard Webhooks body and signed content of an event, and what the
//! subscriber's answer means.
//!
//! The HMAC itself is computed by the host (`credentials.hmac-sha256-with`, key encoding
//! `standard-webhooks`), so the signing secret never enters the guest; this module only builds
//! the bytes that are signed and sent.
//!
//! Answers follow the spec's "Delivery success and failure": 2xx is delivered; 410 Gone means the
//! subscriber wants no more webhooks (permanent, code `gone`); 429 is rate-limited, honouring
//! `Retry-After`; 408 and 5xx are retryable; redirects are not followed and, like every other
//! 4xx, are permanent with a message naming the status.

use patchbay_sdk::webhook_endpoint::{DeliveryReceipt, OutboundEvent};
use patchbay_sdk::{ConnectorError, Fields};
use serde::Serialize;
use serde_json::value::RawValue;

/// Longest accepted event id; the spec's ids (`msg_` + 27 characters) are far shorter.
const MAX_ID_LEN: usize = 256;

/// Response headers copied into the receipt: request ids that let a subscriber find the delivery
/// in its own logs.
pub const RECEIPT_HEADERS: &[&str] = &["request-id", "x-request-id", "x-correlation-id", "x-amzn-requestid", "cf-ray"];

/// The body of a Standard Webhooks message, in the spec's field order.
#[derive(Serialize)]
struct Message<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    timestamp: &'a str,
    data: &'a RawValue,
}

/// The JSON body for `event`: `{"type": …, "timestamp": <RFC 3339 of the event time>, "data":
/// <payload>}`, with the payload copied byte for byte. A payload that is not JSON, an empty
/// event type or an unwritable timestamp is a permanent `invalid_input` error.
pub fn body(event: &OutboundEvent) -> Result<Vec<u8>, ConnectorError> {
    if event.event_type.trim().is_empty() {
        return Err(ConnectorError::invalid_input("the event type is empty"));
    }
    let data: &RawValue = serde_json::from_str(&event.payload)
        .map_err(|e| ConnectorError::invalid_input(format!("the event payload is not JSON: {e}")))?;
    let timestamp = patchbay_sdk::time::ms_to_rfc3339(event.timestamp).ok_or_else(|| {
        ConnectorError::invalid_input(format!("the event timestamp {} ms is after the year 9999", event.timestamp))
    })?;
    serde_json::to_vec(&Message { event_type: &event.event_type, timestamp: &timestamp, data })
        .map_err(|e| ConnectorError::permanent("invalid_input", format!("cannot encode the webhook body: {e}")))
}

/// Checks that `id` can be a `webhook-id`: non-empty, at most [`MAX_ID_LEN`] visible ASCII
/// characters, and no `.` (the spec forbids it, since `.` delimits the signed content).
pub fn check_id(id: &str) -> Result<(), ConnectorError> {
    let fine = !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic() && b != b'.');
    if fine {
        Ok(())
    } else {
        Err(ConnectorError::invalid_input(format!(
            "the event id must be 1 to {MAX_ID_LEN} visible ASCII characters without `.` to be a webhook-id"
        )))
    }
}

/// The signed content: `{id}.{timestamp}.{body}`.
pub fn signed_content(id: &str, timestamp: u64, body: &[u8]) -> Vec<u8> {
    let prefix = format!("{id}.{timestamp}.");
    let mut content = Vec::with_capacity(prefix.len() + body.len());
    content.extend_from_slice(prefix.as_bytes());
    content.extend_from_slice(body);
    content
}

/// The `webhook-signature` value for an HMAC tag: `v1,<base64>`.
pub fn signature_header(tag: &[u8]) -> String {
    format!("v1,{}", crate::base64::encode(tag))
}

/// What the subscriber's answer means (see the module documentation).
pub fn outcome(status: u16, headers: &Fields, body: &[u8]) -> Result<DeliveryReceipt, ConnectorError> {
    match status {
        200..=299 => {
            let headers = headers
                .iter()
                .filter(|(name, _)| RECEIPT_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)))
                .map(|(name, value)| (name.to_ascii_lowercase(), value.clone()))
                .collect();
            Ok(DeliveryReceipt { status, headers })
        }
        410 => Err(ConnectorError::permanent(
            "gone",
            "the subscriber answered HTTP 410 Gone: it no longer accepts these webhooks; disable the endpoint",
        )),
        // Rate-limited with Retry-After (429), retryable (408, 5xx), with the subscriber's message.
        408 | 429 | 500..=599 => {
            let mut e = ConnectorError::from_status(status, headers, body);
            match &mut e {
                ConnectorError::RateLimited(r) => r.message = subscriber_said(&r.message, "answered"),
                ConnectorError::Retryable(f) | ConnectorError::Permanent(f) | ConnectorError::Unauthorized(f) => {
                    f.message = subscriber_said(&f.message, "answered")
                }
            }
            Err(e)
        }
        300..=399 => {
            let location = patchbay_sdk::http::header(headers, "location").map(str::trim).unwrap_or("");
            let to = if location.is_empty() { String::new() } else { format!(" to {location}") };
            Err(ConnectorError::permanent(
                format!("http_{status}"),
                format!(
                    "the subscriber answered HTTP {status} (redirect{to}); redirects are not followed, update the URL"
                ),
            ))
        }
        _ => {
            // `from_status` would make a 401 `unauthorized`, but a subscriber refusing the
            // webhook is not a credential the host can refresh: every other status is permanent.
            let detail = ConnectorError::from_status(status, headers, body);
            Err(ConnectorError::permanent(
                format!("http_{status}"),
                subscriber_said(detail.message(), "refused the webhook with"),
            ))
        }
    }
}

/// A message of [`ConnectorError::from_status`] ("provider answered HTTP 503: …") told from the
/// subscriber's side ("the subscriber answered HTTP 503: …").
fn subscriber_said(message: &str, verb: &str) -> String {
    message.replacen("provider answered", &format!("the subscriber {verb}"), 1)
}

/// Builds an outbound event, for tests.
#[cfg(test)]
pub fn event(id: &str, event_type: &str, payload: &str, timestamp: u64) -> OutboundEvent {
    OutboundEvent {
        id: id.into(),
        event_type: event_type.into(),
        payload: payload.into(),
        timestamp,
        attempt: 1,
        idempotency_key: format!("key-{id}"),
    }
}

#[cfg(test)]
mod tests {
    use patchbay_sdk::types::RateLimit;

    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn body_follows_the_spec_and_keeps_the_payload_bytes() {
        let payload = "{\"z\": 1, \"a\": [true, null], \"text\": \"h\\u00e9llo \u{1F680}\"}";
        let e = event("msg_1", "invoice.paid", payload, 1_667_507_170_344);
        let body = String::from_utf8(body(&e).expect("body")).expect("utf-8");
        assert_eq!(
            body,
            format!("{{\"type\":\"invoice.paid\",\"timestamp\":\"2022-11-03T20:26:10.344Z\",\"data\":{payload}}}")
        );
        let parsed: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(parsed["data"]["text"], "héllo 🚀");
    }

    #[test]
    fn body_refuses_what_it_cannot_send() {
        assert_eq!(body(&event("m", "a.b", "{not json", 0)).expect_err("payload").code(), "invalid_input");
        assert_eq!(body(&event("m", " ", "{}", 0)).expect_err("type").code(), "invalid_input");
        assert_eq!(body(&event("m", "a.b", "{}", u64::MAX)).expect_err("time").code(), "invalid_input");
    }

    #[test]
    fn ids_must_be_header_safe_and_dot_free() {
        assert!(check_id("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W").is_ok());
        assert!(check_id("evt_0a1b2c3d").is_ok());
        for bad in ["", "msg.1", "a b", "a\nb", "é", &"x".repeat(257)] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn signed_content_and_header_match_the_published_vector() {
        let content = signed_content(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(
            content,
            br#"msg_27UH4WbU6Z5A5EzD8u03UvzRbpk.1649367553.{"email":"test@example.com","username":"test_user"}"#
        );
        let tag = crate::base64::decode("tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=").expect("tag");
        assert_eq!(signature_header(&tag), "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn success_keeps_request_ids_only() {
        let receipt = outcome(202, &fields(&[("X-Request-Id", "r-1"), ("set-cookie", "s=1"), ("cf-ray", "c-2")]), b"")
            .expect("delivered");
        assert_eq!(receipt.status, 202);
        assert_eq!(receipt.headers, fields(&[("x-request-id", "r-1"), ("cf-ray", "c-2")]));
    }

    #[test]
    fn answers_map_to_error_kinds() {
        let gone = outcome(410, &fields(&[]), b"bye").expect_err("410");
        assert!(matches!(gone, ConnectorError::Permanent(_)));
        assert_eq!(gone.code(), "gone");

        let limited = outcome(429, &fields(&[("retry-after", "120")]), b"").expect_err("429");
        assert!(matches!(limited, ConnectorError::RateLimited(RateLimit { retry_after_ms: 120_000, .. })));

        assert_eq!(limited.message(), "the subscriber answered HTTP 429");
        for status in [408, 500, 502, 503, 504] {
            let e = outcome(status, &fields(&[]), b"busy").expect_err("retryable");
            assert!(matches!(e, ConnectorError::Retryable(_)), "{status}");
            assert_eq!(e.message(), format!("the subscriber answered HTTP {status}: busy"));
        }
        for status in [400, 401, 403, 404, 413, 422] {
            let e = outcome(status, &fields(&[]), br#"{"message":"bad signature"}"#).expect_err("permanent");
            assert!(matches!(e, ConnectorError::Permanent(_)), "{status}");
            assert_eq!(e.code(), format!("http_{status}"));
            assert_eq!(e.message(), format!("the subscriber refused the webhook with HTTP {status}: bad signature"));
        }
        let moved = outcome(301, &fields(&[("location", "https://new.example/hook")]), b"").expect_err("3xx");
        assert!(matches!(moved, ConnectorError::Permanent(_)));
        assert!(moved.message().contains("301") && moved.message().contains("https://new.example/hook"));
    }
}
