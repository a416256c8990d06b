//! Inbound Standard Webhooks: checking the `webhook-*` headers of a request, and turning its
//! `{type, timestamp, data}` body into a normalized event.
//!
//! The HMAC comparison is the host's (`credentials.verify-hmac-sha256-with`, constant time, key
//! encoding `standard-webhooks`); [`verify`] takes it as a function so the rules around it can be
//! tested natively:
//!
//! - `webhook-id`, `webhook-timestamp` and `webhook-signature` are required; an id or timestamp
//!   sent several times with different values is ambiguous and refused.
//! - The timestamp (Unix seconds, digits only) must lie within ±[`TOLERANCE_SECS`] of the clock.
//! - `webhook-signature` is a space-separated list (several headers are joined): each `v1,<base64>`
//!   entry is tried until one matches, so senders can rotate secrets; other versions (`v1a,…`)
//!   are ignored, and at most [`MAX_SIGNATURES`] `v1` entries are tried.
//! - Every refusal says why, naming headers but never echoing their values.

use patchbay_sdk::ConnectorError;
use patchbay_sdk::webhook_endpoint::{IncomingRequest, NormalizedEvent, Verification};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// Replay window, seconds either way (the spec's libraries use five minutes).
pub const TOLERANCE_SECS: u64 = 300;
/// Most `v1` signatures tried per request; rotation needs two.
pub const MAX_SIGNATURES: usize = 8;
/// Longest accepted timestamp, in digits.
const MAX_TIMESTAMP_DIGITS: usize = 15;

const WEBHOOK_ID: &str = "webhook-id";
const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// Checks `req` against the clock (`now_secs`, Unix seconds) with `check(content, signature)`
/// answering whether `signature` is the HMAC of `content` under the secret. A valid request
/// returns its `webhook-id`; errors from `check` are passed on.
pub fn verify(
    req: &IncomingRequest,
    now_secs: u64,
    mut check: impl FnMut(&[u8], &[u8]) -> Result<bool, ConnectorError>,
) -> Result<Verification, ConnectorError> {
    let id = match single(req, WEBHOOK_ID) {
        Ok(id) => id,
        Err(reason) => return Ok(Verification::invalid(reason)),
    };
    let timestamp = match single(req, WEBHOOK_TIMESTAMP) {
        Ok(text) => text,
        Err(reason) => return Ok(Verification::invalid(reason)),
    };
    let signatures: Vec<&str> = values(req, WEBHOOK_SIGNATURE).flat_map(str::split_ascii_whitespace).collect();
    if signatures.is_empty() {
        return Ok(Verification::invalid(format!("missing {WEBHOOK_SIGNATURE} header")));
    }
    let Some(ts) = parse_timestamp(timestamp) else {
        return Ok(Verification::invalid(format!("{WEBHOOK_TIMESTAMP} is not a Unix timestamp in seconds")));
    };
    if ts.abs_diff(now_secs) > TOLERANCE_SECS {
        let skew = if ts <= now_secs {
            format!("signed {} s ago", now_secs - ts)
        } else {
            format!("signed {} s in the future", ts - now_secs)
        };
        return Ok(Verification::invalid(format!(
            "{WEBHOOK_TIMESTAMP} is outside the ±{TOLERANCE_SECS} s window ({skew})"
        )));
    }

    let mut well_formed = false;
    let mut candidates = Vec::new();
    for (version, encoded) in signatures.iter().filter_map(|entry| entry.split_once(',')) {
        well_formed = true;
        if version == "v1"
            && let Some(tag) = crate::base64::decode(encoded).filter(|t| !t.is_empty())
        {
            candidates.push(tag);
        }
    }
    if !well_formed {
        return Ok(Verification::invalid(format!("{WEBHOOK_SIGNATURE} holds no <version>,<signature> entries")));
    }
    let content = crate::outbound::signed_content(id, ts, &req.body);
    for tag in candidates.iter().take(MAX_SIGNATURES) {
        if check(&content, tag)? {
            return Ok(Verification::valid(Some(id.to_owned())));
        }
    }
    Ok(Verification::invalid("no signature matched"))
}

/// Every value of header `name` (names arrive lower-cased).
fn values<'r>(req: &'r IncomingRequest, name: &'r str) -> impl Iterator<Item = &'r str> {
    req.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
}

/// The one non-empty value of header `name`, or why there is none.
fn single<'r>(req: &'r IncomingRequest, name: &'r str) -> Result<&'r str, String> {
    let mut all = values(req, name);
    let first = all.next().ok_or_else(|| format!("missing {name} header"))?;
    if all.any(|other| other != first) {
        return Err(format!("{name} was sent several times with different values"));
    }
    if first.is_empty() {
        return Err(format!("{name} is empty"));
    }
    Ok(first)
}

/// Unix seconds written as plain decimal digits.
fn parse_timestamp(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > MAX_TIMESTAMP_DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A Standard Webhooks body. Unknown fields are other metadata and are allowed.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    event_type: Option<String>,
    #[serde(default, borrow, deserialize_with = "present")]
    timestamp: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    data: Option<&'a RawValue>,
}

/// `Some` for a field that is present, even as `null` (plain `Option` would read `null` as
/// absent, and `"data": null` is a payload).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// The normalized event of a Standard Webhooks body: `type` is the event type, `data` the
/// payload (the sender's bytes), `timestamp` (RFC 3339) the time it occurred, and the
/// `webhook-id` header the idempotency key. When the body has no `data`, the spec lets the data
/// sit at the top level: the payload is then the body without `type` and `timestamp`. Anything
/// else is a permanent `invalid_payload` error saying what is wrong.
pub fn transform(req: &IncomingRequest) -> Result<NormalizedEvent, ConnectorError> {
    let invalid = |message: String| ConnectorError::permanent("invalid_payload", message);
    let body = std::str::from_utf8(&req.body).map_err(|_| invalid("the body is not valid UTF-8".into()))?;
    let value: &RawValue =
        serde_json::from_str(body).map_err(|e| invalid(format!("the body is not valid JSON: {e}")))?;
    if !value.get().starts_with('{') {
        return Err(invalid("the body is not a JSON object".into()));
    }
    let envelope: Envelope<'_> =
        serde_json::from_str(body).map_err(|e| invalid(format!("the body is not a Standard Webhooks message: {e}")))?;
    let event_type = envelope
        .event_type
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| invalid("the body has no `type` (the event type, e.g. \"invoice.paid\")".into()))?;
    let occurred_at = match envelope.timestamp {
        None => None,
        Some(raw) => {
            let text: String =
                serde_json::from_str(raw.get()).map_err(|_| invalid("`timestamp` is not a string".into()))?;
            Some(patchbay_sdk::time::rfc3339_to_ms(&text).ok_or_else(|| {
                invalid("`timestamp` is not an RFC 3339 time such as 2022-11-03T20:26:10.344522Z".into())
            })?)
        }
    };
    let payload = match envelope.data {
        Some(data) => data.get().to_owned(),
        None => squashed_data(body).map_err(|e| invalid(format!("the body is not a JSON object: {e}")))?,
    };
    let webhook_id = single(req, WEBHOOK_ID).ok().map(str::to_owned);
    Ok(NormalizedEvent { event_type, subject: None, payload, idempotency_key: webhook_id, occurred_at })
}

/// The body's top-level fields other than `type` and `timestamp`, as a JSON object.
fn squashed_data(body: &str) -> Result<String, serde_json::Error> {
    let mut fields: serde_json::Map<String, serde_json::Value> = serde_json::from_str(body)?;
    fields.remove("type");
    fields.remove("timestamp");
    serde_json::to_string(&fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The published vector (tests/vectors/webhooks.json).
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: u64 = 1_649_367_553;
    const BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;
    const SIGNATURE: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    fn request(headers: &[(&str, &str)], body: &str) -> IncomingRequest {
        IncomingRequest {
            method: "POST".into(),
            path: "/hooks/sw".into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
            received_at: 0,
        }
    }

    fn signed(signature: &str) -> IncomingRequest {
        let ts = TS.to_string();
        request(&[("webhook-id", ID), ("webhook-timestamp", &ts), ("webhook-signature", signature)], BODY)
    }

    /// Stands in for the host: accepts exactly the published tag over exactly the signed content.
    fn host_check(content: &[u8], tag: &[u8]) -> Result<bool, ConnectorError> {
        let expected = crate::base64::decode(&SIGNATURE[3..]).expect("tag");
        Ok(content == format!("{ID}.{TS}.{BODY}").as_bytes() && tag == expected)
    }

    fn reason(v: Verification) -> String {
        match v {
            Verification::Invalid(reason) => reason,
            Verification::Valid(id) => panic!("unexpectedly valid ({id:?})"),
        }
    }

    #[test]
    fn accepts_the_published_vector_within_the_window() {
        for now in [TS, TS - 300, TS + 300] {
            let v = verify(&signed(SIGNATURE), now, host_check).expect("verified");
            assert_eq!(v, Verification::valid(Some(ID.into())), "{now}");
        }
    }

    #[test]
    fn tries_every_v1_signature_and_ignores_other_versions() {
        let rotated = format!("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v1a,c2lnbmF0dXJl {SIGNATURE}");
        assert!(matches!(verify(&signed(&rotated), TS, host_check), Ok(Verification::Valid(_))));
        // Two header lines count as one list.
        let ts = TS.to_string();
        let two = request(
            &[
                ("webhook-id", ID),
                ("webhook-timestamp", &ts),
                ("webhook-signature", "v1,AAAA"),
                ("webhook-signature", SIGNATURE),
            ],
            BODY,
        );
        assert!(matches!(verify(&two, TS, host_check), Ok(Verification::Valid(_))));
        // Only the first MAX_SIGNATURES v1 entries are tried.
        let many = format!("{} {SIGNATURE}", ["v1,AAAA"; MAX_SIGNATURES].join(" "));
        assert_eq!(reason(verify(&signed(&many), TS, host_check).expect("checked")), "no signature matched");
    }

    #[test]
    fn refuses_with_a_reason() {
        let ts = TS.to_string();
        let cases: Vec<(IncomingRequest, u64, &str)> = vec![
            (signed(SIGNATURE), TS + 301, "outside the ±300 s window (signed 301 s ago)"),
            (signed(SIGNATURE), TS - 301, "signed 301 s in the future"),
            (signed("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), TS, "no signature matched"),
            (signed("v2,abc v1a,def"), TS, "no signature matched"),
            (signed("garbage"), TS, "holds no <version>,<signature> entries"),
            (request(&[("webhook-timestamp", &ts), ("webhook-signature", SIGNATURE)], BODY), TS, "missing webhook-id"),
            (request(&[("webhook-id", ID), ("webhook-signature", SIGNATURE)], BODY), TS, "missing webhook-timestamp"),
            (request(&[("webhook-id", ID), ("webhook-timestamp", &ts)], BODY), TS, "missing webhook-signature"),
            (
                request(
                    &[("webhook-id", ID), ("webhook-timestamp", "16493675.53"), ("webhook-signature", SIGNATURE)],
                    BODY,
                ),
                TS,
                "not a Unix timestamp",
            ),
            (
                request(
                    &[
                        ("webhook-id", ID),
                        ("webhook-id", "msg_other"),
                        ("webhook-timestamp", &ts),
                        ("webhook-signature", SIGNATURE),
                    ],
                    BODY,
                ),
                TS,
                "several times with different values",
            ),
        ];
        for (req, now, expected) in cases {
            let why = reason(verify(&req, now, host_check).expect("checked"));
            assert!(why.contains(expected), "{why:?} should contain {expected:?}");
        }
        // A tampered body no longer matches.
        let mut tampered = signed(SIGNATURE);
        tampered.body = BODY.replace("test_user", "admin").into_bytes();
        assert_eq!(reason(verify(&tampered, TS, host_check).expect("checked")), "no signature matched");
    }

    #[test]
    fn host_errors_are_passed_on() {
        let failing = |_: &[u8], _: &[u8]| Err(ConnectorError::permanent("invalid_credential_request", "bad secret"));
        let e = verify(&signed(SIGNATURE), TS, failing).expect_err("error");
        assert_eq!(e.code(), "invalid_credential_request");
    }

    #[test]
    fn transforms_a_message() {
        let body = r#"{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81","name":"Zoë 🚀"}}"#;
        let event = transform(&request(&[("webhook-id", "msg_2KWP")], body)).expect("event");
        assert_eq!(event.event_type, "contact.created");
        assert_eq!(event.payload, r#"{"id":"1f81","name":"Zoë 🚀"}"#);
        assert_eq!(event.idempotency_key.as_deref(), Some("msg_2KWP"));
        assert_eq!(event.occurred_at, Some(1_667_507_170_344));
        assert_eq!(event.subject, None);
    }

    #[test]
    fn squashed_data_and_optional_parts() {
        let body = r#"{"type":"user.created","id":"u1","extra":[1,2]}"#;
        let event = transform(&request(&[], body)).expect("event");
        assert_eq!(event.payload, r#"{"extra":[1,2],"id":"u1"}"#);
        assert_eq!((event.idempotency_key, event.occurred_at), (None, None));
        let null_data = transform(&request(&[], r#"{"type":"a.b","data":null}"#)).expect("event");
        assert_eq!(null_data.payload, "null");
    }

    #[test]
    fn malformed_bodies_are_permanent_with_a_reason() {
        for (body, expected) in [
            ("{not json", "not valid JSON"),
            ("[1,2]", "not a JSON object"),
            ("\"text\"", "not a JSON object"),
            (r#"{"data":{}}"#, "no `type`"),
            (r#"{"type":"","data":{}}"#, "no `type`"),
            (r#"{"type":7,"data":{}}"#, "not a Standard Webhooks message"),
            (r#"{"type":"a","type":"b","data":{}}"#, "not a Standard Webhooks message"),
            (r#"{"type":"a.b","timestamp":1667507170,"data":{}}"#, "`timestamp` is not a string"),
            (r#"{"type":"a.b","timestamp":"yesterday","data":{}}"#, "not an RFC 3339 time"),
        ] {
            let e = transform(&request(&[], body)).expect_err(body);
            assert!(matches!(e, ConnectorError::Permanent(_)), "{body}");
            assert_eq!(e.code(), "invalid_payload");
            assert!(e.message().contains(expected), "{body}: {}", e.message());
        }
        let mut binary = request(&[], "");
        binary.body = vec![0xff, 0xfe];
        assert!(transform(&binary).expect_err("binary").message().contains("UTF-8"));
    }
}
